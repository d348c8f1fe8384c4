"""Specification of the data-set readers: minidl.data.CIFAR10 / FashionMNIST (see docs/data.md).

The fast tests write tiny files in exactly the official formats (CIFAR-10: Python 2 style
protocol-2 pickles; Fashion-MNIST: gzipped IDX) and read them back. Every test runs with
no real data and no network (see ``isolated``). The tests at the end read the real data sets
and skip where they are absent.
"""
import gzip
import hashlib
import io
import os
import pickle
import pickletools
import re
import struct
import tarfile
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest

from minidl.data import (CIFAR10, FashionMNIST, DatasetCorruptError, DatasetNotFoundError,
                         find_data_root)
from minidl.data import datasets, download
from fakedata import (_RECONSTRUCT, CIFAR_NAMES, FASHION_NAMES, N_PER_BATCH, N_TEST, idx_bytes,
                      py2_pickle, write_cifar, write_fashion, write_idx)

def md5(data):
    return hashlib.md5(data).hexdigest()


def no_network(url, timeout=None):
    no_network.calls.append((url, timeout))
    raise URLError(OSError(-2, 'Name or service not known'))


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    """No real data and no network: an empty HOME (so an empty cache), no $MINIDL_DATA, the
    Debian folder moved to an empty path, and every download failing at once."""
    home = tmp_path / 'home'
    home.mkdir()
    monkeypatch.setenv('HOME', str(home))
    monkeypatch.delenv('MINIDL_DATA', raising=False)
    monkeypatch.setattr(datasets, 'DEBIAN_FASHION_MNIST', str(tmp_path / 'debian'))
    no_network.calls = []
    monkeypatch.setattr(download, 'urlopen', no_network)
    return tmp_path


def cache(tmp_path):
    return tmp_path / 'home' / '.cache' / 'minidl'


# ----------------------------------------------------------------------------- reading
def test_cifar_images_are_nchw_with_each_row_split_into_r_g_b_planes(tmp_path):
    written = write_cifar(tmp_path / 'data')
    test = CIFAR10(tmp_path / 'data', train=False)
    data, labels = written['test_batch']
    assert test.images.dtype == np.uint8 and test.images.shape == (N_TEST, 3, 32, 32)
    assert test.labels.dtype == np.int64 and test.labels.tolist() == labels
    for n, c, y, x in [(0, 0, 0, 0), (3, 1, 5, 7), (9, 2, 31, 30)]:
        assert test.images[n, c, y, x] == data[n, c * 1024 + y * 32 + x]
    np.testing.assert_array_equal(test.images.reshape(N_TEST, -1), data)
    assert test.classes == tuple(n.decode() for n in CIFAR_NAMES)


def test_cifar_train_is_the_five_batches_in_order(tmp_path):
    written = write_cifar(tmp_path / 'data')
    train = CIFAR10(tmp_path / 'data')
    assert len(train) == 5 * N_PER_BATCH
    expected = np.concatenate([written[f'data_batch_{b}'][0] for b in range(1, 6)])
    np.testing.assert_array_equal(train.images.reshape(len(train), -1), expected)
    assert train.labels.tolist() == [i % 10 for i in range(5 * N_PER_BATCH)]


def test_fashion_images_are_n1hw_from_gzipped_idx(tmp_path):
    written = write_fashion(tmp_path / 'data')
    train = FashionMNIST(tmp_path / 'data')
    images, labels = written['train']
    assert train.images.dtype == np.uint8 and train.images.shape == (12, 1, 28, 28)
    assert train.labels.dtype == np.int64 and train.labels.tolist() == labels.tolist()
    assert train.images[7, 0, 13, 27] == images[7, 13, 27]
    np.testing.assert_array_equal(train.images[:, 0], images)
    assert train.classes == FASHION_NAMES
    assert len(FashionMNIST(tmp_path / 'data', train=False)) == 5


@pytest.mark.parametrize('where', ['fashion-mnist', '.'])
@pytest.mark.parametrize('gz', [True, False], ids=['gz', 'uncompressed'])
def test_fashion_files_may_sit_in_a_subfolder_or_in_the_root(tmp_path, where, gz):
    write_fashion(tmp_path / 'data' / where, gz=gz)
    assert len(FashionMNIST(tmp_path / 'data')) == 12


def test_an_item_is_a_chw_image_and_an_int_label(tmp_path):
    write_cifar(tmp_path / 'data')
    test = CIFAR10(tmp_path / 'data', train=False)
    image, label = test[3]
    assert image.shape == (3, 32, 32) and image.dtype == np.uint8
    assert type(label) is int and label == 3
    assert test[-1][1] == 9
    with pytest.raises(IndexError):
        test[N_TEST]
    text = repr(test)
    assert "split='test'" in text and 'size=10' in text and str(tmp_path / 'data') in text


def test_normalisation_constants():
    assert CIFAR10.mean == (0.4914, 0.4822, 0.4465)
    assert CIFAR10.std == (0.2470, 0.2435, 0.2616)
    assert FashionMNIST.mean == (0.2860,) and FashionMNIST.std == (0.3530,)


# ----------------------------------------------------------------------------- class subsets
@pytest.mark.parametrize('classes', [('ship', 'airplane'), (8, 0), ('ship', 0)])
def test_a_class_subset_is_relabelled_in_the_order_given(tmp_path, classes):
    write_cifar(tmp_path / 'data')
    full = CIFAR10(tmp_path / 'data')
    sub = CIFAR10(tmp_path / 'data', classes=classes)
    assert sub.classes == ('ship', 'airplane')
    keep = (full.labels == 8) | (full.labels == 0)
    np.testing.assert_array_equal(sub.images, full.images[keep])
    assert sub.labels.tolist() == [0 if y == 8 else 1 for y in full.labels[keep]]
    assert sub.labels.dtype == np.int64 and len(sub) == 4


def test_fashion_takes_a_class_subset_too(tmp_path):
    write_fashion(tmp_path / 'data')
    sub = FashionMNIST(tmp_path / 'data', classes=['Bag', 'Trouser'])
    assert sub.classes == ('Bag', 'Trouser')
    assert sub.labels.tolist() == [0, 1]       # labels 0,3,6,9,2,5,8,1,4,7,0,3: 8 then 1


def test_an_unknown_class_is_an_error_listing_the_valid_ones(tmp_path):
    write_cifar(tmp_path / 'data')
    with pytest.raises(ValueError, match=r"unknown class 'plane'.*'airplane'.*'truck'"):
        CIFAR10(tmp_path / 'data', classes=('plane', 'ship'))
    with pytest.raises(ValueError, match='out of range 0..9'):
        CIFAR10(tmp_path / 'data', classes=(10,))
    with pytest.raises(ValueError, match="'ship' is given twice"):
        CIFAR10(tmp_path / 'data', classes=('ship', 8))


# ----------------------------------------------------------------------------- where to look
def test_an_explicit_root_comes_before_minidl_data(tmp_path, monkeypatch):
    write_cifar(tmp_path / 'mine', n_test=3)
    write_cifar(tmp_path / 'env', n_test=7)
    monkeypatch.setenv('MINIDL_DATA', str(tmp_path / 'env'))
    assert len(CIFAR10(tmp_path / 'mine', train=False)) == 3
    assert len(CIFAR10(train=False)) == 7
    assert CIFAR10(train=False).root == str(tmp_path / 'env')


def test_places_are_searched_in_order_root_env_debian_cache(tmp_path, monkeypatch):
    for place, n in (('env', 2), ('debian', 3), ('home/.cache/minidl', 4)):
        write_fashion(tmp_path / place, n_test=n)
    monkeypatch.setenv('MINIDL_DATA', str(tmp_path / 'env'))
    assert len(FashionMNIST(tmp_path / 'empty', train=False)) == 2   # root lacks it: next
    assert find_data_root('fashion-mnist', train=False) == str(tmp_path / 'env')
    monkeypatch.delenv('MINIDL_DATA')
    assert len(FashionMNIST(train=False)) == 3
    monkeypatch.setattr(datasets, 'DEBIAN_FASHION_MNIST', str(tmp_path / 'gone'))
    assert len(FashionMNIST(train=False)) == 4
    assert find_data_root(FashionMNIST) == str(cache(tmp_path))


def test_a_corrupt_file_is_reported_not_skipped_for_a_later_place(tmp_path, monkeypatch):
    write_cifar(tmp_path / 'root')
    write_cifar(tmp_path / 'env')
    (tmp_path / 'root' / 'cifar-10-batches-py' / 'test_batch').write_bytes(b'\x80\x02}q')
    monkeypatch.setenv('MINIDL_DATA', str(tmp_path / 'env'))
    with pytest.raises(DatasetCorruptError, match='test_batch'):
        CIFAR10(tmp_path / 'root', train=False)


def test_missing_everywhere_is_one_clear_error_listing_every_place(tmp_path, monkeypatch):
    monkeypatch.setenv('MINIDL_DATA', str(tmp_path / 'env'))
    with pytest.raises(DatasetNotFoundError) as info:
        FashionMNIST(tmp_path / 'root')
    err = info.value
    assert isinstance(err, FileNotFoundError)
    assert err.__cause__ is None and err.__suppress_context__
    text = str(err)
    for place in ('root', 'env', 'debian', 'home/.cache/minidl'):
        assert str(tmp_path / place) in text
    assert 'Name or service not known' in text
    assert 'MINIDL_DATA' in text and 'apt-get install dataset-fashion-mnist' in text
    assert 'http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/' in text
    assert no_network.calls[0] == (FashionMNIST.url + 'train-images-idx3-ubyte.gz', 10)
    assert not (tmp_path / 'root').exists()          # nothing left behind


def test_without_download_nothing_is_fetched(tmp_path):
    with pytest.raises(DatasetNotFoundError, match=r'download=False') as info:
        CIFAR10(train=False, download=False)
    assert no_network.calls == []
    assert str(cache(tmp_path)) in str(info.value)
    assert 'cifar-10-python.tar.gz' in str(info.value)
    with pytest.raises(DatasetNotFoundError):
        find_data_root('cifar10')


# ----------------------------------------------------------------------------- download
class FakeResponse(io.BytesIO):
    def __init__(self, data):
        super().__init__(data)
        self.headers = {'Content-Length': str(len(data))}


def serve(monkeypatch, files):
    """Make urlopen answer ``files`` {url: bytes}; any other URL fails."""
    def urlopen(url, timeout=None):
        if url not in files:
            raise URLError('not served')
        return FakeResponse(files[url])
    monkeypatch.setattr(download, 'urlopen', urlopen)


SYMLINK = object()


def tar_gz(members):
    """A .tar.gz holding ``members``: {name: bytes, or SYMLINK for a link to /etc/passwd}."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode='w:gz') as tar:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            if isinstance(content, bytes):
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
            else:
                info.type, info.linkname = tarfile.SYMTYPE, '/etc/passwd'
                tar.addfile(info)
    return buffer.getvalue()


def test_cifar_is_downloaded_checked_and_unpacked_into_the_cache(tmp_path, monkeypatch, capsys):
    written = write_cifar(tmp_path / 'staging')
    folder = tmp_path / 'staging' / 'cifar-10-batches-py'
    archive = tar_gz({f'cifar-10-batches-py/{p.name}': p.read_bytes() for p in folder.iterdir()})
    monkeypatch.setattr(CIFAR10, 'archive_md5', md5(archive))
    serve(monkeypatch, {CIFAR10.url: archive})
    test = CIFAR10(train=False)
    assert test.root == str(cache(tmp_path))
    np.testing.assert_array_equal(test.images.reshape(N_TEST, -1), written['test_batch'][0])
    assert sorted(os.listdir(cache(tmp_path))) == ['cifar-10-batches-py']  # no archive, no temp
    assert 'cifar-10-python.tar.gz' in capsys.readouterr().err             # progress
    assert len(CIFAR10(train=True)) == 20       # the second time, from the cache


def test_fashion_is_downloaded_into_root_when_one_is_given(tmp_path, monkeypatch):
    write_fashion(tmp_path / 'staging')
    files = {FashionMNIST.url + p.name: p.read_bytes() for p in (tmp_path / 'staging').iterdir()}
    monkeypatch.setattr(FashionMNIST, 'gz_md5', {url.rsplit('/', 1)[1]: md5(data)
                                                 for url, data in files.items()})
    serve(monkeypatch, files)
    test = FashionMNIST(tmp_path / 'root', train=False)
    assert len(test) == 5 and test.root == str(tmp_path / 'root')
    assert sorted(os.listdir(tmp_path / 'root' / 'fashion-mnist')) == [
        't10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz']


def test_a_download_with_the_wrong_md5_leaves_nothing(tmp_path, monkeypatch):
    serve(monkeypatch, {CIFAR10.url: b'not the archive'})
    with pytest.raises(DatasetNotFoundError, match=f'md5 .* expected {CIFAR10.archive_md5}'):
        CIFAR10()
    assert not cache(tmp_path).exists()


@pytest.mark.parametrize('member, reason', [
    ('../evil', r"'\.\.'"),
    ('cifar-10-batches-py/../../evil', r"'\.\.'"),
    ('/tmp/evil', 'absolute path'),
    ('link', 'link or special file'),
])
def test_an_archive_member_outside_the_folder_is_refused(tmp_path, monkeypatch, member, reason):
    write_cifar(tmp_path / 'staging')
    members = {f'cifar-10-batches-py/{p.name}': p.read_bytes()
               for p in (tmp_path / 'staging' / 'cifar-10-batches-py').iterdir()}
    members[member] = SYMLINK if member == 'link' else b'owned'
    archive = tar_gz(members)
    monkeypatch.setattr(CIFAR10, 'archive_md5', md5(archive))
    serve(monkeypatch, {CIFAR10.url: archive})
    with pytest.raises(DatasetNotFoundError, match=reason):
        CIFAR10(tmp_path / 'root' / 'sub')
    assert not (tmp_path / 'root' / 'evil').exists() and not (tmp_path / 'evil').exists()
    assert not (tmp_path / 'root' / 'sub' / 'cifar-10-batches-py').exists()


# ----------------------------------------------------------------------------- integrity
def fashion_file(tmp_path, name='t10k-images-idx3-ubyte.gz'):
    write_fashion(tmp_path / 'data')
    return tmp_path / 'data' / name


@pytest.mark.parametrize('damage, reason', [
    (lambda raw: raw[:len(raw) // 2], 'bad gzip data'),                    # truncated .gz
    (lambda raw: b'not gzip at all', 'bad gzip data'),
    (lambda raw: gzip.compress(gzip.decompress(raw)[:-100]), 'truncated or padded'),
    (lambda raw: gzip.compress(gzip.decompress(raw) + b'\0'), 'truncated or padded'),
    (lambda raw: gzip.compress(struct.pack('>I', 2049) + gzip.decompress(raw)[4:]),
     'magic number 2049, expected 2051'),
    (lambda raw: gzip.compress(gzip.decompress(raw)[:6]), 'too short'),
])
def test_a_damaged_fashion_file_is_refused_naming_it(tmp_path, damage, reason):
    path = fashion_file(tmp_path)
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(DatasetCorruptError, match=reason) as info:
        FashionMNIST(tmp_path / 'data', train=False)
    assert str(path) in str(info.value)


def test_fashion_labels_must_be_below_10_and_match_the_image_count(tmp_path):
    path = fashion_file(tmp_path, 't10k-labels-idx1-ubyte.gz')
    write_idx(path.with_suffix(''), idx_bytes([0, 1, 10, 3, 4]))
    with pytest.raises(DatasetCorruptError, match='label 10 at index 2 is out of range 0..9'):
        FashionMNIST(tmp_path / 'data', train=False)
    write_idx(path.with_suffix(''), idx_bytes([0, 1, 2, 3]))
    with pytest.raises(DatasetCorruptError, match='holds 5 images but .* holds 4 labels'):
        FashionMNIST(tmp_path / 'data', train=False)


def test_fashion_md5_is_checked_on_the_uncompressed_bytes_of_official_size(tmp_path, monkeypatch):
    path = fashion_file(tmp_path)
    raw = gzip.decompress(path.read_bytes())
    files = dict(FashionMNIST.files)
    files['t10k-images-idx3-ubyte'] = (len(raw), '0' * 32)          # "official" size, wrong md5
    monkeypatch.setattr(FashionMNIST, 'files', files)
    with pytest.raises(DatasetCorruptError, match=f'md5 {md5(raw)}'):
        FashionMNIST(tmp_path / 'data', train=False)
    assert len(FashionMNIST(tmp_path / 'data', train=False, verify=False)) == 5
    files['t10k-images-idx3-ubyte'] = (len(raw), md5(raw))
    path.write_bytes(gzip.compress(raw, compresslevel=1))            # recompressed: still fine
    assert len(FashionMNIST(tmp_path / 'data', train=False)) == 5


def test_cifar_md5_is_checked_for_files_of_official_size(tmp_path, monkeypatch):
    write_cifar(tmp_path / 'data')
    path = tmp_path / 'data' / 'cifar-10-batches-py' / 'test_batch'
    official = (path.stat().st_size, md5(path.read_bytes()))
    files = dict(CIFAR10.files, test_batch=official)
    monkeypatch.setattr(CIFAR10, 'files', files)
    assert len(CIFAR10(tmp_path / 'data', train=False)) == N_TEST
    damaged = bytearray(path.read_bytes())
    damaged[-200] ^= 1                                               # one pixel bit
    path.write_bytes(bytes(damaged))
    with pytest.raises(DatasetCorruptError, match=f'test_batch.*md5 .*has md5 {official[1]}'):
        CIFAR10(tmp_path / 'data', train=False)
    assert len(CIFAR10(tmp_path / 'data', train=False, verify=False)) == N_TEST


def valid_batch(**change):
    """A two-image batch; ``change`` replaces entries (data=..., labels=...)."""
    batch = {b'batch_label': b'x', b'labels': [1, 2],
             b'data': np.zeros((2, 3072), np.uint8), b'filenames': [b'a', b'b']}
    batch.update({key.encode(): value for key, value in change.items()})
    return batch


@pytest.mark.parametrize('content, reason', [
    (lambda raw: raw[:len(raw) // 2], 'unreadable pickle'),                # truncated
    (lambda raw: raw[:-1], 'unreadable pickle'),                           # no STOP
    (lambda raw: b'\x80\x02garbage', 'unreadable pickle'),
    (lambda raw: py2_pickle([1, 2, 3]), "no dict with b'data' and b'labels'"),
    (lambda raw: py2_pickle(valid_batch(data=np.zeros((2, 3072), np.float32))),
     r"b'data' is float32 \(2, 3072\)"),
    (lambda raw: py2_pickle(valid_batch(data=np.zeros((2, 1024), np.uint8))),
     r'expected a uint8 array \(n, 3072\)'),
    (lambda raw: py2_pickle(valid_batch(labels=[1])), 'list of 2 integers'),
    (lambda raw: py2_pickle(valid_batch(labels=[b'a', b'b'])), 'list of 2 integers'),
    (lambda raw: py2_pickle(valid_batch(labels=[1, 10])),
     'label 10 at index 1 is out of range 0..9'),
])
def test_a_damaged_cifar_batch_is_refused_naming_it(tmp_path, content, reason):
    write_cifar(tmp_path / 'data')
    path = tmp_path / 'data' / 'cifar-10-batches-py' / 'test_batch'
    path.write_bytes(content(path.read_bytes()))
    with pytest.raises(DatasetCorruptError, match=reason) as info:
        CIFAR10(tmp_path / 'data', train=False)
    assert str(path) in str(info.value)


def test_a_damaged_batches_meta_is_refused(tmp_path):
    write_cifar(tmp_path / 'data')
    path = tmp_path / 'data' / 'cifar-10-batches-py' / 'batches.meta'
    path.write_bytes(py2_pickle({b'label_names': CIFAR_NAMES[:9]}))
    with pytest.raises(DatasetCorruptError, match='batches.meta.*10 names'):
        CIFAR10(tmp_path / 'data', train=False)


class Payload:
    """Unpickles as ``function(*args)``: what a tampered file would do."""
    def __init__(self, function, *args):
        self.function, self.args = function, args

    def __reduce__(self):
        return self.function, self.args


@pytest.mark.parametrize('function, module', [(os.system, os.system.__module__ + '.system'),
                                              (eval, '__builtin__.eval'),     # protocol 2's name
                                              (np.load, 'numpy.load')])
@pytest.mark.parametrize('file', ['test_batch', 'batches.meta'])
def test_a_tampered_pickle_is_refused_without_running_anything(tmp_path, function, module, file):
    write_cifar(tmp_path / 'data')
    marker = tmp_path / 'marker'
    args = {os.system: (f'touch {marker}',),
            eval: (f"open({str(marker)!r}, 'w')",),
            np.load: (str(marker),)}[function]
    batch = valid_batch() if file == 'test_batch' else {b'label_names': CIFAR_NAMES}
    batch[b'labels' if file == 'test_batch' else b'label_names'] = Payload(function, *args)
    path = tmp_path / 'data' / 'cifar-10-batches-py' / file
    path.write_bytes(py2_pickle(batch))
    with pytest.raises(DatasetCorruptError, match=f'references the forbidden object {module}'):
        CIFAR10(tmp_path / 'data', train=False)
    assert not marker.exists()


class Reduced:
    """Pickles as ``function(*args)``, then (given a state) BUILD with it: a hand-made
    reduction, as a hostile file can hold any sequence of allowed calls."""
    def __init__(self, function, args, *state):
        self.function, self.args, self.state = function, args, state

    def __reduce__(self):
        return (self.function, self.args) + self.state


U1 = np.dtype('u1')
ADDRESS_OR_HEAP_VALUE = re.compile(r'0x[0-9a-fA-F]{4,}|\d{8,}| at 0x|<[^>]* object')


def write_test_batch(tmp_path, data, labels):
    write_cifar(tmp_path / 'data')
    path = tmp_path / 'data' / 'cifar-10-batches-py' / 'test_batch'
    path.write_bytes(py2_pickle(valid_batch(data=data, labels=labels)))
    return path


def refused(tmp_path, path, reason):
    """The DatasetCorruptError for ``path``: names it, says ``reason``, shows no memory."""
    with pytest.raises(DatasetCorruptError, match=reason) as info:
        CIFAR10(tmp_path / 'data', train=False)
    message = str(info.value).replace(str(path), '<path>')
    assert str(path) in str(info.value) and not ADDRESS_OR_HEAP_VALUE.search(message), message
    return message


@pytest.mark.parametrize('data, reason', [
    (Reduced(np.ndarray, ((2000, 3072), U1)), r'calls numpy\.ndarray directly'),
    (Reduced(_RECONSTRUCT, (np.ndarray, (2000, 3072), U1)), 'other than numpy.ndarray, \\(0,\\)'),
    (Reduced(_RECONSTRUCT, (np.ndarray, (0,), b'b')), 'without its contents'),
])
def test_a_4kb_file_cannot_load_2000_images_of_uninitialised_memory(tmp_path, data, reason):
    path = write_test_batch(tmp_path, data, [i % 10 for i in range(2000)])
    assert path.stat().st_size < 4300
    refused(tmp_path, path, reason)


def test_labels_from_uninitialised_memory_are_refused_without_showing_that_memory(tmp_path):
    path = write_test_batch(tmp_path, np.zeros((2, 3072), np.uint8),
                            Reduced(np.ndarray, ((2,), np.dtype('i8'))))
    refused(tmp_path, path, r'calls numpy\.ndarray directly')


def array_state(shape=(2, 3072), dtype=U1, fortran=False, raw=bytes(6144), version=1):
    return Reduced(_RECONSTRUCT, (np.ndarray, (0,), b'b'), (version, shape, dtype, fortran, raw))


@pytest.mark.parametrize('data, reason', [
    (array_state(raw=bytes(100)), r'declares shape \(2, 3072\) uint8 \(6144 bytes\) but holds '
                                  r'100 bytes'),
    (array_state(raw=bytes(6145)), '6145 bytes'),
    (array_state(shape=(2, -3072)), 'shape'),
    (array_state(raw=[0] * 6144), 'data is list, expected bytes'),
    (array_state(version=2), r'state is not \(1, shape, dtype'),
    (array_state(dtype=np.dtype('O'), shape=(2,), raw=[1, 2]), "dtype 'O8'"),
    (array_state(dtype=np.dtype([('a', 'u1')])), 'dtype'),
    (Reduced(_RECONSTRUCT, (np.dtype, (0,), b'b')), 'other than numpy.ndarray'),
    (array_state(dtype=Reduced(np.dtype, ('u1', 0, 1), (3, '|', None, None, None, 9, 1, 0))),
     "a dtype's state is not"),
])
def test_an_array_state_must_hold_exactly_the_declared_bytes(tmp_path, data, reason):
    path = write_test_batch(tmp_path, data, [1, 2])
    refused(tmp_path, path, reason)


def test_a_state_set_on_an_allowed_global_itself_is_refused(tmp_path):
    path = write_test_batch(tmp_path, np.zeros((2, 3072), np.uint8), [1, 2])
    # PROTO 2; GLOBAL numpy.dtype; {'names': 1}; BUILD; STOP
    path.write_bytes(b'\x80\x02cnumpy\ndtype\n}(U\x05namesK\x01ub.')
    refused(tmp_path, path, 'it sets a state on numpy.dtype')


def test_every_array_built_must_get_its_contents_even_if_unused(tmp_path):
    path = write_test_batch(tmp_path, np.zeros((2, 3072), np.uint8), [1, 2])
    batch = valid_batch()
    batch[b'filenames'] = [Reduced(_RECONSTRUCT, (np.ndarray, (0,), b'b'))]
    path.write_bytes(py2_pickle(batch))
    refused(tmp_path, path, 'without its contents')


def test_any_other_unpickling_error_is_reported_without_reprs_or_addresses(tmp_path,
                                                                         monkeypatch):
    write_cifar(tmp_path / 'data')
    path = tmp_path / 'data' / 'cifar-10-batches-py' / 'batches.meta'    # the first file read

    def load(self):
        raise TypeError(f"cannot combine {object()!r} and {hex(id(self))}")
    monkeypatch.setattr(datasets._RestrictedUnpickler, 'load', load)
    message = refused(tmp_path, path, 'unreadable pickle')
    assert 'TypeError: cannot combine ... and ...' in message


def test_arrays_in_any_plain_dtype_and_order_load_from_their_pickled_state(tmp_path):
    data = np.arange(2 * 3072).reshape(2, 3072).astype(np.uint8)
    labels = np.array([3, 9], dtype='>i8')                         # big-endian, as an array
    write_test_batch(tmp_path, np.asfortranarray(data), labels)
    test = CIFAR10(tmp_path / 'data', train=False)
    np.testing.assert_array_equal(test.images.reshape(2, -1), data)
    assert test.labels.tolist() == [3, 9] and test.images.flags.writeable


# ----------------------------------------------------------------------------- real data
SHARED = Path(__file__).resolve().parents[2] / 'shared' / 'data'
DEBIAN = Path('/usr/share/datasets/fashion-mnist')
requires_cifar = pytest.mark.skipif(not (SHARED / 'cifar-10-batches-py' / 'test_batch').is_file(),
                                    reason=f"real CIFAR-10 not at {SHARED}")
requires_fashion = pytest.mark.skipif(not (DEBIAN / 't10k-images-idx3-ubyte.gz').is_file(),
                                      reason=f"real Fashion-MNIST not at {DEBIAN}")


def channel_mean_std(images):
    """Per-channel mean and std in [0, 1], exactly, via a 256-bin histogram per channel."""
    values = np.arange(256) / 255
    stats = []
    for c in range(images.shape[1]):
        counts = np.bincount(images[:, c].ravel(), minlength=256)
        mean = counts @ values / counts.sum()
        stats.append((mean, np.sqrt(counts @ (values - mean) ** 2 / counts.sum())))
    return np.array(stats).T


@pytest.mark.slow
@requires_cifar
def test_real_cifar10():
    train = CIFAR10(SHARED, download=False)
    test = CIFAR10(SHARED, train=False, download=False)
    assert train.images.shape == (50000, 3, 32, 32) and len(test) == 10000
    assert np.bincount(train.labels).tolist() == [5000] * 10
    assert np.bincount(test.labels).tolist() == [1000] * 10
    assert train.classes == tuple(n.decode() for n in CIFAR_NAMES)
    mean, std = channel_mean_std(train.images)
    np.testing.assert_allclose(mean, CIFAR10.mean, atol=1e-4)
    np.testing.assert_allclose(std, CIFAR10.std, atol=1e-4)
    planes = CIFAR10(SHARED, classes=('airplane', 'ship'), download=False)
    assert len(planes) == 10000 and planes.classes == ('airplane', 'ship')
    np.testing.assert_array_equal(planes.images[planes.labels == 1],
                                  train.images[train.labels == 8])
    assert len(CIFAR10(SHARED, train=False, classes=('airplane', 'ship'), download=False)) == 2000


@pytest.mark.slow
@requires_cifar
@pytest.mark.parametrize('name', ['batches.meta', 'test_batch'])
def test_real_cifar_files_have_the_opcodes_of_the_tiny_ones(name):
    """The tests' writer reproduces the official pickles opcode for opcode (memo aside)."""
    def opcodes(raw):
        return [op.name for op, _, _ in pickletools.genops(raw) if 'PUT' not in op.name
                and 'GET' not in op.name]
    real = (SHARED / 'cifar-10-batches-py' / name).read_bytes()
    assert opcodes(py2_pickle(pickle.loads(real, encoding='bytes'))) == opcodes(real)


@pytest.mark.slow
@requires_fashion
def test_real_fashion_mnist():
    train = FashionMNIST(DEBIAN, download=False)
    test = FashionMNIST(DEBIAN, train=False, download=False)
    assert train.images.shape == (60000, 1, 28, 28) and len(test) == 10000
    assert np.bincount(train.labels).tolist() == [6000] * 10
    assert np.bincount(test.labels).tolist() == [1000] * 10
    mean, std = channel_mean_std(train.images)
    np.testing.assert_allclose(mean, FashionMNIST.mean, atol=1e-4)
    np.testing.assert_allclose(std, FashionMNIST.std, atol=1e-4)
