"""Data-parallel training over MPI (``mpiexec -n N python train.py``), small enough to read.

Every rank (process) holds the whole model. Each global batch of B images is split into N
shards of B/N; rank r runs forward and backward on its shard, and then the ranks *average*
their gradients. With a loss that is a mean over the batch,

    dL/dw = 1/B sum_{i<B} dl_i/dw = 1/N sum_r ( 1/(B/N) sum_{i in shard r} dl_i/dw )

so the averaged gradient is exactly the gradient of one process on the whole batch, every
rank takes the same optimizer step, and the weights stay identical everywhere (they start
identical: ``broadcast_parameters`` copies rank 0's). What differs from one big process:
batch-norm statistics (per shard, unless ``nn.SyncBatchNorm``), dropout masks and random
crops (drawn per rank), and the order of floating-point additions. docs/distributed.md
has the details and the cost model.

    import minidl.distributed as dist
    dist.init()                                   # a world of size 1 without mpiexec
    dist.broadcast_parameters(model)
    for x, t in batches:                          # this rank's shard of each batch
        opt.zero_grad()
        F.cross_entropy(model(x), t).backward()
        dist.average_gradients(model.parameters())
        opt.step()

Communication is mpi4py (``pip install -e '.[mpi]'``) for NumPy arrays and NCCL (through
CuPy, GPU to GPU, one GPU per rank) for CuPy arrays: the gradients are packed into
contiguous buckets and each bucket is summed by one all-reduce, not one call per
parameter. (The NCCL path has not run on a GPU yet: see docs/distributed.md.) Every
collective waits at most ``timeout()`` seconds (``MINIDL_DIST_TIMEOUT``, default 60)
for the other ranks; a rank that died makes the others stop with a message naming the
operation, instead of hanging forever.
"""
import math
import os
import sys
import time

import numpy as np

from . import backend
from .functional.normalization import _channel_dot, _channel_shape, _per_channel
from .tensor import Function, Tensor

BUCKET_BYTES = 25 * 2 ** 20   # gradients are summed in buckets of about this size


def timeout():
    """Seconds a collective waits for the other ranks: ``MINIDL_DIST_TIMEOUT``, default 60.
    Read on use, so that a bad value is one ValueError where it matters (the ``minidl``
    command prints it in one line), not a traceback from ``import minidl``."""
    text = os.environ.get('MINIDL_DIST_TIMEOUT', '60')
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        raise ValueError(f"MINIDL_DIST_TIMEOUT must be a positive number of seconds, got "
                         f"{text!r}")
    return seconds

# environment variables that MPI launchers (Open MPI, MPICH, Intel MPI, Slurm's PMI) set
_LAUNCHER_VARIABLES = ('OMPI_COMM_WORLD_SIZE', 'PMI_SIZE', 'PMIX_RANK', 'MPI_LOCALNRANKS')


class _World:
    comm = None   # mpi4py's COMM_WORLD, or None: a world of one process without MPI
    nccl = None   # the NCCL communicator between the ranks' GPUs, made on first use
    rank = 0
    size = 1


def launched_by_mpi():
    """True when this process was started by ``mpiexec`` / ``mpirun`` (or srun with PMI)."""
    return any(name in os.environ for name in _LAUNCHER_VARIABLES)


def init():
    """Join the MPI world when launched by mpiexec (importing mpi4py); otherwise, or when
    called again, nothing happens and the world is this process alone. Returns the size."""
    if _World.comm is None and launched_by_mpi():
        timeout()  # a bad MINIDL_DIST_TIMEOUT: an error now, on every rank, not mid-run
        try:
            from mpi4py import MPI
        except ImportError:
            raise RuntimeError("minidl.distributed: launched by mpiexec but mpi4py is not "
                               "installed; pip install -e '.[mpi]'") from None
        _World.comm = MPI.COMM_WORLD
        _World.rank, _World.size = _World.comm.Get_rank(), _World.comm.Get_size()
        local = os.environ.get('OMPI_COMM_WORLD_LOCAL_RANK') or os.environ.get('MPI_LOCALRANKID')
        backend.select_gpu(int(local) if local else _World.rank)  # one GPU per rank
    return _World.size


def rank():
    """This process's rank: 0 .. world_size() - 1 (0 without MPI)."""
    return _World.rank


def world_size():
    """The number of processes training together (1 without MPI)."""
    return _World.size


def is_main():
    """True on rank 0, the one rank that writes checkpoints, history, pictures and logs."""
    return _World.rank == 0


# ----------------------------------------------------------------------------- collectives
def _wait(done, what):
    """Wait until ``done()`` (a non-blocking MPI request's Test, or a GPU stream's), at most
    ``timeout()`` seconds; then abort the world with a message."""
    start, pause, limit = time.monotonic(), 1e-5, timeout()
    while not done():
        if time.monotonic() - start > limit:
            sys.stderr.write(f"minidl.distributed: rank {_World.rank} of {_World.size} waited "
                             f"{limit:g} s for the other ranks in {what}; a rank has probably "
                             f"died or hangs. Stopping every rank.\n")
            sys.stderr.flush()
            _World.comm.Abort(1)
        time.sleep(pause)
        pause = min(pause * 2, 1e-3)


def _nccl():
    """The NCCL communicator (rank 0 makes the id and MPI hands it to the others)."""
    if _World.nccl is None:
        unique_id = backend.nccl_unique_id() if _World.rank == 0 else None
        unique_id = _World.comm.bcast(unique_id, root=0)
        _World.nccl = backend.nccl_communicator(_World.size, unique_id, _World.rank)
    return _World.nccl


def allreduce_(array, what='allreduce'):
    """Sum ``array`` (contiguous) over all ranks, in place; returns it. NumPy arrays go
    through MPI, CuPy arrays through NCCL, GPU to GPU."""
    if _World.size > 1:
        if backend.on_gpu(array):
            stream = backend.nccl_allreduce_sum_(_nccl(), array)
            _wait(lambda: backend.gpu_done(stream), what)
        else:
            from mpi4py import MPI
            _wait(_World.comm.Iallreduce(MPI.IN_PLACE, array, op=MPI.SUM).Test, what)
    return array


def broadcast_(array, what='broadcast'):
    """Overwrite ``array`` (contiguous) with rank 0's, in place; returns it."""
    if _World.size > 1:
        if backend.on_gpu(array):
            stream = backend.nccl_broadcast_(_nccl(), array)
            _wait(lambda: backend.gpu_done(stream), what)
        else:
            _wait(_World.comm.Ibcast(array, root=0).Test, what)
    return array


def barrier(what='barrier'):
    """Wait until every rank has reached this point (at most ``timeout()`` seconds)."""
    if _World.size > 1:
        _wait(_World.comm.Ibarrier().Test, what)


def gather_object(obj):
    """Rank 0 gets the list of every rank's ``obj`` (small picklable Python values, such as
    random states, sent between this run's own processes); the other ranks get None."""
    if _World.size == 1:
        return [obj]
    barrier('gather_object')  # (a dead rank is reported here, within the timeout)
    return _World.comm.gather(obj, root=0)


def broadcast_parameters(module):
    """Copy rank 0's parameters and buffers (running statistics) to every rank."""
    for name, p in module.named_parameters():
        xp = backend.get_array_module(p.data)
        p.data[...] = broadcast_(xp.ascontiguousarray(p.data), f"broadcast of {name}")
    for name, b in module.named_buffers():
        b[...] = broadcast_(backend.get_array_module(b).ascontiguousarray(b),
                            f"broadcast of {name}")


# ----------------------------------------------------------------------------- gradients
def _buckets(params, bucket_bytes):
    """Consecutive runs of same-dtype parameters of about ``bucket_bytes`` each."""
    bucket, size = [], 0
    for p in params:
        if bucket and (p.dtype != bucket[0].dtype or size + p.data.nbytes > bucket_bytes):
            yield bucket
            bucket, size = [], 0
        bucket.append(p)
        size += p.data.nbytes
    if bucket:
        yield bucket


def average_gradients(params, bucket_bytes=None):
    """Replace every parameter's ``.grad`` by its mean over all ranks.

    A parameter without a gradient on some ranks counts as a zero gradient there; one
    without a gradient on every rank keeps ``grad = None`` (so the optimizer skips it, as
    it would in one process). The gradients are packed into contiguous buckets of about
    ``bucket_bytes`` (``BUCKET_BYTES``), each summed by one all-reduce and divided by the
    world size.
    """
    params = list(params)
    if _World.size == 1 or not params:
        return
    has_grad = np.array([p.grad is not None for p in params], np.int32)
    allreduce_(has_grad, 'the all-reduce of which parameters have gradients')
    params = [p for p, flag in zip(params, has_grad) if flag]
    for bucket in _buckets(params, bucket_bytes or BUCKET_BYTES):
        xp = backend.get_array_module(bucket[0].data)
        flat = xp.concatenate([xp.zeros(p.data.size, p.dtype) if p.grad is None
                               else p.grad.data.reshape(-1) for p in bucket])
        allreduce_(flat, f"the gradient all-reduce ({len(bucket)} parameters)")
        flat /= _World.size
        start = 0
        for p in bucket:
            p.grad = flat[start:start + p.data.size].reshape(p.shape)
            start += p.data.size


def shard(indices, rank=None, world=None):
    """This rank's share of ``indices``: every ``world``-th item from position ``rank``,
    after dropping the tail that does not divide evenly (so every rank gets as many).

    Taken from the same permutation on every rank, the shards of consecutive blocks of
    ``world * b`` indices are exactly those blocks: rank r's k-th batch of b is its part of
    the k-th global batch of world * b.
    """
    rank = _World.rank if rank is None else rank
    world = _World.size if world is None else world
    indices = np.asarray(indices)
    return indices[:len(indices) - len(indices) % world][rank::world]


# ----------------------------------------------------------------------------- SyncBatchNorm
class SyncBatchNormFunction(Function):
    """Training-mode batch norm whose statistics are those of the *global* batch: the union
    of every rank's shard. As ``functional.normalization.BatchNorm``, with the per-channel
    sums all-reduced: n (values per channel), sum x, then sum (x - mean)^2.

    Backward: dL/dx needs the two sums of the whole batch, sum(gy) and sum(gy xhat), so
    they are all-reduced too:  dL/dx = f (n gy - sum(gy) - xhat sum(gy xhat)),
    f = weight inv_std / n. dL/dweight and dL/dbias stay this rank's own sums:
    ``average_gradients`` averages them with the rest (and that is right: each rank's
    upstream gradient is N times its share of the global mean loss's).
    """

    def __init__(self, eps, has_weight, has_bias):
        self.eps, self.has_weight, self.has_bias = eps, has_weight, has_bias

    def forward(self, x, *params):
        shape, c = _channel_shape(x.ndim, x.shape[1]), x.shape[1]
        xp = backend.get_array_module(x)
        sums = allreduce_(xp.concatenate([_per_channel(x).sum(axis=(0, 2)).astype(np.float64),
                                          xp.full(1, x.size // c, np.float64)]),
                          'SyncBatchNorm (mean)')
        self.n = sums[-1]
        mean = (sums[:c] / self.n).astype(x.dtype)
        centred = x - mean.reshape(shape)
        var = allreduce_(_channel_dot(centred, centred).astype(np.float64),
                         'SyncBatchNorm (variance)') / self.n
        inv_std = (1.0 / xp.sqrt(var + self.eps)).astype(x.dtype)
        scale = inv_std * params[0] if self.has_weight else inv_std
        y = centred * scale.reshape(shape)
        if self.has_bias:
            y += params[-1].reshape(shape)
        self.mean, self.inv_std, self.var = mean, inv_std, var.astype(x.dtype)
        return y

    def backward(self, gy):
        x, params = self.inputs[0], self.inputs[1:]
        shape, c = _channel_shape(x.ndim, x.shape[1]), x.shape[1]
        centred = x.data - self.mean.reshape(shape)
        gbias = _per_channel(gy.data).sum(axis=(0, 2))
        gweight = _channel_dot(gy.data, centred) * self.inv_std
        xp = backend.get_array_module(gbias)
        total = allreduce_(xp.concatenate([gbias, gweight]).astype(np.float64),
                           'SyncBatchNorm (backward sums)')
        f = self.inv_std / self.n * (params[0].data if self.has_weight else 1)
        gx = centred * (-f * self.inv_std * total[c:]).reshape(shape).astype(x.dtype)
        gx += gy.data * (f * self.n).reshape(shape)
        gx -= (f * total[:c]).reshape(shape).astype(x.dtype)
        grads = [Tensor(gx)]
        if self.has_weight:
            grads.append(Tensor(gweight))
        if self.has_bias:
            grads.append(Tensor(gbias))
        return tuple(grads)


def sync_batch_norm(x, running_mean, running_var, weight=None, bias=None, training=False,
                    momentum=0.1, eps=1e-5):
    """``F.batch_norm`` with the statistics of the global batch in training mode (the
    running statistics updated from them on every rank alike); eval mode is F.batch_norm.
    One process: exactly F.batch_norm."""
    from .functional import batch_norm
    if not training or _World.size == 1:
        return batch_norm(x, running_mean, running_var, weight, bias, training, momentum, eps)
    params = [p for p in (weight, bias) if p is not None]
    fn = SyncBatchNormFunction(eps, weight is not None, bias is not None)
    y = fn(x, *params)
    n = fn.n
    for stat, batch in ((running_mean, fn.mean), (running_var, fn.var * n / (n - 1))):
        if stat is not None:
            data = stat.data if isinstance(stat, Tensor) else stat
            data *= 1 - momentum
            data += (momentum * batch).astype(data.dtype, copy=False)
    return y
