"""What a simulated account trades with (``SimConfig``) and the broker's fixed numbers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from mt5exec.sim.symbols import SymbolSettings

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
