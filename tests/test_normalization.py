"""local_response_norm and batch_norm: gradient checks in float64, parity with
torch.nn.functional (forward, gradients, running statistics updated in place) and dtypes,
each on every device; what they store for backward and the errors for bad arguments."""
import numpy as np
import pytest

import minidl
from minidl import backend
from minidl.functional.normalization import batch_norm, local_response_norm
from helpers import (PARITY_RTOL, as_numpy, assert_parity, check_torch_parity, device_of, on,
                     rand, requires_torch, to_torch, torch)

tF = torch.nn.functional if torch else None


def saved_arrays(fn):
    """The arrays a Function keeps for backward (its input Tensors are the engine's)."""
    return [v for v in vars(fn).values() if backend.is_array(v)]


# ----------------------------------------------------------------------------- LRN
def lrn_reference(a, size, alpha, beta, k):
    """The AlexNet formula, one channel at a time."""
    c = a.shape[1]
    out = np.empty_like(a)
    for i in range(c):
        lo, hi = max(0, i - size // 2), min(c - 1, i + (size - 1) // 2)
        out[:, i] = a[:, i] / (k + alpha * (a[:, lo:hi + 1] ** 2).sum(axis=1)) ** beta
    return out


# (input shape, size, alpha, beta, k); alpha is large so that the cross-channel term of the
# gradient is far above gradcheck's tolerance.
LRN_CASES = [
    ((2, 4, 2, 3), 1, 0.5, 0.75, 2.0),
    ((2, 4, 2, 3), 2, 0.5, 0.75, 2.0),
    ((2, 4, 2, 3), 3, 1.0, 0.75, 1.0),
    ((2, 5, 2, 2), 4, 0.7, 1.5, 0.5),
    ((2, 6, 2, 2), 5, 2.0, 0.5, 1.0),
    ((1, 3, 2, 2), 5, 1.0, 0.75, 2.0),    # C < size: the window covers every channel
    ((2, 2, 3, 2), 4, 1.3, 1.0, 1.0),     # C < size, even size
    ((1, 7, 2, 2), 6, 0.9, 2.0, 3.0),     # even size, window clipped on both sides
    ((2, 6, 3, 3), 5, 1e-4, 0.75, 2.0),   # AlexNet's values
]
LRN_IDS = [f"{s}-size{n}-a{a}-b{b}-k{k}" for s, n, a, b, k in LRN_CASES]


@pytest.mark.parametrize('shape, size, alpha, beta, k', LRN_CASES, ids=LRN_IDS)
def test_lrn_matches_the_paper_formula(shape, size, alpha, beta, k, device):
    x = rand(*shape, seed=1, device=device)
    expected = lrn_reference(x.numpy(), size, alpha, beta, k)
    np.testing.assert_allclose(local_response_norm(x, size, alpha, beta, k).numpy(), expected,
                               rtol=1e-13, atol=0)


@pytest.mark.parametrize('shape, size, alpha, beta, k', LRN_CASES, ids=LRN_IDS)
def test_lrn_gradcheck(shape, size, alpha, beta, k, device):
    x = rand(*shape, seed=2, device=device)
    assert minidl.gradcheck(lambda t: local_response_norm(t, size, alpha, beta, k), [x])


@requires_torch
@pytest.mark.parametrize('size', [1, 2, 3, 4, 5, 6])
@pytest.mark.parametrize('alpha, beta, k', [(1e-4, 0.75, 2.0), (0.3, 0.6, 1.0), (1.5, 1.2, 0.5)])
def test_lrn_equals_torch_with_alpha_times_size(size, alpha, beta, k, device):
    """Ours with alpha == PyTorch's with alpha * size (PyTorch averages over the window)."""
    check_torch_parity(lambda t: local_response_norm(t, size, alpha, beta, k),
                       lambda t: tF.local_response_norm(t, size, alpha * size, beta, k),
                       [rand(2, 7, 3, 4, seed=size, device=device)])


def test_lrn_of_a_3d_input_gradcheck(device):
    assert minidl.gradcheck(lambda t: local_response_norm(t, 4, 0.5),
                            [rand(2, 5, 3, seed=9, device=device)])


@requires_torch
def test_lrn_reads_a_3d_input_as_n_c_l_like_torch(device):
    check_torch_parity(lambda t: local_response_norm(t, 3, 0.5),
                       lambda t: tF.local_response_norm(t, 3, 0.5 * 3, 0.75, 2.0),
                       [rand(3, 6, 4, seed=10, device=device)])


def test_lrn_stores_only_the_scale():
    x = rand(2, 6, 3, 3)
    y = local_response_norm(x, 5, 0.5)
    saved = saved_arrays(y.grad_fn)
    assert len(saved) == 1 and saved[0].shape == x.shape
    s = 2.0 + 0.5 * np.stack([(x.numpy()[:, max(0, i - 2):i + 3] ** 2).sum(axis=1)
                              for i in range(6)], axis=1)
    np.testing.assert_allclose(saved[0], s, rtol=1e-14)


def test_lrn_double_backward_is_not_implemented():
    x = rand(1, 4, 2, 2)
    gx, = minidl.grad(local_response_norm(x, 3, 0.5).sum(), [x], create_graph=True)
    with pytest.raises(NotImplementedError,
                       match="local_response_norm: double backward is not implemented"):
        gx.sum().backward()


def test_lrn_keeps_float32_on_the_device(device):
    x = minidl.tensor(np.random.default_rng(3).standard_normal((2, 8, 4, 4)).astype(np.float32),
                      requires_grad=True, device=device)
    y = local_response_norm(x)
    assert y.dtype == np.float32 and y.grad_fn.scale.dtype == np.float32
    assert y.device == device
    y.sum().backward()
    assert x.grad.dtype == np.float32 and x.grad.device == device


@pytest.mark.parametrize('shape, size, message', [
    ((3, 4), 5, r"3-D \(N, C, L\), 4-D \(N, C, H, W\) or higher input.*\(3, 4\)"),
    ((2, 3, 4, 4), 0, r"size must be a positive int, got 0.*\(2, 3, 4, 4\)"),
    ((2, 3, 4, 4), 2.5, r"size must be a positive int, got 2.5"),
])
def test_lrn_rejects_bad_arguments(shape, size, message):
    with pytest.raises(ValueError, match=f"local_response_norm: .*{message}"):
        local_response_norm(minidl.Tensor(np.zeros(shape)), size)


# ----------------------------------------------------------------------------- batch_norm
BN_SHAPES = [(6, 3), (3, 2, 4), (3, 2, 3, 2)]
AFFINE = [(True, True), (True, False), (False, True), (False, False)]


def running_stats(c, seed=0, device='cpu'):
    """float64 running mean and variance (arrays on ``device``)."""
    rng = np.random.default_rng(seed)
    return on(device, rng.standard_normal(c)), on(device, 0.5 + rng.random(c))


def affine_params(c, affine, seed=0, device='cpu'):
    weight = rand(c, seed=seed + 1, device=device) if affine[0] else None
    bias = rand(c, seed=seed + 2, device=device) if affine[1] else None
    return weight, bias


@pytest.mark.parametrize('affine', AFFINE, ids=['weight+bias', 'weight', 'bias', 'plain'])
@pytest.mark.parametrize('training', [True, False], ids=['train', 'eval'])
@pytest.mark.parametrize('shape', BN_SHAPES, ids=str)
def test_batch_norm_gradcheck(shape, training, affine, device):
    c = shape[1]
    x = rand(*shape, seed=3, device=device)
    rm, rv = running_stats(c, device=device)
    weight, bias = affine_params(c, affine, device=device)
    params = [p for p in (weight, bias) if p is not None]

    def fn(x, *ps):
        it = iter(ps)
        w = next(it) if weight is not None else None
        b = next(it) if bias is not None else None
        # training updates copies: the running statistics never change the output there
        return batch_norm(x, rm.copy(), rv.copy(), w, b, training=training)

    assert minidl.gradcheck(fn, [x] + params)


@pytest.mark.parametrize('shape', [(5, 3), (3, 2, 3, 2)], ids=str)
def test_batch_norm_eval_gradgradcheck(shape, device):
    c = shape[1]
    rm, rv = running_stats(c, seed=4, device=device)
    x, weight, bias = [rand(*s, seed=seed, device=device)
                       for s, seed in ((shape, 5), ((c,), 6), ((c,), 7))]
    assert minidl.gradgradcheck(lambda x, w, b: batch_norm(x, rm, rv, w, b), [x, weight, bias])


def test_batch_norm_training_double_backward_is_not_implemented():
    x, weight = rand(4, 3), rand(3, seed=1)
    gx, = minidl.grad((batch_norm(x, None, None, weight, training=True) ** 2).sum(), [x],
                      create_graph=True)
    with pytest.raises(NotImplementedError, match="batch_norm: double backward"):
        gx.sum().backward()


@requires_torch
@pytest.mark.parametrize('affine', AFFINE, ids=['weight+bias', 'weight', 'bias', 'plain'])
@pytest.mark.parametrize('shape', [(8, 3), (4, 3, 5), (4, 3, 5, 6)], ids=str)
def test_batch_norm_training_steps_match_torch(shape, affine, device):
    """Three training steps with momentum 0.3: outputs, gradients of x, weight and bias, and
    the running statistics (updated in place, on the device) after every step."""
    c = shape[1]
    rm, rv = running_stats(c, seed=8, device=device)
    trm, trv = to_torch(rm), to_torch(rv)
    for step in range(3):
        x = rand(*shape, seed=10 + step, device=device)
        weight, bias = affine_params(c, affine, seed=20 + step, device=device)
        inputs = [x] + [p for p in (weight, bias) if p is not None]

        def ours(x, *ps):
            it = iter(ps)
            return batch_norm(x, rm, rv, next(it) if affine[0] else None,
                              next(it) if affine[1] else None, True, 0.3)

        def theirs(x, *ps):
            it = iter(ps)
            return tF.batch_norm(x, trm, trv, next(it) if affine[0] else None,
                                 next(it) if affine[1] else None, True, 0.3)

        check_torch_parity(ours, theirs, inputs)
        assert device_of(rm) == device_of(rv) == device
        assert_parity(rm, trm)
        assert_parity(rv, trv)


@requires_torch
@pytest.mark.parametrize('affine', AFFINE, ids=['weight+bias', 'weight', 'bias', 'plain'])
@pytest.mark.parametrize('shape', [(8, 3), (4, 3, 5, 6)], ids=str)
def test_batch_norm_eval_matches_torch(shape, affine, device):
    c = shape[1]
    rm, rv = running_stats(c, seed=9, device=device)
    weight, bias = affine_params(c, affine, seed=30, device=device)
    x = rand(*shape, seed=31, device=device)
    inputs = [x] + [p for p in (weight, bias) if p is not None]

    def split(ps):
        it = iter(ps)
        return next(it) if affine[0] else None, next(it) if affine[1] else None

    check_torch_parity(lambda x, *ps: batch_norm(x, rm, rv, *split(ps), eps=1e-3),
                       lambda x, *ps: tF.batch_norm(x, to_torch(rm), to_torch(rv),
                                                    *split(ps), eps=1e-3), inputs)


@requires_torch
def test_batch_norm_training_without_running_stats_matches_torch(device):
    x, weight, bias = [rand(*s, seed=seed, device=device)
                       for s, seed in (((5, 4, 2, 3), 0), ((4,), 1), ((4,), 2))]
    check_torch_parity(lambda *a: batch_norm(a[0], None, None, a[1], a[2], training=True),
                       lambda *a: tF.batch_norm(a[0], None, None, a[1], a[2], training=True),
                       [x, weight, bias])


def test_batch_norm_updates_running_stats_in_place_on_the_device(device):
    """Arrays are updated in place, and so is the ``.data`` of minidl Tensors (the same
    array object), with the unbiased variance n/(n-1) in running_var."""
    x = rand(4, 3, 2, 2, requires_grad=False, device=device)
    rm, rv = running_stats(3, seed=12)
    expected_mean = 0.9 * rm + 0.1 * x.numpy().mean(axis=(0, 2, 3))
    expected_var = 0.9 * rv + 0.1 * x.numpy().var(axis=(0, 2, 3), ddof=1)
    arrays = on(device, rm.copy()), on(device, rv.copy())
    tensors = minidl.tensor(rm, device=device), minidl.tensor(rv, device=device)
    before = arrays + tuple(t.data for t in tensors)
    batch_norm(x, *arrays, training=True)
    batch_norm(x, *tensors, training=True)
    assert tensors[0].data is before[2] and tensors[1].data is before[3]
    assert all(device_of(got) == device for got in arrays + tensors)
    for got in (arrays, tensors):
        np.testing.assert_allclose(as_numpy(got[0]), expected_mean, rtol=1e-14)
        np.testing.assert_allclose(as_numpy(got[1]), expected_var, rtol=1e-14)


def test_batch_norm_eval_leaves_running_stats_alone(device):
    rm, rv = running_stats(3, seed=13, device=device)
    before = as_numpy(rm).copy(), as_numpy(rv).copy()
    batch_norm(rand(4, 3, device=device), rm, rv, training=False)
    np.testing.assert_array_equal(as_numpy(rm), before[0])
    np.testing.assert_array_equal(as_numpy(rv), before[1])


def test_batch_norm_training_stores_only_mean_and_inv_std():
    x = rand(4, 3, 5, 5)
    y = batch_norm(x, *running_stats(3), rand(3, seed=1), rand(3, seed=2), training=True)
    saved = saved_arrays(y.grad_fn)
    assert len(saved) == 2 and all(a.shape == (3,) for a in saved)
    np.testing.assert_allclose(y.grad_fn.mean, x.numpy().mean(axis=(0, 2, 3)), rtol=1e-14)
    np.testing.assert_allclose(y.grad_fn.inv_std,
                               1 / np.sqrt(x.numpy().var(axis=(0, 2, 3)) + 1e-5), rtol=1e-14)


@pytest.mark.parametrize('training', [True, False], ids=['train', 'eval'])
def test_batch_norm_keeps_float32_on_the_device(training, device):
    rng = np.random.default_rng(14)
    x = minidl.tensor(rng.standard_normal((4, 3, 5, 5)).astype(np.float32), requires_grad=True,
                      device=device)
    weight = minidl.tensor(np.ones(3, np.float32), requires_grad=True, device=device)
    bias = minidl.tensor(np.zeros(3, np.float32), requires_grad=True, device=device)
    rm, rv = on(device, np.zeros(3, np.float32)), on(device, np.ones(3, np.float32))
    y = batch_norm(x, rm, rv, weight, bias, training=training)
    assert y.dtype == np.float32 and rm.dtype == np.float32 and rv.dtype == np.float32
    assert y.device == device
    y.sum().backward()
    assert x.grad.dtype == weight.grad.dtype == bias.grad.dtype == np.float32
    assert x.grad.device == weight.grad.device == bias.grad.device == device


@pytest.mark.parametrize('shape, kwargs, message', [
    ((4,), {}, r"2-D \(N, C\).*got shape \(4,\)"),
    ((2, 3, 2, 2, 2), {}, r"got shape \(2, 3, 2, 2, 2\)"),
    ((4, 3), {'running_mean': np.zeros(4)}, r"running_mean must have shape \(3,\) for input "
                                             r"shape \(4, 3\).*got \(4,\)"),
    ((4, 3, 2, 2), {'running_var': np.ones((1, 3))}, r"running_var must have shape \(3,\).*"
                                                     r"\(4, 3, 2, 2\).*got \(1, 3\)"),
    ((4, 3), {'weight': np.ones(2)}, r"weight must have shape \(3,\).*\(4, 3\).*got \(2,\)"),
    ((4, 3, 2, 2), {'bias': np.ones(4)}, r"bias must have shape \(3,\).*got \(4,\)"),
    ((1, 3), {'training': True}, r"more than 1 value per channel.*\(1, 3\)"),
    ((1, 3, 1, 1), {'training': True}, r"more than 1 value per channel.*\(1, 3, 1, 1\)"),
    ((4, 3), {'running_mean': None}, r"running_mean and running_var are required when "
                                     r"training=False"),
])
def test_batch_norm_rejects_bad_arguments(shape, kwargs, message):
    args = {'running_mean': np.zeros(shape[1] if len(shape) > 1 else 1),
            'running_var': np.ones(shape[1] if len(shape) > 1 else 1)}
    args.update(kwargs)
    with pytest.raises(ValueError, match=f"batch_norm: .*{message}"):
        batch_norm(minidl.Tensor(np.zeros(shape)), **args)


def test_batch_norm_single_sample_is_fine_in_eval_mode(device):
    rm, rv = running_stats(3, seed=15)
    x = rand(1, 3, 1, 1, device=device)
    y = batch_norm(x, on(device, rm), on(device, rv))
    np.testing.assert_allclose(y.numpy().reshape(3), (x.numpy().reshape(3) - rm)
                               / np.sqrt(rv + 1e-5), rtol=1e-14)


assert PARITY_RTOL == 1e-9  # the parity tests above hold ours and PyTorch's to this


# ----------------------------------------------------------------------------- float16
def float16_and_float64(values, device, requires_grad=True):
    """The same numbers (representable in float16) as a float16 and a float64 leaf."""
    values = np.asarray(values, np.float16)
    return (minidl.tensor(values, requires_grad=requires_grad, device=device),
            minidl.tensor(values.astype(np.float64), requires_grad=requires_grad, device=device))


def assert_float16_close(half, double, rtol=2e-3):
    """A float16 result equals the float64 one up to float16's rounding (relative to the
    largest magnitude, so that values near 0 are judged on the scale of the result)."""
    assert half.dtype == np.float16 and half.device == double.device
    ours, exact = half.numpy().astype(np.float64), double.numpy()
    assert np.isfinite(ours).all() and np.abs(ours - exact).max() <= rtol * np.abs(exact).max()


def test_batch_norm_float16_with_std_300_matches_float64_in_training(device):
    rng = np.random.default_rng(16)
    x16, x64 = float16_and_float64(rng.standard_normal((8, 3, 4, 4)) * 300 + 50, device)
    w16, w64 = float16_and_float64([1.0, 2.0, 0.5], device)
    stats16 = [on(device, np.zeros(3, np.float16)), on(device, np.ones(3, np.float16))]
    stats64 = [on(device, np.zeros(3)), on(device, np.ones(3))]
    y16 = batch_norm(x16, *stats16, w16, training=True)
    y64 = batch_norm(x64, *stats64, w64, training=True)
    assert_float16_close(y16, y64)  # was all zeros: the squares overflowed float16
    for s16, s64 in zip(stats16, stats64):
        np.testing.assert_allclose(as_numpy(s16), as_numpy(s64), rtol=1e-3)
    g = rng.standard_normal(y64.shape)
    y16.backward(minidl.tensor(g.astype(np.float16), device=device))
    y64.backward(minidl.tensor(g, device=device))
    assert_float16_close(x16.grad, x64.grad, rtol=1e-2)
    assert_float16_close(w16.grad, w64.grad, rtol=1e-2)


def test_batch_norm_float16_eval_with_running_var_above_65504_matches_float64(device):
    x16, x64 = float16_and_float64(np.linspace(-900, 900, 24).reshape(4, 3, 2), device)
    rm, rv = np.array([10.0, -20.0, 0.0]), np.array([90000.0, 250000.0, 4.0])
    y16 = batch_norm(x16, on(device, rm.astype(np.float32)), on(device, rv.astype(np.float32)))
    assert_float16_close(y16, batch_norm(x64, on(device, rm), on(device, rv)))


def test_lrn_float16_of_large_inputs_matches_float64(device):
    values = np.random.default_rng(17).uniform(200, 1000, (2, 5, 3, 3)) * np.sign(
        np.random.default_rng(18).standard_normal((2, 5, 3, 3)))
    x16, x64 = float16_and_float64(values, device)
    y16, y64 = local_response_norm(x16, 3, 1e-4), local_response_norm(x64, 3, 1e-4)
    assert_float16_close(y16, y64)  # |x| >= 256 gave 0: x^2 overflowed float16
    y16.sum().backward()
    y64.sum().backward()
    assert_float16_close(x16.grad, x64.grad, rtol=1e-2)
