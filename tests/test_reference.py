"""minidl.functional.reference: the readable ops compute what the fast ones compute.

For every option of the seven ops, fast (minidl.functional) and reference agree in float64
on random inputs, to 1e-10 relative, in the value and in the gradient of every input for the
same random upstream gradient (and batch_norm updates the running statistics the same way).
The reference is itself right (finite differences), is built from the generic ops of
math.py alone, has the fast ops' signatures, and a subtly wrong reference fails the checks.
"""
import inspect
import itertools

import numpy as np
import pytest

import minidl
import minidl.functional as F
from minidl.functional import reference as R
from helpers import rand, relative_error as _relative_error

RTOL = 1e-10
NAMES = ['conv2d', 'max_pool2d', 'avg_pool2d', 'local_response_norm', 'batch_norm',
         'softmax_cross_entropy', 'linear']


def relative_error(a, b):
    """max |a - b| / max |b| of two Tensors or arrays."""
    a, b = (t.numpy() if isinstance(t, minidl.Tensor) else np.asarray(t) for t in (a, b))
    return _relative_error(a, b)


def _copy(a):
    if isinstance(a, minidl.Tensor):
        return minidl.Tensor(a.data.copy(), requires_grad=a.requires_grad)
    return a.copy() if isinstance(a, np.ndarray) else a


def assert_agree(fast, ref, inputs, seed=99, **options):
    """fast(*inputs, **options) and ref(...) agree in value and in every input gradient.

    Each op gets its own copies of the inputs (Tensors and arrays), and the same random
    upstream gradient is backpropagated through both. Arrays that an op changes in place
    (running statistics) must end up equal too. Returns the two lists of inputs.
    """
    runs = []
    for op in (fast, ref):
        xs = [_copy(a) for a in inputs]
        y = op(*xs, **options)
        y.backward(minidl.Tensor(np.asarray(np.random.default_rng(seed).standard_normal(y.shape))))
        runs.append((y, xs))
    (y_fast, xs_fast), (y_ref, xs_ref) = runs
    err = relative_error(y_ref, y_fast)
    assert err < RTOL, f"value: relative error {err:.3g}"
    for k, (a, b) in enumerate(zip(xs_ref, xs_fast)):
        if isinstance(a, minidl.Tensor) and a.requires_grad:
            assert a.grad is not None and b.grad is not None, f"input {k}: no gradient"
            err = relative_error(a.grad, b.grad)
            assert err < RTOL, f"gradient of input {k}: relative error {err:.3g}"
        elif isinstance(a, np.ndarray):
            err = relative_error(a, b)
            assert err < RTOL, f"array input {k} after the call: relative error {err:.3g}"
    return xs_fast, xs_ref


def agree(name, inputs, **options):
    return assert_agree(getattr(F, name), getattr(R, name), inputs, **options)


# ----------------------------------------------------------------------------- conv2d
# (x shape, weight shape, bias?, options); weight is (OC, C/groups, KH, KW)
CONV = {
    'basic': ((2, 3, 5, 5), (4, 3, 3, 3), True, {}),
    'no_bias': ((2, 3, 5, 4), (2, 3, 3, 3), False, {}),
    'kernel_1x1': ((2, 3, 4, 4), (5, 3, 1, 1), True, {}),
    'kernel_covers_input': ((1, 2, 3, 4), (3, 2, 3, 4), True, {}),
    'non_square_kernel': ((1, 2, 5, 6), (3, 2, 2, 3), True, {}),
    'stride2': ((2, 2, 6, 6), (3, 2, 3, 3), True, dict(stride=2)),
    'stride_2_1': ((1, 2, 6, 5), (3, 2, 2, 3), True, dict(stride=(2, 1))),
    'padding1': ((1, 2, 4, 4), (3, 2, 3, 3), True, dict(padding=1)),
    'padding_1_2_stride2': ((2, 2, 4, 5), (2, 2, 3, 2), True, dict(padding=(1, 2), stride=2)),
    'dilation2': ((1, 2, 7, 6), (2, 2, 3, 2), True, dict(dilation=2)),
    'dilation_2_1_padding_1_0': ((2, 2, 6, 5), (2, 2, 2, 3), False,
                                 dict(dilation=(2, 1), padding=(1, 0))),
    'groups2': ((2, 4, 5, 4), (6, 2, 3, 2), True, dict(groups=2, padding=1)),
    'groups2_stride_2_1_dilation2': ((1, 4, 7, 6), (4, 2, 2, 2), False,
                                     dict(groups=2, stride=(2, 1), dilation=2)),
    'depthwise': ((2, 3, 5, 5), (3, 1, 3, 3), True, dict(groups=3, padding=1)),
    'depthwise_multiplier2': ((1, 3, 6, 5), (6, 1, 3, 2), True,
                              dict(groups=3, stride=2, padding=(1, 2))),
    'same_odd_kernel': ((1, 2, 5, 5), (3, 2, 3, 3), True, dict(padding='same')),
    'same_even_kernel_dilation_3_1': ((1, 4, 6, 5), (4, 2, 2, 3), True,
                                      dict(padding='same', dilation=(3, 1), groups=2)),
    'valid': ((1, 2, 5, 6), (3, 2, 3, 2), False, dict(padding='valid', stride=2)),
    'unbatched': ((3, 5, 4), (4, 3, 3, 2), True, dict(padding=1, stride=(2, 1))),
    'unbatched_same_even_kernel': ((2, 4, 5), (3, 2, 2, 2), False, dict(padding='same')),
}


def _conv_inputs(x_shape, w_shape, bias, seed=0):
    tensors = [rand(*x_shape, seed=seed), rand(*w_shape, seed=seed + 1)]
    return tensors + [rand(w_shape[0], seed=seed + 2) if bias else None]


@pytest.mark.parametrize('name', sorted(CONV))
def test_conv2d(name):
    x_shape, w_shape, bias, options = CONV[name]
    agree('conv2d', _conv_inputs(x_shape, w_shape, bias), **options)


@pytest.mark.parametrize('stride, padding, dilation, groups', list(itertools.product(
    [1, 2, (2, 1)], [0, (1, 2)], [1, 2, (1, 2)], [1, 2, 4])))
def test_conv2d_option_grid(stride, padding, dilation, groups):
    # C = 4, so groups = 4 is depthwise; a 3 x 2 kernel on 6 x 7 rarely tiles the input
    agree('conv2d', _conv_inputs((2, 4, 6, 7), (4, 4 // groups, 3, 2), groups != 2, seed=3),
          stride=stride, padding=padding, dilation=dilation, groups=groups)


# ----------------------------------------------------------------------------- pooling
# (input shape, kernel_size, stride, padding, ceil_mode)
MAX_POOL = [
    ((2, 3, 6, 6), 2, None, 0, False),              # 2x2/2, stride defaults to the kernel
    ((1, 2, 7, 7), 3, 2, 0, False),                 # overlapping 3x3 stride 2 (AlexNet)
    ((2, 2, 8, 8), 3, 2, 1, False),                 # overlapping, with padding
    ((1, 2, 6, 6), 3, 2, 1, True),                  # ceil_mode adds a row/column of windows
    ((1, 2, 8, 8), 3, 2, 0, True),                  # ceil_mode, a window overhangs
    ((1, 2, 5, 5), 2, 2, 1, True),                  # ceil_mode, last window would start in padding
    ((2, 1, 5, 8), (2, 3), (1, 2), (1, 0), False),  # non-square everything
    ((1, 2, 6, 9), (3, 2), (2, 3), (1, 1), True),   # non-square, ceil_mode
    ((1, 2, 7, 7), 2, 3, 0, False),                 # stride > kernel: pixels no window reads
    ((1, 3, 4, 5), 1, 1, 0, False),                 # 1x1: the identity
    ((2, 2, 3, 4), 4, 2, 0, True),                  # ceil_mode, kernel overhangs the input
]

# (input shape, kernel_size, stride, padding)
AVG_POOL = [
    ((2, 3, 6, 6), 2, None, 0),
    ((1, 2, 7, 7), 3, 2, 0),
    ((2, 2, 7, 7), 3, 2, 1),
    ((2, 1, 5, 8), (2, 3), (1, 2), (1, 1)),
    ((1, 2, 7, 7), 2, 3, 0),
    ((1, 2, 5, 5), 3, 1, 1),
    ((1, 2, 6, 5), (3, 2), (2, 1), (1, 0)),
]


@pytest.mark.parametrize('shape, kernel, stride, padding, ceil', MAX_POOL)
def test_max_pool2d(shape, kernel, stride, padding, ceil):
    agree('max_pool2d', [rand(*shape, seed=4)], kernel_size=kernel, stride=stride,
          padding=padding, ceil_mode=ceil)


@pytest.mark.parametrize('shape, kernel, stride, padding', AVG_POOL)
def test_avg_pool2d(shape, kernel, stride, padding):
    agree('avg_pool2d', [rand(*shape, seed=5)], kernel_size=kernel, stride=stride,
          padding=padding)


# (input shape, kernel_size, stride, padding, dilation, ceil_mode)
MAX_POOL_DILATED = [
    ((1, 2, 7, 7), 2, 1, 0, 2, False),
    ((2, 1, 8, 7), 3, 2, 1, 2, True),
    ((1, 2, 7, 8), (2, 3), (2, 1), (1, 0), (3, 1), True),
    ((2, 7, 6), 3, 2, 1, 1, False),                     # unbatched (C, H, W)
]


@pytest.mark.parametrize('shape, kernel, stride, padding, dilation, ceil', MAX_POOL_DILATED)
def test_max_pool2d_dilation_and_indices(shape, kernel, stride, padding, dilation, ceil):
    x = rand(*shape, seed=4)
    options = dict(kernel_size=kernel, stride=stride, padding=padding, dilation=dilation,
                   ceil_mode=ceil)
    agree('max_pool2d', [x], **options)
    (_, fast), (_, ref) = F.max_pool2d(x, **options, return_indices=True), \
        R.max_pool2d(x, **options, return_indices=True)
    assert fast.dtype == ref.dtype == np.int64
    np.testing.assert_array_equal(fast.numpy(), ref.numpy())


# (input shape, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)
AVG_POOL_OPTIONS = [
    ((1, 2, 6, 6), 3, 2, 1, True, True, None),
    ((1, 2, 6, 6), 3, 2, 1, True, False, None),
    ((2, 1, 5, 7), (3, 2), (2, 1), (1, 1), False, False, None),
    ((2, 2, 3, 4), 4, 2, 0, True, True, None),
    ((1, 2, 5, 6), 3, 2, 1, False, True, 4),
    ((2, 6, 5), 3, 2, 1, True, False, None),            # unbatched (C, H, W)
]


@pytest.mark.parametrize('shape, kernel, stride, padding, ceil, include, divisor',
                         AVG_POOL_OPTIONS)
def test_avg_pool2d_options(shape, kernel, stride, padding, ceil, include, divisor):
    agree('avg_pool2d', [rand(*shape, seed=5)], kernel_size=kernel, stride=stride,
          padding=padding, ceil_mode=ceil, count_include_pad=include,
          divisor_override=divisor)


def test_pooling_defaults():
    agree('max_pool2d', [rand(1, 2, 5, 5, seed=6)], kernel_size=2)
    agree('avg_pool2d', [rand(1, 2, 5, 5, seed=6)], kernel_size=(2, 3))


# ----------------------------------------------------------------------------- LRN
# (input shape, size, alpha, beta, k): large alpha so that the window matters
LRN = [
    ((2, 6, 3, 3), 5, 0.5, 0.75, 2.0),   # odd size: 2 channels on each side
    ((2, 6, 3, 3), 4, 0.5, 0.75, 2.0),   # even size: 2 before, 1 after
    ((1, 5, 2, 3), 2, 1.0, 0.5, 1.0),    # even size: 1 before, 0 after
    ((1, 5, 2, 3), 3, 0.3, 1.5, 0.5),
    ((1, 3, 3, 2), 8, 0.5, 0.75, 2.0),   # size larger than C: every window clipped
    ((1, 3, 3, 2), 7, 0.5, 0.75, 2.0),
    ((1, 4, 2, 2), 1, 0.5, 0.75, 2.0),   # size 1: each channel by itself
    ((1, 1, 3, 3), 3, 0.5, 0.75, 2.0),   # a single channel
    ((2, 5, 3), 4, 0.5, 0.75, 2.0),      # 3-D: (N, C, L), as torch reads it
]


@pytest.mark.parametrize('shape, size, alpha, beta, k', LRN)
def test_local_response_norm(shape, size, alpha, beta, k):
    agree('local_response_norm', [rand(*shape, seed=7)], size=size, alpha=alpha, beta=beta,
          k=k)


def test_local_response_norm_defaults():
    agree('local_response_norm', [rand(2, 7, 3, 3, seed=8) * 30])


# ----------------------------------------------------------------------------- batch norm
AFFINE = ['weight_and_bias', 'weight', 'bias', 'none']


def _bn_inputs(shape, affine, seed=9, stats=True):
    c = shape[1]
    rng = np.random.default_rng(seed)
    x = minidl.Tensor(3 * rng.standard_normal(shape) + 1, requires_grad=True)
    mean, var = (rng.standard_normal(c), 0.5 + rng.random(c)) if stats else (None, None)
    weight = rand(c, seed=seed + 1) if 'weight' in affine else None
    bias = rand(c, seed=seed + 2) if 'bias' in affine else None
    return [x, mean, var, weight, bias]


@pytest.mark.parametrize('training', [True, False])
@pytest.mark.parametrize('affine', AFFINE)
@pytest.mark.parametrize('shape', [(6, 3), (4, 3, 5), (3, 2, 4, 5)])
def test_batch_norm(shape, affine, training):
    inputs = _bn_inputs(shape, affine)
    fast, ref = agree('batch_norm', inputs, training=training)
    for k in (1, 2):  # the running mean and var: updated identically (checked) in training
        assert np.array_equal(fast[k], inputs[k]) != training
        assert np.array_equal(ref[k], inputs[k]) != training


def test_batch_norm_momentum_eps_and_tensor_running_stats():
    x, mean, var, weight, bias = _bn_inputs((5, 3, 2, 2), 'weight_and_bias', seed=10)
    fast, ref = agree('batch_norm', [x, minidl.Tensor(mean), minidl.Tensor(var), weight, bias],
                      training=True, momentum=0.3, eps=1e-2)
    for k in (1, 2):
        assert relative_error(ref[k].data, fast[k].data) < RTOL
        assert not np.array_equal(ref[k].data, [mean, var][k - 1])


def test_batch_norm_training_without_running_stats():
    agree('batch_norm', _bn_inputs((4, 3, 2, 2), 'weight_and_bias', stats=False),
          training=True)


# ----------------------------------------------------------------------------- loss, linear
@pytest.mark.parametrize('reduction', ['mean', 'sum', 'none'])
@pytest.mark.parametrize('smoothing', [0.0, 0.1, 1.0])
def test_softmax_cross_entropy(smoothing, reduction):
    logits = rand(6, 5, seed=11) * 4
    target = np.random.default_rng(12).integers(0, 5, size=6)
    agree('softmax_cross_entropy', [logits, target], label_smoothing=smoothing,
          reduction=reduction)


CE_WEIGHT = np.array([0.5, 2.0, 1.0, 0.25, 3.0])
CE_PROBABILITIES = np.random.default_rng(17).dirichlet(np.ones(5), size=(2, 3)).transpose(0, 2, 1)
CE_OPTIONS = {  # (logits shape, target, options)
    'weight': ((6, 5), np.array([0, 4, 2, 2, 1, 3]), dict(weight=CE_WEIGHT)),
    'ignore_index': ((6, 5), np.array([0, -100, 2, 2, 1, -100]), dict(label_smoothing=0.1)),
    'weight_ignore_smoothing': ((6, 5), np.array([0, 4, 2, 2, 1, 3]),
                                dict(weight=CE_WEIGHT, ignore_index=2, label_smoothing=0.2)),
    'spatial': ((2, 5, 3, 2), np.array([[[0, 4], [2, -100], [1, 1]], [[3, 0], [4, 4], [2, 2]]]),
                dict(weight=CE_WEIGHT, label_smoothing=0.1)),
    'probabilities_spatial': ((2, 5, 3), CE_PROBABILITIES,
                              dict(weight=CE_WEIGHT, label_smoothing=0.3)),
}


@pytest.mark.parametrize('reduction', ['mean', 'sum', 'none'])
@pytest.mark.parametrize('name', sorted(CE_OPTIONS))
def test_softmax_cross_entropy_options(name, reduction):
    shape, target, options = CE_OPTIONS[name]
    agree('softmax_cross_entropy', [rand(*shape, seed=18), target], reduction=reduction,
          **options)


def test_softmax_cross_entropy_probability_target_tensor_gets_the_same_gradient():
    agree('softmax_cross_entropy', [rand(2, 5, 3, seed=19), rand(2, 5, 3, seed=20)],
          weight=CE_WEIGHT, label_smoothing=0.2)


def test_softmax_cross_entropy_default_and_tensor_target():
    target = minidl.Tensor(np.array([0, 3, 3, 1]))
    agree('softmax_cross_entropy', [rand(4, 4, seed=13), target])


@pytest.mark.parametrize('bias', [True, False])
@pytest.mark.parametrize('x_shape', [(4, 3), (2, 4, 3), (3,)])
def test_linear(x_shape, bias):
    agree('linear', [rand(*x_shape, seed=14), rand(5, 3, seed=15),
                     rand(5, seed=16) if bias else None])


# ----------------------------------------------------------------------------- the reference
GRADCHECK = {
    'conv2d': (lambda x, w, b: R.conv2d(x, w, b, stride=(2, 1), padding=1, groups=2),
               [rand(1, 4, 4, 3, seed=20), rand(4, 2, 2, 2, seed=21), rand(4, seed=22)]),
    'max_pool2d': (lambda x: R.max_pool2d(x, 3, 2, 1, ceil_mode=True), [rand(1, 2, 6, 6, seed=23)]),
    'local_response_norm': (lambda x: R.local_response_norm(x, 4, alpha=0.5),
                            [rand(1, 5, 2, 2, seed=24)]),
    'batch_norm': (lambda x, w, b: R.batch_norm(x, None, None, w, b, training=True),
                   [rand(2, 2, 2, 3, seed=25), rand(2, seed=26), rand(2, seed=27)]),
    'softmax_cross_entropy': (lambda x: R.softmax_cross_entropy(
        x, np.array([0, 2, -100, 2]), np.array([1.0, 2.0, 0.5]), label_smoothing=0.1,
        reduction='none'), [rand(4, 3, seed=28)]),
    'softmax_cross_entropy_probabilities': (lambda x, q: R.softmax_cross_entropy(
        x, q, np.array([1.0, 2.0, 0.5]), label_smoothing=0.1), [rand(2, 3, 2, seed=29),
                                                                rand(2, 3, 2, seed=31)]),
}


@pytest.mark.parametrize('name', sorted(GRADCHECK))
def test_the_reference_passes_gradcheck(name):
    fn, inputs = GRADCHECK[name]
    assert minidl.gradcheck(fn, inputs)


@pytest.mark.parametrize('name', ['local_response_norm', 'batch_norm'])
def test_the_reference_differentiates_twice_where_the_fused_op_does_not(name):
    # the fast LRN and training-mode batch norm have a fused backward that is not
    # differentiable again; a graph of Tensor ops always is
    fn, inputs = GRADCHECK[name]
    assert minidl.gradgradcheck(fn, inputs)


@pytest.mark.parametrize('name', NAMES)
def test_same_signature_as_the_fast_op(name):
    fast, ref = (list(inspect.signature(getattr(m, name)).parameters.values()) for m in (F, R))
    assert ref == fast


GENERIC = ('minidl.functional.math', 'minidl.functional.shape')
GRAPHS = {
    'conv2d': lambda: R.conv2d(rand(1, 4, 5, 5), rand(4, 2, 3, 3), rand(4), padding=1, groups=2),
    'max_pool2d': lambda: R.max_pool2d(rand(1, 2, 6, 6), 3, 2, 1, ceil_mode=True),
    'avg_pool2d': lambda: R.avg_pool2d(rand(1, 2, 6, 6), 3, 2, 1, ceil_mode=True,
                                       count_include_pad=False),
    'local_response_norm': lambda: R.local_response_norm(rand(1, 5, 2, 2)),
    'batch_norm': lambda: R.batch_norm(rand(4, 3), None, None, rand(3), rand(3), training=True),
    'softmax_cross_entropy': lambda: R.softmax_cross_entropy(rand(4, 3), np.array([0, 2, 1, 2]),
                                                             label_smoothing=0.1),
    'linear': lambda: R.linear(rand(2, 3), rand(4, 3), rand(4)),
}


@pytest.mark.parametrize('name', NAMES)
def test_the_reference_graph_uses_only_generic_tensor_ops(name):
    # arithmetic, reductions, matmul (math.py) and shape ops (shape.py): no fused Function
    stack, seen = [GRAPHS[name]().grad_fn], set()
    while stack:
        fn = stack.pop()
        if fn is None or id(fn) in seen:
            continue
        seen.add(id(fn))
        assert type(fn).__module__ in GENERIC, type(fn).__qualname__
        stack.extend(x.grad_fn for x in fn.inputs)
    assert seen


def test_a_subtly_wrong_reference_fails():
    # LRN with its window mirrored (size//2 channels after, (size-1)//2 before): the same
    # for odd sizes, off by one channel for even sizes, and the comparison sees it
    def mirrored(x, **options):
        return R.local_response_norm(x[:, ::-1], **options)[:, ::-1]

    x = rand(1, 5, 2, 2, seed=30)
    assert_agree(F.local_response_norm, mirrored, [x], size=3, alpha=0.5)
    with pytest.raises(AssertionError, match='relative error'):
        assert_agree(F.local_response_norm, mirrored, [x], size=4, alpha=0.5)
