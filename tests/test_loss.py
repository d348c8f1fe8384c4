"""softmax_cross_entropy: gradients, PyTorch parity, values and stability on every device;
bad input."""
import numpy as np
import pytest

import minidl
import minidl.functional as F
from helpers import CUDA, check_torch_parity, on, rand, requires_torch, torch

TARGET = np.array([0, 4, 2, 2, 1, 3])
OPTIONS = [(s, r) for s in (0.0, 0.1, 0.5) for r in ('mean', 'sum', 'none')]


def _loss(smoothing, reduction, target=TARGET):
    return lambda x: F.softmax_cross_entropy(x, target, smoothing, reduction)


@pytest.mark.parametrize('smoothing, reduction', OPTIONS)
def test_gradcheck(smoothing, reduction, device):
    assert minidl.gradcheck(_loss(smoothing, reduction, on(device, TARGET)),
                            [rand(6, 5, device=device)])


@pytest.mark.parametrize('smoothing, reduction', OPTIONS)
def test_gradgradcheck(smoothing, reduction, device):
    assert minidl.gradgradcheck(_loss(smoothing, reduction, on(device, TARGET)),
                                [rand(6, 5, device=device)])


@requires_torch
@pytest.mark.parametrize('smoothing, reduction', OPTIONS)
def test_parity_with_torch_cross_entropy(smoothing, reduction, device):
    def theirs(x):
        return torch.nn.functional.cross_entropy(x, torch.tensor(TARGET),
                                                 label_smoothing=smoothing, reduction=reduction)
    check_torch_parity(_loss(smoothing, reduction, on(device, TARGET)), theirs,
                       [rand(6, 5, seed=3, device=device)])


def test_integer_tensor_target_and_cross_entropy_alias(device):
    x = rand(6, 5, device=device)
    a = F.softmax_cross_entropy(x, minidl.tensor(TARGET.astype(np.int32), device=device))
    b = F.cross_entropy(x, on(device, TARGET))
    assert a.item() == b.item()


def test_loss_equals_negative_log_softmax_at_the_target(device):
    x = rand(6, 5, device=device)
    expected = -F.log_softmax(x).numpy()[np.arange(6), TARGET].mean()
    assert abs(F.softmax_cross_entropy(x, on(device, TARGET)).item() - expected) < 1e-12


def test_huge_logits_give_finite_loss_and_gradient(device):
    x = minidl.tensor(np.array([[1e30, -1e30, 0.0], [1e4, 0.0, -1e4]], np.float32),
                      requires_grad=True, device=device)
    loss = F.softmax_cross_entropy(x, on(device, [1, 2]))
    loss.backward()
    assert np.isfinite(loss.item()) and np.isfinite(x.grad.numpy()).all()


def test_float32_logits_with_int64_labels_stay_float32_on_the_device(device):
    x = minidl.tensor(np.zeros((4, 3), np.float32), requires_grad=True, device=device)
    loss = F.softmax_cross_entropy(x, on(device, np.array([0, 1, 2, 0], np.int64)))
    loss.backward()
    assert loss.dtype == np.float32 and x.grad.dtype == np.float32
    assert loss.device == x.grad.device == device


@pytest.mark.parametrize('device', [CUDA])
def test_target_on_another_device_than_the_logits_is_an_error(device):
    with pytest.raises(ValueError,
                       match="softmax_cross_entropy: logits are on cuda, target on cpu"):
        F.softmax_cross_entropy(rand(6, 5, device=device), TARGET)


@pytest.mark.parametrize('logits, target, kwargs, error, pattern', [
    ((6, 5), np.array([0, 5, 1, 1, 1, 1]), {}, ValueError, r"\[0, 5\).*\(6, 5\).*max 5"),
    ((6, 5), np.array([0, -1, 1, 1, 1, 1]), {}, ValueError, r"\[0, 5\).*min -1"),
    ((6, 5), np.zeros(6), {}, TypeError, r"integer class indices.*float64"),
    ((6, 5), np.zeros(4, np.int64), {}, ValueError, r"target shape \(4,\).*\(6,\)"),
    ((6,), np.zeros(6, np.int64), {}, ValueError, r"logits must be \(N, C\).*\(6,\)"),
    ((6, 5), TARGET, {'reduction': 'avg'}, ValueError, r"reduction"),
    ((6, 5), TARGET, {'label_smoothing': 1.5}, ValueError, r"label_smoothing"),
])
def test_bad_input(logits, target, kwargs, error, pattern):
    with pytest.raises(error, match='softmax_cross_entropy: .*' + pattern):
        F.softmax_cross_entropy(rand(*logits), target, **kwargs)
