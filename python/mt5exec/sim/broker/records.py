"""The account's records: a working order (``Order``) and an open position (``Position``), as
the broker keeps them in memory."""

from __future__ import annotations

import struct

from mt5exec.sim.broker.prices import NEVER, Market
from mt5exec.sim.constants import (
    BUY_TYPES,
    ORDER_TYPE_BUY,
    ORDER_TYPE_BUY_LIMIT,
    ORDER_TYPE_BUY_STOP,
    ORDER_TYPE_BUY_STOP_LIMIT,
    ORDER_TYPE_SELL,
    ORDER_TYPE_SELL_LIMIT,
    POSITION_TYPE_BUY,
)
from mt5exec.sim.state import OrderState
from mt5exec.terminal.v1 import worker_pb2 as pb
from mt5exec.workers.protocol import varint


class Order:
    """A working order (PLACED or PARTIAL) of the account."""

    __slots__ = (
        "comment",
        "expiration",
        "magic",
        "market",
        "position_by_id",
        "position_id",
        "price_open",
        "price_stoplimit",
        "reason",
        "sl",
        "state",
        "ticket",
        "time_done_msc",
        "time_setup_msc",
        "tp",
        "type",
        "type_filling",
        "type_time",
        "volume_current",
        "volume_initial",
    )

    def __init__(self, market: Market, s: OrderState) -> None:
        self.market = market
        self.ticket = s.ticket
        self.type = s.type
        self.state = s.state
        self.type_filling = s.type_filling
        self.type_time = s.type_time
        self.reason = s.reason
        self.volume_initial = s.volume_initial
        self.volume_current = s.volume_current
        self.price_open = s.price_open
        self.price_stoplimit = s.price_stoplimit
        self.sl = s.sl
        self.tp = s.tp
        # Epoch seconds at which the order expires; 0: never (GTC).
        self.expiration = s.time_expiration
        self.magic = s.magic
        self.time_setup_msc = s.time_setup_msc
        self.time_done_msc = s.time_done_msc
        # A working market order (the rest of a RETURN fill) that closes a hedging position
        # keeps that position's ticket here.
        self.position_id = s.position_id
        self.position_by_id = s.position_by_id
        self.comment = s.comment

    @property
    def buy(self) -> bool:
        return self.type in BUY_TYPES

    def trigger(self) -> tuple[int, int]:
        """``(kind, points)`` of the price that fires the order (see ``Market.arm``)."""
        t = self.type
        pts = self.market.pts(self.price_open)
        if t == ORDER_TYPE_BUY:
            return 0, NEVER  # the rest of a RETURN market order: fills at any ask
        if t == ORDER_TYPE_SELL:
            return 3, -NEVER
        if t == ORDER_TYPE_BUY_LIMIT:
            return 0, pts
        if t == ORDER_TYPE_SELL_LIMIT:
            return 3, pts
        if t in (ORDER_TYPE_BUY_STOP, ORDER_TYPE_BUY_STOP_LIMIT):
            return 1, pts
        return 2, pts  # sell stop, sell stop limit

    def fires(self) -> bool:
        kind, pts = self.trigger()
        m = self.market
        if kind == 0:
            return m.ask_pts <= pts
        if kind == 1:
            return m.ask_pts >= pts
        if kind == 2:
            return m.bid_pts <= pts
        return m.bid_pts >= pts

    def record(self, state: int | None = None, price_current: float | None = None) -> OrderState:
        """The order as the journal keeps it, in ``state`` (default: its own), priced at
        ``price_current`` (default: the market's price for its side)."""
        m = self.market
        if price_current is None:
            price_current = m.ask if self.buy else m.bid
        return OrderState(
            self.ticket,
            m.spec.name,
            self.type,
            self.state if state is None else state,
            self.type_filling,
            self.type_time,
            self.reason,
            self.volume_initial,
            self.volume_current,
            self.price_open,
            self.price_stoplimit,
            self.sl,
            self.tp,
            price_current,
            self.expiration,
            self.magic,
            self.time_setup_msc,
            self.time_done_msc,
            self.position_id,
            self.position_by_id,
            self.comment,
        )

    def info(self) -> pb.OrderInfo:
        return self.record().to_proto()


# Hand-encoded tail of a serialized ``Position``: price_current (field 6) and profit (field 9),
# both doubles (wire type 1). Protobuf parsers accept fields in any order, so the tail can follow
# the cached bytes of the fields that only change when the position itself does.
POSITION_TAIL = struct.Struct("<BdBd")


PRICE_CURRENT_TAG = 6 << 3 | 1


PROFIT_TAG = 9 << 3 | 1


POSITIONS_TAG = b"\x0a"  # PositionSnapshot.positions: field 1, length-delimited


class Position:
    __slots__ = (
        "_static",
        "comment",
        "magic",
        "market",
        "price_open",
        "side",
        "sl",
        "ticket",
        "time_msc",
        "tp",
        "volume",
    )

    def __init__(
        self,
        ticket: int,
        market: Market,
        side: int,
        volume: float,
        price_open: float,
        time_msc: int,
        magic: int,
        comment: str,
        sl: float,
        tp: float,
    ) -> None:
        self.ticket = ticket
        self.market = market
        self.side = side
        self.volume = volume
        self.price_open = price_open
        self.time_msc = time_msc
        self.magic = magic
        self.comment = comment
        self.sl = sl
        self.tp = tp
        self._static: bytes | None = None

    def changed(self) -> None:
        """Call after changing side, volume or open price, to drop the cached encoding."""
        self._static = None

    def head(self) -> bytes:
        """Tag, length and the fields that change only with the position itself, serialized.

        A ``PositionSnapshot.positions`` entry is ``head()`` followed by the fixed-size
        ``POSITION_TAIL`` (price_current, profit): only the tail is encoded when prices move.
        """
        head = self._static
        if head is None:
            static = pb.Position(
                ticket=self.ticket,
                symbol=self.market.spec.name,
                type=self.side,
                volume=self.volume,
                price_open=self.price_open,
                sl=self.sl,
                tp=self.tp,
                time_msc=self.time_msc,
                magic=self.magic,
                comment=self.comment,
            ).SerializeToString()
            head = self._static = POSITIONS_TAG + varint(len(static) + POSITION_TAIL.size) + static
        return head

    def price_current(self) -> float:
        # A buy is closed by selling at the bid, a sell by buying at the ask.
        m = self.market
        return m.bid if self.side == POSITION_TYPE_BUY else m.ask

    def profit_at(self, price: float, volume: float) -> float:
        diff = (
            price - self.price_open if self.side == POSITION_TYPE_BUY else self.price_open - price
        )
        # round(x * 100) / 100 rather than round(x, 2): same cents, several times faster, and
        # PositionCache.render must use the very same formula.
        return round(diff * volume * self.market.contract * self.market.rate() * 100.0) / 100.0
