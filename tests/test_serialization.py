"""Specification of checkpoints: minidl.serialization.save / load (see docs/checkpoints.md)."""
import io
import json
import os
import pickle
import re
import struct
import sys
import zipfile
import zlib

import numpy as np
import pytest

import minidl
from minidl import backend, serialization
from minidl.serialization import CheckpointError, load, save

INVALID = "is not a valid minidl checkpoint"


def nested_state():
    """Everything save supports, in the shapes a training checkpoint has."""
    rng = np.random.default_rng(0)
    return {
        'model': {
            'conv.weight': rng.standard_normal((4, 3, 3, 3)).astype(np.float32),
            'fc.bias': rng.standard_normal(5),                          # float64
            'bn.num_batches_tracked': np.array(7, dtype=np.int64),      # 0-d
            'mask': rng.random((2, 3)) > 0.5,                           # bool
            'empty': np.zeros((0, 3), dtype=np.float32),
            'fortran': np.asfortranarray(rng.standard_normal((3, 2))),
            'labels': np.array(['cat', 'dog']),                         # unicode
        },
        'optimizer': {
            'state': {0: {'step': 3, 'exp_avg': np.ones(4, np.float32)}, 1: {'step': 3}},
            'param_groups': [{'lr': 1e-3, 'betas': (0.9, 0.999), 'params': [0, 1],
                              'nesterov': False, 'name': None}],
        },
        'tensor': minidl.tensor([[1.0, 2.0]]),
        'epoch': 12, 'loss': 0.25, 'done': True, 'note': 'résumé ✓', 'none': None,
        'np_scalars': [np.float32(1.5), np.float64(2.5), np.int64(-3), np.bool_(True),
                       np.str_('x')],
        'odd_floats': (float('inf'), float('-inf'), -0.0),
        'big_int': 2 ** 70,
        'same_name_keys': {1: 'int one', '1': 'str one'},
        'empty_containers': ({}, [], ()),
    }


def assert_same(actual, expected, where='obj'):
    """Equal values with the same types: tuples stay tuples, int keys ints, dtypes kept."""
    if isinstance(expected, minidl.Tensor):
        expected = expected.numpy()
    if isinstance(expected, np.ndarray):
        assert type(actual) is np.ndarray, where
        assert actual.dtype == expected.dtype and actual.shape == expected.shape, where
        np.testing.assert_array_equal(actual, expected, err_msg=where)
    elif isinstance(expected, dict):
        assert type(actual) is dict, where
        assert [(type(k), k) for k in actual] == [(type(k), k) for k in expected], where
        for key in expected:
            assert_same(actual[key], expected[key], f"{where}[{key!r}]")
    elif isinstance(expected, (list, tuple)):
        assert type(actual) is type(expected) and len(actual) == len(expected), where
        for i, (a, e) in enumerate(zip(actual, expected)):
            assert_same(a, e, f"{where}[{i}]")
    else:
        assert type(actual) is type(expected), where
        assert repr(actual) == repr(expected), where  # repr: nan == nan, -0.0 != 0.0


@pytest.fixture
def ckpt(tmp_path):
    path = tmp_path / 'model.ckpt'
    save(nested_state(), path)
    return path


# ----------------------------------------------------------------------------- round trip
def test_round_trip_gives_identical_values_types_and_dtypes(ckpt):
    assert_same(load(ckpt), nested_state())


def test_tensors_and_gpu_arrays_load_as_numpy_arrays(ckpt):
    out = load(ckpt)
    assert type(out['tensor']) is np.ndarray and out['tensor'].dtype == np.float32
    assert all(type(v) is np.ndarray for v in out['model'].values())


def test_nan_round_trips(tmp_path):
    save({'x': float('nan'), 'y': np.float32('nan')}, tmp_path / 'c')
    out = load(tmp_path / 'c')
    assert np.isnan(out['x']) and type(out['x']) is float
    assert np.isnan(out['y']) and type(out['y']) is np.float32


def test_top_level_can_be_any_supported_value(tmp_path):
    for obj in [np.arange(3), 5, 'text', None, [1, (2, 3)]]:
        save(obj, tmp_path / 'c')
        assert_same(load(tmp_path / 'c'), obj)


def test_module_state_dict_round_trips_into_load_state_dict(tmp_path):
    nn = pytest.importorskip('minidl.nn')
    model = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    model(minidl.tensor(np.random.default_rng(1).standard_normal((4, 3), np.float32)))  # stats
    save(model.state_dict(), tmp_path / 'c')
    other = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    other.load_state_dict(load(tmp_path / 'c'))
    assert_same(dict(other.state_dict()), dict(model.state_dict()))


def test_device_arrays_are_copied_to_the_host(tmp_path, monkeypatch):
    """A stand-in for a CuPy array: save goes through backend.to_numpy, load gives NumPy."""
    class DeviceArray:
        def __init__(self, host):
            self.host = host
    real_is_array, real_to_numpy = backend.is_array, backend.to_numpy
    monkeypatch.setattr(backend, 'is_array',
                        lambda a: isinstance(a, DeviceArray) or real_is_array(a))
    monkeypatch.setattr(backend, 'to_numpy',
                        lambda a: a.host.copy() if isinstance(a, DeviceArray) else real_to_numpy(a))
    save({'w': DeviceArray(np.arange(6.0).reshape(2, 3))}, tmp_path / 'c')
    monkeypatch.undo()
    assert_same(load(tmp_path / 'c'), {'w': np.arange(6.0).reshape(2, 3)})


@pytest.mark.gpu
@pytest.mark.skipif(not backend.gpu_available(), reason='no CuPy with a CUDA GPU')
def test_cupy_arrays_and_cuda_tensors_load_as_numpy(tmp_path):
    import cupy
    state = {'w': cupy.arange(6, dtype=cupy.float32).reshape(2, 3),
             't': minidl.tensor([1.0, 2.0], device='cuda')}
    save(state, tmp_path / 'c')
    assert_same(load(tmp_path / 'c'), {'w': np.arange(6, dtype=np.float32).reshape(2, 3),
                                       't': np.array([1.0, 2.0], np.float32)})


# ----------------------------------------------------------------------------- the file
def test_file_is_a_plain_npz_that_numpy_opens_without_pickle(ckpt):
    with np.load(ckpt, allow_pickle=False) as npz:
        meta = json.loads(npz['minidl_meta'].tobytes().decode('utf-8'))
        assert meta['format'] == 'minidl-checkpoint' and meta['version'] == 1
        kind, key, model = meta['root']['items'][0]
        assert (kind, key, model['t']) == ('s', 'model', 'dict')
        assert model['items'][0][2] == {'t': 'array', 'entry': 'array_0', 'dtype': '<f4',
                                        'shape': [4, 3, 3, 3]}
        entries = [name for name in npz.files if name != 'minidl_meta']
        assert entries and all(re.fullmatch(r'array_\d+', name) for name in entries)
        np.testing.assert_array_equal(npz['array_0'], nested_state()['model']['conv.weight'])


def test_pathlib_str_and_exact_name_without_npz_suffix(tmp_path):
    save({'a': 1}, tmp_path / 'ckpt')
    save({'a': 2}, str(tmp_path / 'other'))
    assert sorted(os.listdir(tmp_path)) == ['ckpt', 'other']
    assert load(str(tmp_path / 'ckpt')) == {'a': 1}
    assert load(tmp_path / 'other') == {'a': 2}


def test_saving_again_replaces_the_file(tmp_path):
    save({'epoch': 1}, tmp_path / 'c')
    save({'epoch': 2}, tmp_path / 'c')
    assert load(tmp_path / 'c') == {'epoch': 2}
    assert os.listdir(tmp_path) == ['c']


@pytest.mark.skipif(sys.platform == 'win32', reason='POSIX permissions and symlinks')
def test_new_file_gets_ordinary_permissions_and_symlinks_are_written_through(tmp_path):
    umask = os.umask(0o022)
    os.umask(umask)
    save([1], tmp_path / 'c')
    assert os.stat(tmp_path / 'c').st_mode & 0o777 == 0o666 & ~umask
    os.symlink(tmp_path / 'c', tmp_path / 'latest')
    save([2], tmp_path / 'latest')
    assert os.path.islink(tmp_path / 'latest') and load(tmp_path / 'c') == [2]


def test_missing_directory_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match='does not exist'):
        save([1], tmp_path / 'no' / 'c')


# ----------------------------------------------------------------------------- what save refuses
class Foo:
    pass


@pytest.mark.parametrize('obj, where', [
    ({'model': {'x': Foo()}}, "type Foo at ['model']['x']"),
    ({'a': [1, (2, {3: set()})]}, "type set at ['a'][1][1][3]"),
    ({'a': np.array([1, 'x', None], dtype=object)}, "dtype object (Python objects) at ['a']"),
    ([1j], "type complex at [0]"),
    (b'bytes', "type bytes at the top level"),
    ({'a': {1.5: 0}}, "keys must be str or int, got 1.5 (float) in the dict at ['a']"),
    ({(1, 2): 0}, "keys must be str or int, got (1, 2) (tuple) in the dict at the top level"),
    ({True: 0}, "keys must be str or int, got True (bool)"),
    ({'m': np.ma.masked_array([1, 2], mask=[0, 1])}, "masked array at ['m']"),
])
def test_unsupported_objects_raise_TypeError_naming_where(tmp_path, obj, where):
    save({'old': 1}, tmp_path / 'c')
    with pytest.raises(TypeError, match=re.escape(where)):
        save(obj, tmp_path / 'c')
    assert os.listdir(tmp_path) == ['c'] and load(tmp_path / 'c') == {'old': 1}


def test_a_structure_containing_itself_is_refused(tmp_path):
    loop = {'a': []}
    loop['a'].append(loop)
    with pytest.raises(ValueError, match=re.escape("contains itself at ['a'][0]")):
        save(loop, tmp_path / 'c')
    shared = [1]
    save({'x': shared, 'y': shared}, tmp_path / 'c')  # shared, not cyclic: fine
    assert load(tmp_path / 'c') == {'x': [1], 'y': [1]}


# ----------------------------------------------------------------------------- atomic writes
def assert_untouched(directory, path, content):
    assert os.listdir(directory) == [os.path.basename(path)], 'a temporary file was left behind'
    with open(path, 'rb') as f:
        assert f.read() == content


def test_failed_rename_leaves_the_previous_file_and_no_temp_file(ckpt, monkeypatch):
    before = ckpt.read_bytes()

    def crash(src, dst):
        raise OSError('disk on fire')
    monkeypatch.setattr(os, 'replace', crash)
    with pytest.raises(OSError, match='disk on fire'):
        save({'new': np.zeros(10)}, ckpt)
    assert_untouched(ckpt.parent, ckpt, before)


@pytest.mark.parametrize('error', [RuntimeError('crash mid-write'), KeyboardInterrupt()])
def test_interrupted_write_leaves_the_previous_file_and_no_temp_file(ckpt, monkeypatch, error):
    before = ckpt.read_bytes()

    def half_write(f, entries):
        f.write(b'PK\x03\x04' + b'\0' * 100)  # a partial archive, then the crash
        raise error
    monkeypatch.setattr(serialization, '_write_npz', half_write)
    with pytest.raises(type(error)):
        save({'new': np.zeros(10)}, ckpt)
    assert_untouched(ckpt.parent, ckpt, before)


# ----------------------------------------------------------------------------- what load refuses
def test_missing_file_is_FileNotFoundError_with_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / 'nope'))):
        load(tmp_path / 'nope')


def assert_invalid(path, reason=''):
    with pytest.raises(CheckpointError, match=re.escape(f"load: {path} {INVALID}") + '.*' +
                       re.escape(reason)) as info:
        load(path)
    assert isinstance(info.value, ValueError)
    error = info.value  # one clear error, no chained zipfile/KeyError traceback
    assert error.__cause__ is None and (error.__context__ is None or error.__suppress_context__)


@pytest.mark.parametrize('keep', [0, 1, 3, 30, 0.25, 0.5, 0.9, -23, -22, -1])
def test_truncated_file_is_invalid(ckpt, keep):
    data = ckpt.read_bytes()
    keep = int(len(data) * keep) if isinstance(keep, float) else keep % len(data)
    ckpt.write_bytes(data[:keep])
    assert_invalid(ckpt)


def test_flipped_byte_in_array_data_is_detected_by_the_crc(tmp_path):
    array = np.arange(1000, dtype=np.float64)
    save({'w': array}, tmp_path / 'c')
    data = bytearray((tmp_path / 'c').read_bytes())
    at = data.find(array.tobytes()) + 4000
    data[at] ^= 0x01
    (tmp_path / 'c').write_bytes(bytes(data))
    assert_invalid(tmp_path / 'c', 'CRC')


def test_any_single_flipped_byte_is_detected_or_harmless(tmp_path):
    """Bytes outside the CRC (zip timestamps, ...) may change nothing; all else must raise."""
    state = {'w': np.arange(6, dtype=np.float32).reshape(2, 3), 3: ('a', 1.5), 'n': None}
    save(state, tmp_path / 'c')
    data = (tmp_path / 'c').read_bytes()
    for i in range(len(data)):
        damaged = bytearray(data)
        damaged[i] ^= 0xFF
        (tmp_path / 'c').write_bytes(bytes(damaged))
        try:
            out = load(tmp_path / 'c')
        except CheckpointError:
            continue
        assert_same(out, state, f'byte {i} flipped: obj')


def test_random_bytes_and_empty_file_are_invalid(tmp_path):
    (tmp_path / 'random').write_bytes(np.random.default_rng(0).bytes(4096))
    assert_invalid(tmp_path / 'random', 'not an .npz archive')
    (tmp_path / 'empty').write_bytes(b'')
    assert_invalid(tmp_path / 'empty', 'not an .npz archive')


def test_plain_npy_file_is_invalid(tmp_path):
    with open(tmp_path / 'a.npy', 'wb') as f:
        np.save(f, np.zeros(3))
    assert_invalid(tmp_path / 'a.npy', 'a single .npy array')


def write_npz(path, meta=None, **arrays):
    """An .npz with these arrays; ``meta``: JSON-able, or a str of raw (latin-1) bytes."""
    if meta is not None:
        raw = meta.encode('latin-1') if isinstance(meta, str) else json.dumps(meta).encode()
        arrays['minidl_meta'] = np.frombuffer(raw, np.uint8)
    with open(path, 'wb') as f:
        np.savez(f, **arrays)


ONE_ARRAY = {'format': 'minidl-checkpoint', 'version': 1,
             'root': {'t': 'array', 'entry': 'array_0', 'dtype': '<f8', 'shape': [3]}}


@pytest.mark.parametrize('meta, arrays, reason', [
    (None, {'x': np.zeros(3)}, "entry 'minidl_meta' is missing"),
    ('{"format": "minidl-checkpoint", ', {}, 'JSONDecodeError'),
    ('\xff\xfe', {}, 'UnicodeDecodeError'),
    ([1, 2], {}, 'is not a minidl-checkpoint description'),
    ({**ONE_ARRAY, 'format': 'other'}, {'array_0': np.zeros(3)}, 'description'),
    ({**ONE_ARRAY, 'version': 2}, {'array_0': np.zeros(3)}, 'format version 2'),
    (ONE_ARRAY, {}, "entry 'array_0' is missing"),
    (ONE_ARRAY, {'array_0': np.zeros(3, np.float32)}, '<f4 [3], the description says <f8 [3]'),
    (ONE_ARRAY, {'array_0': np.zeros(4)}, '<f8 [4], the description says <f8 [3]'),
    ({**ONE_ARRAY, 'root': {'t': 'set', 'items': []}}, {}, "unknown node type 'set'"),
    ({**ONE_ARRAY, 'root': {'t': 'int', 'v': 'x'}}, {}, "int node holds 'x'"),
    ({**ONE_ARRAY, 'root': {'t': 'dict', 'items': [['i', 'x', {'t': 'none'}]]}}, {},
     "dict key 'x' is not of kind 'i'"),
    ({**ONE_ARRAY, 'root': {'t': 'list'}}, {}, 'KeyError'),
])
def test_malformed_or_missing_description_is_invalid(tmp_path, meta, arrays, reason):
    write_npz(tmp_path / 'c', meta, **arrays)
    assert_invalid(tmp_path / 'c', reason)


executed = []


def _side_effect(tag):
    executed.append(tag)
    return tag


class Payload:
    """Unpickling this calls _side_effect: the test fails if load ever runs it."""
    def __reduce__(self):
        return (_side_effect, ('pickle code ran',))


def test_pickled_files_are_refused_without_running_code(tmp_path):
    objects = np.array([Payload(), 1], dtype=object)
    with open(tmp_path / 'obj.npy', 'wb') as f:
        np.save(f, objects, allow_pickle=True)
    write_npz(tmp_path / 'obj.npz', {**ONE_ARRAY, 'root': {
        't': 'array', 'entry': 'array_0', 'dtype': '|O', 'shape': [2]}}, array_0=objects)
    (tmp_path / 'obj.pkl').write_bytes(pickle.dumps({'w': Payload()}))

    assert_invalid(tmp_path / 'obj.npy', 'Object arrays cannot be loaded')
    assert_invalid(tmp_path / 'obj.npz', 'Object arrays cannot be loaded')
    assert_invalid(tmp_path / 'obj.pkl', 'not an .npz archive')
    assert executed == []


def test_a_file_of_another_kind_is_named_as_such_without_advice_to_unpickle(tmp_path):
    (tmp_path / 'notes.txt').write_text('hello world\n')
    with pytest.raises(ValueError) as info:
        minidl.load(tmp_path / 'notes.txt')
    message = str(info.value)
    assert "starts with b'hello '" in message and "b'PK'" in message
    assert 'pickle' not in message and 'unsafely' not in message


# ----------------------------------------------------------------------------- bombs
# Files that declare far more memory than they hold. Each is built by hand, a few hundred
# bytes on disk; load must refuse it from the declared sizes, before allocating or inflating.
def npy(shape, dtype='<f8', data=b''):
    """A .npy member whose header declares ``shape`` and ``dtype``, followed by ``data``."""
    f = io.BytesIO()
    np.lib.format.write_array_header_1_0(f, {'descr': dtype, 'fortran_order': False,
                                             'shape': tuple(shape)})
    return f.getvalue() + data


def write_zip(path, root, members, compression=zipfile.ZIP_STORED):
    """A checkpoint-like zip: ``root`` as the JSON description, plus ``members`` {name: bytes}."""
    raw = json.dumps({'format': 'minidl-checkpoint', 'version': 1, 'root': root}).encode()
    with zipfile.ZipFile(path, 'w', compression) as zf:
        zf.writestr('minidl_meta.npy', npy((len(raw),), '|u1', raw))
        for name, content in members.items():
            zf.writestr(name, content)


def array_node(shape, entry='array_0', dtype='<f8'):
    return {'t': 'array', 'entry': entry, 'dtype': dtype, 'shape': list(shape)}


@pytest.mark.parametrize('described', [[10 ** 12], [3]])
def test_a_header_declaring_a_huge_shape_is_refused_before_allocating(tmp_path, described):
    write_zip(tmp_path / 'c', array_node(described), {'array_0.npy': npy((10 ** 12,), data=bytes(24))})
    assert_invalid(tmp_path / 'c', "entry 'array_0' declares <f8 [1000000000000] "
                                   "(8000000000000 bytes) but its member holds 24 bytes")


def test_a_header_that_disagrees_with_the_description_is_refused_before_reading(tmp_path,
                                                                                 monkeypatch):
    write_zip(tmp_path / 'c', array_node([3]), {'array_0.npy': npy((2 ** 17,), data=bytes(2 ** 20))})
    read_array = np.lib.format.read_array

    def read_all_but_array_0(member, **kwargs):
        assert member.name != 'array_0.npy', "array_0's data was read"
        return read_array(member, **kwargs)
    monkeypatch.setattr(np.lib.format, 'read_array', read_all_but_array_0)
    assert_invalid(tmp_path / 'c', "entry 'array_0' is <f8 [131072], the description says <f8 [3]")


def test_an_entry_referenced_twice_is_refused(tmp_path):
    refs = {'t': 'list', 'items': [array_node([3])] * 200}
    write_zip(tmp_path / 'c', refs, {'array_0.npy': npy((3,), data=bytes(24))})
    assert_invalid(tmp_path / 'c', "entry 'array_0' is referenced twice")
    write_zip(tmp_path / 'c', array_node([3], 'minidl_meta', '|u1'), {})
    assert_invalid(tmp_path / 'c', "entry 'minidl_meta' is referenced twice")


def test_a_compressed_member_is_refused_before_it_is_inflated(tmp_path, monkeypatch):
    zeros = npy((2 ** 20,), '|u1', bytes(2 ** 20))          # 1 MiB that deflates to ~1 KB
    write_zip(tmp_path / 'c', array_node([2 ** 20], dtype='|u1'), {'array_0.npy': zeros},
              zipfile.ZIP_DEFLATED)
    assert os.path.getsize(tmp_path / 'c') < 3000

    def inflate(*args):
        raise AssertionError('a member was inflated')
    monkeypatch.setattr(zipfile, '_get_decompressor', inflate)
    assert_invalid(tmp_path / 'c', "entry 'minidl_meta' is compressed")


@pytest.mark.parametrize('fields, reason', [
    ((24,), "its zip directory says {declared} bytes but {stored} are stored"),
    ((20, 24), "its zip directory says {declared} bytes from offset .*, past the end of the "
               "{size}-byte file"),
])
def test_a_zip_directory_declaring_more_bytes_than_are_stored_is_refused(tmp_path, fields,
                                                                          reason):
    """The member holds a header and 24 bytes; its header says 2**20 bytes, and so does the
    zip directory's uncompressed size (offset 24), or both sizes (also compressed, 20)."""
    write_zip(tmp_path / 'c', array_node([2 ** 20], dtype='|u1'),
              {'array_0.npy': npy((2 ** 20,), '|u1', bytes(24))})
    data = bytearray((tmp_path / 'c').read_bytes())
    entry = data.rindex(b'PK\x01\x02')                     # central directory: array_0.npy
    header_size = len(npy((2 ** 20,), '|u1'))
    for field in fields:
        data[entry + field:entry + field + 4] = struct.pack('<I', header_size + 2 ** 20)
    (tmp_path / 'c').write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=re.escape("entry 'array_0': ") + reason.format(
            declared=header_size + 2 ** 20, stored=header_size + 24, size=len(data))):
        load(tmp_path / 'c')


def nested_zip(path, names, n):
    """A stored zip in which each member's data holds the next member whole (its zip header
    and data): the overlapping-members bomb, ``len(names)`` uint8 arrays from one copy of
    the innermost ``n`` bytes. Each member is valid on its own (sizes, CRC, .npy header)."""
    def local(name, body):   # a zip local file header (stored, 1980-01-01) and the data
        return struct.pack('<IHHHHHIIIHH', 0x04034b50, 20, 0, 0, 0, 0x21, zlib.crc32(body),
                           len(body), len(body), len(name), 0) + name.encode() + body

    sizes = [n]                                   # each member's array size, innermost first
    bodies = [npy((n,), '|u1', bytes(n))]
    for name in reversed(names[1:]):
        inner = local(name, bodies[0])
        sizes.insert(0, len(inner))
        bodies.insert(0, npy((len(inner),), '|u1', inner))
    raw = json.dumps({'format': 'minidl-checkpoint', 'version': 1, 'root': {
        't': 'list', 'items': [array_node([size], name[:-4], '|u1')
                               for name, size in zip(names, sizes)]}}).encode()
    meta = npy((len(raw),), '|u1', raw)
    data = local('minidl_meta.npy', meta) + local(names[0], bodies[0])
    offsets = [0, len(local('minidl_meta.npy', meta))]
    for name, body, size in zip(names, bodies, sizes[:-1]):  # the next header sits in the data
        offsets.append(offsets[-1] + 30 + len(name) + len(body) - size)
    directory = b''.join(
        struct.pack('<IHHHHHHIIIHHHHHII', 0x02014b50, 20, 20, 0, 0, 0, 0x21, zlib.crc32(body),
                    len(body), len(body), len(name), 0, 0, 0, 0, 0, at) + name.encode()
        for name, body, at in zip(['minidl_meta.npy'] + names, [meta] + bodies, offsets))
    end = struct.pack('<IHHHHIIH', 0x06054b50, 0, 0, len(names) + 1, len(names) + 1,
                      len(directory), len(data), 0)
    path.write_bytes(data + directory + end)


def test_members_overlapping_in_the_file_are_refused(tmp_path):
    names = ['array_0.npy', 'array_1.npy', 'array_2.npy']
    nested_zip(tmp_path / 'c', names, 4000)
    with zipfile.ZipFile(tmp_path / 'c') as zf:               # a valid zip, every member intact
        assert sum(len(zf.read(name)) for name in names) > 12000
    assert os.path.getsize(tmp_path / 'c') < 5500
    assert_invalid(tmp_path / 'c', "the entries up to 'array_1' declare")


def test_savez_compressed_is_not_a_checkpoint_but_save_output_loads(tmp_path):
    save({'w': np.zeros(1000)}, tmp_path / 'c')
    with np.load(tmp_path / 'c') as npz:
        entries = {name: npz[name] for name in npz.files}
    with open(tmp_path / 'z', 'wb') as f:
        np.savez_compressed(f, **entries)
    assert_invalid(tmp_path / 'z', 'is compressed')
    assert_same(load(tmp_path / 'c'), {'w': np.zeros(1000)})


@pytest.mark.filterwarnings('ignore:Stored array in format 3.0')
def test_field_names_outside_latin1_round_trip_through_npy_format_3(tmp_path):
    array = np.array([(1.5, 2)], dtype=[('✓', '<f4'), ('ü', '<i2')])
    save({'a': array}, tmp_path / 'c')
    assert b'\x93NUMPY\x03\x00' in (tmp_path / 'c').read_bytes()
    assert_same(load(tmp_path / 'c'), {'a': array})
    write_zip(tmp_path / 'c', array_node([1], dtype='<f8'),
              {'array_0.npy': b'\x93NUMPY\x03\x00' + struct.pack('<I', 10 ** 6) + b'{}'})
    assert_invalid(tmp_path / 'c', "entry 'array_0' has no valid .npy header")
