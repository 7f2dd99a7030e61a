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
A log made anew (another file at the same path) is read from its start. At start, events the
database already holds (by instance, up to its highest sequence) are skipped instead of being
written again. The log is the buffer: a poll stops reading while the writer has more than
``max_backlog`` events queued, and reads at most ``CHUNK`` bytes of a log at a time. An
event the writer refuses (``record`` returns False) is read again at the next poll: the read
position never passes an event the writer does not hold.
"""

from __future__ import annotations

import logging
import os
import struct
import threading
import zlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import BinaryIO

from google.protobuf.message import DecodeError

from mt5exec.v1 import common_pb2

LOG_NAME = "executions.log"
CHUNK = 4 * 1024 * 1024
_RECORD = struct.Struct(">II")
log = logging.getLogger("mt5exec.history")


class LogTail:
    """Reads the execution logs under ``root`` (``<owner>/<instance>/executions.log``) and
    hands each new event's bytes to ``record`` (which returns False to refuse it for now).
    ``stored`` maps an instance to the highest sequence the database already holds: those
    events are skipped on a log's first read. ``backlog`` says how many events the writer
    has queued."""

    def __init__(
        self,
        root: Path,
        record: Callable[[bytes], object],
        stored: Mapping[str, int] | None = None,
        backlog: Callable[[], int] = lambda: 0,
        max_backlog: int = 200_000,
    ) -> None:
        self._root = root
        self._record = record
        self._stored = dict(stored or {})
        self._backlog = backlog
        self._max_backlog = max_backlog
        # path -> (offset of the first byte not read yet, header of the record before it)
        self._offsets: dict[Path, tuple[int, bytes]] = {}
        self._read_before: set[Path] = set()
        self._lock = threading.Lock()
        self.events = 0
        self.behind = False  # the last poll left bytes unread (backlog, or more than a chunk)

    def poll(self) -> int:
        """Reads what the logs gained since the last poll; the number of events recorded."""
        with self._lock:
            found = set(self._root.glob(f"*/*/{LOG_NAME}"))
            for gone in self._offsets.keys() - found:
                del self._offsets[gone]
            self._read_before &= found
            self.behind = False
            recorded = 0
            for path in sorted(found):
                if self._backlog() > self._max_backlog:
                    self.behind = True
                    break
                recorded += self._read(path)
            self.events += recorded
            return recorded

    def _read(self, path: Path) -> int:
        try:
            with open(path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                start = self._continue_at(path, f, size)
                if size <= start:
                    if start == 0:
                        self._offsets.pop(path, None)  # empty (again): read from its start
                    return 0
                f.seek(start)
                data = f.read(min(size - start, CHUNK))
        except OSError as e:  # gone meanwhile, or unreadable for now: the next poll retries
            log.warning("history: cannot read %s: %s", path, e)
            return 0
        first_read = start == 0 and path not in self._read_before
        self._read_before.add(path)
        at = recorded = 0
        anchor = b""
        while at + _RECORD.size <= len(data):
            length, crc = _RECORD.unpack_from(data, at)
            end = at + _RECORD.size + length
            if end > len(data):
                break
            payload = data[at + _RECORD.size : end]
            if zlib.crc32(payload) != crc:
                break
            if not (first_read and self._already_stored(payload)):
                if self._record(payload) is False:
                    self.behind = True  # refused: read again from this record
                    break
                recorded += 1
            anchor = data[at : at + _RECORD.size]
            at = end
        if at:
            self._offsets[path] = (start + at, anchor)
        if len(data) < size - start:
            self.behind = True  # more than a chunk: the rest at the next poll
        return recorded

    def _continue_at(self, path: Path, f: BinaryIO, size: int) -> int:
        """Where to read on: after the last record read, if the file still holds that record
        there (length and CRC); from the start if it is another file now (an instance made
        anew, whose log may even be longer already) or was cut shorter."""
        offset, anchor = self._offsets.get(path, (0, b""))
        if not anchor:
            return 0
        length = _RECORD.unpack(anchor)[0]
        begin = offset - _RECORD.size - length
        if size < offset or begin < 0:
            return 0
        f.seek(begin)
        return offset if f.read(_RECORD.size) == anchor else 0

    def drain(self, flush: Callable[[], object]) -> bool:
        """Reads every log to its end (to the last whole record), letting the writer write
        (``flush``) whenever its backlog stops the reading; False as soon as ``flush`` returns
        False (the writer cannot write now)."""
        while True:
            self.poll()
            if not self.behind:
                return True
            if flush() is False:
                return False

    def _already_stored(self, payload: bytes) -> bool:
        if not self._stored:
            return False
        try:
            event = common_pb2.ExecutionEvent.FromString(payload)
        except DecodeError:
            return False  # the writer skips it, and says so
        return event.sequence <= self._stored.get(event.instance_id, 0)
