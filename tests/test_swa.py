"""optim.swa_utils: AveragedModel and its averaging functions against
torch.optim.swa_utils, and LookaheadState against its formula written out in NumPy."""
import copy

import numpy as np
import pytest

import minidl
from minidl import nn
from minidl.optim import SGD, swa_utils
from minidl.optim.swa_utils import (AveragedModel, LookaheadState, get_ema_avg_fn,
                                    get_ema_multi_avg_fn, get_swa_avg_fn,
                                    get_swa_multi_avg_fn)
from helpers import assert_parity, requires_torch, torch

RTOL = 1e-12
UPDATES = 6


def make_model(seed=0):
    minidl.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 5), nn.BatchNorm1d(5), nn.ReLU(),
                         nn.Linear(5, 3)).double()


def torch_model(model):
    tm = torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.BatchNorm1d(5), torch.nn.ReLU(),
                             torch.nn.Linear(5, 3)).double()
    set_torch_state(tm, model.state_dict())
    return tm


def set_torch_state(tm, state):
    own = tm.state_dict()
    with torch.no_grad():
        for name, array in state.items():
            own[name].copy_(torch.tensor(np.asarray(array)))


def new_weights(model, step):
    """As if the optimizer and the batch statistics moved: every parameter and buffer gets
    new values (positive ones for the running variance)."""
    rng = np.random.default_rng(100 + step)
    for name, array in model.state_dict().items():
        array[...] = rng.standard_normal(array.shape) * (1 + step) + step
        if name.endswith('running_var'):
            array[...] = np.abs(array) + 0.1


def check_against_torch(make_ours, make_theirs, use_buffers):
    model = make_model()
    tm = torch_model(model)
    ours = make_ours(model)
    theirs = make_theirs(tm)
    for step in range(UPDATES):
        if step:
            new_weights(model, step)
            set_torch_state(tm, model.state_dict())
        ours.update_parameters(model)
        theirs.update_parameters(tm)
        assert int(ours.n_averaged) == int(theirs.n_averaged) == step + 1
        expected = theirs.module.state_dict()
        for name, array in ours.module.state_dict().items():
            assert_parity(array, expected[name], RTOL)
    # buffers: averaged with use_buffers, else the model's latest
    latest = model[1].running_var
    if use_buffers:
        assert not np.allclose(ours.module[1].running_var, latest)
    else:
        np.testing.assert_array_equal(ours.module[1].running_var, latest)


# torch's get_swa_multi_avg_fn is left out: it lerps with the weight 1 / (n_averaged + 1)
# computed from the int64 tensor n_averaged, which makes it a float32 tensor (1/3 becomes
# 0.33333334, a relative error of 3e-8), and it raises for torch's int64 batch-norm buffer
# num_batches_tracked; ours uses the exact weight (checked against the mean below).
FNS = {  # name: keyword arguments of AveragedModel, from our swa_utils or torch's
    'equal': lambda sw: {},
    'swa-avg-fn': lambda sw: dict(avg_fn=sw.get_swa_avg_fn()),
    'ema-multi': lambda sw: dict(multi_avg_fn=sw.get_ema_multi_avg_fn(0.9)),
    'ema-multi-0.3': lambda sw: dict(multi_avg_fn=sw.get_ema_multi_avg_fn(0.3)),  # lerp >= .5
    'ema-avg-fn': lambda sw: dict(avg_fn=sw.get_ema_avg_fn(0.8)),
}


@requires_torch
@pytest.mark.parametrize('use_buffers', [False, True], ids=['params', 'params+buffers'])
@pytest.mark.parametrize('fn', list(FNS))
def test_averaged_model_matches_torch(fn, use_buffers):
    from torch.optim import swa_utils as torch_swa
    check_against_torch(
        lambda m: AveragedModel(m, use_buffers=use_buffers, **FNS[fn](swa_utils)),
        lambda t: torch_swa.AveragedModel(t, use_buffers=use_buffers, **FNS[fn](torch_swa)),
        use_buffers)


def test_equal_average_and_ema_follow_their_formulas():
    model = make_model()
    swa = AveragedModel(model)
    swa_multi = AveragedModel(model, multi_avg_fn=get_swa_multi_avg_fn())
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.75), use_buffers=True)
    seen, expected_ema = [], None
    for step in range(4):
        new_weights(model, step)
        swa.update_parameters(model)
        swa_multi.update_parameters(model)
        ema.update_parameters(model)
        current = {k: v.copy() for k, v in model.state_dict().items()}
        seen.append(current)
        expected_ema = current if expected_ema is None else {
            k: 0.75 * expected_ema[k] + 0.25 * current[k] for k in current}
    for averaged in (swa, swa_multi):
        for name, array in averaged.module.state_dict().items():
            if 'running' in name:  # buffers follow the model
                np.testing.assert_array_equal(array, seen[-1][name])
            else:
                np.testing.assert_allclose(array, np.mean([s[name] for s in seen], axis=0),
                                           rtol=1e-13, atol=1e-13)
    for name, array in ema.module.state_dict().items():
        np.testing.assert_allclose(array, expected_ema[name], rtol=1e-13, atol=1e-13)


def test_averaged_model_is_an_independent_copy_that_runs_and_saves(tmp_path):
    model = make_model()
    x = minidl.Tensor(np.random.default_rng(0).standard_normal((6, 4)))
    model(x).sum().backward()
    swa = AveragedModel(model)
    assert all(p.grad is None for p in swa.parameters())
    assert all(p.grad is not None for p in model.parameters())
    assert all(a is not b for a, b in zip(swa.module.state_dict().values(),
                                          model.state_dict().values()))
    swa.eval(), model.eval()
    np.testing.assert_array_equal(swa(x).numpy(), model(x).numpy())
    before = copy.deepcopy(swa.module.state_dict())
    SGD(model.parameters(), lr=1.0).step()  # the copy does not move with the model
    for name, array in swa.module.state_dict().items():
        np.testing.assert_array_equal(array, before[name])

    swa.update_parameters(model)
    new_weights(model, 1)
    swa.update_parameters(model)
    state = swa.state_dict()
    assert set(state) == {'n_averaged'} | {f'module.{k}' for k in model.state_dict()}
    minidl.save(state, tmp_path / 'swa.npz')
    again = AveragedModel(make_model(seed=3))
    again.load_state_dict(minidl.load(tmp_path / 'swa.npz'))
    assert int(again.n_averaged) == 2
    for name, array in again.state_dict().items():
        np.testing.assert_array_equal(array, state[name])


def test_averaged_model_errors():
    model = make_model()
    with pytest.raises(ValueError, match="AveragedModel: give avg_fn or multi_avg_fn, not "
                                         "both"):
        AveragedModel(model, avg_fn=get_swa_avg_fn(), multi_avg_fn=get_swa_multi_avg_fn())
    with pytest.raises(TypeError, match="AveragedModel: model must be a minidl Module"):
        AveragedModel([1, 2])
    swa = AveragedModel(model)
    with pytest.raises(ValueError, match="AveragedModel.update_parameters: the model's "
                                         "parameters"):
        swa.update_parameters(nn.Linear(4, 5))
    assert int(swa.n_averaged) == 0
    for fn in (get_ema_avg_fn, get_ema_multi_avg_fn):
        with pytest.raises(ValueError, match=f"{fn.__name__}: decay must be a number in "
                                             r"\[0, 1\], got 1.5"):
            fn(1.5)


# ----------------------------------------------------------------------------- lookahead
def test_lookahead_state_against_numpy():
    model = make_model()
    model[3].register_buffer('count', np.array([7]))  # not floating point: not averaged
    state = LookaheadState(model)
    assert list(state.ema) == [k for k in model.state_dict() if k != '3.count']
    arrays = {k: v for k, v in model.state_dict().items()}  # the model's own arrays
    expected = {k: v.copy() for k, v in state.ema.items()}
    for step, decay in enumerate([0.9, 0.5, 0.3, 0.95, 0.0, 1.0]):
        new_weights(model, step)
        model[3].count[...] = step
        current = {k: v.copy() for k, v in model.state_dict().items()}
        state.update(model, decay)
        for name, average in state.ema.items():
            expected[name] = decay * expected[name] + (1 - decay) * current[name]
            np.testing.assert_allclose(average, expected[name], rtol=1e-14, atol=1e-14)
            # the model continues from the average, in its own arrays
            np.testing.assert_array_equal(model.state_dict()[name], average)
            assert model.state_dict()[name] is arrays[name]
            assert average is not arrays[name]
        assert model[3].count[0] == step
    # decay=1.0 (the last one): the average did not move, the model was reset to it
    new_weights(model, 9)
    before = {k: v.copy() for k, v in state.ema.items()}
    state.update(model, 1.0)
    for name, average in state.ema.items():
        np.testing.assert_array_equal(average, before[name])
        np.testing.assert_array_equal(model.state_dict()[name], before[name])


def test_lookahead_keeps_optimizer_state_and_dtype():
    minidl.manual_seed(0)
    model = nn.Linear(3, 2)  # float32
    opt = SGD(model.parameters(), lr=0.1, momentum=0.9)
    state = LookaheadState(model)
    assert all(a.dtype == np.float32 for a in state.ema.values())
    x = minidl.Tensor(np.ones((4, 3), np.float32))
    for _ in range(3):
        opt.zero_grad()
        model(x).sum().backward()
        opt.step()
        state.update(model, 0.5)
    assert set(opt.state) == set(model.parameters())
    assert model.weight.dtype == np.float32


def test_lookahead_errors():
    state = LookaheadState(make_model())
    with pytest.raises(ValueError, match=r"LookaheadState.update: decay must be a number in "
                                         r"\[0, 1\], got -0.5"):
        state.update(make_model(), -0.5)
    with pytest.raises(ValueError, match="LookaheadState.update: the model's floating-point "
                                         "entries"):
        state.update(nn.Linear(4, 5), 0.5)
    with pytest.raises(TypeError, match="LookaheadState: model must be a minidl Module"):
        LookaheadState({'w': np.zeros(3)})
