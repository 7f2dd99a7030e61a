"""One server per data directory and per history database.

``serve`` takes an exclusive ``flock`` on ``<data_dir>/server.lock`` (and on
``<history file>.lock`` when the history is elsewhere) before it opens anything else: the
journal, the vault, the instances, the history. A second server pointed at either refuses
with a clear message and exit code 2 instead of recovering (and compacting) the first one's
journal under it. The kernel drops the lock when the process ends, however it ends, so a
crash leaves nothing to clean up.

Once listening, the server writes its pid and address into the lock file; ``holder`` reads
them (``mt5exec history export`` reaches a running server this way).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from dataclasses import dataclass
from pathlib import Path

LOCK_NAME = "server.lock"


class AlreadyServing(RuntimeError):
    """Another process holds the lock of this data directory or history database (or the
    lock file cannot be made)."""


@dataclass(frozen=True)
class Holder:
    pid: int
    address: str


def _read(fd: int) -> Holder | None:
    text = os.pread(fd, 4096, 0).decode(errors="replace").split()
    with contextlib.suppress(ValueError, IndexError):
        return Holder(int(text[0]), text[1] if len(text) > 1 else "")
    return None


class ServerLock:
    """The locks a server holds for its whole life (the files stay; the locks go with it)."""

    def __init__(self, data_dir: Path, history: Path | None = None) -> None:
        self._fds: list[int] = []
        data_dir.mkdir(parents=True, exist_ok=True)
        paths = [data_dir / LOCK_NAME]
        if history is not None:
            history.parent.mkdir(parents=True, exist_ok=True)
            paths.append(history.with_name(history.name + ".lock"))
        try:
            for path in paths:
                self._take(path, data_dir if path == paths[0] else history)
        except BaseException:
            self.release()
            raise

    def _take(self, path: Path, what: Path | None) -> None:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as e:
            raise AlreadyServing(f"cannot take the lock {path}: {e}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read(fd)
            os.close(fd)
            who = f"pid {holder.pid}" if holder is not None else "another process"
            raise AlreadyServing(
                f"another mt5exec server ({who}) is using {what} (lock {path}); stop it or "
                "give this one another --data-dir / [history] path"
            ) from None
        self._fds.append(fd)
        self.announce("")

    def announce(self, address: str) -> None:
        """Writes the pid and the address into the lock files. In place, not by a rename:
        the lock is on this file, and a new one would be unlocked."""
        data = f"{os.getpid()} {address}\n".encode()
        for fd in self._fds:
            # A full disk: the lock holds all the same; only the address is not told.
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
                os.pwrite(fd, data, 0)

    def release(self) -> None:
        for fd in self._fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fds.clear()


def holder(data_dir: Path) -> Holder | None:
    """The server that holds ``data_dir`` (None: none runs)."""
    try:
        fd = os.open(data_dir / LOCK_NAME, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read(fd) or Holder(0, "")
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
