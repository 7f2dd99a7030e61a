"""Feeds the history from the engine's execution logs.

The engine writes every execution event of an instance to
``<instances>/<owner>/<instance>/executions.log`` before any client can see it (records: a
4-byte big-endian length, the CRC-32 of the payload, an encoded ``ExecutionEvent``). The
history process reads those logs from where it stopped, so that:

- what the engine logged reaches DuckDB even when the server crashed before passing it on, or
  the history fell behind (nothing is dropped between the two processes);
- the server's event loop does nothing per event for the history.

A log is read to its last whole record: a record still being written, or torn by a crash,
waits (the engine cuts a torn record off when it opens the log again, then appends after it).
At start, events the database already holds (by instance, up to its highest sequence) are
skipped instead of being written again.
"""

from __future__ import annotations

import struct
import threading
import zlib
from collections.abc import Callable, Mapping
from pathlib import Path

from google.protobuf.message import DecodeError

from mt5exec.v1 import common_pb2

LOG_NAME = "executions.log"
_RECORD = struct.Struct(">II")


class LogTail:
    """Reads the execution logs under ``root`` (``<owner>/<instance>/executions.log``) and
    hands each new event's bytes to ``record``. ``stored`` maps an instance to the highest
    sequence the database already holds: those events are skipped on a log's first read."""

    def __init__(
        self,
        root: Path,
        record: Callable[[bytes], None],
        stored: Mapping[str, int] | None = None,
    ) -> None:
        self._root = root
        self._record = record
        self._stored = dict(stored or {})
        self._offsets: dict[Path, int] = {}
        self._lock = threading.Lock()
        self.events = 0

    def poll(self) -> int:
        """Reads what every log gained since the last poll; the number of events recorded."""
        with self._lock:
            found = set(self._root.glob(f"*/*/{LOG_NAME}"))
            for gone in self._offsets.keys() - found:
                del self._offsets[gone]
            recorded = sum(self._read(path) for path in sorted(found))
            self.events += recorded
            return recorded

    def _read(self, path: Path) -> int:
        offset = self._offsets.get(path)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return 0
        if offset is not None and size < offset:
            offset = None  # cut shorter (a torn record removed) or made anew: read it again
        first_read = offset is None
        start = offset or 0
        if size <= start:
            self._offsets[path] = start
            return 0
        with open(path, "rb") as f:
            f.seek(start)
            data = f.read(size - start)
        at = recorded = 0
        while at + _RECORD.size <= len(data):
            length, crc = _RECORD.unpack_from(data, at)
            end = at + _RECORD.size + length
            if end > len(data):
                break
            payload = data[at + _RECORD.size : end]
            if zlib.crc32(payload) != crc:
                break
            if not (first_read and self._already_stored(payload)):
                self._record(payload)
                recorded += 1
            at = end
        self._offsets[path] = start + at
        return recorded

    def _already_stored(self, payload: bytes) -> bool:
        if not self._stored:
            return False
        try:
            event = common_pb2.ExecutionEvent.FromString(payload)
        except DecodeError:
            return False  # the writer skips it, and says so
        return event.sequence <= self._stored.get(event.instance_id, 0)
