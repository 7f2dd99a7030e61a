"""What a simulated account trades with (``SimConfig``) and the broker's fixed numbers."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from mt5exec.sim.symbols import DEFAULT_SYMBOLS, SymbolSettings

SERVER_NAME = "mt5exec-sim"


COMMENT_MAX = 31  # MT5 truncates trade comments to 31 characters.


# The worker writes a snapshot after this many journal records, which bounds the replay at start.
CHECKPOINT_EVERY = 10_000


# Volumes are multiples of 0.01-ish steps; anything closer than this to a multiple is on-step,
# and two volumes closer than this are equal (binary floats cannot hold 0.1 exactly).
VOLUME_EPS = 1e-8


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

    def check(self) -> None:
        """``ValueError`` naming the field when this config cannot make an account."""
        if not self.symbols:
            raise ValueError("SimConfig.symbols: at least one symbol is needed")
        unknown = [s for s in self.symbols if s not in DEFAULT_SYMBOLS]
        if unknown:
            known = ", ".join(DEFAULT_SYMBOLS)
            raise ValueError(f"SimConfig.symbols: unknown symbol {unknown[0]!r} (known: {known})")
        if self.margin_mode not in ("hedging", "netting"):
            raise ValueError(
                f"SimConfig.margin_mode: {self.margin_mode!r} is not 'hedging' or 'netting'"
            )
        if self.leverage <= 0:
            raise ValueError(f"SimConfig.leverage: must be positive, got {self.leverage}")
        if not math.isfinite(self.initial_balance):
            raise ValueError("SimConfig.initial_balance: must be finite")
        if not (0.0 <= self.stop_out_level <= self.margin_call_level):
            raise ValueError(
                "SimConfig: need 0 <= stop_out_level <= margin_call_level, got "
                f"{self.stop_out_level} and {self.margin_call_level}"
            )
        stray = sorted(set(self.symbol_settings) - {"*", *self.symbols})
        if stray:
            raise ValueError(f"SimConfig.symbol_settings: {stray[0]!r} is not a configured symbol")
