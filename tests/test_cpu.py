"""The CPU runtime: parallel_for covers its range exactly once on every thread count,
errors in a worker reach the caller, and the malloc setting can be switched off."""
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import minidl
from minidl import cpu


@pytest.fixture
def threads():
    before = minidl.get_num_threads()
    yield minidl.set_num_threads
    minidl.set_num_threads(before)


@pytest.mark.parametrize('n', [1, 2, 3, 7])
@pytest.mark.parametrize('length', [1, 5, 100_003])
def test_parallel_for_visits_every_index_once(threads, n, length):
    threads(n)
    hits = np.zeros(length, np.int64)

    def work(start, stop):
        hits[start:stop] += 1
    cpu.parallel_for(work, length, items=10 ** 6)
    np.testing.assert_array_equal(hits, 1)


def test_parallel_for_splits_big_work_among_threads(threads):
    threads(3)
    parts = []
    cpu.parallel_for(lambda a, b: parts.append((a, b)), 90, items=10 ** 6)
    assert sorted(parts) == [(0, 30), (30, 60), (60, 90)]


def test_parallel_for_runs_small_work_in_one_piece(threads):
    threads(4)
    parts = []
    cpu.parallel_for(lambda a, b: parts.append((a, b)), 1000, items=100)
    assert parts == [(0, 1000)]


def test_an_error_in_a_worker_reaches_the_caller(threads):
    threads(2)

    def work(start, stop):
        if start > 0:
            raise RuntimeError(f"part {start}:{stop} failed")
    with pytest.raises(RuntimeError, match='part 50:100 failed'):
        cpu.parallel_for(work, 100, items=10 ** 6)


def test_nested_parallel_for_runs_inline_instead_of_deadlocking(threads):
    threads(2)
    hits = np.zeros((4, 1000), np.int64)

    def outer(start, stop):
        for row in range(start, stop):
            def inner(a, b, row=row):
                hits[row, a:b] += 1
            cpu.parallel_for(inner, 1000, items=10 ** 6)
    cpu.parallel_for(outer, 4, items=10 ** 6)
    np.testing.assert_array_equal(hits, 1)


def test_work_nested_in_any_part_stays_in_that_thread(threads):
    """Also in the caller's own part: were its nested call split, half of it would wait
    for the pool's one worker, busy with the other part (a 2x slowdown, once measured)."""
    threads(2)
    seen = []

    def outer(start, stop):
        me = threading.get_ident()
        cpu.parallel_for(lambda a, b: seen.append((start, threading.get_ident() == me)),
                         1000, items=10 ** 6)
    cpu.parallel_for(outer, 2, items=10 ** 6)
    assert sorted(seen) == [(0, True), (1, True)]


@pytest.mark.skipif(not hasattr(os, 'fork'), reason='needs fork')
def test_a_forked_child_gets_a_working_pool(threads):
    threads(2)
    cpu.parallel_for(lambda a, b: None, 100, items=10 ** 6)  # the parent's pool exists
    code = """
import os, sys, numpy as np, minidl
from minidl import cpu
cpu.parallel_for(lambda a, b: None, 100, items=10 ** 6)
pid = os.fork()
if pid == 0:
    hits = np.zeros(100)
    def work(a, b):
        hits[a:b] += 1
    cpu.parallel_for(work, 100, items=10 ** 6)
    os._exit(0 if (hits == 1).all() else 3)
_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status))
"""
    env = dict(os.environ, MINIDL_NUM_THREADS='2')
    subprocess.run([sys.executable, '-c', code], env=env, check=True, timeout=60)


@pytest.mark.parametrize('bad', [0, -1, 2.0, '2'])
def test_set_num_threads_refuses_non_positive_ints(bad):
    with pytest.raises(ValueError, match='set_num_threads: expected a positive int'):
        minidl.set_num_threads(bad)


def test_num_threads_default_comes_from_the_environment():
    code = "import minidl; print(minidl.get_num_threads())"
    env = dict(os.environ, MINIDL_NUM_THREADS='3')
    out = subprocess.run([sys.executable, '-c', code], env=env, capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == '3'


@pytest.mark.parametrize('bad', ['0', 'two', '-1', ' '])
def test_a_bad_thread_count_in_the_environment_is_a_value_error_on_first_use(bad):
    """`import minidl` succeeds (so that the `minidl` command can print one line); the
    first use of the thread count raises."""
    code = """
import minidl
try:
    minidl.get_num_threads()
except ValueError as e:
    print(e)
"""
    env = dict(os.environ, MINIDL_NUM_THREADS=bad)
    out = subprocess.run([sys.executable, '-c', code], env=env, capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == f"MINIDL_NUM_THREADS must be a positive integer, got {bad!r}"


def test_a_bad_thread_count_in_the_environment_stops_the_first_parallel_op():
    code = """
import minidl
try:
    minidl.cpu.parallel_for(lambda a, b: None, 100, items=10 ** 6)
except ValueError as e:
    print(e)
"""
    env = dict(os.environ, MINIDL_NUM_THREADS='abc')
    out = subprocess.run([sys.executable, '-c', code], env=env, capture_output=True,
                         text=True, check=True).stdout
    assert "MINIDL_NUM_THREADS must be a positive integer, got 'abc'" in out


@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='glibc mallopt: Linux only')
@pytest.mark.parametrize('setting, tuned', [('reuse', 'True'), ('system', 'False')])
def test_malloc_setting_follows_minidl_malloc(setting, tuned):
    code = "import minidl; print(minidl.cpu.MALLOC_TUNED)"
    env = dict(os.environ, MINIDL_MALLOC=setting)
    out = subprocess.run([sys.executable, '-c', code], env=env, capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == tuned


@pytest.mark.parametrize('first, says', [('minidl', 'minidl imported before NumPy'),
                                         ('numpy', 'NumPy imported first, timeout re-applied')])
def test_describe_says_how_the_openblas_setting_was_applied(first, says):
    code = f"import {first}, minidl; print(minidl.cpu.describe())"
    env = {k: v for k, v in os.environ.items() if k != 'OPENBLAS_THREAD_TIMEOUT'}
    out = subprocess.run([sys.executable, '-c', code], env=env, capture_output=True,
                         text=True, check=True).stdout
    assert says in out and 'OpenBLAS thread timeout 4' in out


SPIN = """
import sys, time, resource
import numpy as np
if sys.argv[1] == 'minidl':
    import minidl
a = np.ones((600, 600), np.float32)
burnt = 0.0
for _ in range(3):
    a @ a
    t0 = resource.getrusage(resource.RUSAGE_SELF).ru_utime
    time.sleep(0.25)
    burnt += resource.getrusage(resource.RUSAGE_SELF).ru_utime - t0
print(burnt)
"""


@pytest.mark.skipif(cpu._numpy_openblas() is None or cpu.get_num_threads() < 2,
                    reason="needs NumPy's own OpenBLAS and two cores")
def test_numpy_imported_first_still_stops_openblas_spinning_after_a_product():
    """Users import NumPy first. OpenBLAS's idle threads then burn ~0.1 s of CPU after
    every matrix product unless minidl re-applies the short thread timeout on import."""
    env = {k: v for k, v in os.environ.items() if k != 'OPENBLAS_THREAD_TIMEOUT'}

    def burnt(import_minidl):
        out = subprocess.run([sys.executable, '-c', SPIN, 'minidl' if import_minidl else '-'],
                             env=env, capture_output=True, text=True, check=True).stdout
        return float(out)
    alone = burnt(False)            # NumPy alone: its worker thread spins after each product
    if alone <= 0.15:  # (on a loaded machine the spinning thread gets too little CPU to show)
        pytest.skip(f"NumPy alone burnt only {alone:.3f} s: nothing to compare with here")
    assert burnt(True) < 0.05       # NumPy, then minidl: it no longer does


def test_blocks_split_a_batch_by_bytes_one_item_at_least():
    from minidl.kernels.cpu import blocks
    assert blocks(5, 10, 25) == [(0, 2), (2, 4), (4, 5)]
    assert blocks(5, 100, 25) == [(a, a + 1) for a in range(5)]  # an item over the limit
    assert blocks(5, 10) == [(0, 5)] and blocks(0, 10, 25) == []


@pytest.mark.skipif(not cpu.has_single_threaded_blas(), reason="needs NumPy's own OpenBLAS")
def test_single_threaded_blas_sets_one_thread_and_restores_the_count_even_on_error():
    get, _ = cpu._blas_thread_count()
    before = get()
    with cpu.single_threaded_blas():
        assert get() == 1
    assert get() == before
    with pytest.raises(RuntimeError):
        with cpu.single_threaded_blas():
            raise RuntimeError('inside')
    assert get() == before
    with cpu.single_threaded_blas():   # a region inside a region: no deadlock
        with cpu.single_threaded_blas():
            assert get() == 1
        assert get() == 1
    assert get() == before


def test_grad_weight_groups_do_not_depend_on_the_thread_count(threads, monkeypatch):
    """Channels-last conv weight gradient: fixed groups of images summed in order."""
    from minidl.kernels import im2col, layout
    monkeypatch.setattr(im2col, 'GRAD_WEIGHT_BLOCK_BYTES', 20000)  # 1 image, 8 groups of 11
    rng = np.random.default_rng(9)
    x = layout.to_channels_last(rng.standard_normal((11, 5, 9, 9)).astype(np.float32))
    gy = rng.standard_normal((11 * 81, 7)).astype(np.float32)
    args = ((3, 3), (1, 1), (1, 1, 1, 1), (1, 1), (9, 9))
    results = []
    for n in (1, 2, 3):
        threads(n)
        results.append(im2col.conv_nhwc_grad_weight(x, gy, *args))
    col = im2col.im2col_nhwc(x.astype(np.float64), *args[:4])
    np.testing.assert_allclose(results[0], (col.T @ gy).T, rtol=1e-5, atol=1e-4)
    for other in results[1:]:
        np.testing.assert_array_equal(other, results[0])


@pytest.mark.parametrize('m', [2, 4])
def test_winograd_gives_the_same_bits_on_any_thread_count(threads, m, monkeypatch):
    """Winograd's chunks of images run on different threads, and its weight gradient sums
    them in fixed groups: the output and both gradients do not depend on the threads."""
    from minidl.kernels import layout, winograd
    monkeypatch.setattr(winograd, 'CHUNK_BYTES', 1)  # one image per chunk, 11 chunks
    rng = np.random.default_rng(10)
    x = layout.to_channels_last(rng.standard_normal((11, 6, 9, 9)).astype(np.float32))
    w = rng.standard_normal((5, 6, 3, 3)).astype(np.float32)
    gy = layout.to_channels_last(rng.standard_normal((11, 5, 9, 9)).astype(np.float32))
    tiling, pads, results = winograd.TILINGS[m], (1, 1, 1, 1), []
    for n in (1, 2, 3):
        threads(n)
        y, kept = winograd.conv2d(x, w, pads, tiling=tiling)
        results.append((y, winograd.grad_weight(x, gy, pads, kept),
                        winograd.grad_input(gy, w, pads, tiling)))
    for other in results[1:]:
        for a, e in zip(other, results[0]):
            np.testing.assert_array_equal(a, e)


@pytest.mark.parametrize('count', [0, 1, 5, 11, 24])
def test_sum_by_groups_gives_the_same_bits_on_any_thread_count(threads, count):
    """Fixed runs of terms, each summed by one thread: no run is shared by two threads."""
    from minidl.kernels import cpu
    rng = np.random.default_rng(count)
    terms = rng.standard_normal((count, 50, 7)).astype(np.float32) * 10 ** rng.uniform(
        -3, 3, (count, 1, 1)).astype(np.float32)
    results = []
    for n in (1, 2, 3, 5):
        threads(n)
        results.append(cpu.sum_by_groups(lambda i: terms[i].copy(), count, (50, 7),
                                         np.float32, groups=8, items=10 ** 6))
    np.testing.assert_allclose(results[0], terms.astype(np.float64).sum(axis=0),
                               rtol=1e-4, atol=1e-3)
    for other in results[1:]:
        np.testing.assert_array_equal(other, results[0])


def test_each_chunk_runs_every_chunk_once_each_on_one_core_and_a_lone_chunk_on_all(threads):
    threads(2)
    blas = cpu._blas_thread_count()
    counts, seen = {}, []

    def fn(i):
        seen.append(i)
        counts[i] = blas[0]() if blas else None
    cpu.each_chunk(fn, [(0, 1)] * 6, items=10 ** 6)
    assert sorted(seen) == list(range(6))
    if blas:  # several chunks: each thread's products on its own core; one: BLAS's own
        assert set(counts.values()) == {1}
        cpu.each_chunk(fn, [(0, 1)], items=10 ** 6)
        assert counts[0] == blas[0]()  # (> 1 on a machine of several cores)


def test_sum_by_groups_computes_a_lone_term_with_blas_own_threads(threads):
    threads(2)
    blas = cpu._blas_thread_count()
    seen = []
    term = np.arange(6.0).reshape(2, 3)
    out = cpu.sum_by_groups(lambda i: seen.append(blas[0]() if blas else None) or term, 1,
                            (2, 3), np.float64)
    np.testing.assert_array_equal(out, term)
    if blas:  # (not inside single_threaded_blas: one product gets every core)
        assert seen == [blas[0]()]
