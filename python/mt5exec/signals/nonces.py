"""The nonces of accepted signals, kept while a replay of them could still be in the window.

Each accepted nonce is appended to ``<data_dir>/signals/nonces.log`` (one line
``<timestamp_ns> <source> <nonce>``, 0600) and synced before its signal is acted on; on start
the lines still inside the window are read back, so a replay is refused across a restart. The
log is rewritten (``atomic_write``) with the live lines only once it holds many expired ones:
it stays bounded by what the window can hold. A nonce that cannot be recorded is not taken:
the caller refuses its signal (fail closed).
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path

from mt5exec.files import atomic_write, fsync_dir

_COMPACT_MIN = 1024


class NonceLog:
    """The (source, nonce) pairs seen within ``window_ns`` of their signal's timestamp."""

    def __init__(self, path: Path, window_ns: int) -> None:
        self.path = path
        self.window_ns = window_ns
        # (source, nonce) -> the signal's timestamp (ns).
        self._seen: dict[tuple[str, str], int] = {}
        self._lines = 0
        # Lines the log held after its last compaction: it is compacted again at twice that.
        self._kept = 0
        self._lock = threading.Lock()

    def load(self) -> None:
        """Reads back the nonces still inside the window (a torn last line is ignored)."""
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            text = self.path.read_text(errors="replace")
        except FileNotFoundError:
            return
        horizon = self._horizon()
        for line in text.splitlines():
            parts = line.split(" ")
            if len(parts) != 3 or not (parts[0].isascii() and parts[0].lstrip("-").isdigit()):
                continue
            stamp = int(parts[0])
            if stamp >= horizon:
                self._seen[(parts[1], parts[2])] = stamp
            self._lines += 1

    def _horizon(self) -> int:
        """Signals stamped before this can no longer pass the window (twice the window
        back: a margin for a clock stepped back)."""
        return time.time_ns() - 2 * self.window_ns

    def seen(self, source: str, nonce: str) -> bool:
        return (source, nonce) in self._seen

    def __len__(self) -> int:
        return len(self._seen)

    async def take(self, source: str, nonce: str, stamp_ns: int) -> bool:
        """Records the nonce; False when it was already taken. Raises OSError when it cannot
        be recorded (it is then not taken)."""
        key = (source, nonce)
        if key in self._seen:
            return False
        # Taken before the write: a concurrent copy of the signal is refused at once.
        self._seen[key] = stamp_ns
        try:
            await asyncio.to_thread(self._append, f"{stamp_ns} {source} {nonce}\n".encode())
        except BaseException:
            del self._seen[key]
            raise
        return True

    def _append(self, line: bytes) -> None:
        with self._lock:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                if os.write(fd, line) != len(line):
                    raise OSError("short write to the nonce log")
                os.fsync(fd)
            finally:
                os.close(fd)
            self._lines += 1
            if self._lines > max(_COMPACT_MIN, 2 * self._kept):
                self._compact()

    def _compact(self) -> None:
        """Forgets the nonces whose signals are out of the window, in memory and on disk."""
        horizon = self._horizon()
        live = {k: v for k, v in list(self._seen.items()) if v >= horizon}
        body = "".join(f"{stamp} {s} {n}\n" for (s, n), stamp in live.items())
        atomic_write(self.path, body.encode())
        fsync_dir(self.path.parent)
        # By their stamps, not by absence from `live`: a nonce taken meanwhile (on the event
        # loop, its line waiting for the lock) is fresh and stays.
        for key, stamp in list(self._seen.items()):
            if stamp < horizon:
                self._seen.pop(key, None)
        self._lines = self._kept = len(live)
