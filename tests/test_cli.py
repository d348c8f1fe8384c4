"""The `minidl` command on tiny data files in the real formats: train, resume, eval,
summary, plot, and one-line errors for bad input."""
import json
import subprocess
import sys

import pytest

from fakedata import write_cifar, write_fashion
from minidl import cli
from minidl.data import datasets, download


@pytest.fixture
def data(tmp_path, monkeypatch):
    """A data root with tiny CIFAR-10 and Fashion-MNIST, no network, no other data."""
    root = tmp_path / 'data'
    write_cifar(root, n_per_batch=8, n_test=12)
    write_fashion(root / 'fashion-mnist', n_train=16, n_test=8)
    monkeypatch.setenv('MINIDL_DATA', str(root))
    monkeypatch.setenv('HOME', str(tmp_path / 'home'))
    monkeypatch.setattr(datasets, 'DEBIAN_FASHION_MNIST', str(tmp_path / 'no-debian'))
    monkeypatch.setattr(download, 'urlopen', lambda *a, **k: (_ for _ in ()).throw(OSError()))
    return root


def run(*argv):
    return cli.main([str(a) for a in argv])


def test_train_writes_history_checkpoints_and_pictures(data, tmp_path, capsys):
    out = tmp_path / 'run'
    assert run('train', '--model', 'alexnet-cifar-2class', '--classes', 'airplane,ship',
               '--epochs', 2, '--batch-size', 4, '--out', out) == 0
    history = json.loads((out / 'history.json').read_text())
    assert [r['epoch'] for r in history] == [1, 2]
    assert {'checkpoint.npz', 'best.npz', 'config.json'} <= {p.name for p in out.iterdir()}
    printed = capsys.readouterr().out
    assert 'epoch 2:' in printed and 'done: final test top-1' in printed
    pytest.importorskip('matplotlib')
    assert {'curves.png', 'filters.png', 'confusion.png', 'predictions.png'} <= \
        {p.name for p in out.iterdir()}


def test_resume_continues_and_eval_reads_the_checkpoint(data, tmp_path, capsys):
    out = tmp_path / 'run'
    common = ('--model', 'alexnet-cifar', '--batch-size', 8, '--out', out)
    assert run('train', *common, '--epochs', 1) == 0
    assert run('train', '--resume', '--out', out, '--epochs', 2) == 0
    assert [r['epoch'] for r in json.loads((out / 'history.json').read_text())] == [1, 2]
    capsys.readouterr()
    assert run('eval', '--checkpoint', out / 'checkpoint.npz') == 0
    assert 'test set (12 images): loss' in capsys.readouterr().out


def test_fashion_mnist_28x28_gray_images_train(data, tmp_path):
    out = tmp_path / 'fm'
    assert run('train', '--model', 'alexnet-cifar', '--dataset', 'fashion-mnist',
               '--epochs', 1, '--batch-size', 8, '--out', out) == 0
    assert json.loads((out / 'config.json').read_text())['dataset'] == 'fashion-mnist'


def test_plot_and_summary_commands(data, tmp_path, capsys):
    pytest.importorskip('matplotlib')
    out = tmp_path / 'run'
    run('train', '--model', 'alexnet-cifar-2class', '--epochs', 1, '--out', out)
    (out / 'curves.png').unlink()
    assert run('plot', out) == 0
    assert (out / 'curves.png').exists()
    assert run('summary', '--model', 'alexnet') == 0
    assert 'total: 62,378,344 parameters' in capsys.readouterr().out


@pytest.mark.parametrize('argv, message', [
    (('train', '--model', 'alexnet', '--epochs', 1), 'expects 224x224 images'),
    (('train', '--model', 'alexnet-cifar', '--device', 'cuda'), "device 'cuda' requested"),
    (('train', '--model', 'alexnet-cifar', '--classes', 'airplane,dragon'),
     "unknown class 'dragon'"),
    (('train', '--model', 'alexnet-cifar', '--epochs', 0), 'must be positive'),
    (('train', '--model', 'alexnet-cifar', '--dataset', 'fashion-mnist', '--lighting'),
     'needs RGB images'),
    (('train', '--resume'), '--resume needs --out'),
    (('eval', '--checkpoint', 'missing.npz'), 'missing.npz'),
])
def test_impossible_settings_are_one_line_errors(data, argv, message, capsys):
    assert run(*argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and '\n' not in err and 'Traceback' not in err


def test_an_existing_run_is_never_overwritten(data, tmp_path, capsys):
    out = tmp_path / 'run'
    run('train', '--model', 'alexnet-cifar-2class', '--epochs', 1, '--out', out)
    before = (out / 'checkpoint.npz').read_bytes()
    assert run('train', '--model', 'alexnet-cifar-2class', '--epochs', 1, '--out', out) == 2
    assert 'already holds a run' in capsys.readouterr().err
    assert (out / 'checkpoint.npz').read_bytes() == before


def test_missing_data_is_one_line_naming_where_it_looked(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv('MINIDL_DATA', str(tmp_path / 'nothing'))
    monkeypatch.setenv('HOME', str(tmp_path))
    monkeypatch.setattr(download, 'urlopen', lambda *a, **k: (_ for _ in ()).throw(OSError()))
    assert run('train', '--model', 'alexnet-cifar', '--out', tmp_path / 'r') == 2
    err = capsys.readouterr().err
    assert 'MINIDL_DATA' in err and 'Traceback' not in err


@pytest.mark.parametrize('argv, message', [
    (['train', '--model', 'resnet50'], "invalid choice: 'resnet50'"),
    (['train', '--model', 'alexnet-cifar', '--dataset', 'mnist'], "invalid choice: 'mnist'"),
    (['train', '--model', 'alexnet-cifar', '--device', 'tpu'], "invalid choice: 'tpu'"),
])
def test_unknown_names_are_rejected_by_the_parser(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_python_dash_m_minidl_is_the_command():
    result = subprocess.run([sys.executable, '-m', 'minidl', '--help'], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0 and 'train' in result.stdout and 'summary' in result.stdout
