"""minidl.distributed: averaging gradients over N ranks is exactly one large-batch step.

The MPI tests launch ``mpiexec -n 2`` on tests/mpi_worker.py (skipped without mpi4py and
an mpiexec); the rest runs in this one process, a world of size 1."""
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import minidl
import minidl.distributed as dist
import minidl.functional as F
from minidl.nn import SyncBatchNorm
from helpers import rand
from fakedata import write_cifar

WORKER = os.path.join(os.path.dirname(__file__), 'mpi_worker.py')
REPO = os.path.dirname(os.path.dirname(os.path.abspath(minidl.__file__)))
MPIEXEC = shutil.which('mpiexec', path=os.path.dirname(sys.executable)) or shutil.which('mpiexec')
try:
    import mpi4py  # noqa: F401
except ImportError:
    mpi4py = None
requires_mpi = pytest.mark.skipif(mpi4py is None or MPIEXEC is None,
                                  reason="needs mpi4py and mpiexec (pip install -e '.[mpi]')")


def mpiexec(mode, timeout=120, **env):
    """Run the worker on 2 ranks; (exit status, output, seconds). Open MPI is told that
    root may run it (CI runs as root) and that 2 ranks may share fewer cores."""
    env = {**os.environ, 'OMPI_ALLOW_RUN_AS_ROOT': '1', 'OMPI_ALLOW_RUN_AS_ROOT_CONFIRM': '1',
           **env}
    start = time.monotonic()
    run = subprocess.run([MPIEXEC, *_oversubscribe(), '-n', '2', sys.executable, WORKER, mode],
                         capture_output=True, text=True, timeout=timeout, env=env)
    return run.returncode, run.stdout + run.stderr, time.monotonic() - start


# ----------------------------------------------------------------------------- one process
def test_without_mpiexec_the_world_is_this_process_alone():
    assert dist.init() == 1
    assert (dist.rank(), dist.world_size(), dist.is_main()) == (0, 1, True)


def test_averaging_gradients_in_a_world_of_one_changes_nothing():
    w = rand(3, 4)
    (w * w).sum().backward()
    before = w.grad.numpy().copy()
    dist.average_gradients([w])
    np.testing.assert_array_equal(w.grad.numpy(), before)


def test_the_shards_of_a_permutation_are_its_consecutive_global_batches():
    perm = np.random.default_rng(0).permutation(22)
    shards = [dist.shard(perm, r, 2) for r in range(2)]
    assert len(shards[0]) == len(shards[1]) == 11   # 22 // 2: no rank gets more
    for k in range(5):  # rank r's k-th batch of 2 is its part of the k-th global batch of 4
        mine = np.concatenate([s[2 * k:2 * k + 2] for s in shards])
        assert sorted(mine) == sorted(perm[4 * k:4 * k + 4])
    assert len(dist.shard(np.arange(7), 0, 2)) == len(dist.shard(np.arange(7), 1, 2)) == 3


def test_buckets_pack_consecutive_parameters_of_one_dtype():
    params = [rand(10), rand(10), minidl.tensor(np.zeros(10, np.float32)), rand(30)]
    sizes = [[p.shape[0] for p in b] for b in dist._buckets(params, bucket_bytes=200)]
    assert sizes == [[10, 10], [10], [30]]


def test_sync_batch_norm_in_one_process_is_batch_norm():
    x = rand(4, 3, 2, 2)
    layer = SyncBatchNorm(3).double()
    y = layer(x)
    expected = F.batch_norm(x.detach(), np.zeros(3), np.ones(3), training=True)
    np.testing.assert_allclose(y.numpy(), expected.numpy(), rtol=1e-12)
    assert abs(layer.running_mean).max() > 0


def test_convert_sync_batchnorm_keeps_parameters_and_statistics():
    net = minidl.nn.Sequential(minidl.nn.Conv2d(3, 4, 3), minidl.nn.BatchNorm2d(4))
    weight = net[1].weight
    net = SyncBatchNorm.convert_sync_batchnorm(net)
    assert isinstance(net[1], SyncBatchNorm) and net[1].weight is weight
    assert [n for n, _ in net.named_buffers()] == ['1.running_mean', '1.running_var']


# ----------------------------------------------------------------------------- two ranks
@requires_mpi
def test_two_ranks_take_exactly_the_large_batch_step_of_one_process():
    code, out, _ = mpiexec('ddp')
    assert code == 0, out
    assert 'ok ddp rank 0' in out and 'ok ddp rank 1' in out


@requires_mpi
def test_sync_batch_norm_on_two_ranks_is_batch_norm_on_the_whole_batch():
    code, out, _ = mpiexec('syncbn')
    assert code == 0, out
    assert 'ok syncbn rank 0' in out and 'ok syncbn rank 1' in out


@requires_mpi
def test_a_rank_that_dies_stops_the_other_within_a_minute():
    code, out, seconds = mpiexec('die', timeout=90)
    assert code != 0 and seconds < 60
    assert 'survived' not in out
    assert 'rank 1' in out, out  # the launcher names the rank that died


@requires_mpi
def test_a_rank_that_hangs_stops_the_others_after_the_timeout_with_a_message():
    code, out, seconds = mpiexec('hang', timeout=90, MINIDL_DIST_TIMEOUT='5')
    assert code != 0 and seconds < 60, out
    assert 'waited 5 s for the other ranks in' in out and 'Stopping every rank' in out, out


# ----------------------------------------------------------------------------- minidl train
def minidl_train(out, *argv, timeout=180, background=False):
    """`mpiexec -n 2 python -m minidl train ...` on tiny fake CIFAR-10 files."""
    data = os.path.join(os.path.dirname(out), 'data')
    if not os.path.isdir(data):
        write_cifar(data, n_per_batch=40, n_test=40)
    env = {**os.environ, 'OMPI_ALLOW_RUN_AS_ROOT': '1', 'OMPI_ALLOW_RUN_AS_ROOT_CONFIRM': '1',
           'MINIDL_DATA': data, 'PYTHONPATH': REPO}
    command = [MPIEXEC, *_oversubscribe(), '-n', '2', sys.executable, '-m', 'minidl', 'train',
               '--out', out, *argv]
    if background:
        return subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)


TWO_CLASSES = ('--model', 'alexnet-cifar-2class', '--classes', 'airplane,ship')


@requires_mpi
def test_minidl_train_on_two_ranks_prints_each_epoch_once_and_resumes(tmp_path):
    out = str(tmp_path / 'run')
    first = minidl_train(out, *TWO_CLASSES, '--epochs', '1', '--batch-size', '8')
    assert first.returncode == 0, first.stdout + first.stderr
    assert '2 ranks x 4 images' in first.stdout
    assert first.stdout.count('epoch 1:') == 1 and '| 2 ranks' in first.stdout
    assert first.stdout.count('done:') == 1
    assert {'checkpoint.npz', 'best.npz', 'history.json', 'config.json'} <= set(os.listdir(out))
    again = minidl_train(out, '--resume', '--epochs', '2')
    assert again.returncode == 0, again.stdout + again.stderr
    assert again.stdout.count('epoch 2:') == 1 and 'epoch 1:' not in again.stdout
    assert len(minidl.load(os.path.join(out, 'checkpoint.npz'))['rng_ranks']) == 2


@requires_mpi
def test_a_global_batch_that_the_ranks_cannot_share_is_one_line(tmp_path):
    result = minidl_train(str(tmp_path / 'run'), *TWO_CLASSES, '--batch-size', '7')
    assert result.returncode != 0
    assert 'minidl train: error: --batch-size 7 is the global batch and must be divisible ' \
           'by the 2 ranks' in result.stderr
    assert 'Traceback' not in result.stderr


@requires_mpi
def test_ctrl_c_on_one_rank_stops_every_rank_after_the_same_step_and_saves(tmp_path):
    out = str(tmp_path / 'run')
    run = minidl_train(out, *TWO_CLASSES, '--epochs', '200', '--batch-size', '4',
                       background=True)
    deadline = time.monotonic() + 60
    while not os.path.exists(os.path.join(out, 'checkpoint.npz')):
        assert time.monotonic() < deadline and run.poll() is None, run.stdout.read()
        time.sleep(0.2)
    rank1 = [pid for pid in _pids_with(out) if b'OMPI_COMM_WORLD_RANK=1\0' in _environ(pid)]
    assert len(rank1) == 1
    os.kill(rank1[0], signal.SIGINT)
    output, _ = run.communicate(timeout=60)
    assert run.returncode == 130, output
    assert output.count('interrupted: checkpoint saved at epoch') == 1, output
    state = minidl.load(os.path.join(out, 'checkpoint.npz'))
    assert state['step'] > 0 and len(state['rng_ranks']) == 2


def _oversubscribe():
    version = subprocess.run([MPIEXEC, '--version'], capture_output=True, text=True).stdout
    return ['--oversubscribe'] if 'Open MPI' in version or 'OpenRTE' in version else []


def _pids_with(marker):
    """The processes of `python -m minidl` whose command line holds ``marker``."""
    for name in filter(str.isdigit, os.listdir('/proc')):
        try:
            with open(f'/proc/{name}/cmdline', 'rb') as f:
                command = f.read()
        except OSError:  # (gone meanwhile)
            continue
        if marker.encode() in command and b'-m\0minidl' in command:
            yield int(name)


def _environ(pid):
    with open(f'/proc/{pid}/environ', 'rb') as f:
        return f.read()


@pytest.mark.parametrize('value', ['abc', '0', '-5', 'inf', 'nan'])
def test_a_bad_timeout_setting_is_one_clear_error_when_the_world_starts(monkeypatch, value):
    monkeypatch.setenv('MINIDL_DIST_TIMEOUT', value)
    with pytest.raises(ValueError, match=r"MINIDL_DIST_TIMEOUT must be a positive number of "
                                         rf"seconds, got '{value}'"):
        dist.timeout()
    monkeypatch.setenv('OMPI_COMM_WORLD_SIZE', '2')  # as if launched by mpiexec
    monkeypatch.setattr(dist._World, 'comm', None)
    with pytest.raises(ValueError, match=r"MINIDL_DIST_TIMEOUT"):
        dist.init()


def test_the_timeout_defaults_to_a_minute_and_reads_the_setting(monkeypatch):
    monkeypatch.delenv('MINIDL_DIST_TIMEOUT', raising=False)
    assert dist.timeout() == 60
    monkeypatch.setenv('MINIDL_DIST_TIMEOUT', '2.5')
    assert dist.timeout() == 2.5
