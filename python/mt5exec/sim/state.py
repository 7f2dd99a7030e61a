"""Durable state of the simulated broker: the files that let its account outlive the worker.

The simulated broker plays the broker's trade server, so its account must survive a crash of
the worker process the way a real account survives a terminal crash. This module owns those
files, their format and their recovery; the broker (``mt5exec.sim.broker``) owns what the
numbers mean and calls ``StateStore.fill`` for every trade; the worker decides when to
checkpoint.

Files, for ``path`` = ``sim_state`` (the worker's default, in its instance directory):

``sim_state.log``
    The journal: a *base* (the whole account when the journal was begun), then one TX record per
    account change, each appended with a single ``os.write`` on an ``O_APPEND`` descriptor
    before anything about the change leaves the process. A TX holds the entries of one atomic
    change: DEAL (a fill, with the position, balance and exposure after it), ORDER (an order's
    whole state after a change: placed, modified, triggered, part filled, filled, cancelled,
    expired, rejected) and SLTP (a position's new stops). A triggered fill is one TX with its
    DEAL and its ORDER, so a crash can never keep one without the other. The journal is also
    the account's order and deal history (``read_history``, ``read_deals``), which is what
    reconciliation searches; compaction (below) bounds it.
``sim_state``
    The snapshot: the whole account (open positions and working orders included) as of journal
    record ``seq`` plus the journal offset right after that record, so that a start replays only
    the tail. Written to a temporary file and moved into place, so it is always the old or the
    new one, never a mix.
``sim_state.prices``
    The latest prices, overwritten in place about once a second: after a crash the price path
    continues from there even when nothing was traded for a while.
``sim_state.lock``
    ``flock``-ed by the one process that owns the files; a second one waits, then gives up.

Compaction: once the journal has grown past ``Retention.compact_bytes`` and twice its size
after the last compaction, it is written anew as ``sim_state.log.compact`` and renamed over
the journal: a new base (the whole account now, at record ``N``), then the *archive*, the
records up to ``N`` still kept as history (those from the first one that is neither older
than ``Retention.keep_s`` before the newest nor of an order ticket more than
``Retention.keep_orders`` behind the next one; the engine forgets final orders past the same
bounds, and the orders it asks about are its latest), then the records after ``N``. The base's
journal offset field says where the archive ends; a start replays from there, history reads
the archive too. Each journal has a random id in its base, and a snapshot names the journal
its offset belongs to, so a snapshot of the journal before a compaction is ignored (the start
replays from the new base). The new file is fsynced before the rename and the directory
after it; a ``.compact`` file left by a crash is removed at the next start. The copying runs on
a thread; the broker's thread only appends what was journaled meanwhile and renames.

Record framing: payload length (u32 LE), CRC-32 of the payload (u32 LE), payload; the payload's
first byte is the record type. Floats are stored as raw doubles, so a restored account is the
same to the last bit. Formats 1 (before pending orders: FILL records, no orders in the base)
and 2 (no journal id) are still read; what is written is format 3.

Recovery: a record cut short at the end of the journal (a crash in the middle of a write) is
dropped and the journal truncated before it. Anything else unreadable is corruption: an error
is logged, the file is renamed aside as ``<name>.corrupt-<UTC time>`` and the account is rebuilt
from what is still readable (a bad snapshot: the whole journal; a bad journal: the snapshot and
the journal up to the damage); ticket counters then skip every ticket the unreadable part could
have used, so no ticket is ever reused. A state that belongs to another account (login,
currency, margin mode, or positions on symbols no longer configured) is set aside the same way
as ``<name>.mismatch-<time>``. Nothing here makes a start fail except an unusable directory or a
lock held by a live process, so a bad file can never cause a crash loop.

No fsync of records: a killed process loses nothing, its writes are already in the OS page
cache. Surviving power loss or a kernel crash is out of scope, except that a compaction never
replaces the journal with a file whose data is not on disk yet.
"""

from __future__ import annotations

import abc
import bisect
import collections
import contextlib
import errno
import fcntl
import logging
import mmap
import os
import struct
import threading
import time
import zlib
from collections.abc import Collection, Generator, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple

from mt5exec.terminal.v1 import worker_pb2 as pb

log = logging.getLogger("mt5exec.sim.state")

FORMAT_VERSION = 3
_READABLE_VERSIONS = (1, 2, 3)
_MAGIC = b"mt5xsim\x00"

# Record types; entry kinds inside a TX share the numbering, so an ORDER record of a snapshot is
# exactly an ORDER entry.
_T_HEADER = 1
_T_MARKET = 2
_T_POSITION = 3
_T_FILL = 4  # format 1 only
_T_PRICES = 5
_T_TX = 6
_T_ORDER = 7
_E_DEAL = 8
_E_SLTP = 9

_FRAME = struct.Struct("<II")  # payload length, CRC-32 of the payload
# type, magic, version: the start of every header.
_HEADER_START = struct.Struct("<B8sH")
# type, magic, version, seq, log_offset, next_order, next_deal, balance, login, hedging,
# market count, position count[, order count: format 2][, journal id: format 3]; then the
# currency (short string). log_offset: in a snapshot, where the journal goes on after record
# seq; in a journal's base, where its archive ends (0: none). The journal id is the id of the
# journal: in a snapshot, of the journal log_offset belongs to.
_HEADER_V1 = struct.Struct("<B8sHQQQQdQBII")
_HEADER_V2 = struct.Struct("<B8sHQQQQdQBIII")
_HEADER = struct.Struct("<B8sHQQQQdQBIIIQ")
# type, bid_pts, ticks, time_msc, buy_volume, buy_cost, sell_volume, sell_cost; then the symbol.
_MARKET = struct.Struct("<BqQqdddd")
# type, ticket, side, volume, price_open, time_msc, sl, tp, magic; then symbol and comment.
_POSITION = struct.Struct("<BQBddqddQ")
# Format 1 trade record: type, seq, deal, order, position, request_id, magic, time_msc, deal
# type, entry, volume, price, profit, balance after; the market after (bid_pts, ticks,
# time_msc, buy_volume, buy_cost, sell_volume, sell_cost); the position after (side, volume - 0
# when closed - price_open) and the request's sl/tp; then symbol and comment.
_FILL = struct.Struct("<BQQQQQQqBBddddqQqddddBdddd")
_PRICES = struct.Struct("<BH")  # type, count; then count x (_PRICE, symbol)
_PRICE = struct.Struct("<qQq")  # bid_pts, ticks, time_msc
# type, seq; then the entries.
_TX = struct.Struct("<BQ")
# kind, deal, order, position, request_id, magic, time_msc, deal type, entry, reason, volume,
# price, profit, balance after; the market after (bid_pts, ticks, time_msc, buy_volume,
# buy_cost, sell_volume, sell_cost); the position after (side, volume - 0 when closed -,
# price_open, sl, tp); then symbol and comment.
_DEAL = struct.Struct("<BQQQQQqBBBddddqQqddddBdddd")
# A TX holding one DEAL, packed in one go (the market-order path).
_TX_DEAL = struct.Struct("<BQ" + _DEAL.format[1:])
# kind, ticket, type, state, type_filling, type_time, reason, volume_initial, volume_current,
# price_open, price_stoplimit, sl, tp, price_current, time_expiration (s), magic,
# time_setup_msc, time_done_msc, position_id, position_by_id; then symbol and comment.
_ORDER = struct.Struct("<BQBBBBBdddddddqQqqQQ")
# kind, position ticket, sl, tp.
_SLTP = struct.Struct("<BQdd")

# ORDER_STATE_PLACED and ORDER_STATE_PARTIAL: the states of a working order.
_ACTIVE = (1, 3)
# ORDER_STATE_FILLED, for the orders history makes up from their deals.
_FILLED = 4

# The fewest journal bytes that can use up one order or deal ticket (an entry with a
# one-character symbol and no comment). Bounds how many tickets an unreadable stretch of journal
# can hold, hence how many to skip after corruption.
MIN_FILL_RECORD = min(_DEAL.size, _ORDER.size) + 2 + 1
# A torn last record took at most this many tickets of each kind (a close-by: two deals).
_TICKETS_PER_RECORD = 2

# History searches keep the offset of every this many records (see HistoryIndex).
_INDEX_EVERY = 256
# Comments shorter than this (in bytes) are searched record by record: a one- or two-byte
# needle turns up all over the binary fields.
_MIN_NEEDLE = 3

# What the record readers take: bytes, or a read-only mapping of the journal.
Buffer = bytes | mmap.mmap

# No record comes near this size; a longer one running past the end of the file is garbage,
# not a write cut short.
MAX_RECORD = 4096

# Waiting for the lock covers a predecessor that was just killed and is still being reaped.
LOCK_TIMEOUT_S = 5.0

# A compaction's thread lets the broker's thread run after walking this many records.
_WALK_CHUNK = 4096


@dataclass(frozen=True, slots=True)
class Retention:
    """How much history a compaction keeps, and when the journal is compacted (see the
    module docstring). The server sets ``keep_s`` and ``keep_orders`` to the engine's
    ``engine.final_order_retention_s`` and ``engine.max_orders_per_instance`` (the worker
    config's ``retention_s`` and ``retention_orders``); the defaults are the engine's defaults."""

    keep_s: float = 86_400.0
    keep_orders: int = 100_000
    compact_bytes: int = 64 << 20


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
class OrderState:
    """An order as the journal records it (the fields of ``OrderInfo``, same meanings)."""

    ticket: int
    symbol: str
    type: int
    state: int
    type_filling: int
    type_time: int
    reason: int
    volume_initial: float
    volume_current: float
    price_open: float
    price_stoplimit: float
    sl: float
    tp: float
    price_current: float
    # Seconds since the epoch; for DAY and SPECIFIED_DAY orders the moment they expire.
    time_expiration: int
    magic: int
    time_setup_msc: int
    time_done_msc: int
    position_id: int
    position_by_id: int
    comment: str

    def to_proto(self) -> pb.OrderInfo:
        return pb.OrderInfo(
            ticket=self.ticket,
            symbol=self.symbol,
            type=self.type,
            state=self.state,
            volume_initial=self.volume_initial,
            volume_current=self.volume_current,
            price_open=self.price_open,
            price_stoplimit=self.price_stoplimit,
            sl=self.sl,
            tp=self.tp,
            price_current=self.price_current,
            type_time=self.type_time,
            time_expiration=self.time_expiration,
            type_filling=self.type_filling,
            magic=self.magic,
            comment=self.comment,
            time_setup_msc=self.time_setup_msc,
            time_done_msc=self.time_done_msc,
            position_id=self.position_id,
        )


@dataclass(slots=True)
class AccountState:
    """Everything the broker needs to carry on where it stopped (not the history)."""

    login: int
    currency: str
    margin_mode: Literal["hedging", "netting"]
    balance: float
    next_order: int
    next_deal: int
    markets: dict[str, MarketState] = field(default_factory=dict)
    # In ticket order, which is the order positions were opened in.
    positions: dict[int, PositionState] = field(default_factory=dict)
    # Working orders (PLACED or PARTIAL), in ticket order.
    orders: dict[int, OrderState] = field(default_factory=dict)


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


def _encode_state(account: AccountState, seq: int, log_offset: int, journal_id: int) -> bytes:
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
                len(account.orders),
                journal_id,
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
    for o in account.orders.values():
        parts.append(_frame(encode_order(o)))
    return b"".join(parts)


def encode_order(o: OrderState) -> bytes:
    """The ORDER entry of ``o`` (also the ORDER record of a snapshot)."""
    return (
        _ORDER.pack(
            _T_ORDER,
            o.ticket,
            o.type,
            o.state,
            o.type_filling,
            o.type_time,
            o.reason,
            o.volume_initial,
            o.volume_current,
            o.price_open,
            o.price_stoplimit,
            o.sl,
            o.tp,
            o.price_current,
            o.time_expiration,
            o.magic,
            o.time_setup_msc,
            o.time_done_msc,
            o.position_id,
            o.position_by_id,
        )
        + _s(o.symbol)
        + _s(o.comment)
    )


def encode_sltp(ticket: int, sl: float, tp: float) -> bytes:
    """The SLTP entry: position ``ticket`` has these stops from now on."""
    return _SLTP.pack(_E_SLTP, ticket, sl, tp)


def encode_deal(
    symbol: str,
    deal: int,
    order: int,
    position: int,
    request_id: int,
    magic: int,
    time_msc: int,
    deal_type: int,
    entry: int,
    reason: int,
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
) -> bytes:
    """The DEAL entry of one fill; the arguments after ``balance`` are the state after it."""
    return (
        _DEAL.pack(
            _E_DEAL,
            deal,
            order,
            position,
            request_id,
            magic,
            time_msc,
            deal_type,
            entry,
            reason,
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
        + _s(symbol)
        + _s(comment)
    )


# -- decoding ------------------------------------------------------------------------------------


def _scan(data: Buffer, pos: int, base: int = 0) -> Iterator[tuple[int, int, bytes]]:
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
            tail_is_zero = bytes(view[pos:]).count(0) == n - pos
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


def _parse_order(payload: bytes, off: int) -> tuple[OrderState, int]:
    """The ORDER entry at ``off``: ``(order, end)``."""
    (
        _,
        ticket,
        otype,
        state,
        filling,
        type_time,
        reason,
        vol_initial,
        vol_current,
        price_open,
        price_stoplimit,
        sl,
        tp,
        price_current,
        expiration,
        magic,
        setup,
        done,
        position_id,
        position_by,
    ) = _ORDER.unpack_from(payload, off)
    name, off = _str(payload, off + _ORDER.size)
    comment, off = _str(payload, off)
    order = OrderState(
        ticket,
        name,
        otype,
        state,
        filling,
        type_time,
        reason,
        vol_initial,
        vol_current,
        price_open,
        price_stoplimit,
        sl,
        tp,
        price_current,
        expiration,
        magic,
        setup,
        done,
        position_id,
        position_by,
        comment,
    )
    return order, off


class _State(NamedTuple):
    account: AccountState
    seq: int
    # The header's journal offset: in a snapshot where the journal goes on after ``seq``, in a
    # journal's base where its archive ends (0: none).
    log_offset: int
    journal_id: int
    # Where the state's records end in the data.
    end: int


def _parse_state(data: Buffer, pos: int, *, header_only: bool = False) -> _State:
    """A HEADER with its MARKET, POSITION and ORDER records at ``pos`` (``header_only``: the
    HEADER alone, with an account of no markets, positions or orders)."""
    records = _scan(data, pos)
    offset, end, payload = next(records, (pos, pos, b""))
    if not payload:
        raise _Bad(pos, "no header", torn=True)
    try:
        if payload[0] != _T_HEADER:
            raise ValueError(f"expected a header record, found type {payload[0]}")
        _, magic, version = _HEADER_START.unpack_from(payload)
        if magic != _MAGIC:
            raise ValueError("not a sim state file")
        if version not in _READABLE_VERSIONS:
            raise ValueError(f"format version {version}, this build reads {FORMAT_VERSION}")
        header = (_HEADER_V1, _HEADER_V2, _HEADER)[version - 1]
        fields = header.unpack_from(payload)
        seq, log_offset, next_order, next_deal, balance, login, hedging = fields[3:10]
        n_markets, n_positions = fields[10:12]
        n_orders = fields[12] if version >= 2 else 0
        journal_id = fields[13] if version >= 3 else 0
        currency, _ = _str(payload, header.size)
    except (ValueError, struct.error) as e:
        raise _Bad(offset, str(e)) from e
    account = AccountState(
        login, currency, "hedging" if hedging else "netting", balance, next_order, next_deal
    )
    total = 0 if header_only else n_markets + n_positions + n_orders
    for i in range(total):
        offset, end, payload = next(records, (end, end, b""))
        if not payload:
            raise _Bad(end, f"state ends after {i} of {total} records", torn=True)
        try:
            if i < n_markets:
                if payload[0] != _T_MARKET:
                    raise ValueError(f"expected a market record, found type {payload[0]}")
                _, bid_pts, ticks, t, bv, bc, sv, sc = _MARKET.unpack_from(payload)
                name, _ = _str(payload, _MARKET.size)
                account.markets[name] = MarketState(bid_pts, ticks, t, bv, bc, sv, sc)
            elif i < n_markets + n_positions:
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
            else:
                if payload[0] != _T_ORDER:
                    raise ValueError(f"expected an order record, found type {payload[0]}")
                order, _ = _parse_order(payload, 0)
                account.orders[order.ticket] = order
        except (ValueError, struct.error) as e:
            raise _Bad(offset, str(e)) from e
    return _State(account, seq, log_offset, journal_id, end)


class _Deal(NamedTuple):
    """The fixed part of a DEAL entry, in ``_DEAL`` order (format 1 FILLs are converted)."""

    kind: int
    deal: int
    order: int
    position: int
    request_id: int
    magic: int
    time_msc: int
    deal_type: int
    entry: int
    reason: int
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


class _Sltp(NamedTuple):
    ticket: int
    sl: float
    tp: float


# One parsed TX entry: a deal with its symbol and comment, an order, or new position stops.
_Entry = tuple[_Deal, str, str] | OrderState | _Sltp


def _parse_record(payload: bytes, offset: int) -> tuple[int, list[_Entry], bool]:
    """A journal record after the base: ``(seq, entries, legacy)``.

    ``legacy``: a format 1 FILL, whose sl/tp are the request's, not the position's after.
    """
    try:
        kind = payload[0]
        entries: list[_Entry] = []
        if kind == _T_FILL:
            f = _FILL.unpack_from(payload)
            symbol, off = _str(payload, _FILL.size)
            comment, _ = _str(payload, off)
            # Same fields as a DEAL minus reason; the seq goes out separately.
            deal = _Deal._make((_E_DEAL, *f[2:10], 0, *f[10:]))
            return f[1], [(deal, symbol, comment)], True
        if kind != _T_TX:
            raise ValueError(f"expected a trade record, found type {kind}")
        _, seq = _TX.unpack_from(payload)
        off = _TX.size
        n = len(payload)
        while off < n:
            entry = payload[off]
            if entry == _E_DEAL:
                d = _Deal._make(_DEAL.unpack_from(payload, off))
                symbol, off = _str(payload, off + _DEAL.size)
                comment, off = _str(payload, off)
                entries.append((d, symbol, comment))
            elif entry == _T_ORDER:
                order, off = _parse_order(payload, off)
                entries.append(order)
            elif entry == _E_SLTP:
                _, ticket, sl, tp = _SLTP.unpack_from(payload, off)
                entries.append(_Sltp(ticket, sl, tp))
                off += _SLTP.size
            else:
                raise ValueError(f"unknown entry kind {entry}")
        if not entries:
            raise ValueError("empty transaction")
    except (ValueError, struct.error, IndexError) as e:
        raise _Bad(offset, str(e)) from e
    return seq, entries, False


def _apply(account: AccountState, entries: list[_Entry], legacy: bool) -> None:
    """Replay one record: entries hold the state *after* the change, so this only assigns."""
    for e in entries:
        if isinstance(e, OrderState):
            account.next_order = max(account.next_order, e.ticket + 1)
            if e.state in _ACTIVE:
                account.orders[e.ticket] = e
            else:
                account.orders.pop(e.ticket, None)
        elif isinstance(e, _Sltp):
            p = account.positions.get(e.ticket)
            if p is not None:
                p.sl, p.tp = e.sl, e.tp
        else:
            _apply_deal(account, *e, legacy)


def _apply_deal(account: AccountState, f: _Deal, symbol: str, comment: str, legacy: bool) -> None:
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
        if not legacy:
            p.sl, p.tp = f.sl, f.tp


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


# -- history -------------------------------------------------------------------------------------


def _deal_report(d: _Deal, symbol: str, comment: str) -> pb.DealReport:
    return pb.DealReport(
        ticket=d.deal,
        order=d.order,
        position_id=d.position,
        symbol=symbol,
        type=d.deal_type,
        entry=d.entry,
        volume=d.volume,
        price=d.price,
        profit=d.profit,
        magic=d.magic,
        comment=comment,
        time_msc=d.time_msc,
        request_id=d.request_id,
        reason=d.reason,
    )


def _records(data: Buffer, pos: int) -> Generator[tuple[int, bytes]]:
    """``(offset, payload)`` of the journal's records from ``pos``, up to the first bad one."""
    try:
        for offset, _, payload in _scan(data, pos):
            yield offset, payload
    except _Bad:
        return


def _needles(comments: Collection[str]) -> list[bytes] | None:
    """How each comment looks inside a record (length byte, then the text); None when some
    needle is too short to be told from the binary fields around it (then read everything)."""
    out = []
    for c in comments:
        raw = c.encode()
        if len(raw) < _MIN_NEEDLE or len(raw) > 255:
            return None
        out.append(bytes((len(raw),)) + raw)
    return out


class HistoryIndex:
    """Where every ``_INDEX_EVERY``-th record of a journal starts, so that a search can jump
    close to a match instead of walking every record before it. Extended on each use, by
    walking only the records appended since the last one."""

    def __init__(self) -> None:
        self.offsets: list[int] = []
        self._end = 0
        self._count = 0

    def extend(self, data: Buffer, start: int, limit: int = -1) -> bool:
        """Walks the records appended since the last call (at most ``limit`` of them, if not
        negative); True when it stopped at the limit, not at the end of ``data``."""
        if not self.offsets or self.offsets[0] != start:
            self.offsets, self._end, self._count = [], start, 0
        pos, count, n = self._end, self._count, len(data)
        unpack = _FRAME.unpack_from
        offsets = self.offsets
        while n - pos >= _FRAME.size and limit:
            end = pos + _FRAME.size + unpack(data, pos)[0]
            if end > n:
                break
            if not count % _INDEX_EVERY:
                offsets.append(pos)
            count += 1
            pos = end
            limit -= 1
        self._end, self._count = pos, count
        return not limit

    def candidates(
        self, data: Buffer, start: int, needles: list[bytes]
    ) -> Generator[tuple[int, bytes]]:
        """``(offset, payload)`` of the records from ``start`` holding one of ``needles``."""
        self.extend(data, start)
        find = data.find
        hits: set[int] = set()
        for needle in needles:
            at = find(needle, start)
            while at >= 0:
                hits.add(at)
                at = find(needle, at + 1)
        offsets = self.offsets
        unpack = _FRAME.unpack_from
        view = memoryview(data)
        pos = start
        for hit in sorted(hits):
            if hit < pos:
                continue  # inside the record given out last
            pos = max(pos, offsets[bisect.bisect_right(offsets, hit) - 1])
            while True:
                size, crc = unpack(data, pos)
                end = pos + _FRAME.size + size
                if end > hit:
                    break
                pos = end
            payload = view[pos + _FRAME.size : end]
            if zlib.crc32(payload) != crc:
                return  # history stops at the first unreadable record, as everywhere
            yield pos, bytes(payload)
            pos = end


def _take_base(
    orders: dict[int, OrderState], made_up: dict[int, OrderState], base: Iterable[OrderState]
) -> None:
    for o in base:
        orders[o.ticket] = o
        made_up.pop(o.ticket, None)


def history(
    payloads: Iterable[tuple[int, bytes]],
    comments: Collection[str] | None = None,
    from_time_msc: int = 0,
    base_orders: Iterable[OrderState] = (),
    live_from: int = 0,
) -> tuple[list[pb.OrderInfo], list[pb.DealReport]]:
    """Orders and deals in journal records, oldest first: ``(orders, deals)``.

    An order appears once, in its last recorded state. A market order filled at once has no
    ORDER entry (that keeps the journal of the hot path to one DEAL); it is made up from its
    deal: type BUY/SELL, FILLED, the deal's volume, price, time and comment. With ``comments``,
    only orders with one of those comments and deals with one of them or of a listed order;
    ``from_time_msc`` drops deals and orders whose last change is older. ``base_orders``: the
    working orders of the journal's base, which have no ORDER entry of their placing; they are
    the state as of the records from offset ``live_from`` on (the records before it, the
    archive of a compacted journal, are older).
    """
    wanted = None if comments is None else frozenset(comments)
    orders: dict[int, OrderState] = {}
    base: Iterable[OrderState] | None = base_orders
    made_up: dict[int, OrderState] = {}
    deals: list[tuple[_Deal, str, str]] = []
    for offset, payload in payloads:
        if base is not None and offset >= live_from:
            _take_base(orders, made_up, base)
            base = None
        try:
            _, entries, _ = _parse_record(payload, offset)
        except _Bad:
            break
        for e in entries:
            if isinstance(e, OrderState):
                orders[e.ticket] = e
                made_up.pop(e.ticket, None)
            elif not isinstance(e, _Sltp):
                d, symbol, comment = e
                deals.append(e)
                if d.order not in orders and d.order not in made_up:
                    made_up[d.order] = OrderState(
                        d.order,
                        symbol,
                        d.deal_type,  # DEAL_TYPE_BUY/SELL == ORDER_TYPE_BUY/SELL
                        _FILLED,
                        0,
                        0,
                        d.reason,
                        d.volume,
                        0.0,
                        d.price,
                        0.0,
                        0.0,
                        0.0,
                        d.price,
                        0,
                        d.magic,
                        d.time_msc,
                        d.time_msc,
                        d.position,
                        0,
                        comment,
                    )
    if base is not None:
        _take_base(orders, made_up, base)
    merged = sorted([*orders.values(), *made_up.values()], key=lambda o: o.ticket)
    picked = [
        o
        for o in merged
        if (wanted is None or o.comment in wanted)
        and max(o.time_setup_msc, o.time_done_msc) >= from_time_msc
    ]
    tickets = {o.ticket for o in picked}
    out_deals = [
        _deal_report(d, symbol, comment)
        for d, symbol, comment in deals
        if d.time_msc >= from_time_msc
        and (wanted is None or comment in wanted or d.order in tickets)
    ]
    return [o.to_proto() for o in picked], out_deals


def read_history(
    path: str | os.PathLike[str],
    comments: Collection[str] | None = None,
    from_time_msc: int = 0,
    index: HistoryIndex | None = None,
) -> tuple[list[pb.OrderInfo], list[pb.DealReport]]:
    """``history`` of the journal ``<path>.log``, up to its first unreadable record.

    The file is mapped, not read: a search by ``comments`` looks for them with ``find`` over
    the mapping and decodes only the records that hold one (``index`` keeps record offsets
    between searches), so it costs little memory and, per comment, about a memory scan of the
    journal.
    """
    try:
        with Path(f"{os.fspath(path)}.log").open("rb") as f:
            if os.fstat(f.fileno()).st_size == 0:
                return [], []
            data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    except FileNotFoundError:
        return [], []
    records: Generator[tuple[int, bytes]] | None = None
    try:
        try:
            base = _parse_state(data, 0)
        except _Bad:
            return [], []
        needles = None if comments is None else _needles(comments)
        records = (
            _records(data, base.end)
            if needles is None
            else (index or HistoryIndex()).candidates(data, base.end, needles)
        )
        orders = base.account.orders.values()
        return history(records, comments, from_time_msc, orders, base.log_offset)
    finally:
        # The readers hold views of the mapping until they are closed.
        if records is not None:
            records.close()
        data.close()


def read_deals(path: str | os.PathLike[str]) -> list[pb.DealReport]:
    """The deal history kept in ``<path>.log``, oldest first, up to the first unreadable record."""
    return read_history(path)[1]


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
            t, ticket = e[0].time_msc, max(ticket, e[0].order)
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

    def commit_deal(
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
        reason: int,
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
        extra: bytes = b"",
    ) -> None:
        """``commit`` of one DEAL entry (arguments as ``encode_deal``) and then ``extra``.

        The market-order path: one struct pack for the record head and the deal.
        """
        seq = self.seq + 1
        name = self._symbols.get(symbol)
        if name is None:
            name = self._symbols[symbol] = _s(symbol)
        raw = comment.encode()
        payload = (
            self._pack(
                _T_TX,
                seq,
                _E_DEAL,
                deal,
                order,
                position,
                request_id,
                magic,
                time_msc,
                deal_type,
                entry,
                reason,
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
        # A record's payload, or the arguments of commit_deal (packed on reading).
        self.records: collections.deque[bytes | tuple[Any, ...]] = collections.deque(maxlen=limit)

    def _write_record(self, payload: bytes, seq: int) -> None:
        self.records.append(payload)
        self.seq = seq

    def commit_deal(self, *args: Any) -> None:
        """As ``Journal.commit_deal``, deferred."""
        self.seq += 1
        self.records.append((self.seq, *args))

    def _payloads(self) -> Iterator[tuple[int, bytes]]:
        for i, r in enumerate(self.records):
            if isinstance(r, tuple):
                seq, symbol, *fields, comment = r[:28]
                extra = r[28] if len(r) > 28 else b""
                raw = comment.encode()
                r = (
                    self._pack(_T_TX, seq, _E_DEAL, *fields)
                    + _s(symbol)
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
    """The open state files of one simulated account; see the module docstring."""

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
