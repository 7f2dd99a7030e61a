"""Symbol specifications of the simulated broker.

Owns the default contract specs (what MT5's ``symbol_info`` would report for a typical retail
broker) and their conversion to the worker protocol's ``SymbolInfo``. The price-process knobs
(start price, spread, step size) live here too so that a spec fully describes a simulated market.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

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
