"""DataLoader: shuffled, augmented mini-batches prepared by one background thread.

    loader = DataLoader(train_set, batch_size=128, shuffle=True, drop_last=True,
                        transform=train_transform(mean, std), seed=0, device='cuda')
    for epoch in range(start_epoch, epochs):
        loader.set_epoch(epoch)          # optional: iter() counts epochs 0, 1, 2, ... itself
        for x, y in loader:              # x: float32 (B, C, H, W) Tensor, y: int64 (B,) Tensor
            ...

Determinism and exact resume: epoch ``e`` draws its shuffle permutation and then all its
augmentation randomness, batch after batch, from one generator
``np.random.default_rng([seed, e])``. So the batches of an epoch depend only on
``(seed, e)``: a run resumed at epoch ``e`` (``set_epoch(e)``) sees exactly the batches the
uninterrupted run saw. Each ``iter(loader)`` uses the current epoch number and then
advances it by one; it starts at 0 and ``set_epoch`` sets it.

Data parallelism (``minidl.distributed``): with ``shard=(rank, world)`` the loader yields
rank ``rank``'s share of every epoch: the epoch's permutation (the same on every rank),
cut to a multiple of ``world``, then every ``world``-th index from position ``rank``. With
``batch_size`` = the global batch / world, the k-th batches of all ranks together are the
k-th global batch one process would see. Rank 0 draws its augmentation from the epoch's
generator after the permutation, as one process does; rank r > 0 from its own generator
``np.random.default_rng([seed, epoch, r])``, so the ranks' crops are independent.

Overlap: gathering a batch's images and running the transforms happens on the host in one
daemon thread that fills a ``queue.Queue(maxsize=prefetch)`` while the training loop
computes; the consumer only wraps the arrays in Tensors (and copies them to the GPU for
``device='cuda'``). NumPy releases the GIL in its copies and arithmetic, so the two overlap.
"""
import queue
import threading

import numpy as np

from .. import backend
from ..tensor import Tensor
from ..utils import check_bool, check_int
from .transforms import ToFloat

_POLL = 0.05  # seconds between checks of the stop event while blocked on the queue


class DataLoader:
    """Iterate a dataset in mini-batches ``(x, y)``.

    ``dataset`` has ``.images`` (uint8 ``(N, C, H, W)``), ``.labels`` (``(N,)`` integers:
    float labels are refused, not truncated) and ``len()``.
    ``transform(images, rng) -> float array`` runs on each batch (see
    ``minidl.data.transforms``); without one, ``ToFloat()`` (``x / 255``) is applied.
    ``len(loader)`` is the number of batches: ``ceil(N / batch_size)``, or
    ``floor(N / batch_size)`` with ``drop_last`` (the last, partial batch is dropped).
    """

    def __init__(self, dataset, batch_size=1, shuffle=False, drop_last=False, transform=None,
                 seed=0, device='cpu', prefetch=2, shard=None):
        for attr in ('images', 'labels'):
            if not hasattr(dataset, attr):
                raise TypeError(f"DataLoader: the dataset ({type(dataset).__name__}) has no "
                                f".{attr}")
        if isinstance(dataset.images, (list, tuple)):  # (batches index it with an array)
            raise TypeError(f"DataLoader: the dataset's images must be an array (N, C, H, W), "
                            f"got a {type(dataset.images).__name__}; convert with "
                            f"numpy.asarray")
        n_images, n_labels = len(dataset.images), len(dataset.labels)
        if not n_images == n_labels == len(dataset):
            raise ValueError(f"DataLoader: dataset of length {len(dataset)} has images of "
                             f"shape {np.shape(dataset.images)} and labels of shape "
                             f"{np.shape(dataset.labels)}")
        labels = dataset.labels  # an array's dtype is read as it is (O(1)), a list converted
        dtype = labels.dtype if hasattr(labels, 'dtype') else np.asarray(labels).dtype
        if n_labels and dtype.kind not in 'iu':
            raise TypeError(f"DataLoader: the dataset's labels ({type(dataset).__name__}"
                            f".labels) must be integer class indices, got dtype {dtype} "
                            f"(a float label would be truncated; convert with "
                            f".astype(numpy.int64) if they are whole numbers)")
        batch_size = check_int('DataLoader', 'batch_size', batch_size, 1)
        prefetch = check_int('DataLoader', 'prefetch', prefetch, 1)
        seed = check_int('DataLoader', 'seed', seed)
        if seed < 0:  # (found here, not by NumPy at the first batch)
            raise ValueError(f"DataLoader: seed must be >= 0 (NumPy's generators take no "
                             f"negative seed), got {seed}")
        for name, flag in (('shuffle', shuffle), ('drop_last', drop_last)):
            check_bool(f"DataLoader: {name}", flag)  # ('no' would be True)
        if transform is not None and not callable(transform):
            raise TypeError(f"DataLoader: transform must be callable(x, rng), got {transform!r}")
        try:
            self.device = backend.check_device(device)
        except (ValueError, RuntimeError) as e:
            raise type(e)(f"DataLoader: {e}") from None
        self.dataset = dataset
        self.batch_size = batch_size
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.transform = transform if transform is not None else ToFloat()
        self.seed = seed
        self.prefetch = prefetch
        self.shard = _check_shard(shard)
        self.epoch = 0  # the epoch the next iter() uses

    def _count(self):
        """Images per epoch on this rank: all of them, or an equal share of them."""
        n = len(self.dataset)
        return n if self.shard is None else n // self.shard[1]

    def __len__(self):
        n = self._count()
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def set_epoch(self, epoch):
        """Make the next ``iter()`` run epoch ``epoch`` (later ones continue from it)."""
        self.epoch = check_int('DataLoader.set_epoch', 'epoch', epoch, 0)

    def rng(self, epoch):
        """The generator of epoch ``epoch``: ``np.random.default_rng([seed, epoch])``."""
        return np.random.default_rng([self.seed, check_int('DataLoader', 'epoch', epoch, 0)])

    def batch_indices(self, epoch, rng=None):
        """The dataset indices of each batch of ``epoch``, in order (a list of arrays).

        Draws the permutation from ``rng`` (default: a fresh ``self.rng(epoch)``)."""
        n = len(self.dataset)
        rng = self.rng(epoch) if rng is None else rng
        order = rng.permutation(n) if self.shuffle else np.arange(n)
        if self.shard is not None:  # this rank's share: every world-th index from rank
            rank, world = self.shard
            order = order[:n - n % world][rank::world]
            n = len(order)
        stop = len(self) * self.batch_size
        return [order[i:i + self.batch_size] for i in range(0, min(stop, n), self.batch_size)]

    def __iter__(self):
        epoch, self.epoch = self.epoch, self.epoch + 1
        return _Iterator(self, epoch)

    def __repr__(self):
        shard = f", shard={self.shard}" if self.shard else ''
        return (f"DataLoader(len(dataset)={len(self.dataset)}, batch_size={self.batch_size}, "
                f"shuffle={self.shuffle}, drop_last={self.drop_last}, seed={self.seed}, "
                f"device={self.device!r}, prefetch={self.prefetch}, epoch={self.epoch}"
                f"{shard})")


def _check_shard(shard):
    """None, or (rank, world) with 0 <= rank < world."""
    if shard is None:
        return None
    if not (isinstance(shard, (tuple, list)) and len(shard) == 2):
        raise ValueError(f"DataLoader: shard must be (rank, world), got {shard!r}")
    world = check_int('DataLoader', 'shard world size', shard[1], 1)
    rank = check_int('DataLoader', 'shard rank', shard[0], 0)
    if rank >= world:
        raise ValueError(f"DataLoader: shard rank must be in [0, {world}), got {rank}")
    return rank, world


def _produce(images, labels, batches, transform, rng, out, stop, epoch):
    """Worker thread body: put ``('batch', x, y)`` per batch, then ``('done',)``, or
    ``('error', exc)``. Holds no reference to the consumer's iterator, so dropping that
    iterator lets it be collected, which sets ``stop``."""
    def put(item):
        while not stop.is_set():
            try:
                out.put(item, timeout=_POLL)
                return True
            except queue.Full:
                pass
        return False

    k = 0
    try:
        for k, index in enumerate(batches):
            if stop.is_set():
                return
            x = transform(images[index], rng)
            if not backend.is_array(x):
                name = getattr(transform, '__qualname__', type(transform).__name__)
                raise TypeError(f"DataLoader: the transform {name} returned "
                                f"{type(x).__name__}, expected an array of images")
            y = np.asarray(labels[index])
            if y.dtype.kind not in 'iu':  # (checked at construction; labels may be replaced)
                raise TypeError(f"DataLoader: labels must be integer class indices, got "
                                f"dtype {y.dtype}")
            y = y.astype(np.int64, copy=False)
            if not put(('batch', x, y)):
                return
        put(('done',))
    except BaseException as e:  # re-raised by the consumer with this traceback
        e.add_note(f"(raised in the DataLoader worker thread, epoch {epoch}, batch {k})")
        put(('error', e))


class _Iterator:
    """One pass over the data: owns the worker thread and its queue."""

    def __init__(self, loader, epoch):
        self.epoch = epoch
        self._device = loader.device
        self._length = len(loader)
        self._queue = queue.Queue(maxsize=loader.prefetch)
        self._stop = threading.Event()
        rng = loader.rng(epoch)
        batches = loader.batch_indices(epoch, rng)
        if hasattr(loader.transform, 'set_epoch'):  # (before the worker starts reading it)
            loader.transform.set_epoch(epoch)
        if loader.shard is not None and loader.shard[0] > 0:  # each rank its own crops
            rng = np.random.default_rng([loader.seed, epoch, loader.shard[0]])
        self._thread = threading.Thread(
            target=_produce, name=f"minidl-DataLoader-epoch{epoch}", daemon=True,
            args=(loader.dataset.images, loader.dataset.labels, batches, loader.transform,
                  rng, self._queue, self._stop, epoch))
        self._done = False
        self._thread.start()

    def __iter__(self):
        return self

    def __len__(self):
        return self._length

    def __next__(self):
        if self._done:
            raise StopIteration
        while True:
            try:
                item = self._queue.get(timeout=_POLL)
                break
            except queue.Empty:
                if not self._thread.is_alive() and self._queue.empty():
                    self.close()
                    raise RuntimeError("DataLoader: the worker thread exited without "
                                       "finishing the epoch") from None
        if item[0] == 'batch':
            x = backend.to_device(item[1], self._device)
            y = backend.to_device(item[2], self._device)
            return Tensor(x), Tensor(y)
        self.close()
        if item[0] == 'error':
            raise item[1]
        raise StopIteration

    def close(self):
        """Stop the worker (it exits within ~``_POLL`` s of finishing its current batch)."""
        self._done = True
        self._stop.set()
        try:
            while True:
                self._queue.get_nowait()
        except queue.Empty:
            pass

    def __del__(self):
        if hasattr(self, '_stop'):
            self.close()
