"""The simulated broker: an MT5 trade server with its prices, account, positions and orders.

A plain, deterministic library: the sim worker process (``mt5exec.workers.sim``) drives it and
moves its messages over the socket, tests drive it directly. Trade fields and result codes use
MetaTrader 5's numbering (``mt5exec.mt5.constants``, by way of ``mt5exec.sim.constants``;
both re-exported here) so that the engine cannot tell it from a real terminal. Fault-injection
*state* lives here (delay, reject-next, counters); the worker is the one that enacts delays,
freezes, disconnects and crashes.

What it does, as an MT5 server with market execution would:

- Market orders (``TRADE_ACTION_DEAL``) on hedging and netting accounts, partial and full
  closes, netting reversals; SL/TP checked against the symbol's stops level.
- Pending orders (``TRADE_ACTION_PENDING``): buy/sell limit, stop and stop-limit, with GTC, DAY,
  SPECIFIED and SPECIFIED_DAY expiration; ``TRADE_ACTION_MODIFY`` / ``REMOVE`` within the freeze
  level; ``TRADE_ACTION_SLTP`` for positions; ``TRADE_ACTION_CLOSE_BY`` on hedging accounts.
- Ticks trigger orders: a buy limit when the ask falls to its price, a sell limit when the bid
  rises to it, a buy stop when the ask rises to it, a sell stop when the bid falls to it; a
  stop-limit turns into a limit order at its stop-limit price (same ticket, RETURN filling). A
  triggered order fills at the market price of that tick (a limit at its price or better) as a
  deal with ``request_id`` 0, then moves to the history as FILLED. Positions close on SL/TP at
  the bid (buys) or ask (sells) with ``DEAL_REASON_SL`` / ``DEAL_REASON_TP``; below the stop-out
  level the position with the largest loss is closed first (``DEAL_REASON_SO``) until the margin
  level is back above it; crossing the margin-call level reports one ``MARGIN_CALL`` event.
- Filling rules (MT5's, for the symbol's execution mode): FOK and IOC as the symbol's
  ``filling_mode`` flags allow; RETURN for pending orders always, for market orders only on
  exchange execution (market and instant execution refuse it, ``TRADE_RETCODE_INVALID_FILL``);
  BOC only for limit and stop-limit orders with the BOC flag. With a finite ``liquidity`` a
  market order gets what the current price level holds: IOC fills that much
  (``TRADE_RETCODE_DONE_PARTIAL``), FOK is refused with ``TRADE_RETCODE_REJECT`` (MT5 has no
  dedicated code; a real server rejects an unfillable FOK request), RETURN fills that much and
  leaves the rest working as an order (``DONE_PARTIAL``, or ``PLACED`` if nothing filled) that
  fills on later ticks. An IOC order whose rest is cancelled ends CANCELED with
  ``volume_current`` = the cancelled rest.
- Requotes and slippage: with ``slippage_points`` a fill lands a seeded random number of points
  away from the quote; on instant execution a fill further than ``deviation`` points from the
  request price is refused with ``TRADE_RETCODE_REQUOTE`` and the new bid/ask. Market execution
  ignores ``deviation``, as in MT5.
- Sessions: outside its sessions a symbol neither ticks nor trades (``MARKET_CLOSED``); the
  worker reports ``MARKET_CLOSED`` when every symbol is closed and ``MARKET_OPEN`` when one opens.
- ``check_only`` requests (``order_check``) run every check of a real send and answer with the
  account after the hypothetical trade (retcode 0 when it would pass); they change nothing.
- ``reconcile``: open and historical orders and their deals by comment, from the journal.

Where MT5's documentation leaves the behaviour open, the simulator does this:

- Requests from the engine are "expert" requests: their deals and orders carry reason
  ``DEAL_REASON_EXPERT`` (3), as those of the MetaTrader5 package do. SL, TP and stop-out closes
  are market orders of their own (new ticket, reason SL/TP/SO) whose deal comment is
  ``[sl <price>]``, ``[tp <price>]`` or ``[so <margin level>%]``; they fill at the tick's price,
  beyond the stop if the price jumped over it.
- A pending order's price must be on its side of the market and at least ``stops_level`` points
  away (never at the market, also with a level of 0), else ``INVALID_PRICE``; SL/TP likewise
  relative to the order price (a position's close price for market orders and ``SLTP``), else
  ``INVALID_STOPS``. A buy stop limit's limit price must be at or below its stop price (a sell
  stop limit's at or above). ``freeze_level`` blocks modifying or removing pending orders and
  moving position stops (``FROZEN``), not closing positions.
- Pending orders reserve no margin; a triggered order the account cannot afford goes to the
  history REJECTED. A triggered FOK order that the liquidity cannot fill whole is CANCELED,
  an IOC one fills what it can and the rest is CANCELED, a RETURN one fills what it can and
  waits for the next price level for the rest (all of an order's fills go to one position).
- DAY orders expire at 00:00 UTC after the day they were placed; SPECIFIED_DAY ones at the end
  of the given day; ``time_expiration`` reports that moment. Expired orders are EXPIRED.
- On netting accounts, SL/TP given with an order replace the position's (a reversal takes the
  order's, none if it has none).
- Close by: both positions are closed at the opposite position's open price; the first deal
  books the whole profit (``DEAL_ENTRY_OUT_BY`` both), the order is a CLOSE_BY order.
- Outside its sessions a symbol also refuses modifications, removals and stop changes.

Durability: the broker plays the broker's trade server, so its account outlives the worker.
``SimBroker.open`` restores it from ``mt5exec.sim.state`` files and attaches a journal; every
change (fills, placements, modifications, cancellations, expirations, stop changes, triggered
fills, stop-outs) is appended to the journal *before* ``send`` returns or the change is reported
(a request the journal cannot take is rejected with ``TRADE_RETCODE_ERROR`` and changes nothing;
a triggered change that cannot be saved does not happen and is retried on a later tick).
Without a journal, the latest changes are kept in memory for reconciliation.

Unsolicited changes (triggered orders, SL/TP, stop-out, expirations, session changes, margin
calls) collect in ``SimBroker.activity`` until the worker takes them (``take_activity``).

Determinism: a symbol's random walk draws its n-th step from a generator seeded from
``(seed, symbol, n // 1024)``, so a symbol's price path depends only on the seed and on how many
times it ticked: not on how the ticks of different symbols interleave, and not on restarts. A
restored market (saved price and tick count) continues on exactly the path an uninterrupted one
would have followed from that tick. Slippage draws come from one generator seeded from the seed
(the n-th slipped fill of a run). Faults are not saved: they belong to the test that injects
them.
"""

from __future__ import annotations

import math
import os
import random
import struct
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal

from mt5exec.sim.bars import Bars
from mt5exec.sim.constants import *  # noqa: F403 - the MT5 numbering is part of this API
from mt5exec.sim.constants import (
    ACCOUNT_MARGIN_MODE_RETAIL_HEDGING,
    ACCOUNT_MARGIN_MODE_RETAIL_NETTING,
    BUY_TYPES,
    DEAL_ENTRY_IN,
    DEAL_ENTRY_INOUT,
    DEAL_ENTRY_OUT,
    DEAL_ENTRY_OUT_BY,
    DEAL_REASON_EXPERT,
    DEAL_REASON_SL,
    DEAL_REASON_SO,
    DEAL_REASON_TP,
    DEAL_TYPE_BUY,
    DEAL_TYPE_SELL,
    ORDER_FILLING_BOC,
    ORDER_FILLING_FOK,
    ORDER_FILLING_IOC,
    ORDER_FILLING_RETURN,
    ORDER_STATE_CANCELED,
    ORDER_STATE_EXPIRED,
    ORDER_STATE_FILLED,
    ORDER_STATE_PARTIAL,
    ORDER_STATE_PLACED,
    ORDER_STATE_REJECTED,
    ORDER_TIME_DAY,
    ORDER_TIME_GTC,
    ORDER_TIME_SPECIFIED,
    ORDER_TIME_SPECIFIED_DAY,
    ORDER_TYPE_BUY,
    ORDER_TYPE_BUY_LIMIT,
    ORDER_TYPE_BUY_STOP,
    ORDER_TYPE_BUY_STOP_LIMIT,
    ORDER_TYPE_CLOSE_BY,
    ORDER_TYPE_SELL,
    ORDER_TYPE_SELL_LIMIT,
    ORDER_TYPE_SELL_STOP,
    ORDER_TYPE_SELL_STOP_LIMIT,
    PENDING_TYPES,
    POSITION_TYPE_BUY,
    TRADE_ACTION_CLOSE_BY,
    TRADE_ACTION_DEAL,
    TRADE_ACTION_MODIFY,
    TRADE_ACTION_PENDING,
    TRADE_ACTION_REMOVE,
    TRADE_ACTION_SLTP,
    TRADE_RETCODE_CHECK_OK,
    TRADE_RETCODE_CLOSE_ONLY,
    TRADE_RETCODE_DONE,
    TRADE_RETCODE_DONE_PARTIAL,
    TRADE_RETCODE_ERROR,
    TRADE_RETCODE_FROZEN,
    TRADE_RETCODE_INVALID,
    TRADE_RETCODE_INVALID_CLOSE_VOLUME,
    TRADE_RETCODE_INVALID_EXPIRATION,
    TRADE_RETCODE_INVALID_FILL,
    TRADE_RETCODE_INVALID_ORDER,
    TRADE_RETCODE_INVALID_PRICE,
    TRADE_RETCODE_INVALID_STOPS,
    TRADE_RETCODE_INVALID_VOLUME,
    TRADE_RETCODE_LONG_ONLY,
    TRADE_RETCODE_MARKET_CLOSED,
    TRADE_RETCODE_NO_CHANGES,
    TRADE_RETCODE_NO_MONEY,
    TRADE_RETCODE_PLACED,
    TRADE_RETCODE_POSITION_CLOSED,
    TRADE_RETCODE_REJECT,
    TRADE_RETCODE_REQUOTE,
    TRADE_RETCODE_SHORT_ONLY,
    TRADE_RETCODE_TRADE_DISABLED,
)
from mt5exec.sim.state import (
    AccountState,
    DealEntry,
    Journal,
    Loaded,
    MarketState,
    MemoryJournal,
    OrderState,
    PositionState,
    Retention,
    StateError,
    StateStore,
    encode_deal,
    encode_order,
    encode_sltp,
    read_history,
)
from mt5exec.sim.symbols import (
    DEFAULT_SYMBOLS,
    SYMBOL_FILLING_BOC,
    SYMBOL_FILLING_FOK,
    SYMBOL_FILLING_IOC,
    SYMBOL_TRADE_EXECUTION_EXCHANGE,
    SYMBOL_TRADE_EXECUTION_INSTANT,
    SYMBOL_TRADE_MODE_CLOSEONLY,
    SYMBOL_TRADE_MODE_DISABLED,
    SYMBOL_TRADE_MODE_FULL,
    SYMBOL_TRADE_MODE_LONGONLY,
    SYMBOL_TRADE_MODE_SHORTONLY,
    SymbolRules,
    SymbolSettings,
    SymbolSpec,
    resolve,
)
from mt5exec.sim.tape import Tape
from mt5exec.terminal.v1 import worker_pb2 as pb
from mt5exec.workers.protocol import varint

SERVER_NAME = "mt5exec-sim"
COMMENT_MAX = 31  # MT5 truncates trade comments to 31 characters.

# The worker writes a snapshot after this many journal records, which bounds the replay at start.
CHECKPOINT_EVERY = 10_000

# A symbol's walk takes a new generator every 2**_RNG_BLOCK_BITS ticks, so a restored market
# finds its place in the sequence with a seed and at most 1023 draws.
_RNG_BLOCK_BITS = 10
_RNG_MASK = (1 << _RNG_BLOCK_BITS) - 1

# Snapshot entries are cached in blocks of 2**_BLOCK_BITS consecutive tickets (see SimBroker).
_BLOCK_BITS = 6

# Volumes are multiples of 0.01-ish steps; anything closer than this to a multiple is on-step,
# and two volumes closer than this are equal (binary floats cannot hold 0.1 exactly).
_VOLUME_EPS = 1e-8

# Trigger thresholds (in points) that no price reaches.
_NEVER = 1 << 62

# A tick can set off a chain (a stop-limit becoming a limit that fills, a fill whose position
# then sits beyond its stop); more rounds than this on one tick means something loops.
_MAX_TRIGGER_ROUNDS = 16

_DAY_S = 86400


@dataclass(slots=True)
class SimConfig:
    """What a sim instance trades and with which account."""

    symbols: list[str]
    seed: int = 1
    # Ticks per second per symbol; 0 disables ticks (prices then stay at their start values).
    tick_rate: float = 10.0
    initial_balance: float = 10_000.0
    leverage: int = 100
    currency: str = "USD"
    margin_mode: Literal["hedging", "netting"] = "hedging"
    login: int = 10_000_001
    # Margin level (equity / margin, %) below which positions are closed, largest loss first.
    stop_out_level: float = 50.0
    # Margin level below which a MARGIN_CALL event is reported (once per crossing).
    margin_call_level: float = 100.0
    # Per-symbol overrides; the key "*" applies to every symbol (see SymbolSettings).
    symbol_settings: dict[str, SymbolSettings] = field(default_factory=dict)


@dataclass(slots=True)
class FaultState:
    """Injected faults still pending, and how many of each were requested so far."""

    delay_ms: int = 0
    reject_next: int = 0
    rejected: int = 0
    freezes: int = 0
    disconnects: int = 0
    crashes: int = 0


@dataclass(slots=True)
class SendOutcome:
    """Everything one ``SimBroker.send`` produced, in the order the engine must see it."""

    result: pb.OrderResult
    deals: list[pb.DealReport] = field(default_factory=list)
    order_updates: list[pb.OrderUpdate] = field(default_factory=list)
    positions_changed: bool = False
    orders_changed: bool = False
    account_changed: bool = False


@dataclass(slots=True)
class Activity:
    """Changes the broker made on its own (ticks, timers), in the order they happened."""

    deals: list[pb.DealReport] = field(default_factory=list)
    order_updates: list[pb.OrderUpdate] = field(default_factory=list)
    positions_changed: bool = False
    orders_changed: bool = False
    account_changed: bool = False
    events: list[pb.WorkerEvent] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(
            self.deals
            or self.order_updates
            or self.positions_changed
            or self.orders_changed
            or self.account_changed
            or self.events
        )


class _Reject(Exception):
    """A request fails with ``retcode``; raised by the checks, answered by ``SimBroker.send``."""

    def __init__(self, retcode: int, comment: str, bid: float = 0.0, ask: float = 0.0) -> None:
        super().__init__(comment)
        self.retcode = retcode
        self.comment = comment
        # A requote carries the prices it offers instead of the market's.
        self.bid = bid
        self.ask = ask


class _Market:
    """Price, exposure, working orders and triggers of one symbol.

    Prices are kept as integer points so that bid/ask are always exactly ``digits`` decimals and
    the spread never drifts. Exposure sums let the account be valued in O(symbols), not
    O(positions): floating profit of all buys is ``bid * buy_volume - buy_cost`` times the contract
    size, and symmetrically for sells.

    Triggers: ``ask_le``/``ask_ge``/``bid_le``/``bid_ge`` are the nearest prices (points) at which
    some working order or position stop of this symbol may fire; a tick compares against these
    four only, so idle orders cost nothing per tick. They may be stale on the safe side (an order
    since removed): a tick that crosses one then scans the symbol and recomputes them.
    """

    __slots__ = (
        "armed",
        "ask",
        "ask_ge",
        "ask_le",
        "ask_pts",
        "bid",
        "bid_ge",
        "bid_le",
        "bid_pts",
        "buy_cost",
        "buy_volume",
        "contract",
        "instant",
        "is_open",
        "liq_buy",
        "liq_sell",
        "liq_tick",
        "liquidity",
        "mid",
        "orders",
        "plain",
        "point",
        "positions",
        "rate",
        "rng",
        "rules",
        "scale",
        "seed",
        "sell_cost",
        "sell_volume",
        "slippage",
        "snap_key",
        "spec",
        "spread",
        "step",
        "ticks",
        "time_msc",
    )

    def __init__(self, spec: SymbolSpec, rules: SymbolRules, seed: int, time_msc: int) -> None:
        self.spec = spec
        self.rules = rules
        self.seed = seed
        self.ticks = 0
        self.rng = _walk_rng(seed, spec.name, 0)
        self.scale: int = 10**spec.digits
        self.point = spec.point
        self.spread = max(1, spec.spread_points)
        self.step = max(0, spec.step_points)
        self.contract = spec.contract_size
        self.bid_pts: int = 0
        self.ask_pts: int = 0
        self.bid: float = 0.0
        self.ask: float = 0.0
        self.mid: float = 0.0
        self._set_bid(round(spec.start_price * self.scale) - self.spread // 2)
        self.time_msc: int = time_msc
        self.buy_volume: float = 0.0
        self.buy_cost: float = 0.0
        self.sell_volume: float = 0.0
        self.sell_cost: float = 0.0
        # Open positions on this symbol, in ticket order.
        self.positions: dict[int, _Position] = {}
        # Working orders on this symbol, in ticket order (which is time priority).
        self.orders: dict[int, _Order] = {}
        # (bid_pts, ask_pts, rate) at which the cached snapshot entries of ``positions`` were
        # rendered; None when some entry must be rendered again.
        self.snap_key: tuple[int, int, float] | None = None
        # Profit currency -> account currency; replaced by the broker once all markets exist.
        self.rate: Callable[[], float] = _one
        self.armed = False
        self.ask_le = self.bid_le = -_NEVER
        self.ask_ge = self.bid_ge = _NEVER
        # Liquidity left at the current price level (tick ``liq_tick``), per side.
        self.liquidity = rules.liquidity
        self.liq_tick = -1
        self.liq_buy = self.liq_sell = 0.0
        # Session state as last reported (see SimBroker.poll).
        self.is_open = True
        # Shortcuts for the market-order path: full trading around the clock (no trade mode or
        # session to check), instant execution, slippage.
        self.plain = spec.trade_mode == SYMBOL_TRADE_MODE_FULL and rules.sessions.always
        self.instant = rules.execution == SYMBOL_TRADE_EXECUTION_INSTANT
        self.slippage = rules.slippage_points

    def _set_bid(self, bid_pts: int) -> None:
        self.bid_pts = bid_pts
        self.ask_pts = bid_pts + self.spread
        # Dividing an integer by an exact power of ten gives the double nearest to the decimal
        # price, i.e. the same value as round(x, digits).
        self.bid = bid_pts / self.scale
        self.ask = self.ask_pts / self.scale
        self.mid = (self.bid + self.ask) / 2.0

    def advance(self) -> None:
        step = self.step
        bid_pts = self.bid_pts + int(self.rng.random() * (2 * step + 1)) - step
        # Reflect off a floor so that a long walk can never reach zero or negative prices.
        floor = self.spread + step
        if bid_pts < floor:
            bid_pts = 2 * floor - bid_pts
        # _set_bid inlined: this runs for every tick of every symbol.
        self.bid_pts = bid_pts
        self.ask_pts = bid_pts + self.spread
        self.bid = bid_pts / self.scale
        self.ask = self.ask_pts / self.scale
        self.mid = (self.bid + self.ask) / 2.0
        self._count_tick()

    def _count_tick(self) -> None:
        ticks = self.ticks + 1
        self.ticks = ticks
        if not ticks & _RNG_MASK:
            self.rng = _walk_rng(self.seed, self.spec.name, ticks >> _RNG_BLOCK_BITS)

    def jump(self, bid_pts: int) -> None:
        """A tick at ``bid_pts`` (a replayed or test price); the walk goes on from there."""
        self._set_bid(max(1, bid_pts))
        # The walk's draw for this tick is spent all the same, so the path after a jump
        # depends only on how many ticks there were.
        self.rng.random()
        self._count_tick()

    def restore(self, bid_pts: int, ticks: int, time_msc: int) -> None:
        """Put the market at a saved price and tick count; the walk continues from there."""
        self._set_bid(bid_pts)
        self.ticks = ticks
        self.time_msc = time_msc
        rng = _walk_rng(self.seed, self.spec.name, ticks >> _RNG_BLOCK_BITS)
        draw = rng.random
        for _ in range(ticks & _RNG_MASK):
            draw()
        self.rng = rng
        self.snap_key = None

    def triggered(self) -> bool:
        """Whether the current prices reach one of the trigger thresholds."""
        return (
            self.ask_pts <= self.ask_le
            or self.ask_pts >= self.ask_ge
            or self.bid_pts <= self.bid_le
            or self.bid_pts >= self.bid_ge
        )

    def arm(self, kind: int, pts: int) -> None:
        """Add one trigger: ``kind`` 0 ask <= pts, 1 ask >= pts, 2 bid <= pts, 3 bid >= pts."""
        if kind == 0:
            self.ask_le = max(self.ask_le, pts)
        elif kind == 1:
            self.ask_ge = min(self.ask_ge, pts)
        elif kind == 2:
            self.bid_le = max(self.bid_le, pts)
        else:
            self.bid_ge = min(self.bid_ge, pts)
        self.armed = True

    def rearm(self) -> None:
        """Recompute the thresholds from the working orders and position stops."""
        self.ask_le = self.bid_le = -_NEVER
        self.ask_ge = self.bid_ge = _NEVER
        self.armed = False
        for o in self.orders.values():
            self.arm(*o.trigger())
        scale = self.scale
        for p in self.positions.values():
            buy = p.side == POSITION_TYPE_BUY
            if p.sl:
                self.arm(2 if buy else 1, round(p.sl * scale))
            if p.tp:
                self.arm(3 if buy else 0, round(p.tp * scale))

    def available(self, buy: bool) -> float:
        """Lots a fill can take at the current price level."""
        if self.liq_tick != self.ticks:
            return self.liquidity
        return self.liq_buy if buy else self.liq_sell

    def consume(self, buy: bool, volume: float) -> None:
        if self.liquidity == math.inf:
            return
        if self.liq_tick != self.ticks:
            self.liq_tick = self.ticks
            self.liq_buy = self.liq_sell = self.liquidity
        if buy:
            self.liq_buy = max(0.0, round(self.liq_buy - volume, 8))
        else:
            self.liq_sell = max(0.0, round(self.liq_sell - volume, 8))

    def pts(self, price: float) -> int:
        return round(price * self.scale)

    def floating(self) -> float:
        """Unrounded floating profit of all open positions on this symbol, account currency."""
        gross = (self.bid * self.buy_volume - self.buy_cost) + (
            self.sell_cost - self.ask * self.sell_volume
        )
        return gross * self.contract * self.rate()

    def margin(self, leverage: int) -> float:
        volume = self.buy_volume + self.sell_volume
        return volume * self.contract * self.mid / leverage * self.rate()

    def margin_of(self, volume: float, leverage: int) -> float:
        return volume * self.contract * self.mid / leverage * self.rate()


def _walk_rng(seed: int, symbol: str, block: int) -> random.Random:
    return random.Random(f"{seed}:{symbol}:{block}")


def _shift(exposure: list[float], side: int, volume: float, price: float) -> None:
    """Add ``volume`` at ``price`` to one side of ``[buy_vol, buy_cost, sell_vol, sell_cost]``.

    A negative ``volume`` removes exposure; the sums come out bit-identical to subtracting.
    """
    i = 0 if side == POSITION_TYPE_BUY else 2
    exposure[i] += volume
    exposure[i + 1] += volume * price


def _one() -> float:
    return 1.0


def _live_rate(m: _Market, *, invert: bool) -> Callable[[], float]:
    if invert:
        return lambda: 1.0 / m.mid
    return lambda: m.mid


def _end_of_day(t: float) -> int:
    """The midnight (UTC, epoch seconds) that ends the day holding ``t``."""
    return (int(t) // _DAY_S + 1) * _DAY_S


def _floor_step(volume: float, step: float) -> float:
    return round(math.floor(volume / step + 1e-9) * step, 8)


class _Order:
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

    def __init__(self, market: _Market, s: OrderState) -> None:
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
        """``(kind, points)`` of the price that fires the order (see ``_Market.arm``)."""
        t = self.type
        pts = self.market.pts(self.price_open)
        if t == ORDER_TYPE_BUY:
            return 0, _NEVER  # the rest of a RETURN market order: fills at any ask
        if t == ORDER_TYPE_SELL:
            return 3, -_NEVER
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
_POSITION_TAIL = struct.Struct("<BdBd")
_PRICE_CURRENT_TAG = 6 << 3 | 1
_PROFIT_TAG = 9 << 3 | 1
_POSITIONS_TAG = b"\x0a"  # PositionSnapshot.positions: field 1, length-delimited


class _Position:
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
        market: _Market,
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
        ``_POSITION_TAIL`` (price_current, profit): only the tail is encoded when prices move.
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
            head = self._static = (
                _POSITIONS_TAG + varint(len(static) + _POSITION_TAIL.size) + static
            )
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
        # SimBroker._render must use the very same formula.
        return round(diff * volume * self.market.contract * self.market.rate() * 100.0) / 100.0


class _Block:
    """Snapshot entries of the open positions whose tickets share ``ticket >> _BLOCK_BITS``."""

    __slots__ = ("blob", "entries")

    def __init__(self) -> None:
        self.entries: dict[int, bytes] = {}
        self.blob: bytes | None = None

    def joined(self) -> bytes:
        blob = self.blob
        if blob is None:
            blob = self.blob = b"".join(self.entries.values())
        return blob


class _Plan:
    """One deal worked out before anything changes (see ``SimBroker._plan``).

    The journal must have a change before it takes effect, and a change the journal cannot take
    must leave the account as it was: so a deal is first planned (every number after it), then
    journaled, then applied.
    """

    __slots__ = (
        "balance",
        "closing",
        "comment",
        "deal",
        "deal_type",
        "entry",
        "exposure",
        "magic",
        "market",
        "new_open",
        "new_side",
        "new_sl",
        "new_tp",
        "new_volume",
        "order",
        "price",
        "profit",
        "reason",
        "request_id",
        "side",
        "target",
        "ticket",
        "time_msc",
        "volume",
    )

    balance: float
    closing: bool
    comment: str
    deal: int
    deal_type: int
    entry: int
    exposure: list[float]
    magic: int
    market: _Market
    new_open: float
    new_side: int
    new_sl: float
    new_tp: float
    new_volume: float
    order: int
    price: float
    profit: float
    reason: int
    request_id: int
    side: int
    target: _Position | None
    ticket: int
    time_msc: int
    volume: float

    def report(self) -> pb.DealReport:
        return pb.DealReport(
            ticket=self.deal,
            order=self.order,
            position_id=self.ticket,
            symbol=self.market.spec.name,
            type=self.deal_type,
            entry=self.entry,
            volume=self.volume,
            price=self.price,
            profit=self.profit,
            magic=self.magic,
            comment=self.comment,
            time_msc=self.time_msc,
            request_id=self.request_id,
            reason=self.reason,
        )

    def entry_record(self) -> DealEntry:
        """The deal as the journal records it, with the account after it."""
        m = self.market
        e = self.exposure
        return DealEntry(
            self.deal,
            self.order,
            self.ticket,
            self.request_id,
            self.magic,
            self.time_msc,
            self.deal_type,
            self.entry,
            self.reason,
            self.volume,
            self.price,
            self.profit,
            self.balance,
            m.bid_pts,
            m.ticks,
            m.time_msc,
            e[0],
            e[1],
            e[2],
            e[3],
            self.new_side,
            self.new_volume,
            self.new_open,
            self.new_sl,
            self.new_tp,
            m.spec.name,
            self.comment,
        )

    def encode(self) -> bytes:
        return encode_deal(self.entry_record())


def _filled_market_order(
    ticket: int,
    m: _Market,
    side: int,
    volume_initial: float,
    volume_current: float,
    state: int,
    price: float,
    filling: int,
    reason: int,
    magic: int,
    time_msc: int,
    position_id: int,
    comment: str,
    order_type: int | None = None,
    position_by_id: int = 0,
) -> OrderState:
    """A market order as it goes to the history (what the journal history makes up from a deal
    when it has no ORDER entry, see ``mt5exec.sim.state.history``)."""
    return OrderState(
        ticket,
        m.spec.name,
        side if order_type is None else order_type,
        state,
        filling,
        ORDER_TIME_GTC,
        reason,
        volume_initial,
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
        position_id,
        position_by_id,
        comment,
    )


class SimBroker:
    """A simulated MT5 account on a simulated market.

    ``clock`` returns seconds since the epoch (``time.time`` by default); it is the server's
    clock: it stamps ticks, deals, positions and results, and it decides sessions and
    expirations. Tests inject a clock to make every output reproducible.
    """

    def __init__(
        self,
        config: SimConfig,
        clock: Callable[[], float] = time.time,
        *,
        state: AccountState | None = None,
    ) -> None:
        """A fresh account from ``config``, or the saved account ``state`` when it is given.

        A saved account keeps its balance, positions, orders, ticket counters and prices; from
        ``config`` only the symbols, seed, tick rate, leverage and trading rules apply
        (``ValueError`` if its login, currency or margin mode differ, or if it holds positions
        or orders on symbols not configured).
        """
        if not config.symbols:
            raise ValueError("SimConfig.symbols: at least one symbol is needed")
        unknown = [s for s in config.symbols if s not in DEFAULT_SYMBOLS]
        if unknown:
            known = ", ".join(DEFAULT_SYMBOLS)
            raise ValueError(f"SimConfig.symbols: unknown symbol {unknown[0]!r} (known: {known})")
        if config.margin_mode not in ("hedging", "netting"):
            raise ValueError(
                f"SimConfig.margin_mode: {config.margin_mode!r} is not 'hedging' or 'netting'"
            )
        if config.leverage <= 0:
            raise ValueError(f"SimConfig.leverage: must be positive, got {config.leverage}")
        if not math.isfinite(config.initial_balance):
            raise ValueError("SimConfig.initial_balance: must be finite")
        if not (0.0 <= config.stop_out_level <= config.margin_call_level):
            raise ValueError(
                "SimConfig: need 0 <= stop_out_level <= margin_call_level, got "
                f"{config.stop_out_level} and {config.margin_call_level}"
            )
        stray = sorted(set(config.symbol_settings) - {"*", *config.symbols})
        if stray:
            raise ValueError(f"SimConfig.symbol_settings: {stray[0]!r} is not a configured symbol")
        self.config = config
        self._clock = clock
        now = self._now_msc()
        default = config.symbol_settings.get("*", SymbolSettings())
        # dict.fromkeys keeps the configured order and drops duplicates.
        self._markets: dict[str, _Market] = {}
        for name in dict.fromkeys(config.symbols):
            own = config.symbol_settings.get(name)
            spec, rules = resolve(DEFAULT_SYMBOLS[name], own.over(default) if own else default)
            self._markets[name] = _Market(spec, rules, config.seed, now)
        for m in self._markets.values():
            m.rate = self._rate_to_account(m.spec.currency_profit)
        self._hedging = config.margin_mode == "hedging"
        self._leverage = config.leverage
        self.balance: float = round(config.initial_balance, 2)
        self.faults = FaultState()
        self._positions: dict[int, _Position] = {}
        # Netting accounts hold at most one position per symbol.
        self._netting: dict[str, _Position] = {}
        # Working orders of all symbols, by ticket.
        self._orders: dict[int, _Order] = {}
        self._next_order = 100_000_001
        self._next_deal = 500_000_001
        # The PositionSnapshot, cached in pieces: each open position's serialized entry lives in
        # the block of its ticket (b"" = render it with its market), each block caches the join
        # of its entries, and _blob the join of the blocks while nothing changed. A fill then
        # encodes one entry and joins one block plus the block blobs: the per-fill cost stays
        # nearly flat as positions pile up (the protocol still sends them all after each fill).
        # Blocks are created in ticket order, so the snapshot lists positions in ticket order.
        self._blocks: dict[int, _Block] = {}
        self._blob: bytes | None = None
        # The durable journal (SimBroker.open), or None; every change goes to _sink, which is
        # the journal or, without one, a bounded in-memory history for reconciliation.
        self.journal: StateStore | None = None
        self._memory: MemoryJournal | None = MemoryJournal()
        self._sink: Journal = self._memory
        # What SimBroker.open recovered, for the worker to report.
        self.restored: Loaded | None = None
        # True from a change's journal write until it took effect in memory: a snapshot taken
        # then (an exception or signal cut the change short) would claim a record it lacks.
        self._in_trade = False
        # Changes made without a request, for the worker to report.
        self.activity = Activity()
        self._slip_rng = random.Random(f"{config.seed}:slippage")
        self._margin_call = False
        # Epoch seconds of the next expiration or session change; inf: none pending.
        self._next_timer = math.inf
        self._any_open = True
        if state is not None:
            self._restore(state)
        # M1 bars from the ticks from now on, a seeded backfill before (mt5exec.sim.bars).
        self.bars = {
            name: Bars(config.seed, name, m.step, m.spread, self._clock(), m.bid_pts, m.scale)
            for name, m in self._markets.items()
        }
        # Every tick from now on (mt5exec.sim.tape).
        self.tapes = {name: Tape() for name in self._markets}
        self._sessions(self._clock(), report=False)
        self._plan_timer()

    @classmethod
    def open(
        cls,
        config: SimConfig,
        path: str | os.PathLike[str],
        clock: Callable[[], float] = time.time,
        retention: Retention | None = None,
    ) -> SimBroker:
        """The account saved at ``path`` (a fresh one if there is none), journaled from now on.

        Damaged files are repaired or set aside (see ``mt5exec.sim.state``); ``StateError`` only
        when the files cannot be used at all. ``close`` writes the final snapshot. ``retention``:
        how much history the journal keeps when it is compacted (``maybe_checkpoint``).
        """
        store, loaded = StateStore.open(
            path,
            login=config.login,
            currency=config.currency,
            margin_mode=config.margin_mode,
            symbols=config.symbols,
            retention=retention,
        )
        try:
            broker = cls(config, clock, state=loaded.account)
            for name, saved in loaded.markets.items():
                m = broker._markets.get(name)
                if m is not None and saved.ticks >= m.ticks:
                    m.restore(saved.bid_pts, saved.ticks, saved.time_msc)
            broker._next_order = max(broker._next_order, loaded.next_order) + loaded.skip_tickets
            broker._next_deal = max(broker._next_deal, loaded.next_deal) + loaded.skip_tickets
            store.begin(broker.export_state())
        except OSError as e:
            store.close()
            raise StateError(f"{path}: cannot write the state files: {e}") from e
        except BaseException:
            store.close()
            raise
        broker.journal = store
        broker._sink = store
        broker._memory = None
        broker.restored = loaded
        return broker

    def _restore(self, state: AccountState) -> None:
        config = self.config
        if (state.login, state.currency, state.margin_mode) != (
            config.login,
            config.currency,
            config.margin_mode,
        ):
            raise ValueError(
                f"saved account {state.login} ({state.currency}, {state.margin_mode}) is not the "
                f"configured {config.login} ({config.currency}, {config.margin_mode})"
            )
        self.balance = state.balance
        self._next_order = max(self._next_order, state.next_order)
        self._next_deal = max(self._next_deal, state.next_deal)
        for name, saved in state.markets.items():
            m = self._markets.get(name)
            if m is not None:
                m.restore(saved.bid_pts, saved.ticks, saved.time_msc)
                m.buy_volume, m.buy_cost = saved.buy_volume, saved.buy_cost
                m.sell_volume, m.sell_cost = saved.sell_volume, saved.sell_cost
        for p in state.positions.values():
            m = self._markets.get(p.symbol)
            if m is None:
                raise ValueError(f"saved position {p.ticket} is on unconfigured {p.symbol}")
            pos = _Position(
                p.ticket,
                m,
                p.side,
                p.volume,
                p.price_open,
                p.time_msc,
                p.magic,
                p.comment,
                p.sl,
                p.tp,
            )
            self._positions[p.ticket] = pos
            m.positions[p.ticket] = pos
            self._set_entry(p.ticket, b"")
            if not self._hedging:
                self._netting[p.symbol] = pos
            self._next_order = max(self._next_order, p.ticket + 1)
            if p.symbol not in state.markets:
                # No saved sums (not written by this module): rebuild them from the positions.
                exposure = [m.buy_volume, m.buy_cost, m.sell_volume, m.sell_cost]
                _shift(exposure, p.side, p.volume, p.price_open)
                m.buy_volume, m.buy_cost, m.sell_volume, m.sell_cost = exposure
        for o in state.orders.values():
            m = self._markets.get(o.symbol)
            if m is None:
                raise ValueError(f"saved order {o.ticket} is on unconfigured {o.symbol}")
            order = _Order(m, o)
            self._orders[o.ticket] = order
            m.orders[o.ticket] = order
            self._next_order = max(self._next_order, o.ticket + 1)
        for m in self._markets.values():
            m.rearm()

    def export_state(self) -> AccountState:
        """The account as ``mt5exec.sim.state`` saves it (everything but the history)."""
        config = self.config
        return AccountState(
            login=config.login,
            currency=config.currency,
            margin_mode=config.margin_mode,
            balance=self.balance,
            next_order=self._next_order,
            next_deal=self._next_deal,
            markets={
                name: MarketState(
                    m.bid_pts,
                    m.ticks,
                    m.time_msc,
                    m.buy_volume,
                    m.buy_cost,
                    m.sell_volume,
                    m.sell_cost,
                )
                for name, m in self._markets.items()
            },
            positions={
                t: PositionState(
                    t,
                    p.market.spec.name,
                    p.side,
                    p.volume,
                    p.price_open,
                    p.time_msc,
                    p.sl,
                    p.tp,
                    p.magic,
                    p.comment,
                )
                for t, p in self._positions.items()
            },
            # price_current is not state: pin it so that equal accounts export equal states.
            orders={t: o.record(price_current=0.0) for t, o in self._orders.items()},
        )

    # -- persistence ------------------------------------------------------------------------

    def checkpoint(self) -> bool:
        """Write a snapshot now (the journal alone already holds every change); True if it did."""
        if self.journal is None or self._in_trade:
            return False
        self.journal.snapshot(self.export_state())
        return True

    def maybe_checkpoint(self, every: int = CHECKPOINT_EVERY, *, wait: bool = False) -> bool:
        """Snapshot once ``every`` changes were journaled since the last one; True if it did.

        Also compacts the journal when it is due: starts a compaction (on a thread), and puts
        it in place with a snapshot at a later call once its thread is done (``wait``: at
        once). Raises ``OSError`` when a snapshot or a compaction failed (try again later)."""
        journal = self.journal
        if journal is None or self._in_trade:
            return False
        if journal.finish_compaction(wait=wait):
            return self.checkpoint()  # the compacted journal's first snapshot
        if journal.compaction_due:
            journal.start_compaction(self.export_state(), self._now_msc())
            if wait and journal.finish_compaction(wait=True):
                return self.checkpoint()
        if journal.records_since_snapshot < every:
            return False
        return self.checkpoint()

    def save_prices(self) -> None:
        """Save the latest prices, so that a crash does not send the walk back to the last trade."""
        if self.journal is not None:
            self.journal.save_prices(
                (name, m.bid_pts, m.ticks, m.time_msc) for name, m in self._markets.items()
            )

    def close(self, *, snapshot: bool = True) -> None:
        """Detach the journal, writing a final snapshot first unless ``snapshot`` is False."""
        journal = self.journal
        if journal is None:
            return
        self.journal = None
        self._memory = MemoryJournal()
        self._sink = self._memory
        try:
            if snapshot and not self._in_trade:
                journal.snapshot(self.export_state())
        finally:
            journal.close()

    # -- clock and symbols ------------------------------------------------------------------

    def _now_msc(self) -> int:
        return int(self._clock() * 1000.0)

    def now(self) -> float:
        """The server's clock, epoch seconds."""
        return self._clock()

    @property
    def symbols(self) -> list[str]:
        return list(self._markets)

    @property
    def trading_symbols(self) -> list[str]:
        """The symbols inside their sessions (as of the last ``poll``): the ones that tick."""
        return [name for name, m in self._markets.items() if m.is_open]

    def symbol_specs(self) -> list[SymbolSpec]:
        return [m.spec for m in self._markets.values()]

    def symbol_infos(self) -> list[pb.SymbolInfo]:
        return [m.spec.to_proto() for m in self._markets.values()]

    def symbol_rules(self, symbol: str) -> SymbolRules:
        """``symbol``'s trading rules (execution, sessions); KeyError when unknown."""
        return self._markets[symbol].rules

    def margin_at(self, symbol: str, volume: float, price: float = 0.0) -> float:
        """Margin of ``volume`` lots of ``symbol`` in the account currency, by the rule the
        fills use (at ``price``; 0: at the mid); KeyError when the symbol is unknown."""
        m = self._markets[symbol]
        if not price:
            return m.margin_of(volume, self.config.leverage)
        return volume * m.contract * price / self.config.leverage * m.rate()

    def profit_of(
        self, symbol: str, buy: bool, volume: float, price_open: float, price_close: float
    ) -> float:
        """Profit of a position from ``price_open`` to ``price_close`` in the account currency,
        rounded as a closing deal's is; KeyError when the symbol is unknown."""
        m = self._markets[symbol]
        diff = price_close - price_open if buy else price_open - price_close
        return round(diff * volume * m.contract * m.rate() * 100.0) / 100.0

    def _rate_to_account(self, currency: str) -> Callable[[], float]:
        """How to turn an amount in ``currency`` into the account currency, at current prices.

        Approximate on purpose: a direct pair among the configured symbols is used live, a
        default symbol's start price otherwise, and 1.0 when no pair links the two currencies.
        """
        account = self.config.currency
        if currency == account:
            return _one
        for m in self._markets.values():
            if m.spec.currency_base == currency and m.spec.currency_profit == account:
                return _live_rate(m, invert=False)
            if m.spec.currency_base == account and m.spec.currency_profit == currency:
                return _live_rate(m, invert=True)
        for spec in DEFAULT_SYMBOLS.values():
            if spec.currency_base == currency and spec.currency_profit == account:
                rate = spec.start_price
                return lambda: rate
            if spec.currency_base == account and spec.currency_profit == currency:
                rate = 1.0 / spec.start_price
                return lambda: rate
        return _one

    # -- prices -----------------------------------------------------------------------------

    def advance(self, symbol: str, time_msc: int | None = None) -> tuple[float, float]:
        """Move ``symbol`` one tick along its random walk; returns the new ``(bid, ask)``.

        The cheap form for the worker's tick loop, which stamps a whole batch with one time.
        Orders and stops the tick reaches fire at once (their changes go to ``activity``).
        """
        m = self._markets[symbol]
        m.advance()
        m.time_msc = self._now_msc() if time_msc is None else time_msc
        self.bars[symbol].on_tick(m.time_msc, m.bid_pts, m.spread)
        self.tapes[symbol].add(m.time_msc, m.bid_pts, m.ask_pts)
        if m.armed and m.triggered():
            self._fire(m)
        return m.bid, m.ask

    def set_price(
        self, symbol: str, bid: float, time_msc: int | None = None
    ) -> tuple[float, float]:
        """A tick of ``symbol`` at ``bid`` (ask = bid + spread) instead of the walk's next step,
        as a replayed tick would be; triggers fire as on any tick. Returns ``(bid, ask)``."""
        m = self._markets[symbol]
        m.jump(m.pts(bid))
        m.time_msc = self._now_msc() if time_msc is None else time_msc
        self.bars[symbol].on_tick(m.time_msc, m.bid_pts, m.spread)
        self.tapes[symbol].add(m.time_msc, m.bid_pts, m.ask_pts)
        if m.armed and m.triggered():
            self._fire(m)
        return m.bid, m.ask

    def tick(self, symbol: str, time_msc: int | None = None) -> pb.Tick:
        """Move ``symbol`` one tick and return it as a protocol ``Tick``."""
        bid, ask = self.advance(symbol, time_msc)
        return pb.Tick(symbol=symbol, bid=bid, ask=ask, time_msc=self._markets[symbol].time_msc)

    def quote(self, symbol: str) -> tuple[float, float, int]:
        """The latest ``(bid, ask, time_msc)`` of ``symbol``, without moving it."""
        m = self._markets[symbol]
        return m.bid, m.ask, m.time_msc

    # -- account and positions --------------------------------------------------------------

    @property
    def has_positions(self) -> bool:
        return bool(self._positions)

    @property
    def position_count(self) -> int:
        return len(self._positions)

    @property
    def order_count(self) -> int:
        """Working (pending) orders."""
        return len(self._orders)

    def _floating_and_margin(self) -> tuple[float, float]:
        profit = 0.0
        margin = 0.0
        lev = self._leverage
        for m in self._markets.values():
            if m.positions:
                profit += m.floating()
                margin += m.margin(lev)
        return profit, margin

    def equity(self) -> float:
        profit, _ = self._floating_and_margin()
        return round(self.balance + profit, 2)

    def margin_level(self) -> float:
        """Equity / margin in %, 0 without margin (MT5's ACCOUNT_MARGIN_LEVEL)."""
        profit, margin = self._floating_and_margin()
        return (self.balance + profit) / margin * 100.0 if margin > 0 else 0.0

    def account_snapshot(self) -> pb.AccountSnapshot:
        profit, margin = self._floating_and_margin()
        profit = round(profit, 2)
        margin = round(margin, 2)
        equity = round(self.balance + profit, 2)
        return pb.AccountSnapshot(
            login=self.config.login,
            currency=self.config.currency,
            balance=self.balance,
            equity=equity,
            margin=margin,
            margin_free=round(equity - margin, 2),
            margin_level=round(equity / margin * 100.0, 2) if margin > 0 else 0.0,
            leverage=self._leverage,
            profit=profit,
            margin_mode=(
                ACCOUNT_MARGIN_MODE_RETAIL_HEDGING
                if self._hedging
                else ACCOUNT_MARGIN_MODE_RETAIL_NETTING
            ),
            server=SERVER_NAME,
            time_msc=self._now_msc(),
        )

    def orders_snapshot(self) -> pb.OrderSnapshot:
        """All working orders, in ticket order."""
        return pb.OrderSnapshot(orders=[o.info() for o in self._orders.values()])

    def positions_snapshot_bytes(self) -> bytes:
        """The serialized ``PositionSnapshot`` of all open positions (the worker's fast path).

        Cached: entries are encoded again only for markets whose prices moved and for positions
        a fill changed, so repeated snapshots cost O(symbols) plus one join of the entries.
        """
        blob = self._blob
        for m in self._markets.values():
            if m.positions:
                key = (m.bid_pts, m.ask_pts, m.rate())
                if key != m.snap_key:
                    self._render(m, key)
                    blob = None
        if blob is None:
            blob = self._blob = b"".join([b.joined() for b in self._blocks.values()])
        return blob

    def _set_entry(self, ticket: int, entry: bytes) -> None:
        block = self._blocks.get(ticket >> _BLOCK_BITS)
        if block is None:
            block = self._blocks[ticket >> _BLOCK_BITS] = _Block()
        block.entries[ticket] = entry
        block.blob = None

    def _drop_entry(self, ticket: int) -> None:
        block = self._blocks[ticket >> _BLOCK_BITS]
        del block.entries[ticket]
        if block.entries:
            block.blob = None
        else:
            del self._blocks[ticket >> _BLOCK_BITS]

    def _render(self, m: _Market, key: tuple[int, int, float]) -> None:
        """Encode the snapshot entries of all positions on ``m`` at the prices of ``key``."""
        blocks = self._blocks
        pack = _POSITION_TAIL.pack
        bid, ask = m.bid, m.ask
        contract = m.contract
        rate = key[2]
        for p in m.positions.values():
            if p.side == POSITION_TYPE_BUY:
                price = bid
                diff = price - p.price_open
            else:
                price = ask
                diff = p.price_open - price
            profit = round(diff * p.volume * contract * rate * 100.0) / 100.0
            block = blocks[p.ticket >> _BLOCK_BITS]
            block.entries[p.ticket] = (p._static or p.head()) + pack(
                _PRICE_CURRENT_TAG, price, _PROFIT_TAG, profit
            )
            block.blob = None
        m.snap_key = key

    def _entry(self, p: _Position) -> bytes:
        """The snapshot entry of one changed position, or b"" when its market needs a render."""
        m = p.market
        key = m.snap_key
        if key is None or key != (m.bid_pts, m.ask_pts, m.rate()):
            # The market's other entries are stale as well: render them all at the next snapshot.
            m.snap_key = None
            return b""
        if p.side == POSITION_TYPE_BUY:
            price = m.bid
            diff = price - p.price_open
        else:
            price = m.ask
            diff = p.price_open - price
        profit = round(diff * p.volume * m.contract * key[2] * 100.0) / 100.0
        return p.head() + _POSITION_TAIL.pack(_PRICE_CURRENT_TAG, price, _PROFIT_TAG, profit)

    def positions_snapshot(self) -> pb.PositionSnapshot:
        """All open positions, priced at the latest ticks."""
        return pb.PositionSnapshot.FromString(self.positions_snapshot_bytes())

    # -- faults -----------------------------------------------------------------------------

    def apply_fault(self, fault: pb.FaultInjection) -> None:
        """Record an injected fault.

        A non-zero ``delay_ms`` replaces the current delay and ``reject_next`` adds to the
        pending rejections; an empty ``FaultInjection`` clears both (proto3 cannot tell "set to
        0" from "not set", so this is the one way to turn the delay off).
        """
        f = self.faults
        if fault.ByteSize() == 0:
            f.delay_ms = 0
            f.reject_next = 0
            return
        if fault.delay_ms:
            f.delay_ms = fault.delay_ms
        f.reject_next += fault.reject_next
        if fault.freeze_ms:
            f.freezes += 1
        if fault.disconnect:
            f.disconnects += 1
        if fault.crash:
            f.crashes += 1

    # -- requests: entry point and shared checks -------------------------------------------

    def send(self, req: pb.OrderRequest) -> SendOutcome:
        """Execute one trade request, as ``order_send`` would on an MT5 terminal.

        With ``req.check_only`` it is checked exactly as a real send would be (``order_check``)
        and answered with retcode 0 or the error, plus the account after the hypothetical
        trade; nothing changes and nothing is journaled.
        """
        action = req.action
        try:
            if action == TRADE_ACTION_DEAL:
                return self._deal(req)
            if action == TRADE_ACTION_PENDING:
                return self._place(req)
            if action == TRADE_ACTION_MODIFY:
                return self._modify(req)
            if action == TRADE_ACTION_REMOVE:
                return self._remove(req)
            if action == TRADE_ACTION_SLTP:
                return self._sltp(req)
            if action == TRADE_ACTION_CLOSE_BY:
                return self._close_by(req)
            raise _Reject(TRADE_RETCODE_INVALID, f"unsupported trade action {action}")
        except _Reject as r:
            m = self._markets.get(req.symbol)
            if m is None:
                order = self._orders.get(req.order)
                m = order.market if order is not None else None
            return self._fail(req, r.retcode, r.comment, m, r.bid, r.ask)

    def _fail(
        self,
        req: pb.OrderRequest,
        retcode: int,
        comment: str,
        m: _Market | None,
        bid: float = 0.0,
        ask: float = 0.0,
    ) -> SendOutcome:
        result = pb.OrderResult(
            request_id=req.request_id,
            retcode=retcode,
            comment=comment,
            time_msc=self._now_msc(),
        )
        if bid:
            result.bid, result.ask = bid, ask
        elif m is not None:
            result.bid, result.ask = m.bid, m.ask
        if req.check_only:
            self._figures(result, None, 0.0, 0.0, 0.0)
        return SendOutcome(result)

    def _figures(
        self,
        result: pb.OrderResult,
        m: _Market | None,
        added: float,
        closed: float,
        realized: float,
    ) -> None:
        """Put the account after a hypothetical trade into a check result: ``added`` lots of
        new exposure and ``closed`` lots closed on ``m``, ``realized`` profit booked."""
        profit, margin = self._floating_and_margin()
        if m is not None:
            lev = self._leverage
            margin = max(0.0, margin + m.margin_of(added, lev) - m.margin_of(closed, lev))
        equity = round(self.balance + profit, 2)
        margin = round(margin, 2)
        result.balance = round(self.balance + realized, 2)
        result.equity = equity
        result.margin = margin
        result.margin_free = round(equity - margin, 2)
        result.margin_level = round(equity / margin * 100.0, 2) if margin > 0 else 0.0

    def _checked(
        self,
        req: pb.OrderRequest,
        m: _Market | None,
        added: float = 0.0,
        closed: float = 0.0,
        realized: float = 0.0,
    ) -> SendOutcome:
        result = pb.OrderResult(
            request_id=req.request_id,
            retcode=TRADE_RETCODE_CHECK_OK,
            comment="Done",
            time_msc=self._now_msc(),
        )
        if m is not None:
            result.bid, result.ask = m.bid, m.ask
        self._figures(result, m, added, closed, realized)
        return SendOutcome(result)

    def _market_of(self, req: pb.OrderRequest) -> _Market:
        m = self._markets.get(req.symbol)
        if m is None:
            raise _Reject(TRADE_RETCODE_INVALID, f"unknown symbol {req.symbol!r}")
        return m

    def _volume(self, m: _Market, volume: float) -> float:
        spec = m.spec
        # `not (volume > 0)` also catches NaN.
        if not (volume > 0.0) or math.isinf(volume):
            raise _Reject(TRADE_RETCODE_INVALID_VOLUME, f"invalid volume {volume}")
        if volume < spec.volume_min - _VOLUME_EPS or volume > spec.volume_max + _VOLUME_EPS:
            raise _Reject(
                TRADE_RETCODE_INVALID_VOLUME,
                f"volume {volume} outside [{spec.volume_min}, {spec.volume_max}]",
            )
        steps = volume / spec.volume_step
        whole = round(steps)
        if abs(steps - whole) > 1e-6:
            raise _Reject(
                TRADE_RETCODE_INVALID_VOLUME,
                f"volume {volume} is not a multiple of {spec.volume_step}",
            )
        return round(whole * spec.volume_step, 8)

    def _check_open(self, m: _Market) -> None:
        """Trading allowed on ``m`` at all: not disabled, inside a session."""
        if m.spec.trade_mode == SYMBOL_TRADE_MODE_DISABLED:
            raise _Reject(TRADE_RETCODE_TRADE_DISABLED, "trading is disabled")
        sessions = m.rules.sessions
        if not sessions.always and not sessions.is_open(self._clock()):
            raise _Reject(TRADE_RETCODE_MARKET_CLOSED, f"market closed ({sessions.name} sessions)")

    def _check_trade_mode(self, m: _Market, buy: bool, added: float) -> None:
        self._check_open(m)
        if added > 0.0:
            trade_mode = m.spec.trade_mode
            if trade_mode == SYMBOL_TRADE_MODE_CLOSEONLY:
                raise _Reject(TRADE_RETCODE_CLOSE_ONLY, "only closing is allowed")
            if trade_mode == SYMBOL_TRADE_MODE_LONGONLY and not buy:
                raise _Reject(TRADE_RETCODE_LONG_ONLY, "only buying is allowed")
            if trade_mode == SYMBOL_TRADE_MODE_SHORTONLY and buy:
                raise _Reject(TRADE_RETCODE_SHORT_ONLY, "only selling is allowed")

    def _check_filling(self, m: _Market, filling: int, *, pending: bool, limit: bool) -> None:
        """MT5's filling rules (see the module docstring)."""
        flags = m.spec.filling_mode
        if filling == ORDER_FILLING_FOK:
            ok = bool(flags & SYMBOL_FILLING_FOK)
        elif filling == ORDER_FILLING_IOC:
            ok = bool(flags & SYMBOL_FILLING_IOC)
        elif filling == ORDER_FILLING_RETURN:
            ok = pending or m.rules.execution == SYMBOL_TRADE_EXECUTION_EXCHANGE
        elif filling == ORDER_FILLING_BOC:
            ok = limit and bool(flags & SYMBOL_FILLING_BOC)
        else:
            ok = False
        if not ok:
            raise _Reject(TRADE_RETCODE_INVALID_FILL, f"filling type {filling} not allowed")

    def _check_stops(self, m: _Market, buy: bool, ref_pts: int, sl: float, tp: float) -> None:
        """SL below and TP above ``ref_pts`` for a buy (the other way round for a sell), each
        at least the symbol's stops level away (and never on it)."""
        level = m.spec.stops_level
        for what, value, below in (("stop loss", sl, buy), ("take profit", tp, not buy)):
            if not value:
                continue
            if not math.isfinite(value) or value < 0.0:
                raise _Reject(TRADE_RETCODE_INVALID_STOPS, f"invalid {what} {value}")
            gap = ref_pts - m.pts(value) if below else m.pts(value) - ref_pts
            if gap <= 0 or gap < level:
                ref = ref_pts / m.scale
                raise _Reject(
                    TRADE_RETCODE_INVALID_STOPS,
                    f"{what} {value} must be {'below' if below else 'above'} {ref} "
                    f"by at least {max(level, 1)} points",
                )

    def _check_margin(self, m: _Market, added: float) -> None:
        if added > 0.0:
            profit, margin = self._floating_and_margin()
            free = self.balance + profit - margin
            required = m.margin_of(added, self._leverage)
            if required > free:
                raise _Reject(
                    TRADE_RETCODE_NO_MONEY,
                    f"no money: margin {required:.2f} needed, {free:.2f} free",
                )

    def _take_reject(self) -> None:
        # A server-side rejection comes after the terminal's own checks, as on a real account.
        faults = self.faults
        if faults.reject_next > 0:
            faults.reject_next -= 1
            faults.rejected += 1
            raise _Reject(TRADE_RETCODE_REJECT, "rejected (fault injection)")

    def _slip(self, m: _Market) -> int:
        s = m.rules.slippage_points
        return self._slip_rng.randint(-s, s) if s else 0

    def _expiration(self, type_time: int, expiration: int) -> int:
        """Epoch seconds at which a pending order expires (0: never); checks the request."""
        now = self._clock()
        if type_time == ORDER_TIME_GTC:
            return 0
        if type_time == ORDER_TIME_DAY:
            return _end_of_day(now)
        if type_time == ORDER_TIME_SPECIFIED:
            if expiration <= now:
                raise _Reject(
                    TRADE_RETCODE_INVALID_EXPIRATION,
                    f"expiration {expiration} is not in the future"
                    if expiration
                    else "no expiration given",
                )
            return expiration
        if type_time == ORDER_TIME_SPECIFIED_DAY:
            end = _end_of_day(expiration) if expiration > 0 else 0
            if end <= now:
                raise _Reject(
                    TRADE_RETCODE_INVALID_EXPIRATION,
                    f"expiration day of {expiration} is over"
                    if expiration
                    else "no expiration given",
                )
            return end
        raise _Reject(TRADE_RETCODE_INVALID_EXPIRATION, f"unknown expiration type {type_time}")

    def _commit(self, *entries: bytes) -> None:
        """Journal one change; a change the journal cannot take is refused (and not made)."""
        self._in_trade = True
        try:
            self._sink.commit(*entries)
        except OSError as e:
            self._in_trade = False
            raise _Reject(TRADE_RETCODE_ERROR, f"trade not saved: {e.strerror or e}") from None

    def _commit_plan(self, plan: _Plan, extra: bytes = b"") -> None:
        self._in_trade = True
        try:
            self._sink.commit_deal(plan.entry_record(), extra)
        except OSError as err:
            self._in_trade = False
            raise _Reject(TRADE_RETCODE_ERROR, f"trade not saved: {err.strerror or err}") from None

    # -- deals ------------------------------------------------------------------------------

    def _plan(
        self,
        m: _Market,
        side: int,
        volume: float,
        price: float,
        order: int,
        target: _Position | None,
        request_id: int,
        magic: int,
        comment: str,
        reason: int,
        sl: float,
        tp: float,
        now: int,
        *,
        deal: int = 0,
        balance: float | None = None,
        exposure: list[float] | None = None,
        others: bool | None = None,
    ) -> _Plan:
        """Work out a deal of ``volume`` at ``price`` on ``target`` (None: a new position)
        without changing anything. ``balance``/``exposure``: the account before it, when a
        deal planned earlier in the same change comes first; ``others``: whether positions
        other than ``target`` stay open on ``m`` (default: whether there are any)."""
        plan = _Plan()
        plan.market = m
        plan.side = side
        plan.volume = volume
        plan.price = price
        plan.order = order
        plan.deal = deal or self._next_deal
        plan.target = target
        plan.request_id = request_id
        plan.magic = magic
        plan.comment = comment
        plan.reason = reason
        plan.time_msc = now
        plan.deal_type = DEAL_TYPE_BUY if side == ORDER_TYPE_BUY else DEAL_TYPE_SELL
        balance = self.balance if balance is None else balance
        if exposure is None:
            exposure = [m.buy_volume, m.buy_cost, m.sell_volume, m.sell_cost]
        profit = 0.0
        closing = False
        if target is None:
            ticket, new_side, new_volume, new_open = order, side, volume, price
            new_sl, new_tp = sl, tp
            _shift(exposure, side, volume, price)
            entry = DEAL_ENTRY_IN
        elif target.side == side:
            # Netting: adding to the position moves its open price to the volume-weighted mean;
            # stops given with the order replace the position's.
            ticket, new_side = target.ticket, side
            new_volume = round(target.volume + volume, 8)
            new_open = (target.price_open * target.volume + price * volume) / new_volume
            new_sl, new_tp = sl or target.sl, tp or target.tp
            _shift(exposure, side, volume, price)
            entry = DEAL_ENTRY_IN
        else:
            ticket = target.ticket
            closed = min(volume, target.volume)
            profit = target.profit_at(price, closed)
            balance = round(balance + profit, 2)
            remaining = round(target.volume - volume, 8)
            _shift(exposure, target.side, -closed, target.price_open)
            if remaining > _VOLUME_EPS:
                new_side, new_volume, new_open = target.side, remaining, target.price_open
                new_sl, new_tp = sl or target.sl, tp or target.tp
                entry = DEAL_ENTRY_OUT
            elif remaining < -_VOLUME_EPS:
                # Netting reversal: the position keeps its ticket and flips side (MT5 keeps
                # the position identifier across a reversal); the old stops go with the old side.
                new_side, new_volume, new_open = side, -remaining, price
                new_sl, new_tp = sl, tp
                _shift(exposure, side, new_volume, price)
                entry = DEAL_ENTRY_INOUT
            else:
                new_side, new_volume, new_open = target.side, 0.0, target.price_open
                new_sl, new_tp = target.sl, target.tp
                closing = True
                entry = DEAL_ENTRY_OUT
                if not (len(m.positions) > 1 if others is None else others):
                    # Flat: drop accumulated rounding error instead of carrying it forever.
                    exposure = [0.0, 0.0, 0.0, 0.0]
        plan.ticket = ticket
        plan.new_side = new_side
        plan.new_volume = new_volume
        plan.new_open = new_open
        plan.new_sl = new_sl
        plan.new_tp = new_tp
        plan.profit = profit
        plan.balance = balance
        plan.exposure = exposure
        plan.entry = entry
        plan.closing = closing
        return plan

    def _apply_plan(self, plan: _Plan) -> None:
        """Make a journaled deal take effect."""
        m = plan.market
        if plan.deal >= self._next_deal:
            self._next_deal = plan.deal + 1
        self.balance = plan.balance
        m.buy_volume, m.buy_cost, m.sell_volume, m.sell_cost = plan.exposure
        target = plan.target
        ticket = plan.ticket
        if target is None:
            pos = _Position(
                ticket,
                m,
                plan.side,
                plan.volume,
                plan.price,
                plan.time_msc,
                plan.magic,
                plan.comment,
                plan.new_sl,
                plan.new_tp,
            )
            self._positions[ticket] = pos
            m.positions[ticket] = pos
            if not self._hedging:
                self._netting[m.spec.name] = pos
            self._set_entry(ticket, self._entry(pos))
            if pos.sl or pos.tp:
                self._arm_stops(pos)
        elif plan.closing:
            del self._positions[ticket]
            del m.positions[ticket]
            self._drop_entry(ticket)
            if self._netting.get(m.spec.name) is target:
                del self._netting[m.spec.name]
        else:
            flipped = target.side != plan.new_side
            moved = target.sl != plan.new_sl or target.tp != plan.new_tp
            target.side = plan.new_side
            target.volume = plan.new_volume
            target.price_open = plan.new_open
            target.sl = plan.new_sl
            target.tp = plan.new_tp
            target.changed()
            self._set_entry(ticket, self._entry(target))
            if (flipped or moved) and (target.sl or target.tp):
                self._arm_stops(target)
        self._blob = None
        self._in_trade = False

    def _arm_stops(self, p: _Position) -> None:
        m = p.market
        buy = p.side == POSITION_TYPE_BUY
        if p.sl:
            m.arm(2 if buy else 1, m.pts(p.sl))
        if p.tp:
            m.arm(3 if buy else 0, m.pts(p.tp))

    def _deal(self, req: pb.OrderRequest) -> SendOutcome:
        m = self._market_of(req)
        side = req.type
        if side != ORDER_TYPE_BUY and side != ORDER_TYPE_SELL:
            raise _Reject(TRADE_RETCODE_INVALID, f"unsupported order type {req.type} for a deal")
        volume = self._volume(m, req.volume)
        filling = req.type_filling
        if filling != ORDER_FILLING_FOK or not m.spec.filling_mode & SYMBOL_FILLING_FOK:
            self._check_filling(m, filling, pending=False, limit=False)

        # Which position does this deal touch, and does it open exposure?
        target: _Position | None = None
        if req.position:
            target = self._positions.get(req.position)
            if target is None:
                raise _Reject(TRADE_RETCODE_POSITION_CLOSED, f"position {req.position} not found")
            if target.market is not m:
                raise _Reject(
                    TRADE_RETCODE_INVALID,
                    f"position {req.position} is on {target.market.spec.name}",
                )
            if target.side == side:
                raise _Reject(
                    TRADE_RETCODE_INVALID,
                    f"closing position {req.position} needs the opposite order type",
                )
            if volume > target.volume + _VOLUME_EPS:
                raise _Reject(
                    TRADE_RETCODE_INVALID_CLOSE_VOLUME,
                    f"volume {volume} exceeds position volume {target.volume}",
                )
        elif not self._hedging:
            target = self._netting.get(m.spec.name)
        # Exposure this deal adds (0 when it only reduces).
        if target is None or target.side == side:
            added = volume
        else:
            added = max(0.0, volume - target.volume)
        buy = side == ORDER_TYPE_BUY
        if not m.plain:
            self._check_trade_mode(m, buy, added)
        sl = tp = 0.0
        if not req.position and (req.sl or req.tp):
            # The stops belong to the position this deal leaves open.
            res_buy = buy if added > 0.0 or target is None else target.side == POSITION_TYPE_BUY
            self._check_stops(m, res_buy, m.bid_pts if res_buy else m.ask_pts, req.sl, req.tp)
            sl = m.pts(req.sl) / m.scale if req.sl else 0.0
            tp = m.pts(req.tp) / m.scale if req.tp else 0.0
        price_pts = m.ask_pts if buy else m.bid_pts
        instant = m.instant
        if instant:
            self._check_deviation(req, m, price_pts, 0)
        self._check_margin(m, added)
        fill = volume
        if m.liquidity != math.inf:
            available = m.available(buy)
            if available < volume - _VOLUME_EPS:
                fill = _floor_step(available, m.spec.volume_step)
                if filling == ORDER_FILLING_FOK:
                    raise _Reject(
                        TRADE_RETCODE_REJECT,
                        f"fill or kill: only {fill} of {volume} lots available",
                    )
                if fill <= 0.0 and filling == ORDER_FILLING_IOC:
                    raise _Reject(TRADE_RETCODE_REJECT, "no liquidity at this price")
        if req.check_only:
            closed = realized = 0.0
            if target is not None and target.side != side:
                closed = min(fill, target.volume)
                realized = target.profit_at(price_pts / m.scale, closed)
            return self._checked(req, m, min(added, fill), closed, realized)
        if self.faults.reject_next:
            self._take_reject()
        slip = self._slip(m) if m.slippage else 0
        if slip:
            price_pts += slip if buy else -slip
            if instant:
                self._check_deviation(req, m, price_pts, slip if buy else -slip)
        return self._market_fill(req, m, side, volume, fill, price_pts / m.scale, target, sl, tp)

    def _check_deviation(
        self, req: pb.OrderRequest, m: _Market, price_pts: int, shift: int
    ) -> None:
        """Instant execution: a fill further than ``deviation`` points from the request price
        is a requote, offering the market moved by ``shift`` points."""
        if req.price > 0.0 and abs(price_pts - m.pts(req.price)) > req.deviation:
            raise _Reject(
                TRADE_RETCODE_REQUOTE,
                "requote",
                (m.bid_pts + shift) / m.scale,
                (m.ask_pts + shift) / m.scale,
            )

    def _market_fill(
        self,
        req: pb.OrderRequest,
        m: _Market,
        side: int,
        volume: float,
        fill: float,
        price: float,
        target: _Position | None,
        sl: float,
        tp: float,
    ) -> SendOutcome:
        now = self._now_msc()
        order = self._next_order
        comment = req.comment[:COMMENT_MAX]
        filling = req.type_filling
        buy = side == ORDER_TYPE_BUY
        rest: OrderState | None = None
        if fill < volume - _VOLUME_EPS:
            # Part of it (IOC, RETURN) or nothing yet (RETURN): the order records the rest.
            if filling == ORDER_FILLING_IOC:
                state = ORDER_STATE_CANCELED
            else:
                state = ORDER_STATE_PARTIAL if fill > 0.0 else ORDER_STATE_PLACED
            rest = _filled_market_order(
                order,
                m,
                side,
                volume,
                round(volume - fill, 8),
                state,
                price,
                filling,
                DEAL_REASON_EXPERT,
                req.magic,
                now,
                req.position,
                comment,
            )
            rest.sl, rest.tp = sl, tp
            if state != ORDER_STATE_CANCELED:
                rest.time_done_msc = 0
            if fill <= 0.0:
                self._commit(encode_order(rest))
                self._next_order = order + 1
                self._in_trade = False
                working = self._add_order(m, rest)
                result = pb.OrderResult(
                    request_id=req.request_id,
                    retcode=TRADE_RETCODE_PLACED,
                    order=order,
                    bid=m.bid,
                    ask=m.ask,
                    comment="Order placed",
                    time_msc=now,
                )
                return SendOutcome(
                    result,
                    order_updates=[pb.OrderUpdate(order=working.info(), request_id=req.request_id)],
                    orders_changed=True,
                )
        plan = self._plan(
            m, side, fill, price, order, target, req.request_id, req.magic, comment,
            DEAL_REASON_EXPERT, sl, tp, now,
        )  # fmt: skip
        if rest is None:
            self._commit_plan(plan)
        else:
            # The position the filled part went to; the rest goes to the same one.
            rest.position_id = plan.ticket
            self._commit_plan(plan, encode_order(rest))
        self._next_order = order + 1
        self._apply_plan(plan)
        if m.liquidity != math.inf:
            m.consume(buy, fill)
        if rest is None:
            # A dict builds the nested message in one go, cheaper than an OrderInfo copied in.
            update = pb.OrderUpdate(
                order={
                    "ticket": order,
                    "symbol": m.spec.name,
                    "type": side,
                    "state": ORDER_STATE_FILLED,
                    "volume_initial": fill,
                    "price_open": price,
                    "price_current": price,
                    "type_filling": filling,
                    "magic": req.magic,
                    "comment": comment,
                    "time_setup_msc": now,
                    "time_done_msc": now,
                    "position_id": plan.ticket,
                },
                request_id=req.request_id,
            )
            orders_changed = False
            retcode = TRADE_RETCODE_DONE
        else:
            if rest.state == ORDER_STATE_PARTIAL:
                info = self._add_order(m, rest).info()
                orders_changed = True
            else:
                info = rest.to_proto()
                orders_changed = False
            update = pb.OrderUpdate(order=info, request_id=req.request_id)
            retcode = TRADE_RETCODE_DONE_PARTIAL
        result = pb.OrderResult(
            request_id=req.request_id,
            retcode=retcode,
            deal=plan.deal,
            order=order,
            volume=fill,
            price=price,
            bid=m.bid,
            ask=m.ask,
            comment="Request executed" if rest is None else "Request executed partially",
            time_msc=now,
            position=plan.ticket,
        )
        return SendOutcome(
            result,
            [plan.report()],
            [update],
            positions_changed=True,
            orders_changed=orders_changed,
            account_changed=True,
        )

    # -- pending orders ---------------------------------------------------------------------

    def _add_order(self, m: _Market, s: OrderState) -> _Order:
        o = _Order(m, s)
        self._orders[o.ticket] = o
        m.orders[o.ticket] = o
        m.arm(*o.trigger())
        if o.expiration and o.expiration < self._next_timer:
            self._next_timer = o.expiration
        return o

    def _drop_order(self, o: _Order) -> None:
        del self._orders[o.ticket]
        del o.market.orders[o.ticket]

    def _check_pending_price(
        self, m: _Market, otype: int, price: float, stoplimit: float
    ) -> tuple[int, int]:
        """``(price_pts, stoplimit_pts)`` of a pending order, on the right side of the market
        and at least the stops level away from it."""
        if not math.isfinite(price) or price <= 0.0:
            raise _Reject(TRADE_RETCODE_INVALID_PRICE, f"invalid price {price}")
        pts = m.pts(price)
        if otype == ORDER_TYPE_BUY_LIMIT:
            gap, where = m.ask_pts - pts, "below the ask"
        elif otype == ORDER_TYPE_SELL_LIMIT:
            gap, where = pts - m.bid_pts, "above the bid"
        elif otype in (ORDER_TYPE_BUY_STOP, ORDER_TYPE_BUY_STOP_LIMIT):
            gap, where = pts - m.ask_pts, "above the ask"
        else:
            gap, where = m.bid_pts - pts, "below the bid"
        level = m.spec.stops_level
        if gap <= 0 or gap < level:
            raise _Reject(
                TRADE_RETCODE_INVALID_PRICE,
                f"price {price} must be {where} by at least {max(level, 1)} points",
            )
        limit_pts = 0
        if otype in (ORDER_TYPE_BUY_STOP_LIMIT, ORDER_TYPE_SELL_STOP_LIMIT):
            if not math.isfinite(stoplimit) or stoplimit <= 0.0:
                raise _Reject(TRADE_RETCODE_INVALID_PRICE, f"invalid stop-limit price {stoplimit}")
            limit_pts = m.pts(stoplimit)
            # The limit order it turns into must not be marketable the moment it exists.
            buy = otype == ORDER_TYPE_BUY_STOP_LIMIT
            if (limit_pts > pts) if buy else (limit_pts < pts):
                raise _Reject(
                    TRADE_RETCODE_INVALID_PRICE,
                    f"stop-limit price {stoplimit} must be "
                    f"{'at or below' if buy else 'at or above'} the stop price {price}",
                )
        return pts, limit_pts

    def _check_frozen(self, o: _Order) -> None:
        """MT5's freeze level: no change to an order this close to its activation price."""
        m = o.market
        level = m.spec.freeze_level
        if level <= 0 or o.type not in PENDING_TYPES:
            return
        pts = m.pts(o.price_open)
        t = o.type
        if t == ORDER_TYPE_BUY_LIMIT:
            gap = m.ask_pts - pts
        elif t == ORDER_TYPE_SELL_LIMIT:
            gap = pts - m.bid_pts
        elif t in (ORDER_TYPE_BUY_STOP, ORDER_TYPE_BUY_STOP_LIMIT):
            gap = pts - m.ask_pts
        else:
            gap = m.bid_pts - pts
        if gap <= level:
            raise _Reject(
                TRADE_RETCODE_FROZEN,
                f"order {o.ticket} is within the freeze level ({level} points) of the market",
            )

    def _place(self, req: pb.OrderRequest) -> SendOutcome:
        m = self._market_of(req)
        otype = req.type
        if otype not in PENDING_TYPES:
            raise _Reject(TRADE_RETCODE_INVALID, f"order type {otype} is not a pending order")
        volume = self._volume(m, req.volume)
        buy = otype in BUY_TYPES
        self._check_trade_mode(m, buy, volume)
        filling = req.type_filling
        limit = otype not in (ORDER_TYPE_BUY_STOP, ORDER_TYPE_SELL_STOP)
        self._check_filling(m, filling, pending=True, limit=limit)
        pts, limit_pts = self._check_pending_price(m, otype, req.price, req.stoplimit)
        self._check_stops(m, buy, limit_pts or pts, req.sl, req.tp)
        expiration = self._expiration(req.type_time, req.expiration)
        if req.check_only:
            return self._checked(req, m)
        self._take_reject()
        now = self._now_msc()
        ticket = self._next_order
        s = OrderState(
            ticket,
            m.spec.name,
            otype,
            ORDER_STATE_PLACED,
            filling,
            req.type_time,
            DEAL_REASON_EXPERT,
            volume,
            volume,
            pts / m.scale,
            limit_pts / m.scale,
            m.pts(req.sl) / m.scale if req.sl else 0.0,
            m.pts(req.tp) / m.scale if req.tp else 0.0,
            m.ask if buy else m.bid,
            expiration,
            req.magic,
            now,
            0,
            0,
            0,
            req.comment[:COMMENT_MAX],
        )
        self._commit(encode_order(s))
        self._next_order = ticket + 1
        self._in_trade = False
        o = self._add_order(m, s)
        result = pb.OrderResult(
            request_id=req.request_id,
            retcode=TRADE_RETCODE_PLACED,
            order=ticket,
            volume=volume,
            price=s.price_open,
            bid=m.bid,
            ask=m.ask,
            comment="Order placed",
            time_msc=now,
        )
        return SendOutcome(
            result,
            order_updates=[pb.OrderUpdate(order=o.info(), request_id=req.request_id)],
            orders_changed=True,
        )

    def _working(self, req: pb.OrderRequest) -> _Order:
        o = self._orders.get(req.order)
        if o is None:
            raise _Reject(TRADE_RETCODE_INVALID_ORDER, f"order {req.order} not found")
        return o

    def _modify(self, req: pb.OrderRequest) -> SendOutcome:
        o = self._working(req)
        m = o.market
        if o.type not in PENDING_TYPES:
            raise _Reject(TRADE_RETCODE_INVALID, f"order {o.ticket} is not a pending order")
        self._check_open(m)
        pts, limit_pts = self._check_pending_price(m, o.type, req.price, req.stoplimit)
        buy = o.buy
        self._check_stops(m, buy, limit_pts or pts, req.sl, req.tp)
        expiration = self._expiration(req.type_time, req.expiration)
        price = pts / m.scale
        stoplimit = limit_pts / m.scale
        sl = m.pts(req.sl) / m.scale if req.sl else 0.0
        tp = m.pts(req.tp) / m.scale if req.tp else 0.0
        if (price, stoplimit, sl, tp, req.type_time, expiration) == (
            o.price_open,
            o.price_stoplimit,
            o.sl,
            o.tp,
            o.type_time,
            o.expiration,
        ):
            raise _Reject(TRADE_RETCODE_NO_CHANGES, "no changes")
        self._check_frozen(o)
        if req.check_only:
            return self._checked(req, m)
        s = o.record()
        s.price_open, s.price_stoplimit, s.sl, s.tp = price, stoplimit, sl, tp
        s.type_time, s.time_expiration = req.type_time, expiration
        self._commit(encode_order(s))
        self._in_trade = False
        o.price_open, o.price_stoplimit, o.sl, o.tp = price, stoplimit, sl, tp
        o.type_time, o.expiration = req.type_time, expiration
        m.arm(*o.trigger())
        if expiration and expiration < self._next_timer:
            self._next_timer = expiration
        now = self._now_msc()
        result = pb.OrderResult(
            request_id=req.request_id,
            retcode=TRADE_RETCODE_DONE,
            order=o.ticket,
            volume=o.volume_current,
            price=price,
            bid=m.bid,
            ask=m.ask,
            comment="Request executed",
            time_msc=now,
        )
        return SendOutcome(
            result,
            order_updates=[pb.OrderUpdate(order=o.info(), request_id=req.request_id)],
            orders_changed=True,
        )

    def _finish(self, o: _Order, state: int) -> pb.OrderUpdate:
        """Move a working order to the history in ``state`` (journaled first)."""
        s = o.record(state)
        s.time_done_msc = self._now_msc()
        self._commit(encode_order(s))
        self._in_trade = False
        self._drop_order(o)
        return pb.OrderUpdate(order=s.to_proto())

    def _remove(self, req: pb.OrderRequest) -> SendOutcome:
        o = self._working(req)
        m = o.market
        self._check_open(m)
        self._check_frozen(o)
        if req.check_only:
            return self._checked(req, m)
        update = self._finish(o, ORDER_STATE_CANCELED)
        update.request_id = req.request_id
        result = pb.OrderResult(
            request_id=req.request_id,
            retcode=TRADE_RETCODE_DONE,
            order=o.ticket,
            volume=o.volume_current,
            bid=m.bid,
            ask=m.ask,
            comment="Request executed",
            time_msc=update.order.time_done_msc,
        )
        return SendOutcome(result, order_updates=[update], orders_changed=True)

    # -- positions --------------------------------------------------------------------------

    def _position_of(self, req: pb.OrderRequest, ticket: int) -> _Position:
        if ticket:
            p = self._positions.get(ticket)
        elif not self._hedging:
            p = self._netting.get(req.symbol)
        else:
            p = None
        if p is None:
            raise _Reject(
                TRADE_RETCODE_POSITION_CLOSED, f"position {ticket or req.symbol} not found"
            )
        if req.symbol and req.symbol != p.market.spec.name:
            raise _Reject(TRADE_RETCODE_INVALID, f"position {p.ticket} is on {p.market.spec.name}")
        return p

    def _sltp(self, req: pb.OrderRequest) -> SendOutcome:
        p = self._position_of(req, req.position)
        m = p.market
        self._check_open(m)
        buy = p.side == POSITION_TYPE_BUY
        close_pts = m.bid_pts if buy else m.ask_pts
        self._check_stops(m, buy, close_pts, req.sl, req.tp)
        sl = m.pts(req.sl) / m.scale if req.sl else 0.0
        tp = m.pts(req.tp) / m.scale if req.tp else 0.0
        if (sl, tp) == (p.sl, p.tp):
            raise _Reject(TRADE_RETCODE_NO_CHANGES, "no changes")
        level = m.spec.freeze_level
        if level > 0:
            for value, below in ((p.sl, buy), (p.tp, not buy)):
                if value:
                    gap = close_pts - m.pts(value) if below else m.pts(value) - close_pts
                    if gap <= level:
                        raise _Reject(
                            TRADE_RETCODE_FROZEN,
                            f"position {p.ticket}: stops within the freeze level ({level} points)",
                        )
        if req.check_only:
            return self._checked(req, m)
        self._commit(encode_sltp(p.ticket, sl, tp))
        self._in_trade = False
        p.sl, p.tp = sl, tp
        p.changed()
        self._set_entry(p.ticket, self._entry(p))
        self._blob = None
        if sl or tp:
            self._arm_stops(p)
        result = pb.OrderResult(
            request_id=req.request_id,
            retcode=TRADE_RETCODE_DONE,
            bid=m.bid,
            ask=m.ask,
            comment="Request executed",
            time_msc=self._now_msc(),
            position=p.ticket,
        )
        return SendOutcome(result, positions_changed=True)

    def _close_by(self, req: pb.OrderRequest) -> SendOutcome:
        if not self._hedging:
            raise _Reject(TRADE_RETCODE_INVALID, "close by needs a hedging account")
        p = self._position_of(req, req.position)
        if not req.position_by:
            raise _Reject(TRADE_RETCODE_POSITION_CLOSED, "no opposite position given")
        by = self._positions.get(req.position_by)
        if by is None:
            raise _Reject(TRADE_RETCODE_POSITION_CLOSED, f"position {req.position_by} not found")
        if by.market is not p.market or by.side == p.side:
            raise _Reject(
                TRADE_RETCODE_INVALID,
                f"position {by.ticket} is not opposite to {p.ticket} on the same symbol",
            )
        m = p.market
        self._check_open(m)
        volume = min(p.volume, by.volume)
        # Closed against each other at the opposite position's open price: the first deal
        # books the whole profit, the second none.
        price = by.price_open
        if req.check_only:
            return self._checked(req, m, 0.0, 2 * volume, p.profit_at(price, volume))
        now = self._now_msc()
        order = self._next_order
        comment = req.comment[:COMMENT_MAX]
        first = self._plan(
            m, 1 - p.side, volume, price, order, p, req.request_id, req.magic, comment,
            DEAL_REASON_EXPERT, 0.0, 0.0, now, others=True,
        )  # fmt: skip
        second = self._plan(
            m, 1 - by.side, volume, price, order, by, req.request_id, req.magic, comment,
            DEAL_REASON_EXPERT, 0.0, 0.0, now, deal=first.deal + 1, balance=first.balance,
            exposure=list(first.exposure), others=len(m.positions) - 1 - first.closing > 0,
        )  # fmt: skip
        first.entry = second.entry = DEAL_ENTRY_OUT_BY
        s = _filled_market_order(
            order,
            m,
            ORDER_TYPE_CLOSE_BY,
            volume,
            0.0,
            ORDER_STATE_FILLED,
            price,
            ORDER_FILLING_FOK,
            DEAL_REASON_EXPERT,
            req.magic,
            now,
            p.ticket,
            comment,
            order_type=ORDER_TYPE_CLOSE_BY,
            position_by_id=by.ticket,
        )
        self._commit(first.encode(), second.encode(), encode_order(s))
        self._next_order = order + 1
        self._apply_plan(first)
        self._apply_plan(second)
        result = pb.OrderResult(
            request_id=req.request_id,
            retcode=TRADE_RETCODE_DONE,
            deal=first.deal,
            order=order,
            volume=volume,
            price=price,
            bid=m.bid,
            ask=m.ask,
            comment="Request executed",
            time_msc=now,
            position=p.ticket,
        )
        return SendOutcome(
            result,
            [first.report(), second.report()],
            [pb.OrderUpdate(order=s.to_proto(), request_id=req.request_id)],
            positions_changed=True,
            account_changed=True,
        )

    # -- what the market and the clock do ---------------------------------------------------

    def _fire(self, m: _Market) -> None:
        """Run every order and stop the current tick of ``m`` reaches, then re-arm."""
        sessions = m.rules.sessions
        if not sessions.always and not sessions.is_open(self._clock()):
            return
        for _ in range(_MAX_TRIGGER_ROUNDS):
            changed = False
            for p in list(m.positions.values()):
                if (p.sl or p.tp) and p.ticket in m.positions and self._stop_hit(p):
                    changed = True
            for o in list(m.orders.values()):
                if o.ticket in m.orders and o.fires() and self._trigger(o):
                    changed = True
            if not changed:
                break
        m.rearm()

    def _stop_hit(self, p: _Position) -> bool:
        m = p.market
        buy = p.side == POSITION_TYPE_BUY
        close_pts = m.bid_pts if buy else m.ask_pts
        if p.sl and (close_pts <= m.pts(p.sl) if buy else close_pts >= m.pts(p.sl)):
            reason, tag, level = DEAL_REASON_SL, "sl", p.sl
        elif p.tp and (close_pts >= m.pts(p.tp) if buy else close_pts <= m.pts(p.tp)):
            reason, tag, level = DEAL_REASON_TP, "tp", p.tp
        else:
            return False
        return self._close_position(p, reason, f"[{tag} {level:.{m.spec.digits}f}]")

    def _close_position(self, p: _Position, reason: int, comment: str) -> bool:
        """Close ``p`` at the market as the server does (SL, TP, stop-out); False if the
        journal cannot take it (it is then tried again later)."""
        m = p.market
        side = ORDER_TYPE_SELL if p.side == POSITION_TYPE_BUY else ORDER_TYPE_BUY
        price = m.bid if p.side == POSITION_TYPE_BUY else m.ask
        order = self._next_order
        now = self._now_msc()
        volume = p.volume
        plan = self._plan(
            m, side, volume, price, order, p, 0, p.magic, comment, reason, 0.0, 0.0, now
        )
        try:
            self._commit_plan(plan)
        except _Reject:
            return False
        self._next_order = order + 1
        self._apply_plan(plan)
        act = self.activity
        act.deals.append(plan.report())
        s = _filled_market_order(
            order, m, side, volume, 0.0, ORDER_STATE_FILLED, price, ORDER_FILLING_FOK, reason,
            p.magic, now, p.ticket, comment,
        )  # fmt: skip
        act.order_updates.append(pb.OrderUpdate(order=s.to_proto()))
        act.positions_changed = act.account_changed = True
        return True

    def _trigger(self, o: _Order) -> bool:
        """Act on a working order the current tick reaches; True if anything changed."""
        act = self.activity
        try:
            if o.type in (ORDER_TYPE_BUY_STOP_LIMIT, ORDER_TYPE_SELL_STOP_LIMIT):
                # It turns into a limit order at its stop-limit price, same ticket, RETURN.
                s = o.record()
                s.type = ORDER_TYPE_BUY_LIMIT if o.buy else ORDER_TYPE_SELL_LIMIT
                s.price_open, s.price_stoplimit = o.price_stoplimit, 0.0
                s.type_filling = ORDER_FILLING_RETURN
                self._commit(encode_order(s))
                self._in_trade = False
                o.type, o.price_open, o.price_stoplimit = s.type, s.price_open, 0.0
                o.type_filling = ORDER_FILLING_RETURN
                act.order_updates.append(pb.OrderUpdate(order=o.info()))
                act.orders_changed = True
                return True
            return self._fill_working(o)
        except _Reject:
            # Only the journal refuses here: leave the order as it is, the next tick retries.
            return False

    def _fill_working(self, o: _Order) -> bool:
        m = o.market
        act = self.activity
        buy = o.buy
        side = ORDER_TYPE_BUY if buy else ORDER_TYPE_SELL
        price_pts = m.ask_pts if buy else m.bid_pts
        if o.type in (ORDER_TYPE_BUY_STOP, ORDER_TYPE_SELL_STOP):
            # A stop becomes a market order: it slips like one. A limit fills at its price or
            # better, which the current price already is.
            slip = self._slip(m)
            price_pts += slip if buy else -slip
        price = price_pts / m.scale
        want = o.volume_current
        fill = want
        if m.liquidity != math.inf:
            available = m.available(buy)
            if available < want - _VOLUME_EPS:
                fill = _floor_step(available, m.spec.volume_step)
        target: _Position | None = None
        if not self._hedging:
            target = self._netting.get(m.spec.name)
        elif o.position_id:
            # Hedging: the position this order already filled into, or the one a market
            # order's rest is to close. Gone (or smaller than what would close it): done.
            target = self._positions.get(o.position_id)
            if target is None or (target.side != side and fill > target.volume + _VOLUME_EPS):
                self._note(self._finish(o, ORDER_STATE_CANCELED))
                return True
        filling = o.type_filling
        if fill < want - _VOLUME_EPS:
            if filling == ORDER_FILLING_FOK or (fill <= 0.0 and filling == ORDER_FILLING_IOC):
                self._note(self._finish(o, ORDER_STATE_CANCELED))
                return True
            if fill <= 0.0:
                return False  # RETURN: waits for the next price level
        added = fill if target is None or target.side == side else max(0.0, fill - target.volume)
        if added > 0.0:
            profit, margin = self._floating_and_margin()
            if m.margin_of(added, self._leverage) > self.balance + profit - margin:
                self._note(self._finish(o, ORDER_STATE_REJECTED))
                return True
        now = self._now_msc()
        rest = round(want - fill, 8)
        if rest <= _VOLUME_EPS:
            state = ORDER_STATE_FILLED
            rest = 0.0
        else:
            state = ORDER_STATE_CANCELED if filling == ORDER_FILLING_IOC else ORDER_STATE_PARTIAL
        plan = self._plan(
            m, side, fill, price, o.ticket, target, 0, o.magic, o.comment, o.reason, o.sl, o.tp,
            now,
        )  # fmt: skip
        s = o.record(state, price)
        s.volume_current = rest
        if state != ORDER_STATE_PARTIAL:
            s.time_done_msc = now
        s.position_id = plan.ticket
        self._commit_plan(plan, encode_order(s))
        self._apply_plan(plan)
        m.consume(buy, fill)
        o.state, o.volume_current = state, rest
        o.time_done_msc, o.position_id = s.time_done_msc, s.position_id
        if state != ORDER_STATE_PARTIAL:
            self._drop_order(o)
        act.deals.append(plan.report())
        act.order_updates.append(pb.OrderUpdate(order=s.to_proto()))
        act.positions_changed = act.account_changed = act.orders_changed = True
        return True

    def _note(self, update: pb.OrderUpdate) -> None:
        self.activity.order_updates.append(update)
        self.activity.orders_changed = True

    def check_margin(self) -> None:
        """Margin call and stop-out at the current prices (the worker runs this after every
        tick batch). Below ``stop_out_level`` the position with the largest loss is closed
        first, until the level is back above it."""
        if not self._positions:
            self._margin_call = False
            return
        profit, margin = self._floating_and_margin()
        if margin <= 0.0:
            self._margin_call = False
            return
        level = (self.balance + profit) / margin * 100.0
        config = self.config
        if level < config.margin_call_level:
            if not self._margin_call:
                self._margin_call = True
                self.activity.events.append(
                    pb.WorkerEvent(
                        kind="MARGIN_CALL",
                        message=f"margin level {level:.2f}% is below the margin call level "
                        f"{config.margin_call_level:g}%",
                    )
                )
        else:
            self._margin_call = False
        now = self._clock()
        while level < config.stop_out_level:
            candidates = [
                p
                for p in self._positions.values()
                if p.market.rules.sessions.always or p.market.rules.sessions.is_open(now)
            ]
            if not candidates:
                break
            worst = min(candidates, key=lambda p: p.profit_at(p.price_current(), p.volume))
            if not self._close_position(worst, DEAL_REASON_SO, f"[so {level:.2f}%]"):
                break
            profit, margin = self._floating_and_margin()
            if margin <= 0.0:
                break
            level = (self.balance + profit) / margin * 100.0

    @property
    def next_timer(self) -> float:
        """Epoch seconds (server clock) at which ``poll`` next has work; inf: none pending."""
        return self._next_timer

    @property
    def market_open(self) -> bool:
        """Whether any symbol is inside its sessions (as of the last ``poll``)."""
        return self._any_open

    def poll(self) -> None:
        """Run what is due by the clock: order expirations and session changes."""
        now = self._clock()
        if now < self._next_timer:
            return
        retry = False
        for o in list(self._orders.values()):
            if o.expiration and o.expiration <= now:
                try:
                    self._note(self._finish(o, ORDER_STATE_EXPIRED))
                except _Reject:
                    retry = True
        self._sessions(now, report=True)
        self._plan_timer()
        if retry:
            # The journal refused: try again in a second rather than on every pass.
            self._next_timer = min(self._next_timer, now + 1.0)

    def _sessions(self, now: float, *, report: bool) -> None:
        changed = []
        for m in self._markets.values():
            sessions = m.rules.sessions
            is_open = sessions.always or sessions.is_open(now)
            if is_open != m.is_open:
                m.is_open = is_open
                changed.append(m.spec.name)
        any_open = any(m.is_open for m in self._markets.values())
        if report and any_open != self._any_open:
            self.activity.events.append(
                pb.WorkerEvent(
                    kind="MARKET_OPEN" if any_open else "MARKET_CLOSED",
                    message=f"{', '.join(changed)} {'opened' if any_open else 'closed'}",
                )
            )
        self._any_open = any_open

    def _plan_timer(self) -> None:
        now = self._clock()
        nxt = math.inf
        for o in self._orders.values():
            if o.expiration and o.expiration < nxt:
                nxt = o.expiration
        for m in self._markets.values():
            if not m.rules.sessions.always:
                nxt = min(nxt, m.rules.sessions.next_change(now))
        self._next_timer = nxt

    def take_activity(self) -> Activity | None:
        """The changes made since the last call without a request, or None if there were none."""
        act = self.activity
        if not act:
            return None
        self.activity = Activity()
        return act

    # -- reconciliation ---------------------------------------------------------------------

    def history(
        self, comments: Iterable[str] | None = None, from_time_msc: int = 0
    ) -> tuple[list[pb.OrderInfo], list[pb.DealReport]]:
        """Orders (working ones as they are now) and deals from the journal, oldest first,
        optionally only those with one of ``comments`` and changed since ``from_time_msc``."""
        wanted = None if comments is None else set(comments)
        if self.journal is not None:
            orders, deals = read_history(
                self.journal.path, wanted, from_time_msc, self.journal.index
            )
        elif self._memory is not None:
            orders, deals = self._memory.history(wanted, from_time_msc)
        else:  # pragma: no cover - there is always one of the two
            orders, deals = [], []
        live = {t: o for t, o in self._orders.items() if wanted is None or o.comment in wanted}
        merged = [live.pop(o.ticket).info() if o.ticket in live else o for o in orders]
        merged.extend(o.info() for o in live.values())
        merged.sort(key=lambda o: o.ticket)
        return merged, deals

    def reconcile(self, req: pb.ReconcileRequest) -> pb.ReconcileResult:
        """What the account knows of orders whose comment is one of ``req.comments``: every
        working and historical one (changed since ``from_time_msc``; working ones always) and
        the deals with one of those comments or of one of those orders."""
        orders, deals = self.history(req.comments, req.from_time_msc)
        return pb.ReconcileResult(request_id=req.request_id, orders=orders, deals=deals)
