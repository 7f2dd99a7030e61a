"""Symbol specifications of the simulated broker.

Owns the default contract specs (what MT5's ``symbol_info`` would report for a typical retail
broker) and their conversion to the worker protocol's ``SymbolInfo``. The price-process knobs
(start price, spread, step size) live here too so that a spec fully describes a simulated market.
Also owns the per-symbol settings a sim config may override (``SymbolSettings``: stops and
freeze levels, filling and trade modes, execution mode, liquidity, slippage, sessions) and their
JSON form (``parse_symbol_settings``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from mt5exec.sim.sessions import SessionError, Sessions
from mt5exec.terminal.v1 import worker_pb2 as pb

# SYMBOL_FILLING_* bits and SYMBOL_TRADE_MODE_* values, as in MT5.
SYMBOL_FILLING_FOK = 1
SYMBOL_FILLING_IOC = 2
SYMBOL_FILLING_BOC = 4
SYMBOL_TRADE_MODE_DISABLED = 0
SYMBOL_TRADE_MODE_LONGONLY = 1
SYMBOL_TRADE_MODE_SHORTONLY = 2
SYMBOL_TRADE_MODE_CLOSEONLY = 3
SYMBOL_TRADE_MODE_FULL = 4
# SYMBOL_TRADE_EXECUTION_*: how market orders are priced (see SymbolSettings.execution).
SYMBOL_TRADE_EXECUTION_INSTANT = 1
SYMBOL_TRADE_EXECUTION_MARKET = 2
SYMBOL_TRADE_EXECUTION_EXCHANGE = 3
EXECUTION_MODES: Mapping[str, int] = MappingProxyType(
    {
        "instant": SYMBOL_TRADE_EXECUTION_INSTANT,
        "market": SYMBOL_TRADE_EXECUTION_MARKET,
        "exchange": SYMBOL_TRADE_EXECUTION_EXCHANGE,
    }
)


@dataclass(frozen=True, slots=True)
class SymbolSpec:
    """One tradable symbol: the fields of ``SymbolInfo`` plus the simulated price process."""

    name: str
    digits: int
    point: float
    contract_size: float
    volume_min: float
    volume_max: float
    volume_step: float
    stops_level: int
    freeze_level: int
    filling_mode: int
    trade_mode: int
    currency_base: str
    currency_profit: str
    currency_margin: str
    tick_value: float
    tick_size: float
    # Price process: the mid starts here and moves by at most ``step_points`` points per tick;
    # bid and ask sit ``spread_points`` apart.
    start_price: float
    spread_points: int
    step_points: int

    def to_proto(self) -> pb.SymbolInfo:
        return pb.SymbolInfo(
            name=self.name,
            digits=self.digits,
            point=self.point,
            contract_size=self.contract_size,
            volume_min=self.volume_min,
            volume_max=self.volume_max,
            volume_step=self.volume_step,
            stops_level=self.stops_level,
            freeze_level=self.freeze_level,
            filling_mode=self.filling_mode,
            trade_mode=self.trade_mode,
            currency_base=self.currency_base,
            currency_profit=self.currency_profit,
            currency_margin=self.currency_margin,
            tick_value=self.tick_value,
            tick_size=self.tick_size,
        )


def symbol_info(spec: SymbolSpec) -> pb.SymbolInfo:
    """The protocol message for ``spec`` (same as ``spec.to_proto()``)."""
    return spec.to_proto()


def _fx(
    name: str,
    *,
    digits: int,
    start_price: float,
    spread_points: int,
    step_points: int = 1,
    contract_size: float = 100_000.0,
    volume_max: float = 100.0,
) -> SymbolSpec:
    point = 10.0**-digits
    base, profit = name[:3], name[3:6]
    # Tick value in USD for one lot: direct for xxxUSD; USDxxx is converted at the start price,
    # which is what a USD account sees at that rate (MT5 recomputes it as the price moves).
    tick_value = contract_size * point
    if profit != "USD" and base == "USD":
        tick_value = round(tick_value / start_price, 8)
    return SymbolSpec(
        name=name,
        digits=digits,
        point=point,
        contract_size=contract_size,
        volume_min=0.01,
        volume_max=volume_max,
        volume_step=0.01,
        stops_level=0,
        freeze_level=0,
        filling_mode=SYMBOL_FILLING_FOK | SYMBOL_FILLING_IOC,
        trade_mode=SYMBOL_TRADE_MODE_FULL,
        currency_base=base,
        currency_profit=profit,
        currency_margin=base,
        tick_value=tick_value,
        tick_size=point,
        start_price=start_price,
        spread_points=spread_points,
        step_points=step_points,
    )


DEFAULT_SYMBOLS: Mapping[str, SymbolSpec] = MappingProxyType(
    {
        s.name: s
        for s in (
            _fx("EURUSD", digits=5, start_price=1.08500, spread_points=10),
            _fx("GBPUSD", digits=5, start_price=1.27000, spread_points=12),
            _fx("USDJPY", digits=3, start_price=151.500, spread_points=12),
            # Gold moves more per point than FX, hence the larger per-tick step.
            _fx(
                "XAUUSD",
                digits=2,
                start_price=2350.00,
                spread_points=30,
                step_points=5,
                contract_size=100.0,
                volume_max=50.0,
            ),
        )
    }
)


def get_symbol(name: str) -> SymbolSpec:
    """The default spec for ``name``; ``KeyError`` naming the symbol when there is none."""
    try:
        return DEFAULT_SYMBOLS[name]
    except KeyError:
        raise KeyError(f"unknown symbol {name!r}") from None


@dataclass(frozen=True, slots=True)
class SymbolSettings:
    """Per-symbol overrides in a sim config; ``None`` keeps the default.

    ``execution``: ``"market"`` (MT5 market execution, the default: the server fills at its own
    price, the request's deviation is ignored, RETURN is not allowed for market orders),
    ``"instant"`` (instant execution: a fill further than ``deviation`` points from the request
    price is refused with a requote) or ``"exchange"`` (exchange execution: RETURN allowed for
    market orders too). ``liquidity``: lots available at each price level, i.e. per side and
    tick (unlimited by default). ``slippage_points``: a fill lands up to this many points away
    from the quote, uniformly drawn from the seed (0 by default). ``sessions``: see
    ``mt5exec.sim.sessions``.
    """

    stops_level: int | None = None
    freeze_level: int | None = None
    filling_mode: int | None = None
    trade_mode: int | None = None
    execution: str | None = None
    liquidity: float | None = None
    slippage_points: int | None = None
    sessions: Any = None

    def over(self, base: SymbolSettings) -> SymbolSettings:
        """These settings on top of ``base`` (the ``"*"`` entry)."""
        return SymbolSettings(
            **{
                f.name: getattr(base, f.name)
                if getattr(self, f.name) is None
                else getattr(self, f.name)
                for f in dataclasses.fields(self)
            }
        )


@dataclass(frozen=True, slots=True)
class SymbolRules:
    """The resolved trading rules of one symbol (what ``SymbolSettings`` do not put in a spec)."""

    execution: int = SYMBOL_TRADE_EXECUTION_MARKET
    # Lots per side and tick; inf: unlimited.
    liquidity: float = math.inf
    slippage_points: int = 0
    sessions: Sessions = Sessions.ALWAYS


def resolve(spec: SymbolSpec, settings: SymbolSettings | None) -> tuple[SymbolSpec, SymbolRules]:
    """``spec`` with the overrides of ``settings`` applied, and the symbol's trading rules."""
    if settings is None:
        return spec, SymbolRules()
    changes = {
        name: getattr(settings, name)
        for name in ("stops_level", "freeze_level", "filling_mode", "trade_mode")
        if getattr(settings, name) is not None
    }
    rules = SymbolRules(
        execution=EXECUTION_MODES[settings.execution or "market"],
        liquidity=math.inf if settings.liquidity is None else settings.liquidity,
        slippage_points=settings.slippage_points or 0,
        sessions=Sessions.parse(settings.sessions),
    )
    return (dataclasses.replace(spec, **changes) if changes else spec), rules


def _int_in(key: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{key}: expected an integer in [{low}, {high}], got {value!r}")
    return value


def parse_symbol_settings(raw: Any, symbols: list[str] | None = None) -> dict[str, SymbolSettings]:
    """``symbol_settings`` from its JSON form: ``{"<symbol>" | "*": {key: value}}``.

    ``ValueError`` naming the symbol and key on anything unusable, including settings for a
    symbol that is not in ``symbols`` (when given).
    """
    if not isinstance(raw, dict):
        raise ValueError(f"expected an object of symbol -> settings, got {raw!r}")
    out: dict[str, SymbolSettings] = {}
    known = {f.name for f in dataclasses.fields(SymbolSettings)}
    for name, entry in raw.items():
        if name != "*" and symbols is not None and name not in symbols:
            raise ValueError(f"{name}: not one of the configured symbols")
        if not isinstance(entry, dict):
            raise ValueError(f"{name}: expected an object of settings, got {entry!r}")
        extra = sorted(set(entry) - known)
        if extra:
            raise ValueError(f"{name}: unknown settings {', '.join(extra)}")
        values: dict[str, Any] = {}
        for key, value in entry.items():
            where = f"{name}.{key}"
            if value is None:
                continue
            if key in ("stops_level", "freeze_level", "slippage_points"):
                values[key] = _int_in(where, value, 0, 1_000_000)
            elif key == "filling_mode":
                values[key] = _int_in(where, value, 0, 7)
            elif key == "trade_mode":
                values[key] = _int_in(where, value, 0, 4)
            elif key == "execution":
                if value not in EXECUTION_MODES:
                    raise ValueError(
                        f"{where}: expected one of {', '.join(EXECUTION_MODES)}, got {value!r}"
                    )
                values[key] = value
            elif key == "liquidity":
                if (
                    isinstance(value, bool)
                    or not isinstance(value, (int, float))
                    or not value > 0
                    or math.isnan(value)
                ):
                    raise ValueError(f"{where}: expected a positive number of lots, got {value!r}")
                values[key] = float(value)
            elif key == "sessions":
                try:
                    Sessions.parse(value)
                except SessionError as e:
                    raise ValueError(f"{where}: {e}") from None
                values[key] = value
        out[name] = SymbolSettings(**values)
    return out
