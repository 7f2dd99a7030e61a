"""The journals: the commit API (``Journal``), in memory (``MemoryJournal``) and on disk: the open
state files of one account (``StateStore``), with their opening, recovery, writing and the
hand-over of a compaction."""

from __future__ import annotations

import abc
import collections
import contextlib
import errno
import fcntl
import logging
import os
import threading
import time
import zlib
from collections.abc import Collection, Iterable, Iterator
from pathlib import Path
from typing import Literal

from mt5exec.sim.state.codec import (
    _E_DEAL,
    _FRAME,
    _PRICE,
    _PRICES,
    _T_PRICES,
    _T_TX,
    _TX,
    _TX_DEAL,
    MIN_FILL_RECORD,
    _apply,
    _Bad,
    _encode_state,
    _frame,
    _parse_prices,
    _parse_record,
    _parse_state,
    _s,
    _scan,
)
from mt5exec.sim.state.compaction import (
    _after_compaction,
    _Compaction,
    _copy,
    _journal_head,
    _new_journal_id,
)
from mt5exec.sim.state.history import HistoryIndex, _needles, history
from mt5exec.sim.state.records import (
    DEAL_FIXED,
    AccountState,
    DealEntry,
    Loaded,
    MarketState,
    Retention,
    StateError,
)
from mt5exec.terminal.v1 import worker_pb2 as pb

log = logging.getLogger("mt5exec.sim.state")
# A torn last record took at most this many tickets of each kind (a close-by: two deals).
_TICKETS_PER_RECORD = 2

# Waiting for the lock covers a predecessor that was just killed and is still being reaped.
LOCK_TIMEOUT_S = 5.0

# -- the store -----------------------------------------------------------------------------------


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


class Journal(abc.ABC):
    """Where the broker records every account change before it takes effect: the commit API.

    ``StateStore`` writes the records to disk; ``MemoryJournal`` keeps the latest ones in memory
    (a broker without persistence still answers reconciliation from them).
    """

    def __init__(self) -> None:
        # Number of the last record; snapshots say which record they include.
        self.seq = 0
        self._symbols: dict[str, bytes] = {}
        self._pack = _TX_DEAL.pack

    @abc.abstractmethod
    def _write_record(self, payload: bytes, seq: int) -> None:
        """Makes one record durable (or keeps it, in memory) as number ``seq``."""

    def commit(self, *entries: bytes) -> None:
        """Append one TX of ``entries`` (from ``encode_order``, ``encode_deal``,
        ``encode_sltp``): durable against a crash once this returns, all or nothing.

        Raises ``OSError`` when the record could not be written; the journal is then left as it
        was and the broker must not apply the change.
        """
        seq = self.seq + 1
        self._write_record(_TX.pack(_T_TX, seq) + b"".join(entries), seq)

    def commit_deal(self, d: DealEntry, extra: bytes = b"") -> None:
        """``commit`` of the DEAL entry of ``d`` and then ``extra``.

        The market-order path: one struct pack for the record head and the deal.
        """
        seq = self.seq + 1
        symbol = d.symbol
        name = self._symbols.get(symbol)
        if name is None:
            name = self._symbols[symbol] = _s(symbol)
        raw = d.comment.encode()
        payload = (
            self._pack(_T_TX, seq, _E_DEAL, *d[:DEAL_FIXED])
            + name
            + bytes((len(raw),))
            + raw
            + extra
        )
        self._write_record(payload, seq)


class MemoryJournal(Journal):
    """The latest ``limit`` changes, in memory only (no durability).

    Keeps what a record would hold, packed into a record only when the history is read: a
    broker without persistence (tests, in-process benchmarks) pays next to nothing per fill.
    """

    def __init__(self, limit: int = 20_000) -> None:
        super().__init__()
        # A record's payload, or (seq, deal, extra) of commit_deal (packed on reading).
        self.records: collections.deque[bytes | tuple[int, DealEntry, bytes]] = collections.deque(
            maxlen=limit
        )

    def _write_record(self, payload: bytes, seq: int) -> None:
        self.records.append(payload)
        self.seq = seq

    def commit_deal(self, d: DealEntry, extra: bytes = b"") -> None:
        """As ``Journal.commit_deal``, deferred."""
        self.seq += 1
        self.records.append((self.seq, d, extra))

    def _payloads(self) -> Iterator[tuple[int, bytes]]:
        for i, r in enumerate(self.records):
            if isinstance(r, tuple):
                seq, d, extra = r
                raw = d.comment.encode()
                r = (
                    self._pack(_T_TX, seq, _E_DEAL, *d[:DEAL_FIXED])
                    + _s(d.symbol)
                    + bytes((len(raw),))
                    + raw
                    + extra
                )
            yield i, r

    def history(
        self, comments: Collection[str] | None = None, from_time_msc: int = 0
    ) -> tuple[list[pb.OrderInfo], list[pb.DealReport]]:
        """``history`` of the records kept."""
        needles = None if comments is None else _needles(comments)
        records: Iterable[tuple[int, bytes]] = self._payloads()
        if needles is not None:
            records = ((i, r) for i, r in records if any(needle in r for needle in needles))
        return history(records, comments, from_time_msc)


class StateStore(Journal):
    """The open state files of one simulated account; see ``mt5exec.sim.state``."""

    def __init__(self, path: Path) -> None:
        """Use ``StateStore.open``; this only names the files."""
        super().__init__()
        self.path = path
        self.log_path = path.with_name(path.name + ".log")
        self.prices_path = path.with_name(path.name + ".prices")
        self.lock_path = path.with_name(path.name + ".lock")
        self.compact_path = path.with_name(path.name + ".log.compact")
        self.retention = Retention()
        # The journal's id (in its base; a snapshot names the journal its offset belongs to).
        self.journal_id = 0
        # Where the journal's archive ends: its size after the last compaction.
        self.compacted_size = 0
        self.compactions = 0
        self._compaction: _Compaction | None = None
        self.records_since_snapshot = 0
        self._lock_fd = -1
        self._log_fd = -1
        self._prices_fd = -1
        self._log_size = 0
        self._needs_base = True
        self._write = os.write
        # Record offsets for history searches (reconciliation), kept between searches.
        self.index = HistoryIndex()
        self._frame = _FRAME.pack
        self._crc = zlib.crc32

    # -- opening and recovery ---------------------------------------------------------------

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        login: int,
        currency: str,
        margin_mode: Literal["hedging", "netting"],
        symbols: Iterable[str],
        lock_timeout: float = LOCK_TIMEOUT_S,
        retention: Retention | None = None,
    ) -> tuple[StateStore, Loaded]:
        """Lock and read the state at ``path``, repairing or setting aside what is damaged.

        Raises ``StateError`` only when the files cannot be used at all. Call ``begin`` with the
        broker's account next: it starts the journal if needed and writes a fresh snapshot.
        """
        store = cls(Path(path))
        if retention is not None:
            store.retention = retention
        try:
            store._lock(lock_timeout)
            if store.compact_path.exists():
                # Never renamed over the journal: the journal is whole without it.
                store.compact_path.unlink()
                log.warning("%s: removed a compaction a crash interrupted", store.compact_path)
            loaded = store._load(login, currency, margin_mode, set(symbols))
            flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC
            store._log_fd = os.open(store.log_path, flags, 0o644)
            # Drop a torn tail (or a base never finished) so new records follow good ones.
            os.ftruncate(store._log_fd, store._log_size)
            store._prices_fd = os.open(
                store.prices_path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644
            )
        except OSError as e:
            store.close()
            raise StateError(f"{store.path}: cannot use the state files: {e}") from e
        except BaseException:
            store.close()
            raise
        return store, loaded

    def _lock(self, timeout: float) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except OSError as e:
                if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                    raise
                if time.monotonic() >= deadline:
                    raise StateError(
                        f"{self.lock_path}: another process still uses this state"
                    ) from e
                time.sleep(0.02)

    def _set_aside(self, path: Path, why: str) -> Path:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        target = path.with_name(f"{path.name}.{why}-{stamp}")
        n = 1
        while target.exists():
            target = path.with_name(f"{path.name}.{why}-{stamp}-{n}")
            n += 1
        os.replace(path, target)
        return target

    def _problem(self, loaded: Loaded, message: str) -> None:
        log.error("%s", message)
        loaded.problems.append(message)

    def _load(
        self,
        login: int,
        currency: str,
        margin_mode: Literal["hedging", "netting"],
        symbols: set[str],
    ) -> Loaded:
        loaded = Loaded(None, {})
        account: AccountState | None = None
        seq = 0
        start = 0

        data = _read(self.path)
        head = _journal_head(self.log_path)
        if data is not None:
            try:
                snap = _parse_state(data, 0)
                account, seq, start = snap.account, snap.seq, snap.log_offset
                if snap.end != len(data) or start <= 0:
                    raise _Bad(snap.end, "unexpected data after the state")
                if head is not None and head.journal_id != snap.journal_id:
                    # Written before the journal's last compaction: its offset is another
                    # file's. The compacted journal's base is the account as of that moment.
                    log.info("%s: of the journal before its compaction; not used", self.path)
                    account, seq, start = None, 0, 0
            except _Bad as e:
                account, seq, start = None, 0, 0
                aside = self._set_aside(self.path, "corrupt")
                self._problem(
                    loaded,
                    f"{self.path}: snapshot unreadable at {e}; set aside as {aside.name}, "
                    f"rebuilding the account from {self.log_path.name}",
                )
        if head is not None:
            self.journal_id, self.compacted_size = head.journal_id, head.log_offset

        try:
            size = self.log_path.stat().st_size
        except FileNotFoundError:
            size = 0
        self._needs_base = True
        self._log_size = 0
        if account is not None and start > size:
            if size:
                aside = self._set_aside(self.log_path, "corrupt")
                self._problem(
                    loaded,
                    f"{self.log_path}: shorter ({size} bytes) than the snapshot says "
                    f"({start}); set aside as {aside.name}, the account is the snapshot's",
                )
            else:
                self._problem(
                    loaded,
                    f"{self.log_path}: missing; the account is the snapshot's, the deal history "
                    "before this start is lost",
                )
        elif size:
            # Only the tail after the snapshot: the journal is the whole deal history.
            with self.log_path.open("rb") as f:
                f.seek(start)
                journal = f.read()
            pos = 0
            try:
                if account is None:
                    base = _parse_state(journal, 0)
                    account, seq, pos = base.account, base.seq, base.end
                    if base.log_offset:  # a compacted journal: replay after its archive
                        if not base.end <= base.log_offset <= len(journal):
                            raise _Bad(base.end, f"archive end {base.log_offset} out of range")
                        pos = base.log_offset
                self._needs_base = False
                self._log_size = start + pos
                for offset, end, payload in _scan(journal, pos, start):
                    rec_seq, entries, legacy = _parse_record(payload, offset)
                    if rec_seq != seq + 1:
                        raise _Bad(offset, f"record {rec_seq} follows record {seq}")
                    _apply(account, entries, legacy)
                    seq += 1
                    loaded.replayed += 1
                    self._log_size = end
            except _Bad as e:
                if e.torn:
                    log.warning(
                        "%s: dropping an incomplete last record at %s (a write cut short)",
                        self.log_path,
                        e,
                    )
                    # Its result never left the process, but skip its tickets all the same.
                    if account is not None:
                        account.next_order += _TICKETS_PER_RECORD
                        account.next_deal += _TICKETS_PER_RECORD
                    else:
                        loaded.skip_tickets = _TICKETS_PER_RECORD
                else:
                    aside = self._set_aside(self.log_path, "corrupt")
                    self._needs_base = True
                    self._log_size = 0
                    # Every entry in the unreadable part used at most one order or deal ticket.
                    lost = (start + len(journal) - e.offset) // MIN_FILL_RECORD + 1
                    if account is not None:
                        account.next_order += lost
                        account.next_deal += lost
                    else:
                        loaded.skip_tickets = lost
                    self._problem(
                        loaded,
                        f"{self.log_path}: unreadable at {e}; set aside as {aside.name}. "
                        + (
                            "The account is restored up to that point"
                            if account is not None
                            else "Starting a fresh account"
                        )
                        + f"; skipping {lost} tickets so that none is reused",
                    )
        self.seq = seq

        if account is not None:
            mismatch = []
            if account.login != login:
                mismatch.append(f"login {account.login}, configured {login}")
            if account.currency != currency:
                mismatch.append(f"currency {account.currency}, configured {currency}")
            if account.margin_mode != margin_mode:
                mismatch.append(f"margin mode {account.margin_mode}, configured {margin_mode}")
            unknown = sorted({p.symbol for p in account.positions.values()} - symbols)
            if unknown:
                mismatch.append(f"open positions on unconfigured {', '.join(unknown)}")
            unknown = sorted({o.symbol for o in account.orders.values()} - symbols)
            if unknown:
                mismatch.append(f"working orders on unconfigured {', '.join(unknown)}")
            if mismatch:
                loaded.next_order = max(loaded.next_order, account.next_order)
                loaded.next_deal = max(loaded.next_deal, account.next_deal)
                names = [
                    self._set_aside(p, "mismatch").name
                    for p in (self.path, self.log_path)
                    if p.exists()
                ]
                self._problem(
                    loaded,
                    f"{self.path}: saved account does not match the config "
                    f"({'; '.join(mismatch)}); set aside as {', '.join(names)}, "
                    "starting a fresh account",
                )
                account = None
                self._needs_base = True
                self._log_size = 0

        markets: dict[str, MarketState] = {}
        if account is not None:
            for name, m in account.markets.items():
                markets[name] = MarketState(m.bid_pts, m.ticks, m.time_msc)
        prices = _read(self.prices_path)
        if prices:
            try:
                saved = _parse_prices(prices)
            except _Bad as e:
                log.warning("%s: ignoring unreadable prices (%s)", self.prices_path, e)
                saved = {}
            for name, m in saved.items():
                cur = markets.get(name)
                if cur is None or m.ticks > cur.ticks:
                    markets[name] = m
        loaded.markets = markets
        loaded.account = account
        return loaded

    # -- writing ----------------------------------------------------------------------------

    def begin(self, account: AccountState) -> None:
        """Start the journal with ``account`` as its base if it has none, then snapshot it."""
        if self._needs_base:
            journal_id = _new_journal_id()
            self._append(_encode_state(account, self.seq, 0, journal_id))
            self.journal_id, self.compacted_size = journal_id, 0
            self._needs_base = False
        self.snapshot(account)

    @property
    def log_size(self) -> int:
        """The journal's length: every record written so far ends before it."""
        return self._log_size

    def _append(self, data: bytes) -> None:
        written = os.write(self._log_fd, data)
        if written != len(data):
            # A partial write (disk full) must not stay in front of the next record.
            os.ftruncate(self._log_fd, self._log_size)
            raise OSError(errno.ENOSPC, "short write to the journal")
        self._log_size += written

    def _write_record(self, payload: bytes, seq: int) -> None:
        record = self._frame(len(payload), self._crc(payload)) + payload
        written = self._write(self._log_fd, record)
        if written != len(record):
            # A partial write (disk full) must not stay in front of the next record.
            os.ftruncate(self._log_fd, self._log_size)
            raise OSError(errno.ENOSPC, "short write to the journal")
        self._log_size += written
        self.seq = seq
        self.records_since_snapshot += 1

    def snapshot(self, account: AccountState) -> None:
        """Write the snapshot of ``account`` (which must include every journal record so far)."""
        data = _encode_state(account, self.seq, self._log_size, self.journal_id)
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        self.records_since_snapshot = 0

    def save_prices(self, prices: Iterable[tuple[str, int, int, int]]) -> None:
        """Overwrite the price checkpoint with ``(symbol, bid_pts, ticks, time_msc)`` entries."""
        items = list(prices)
        parts = [_PRICES.pack(_T_PRICES, len(items))]
        for name, bid_pts, ticks, t in items:
            parts.append(_PRICE.pack(bid_pts, ticks, t) + _s(name))
        os.pwrite(self._prices_fd, _frame(b"".join(parts)), 0)

    # -- compaction ---------------------------------------------------------------------------

    @property
    def compaction_due(self) -> bool:
        """The journal grew past ``compact_bytes`` and twice its size after the last compaction."""
        limit = max(self.retention.compact_bytes, 2 * self.compacted_size)
        return self._compaction is None and self._log_size > limit

    @property
    def compacting(self) -> bool:
        return self._compaction is not None

    def start_compaction(self, account: AccountState, now_msc: int) -> None:
        """Start compacting on a thread; ``account`` is the account as of the last record."""
        if self._compaction is None:
            compaction = _Compaction(self, account, now_msc)
            compaction.thread.start()
            self._compaction = compaction

    def finish_compaction(self, *, wait: bool = False) -> bool:
        """Put the compacted journal in place once its thread is done (``wait``: wait for it);
        True when it did. Raises ``OSError`` (and drops the compaction) when it failed: the
        journal is then the one it was."""
        c = self._compaction
        if c is None:
            return False
        if wait:
            c.thread.join()
        elif c.thread.is_alive():
            return False
        self._compaction = None
        end = self._log_size
        try:
            if isinstance(c.error, OSError):
                raise c.error
            if c.error is not None:
                raise OSError(errno.EIO, f"compacting failed: {c.error!r}") from c.error
            _copy(c.src, c.out, c.end, end, c.size)  # what was journaled meanwhile
            os.fsync(c.out)
            fd = os.open(self.compact_path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
            try:
                os.replace(self.compact_path, self.log_path)
            except BaseException:
                os.close(fd)
                raise
        except BaseException:
            with contextlib.suppress(OSError):
                self.compact_path.unlink()
            c.close()
            raise
        old, self._log_fd = self._log_fd, fd
        self._log_size = c.size + end - c.end
        self.journal_id, self.compacted_size = c.journal_id, c.size
        self.index = HistoryIndex()
        self.compactions += 1
        # The last close of the old file frees its blocks, and closing the new one may write
        # it out again (ext4 after a rename over a file): ~100 ms each for 70 MB here, so they
        # are closed on a thread, which then fsyncs the directory.
        threading.Thread(
            target=_after_compaction,
            args=(self.log_path, (c.src, c.out, old)),
            name="sim-state-compaction-close",
            daemon=True,
        ).start()
        log.info(
            "%s: compacted to %d bytes (was %d), %d records of history left out",
            self.log_path,
            self._log_size,
            end,
            c.dropped,
        )
        return True

    def compact(self, account: AccountState, now_msc: int) -> None:
        """A whole compaction now (``account`` as of the last record); no snapshot after it."""
        self.start_compaction(account, now_msc)
        self.finish_compaction(wait=True)

    def _drop_compaction(self) -> None:
        c, self._compaction = self._compaction, None
        if c is not None:
            c.thread.join()
            c.close()
            with contextlib.suppress(OSError):
                self.compact_path.unlink()

    def close(self) -> None:
        """Close the files and release the lock (``snapshot`` first makes the next start fast)."""
        self._drop_compaction()
        for name in ("_log_fd", "_prices_fd", "_lock_fd"):
            fd = getattr(self, name)
            if fd >= 0:
                setattr(self, name, -1)
                os.close(fd)

    @property
    def closed(self) -> bool:
        return self._log_fd < 0
