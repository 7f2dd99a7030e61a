"""Durable state of the simulated broker: the files that let its account outlive the worker.

The simulated broker plays the broker's trade server, so its account must survive a crash of
the worker process the way a real account survives a terminal crash. This module owns those
files, their format and their recovery; the broker (``mt5exec.sim.broker``) owns what the
numbers mean and calls ``StateStore.fill`` for every trade; the worker decides when to
checkpoint.

Files, for ``path`` = ``sim_state`` (the worker's default, in its instance directory):

``sim_state.log``
    The journal: a *base* (the whole account when the journal was begun), then one FILL record
    per trade, each appended with a single ``os.write`` on an ``O_APPEND`` descriptor before the
    trade's result leaves the process. Records are never rewritten, so the journal is also the
    account's deal history (``read_deals``).
``sim_state``
    The snapshot: the whole account as of journal record ``seq`` plus the journal offset right
    after that record, so that a start replays only the tail. Written to a temporary file and
    moved into place, so it is always the old or the new one, never a mix.
``sim_state.prices``
    The latest prices, overwritten in place about once a second: after a crash the price path
    continues from there even when nothing was traded for a while.
``sim_state.lock``
    ``flock``-ed by the one process that owns the files; a second one waits, then gives up.

Record framing: payload length (u32 LE), CRC-32 of the payload (u32 LE), payload; the payload's
first byte is the record type. Floats are stored as raw doubles, so a restored account is the
same to the last bit.

Recovery: a record cut short at the end of the journal (a crash in the middle of a write) is
dropped and the journal truncated before it. Anything else unreadable is corruption: an error
is logged, the file is renamed aside as ``<name>.corrupt-<UTC time>`` and the account is rebuilt
from what is still readable (a bad snapshot: the whole journal; a bad journal: the snapshot and
the journal up to the damage); ticket counters then skip every ticket the unreadable part could
have used, so no ticket is ever reused. A state that belongs to another account (login,
currency, margin mode, or positions on symbols no longer configured) is set aside the same way
as ``<name>.mismatch-<time>``. Nothing here makes a start fail except an unusable directory or a
lock held by a live process, so a bad file can never cause a crash loop.

No fsync: a killed process loses nothing, its writes are already in the OS page cache.
Surviving power loss or a kernel crash is out of scope.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import struct
import time
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, NamedTuple

from mt5exec.terminal.v1 import worker_pb2 as pb

log = logging.getLogger("mt5exec.sim.state")

FORMAT_VERSION = 1
_MAGIC = b"mt5xsim\x00"

_T_HEADER = 1
_T_MARKET = 2
_T_POSITION = 3
_T_FILL = 4
_T_PRICES = 5

_FRAME = struct.Struct("<II")  # payload length, CRC-32 of the payload
# type, magic, version, seq, log_offset, next_order, next_deal, balance, login, hedging,
# market count, position count; then the currency (short string).
_HEADER = struct.Struct("<B8sHQQQQdQBII")
# type, bid_pts, ticks, time_msc, buy_volume, buy_cost, sell_volume, sell_cost; then the symbol.
_MARKET = struct.Struct("<BqQqdddd")
# type, ticket, side, volume, price_open, time_msc, sl, tp, magic; then symbol and comment.
_POSITION = struct.Struct("<BQBddqddQ")
# type, seq, deal, order, position, request_id, magic, time_msc, deal type, entry, volume, price,
# profit, balance after; the market after (bid_pts, ticks, time_msc, buy_volume, buy_cost,
# sell_volume, sell_cost); the position after (side, volume - 0 when closed - price_open) and
# the request's sl/tp (used when the deal opens the position); then symbol and comment.
_FILL = struct.Struct("<BQQQQQQqBBddddqQqddddBdddd")
_PRICES = struct.Struct("<BH")  # type, count; then count x (_PRICE, symbol)
_PRICE = struct.Struct("<qQq")  # bid_pts, ticks, time_msc

# The smallest FILL record on disk (one-character symbol, empty comment). Bounds how many trades
# an unreadable stretch of journal can hold, hence how many tickets to skip after corruption.
MIN_FILL_RECORD = _FRAME.size + _FILL.size + 2 + 1

# No record comes near this size; a longer one running past the end of the file is garbage,
# not a write cut short.
MAX_RECORD = 4096

# Waiting for the lock covers a predecessor that was just killed and is still being reaped.
LOCK_TIMEOUT_S = 5.0


class StateError(Exception):
    """The state files cannot be used at all (directory not writable, lock held elsewhere)."""


@dataclass(slots=True)
class MarketState:
    """One symbol's saved price and exposure sums (see ``mt5exec.sim.broker._Market``)."""

    bid_pts: int
    ticks: int
    time_msc: int
    buy_volume: float = 0.0
    buy_cost: float = 0.0
    sell_volume: float = 0.0
    sell_cost: float = 0.0


@dataclass(slots=True)
class PositionState:
    ticket: int
    symbol: str
    side: int
    volume: float
    price_open: float
    time_msc: int
    sl: float
    tp: float
    magic: int
    comment: str


@dataclass(slots=True)
class AccountState:
    """Everything the broker needs to carry on where it stopped (not the deal history)."""

    login: int
    currency: str
    margin_mode: Literal["hedging", "netting"]
    balance: float
    next_order: int
    next_deal: int
    markets: dict[str, MarketState] = field(default_factory=dict)
    # In ticket order, which is the order positions were opened in.
    positions: dict[int, PositionState] = field(default_factory=dict)


@dataclass(slots=True)
class Loaded:
    """What ``StateStore.open`` recovered."""

    # None: start a fresh account (nothing saved, or the saved one was set aside).
    account: AccountState | None
    # Best known price of every saved symbol (also for a fresh account: the market lives on).
    markets: dict[str, MarketState]
    # Tickets below these may exist somewhere (also in files set aside): never issue them.
    next_order: int = 0
    next_deal: int = 0
    # For a fresh account after an unreadable journal: tickets to skip past the first ones.
    skip_tickets: int = 0
    # Journal records replayed on top of the snapshot.
    replayed: int = 0
    # Human-readable reports of what was dropped or set aside (already logged).
    problems: list[str] = field(default_factory=list)


class _Bad(Exception):
    """An unreadable record at ``offset``; ``torn`` when it is only an interrupted last write."""

    def __init__(self, offset: int, reason: str, *, torn: bool = False) -> None:
        super().__init__(f"byte {offset}: {reason}")
        self.offset = offset
        self.reason = reason
        self.torn = torn


# -- encoding ------------------------------------------------------------------------------------


def _frame(payload: bytes) -> bytes:
    return _FRAME.pack(len(payload), zlib.crc32(payload)) + payload


def _s(text: str) -> bytes:
    raw = text.encode()
    if len(raw) > 255:
        raise ValueError(f"string too long for the state file: {text[:40]!r}...")
    return bytes((len(raw),)) + raw


def _encode_state(account: AccountState, seq: int, log_offset: int) -> bytes:
    parts = [
        _frame(
            _HEADER.pack(
                _T_HEADER,
                _MAGIC,
                FORMAT_VERSION,
                seq,
                log_offset,
                account.next_order,
                account.next_deal,
                account.balance,
                account.login,
                account.margin_mode == "hedging",
                len(account.markets),
                len(account.positions),
            )
            + _s(account.currency)
        )
    ]
    for name, m in account.markets.items():
        parts.append(
            _frame(
                _MARKET.pack(
                    _T_MARKET,
                    m.bid_pts,
                    m.ticks,
                    m.time_msc,
                    m.buy_volume,
                    m.buy_cost,
                    m.sell_volume,
                    m.sell_cost,
                )
                + _s(name)
            )
        )
    for p in account.positions.values():
        parts.append(
            _frame(
                _POSITION.pack(
                    _T_POSITION,
                    p.ticket,
                    p.side,
                    p.volume,
                    p.price_open,
                    p.time_msc,
                    p.sl,
                    p.tp,
                    p.magic,
                )
                + _s(p.symbol)
                + _s(p.comment)
            )
        )
    return b"".join(parts)


# -- decoding ------------------------------------------------------------------------------------


def _scan(data: bytes, pos: int, base: int = 0) -> Iterator[tuple[int, int, bytes]]:
    """``(offset, end, payload)`` of each record from ``pos``; raises ``_Bad`` at the first bad one.

    ``data`` is the file from offset ``base`` on; offsets given out are the file's. A bad record
    is *torn* when it is the last thing in the file: it runs past the end, or it ends exactly
    at the end, or only zero bytes follow it (space allocated, data never written).
    """
    n = len(data)
    view = memoryview(data)
    while pos < n:
        if n - pos < _FRAME.size:
            raise _Bad(base + pos, "incomplete record header", torn=True)
        size, crc = _FRAME.unpack_from(data, pos)
        end = pos + _FRAME.size + size
        if size > MAX_RECORD:
            raise _Bad(base + pos, f"impossible record size {size}")
        if end > n:
            raise _Bad(
                base + pos, f"record of {size} bytes runs past the end of the file", torn=True
            )
        payload = view[pos + _FRAME.size : end]
        if size == 0 or zlib.crc32(payload) != crc:
            tail_is_zero = data.count(0, pos) == n - pos
            raise _Bad(base + pos, "checksum mismatch", torn=end == n or tail_is_zero)
        yield base + pos, base + end, bytes(payload)
        pos = end


def _str(payload: bytes, off: int) -> tuple[str, int]:
    if off >= len(payload):
        raise ValueError("string past the end of the record")
    end = off + 1 + payload[off]
    if end > len(payload):
        raise ValueError("string past the end of the record")
    return payload[off + 1 : end].decode(), end


def _parse_state(data: bytes, pos: int) -> tuple[AccountState, int, int, int]:
    """A HEADER with its MARKET and POSITION records at ``pos``: ``(account, seq, offset, end)``.

    ``offset`` is the header's journal offset (meaningful in a snapshot), ``end`` where the
    state's records end in ``data``.
    """
    records = _scan(data, pos)
    offset, end, payload = next(records, (pos, pos, b""))
    if not payload:
        raise _Bad(pos, "no header", torn=True)
    try:
        if payload[0] != _T_HEADER:
            raise ValueError(f"expected a header record, found type {payload[0]}")
        (
            _,
            magic,
            version,
            seq,
            log_offset,
            next_order,
            next_deal,
            balance,
            login,
            hedging,
            n_markets,
            n_positions,
        ) = _HEADER.unpack_from(payload)
        if magic != _MAGIC:
            raise ValueError("not a sim state file")
        if version != FORMAT_VERSION:
            raise ValueError(f"format version {version}, this build reads {FORMAT_VERSION}")
        currency, _ = _str(payload, _HEADER.size)
    except (ValueError, struct.error) as e:
        raise _Bad(offset, str(e)) from e
    account = AccountState(
        login, currency, "hedging" if hedging else "netting", balance, next_order, next_deal
    )
    for i in range(n_markets + n_positions):
        offset, end, payload = next(records, (end, end, b""))
        if not payload:
            raise _Bad(end, f"state ends after {i} of {n_markets + n_positions} records", torn=True)
        try:
            if i < n_markets:
                if payload[0] != _T_MARKET:
                    raise ValueError(f"expected a market record, found type {payload[0]}")
                _, bid_pts, ticks, t, bv, bc, sv, sc = _MARKET.unpack_from(payload)
                name, _ = _str(payload, _MARKET.size)
                account.markets[name] = MarketState(bid_pts, ticks, t, bv, bc, sv, sc)
            else:
                if payload[0] != _T_POSITION:
                    raise ValueError(f"expected a position record, found type {payload[0]}")
                _, ticket, side, volume, price_open, t, sl, tp, magic = _POSITION.unpack_from(
                    payload
                )
                name, off = _str(payload, _POSITION.size)
                comment, _ = _str(payload, off)
                account.positions[ticket] = PositionState(
                    ticket, name, side, volume, price_open, t, sl, tp, magic, comment
                )
        except (ValueError, struct.error) as e:
            raise _Bad(offset, str(e)) from e
    return account, seq, log_offset, end


class _Fill(NamedTuple):
    """The fixed part of a FILL record, in ``_FILL`` order."""

    kind: int
    seq: int
    deal: int
    order: int
    position: int
    request_id: int
    magic: int
    time_msc: int
    deal_type: int
    entry: int
    volume: float
    price: float
    profit: float
    balance: float
    bid_pts: int
    ticks: int
    market_time: int
    buy_volume: float
    buy_cost: float
    sell_volume: float
    sell_cost: float
    side: int
    position_volume: float
    price_open: float
    sl: float
    tp: float


def _parse_fill(payload: bytes, offset: int) -> tuple[_Fill, str, str]:
    try:
        if payload[0] != _T_FILL:
            raise ValueError(f"expected a trade record, found type {payload[0]}")
        fill = _Fill._make(_FILL.unpack_from(payload))
        symbol, off = _str(payload, _FILL.size)
        comment, _ = _str(payload, off)
    except (ValueError, struct.error) as e:
        raise _Bad(offset, str(e)) from e
    return fill, symbol, comment


def _apply_fill(account: AccountState, f: _Fill, symbol: str, comment: str) -> None:
    """Replay one trade: the record holds the state *after* it, so this only assigns."""
    account.balance = f.balance
    account.next_order = max(account.next_order, f.order + 1)
    account.next_deal = max(account.next_deal, f.deal + 1)
    m = account.markets.get(symbol)
    if m is None:
        m = account.markets[symbol] = MarketState(f.bid_pts, f.ticks, f.market_time)
    elif f.ticks >= m.ticks:
        m.bid_pts, m.ticks, m.time_msc = f.bid_pts, f.ticks, f.market_time
    m.buy_volume, m.buy_cost = f.buy_volume, f.buy_cost
    m.sell_volume, m.sell_cost = f.sell_volume, f.sell_cost
    if f.position_volume == 0.0:
        account.positions.pop(f.position, None)
        return
    p = account.positions.get(f.position)
    if p is None:
        account.positions[f.position] = PositionState(
            f.position,
            symbol,
            f.side,
            f.position_volume,
            f.price_open,
            f.time_msc,
            f.sl,
            f.tp,
            f.magic,
            comment,
        )
    else:
        p.side, p.volume, p.price_open = f.side, f.position_volume, f.price_open


def _parse_prices(data: bytes) -> dict[str, MarketState]:
    for offset, _, payload in _scan(data, 0):
        try:
            kind, count = _PRICES.unpack_from(payload)
            if kind != _T_PRICES:
                raise ValueError(f"expected a prices record, found type {kind}")
            out: dict[str, MarketState] = {}
            off = _PRICES.size
            for _ in range(count):
                bid_pts, ticks, t = _PRICE.unpack_from(payload, off)
                name, off = _str(payload, off + _PRICE.size)
                out[name] = MarketState(bid_pts, ticks, t)
        except (ValueError, struct.error) as e:
            raise _Bad(offset, str(e)) from e
        return out  # only the first record counts; bytes after it are left from longer ones
    return {}


def read_deals(path: str | os.PathLike[str]) -> list[pb.DealReport]:
    """The deal history kept in ``<path>.log``, oldest first, up to the first unreadable record."""
    try:
        data = Path(f"{os.fspath(path)}.log").read_bytes()
    except FileNotFoundError:
        return []
    deals: list[pb.DealReport] = []
    try:
        for offset, _, payload in _scan(data, 0):
            if payload[0] != _T_FILL:
                continue
            f, symbol, comment = _parse_fill(payload, offset)
            deals.append(
                pb.DealReport(
                    ticket=f.deal,
                    order=f.order,
                    position_id=f.position,
                    request_id=f.request_id,
                    magic=f.magic,
                    time_msc=f.time_msc,
                    type=f.deal_type,
                    entry=f.entry,
                    volume=f.volume,
                    price=f.price,
                    profit=f.profit,
                    symbol=symbol,
                    comment=comment,
                )
            )
    except _Bad:
        pass
    return deals


# -- the store -----------------------------------------------------------------------------------


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


class StateStore:
    """The open state files of one simulated account; see the module docstring."""

    def __init__(self, path: Path) -> None:
        """Use ``StateStore.open``; this only names the files."""
        self.path = path
        self.log_path = path.with_name(path.name + ".log")
        self.prices_path = path.with_name(path.name + ".prices")
        self.lock_path = path.with_name(path.name + ".lock")
        # Number of the last journal record; snapshots say which record they include.
        self.seq = 0
        self.records_since_snapshot = 0
        self._lock_fd = -1
        self._log_fd = -1
        self._prices_fd = -1
        self._log_size = 0
        self._needs_base = True
        self._symbols: dict[str, bytes] = {}
        self._write = os.write
        self._pack = _FILL.pack
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
    ) -> tuple[StateStore, Loaded]:
        """Lock and read the state at ``path``, repairing or setting aside what is damaged.

        Raises ``StateError`` only when the files cannot be used at all. Call ``begin`` with the
        broker's account next: it starts the journal if needed and writes a fresh snapshot.
        """
        store = cls(Path(path))
        try:
            store._lock(lock_timeout)
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
        if data is not None:
            try:
                account, seq, start, end = _parse_state(data, 0)
                if end != len(data) or start <= 0:
                    raise _Bad(end, "unexpected data after the state")
            except _Bad as e:
                account, seq, start = None, 0, 0
                aside = self._set_aside(self.path, "corrupt")
                self._problem(
                    loaded,
                    f"{self.path}: snapshot unreadable at {e}; set aside as {aside.name}, "
                    f"rebuilding the account from {self.log_path.name}",
                )

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
                    account, seq, _, pos = _parse_state(journal, 0)
                self._needs_base = False
                self._log_size = start + pos
                for offset, end, payload in _scan(journal, pos, start):
                    fill, symbol, comment = _parse_fill(payload, offset)
                    if fill.seq != seq + 1:
                        raise _Bad(offset, f"record {fill.seq} follows record {seq}")
                    _apply_fill(account, fill, symbol, comment)
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
                        account.next_order += 1
                        account.next_deal += 1
                    else:
                        loaded.skip_tickets = 1
                else:
                    aside = self._set_aside(self.log_path, "corrupt")
                    self._needs_base = True
                    self._log_size = 0
                    # Every trade in the unreadable part used one order and one deal ticket.
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
            self._append(_encode_state(account, self.seq, 0))
            self._needs_base = False
        self.snapshot(account)

    def _append(self, data: bytes) -> None:
        written = os.write(self._log_fd, data)
        if written != len(data):
            # A partial write (disk full) must not stay in front of the next record.
            os.ftruncate(self._log_fd, self._log_size)
            raise OSError(errno.ENOSPC, "short write to the journal")
        self._log_size += written

    def fill(
        self,
        symbol: str,
        deal: int,
        order: int,
        position: int,
        request_id: int,
        magic: int,
        time_msc: int,
        deal_type: int,
        entry: int,
        volume: float,
        price: float,
        profit: float,
        balance: float,
        bid_pts: int,
        ticks: int,
        market_time: int,
        buy_volume: float,
        buy_cost: float,
        sell_volume: float,
        sell_cost: float,
        side: int,
        position_volume: float,
        price_open: float,
        sl: float,
        tp: float,
        comment: str,
    ) -> None:
        """Append one trade to the journal: durable against a crash once this returns.

        Raises ``OSError`` when the record could not be written; the journal is then left as it
        was and the broker must not apply the trade.
        """
        seq = self.seq + 1
        name = self._symbols.get(symbol)
        if name is None:
            name = self._symbols[symbol] = _s(symbol)
        raw = comment.encode()
        payload = (
            self._pack(
                _T_FILL,
                seq,
                deal,
                order,
                position,
                request_id,
                magic,
                time_msc,
                deal_type,
                entry,
                volume,
                price,
                profit,
                balance,
                bid_pts,
                ticks,
                market_time,
                buy_volume,
                buy_cost,
                sell_volume,
                sell_cost,
                side,
                position_volume,
                price_open,
                sl,
                tp,
            )
            + name
            + bytes((len(raw),))
            + raw
        )
        record = self._frame(len(payload), self._crc(payload)) + payload
        written = self._write(self._log_fd, record)
        if written != len(record):
            os.ftruncate(self._log_fd, self._log_size)
            raise OSError(errno.ENOSPC, "short write to the journal")
        self._log_size += written
        self.seq = seq
        self.records_since_snapshot += 1

    def snapshot(self, account: AccountState) -> None:
        """Write the snapshot of ``account`` (which must include every journal record so far)."""
        data = _encode_state(account, self.seq, self._log_size)
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

    def close(self) -> None:
        """Close the files and release the lock (``snapshot`` first makes the next start fast)."""
        for name in ("_log_fd", "_prices_fd", "_lock_fd"):
            fd = getattr(self, name)
            if fd >= 0:
                setattr(self, name, -1)
                os.close(fd)

    @property
    def closed(self) -> bool:
        return self._log_fd < 0
