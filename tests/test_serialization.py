"""Specification of checkpoints: minidl.serialization.save / load (see docs/checkpoints.md)."""
import json
import os
import pickle
import re
import sys

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
