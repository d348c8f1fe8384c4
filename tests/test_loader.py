"""DataLoader: batches, epochs and their RNGs, shuffling, the worker thread's errors and exit."""
import gc
import threading
import time

import numpy as np
import pytest

from minidl import backend
from minidl.data.loader import DataLoader
from minidl.data.transforms import RandomCrop, RandomHorizontalFlip, ToFloat, Compose


class Tiny:
    """Image i is filled with the value i % 256 (plus noise in channel 0); label i."""

    def __init__(self, n=10, c=3, h=4, w=4):
        g = np.random.default_rng(0)
        self.images = np.broadcast_to((np.arange(n) % 256).astype(np.uint8)[:, None, None, None],
                                      (n, c, h, w)).copy()
        self.images[:, 0] = g.integers(0, 256, size=(n, h, w), dtype=np.uint8)
        self.labels = np.arange(n, dtype=np.int64)
        self.classes = [str(i) for i in range(n)]

    def __len__(self):
        return len(self.labels)


AUGMENT = Compose([RandomCrop(4, padding=2), RandomHorizontalFlip(), ToFloat()])


def epoch(loader):
    return [(x.numpy(), y.numpy()) for x, y in loader]


def labels(batches):
    return np.concatenate([y for _, y in batches])


# ----------------------------------------------------------------------------- batches
def test_batches_are_float32_nchw_and_int64_numpy_backed_tensors_on_cpu():
    data = Tiny(10)
    for x, y in DataLoader(data, batch_size=4):
        assert isinstance(x.data, np.ndarray) and isinstance(y.data, np.ndarray)
        assert x.device == y.device == 'cpu'
        assert x.dtype == np.float32 and y.dtype == np.int64
        assert x.shape[1:] == (3, 4, 4) and x.shape[0] == y.shape[0]


def test_without_transform_pixels_are_scaled_to_unit_interval_in_order():
    data = Tiny(10)
    batches = epoch(DataLoader(data, batch_size=3))
    np.testing.assert_array_equal(np.concatenate([x for x, _ in batches]),
                                  data.images.astype(np.float32) / 255)
    np.testing.assert_array_equal(labels(batches), np.arange(10))


def test_len_and_the_last_partial_batch():
    data = Tiny(10)
    keep, drop = DataLoader(data, batch_size=4), DataLoader(data, batch_size=4, drop_last=True)
    assert len(keep) == 3 and len(drop) == 2
    assert [len(y) for _, y in epoch(keep)] == [4, 4, 2]
    assert [len(y) for _, y in epoch(drop)] == [4, 4]
    assert len(DataLoader(data, batch_size=5, drop_last=True)) == 2
    assert len(DataLoader(data, batch_size=11, drop_last=True)) == 0
    assert epoch(DataLoader(data, batch_size=11, drop_last=True)) == []


def test_shuffle_visits_every_sample_exactly_once_per_epoch():
    data = Tiny(103)
    loader = DataLoader(data, batch_size=10, shuffle=True)
    for _ in range(3):
        batches = epoch(loader)
        ys = labels(batches)
        assert sorted(ys) == list(range(103)) and not (ys == np.arange(103)).all()
        for x, y in batches:  # images travel with their labels
            np.testing.assert_array_equal(x[:, 1, 0, 0], (y % 256).astype(np.float32) / 255)
    dropped = labels(epoch(DataLoader(data, batch_size=10, shuffle=True, drop_last=True)))
    assert len(dropped) == 100 == len(set(dropped.tolist()))


# ----------------------------------------------------------------------------- epochs and RNGs
def test_same_seed_and_epoch_give_identical_batches():
    a = DataLoader(Tiny(50), batch_size=8, shuffle=True, transform=AUGMENT, seed=7)
    b = DataLoader(Tiny(50), batch_size=8, shuffle=True, transform=AUGMENT, seed=7)
    for (xa, ya), (xb, yb) in zip(epoch(a), epoch(b)):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)


def test_different_epochs_and_seeds_give_different_orders():
    loader = DataLoader(Tiny(50), batch_size=50, shuffle=True, seed=7)
    first, second = labels(epoch(loader)), labels(epoch(loader))
    assert not np.array_equal(first, second)
    other = labels(epoch(DataLoader(Tiny(50), batch_size=50, shuffle=True, seed=8)))
    assert not np.array_equal(first, other)


def test_iter_advances_the_epoch_and_set_epoch_resumes_exactly():
    make = lambda: DataLoader(Tiny(30), batch_size=7, shuffle=True, transform=AUGMENT, seed=3)
    full = make()
    assert full.epoch == 0
    runs = [epoch(full) for _ in range(4)]  # epochs 0, 1, 2, 3
    assert full.epoch == 4
    resumed = make()
    resumed.set_epoch(2)
    for run in (runs[2], runs[3]):  # epoch 2, then the counter continues with 3
        for (xa, ya), (xb, yb) in zip(run, epoch(resumed)):
            np.testing.assert_array_equal(xa, xb)
            np.testing.assert_array_equal(ya, yb)


def test_epoch_rng_draws_the_permutation_then_the_transforms_batch_by_batch():
    data, seed, e = Tiny(20), 11, 5
    loader = DataLoader(data, batch_size=8, shuffle=True, transform=AUGMENT, seed=seed)
    loader.set_epoch(e)
    rng = np.random.default_rng([seed, e])
    order = rng.permutation(20)
    for k, (x, y) in enumerate(epoch(loader)):
        index = order[8 * k:8 * k + 8]
        np.testing.assert_array_equal(y, index)
        np.testing.assert_array_equal(x, AUGMENT(data.images[index], rng))


def test_labels_become_int64():
    data = Tiny(6)
    data.labels = data.labels.astype(np.int32)
    assert all(y.dtype == np.int64 for _, y in DataLoader(data, batch_size=4))


@pytest.mark.parametrize('labels', [np.array([0.5, 1.7, 2.0, 3.0]), np.arange(4.0),
                                    [0.5, 1.0, 2.0, 3.0], np.array([True, False] * 2)],
                         ids=['fractional', 'whole floats', 'list of floats', 'bool'])
def test_float_labels_are_refused_not_truncated(labels):
    data = Tiny(4)
    data.labels = labels
    with pytest.raises(TypeError, match=r"DataLoader: the dataset's labels \(Tiny.labels\) must "
                                        r"be integer class indices, got dtype (float64|bool)"):
        DataLoader(data, batch_size=2)


def test_labels_made_float_after_construction_are_refused_in_the_batch():
    data = Tiny(4)
    loader = DataLoader(data, batch_size=2)
    data.labels = data.labels + 0.5
    with pytest.raises(TypeError, match=r"DataLoader: labels must be integer class indices, got "
                                        r"dtype float64"):
        next(iter(loader))


# ----------------------------------------------------------------------------- arguments
@pytest.mark.parametrize("kwargs, error, pattern", [
    (dict(batch_size=0), ValueError, "DataLoader: batch_size must be an int >= 1, got 0"),
    (dict(batch_size=2.5), ValueError, "DataLoader: batch_size"),
    (dict(prefetch=0), ValueError, "DataLoader: prefetch"),
    (dict(device='tpu'), ValueError, "DataLoader: unknown device 'tpu'"),
    (dict(transform=3), TypeError, "DataLoader: transform must be callable"),
])
def test_bad_arguments_are_refused_by_name(kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        DataLoader(Tiny(4), **kwargs)


def test_dataset_without_images_is_refused():
    with pytest.raises(TypeError, match="DataLoader: the dataset .* has no .images"):
        DataLoader([1, 2, 3])


@pytest.mark.gpu
@pytest.mark.skipif(not backend.gpu_available(), reason="needs CuPy and a CUDA GPU")
def test_device_cuda_gives_cupy_backed_tensors():
    x, y = next(iter(DataLoader(Tiny(8), batch_size=4, device='cuda')))
    assert x.device == y.device == 'cuda'
    np.testing.assert_array_equal(y.numpy(), np.arange(4))


# ----------------------------------------------------------------------------- the worker
def wait_for_threads(count, timeout=1.0):
    deadline = time.monotonic() + timeout
    while threading.active_count() > count and time.monotonic() < deadline:
        time.sleep(0.01)
    return threading.active_count()


def test_worker_exceptions_reach_the_consumer_with_their_traceback():
    def fails_on_second_batch(x, rng):
        if x[0, 1, 0, 0] >= 4:
            raise ValueError("bad batch")
        return ToFloat()(x, rng)

    before = threading.active_count()
    it = iter(DataLoader(Tiny(12), batch_size=4, transform=fails_on_second_batch))
    x, y = next(it)  # the first batch is fine
    np.testing.assert_array_equal(y.numpy(), np.arange(4))
    with pytest.raises(ValueError, match="bad batch") as info:
        next(it)
    assert any(entry.name == 'fails_on_second_batch' for entry in info.traceback)
    assert "DataLoader worker thread, epoch 0, batch 1" in "".join(info.value.__notes__)
    with pytest.raises(StopIteration):
        next(it)
    assert wait_for_threads(before) == before


def test_breaking_out_early_stops_the_worker():
    before = threading.active_count()
    loader = DataLoader(Tiny(1000), batch_size=2, prefetch=1)  # the worker blocks on put
    for x, y in loader:
        break
    it = iter(loader)
    next(it)
    assert threading.active_count() > before
    del it, x, y
    gc.collect()
    assert wait_for_threads(before) == before


def test_the_worker_exits_after_a_full_epoch():
    before = threading.active_count()
    loader = DataLoader(Tiny(20), batch_size=3)
    for _ in range(3):
        assert len(epoch(loader)) == 7
    assert wait_for_threads(before) == before


def test_the_shards_of_ranks_together_are_the_global_batches_of_one_loader():
    data = Tiny(23)
    whole = DataLoader(data, batch_size=6, shuffle=True, drop_last=True, seed=4)
    ranks = [DataLoader(data, batch_size=3, shuffle=True, drop_last=True, seed=4,
                        shard=(r, 2)) for r in range(2)]
    assert len(ranks[0]) == len(ranks[1]) == len(whole) == 3
    for e in range(2):
        for k, index in enumerate(whole.batch_indices(e)):
            parts = [r.batch_indices(e)[k] for r in ranks]
            assert not set(parts[0]) & set(parts[1])
            assert sorted(np.concatenate(parts)) == sorted(index)


@pytest.mark.parametrize('shard, message', [((2, 2), r'shard rank must be in \[0, 2\), got 2'),
                                            ((0, 0), 'shard world size must be an int >= 1'),
                                            ('0/2', r'shard must be \(rank, world\)')])
def test_a_bad_shard_is_a_clear_error(shard, message):
    with pytest.raises(ValueError, match=message):
        DataLoader(Tiny(4), shard=shard)


def test_each_rank_draws_its_own_augmentation():
    data = Tiny(16, h=6, w=6)
    data.images[...] = 200  # one flat grey: the zeros of RandomCrop's padding show the crop
    ranks = [DataLoader(data, batch_size=8, transform=AUGMENT, shuffle=True, seed=1,
                        shard=(r, 2)) for r in range(2)]
    padding = [next(iter(loader))[0].numpy() == 0 for loader in ranks]
    assert padding[0].any() and padding[1].any()
    assert not np.array_equal(padding[0], padding[1])  # (a shared stream: equal crops)
