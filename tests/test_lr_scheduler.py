"""Learning-rate schedules: the lr after each epoch equals torch.optim.lr_scheduler's (or the
closed form), warm-up composes with the others, and state_dict resumes a schedule exactly."""
import copy
import math

import numpy as np
import pytest

import minidl
from minidl.optim import SGD, Adam, lr_scheduler as sched
from helpers import requires_torch, torch

# torch warns when a schedule is stepped without optimizer.step(); here there is nothing to train
pytestmark = pytest.mark.filterwarnings('ignore:Detected call of .lr_scheduler.step')

LRS = [0.1, 0.05]
EPOCHS = 30


def make_optimizer(cls=SGD):
    params = [minidl.Tensor(np.zeros(2), requires_grad=True) for _ in LRS]
    return cls([{'params': [p], 'lr': lr} for p, lr in zip(params, LRS)], lr=1.0)


def torch_optimizer():
    return torch.optim.SGD([{'params': [torch.zeros(2, requires_grad=True)], 'lr': lr}
                            for lr in LRS], lr=1.0)


def lr_sequence(scheduler, epochs=EPOCHS, metrics=None):
    """get_last_lr() at construction and after each of ``epochs`` steps."""
    lrs = [scheduler.get_last_lr()]
    for epoch in range(epochs):
        scheduler.step(*([] if metrics is None else [metrics[epoch]]))
        lrs.append(scheduler.get_last_lr())
    return lrs


def assert_lrs_equal(ours, theirs, rtol=1e-12):
    np.testing.assert_allclose(np.array(ours), np.array(theirs), rtol=rtol, atol=rtol * max(LRS))


# ----------------------------------------------------------------------------- vs torch
TORCH_CASES = {
    'StepLR': lambda m, opt: m.StepLR(opt, step_size=7, gamma=0.5),
    'StepLR_default_gamma': lambda m, opt: m.StepLR(opt, 10),
    'MultiStepLR': lambda m, opt: m.MultiStepLR(opt, milestones=[20, 5, 12, 12], gamma=0.3),
    'CosineAnnealingLR': lambda m, opt: m.CosineAnnealingLR(opt, T_max=10),
    'CosineAnnealingLR_eta_min': lambda m, opt: m.CosineAnnealingLR(opt, T_max=12,
                                                                     eta_min=1e-3),
}


@requires_torch
@pytest.mark.parametrize('name', TORCH_CASES)
def test_epoch_schedules_match_torch(name):
    ours = lr_sequence(TORCH_CASES[name](sched, make_optimizer()))
    theirs = lr_sequence(TORCH_CASES[name](torch.optim.lr_scheduler, torch_optimizer()))
    # ours are closed forms; torch's are recursive and differ by float rounding
    assert_lrs_equal(ours, theirs, rtol=1e-9 if 'Cosine' in name else 1e-12)


def plateau_metrics(mode):
    loss = [1.0, 0.9, 0.85, 0.86, 0.849, 0.87, 0.9, 0.848, 0.8, 0.81, 0.82, 0.83, 0.84, 0.79,
            0.7905, 0.791, 0.6, 0.61, 0.62, 0.63, 0.64, 0.65, 0.66, 0.5999, 0.67, 0.68, 0.69,
            0.7, 0.71, 0.72]
    return loss if mode == 'min' else [1 - x for x in loss]  # accuracy-like for 'max'


PLATEAU_CASES = [
    dict(mode='min', patience=2),
    dict(mode='min', patience=1, cooldown=2, threshold=1e-2),
    dict(mode='min', patience=1, threshold=0.02, threshold_mode='abs', factor=0.5),
    dict(mode='min', patience=0, factor=0.5, min_lr=0.02),
    dict(mode='min', patience=0, factor=0.5, min_lr=[0.03, 0.001]),
    dict(mode='max', patience=2),
    dict(mode='max', patience=1, cooldown=1, threshold=0.05),
    dict(mode='max', patience=1, threshold=0.01, threshold_mode='abs', factor=0.3),
]


@requires_torch
@pytest.mark.parametrize('kw', PLATEAU_CASES, ids=lambda kw: '-'.join(map(str, kw.values())))
def test_reduce_lr_on_plateau_matches_torch(kw):
    metrics = plateau_metrics(kw['mode'])
    ours = sched.ReduceLROnPlateau(make_optimizer(), **kw)
    theirs = torch.optim.lr_scheduler.ReduceLROnPlateau(torch_optimizer(), **kw)
    assert lr_sequence(ours, metrics=metrics) == lr_sequence(theirs, metrics=metrics)
    assert (ours.best, ours.num_bad_epochs, ours.cooldown_counter) == \
        (theirs.best, theirs.num_bad_epochs, theirs.cooldown_counter)


def test_reduce_lr_on_plateau_divides_by_10_when_accuracy_stops_improving():
    opt = make_optimizer()
    plateau = sched.ReduceLROnPlateau(opt, mode='max', factor=0.1, patience=2)
    for accuracy in [0.5, 0.6, 0.6, 0.6]:
        plateau.step(minidl.tensor(accuracy))  # a one-element Tensor is a metric too
    assert plateau.get_last_lr() == LRS
    plateau.step(0.59)  # the third epoch in a row without improvement
    assert plateau.get_last_lr() == pytest.approx([lr / 10 for lr in LRS], rel=1e-15)
    assert [g['lr'] for g in opt.param_groups] == plateau.get_last_lr()


# ----------------------------------------------------------------------------- warm-up
def warmup_lr(base, epoch, warmup=5, start=0.1):
    return base * (start + (1 - start) * epoch / warmup)


def test_linear_warmup_ramps_then_holds_base_lr():
    lrs = lr_sequence(sched.LinearWarmup(make_optimizer(), warmup_epochs=5), epochs=9)
    for epoch, got in enumerate(lrs):
        assert got == [warmup_lr(b, epoch) if epoch < 5 else b for b in LRS]
    assert lrs[0] == pytest.approx([0.1 * b for b in LRS])


def test_linear_warmup_then_cosine_annealing():
    opt = make_optimizer()
    cosine = sched.CosineAnnealingLR(opt, T_max=20, eta_min=1e-4)
    lrs = lr_sequence(sched.LinearWarmup(opt, 5, start_factor=0.2, after=cosine))
    for epoch, got in enumerate(lrs):
        want = [warmup_lr(b, epoch, start=0.2) if epoch < 5 else
                1e-4 + (b - 1e-4) * (1 + math.cos(math.pi * (epoch - 5) / 20)) / 2 for b in LRS]
        assert got == pytest.approx(want, rel=1e-14)
    assert cosine.last_epoch == EPOCHS - 5 and cosine.get_last_lr() == lrs[-1]


@requires_torch
def test_linear_warmup_then_cosine_matches_torch_sequential_lr():
    opt = make_optimizer()
    ours = sched.LinearWarmup(opt, 4, start_factor=0.25, after=sched.CosineAnnealingLR(opt, 10))
    t_opt = torch_optimizer()
    lrs = torch.optim.lr_scheduler
    theirs = lrs.SequentialLR(t_opt, [lrs.LinearLR(t_opt, start_factor=0.25, total_iters=4),
                                      lrs.CosineAnnealingLR(t_opt, T_max=10)], milestones=[4])
    assert_lrs_equal(lr_sequence(ours), lr_sequence(theirs), rtol=1e-9)


def test_linear_warmup_then_step_lr():
    opt = make_optimizer()
    warm = sched.LinearWarmup(opt, 3, after=sched.StepLR(opt, step_size=4, gamma=0.5))
    for epoch, got in enumerate(lr_sequence(warm, epochs=15)):
        assert got == [warmup_lr(b, epoch, warmup=3) if epoch < 3 else
                       b * 0.5 ** ((epoch - 3) // 4) for b in LRS]


def test_zero_warmup_epochs_is_the_after_schedule():
    opt = make_optimizer()
    warm = sched.LinearWarmup(opt, 0, after=sched.MultiStepLR(opt, [2, 4]))
    assert lr_sequence(warm, epochs=5) == lr_sequence(sched.MultiStepLR(make_optimizer(), [2, 4]),
                                                     epochs=5)


# ----------------------------------------------------------------------------- mechanics
def test_initial_lr_is_set_once_and_gives_base_lrs():
    opt = make_optimizer()
    first = sched.StepLR(opt, 1, gamma=0.5)
    first.step()
    second = sched.StepLR(opt, 1, gamma=0.5)  # built later: keeps the original initial_lr
    assert [g['initial_lr'] for g in opt.param_groups] == LRS
    assert first.base_lrs == second.base_lrs == LRS


def test_schedulers_drive_any_optimizer_and_copy_get_last_lr():
    opt = make_optimizer(Adam)
    cosine = sched.CosineAnnealingLR(opt, T_max=4)
    cosine.get_last_lr().append(99.0)
    assert cosine.get_last_lr() == LRS
    cosine.step()
    assert [g['lr'] for g in opt.param_groups] == cosine.get_last_lr()


@pytest.mark.parametrize('make, error, match', [
    (lambda opt: sched.StepLR(opt, 0), ValueError, r"StepLR: step_size must be an int >= 1, got 0"),
    (lambda opt: sched.CosineAnnealingLR(opt, 0), ValueError,
     r"CosineAnnealingLR: T_max must be an int >= 1, got 0"),
    (lambda opt: sched.LinearWarmup(opt, -1), ValueError, r"warmup_epochs"),
    (lambda opt: sched.LinearWarmup(opt, 5, start_factor=0), ValueError, r"start_factor"),
    (lambda opt: sched.LinearWarmup(opt, 5, after=sched.ReduceLROnPlateau(opt)), TypeError,
     r"after must be an epoch-based scheduler"),
    (lambda opt: sched.LinearWarmup(opt, 5, after=sched.StepLR(make_optimizer(), 3)),
     ValueError, r"same optimizer"),
    (lambda opt: sched.ReduceLROnPlateau(opt, mode='maximum'), ValueError, r"mode"),
    (lambda opt: sched.ReduceLROnPlateau(opt, threshold_mode='relative'), ValueError,
     r"threshold_mode"),
    (lambda opt: sched.ReduceLROnPlateau(opt, factor=1.0), ValueError, r"factor"),
    (lambda opt: sched.ReduceLROnPlateau(opt, min_lr=[0.0]), ValueError, r"expected 2 min_lrs"),
    (lambda opt: sched.StepLR(object(), 3), TypeError, r"not an Optimizer"),
])
def test_invalid_arguments_raise(make, error, match):
    with pytest.raises(error, match=match):
        make(make_optimizer())


# ----------------------------------------------------------------------------- resume
RESUME_CASES = {
    'StepLR': lambda opt: sched.StepLR(opt, 7, gamma=0.5),
    'MultiStepLR': lambda opt: sched.MultiStepLR(opt, [5, 12, 12, 20], gamma=0.3),
    'CosineAnnealingLR': lambda opt: sched.CosineAnnealingLR(opt, 10, eta_min=1e-3),
    'LinearWarmup+Cosine': lambda opt: sched.LinearWarmup(
        opt, 5, after=sched.CosineAnnealingLR(opt, 20)),
    'LinearWarmup+Warmup+Step': lambda opt: sched.LinearWarmup(
        opt, 3, after=sched.LinearWarmup(opt, 4, 0.5, after=sched.StepLR(opt, 5))),
    'ReduceLROnPlateau': lambda opt: sched.ReduceLROnPlateau(opt, 'max', 0.5, patience=1,
                                                             cooldown=1),
}


def _plain_only(obj):
    if isinstance(obj, dict):
        return all(isinstance(k, str) and _plain_only(v) for k, v in obj.items())
    if isinstance(obj, list):
        return all(_plain_only(v) for v in obj)
    return obj is None or isinstance(obj, (str, int, float, bool))


@pytest.mark.parametrize('name', RESUME_CASES)
@pytest.mark.parametrize('resume_at', [2, 12])  # during and after the warm-up
@pytest.mark.parametrize('order', ['scheduler_first', 'optimizer_first'])
def test_resuming_from_state_dicts_continues_the_same_sequence(name, resume_at, order):
    make = RESUME_CASES[name]
    metrics = plateau_metrics('max')
    args = (lambda e: [metrics[e]]) if name == 'ReduceLROnPlateau' else (lambda e: [])
    straight = make(make_optimizer())
    expected = [straight.get_last_lr()] + [
        (straight.step(*args(e)), straight.get_last_lr())[1] for e in range(EPOCHS)]

    opt = make_optimizer()
    scheduler = make(opt)
    for e in range(resume_at):
        scheduler.step(*args(e))
    sd = copy.deepcopy({'optimizer': opt.state_dict(), 'scheduler': scheduler.state_dict()})
    assert _plain_only(sd['scheduler'])

    opt2 = make_optimizer()
    if order == 'optimizer_first':
        opt2.load_state_dict(sd['optimizer'])
        scheduler2 = make(opt2)
    else:
        scheduler2 = make(opt2)
        opt2.load_state_dict(sd['optimizer'])
    scheduler2.load_state_dict(sd['scheduler'])
    resumed = [scheduler2.get_last_lr()]
    for e in range(resume_at, EPOCHS):
        scheduler2.step(*args(e))
        resumed.append(scheduler2.get_last_lr())
    assert resumed == expected[resume_at:]
    assert [g['lr'] for g in opt2.param_groups] == expected[-1]


def test_load_state_dict_rejects_a_mismatched_state():
    opt = make_optimizer()
    warm = sched.LinearWarmup(opt, 5, after=sched.StepLR(opt, 3))
    with pytest.raises(ValueError, match=r"differ in having an 'after' scheduler"):
        warm.load_state_dict(sched.LinearWarmup(make_optimizer(), 5).state_dict())
    one_group = SGD([minidl.Tensor(np.zeros(1), requires_grad=True)], lr=0.1)
    with pytest.raises(ValueError, match=r"for 1 parameter groups, the optimizer has 2"):
        sched.StepLR(opt, 3).load_state_dict(sched.StepLR(one_group, 3).state_dict())
    with pytest.raises(ValueError, match=r"lacks \['last_epoch'\]"):
        sched.StepLR(opt, 3).load_state_dict({'step_size': 3, 'gamma': 0.1, 'base_lrs': LRS})
