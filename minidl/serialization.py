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
``save`` writes a temporary file next to ``path`` and renames it over ``path`` only when it
is complete and fsync'ed, so a crash never leaves a half-written checkpoint.
"""
import errno
import json
import math
import zipfile
import zlib

import numpy as np

from . import backend
from .files import atomic_write, fspath as _fspath
from .tensor import Tensor

FORMAT = 'minidl-checkpoint'
VERSION = 1
META = 'minidl_meta'


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
    raise TypeError(f"save: cannot store object of type {type(obj).__name__} at "
                    f"{_where(where)} (supported: dict, list, tuple, arrays, Tensors, "
                    f"int, float, bool, str, None, NumPy scalars)")


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
                    TypeError, EOFError, NotImplementedError, RuntimeError, OverflowError)


def load(path):
    """The object saved by ``save(obj, path)``, with NumPy arrays for arrays and Tensors.

    Never executes code from the file. Raises FileNotFoundError for a missing file and
    CheckpointError (a ValueError) for anything that is not an intact minidl checkpoint.
    """
    path = _fspath(path)
    try:
        f = open(path, 'rb')
    except FileNotFoundError:
        raise FileNotFoundError(2, "load: no such checkpoint file", path) from None
    with f:
        try:
            npz = np.load(f, allow_pickle=False)
        except _BAD_FILE_ERRORS as err:
            raise _invalid(path, f"not an .npz archive: {_describe(err)}") from None
        if not isinstance(npz, np.lib.npyio.NpzFile):
            raise _invalid(path, "a single .npy array, not an .npz archive")
        with npz:
            try:
                meta = _read_meta(npz.zip)
                return _decode(meta['root'], npz.zip)
            except CheckpointError as err:
                raise _invalid(path, str(err)) from None
            except _BAD_FILE_ERRORS as err:
                raise _invalid(path, _describe(err)) from None
            except OSError as err:  # a damaged zip directory can point before the file start
                if err.errno != errno.EINVAL:
                    raise
                raise _invalid(path, _describe(err)) from None


def _invalid(path, reason):
    return CheckpointError(f"load: {path} is not a valid minidl checkpoint ({reason})")


def _describe(err):
    return f"{type(err).__name__}: {err}"


def _read_entry(zf, entry):
    """One .npy member, read to its end so that zipfile checks its CRC."""
    try:
        info = zf.getinfo(entry + '.npy')
    except KeyError:
        raise CheckpointError(f"entry {entry!r} is missing") from None
    with zf.open(info) as member:
        array = np.lib.format.read_array(member, allow_pickle=False)
        if member.read(1):
            raise CheckpointError(f"entry {entry!r} has trailing data")
    return array


def _read_meta(zf):
    raw = _read_entry(zf, META)
    if raw.dtype != np.uint8 or raw.ndim != 1:
        raise CheckpointError(f"{META} is not a uint8 vector")
    meta = json.loads(raw.tobytes().decode('utf-8'))
    if not isinstance(meta, dict) or meta.get('format') != FORMAT or 'root' not in meta:
        raise CheckpointError(f"{META} is not a {FORMAT} description")
    if meta.get('version') != VERSION:
        raise CheckpointError(f"format version {meta.get('version')!r}; this minidl reads "
                              f"version {VERSION}")
    return meta


def _decode(node, zf):
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
        items = [_decode(item, zf) for item in node['items']]
        return tuple(items) if kind == 'tuple' else items
    if kind == 'dict':
        out = {}
        for key_kind, key, value in node['items']:
            if type(key) is not {'s': str, 'i': int}[key_kind]:
                raise CheckpointError(f"dict key {key!r} is not of kind {key_kind!r}")
            out[key] = _decode(value, zf)
        return out
    if kind in ('array', 'scalar'):
        array = _read_entry(zf, node['entry'])
        if array.dtype.str != node['dtype'] or list(array.shape) != node['shape']:
            raise CheckpointError(f"entry {node['entry']!r} is {array.dtype.str} "
                                  f"{list(array.shape)}, the description says "
                                  f"{node['dtype']} {node['shape']}")
        return array[()] if kind == 'scalar' else array
    raise CheckpointError(f"unknown node type {kind!r}")
