"""The risk rules in plain Python: a readable reference, used only as a test oracle.

The server never runs this: its gate is ``rust_core/src/risk/checks.rs``. The differential
tests feed the same scenarios to both and require the same verdict (accepted, or the same
reason); the benchmark times both on the same inputs. Keep the two in step: the order of the
checks is part of the contract, since the first failing check names the reason.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from mt5exec.reasons import Reason
from mt5exec.v1 import common_pb2

MARKET, LIMIT, STOP, STOP_LIMIT = 1, 2, 3, 4
ACTIVE, REDUCE_ONLY, HALTED = 1, 2, 3
EPSILON = 1e-9


@dataclass(frozen=True)
class Symbol:
    contract_size: float = 100_000.0
    tick_value: float = 1.0
    tick_size: float = 0.00001
    # SYMBOL_TRADE_MODE_*: 0 disabled, 1 long only, 2 short only, 3 close only, 4 full.
    trade_mode: int = 4


@dataclass(frozen=True)
class Scenario:
    """Everything but the order: limits, symbol, market, account and controls."""

    limits: common_pb2.RiskLimits
    symbol: Symbol
    bid: float
    ask: float
    tick_age_ms: int = 0
    hedging: bool = True
    equity: float = 0.0
    free_margin: float = math.inf
    leverage: float = 100.0
    net_volume: float = 0.0
    open_positions: int = 0
    pending_orders: int = 0
    trades_today: int = 0
    day_start_equity: float = 0.0
    equity_high: float = 0.0
    trading_state: int = ACTIVE
    kill_switch: bool = False
    symbol_allowed: bool = True
    in_session: bool = True
    duplicate: bool = False


@dataclass(frozen=True)
class Order:
    buy: bool
    order_type: int
    volume: float
    price: float = 0.0
    stop_limit_price: float = 0.0
    stop_loss: float = 0.0
    take_profit: float = 0.0
    deviation_points: int = 0
    closes_position: bool = False

    def args(self) -> tuple[bool, int, float, float, float, float, float, int, bool]:
        """The positional arguments of ``_core.RiskChecker.check`` for this order."""
        return (
            self.buy,
            self.order_type,
            self.volume,
            self.price,
            self.stop_limit_price,
            self.stop_loss,
            self.take_profit,
            self.deviation_points,
            self.closes_position,
        )


def _within(value: float, limit: float) -> bool:
    return value <= limit + abs(limit) * EPSILON


def _is_normal(x: float) -> bool:
    return math.isfinite(x) and abs(x) >= 2.2250738585072014e-308


def reduces(order: Order, s: Scenario) -> bool:
    """A close by ticket, or on a netting account a market order against the net position no
    larger than it."""
    if order.closes_position:
        return True
    against = (order.buy and s.net_volume < 0) or (not order.buy and s.net_volume > 0)
    return (
        not s.hedging
        and order.order_type == MARKET
        and against
        and _within(order.volume, abs(s.net_volume))
    )


def value_per_price(symbol: Symbol) -> float:
    if symbol.tick_size > 0 and symbol.tick_value > 0:
        return symbol.tick_value / symbol.tick_size
    return symbol.contract_size


def entry_price(order: Order, s: Scenario) -> float:
    if order.order_type == MARKET:
        if order.price > 0:
            return order.price
        return s.ask if order.buy else s.bid
    if order.order_type == STOP_LIMIT and order.stop_limit_price > 0:
        return order.stop_limit_price
    return order.price


def check(order: Order, s: Scenario) -> str | None:
    """The reason the order is refused, or None when it passes."""
    limits = s.limits
    if not (_is_normal(order.volume) and order.volume > 0):
        return Reason.VOLUME_INVALID
    for value in (order.price, order.stop_limit_price, order.stop_loss, order.take_profit):
        if value != 0 and not (_is_normal(value) and value > 0):
            return Reason.PRICE_INVALID
    if s.kill_switch:
        return Reason.KILL_SWITCH
    if s.trading_state == HALTED:
        return Reason.TRADING_HALTED
    reducing = reduces(order, s)
    if s.trading_state == REDUCE_ONLY and not reducing:
        return Reason.REDUCE_ONLY
    if s.symbol.trade_mode == 0:
        return Reason.MARKET_CLOSED
    if reducing:
        return _deviation_and_collar(order, s)
    if not s.symbol_allowed:
        return Reason.SYMBOL_NOT_ALLOWED
    mode = s.symbol.trade_mode
    if mode == 3:
        return Reason.CLOSE_ONLY
    if mode == 1 and not order.buy:
        return Reason.LONG_ONLY
    if mode == 2 and order.buy:
        return Reason.SHORT_ONLY
    if not s.in_session:
        return Reason.OUTSIDE_SESSION
    if limits.min_order_volume > 0 and order.volume < limits.min_order_volume * (1 - EPSILON):
        return Reason.VOLUME_BELOW_LIMIT
    if limits.max_order_volume > 0 and not _within(order.volume, limits.max_order_volume):
        return Reason.VOLUME_ABOVE_LIMIT
    reason = _deviation_and_collar(order, s)
    if reason:
        return reason
    stale = limits.stale_tick_ms > 0 and s.tick_age_ms > limits.stale_tick_ms
    if stale and order.order_type == MARKET:
        return Reason.STALE_TICK
    if s.duplicate:
        return Reason.DUPLICATE_ORDER
    return _exposure(order, s)


def _deviation_and_collar(order: Order, s: Scenario) -> str | None:
    limits = s.limits
    if limits.max_deviation_points > 0 and order.deviation_points > limits.max_deviation_points:
        return Reason.DEVIATION_LIMIT
    mid = (s.bid + s.ask) / 2
    if limits.price_collar_percent <= 0 or not mid > 0:
        return None
    pending_price = 0.0 if order.order_type == MARKET else order.price
    for value in (pending_price, order.stop_limit_price, order.stop_loss, order.take_profit):
        if value > 0 and not _within(abs(value - mid) / mid * 100, limits.price_collar_percent):
            return Reason.PRICE_COLLAR
    return None


def _exposure(order: Order, s: Scenario) -> str | None:
    limits = s.limits
    market = order.order_type == MARKET
    if not market and 0 < limits.max_pending_orders <= s.pending_orders:
        return Reason.MAX_PENDING_ORDERS
    opens = s.hedging or s.net_volume == 0
    if market and opens and 0 < limits.max_open_positions <= s.open_positions:
        return Reason.MAX_OPEN_POSITIONS
    if limits.max_trades_per_day > 0 and s.trades_today >= limits.max_trades_per_day:
        return Reason.MAX_TRADES_PER_DAY
    daily_loss = s.day_start_equity - s.equity
    loss_known = limits.max_daily_loss > 0 and s.day_start_equity > 0
    if loss_known and not _within(daily_loss, limits.max_daily_loss):
        return Reason.DAILY_LOSS_LIMIT
    if limits.max_drawdown_percent > 0 and s.equity_high > 0:
        drawdown = (s.equity_high - s.equity) / s.equity_high * 100
        if not _within(drawdown, limits.max_drawdown_percent):
            return Reason.DRAWDOWN_LIMIT
    entry = entry_price(order, s)
    per_price = value_per_price(s.symbol)
    if limits.max_loss_per_trade > 0 and order.stop_loss > 0:
        loss = abs(entry - order.stop_loss) * per_price * order.volume
        if not _within(loss, limits.max_loss_per_trade):
            return Reason.TRADE_LOSS_LIMIT
    notional = order.volume * entry * per_price
    if limits.max_order_notional > 0 and not _within(notional, limits.max_order_notional):
        return Reason.NOTIONAL_LIMIT
    if limits.max_symbol_exposure > 0:
        signed = order.volume if order.buy else -order.volume
        exposure = abs(s.net_volume + signed) * entry * per_price
        if not _within(exposure, limits.max_symbol_exposure):
            return Reason.EXPOSURE_LIMIT
    if market and not (s.free_margin - notional / max(s.leverage, 1.0) >= 0):
        return Reason.INSUFFICIENT_MARGIN
    return None
