"""Frozen parameters (``p.requires_grad = False``, ``module.requires_grad_(False)``): no
gradient, skipped by the optimizers (no weight decay, no state), still saved and loaded; batch
norm with a frozen weight differentiates as PyTorch does. And SGD's parameter groups with
their own lr and weight decay, against torch.optim.SGD."""
import numpy as np
import pytest

import minidl
import minidl.functional as F
from minidl import nn
from minidl.optim import SGD, Adam, AdamW
from helpers import assert_parity, requires_torch, torch

RTOL = 1e-12


def make_model(seed=0):
    minidl.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.Flatten(), nn.Linear(4 * 5 * 5, 3)).double()


def batch(seed=1):
    rng = np.random.default_rng(seed)
    return minidl.Tensor(rng.standard_normal((6, 3, 5, 5))), rng.integers(0, 3, 6)


def freeze(model):
    """The BatchNorm2d weight and the whole first conv weight."""
    model[1].weight.requires_grad = False
    model[0].weight.requires_grad = False
    return {'0.weight', '1.weight'}


def backward(model, seed=1):
    x, y = batch(seed)
    F.softmax_cross_entropy(model(x), y).backward()


# ----------------------------------------------------------------------------- gradients
def test_a_frozen_parameter_gets_no_gradient_and_the_others_are_unchanged():
    frozen_model, model = make_model(), make_model()
    frozen = freeze(frozen_model)
    backward(frozen_model)
    backward(model)
    for (name, p), q in zip(frozen_model.named_parameters(), model.parameters()):
        if name in frozen:
            assert p.grad is None and not p.requires_grad
        else:
            np.testing.assert_array_equal(p.grad.numpy(), q.grad.numpy())


def test_module_requires_grad_freezes_and_unfreezes_every_parameter():
    model = make_model()
    assert model[0].requires_grad_(False) is model[0]
    assert [p.requires_grad for p in model.parameters()] == [False] * 2 + [True] * 4
    backward(model)
    assert model[0].weight.grad is None and model[0].bias.grad is None
    assert model[1].weight.grad is not None
    model.requires_grad_()
    assert all(p.requires_grad for p in model.parameters())


# ----------------------------------------------------------------------------- optimizers
OPTIMIZERS = [(SGD, dict(lr=0.1, momentum=0.9, weight_decay=0.1)),
              (SGD, dict(lr=0.1, weight_decay=0.5)),
              (Adam, dict(lr=0.01, weight_decay=0.1)),
              (AdamW, dict(lr=0.01, weight_decay=0.1))]
OPT_IDS = [f"{cls.__name__}-{'-'.join(f'{k}={v}' for k, v in kw.items())}"
           for cls, kw in OPTIMIZERS]


@pytest.mark.parametrize('cls, kw', OPTIMIZERS, ids=OPT_IDS)
def test_optimizers_skip_frozen_parameters(cls, kw):
    """Weight decay would move a frozen parameter even with a zero gradient; it must not be
    applied, and no state is created for it."""
    model = make_model()
    frozen = freeze(model)
    before = {n: p.numpy().copy() for n, p in model.named_parameters()}
    opt = cls(model.parameters(), **kw)
    for step in range(3):
        opt.zero_grad()
        backward(model, seed=step)
        opt.step()
    index = {n: i for i, (n, _) in enumerate(model.named_parameters())}
    for name, p in model.named_parameters():
        if name in frozen:
            np.testing.assert_array_equal(p.numpy(), before[name])
            assert p not in opt.state and index[name] not in opt.state_dict()['state']
        else:
            assert not np.array_equal(p.numpy(), before[name])
            assert p in opt.state  # (empty for SGD without momentum)


def torch_model(model):
    """The same network in PyTorch (float64), with the weights and frozen flags of ``model``."""
    tm = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.BatchNorm2d(4),
                             torch.nn.ReLU(), torch.nn.Flatten(),
                             torch.nn.Linear(4 * 5 * 5, 3)).double()
    with torch.no_grad():
        for (name, t), p in zip(tm.named_parameters(), model.parameters()):
            t.copy_(torch.tensor(p.numpy()))
            t.requires_grad_(p.requires_grad)
    return tm


@requires_torch
@pytest.mark.parametrize('cls, kw', OPTIMIZERS, ids=OPT_IDS)
def test_training_with_frozen_parameters_matches_torch(cls, kw):
    model = make_model()
    freeze(model)
    tm = torch_model(model)
    opt = cls(model.parameters(), **kw)
    topt = getattr(torch.optim, cls.__name__)(tm.parameters(), foreach=False, **kw)
    for step in range(3):
        opt.zero_grad()
        backward(model, seed=step)
        opt.step()
        topt.zero_grad()
        x, y = batch(step)
        torch.nn.functional.cross_entropy(tm(torch.tensor(x.numpy())),
                                          torch.tensor(y)).backward()
        topt.step()
    assert sorted(opt.state_dict()['state']) == sorted(topt.state_dict()['state'])
    for p, t in zip(model.parameters(), tm.parameters()):
        assert (p.grad is None) == (t.grad is None)
        assert_parity(p, t, 1e-9)  # a network, not one update: the forward's sums differ
    for ours, theirs in zip(model.buffers(), [tm[1].running_mean, tm[1].running_var]):
        assert_parity(ours, theirs, 1e-9)


# ----------------------------------------------------------------------------- checkpoints
def test_frozen_parameters_are_saved_and_loaded(tmp_path):
    model = make_model()
    frozen = freeze(model)
    model[1].weight.data[...] = np.arange(4) + 0.5  # not the initial ones
    opt = SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=0.01)
    backward(model)
    opt.step()
    assert frozen <= set(model.state_dict())
    minidl.save({'model': model.state_dict(), 'optim': opt.state_dict()}, tmp_path / 'c.npz')

    again = make_model(seed=5)
    frozen_again = freeze(again)
    ckpt = minidl.load(tmp_path / 'c.npz')
    again.load_state_dict(ckpt['model'])
    opt_again = SGD(again.parameters(), lr=0.1, momentum=0.9, weight_decay=0.01)
    opt_again.load_state_dict(ckpt['optim'])
    for name, p in again.named_parameters():
        np.testing.assert_array_equal(p.numpy(), model.state_dict()[name])
        assert p.requires_grad == (name not in frozen_again)
    # both continue alike, the frozen parameters staying where they are
    for m, o in ((model, opt), (again, opt_again)):
        o.zero_grad()
        backward(m, seed=7)
        o.step()
    for (name, p), q in zip(model.named_parameters(), again.parameters()):
        np.testing.assert_array_equal(p.numpy(), q.numpy())
    np.testing.assert_array_equal(again[1].weight.numpy(), np.arange(4) + 0.5)


# ----------------------------------------------------------------------------- batch norm
@requires_torch
@pytest.mark.parametrize('shape', [(8, 3), (4, 3, 5, 6)])
@pytest.mark.parametrize('frozen_bias', [False, True])
def test_training_batch_norm_with_a_frozen_weight_matches_torch(shape, frozen_bias):
    rng = np.random.default_rng(3)
    c = shape[1]
    x = minidl.Tensor(rng.standard_normal(shape) * 2 + 1, requires_grad=True)
    weight = minidl.Tensor(rng.random(c) + 0.5)                        # frozen
    bias = minidl.Tensor(rng.standard_normal(c), requires_grad=not frozen_bias)
    rm, rv = np.zeros(c), np.ones(c)
    tx, tw, tb = (torch.tensor(t.numpy(), requires_grad=t.requires_grad)
                  for t in (x, weight, bias))
    trm, trv = torch.zeros(c, dtype=torch.float64), torch.ones(c, dtype=torch.float64)
    y = F.batch_norm(x, rm, rv, weight, bias, training=True, momentum=0.1, eps=1e-5)
    ty = torch.nn.functional.batch_norm(tx, trm, trv, tw, tb, training=True, momentum=0.1,
                                        eps=1e-5)
    assert_parity(y, ty)
    g = rng.standard_normal(shape)
    y.backward(minidl.Tensor(g))
    ty.backward(torch.tensor(g))
    assert weight.grad is None and tw.grad is None
    assert_parity(x.grad, tx.grad)
    if frozen_bias:
        assert bias.grad is None and tb.grad is None
    else:
        assert_parity(bias.grad, tb.grad)
    assert_parity(rm, trm)
    assert_parity(rv, trv)


@requires_torch
def test_batchnorm2d_module_with_frozen_weight_matches_torch():
    bn, tbn = nn.BatchNorm2d(3).double(), torch.nn.BatchNorm2d(3).double()
    bn.weight.data[...] = [0.5, 2.0, -1.0]
    with torch.no_grad():
        tbn.weight.copy_(torch.tensor(bn.weight.numpy()))
    bn.weight.requires_grad = False
    tbn.weight.requires_grad = False
    data = np.random.default_rng(4).standard_normal((5, 3, 4, 4))
    x, tx = minidl.Tensor(data, requires_grad=True), torch.tensor(data, requires_grad=True)
    (bn(x) ** 3).sum().backward()
    (tbn(tx) ** 3).sum().backward()
    assert bn.weight.grad is None and tbn.weight.grad is None
    assert_parity(x.grad, tx.grad)
    assert_parity(bn.bias.grad, tbn.bias.grad)
    assert_parity(bn.running_var, tbn.running_var)


# ----------------------------------------------------------------------------- param groups
@requires_torch
def test_sgd_param_groups_with_their_own_lr_and_weight_decay_match_torch():
    rng = np.random.default_rng(0)
    shapes = [(3, 4), (5,), (2, 3, 2), (7,)]
    params = [minidl.Tensor(rng.standard_normal(s), requires_grad=True) for s in shapes]
    theirs = [torch.tensor(p.numpy(), requires_grad=True) for p in params]

    def groups(ps):
        return [{'params': ps[:2], 'lr': 0.05, 'weight_decay': 5e-4},
                {'params': ps[2:], 'lr': 0.2, 'weight_decay': 0.1}]

    opt = SGD(groups(params), lr=0.01, momentum=0.85, nesterov=True)
    topt = torch.optim.SGD(groups(theirs), lr=0.01, momentum=0.85, nesterov=True,
                           foreach=False)
    assert [(g['lr'], g['weight_decay'], g['momentum'], g['nesterov'])
            for g in opt.param_groups] == [(0.05, 5e-4, 0.85, True), (0.2, 0.1, 0.85, True)]
    for step in range(5):
        grads = [np.random.default_rng(10 + step).standard_normal(s) for s in shapes]
        for p, t, g in zip(params, theirs, grads):
            p.grad, t.grad = minidl.Tensor(g), torch.tensor(g)
        opt.step()
        topt.step()
    for p, t in zip(params, theirs):
        assert_parity(p, t, RTOL)
    for p, t in zip(params, theirs):
        assert_parity(opt.state[p]['momentum_buffer'], topt.state[t]['momentum_buffer'], RTOL)
