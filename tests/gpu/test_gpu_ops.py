"""Every op on the GPU (CuPy) equals the CPU (NumPy) result, forward and gradients.

Skipped cleanly where CuPy or a CUDA GPU is absent (CI has none). Run on a GPU machine with
``python -m pytest tests/gpu -q``. Tolerance: float32 arithmetic on both devices.
"""
import numpy as np
import pytest

import minidl
import minidl.functional as F

cupy = pytest.importorskip('cupy')
pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not minidl.cuda.is_available(), reason='no CUDA GPU visible')]

RTOL, ATOL = 1e-4, 1e-5
TARGET = np.array([1, 0, 3, 2])

# name: (fn of tensors, input shapes, positive inputs?)
CASES = {
    'add_broadcast': (lambda a, b: a + b, [(2, 3, 4), (3, 1)], False),
    'sub_mul_div': (lambda a, b: (a - b) * a / b, [(3, 4), (3, 4)], True),
    'pow_scalar_tensor': (lambda a, b: a ** 2 + a ** b, [(3, 4), (3, 4)], True),
    'exp_log_sqrt': (lambda a: F.exp(a) + F.log(a) + F.sqrt(a), [(3, 4)], True),
    'matmul_batched': (F.matmul, [(2, 3, 4), (4, 5)], False),
    'linear': (F.linear, [(4, 6), (3, 6), (3,)], False),
    'reductions': (lambda a: a.sum(axis=1) + a.mean(axis=1) + a.max(axis=1), [(3, 5)], False),
    'reshape_transpose': (lambda a: a.reshape(4, -1).T * 2, [(2, 3, 4)], False),
    'getitem_repeats': (lambda a: a[np.array([0, 2, 0])] * 3, [(3, 4)], False),
    'concat_pad_flatten': (lambda a, b: F.flatten(F.pad(F.concat([a, b], 1), (1, 1, 2, 0))),
                           [(2, 2, 3, 3), (2, 1, 3, 3)], False),
    'activations': (lambda a: F.relu(a) + F.tanh(a) + F.sigmoid(a), [(3, 4)], False),
    'softmax_log_softmax': (lambda a: F.softmax(a, axis=1) * F.log_softmax(a, axis=0),
                            [(3, 4)], False),
    'conv2d': (lambda x, w, b: F.conv2d(x, w, b, stride=2, padding=1),
               [(2, 4, 9, 9), (6, 4, 3, 3), (6,)], False),
    'conv2d_groups_dilation': (lambda x, w: F.conv2d(x, w, padding=2, dilation=2, groups=2),
                               [(2, 4, 8, 8), (6, 2, 3, 3)], False),
    'max_pool2d_overlapping': (lambda x: F.max_pool2d(x, 3, 2), [(2, 3, 9, 9)], False),
    'max_pool2d_ceil_pad': (lambda x: F.max_pool2d(x, 3, 2, padding=1, ceil_mode=True),
                            [(2, 3, 8, 8)], False),
    'avg_pool2d': (lambda x: F.avg_pool2d(x, 2, padding=1), [(2, 3, 7, 7)], False),
    'lrn_odd': (lambda x: F.local_response_norm(x, 5, 1e-2, 0.75, 2.0), [(2, 7, 4, 4)], False),
    'lrn_even': (lambda x: F.local_response_norm(x, 4, 1e-2, 0.75, 1.0), [(2, 6, 3, 3)], False),
    'batch_norm_train_4d': (lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True),
                            [(4, 3, 5, 5), (3,), (3,)], False),
    'batch_norm_eval_2d': (lambda x, w, b: F.batch_norm(
        x, _like(x, [0.1, -0.2, 0.3]), _like(x, [2.0, 0.5, 1.0]), w, b, training=False),
        [(4, 3), (3,), (3,)], False),
    'softmax_cross_entropy': (lambda x: F.softmax_cross_entropy(
        x, _target_like(x), label_smoothing=0.1), [(4, 5)], False),
}


def _target_like(x):
    return cupy.asarray(TARGET) if x.device == 'cuda' else TARGET


def _like(x, values):
    """A float32 array of ``values`` on x's device (running statistics)."""
    array = np.array(values, np.float32)
    return cupy.asarray(array) if x.device == 'cuda' else array


def _arrays(shapes, positive):
    rng = np.random.default_rng(0)
    return [(rng.random(s) + 0.5 if positive else rng.standard_normal(s)).astype(np.float32)
            for s in shapes]


def _run(fn, arrays, device):
    xs = [minidl.tensor(a, requires_grad=True, device=device) for a in arrays]
    y = fn(*xs)
    g = np.random.default_rng(1).standard_normal(y.shape).astype(np.float32)
    y.backward(minidl.tensor(g, device=device))
    return y, xs


@pytest.mark.parametrize('name', sorted(CASES))
def test_gpu_matches_cpu(name):
    fn, shapes, positive = CASES[name]
    arrays = _arrays(shapes, positive)
    y_cpu, x_cpu = _run(fn, arrays, 'cpu')
    y_gpu, x_gpu = _run(fn, arrays, 'cuda')
    assert y_gpu.device == 'cuda' and isinstance(y_gpu.data, cupy.ndarray)
    assert y_gpu.dtype == np.float32
    np.testing.assert_allclose(y_gpu.numpy(), y_cpu.numpy(), rtol=RTOL, atol=ATOL)
    for a, b in zip(x_gpu, x_cpu):
        assert a.grad.device == 'cuda'
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=RTOL, atol=ATOL)


def test_gradcheck_runs_on_the_gpu_in_float64():
    x = minidl.tensor(np.random.default_rng(0).standard_normal((2, 2, 5, 5)),
                      requires_grad=True, device='cuda')
    w = minidl.tensor(np.random.default_rng(1).standard_normal((3, 2, 3, 3)),
                      requires_grad=True, device='cuda')
    assert minidl.gradcheck(lambda a, b: F.max_pool2d(F.conv2d(a, b, padding=1), 2), [x, w])


def test_running_stats_are_updated_in_place_on_the_gpu():
    x = minidl.tensor(np.random.default_rng(0).standard_normal((8, 3)), device='cuda')
    mean, var = cupy.zeros(3), cupy.ones(3)
    F.batch_norm(x, mean, var, training=True)
    np.testing.assert_allclose(cupy.asnumpy(mean), 0.1 * x.numpy().mean(0), rtol=1e-6)


def test_dropout_on_the_gpu_is_inverted_and_reproducible():
    x = minidl.tensor(np.ones((256, 256), np.float32), requires_grad=True, device='cuda')
    minidl.manual_seed(3)
    y = F.dropout(x, 0.25)
    minidl.manual_seed(3)
    y2 = F.dropout(x, 0.25)
    values = y.numpy()
    assert set(np.unique(values)) <= {0.0, np.float32(1 / 0.75)}
    assert abs((values == 0).mean() - 0.25) < 0.01
    np.testing.assert_array_equal(values, y2.numpy())
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), values)


def test_to_moves_data_and_gradients_flow_back():
    x = minidl.tensor(np.arange(3.0), requires_grad=True)
    y = (x.to('cuda') * 2).to('cpu').sum()
    y.backward()
    assert x.grad.device == 'cpu'
    np.testing.assert_array_equal(x.grad.numpy(), [2, 2, 2])


def test_mixing_devices_is_an_error():
    a = minidl.tensor(np.ones(2))
    b = minidl.tensor(np.ones(2), device='cuda')
    with pytest.raises(ValueError, match="one device.*cpu.*cuda"):
        a + b
