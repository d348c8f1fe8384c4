"""softmax_cross_entropy: gradients, PyTorch parity, values and stability on every device;
PyTorch's options (weight, ignore_index, class probabilities, (N, C, d1, ...) inputs); bad
input."""
import numpy as np
import pytest

import minidl
import minidl.functional as F
from helpers import CUDA, check_torch_parity, on, rand, requires_torch, torch

TARGET = np.array([0, 4, 2, 2, 1, 3])
OPTIONS = [(s, r) for s in (0.0, 0.1, 0.5) for r in ('mean', 'sum', 'none')]


def _loss(smoothing, reduction, target=TARGET):
    return lambda x: F.softmax_cross_entropy(x, target, label_smoothing=smoothing,
                                             reduction=reduction)


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
    ((6,), np.zeros(6, np.int64), {}, ValueError,
     r"unbatched logits of shape \(6,\) take a 0-d target .* got target shape \(6,\)"),
    ((), np.zeros((), np.int64), {}, ValueError, r"logits must be \(N, C\) or unbatched \(C,\)"),
    ((2, 5, 3), np.zeros((2, 4), np.int64), {}, ValueError, r"target shape \(2, 4\).*\(2, 3\)"),
    ((6, 5), TARGET, {'ignore_index': 1.5}, TypeError, r"ignore_index must be an int, got 1.5"),
    ((6, 5), TARGET, {'weight': np.ones(4)}, ValueError, r"weight .*\(5,\).*got shape \(4,\)"),
    ((6, 5), TARGET, {'weight': np.ones(5, np.float32)}, TypeError,
     r"logits is float64 but weight is float32"),
    ((6, 5), TARGET, {'weight': 0.1}, TypeError, r"weight must be None or .*got 0.1"),
    ((6, 5), np.ones((6, 4)), {}, ValueError, r"probability target .*\(6, 5\), got \(6, 4\)"),
    ((6, 5), np.ones((6, 5), np.float32), {}, TypeError, r"logits is float64 but target is"),
    ((6, 5), np.ones((6, 5)), {'ignore_index': 0}, ValueError,
     r"ignore_index is not supported for class-probability targets; got ignore_index=0"),
    ((6, 5), TARGET, {'reduction': 'avg'}, ValueError, r"reduction"),
    ((6, 5), TARGET, {'label_smoothing': 1.5}, ValueError, r"label_smoothing"),
])
def test_bad_input(logits, target, kwargs, error, pattern):
    with pytest.raises(error, match='softmax_cross_entropy: .*' + pattern):
        F.softmax_cross_entropy(rand(*logits), target, **kwargs)


def test_weight_that_requires_grad_is_an_error():
    with pytest.raises(ValueError, match=r"softmax_cross_entropy: weight gets no gradient"):
        F.softmax_cross_entropy(rand(6, 5), TARGET, weight=rand(5))


# ----------------------------------------------------------------------------- PyTorch's options
WEIGHT = np.array([0.5, 2.0, 1.0, 0.25, 3.0])
IGNORED = np.array([0, -100, 2, 2, -100, 3])  # the default ignore_index
SPATIAL = np.array([[[0, 4], [2, -100], [1, 1]], [[3, 0], [4, 4], [-100, 2]]])  # (2, 3, 2)


def probabilities(*shape, axis=1):
    p = np.random.default_rng(5).random(shape)
    return p / p.sum(axis=axis, keepdims=True)


# name: (logits shape, target, options); every case runs with each reduction
CASES = {
    'weight': ((6, 5), TARGET, dict(weight=WEIGHT)),
    'ignore_index_default': ((6, 5), IGNORED, {}),
    'ignore_index_a_class': ((6, 5), TARGET, dict(ignore_index=2)),
    'weight_ignore_smoothing': ((6, 5), IGNORED, dict(weight=WEIGHT, label_smoothing=0.2)),
    'probabilities': ((6, 5), probabilities(6, 5), {}),
    'probabilities_weight_smoothing': ((6, 5), probabilities(6, 5),
                                       dict(weight=WEIGHT, label_smoothing=0.3, ignore_index=-1)),
    'spatial': ((2, 5, 3, 2), SPATIAL, dict(weight=WEIGHT, label_smoothing=0.1)),
    'spatial_probabilities': ((2, 5, 3), probabilities(2, 5, 3), dict(weight=WEIGHT)),
}
OPTION_CASES = [(name, r) for name in CASES for r in ('mean', 'sum', 'none')]


def _case(name, reduction, device):
    shape, target, options = CASES[name]
    options = dict(options, reduction=reduction)
    if 'weight' in options:
        options['weight'] = on(device, options['weight'])
    fn = lambda x: F.cross_entropy(x, on(device, target), **options)  # noqa: E731
    return fn, rand(*shape, seed=3, device=device), target, options


@pytest.mark.parametrize('name, reduction', OPTION_CASES)
def test_options_gradcheck(name, reduction, device):
    fn, x, _, _ = _case(name, reduction, device)
    assert minidl.gradcheck(fn, [x])


@requires_torch
@pytest.mark.parametrize('name, reduction', OPTION_CASES)
def test_options_parity_with_torch_cross_entropy(name, reduction, device):
    fn, x, target, options = _case(name, reduction, device)
    if 'weight' in options:
        options = dict(options, weight=torch.tensor(CASES[name][2]['weight']))
    check_torch_parity(fn, lambda tx: torch.nn.functional.cross_entropy(
        tx, torch.tensor(target), **options), [x])


def test_reduction_none_of_spatial_logits_gives_a_loss_per_position(device):
    loss = F.cross_entropy(rand(2, 5, 3, 2, device=device), on(device, SPATIAL),
                           reduction='none')
    assert loss.shape == (2, 3, 2) and loss.numpy()[0, 1, 1] == 0.0


def test_ignored_targets_add_nothing_and_leave_the_mean(device):
    x = rand(6, 5, device=device)
    kept = np.array([0, 2, 3, 5])
    expected = F.cross_entropy(x[kept], on(device, IGNORED[kept])).item()
    assert abs(F.cross_entropy(x, on(device, IGNORED)).item() - expected) < 1e-12


def test_weighted_mean_divides_by_the_weights_of_the_targets(device):
    x = rand(6, 5, device=device)
    per_sample = F.cross_entropy(x, on(device, TARGET), reduction='none').numpy()
    w = WEIGHT[TARGET]
    loss = F.cross_entropy(x, on(device, TARGET), weight=on(device, WEIGHT))
    assert abs(loss.item() - (w * per_sample).sum() / w.sum()) < 1e-12


def test_every_target_ignored_gives_nan_and_a_zero_gradient_as_torch(device):
    x = rand(3, 5, device=device)
    loss = F.cross_entropy(x, on(device, [1, 1, 1]), ignore_index=1, label_smoothing=0.1)
    loss.backward()
    assert np.isnan(loss.item()) and (x.grad.numpy() == 0).all()


def test_one_hot_probabilities_equal_class_indices(device):
    x = rand(6, 5, device=device)
    onehot = np.eye(5)[TARGET]
    a = F.cross_entropy(x, on(device, onehot), weight=on(device, WEIGHT), reduction='sum')
    b = F.cross_entropy(x, on(device, TARGET), weight=on(device, WEIGHT), reduction='sum')
    assert abs(a.item() - b.item()) < 1e-12


def test_probability_target_tensor_gets_its_gradient(device):
    q = minidl.tensor(probabilities(6, 5), requires_grad=True, device=device)
    assert minidl.gradcheck(lambda x, q: F.cross_entropy(x, q, weight=on(device, WEIGHT),
                                                         label_smoothing=0.2),
                            [rand(6, 5, device=device), q])


@requires_torch
def test_probability_target_gradient_parity_with_torch(device):
    q = minidl.tensor(probabilities(2, 5, 3), requires_grad=True, device=device)
    check_torch_parity(
        lambda x, q: F.cross_entropy(x, q, weight=on(device, WEIGHT), label_smoothing=0.2),
        lambda x, q: torch.nn.functional.cross_entropy(x, q, weight=torch.tensor(WEIGHT),
                                                       label_smoothing=0.2),
        [rand(2, 5, 3, device=device), q])


@pytest.mark.parametrize('name', ['weight_ignore_smoothing', 'spatial'])
def test_options_gradgradcheck(name, device):
    fn, x, _, _ = _case(name, 'mean', device)
    assert minidl.gradgradcheck(fn, [x])
