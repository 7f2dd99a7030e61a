"""The sections of an instance's config, one dataclass per JSON file. The field defaults
are the packaged defaults (template_defaults/*.json must hold the same values; a test keeps
them equal). Field comments are the reference of the JSON keys.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from mt5exec.templates.values import (
    _CURRENCY,
    _HHMM,
    _ID,
    _NAME,
    _NON_NEG,
    _NON_NEG_INT,
    _PERCENT,
    _POS,
    _POS_INT,
    _STR,
    _SYMBOL,
    _SYMBOL_LIST,
    _SYMBOLS,
    _TICK_BATCH_MS,
    _UINT64,
    FILLING_MODES,
    MARGIN_MODES,
    SPREAD_TYPES,
    TRADE_ROUTINGS,
    _enum,
    _f,
    _optional,
)


@dataclass(frozen=True, slots=True)
class BrokerSection:
    """``broker.json``: the broker an instance trades with. Credentials live in the vault."""

    # Stable id of the broker; instance.broker_id must name it.
    broker_id: str = _f("sim", _ID)
    broker_name: str = _f("mt5exec simulated broker", _NAME)
    # MT5 trade server name (e.g. "BrokerX-Demo"); "sim" for the simulated broker.
    server: str = _f("sim", _NAME)
    # Account leverage, 1:N.
    leverage: int = _f(100, _POS_INT)
    # Smallest and largest volume (lots) the broker accepts in one order.
    min_lot_size: float = _f(0.01, _POS)
    max_lot_size: float = _f(100.0, _POS)
    spread_type: Literal["floating", "fixed"] = _f("floating", _enum(SPREAD_TYPES))
    # Account currency.
    currency: str = _f("USD", _CURRENCY)
    # "hedging" (several positions per symbol) or "netting" (one net position per symbol).
    margin_mode: Literal["hedging", "netting"] = _f("hedging", _enum(MARGIN_MODES))


@dataclass(frozen=True, slots=True)
class InstanceSection:
    """``instance.json``: one instance; the sim fields set up the simulated broker's account."""

    # Set from the instance being configured; a template's value is ignored.
    instance_id: str = _f("", _STR)
    broker_id: str = _f("sim", _ID)
    # Symbols the instance trades; each must be in the trade pair catalogue.
    trade_pairs: tuple[str, ...] = _f(("EURUSD", "GBPUSD", "USDJPY", "XAUUSD"), _SYMBOLS)
    # Open trades the instance may hold at once; 0 = no limit.
    max_trades: int = _f(10, _NON_NEG_INT)
    # Largest accepted slippage in points between requested and filled price.
    slippage_limit: float = _f(2.0, _NON_NEG)
    trade_routing: Literal["direct"] = _f("direct", _enum(TRADE_ROUTINGS))
    # Replaces health_check.health_check_interval_sec for this instance; null keeps it. In a
    # runtime config both always hold the effective value.
    health_check_interval_sec: int | None = _f(None, _optional(_POS_INT))
    # Simulated broker: seed of the price process (the same seed replays the same prices).
    seed: int = _f(1, _UINT64)
    # Simulated broker: ticks per second per symbol; 0 stops prices at their start values.
    tick_rate: float = _f(10.0, _NON_NEG)
    # Simulated broker: the shortest time between two tick batches in milliseconds; ticks due
    # in between go out together (shorter: sooner; longer: fewer, larger batches).
    tick_batch_ms: float = _f(2.0, _TICK_BATCH_MS)
    # Simulated broker: starting balance in the account currency.
    initial_balance: float = _f(10000.0, _POS)


@dataclass(frozen=True, slots=True)
class ExecutionSection:
    """``execution.json``: defaults applied to the orders an instance sends."""

    # Stop loss and take profit distance in points from the entry price; 0 = none.
    stop_loss: float = _f(50.0, _NON_NEG)
    take_profit: float = _f(100.0, _NON_NEG)
    # Volume (lots) of an order that names none.
    lot_size: float = _f(0.01, _POS)
    # Share of the balance risked per trade when sizing by risk, in percent.
    risk_percent: float = _f(1.0, _PERCENT)
    # Seconds to wait for the terminal's answer before the order's outcome is UNKNOWN.
    trade_timeout_sec: int = _f(5, _POS_INT)
    # Accepted deviation from the requested price in points for market orders.
    deviation_points: int = _f(10, _NON_NEG_INT)
    # Order filling policy; "auto" picks one the symbol supports.
    filling: Literal["auto", "fok", "ioc", "return"] = _f("auto", _enum(FILLING_MODES))


@dataclass(frozen=True, slots=True)
class RiskSection:
    """``risk.json``: pre-trade limits (proto ``RiskLimits``). 0 disables a limit."""

    # Seed 002 fields (max_loss_per_day is RiskLimits.max_daily_loss), in account currency.
    max_loss_per_day: float = _f(1000.0, _NON_NEG)
    max_loss_per_trade: float = _f(100.0, _NON_NEG)
    max_trades_per_day: int = _f(50, _NON_NEG_INT)
    max_open_positions: int = _f(20, _NON_NEG_INT)
    # Volume bounds of one order, in lots (never 0: a zero-volume order is always invalid).
    max_order_volume: float = _f(10.0, _POS)
    min_order_volume: float = _f(0.01, _POS)
    # Notional of one order and net exposure per symbol, in account currency.
    max_order_notional: float = _f(0.0, _NON_NEG)
    max_symbol_exposure: float = _f(0.0, _NON_NEG)
    max_pending_orders: int = _f(100, _NON_NEG_INT)
    # Drawdown of equity from its high, in percent.
    max_drawdown_percent: float = _f(0.0, _PERCENT)
    max_deviation_points: int = _f(0, _NON_NEG_INT)
    # Pending order prices further than this from the market are rejected as fat fingers.
    price_collar_percent: float = _f(10.0, _NON_NEG)
    # Orders are rejected when the symbol's last tick is older than this.
    stale_tick_ms: int = _f(0, _NON_NEG_INT)
    orders_per_second: float = _f(100.0, _NON_NEG)
    max_in_flight_orders: int = _f(10, _NON_NEG_INT)
    # Identical orders (same symbol, side, volume, price) within this window are duplicates.
    duplicate_window_ms: int = _f(0, _NON_NEG_INT)
    # Instrument whitelist; empty: every symbol of the instance.
    allowed_symbols: tuple[str, ...] = _f((), _SYMBOL_LIST)
    # Daily trading window in UTC ("HH:MM"); both empty: always. Closing is always allowed.
    session_start: str = _f("", _HHMM)
    session_end: str = _f("", _HHMM)

    def risk_limits(self) -> dict[str, object]:
        """The limits keyed by the field names of proto ``mt5exec.v1.RiskLimits``."""
        out: dict[str, object] = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["max_daily_loss"] = out.pop("max_loss_per_day")
        out["allowed_symbols"] = list(self.allowed_symbols)
        return out


@dataclass(frozen=True, slots=True)
class HealthCheckSection:
    """``health_check.json``: health probes and the supervisor's heartbeat and restart policy."""

    # Seed 002: interval of the server's active health probe, its deadline, socket timeout.
    health_check_interval_sec: int = _f(5, _POS_INT)
    max_response_time_ms: int = _f(300, _POS_INT)
    socket_timeout_sec: float = _f(2.0, _POS)
    # How often the worker sends a heartbeat.
    heartbeat_interval_ms: int = _f(1000, _POS_INT)
    # Missed heartbeats after which the instance is DEGRADED, and after which it is restarted.
    missed_heartbeats_degraded: int = _f(2, _POS_INT)
    missed_heartbeats_restart: int = _f(5, _POS_INT)
    # Consecutive worker failures after which the supervisor stops restarting (FAILED).
    max_consecutive_failures: int = _f(3, _POS_INT)
    # Exponential restart backoff: first delay and cap.
    restart_backoff_initial_ms: int = _f(100, _NON_NEG_INT)
    restart_backoff_max_ms: int = _f(30000, _NON_NEG_INT)
    # A worker up this long counts as stable and resets the failure count.
    stable_after_sec: float = _f(10.0, _NON_NEG)
    # Broker connection retries (seed 000: exponential backoff, 5 attempts).
    broker_retry_attempts: int = _f(5, _NON_NEG_INT)
    broker_retry_initial_ms: int = _f(1000, _NON_NEG_INT)
    # After the terminal lost its broker connection, the worker logs in again this often.
    broker_relogin_after_ms: int = _f(5000, _NON_NEG_INT)


@dataclass(frozen=True, slots=True)
class TradePair:
    """One entry of ``trade_pairs.json``."""

    trade_pair: str = field(metadata={"spec": _SYMBOL})
    spread_type: Literal["floating", "fixed"] = _f("floating", _enum(SPREAD_TYPES))
    # Default volume (lots) of an order in this symbol.
    lot_size: float = _f(0.01, _POS)
    # Largest volume of one order in this symbol; null = broker.max_lot_size.
    max_volume: float | None = _f(None, _optional(_POS))


DEFAULT_TRADE_PAIRS: Final = (
    TradePair("EURUSD"),
    TradePair("GBPUSD"),
    TradePair("USDJPY"),
    # The sim's XAUUSD spec caps one order at 50 lots.
    TradePair("XAUUSD", max_volume=50.0),
)

_SectionClass = type[
    BrokerSection | InstanceSection | ExecutionSection | RiskSection | HealthCheckSection
]
_SECTION_CLASSES: Final[Mapping[str, _SectionClass]] = {
    "broker": BrokerSection,
    "instance": InstanceSection,
    "execution": ExecutionSection,
    "risk": RiskSection,
    "health_check": HealthCheckSection,
}
_FIELDS: Final[Mapping[type[Any], Mapping[str, dataclasses.Field[Any]]]] = {
    cls: {f.name: f for f in dataclasses.fields(cls)}
    for cls in (*_SECTION_CLASSES.values(), TradePair)
}
