"""Writing files so that a crash never leaves half of one.

``atomic_write`` writes a temporary file next to the target, flushes and fsyncs it, then
renames it over the target (``os.replace`` is atomic): readers see the old file or the new
one, never a mixture, and a failed write leaves the old file untouched.
"""
import contextlib
import os
import secrets


def fspath(path):
    """``path`` (str, bytes or PathLike) as a str."""
    path = os.fspath(path)
    return os.fsdecode(path) if isinstance(path, bytes) else path


@contextlib.contextmanager
def atomic_write(path, who):
    """``with atomic_write(path, 'save') as f:`` gives a binary file; on leaving the block
    normally it replaces ``path`` (through a symlink, the file it names); on an exception
    it is deleted and ``path`` is left as it was. ``who`` names the caller in errors."""
    target = os.path.realpath(fspath(path))
    directory = os.path.dirname(target)
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"{who}: directory {directory!r} does not exist")
    tmp, fd = _create_temp(directory, os.path.basename(target))
    try:
        with os.fdopen(fd, 'wb') as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_directory(directory)


def _create_temp(directory, name):
    """A new hidden file next to the target; created with 0o666 minus umask, like open()."""
    while True:
        tmp = os.path.join(directory, f".{name}.{secrets.token_hex(6)}.tmp")
        try:
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, 'O_BINARY', 0)
            return tmp, os.open(tmp, flags, 0o666)
        except FileExistsError:
            continue


def _fsync_directory(directory):
    """Make the rename itself durable; not possible on every OS (e.g. Windows)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
