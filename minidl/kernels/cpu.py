"""The CPU runtime: worker threads for whole-array work, and malloc's handling of big blocks.

Three facts about NumPy on a small machine shape this file (measured in docs/performance.md):

1. NumPy runs an elementwise loop or a strided copy on one core; only the matrix products
   (BLAS) use them all. But NumPy releases the GIL inside those loops, so Python threads
   working on *disjoint parts* of the same arrays do run at once. ``parallel_for`` splits
   an index range (channels, elements) into one contiguous part per thread.

2. glibc hands every block above 32 MiB (a conv's col matrix, a batch of activations) back
   to the kernel when it is freed, so the next step's block of the same size arrives as
   fresh pages that are faulted in and zeroed one by one: for a 87 MB im2col that costs as
   much as the copy that fills it. ``keep_freed_memory`` tells glibc to serve all sizes from
   its heap and keep what is freed for reuse: the CPU analogue of CuPy's memory pool. It
   runs on ``import minidl`` unless the environment has ``MINIDL_MALLOC=system``.

3. OpenBLAS's idle threads spin for about 0.1 s after each matrix product, on the cores
   these threads need. ``minidl/__init__.py`` sets ``OPENBLAS_THREAD_TIMEOUT``: read by
   OpenBLAS when it loads if minidl comes first; if NumPy was imported first (as in every
   user's script), ``apply_openblas_thread_timeout`` makes the loaded OpenBLAS re-read it
   and restart its threads (``describe()`` says which happened).

The PyTorch-named knobs are ``minidl.set_num_threads(n)`` and ``minidl.get_num_threads()``
(default: the cores this process may run on, or ``MINIDL_NUM_THREADS``, read on first use).

Only the kernels in this package call ``parallel_for``; the ops in ``minidl/functional``
and the optimizers never see a thread.
"""
import contextlib
import ctypes
import ctypes.util
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .. import backend

MIN_PARALLEL_ITEMS = 1 << 15   # below this many array elements, threads cost more than they save


def _default_threads():
    """``MINIDL_NUM_THREADS``, else the cores this process may run on.

    Read on first use, not at import: a bad value is then a ValueError where the thread
    count is needed, and ``import minidl`` still works, so that the ``minidl`` command can
    report it in one line instead of a traceback from inside the import."""
    env = os.environ.get('MINIDL_NUM_THREADS')
    if env:
        if not env.strip().isdigit() or int(env) < 1:
            raise ValueError(f"MINIDL_NUM_THREADS must be a positive integer, got {env!r}")
        return int(env)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


_num_threads = None  # set by set_num_threads, or from _default_threads() on first use
_pool = None
_pool_lock = threading.Lock()


def set_num_threads(n):
    """Use ``n`` threads for minidl's own whole-array loops (BLAS keeps its own setting)."""
    global _num_threads, _pool
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"set_num_threads: expected a positive int, got {n!r}")
    with _pool_lock:
        _num_threads = n
        if _pool is not None:
            _pool.shutdown(wait=True)
            _pool = None


def get_num_threads():
    """The number of threads minidl's own whole-array loops use."""
    global _num_threads
    if _num_threads is None:
        _num_threads = _default_threads()
    return _num_threads


_worker = threading.local()  # .busy: this thread is running a part of a parallel_for


def _run_part(fn, start, stop):
    _worker.busy = True
    try:
        fn(start, stop)
    finally:
        _worker.busy = False


def _executor():
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(_num_threads - 1, thread_name_prefix='minidl-cpu')
        return _pool


def _forget_pool_after_fork():
    """A forked child has none of the parent's threads: start a fresh pool when needed
    (and fresh locks: one held by a parent's thread at the fork would never be released)."""
    global _pool, _pool_lock, _blas_lock
    _pool, _pool_lock, _blas_lock = None, threading.Lock(), threading.RLock()


if hasattr(os, 'register_at_fork'):
    os.register_at_fork(after_in_child=_forget_pool_after_fork)


def parallel_for(fn, length, items=None, xp=np):
    """Call ``fn(start, stop)`` on contiguous parts of range(length), one part per thread.

    ``fn`` must only write where its own part says (parts never overlap). ``items`` is the
    number of array elements the whole call touches: small calls run inline in one piece,
    as does all work on a GPU (``xp`` not NumPy), where one call does it all.
    The calling thread does the first part itself; an exception in any part is re-raised.
    """
    parts = min(get_num_threads(), length)
    if parts <= 1 or xp is not np or getattr(_worker, 'busy', False) or \
            (items if items is not None else length) < MIN_PARALLEL_ITEMS:
        fn(0, length)  # (inside a part already: nested work runs inline, never waits)
        return
    bounds = [length * k // parts for k in range(parts + 1)]
    pool = _executor()
    futures = [pool.submit(_run_part, fn, bounds[k], bounds[k + 1]) for k in range(1, parts)]
    try:  # (marked busy like the workers: work nested in this part runs inline too)
        _run_part(fn, bounds[0], bounds[1])
    finally:
        for future in futures:
            future.result()


def blocks(n, bytes_per_item, limit=None):
    """(start, stop) pieces of range(n) of at most ``limit`` bytes each (one item at least;
    all in one piece without a limit):
    how the convolutions walk a batch a few images at a time, so that each piece's
    temporaries stay in the cache (``im2col.conv_nhwc``, ``winograd.conv2d``)."""
    step = max(1, n if limit is None else limit // max(1, bytes_per_item))
    return [(a, min(n, a + step)) for a in range(0, n, step)]


def even_chunks(n, total_bytes, limit, multiple=8):
    """(start, stop) chunks of range(n) (a batch of images, ``total_bytes`` of work arrays
    in all) of at most about ``limit`` bytes each: one chunk if all fit, else a multiple of
    ``multiple`` of them (n at most), of sizes that differ by one image at most, so that 1,
    2, 4 or 8 threads get equal shares. They do not depend on the thread count, so neither
    do sums over them (``sum_by_groups``)."""
    count = -(-total_bytes // limit)
    count = min(n, -(-count // multiple) * multiple) if count > 1 else 1
    return [(n * i // count, n * (i + 1) // count) for i in range(count)]


def each_chunk(fn, chunks, items=None):
    """fn(i) for every chunk i of ``even_chunks``, shared among the CPU threads in
    contiguous runs, each thread's matrix products on its own core (``single_threaded_blas``)
    while its chunk sits in that core's cache. A single chunk runs here with BLAS's own
    threads, on one big product."""
    if len(chunks) == 1:
        fn(0)
        return

    def part(first, last):
        for i in range(first, last):
            fn(i)
    with single_threaded_blas():
        parallel_for(part, len(chunks), items=items)


def sum_by_groups(term, count, shape, dtype, groups=8, items=None):
    """sum of ``term(i)`` for i < count (arrays of ``shape``), on the CPU threads, each
    with single-threaded BLAS (``single_threaded_blas``): range(count) is cut into
    ``groups`` fixed runs, each summed in order by one thread, then the runs' sums are
    added in order, so the result has the same bits on any thread count (the weight
    gradients of ``winograd.grad_weight`` and of the im2col convolutions done by chunks:
    ``im2col.conv_nhwc_grad_weight``, ``im2col.sum_over_chunks``). A single term is
    computed here with BLAS's own threads, as ``each_chunk`` runs a lone chunk."""
    if count == 0:
        return np.zeros(shape, dtype)
    if count == 1:
        return term(0)
    runs = min(groups, count)
    bounds = [count * g // runs for g in range(runs + 1)]
    partial = np.empty((runs, *shape), dtype)

    def part(first, last):  # runs first..last-1, whole runs only
        for g in range(first, last):
            partial[g] = term(bounds[g])
            for i in range(bounds[g] + 1, bounds[g + 1]):
                partial[g] += term(i)
    with single_threaded_blas():
        parallel_for(part, runs, items=items)
    return partial.sum(axis=0)


def parallel_rows(fn, array, passes=1):
    """``parallel_for`` over the first axis of ``array``: fn(a, b) handles array[a:b] (and
    the same rows of arrays shaped like it). ``passes``: how many arrays of its size the
    work reads or writes, the measure of whether splitting pays."""
    parallel_for(fn, array.shape[0], array.size * passes, backend.get_array_module(array))


_UNSET = object()
_blas_count = _UNSET   # (get, set) of NumPy's OpenBLAS thread count, found on first use
_blas_lock = threading.RLock()  # (re-entrant: a region inside a region is one region)


def _blas_thread_count():
    """(get, set) of the thread count of NumPy's OpenBLAS, or None."""
    global _blas_count
    if _blas_count is _UNSET:
        lib, _blas_count = _numpy_openblas(), None
        for prefix in ('scipy_openblas', 'openblas'):  # NumPy 2 wheels, NumPy 1.26 wheels
            get, set_ = (getattr(lib, f'{prefix}_{verb}_num_threads64_', None)
                         for verb in ('get', 'set'))
            if get is not None and set_ is not None:
                get.restype, set_.argtypes = ctypes.c_int, [ctypes.c_int]
                _blas_count = get, set_
                break
    return _blas_count


def has_single_threaded_blas():
    """True when ``single_threaded_blas`` can act (NumPy's own OpenBLAS is loaded)."""
    return _blas_thread_count() is not None


@contextlib.contextmanager
def single_threaded_blas():
    """Inside, OpenBLAS runs every matrix product on the core that asks for it, so that
    minidl's threads can each run their own products at once (``im2col.
    conv_nhwc_grad_weight``); its thread count is restored on the way out. Regions from
    different threads take turns. Process-wide on purpose: products made at the same time
    from two threads while OpenBLAS keeps its own threads (even with its per-thread setting
    at 1) left its later products on one core for good with the short thread timeout
    minidl sets (measured: 0.94 -> 1.77 ms for a 8000x216 @ 216x64 product)."""
    count = _blas_thread_count()
    if count is None:
        yield
        return
    get, set_ = count
    with _blas_lock:
        before = get()
        set_(1)
        try:
            yield
        finally:
            set_(before)


def describe():
    """One line of the CPU settings that change minidl's speed (for benchmark headers)."""
    timeout = os.environ.get('OPENBLAS_THREAD_TIMEOUT') or 'default'
    if OPENBLAS_TIMEOUT_APPLIED == 'at load':
        how = 'minidl imported before NumPy'
    elif OPENBLAS_TIMEOUT_APPLIED:
        how = 'NumPy imported first, timeout re-applied'
    else:
        how = 'NumPy imported first, timeout NOT applied'
    return (f"{get_num_threads()} threads, malloc {'reuse' if MALLOC_TUNED else 'system'}, "
            f"OpenBLAS thread timeout {timeout} ({how})")


def keep_freed_memory():
    """Ask glibc to keep freed memory of every size for reuse (no munmap/trim); True if done.

    ``mallopt(M_MMAP_MAX, 0)``: never serve a request with its own mmap (which is returned
    to the kernel on free); ``mallopt(M_TRIM_THRESHOLD, 2**31 - 1)``: do not shrink the
    heap. The price is that the process keeps its peak memory until it exits.
    """
    if not sys.platform.startswith('linux'):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6')
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and other C libraries without mallopt
        return False
    M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4
    return bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, 2 ** 31 - 1))


def _numpy_openblas():
    """NumPy's own OpenBLAS (the ``scipy_openblas`` library its wheels ship), or None."""
    libs = os.path.join(os.path.dirname(os.path.dirname(np.__file__)), 'numpy.libs')
    names = sorted(n for n in os.listdir(libs) if 'openblas' in n) if os.path.isdir(libs) else []
    for name in names:
        try:
            lib = ctypes.CDLL(os.path.join(libs, name))  # already loaded: the same handle
        except OSError:
            continue
        if all(hasattr(lib, f) for f in ('openblas_read_env', 'openblas_thread_timeout',
                                         'blas_thread_shutdown_')):
            return lib
    return None


def apply_openblas_thread_timeout():
    """Make an OpenBLAS that loaded before ``OPENBLAS_THREAD_TIMEOUT`` was set use it now.

    OpenBLAS reads its environment once, when it loads, and its threads read the timeout
    when they start. So: read the environment again (``openblas_read_env``) and stop the
    threads (``blas_thread_shutdown_``); the next matrix product starts them afresh with
    the new timeout. Returns True when the loaded OpenBLAS now has the timeout asked for.
    Call it while no other thread is inside a BLAS call (on ``import minidl``)."""
    wanted = os.environ.get('OPENBLAS_THREAD_TIMEOUT', '')
    lib = _numpy_openblas()
    if lib is None or not wanted.strip().isdigit():
        return False
    lib.openblas_read_env()
    lib.blas_thread_shutdown_()
    return lib.openblas_thread_timeout() == int(wanted)


OPENBLAS_TIMEOUT_APPLIED = None  # set by minidl/__init__.py: was it set before NumPy loaded?
MALLOC_TUNED = os.environ.get('MINIDL_MALLOC', 'reuse') != 'system' and keep_freed_memory()
