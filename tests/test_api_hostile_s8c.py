"""Hostile input to the model zoo, the learning-rate schedules, weight averaging, the
airbench recipes and the studies' Python API. The house rule: ONE clear exception naming
the function and what was expected and given, never a deep traceback, never a silent wrong
answer. Where PyTorch accepts an input and defines a result, the result is PyTorch's."""
import math

import numpy as np
import pytest

import minidl
import models
from minidl import nn, optim, recipes, studies
from minidl.optim import lr_scheduler as L
from minidl.optim.swa_utils import AveragedModel, LookaheadState

from helpers import requires_torch, torch


def sgd(lr=0.1):
    return optim.SGD([nn.Parameter(minidl.tensor(np.ones(2, np.float32)))], lr=lr)


# ----------------------------------------------------------------------------- models
@pytest.mark.parametrize('name', [['alexnet'], None, 3])
def test_build_wants_a_model_name(name):
    with pytest.raises((TypeError, ValueError), match=r"models.build: .*got"):
        models.build(name)


def test_an_unknown_model_is_named_by_build():
    with pytest.raises(ValueError, match=r"models.build: unknown model 'nope'; known models: "):
        models.build('nope')


@pytest.mark.parametrize('bad', [1.5, True, '10', 2.0])
def test_num_classes_of_the_wrong_type_is_a_type_error(bad):
    with pytest.raises(TypeError, match=r"models.build: num_classes must be a positive integer"):
        models.build('alexnet-cifar', num_classes=bad)


@pytest.mark.parametrize('name, option', [('alexnet-2gpu', dict(two_gpu=False)),
                                          ('vgg11-bn-cifar', dict(batch_norm=False)),
                                          ('vgg11-cifar', dict(cifar=False)),
                                          ('vgg11-cifar', dict(config='E'))])
def test_build_refuses_an_option_that_would_contradict_the_name(name, option):
    (key, value), = option.items()
    with pytest.raises(TypeError, match=rf"models.build: '{name}' fixes {key}; .*{key}="):
        models.build(name, **option)


# ----------------------------------------------------------------------------- schedulers
SCHEDULERS = {
    'StepLR': lambda o: L.StepLR(o, 2),
    'MultiStepLR': lambda o: L.MultiStepLR(o, [2, 4]),
    'CosineAnnealingLR': lambda o: L.CosineAnnealingLR(o, 5),
    'LinearWarmup': lambda o: L.LinearWarmup(o, 3),
}


@pytest.mark.parametrize('kind, key, value, message', [
    ('StepLR', 'last_epoch', 2.5, r"last_epoch must be an int >= 0, got 2.5"),
    ('StepLR', 'last_epoch', -5, r"last_epoch must be an int >= 0, got -5"),
    ('StepLR', 'last_epoch', None, r"last_epoch must be an int >= 0, got None"),
    ('StepLR', 'step_size', 0, r"step_size must be an int >= 1, got 0"),
    ('StepLR', 'gamma', 'x', r"gamma must be a number, got 'x'"),
    ('StepLR', 'base_lrs', None, r"base_lrs must be a list of numbers, got None"),
    ('StepLR', 'base_lrs', ['a'], r"each base lr must be a number >= 0, got 'a'"),
    ('MultiStepLR', 'milestones', None, r"milestones must be a list of epochs"),
    ('MultiStepLR', 'milestones', [1.5], r"each milestone must be an int >= 0, got 1.5"),
    ('CosineAnnealingLR', 'T_max', 0, r"T_max must be an int >= 1, got 0"),
    ('LinearWarmup', 'warmup_epochs', -1, r"warmup_epochs must be an int >= 0, got -1"),
    ('LinearWarmup', 'start_factor', 0, r"start_factor must be a number in \(0, 1\], got 0"),
])
def test_load_state_dict_checks_each_value_as_the_constructor_does(kind, key, value, message):
    source = SCHEDULERS[kind](sgd())
    source.step()
    state = dict(source.state_dict(), **{key: value})
    optimizer = sgd()
    scheduler = SCHEDULERS[kind](optimizer)
    before = scheduler.state_dict()
    with pytest.raises(ValueError, match=rf"{kind}.load_state_dict: {message}"):
        scheduler.load_state_dict(state)
    assert scheduler.state_dict() == before           # nothing was half loaded
    assert optimizer.param_groups[0]['lr'] == 0.1 * (0.1 if kind == 'LinearWarmup' else 1)


def plateau_state(**change):
    scheduler = L.ReduceLROnPlateau(sgd())
    scheduler.step(1.0)
    return dict(scheduler.state_dict(), **change)


@pytest.mark.parametrize('change, message', [
    (dict(mode='x'), r"mode must be 'min' or 'max', got 'x'"),
    (dict(threshold_mode=None), r"threshold_mode must be 'rel' or 'abs', got None"),
    (dict(factor=1.0), r"factor must be a number in \[0, 1\), got 1.0"),
    (dict(patience=None), r"patience must be an int >= 0, got None"),
    (dict(min_lrs=[0, 0]), r"expected 1 min_lrs, got 2"),
    (dict(best=None), r"best must be a number, got None"),
    (dict(last_epoch='x'), r"last_epoch must be an int >= 0, got 'x'"),
    (dict(num_bad_epochs=-1), r"num_bad_epochs must be an int >= 0, got -1"),
    (dict(_last_lr=['a']), r"each lr must be a number >= 0, got 'a'"),
    (dict(_last_lr=None), r"_last_lr must be a list of numbers, got None"),
])
def test_reduce_lr_on_plateau_load_state_dict_checks_each_value(change, message):
    optimizer = sgd()
    scheduler = L.ReduceLROnPlateau(optimizer)
    with pytest.raises(ValueError, match=rf"ReduceLROnPlateau.load_state_dict: {message}"):
        scheduler.load_state_dict(plateau_state(**change))
    assert optimizer.param_groups[0]['lr'] == 0.1 and scheduler.mode == 'min'


@pytest.mark.parametrize('kind', list(SCHEDULERS) + ['ReduceLROnPlateau'])
def test_a_state_dict_round_trip_resumes_the_same_learning_rates(kind):
    make = SCHEDULERS.get(kind, lambda o: L.ReduceLROnPlateau(o, patience=0))
    step = (lambda s: s.step(1.0)) if kind == 'ReduceLROnPlateau' else (lambda s: s.step())
    a = make(sgd())
    for _ in range(3):
        step(a)
    b = make(sgd())
    b.load_state_dict(a.state_dict())
    for _ in range(4):
        assert b.get_last_lr() == a.get_last_lr()
        step(a), step(b)


@pytest.mark.parametrize('metric', [np.array([1.0, 2.0]), minidl.tensor([1.0, 2.0])])
def test_reduce_lr_on_plateau_step_wants_one_number(metric):
    with pytest.raises(ValueError, match=r"ReduceLROnPlateau.step: metric must be one number, "
                                         r"got shape \(2,\)"):
        L.ReduceLROnPlateau(sgd()).step(metric)


def test_reduce_lr_on_plateau_takes_one_element_metrics_as_pytorch():
    scheduler = L.ReduceLROnPlateau(sgd())
    scheduler.step(minidl.tensor([[3.0]]))
    scheduler.step(np.float32(2.0))
    assert scheduler.best == 2.0


@requires_torch
@pytest.mark.parametrize('ours, theirs', [
    (lambda o: L.StepLR(o, 3, gamma=0.5), lambda o: torch.optim.lr_scheduler.StepLR(o, 3, 0.5)),
    (lambda o: L.MultiStepLR(o, [7, 2, 2]),
     lambda o: torch.optim.lr_scheduler.MultiStepLR(o, [7, 2, 2])),
    (lambda o: L.CosineAnnealingLR(o, 10, eta_min=0.01),
     lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, 10, eta_min=0.01)),
])
def test_learning_rates_match_pytorch_over_30_epochs(ours, theirs):
    mine = ours(sgd(0.1))
    reference = theirs(torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1))
    for _ in range(30):
        assert mine.get_last_lr() == pytest.approx(reference.get_last_lr(), rel=1e-12)
        mine.step()
        reference.optimizer.step()
        reference.step()


# ----------------------------------------------------------------------------- averaging
@pytest.mark.parametrize('option, message', [
    (dict(avg_fn=3), r"AveragedModel: avg_fn must be a function or None, got 3"),
    (dict(multi_avg_fn='ema'), r"AveragedModel: multi_avg_fn must be a function or None"),
    (dict(use_buffers='no'), r"AveragedModel: use_buffers must be True or False, got 'no'"),
])
def test_averaged_model_options_are_checked_when_it_is_made(option, message):
    with pytest.raises(TypeError, match=message):
        AveragedModel(nn.Linear(2, 3), **option)


@pytest.mark.parametrize('model', [None, 'model'])
def test_update_parameters_and_lookahead_update_want_a_module(model):
    with pytest.raises(TypeError, match=r"AveragedModel.update_parameters: model must be a "
                                        r"minidl Module, got"):
        AveragedModel(nn.Linear(2, 3)).update_parameters(model)
    with pytest.raises(TypeError, match=r"LookaheadState.update: model must be a minidl "
                                        r"Module, got"):
        LookaheadState(nn.Linear(2, 3)).update(model, 0.5)


# ----------------------------------------------------------------------------- recipes
@pytest.mark.parametrize('make, error, message', [
    (lambda: recipes.TriangleLR(sgd(), '10'), TypeError,
     r"TriangleLR: total_steps must be an int >= 0, got '10'"),
    (lambda: recipes.TriangleLR(sgd(), 2.5), TypeError, r"total_steps must be an int >= 0"),
    (lambda: recipes.TriangleLR(sgd(), -5), ValueError, r"total_steps must be an int >= 0"),
    (lambda: recipes.TriangleLR(None, 10), TypeError,
     r"TriangleLR: optimizer must be a minidl Optimizer, got NoneType"),
    (lambda: recipes.TriangleLR(sgd(), 10).load_state_dict({'step': -3}), ValueError,
     r"TriangleLR.load_state_dict: step must be an int >= 0, got -3"),
    (lambda: recipes.TriangleLR(sgd(), 10).load_state_dict(None), ValueError,
     r"TriangleLR.load_state_dict: expected a dict with 'step', got None"),
    (lambda: recipes.Lookahead(nn.Linear(2, 2), 10, every=0), ValueError,
     r"Lookahead: every must be an int >= 1, got 0"),
    (lambda: recipes.Lookahead(nn.Linear(2, 2), 10, decay=2), ValueError,
     r"Lookahead: decay must be a number in \[0, 1\], got 2"),
    (lambda: recipes.Lookahead(None, 10), TypeError, r"Lookahead: model must be a minidl Module"),
    (lambda: recipes.Whitening(nn.Linear(2, 2), None, bias_epochs=-1), ValueError,
     r"Whitening: bias_epochs must be an int >= 0, got -1"),
    (lambda: recipes.param_groups(nn.Linear(2, 2), 0.1, 5e-4, bias_scale=0), ValueError,
     r"param_groups: bias_scale must be a number > 0, got 0"),
    (lambda: recipes.param_groups(None, 0.1, 5e-4), TypeError,
     r"param_groups: model must be a minidl Module, got NoneType"),
])
def test_recipe_arguments_are_checked_when_given(make, error, message):
    with pytest.raises(error, match=message):
        make()


# ----------------------------------------------------------------------------- studies
@pytest.mark.parametrize('kwargs, error, message', [
    (dict(name=['lrn']), ValueError, r"studies.run: unknown study \['lrn'\]; known: dropout"),
    (dict(name='nope'), ValueError, r"studies.run: unknown study 'nope'; known: dropout"),
    (dict(name='lrn', seeds=-1), ValueError, r"studies.run: seeds must be an int >= 1, got -1"),
    (dict(name='lrn', seeds=1.5), TypeError, r"studies.run: seeds must be an int >= 1"),
    (dict(name='lrn', quick='no'), TypeError, r"studies.run: quick must be True or False"),
])
def test_study_run_checks_its_arguments_before_it_trains(kwargs, error, message, tmp_path):
    with pytest.raises(error, match=message):
        studies.run(out=str(tmp_path / 'out'), data=str(tmp_path), **kwargs)
    assert not (tmp_path / 'out').exists()
