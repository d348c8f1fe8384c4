"""The `minidl` command on tiny data files in the real formats: train, resume, eval,
summary, plot, and one-line errors for bad input."""
import errno
import json
import os
import shutil
import subprocess
import sys

import pytest

import minidl
from fakedata import write_cifar, write_fashion
from minidl import cli, files
from minidl.data import datasets, download

REPO = os.path.dirname(os.path.dirname(os.path.abspath(minidl.__file__)))


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


def minidl_command(*argv, cwd=None, **env):
    """The real command (`python -m minidl`) in a new process, on this checkout's code."""
    environ = {**os.environ, **env,
               'PYTHONPATH': os.pathsep.join([REPO, os.environ.get('PYTHONPATH', '')])}
    return subprocess.run([sys.executable, '-m', 'minidl', *map(str, argv)], cwd=cwd,
                          env=environ, capture_output=True, text=True, timeout=300)


def assert_one_line_error(result, *phrases, status=2):
    err = result.stderr.strip()
    assert result.returncode == status, result.stderr
    assert '\n' not in err and 'Traceback' not in err, err
    for phrase in phrases:
        assert phrase in err, err


def snapshot(directory):
    """{relative path: bytes} of every file under ``directory``, hidden ones included."""
    return {os.path.relpath(os.path.join(d, name), directory):
            open(os.path.join(d, name), 'rb').read()
            for d, _, names in os.walk(directory) for name in names}


def epochs_in(run_dir):
    return [r['epoch'] for r in json.loads((run_dir / 'history.json').read_text())]


TINY = ('--model', 'alexnet-cifar-2class', '--batch-size', 64)  # one step per epoch


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
    (('train', '--model', 'alexnet-cifar', '--epochs', 0),
     '--epochs must be a positive integer, got 0'),
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
def test_unknown_names_are_rejected_by_the_parser_in_one_line(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and message in err
    assert err.startswith('minidl train: error: ') and err.count('\n') == 1, err


def test_python_dash_m_minidl_is_the_command():
    result = subprocess.run([sys.executable, '-m', 'minidl', '--help'], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0 and 'train' in result.stdout and 'summary' in result.stdout


# ----------------------------------------------------------------------------- resume
def test_resume_continues_in_a_copy_and_never_writes_to_the_original(data, tmp_path):
    original = tmp_path / 'original'  # config.json records this absolute path
    assert run('train', *TINY, '--epochs', 1, '--out', original) == 0
    before = snapshot(original)
    shutil.copytree(original, tmp_path / 'elsewhere' / 'copy')
    result = minidl_command('train', '--resume', '--out', 'copy', '--epochs', 2,
                            cwd=tmp_path / 'elsewhere')
    assert result.returncode == 0, result.stderr
    assert snapshot(original) == before
    assert epochs_in(tmp_path / 'elsewhere' / 'copy') == [1, 2]
    assert os.listdir(tmp_path / 'elsewhere') == ['copy']


def test_a_moved_run_resumes_where_it_is_now_and_the_old_path_stays_gone(data, tmp_path,
                                                                         monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert run('train', *TINY, '--epochs', 1, '--out', 'run') == 0  # config.json: 'run'
    (tmp_path / 'moved').mkdir()
    shutil.move(tmp_path / 'run', tmp_path / 'moved' / 'run')
    result = minidl_command('train', '--resume', '--out', os.path.join('moved', 'run'),
                            '--epochs', 2, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert epochs_in(tmp_path / 'moved' / 'run') == [1, 2]
    assert not (tmp_path / 'run').exists()


def test_resume_refuses_options_it_would_ignore(data, tmp_path):
    out = tmp_path / 'run'
    assert run('train', *TINY, '--epochs', 1, '--out', out) == 0
    before = snapshot(out)
    result = minidl_command('train', '--resume', '--out', out, '--epochs', 2, '--lr', 0.5,
                            '--seed', 3)
    assert_one_line_error(result, 'only --epochs, --device and --data may change, not '
                                  '--lr, --seed')
    assert snapshot(out) == before


def test_a_run_deletes_leftover_temporaries_of_its_own_naming_and_nothing_else(data,
                                                                               tmp_path):
    out = tmp_path / 'run'  # a run killed (kill -9) before its first checkpoint
    out.mkdir()
    leftovers = ['.checkpoint.npz.0123456789ab.tmp', '.curves.png.fedcba987654.tmp']
    others = ['notes.txt', '.checkpoint.npz.tmp', 'checkpoint.npz.0123456789ab.tmp',
              '.best.npz.0123456789AB.tmp', '.best.npz.0123456789a.tmp', '.my.tmp']
    for name in leftovers + others:
        (out / name).write_bytes(b'as a kill -9 left it')
    (out / '.dir.0123456789ab.tmp').mkdir()
    result = minidl_command('train', *TINY, '--epochs', 1, '--out', out)
    assert result.returncode == 0, result.stderr
    names = set(os.listdir(out))
    assert not names & set(leftovers)
    assert set(others) | {'.dir.0123456789ab.tmp'} <= names


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize('argv, message', [
    (('train', '--model', 'alexnet-cifar', '--train-size', -3),
     '--train-size must be a positive integer, got -3'),
    (('train', '--model', 'alexnet-cifar', '--train-size', 0),
     '--train-size must be a positive integer, got 0'),
    (('train', '--model', 'alexnet-cifar', '--test-size', 0),
     '--test-size must be a positive integer, got 0'),
    (('train', '--model', 'alexnet-cifar', '--width', 0),
     '--width must be a positive number, got 0'),
    (('train', '--model', 'alexnet-cifar', '--width', -1),
     '--width must be a positive number, got -1'),
    (('train', '--model', 'alexnet-cifar', '--classes', ''),
     "--classes must name at least two classes, got ''"),
    (('train', '--model', 'alexnet-cifar', '--classes', 'airplane'),
     "--classes must name at least two classes, got 'airplane'"),
    (('train', '--model', 'alexnet-cifar', '--seed', -1),
     '--seed must be a non-negative integer, got -1'),
    (('train', '--model', 'alexnet-cifar', '--lr', 'inf'),
     '--lr must be a positive finite number, got inf'),
    (('train', '--model', 'alexnet-cifar', '--lr', 'nan'),
     '--lr must be a positive finite number, got nan'),
    (('summary', '--model', 'alexnet', '--batch', 0), '--batch must be a positive integer, got 0'),
    (('summary', '--model', 'alexnet', '--num-classes', -1),
     '--num-classes must be a positive integer, got -1'),
    (('summary', '--model', 'alexnet', '--num-classes', 0),
     '--num-classes must be a positive integer, got 0'),
])
def test_settings_that_would_be_silently_wrong_are_one_line_errors(data, tmp_path, argv,
                                                                   message):
    before = set(os.listdir(tmp_path))
    result = minidl_command(*argv, cwd=tmp_path)
    assert_one_line_error(result, message)
    assert set(os.listdir(tmp_path)) == before  # no run directory was made


def test_out_naming_a_file_is_refused_before_the_data_is_read(data, tmp_path):
    (data / 'cifar-10-batches-py' / 'batches.meta').write_bytes(b'not read')
    (tmp_path / 'notes.txt').write_text('mine')
    result = minidl_command('train', '--model', 'alexnet-cifar', '--out', 'notes.txt',
                            cwd=tmp_path)
    assert_one_line_error(result, "--out: 'notes.txt' is a file, not a run directory")
    assert (tmp_path / 'notes.txt').read_text() == 'mine'


def test_eval_of_a_directory_says_which_file_to_give(tmp_path):
    (tmp_path / 'run').mkdir()
    result = minidl_command('eval', '--checkpoint', 'run', cwd=tmp_path)
    assert_one_line_error(result, "--checkpoint: 'run' is a directory; give a checkpoint "
                                  "file such as run/best.npz")


def test_eval_and_plot_of_a_checkpoint_without_a_run_configuration(tmp_path):
    run_dir = tmp_path / 'run'
    run_dir.mkdir()
    state = {'format': 'minidl-train', 'epoch': 1, 'model': {}, 'history': [], 'config': {}}
    minidl.save(state, run_dir / 'best.npz')  # as Trainer(..., config=None) writes it
    for argv in (('eval', '--checkpoint', run_dir / 'best.npz'), ('plot', run_dir)):
        assert_one_line_error(minidl_command(*argv), str(run_dir / 'best.npz'),
                              'holds no run configuration')


def test_resume_with_a_config_missing_settings_names_the_file_and_the_settings(tmp_path):
    (tmp_path / 'run').mkdir()
    (tmp_path / 'run' / 'config.json').write_text('{"model": "alexnet-cifar", "epochs": 2}')
    result = minidl_command('train', '--resume', '--out', 'run', cwd=tmp_path)
    assert_one_line_error(result, os.path.join('run', 'config.json'), 'lacks', "'dataset'",
                          "'lr'")


@pytest.mark.parametrize('text, says', [('{"model": "alexnet-cifar", ', 'not valid JSON'),
                                        ('[1, 2]', 'not a JSON object'),
                                        ('\udcff', 'not valid JSON')])
def test_a_corrupt_config_is_one_line_naming_the_file(tmp_path, text, says):
    (tmp_path / 'run').mkdir()
    (tmp_path / 'run' / 'config.json').write_text(text, errors='surrogateescape')
    result = minidl_command('train', '--resume', '--out', 'run', cwd=tmp_path)
    assert_one_line_error(result, os.path.join('run', 'config.json'), says)


def test_a_bad_thread_count_in_the_environment_is_one_line(tmp_path):
    result = minidl_command('summary', '--model', 'alexnet-cifar', MINIDL_NUM_THREADS='abc')
    assert_one_line_error(result, "MINIDL_NUM_THREADS must be a positive integer, got 'abc'")


def test_a_bad_winograd_setting_in_the_environment_is_one_line(tmp_path):
    result = minidl_command('summary', '--model', 'alexnet-cifar', MINIDL_WINOGRAD='5')
    assert_one_line_error(result, "MINIDL_WINOGRAD must be 0 (off), 1 or 2 (F(2x2), the "
                          "default) or 4 (F(4x4)), got '5'")


# ----------------------------------------------------------------------------- failures
def test_a_diverged_run_saves_nothing_from_the_diverged_step(data, tmp_path):
    result = minidl_command('train', *TINY, '--optimizer', 'sgd', '--lr', '1e30',
                            '--epochs', 1, '--out', 'run', cwd=tmp_path)
    assert_one_line_error(result, 'after epoch 1', 'nothing from it was saved')
    assert not {'checkpoint.npz', 'best.npz', 'history.json'} & set(os.listdir(tmp_path / 'run'))


def disk_full_when_writing(monkeypatch, name):
    """Writing the file ``name`` fails as on a full disk (ENOSPC) inside atomic_write."""
    doomed, create, fsync = set(), files._create_temp, os.fsync

    def create_temp(directory, target):
        tmp, fd = create(directory, target)
        if target == name:
            doomed.add(fd)
        return tmp, fd

    def full_fsync(fd):
        if fd in doomed:
            doomed.discard(fd)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return fsync(fd)
    monkeypatch.setattr(files, '_create_temp', create_temp)
    monkeypatch.setattr(os, 'fsync', full_fsync)


def test_a_full_disk_is_one_line_naming_the_file_and_keeps_the_last_checkpoint(
        data, tmp_path, monkeypatch, capsys):
    out = tmp_path / 'run'
    assert run('train', *TINY, '--epochs', 1, '--out', out) == 0
    before = (out / 'checkpoint.npz').read_bytes()
    capsys.readouterr()
    disk_full_when_writing(monkeypatch, 'checkpoint.npz')
    status = run('train', '--resume', '--out', out, '--epochs', 2)
    err = capsys.readouterr().err.strip()
    assert status == 1 and '\n' not in err
    assert str(out / 'checkpoint.npz') in err and 'No space left on device' in err
    assert (out / 'checkpoint.npz').read_bytes() == before
    assert minidl.load(out / 'checkpoint.npz')['epoch'] == 1
    assert not [n for n in os.listdir(out) if n.endswith('.tmp')]


# ----------------------------------------------------------------------------- study, graph
def test_study_list_names_every_study_with_its_claim(capsys):
    from minidl import studies
    assert run('study', '--list') == 0
    out = capsys.readouterr().out
    for name in studies.names():
        assert name in out
    assert 'six times faster' in out


def test_a_quick_study_writes_its_result_and_prints_a_verdict(data, tmp_path):
    out = tmp_path / 'lrn'
    result = minidl_command('study', 'lrn', '--quick', '--out', out)
    assert result.returncode == 0, result.stderr
    assert 'verdict: Test error' in result.stdout
    assert json.loads((out / 'result.json').read_text())['study'] == 'lrn'
    assert (out / 'errors.png').exists()


@pytest.mark.parametrize('argv, phrase', [
    (('study',), 'needs a NAME or --list'),
    (('study', 'nope'), "unknown study 'nope'; known: dropout"),
    (('study', 'lrn', '--seeds', '0'), '--seeds must be a positive integer, got 0'),
    (('graph', '--model', 'alexnet-cifar', '--out', '/no/such/dir/g.svg'),
     "directory '/no/such/dir' does not exist"),
    (('graph', '--model', 'alexnet-cifar', '--out', 'g.dot', '--batch', '0'),
     '--batch must be a positive integer, got 0'),
    (('graph', '--model', 'alexnet-cifar', '--out', '.'), "must name a .svg, .png, .pdf or .dot"),
    (('graph', '--model', 'alexnet-cifar', '--out', 'g.txt'), "got 'g.txt'"),
])
def test_bad_study_and_graph_requests_are_one_line_errors(argv, phrase, tmp_path):
    assert_one_line_error(minidl_command(*argv, cwd=tmp_path), phrase)


def test_graph_writes_the_dot_text_and_a_hint_without_graphviz(tmp_path):
    bin_dir = os.path.dirname(sys.executable)  # python, but no Graphviz, on the PATH
    result = minidl_command('graph', '--model', 'alexnet-cifar-2class', '--out',
                            tmp_path / 'step.svg', PATH=bin_dir)
    assert result.returncode == 0, result.stderr
    assert 'functions ->' in result.stdout and 'apt-get install graphviz' in result.stdout
    dot = (tmp_path / 'step.dot').read_text()
    assert dot.startswith('digraph minidl {') and 'Conv2d' in dot and 'features.0.weight' in dot
    assert not (tmp_path / 'step.svg').exists()
