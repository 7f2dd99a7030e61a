"""``simterminal.json``: what a simulated terminal gets from its broker (see
``mt5exec.mt5.simterminal``): the account it logs into and its market. Written by whoever sets
the terminal up (tests, a demo script: ``write_terminal_config``), read at ``initialize``.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from mt5exec.config_error import ConfigError as ConfigError
from mt5exec.files import atomic_write
from mt5exec.sim.symbols import DEFAULT_SYMBOLS, SymbolSettings, parse_symbol_settings

CONFIG_FILE = "simterminal.json"
DEFAULT_SERVER = "mt5exec-sim"


@dataclass(slots=True)
class TerminalConfig:
    """``simterminal.json``: the account the simulated terminal logs into, and its market."""

    login: int = 10_000_001
    # None: any password is accepted (a terminal with saved credentials).
    password: str | None = field(default=None, repr=False)
    server: str = DEFAULT_SERVER
    symbols: list[str] = field(default_factory=lambda: list(DEFAULT_SYMBOLS))
    seed: int = 1
    tick_rate: float = 10.0
    initial_balance: float = 10_000.0
    leverage: int = 100
    currency: str = "USD"
    margin_mode: Literal["hedging", "netting"] = "hedging"
    stop_out_level: float = 50.0
    margin_call_level: float = 100.0
    # Per-symbol trading rules of the simulated broker (see mt5exec.sim.symbols.SymbolSettings).
    symbol_settings: dict[str, SymbolSettings] = field(default_factory=dict)
    name: str = "Simulated account"
    company: str = "mt5exec"


def load_terminal_config(path: Path) -> TerminalConfig:
    """Read ``simterminal.json``; ``ConfigError`` naming the key when a value is unusable."""
    try:
        raw = json.loads(path.read_text())
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror or e}") from None
    except ValueError as e:
        raise ConfigError(f"{path}: not JSON: {e}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a JSON object")
    cfg = TerminalConfig()

    def get(key: str, kinds: tuple[type, ...], what: str) -> Any:
        value = raw[key]
        if isinstance(value, bool) or not isinstance(value, kinds):
            # The password's value never goes into a message.
            shown = "<hidden>" if key == "password" else repr(value)
            raise ConfigError(f"{path}: {key}: expected {what}, got {shown}")
        return value

    if "login" in raw:
        cfg.login = get("login", (int,), "a positive integer")
        if cfg.login <= 0:
            raise ConfigError(f"{path}: login: expected a positive integer, got {cfg.login}")
    if raw.get("password") is not None:
        cfg.password = get("password", (str,), "a string")
    if "server" in raw:
        cfg.server = get("server", (str,), "a string")
    if "symbols" in raw:
        symbols = raw["symbols"]
        if (
            not isinstance(symbols, list)
            or not symbols
            or not all(isinstance(s, str) and s in DEFAULT_SYMBOLS for s in symbols)
        ):
            known = ", ".join(DEFAULT_SYMBOLS)
            raise ConfigError(f"{path}: symbols: expected a list of {known}, got {symbols!r}")
        cfg.symbols = list(symbols)
    if "seed" in raw:
        cfg.seed = get("seed", (int,), "an integer")
    if "tick_rate" in raw:
        cfg.tick_rate = float(get("tick_rate", (int, float), "a number"))
        if not math.isfinite(cfg.tick_rate) or cfg.tick_rate < 0:
            raise ConfigError(f"{path}: tick_rate: must be >= 0, got {cfg.tick_rate}")
    if "initial_balance" in raw:
        cfg.initial_balance = float(get("initial_balance", (int, float), "a number"))
    if "leverage" in raw:
        cfg.leverage = get("leverage", (int,), "a positive integer")
        if cfg.leverage <= 0:
            raise ConfigError(f"{path}: leverage: must be positive, got {cfg.leverage}")
    if "currency" in raw:
        cfg.currency = get("currency", (str,), "a currency code")
    if "margin_mode" in raw:
        if raw["margin_mode"] not in ("hedging", "netting"):
            raise ConfigError(
                f"{path}: margin_mode: expected 'hedging' or 'netting', got {raw['margin_mode']!r}"
            )
        cfg.margin_mode = raw["margin_mode"]
    for key in ("stop_out_level", "margin_call_level"):
        if key in raw:
            value = float(get(key, (int, float), "a number"))
            if not math.isfinite(value) or value < 0:
                raise ConfigError(f"{path}: {key}: must be >= 0, got {value}")
            setattr(cfg, key, value)
    if cfg.stop_out_level > cfg.margin_call_level:
        raise ConfigError(f"{path}: stop_out_level is above margin_call_level")
    if "symbol_settings" in raw:
        try:
            cfg.symbol_settings = parse_symbol_settings(raw["symbol_settings"], cfg.symbols)
        except ValueError as e:
            raise ConfigError(f"{path}: symbol_settings: {e}") from None
    if "name" in raw:
        cfg.name = get("name", (str,), "a string")
    if "company" in raw:
        cfg.company = get("company", (str,), "a string")
    return cfg


def write_terminal_config(directory: str | os.PathLike[str], **values: Any) -> Path:
    """Create the terminal directory and write its ``simterminal.json`` (for tests and demos)."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    target = d / CONFIG_FILE
    atomic_write(target, json.dumps(values).encode())  # 0600: it holds the account's password
    return target
