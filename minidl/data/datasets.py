"""CIFAR-10 and Fashion-MNIST, read from their official files into memory (see docs/data.md).

Each data set holds one whole split: ``.images`` uint8 NCHW, ``.labels`` int64 (N,),
``.classes`` a tuple of names; ``ds[i]`` is ``(image CHW uint8, int label)``.

Where the files are looked for, in order (the first place holding the split wins):
the ``root`` argument, ``$MINIDL_DATA``, for Fashion-MNIST the Debian package's folder
``/usr/share/datasets/fashion-mnist``, then the cache ``~/.cache/minidl``. Within a place,
CIFAR-10 is the official "python version" folder ``cifar-10-batches-py/``; Fashion-MNIST's
four IDX files (``.gz`` or uncompressed) sit in ``fashion-mnist/`` or directly in the place.
Found nowhere and ``download=True``: the official files are downloaded into ``root`` (or
the cache) and checked by md5; when that fails, one DatasetNotFoundError lists every place
looked in and how to provide the files. ``missing_from(dataset, place)`` checks one place
alone (no other place, no download): for a folder a user named on purpose, such as
``minidl train --data DIR``, which must not be silently replaced by another place.

File formats:

* CIFAR-10 batch (``data_batch_1``..``5``, ``test_batch``): a pickle (protocol 2, written by
  Python 2) of a dict with byte-string keys: ``b'data'`` a uint8 array (n, 3072) holding
  per image 1024 red, then 1024 green, then 1024 blue values, each plane 32x32 row-major,
  so a row reshapes straight to (3, 32, 32); ``b'labels'`` a list of n ints in 0..9;
  ``b'batch_label'`` and ``b'filenames'`` (unused). ``batches.meta``: a dict whose
  ``b'label_names'`` lists the 10 class names.
* Fashion-MNIST IDX file (big-endian): int32 magic (2051 images, 2049 labels: 0x08 = ubyte
  then the number of dimensions), one int32 per dimension (n, 28, 28 or n), then the
  uint8 values row-major.

Integrity (every file, every load; nothing is cached): the structure is always validated
(shapes, dtypes, label range, consistent lengths). A file whose size equals the official
file's size must also have the official md5 (``verify=False`` skips that check); smaller
files, such as the tiny ones the tests write, get the structural checks only. For
Fashion-MNIST the size and md5 are those of the uncompressed bytes, since distributions
recompress the .gz files. Anything wrong raises DatasetCorruptError naming the file.

CIFAR pickles are read by a restricted unpickler. The official files name only three globals,
numpy's ``_reconstruct``, ``ndarray`` and ``dtype``, and use them in one pattern per array::

    _reconstruct(ndarray, (0,), b'b')                          an empty array, then BUILD:
    (1, shape, dtype(name, 0, 1) + its state, fortran flag, data bytes)

The unpickler hands out stand-ins for those three names, never numpy's own objects, so a file
can only follow that pattern: ``ndarray`` may not be called, ``_reconstruct`` only with exactly
those arguments, ``dtype`` only for plain bool/int/uint/float types, and every array must then
get its state, whose data bytes must be exactly ``prod(shape) * itemsize`` long. Every array's
contents therefore come from the file (never from uninitialised memory), and a file naming any
other object is refused before anything from it runs. Errors name the file and the rule broken,
never an object's repr or a memory address.
"""
import gzip
import hashlib
import io
import math
import operator
import os
import pickle
import re
import struct
import zlib

import numpy as np

from . import download as _download
from ..utils import check_bool

ENV_VAR = 'MINIDL_DATA'
DEBIAN_FASHION_MNIST = '/usr/share/datasets/fashion-mnist'


def cache_dir():
    """Where downloads go when no ``root`` is given: ``~/.cache/minidl``."""
    return os.path.join(os.path.expanduser('~'), '.cache', 'minidl')


class DatasetNotFoundError(FileNotFoundError):
    """The data set's files are nowhere to be found (and could not be downloaded)."""


class DatasetCorruptError(ValueError):
    """A data-set file is truncated, damaged or not in the expected format."""


# ----------------------------------------------------------------------------- data sets
class _Dataset:
    """One split held in memory; subclasses say where the files are and how to read them."""
    name = ''            # e.g. 'CIFAR10'
    class_names = ()     # all classes, in label order
    mean = std = ()      # per-channel constants for normalising images scaled to [0, 1]

    def __init__(self, root=None, train=True, classes=None, download=True, verify=True):
        for option, flag in (('train', train), ('download', download), ('verify', verify)):
            check_bool(f"{self.name}: {option}", flag)  # (train='no' would be the train split)
        if root is not None and not isinstance(root, (str, bytes, os.PathLike)):
            raise TypeError(f"{self.name}: root must be a folder path (str or os.PathLike), "
                            f"got {type(root).__name__}")
        self.train = bool(train)
        found, looked = _search(type(self), root, self.train)
        if found is None:
            if not download:
                raise _not_found(type(self), self.train, looked,
                                 "Nothing was downloaded (download=False)")
            dest = os.path.expanduser(os.fspath(root)) if root is not None else cache_dir()
            try:
                type(self)._fetch(dest, self.train)
            except _download.DownloadError as err:
                raise _not_found(type(self), self.train, looked,
                                 f"Downloading into {dest} failed: {err}") from None
            folder, paths = type(self)._look(dest, self.train)
            if folder is None:
                raise _not_found(type(self), self.train, looked,
                                 f"Downloading into {dest} did not produce the files")
            found = (dest, folder, paths)
        self.root, self.folder, paths = found
        self.images, self.labels, self.classes = self._read(paths, verify)
        if classes is not None:
            self._select(classes)

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, index):
        try:
            index = operator.index(index)
        except TypeError:
            raise TypeError(f"{self.name}: index must be an int, got "
                            f"{type(index).__name__} {index!r:.40}") from None
        if not -len(self) <= index < len(self):
            raise IndexError(f"{self.name}: index {index} is out of range for {len(self)} "
                             f"images")
        return self.images[index], int(self.labels[index])

    def __repr__(self):
        split = 'train' if self.train else 'test'
        return (f"{self.name}(split={split!r}, size={len(self)}, classes={len(self.classes)}, "
                f"root={self.root!r})")

    def _select(self, classes):
        """Keep only ``classes`` (names or indices) and relabel them 0..k-1 in that order."""
        names = self.classes
        if isinstance(classes, (str, int, np.integer)):
            classes = (classes,)
        if isinstance(classes, (set, frozenset)):  # (its order, hence the labels, may vary)
            raise TypeError(f"{self.name}: classes must be in order (a list or tuple: the "
                            f"first is label 0), got a {type(classes).__name__}")
        chosen = []
        for c in classes:
            if isinstance(c, str):
                if c not in names:
                    raise ValueError(f"{self.name}: unknown class {c!r}; valid classes: "
                                     f"{', '.join(map(repr, names))} "
                                     f"(or indices 0..{len(names) - 1})")
                c = names.index(c)
            elif isinstance(c, (int, np.integer)) and not isinstance(c, bool):
                if not 0 <= c < len(names):
                    raise ValueError(f"{self.name}: class index {c} is out of range "
                                     f"0..{len(names) - 1}")
                c = int(c)
            else:
                raise TypeError(f"{self.name}: classes must be names or indices, got {c!r}")
            if c in chosen:
                raise ValueError(f"{self.name}: class {names[c]!r} is given twice")
            chosen.append(c)
        if not chosen:
            raise ValueError(f"{self.name}: classes is empty; pass None to keep all classes")
        relabel = np.full(len(names), -1, np.int64)
        relabel[chosen] = np.arange(len(chosen))
        new = relabel[self.labels]
        keep = new >= 0
        self.images, self.labels = self.images[keep], new[keep]
        self.classes = tuple(names[c] for c in chosen)


class CIFAR10(_Dataset):
    """CIFAR-10: 32x32 RGB images in 10 classes; 50,000 train, 10,000 test.

    ``CIFAR10(root=None, train=True, classes=None, download=True, verify=True)``:
    ``.images`` uint8 (N, 3, 32, 32), ``.labels`` int64 (N,), ``.classes`` names.
    ``classes=('airplane', 'ship')`` (names or indices) keeps those classes, relabelled
    0..k-1 in the order given. ``mean``/``std``: per-channel statistics of the training set
    in [0, 1], for normalisation.
    """
    name = 'CIFAR10'
    folder_name = 'cifar-10-batches-py'
    class_names = ('airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse',
                   'ship', 'truck')
    mean = (0.4914, 0.4822, 0.4465)
    std = (0.2470, 0.2435, 0.2616)
    url = 'https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz'
    archive_md5 = 'c58f30108f718f92721af3b95e74349a'
    # The official files: name -> (size in bytes, md5).
    files = {
        'data_batch_1': (31035704, 'c99cafc152244af753f735de768cd75f'),
        'data_batch_2': (31035320, 'd4bba439e000b95fd0a9bffe97cbabec'),
        'data_batch_3': (31035999, '54ebc095f3ab1f0389bbae665268c751'),
        'data_batch_4': (31035696, '634d18415352ddfa80567beed471001a'),
        'data_batch_5': (31035623, '482c414d41f54cd18b22e5b47cb7c3cb'),
        'test_batch': (31035526, '40351d587109b95175f43aff81a1287e'),
        'batches.meta': (158, '5ff9c542aee3614f3951f8cda6e48888'),
    }

    @classmethod
    def _needed(cls, train):
        batches = [f'data_batch_{i}' for i in range(1, 6)] if train else ['test_batch']
        return batches + ['batches.meta']

    @classmethod
    def _look(cls, place, train):
        folder = os.path.join(place, cls.folder_name)
        if not os.path.isdir(folder):
            return None, f"no {cls.folder_name}/ folder"
        missing = [n for n in cls._needed(train) if not os.path.isfile(os.path.join(folder, n))]
        if missing:
            return None, f"{cls.folder_name}/ lacks {', '.join(missing)}"
        return folder, {n: os.path.join(folder, n) for n in cls._needed(train)}

    @classmethod
    def _expected(cls, place, train):
        expected = f"{cls.folder_name}/ holding {', '.join(cls._needed(train))}"
        inside = os.path.normpath(place)
        if (os.path.basename(inside) == cls.folder_name
                or os.path.isfile(os.path.join(place, 'batches.meta'))):
            # the data folder itself was named, not the folder that holds it
            expected += (f" (this looks like the {cls.folder_name}/ folder itself: name "
                         f"its parent, {os.path.dirname(inside)})")
        return expected

    @classmethod
    def _provide(cls, place):
        return f"get {cls.url} (the 'python version') and unpack it in {place}"

    @classmethod
    def _fetch(cls, dest, train):
        archive = os.path.join(dest, 'cifar-10-python.tar.gz')
        _download.fetch(cls.url, archive, cls.archive_md5)
        try:
            _download.extract_tar(archive, dest)
        finally:
            os.unlink(archive)

    @classmethod
    def _hint(cls):
        return (f"get {cls.url} (the 'python version'), unpack it into a folder so that it "
                f"holds {cls.folder_name}/, and set {ENV_VAR} to that folder (or pass root=)")

    def _read(self, paths, verify):
        meta = _unpickle(paths['batches.meta'], self.files, verify)
        names = meta.get(b'label_names') if isinstance(meta, dict) else None
        if (not isinstance(names, list) or len(names) != 10
                or not all(isinstance(n, (bytes, str)) for n in names)):
            raise _corrupt(paths['batches.meta'], "not a CIFAR-10 batches.meta: no list of "
                           "10 names under b'label_names'")
        classes = tuple(n.decode('latin1') if isinstance(n, bytes) else n for n in names)
        images, labels = [], []
        for name, path in paths.items():
            if name != 'batches.meta':
                x, y = _read_cifar_batch(path, self.files, verify)
                images.append(x)
                labels.append(y)
        return np.concatenate(images), np.concatenate(labels), classes


class FashionMNIST(_Dataset):
    """Fashion-MNIST: 28x28 grey images of clothing in 10 classes; 60,000 train, 10,000 test.

    ``FashionMNIST(root=None, train=True, classes=None, download=True, verify=True)``:
    ``.images`` uint8 (N, 1, 28, 28), ``.labels`` int64 (N,), ``.classes`` names;
    ``classes`` works as for CIFAR10.
    """
    name = 'FashionMNIST'
    folder_name = 'fashion-mnist'
    class_names = ('T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt',
                   'Sneaker', 'Bag', 'Ankle boot')
    # Computed once from the 60,000 training images: all 47,040,000 pixels scaled to [0, 1],
    # mean 0.28604 and (population) std 0.35302, in float64.
    mean = (0.2860,)
    std = (0.3530,)
    url = 'http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/'
    # The official .gz files as downloaded from ``url``: name -> md5.
    gz_md5 = {
        'train-images-idx3-ubyte.gz': '8d4fb7e6c68d591d4c3dfef9ec88bf0d',
        'train-labels-idx1-ubyte.gz': '25c81989df183df01b3e8a0aad5dffbe',
        't10k-images-idx3-ubyte.gz': 'bef4ecab320f06d8554ea6380940ec79',
        't10k-labels-idx1-ubyte.gz': 'bb300cfdad3c16e7a12a480ee83cd310',
    }
    # The official files UNCOMPRESSED (a recompressed .gz, e.g. Debian's, differs as a .gz
    # but holds the same bytes): name -> (size in bytes, md5).
    files = {
        'train-images-idx3-ubyte': (47040016, 'f4a8712d7a061bf5bd6d2ca38dc4d50a'),
        'train-labels-idx1-ubyte': (60008, '9018921c3c673c538a1fc5bad174d6f9'),
        't10k-images-idx3-ubyte': (7840016, '8181f5470baa50b63fa0f6fddb340f0a'),
        't10k-labels-idx1-ubyte': (10008, '15d484375f8d13e6eb1aabb0c3f46965'),
    }

    @classmethod
    def _needed(cls, train):
        prefix = 'train' if train else 't10k'
        return [f'{prefix}-images-idx3-ubyte', f'{prefix}-labels-idx1-ubyte']

    @classmethod
    def _look(cls, place, train):
        for folder in (os.path.join(place, cls.folder_name), place):
            paths = {}
            for stem in cls._needed(train):
                for name in (stem + '.gz', stem):
                    if os.path.isfile(os.path.join(folder, name)):
                        paths[stem] = os.path.join(folder, name)
                        break
            if len(paths) == 2:
                return folder, paths
        return None, (f"no {' and '.join(n + '.gz' for n in cls._needed(train))} in it "
                      f"or in {cls.folder_name}/")

    @classmethod
    def _expected(cls, place, train):
        return (f"{' and '.join(n + '[.gz]' for n in cls._needed(train))} (gzipped or not) "
                f"directly in it or in {cls.folder_name}/")

    @classmethod
    def _provide(cls, place):
        return f"get {', '.join(cls.gz_md5)} from {cls.url} into {place}"

    @classmethod
    def _fetch(cls, dest, train):
        for stem in cls._needed(train):
            name = stem + '.gz'
            _download.fetch(cls.url + name, os.path.join(dest, cls.folder_name, name),
                            cls.gz_md5[name])

    @classmethod
    def _hint(cls):
        files = ', '.join(cls.gz_md5)
        return (f"`apt-get install dataset-fashion-mnist` (files land in "
                f"{DEBIAN_FASHION_MNIST}), or get {files} from {cls.url} into a folder and "
                f"set {ENV_VAR} to it (or pass root=)")

    def _read(self, paths, verify):
        images_stem, labels_stem = self._needed(self.train)
        images = _read_idx(paths[images_stem], 2051, (28, 28), self.files, verify)
        labels = _read_idx(paths[labels_stem], 2049, (), self.files, verify)
        if len(images) != len(labels):
            raise DatasetCorruptError(
                f"{self.name}: {paths[images_stem]} holds {len(images)} images but "
                f"{paths[labels_stem]} holds {len(labels)} labels")
        _check_labels(paths[labels_stem], labels, 10)
        return images.reshape(-1, 1, 28, 28), labels.astype(np.int64), self.class_names


DATASETS = {'cifar10': CIFAR10, 'fashionmnist': FashionMNIST}


# ----------------------------------------------------------------------------- lookup
def find_data_root(dataset, root=None, train=True):
    """The first place (see the module docstring) holding ``dataset``'s split; no download.

    ``dataset`` is CIFAR10, FashionMNIST or their name ('cifar10', 'fashion-mnist', any
    case). Passing the result as ``root=`` finds the same files. Raises
    DatasetNotFoundError listing every place looked in.
    """
    cls = _dataset_class(dataset, 'find_data_root')
    found, looked = _search(cls, root, bool(train))
    if found is None:
        raise _not_found(cls, bool(train), looked, None)
    return found[0]


def missing_from(dataset, place, train=True):
    """None when ``place`` itself holds ``dataset``'s split (so ``dataset(root=place)``
    reads it from there), else one line: what is missing there, what was expected and how
    to provide it, e.g. ``no CIFAR10 train split (no cifar-10-batches-py/ folder): expected
    cifar-10-batches-py/ holding data_batch_1, ...; get URL ... and unpack it in PLACE``.

    Only ``place`` is looked at ($MINIDL_DATA and the cache are not) and nothing is
    downloaded: for a folder a user named on purpose, which must not be silently replaced
    by another place or filled behind their back. ``dataset`` as for find_data_root.
    """
    cls = _dataset_class(dataset, 'missing_from')
    place = os.path.expanduser(os.fspath(place))
    folder, why = cls._look(place, bool(train))
    if folder is not None:
        return None
    split = 'train' if train else 'test'
    return (f"no {cls.name} {split} split ({why}): expected {cls._expected(place, train)}; "
            f"{cls._provide(place)}")


def _dataset_class(dataset, caller):
    key = dataset.lower().replace('-', '').replace('_', '') if isinstance(dataset, str) \
        else getattr(dataset, 'name', '').lower()
    cls = DATASETS.get(key)
    if cls is None:
        raise ValueError(f"{caller}: unknown data set {dataset!r}; known: "
                         f"{', '.join(c.name for c in DATASETS.values())}")
    return cls


def _places(cls, root):
    """(place, why) in search order, without repeats."""
    places = []
    if root is not None:
        places.append((os.fspath(root), 'root argument'))
    if os.environ.get(ENV_VAR):
        places.append((os.environ[ENV_VAR], f'${ENV_VAR}'))
    if cls is FashionMNIST:
        places.append((DEBIAN_FASHION_MNIST, 'Debian package dataset-fashion-mnist'))
    places.append((cache_dir(), 'download cache'))
    seen, unique = set(), []
    for place, why in places:
        key = os.path.abspath(os.path.expanduser(place))
        if key not in seen:
            seen.add(key)
            unique.append((os.path.expanduser(place), why))
    return unique


def _search(cls, root, train):
    """((place, folder, paths), looked) for the first place with the split, else (None, looked)."""
    looked = []
    for place, why in _places(cls, root):
        folder, paths = cls._look(place, train)
        if folder is not None:
            return (place, folder, paths), looked
        looked.append(f"{place} ({why}): {paths}")
    return None, looked


def _not_found(cls, train, looked, download_note):
    split = 'train' if train else 'test'
    lines = [f"{cls.name}: the {split} split was not found. Looked in:"]
    lines += [f"  - {line}" for line in looked]
    if download_note:
        lines.append(f"{download_note}.")
    lines.append(f"To provide it: {cls._hint()}.")
    return DatasetNotFoundError('\n'.join(lines))


# ----------------------------------------------------------------------------- reading
def _corrupt(path, reason):
    return DatasetCorruptError(f"{path} is corrupt or not the expected file: {reason}")


def _read_bytes(path, official, verify):
    """The file's bytes; md5-checked when its size is the official file's size."""
    with open(path, 'rb') as f:
        data = f.read()
    _check_md5(path, data, official, verify, os.path.basename(path))
    return data


def _check_md5(path, data, official, verify, name):
    size, md5 = official.get(name, (None, None))
    if verify and len(data) == size:
        actual = hashlib.md5(data).hexdigest()
        if actual != md5:
            raise _corrupt(path, f"md5 {actual}, but the official {name} of this size "
                                 f"({size} bytes) has md5 {md5}; delete it and get it again")


_BAD_PICKLE = (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
               IndexError, KeyError, struct.error, OverflowError, MemoryError, RecursionError)


class _Refused(pickle.UnpicklingError):
    """The file does something the official CIFAR-10 pickles never do."""


# Plain dtypes an array in a CIFAR file may have (the official files use 'u1' only).
_PLAIN_DTYPES = {'b1', 'i1', 'i2', 'i4', 'i8', 'u1', 'u2', 'u4', 'u8', 'f2', 'f4', 'f8'}
_BYTE_ORDERS = {'<': '<', '>': '>', '|': '=', '=': '='}


class _Allowed:
    """Stands in for one global a CIFAR file may name: calling it calls ``build``. It has no
    ``__dict__`` and refuses a state, so a file cannot change it (or anything behind it)."""
    __slots__ = ('name', 'build')

    def __init__(self, name, build):
        self.name, self.build = name, build

    def __call__(self, *args):
        return self.build(*args)

    def __setstate__(self, state):
        raise _Refused(f"it sets a state on {self.name}")


def _text(value):
    """A str or bytes name from the file as a str; None for anything else."""
    if isinstance(value, bytes):
        return value.decode('latin1')
    return value if isinstance(value, str) else None


class _DtypeFromFile:
    """``numpy.dtype(name, align, copy)`` then, optionally, its state (the byte order)."""
    __slots__ = ('dtype', 'has_state')
    __hash__ = None

    def __init__(self, name, align, copy):
        name = _text(name)
        if name not in _PLAIN_DTYPES or align not in (0, 1) or copy not in (0, 1):
            what = repr(name) if name is not None else type(name).__name__
            raise _Refused(f"it asks for dtype {what}; only plain bool, int, uint and float "
                           f"dtypes ({', '.join(sorted(_PLAIN_DTYPES))}) are allowed")
        self.dtype, self.has_state = np.dtype(name), False

    def __setstate__(self, state):
        # numpy writes (3, byte order, None, None, None, -1, -1, 0) for a plain dtype
        order = _text(state[1]) if isinstance(state, tuple) and len(state) == 8 else None
        if (self.has_state or order not in _BYTE_ORDERS
                or state[0] != 3 or state[2:] != (None, None, None, -1, -1, 0)):
            raise _Refused("a dtype's state is not (3, byte order, None, None, None, -1, -1, 0) "
                           "set once, as numpy writes for a plain dtype")
        self.dtype, self.has_state = self.dtype.newbyteorder(_BYTE_ORDERS[order]), True


class _ArrayFromFile:
    """``_reconstruct(ndarray, (0,), b'b')``: an array still without contents; its state
    (version 1, shape, dtype, fortran flag, data bytes) makes ``.array`` from the data."""
    __slots__ = ('array',)
    __hash__ = None

    def __init__(self):
        self.array = None

    def __setstate__(self, state):
        if self.array is not None:
            raise _Refused("an array's state is set twice")
        if not (isinstance(state, tuple) and len(state) == 5 and state[0] == 1):
            raise _Refused("an array's state is not (1, shape, dtype, fortran flag, data)")
        _, shape, dtype, fortran, raw = state
        if (not isinstance(shape, tuple) or
                not all(type(n) is int and n >= 0 for n in shape)):
            raise _Refused("an array's shape is not a tuple of non-negative ints")
        if not isinstance(dtype, _DtypeFromFile) or fortran not in (0, 1):
            raise _Refused("an array's state is not (1, shape, dtype, fortran flag, data)")
        if type(raw) is not bytes:
            raise _Refused(f"an array's data is {type(raw).__name__}, expected bytes")
        dtype = dtype.dtype
        size = math.prod(shape) * dtype.itemsize
        if len(raw) != size:
            raise _Refused(f"an array declares shape {shape} {dtype} ({size} bytes) but holds "
                           f"{len(raw)} bytes of data")
        order = 'F' if fortran else 'C'
        self.array = np.frombuffer(raw, dtype).reshape(shape, order=order).copy()


class _RestrictedUnpickler(pickle.Unpickler):
    """Reads a CIFAR-10 pickle; only the official files' pattern (module docstring) builds
    arrays, any other global fails. Arrays may be the top-level object or values of the
    top-level dict (where CIFAR keeps ``b'data'``); anywhere else they stay stand-ins,
    which no reader accepts."""

    def __init__(self, file):
        super().__init__(file, encoding='bytes')
        self.arrays = []        # every array the file builds: each must get its contents
        self.ndarray = _Allowed('numpy.ndarray', self._ndarray_called)
        reconstruct = _Allowed('_reconstruct', self._reconstruct)
        self.allowed = {
            ('numpy.core.multiarray', '_reconstruct'): reconstruct,   # numpy 1.x (the files)
            ('numpy._core.multiarray', '_reconstruct'): reconstruct,  # numpy 2.x
            ('numpy', 'ndarray'): self.ndarray,
            ('numpy', 'dtype'): _Allowed('numpy.dtype', _DtypeFromFile),
        }

    def find_class(self, module, name):
        try:
            return self.allowed[(module, name)]
        except (KeyError, TypeError):
            raise _Refused(f"it references the forbidden object {module}.{name} "
                           f"(only numpy arrays are allowed)") from None

    def _ndarray_called(self, *args):
        raise _Refused("it calls numpy.ndarray directly, which would fill an array with "
                       "uninitialised memory, not with data from the file")

    def _reconstruct(self, subtype, shape, typecode):
        if subtype is not self.ndarray or shape != (0,) or _text(typecode) != 'b':
            raise _Refused("it calls numpy's _reconstruct with arguments other than "
                           "numpy.ndarray, (0,), b'b' (as numpy writes an array)")
        array = _ArrayFromFile()
        self.arrays.append(array)
        return array

    def load(self):
        result = super().load()
        if any(a.array is None for a in self.arrays):
            raise _Refused("an array is built without its contents (no state with its data "
                           "follows numpy's _reconstruct)")
        if isinstance(result, _ArrayFromFile):
            return result.array
        if isinstance(result, dict):
            return {key: value.array if isinstance(value, _ArrayFromFile) else value
                    for key, value in result.items()}
        return result


def _unpickle(path, official, verify):
    data = _read_bytes(path, official, verify)
    try:
        return _RestrictedUnpickler(io.BytesIO(data)).load()
    except _Refused as err:
        raise _corrupt(path, str(err)) from None
    except _BAD_PICKLE as err:
        # no object's repr or memory address from a hostile file reaches the message
        reason = re.sub(r'<[^<>]*>|0x[0-9a-fA-F]+', '...', f"{type(err).__name__}: {err}")
        raise _corrupt(path, f"unreadable pickle ({reason})") from None


def _read_cifar_batch(path, official, verify):
    batch = _unpickle(path, official, verify)
    if not isinstance(batch, dict) or b'data' not in batch or b'labels' not in batch:
        raise _corrupt(path, "not a CIFAR-10 batch: no dict with b'data' and b'labels'")
    data, labels = batch[b'data'], batch[b'labels']
    if (not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2
            or data.shape[1] != 3 * 32 * 32):
        what = (f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray)
                else type(data).__name__)
        raise _corrupt(path, f"b'data' is {what}, expected a uint8 array (n, 3072)")
    try:
        labels = np.asarray(labels)
    except (ValueError, TypeError, OverflowError):
        labels = np.asarray(None)
    if labels.ndim != 1 or labels.dtype.kind not in 'iu' or len(labels) != len(data):
        raise _corrupt(path, f"b'labels' is not a list of {len(data)} integers (one per "
                             f"image)")
    _check_labels(path, labels, 10)
    return data.reshape(-1, 3, 32, 32), labels.astype(np.int64)


def _check_labels(path, labels, n_classes):
    bad = np.flatnonzero((labels < 0) | (labels >= n_classes))
    if len(bad):
        raise _corrupt(path, f"label {labels[bad[0]]} at index {bad[0]} is out of range "
                             f"0..{n_classes - 1}")


def _read_idx(path, magic, item_shape, official, verify):
    """The uint8 array in the IDX file ``path`` (gzipped when its name ends in .gz)."""
    with open(path, 'rb') as f:
        raw = f.read()
    if path.endswith('.gz'):
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as err:
            raise _corrupt(path, f"bad gzip data ({type(err).__name__}: {err})") from None
    name = os.path.basename(path[:-3] if path.endswith('.gz') else path)
    _check_md5(path, raw, official, verify, name)
    if len(raw) < 4:
        raise _corrupt(path, f"{len(raw)} bytes, too short for an IDX header")
    found = int.from_bytes(raw[:4], 'big')
    if found != magic:
        raise _corrupt(path, f"IDX magic number {found}, expected {magic}")
    ndim = 1 + len(item_shape)
    start = 4 + 4 * ndim
    if len(raw) < start:
        raise _corrupt(path, f"{len(raw)} bytes, too short for an IDX header")
    dims = struct.unpack(f'>{ndim}I', raw[4:start])
    if dims[1:] != item_shape:
        raise _corrupt(path, f"items of shape {dims[1:]}, expected {item_shape}")
    expected = start + int(np.prod(dims))
    if len(raw) != expected:
        raise _corrupt(path, f"{len(raw)} bytes, but its header (shape {dims}) means "
                             f"{expected}: truncated or padded")
    return np.frombuffer(raw, np.uint8, offset=start).reshape(dims).copy()
