"""Shared test helpers: the devices, float64 random tensors on a device and the optional
PyTorch oracle (which always runs on the CPU)."""
import numpy as np
import pytest

import minidl
from minidl import backend

try:
    import torch
except ImportError:  # PyTorch is only a test oracle; its tests skip without it
    torch = None

requires_torch = pytest.mark.skipif(torch is None, reason="PyTorch (optional oracle) not installed")

PARITY_RTOL = 1e-9  # float64 parity with PyTorch: max|ours - theirs| / max|theirs|, any device
# float32 on the GPU (other summation orders than on the CPU): the former tests/gpu module's
# rtol, here relative to the largest magnitude as in assert_parity
GPU_FLOAT32_RTOL = 1e-4

NO_GPU = "device 'cuda' needs CuPy and a visible CUDA GPU (minidl.cuda.is_available() is False)"
CUDA = pytest.param('cuda', id='cuda',
                    marks=[pytest.mark.gpu,
                           pytest.mark.skipif(not minidl.cuda.is_available(), reason=NO_GPU)])
# the params of the ``device`` fixture (tests/conftest.py); a test that means the GPU alone
# says @pytest.mark.parametrize('device', [CUDA])
DEVICES = [pytest.param('cpu', id='cpu'), CUDA]


def on(device, array):
    """``array`` (a NumPy array or anything np.asarray takes) on ``device``: integer targets,
    running statistics and other plain arrays an op takes beside its Tensors."""
    if not backend.is_array(array):
        array = np.asarray(array)
    return backend.to_device(array, device)


def as_numpy(x):
    """A NumPy copy of a minidl Tensor, a NumPy or CuPy array, or a torch tensor."""
    if isinstance(x, minidl.Tensor):
        return x.numpy()
    if torch is not None and isinstance(x, torch.Tensor):
        return x.detach().numpy()
    return backend.to_numpy(x) if backend.is_array(x) else np.asarray(x)


def device_of(x):
    """'cpu' or 'cuda': where a minidl Tensor or a NumPy/CuPy array lives."""
    return x.device if isinstance(x, minidl.Tensor) else backend.device_of(x)


def rand(*shape, seed=0, requires_grad=True, low=None, device='cpu'):
    """A float64 leaf Tensor on ``device`` of standard normal values (or uniform in
    [low, low+1)); the same values on every device for the same seed."""
    rng = np.random.default_rng(seed)
    data = rng.standard_normal(shape) if low is None else low + rng.random(shape)
    return minidl.tensor(data, requires_grad=requires_grad, device=device)


def to_torch(t, requires_grad=None):
    """A float64 torch leaf (on the CPU) with the same values as minidl Tensor/array ``t``."""
    rg = (t.requires_grad if isinstance(t, minidl.Tensor) else False) \
        if requires_grad is None else requires_grad
    return torch.tensor(as_numpy(t), requires_grad=rg)


def relative_error(ours, theirs):
    ours, theirs = as_numpy(ours), as_numpy(theirs)
    assert ours.shape == theirs.shape, f"shape {ours.shape} != {theirs.shape}"
    scale = np.abs(theirs).max() if theirs.size else 0.0
    return float(np.abs(ours - theirs).max() / max(scale, 1e-300)) if theirs.size else 0.0


def assert_parity(ours, theirs, rtol=PARITY_RTOL):
    err = relative_error(ours, theirs)
    assert err < rtol, f"relative error {err:.3g} >= {rtol:g}"


def check_torch_parity(our_fn, torch_fn, inputs, rtol=PARITY_RTOL, seed=1):
    """Forward and gradients of ``our_fn(*inputs)`` vs ``torch_fn(*torch inputs)``.

    ``inputs`` are minidl Tensors (float64), all on one device; PyTorch runs on the CPU.
    The same random upstream gradient is used. The output and every gradient must be on
    the inputs' device, in the dtype of their tensor.
    """
    devices = {x.device for x in inputs}
    assert len(devices) == 1, f"inputs on several devices: {sorted(devices)}"
    device, = devices
    t_inputs = [to_torch(x) for x in inputs]
    ours = our_fn(*inputs)
    theirs = torch_fn(*t_inputs)
    assert ours.device == device, f"output on {ours.device}, inputs on {device}"
    assert str(ours.dtype) == str(theirs.dtype).replace('torch.', ''), \
        f"output dtype {ours.dtype}, PyTorch's {theirs.dtype}"
    assert_parity(ours, theirs, rtol)
    g = np.random.default_rng(seed).standard_normal(ours.shape)
    ours.backward(minidl.tensor(g, device=device))
    theirs.backward(torch.tensor(g))
    for x, tx in zip(inputs, t_inputs):
        if x.requires_grad:
            assert x.grad.device == device, f"gradient on {x.grad.device}, input on {device}"
            assert x.grad.dtype == x.dtype, f"gradient {x.grad.dtype}, input {x.dtype}"
            assert_parity(x.grad, tx.grad, rtol)


def winograd_tilings_and_gradients(make_model, monkeypatch, shape=(2, 3, 32, 32)):
    """{tile: (the m of every Winograd convolution run, [x.grad] + the trainable
    parameters' gradients)} for one backward of model(x).sum(), x float32 random, the
    model ``make_model(tile)`` built from seed 0, for tile 4, 2 and 0 (im2col). Checks that
    the Winograd tiles' gradients agree with im2col's up to float32 Winograd rounding."""
    from minidl.kernels import winograd
    used = []
    monkeypatch.setattr(winograd, 'conv2d', lambda *a, f=winograd.conv2d, **k:
                        used.append(k['tiling'].m) or f(*a, **k))
    x = np.random.default_rng(1).standard_normal(shape, np.float32)
    results = {}
    for tile in (4, 2, 0):
        used.clear()
        minidl.manual_seed(0)
        model = make_model(tile)
        X = minidl.tensor(x, requires_grad=True)
        model(X).sum().backward()
        results[tile] = (list(used), [X.grad.data] + [p.grad.data for p in model.parameters()
                                                      if p.requires_grad])
    for tile in (4, 2):
        for a, e in zip(results[tile][1], results[0][1]):
            np.testing.assert_allclose(a, e, rtol=2e-3, atol=2e-4 * np.abs(e).max())
    return results
