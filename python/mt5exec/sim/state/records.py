"""The values the state files hold: the account, its markets, positions, orders and deals, and
what a start recovered."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, NamedTuple

from mt5exec.sim.constants import ORDER_STATE_FILLED, ORDER_TIME_GTC
from mt5exec.terminal.v1 import worker_pb2 as pb


@dataclass(frozen=True, slots=True)
class Retention:
    """How much history a compaction keeps, and when the journal is compacted (see the
    package docstring). The server sets ``keep_s`` and ``keep_orders`` to the engine's
    ``engine.final_order_retention_s`` and ``engine.max_orders_per_instance`` (the worker
    config's ``retention_s`` and ``retention_orders``); the defaults are the engine's defaults."""

    keep_s: float = 86_400.0
    keep_orders: int = 100_000
    compact_bytes: int = 64 << 20


class DealEntry(NamedTuple):
    """One fill as a DEAL entry of the journal holds it: the deal, then the account after it.

    The fields after ``balance`` are the state after the fill: the market's price and exposure
    sums, and the position (``position_volume`` 0 when the fill closed it). The first 25 fields
    are the fixed part of the entry, in the order of the format's struct; ``symbol`` and
    ``comment`` follow it as short strings. A NamedTuple (immutable, as a frozen dataclass would
    be) because one is built for every fill and unpacked straight into ``struct.pack``: a frozen
    dataclass of 27 fields takes about five times as long to build.
    """

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
    symbol: str
    comment: str


# The fixed (struct-packed) fields of a DealEntry: all but symbol and comment.
DEAL_FIXED = 25


class StateError(Exception):
    """The state files cannot be used at all (directory not writable, lock held elsewhere)."""


@dataclass(slots=True)
class MarketState:
    """One symbol's saved price and exposure sums (see ``mt5exec.sim.broker.prices.Market``)."""

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


def market_order(
    ticket: int,
    symbol: str,
    order_type: int,
    reason: int,
    volume: float,
    price: float,
    magic: int,
    time_msc: int,
    position: int,
    comment: str,
    *,
    state: int = ORDER_STATE_FILLED,
    volume_current: float = 0.0,
    filling: int = 0,
    position_by_id: int = 0,
) -> OrderState:
    """A market order as it goes to the history: by default filled at once (``volume`` done,
    at ``price``). The broker makes it when it fills one (or records the rest of a partial
    fill with ``state`` and ``volume_current``); the journal's and the simulated terminal's
    history make it up from its deal, having no ORDER entry or OrderUpdate of it (a deal's
    DEAL_TYPE_BUY/SELL is the order's ORDER_TYPE_BUY/SELL)."""
    return OrderState(
        ticket,
        symbol,
        order_type,
        state,
        filling,
        ORDER_TIME_GTC,
        reason,
        volume,
        volume_current,
        price,
        0.0,
        0.0,
        0.0,
        price,
        0,
        magic,
        time_msc,
        time_msc,
        position,
        position_by_id,
        comment,
    )
