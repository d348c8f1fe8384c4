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
