"""Small file helpers shared by the modules that write files other processes also use.

``replace_file`` is the one atomic writer: the bundle and the intents file editor both use it."""

from __future__ import annotations

import contextlib
import fcntl
import glob
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path


@contextlib.contextmanager
def exclusive_lock(lock_path: str | Path) -> Iterator[None]:
    """Hold an exclusive flock on a lock file (created if needed) for a read-modify-write.

    The lock is advisory and per host: every process that edits the same file must take it.
    """
    descriptor = os.open(lock_path, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)  # closing releases the lock


def replace_file(
    path: str | Path,
    content: bytes,
    *,
    check: Callable[[Path], object] | None = None,
    mode: int | None = None,
) -> Path:
    """Replace ``path`` with ``content`` atomically: a reader sees the old file or the new one.

    The bytes go to a hidden temporary file beside ``path`` (named after this process, so a later
    call can remove what a killed one left), reach the disk, pass ``check`` (called with the
    temporary path: a file that does not read back never replaces a good one) and are renamed over
    ``path``; the folder is then flushed, so the rename itself survives a power cut. ``mode`` is the
    new file's permissions; by default the old file's, or 0o644 for a new file (mkstemp's 0o600
    would hide it from a server running as another user).

    Raises:
        OSError: the file could not be written (full disk, read-only folder); ``path`` is unchanged.
    """
    path = Path(path)
    if mode is None:
        mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
    descriptor, name = tempfile.mkstemp(
        prefix=f"{_temporary_prefix(path)}{os.getpid()}.", suffix=".tmp", dir=path.parent
    )
    temporary = Path(name)
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(content)
            file.flush()
            os.fsync(file.fileno())
        if check is not None:
            check(temporary)
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)
    _remove_stale_temporaries(path)
    return path


def _temporary_prefix(path: Path) -> str:
    return f".{path.name}."


def _remove_stale_temporaries(path: Path) -> None:
    """Delete the temporary files of writes to ``path`` whose process is gone (killed midway)."""
    prefix = _temporary_prefix(path)
    for temporary in path.parent.glob(f"{glob.escape(prefix)}*.tmp"):
        pid = temporary.name.removeprefix(prefix).split(".", 1)[0]
        if pid.isdigit() and not _process_exists(int(pid)):
            temporary.unlink(missing_ok=True)


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0 only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


def _fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
