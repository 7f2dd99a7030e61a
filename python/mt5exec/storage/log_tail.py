"""Feeds the history from the engine's execution logs.

The engine writes every execution event of an instance to
``<instances>/<owner>/<instance>/executions.log`` before any client can see it (records: a
4-byte big-endian length, the CRC-32 of the payload, an encoded ``ExecutionEvent``). Past a
segment's size it renames that file ``executions-<first sequence, 20 digits>.log`` and begins
a new one; closed segments are deleted past the log's limits (``engine.execution_log_max_mb``,
the order retention). The history process reads those files from where it stopped, so that:

- what the engine logged reaches DuckDB even when the server crashed before passing it on, or
  the history fell behind (nothing is dropped between the two processes);
- the server's event loop does nothing per event for the history.

Read positions belong to files (their inode), not to paths: a file renamed to a segment while
the history was reading it is read on from where it stopped. Each poll reads an instance's
files in sequence order: its closed segments (by the first sequence in their names), then the
active log, and stops an instance's reading (the whole poll, when the writer refuses an event
or is behind) before a later file: the history always holds a prefix of each instance's
events. ``stored`` (the highest sequence the database holds, by instance) starts a mark that
every event recorded advances; a file read from its start (after a restart, a segment closed
before it was first read, a log made anew) skips the events at or below it, and a closed
segment whose next segment starts at or below the mark + 1 is not read at all. When the first
event such a file adds is not the one after the mark, the engine deleted (or never wrote)
events the history had not read: an ERROR names the instance and the range (not when an
instance created anew numbers its events after its deleted incarnation's last sequence).

A file is read to its last whole record: a record still being written, or torn by a crash,
waits (the engine cuts a torn record off when it opens the log again, then appends after it);
a closed segment never grows, so what of it is no whole record is skipped and said. A file
made anew at a position's inode (the inode reused) is read from its start: the record header
before the position must still be there. The log is the buffer: a poll stops reading while the
writer has more than ``max_backlog`` events queued, and reads at most ``CHUNK`` bytes of a file
at a time. An event the writer refuses (``record`` returns False) is read again at the next
poll: the read position never passes an event the writer does not hold.
"""

from __future__ import annotations

import enum
import logging
import os
import struct
import threading
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from google.protobuf.message import DecodeError

from mt5exec.v1 import common_pb2

LOG_NAME = "executions.log"
_SEGMENT_PREFIX, _SEGMENT_SUFFIX = "executions-", ".log"
CHUNK = 4 * 1024 * 1024
_RECORD = struct.Struct(">II")
log = logging.getLogger("mt5exec.history")


class _Outcome(enum.Enum):
    END = enum.auto()  # read to its last whole record
    MORE = enum.auto()  # more than a chunk: the rest at the next poll
    REFUSED = enum.auto()  # the writer refused an event (or is behind): the poll stops
    CHANGED = enum.auto()  # another file at the path than the one listed: at the next poll
    GONE = enum.auto()  # deleted meanwhile
    FAILED = enum.auto()  # unreadable for now: at the next poll


@dataclass(slots=True)
class _Position:
    offset: int  # of the first byte not read yet
    anchor: bytes  # the header of the record before it
    skipping: bool  # read from its start and not yet past the mark
    modified: int  # the file's modification time (ns) when it was read


@dataclass(slots=True)
class _Files:
    """What is known of one instance directory's files: read positions by inode, closed
    segments by their first sequence (unique, unlike an inode, which a deleted segment frees)."""

    positions: dict[int, _Position] = field(default_factory=dict)
    done: set[int] = field(default_factory=set)  # closed segments read (or skipped) to the end
    # (the active log's inode, the directory's inode and modification time) when every closed
    # segment was done: until one of them changes, the directory is not listed again
    settled: tuple[int, int, int] | None = None


class LogTail:
    """Reads the execution logs under ``root`` (``<owner>/<instance>/executions*.log``) and
    hands each new event's bytes to ``record`` (which returns False to refuse it for now).
    ``stored`` maps an instance to the highest sequence the database already holds: those
    events are skipped. ``backlog`` says how many events the writer has queued."""

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
        # instance -> the highest sequence stored or recorded
        self._mark: dict[str, int] = dict(stored or {})
        self._backlog = backlog
        self._max_backlog = max_backlog
        self._files: dict[str, _Files] = {}  # by instance directory
        self._lock = threading.Lock()
        self.events = 0
        self.behind = False  # the last poll left bytes unread (backlog, or more than a chunk)
        self.unreadable = False  # the last poll could not read a log (or list them)

    def poll(self) -> int:
        """Reads what the logs gained since the last poll; the number of events recorded."""
        with self._lock:
            self.behind = self.unreadable = False
            try:
                directories = self._instance_directories()
            except OSError as e:
                log.warning("history: cannot list the execution logs: %s", e)
                self.unreadable = True
                return 0
            for gone in self._files.keys() - {path for path, _ in directories}:
                del self._files[gone]
            recorded = 0
            for directory, instance in directories:
                n, go_on = self._poll_instance(directory, instance)
                recorded += n
                if not go_on:
                    self.behind = True
                    break
            self.events += recorded
            return recorded

    def drain(self, flush: Callable[[], object]) -> bool:
        """Reads every log to its end (to the last whole record), letting the writer write
        (``flush``) whenever its backlog stops the reading; False as soon as ``flush`` returns
        False (the writer cannot write now), or when a log cannot be read."""
        while True:
            self.poll()
            if not self.behind:
                return not self.unreadable
            if flush() is False:
                return False

    def _instance_directories(self) -> list[tuple[str, str]]:
        """(path, instance) of every ``<root>/<owner>/<instance>``, by owner and instance."""
        found: list[tuple[str, str]] = []
        try:
            owners = _subdirectories(str(self._root))
        except FileNotFoundError:
            return found
        for _, owner in owners:
            try:
                found.extend((path, name) for name, path in _subdirectories(owner))
            except (FileNotFoundError, NotADirectoryError):
                continue  # removed meanwhile
        return found

    def _poll_instance(self, directory: str, instance: str) -> tuple[int, bool]:
        """Reads one instance's closed segments, then its active log; the events recorded,
        and False when the poll must stop (the writer refused an event or is behind)."""
        active = os.path.join(directory, LOG_NAME)
        try:
            # Both before the listing: a log begun after this was named while listing, and
            # the segment it closed may be missing from the listing.
            status = os.stat(directory)
            try:
                before: os.stat_result | None = os.stat(active)
            except FileNotFoundError:
                before = None
        except FileNotFoundError:
            return 0, True  # removed meanwhile
        except OSError as e:
            log.warning("history: cannot read %s: %s", directory, e)
            self.unreadable = True
            return 0, True
        files = self._files.get(directory)
        if files is None:
            files = self._files[directory] = _Files()
        recorded = 0
        changed = (status.st_ino, status.st_mtime_ns)
        if before is None or files.settled != (before.st_ino, *changed):
            files.settled = None
            n, go_on = self._read_segments(directory, instance, files, before, changed)
            if not go_on:
                return n, False
            if files.settled is None:
                return n, True  # a segment is left to read before the active log
            recorded = n
        if before is None:
            return recorded, True
        position = files.positions.get(before.st_ino)
        if (
            position is not None
            and position.offset == before.st_size
            and position.modified == before.st_mtime_ns
        ):
            return recorded, True  # caught up
        n, outcome = self._read(active, before.st_ino, files, instance, closed=False)
        return recorded + n, self._go_on(outcome)

    def _read_segments(
        self,
        directory: str,
        instance: str,
        files: _Files,
        before: os.stat_result | None,
        changed: tuple[int, int],
    ) -> tuple[int, bool]:
        """Lists the directory and reads its closed segments in order. ``files.settled``
        says when all were read: as long as the active log (``before``) and the directory
        (``changed``: its inode and modification time) stay the same, no other segment can
        appear (a segment is the active log renamed), and the next polls read the active log
        without listing. The directory's time guards against the log's inode being reused:
        that takes at least a rotation and a deletion of the segment that had it."""
        try:
            active_inode, segments = _listing(directory)
        except OSError as e:
            log.warning("history: cannot list %s: %s", directory, e)
            self.unreadable = True
            return 0, True
        if active_inode != (before.st_ino if before is not None else None):
            self.behind = True  # rotated while listed: listed again at once
            return 0, True
        live = {inode for _, inode, _ in segments}
        if active_inode is not None:
            live.add(active_inode)
        for inode in files.positions.keys() - live:
            del files.positions[inode]
        files.done &= {first for first, _, _ in segments}
        recorded = 0
        for k, (first, inode, name) in enumerate(segments):
            if first in files.done:
                continue
            # Never read, and all of it at or below the mark: the database has it.
            if (
                inode not in files.positions
                and k + 1 < len(segments)
                and self._mark.get(instance, 0) >= segments[k + 1][0] - 1
            ):
                files.done.add(first)
                continue
            path = os.path.join(directory, name)
            n, outcome = self._read(path, inode, files, instance, closed=True)
            recorded += n
            if outcome is _Outcome.END:
                files.done.add(first)
            elif outcome is not _Outcome.GONE:  # a deleted segment: the next one (see _read)
                return recorded, self._go_on(outcome)
        if before is not None:
            files.settled = (before.st_ino, *changed)
        return recorded, True

    def _go_on(self, outcome: _Outcome) -> bool:
        """Whether the poll goes on to the next instance after this outcome of its read."""
        if outcome in (_Outcome.MORE, _Outcome.CHANGED):
            self.behind = True
        return outcome is not _Outcome.REFUSED

    def _read(
        self, path: str, inode: int, files: _Files, instance: str, closed: bool
    ) -> tuple[int, _Outcome]:
        if self._backlog() > self._max_backlog:
            return 0, _Outcome.REFUSED
        try:
            with open(path, "rb") as f:
                status = os.fstat(f.fileno())
                if status.st_ino != inode:
                    return 0, _Outcome.CHANGED
                size = status.st_size
                position = _continue_at(files.positions.get(inode), f, size)
                start = position.offset if position is not None else 0
                if size <= start:
                    if start == 0:
                        files.positions.pop(inode, None)  # empty (again): read from its start
                    return 0, _Outcome.END
                f.seek(start)
                data = f.read(min(size - start, CHUNK))
        except FileNotFoundError:
            return 0, _Outcome.GONE
        except OSError as e:  # unreadable for now: the next poll retries
            log.warning("history: cannot read %s: %s", path, e)
            self.unreadable = True
            return 0, _Outcome.FAILED
        mark = self._mark.get(instance, 0)
        skipping = position.skipping if position is not None else mark > 0
        at = recorded = 0
        anchor = b""
        last = b""  # the last event recorded
        refused = broken = False
        while at + _RECORD.size <= len(data):
            length, crc = _RECORD.unpack_from(data, at)
            end = at + _RECORD.size + length
            if start + end > size or length > CHUNK - _RECORD.size:
                broken = True  # runs past the file's end (a record being written, or torn)
                break
            if end > len(data):
                break  # in the next chunk
            payload = data[at + _RECORD.size : end]
            if zlib.crc32(payload) != crc:
                broken = True
                break
            first_after_mark = 0
            if skipping:
                sequence = _sequence(payload)
                if sequence is not None and sequence <= mark:
                    anchor, at = data[at : at + _RECORD.size], end
                    continue  # the database has it
                first_after_mark = sequence or 0
            if self._record(payload) is False:
                refused = True  # read again from this record
                break
            if skipping and first_after_mark:
                skipping = False
                if first_after_mark > mark + 1:
                    self._report_gap(instance, mark, first_after_mark, path)
            recorded += 1
            last = payload
            anchor, at = data[at : at + _RECORD.size], end
        if at:
            files.positions[inode] = _Position(start + at, anchor, skipping, status.st_mtime_ns)
        if last:
            sequence = _sequence(last)
            if sequence is not None and sequence > self._mark.get(instance, 0):
                self._mark[instance] = sequence
        if refused:
            return recorded, _Outcome.REFUSED
        if not broken and start + len(data) < size:
            return recorded, _Outcome.MORE
        if closed and start + at < size:
            # A closed segment never grows: what is no whole record there never will be.
            log.error(
                "history: %s: the %d bytes from offset %d are no whole record (a damaged "
                "segment); they are skipped",
                path,
                size - start - at,
                start + at,
            )
        return recorded, _Outcome.END

    def _report_gap(self, instance: str, mark: int, sequence: int, path: str) -> None:
        from mt5exec.registry import read_sequence_floors

        floor = read_sequence_floors(self._root).get(instance)
        if floor is not None and sequence == floor + 1 and mark <= floor:
            # Created anew after a deletion: numbered after the last event of its deleted
            # incarnation, which the history held unless that never reached the log.
            if mark < floor:
                log.warning(
                    "history: instance %s was created anew after sequence %d; the history "
                    "holds its events up to %d only (sequences %d-%d were never logged)",
                    instance,
                    floor,
                    mark,
                    mark + 1,
                    floor,
                )
            return
        log.error(
            "history: instance %s: sequences %d-%d are missing from its execution logs (%s "
            "starts after them): the engine deleted segments the history had not read yet "
            "(engine.execution_log_max_mb or the order retention), or never wrote them; the "
            "history lacks those events",
            instance,
            mark + 1,
            sequence - 1,
            os.path.basename(path),
        )


def _subdirectories(path: str) -> list[tuple[str, str]]:
    """(name, path) of the directories in ``path`` but hidden ones, by name."""
    with os.scandir(path) as entries:
        return sorted(
            (entry.name, entry.path)
            for entry in entries
            if not entry.name.startswith(".") and entry.is_dir()
        )


def _listing(directory: str) -> tuple[int | None, list[tuple[int, int, str]]]:
    """The active log's inode (None: none), and the closed segments as (first sequence,
    inode, name), in order."""
    active: int | None = None
    segments: list[tuple[int, int, str]] = []
    try:
        with os.scandir(directory) as entries:
            for entry in entries:
                name = entry.name
                if name == LOG_NAME:
                    active = entry.inode()
                elif name.startswith(_SEGMENT_PREFIX) and name.endswith(_SEGMENT_SUFFIX):
                    first = name[len(_SEGMENT_PREFIX) : -len(_SEGMENT_SUFFIX)]
                    if first.isascii() and first.isdigit():
                        segments.append((int(first), entry.inode(), name))
    except (FileNotFoundError, NotADirectoryError):
        pass  # removed meanwhile
    segments.sort()
    return active, segments


def _continue_at(position: _Position | None, f: BinaryIO, size: int) -> _Position | None:
    """Where to read on: after the last record read, if the file still holds that record
    there (length and CRC); from the start (None) if it is another file now (its inode
    reused) or was cut shorter."""
    if position is None or not position.anchor:
        return None
    length = _RECORD.unpack(position.anchor)[0]
    begin = position.offset - _RECORD.size - length
    if size < position.offset or begin < 0:
        return None
    f.seek(begin)
    return position if f.read(_RECORD.size) == position.anchor else None


def _sequence(payload: bytes) -> int | None:
    try:
        return common_pb2.ExecutionEvent.FromString(payload).sequence
    except DecodeError:
        return None  # the writer skips it, and says so
