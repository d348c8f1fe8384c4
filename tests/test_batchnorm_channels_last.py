"""Training-mode batch_norm on channels-last inputs (minidl/kernels/batchnorm.py).

A channels-last input gives the numbers of the same input in NCHW memory (output, running
statistics, dx, dweight, dbias), in float64, float32 and float16, with or without weight
and bias, whatever the layout of the upstream gradient; y and dx stay channels-last; an
input with H = W = 1 is NCHW and takes the NCHW path. The kernels sum over several
cache-sized blocks without float32 cancellation, give the same bits on 1 and 2 threads, and
the whole op matches PyTorch's torch.channels_last batch norm."""
import numpy as np
import pytest

import minidl
from minidl.functional import batch_norm
from minidl.kernels import batchnorm as BK
from minidl.kernels import layout

SHAPES = [(4, 6, 5, 3), (8, 16, 33, 33)]   # the second spans several blocks of rows
AFFINE = [(True, True), (True, False), (False, True), (False, False)]
AFFINE_IDS = ['weight+bias', 'weight', 'bias', 'plain']
RTOL = {np.float64: 1e-12, np.float32: 1e-5, np.float16: 2e-3}


def channels_last(a, requires_grad=True):
    """A leaf Tensor with a's values, its memory NHWC."""
    x = minidl.Tensor(np.ascontiguousarray(a.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2),
                      requires_grad=requires_grad)
    assert x.is_contiguous(memory_format='channels_last')
    return x


def assert_close(ours, theirs, dtype):
    ours, theirs = np.asarray(ours, np.float64), np.asarray(theirs, np.float64)
    assert np.abs(ours - theirs).max() <= RTOL[dtype] * np.abs(theirs).max()


def run(x, dtype, affine, gy, seed=0):
    """y, running mean and var, and the gradients of x, weight, bias (None if absent)."""
    rng = np.random.default_rng(seed)
    c = x.shape[1]
    params = [minidl.Tensor((rng.standard_normal(c) + 1).astype(dtype), requires_grad=True)
              if on else None for on in affine]
    rm, rv = rng.standard_normal(c).astype(dtype), (0.5 + rng.random(c)).astype(dtype)
    y = batch_norm(x, rm, rv, *params, training=True)
    y.backward(gy)
    return y, rm, rv, x.grad, *(None if p is None else p.grad for p in params)


@pytest.mark.parametrize('affine', AFFINE, ids=AFFINE_IDS)
@pytest.mark.parametrize('shape', SHAPES, ids=str)
@pytest.mark.parametrize('dtype', [np.float64, np.float32], ids=['float64', 'float32'])
@pytest.mark.parametrize('gy_layout', ['nchw', 'channels_last'])
def test_channels_last_gives_the_nchw_numbers_and_keeps_its_layout(dtype, shape, affine,
                                                                   gy_layout):
    rng = np.random.default_rng(1)
    a = (rng.standard_normal(shape) * 3 + 2).astype(dtype)
    g = rng.standard_normal(shape).astype(dtype)
    gy = channels_last(g, False) if gy_layout == 'channels_last' else minidl.Tensor(g)
    ours = run(channels_last(a), dtype, affine, gy)
    theirs = run(minidl.Tensor(a, requires_grad=True), dtype, affine, minidl.Tensor(g))
    for o, t in zip(ours, theirs):
        assert (o is None) == (t is None)
        if o is not None:
            assert o.dtype == dtype
            assert_close(o.numpy() if isinstance(o, minidl.Tensor) else o,
                         t.numpy() if isinstance(t, minidl.Tensor) else t, dtype)
    y, x_grad = ours[0], ours[3]
    assert layout.is_channels_last(y.data) and layout.is_channels_last(x_grad.data)


def test_channels_last_keeps_only_mean_and_inv_std_for_backward():
    a = np.random.default_rng(2).standard_normal((4, 6, 5, 3))
    y = batch_norm(channels_last(a), None, None, training=True)
    saved = [v for v in vars(y.grad_fn).values() if minidl.backend.is_array(v)]
    assert len(saved) == 2 and all(v.shape == (6,) for v in saved)
    np.testing.assert_allclose(y.grad_fn.mean, a.mean(axis=(0, 2, 3)), rtol=1e-13)
    np.testing.assert_allclose(y.grad_fn.inv_std, 1 / np.sqrt(a.var(axis=(0, 2, 3)) + 1e-5),
                               rtol=1e-13)


def test_one_pixel_images_are_nchw_and_take_the_nchw_path():
    a = np.random.default_rng(3).standard_normal((4, 6, 1, 1))
    x = minidl.Tensor(a, requires_grad=True).contiguous(memory_format='channels_last')
    assert not layout.is_channels_last(x.data) and x.data.flags.c_contiguous
    y = batch_norm(x, None, None, training=True)
    np.testing.assert_allclose(y.numpy(), (a - a.mean((0, 2, 3), keepdims=True))
                               / np.sqrt(a.var((0, 2, 3), keepdims=True) + 1e-5), rtol=1e-12)
    assert y.data.flags.c_contiguous


@pytest.mark.parametrize('affine', [(True, True), (False, False)], ids=['weight+bias', 'plain'])
def test_float16_is_computed_in_float32_and_rounded_once(affine):
    rng = np.random.default_rng(4)
    a = (rng.standard_normal((8, 6, 7, 5)) * 300 + 50).astype(np.float16)  # squares > 65504
    g = rng.standard_normal(a.shape).astype(np.float16)
    ours = run(channels_last(a), np.float16, affine, minidl.Tensor(g))
    theirs = run(minidl.Tensor(a, requires_grad=True), np.float16, affine, minidl.Tensor(g))
    for o, t in zip(ours, theirs):
        if o is not None:
            o, t = (v.numpy() if isinstance(v, minidl.Tensor) else v for v in (o, t))
            assert o.dtype == np.float16 and np.isfinite(o).all()
            assert_close(o, t, np.float16)


def test_the_kernels_sum_several_blocks_without_float32_cancellation():
    rng = np.random.default_rng(5)
    x2 = (1000 + rng.standard_normal((20000, 16))).astype(np.float32)  # E[x^2] - mean^2: 0
    assert len(x2) > 2 * BK.BLOCK_BYTES // x2[0].nbytes
    mean, var, inv_std = BK.channel_stats(x2, 1e-5)
    exact = x2.astype(np.float64)
    assert mean.dtype == var.dtype == inv_std.dtype == np.float32
    np.testing.assert_allclose(mean, exact.mean(axis=0), rtol=2e-6)  # a few ulps
    np.testing.assert_allclose(var, exact.var(axis=0), rtol=1e-5)
    gy2 = rng.standard_normal(x2.shape).astype(np.float32)
    s_gy, s_dot = BK.grad_sums(x2, gy2, mean)
    np.testing.assert_allclose(s_gy, gy2.astype(np.float64).sum(axis=0), rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(s_dot, (gy2 * (exact - mean)).sum(axis=0), rtol=1e-4, atol=1e-2)


def test_the_result_does_not_depend_on_the_thread_count():
    """The blocks and the order their sums are added in are fixed: the same bits."""
    rng = np.random.default_rng(6)
    a = rng.standard_normal((8, 16, 33, 33)).astype(np.float32)
    g = minidl.Tensor(rng.standard_normal(a.shape).astype(np.float32))
    before = minidl.get_num_threads()
    results = []
    try:
        for threads in (1, 2):
            minidl.set_num_threads(threads)
            results.append([v if isinstance(v, np.ndarray) else v.numpy()
                            for v in run(channels_last(a), np.float32, (True, True), g)])
    finally:
        minidl.set_num_threads(before)
    for one, two in zip(*results):
        np.testing.assert_array_equal(one, two)


@pytest.mark.parametrize('affine', [(True, True), (False, False)], ids=['weight+bias', 'plain'])
def test_matches_torch_channels_last(affine):
    torch = pytest.importorskip('torch')
    rng = np.random.default_rng(7)
    a, g = rng.standard_normal((4, 6, 5, 3)) * 2 + 1, rng.standard_normal((4, 6, 5, 3))
    ours = run(channels_last(a), np.float64, affine, minidl.Tensor(g))
    tx = torch.tensor(a).to(memory_format=torch.channels_last).requires_grad_()
    rng = np.random.default_rng(0)   # the parameters and running stats of run()
    params = [torch.tensor(rng.standard_normal(6) + 1, requires_grad=True) if on else None
              for on in affine]
    rm, rv = torch.tensor(rng.standard_normal(6)), torch.tensor(0.5 + rng.random(6))
    ty = torch.nn.functional.batch_norm(tx, rm, rv, *params, training=True)
    assert ty.is_contiguous(memory_format=torch.channels_last)
    ty.backward(torch.tensor(g))
    theirs = (ty, rm, rv, tx.grad, *(None if p is None else p.grad for p in params))
    for o, t in zip(ours, theirs):
        if o is not None:
            assert_close(o.numpy() if isinstance(o, minidl.Tensor) else o,
                         t.detach().numpy(), np.float64)
