"""The byte format of the state files: record framing, and the encoding and decoding of each
record and TX entry.

The format is described in ``mt5exec.sim.state`` (and the framing in docs/formats.md).
"""

from __future__ import annotations

import mmap
import struct
import zlib
from collections.abc import Iterator
from typing import Any, NamedTuple

from mt5exec.sim.state.records import (
    DEAL_FIXED,
    AccountState,
    DealEntry,
    MarketState,
    OrderState,
    PositionState,
)

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

# The fewest journal bytes that can use up one order or deal ticket (an entry with a
# one-character symbol and no comment). Bounds how many tickets an unreadable stretch of journal
# can hold, hence how many to skip after corruption.
MIN_FILL_RECORD = min(_DEAL.size, _ORDER.size) + 2 + 1
# What the record readers take: bytes, or a read-only mapping of the journal.
Buffer = bytes | mmap.mmap

# No record comes near this size; a longer one running past the end of the file is garbage,
# not a write cut short.
MAX_RECORD = 4096


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


def encode_deal(d: DealEntry) -> bytes:
    """The DEAL entry of one fill."""
    return _DEAL.pack(_E_DEAL, *d[:DEAL_FIXED]) + _s(d.symbol) + _s(d.comment)


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
    fields = _ORDER.unpack_from(payload, off)
    name, off = _str(payload, off + _ORDER.size)
    comment, off = _str(payload, off)
    # The entry holds OrderState's fields in its order, but for the symbol and the comment.
    values: list[Any] = [fields[1], name, *fields[2:], comment]
    order = OrderState(*values)
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


class _Sltp(NamedTuple):
    ticket: int
    sl: float
    tp: float


# One parsed TX entry: a deal with its symbol and comment, an order, or new position stops.
_Entry = DealEntry | OrderState | _Sltp


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
            return f[1], [DealEntry._make((*f[2:10], 0, *f[10:], symbol, comment))], True
        if kind != _T_TX:
            raise ValueError(f"expected a trade record, found type {kind}")
        _, seq = _TX.unpack_from(payload)
        off = _TX.size
        n = len(payload)
        while off < n:
            entry = payload[off]
            if entry == _E_DEAL:
                fixed = _DEAL.unpack_from(payload, off)
                symbol, off = _str(payload, off + _DEAL.size)
                comment, off = _str(payload, off)
                entries.append(DealEntry._make((*fixed[1:], symbol, comment)))
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
            _apply_deal(account, e, legacy)


def _apply_deal(account: AccountState, f: DealEntry, legacy: bool) -> None:
    symbol = f.symbol
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
            f.comment,
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
