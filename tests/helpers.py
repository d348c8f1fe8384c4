"""Shared test helpers: float64 random tensors and the optional PyTorch oracle."""
import numpy as np
import pytest

import minidl

try:
    import torch
except ImportError:  # PyTorch is only a test oracle; its tests skip without it
    torch = None

requires_torch = pytest.mark.skipif(torch is None, reason="PyTorch (optional oracle) not installed")

PARITY_RTOL = 1e-9  # float64 parity with PyTorch: max|ours - theirs| / max|theirs|


def rand(*shape, seed=0, requires_grad=True, low=None):
    """A float64 leaf Tensor of standard normal values (or uniform in [low, low+1))."""
    rng = np.random.default_rng(seed)
    data = rng.standard_normal(shape) if low is None else low + rng.random(shape)
    return minidl.Tensor(data, requires_grad=requires_grad)


def to_torch(t, requires_grad=None):
    """A float64 torch leaf with the same values as minidl Tensor/array ``t``."""
    data = t.numpy() if isinstance(t, minidl.Tensor) else np.asarray(t)
    rg = (t.requires_grad if isinstance(t, minidl.Tensor) else False) \
        if requires_grad is None else requires_grad
    return torch.tensor(data, requires_grad=rg)


def relative_error(ours, theirs):
    ours = ours.numpy() if isinstance(ours, minidl.Tensor) else np.asarray(ours)
    theirs = theirs.detach().numpy() if torch is not None and isinstance(theirs, torch.Tensor) \
        else np.asarray(theirs)
    assert ours.shape == theirs.shape, f"shape {ours.shape} != {theirs.shape}"
    scale = np.abs(theirs).max() if theirs.size else 0.0
    return float(np.abs(ours - theirs).max() / max(scale, 1e-300)) if theirs.size else 0.0


def assert_parity(ours, theirs, rtol=PARITY_RTOL):
    err = relative_error(ours, theirs)
    assert err < rtol, f"relative error {err:.3g} >= {rtol:g}"


def check_torch_parity(our_fn, torch_fn, inputs, rtol=PARITY_RTOL, seed=1):
    """Forward and gradients of ``our_fn(*inputs)`` vs ``torch_fn(*torch inputs)``.

    ``inputs`` are minidl Tensors (float64); the same random upstream gradient is used.
    """
    t_inputs = [to_torch(x) for x in inputs]
    ours = our_fn(*inputs)
    theirs = torch_fn(*t_inputs)
    assert_parity(ours, theirs, rtol)
    g = np.random.default_rng(seed).standard_normal(ours.shape)
    ours.backward(minidl.Tensor(g))
    theirs.backward(torch.tensor(g))
    for x, tx in zip(inputs, t_inputs):
        if x.requires_grad:
            assert_parity(x.grad, tx.grad, rtol)
