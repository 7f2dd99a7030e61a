"""Market and prices: one symbol's price walk, exposure sums, liquidity and trigger thresholds
(``Market``), and the conversion of profits into the account currency."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import TYPE_CHECKING

from mt5exec.sim.constants import POSITION_TYPE_BUY
from mt5exec.sim.symbols import (
    DEFAULT_SYMBOLS,
    SYMBOL_TRADE_EXECUTION_INSTANT,
    SYMBOL_TRADE_MODE_FULL,
    SymbolRules,
    SymbolSpec,
)

if TYPE_CHECKING:
    from mt5exec.sim.broker.records import Order, Position


# A symbol's walk takes a new generator every 2**_RNG_BLOCK_BITS ticks, so a restored market
# finds its place in the sequence with a seed and at most 1023 draws.
_RNG_BLOCK_BITS = 10


_RNG_MASK = (1 << _RNG_BLOCK_BITS) - 1


# Trigger thresholds (in points) that no price reaches.
NEVER = 1 << 62


class Market:
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
        self.positions: dict[int, Position] = {}
        # Working orders on this symbol, in ticket order (which is time priority).
        self.orders: dict[int, Order] = {}
        # (bid_pts, ask_pts, rate) at which the cached snapshot entries of ``positions`` were
        # rendered; None when some entry must be rendered again.
        self.snap_key: tuple[int, int, float] | None = None
        # Profit currency -> account currency; replaced by the broker once all markets exist.
        self.rate: Callable[[], float] = _one
        self.armed = False
        self.ask_le = self.bid_le = -NEVER
        self.ask_ge = self.bid_ge = NEVER
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
        self.ask_le = self.bid_le = -NEVER
        self.ask_ge = self.bid_ge = NEVER
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


def shift(exposure: list[float], side: int, volume: float, price: float) -> None:
    """Add ``volume`` at ``price`` to one side of ``[buy_vol, buy_cost, sell_vol, sell_cost]``.

    A negative ``volume`` removes exposure; the sums come out bit-identical to subtracting.
    """
    i = 0 if side == POSITION_TYPE_BUY else 2
    exposure[i] += volume
    exposure[i + 1] += volume * price


def _one() -> float:
    return 1.0


def _live_rate(m: Market, *, invert: bool) -> Callable[[], float]:
    if invert:
        return lambda: 1.0 / m.mid
    return lambda: m.mid


def rate_to_account(markets: dict[str, Market], currency: str, account: str) -> Callable[[], float]:
    """How to turn an amount in ``currency`` into the account currency, at current prices.

    Approximate on purpose: a direct pair among the configured symbols is used live, a
    default symbol's start price otherwise, and 1.0 when no pair links the two currencies.
    """
    if currency == account:
        return _one
    for m in markets.values():
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
