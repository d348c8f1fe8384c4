"""Checkpoints: ``save(obj, path)`` and ``load(path)`` for nested state, without pickle.

A checkpoint is a standard ``.npz`` file (a zip archive written by ``np.savez``, stored
uncompressed) holding:

* ``array_0.npy``, ``array_1.npy``, ...: one ``.npy`` entry per array, Tensor or NumPy
  scalar in ``obj`` (CuPy arrays are copied to the host first);
* ``minidl_meta.npy``: a uint8 array of UTF-8 JSON describing the tree::

      {"format": "minidl-checkpoint", "version": 1, "root": NODE}

  where NODE is one of ``{"t": "none"}``, ``{"t": "bool"|"int"|"str", "v": ...}``,
  ``{"t": "float", "v": 0.5}`` (non-finite floats as the strings "nan", "inf", "-inf"),
  ``{"t": "list"|"tuple", "items": [NODE, ...]}``,
  ``{"t": "dict", "items": [["s"|"i", KEY, NODE], ...]}`` (key type: str or int),
  ``{"t": "array"|"scalar", "entry": "array_3", "dtype": "<f4", "shape": [2, 3]}``.

``load`` opens the file with ``np.load(allow_pickle=False)``, so it never runs code from the
file, checks every entry's CRC, dtype and shape, and returns the same structure with NumPy
arrays in place of arrays and Tensors (a GPU-saved checkpoint loads on a CPU-only machine).
Before allocating anything for an entry it checks what the file declares (see
docs/checkpoints.md, "What a checkpoint may declare"): the member is stored uncompressed,
its zip directory's size is the number of bytes stored and lies inside the file, all members
read declare no more bytes together than the file's size; the ``.npy`` header's
``prod(shape) * itemsize`` is exactly the data the member holds; the header agrees with the
description; and no entry is referenced twice. So a checkpoint never loads into more memory
than its own size.

``save`` writes a temporary file next to ``path`` and renames it over ``path`` only when it
is complete and fsync'ed, so a crash never leaves a half-written checkpoint.
"""
import ast
import errno
import json
import math
import os
import stat
import zipfile
import zlib

import numpy as np

from . import backend
from .files import atomic_write, fspath as _fspath
from .tensor import Tensor

FORMAT = 'minidl-checkpoint'
VERSION = 1
META = 'minidl_meta'
MAX_DEPTH = 100  # dicts, lists and tuples inside one another: what load surely reads back


class CheckpointError(ValueError):
    """``load`` was given a file that is not a valid minidl checkpoint."""


# ----------------------------------------------------------------------------- save
def save(obj, path):
    """Write ``obj`` to the checkpoint file ``path`` (str or PathLike), atomically.

    ``obj`` nests dicts (str or int keys), lists and tuples of arrays (NumPy or CuPy),
    Tensors, Python/NumPy scalars, str and None. The file is written to exactly ``path``
    (no '.npz' is appended). Anything else raises TypeError naming where it is in ``obj``;
    nothing is written then.
    """
    _fspath(path, 'save')  # (a bad path is an error before obj is encoded)
    arrays = {}
    meta = {'format': FORMAT, 'version': VERSION, 'root': _encode(obj, '', arrays, set())}
    entries = {META: np.frombuffer(json.dumps(meta, allow_nan=False).encode(), np.uint8)}
    entries.update(arrays)

    with atomic_write(path, 'save') as f:
        _write_npz(f, entries)


def _encode(obj, where, arrays, active):
    """The JSON node for ``obj``; arrays go into ``arrays``. ``where`` is e.g. "['a'][0]"."""
    if isinstance(obj, Tensor):
        obj = obj.data
    if isinstance(obj, np.generic) or backend.is_array(obj):  # before float: np.float64
        return _encode_array(obj, where, arrays)               # is a float subclass
    if obj is None:
        return {'t': 'none'}
    if isinstance(obj, bool):
        return {'t': 'bool', 'v': obj}
    if isinstance(obj, int):
        return {'t': 'int', 'v': obj}
    if isinstance(obj, float):
        return {'t': 'float', 'v': obj if math.isfinite(obj) else repr(obj)}
    if isinstance(obj, str):
        return {'t': 'str', 'v': obj}
    if isinstance(obj, (dict, list, tuple)):
        if id(obj) in active:
            raise ValueError(f"save: the structure contains itself at {_where(where)}")
        if len(active) == MAX_DEPTH:  # (json and load would meet Python's recursion limit)
            raise ValueError(f"save: more than {MAX_DEPTH} dicts, lists or tuples inside "
                             f"one another, at {where[:40]}... ({len(active)} levels)")
        active.add(id(obj))
        if isinstance(obj, dict):
            node = {'t': 'dict', 'items': [_encode_item(key, value, where, arrays, active)
                                           for key, value in obj.items()]}
        else:
            node = {'t': 'tuple' if isinstance(obj, tuple) else 'list',
                    'items': [_encode(value, f"{where}[{i}]", arrays, active)
                              for i, value in enumerate(obj)]}
        active.discard(id(obj))
        return node
    kind = type(obj).__qualname__
    if kind in ('Tensor', 'Parameter'):  # another library's: torch.Tensor, not a minidl one
        kind = f"{type(obj).__module__}.{kind}"
    raise TypeError(f"save: cannot store object of type {kind} at {_where(where)} "
                    f"(supported: dict, list, tuple, arrays, minidl Tensors, int, float, "
                    f"bool, str, None, NumPy scalars)")


def _encode_item(key, value, where, arrays, active):
    if isinstance(key, str):
        kind = 's'
    elif isinstance(key, int) and not isinstance(key, bool):
        kind = 'i'
    else:
        raise TypeError(f"save: dict keys must be str or int, got {key!r} "
                        f"({type(key).__name__}) in the dict at {_where(where)}")
    return [kind, key, _encode(value, f"{where}[{key!r}]", arrays, active)]


def _encode_array(obj, where, arrays):
    if isinstance(obj, np.ma.MaskedArray):
        raise TypeError(f"save: cannot store a masked array at {_where(where)} "
                        f"(its mask would be lost); save .data and .mask separately")
    scalar = isinstance(obj, np.generic)
    array = np.asarray(obj) if scalar else np.asarray(backend.to_numpy(obj))
    if array.dtype.hasobject:
        raise TypeError(f"save: cannot store an array of dtype {array.dtype} (Python "
                        f"objects) at {_where(where)}; only numeric, bool and string "
                        f"arrays can be saved without pickle")
    entry = f"array_{len(arrays)}"
    arrays[entry] = array
    return {'t': 'scalar' if scalar else 'array', 'entry': entry,
            'dtype': array.dtype.str, 'shape': list(array.shape)}


def _where(where):
    return where if where else 'the top level'


def _write_npz(f, entries):
    """The writer (a separate function so tests can interrupt it)."""
    np.savez(f, **entries)


# ----------------------------------------------------------------------------- load
# What a damaged, truncated or foreign file makes numpy/zipfile/json raise.
_BAD_FILE_ERRORS = (zipfile.BadZipFile, zlib.error, ValueError, KeyError, IndexError,
                    TypeError, EOFError, NotImplementedError, RuntimeError, OverflowError,
                    SyntaxError)


def load(path):
    """The object saved by ``save(obj, path)``, with NumPy arrays for arrays and Tensors.

    Never executes code from the file, and never allocates more than the file declares
    and holds. Raises FileNotFoundError for a missing file and CheckpointError (a
    ValueError) for anything that is not an intact minidl checkpoint.
    """
    path = _fspath(path, 'load')
    with _open_regular_file(path) as f:
        head = f.read(6)
        f.seek(0)
        if not head.startswith((b'PK', b'\x93NUMPY')):  # (else NumPy's advice is to unpickle)
            raise _invalid(path, f"not an .npz archive: it starts with {head!r}, not with "
                                 f"a zip archive's b'PK'")
        try:
            npz = np.load(f, allow_pickle=False)
        except _BAD_FILE_ERRORS as err:
            raise _invalid(path, f"not an .npz archive: {_describe(err)}") from None
        if not isinstance(npz, np.lib.npyio.NpzFile):
            raise _invalid(path, "a single .npy array, not an .npz archive")
        with npz:
            try:
                archive = _Archive(npz.zip, os.fstat(f.fileno()).st_size)
                meta = _read_meta(archive)
                return _decode(meta['root'], archive)
            except CheckpointError as err:
                raise _invalid(path, str(err)) from None
            except _BAD_FILE_ERRORS as err:
                raise _invalid(path, _describe(err)) from None
            except OSError as err:  # a damaged zip directory can point before the file start
                if err.errno != errno.EINVAL:
                    raise
                raise _invalid(path, _describe(err)) from None


def _open_regular_file(path):
    """``path`` opened to read, or the error naming load: missing, a directory, no
    permission, or not a regular file. Opened non-blocking, as a FIFO opened to read would
    wait for a writer forever."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, 'O_NONBLOCK', 0)
                     | getattr(os, 'O_BINARY', 0))
    except FileNotFoundError:
        raise FileNotFoundError(errno.ENOENT, "load: no such checkpoint file", path) from None
    except OSError as e:  # no permission, ...: the error names load and the path
        raise OSError(e.errno, f"load: {e.strerror}", path) from None
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, "load: is a directory, not a checkpoint file",
                                    path)
        if not stat.S_ISREG(mode):
            raise _invalid(path, "not a regular file (a pipe or a device holds no checkpoint)")
        return os.fdopen(fd, 'rb')
    except BaseException:
        os.close(fd)
        raise


def _invalid(path, reason):
    return CheckpointError(f"load: {path} is not a valid minidl checkpoint ({reason})")


def _describe(err):
    return f"{type(err).__name__}: {err}"


class _Archive:
    """The open zip archive of ``size`` bytes, the entries read so far (each may be read
    once) and the bytes they declare in all (at most the file's size: stored members
    cannot share bytes of the file, as nested or overlapping members would)."""

    def __init__(self, zf, size):
        self.zf, self.size = zf, size
        self.used = set()
        self.declared = 0

    def read(self, entry, dtype=None, shape=None):
        """The array in ``entry``.npy, after checking what its member declares (see the
        module docstring) against the file and against ``dtype`` and ``shape`` if given."""
        if entry in self.used:
            raise CheckpointError(f"entry {entry!r} is referenced twice; each array of a "
                                  f"checkpoint has its own entry")
        self.used.add(entry)
        try:
            info = self.zf.getinfo(entry + '.npy')
        except KeyError:
            raise CheckpointError(f"entry {entry!r} is missing") from None
        if info.compress_type != zipfile.ZIP_STORED:
            raise CheckpointError(f"entry {entry!r} is compressed; a checkpoint stores its "
                                  f"entries uncompressed (as np.savez writes them)")
        if info.file_size != info.compress_size:
            raise CheckpointError(f"entry {entry!r}: its zip directory says {info.file_size} "
                                  f"bytes but {info.compress_size} are stored")
        if info.header_offset + info.compress_size > self.size:
            raise CheckpointError(f"entry {entry!r}: its zip directory says "
                                  f"{info.compress_size} bytes from offset "
                                  f"{info.header_offset}, past the end of the "
                                  f"{self.size}-byte file")
        self.declared += info.compress_size
        if self.declared > self.size:
            raise CheckpointError(f"the entries up to {entry!r} declare {self.declared} bytes "
                                  f"in all, more than the {self.size}-byte file holds "
                                  f"(members overlap)")
        with self.zf.open(info) as member:
            found_shape, _, found_dtype = _npy_header(member, entry)
            data_size = info.file_size - member.tell()
        declared = math.prod(found_shape) * found_dtype.itemsize
        if any(n < 0 for n in found_shape) or declared != data_size:
            raise CheckpointError(f"entry {entry!r} declares {found_dtype.str} "
                                  f"{list(found_shape)} ({declared} bytes) but its member "
                                  f"holds {data_size} bytes")
        if (dtype is not None and found_dtype.str != dtype) or \
                (shape is not None and list(found_shape) != shape):
            raise CheckpointError(f"entry {entry!r} is {found_dtype.str} {list(found_shape)}, "
                                  f"the description says {dtype} {shape}")
        with self.zf.open(info) as member:  # read to its end so that zipfile checks the CRC
            array = np.lib.format.read_array(member, allow_pickle=False)
            if member.read(1):
                raise CheckpointError(f"entry {entry!r} has trailing data")
        return array


def _npy_header(member, entry):
    """(shape, fortran_order, dtype) from a .npy header, leaving ``member`` at the data."""
    try:
        version = np.lib.format.read_magic(member)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(member)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(member)
        elif version == (3, 0):
            shape, fortran, dtype = _npy_header_3_0(member)
        else:
            raise ValueError(f".npy format version {version[0]}.{version[1]}")
    except _BAD_FILE_ERRORS as err:
        raise CheckpointError(f"entry {entry!r} has no valid .npy header "
                              f"({_describe(err)})") from None
    if dtype.hasobject:
        raise CheckpointError(f"entry {entry!r} holds Python objects (dtype {dtype}): "
                              f"Object arrays cannot be loaded without pickle")
    return shape, fortran, dtype


def _npy_header_3_0(member):
    """Version 3.0 (np.save writes it for field names outside latin-1): as 2.0, a 4-byte
    length and a dict literal, but in UTF-8; numpy has no public reader for it."""
    length = int.from_bytes(member.read(4), 'little')
    if length > 10000:  # numpy's own limit for a header it parses
        raise ValueError(f"header of {length} bytes")
    header = ast.literal_eval(member.read(length).decode('utf-8'))
    if (not isinstance(header, dict) or set(header) != {'descr', 'fortran_order', 'shape'}
            or not isinstance(header['shape'], tuple)
            or not all(type(n) is int for n in header['shape'])
            or type(header['fortran_order']) is not bool):
        raise ValueError("header is not {'descr': ..., 'fortran_order': bool, 'shape': ints}")
    return header['shape'], header['fortran_order'], np.lib.format.descr_to_dtype(
        header['descr'])


def _read_meta(archive):
    raw = archive.read(META)
    if raw.dtype != np.uint8 or raw.ndim != 1:
        raise CheckpointError(f"{META} is not a uint8 vector")
    meta = json.loads(raw.tobytes().decode('utf-8'))
    if not isinstance(meta, dict) or meta.get('format') != FORMAT or 'root' not in meta:
        raise CheckpointError(f"{META} is not a {FORMAT} description")
    if meta.get('version') != VERSION:
        raise CheckpointError(f"format version {meta.get('version')!r}; this minidl reads "
                              f"version {VERSION}")
    return meta


def _decode(node, archive):
    kind = node['t']
    if kind == 'none':
        return None
    if kind in ('bool', 'int', 'str'):
        value = node['v']
        if type(value) is not {'bool': bool, 'int': int, 'str': str}[kind]:
            raise CheckpointError(f"{kind} node holds {value!r}")
        return value
    if kind == 'float':
        return float(node['v'])
    if kind in ('list', 'tuple'):
        items = [_decode(item, archive) for item in node['items']]
        return tuple(items) if kind == 'tuple' else items
    if kind == 'dict':
        out = {}
        for key_kind, key, value in node['items']:
            if type(key) is not {'s': str, 'i': int}[key_kind]:
                raise CheckpointError(f"dict key {key!r} is not of kind {key_kind!r}")
            out[key] = _decode(value, archive)
        return out
    if kind in ('array', 'scalar'):
        array = archive.read(node['entry'], node['dtype'], node['shape'])
        return array[()] if kind == 'scalar' else array
    raise CheckpointError(f"unknown node type {kind!r}")
