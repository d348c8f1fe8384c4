"""minidl.studies: every study runs in quick mode on tiny fake CIFAR-10 files and writes a
valid result.json (measured numbers beside the paper's) and at least one picture."""
import json

import numpy as np
import pytest

import minidl
from minidl import studies
from minidl.studies.alexnet import _epochs_to, four_layer_cnn
from fakedata import write_cifar

pytest.importorskip('matplotlib')


@pytest.fixture(scope='module')
def cifar(tmp_path_factory):
    root = tmp_path_factory.mktemp('data')
    write_cifar(root, n_per_batch=40, n_test=40)   # 200 training images, 40 test
    return str(root)


@pytest.mark.parametrize('name', studies.names())
def test_every_study_runs_quick_and_writes_its_result_and_pictures(name, cifar, tmp_path):
    out = tmp_path / name
    result = studies.run(name, quick=True, out=str(out), data=cifar, log=lambda *a: None)
    saved = json.loads((out / 'result.json').read_text())
    assert saved['study'] == name and saved['settings']['quick'] is True
    assert saved['claim'] and saved['source'] and saved['paper'] and saved['measured']
    assert isinstance(saved['verdict'], str) and len(saved['verdict']) > 40
    assert saved == json.loads(json.dumps(result))
    pictures = list(out.glob('*.png'))
    assert pictures and all(p.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n' for p in pictures)


def test_the_list_names_the_studies():
    assert {'relu-vs-tanh', 'init-scale', 'where-time-goes'} <= set(studies.names())


def test_an_unknown_study_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown study 'nope'; known: .*relu-vs-tanh"):
        studies.run('nope')


def test_the_four_layer_cnn_of_figure_1_maps_cifar_images_to_ten_scores():
    for kwargs in ({}, {'activation': 'tanh'}, {'lrn': True}, {'pool': (2, 2)}):
        net = four_layer_cnn(**kwargs)
        assert net(minidl.tensor(np.zeros((2, 3, 32, 32), np.float32))).shape == (2, 10)
        convs = [m for m in net.modules() if isinstance(m, minidl.nn.Conv2d)]
        assert [c.out_channels for c in convs] == [32, 32, 64]


def test_epochs_to_a_training_error_is_the_first_epoch_at_or_below_it():
    history = [{'epoch': e, 'train_error': err} for e, err in enumerate([0.5, 0.3, 0.25, 0.2], 1)]
    assert _epochs_to(history, 0.25) == 3 and _epochs_to(history, 0.1) is None


class _RaceContext:
    """A stand-in for the study context whose training error falls by ``speed[lr]`` per
    epoch (from 1.0), and that records each run's epoch budget."""
    def __init__(self, speed):
        self.speed, self.budgets = speed, {}

    def log(self, *args):
        pass

    def train(self, model, data, epochs, lr, stop=None, seed=0):
        self.budgets[lr] = epochs
        history = []
        for e in range(1, epochs + 1):
            err = max(0.0, 1.0 - self.speed[lr] * e)
            history.append({'epoch': e, 'train_error': err, 'train_loss': err})
            if stop and stop(history):
                break
        return history


def test_the_learning_rate_race_keeps_the_fastest_and_caps_the_others():
    from minidl.studies.alexnet import fastest_learning_rate
    ctx = _RaceContext({0.01: 0.1, 0.003: 0.02, 0.03: 0.25})  # 25% at epochs 8, 38, 3
    best, reached = fastest_learning_rate(ctx, lambda: None, None, (0.01, 0.003, 0.03),
                                          epochs=30, target=0.25)
    assert best['lr'] == 0.03 and reached == {0.01: 8, 0.003: None, 0.03: 3}
    assert ctx.budgets == {0.01: 30, 0.003: 8, 0.03: 8}  # after 0.01's 8, 8 at most


def test_the_verdict_says_when_tanh_was_the_faster():
    from minidl.studies.alexnet import _relu_tanh_verdict
    verdict = _relu_tanh_verdict({'relu': [11, 11], 'tanh': [10, 11]}, [10 / 11, 1.0], 30,
                                 5000, quick=True)
    assert 'tanh 1.0x faster: not reproduced' in verdict  # 11 / 10.5 epochs
    verdict = _relu_tanh_verdict({'relu': [6], 'tanh': [36]}, [6.0], 30, 5000, quick=True)
    assert 'ReLU 6.0x faster' in verdict


def test_a_seed_fixes_the_initial_weights_of_a_model_built_by_train(cifar):
    from minidl.studies.base import Context
    ctx = Context(quick=True, data=cifar, log=lambda *a: None)
    data = ctx.cifar(64, 32)
    runs = [ctx.train(lambda: four_layer_cnn('relu'), data, 1, 0.01, seed=s)[0]['train_loss']
            for s in (3, 4, 3)]
    assert runs[0] == runs[2] != runs[1]
