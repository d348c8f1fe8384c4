"""Writing files so that a crash never leaves half of one.

``atomic_write`` writes a temporary file next to the target, flushes and fsyncs it, then
renames it over the target (``os.replace`` is atomic): readers see the old file or the new
one, never a mixture, and a failed write leaves the old file untouched.

The temporary file is deleted on any error, but a process killed outright (``kill -9``,
the out-of-memory killer, a power cut) cannot do that: ``remove_stale_temporaries``
deletes such leftovers, recognised by their exact name, ``.<name>.<12 hex digits>.tmp``.
"""
import contextlib
import errno
import os
import re
import secrets

_RANDOM_BYTES = 6  # the random part of a temporary file's name: 12 lowercase hex digits
_TEMPORARY = re.compile(r'\..+\.[0-9a-f]{%d}\.tmp' % (2 * _RANDOM_BYTES))


def fspath(path, who=None):
    """``path`` (str, bytes or PathLike) as a str; anything else (None, a file object) is
    a TypeError naming ``who``."""
    try:
        path = os.fspath(path)
    except TypeError:
        if who is None:
            raise
        raise TypeError(f"{who}: expected a file path (str, bytes or os.PathLike), got "
                        f"{type(path).__name__}") from None
    return os.fsdecode(path) if isinstance(path, bytes) else path


@contextlib.contextmanager
def atomic_write(path, who):
    """``with atomic_write(path, 'save') as f:`` gives a binary file; on leaving the block
    normally it replaces ``path`` (through a symlink, the file it names); on an exception
    it is deleted and ``path`` is left as it was. ``who`` names the caller in errors.

    An OSError of the writing itself (a full disk: ENOSPC, no permission) is re-raised
    with ``path`` as its filename, so that the message names the file the user asked for
    rather than nothing or the hidden temporary file."""
    path = fspath(path, who)
    if not path:
        raise FileNotFoundError(errno.ENOENT, f"{who}: empty file name", path)
    target = os.path.realpath(path)
    directory = os.path.dirname(target)
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise NotADirectoryError(errno.ENOTDIR, f"{who}: {directory!r} is a file, not a "
                                                f"directory", path)
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"{who}: directory {directory!r} does not exist")
    if os.path.isdir(target):  # (found before the whole file is written beside it)
        raise IsADirectoryError(errno.EISDIR, f"{who}: is a directory, not a file; give "
                                              f"a file name", path)
    tmp = None
    try:
        tmp, fd = _create_temp(directory, os.path.basename(target))
        with os.fdopen(fd, 'wb') as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException as e:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        if isinstance(e, OSError) and e.errno is not None and \
                (e.filename is None or _is_temporary(e.filename)):
            # OSError(errno, ...) is the subclass for that errno (PermissionError, ...)
            raise OSError(e.errno, e.strerror or str(e), path) from e
        raise
    _fsync_directory(directory)


def remove_stale_temporaries(directory):
    """Delete the temporary files that ``atomic_write`` left in ``directory`` when its
    process was killed before it could clean up; returns their names.

    Only regular files named exactly as ``_create_temp`` names them are deleted (not
    symlinks, not folders, not ``.notes.tmp``). A temporary file that another process is
    writing right now looks the same, so call this only where nothing else writes: at the
    start of a training run, in its own run directory.
    """
    removed = []
    with os.scandir(directory) as entries:
        for entry in entries:
            if _is_temporary(entry.name) and entry.is_file(follow_symlinks=False):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
                    removed.append(entry.name)
    return sorted(removed)


def _is_temporary(filename):
    """Is this (a path to) a file named as _create_temp names them?"""
    return bool(_TEMPORARY.fullmatch(os.path.basename(fspath(filename))))


def _create_temp(directory, name):
    """A new hidden file next to the target; created with 0o666 minus umask, like open()."""
    while True:
        tmp = os.path.join(directory, f".{name}.{secrets.token_hex(_RANDOM_BYTES)}.tmp")
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
