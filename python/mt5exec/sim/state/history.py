"""The order and deal history in a journal: reading it, and the index that speeds up searches by
comment."""

from __future__ import annotations

import bisect
import mmap
import os
import zlib
from collections.abc import Collection, Generator, Iterable
from pathlib import Path

from mt5exec.sim.state.codec import (
    _FRAME,
    Buffer,
    _Bad,
    _parse_record,
    _parse_state,
    _scan,
    _Sltp,
)
from mt5exec.sim.state.records import DealEntry, OrderState, market_order
from mt5exec.terminal.v1 import worker_pb2 as pb

# History searches keep the offset of every this many records (see HistoryIndex).
_INDEX_EVERY = 256
# Comments shorter than this (in bytes) are searched record by record: a one- or two-byte
# needle turns up all over the binary fields.
_MIN_NEEDLE = 3

# -- history -------------------------------------------------------------------------------------


def _deal_report(d: DealEntry) -> pb.DealReport:
    return pb.DealReport(
        ticket=d.deal,
        order=d.order,
        position_id=d.position,
        symbol=d.symbol,
        type=d.deal_type,
        entry=d.entry,
        volume=d.volume,
        price=d.price,
        profit=d.profit,
        magic=d.magic,
        comment=d.comment,
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
    deals: list[DealEntry] = []
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
                d = e
                deals.append(d)
                if d.order not in orders and d.order not in made_up:
                    made_up[d.order] = market_order(
                        d.order,
                        d.symbol,
                        d.deal_type,
                        d.reason,
                        d.volume,
                        d.price,
                        d.magic,
                        d.time_msc,
                        d.position,
                        d.comment,
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
        _deal_report(d)
        for d in deals
        if d.time_msc >= from_time_msc
        and (wanted is None or d.comment in wanted or d.order in tickets)
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
