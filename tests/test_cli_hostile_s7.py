"""Hostile input to the `minidl` command (vgg-fast-cifar recipe, eval, plot, study): each
is one error line and exit status 2, never a traceback, a hang, a silent wrong answer or a
file written where the user did not ask."""
import json
import os
import subprocess
import sys

import numpy as np

import minidl
from test_cli import REPO, data, run  # noqa: F401  (the tiny-data fixture: 40 train images)

FAST = ('--model', 'vgg-fast-cifar', '--epochs', 1, '--batch-size', 8)


def one_line(capsys, *phrases):
    err = capsys.readouterr().err.strip()
    assert '\n' not in err and 'Traceback' not in err, err
    for phrase in phrases:
        assert phrase in err, err
    return err


def train_refused(capsys, out, *argv, phrases=()):
    """`minidl train ARGV --out OUT` is refused: exit status 2, one line holding every
    phrase, and OUT not created."""
    assert run('train', *argv, '--out', out) == 2
    one_line(capsys, *phrases)
    assert not out.exists()


def trained(tmp_path, capsys, epochs=1):
    out = tmp_path / 'run'
    assert run('train', *FAST[:2], '--epochs', epochs, *FAST[4:], '--out', out) == 0
    capsys.readouterr()
    return out


def test_a_batch_larger_than_the_training_set_is_not_a_run_without_steps(data, tmp_path,
                                                                         capsys):
    # the recipe's batch of 512 on 40 images: drop_last left no step, and the run
    # "trained" with loss 0.0000, acc 0.00%
    assert run('train', '--model', 'vgg-fast-cifar', '--epochs', 1,
               '--out', tmp_path / 'r') == 2
    one_line(capsys, '--batch-size 512', '40 training images', 'at most 40')
    assert not (tmp_path / 'r').exists()
    assert run('train', *FAST, '--train-size', 4, '--out', tmp_path / 'r') == 2
    one_line(capsys, '--batch-size 8', '4 training images')


def test_an_empty_out_is_refused_not_replaced_by_the_default(data, tmp_path, monkeypatch,
                                                              capsys):
    monkeypatch.chdir(tmp_path)
    assert run('train', *FAST, '--out', '') == 2
    one_line(capsys, "--out must name a run directory, got ''")
    assert run('study', 'relu-vs-tanh', '--quick', '--out', '') == 2
    one_line(capsys, "--out must name a result directory, got ''")
    assert not (tmp_path / 'runs').exists() and not (tmp_path / 'studies').exists()


def test_lighting_is_not_silently_dropped_by_alternating_flips(data):
    # the recipe's pipeline (alternating flips) had no place for --lighting: computed, unused
    from minidl.cli import build_data, GENERIC, MODEL_DEFAULTS
    from minidl.data import transforms as T
    cfg = dict(GENERIC, **MODEL_DEFAULTS['vgg-fast-cifar'])
    cfg.update(model='vgg-fast-cifar', lighting=True, batch_size=8)
    assert cfg['flip'] == 'alternating'
    steps = build_data(cfg, 0, 1)[2].transform.transforms
    assert any(isinstance(step, T.Lighting) for step in steps)
    assert isinstance(steps[-1], T.Normalize)          # lighting before normalisation


def test_data_not_found_is_one_line(data, tmp_path, monkeypatch, capsys):
    (tmp_path / 'empty').mkdir()
    (tmp_path / 'nowhere').mkdir()  # exists (an explicit --data must), holds no data
    monkeypatch.setenv('MINIDL_DATA', str(tmp_path / 'empty'))
    assert run('train', *FAST, '--data', tmp_path / 'nowhere', '--out', tmp_path / 'r') == 2
    # an explicit --data is the only place looked at (tests/test_cli_hostile_s8b.py)
    one_line(capsys, 'has no CIFAR10 train split', str(tmp_path / 'nowhere'))


def test_checkpoints_without_usable_weights(data, tmp_path, capsys):
    out = trained(tmp_path, capsys)
    state = minidl.load(out / 'best.npz')
    for name, change in (('nomodel', lambda s: s.pop('model')),
                         ('strmodel', lambda s: s.update(model='x')),
                         ('nan', lambda s: s['model'].update(
                             {'head.weight': np.full_like(s['model']['head.weight'],
                                                          np.nan)}))):
        bad = dict(state, model=dict(state['model']))
        change(bad)
        minidl.save(bad, tmp_path / f'{name}.npz')
        assert run('eval', '--checkpoint', tmp_path / f'{name}.npz', '--tta') == 2, name
        one_line(capsys, f'{name}.npz')
    (tmp_path / 'p').mkdir()
    minidl.save(dict(state, history=[1, 2]), tmp_path / 'p' / 'best.npz')
    assert run('plot', tmp_path / 'p') == 2
    one_line(capsys, "'history' must be a non-empty list")


def test_eval_of_a_pipe_does_not_hang(data, tmp_path):
    fifo = tmp_path / 'fifo'
    os.mkfifo(fifo)
    env = {**os.environ, 'PYTHONPATH': os.pathsep.join([REPO, os.environ.get('PYTHONPATH',
                                                                             '')])}
    result = subprocess.run([sys.executable, '-m', 'minidl', 'eval', '--checkpoint', fifo],
                            env=env, capture_output=True, text=True, timeout=20)
    assert result.returncode == 2, result.stderr
    assert 'not a regular file' in result.stderr and 'Traceback' not in result.stderr


def test_resume_cannot_lower_epochs_below_those_done(data, tmp_path, capsys):
    out = trained(tmp_path, capsys, epochs=2)
    before = (out / 'config.json').read_text()
    assert run('train', '--resume', '--out', out, '--epochs', 1) == 2
    one_line(capsys, '--epochs 1', 'finished 2 epoch(s)', 'at least 2')
    assert (out / 'config.json').read_text() == before
    assert json.loads(before)['epochs'] == 2
