"""A ``MetaTrader5``-compatible module whose "terminal" is the simulated broker.

Owns the MetaTrader5 package's surface as the MT5 worker (``mt5exec.workers.mt5``) uses it, so
that the worker runs end to end on Linux, in CI and in demos, with ``module`` set to
``mt5exec.mt5.simterminal``: the same function names and signatures, the same constants (all of
``mt5exec.mt5.constants`` is re-exported), the same result shapes (named tuples whose
``_asdict()`` keys are the official field names) and the same failure convention (``None`` or
``False`` and a code in ``last_error()``, never an exception). One process attaches to one
terminal at a time, as with the real package.

The "terminal" is a directory (``initialize(path)``; a path to a file inside it, such as
``.../terminal64.exe``, names its directory). It holds:

``simterminal.json``
    What a real terminal would get from its broker: ``login``, ``password``, ``server``, and the
    simulated account and market (``symbols``, ``seed``, ``tick_rate``, ``initial_balance``,
    ``leverage``, ``currency``, ``margin_mode``, ``stop_out_level``, ``margin_call_level``,
    ``symbol_settings`` as for the sim worker, ``name``, ``company``). Written by whoever sets
    the terminal up (tests, a demo script; ``write_terminal_config``). ``initialize`` refuses
    credentials that differ from it with ``RES_E_AUTH_FAILED``. The password is compared, never
    logged or echoed.
``sim_state*``
    The account of an in-process ``mt5exec.sim.SimBroker`` (journal and snapshots, see
    ``mt5exec.sim.state``): positions and deals survive ``shutdown``/``initialize`` and process
    restarts, as an account at a broker does.
``simterminal.inject.json``
    Optional test hook, read and removed by the next API call (see ``inject_ipc_failures`` and
    ``set_price``), so that tests can break the IPC link of a worker running in another process
    or move its market.

Prices advance with wall time: every call that reads or trades catches the broker up by
``tick_rate`` ticks per second per symbol (at most ``MAX_CATCH_UP_TICKS`` per call after a long
pause), and the recent ticks stay available to ``copy_ticks_from``/``copy_ticks_range``.

``order_send`` goes to the broker, which plays the trade server: market and pending orders,
SLTP, MODIFY, REMOVE and CLOSE_BY, with MT5's rules and retcodes. ``order_check`` asks it the
same question with ``check_only`` (every check of a real send, nothing changes). What the broker
does on its own as prices move (triggered orders, SL/TP, stop-outs, expirations) lands in the
positions, orders and history that the module reports, as it would in a real terminal.

IPC failures (test hook): ``inject_ipc_failures(n, code)`` makes the next ``n`` calls fail with
``code`` (e.g. ``RES_E_INTERNAL_FAIL_TIMEOUT``); with ``executed=True`` a trade call still
reaches the broker and only its answer is lost, which is what makes an order's outcome unknown.
After an injected failure the link stays down (every call fails with
``RES_E_INTERNAL_FAIL_CONNECT``) until ``initialize`` is called again, as with a real terminal
whose pipe broke.
"""

from __future__ import annotations

import calendar
import contextlib
import hmac
import importlib
import json
import math
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, NamedTuple, Protocol, TypeVar

from mt5exec.mt5 import constants as c
from mt5exec.mt5.constants import *  # noqa: F403 - the official module exposes every constant
from mt5exec.sim.bars import TIMEFRAMES
from mt5exec.sim.broker import SimBroker, SimConfig
from mt5exec.sim.constants import ACTIVE_STATES
from mt5exec.sim.market import group_matcher as _group_matcher
from mt5exec.sim.state import StateError
from mt5exec.sim.symbols import (
    DEFAULT_SYMBOLS,
    SymbolSettings,
    SymbolSpec,
    parse_symbol_settings,
    resolve,
)
from mt5exec.terminal.v1 import worker_pb2 as pb

__author__ = "mt5exec (simulated terminal)"
__version__ = "5.0.6231"

CONFIG_FILE = "simterminal.json"
INJECT_FILE = "simterminal.inject.json"
STATE_NAME = "sim_state"
# Environment variable naming the terminal directory when ``initialize`` gets no path (the real
# package would look for an installed terminal instead).
PATH_ENV = "MT5EXEC_SIMTERMINAL_PATH"

BUILD = 5000
BUILD_DATE = "01 Jan 2026"
DEFAULT_SERVER = "mt5exec-sim"
# Ticks kept per symbol for copy_ticks_from / copy_ticks_range.
TICK_HISTORY = 20_000
# After a long pause the walk does not replay hours of ticks: at most this many per symbol.
MAX_CATCH_UP_TICKS = 2_000

# numpy structured array of copy_ticks_*, as the real package returns it.
TICK_DTYPE = [
    ("time", "<i8"),
    ("bid", "<f8"),
    ("ask", "<f8"),
    ("last", "<f8"),
    ("volume", "<u8"),
    ("time_msc", "<i8"),
    ("flags", "<u4"),
    ("volume_real", "<f8"),
]
# copy_rates_* rows (MqlRates), as the official package's numpy dtype.
RATES_DTYPE = [
    ("time", "<i8"),
    ("open", "<f8"),
    ("high", "<f8"),
    ("low", "<f8"),
    ("close", "<f8"),
    ("tick_volume", "<u8"),
    ("spread", "<i4"),
    ("real_volume", "<u8"),
]


def _numpy() -> Any:
    try:
        return importlib.import_module("numpy")
    except ImportError:
        return None


# copy_ticks_* return a numpy structured array when numpy is importable (like the real package,
# which requires it), else a tuple of Tick. Tests may switch this off to get tuples.
TICKS_AS_NUMPY: bool = _numpy() is not None


# -- result types ----------------------------------------------------------------------------
# Field names and order are the official package's (its structseq types); defaults let the
# simulator leave out what it does not model.


class TerminalInfo(NamedTuple):
    community_account: bool = False
    community_connection: bool = False
    connected: bool = True
    dlls_allowed: bool = False
    trade_allowed: bool = True
    tradeapi_disabled: bool = False
    email_enabled: bool = False
    ftp_enabled: bool = False
    notifications_enabled: bool = False
    mqid: bool = False
    build: int = BUILD
    maxbars: int = 100_000
    codepage: int = 0
    ping_last: int = 0
    community_balance: float = 0.0
    retransmission: float = 0.0
    company: str = ""
    name: str = ""
    language: str = "English"
    path: str = ""
    data_path: str = ""
    commondata_path: str = ""


class AccountInfo(NamedTuple):
    login: int = 0
    trade_mode: int = c.ACCOUNT_TRADE_MODE_DEMO
    leverage: int = 0
    limit_orders: int = 0
    margin_so_mode: int = c.ACCOUNT_STOPOUT_MODE_PERCENT
    trade_allowed: bool = True
    trade_expert: bool = True
    margin_mode: int = c.ACCOUNT_MARGIN_MODE_RETAIL_HEDGING
    currency_digits: int = 2
    fifo_close: bool = False
    balance: float = 0.0
    credit: float = 0.0
    profit: float = 0.0
    equity: float = 0.0
    margin: float = 0.0
    margin_free: float = 0.0
    margin_level: float = 0.0
    margin_so_call: float = 0.0
    margin_so_so: float = 0.0
    margin_initial: float = 0.0
    margin_maintenance: float = 0.0
    assets: float = 0.0
    liabilities: float = 0.0
    commission_blocked: float = 0.0
    name: str = ""
    server: str = ""
    currency: str = ""
    company: str = ""


class SymbolInfo(NamedTuple):
    custom: bool = False
    chart_mode: int = c.SYMBOL_CHART_MODE_BID
    select: bool = False
    visible: bool = False
    session_deals: int = 0
    session_buy_orders: int = 0
    session_sell_orders: int = 0
    volume: int = 0
    volumehigh: int = 0
    volumelow: int = 0
    time: int = 0
    digits: int = 0
    spread: int = 0
    spread_float: bool = True
    ticks_bookdepth: int = 0
    trade_calc_mode: int = c.SYMBOL_CALC_MODE_FOREX
    trade_mode: int = c.SYMBOL_TRADE_MODE_FULL
    start_time: int = 0
    expiration_time: int = 0
    trade_stops_level: int = 0
    trade_freeze_level: int = 0
    trade_exemode: int = c.SYMBOL_TRADE_EXECUTION_MARKET
    swap_mode: int = c.SYMBOL_SWAP_MODE_DISABLED
    swap_rollover3days: int = c.DAY_OF_WEEK_WEDNESDAY
    margin_hedged_use_leg: bool = False
    expiration_mode: int = 15
    filling_mode: int = 0
    order_mode: int = 127
    order_gtc_mode: int = c.SYMBOL_ORDERS_GTC
    option_mode: int = c.SYMBOL_OPTION_MODE_EUROPEAN
    option_right: int = c.SYMBOL_OPTION_RIGHT_CALL
    bid: float = 0.0
    bidhigh: float = 0.0
    bidlow: float = 0.0
    ask: float = 0.0
    askhigh: float = 0.0
    asklow: float = 0.0
    last: float = 0.0
    lasthigh: float = 0.0
    lastlow: float = 0.0
    volume_real: float = 0.0
    volumehigh_real: float = 0.0
    volumelow_real: float = 0.0
    option_strike: float = 0.0
    point: float = 0.0
    trade_tick_value: float = 0.0
    trade_tick_value_profit: float = 0.0
    trade_tick_value_loss: float = 0.0
    trade_tick_size: float = 0.0
    trade_contract_size: float = 0.0
    trade_accrued_interest: float = 0.0
    trade_face_value: float = 0.0
    trade_liquidity_rate: float = 0.0
    volume_min: float = 0.0
    volume_max: float = 0.0
    volume_step: float = 0.0
    volume_limit: float = 0.0
    swap_long: float = 0.0
    swap_short: float = 0.0
    margin_initial: float = 0.0
    margin_maintenance: float = 0.0
    session_volume: float = 0.0
    session_turnover: float = 0.0
    session_interest: float = 0.0
    session_buy_orders_volume: float = 0.0
    session_sell_orders_volume: float = 0.0
    session_open: float = 0.0
    session_close: float = 0.0
    session_aw: float = 0.0
    session_price_settlement: float = 0.0
    session_price_limit_min: float = 0.0
    session_price_limit_max: float = 0.0
    margin_hedged: float = 0.0
    price_change: float = 0.0
    price_volatility: float = 0.0
    price_theoretical: float = 0.0
    price_greeks_delta: float = 0.0
    price_greeks_theta: float = 0.0
    price_greeks_gamma: float = 0.0
    price_greeks_vega: float = 0.0
    price_greeks_rho: float = 0.0
    price_greeks_omega: float = 0.0
    price_sensitivity: float = 0.0
    basis: str = ""
    category: str = ""
    currency_base: str = ""
    currency_profit: str = ""
    currency_margin: str = ""
    bank: str = ""
    description: str = ""
    exchange: str = ""
    formula: str = ""
    isin: str = ""
    name: str = ""
    page: str = ""
    path: str = ""


class Tick(NamedTuple):
    time: int
    bid: float
    ask: float
    last: float
    volume: int
    time_msc: int
    flags: int
    volume_real: float


class TradeRequest(NamedTuple):
    action: int = 0
    magic: int = 0
    order: int = 0
    symbol: str = ""
    volume: float = 0.0
    price: float = 0.0
    stoplimit: float = 0.0
    sl: float = 0.0
    tp: float = 0.0
    deviation: int = 0
    type: int = 0
    type_filling: int = 0
    type_time: int = 0
    expiration: int = 0
    comment: str = ""
    position: int = 0
    position_by: int = 0


class OrderSendResult(NamedTuple):
    retcode: int
    deal: int
    order: int
    volume: float
    price: float
    bid: float
    ask: float
    comment: str
    request_id: int
    retcode_external: int
    request: TradeRequest


class OrderCheckResult(NamedTuple):
    retcode: int
    balance: float
    equity: float
    profit: float
    margin: float
    margin_free: float
    margin_level: float
    comment: str
    request: TradeRequest


class TradeOrder(NamedTuple):
    ticket: int
    time_setup: int
    time_setup_msc: int
    time_done: int
    time_done_msc: int
    time_expiration: int
    type: int
    type_time: int
    type_filling: int
    state: int
    magic: int
    position_id: int
    position_by_id: int
    reason: int
    volume_initial: float
    volume_current: float
    price_open: float
    sl: float
    tp: float
    price_current: float
    price_stoplimit: float
    symbol: str
    comment: str
    external_id: str


class TradePosition(NamedTuple):
    ticket: int
    time: int
    time_msc: int
    time_update: int
    time_update_msc: int
    type: int
    magic: int
    identifier: int
    reason: int
    volume: float
    price_open: float
    sl: float
    tp: float
    price_current: float
    swap: float
    profit: float
    symbol: str
    comment: str
    external_id: str


class TradeDeal(NamedTuple):
    ticket: int
    order: int
    time: int
    time_msc: int
    type: int
    entry: int
    magic: int
    position_id: int
    reason: int
    volume: float
    price: float
    commission: float
    swap: float
    profit: float
    fee: float
    symbol: str
    comment: str
    external_id: str


# -- module state ------------------------------------------------------------------------------

_T = TypeVar("_T")


class _Item(Protocol):
    """What the filters of positions_get, orders_get and history_*_get look at."""

    @property
    def ticket(self) -> int: ...
    @property
    def symbol(self) -> str: ...


class _HistoryItem(_Item, Protocol):
    @property
    def position_id(self) -> int: ...


_I = TypeVar("_I", bound=_Item)
_H = TypeVar("_H", bound=_HistoryItem)

# One lock for every call: the real package serialises calls over its one pipe as well.
_lock = threading.RLock()
_last_error: tuple[int, str] = (c.RES_S_OK, c.LAST_ERROR_MESSAGES[c.RES_S_OK])


class ConfigError(ValueError):
    """``simterminal.json`` is unusable; the message names the file and the key."""


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
    tmp = target.with_name(f".{CONFIG_FILE}.tmp")
    # 0600 from the start: the file holds the account's password.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(values, f)
    os.replace(tmp, target)
    return target


@dataclass(slots=True)
class _Injection:
    remaining: int
    code: int
    functions: frozenset[str] | None
    executed: bool
    disconnect: bool


_injections: deque[_Injection] = deque()
# Set while a call runs whose answer an injected failure will swallow (executed=True).
_lost_reply: _Injection | None = None


def inject_ipc_failures(
    n: int,
    code: int = c.RES_E_INTERNAL_FAIL_TIMEOUT,
    *,
    functions: Iterable[str] | None = None,
    executed: bool = False,
    disconnect: bool = True,
) -> None:
    """Test hook: make the next ``n`` calls (of ``functions``, default any) fail with ``code``.

    ``executed``: the call still does its work (an ``order_send`` reaches the broker) and only
    the answer is lost. ``disconnect``: after the failure every call fails with
    ``RES_E_INTERNAL_FAIL_CONNECT`` until ``initialize`` succeeds again. The same can be asked
    from another process by writing ``simterminal.inject.json`` into the terminal directory: an
    object (or a list of objects) with the keys ``n``, ``code``, ``functions``, ``executed`` and
    ``disconnect``.
    """
    if n <= 0:
        return
    names = frozenset(functions) if functions is not None else None
    with _lock:
        _injections.append(_Injection(n, code, names, executed, disconnect))


def clear_injected_failures() -> None:
    """Drop every pending injected failure and price move (test hook)."""
    with _lock:
        _injections.clear()
        _pending_prices.clear()


# Price moves asked for through the hook file, applied by the next call with a session.
_pending_prices: list[tuple[str, float]] = []
# The broker connection ({"broker_outage_ms": n} in the inject file): the broker is away until
# _broker_down_until (time.time()), and the terminal logged out until a login() after that.
_broker_down_until = 0.0
_logged_out = False


def set_price(symbol: str, bid: float) -> bool:
    """Test hook: the simulated market ticks at ``bid`` (ask = bid + spread) now, as a tick of
    the trade server would; orders and stops it reaches fire. False if not attached or the
    symbol is unknown. From another process: ``{"set_price": {"EURUSD": 1.08}}`` in the hook
    file (see ``inject_ipc_failures``)."""
    with _lock:
        session = _session
        if session is None or symbol not in session.specs:
            return False
        session.set_price(symbol, bid)
        return True


def write_hook_file(directory: str | os.PathLike[str], commands: Any) -> Path:
    """Write ``simterminal.inject.json`` for the terminal in ``directory`` (test hook).

    ``commands``: one object or a list of them, each an IPC failure (the keys of
    ``inject_ipc_failures``: ``n``, ``code``, ``functions``, ``executed``, ``disconnect``) or a
    price move (``{"set_price": {"EURUSD": 1.08}}``) or a broker outage
    (``{"broker_outage_ms": 5000}``: logged out, ``terminal_info().connected`` false, ``login``
    failing until it is over; ``0`` ends it). The file is replaced atomically: the
    terminal may read it at any moment, and half a file would be lost.
    """
    d = Path(directory)
    target = d / INJECT_FILE
    tmp = d / f".{INJECT_FILE}.tmp-{os.getpid()}"
    tmp.write_text(json.dumps(commands))
    os.replace(tmp, target)
    return target


def _read_inject_file(directory: Path) -> None:
    path = directory / INJECT_FILE
    claimed = directory / f".{INJECT_FILE}.{os.getpid()}"
    try:
        # Renamed first so that a test writing the next file cannot have it half read.
        os.rename(path, claimed)
    except FileNotFoundError:
        return
    try:
        raw = json.loads(claimed.read_text())
    except (OSError, ValueError):
        return
    finally:
        with contextlib.suppress(FileNotFoundError):
            claimed.unlink()
    for item in raw if isinstance(raw, list) else [raw]:
        if not isinstance(item, dict):
            continue
        outage = item.get("broker_outage_ms")
        if isinstance(outage, int):
            global _broker_down_until, _logged_out
            if outage == 0:  # the outage ends: the next login() finds the broker
                _broker_down_until = min(_broker_down_until, time.time())
                continue
            _broker_down_until = max(_broker_down_until, time.time() + outage / 1000.0)
            _logged_out = True
            continue
        prices = item.get("set_price")
        if isinstance(prices, dict):
            _pending_prices.extend((str(k), float(v)) for k, v in prices.items())
            continue
        funcs = item.get("functions")
        inject_ipc_failures(
            int(item.get("n", 1)),
            int(item.get("code", c.RES_E_INTERNAL_FAIL_TIMEOUT)),
            functions=[str(f) for f in funcs] if isinstance(funcs, list) else None,
            executed=bool(item.get("executed", False)),
            disconnect=bool(item.get("disconnect", True)),
        )


# -- prices ------------------------------------------------------------------------------------


class _Feed:
    """Moves the broker's prices along with wall time and keeps the recent ticks."""

    def __init__(self, broker: SimBroker, rate: float) -> None:
        self.broker = broker
        self.period = 1.0 / rate if rate > 0 else 0.0
        now = time.time()
        self.next_tick = now + self.period
        self.ticks: dict[str, deque[Tick]] = {}
        self.high_low: dict[str, list[float]] = {}
        for name in broker.symbols:
            bid, ask, t_msc = broker.quote(name)
            # A restored market carries the time of its last saved tick; the terminal shows it.
            t_msc = t_msc or int(now * 1000)
            first = Tick(t_msc // 1000, bid, ask, 0.0, 0, t_msc, _FLAGS_QUOTE, 0.0)
            self.ticks[name] = deque([first], maxlen=TICK_HISTORY)
            self.high_low[name] = [bid, bid, ask, ask]

    def catch_up(self) -> bool:
        """Advance the trading symbols by the ticks due since the last call; True if any."""
        if not self.period:
            return False
        now = time.time()
        if now < self.next_tick:
            return False
        due = int((now - self.next_tick) / self.period) + 1
        start = self.next_tick
        if due > MAX_CATCH_UP_TICKS:
            # Skip the stretch nobody watched; the walk goes on from the latest price.
            start = now - (MAX_CATCH_UP_TICKS - 1) * self.period
            due = MAX_CATCH_UP_TICKS
        self.next_tick = start + due * self.period
        # Symbols outside their sessions do not tick.
        symbols = self.broker.trading_symbols
        if not symbols:
            return False
        advance = self.broker.advance
        for i in range(due):
            t_msc = int((start + i * self.period) * 1000.0)
            for name in symbols:
                # Orders and stops the tick reaches fire inside advance (broker activity).
                self.record(name, *advance(name, t_msc), t_msc)
        return True

    def record(self, name: str, bid: float, ask: float, t_msc: int) -> None:
        ticks = self.ticks[name]
        prev = ticks[-1]
        flags = (_FLAG_BID if bid != prev.bid else 0) | (_FLAG_ASK if ask != prev.ask else 0)
        if not flags:
            # A step of the walk that changed nothing is no tick for the terminal.
            return
        # The deque may hold two ticks of the same millisecond at very high rates.
        ticks.append(Tick(t_msc // 1000, bid, ask, 0.0, 0, t_msc, flags, 0.0))
        hl = self.high_low[name]
        if bid > hl[0]:
            hl[0] = bid
        if bid < hl[1]:
            hl[1] = bid
        if ask > hl[2]:
            hl[2] = ask
        if ask < hl[3]:
            hl[3] = ask

    def last(self, name: str) -> Tick:
        return self.ticks[name][-1]

    def select(self, name: str, from_msc: int, to_msc: int | None, count: int | None) -> list[Tick]:
        out: list[Tick] = []
        for t in self.ticks[name]:
            if t.time_msc < from_msc:
                continue
            if to_msc is not None and t.time_msc > to_msc:
                break
            out.append(t)
            if count is not None and len(out) >= count:
                break
        return out


_FLAG_BID = c.TICK_FLAG_BID
_FLAG_ASK = c.TICK_FLAG_ASK
_FLAGS_QUOTE = c.TICK_FLAG_BID | c.TICK_FLAG_ASK


# -- the attached terminal ---------------------------------------------------------------------


def _terminal_dir(path: str | os.PathLike[str]) -> Path:
    p = Path(path)
    # The real package takes the path of terminal64.exe; the simulator lives in its directory.
    if p.is_file() or p.suffix.lower() == ".exe":
        return p.parent
    return p


def _trade_order(o: pb.OrderInfo, reason: int) -> TradeOrder:
    return TradeOrder(
        ticket=o.ticket,
        time_setup=o.time_setup_msc // 1000,
        time_setup_msc=o.time_setup_msc,
        time_done=o.time_done_msc // 1000,
        time_done_msc=o.time_done_msc,
        time_expiration=o.time_expiration,
        type=o.type,
        type_time=o.type_time,
        type_filling=o.type_filling,
        state=o.state,
        magic=o.magic,
        position_id=o.position_id,
        position_by_id=0,
        reason=reason,
        volume_initial=o.volume_initial,
        volume_current=o.volume_current,
        price_open=o.price_open,
        sl=o.sl,
        tp=o.tp,
        price_current=o.price_current,
        price_stoplimit=o.price_stoplimit,
        symbol=o.symbol,
        comment=o.comment,
        external_id="",
    )


class _Session:
    """One attached terminal: its directory, config, broker, prices and history.

    The history (``history_*_get``) is read from the broker's journal once at attach time, then
    kept up to date from what the broker reports: the outcome of each ``order_send`` and the
    activity it had on its own (triggered orders, SL/TP, stop-outs, expirations).
    """

    def __init__(self, directory: Path, cfg: TerminalConfig, portable: bool) -> None:
        self.dir = directory
        self.cfg = cfg
        self.portable = portable
        sim = SimConfig(
            symbols=list(cfg.symbols),
            seed=cfg.seed,
            tick_rate=cfg.tick_rate,
            initial_balance=cfg.initial_balance,
            leverage=cfg.leverage,
            currency=cfg.currency,
            margin_mode=cfg.margin_mode,
            login=cfg.login,
            stop_out_level=cfg.stop_out_level,
            margin_call_level=cfg.margin_call_level,
            symbol_settings=dict(cfg.symbol_settings),
        )
        self.state_path = directory / STATE_NAME
        self.broker = SimBroker.open(sim, self.state_path)
        self.specs: dict[str, SymbolSpec] = {s.name: s for s in self.broker.symbol_specs()}
        default = cfg.symbol_settings.get("*", SymbolSettings())
        self.execution: dict[str, int] = {}
        for name in self.specs:
            own = cfg.symbol_settings.get(name)
            _, rules = resolve(DEFAULT_SYMBOLS[name], own.over(default) if own else default)
            self.execution[name] = rules.execution
        self.feed = _Feed(self.broker, cfg.tick_rate)
        self.selected: set[str] = set()
        self.request_seq = 0
        self.deals: dict[int, TradeDeal] = {}
        self.history_orders: dict[int, TradeOrder] = {}
        # ORDER_REASON_* of orders, from their deals (an SL deal's order is an SL order).
        self.order_reasons: dict[int, int] = {}
        orders, deals = self.broker.history()
        self.absorb(deals, [pb.OrderUpdate(order=o) for o in orders])

    def close(self) -> None:
        self.broker.close()

    # -- history ---------------------------------------------------------------------------

    def absorb(self, deals: Iterable[pb.DealReport], updates: Iterable[pb.OrderUpdate]) -> None:
        """Record deals and order changes the broker reported."""
        for d in deals:
            self._record_deal(d)
        for u in updates:
            o = u.order
            if o.state in ACTIVE_STATES:
                continue  # a working order: orders_get asks the broker
            reason = self.order_reasons.get(o.ticket, c.ORDER_REASON_EXPERT)
            self.history_orders[o.ticket] = _trade_order(o, reason)

    def _record_deal(self, d: pb.DealReport) -> None:
        reason = d.reason
        if reason == c.DEAL_REASON_CLIENT:
            # Journals written before deal reasons existed: every deal answered a request made
            # through this API, which MT5 records as an "expert" trade.
            reason = c.DEAL_REASON_EXPERT
        self.deals[d.ticket] = TradeDeal(
            ticket=d.ticket,
            order=d.order,
            time=d.time_msc // 1000,
            time_msc=d.time_msc,
            type=d.type,
            entry=d.entry,
            magic=d.magic,
            position_id=d.position_id,
            reason=reason,
            volume=d.volume,
            price=d.price,
            commission=d.commission,
            swap=d.swap,
            profit=d.profit,
            fee=0.0,
            symbol=d.symbol,
            comment=d.comment,
            external_id="",
        )
        if d.order:
            self.order_reasons[d.order] = _ORDER_REASON.get(reason, c.ORDER_REASON_EXPERT)

    # -- prices and account -------------------------------------------------------------------

    def catch_up(self) -> None:
        """Bring the market to now: timers, ticks, stop-out, and what the broker did on its own."""
        broker = self.broker
        if broker.now() >= broker.next_timer:
            broker.poll()  # expirations, sessions opening and closing
        if self.feed.catch_up():
            broker.check_margin()
        self.take_activity()

    def take_activity(self) -> None:
        act = self.broker.take_activity()
        if act is not None:
            self.absorb(act.deals, act.order_updates)

    def set_price(self, name: str, bid: float) -> None:
        """A tick at ``bid`` (test hook): triggers fire as on any tick."""
        t_msc = int(time.time() * 1000.0)
        self.feed.record(name, *self.broker.set_price(name, bid, t_msc), t_msc)
        self.broker.check_margin()
        self.take_activity()

    def mid(self, name: str) -> float:
        if name in self.specs:
            bid, ask, _ = self.broker.quote(name)
            return (bid + ask) / 2.0
        spec = DEFAULT_SYMBOLS.get(name)
        return spec.start_price if spec is not None else 1.0

    def to_account(self, currency: str) -> float:
        """Rate from ``currency`` to the account currency (1.0 when no pair links them)."""
        account = self.cfg.currency
        if currency == account:
            return 1.0
        for spec in [*self.specs.values(), *DEFAULT_SYMBOLS.values()]:
            if spec.currency_base == currency and spec.currency_profit == account:
                return self.mid(spec.name)
            if spec.currency_base == account and spec.currency_profit == currency:
                return 1.0 / self.mid(spec.name)
        return 1.0

    def margin_for(self, spec: SymbolSpec, volume: float, price: float | None = None) -> float:
        """Margin of ``volume`` lots of ``spec`` in the account currency (forex formula)."""
        if price is not None and spec.currency_profit == self.cfg.currency:
            rate = price
        else:
            rate = self.to_account(spec.currency_margin)
        return volume * spec.contract_size * rate / self.cfg.leverage


_ORDER_REASON = {
    c.DEAL_REASON_CLIENT: c.ORDER_REASON_CLIENT,
    c.DEAL_REASON_MOBILE: c.ORDER_REASON_MOBILE,
    c.DEAL_REASON_WEB: c.ORDER_REASON_WEB,
    c.DEAL_REASON_EXPERT: c.ORDER_REASON_EXPERT,
    c.DEAL_REASON_SL: c.ORDER_REASON_SL,
    c.DEAL_REASON_TP: c.ORDER_REASON_TP,
    c.DEAL_REASON_SO: c.ORDER_REASON_SO,
}

_session: _Session | None = None
# False after an (injected) IPC failure until initialize attaches again.
_connected = False


# -- call plumbing -----------------------------------------------------------------------------


def _set_error(code: int, message: str | None = None) -> None:
    global _last_error
    _last_error = (code, message if message is not None else c.LAST_ERROR_MESSAGES.get(code, ""))


def _ok(value: _T) -> _T:
    _set_error(c.RES_S_OK)
    return value


def _fail(code: int, message: str | None = None) -> None:
    _set_error(code, message)


def _take_injection(name: str) -> _Injection | None:
    for inj in _injections:
        if inj.functions is None or name in inj.functions:
            inj.remaining -= 1
            if inj.remaining <= 0:
                _injections.remove(inj)
            return inj
    return None


def _apply_failure(inj: _Injection) -> None:
    global _connected
    _set_error(inj.code)
    if inj.disconnect:
        _connected = False


def _begin(name: str) -> _Session | None:
    """Common entry of every terminal call: the link, then injected faults. Lock held."""
    global _lost_reply
    session = _session
    if session is not None:
        _read_inject_file(session.dir)
        while _pending_prices:
            symbol, bid = _pending_prices.pop(0)
            if symbol in session.specs:
                session.set_price(symbol, bid)
    if session is None or not _connected:
        _fail(c.RES_E_INTERNAL_FAIL_CONNECT)
        return None
    inj = _take_injection(name)
    if inj is not None:
        if not inj.executed:
            _apply_failure(inj)
            return None
        _lost_reply = inj
    session.catch_up()
    return session


def _end(value: _T) -> _T | None:
    """Common exit: the value, or None when an injected fault swallows the answer."""
    global _lost_reply
    inj = _lost_reply
    if inj is not None:
        _lost_reply = None
        _apply_failure(inj)
        return None
    return _ok(value)


def _invalid(message: str = "Invalid arguments") -> None:
    _fail(c.RES_E_INVALID_PARAMS, message)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _seconds(value: Any) -> float | None:
    """A date argument in seconds since the epoch: a datetime (naive = UTC) or a number."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            return calendar.timegm(value.timetuple()) + value.microsecond / 1e6
        return value.timestamp()
    if _is_number(value):
        return float(value)
    return None


# -- connection --------------------------------------------------------------------------------


def initialize(
    path: str | os.PathLike[str] | None = None,
    *,
    login: int | None = None,
    password: str | None = None,
    server: str | None = None,
    timeout: int | None = None,
    portable: bool = False,
) -> bool:
    """Attach to the simulated terminal in ``path`` and log in; False + ``last_error`` if not."""
    global _session, _connected
    with _lock:
        if path is None:
            env = os.environ.get(PATH_ENV)
            if not env:
                _fail(
                    c.RES_E_INTERNAL_FAIL_INIT, "IPC initialize failed, MetaTrader 5 x64 not found"
                )
                return False
            path = env
        if not isinstance(path, str | os.PathLike):
            _invalid('Invalid "path" argument')
            return False
        if login is not None and not _is_int(login):
            _invalid('Invalid "login" argument')
            return False
        if password is not None and not isinstance(password, str):
            _invalid('Invalid "password" argument')
            return False
        if server is not None and not isinstance(server, str):
            _invalid('Invalid "server" argument')
            return False
        if timeout is not None and not _is_int(timeout):
            _invalid('Invalid "timeout" argument')
            return False
        directory = _terminal_dir(path)
        _read_inject_file(directory)
        inj = _take_injection("initialize")
        if inj is not None:
            _set_error(inj.code)
            return False
        cfg_path = directory / CONFIG_FILE
        if not cfg_path.is_file():
            _fail(c.RES_E_INTERNAL_FAIL_INIT, "IPC initialize failed, MetaTrader 5 x64 not found")
            return False
        try:
            cfg = load_terminal_config(cfg_path)
        except ConfigError as e:
            _fail(c.RES_E_INTERNAL_FAIL_INIT, f"IPC initialize failed, {e}")
            return False
        if not _credentials_match(cfg, login, password, server):
            _fail(c.RES_E_AUTH_FAILED)
            return False
        session = _session
        if session is not None and session.dir.resolve() != directory.resolve():
            # Another terminal: one process talks to one terminal at a time.
            _connected = False
            _session = None
            session.close()
            session = None
        if session is None:
            try:
                session = _Session(directory, cfg, portable)
            except (StateError, ValueError, OSError) as e:
                _fail(c.RES_E_INTERNAL_FAIL_INIT, f"IPC initialize failed, {e}")
                return False
            _session = session
        _connected = True
        return _ok(True)


def _credentials_match(
    cfg: TerminalConfig, login: int | None, password: str | None, server: str | None
) -> bool:
    if login is not None and login != cfg.login:
        return False
    if server is not None and server != cfg.server:
        return False
    if password is not None and cfg.password is not None:
        return hmac.compare_digest(password.encode(), cfg.password.encode())
    return True


def login(
    login: int,
    password: str | None = None,
    server: str | None = None,
    timeout: int | None = None,
) -> bool:
    """Log the attached terminal into ``login``; the simulator has one account to offer."""
    with _lock:
        session = _begin("login")
        if session is None:
            return False
        if not _is_int(login):
            _invalid('Invalid "login" argument')
            return False
        if password is not None and not isinstance(password, str):
            _invalid('Invalid "password" argument')
            return False
        if server is not None and not isinstance(server, str):
            _invalid('Invalid "server" argument')
            return False
        if timeout is not None and not _is_int(timeout):
            _invalid('Invalid "timeout" argument')
            return False
        if not _credentials_match(session.cfg, login, password, server):
            _fail(c.RES_E_AUTH_FAILED)
            return False
        global _logged_out
        if time.time() < _broker_down_until:
            _fail(c.RES_E_FAIL, "no connection with the trade server")
            return False
        _logged_out = False
        return _end(True) is True


def shutdown() -> None:
    """Detach from the terminal; its account is saved and carries on at the next initialize."""
    global _session, _connected, _lost_reply
    with _lock:
        session = _session
        _session = None
        _connected = False
        _lost_reply = None
        if session is not None:
            # The journal already holds every trade; a failed final snapshot only makes the
            # next initialize replay more. shutdown() never fails in the real package either.
            with contextlib.suppress(OSError):
                session.close()
        _ok(None)


def last_error() -> tuple[int, str]:
    """``(code, description)`` of the last call, ``(1, "Success")`` after a good one."""
    return _last_error


def version() -> tuple[int, int, str] | None:
    """``(500, build, build date)`` of the terminal."""
    with _lock:
        if _begin("version") is None:
            return None
        return _end((500, BUILD, BUILD_DATE))


def terminal_info() -> TerminalInfo | None:
    with _lock:
        s = _begin("terminal_info")
        if s is None:
            return None
        path = str(s.dir.absolute())
        info = TerminalInfo(
            connected=not _logged_out,
            trade_allowed=not _logged_out,
            ping_last=1000,
            company=s.cfg.company,
            name="MetaTrader 5 (mt5exec simulated terminal)",
            path=path,
            data_path=path,
            commondata_path=str(s.dir.absolute() / "Common"),
        )
        return _end(info)


def account_info() -> AccountInfo | None:
    with _lock:
        s = _begin("account_info")
        if s is None:
            return None
        a = s.broker.account_snapshot()
        info = AccountInfo(
            login=a.login,
            leverage=a.leverage,
            limit_orders=200,
            margin_mode=a.margin_mode,
            balance=a.balance,
            profit=a.profit,
            equity=a.equity,
            margin=a.margin,
            margin_free=a.margin_free,
            margin_level=a.margin_level,
            margin_so_call=s.cfg.margin_call_level,
            margin_so_so=s.cfg.stop_out_level,
            name=s.cfg.name,
            server=s.cfg.server,
            currency=a.currency,
            company=s.cfg.company,
        )
        return _end(info)


# -- symbols and prices ------------------------------------------------------------------------


def _symbol_info(s: _Session, spec: SymbolSpec) -> SymbolInfo:
    tick = s.feed.last(spec.name)
    hl = s.feed.high_low[spec.name]
    return SymbolInfo(
        select=spec.name in s.selected,
        visible=spec.name in s.selected,
        time=tick.time,
        digits=spec.digits,
        spread=round((tick.ask - tick.bid) / spec.point),
        trade_mode=spec.trade_mode,
        trade_exemode=s.execution[spec.name],
        trade_stops_level=spec.stops_level,
        trade_freeze_level=spec.freeze_level,
        filling_mode=spec.filling_mode,
        bid=tick.bid,
        bidhigh=hl[0],
        bidlow=hl[1],
        ask=tick.ask,
        askhigh=hl[2],
        asklow=hl[3],
        point=spec.point,
        trade_tick_value=spec.tick_value,
        trade_tick_value_profit=spec.tick_value,
        trade_tick_value_loss=spec.tick_value,
        trade_tick_size=spec.tick_size,
        trade_contract_size=spec.contract_size,
        volume_min=spec.volume_min,
        volume_max=spec.volume_max,
        volume_step=spec.volume_step,
        margin_hedged=spec.contract_size,
        currency_base=spec.currency_base,
        currency_profit=spec.currency_profit,
        currency_margin=spec.currency_margin,
        description=f"{spec.currency_base} vs {spec.currency_profit}",
        name=spec.name,
        path=f"Forex\\{spec.name}",
    )


def symbols_total() -> int | None:
    with _lock:
        s = _begin("symbols_total")
        if s is None:
            return None
        return _end(len(s.specs))


def symbols_get(group: str | None = None) -> tuple[SymbolInfo, ...] | None:
    with _lock:
        s = _begin("symbols_get")
        if s is None:
            return None
        if group is not None and not isinstance(group, str):
            _invalid('Invalid "group" argument')
            return None
        match = _group_matcher(group) if group is not None else None
        out = tuple(
            _symbol_info(s, spec) for spec in s.specs.values() if match is None or match(spec.name)
        )
        return _end(out)


def symbol_info(symbol: str) -> SymbolInfo | None:
    with _lock:
        s = _begin("symbol_info")
        if s is None:
            return None
        if not isinstance(symbol, str):
            _invalid("Invalid 1st unnamed argument")
            return None
        spec = s.specs.get(symbol)
        if spec is None:
            _fail(c.RES_E_FAIL)
            return None
        return _end(_symbol_info(s, spec))


def symbol_info_tick(symbol: str) -> Tick | None:
    with _lock:
        s = _begin("symbol_info_tick")
        if s is None:
            return None
        if not isinstance(symbol, str):
            _invalid("Invalid 1st unnamed argument")
            return None
        if symbol not in s.specs:
            _fail(c.RES_E_FAIL)
            return None
        return _end(s.feed.last(symbol))


def symbol_select(symbol: str, enable: bool = True) -> bool:
    with _lock:
        s = _begin("symbol_select")
        if s is None:
            return False
        if not isinstance(symbol, str):
            _invalid("Invalid 1st unnamed argument")
            return False
        if symbol not in s.specs:
            _fail(c.RES_E_FAIL)
            return False
        if enable:
            s.selected.add(symbol)
        else:
            s.selected.discard(symbol)
        return _end(True) is True


def _ticks_result(ticks: Sequence[Tick]) -> Any:
    np = _numpy() if TICKS_AS_NUMPY else None
    if np is None:
        return tuple(ticks)
    return np.array([tuple(t) for t in ticks], dtype=TICK_DTYPE)


def _copy_ticks(
    name: str, symbol: Any, date_from: Any, to: Any, count: Any, flags: Any
) -> Any | None:
    s = _begin(name)
    if s is None:
        return None
    if not isinstance(symbol, str):
        _invalid("Invalid 1st unnamed argument")
        return None
    start = _seconds(date_from)
    if start is None:
        _invalid("Invalid 2nd unnamed argument")
        return None
    if not _is_int(flags) or flags not in (c.COPY_TICKS_ALL, c.COPY_TICKS_INFO, c.COPY_TICKS_TRADE):
        _invalid("Invalid 4th unnamed argument")
        return None
    if symbol not in s.specs:
        _fail(c.RES_E_FAIL)
        return None
    end: int | None = None
    limit: int | None = None
    if name == "copy_ticks_range":
        stop = _seconds(to)
        if stop is None:
            _invalid("Invalid 3rd unnamed argument")
            return None
        end = int(stop * 1000)
    else:
        if not _is_int(count) or count <= 0:
            _invalid("Invalid 3rd unnamed argument")
            return None
        limit = count
    # The simulated market has no trades: COPY_TICKS_TRADE finds nothing.
    ticks = (
        [] if flags == c.COPY_TICKS_TRADE else s.feed.select(symbol, int(start * 1000), end, limit)
    )
    return _end(_ticks_result(ticks))


def _timeframe_minutes(timeframe: Any) -> int | None:
    """An MT5 TIMEFRAME_* value as minutes (W1 10080, MN1 43200), None if it is none."""
    if not _is_int(timeframe):
        return None
    unit, n = timeframe & 0xC000, timeframe & 0x3FFF
    minutes = {0: n, 0x4000: n * 60, 0x8000: 10080 * n, 0xC000: 43200 * n}[unit]
    return minutes if minutes in TIMEFRAMES else None


def _copy_rates(name: str, symbol: Any, timeframe: Any, **form: Any) -> Any | None:
    s = _begin(name)
    if s is None:
        return None
    if not isinstance(symbol, str):
        _invalid("Invalid 1st unnamed argument")
        return None
    tf = _timeframe_minutes(timeframe)
    if tf is None:
        _invalid("Invalid 2nd unnamed argument")
        return None
    if symbol not in s.specs:
        _fail(c.RES_E_FAIL)
        return None
    picked: dict[str, int] = {}
    for key, value in form.items():
        number = value if key in ("start_pos", "count") else _seconds(value)
        if number is None or (key == "count" and not (_is_int(number) and number > 0)):
            _invalid(f"Invalid {key} argument")
            return None
        picked[key] = int(number)
    series, start, stop = s.broker.bars[symbol].select(tf, **picked)
    scale = 10 ** s.specs[symbol].digits
    rows = [
        (t, o / scale, h / scale, lo / scale, cl / scale, v, sp, 0)
        for t, o, h, lo, cl, v, sp in series.rows(start, stop)
    ]
    np = _numpy()
    return _end(tuple(rows) if np is None else np.array(rows, dtype=RATES_DTYPE))


def copy_rates_from(symbol: str, timeframe: int, date_from: Any, count: int) -> Any | None:
    """The ``count`` bars opened at or before ``date_from``, oldest first."""
    with _lock:
        return _copy_rates("copy_rates_from", symbol, timeframe, date_from=date_from, count=count)


def copy_rates_from_pos(symbol: str, timeframe: int, start_pos: int, count: int) -> Any | None:
    """``count`` bars ending ``start_pos`` bars before the forming one (0), oldest first."""
    with _lock:
        if not _is_int(start_pos) or start_pos < 0:
            _invalid("Invalid 3rd unnamed argument")
            return None
        return _copy_rates(
            "copy_rates_from_pos", symbol, timeframe, start_pos=start_pos, count=count
        )


def copy_rates_range(symbol: str, timeframe: int, date_from: Any, date_to: Any) -> Any | None:
    """The bars opened from ``date_from`` to ``date_to``, oldest first."""
    with _lock:
        return _copy_rates(
            "copy_rates_range", symbol, timeframe, date_from=date_from, date_to=date_to
        )


def copy_ticks_from(symbol: str, date_from: Any, count: int, flags: int) -> Any | None:
    """Ticks of ``symbol`` from ``date_from`` on (at most ``count``), oldest first."""
    with _lock:
        return _copy_ticks("copy_ticks_from", symbol, date_from, None, count, flags)


def copy_ticks_range(symbol: str, date_from: Any, date_to: Any, flags: int) -> Any | None:
    """Ticks of ``symbol`` between ``date_from`` and ``date_to``, oldest first."""
    with _lock:
        return _copy_ticks("copy_ticks_range", symbol, date_from, date_to, None, flags)


# -- trading -----------------------------------------------------------------------------------

_REQUEST_INTS = (
    "action",
    "magic",
    "order",
    "deviation",
    "type",
    "type_filling",
    "type_time",
    "expiration",
    "position",
    "position_by",
)
_REQUEST_FLOATS = ("volume", "price", "stoplimit", "sl", "tp")
_UINT64 = 2**64


def _parse_request(request: Any) -> TradeRequest | None:
    """The request dict as a ``TradeRequest``; None with ``last_error`` set when malformed."""
    if not isinstance(request, dict):
        _invalid("Invalid 1st unnamed argument")
        return None
    values: dict[str, Any] = {}
    if "action" not in request:
        _invalid('Invalid "action" argument')
        return None
    for key in _REQUEST_INTS:
        if key in request:
            v = request[key]
            if isinstance(v, datetime) and key == "expiration":
                v = int(_seconds(v) or 0)
            if not _is_int(v) or not 0 <= v < _UINT64:
                _invalid(f'Invalid "{key}" argument')
                return None
            values[key] = v
    for key in _REQUEST_FLOATS:
        if key in request:
            v = request[key]
            if not _is_number(v) or not math.isfinite(v):
                _invalid(f'Invalid "{key}" argument')
                return None
            values[key] = float(v)
    for key in ("symbol", "comment"):
        if key in request:
            v = request[key]
            if not isinstance(v, str):
                _invalid(f'Invalid "{key}" argument')
                return None
            values[key] = v
    return TradeRequest(**values)


def _to_proto(req: TradeRequest, request_id: int) -> pb.OrderRequest:
    return pb.OrderRequest(
        request_id=request_id,
        action=req.action,
        symbol=req.symbol,
        volume=req.volume,
        type=req.type,
        price=req.price,
        stoplimit=req.stoplimit,
        sl=req.sl,
        tp=req.tp,
        deviation=req.deviation,
        type_filling=req.type_filling,
        type_time=req.type_time,
        expiration=req.expiration,
        position=req.position,
        position_by=req.position_by,
        order=req.order,
        magic=req.magic,
        comment=req.comment,
    )


def order_check(request: dict[str, Any]) -> OrderCheckResult | None:
    """Check a trade request as ``order_send`` would, and the account after it; no change."""
    with _lock:
        s = _begin("order_check")
        if s is None:
            return None
        req = _parse_request(request)
        if req is None:
            return None
        proto = _to_proto(req, 0)
        proto.check_only = True
        r = s.broker.send(proto).result
        check = OrderCheckResult(
            retcode=r.retcode,
            balance=r.balance,
            equity=r.equity,
            profit=s.broker.account_snapshot().profit,
            margin=r.margin,
            margin_free=r.margin_free,
            margin_level=r.margin_level,
            comment=r.comment,
            request=req,
        )
        return _end(check)


def order_calc_margin(action: int, symbol: str, volume: float, price: float) -> float | None:
    """Margin in the account currency for ``volume`` lots of ``symbol`` (ORDER_TYPE_* action)."""
    with _lock:
        s = _begin("order_calc_margin")
        if s is None:
            return None
        if not _is_int(action) or action not in (c.ORDER_TYPE_BUY, c.ORDER_TYPE_SELL):
            _invalid("Invalid 1st unnamed argument")
            return None
        if not isinstance(symbol, str):
            _invalid("Invalid 2nd unnamed argument")
            return None
        if not _is_number(volume) or not volume > 0:
            _invalid("Invalid 3rd unnamed argument")
            return None
        if not _is_number(price) or not price > 0:
            _invalid("Invalid 4th unnamed argument")
            return None
        spec = s.specs.get(symbol)
        if spec is None:
            _fail(c.RES_E_FAIL)
            return None
        return _end(round(s.margin_for(spec, float(volume), float(price)), 2))


def order_calc_profit(
    action: int, symbol: str, volume: float, price_open: float, price_close: float
) -> float | None:
    """Profit in the account currency of ``volume`` lots of ``symbol`` bought (ORDER_TYPE_BUY)
    or sold at ``price_open`` and closed at ``price_close``."""
    with _lock:
        s = _begin("order_calc_profit")
        if s is None:
            return None
        if not _is_int(action) or action not in (c.ORDER_TYPE_BUY, c.ORDER_TYPE_SELL):
            _invalid("Invalid 1st unnamed argument")
            return None
        if not isinstance(symbol, str):
            _invalid("Invalid 2nd unnamed argument")
            return None
        if not _is_number(volume) or not volume > 0:
            _invalid("Invalid 3rd unnamed argument")
            return None
        for n, price in (("4th", price_open), ("5th", price_close)):
            if not _is_number(price) or not price > 0:
                _invalid(f"Invalid {n} unnamed argument")
                return None
        spec = s.specs.get(symbol)
        if spec is None:
            _fail(c.RES_E_FAIL)
            return None
        diff = float(price_close) - float(price_open)
        if action == c.ORDER_TYPE_SELL:
            diff = -diff
        rate = s.to_account(spec.currency_profit)
        return _end(round(diff * float(volume) * spec.contract_size * rate, 2))


def order_send(request: dict[str, Any]) -> OrderSendResult | None:
    """Send a trade request to the (simulated) trade server and return its answer."""
    with _lock:
        s = _begin("order_send")
        if s is None:
            return None
        req = _parse_request(request)
        if req is None:
            return None
        s.request_seq += 1
        outcome = s.broker.send(_to_proto(req, s.request_seq))
        s.absorb(outcome.deals, outcome.order_updates)
        r = outcome.result
        result = OrderSendResult(
            retcode=r.retcode,
            deal=r.deal,
            order=r.order,
            volume=r.volume,
            price=r.price,
            bid=r.bid,
            ask=r.ask,
            comment=r.comment,
            request_id=s.request_seq,
            retcode_external=0,
            request=req,
        )
        return _end(result)


# -- positions, orders, history ----------------------------------------------------------------


def _positions(s: _Session) -> list[TradePosition]:
    out = []
    for p in s.broker.positions_snapshot().positions:
        out.append(
            TradePosition(
                ticket=p.ticket,
                time=p.time_msc // 1000,
                time_msc=p.time_msc,
                time_update=p.time_msc // 1000,
                time_update_msc=p.time_msc,
                type=p.type,
                magic=p.magic,
                identifier=p.ticket,
                reason=c.POSITION_REASON_EXPERT,
                volume=p.volume,
                price_open=p.price_open,
                sl=p.sl,
                tp=p.tp,
                price_current=p.price_current,
                swap=p.swap,
                profit=p.profit,
                symbol=p.symbol,
                comment=p.comment,
                external_id="",
            )
        )
    return out


def _open_orders(s: _Session) -> list[TradeOrder]:
    return [_trade_order(o, c.ORDER_REASON_EXPERT) for o in s.broker.orders_snapshot().orders]


def _filter_open(
    name: str, items: Callable[[_Session], list[_I]], symbol: Any, group: Any, ticket: Any
) -> tuple[_I, ...] | None:
    s = _begin(name)
    if s is None:
        return None
    if symbol is not None and not isinstance(symbol, str):
        _invalid('Invalid "symbol" argument')
        return None
    if group is not None and not isinstance(group, str):
        _invalid('Invalid "group" argument')
        return None
    if ticket is not None and not _is_int(ticket):
        _invalid('Invalid "ticket" argument')
        return None
    match = _group_matcher(group) if group is not None else None
    out = tuple(
        item
        for item in items(s)
        if (symbol is None or item.symbol == symbol)
        and (match is None or match(item.symbol))
        and (ticket is None or item.ticket == ticket)
    )
    return _end(out)


def positions_total() -> int | None:
    with _lock:
        s = _begin("positions_total")
        if s is None:
            return None
        return _end(s.broker.position_count)


def positions_get(
    *, symbol: str | None = None, group: str | None = None, ticket: int | None = None
) -> tuple[TradePosition, ...] | None:
    """Open positions, optionally of one symbol, a group mask or one ticket."""
    with _lock:
        return _filter_open("positions_get", _positions, symbol, group, ticket)


def orders_total() -> int | None:
    with _lock:
        s = _begin("orders_total")
        if s is None:
            return None
        return _end(s.broker.order_count)


def orders_get(
    *, symbol: str | None = None, group: str | None = None, ticket: int | None = None
) -> tuple[TradeOrder, ...] | None:
    """Pending orders, optionally of one symbol, a group mask or one ticket."""
    with _lock:
        return _filter_open("orders_get", _open_orders, symbol, group, ticket)


def _history(
    name: str,
    items: Callable[[_Session], Iterable[_H]],
    time_of: Callable[[_H], int],
    date_from: Any,
    date_to: Any,
    group: Any,
    ticket: Any,
    position: Any,
) -> tuple[_H, ...] | None:
    s = _begin(name)
    if s is None:
        return None
    for key, value in (("ticket", ticket), ("position", position)):
        if value is not None and not _is_int(value):
            _invalid(f'Invalid "{key}" argument')
            return None
    if group is not None and not isinstance(group, str):
        _invalid('Invalid "group" argument')
        return None
    if ticket is not None:
        return _end(tuple(i for i in items(s) if i.ticket == ticket))
    if position is not None:
        return _end(tuple(i for i in items(s) if i.position_id == position))
    start = _seconds(date_from)
    end = _seconds(date_to)
    if start is None or end is None:
        _invalid("Invalid arguments")
        return None
    lo, hi = int(start * 1000), int(end * 1000)
    match = _group_matcher(group) if group is not None else None
    out = tuple(
        i for i in items(s) if lo <= time_of(i) <= hi and (match is None or match(i.symbol))
    )
    return _end(out)


def _deals(s: _Session) -> Iterable[TradeDeal]:
    return sorted(s.deals.values(), key=lambda d: (d.time_msc, d.ticket))


def _orders(s: _Session) -> Iterable[TradeOrder]:
    return sorted(s.history_orders.values(), key=lambda o: (o.time_setup_msc, o.ticket))


def history_deals_get(
    date_from: Any = None,
    date_to: Any = None,
    *,
    group: str | None = None,
    ticket: int | None = None,
    position: int | None = None,
) -> tuple[TradeDeal, ...] | None:
    """Deals between two dates (optionally of a group mask), or of one ticket or position."""
    with _lock:
        return _history(
            "history_deals_get",
            _deals,
            lambda d: d.time_msc,
            date_from,
            date_to,
            group,
            ticket,
            position,
        )


def history_deals_total(date_from: Any, date_to: Any) -> int | None:
    with _lock:
        deals = _history(
            "history_deals_total",
            _deals,
            lambda d: d.time_msc,
            date_from,
            date_to,
            None,
            None,
            None,
        )
        return None if deals is None else len(deals)


def history_orders_get(
    date_from: Any = None,
    date_to: Any = None,
    *,
    group: str | None = None,
    ticket: int | None = None,
    position: int | None = None,
) -> tuple[TradeOrder, ...] | None:
    """Orders in the history between two dates, or of one ticket or position."""
    with _lock:
        return _history(
            "history_orders_get",
            _orders,
            lambda o: o.time_setup_msc,
            date_from,
            date_to,
            group,
            ticket,
            position,
        )


def history_orders_total(date_from: Any, date_to: Any) -> int | None:
    with _lock:
        orders = _history(
            "history_orders_total",
            _orders,
            lambda o: o.time_setup_msc,
            date_from,
            date_to,
            None,
            None,
            None,
        )
        return None if orders is None else len(orders)
