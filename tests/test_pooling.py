"""max_pool2d and avg_pool2d: gradient checks (first and second order) in float64, parity
with torch.nn.functional (forward, gradients, output sizes incl. ceil_mode) and dtypes, each
on every device; what max pooling stores for backward and the errors for bad arguments."""
import itertools

import numpy as np
import pytest

import minidl
from minidl import backend
from minidl.functional.pooling import avg_pool2d, max_pool2d
from helpers import as_numpy, assert_parity, check_torch_parity, rand, requires_torch, torch

tF = torch.nn.functional if torch else None


def distinct(*shape, seed=0, device='cpu'):
    """A float64 leaf on ``device`` whose values are all at least 0.05 apart, in random
    order: a gradcheck perturbation (eps = 1e-6) can never change which element of a window
    is the maximum, so max pooling is differentiable at every point the check visits."""
    rng = np.random.default_rng(seed)
    n = int(np.prod(shape))
    values = (rng.permutation(n) + 0.5 * rng.random(n)) * 0.1 - 0.05 * n
    return minidl.tensor(values.reshape(shape), requires_grad=True, device=device)


# (input shape, kernel_size, stride, padding, ceil_mode)
MAX_CASES = [
    ((2, 3, 6, 6), 2, None, 0, False),            # the classic 2x2/2, stride defaults to kernel
    ((1, 2, 7, 7), 3, 2, 0, False),               # overlapping 3x3 stride 2 (AlexNet)
    ((2, 2, 8, 8), 3, 2, 1, False),               # overlapping with padding
    ((1, 2, 6, 6), 3, 2, 1, True),                # ceil_mode adds a 4th row/column of windows
    ((1, 2, 8, 8), 3, 2, 0, True),                # ceil_mode, a window overhangs the bottom/right
    ((1, 2, 5, 5), 2, 2, 1, True),                # ceil_mode, last window would start in padding
    ((2, 1, 5, 8), (2, 3), (1, 2), (1, 0), False),  # non-square everything
    ((1, 2, 6, 9), (3, 2), (2, 3), (1, 1), True),   # non-square, ceil_mode
    ((1, 2, 7, 7), 2, 3, 0, False),               # stride > kernel: pixels no window reads
    ((1, 3, 4, 5), 1, 1, 0, False),               # 1x1 kernel: the identity
    ((2, 2, 3, 4), 4, 2, 0, True),                # ceil_mode, kernel overhangs the whole input
]
MAX_IDS = [f"{s}-k{k}-s{st}-p{p}-{'ceil' if c else 'floor'}" for s, k, st, p, c in MAX_CASES]

# (input shape, kernel_size, stride, padding)
AVG_CASES = [
    ((2, 3, 6, 6), 2, None, 0),
    ((1, 2, 7, 7), 3, 2, 0),
    ((2, 2, 7, 7), 3, 2, 1),
    ((2, 1, 5, 8), (2, 3), (1, 2), (1, 1)),
    ((1, 2, 7, 7), 2, 3, 0),
    ((1, 2, 5, 5), 3, 1, 1),
]
AVG_IDS = [f"{s}-k{k}-s{st}-p{p}" for s, k, st, p in AVG_CASES]


# ----------------------------------------------------------------------------- max_pool2d
@pytest.mark.parametrize('shape, kernel, stride, padding, ceil', MAX_CASES, ids=MAX_IDS)
def test_max_pool2d_gradcheck(shape, kernel, stride, padding, ceil, device):
    x = distinct(*shape, device=device)
    assert minidl.gradcheck(lambda t: max_pool2d(t, kernel, stride, padding, ceil_mode=ceil), [x])


@pytest.mark.parametrize('shape, kernel, stride, padding, ceil',
                         [MAX_CASES[i] for i in (1, 3, 6)], ids=[MAX_IDS[i] for i in (1, 3, 6)])
def test_max_pool2d_gradgradcheck(shape, kernel, stride, padding, ceil, device):
    x = distinct(*shape, device=device)
    assert minidl.gradgradcheck(lambda t: max_pool2d(t, kernel, stride, padding, ceil_mode=ceil),
                                [x])


def test_max_pool2d_third_order_through_grad_and_gather(device):
    """The gradient of max pooling scatters (MaxPool2dGrad); differentiating that w.r.t. its
    upstream gradient gathers (MaxPool2dGather); differentiating the gather scatters again."""
    x = distinct(1, 2, 7, 7, device=device)
    v = rand(1, 2, 3, 3, seed=2, device=device)
    w = rand(*x.shape, seed=3, device=device)
    u = rand(1, 2, 3, 3, seed=4, requires_grad=False, device=device)
    gx, = minidl.grad(max_pool2d(x, 3, 2), [x], [v], create_graph=True)    # scatter(v)
    gv, = minidl.grad((gx * w).sum(), [v], create_graph=True)              # gather(w)
    gw, = minidl.grad((gv * u).sum(), [w])                                 # scatter(u)
    x.grad = None
    max_pool2d(x, 3, 2).backward(u)
    np.testing.assert_array_equal(gw.numpy(), x.grad.numpy())
    assert gx.device == gv.device == gw.device == device
    index = as_numpy(max_pool2d(x, 3, 2).grad_fn.index)
    cols = [w.numpy()[:, :, i:i + 5:2, j:j + 5:2] for i in range(3) for j in range(3)]
    np.testing.assert_array_equal(gv.numpy(), np.choose(index, cols))


@requires_torch
@pytest.mark.parametrize('shape, kernel, stride, padding, ceil', MAX_CASES, ids=MAX_IDS)
def test_max_pool2d_torch_parity(shape, kernel, stride, padding, ceil, device):
    check_torch_parity(lambda t: max_pool2d(t, kernel, stride, padding, ceil_mode=ceil),
                       lambda t: tF.max_pool2d(t, kernel, stride, padding, ceil_mode=ceil),
                       [rand(*shape, seed=4, device=device)])


# (size, kernel, stride, padding, ceil_mode): the grid both poolings are checked on
GRID = list(itertools.product((3, 4, 5, 6, 7), (1, 2, 3, 4), (1, 2, 3), (0, 1, 2),
                              (False, True)))


@requires_torch
def test_max_pool2d_output_sizes_and_values_match_torch_over_a_grid(device):
    """Every (size, kernel, stride, padding, ceil_mode) on a small grid: same output (or
    both refuse), including PyTorch's rule that a ceil-mode window must start inside the
    input or its left padding."""
    rng = np.random.default_rng(5)
    checked = 0
    for h, k, s, p, ceil in GRID:
        x = rng.standard_normal((1, 2, h, h + 1))
        try:
            theirs = tF.max_pool2d(torch.tensor(x), k, s, p, ceil_mode=ceil)
        except RuntimeError:
            theirs = None
        x = minidl.tensor(x, device=device)
        if theirs is None:
            with pytest.raises(ValueError, match='max_pool2d'):
                max_pool2d(x, k, s, p, ceil_mode=ceil)
            continue
        ours = max_pool2d(x, k, s, p, ceil_mode=ceil)
        assert ours.shape == tuple(theirs.shape), (h, k, s, p, ceil)
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
        checked += 1
    assert checked > 200


# (input shape, kernel_size, stride, padding, dilation, ceil_mode)
DILATED = [
    ((1, 2, 7, 7), 2, 1, 0, 2, False),
    ((2, 1, 8, 7), 3, 2, 1, 2, False),
    ((1, 2, 7, 8), (2, 3), (2, 1), (1, 0), (3, 1), True),
    ((1, 1, 6, 6), 2, 2, 1, 2, True),               # ceil mode: the last window overhangs
]
DILATED_IDS = [f"{s}-k{k}-s{st}-p{p}-d{d}-{'ceil' if c else 'floor'}"
               for s, k, st, p, d, c in DILATED]


@pytest.mark.parametrize('shape, kernel, stride, padding, dilation, ceil', DILATED,
                         ids=DILATED_IDS)
def test_max_pool2d_dilation_gradcheck(shape, kernel, stride, padding, dilation, ceil, device):
    x = distinct(*shape, device=device)
    assert minidl.gradgradcheck(lambda t: max_pool2d(t, kernel, stride, padding, dilation,
                                                     ceil), [x])


@requires_torch
@pytest.mark.parametrize('shape, kernel, stride, padding, dilation, ceil', DILATED,
                         ids=DILATED_IDS)
def test_max_pool2d_dilation_torch_parity(shape, kernel, stride, padding, dilation, ceil,
                                          device):
    check_torch_parity(lambda t: max_pool2d(t, kernel, stride, padding, dilation, ceil),
                       lambda t: tF.max_pool2d(t, kernel, stride, padding, dilation, ceil),
                       [rand(*shape, seed=12, device=device)])


@requires_torch
def test_max_pool2d_values_and_indices_match_torch_over_a_dilation_grid(device):
    """return_indices: int64 flat positions h*W + w in each input plane, as torch's."""
    rng = np.random.default_rng(6)
    checked = 0
    for h in (4, 5, 6, 7):
        for k in (2, 3):
            for s in (1, 2):
                for p in (0, 1):
                    for d in (1, 2, 3):
                        for ceil in (False, True):
                            x = rng.standard_normal((2, 2, h, h + 1))
                            try:
                                ty, ti = tF.max_pool2d(torch.tensor(x), k, s, p, d, ceil, True)
                            except RuntimeError:
                                with pytest.raises(ValueError, match='max_pool2d'):
                                    max_pool2d(minidl.tensor(x, device=device), k, s, p, d,
                                               ceil, True)
                                continue
                            y, i = max_pool2d(minidl.tensor(x, device=device), k, s, p, d,
                                              ceil, True)
                            np.testing.assert_array_equal(y.numpy(), ty.numpy())
                            assert i.dtype == np.int64 and i.device == device
                            np.testing.assert_array_equal(i.numpy(), ti.numpy())
                            checked += 1
    assert checked > 150


def test_max_pool2d_indices_are_a_second_tensor_outside_the_graph(device):
    x = distinct(1, 2, 4, 4, device=device)
    y, indices = max_pool2d(x, 2, return_indices=True)
    assert not indices.requires_grad and indices.grad_fn is None
    flat = x.numpy().reshape(1, 2, 16)
    np.testing.assert_array_equal(np.take_along_axis(flat, indices.numpy().reshape(1, 2, 4),
                                                     axis=2).reshape(y.shape), y.numpy())
    y.sum().backward()
    assert x.grad.shape == x.shape


def test_max_pool2d_ceil_mode_output_sizes():
    x = minidl.Tensor(np.zeros((1, 1, 6, 5)))
    assert max_pool2d(x, 3, 2, 1).shape == (1, 1, 3, 3)
    assert max_pool2d(x, 3, 2, 1, ceil_mode=True).shape == (1, 1, 4, 3)
    # H = 5, k = 2, s = 2, p = 1: ceil((5 + 2 - 2) / 2) + 1 = 4 windows, but the 4th would
    # start at row 6 of the padded input, past the input and its left padding: dropped.
    x5 = minidl.Tensor(np.zeros((1, 1, 5, 5)))
    assert max_pool2d(x5, 2, 2, 1, ceil_mode=True).shape == (1, 1, 3, 3)
    # ceil((3 - 4) / 2) + 1 = 1: in ceil mode a 4x4 kernel may overhang a 3x4 input (as in
    # PyTorch); in floor mode it may not.
    x = minidl.Tensor(np.arange(12.0).reshape(1, 1, 3, 4))
    np.testing.assert_array_equal(max_pool2d(x, 4, 2, ceil_mode=True).numpy(), [[[[11.0]]]])
    with pytest.raises(ValueError, match=r"max_pool2d: kernel size \(4, 4\) is larger"):
        max_pool2d(x, 4, 2)


def test_max_pool2d_first_maximum_wins_ties(device):
    x = minidl.tensor(np.array([[[[1., 2., 2.],
                                  [2., 0., 2.],
                                  [2., 2., 2.]]]]), requires_grad=True, device=device)
    y = max_pool2d(x, 2, 1)
    np.testing.assert_array_equal(y.numpy(), [[[[2., 2.], [2., 2.]]]])
    y.sum().backward()
    # windows (row-major): first 2 at (0,1), (0,1), (1,0), (1,2)
    np.testing.assert_array_equal(x.grad.numpy(), [[[[0., 2., 0.],
                                                     [1., 0., 1.],
                                                     [0., 0., 0.]]]])


@requires_torch
def test_max_pool2d_ties_route_gradient_like_torch(device):
    x = minidl.tensor(np.random.default_rng(6).integers(0, 3, (2, 3, 9, 9)).astype(np.float64),
                      requires_grad=True, device=device)
    for args in ((3, 2, 1, False), (2, 1, 0, False), (3, 2, 0, True)):
        x.grad = None
        check_torch_parity(lambda t: max_pool2d(t, *args[:3], ceil_mode=args[3]),
                           lambda t: tF.max_pool2d(t, args[0], args[1], args[2], ceil_mode=args[3]),
                           [x])


@requires_torch
def test_max_pool2d_nan_propagates_like_torch(device):
    x = rand(1, 2, 5, 5, seed=7).numpy()
    x[0, 0, 1, 2] = x[0, 1, 0, 0] = x[0, 1, 3, 3] = np.nan
    tx = torch.tensor(x, requires_grad=True)
    x = minidl.tensor(x, requires_grad=True, device=device)
    y = max_pool2d(x, 3, 2, 1)
    ty = tF.max_pool2d(tx, 3, 2, 1)
    np.testing.assert_array_equal(y.numpy(), ty.detach().numpy())  # NaN in the same places
    g = np.random.default_rng(8).standard_normal(y.shape)
    y.backward(minidl.tensor(g, device=device))
    ty.backward(torch.tensor(g))
    assert_parity(x.grad, tx.grad)  # the gradient reaches the first NaN of each window


def test_max_pool2d_stores_only_a_small_argmax():
    """Backward keeps one uint8 per output element (the window position of the max), no
    float array: not the input, not its padded copy, not the windows."""
    x = rand(2, 3, 9, 9)
    y = max_pool2d(x, 3, 2, 1)
    saved = [v for v in vars(y.grad_fn).values() if backend.is_array(v)]
    assert len(saved) == 1
    assert saved[0].dtype == np.uint8 and saved[0].shape == y.shape
    assert int(saved[0].max()) <= 8


def test_max_pool2d_large_window_uses_wider_index(device):
    x = distinct(1, 2, 17, 17, device=device)
    y = max_pool2d(x, 17)            # 289 positions do not fit in a byte
    assert y.grad_fn.index.dtype == np.uint16
    y.sum().backward()
    expected = (x.numpy() == x.numpy().max(axis=(2, 3), keepdims=True)).astype(np.float64)
    np.testing.assert_array_equal(x.grad.numpy(), expected)


def test_max_pool2d_under_no_grad_matches(device):
    x = rand(2, 3, 8, 8, seed=9, device=device)
    y = max_pool2d(x, 3, 2, 1, ceil_mode=True)
    with minidl.no_grad():
        z = max_pool2d(x, 3, 2, 1, ceil_mode=True)
    assert z.grad_fn is None
    np.testing.assert_array_equal(y.numpy(), z.numpy())


def test_max_pool2d_keeps_float32_on_the_device(device):
    x = minidl.tensor(np.random.default_rng(10).standard_normal((2, 3, 8, 8)).astype(np.float32),
                      requires_grad=True, device=device)
    y = max_pool2d(x, 3, 2, 1)
    assert y.dtype == np.float32 and y.device == device
    y.sum().backward()
    assert x.grad.dtype == np.float32 and x.grad.device == device


# ----------------------------------------------------------------------------- avg_pool2d
@pytest.mark.parametrize('shape, kernel, stride, padding', AVG_CASES, ids=AVG_IDS)
def test_avg_pool2d_gradcheck(shape, kernel, stride, padding, device):
    assert minidl.gradcheck(lambda t: avg_pool2d(t, kernel, stride, padding),
                            [rand(*shape, device=device)])


@pytest.mark.parametrize('shape, kernel, stride, padding',
                         [AVG_CASES[i] for i in (2, 3)], ids=[AVG_IDS[i] for i in (2, 3)])
def test_avg_pool2d_gradgradcheck(shape, kernel, stride, padding, device):
    assert minidl.gradgradcheck(lambda t: avg_pool2d(t, kernel, stride, padding),
                                [rand(*shape, device=device)])


@requires_torch
@pytest.mark.parametrize('shape, kernel, stride, padding', AVG_CASES, ids=AVG_IDS)
def test_avg_pool2d_torch_parity(shape, kernel, stride, padding, device):
    check_torch_parity(lambda t: avg_pool2d(t, kernel, stride, padding),
                       lambda t: tF.avg_pool2d(t, kernel, stride, padding),
                       [rand(*shape, seed=11, device=device)])


# (input shape, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)
AVG_OPTIONS = [
    ((1, 2, 6, 6), 3, 2, 1, True, True, None),      # ceil: the last window overhangs the padding
    ((1, 2, 6, 6), 3, 2, 1, True, False, None),
    ((2, 1, 5, 7), (3, 2), (2, 1), (1, 1), False, False, None),
    ((1, 2, 5, 5), 2, 2, 1, True, False, None),
    ((1, 2, 5, 6), 3, 2, 1, False, True, 4),
    ((1, 1, 6, 5), 3, 2, 1, True, False, -2),       # torch allows any nonzero int
    ((2, 5, 6), 3, 2, 1, True, False, None),        # unbatched (C, H, W)
]
AVG_OPTION_IDS = [f"{s}-k{k}-s{st}-p{p}-{'ceil' if c else 'floor'}-pad{int(i)}-div{d}"
                  for s, k, st, p, c, i, d in AVG_OPTIONS]


@pytest.mark.parametrize('shape, kernel, stride, padding, ceil, include, divisor', AVG_OPTIONS,
                         ids=AVG_OPTION_IDS)
def test_avg_pool2d_options_gradgradcheck(shape, kernel, stride, padding, ceil, include,
                                          divisor, device):
    assert minidl.gradgradcheck(lambda t: avg_pool2d(t, kernel, stride, padding, ceil, include,
                                                     divisor),
                                [rand(*shape, seed=13, device=device)])


@requires_torch
@pytest.mark.parametrize('shape, kernel, stride, padding, ceil, include, divisor', AVG_OPTIONS,
                         ids=AVG_OPTION_IDS)
def test_avg_pool2d_options_torch_parity(shape, kernel, stride, padding, ceil, include,
                                         divisor, device):
    check_torch_parity(lambda t: avg_pool2d(t, kernel, stride, padding, ceil, include, divisor),
                       lambda t: tF.avg_pool2d(t, kernel, stride, padding, ceil, include,
                                               divisor),
                       [rand(*shape, seed=14, device=device)])


@requires_torch
def test_avg_pool2d_divisors_match_torch_over_a_grid(device):
    """Every (size, kernel, stride, padding, ceil_mode, count_include_pad) on a small grid:
    same output and gradient (or both refuse). torch divides a ceil-mode window that
    overhangs the padded input by its part inside input + padding (count_include_pad) or
    inside the input (not), and ones that fit by KH*KW or their input part."""
    rng = np.random.default_rng(7)
    checked = 0
    for (h, k, s, p, ceil), include in itertools.product(GRID, (True, False)):
        x = minidl.tensor(rng.standard_normal((1, 2, h, h + 1)), requires_grad=True,
                          device=device)
        options = (k, s, p, ceil, include)
        try:
            tF.avg_pool2d(torch.tensor(x.numpy()), *options)
        except RuntimeError:
            with pytest.raises(ValueError, match='avg_pool2d'):
                avg_pool2d(x, *options)
            continue
        check_torch_parity(lambda t: avg_pool2d(t, *options),
                           lambda t: tF.avg_pool2d(t, *options), [x])
        checked += 1
    assert checked > 400


@requires_torch
def test_pooling_unbatched_input_matches_torch(device):
    x = rand(3, 7, 6, seed=15, device=device)
    check_torch_parity(lambda t: max_pool2d(t, 3, 2, 1), lambda t: tF.max_pool2d(t, 3, 2, 1),
                       [x])
    x.grad = None
    check_torch_parity(lambda t: avg_pool2d(t, 3, 2, 1), lambda t: tF.avg_pool2d(t, 3, 2, 1),
                       [x])
    y, i = max_pool2d(x, 2, return_indices=True)
    assert y.shape == i.shape == (3, 3, 3)
    np.testing.assert_array_equal(i.numpy(), tF.max_pool2d(torch.tensor(x.numpy()), 2,
                                                           return_indices=True)[1].numpy())


def test_avg_pool2d_default_options_keep_the_plain_divisor():
    # the default path divides by the number KH*KW, with no per-window divisor array
    y = avg_pool2d(rand(1, 1, 5, 5), 3, 2, 1)
    assert y.grad_fn.divisor == 9


def test_avg_pool2d_counts_padding_in_the_divisor(device):
    x = minidl.tensor(np.ones((1, 1, 2, 2)), device=device)
    np.testing.assert_allclose(avg_pool2d(x, 3, 1, 1).numpy(), np.full((1, 1, 2, 2), 4 / 9))


def test_avg_pool2d_keeps_float32_and_stores_nothing():
    x = minidl.Tensor(np.random.default_rng(12).standard_normal((2, 3, 7, 7)).astype(np.float32),
                      requires_grad=True)
    y = avg_pool2d(x, 3, 2, 1)
    assert y.dtype == np.float32
    assert not [v for v in vars(y.grad_fn).values() if backend.is_array(v)]
    y.sum().backward()
    assert x.grad.dtype == np.float32


# ----------------------------------------------------------------------------- errors
BAD_ARGS = [
    ((3, 4), 2, None, 0, r"3-D \(C, H, W\) or 4-D \(N, C, H, W\) input.*\(3, 4\)"),
    ((2, 3, 4, 4, 1), 2, None, 0, r"3-D .* or 4-D .*\(2, 3, 4, 4, 1\)"),
    ((1, 1, 3, 3), 4, None, 0, r"larger than the padded input 3x3.*\(1, 1, 3, 3\)"),
    ((1, 1, 3, 3), (2, 6), 1, (0, 1), r"larger than the padded input 3x5.*\(1, 1, 3, 3\)"),
    ((1, 1, 4, 4), 0, None, 0, r"kernel_size must be positive"),
    ((1, 1, 4, 4), (2, -1), None, 0, r"kernel_size must be positive"),
    ((1, 1, 4, 4), 2, 0, 0, r"stride must be positive"),
    ((1, 1, 4, 4), 2, None, -1, r"padding must be non-negative"),
    ((1, 1, 4, 4), 3, None, 2, r"padding \(2, 2\) must be at most half the kernel size "
                               r"\(3, 3\).*\(1, 1, 4, 4\)"),
    ((1, 1, 4, 4), (2, 2, 2), None, 0, r"kernel_size must be an int or a pair"),
    ((1, 1, 4, 4), 2.0, None, 0, r"kernel_size must be an int or a pair"),
]


@pytest.mark.parametrize('op, options, message', [
    ('max_pool2d', dict(dilation=0), r"dilation must be positive, got 0"),
    ('max_pool2d', dict(dilation=(1, -2)), r"dilation must be positive, got \(1, -2\)"),
    ('max_pool2d', dict(dilation=1.5), r"dilation must be an int or a pair of ints, got 1.5"),
    ('max_pool2d', dict(return_indices='yes'), r"return_indices must be True or False.*'yes'"),
    ('avg_pool2d', dict(divisor_override=0), r"divisor_override must be a nonzero int.*got 0"),
    ('avg_pool2d', dict(divisor_override=2.5), r"divisor_override must be an int, got 2.5"),
    ('avg_pool2d', dict(count_include_pad=None), r"count_include_pad must be True or False"),
    ('avg_pool2d', dict(ceil_mode=1), r"ceil_mode must be True or False, got 1"),
])
def test_pooling_rejects_bad_options(op, options, message):
    fn = max_pool2d if op == 'max_pool2d' else avg_pool2d
    with pytest.raises(ValueError, match=f"{op}: {message}"):
        fn(rand(1, 1, 6, 6), 2, **options)


@pytest.mark.parametrize('op', ['max_pool2d', 'avg_pool2d'])
@pytest.mark.parametrize('shape, kernel, stride, padding, message', BAD_ARGS)
def test_pooling_rejects_bad_arguments(op, shape, kernel, stride, padding, message):
    fn = max_pool2d if op == 'max_pool2d' else avg_pool2d
    with pytest.raises(ValueError, match=f"{op}: .*{message}"):
        fn(minidl.Tensor(np.zeros(shape)), kernel, stride, padding)


# ----------------------------------------------------------------------------- dtypes
@requires_torch
@pytest.mark.parametrize('dtype', [np.int64, np.int32, np.uint8])
def test_max_pool2d_of_integers_matches_torch(dtype, device):
    x = np.random.default_rng(19).integers(0, 200, (2, 3, 7, 7)).astype(dtype)
    ours = max_pool2d(minidl.tensor(x, device=device), 3, 2, 1)
    theirs = tF.max_pool2d(torch.tensor(x), 3, 2, 1)
    assert ours.dtype == dtype
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


def test_avg_pool2d_float16_sums_in_float32(device):
    x = np.random.default_rng(20).uniform(8000, 30000, (1, 2, 6, 6)).astype(np.float16)
    y16 = avg_pool2d(minidl.tensor(x, device=device), 3, 1, 1)
    y64 = avg_pool2d(minidl.tensor(x.astype(np.float64), device=device), 3, 1, 1)
    assert y16.dtype == np.float16 and np.isfinite(y16.numpy()).all()  # the sums pass 65504
    np.testing.assert_allclose(y16.numpy(), y64.numpy(), rtol=1e-3)
