"""Journal compaction: which history is kept, and the thread that writes the compacted journal."""

from __future__ import annotations

import contextlib
import errno
import logging
import mmap
import os
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from mt5exec.sim.state.codec import (
    _FRAME,
    MAX_RECORD,
    Buffer,
    _Bad,
    _encode_state,
    _parse_record,
    _parse_state,
    _Sltp,
    _State,
)
from mt5exec.sim.state.history import _INDEX_EVERY, HistoryIndex
from mt5exec.sim.state.records import AccountState, OrderState, Retention

if TYPE_CHECKING:
    from mt5exec.sim.state.store import StateStore


log = logging.getLogger("mt5exec.sim.state")

# A compaction's thread lets the broker's thread run after walking this many records.
_WALK_CHUNK = 4096

# -- compaction ----------------------------------------------------------------------------------


def _marks(data: Buffer, pos: int) -> tuple[int | None, int, int]:
    """``(time_msc, ticket, end)`` of the record at ``pos``: its latest time and highest order
    ticket (time None for a record of stops only), and where it ends."""
    size = _FRAME.unpack_from(data, pos)[0]
    end = pos + _FRAME.size + size
    try:
        _, entries, _ = _parse_record(bytes(data[pos + _FRAME.size : end]), pos)
    except _Bad:
        return 2**63, 2**63, end  # unreadable: kept, like everything after it
    when: int | None = None
    ticket = 0
    for e in entries:
        if isinstance(e, OrderState):
            t, ticket = max(e.time_setup_msc, e.time_done_msc), max(ticket, e.ticket)
        elif isinstance(e, _Sltp):
            continue
        else:
            t, ticket = e.time_msc, max(ticket, e.order)
        when = t if when is None else max(when, t)
    return when, ticket, end


def _cut(
    data: Buffer, start: int, now_msc: int, retention: Retention, next_order: int
) -> tuple[int, int]:
    """Where the history worth keeping begins among the records from ``start`` to the end of
    ``data``, and how many records come before it.

    A record goes when its time is more than ``keep_s`` before the newest record's (or now,
    if earlier) or its order ticket more than ``keep_orders`` behind ``next_order``, and so does
    every record before it: times and tickets grow along the journal, so the records that go
    are a prefix, found by bisecting the index and walking one block of it."""
    index = HistoryIndex()
    while index.extend(data, start, _WALK_CHUNK):
        time.sleep(0)  # let the broker's thread have the interpreter
    offsets, n = index.offsets, len(data)
    if not offsets:
        return start, 0
    newest: int | None = None
    pos = offsets[-1]
    while pos < n:
        when, _, pos = _marks(data, pos)
        if when is not None:
            newest = when if newest is None else max(newest, when)
    time_cut = min(now_msc, now_msc if newest is None else newest) - int(retention.keep_s * 1000)
    ticket_cut = next_order - retention.keep_orders

    def goes(pos: int) -> tuple[bool | None, int]:
        when, ticket, end = _marks(data, pos)
        if when is None:
            return None, end
        return when < time_cut or ticket < ticket_cut, end

    def block_goes(pos: int) -> bool:
        verdict: bool | None = None
        while verdict is None and pos < n:
            verdict, pos = goes(pos)
        return bool(verdict)

    lo, hi = 0, len(offsets)
    while lo < hi:
        mid = (lo + hi) // 2
        if block_goes(offsets[mid]):
            lo = mid + 1
        else:
            hi = mid
    if lo == 0:
        return start, 0
    cut = pos = offsets[lo - 1]
    dropped = walked = (lo - 1) * _INDEX_EVERY
    while pos < n:
        verdict, pos = goes(pos)
        if verdict is False:
            break
        walked += 1
        if verdict:
            cut, dropped = pos, walked
    return cut, dropped


def _copy(src: int, dst: int, begin: int, end: int, at: int) -> None:
    """Copies bytes ``begin``..``end`` of ``src`` to ``dst`` at ``at``."""
    kernel = getattr(os, "copy_file_range", None)  # Linux
    while begin < end:
        n = 0
        if kernel is not None:
            try:
                n = kernel(src, dst, end - begin, begin, at)
            except OSError as e:
                if e.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
                    raise
                kernel = None
        if kernel is None:
            n = os.pwrite(dst, os.pread(src, min(end - begin, 1 << 20), begin), at)
        if n <= 0:
            raise OSError(errno.EIO, f"copying the journal stopped at byte {begin} of {end}")
        begin += n
        at += n


class _Compaction:
    """One compaction: the thread writes the new base and the kept history to the ``.compact``
    file and fsyncs it; ``StateStore.finish_compaction`` (on the broker's thread) appends what
    was journaled meanwhile and moves the file over the journal."""

    def __init__(
        self,
        store: StateStore,
        account: AccountState,
        now_msc: int,
    ) -> None:
        self.seq = store.seq
        self.end = store.log_size
        self.journal_id = _new_journal_id()
        self.account = account
        self.now_msc = now_msc
        self.retention = store.retention
        self.size = 0  # of the new file, once written
        self.dropped = 0  # records left out
        self.error: BaseException | None = None
        self.src = os.open(store.log_path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            mode = os.fstat(self.src).st_mode & 0o777
            flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
            self.out = os.open(store.compact_path, flags, mode)
        except BaseException:
            os.close(self.src)
            raise
        self.thread = threading.Thread(target=self._run, name="sim-state-compaction", daemon=True)

    def _run(self) -> None:
        try:
            with mmap.mmap(self.src, self.end, access=mmap.ACCESS_READ) as data:
                old = _parse_state(data, 0)
                cut, self.dropped = _cut(
                    data, old.end, self.now_msc, self.retention, self.account.next_order
                )
            base = _encode_state(self.account, self.seq, 0, self.journal_id)
            archive_end = len(base) + self.end - cut
            base = _encode_state(self.account, self.seq, archive_end, self.journal_id)
            view = memoryview(base)
            while view:
                view = view[os.write(self.out, view) :]
            _copy(self.src, self.out, cut, self.end, len(base))
            os.fsync(self.out)
            self.size = archive_end
        except BaseException as e:  # handed to the broker's thread
            self.error = e

    def close(self) -> None:
        for fd in (self.src, self.out):
            with contextlib.suppress(OSError):
                os.close(fd)


def _after_compaction(path: Path, fds: Iterable[int]) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)
    try:
        _fsync_dir(path.parent)
    except OSError as e:  # the rename stands; only a power cut could still undo it
        log.warning("%s: cannot fsync the directory after a compaction: %s", path, e)


def _new_journal_id() -> int:
    return int.from_bytes(os.urandom(8), "little") or 1


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _journal_head(path: Path) -> _State | None:
    """The header of the journal's base (its id and archive end), None if it has none."""
    try:
        with path.open("rb") as f:
            data = f.read(_FRAME.size + MAX_RECORD)
    except FileNotFoundError:
        return None
    try:
        return _parse_state(data, 0, header_only=True)
    except _Bad:
        return None
