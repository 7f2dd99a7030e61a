"""Writing a file so that it is whole, private and durable once the write returns."""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path


def atomic_write(path: Path, data: bytes, mode: int = 0o600, durable: bool = True) -> None:
    """Replaces ``path`` with ``data``: a temporary file in the same directory is written,
    given ``mode`` (whatever the umask), synced, renamed over ``path``, and the directory is
    synced, so that a reader or a crash sees the old file or the new one, and a power cut
    after the return keeps the new one. Raises OSError; the temporary file never stays.
    ``durable=False`` leaves out both syncs (two fsyncs, milliseconds on many disks): for a
    file written often whose older version after a power cut is safe to read."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)
            f.write(data)
            f.flush()
            if durable:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if durable:
        fsync_dir(path.parent)


def fsync_dir(directory: Path) -> None:
    """Makes the entries of ``directory`` (a rename into it) durable. A filesystem that cannot
    sync a directory (EINVAL) has nothing to make durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    except OSError as e:
        if e.errno != errno.EINVAL:
            raise
    finally:
        os.close(fd)
