"""Ops that split their work among CPU threads (minidl.set_num_threads) give bit-for-bit the
result of one thread, forward and backward, on inputs big enough to be split; and a whole
training step does too."""
import numpy as np
import pytest

import minidl
import minidl.functional as F
import models
from minidl import cpu

BIG = (6, 8, 26, 26)  # 32k elements: big enough to be split into parts


def _run(fn, shapes, threads, seed=0):
    before = minidl.get_num_threads()
    minidl.set_num_threads(threads)
    try:
        rng = np.random.default_rng(seed)
        xs = [minidl.tensor(rng.standard_normal(s).astype(np.float32), requires_grad=True)
              for s in shapes]
        y = fn(*xs)
        gy = rng.standard_normal(y.shape).astype(np.float32)
        y.backward(minidl.tensor(gy))
        return [y.numpy()] + [x.grad.numpy() for x in xs]
    finally:
        minidl.set_num_threads(before)


OPS = {
    'conv2d 3x3 pad 1': (lambda x, w: F.conv2d(x, w, padding=1), [BIG, (5, 8, 3, 3)]),
    'conv2d 5x5 stride 2 dil 2': (lambda x, w: F.conv2d(x, w, stride=2, padding=3,
                                                        dilation=2), [BIG, (4, 8, 5, 5)]),
    'conv2d 3x3 pad 1 channels-last': (
        lambda x, w: F.conv2d(x.contiguous(memory_format='channels_last'), w, padding=1),
        [BIG, (5, 8, 3, 3)]),
    'conv2d groups 2': (lambda x, w: F.conv2d(x, w, padding=1, groups=2), [BIG, (6, 4, 3, 3)]),
    'max_pool2d 3/2': (lambda x: F.max_pool2d(x, 3, 2), [BIG]),
    'max_pool2d 2/2 pad 1 ceil': (lambda x: F.max_pool2d(x, 2, 2, 1, ceil_mode=True), [BIG]),
    'avg_pool2d 3/2 pad 1': (lambda x: F.avg_pool2d(x, 3, 2, 1), [BIG]),
    'local_response_norm 5': (lambda x: F.local_response_norm(x, 5), [BIG]),
    'local_response_norm 4': (lambda x: F.local_response_norm(x, 4, 1e-2, 0.75, 1.0), [BIG]),
    'relu': (F.relu, [BIG]),
    'gelu': (F.gelu, [BIG]),
    'gelu tanh': (lambda x: F.gelu(x, 'tanh'), [BIG]),
}


@pytest.fixture
def splits(monkeypatch):
    """The parallel_for calls of a test that were big enough to be split among threads."""
    calls, real = [], cpu.parallel_for

    def spy(fn, length, items=None, xp=np):
        calls.append(length > 1 and (items or length) >= cpu.MIN_PARALLEL_ITEMS)
        return real(fn, length, items, xp)
    monkeypatch.setattr(cpu, 'parallel_for', spy)
    return calls


@pytest.mark.parametrize('name', sorted(OPS))
@pytest.mark.parametrize('threads', [2, 3])
def test_op_is_independent_of_the_thread_count(name, threads, splits):
    fn, shapes = OPS[name]
    for one, many in zip(_run(fn, shapes, 1), _run(fn, shapes, threads)):
        np.testing.assert_array_equal(one, many)
    assert any(splits), f"{name}: no work was big enough to be split; enlarge the inputs"


def test_training_steps_are_independent_of_the_thread_count():
    def train(threads):
        before = minidl.get_num_threads()
        minidl.set_num_threads(threads)
        try:
            minidl.manual_seed(0)
            model = models.build('alexnet-cifar', width=0.25)
            opt = minidl.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
            rng = np.random.default_rng(0)
            x = minidl.tensor(rng.standard_normal((16, 3, 32, 32)).astype(np.float32))
            t = rng.integers(0, 10, 16)
            for _ in range(2):
                opt.zero_grad()
                F.softmax_cross_entropy(model(x), t).backward()
                opt.step()
            return [p.numpy() for p in model.parameters()]
        finally:
            minidl.set_num_threads(before)
    for one, many in zip(train(1), train(2)):
        np.testing.assert_array_equal(one, many)
