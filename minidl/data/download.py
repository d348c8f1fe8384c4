"""Downloads for the data sets: fetch a URL into a file atomically, unpack a tar safely.

``fetch`` streams the URL into a hidden temporary file next to the target, checks the md5 of
what arrived and only then renames it onto the target, so a failed or interrupted download
never leaves a file that looks complete. ``extract_tar`` unpacks regular files and folders
only, refusing absolute paths, '..' components, links and device files, so an archive cannot
write outside the folder it is unpacked into. Both raise ``DownloadError`` (an OSError) with
one line saying what went wrong; the data-set classes turn it into DatasetNotFoundError.
"""
import hashlib
import http.client
import os
import shutil
import sys
import tarfile
import tempfile
import time
import zlib
from urllib.request import urlopen

from ..files import _create_temp, _fsync_directory

TIMEOUT = 10        # seconds a connection or a read may stall before the download fails
CHUNK = 1 << 20


class DownloadError(OSError):
    """A download or an unpacking did not produce the expected files."""


def fetch(url, path, md5, timeout=TIMEOUT, progress=True):
    """Download ``url`` to ``path`` (its folder is created), checking the md5 of the bytes.

    Shows a progress bar on stderr (tqdm when installed, else one updating line) unless
    ``progress`` is False. Nothing is left at ``path`` (nor a temporary file) on failure.
    """
    directory = os.path.dirname(os.path.abspath(path))
    name = os.path.basename(path)
    created = _missing_folders(directory)
    try:
        os.makedirs(directory, exist_ok=True)
        tmp, fd = _create_temp(directory, name)
    except OSError as err:
        _remove_empty(created)
        raise DownloadError(f"cannot write into {directory}: {err}") from None
    try:
        digest = hashlib.md5()
        with os.fdopen(fd, 'wb') as f:
            try:
                with urlopen(url, timeout=timeout) as response:
                    total = int(response.headers.get('Content-Length') or 0)
                    bar = _progress_bar(name, total) if progress else None
                    received = 0
                    while True:
                        chunk = response.read(CHUNK)
                        if not chunk:
                            break
                        f.write(chunk)
                        digest.update(chunk)
                        received += len(chunk)
                        if bar is not None:
                            bar.update(len(chunk))
                    if bar is not None:
                        bar.close()
            except (OSError, http.client.HTTPException, ValueError) as err:
                reason = getattr(err, 'reason', None) or err   # URLError: the socket's error
                raise DownloadError(f"{url}: {reason}") from None
            if total and received != total:
                raise DownloadError(f"{url}: the connection closed after {received} of "
                                    f"{total} bytes")
            f.flush()
            os.fsync(f.fileno())
        if digest.hexdigest() != md5:
            raise DownloadError(f"{url}: the downloaded file has md5 {digest.hexdigest()}, "
                                f"expected {md5} (damaged in transit, or not the official "
                                f"file)")
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        _remove_empty(created)
        raise
    _fsync_directory(directory)


def _missing_folders(directory):
    """``directory`` and those of its ancestors that do not exist yet, deepest first."""
    missing = []
    while directory and not os.path.exists(directory):
        missing.append(directory)
        parent = os.path.dirname(directory)
        if parent == directory:
            break
        directory = parent
    return missing


def _remove_empty(folders):
    """Undo ``os.makedirs`` after a failure: remove the folders it made, if still empty."""
    for folder in folders:
        try:
            os.rmdir(folder)
        except OSError:
            break


def extract_tar(archive, directory):
    """Unpack the tar file ``archive`` (any compression) into ``directory``.

    Every member is checked before anything is written: only regular files and folders with
    relative paths free of '..' are accepted. Files are unpacked into a temporary folder
    inside ``directory`` and each is renamed into place when complete.
    """
    try:
        with tarfile.open(archive, 'r:*') as tar:
            members = tar.getmembers()
            for member in members:
                _check_member(archive, member)
            tmp = tempfile.mkdtemp(prefix='.extract-', dir=directory)
            try:
                for member in members:
                    parts = _parts(member.name)
                    if not parts:
                        continue
                    if member.isdir():
                        os.makedirs(os.path.join(directory, *parts), exist_ok=True)
                        continue
                    staged = os.path.join(tmp, *parts)
                    os.makedirs(os.path.dirname(staged), exist_ok=True)
                    with tar.extractfile(member) as src, open(staged, 'wb') as dst:
                        shutil.copyfileobj(src, dst, CHUNK)
                    target = os.path.join(directory, *parts)
                    os.makedirs(os.path.dirname(target), exist_ok=True)
                    os.replace(staged, target)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
    except (tarfile.TarError, EOFError, zlib.error, OSError) as err:
        if isinstance(err, DownloadError):
            raise
        raise DownloadError(f"cannot unpack {archive}: {err}") from None


def _parts(name):
    return [part for part in name.replace('\\', '/').split('/') if part not in ('', '.')]


def _check_member(archive, member):
    name = member.name
    if name.startswith(('/', '\\')) or os.path.isabs(name) or (len(name) > 1 and name[1] == ':'):
        raise DownloadError(f"{archive}: member {name!r} has an absolute path; "
                            f"refusing to unpack")
    if '..' in _parts(name):
        raise DownloadError(f"{archive}: member {name!r} points outside the target folder "
                            f"('..'); refusing to unpack")
    if not (member.isfile() or member.isdir()):
        raise DownloadError(f"{archive}: member {name!r} is a link or special file; "
                            f"refusing to unpack")


def _progress_bar(name, total):
    try:
        from tqdm import tqdm
    except ImportError:
        return _LineProgress(name, total)
    return tqdm(total=total or None, unit='B', unit_scale=True, desc=name)


class _LineProgress:
    """A one-line progress report on stderr, redrawn at most 4 times a second."""

    def __init__(self, name, total):
        self.name, self.total, self.done, self.last = name, total, 0, 0.0

    def update(self, n):
        self.done += n
        now = time.monotonic()
        if now - self.last >= 0.25:
            self.last = now
            self._draw('\r')

    def close(self):
        self._draw('\r')
        sys.stderr.write('\n')
        sys.stderr.flush()

    def _draw(self, start):
        mb = self.done / 1e6
        if self.total:
            text = f"{self.name}: {100 * self.done // self.total:3d}% of {self.total / 1e6:.1f} MB"
        else:
            text = f"{self.name}: {mb:.1f} MB"
        sys.stderr.write(start + text)
        sys.stderr.flush()
