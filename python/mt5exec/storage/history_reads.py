"""Reads of the history database for the API (run in the history child, on its read cursor).

Each read takes an encoded request and gives an encoded response (``answer``): the orders of a
page (``ListOrders`` past the engine's memory), one order (``GetOrder``), deals (``ListDeals``)
and stored ticks (``ListTicks``). They run on a thread of the child, beside the writer thread:
a read never holds up a batch (DuckDB reads a committed snapshot while the writer appends).

The orders and deals requests are the API's, with two things the server adds: ``since``, the
creation time of the instance (an instance deleted and made again under the same id does not
see the first one's rows), and for orders whether to list finished ones. Page tokens are the
engine's (``<nanos>.<client_order_id>``, routing/listing.rs) for orders, so that a listing goes
on from the engine's memory into the history; deals page by ``<time µs>.<deal_id>``, ticks by
``<time µs>.<row>``.
"""

from __future__ import annotations

import collections
import logging
import re
import struct
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

import duckdb
from google.protobuf.timestamp_pb2 import Timestamp

from mt5exec.reasons import Reason
from mt5exec.v1 import common_pb2, order_pb2

log = logging.getLogger("mt5exec.history")

Query = Callable[[str, Sequence[object]], list[tuple[Any, ...]]]

# Request kinds of an ``H`` frame.
ORDERS: Final = b"O"
ORDER: Final = b"G"
DEALS: Final = b"D"
TICKS: Final = b"T"
EXPORT: Final = b"X"

DEFAULT_PAGE: Final = 100
MAX_PAGE: Final = 1000
DEFAULT_TICK_PAGE: Final = 1000
MAX_TICKS: Final = 10_000

# What the server adds before the request: since (ns, i64), finished (1 byte), owner-free.
_HEAD: Final = struct.Struct(">q?")

_FINAL: Final = ("FILLED", "CANCELED", "REJECTED", "EXPIRED")

_ORDER_COLUMNS: Final = (
    "instance_id, client_order_id, order_id, symbol, side, type, volume, filled_volume, price, "
    "stop_limit_price, stop_loss, take_profit, deviation_points, time_in_force, "
    "epoch_us(expiration), filling, status, average_fill_price, position_id, retcode, "
    "status_message, reject_reason, comment, epoch_us(created_at), epoch_us(updated_at)"
)


class BadRequest(ValueError):
    """A request the history cannot answer as asked (a page token it did not make)."""

    def __init__(self, field: str, reason: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.reason = reason


# Page tokens: ASCII digits only (int() takes other digits, '_' and spaces too), the times
# within a protobuf Timestamp's range (years 1 to 9999), which every stored time is in.
_ORDER_TOKEN: Final = re.compile(r"(-?[0-9]{1,21})\.(.*)", re.DOTALL)
_TOKEN: Final = re.compile(r"(-?[0-9]{1,18})\.([0-9]{1,20})")
_MIN_US: Final = -62_135_596_800 * 1_000_000
_MAX_US: Final = 253_402_300_799_999_999
_MAX_NS: Final = 2**63 - 1  # the engine's nanos are an i64
_MAX_DEAL_ID: Final = 2**64 - 1  # deals.deal_id is a UBIGINT
_MAX_ROWID: Final = 2**63 - 1


def _numbers(enum: Any) -> dict[str, int]:
    prefix = ""
    for value in enum.DESCRIPTOR.values:
        if value.number == 0:
            prefix = value.name.removesuffix("UNSPECIFIED")
    return {v.name.removeprefix(prefix): v.number for v in enum.DESCRIPTOR.values if v.number}


_SIDE: Final = _numbers(common_pb2.Side)
_TYPE: Final = _numbers(common_pb2.OrderType)
_STATUS: Final = _numbers(common_pb2.OrderStatus)
_TIF: Final = _numbers(common_pb2.TimeInForce)
_FILLING: Final = _numbers(common_pb2.FillingMode)
_ENTRY: Final = _numbers(common_pb2.FillEntry)
_FILL_REASON: Final = _numbers(common_pb2.FillReason)


def _enum(names: Mapping[str, int], value: str | None) -> int:
    if value is None:
        return 0
    return names[value] if value in names else int(value) if value.isdigit() else 0


def _stamp(us: int) -> Timestamp:
    return Timestamp(seconds=us // 1_000_000, nanos=(us % 1_000_000) * 1000)


def _us(ts: Timestamp) -> int:
    return ts.seconds * 1_000_000 + ts.nanos // 1000


def _at(us: int) -> str:
    """A time (µs since the epoch) as a SQL literal: a constant lets DuckDB skip the row
    groups outside a range by their min/max, which a parameter does not."""
    return f"make_timestamp({int(us):d})"


def order_of(row: Sequence[Any]) -> common_pb2.Order:
    """An ``orders`` row (``_ORDER_COLUMNS``) as the API's Order."""
    order = common_pb2.Order(
        instance_id=row[0],
        client_order_id=row[1],
        order_id=row[2] or 0,
        symbol=row[3] or "",
        side=_enum(_SIDE, row[4]),  # type: ignore[arg-type]
        type=_enum(_TYPE, row[5]),  # type: ignore[arg-type]
        volume=row[6] or 0.0,
        filled_volume=row[7] or 0.0,
        price=row[8] or 0.0,
        stop_limit_price=row[9] or 0.0,
        stop_loss=row[10] or 0.0,
        take_profit=row[11] or 0.0,
        deviation_points=row[12] or 0,
        time_in_force=_enum(_TIF, row[13]),  # type: ignore[arg-type]
        filling=_enum(_FILLING, row[15]),  # type: ignore[arg-type]
        status=_enum(_STATUS, row[16]),  # type: ignore[arg-type]
        average_fill_price=row[17] or 0.0,
        position_id=row[18] or 0,
        retcode=row[19] or 0,
        status_message=row[20] or "",
        reject_reason=row[21] or "",
        comment=row[22] or "",
    )
    for field, value in (
        ("expiration", row[14]),
        ("created_time", row[23]),
        ("updated_time", row[24]),
    ):
        if value is not None:
            getattr(order, field).CopyFrom(_stamp(value))
    return order


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


# ListOrdersResponse's fields 1 (orders) and 2 (next_page_token) are length-delimited: a tag
# byte, the length as a varint, the bytes. The orders' heads are made once for every length
# an Order has in practice.
_ORDERS_TAG: Final = b"\x0a"
_TOKEN_TAG: Final = b"\x12"
_ORDER_HEADS: Final = tuple(_ORDERS_TAG + _varint(n) for n in range(4096))


def _orders_field(orders: Sequence[bytes]) -> bytes:
    """The orders as ListOrdersResponse.orders: each one's head, then its bytes."""
    heads = _ORDER_HEADS
    parts: list[bytes] = []
    for order in orders:
        size = len(order)
        parts.append(heads[size] if size < len(heads) else _ORDERS_TAG + _varint(size))
        parts.append(order)
    return b"".join(parts)


def _encoded(query: Query, rows: Sequence[Sequence[Any]], instance_id: str) -> list[bytes]:
    """The encoded Orders of page rows (``encoded``, created µs, client_order_id): as the
    writer stored them, or, for rows written before schema v7 (no ``encoded``), made from
    their columns (read again by key, within the page's time bounds)."""
    missing = {(r[2], r[1]) for r in rows if r[0] is None}
    if not missing:
        return [r[0] for r in rows]
    times = [created for _, created in missing]
    marks = ", ".join("?" for _ in missing)
    made = {
        (row[1], row[23]): order_of(row).SerializeToString()
        for row in query(
            f"SELECT {_ORDER_COLUMNS} FROM orders WHERE instance_id = ? "
            f"AND created_at >= {_at(min(times))} AND created_at <= {_at(max(times))} "
            f"AND client_order_id IN ({marks})",
            [instance_id, *{cid for cid, _ in missing}],
        )
    }
    return [r[0] if r[0] is not None else made[(r[2], r[1])] for r in rows]


def parse_order_token(token: str) -> tuple[int, str] | None:
    """The engine's page token ``<nanos>.<client_order_id>``; None for the first page. The
    nanos are ASCII digits within a Timestamp's range (what the engine makes), anything else
    PAGE_TOKEN_INVALID (a time past the database's range made its query fail)."""
    if not token:
        return None
    found = _ORDER_TOKEN.fullmatch(token)
    if found is None or not _MIN_US * 1000 <= int(found[1]) <= _MAX_NS:
        raise BadRequest("page_token", Reason.PAGE_TOKEN_INVALID, "page_token: not from us")
    return int(found[1]), found[2]


def pack(kind: bytes, since_ns: int, finished: bool, request: bytes) -> bytes:
    """The payload of an ``H`` frame after its id: kind, the server's additions, the request."""
    return kind + _HEAD.pack(since_ns, finished) + request


def answer(query: Query, payload: bytes) -> bytes:
    """The encoded response of a packed request (``pack``)."""
    kind = payload[:1]
    since_ns, finished = _HEAD.unpack_from(payload, 1)
    request = payload[1 + _HEAD.size :]
    if kind == ORDERS:
        return list_orders(
            query, order_pb2.ListOrdersRequest.FromString(request), since_ns, finished
        )
    if kind == ORDER:
        got = get_order(query, order_pb2.GetOrderRequest.FromString(request), since_ns)
        return b"" if got is None else got.SerializeToString()
    if kind == DEALS:
        return list_deals(
            query, order_pb2.ListDealsRequest.FromString(request), since_ns
        ).SerializeToString()
    if kind == TICKS:
        return list_ticks(
            query, order_pb2.ListTicksRequest.FromString(request), since_ns
        ).SerializeToString()
    if kind == EXPORT:
        from mt5exec.storage import history_export

        try:
            return history_export.answer(query, request)
        except OSError as e:
            raise BadRequest("out_dir", Reason.EXPORT_FAILED, f"out_dir: {e.strerror}") from None
        except duckdb.IOException:  # its text (SQL, paths) for the server log only
            log.exception("history: export failed")
            raise BadRequest(
                "out_dir",
                Reason.EXPORT_FAILED,
                "out_dir: could not be written (see the server log)",
            ) from None
    raise ValueError(f"unknown history read {kind!r}")


class Answers:
    """The last answers of order and deal reads, kept while their table stays as it was.

    ``commits`` are the writer's counts of commits per table (``HistoryWriter.commits``),
    taken before the read: a commit that wrote to the table drops what was kept of it, so an
    answer is never older than what a read would find. Ticks (written on a cursor of their
    own) and exports are never kept. One reading thread only.
    """

    _TABLES: Final = {ORDERS: "orders", ORDER: "orders", DEALS: "deals"}

    def __init__(self, size: int = 32) -> None:
        self.size = size
        self._kept: collections.OrderedDict[bytes, tuple[int, bytes]] = collections.OrderedDict()

    def answer(self, query: Query, payload: bytes, commits: Mapping[str, int]) -> bytes:
        table = self._TABLES.get(payload[:1])
        if table is None:
            return answer(query, payload)
        stamp = commits[table]
        kept = self._kept.get(payload)
        if kept is not None and kept[0] == stamp:
            self._kept.move_to_end(payload)
            return kept[1]
        got = answer(query, payload)
        self._kept[payload] = (stamp, got)
        self._kept.move_to_end(payload)
        if len(self._kept) > self.size:
            self._kept.popitem(last=False)
        return got


def list_orders(
    query: Query, req: order_pb2.ListOrdersRequest, since_ns: int, finished: bool
) -> bytes:
    """The encoded ListOrdersResponse of a page of the orders after the token, newest first,
    with the engine's kind of token (the server merges it with the engine's page). The page
    is the rows' encoded Orders put one after the other: no message is built here."""
    size = min(req.page_size or DEFAULT_PAGE, MAX_PAGE)
    # The time bounds (since, from_time, to_time, the token's) are the windows' (_newest).
    where = ["instance_id = ?", f"status {'IN' if finished else 'NOT IN'} {_FINAL!r}"]
    params: list[object] = [req.instance_id]
    if req.symbol:
        where.append("symbol = ?")
        params.append(req.symbol)
    floor_us = since_ns // 1000
    if req.HasField("from_time"):
        floor_us = max(floor_us, _us(req.from_time))
    end_us: int | None = _us(req.to_time) if req.HasField("to_time") else None
    after = parse_order_token(req.page_token)
    if after is not None:
        # Microseconds: what the history keeps of a creation time.
        at = _at(after[0] // 1000)
        where.append(f"(created_at < {at} OR (created_at = {at} AND client_order_id < ?))")
        params.append(after[1])
        end_us = after[0] // 1000 + 1 if end_us is None else min(end_us, after[0] // 1000 + 1)
    rows = _newest(
        query,
        "SELECT encoded, epoch_us(created_at), client_order_id FROM orders "
        f"WHERE {' AND '.join(where)}",
        params,
        "created_at",
        "created_at DESC, client_order_id DESC",
        size + 1,
        floor_us,
        end_us,
        ("orders", req.instance_id, req.symbol, finished),
        1,
    )
    page = _orders_field(_encoded(query, rows[:size], req.instance_id))
    if len(rows) > size:
        _, created_us, cid = rows[size - 1]
        token = f"{created_us * 1000}.{cid}".encode()
        page += _TOKEN_TAG + _varint(len(token)) + token
    return page


# How far back the first window of a newest-first read reaches when nothing is known of the
# listing's density; each next one is 4 times as long. DuckDB skips the row groups outside a
# window by their min/max (rows come in time order), so the first page of a table of millions
# reads a row group or two, not all of them.
_FIRST_WINDOW_US: Final = 300 * 1_000_000
_GROWTH: Final = 4
_OLDEST_US: Final = -(2**62)
# The rows per µs the last read of a listing (table, instance, filters) found: its next read's
# first window is made to hold twice its rows, so that one query is enough (a window too short
# costs a second query; one too long, more of a row group). Reads run on one thread.
_DENSITY: dict[tuple[object, ...], float] = {}
_MAX_DENSITIES: Final = 10_000
_MIN_WINDOW_US: Final = 1000


def _newest(
    query: Query,
    sql: str,
    params: list[object],
    column: str,
    order: str,
    limit: int,
    floor_us: int,
    end_us: int | None,
    listing: tuple[object, ...],
    at: int,
) -> list[tuple[Any, ...]]:
    """``limit`` rows of ``sql`` (a SELECT with a WHERE) by ``order`` (newest first), read in
    windows of ``column`` that widen back from ``end_us`` (excluded) down to ``floor_us``
    (included), the only time bounds of the read; without an end, the first window has no end
    (a clock set back finds the rows written before all the same). ``listing`` names
    what is read, for the first window's width (``_DENSITY``); ``at`` is the index of the
    rows' time in µs."""
    density = _DENSITY.get(listing)
    width = _FIRST_WINDOW_US if not density else max(_MIN_WINDOW_US, int(2 * limit / density))
    start = time.time_ns() // 1000 if end_us is None else end_us
    high = end_us
    low = start
    rows: list[tuple[Any, ...]] = []
    floor_us = max(floor_us, _OLDEST_US)
    while len(rows) < limit and (high is None or high > floor_us):
        low = max((start if high is None else high) - width, floor_us)
        upper = "" if high is None else f" AND {column} < {_at(high)}"
        rows += query(
            f"{sql} AND {column} >= {_at(low)}{upper} ORDER BY {order} LIMIT {limit - len(rows):d}",
            params,
        )
        high, width = low, width * _GROWTH
    if len(rows) >= limit and rows[-1][at] is not None:
        if len(_DENSITY) >= _MAX_DENSITIES:
            _DENSITY.clear()
        _DENSITY[listing] = len(rows) / max(1, start - rows[-1][at])
    return rows


def get_order(
    query: Query, req: order_pb2.GetOrderRequest, since_ns: int
) -> common_pb2.Order | None:
    """The latest order of that id the history holds, or None."""
    key = req.WhichOneof("key")
    column = "order_id" if key == "order_id" else "client_order_id"
    value: object = req.order_id if key == "order_id" else req.client_order_id
    rows = query(
        f"SELECT encoded, {_ORDER_COLUMNS} FROM orders WHERE instance_id = ? AND {column} = ? "
        f"AND created_at >= {_at(since_ns // 1000)} ORDER BY created_at DESC LIMIT 1",
        [req.instance_id, value],
    )
    if not rows:
        return None
    stored = rows[0][0]
    return order_of(rows[0][1:]) if stored is None else common_pb2.Order.FromString(stored)


_DEAL_COLUMNS: Final = (
    "instance_id, deal_id, order_id, position_id, client_order_id, symbol, side, entry, volume, "
    "price, slippage_points, profit, commission, swap, epoch_us(time), reason"
)


def _deal(row: Sequence[Any]) -> common_pb2.Fill:
    fill = common_pb2.Fill(
        instance_id=row[0],
        deal_id=row[1],
        order_id=row[2] or 0,
        position_id=row[3] or 0,
        client_order_id=row[4] or "",
        symbol=row[5] or "",
        side=_enum(_SIDE, row[6]),  # type: ignore[arg-type]
        entry=_enum(_ENTRY, row[7]),  # type: ignore[arg-type]
        volume=row[8] or 0.0,
        price=row[9] or 0.0,
        slippage_points=row[10] or 0.0,
        profit=row[11] or 0.0,
        commission=row[12] or 0.0,
        swap=row[13] or 0.0,
        reason=_enum(_FILL_REASON, row[15]),  # type: ignore[arg-type]
    )
    if row[14] is not None:
        fill.time.CopyFrom(_stamp(row[14]))
    return fill


def _token(field: str, token: str, second_max: int) -> tuple[int, int] | None:
    """A ``<µs>.<number>`` page token; None for the first page. Both numbers ASCII digits,
    the time within a Timestamp's range and the number within ``0..second_max`` (what the
    reads make), anything else PAGE_TOKEN_INVALID: a number past the database's types made
    its query fail."""
    if not token:
        return None
    found = _TOKEN.fullmatch(token)
    if found is None:
        raise BadRequest(field, Reason.PAGE_TOKEN_INVALID, f"{field}: not from us")
    first, second = int(found[1]), int(found[2])
    if not (_MIN_US <= first <= _MAX_US and second <= second_max):
        raise BadRequest(field, Reason.PAGE_TOKEN_INVALID, f"{field}: not from us")
    return first, second


def list_deals(
    query: Query, req: order_pb2.ListDealsRequest, since_ns: int
) -> order_pb2.ListDealsResponse:
    """A page of deals, newest first (by time, then deal_id)."""
    size = min(req.page_size or DEFAULT_PAGE, MAX_PAGE)
    where = ["instance_id = ?"]
    params: list[object] = [req.instance_id]
    if req.symbol:
        where.append("symbol = ?")
        params.append(req.symbol)
    floor_us = since_ns // 1000
    if req.HasField("from_time"):
        floor_us = max(floor_us, _us(req.from_time))
    end_us = _us(req.to_time) if req.HasField("to_time") else None
    after = _token("page_token", req.page_token, _MAX_DEAL_ID)
    if after is not None:
        at = _at(after[0])
        where.append(f"(time < {at} OR (time = {at} AND deal_id < {after[1]:d}))")
        end_us = after[0] + 1 if end_us is None else min(end_us, after[0] + 1)
    rows = _newest(
        query,
        f"SELECT {_DEAL_COLUMNS} FROM deals WHERE {' AND '.join(where)}",
        params,
        "time",
        "time DESC, deal_id DESC",
        size + 1,
        floor_us,
        end_us,
        ("deals", req.instance_id, req.symbol),
        14,
    )
    response = order_pb2.ListDealsResponse(deals=[_deal(r) for r in rows[:size]])
    if len(rows) > size:
        response.next_page_token = f"{rows[size - 1][14]}.{rows[size - 1][1]}"
    return response


_TICK_COLUMNS: Final = (
    "instance_id, symbol, bid, ask, last, volume, epoch_us(time), epoch_us(received_at), rowid"
)


def _tick(row: Sequence[Any]) -> common_pb2.Tick:
    tick = common_pb2.Tick(
        instance_id=row[0],
        symbol=row[1],
        bid=row[2] or 0.0,
        ask=row[3] or 0.0,
        last=row[4] or 0.0,
        volume=row[5] or 0.0,
    )
    tick.time.CopyFrom(_stamp(row[6]))
    if row[7] is not None:
        tick.received_time.CopyFrom(_stamp(row[7]))
    return tick


def list_ticks(
    query: Query, req: order_pb2.ListTicksRequest, since_ns: int = 0
) -> order_pb2.ListTicksResponse:
    """The latest ``count`` ticks, or a page of a time range; oldest first either way. None
    from before ``since_ns`` (an earlier instance of the id)."""
    where = ["instance_id = ?", "symbol = ?"]
    params: list[object] = [req.instance_id, req.symbol]
    end_us = _us(req.to_time) if req.HasField("to_time") else None
    floor_us = _us(req.from_time) if req.HasField("from_time") else _OLDEST_US
    if since_ns:
        floor_us = max(floor_us, since_ns // 1000)
    if req.count:
        rows = _newest(
            query,
            f"SELECT {_TICK_COLUMNS} FROM ticks WHERE {' AND '.join(where)}",
            params,
            "time",
            "time DESC, rowid DESC",
            min(req.count, MAX_TICKS),
            floor_us,
            end_us,
            ("ticks", req.instance_id, req.symbol),
            6,
        )
        return order_pb2.ListTicksResponse(ticks=[_tick(r) for r in reversed(rows)])
    size = min(req.page_size or DEFAULT_TICK_PAGE, MAX_TICKS)
    if floor_us > _OLDEST_US:
        where.append(f"time >= {_at(floor_us)}")
    if end_us is not None:
        where.append(f"time < {_at(end_us)}")
    after = _token("page_token", req.page_token, _MAX_ROWID)
    if after is not None:
        at = _at(after[0])
        where.append(f"(time > {at} OR (time = {at} AND rowid > {after[1]:d}))")
    rows = query(
        f"SELECT {_TICK_COLUMNS} FROM ticks WHERE {' AND '.join(where)} "
        f"ORDER BY time, rowid LIMIT {size + 1:d}",
        params,
    )
    response = order_pb2.ListTicksResponse(ticks=[_tick(r) for r in rows[:size]])
    if len(rows) > size:
        response.next_page_token = f"{rows[size - 1][6]}.{rows[size - 1][8]}"
    return response
