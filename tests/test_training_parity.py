"""A small CNN trained for a few steps in float64 ends with the same weights as the same
network in PyTorch (same initial weights, same data), and checkpoints round-trip."""
import numpy as np
import pytest

import minidl
import minidl.nn as nn
import models
from helpers import requires_torch, torch


def small_cnn():
    return nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(),
        nn.LocalResponseNorm(3, 1e-2, 0.75, 2.0), nn.MaxPool2d(3, 2),
        nn.Conv2d(6, 8, 3, stride=1, padding=1, groups=2), nn.ReLU(), nn.AvgPool2d(2),
        nn.Flatten(), nn.Linear(8 * 2 * 2, 16), nn.Tanh(), nn.Linear(16, 4))


def torch_twin(model):
    """The same network in PyTorch with a copy of ``model``'s weights (LRN alpha * size)."""
    tn = torch.nn
    net = tn.Sequential(
        tn.Conv2d(3, 6, 3, padding=1), tn.BatchNorm2d(6), tn.ReLU(),
        tn.LocalResponseNorm(3, 3e-2, 0.75, 2.0), tn.MaxPool2d(3, 2),
        tn.Conv2d(6, 8, 3, stride=1, padding=1, groups=2), tn.ReLU(), tn.AvgPool2d(2),
        tn.Flatten(), tn.Linear(8 * 2 * 2, 16), tn.Tanh(), tn.Linear(16, 4)).double()
    state = {k: torch.tensor(np.asarray(v)) for k, v in model.state_dict().items()}
    net.load_state_dict(state, strict=False)  # torch also has num_batches_tracked
    return net


OPTIMIZERS = {
    'sgd-nesterov-wd': (lambda p: minidl.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True,
                                                   weight_decay=5e-4),
                        lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True,
                                                  weight_decay=5e-4)),
    'adamw': (lambda p: minidl.optim.AdamW(p, lr=1e-2),
              lambda p: torch.optim.AdamW(p, lr=1e-2)),
}


@requires_torch
@pytest.mark.parametrize('name', sorted(OPTIMIZERS))
def test_five_training_steps_match_pytorch(name):
    minidl.manual_seed(0)
    model = small_cnn().double()
    net = torch_twin(model)
    ours, theirs = OPTIMIZERS[name]
    opt, topt = ours(model.parameters()), theirs(net.parameters())
    rng = np.random.default_rng(0)
    for _ in range(5):
        x = rng.standard_normal((8, 3, 12, 12))
        y = rng.integers(0, 4, size=8)
        loss = minidl.functional.softmax_cross_entropy(model(minidl.Tensor(x)), y,
                                                       label_smoothing=0.1)
        opt.zero_grad()
        loss.backward()
        opt.step()
        tloss = torch.nn.functional.cross_entropy(net(torch.tensor(x)), torch.tensor(y),
                                                  label_smoothing=0.1)
        topt.zero_grad()
        tloss.backward()
        topt.step()
        assert abs(loss.item() - tloss.item()) < 1e-10 * abs(tloss.item())
    theirs_state = net.state_dict()
    for key, value in model.state_dict().items():
        expected = theirs_state[key].numpy()
        err = np.abs(value - expected).max() / np.abs(expected).max()
        assert err < 1e-9, f"{key}: relative error {err:.3g}"


def test_zoo_model_round_trips_through_save_and_load(tmp_path):
    minidl.manual_seed(1)
    a = models.build('alexnet-cifar-2class').eval()
    minidl.save({'model': a.state_dict(), 'epoch': 3}, tmp_path / 'ckpt')
    b = models.build('alexnet-cifar-2class').eval()
    checkpoint = minidl.load(tmp_path / 'ckpt')
    b.load_state_dict(checkpoint['model'])
    x = minidl.Tensor(np.random.default_rng(0).standard_normal((2, 3, 32, 32),
                                                               dtype=np.float32))
    with minidl.no_grad():
        assert np.array_equal(a(x).numpy(), b(x).numpy())
    assert checkpoint['epoch'] == 3


def test_corrupted_or_wrong_checkpoint_is_refused_and_changes_nothing(tmp_path):
    model = models.build('alexnet-cifar-2class')
    before = {k: v.copy() for k, v in model.state_dict().items()}
    path = tmp_path / 'ckpt'
    minidl.save(model.state_dict(), path)
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])  # truncated
    with pytest.raises(ValueError, match="not a valid minidl checkpoint"):
        minidl.load(path)
    other = models.build('alexnet-cifar', num_classes=2).state_dict()  # wrong shapes
    with pytest.raises(ValueError, match="load_state_dict"):
        model.load_state_dict(other)
    assert all(np.array_equal(before[k], v) for k, v in model.state_dict().items())
