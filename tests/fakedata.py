"""Tiny data files in exactly the official formats, for tests: CIFAR-10's Python 2
protocol-2 pickles and Fashion-MNIST's gzipped IDX files."""
import gzip
import io
import pickle
import struct
from pathlib import Path

import numpy as np

CIFAR_NAMES = [b'airplane', b'automobile', b'bird', b'cat', b'deer', b'dog', b'frog',
               b'horse', b'ship', b'truck']
FASHION_NAMES = ('T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt',
                 'Sneaker', 'Bag', 'Ankle boot')
N_PER_BATCH = 4            # 5 training batches -> 20 images, labels 0..9 twice
N_TEST = 10


_RECONSTRUCT = np.ndarray.__reduce__(np.empty(0))[0]


class Py2Pickler(pickle._Pickler):
    """Pickles as Python 2 wrote the CIFAR-10 files (protocol 2): bytes and str as STRING
    opcodes, numpy's ``_reconstruct`` under its numpy 1.x module name, dtype flags as ints.
    (Python 3 would write bytes as calls to ``_codecs.encode``, which the real files never
    contain.) ``test_real_cifar_files_have_the_opcodes_of_the_tiny_ones`` checks the match."""
    dispatch = pickle._Pickler.dispatch.copy()

    def save_py2_str(self, obj):
        raw = obj.encode('latin1') if isinstance(obj, str) else obj
        if len(raw) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(raw)]) + raw)
        else:
            self.write(pickle.BINSTRING + struct.pack('<i', len(raw)) + raw)
        self.memoize(obj)

    dispatch[bytes] = dispatch[str] = save_py2_str

    def save_global(self, obj, name=None):
        if obj is _RECONSTRUCT:
            self.write(pickle.GLOBAL + b'numpy.core.multiarray\n_reconstruct\n')
            self.memoize(obj)
        else:
            super().save_global(obj, name)

    def reducer_override(self, obj):
        if isinstance(obj, np.dtype):
            cls, (kind, align, copy), state = obj.__reduce__()
            return cls, (kind, int(align), int(copy)), state
        return NotImplemented


def py2_pickle(obj):
    f = io.BytesIO()
    Py2Pickler(f, protocol=2).dump(obj)
    return f.getvalue()


def write_cifar(root, n_per_batch=N_PER_BATCH, n_test=N_TEST, seed=0):
    """``root/cifar-10-batches-py/`` with 5 training batches, a test batch and batches.meta.

    Returns {file name: (data uint8 (n, 3072), labels list)}. Label of image i in batch b:
    (b * n_per_batch + i) % 10, so the training set runs through the classes in turn.
    """
    folder = Path(root) / 'cifar-10-batches-py'
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    written = {}
    names = [f'data_batch_{b}' for b in range(1, 6)] + ['test_batch']
    for b, name in enumerate(names):
        n = n_test if name == 'test_batch' else n_per_batch
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = [i % 10 for i in range(n)] if name == 'test_batch' else \
            [(b * n_per_batch + i) % 10 for i in range(n)]
        write_batch(folder / name, data, labels)
        written[name] = (data, labels)
    (folder / 'batches.meta').write_bytes(py2_pickle(
        {b'num_cases_per_batch': n_per_batch, b'label_names': CIFAR_NAMES, b'num_vis': 3072}))
    return written


def write_batch(path, data, labels, **extra):
    batch = {b'batch_label': b'batch of tests', b'labels': labels, b'data': data,
             b'filenames': [b'image_%d.png' % i for i in range(len(labels))]}
    batch.update(extra)
    Path(path).write_bytes(py2_pickle(batch))


def idx_bytes(array, magic=None):
    """An IDX file: big-endian int32 magic (0x08 = ubyte, then ndim), dims, uint8 values."""
    array = np.asarray(array, np.uint8)
    magic = 0x0800 + array.ndim if magic is None else magic
    return (struct.pack('>I', magic) + struct.pack(f'>{array.ndim}I', *array.shape)
            + array.tobytes())


def write_fashion(folder, n_train=12, n_test=5, seed=0, gz=True):
    """The four Fashion-MNIST IDX files in ``folder``; {'train'|'t10k': (images, labels)}."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    written = {}
    for prefix, n in (('train', n_train), ('t10k', n_test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) * 3 % 10).astype(np.uint8)
        write_idx(folder / f'{prefix}-images-idx3-ubyte', idx_bytes(images), gz)
        write_idx(folder / f'{prefix}-labels-idx1-ubyte', idx_bytes(labels), gz)
        written[prefix] = (images, labels)
    return written


def write_idx(path, raw, gz=True):
    path = Path(str(path) + '.gz') if gz else Path(path)
    path.write_bytes(gzip.compress(raw) if gz else raw)
    return path
