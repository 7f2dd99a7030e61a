"""The sim worker's config: the JSON file ``mt5exec.workers.sim`` reads at start.

Config (JSON object; every key optional, the defaults keep a plain always-open market):

``instance_id``
    Reported in Hello (``--instance-id`` overrides it).
``symbols``
    Symbol names from ``mt5exec.sim.symbols.DEFAULT_SYMBOLS`` (default: all of them).
``seed``, ``tick_rate``, ``initial_balance``, ``leverage``, ``currency``, ``login``
    The price walk's seed (also of slippage draws), ticks per second per symbol (0: none), the
    new account's balance, leverage, currency and login.
``tick_batch_ms``
    The shortest time between two tick batches in milliseconds (0.1 to 1000, default 2): ticks
    due in between are sent together.
``margin_mode``
    ``"hedging"`` (default) or ``"netting"``.
``stop_out_level``, ``margin_call_level``
    Margin levels in % (defaults 50 and 100): below the first, positions are closed, largest
    loss first; crossing below the second reports one MARGIN_CALL event.
``symbol_settings``
    ``{"<symbol>" | "*": {...}}``, per-symbol overrides (``"*"``: all symbols):
    ``stops_level``, ``freeze_level`` (points), ``filling_mode`` (SYMBOL_FILLING_* bits),
    ``trade_mode`` (SYMBOL_TRADE_MODE_*), ``execution`` (``"market"``, the default;
    ``"instant"``: requotes beyond the request's deviation; ``"exchange"``: RETURN market
    orders), ``liquidity`` (lots per side and tick; default unlimited), ``slippage_points``
    (default 0), ``sessions`` (``"always"``, the default; ``"fx"``: Sunday 22:00 - Friday 22:00
    UTC; or ``[["Mon 08:00", "Fri 17:00"], ...]``). See ``mt5exec.sim.broker`` for the rules.
``clock_offset_ms``
    Added to the system clock to make the server's clock (default 0): lets a test or a demo put
    the server at another time of the week.
``retention_s``, ``retention_orders``
    The order history the journal keeps when it is compacted: of the last ``retention_s``
    seconds and the newest ``retention_orders`` order tickets (defaults 86400 and 100000, the
    engine's; the server passes its ``engine.final_order_retention_s`` and
    ``engine.max_orders_per_instance``, so reconciliation finds every order the engine
    remembers).
``state_path``
    Where the account's state files are (default ``sim_state`` in the working directory;
    ``"none"`` or null: not persisted). ``--state`` on the command line overrides it; what the
    files hold is in ``mt5exec.workers.sim``.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from mt5exec.sim.broker import SimConfig
from mt5exec.sim.link import DEFAULT_RELOGIN_AFTER_S
from mt5exec.sim.state import Retention
from mt5exec.sim.symbols import DEFAULT_SYMBOLS, parse_symbol_settings
from mt5exec.workers.base import ConfigError

log = logging.getLogger("mt5exec.workers.sim")

# Ticks are sent at most this often unless the config's tick_batch_ms says otherwise;
# everything due in between goes in one TickBatch. At high tick rates this turns thousands of
# tiny writes per second into a few hundred larger ones.
DEFAULT_BATCH_INTERVAL_S = 0.002
# The range tick_batch_ms may take (milliseconds); the server checks requests against it too.
TICK_BATCH_MS_RANGE = (0.1, 1000.0)
DEFAULT_STATE_PATH = "sim_state"
# Value of --state / state_path that turns persistence off.
STATE_NONE = "none"


@dataclass(slots=True)
class WorkerConfig:
    instance_id: str
    sim: SimConfig = field(default_factory=lambda: SimConfig(list(DEFAULT_SYMBOLS)))
    # Relative paths are relative to the working directory; None: no persistence.
    state_path: Path | None = Path(DEFAULT_STATE_PATH)
    # The server clock is the system clock plus this.
    clock_offset_ms: int = 0
    # The shortest time between two tick batches.
    batch_interval_s: float = DEFAULT_BATCH_INTERVAL_S
    # The history the journal keeps when it is compacted.
    retention: Retention = field(default_factory=Retention)
    # After a lost broker connection, log in again this often.
    relogin_after_s: float = DEFAULT_RELOGIN_AFTER_S

    def clock(self) -> Callable[[], float]:
        offset = self.clock_offset_ms / 1000.0
        if not offset:
            return time.time
        return lambda: time.time() + offset


def state_path(value: str) -> Path | None:
    """``--state`` / ``state_path`` as a path, None for ``none``."""
    return None if value.strip().lower() == STATE_NONE else Path(value)


def _check(path: Path, key: str, value: Any, kinds: tuple[type, ...], what: str) -> None:
    # bool is an int subclass; a JSON `true` is never a valid number here.
    if isinstance(value, bool) or not isinstance(value, kinds):
        raise ConfigError(f"{path}: {key}: expected {what}, got {value!r}")


def load_config(path: Path | None, instance_id: str | None = None) -> WorkerConfig:
    """Read the worker's JSON config; missing keys take their defaults, unknown ones are ignored."""
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            loaded = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise ConfigError(f"{path}: cannot read config: {e}") from e
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: expected a JSON object")
        raw = loaded
    where = path if path is not None else Path("<defaults>")
    known = {
        "instance_id",
        "symbols",
        "seed",
        "tick_rate",
        "tick_batch_ms",
        "initial_balance",
        "leverage",
        "currency",
        "margin_mode",
        "login",
        "state_path",
        "stop_out_level",
        "margin_call_level",
        "symbol_settings",
        "clock_offset_ms",
        "retention_s",
        "retention_orders",
        "broker_relogin_after_ms",
    }
    extra = sorted(set(raw) - known)
    if extra:
        # Tolerated so that the engine may keep its own bookkeeping keys in the same file.
        log.warning("%s: ignoring unknown config keys: %s", where, ", ".join(extra))

    sim = SimConfig(list(DEFAULT_SYMBOLS))
    if "symbols" in raw:
        symbols = raw["symbols"]
        if not isinstance(symbols, list) or not all(isinstance(s, str) for s in symbols):
            raise ConfigError(f"{where}: symbols: expected a list of names, got {symbols!r}")
        unknown = [s for s in symbols if s not in DEFAULT_SYMBOLS]
        if unknown or not symbols:
            raise ConfigError(
                f"{where}: symbols: unknown symbol {unknown[0]!r}"
                if unknown
                else f"{where}: symbols: at least one symbol is needed"
            )
        sim.symbols = list(symbols)
    if "seed" in raw:
        _check(where, "seed", raw["seed"], (int,), "an integer")
        sim.seed = raw["seed"]
    if "tick_rate" in raw:
        _check(where, "tick_rate", raw["tick_rate"], (int, float), "a number")
        if not math.isfinite(raw["tick_rate"]) or raw["tick_rate"] < 0:
            raise ConfigError(f"{where}: tick_rate: must be >= 0, got {raw['tick_rate']!r}")
        sim.tick_rate = float(raw["tick_rate"])
    batch_s = DEFAULT_BATCH_INTERVAL_S
    relogin_s = DEFAULT_RELOGIN_AFTER_S
    if "tick_batch_ms" in raw:
        value = raw["tick_batch_ms"]
        _check(where, "tick_batch_ms", value, (int, float), "a number")
        low, high = TICK_BATCH_MS_RANGE
        if not math.isfinite(value) or not low <= value <= high:
            raise ConfigError(
                f"{where}: tick_batch_ms: must be in {low:g}..{high:g}, got {value!r}"
            )
        batch_s = value / 1000.0
    if "initial_balance" in raw:
        _check(where, "initial_balance", raw["initial_balance"], (int, float), "a number")
        sim.initial_balance = float(raw["initial_balance"])
    if "leverage" in raw:
        _check(where, "leverage", raw["leverage"], (int,), "an integer")
        if raw["leverage"] <= 0:
            raise ConfigError(f"{where}: leverage: must be positive, got {raw['leverage']}")
        sim.leverage = raw["leverage"]
    if "currency" in raw:
        _check(where, "currency", raw["currency"], (str,), "a currency code")
        sim.currency = raw["currency"]
    if "margin_mode" in raw:
        if raw["margin_mode"] not in ("hedging", "netting"):
            raise ConfigError(
                f"{where}: margin_mode: expected 'hedging' or 'netting', got {raw['margin_mode']!r}"
            )
        sim.margin_mode = raw["margin_mode"]
    if "broker_relogin_after_ms" in raw:
        value = raw["broker_relogin_after_ms"]
        _check(where, "broker_relogin_after_ms", value, (int,), "an integer")
        if value < 0:
            raise ConfigError(f"{where}: broker_relogin_after_ms: must be >= 0, got {value}")
        relogin_s = value / 1000.0
    if "login" in raw:
        _check(where, "login", raw["login"], (int,), "an integer")
        sim.login = raw["login"]
    for key in ("stop_out_level", "margin_call_level"):
        if key in raw:
            _check(where, key, raw[key], (int, float), "a number")
            if not math.isfinite(raw[key]) or raw[key] < 0:
                raise ConfigError(f"{where}: {key}: must be >= 0, got {raw[key]!r}")
            setattr(sim, key, float(raw[key]))
    if sim.stop_out_level > sim.margin_call_level:
        raise ConfigError(
            f"{where}: stop_out_level ({sim.stop_out_level:g}) is above margin_call_level "
            f"({sim.margin_call_level:g})"
        )
    if "symbol_settings" in raw:
        try:
            sim.symbol_settings = parse_symbol_settings(raw["symbol_settings"], sim.symbols)
        except ValueError as e:
            raise ConfigError(f"{where}: symbol_settings: {e}") from None
    offset = 0
    if "clock_offset_ms" in raw:
        _check(where, "clock_offset_ms", raw["clock_offset_ms"], (int,), "an integer")
        offset = raw["clock_offset_ms"]
    retention = Retention()
    if "retention_s" in raw:
        value = raw["retention_s"]
        _check(where, "retention_s", value, (int, float), "a number")
        if not math.isfinite(value) or value <= 0:
            raise ConfigError(f"{where}: retention_s: must be positive, got {value!r}")
        retention = replace(retention, keep_s=float(value))
    if "retention_orders" in raw:
        value = raw["retention_orders"]
        _check(where, "retention_orders", value, (int,), "an integer")
        if value <= 0:
            raise ConfigError(f"{where}: retention_orders: must be positive, got {value}")
        retention = replace(retention, keep_orders=value)
    state: Path | None = Path(DEFAULT_STATE_PATH)
    if "state_path" in raw:
        value = raw["state_path"]
        if value is None:
            state = None
        else:
            _check(where, "state_path", value, (str,), 'a path, "none" or null')
            if not value.strip():
                raise ConfigError(f'{where}: state_path: empty (use "none" to turn it off)')
            state = state_path(value)
    iid = raw.get("instance_id", "sim")
    _check(where, "instance_id", iid, (str,), "a string")
    if instance_id:
        iid = instance_id
    return WorkerConfig(
        instance_id=iid,
        sim=sim,
        state_path=state,
        clock_offset_ms=offset,
        batch_interval_s=batch_s,
        retention=retention,
        relogin_after_s=relogin_s,
    )
