"""The MT5 terminal worker: serves one MetaTrader 5 terminal over the worker protocol.

Run as ``python -m mt5exec.workers.mt5 --socket PATH --config FILE``. It attaches the
MetaTrader5 package (or any module with the same API, e.g. ``mt5exec.mt5.simterminal``, named
by the config's ``module``) to its terminal, connects to the engine's Unix socket, says Hello
with the symbols and the account, waits for Welcome, then polls the terminal for ticks, fills
and account changes, and executes the engine's orders. Same lifecycle as ``workers.sim``: it
never outlives its connection (EOF, a reset, Shutdown, SIGTERM or SIGINT end it with exit code
0), so it never trades unsupervised.

Config (JSON): ``instance_id``; ``module`` (default ``MetaTrader5``); ``terminal_path`` (given
to ``initialize``; a folder holding ``terminal64.exe`` becomes the path of that file, which is
what the real package wants); ``login``, ``server`` (0 / empty: unset); ``password_file`` (read
once, deleted when ``delete_password_file`` is true; missing: attach without a password, as a
terminal with saved credentials does); ``symbols``; ``poll_interval_ms`` (50);
``broker_retry_attempts`` (5), ``broker_retry_initial_ms`` (1000), ``broker_retry_max_ms``
(30000); ``init_timeout_ms`` (60000, ``initialize``'s timeout); ``account_interval_ms`` (250);
``tick_source`` (``"info"``: ``symbol_info_tick``, or ``"copy"``: ``copy_ticks_from``);
and for a terminal this worker starts itself: ``terminal_base`` (a base MT5 install),
``instance_dir`` (default: the working directory), ``wine`` (command list), ``scrub_after_s``.

The password lives in this process's memory only (it is needed again to re-attach after an IPC
failure): never on a command line, in the environment, in a log line or in a frame. With
``terminal_base`` it is also in the terminal's startup ini until the login succeeded, then
scrubbed (``mt5exec.mt5.bootstrap``).

What the engine gets, and in which order after an order: DealReport(s) of the new deals (the
one answering the request carries its request_id), OrderUpdate(s), then PositionSnapshot,
OrderSnapshot and AccountSnapshot when they changed, then the OrderResult: the engine answers
the client on the result, and the client may read positions next. Requests go through
``order_check`` first (filling type: the request's if the symbol allows it, else one it allows;
the others are tried when the terminal still refuses it, BOC never swapped); ``check_only``
requests stop there and are answered with its figures. Fills the server makes by itself (SL/TP,
stop out, triggered pending orders) are found by polling ``history_deals_get``,
``positions_get`` and ``orders_get``, and reported the same way, with their DEAL_REASON.

Failures: ``order_send`` returning None is answered from ``last_error()``: an IPC error means
the order's outcome is unknown, so it is answered with TRADE_RETCODE_TIMEOUT and never sent
again (the engine reconciles by comment); anything else with TRADE_RETCODE_ERROR. After an IPC
error the worker reports BROKER_DISCONNECTED and re-attaches with exponential backoff
(``broker_retry_*``), answering orders with TRADE_RETCODE_CONNECTION meanwhile; BROKER_CONNECTED
when it is back, exit code 6 when every attempt failed. If the first attach fails, the worker
sends a LOGIN_FAILED WorkerEvent instead of Hello, then exits with code 5.

Exit codes: 0 normal stop; 1 unexpected error; 2 bad command line or config; 3 could not connect
or the handshake failed; 4 the engine broke the protocol; 5 login failed; 6 the terminal was lost
for good; 70 ``crash`` fault.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import importlib
import json
import logging
import math
import os
import selectors
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from mt5exec.mt5 import bootstrap
from mt5exec.mt5 import constants as c
from mt5exec.reasons import Reason
from mt5exec.terminal.v1 import worker_pb2 as pb
from mt5exec.workers import mt5_market
from mt5exec.workers.base import (
    DEFAULT_HEARTBEAT_MS,
    EXIT_CONFIG,
    EXIT_OK,
    PROTOCOL_VERSION,
    WELCOME_TIMEOUT_S,
    ConfigError,
    connect_or_exit,
    enact_fault,
    handle_signals,
    handshake,
    ignore_signals,
    next_heartbeat,
    parse_engine_frame,
    read_frames,
    serve,
    setup_logging,
)
from mt5exec.workers.base import EXIT_CRASH as EXIT_CRASH
from mt5exec.workers.base import EXIT_ERROR as EXIT_ERROR
from mt5exec.workers.base import EXIT_HANDSHAKE as EXIT_HANDSHAKE
from mt5exec.workers.base import EXIT_PROTOCOL as EXIT_PROTOCOL
from mt5exec.workers.base import WorkerExit as _Exit
from mt5exec.workers.mt5_book import TerminalBooks
from mt5exec.workers.mt5_market import LinkWatch, symbol_proto
from mt5exec.workers.protocol import MARKET_ANSWER_TIMEOUT_S, FrameReader, encode_frame

log = logging.getLogger("mt5exec.workers.mt5")

BACKEND = "mt5"
CAPABILITIES = (
    "ticks",
    "orders",
    "faults",
    "pending_orders",
    "order_check",
    "reconcile",
    "market_data",
)

# Exit codes of this worker only; the shared ones (0-4, 70) come from workers.base.
EXIT_LOGIN = 5
EXIT_BROKER = 6

# A terminal call of a market answer still running this long after the engine gave up on it
# (its answer timeout plus a margin) has hung: the worker exits, for the engine to replace it.
MARKET_CALL_HUNG_S = MARKET_ANSWER_TIMEOUT_S + 15.0

# Deals are looked up in [newest seen - slack, now + ahead]: terminal times are the trade
# server's clock (often UTC+2/+3, never far from it), and a deal may reach the terminal's history
# a little after younger ones.
DEAL_SLACK_S = 300
DEAL_AHEAD_S = 3 * 86400
DEAL_LOOKBACK_S = 86400
# After order_send, how long to wait for its deal to show up in the terminal's history before
# reporting it from the result alone.
DEAL_SYNC_WAIT_S = 0.1
# How many times _send_state reads the state while the history keeps showing new deals.
STATE_READS = 3
# An unknown-outcome request is matched to later deals by its comment for this long.
UNKNOWN_TTL_S = 3600.0
# copy_ticks_from: at most this many ticks per symbol and poll.
COPY_TICKS_MAX = 5000
# What _invoke gives when the terminal was not called (no link) or the call raised.
_NOT_CALLED = object()

_OK_RESULTS = frozenset(
    {c.TRADE_RETCODE_DONE, c.TRADE_RETCODE_PLACED, c.TRADE_RETCODE_DONE_PARTIAL}
)
# order_check answers 0 ("Done") when the request would pass; some builds answer DONE.
_CHECK_OK = frozenset({0, c.TRADE_RETCODE_DONE})
# SYMBOL_FILLING_* bits (MQL5 constants the Python package does not export).
_FILL_BITS = {c.ORDER_FILLING_FOK: 1, c.ORDER_FILLING_IOC: 2, c.ORDER_FILLING_BOC: 4}
# The filling types tried, in this order, when the terminal refuses the one a request has.
_FILL_ORDER = (c.ORDER_FILLING_FOK, c.ORDER_FILLING_IOC, c.ORDER_FILLING_RETURN)


@dataclass(slots=True)
class WorkerConfig:
    instance_id: str = "mt5"
    module: str = "MetaTrader5"
    terminal_path: str | None = None
    login: int | None = None
    server: str | None = None
    password_file: Path | None = None
    delete_password_file: bool = False
    symbols: list[str] = field(default_factory=list)
    poll_interval_ms: int = 50
    broker_retry_attempts: int = 5
    broker_retry_initial_ms: int = 1000
    broker_retry_max_ms: int = 30_000
    # terminal_info() says the broker connection is lost: log in again this often.
    broker_relogin_after_ms: int = 5000
    init_timeout_ms: int = 60_000
    account_interval_ms: int = 250
    tick_source: Literal["info", "copy"] = "info"
    terminal_base: Path | None = None
    instance_dir: Path | None = None
    wine: list[str] | None = None
    scrub_after_s: float = 60.0


_INT_KEYS = {
    "login": 0,
    "poll_interval_ms": 1,
    "broker_retry_attempts": 1,
    "broker_retry_initial_ms": 0,
    "broker_retry_max_ms": 0,
    "broker_relogin_after_ms": 0,
    "init_timeout_ms": 1,
    "account_interval_ms": 0,
}
_STR_KEYS = ("instance_id", "module")
# Optional strings: empty means unset, as the engine writes them for an account without them.
_OPTIONAL_STR_KEYS = ("terminal_path", "server")
_PATH_KEYS = ("password_file", "terminal_base", "instance_dir")


def load_config(path: Path, instance_id: str | None = None) -> WorkerConfig:
    """Read the worker's JSON config; missing keys take their defaults, unknown ones are ignored."""
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ConfigError(f"{path}: cannot read config: {e}") from e
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a JSON object")
    cfg = WorkerConfig()
    known = {f for f in WorkerConfig.__dataclass_fields__}
    extra = sorted(set(raw) - known)
    if extra:
        # Tolerated so that the engine may keep its own bookkeeping keys in the same file.
        log.warning("%s: ignoring unknown config keys: %s", path, ", ".join(extra))

    def bad(key: str, what: str) -> ConfigError:
        return ConfigError(f"{path}: {key}: expected {what}, got {raw[key]!r}")

    for key, minimum in _INT_KEYS.items():
        if raw.get(key) is not None:
            v = raw[key]
            if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
                raise bad(key, f"an integer >= {minimum}")
            setattr(cfg, key, v)
    if cfg.login == 0:
        cfg.login = None  # 0: no account given, the terminal's own
    for key in _STR_KEYS:
        if raw.get(key) is not None:
            if not isinstance(raw[key], str) or not raw[key].strip():
                raise bad(key, "a non-empty string")
            setattr(cfg, key, raw[key])
    for key in _OPTIONAL_STR_KEYS:
        if raw.get(key) is not None:
            if not isinstance(raw[key], str):
                raise bad(key, "a string")
            setattr(cfg, key, raw[key] or None)
    for key in _PATH_KEYS:
        if raw.get(key) is not None:
            if not isinstance(raw[key], str) or not raw[key].strip():
                raise bad(key, "a path")
            setattr(cfg, key, Path(raw[key]))
    if "delete_password_file" in raw:
        if not isinstance(raw["delete_password_file"], bool):
            raise bad("delete_password_file", "true or false")
        cfg.delete_password_file = raw["delete_password_file"]
    if "symbols" in raw:
        symbols = raw["symbols"]
        if not isinstance(symbols, list) or not all(isinstance(s, str) and s for s in symbols):
            raise bad("symbols", "a list of symbol names")
        cfg.symbols = list(dict.fromkeys(symbols))
    if "tick_source" in raw:
        if raw["tick_source"] not in ("info", "copy"):
            raise bad("tick_source", "'info' or 'copy'")
        cfg.tick_source = raw["tick_source"]
    if raw.get("wine") is not None:
        wine = raw["wine"]
        if not isinstance(wine, list) or not all(isinstance(w, str) and w for w in wine):
            raise bad("wine", 'a command as a list, e.g. ["wine"]')
        # []: no Wine, the terminal runs natively (Windows).
        cfg.wine = list(wine) or None
    if "scrub_after_s" in raw:
        v = raw["scrub_after_s"]
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v <= 0:
            raise bad("scrub_after_s", "a positive number of seconds")
        cfg.scrub_after_s = float(v)
    if cfg.terminal_base is not None and cfg.login is None:
        raise ConfigError(f"{path}: login: needed to start a terminal from terminal_base")
    if cfg.terminal_base is not None and cfg.server is None:
        raise ConfigError(f"{path}: server: needed to start a terminal from terminal_base")
    if instance_id:
        cfg.instance_id = instance_id
    return cfg


def read_password(cfg: WorkerConfig) -> str | None:
    """The password from ``password_file`` (deleted afterwards if configured); None if unset."""
    if cfg.password_file is None:
        return None
    try:
        text = cfg.password_file.read_text()
    except FileNotFoundError:
        # No password for this start: the terminal logs in with what it has saved, if anything.
        log.warning(
            "password_file %s does not exist: attaching without a password", cfg.password_file
        )
        return None
    except OSError as e:
        # The error names the file, never its content.
        raise ConfigError(f"password_file {cfg.password_file}: {e.strerror or e}") from None
    if cfg.delete_password_file:
        try:
            cfg.password_file.unlink()
        except OSError as e:
            log.warning("cannot delete password_file %s: %s", cfg.password_file, e.strerror)
    password = text.rstrip("\r\n")
    if not password:
        raise ConfigError(f"password_file {cfg.password_file}: empty")
    return password


# -- conversions from the MetaTrader5 result types --------------------------------------------


def _now_msc() -> int:
    return int(time.time() * 1000.0)


def account_proto(info: Any) -> pb.AccountSnapshot:
    return pb.AccountSnapshot(
        login=info.login,
        currency=info.currency,
        balance=info.balance,
        equity=info.equity,
        margin=info.margin,
        margin_free=info.margin_free,
        margin_level=info.margin_level,
        leverage=info.leverage,
        profit=info.profit,
        margin_mode=info.margin_mode,
        server=info.server,
        time_msc=_now_msc(),
    )


def position_proto(p: Any) -> pb.Position:
    return pb.Position(
        ticket=p.ticket,
        symbol=p.symbol,
        type=p.type,
        volume=p.volume,
        price_open=p.price_open,
        price_current=p.price_current,
        sl=p.sl,
        tp=p.tp,
        profit=p.profit,
        swap=p.swap,
        time_msc=p.time_msc,
        magic=p.magic,
        comment=p.comment,
    )


def order_proto(o: Any) -> pb.OrderInfo:
    return pb.OrderInfo(
        ticket=o.ticket,
        symbol=o.symbol,
        type=o.type,
        state=o.state,
        volume_initial=o.volume_initial,
        volume_current=o.volume_current,
        price_open=o.price_open,
        price_stoplimit=o.price_stoplimit,
        sl=o.sl,
        tp=o.tp,
        price_current=o.price_current,
        type_time=o.type_time,
        time_expiration=o.time_expiration,
        type_filling=o.type_filling,
        magic=o.magic,
        comment=o.comment,
        time_setup_msc=o.time_setup_msc,
        time_done_msc=o.time_done_msc,
        position_id=o.position_id,
    )


def deal_proto(d: Any, request_id: int = 0) -> pb.DealReport:
    return pb.DealReport(
        ticket=d.ticket,
        order=d.order,
        position_id=d.position_id,
        symbol=d.symbol,
        type=d.type,
        entry=d.entry,
        volume=d.volume,
        price=d.price,
        profit=d.profit,
        commission=d.commission,
        swap=d.swap,
        magic=d.magic,
        comment=d.comment,
        time_msc=d.time_msc,
        request_id=request_id,
        reason=d.reason,
    )


def _row(row: Any, name: str) -> Any:
    """A field of a tick: a Tick named tuple (attribute) or a numpy record (item)."""
    try:
        return getattr(row, name)
    except AttributeError:
        return row[name]


def _position_key(p: Any) -> tuple[Any, ...]:
    # Not price_current/profit: they move with every tick and travel in the account.
    return (p.ticket, p.type, p.volume, p.price_open, p.sl, p.tp)


def _order_key(o: Any) -> tuple[Any, ...]:
    return (
        o.ticket,
        o.type,
        o.state,
        o.volume_current,
        o.price_open,
        o.price_stoplimit,
        o.sl,
        o.tp,
        o.type_time,
        o.time_expiration,
    )


def _account_key(a: pb.AccountSnapshot) -> tuple[Any, ...]:
    return (a.balance, a.equity, a.margin, a.margin_free, a.profit, a.leverage, a.margin_mode)


def _frame(**body: Any) -> bytes:
    return encode_frame(pb.WorkerFrame(**body))


# -- the terminal link ------------------------------------------------------------------------


class Terminal:
    """The MetaTrader5 module, attached to its terminal: initialize with retries, re-attach.

    With ``terminal_base`` it also owns the terminal process (prepared, launched, relaunched
    when it died, its startup ini scrubbed once a login succeeded).
    """

    def __init__(self, mt5: Any, cfg: WorkerConfig, password: str | None) -> None:
        self.mt5 = mt5
        self.cfg = cfg
        self._password = password
        self.process: bootstrap.TerminalProcess | None = None
        self._terminal_dir: Path | None = None
        self.path: str | None = cfg.terminal_path
        # A call that never returned holds the terminal: shutdown() would wait for it too.
        self.hung = False

    def _ensure_process(self) -> None:
        cfg = self.cfg
        if cfg.terminal_base is None:
            return
        if self.process is not None and self.process.running:
            return
        if self.process is not None:
            log.warning("MT5 terminal exited with %s: starting it again", self.process.returncode)
        instance_dir = cfg.instance_dir or Path.cwd()
        terminal_dir = bootstrap.prepare_terminal(cfg.terminal_base, instance_dir)
        assert cfg.login is not None and cfg.server is not None  # checked by load_config
        ini = bootstrap.write_startup_ini(
            terminal_dir, login=cfg.login, server=cfg.server, password=self._password
        )
        self.process = bootstrap.launch_terminal(
            terminal_dir, ini, wine=cfg.wine, scrub_after=cfg.scrub_after_s
        )
        self._terminal_dir = terminal_dir
        if self.path is None:
            self.path = str(terminal_dir)

    def _terminal_path(self) -> str | None:
        """What ``initialize`` gets: the real package wants terminal64.exe, not its folder."""
        path = self.path
        if path is not None and Path(path).is_dir():
            exe = Path(path) / bootstrap.TERMINAL_EXE
            if exe.is_file():
                return str(exe)
        return path

    def initialize(self) -> bool:
        """One ``initialize`` call; False with the reason in ``last_error()``."""
        try:
            self._ensure_process()
        except (bootstrap.BootstrapError, OSError, ValueError) as e:
            log.error("cannot start the MT5 terminal: %s", e)
            return False
        kwargs: dict[str, Any] = {"timeout": self.cfg.init_timeout_ms, "portable": True}
        if self.cfg.login is not None:
            kwargs["login"] = self.cfg.login
        if self._password is not None:
            kwargs["password"] = self._password
        if self.cfg.server is not None:
            kwargs["server"] = self.cfg.server
        path = self._terminal_path()
        args = (path,) if path is not None else ()
        try:
            ok = bool(self.mt5.initialize(*args, **kwargs))
        except Exception as e:  # a module bug must not end the worker, nor show the arguments
            log.error("initialize raised %s", type(e).__name__)
            return False
        if ok and self.process is not None:
            # Logged in: the password has no business in the ini any more.
            self.process.scrub()
        return ok

    def login(self) -> bool:
        """Log the attached terminal in again (``mt5.login``) with the account's credentials."""
        if self.cfg.login is None:
            return False
        kwargs: dict[str, Any] = {}
        if self._password is not None:
            kwargs["password"] = self._password
        if self.cfg.server is not None:
            kwargs["server"] = self.cfg.server
        try:
            return bool(self.mt5.login(self.cfg.login, **kwargs))
        except Exception as e:  # never show the arguments
            log.error("login raised %s", type(e).__name__)
            return False

    def last_error(self) -> tuple[int, str]:
        try:
            code, message = self.mt5.last_error()
            return int(code), str(message)
        except Exception as e:
            return c.RES_E_FAIL, f"last_error raised {type(e).__name__}"

    def attach(self, attempts: int, sleep: Callable[[float], None] = time.sleep) -> bool:
        """``initialize`` with exponential backoff, at most ``attempts`` times."""
        delay = self.cfg.broker_retry_initial_ms / 1000.0
        for attempt in range(1, attempts + 1):
            if self.initialize():
                return True
            code, message = self.last_error()
            log.warning(
                "initialize failed (attempt %d of %d): %d %s", attempt, attempts, code, message
            )
            if attempt < attempts:
                sleep(delay)
                delay = min(delay * 2.0, self.cfg.broker_retry_max_ms / 1000.0)
        return False

    def detach(self) -> None:
        with contextlib.suppress(Exception):
            self.mt5.shutdown()

    def stop(self) -> None:
        if not self.hung:
            self.detach()
        if self.process is not None:
            self.process.terminate(grace=5.0)


# -- the worker --------------------------------------------------------------------------------


class MT5Worker:
    """The protocol side of an MT5 instance: owns the socket, the schedule and the polling."""

    def __init__(self, sock: socket.socket, terminal: Terminal, cfg: WorkerConfig) -> None:
        self.sock = sock
        self.term = terminal
        self.mt5 = terminal.mt5
        self.cfg = cfg
        # The broker connection as terminal_info reports it (mt5_market.LinkWatch).
        self._link = LinkWatch(cfg.broker_relogin_after_ms / 1000.0)
        # The books added at the terminal for StreamBook (mt5_book).
        self.books = TerminalBooks()
        self.symbols: list[str] = []
        self.unavailable: list[str] = []
        self.infos: dict[str, pb.SymbolInfo] = {}
        self._out: list[bytes] = []
        self._reader = FrameReader()
        self._heartbeat_s = DEFAULT_HEARTBEAT_MS / 1000.0
        self._heartbeat_seq = 0
        self._next_heartbeat = time.monotonic() + self._heartbeat_s
        self._poll_s = cfg.poll_interval_ms / 1000.0
        self._account_s = cfg.account_interval_ms / 1000.0
        self._connected = True
        self._reconnect_attempt = 0
        self._next_reconnect = 0.0
        self._last_tick: dict[str, tuple[float, float, float, int]] = {}
        self._tick_msc: dict[str, int] = {}
        self._positions: dict[int, tuple[Any, ...]] | None = None
        self._orders: dict[int, tuple[Any, ...]] | None = None
        self._account: tuple[Any, ...] | None = None
        self._last_account = 0.0
        self._seen_deals: dict[int, int] = {}
        self._deal_floor = 0
        self._unknown: dict[str, tuple[int, float]] = {}
        self._reject_next = 0
        self._delay_s = 0.0
        self._delayed: collections.deque[tuple[float, pb.OrderRequest]] = collections.deque()
        self._pending_reconciles: list[pb.ReconcileRequest] = []
        self._warned: set[str] = set()

    # -- terminal calls -----------------------------------------------------------------------

    def _failed(self, what: str) -> None:
        """A call returned None: lose the link on IPC errors, else log (once per call kind)."""
        code, message = self.term.last_error()
        if code in c.IPC_ERRORS:
            self._lost(f"{what}: {message} ({code})")
        elif what not in self._warned:
            self._warned.add(what)
            log.warning("%s failed: %d %s", what, code, message)

    def _invoke(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)``; ``_NOT_CALLED`` when disconnected or when it raised."""
        if not self._connected:
            return _NOT_CALLED
        try:
            return fn(*args, **kwargs)
        except Exception as e:
            log.error("%s raised %s: %s", what, type(e).__name__, e)
            return _NOT_CALLED

    def _call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """A terminal call; None when it failed (after ``_failed``), or when disconnected."""
        value = self._invoke(what, fn, *args, **kwargs)
        if value is _NOT_CALLED:
            return None
        if value is None:
            self._failed(what)
        return value

    def _many(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """A call returning a collection: None (no error) or "not found" mean an empty one."""
        value = self._invoke(what, fn, *args, **kwargs)
        if value is _NOT_CALLED:
            return None
        if value is None:
            # Builds differ on "nothing there": None with RES_S_OK or RES_E_NOT_FOUND, or ().
            if self.term.last_error()[0] in (c.RES_S_OK, c.RES_E_NOT_FOUND):
                return ()
            self._failed(what)
        return value

    def select_symbols(self) -> bool:
        """symbol_select + symbol_info for every configured symbol; False if the link broke."""
        mt5 = self.mt5
        symbols: list[str] = []
        unavailable: list[str] = []
        infos: dict[str, pb.SymbolInfo] = {}
        for name in self.cfg.symbols:
            try:
                selected = bool(mt5.symbol_select(name, True))
            except Exception as e:
                log.error("symbol_select(%s) raised %s", name, type(e).__name__)
                selected = False
            info = mt5.symbol_info(name) if selected else None
            if info is None:
                code, message = self.term.last_error()
                if code in c.IPC_ERRORS:
                    return False
                log.error("symbol %s is not available: %d %s", name, code, message)
                unavailable.append(name)
                continue
            symbols.append(name)
            infos[name] = symbol_proto(info)
        self.symbols, self.unavailable, self.infos = symbols, unavailable, infos
        return True

    def account(self) -> pb.AccountSnapshot | None:
        info = self._call("account_info", self.mt5.account_info)
        return None if info is None else account_proto(info)

    # -- handshake ----------------------------------------------------------------------------

    def hello(self, account: pb.AccountSnapshot) -> pb.WorkerFrame:
        return pb.WorkerFrame(
            hello=pb.Hello(
                protocol_version=PROTOCOL_VERSION,
                backend=BACKEND,
                instance_id=self.cfg.instance_id,
                capabilities=list(CAPABILITIES),
                pid=os.getpid(),
                symbols=[self.infos[s] for s in self.symbols],
                account=account,
            )
        )

    def handshake(self, account: pb.AccountSnapshot, timeout: float = WELCOME_TIMEOUT_S) -> None:
        """Send Hello and wait for Welcome; ``_Exit(EXIT_HANDSHAKE)`` on anything else."""
        self._heartbeat_s = handshake(self.sock, self.hello(account), timeout)

    def start(self) -> None:
        """What the engine needs before any order: the open positions, orders and account."""
        for name in self.unavailable:
            self._event("SYMBOL_UNAVAILABLE", f"symbol {name} is not available at the broker")
        self._init_deals()
        self._send_state(force=True)
        self._flush()

    # -- output -------------------------------------------------------------------------------

    def _flush(self) -> None:
        out = self._out
        if not out:
            return
        try:
            self.sock.sendall(b"".join(out))
        except (BrokenPipeError, ConnectionResetError) as e:
            raise _Exit(EXIT_OK, f"connection lost: {e}") from e
        finally:
            out.clear()

    def _event(self, kind: str, message: str) -> None:
        self._out.append(_frame(event=pb.WorkerEvent(kind=kind, message=message)))

    def _result(self, req: pb.OrderRequest, retcode: int, comment: str) -> None:
        tick = self._last_tick.get(req.symbol)
        result = pb.OrderResult(
            request_id=req.request_id, retcode=retcode, comment=comment, time_msc=_now_msc()
        )
        if tick is not None:
            result.bid, result.ask = tick[0], tick[1]
        self._out.append(_frame(order_result=result))

    # -- state polling ------------------------------------------------------------------------

    def _init_deals(self) -> None:
        """Deals already in the history belong to the past: remember them, report none."""
        now = int(time.time())
        deals = self._many(
            "history_deals_get",
            self.mt5.history_deals_get,
            now - DEAL_LOOKBACK_S,
            now + DEAL_AHEAD_S,
        )
        self._deal_floor = now - DEAL_LOOKBACK_S
        if deals is None:
            return
        for d in deals:
            self._seen_deals[d.ticket] = d.time
        if deals:
            self._deal_floor = max(self._deal_floor, max(d.time for d in deals) - DEAL_SLACK_S)

    def _new_deals(self) -> list[Any] | None:
        now = int(time.time())
        deals = self._many(
            "history_deals_get", self.mt5.history_deals_get, self._deal_floor, now + DEAL_AHEAD_S
        )
        if deals is None:
            return None
        seen = self._seen_deals
        new = [d for d in deals if d.ticket not in seen]
        if not new:
            return new
        for d in new:
            seen[d.ticket] = d.time
        floor = max(self._deal_floor, max(d.time for d in new) - DEAL_SLACK_S)
        if floor > self._deal_floor:
            self._deal_floor = floor
            for ticket in [t for t, when in seen.items() if when < floor]:
                del seen[ticket]
        new.sort(key=lambda d: (d.time_msc, d.ticket))
        return new

    def _report_deals(self, deals: Iterable[Any], order: int = 0, request_id: int = 0) -> None:
        now = time.monotonic()
        for d in deals:
            rid = request_id if order and d.order == order else 0
            if not rid and d.comment in self._unknown:
                # The deal of a request whose outcome was unknown: it did go through.
                unknown_rid, until = self._unknown[d.comment]
                if until >= now:
                    rid = unknown_rid
            self._out.append(_frame(deal=deal_proto(d, rid)))

    def _send_state(self, *, force: bool = False, reported: int = 0, fresh: bool = False) -> None:
        """OrderUpdates, PositionSnapshot, OrderSnapshot, AccountSnapshot, each when it changed
        (``force``: the snapshots in any case).

        ``reported``: an order whose update went out already (with its request_id). ``fresh``:
        the account is read now, not only once per ``account_interval_ms`` (after a trade).

        The terminal changes between two calls (the trade server fills an order, hits a stop):
        a fill made after the deals were read and before the state was would show a position,
        an order gone or a balance whose deal nobody has seen. So when the state read is to go
        out, the history is read again; new deals there go out first and the state is read
        again, so that a client sees every deal before or with the state it produced.
        """
        for _ in range(STATE_READS):
            positions = self._many("positions_get", self.mt5.positions_get)
            orders = self._many("orders_get", self.mt5.orders_get) if self._connected else None
            account = self._read_account(force=force, fresh=fresh)
            if not self._state_changed(positions, orders, account, force):
                break
            more = self._new_deals()
            if not more:
                break
            self._report_deals(more)
            fresh = True
        frames: list[bytes] = []
        if positions is not None:
            keys = {p.ticket: _position_key(p) for p in positions}
            if force or keys != self._positions:
                self._positions = keys
                snap = pb.PositionSnapshot(positions=[position_proto(p) for p in positions])
                frames.append(_frame(positions=snap))
        if orders is not None:
            order_keys = {o.ticket: _order_key(o) for o in orders}
            if force or order_keys != self._orders:
                if self._orders is not None:
                    self._order_updates(orders, order_keys, reported)
                self._orders = order_keys
                snap_o = pb.OrderSnapshot(orders=[order_proto(o) for o in orders])
                frames.append(_frame(orders=snap_o))
        self._out.extend(frames)
        if account is not None:
            key = _account_key(account)
            if force or key != self._account:
                self._account = key
                self._out.append(_frame(account=account))

    def _order_updates(
        self, orders: Sequence[Any], keys: dict[int, tuple[Any, ...]], reported: int
    ) -> None:
        old = self._orders or {}
        for o in orders:
            if o.ticket != reported and old.get(o.ticket) != keys[o.ticket]:
                self._out.append(_frame(order_update=pb.OrderUpdate(order=order_proto(o))))
        for ticket in sorted(old.keys() - keys.keys() - {reported}):
            # Gone from the open orders: filled, cancelled or expired; the history says which.
            done = self._many("history_orders_get", self.mt5.history_orders_get, ticket=ticket)
            for o in done or ():
                self._out.append(_frame(order_update=pb.OrderUpdate(order=order_proto(o))))

    def _state_changed(
        self,
        positions: Sequence[Any] | None,
        orders: Sequence[Any] | None,
        account: pb.AccountSnapshot | None,
        force: bool,
    ) -> bool:
        """Whether any of this state would go out (``_send_state``)."""
        if force:
            return True
        if positions is not None and {p.ticket: _position_key(p) for p in positions} != (
            self._positions
        ):
            return True
        if orders is not None and {o.ticket: _order_key(o) for o in orders} != self._orders:
            return True
        return account is not None and _account_key(account) != self._account

    def _read_account(
        self, *, force: bool = False, fresh: bool = False
    ) -> pb.AccountSnapshot | None:
        """The account, read when due (``account_interval_ms``) or asked for; None otherwise."""
        now = time.monotonic()
        if not (force or fresh) and now - self._last_account < self._account_s:
            return None
        account = self.account()
        if account is not None:
            self._last_account = now
        return account

    def _poll_ticks(self) -> None:
        frame = pb.WorkerFrame()
        add = frame.ticks.ticks.add
        mt5 = self.mt5
        for name in self.symbols:
            if self.cfg.tick_source == "copy":
                since = self._tick_msc.get(name, 0)
                start = since // 1000 if since else int(time.time()) - 1
                rows = self._many(
                    "copy_ticks_from",
                    mt5.copy_ticks_from,
                    name,
                    start,
                    COPY_TICKS_MAX,
                    c.COPY_TICKS_ALL,
                )
                if rows is None:
                    return
                for row in rows:
                    t_msc = int(_row(row, "time_msc"))
                    if t_msc <= since:
                        continue
                    since = t_msc
                    bid, ask = float(_row(row, "bid")), float(_row(row, "ask"))
                    last = float(_row(row, "last"))
                    volume = float(_row(row, "volume_real") or _row(row, "volume"))
                    add(symbol=name, bid=bid, ask=ask, last=last, volume=volume, time_msc=t_msc)
                    self._last_tick[name] = (bid, ask, last, t_msc)
                self._tick_msc[name] = since
            else:
                t = self._call("symbol_info_tick", mt5.symbol_info_tick, name)
                if t is None:
                    if not self._connected:
                        return
                    continue
                key = (t.bid, t.ask, t.last, t.time_msc)
                if key == self._last_tick.get(name):
                    continue
                self._last_tick[name] = key
                add(
                    symbol=name,
                    bid=t.bid,
                    ask=t.ask,
                    last=t.last,
                    volume=float(t.volume_real or t.volume),
                    time_msc=t.time_msc,
                )
        if frame.ticks.ticks:
            self._out.append(encode_frame(frame))
        if self.books:
            self._send_books()

    def _send_books(self) -> None:
        if not self._connected:
            return
        for update in self.books.poll(self.mt5, self._call):
            self._out.append(encode_frame(pb.WorkerFrame(book=update)))

    def _poll(self) -> None:
        self._poll_ticks()
        if not self._connected:
            return
        if self._pending_reconciles:
            pending, self._pending_reconciles = self._pending_reconciles, []
            for rq in pending:
                self._reconcile(rq)
        deals = self._new_deals()
        if deals is None:
            return
        if deals:
            self._report_deals(deals)
        # After a fill the balance or the margin moved: no waiting for the account interval.
        self._send_state(fresh=bool(deals))

    # -- link loss and recovery ---------------------------------------------------------------

    def _lost(self, why: str) -> None:
        if not self._connected:
            return
        self._connected = False
        self._reconnect_attempt = 0
        self._next_reconnect = time.monotonic()
        log.warning("lost the terminal: %s", why)
        self._event(Reason.BROKER_DISCONNECTED, why)

    def _watch_link(self, now: float) -> None:
        """The terminal's broker connection (terminal_info: connected, trade_allowed), checked
        at each heartbeat; lost, the terminal logs in again every broker_relogin_after_ms."""
        info = self._call("terminal_info", self.mt5.terminal_info)
        if info is None:
            return
        up = bool(info.connected and info.trade_allowed)
        event = self._link.watch(now, up, self.term.login)
        if event is not None:
            self._event(event.kind, event.message)

    def _maybe_reconnect(self, now: float) -> None:
        if self._connected or now < self._next_reconnect:
            return
        self._reconnect_attempt += 1
        attempts = self.cfg.broker_retry_attempts
        self.term.detach()
        if self.term.initialize() and self.select_symbols():
            self._connected = True
            log.info("terminal attached again (attempt %d)", self._reconnect_attempt)
            self._event(
                "BROKER_CONNECTED", f"attached again after {self._reconnect_attempt} attempt(s)"
            )
            # The terminal's books went with the old session (mt5_book).
            self.books.add_again(self.mt5, self._call, self.term.last_error)
            # Whatever happened meanwhile: deals first, then the state, complete.
            deals = self._new_deals()
            if deals:
                self._report_deals(deals)
            if self._connected:
                self._send_state(force=True)
            pending, self._pending_reconciles = self._pending_reconciles, []
            for rq in pending:
                self._reconcile(rq)
            return
        code, message = self.term.last_error()
        if self._reconnect_attempt >= attempts:
            raise _Exit(
                EXIT_BROKER,
                f"terminal lost: {attempts} attempts to attach again failed ({code} {message})",
            )
        delay = min(
            self.cfg.broker_retry_initial_ms * 2 ** (self._reconnect_attempt - 1),
            self.cfg.broker_retry_max_ms,
        )
        log.warning(
            "attaching again failed (attempt %d of %d): %d %s; next in %d ms",
            self._reconnect_attempt,
            attempts,
            code,
            message,
            delay,
        )
        self._next_reconnect = now + delay / 1000.0

    # -- orders -------------------------------------------------------------------------------

    def _filling(self, req: pb.OrderRequest) -> int:
        """The request's filling type, or one the symbol allows when it does not allow that."""
        wanted = req.type_filling
        if req.action not in (c.TRADE_ACTION_DEAL, c.TRADE_ACTION_PENDING):
            return wanted
        info = self.infos.get(req.symbol)
        if info is None:
            raw = self._call("symbol_info", self.mt5.symbol_info, req.symbol)
            if raw is None:
                return wanted
            info = self.infos[req.symbol] = symbol_proto(raw)
        bits = info.filling_mode
        # RETURN is always allowed; BOC (post-only) changes what the order means: keep both.
        if wanted in (c.ORDER_FILLING_RETURN, c.ORDER_FILLING_BOC) or bits & _FILL_BITS[wanted]:
            return wanted
        for mode in (c.ORDER_FILLING_FOK, c.ORDER_FILLING_IOC):
            if bits & _FILL_BITS[mode]:
                return mode
        return c.ORDER_FILLING_RETURN

    def request_dict(self, req: pb.OrderRequest) -> dict[str, Any]:
        """The MT5 request (MqlTradeRequest as a dict) for an OrderRequest."""
        price = req.price
        if req.action == c.TRADE_ACTION_DEAL and not price:
            # Instant-execution symbols need a price; the latest tick's is the one to take.
            tick = self._last_tick.get(req.symbol)
            if tick is None:
                t = self._call("symbol_info_tick", self.mt5.symbol_info_tick, req.symbol)
                if t is not None:
                    tick = (t.bid, t.ask, t.last, t.time_msc)
            if tick is not None:
                price = tick[1] if req.type == c.ORDER_TYPE_BUY else tick[0]
        request: dict[str, Any] = {
            "action": req.action,
            "symbol": req.symbol,
            "volume": req.volume,
            "type": req.type,
            "price": price,
            "sl": req.sl,
            "tp": req.tp,
            "deviation": req.deviation,
            "type_filling": self._filling(req),
            "type_time": req.type_time,
            "magic": req.magic,
            "comment": req.comment,
        }
        if not req.symbol:
            del request["symbol"]
        for key in ("stoplimit", "expiration", "position", "position_by", "order"):
            value = getattr(req, key)
            if value:
                request[key] = value
        return request

    def _execute(self, req: pb.OrderRequest) -> None:
        if self._reject_next > 0:
            self._reject_next -= 1
            self._result(req, c.TRADE_RETCODE_REJECT, "rejected (fault injection)")
            return
        if not self._connected:
            # Nothing reached the terminal: the outcome is known, the order was not placed.
            self._result(req, c.TRADE_RETCODE_CONNECTION, "no connection to the terminal")
            return
        request = self.request_dict(req)
        if not self._connected:
            self._result(req, c.TRADE_RETCODE_CONNECTION, "no connection to the terminal")
            return
        check = self._check(req, request)
        if check is None:
            return
        if req.check_only:
            self._answer_check(req, check)
            return
        if check.retcode not in _CHECK_OK:
            self._result(req, check.retcode, check.comment)
            return
        try:
            result = self.mt5.order_send(request)
        except Exception as e:
            # What the terminal made of it cannot be known: as for an IPC error.
            log.error("order_send raised %s: %s", type(e).__name__, e)
            result, error = None, (c.RES_E_INTERNAL_FAIL, f"order_send raised {type(e).__name__}")
        else:
            error = self.term.last_error() if result is None else (c.RES_S_OK, "")
        if result is None:
            self._send_failed(req, *error)
            return
        self._answer(req, result)

    def _check(self, req: pb.OrderRequest, request: dict[str, Any]) -> Any:
        """order_check, trying the other filling types when the terminal refuses the one taken
        (a symbol's filling flags do not tell the whole story: execution mode, broker rules);
        None when the request was answered already."""
        check = self._call("order_check", self.mt5.order_check, request)
        tried = {request["type_filling"]}
        # BOC (post-only) changes what the order means: never swapped for another type.
        while (
            check is not None
            and check.retcode == c.TRADE_RETCODE_INVALID_FILL
            and req.type_filling != c.ORDER_FILLING_BOC
        ):
            untried = [m for m in _FILL_ORDER if m not in tried]
            if not untried:
                break
            request["type_filling"] = untried[0]
            tried.add(untried[0])
            check = self._call("order_check", self.mt5.order_check, request)
        if check is None:
            code, message = self.term.last_error()
            if not self._connected:
                self._result(req, c.TRADE_RETCODE_CONNECTION, f"not sent: {message} ({code})")
            else:
                self._result(req, c.TRADE_RETCODE_ERROR, f"order_check failed: {message} ({code})")
            return None
        return check

    def _answer_check(self, req: pb.OrderRequest, check: Any) -> None:
        result = pb.OrderResult(
            request_id=req.request_id,
            retcode=check.retcode,
            comment=check.comment,
            time_msc=_now_msc(),
            balance=check.balance,
            equity=check.equity,
            margin=check.margin,
            margin_free=check.margin_free,
            margin_level=check.margin_level,
        )
        tick = self._last_tick.get(req.symbol)
        if tick is not None:
            result.bid, result.ask = tick[0], tick[1]
        self._out.append(_frame(order_result=result))

    def _send_failed(self, req: pb.OrderRequest, code: int, message: str) -> None:
        if code in c.IPC_ERRORS:
            # The request may have reached the server: never send it again, let the engine
            # reconcile (by comment), and attribute the deal to it if one shows up.
            now = time.monotonic()
            for comment in [k for k, (_, until) in self._unknown.items() if until < now]:
                del self._unknown[comment]
            if req.comment:
                self._unknown[req.comment] = (req.request_id, now + UNKNOWN_TTL_S)
            log.warning("request %d: outcome unknown after %s (%d)", req.request_id, message, code)
            self._result(req, c.TRADE_RETCODE_TIMEOUT, f"outcome unknown: {message} ({code})")
            self._lost(f"order_send: {message} ({code})")
        else:
            self._result(req, c.TRADE_RETCODE_ERROR, f"order_send failed: {message} ({code})")

    def _answer(self, req: pb.OrderRequest, result: Any) -> None:
        ok = result.retcode in _OK_RESULTS
        position = req.position
        if ok:
            deals = self._deals_of(req, result)
            for d in deals:
                if d.ticket == result.deal and d.position_id:
                    position = d.position_id
            self._report_deals(deals, result.order, req.request_id)
            if result.order:
                self._update_of(req, result.order)
            if self._connected:
                self._send_state(reported=result.order, fresh=True)
        self._out.append(
            _frame(
                order_result=pb.OrderResult(
                    request_id=req.request_id,
                    retcode=result.retcode,
                    deal=result.deal,
                    order=result.order,
                    volume=result.volume,
                    price=result.price,
                    bid=result.bid,
                    ask=result.ask,
                    comment=result.comment,
                    time_msc=_now_msc(),
                    position=position,
                )
            )
        )

    def _deals_of(self, req: pb.OrderRequest, result: Any) -> list[Any]:
        """New deals after a result, waiting a little for the result's own deal if needed."""
        deadline = time.monotonic() + DEAL_SYNC_WAIT_S
        found: list[Any] = []
        while True:
            new = self._new_deals()
            if new is None:
                break
            found.extend(new)
            if not result.deal or any(d.ticket == result.deal for d in found):
                return found
            if result.deal in self._seen_deals or time.monotonic() >= deadline:
                break
            # The terminal's history can lag its trade result by a few milliseconds.
            time.sleep(0.005)
        if result.deal and result.deal not in self._seen_deals:
            found.append(self._deal_from_result(req, result))
            self._seen_deals[result.deal] = int(time.time())
        return found

    def _deal_from_result(self, req: pb.OrderRequest, result: Any) -> Any:
        log.warning(
            "deal %d not in the terminal's history yet: reported from the result", result.deal
        )
        t_msc = _now_msc()
        return _DealFromResult(
            ticket=result.deal,
            order=result.order,
            position_id=req.position,
            symbol=req.symbol,
            type=c.DEAL_TYPE_BUY if req.type == c.ORDER_TYPE_BUY else c.DEAL_TYPE_SELL,
            entry=c.DEAL_ENTRY_OUT if req.position else c.DEAL_ENTRY_IN,
            volume=result.volume,
            price=result.price,
            magic=req.magic,
            comment=req.comment,
            time=t_msc // 1000,
            time_msc=t_msc,
        )

    def _update_of(self, req: pb.OrderRequest, ticket: int) -> None:
        found = self._many("orders_get", self.mt5.orders_get, ticket=ticket)
        if not found:
            found = self._many("history_orders_get", self.mt5.history_orders_get, ticket=ticket)
        for o in found or ():
            self._out.append(
                _frame(order_update=pb.OrderUpdate(order=order_proto(o), request_id=req.request_id))
            )

    # -- reconciliation -----------------------------------------------------------------------

    def _reconcile(self, rq: pb.ReconcileRequest) -> None:
        if not self._connected:
            self._pending_reconciles.append(rq)
            return
        comments = set(rq.comments)
        now = int(time.time())
        start = rq.from_time_msc // 1000 - DEAL_LOOKBACK_S if rq.from_time_msc else 0
        start = max(0, start)
        mt5 = self.mt5
        history = self._many(
            "history_orders_get", mt5.history_orders_get, start, now + DEAL_AHEAD_S
        )
        open_orders = self._many("orders_get", mt5.orders_get) if history is not None else None
        deals = (
            self._many("history_deals_get", mt5.history_deals_get, start, now + DEAL_AHEAD_S)
            if open_orders is not None
            else None
        )
        if history is None or open_orders is None or deals is None:
            # Answered once the terminal is back.
            self._pending_reconciles.append(rq)
            return
        orders = [o for o in [*open_orders, *history] if o.comment in comments]
        tickets = {o.ticket for o in orders}
        matched = [d for d in deals if d.order in tickets or d.comment in comments]
        self._out.append(
            _frame(
                reconcile_result=pb.ReconcileResult(
                    request_id=rq.request_id,
                    orders=[order_proto(o) for o in orders],
                    deals=[deal_proto(d) for d in matched],
                )
            )
        )

    # -- engine frames ------------------------------------------------------------------------

    def _handle(self, payload: bytes, now: float) -> None:
        frame = parse_engine_frame(payload)
        kind = frame.WhichOneof("body")
        if kind == "order":
            if self._delay_s or self._delayed:
                # Queue behind earlier delayed orders so results keep the request order.
                self._delayed.append((now + self._delay_s, frame.order))
            else:
                self._execute(frame.order)
        elif kind == "snapshot_request":
            if self._connected:
                self._send_state(force=True)
        elif kind == "reconcile":
            self._reconcile(frame.reconcile)
        elif kind == "market_request" and frame.market_request.WhichOneof("query") == "book":
            request = frame.market_request
            answer = self.books.query(
                self.mt5, self._call, self.term.last_error, request, self._connected
            )
            self._out.append(encode_frame(pb.WorkerFrame(market_answer=answer)))
            self._send_books()
        elif kind == "market_request":
            answer = self._market_answer(frame.market_request)
            if answer.HasField("terminal"):
                answer.terminal.relogins = self._link.relogins
                answer.terminal.books.extend(self.books.symbols)
            self._out.append(encode_frame(pb.WorkerFrame(market_answer=answer)))
        elif kind == "fault":
            self._fault(frame.fault)
        elif kind == "shutdown":
            # Results of orders handled before the Shutdown still belong to the engine.
            self._flush()
            raise _Exit(EXIT_OK, f"shutdown requested: {frame.shutdown.reason or 'no reason'}")
        elif kind == "welcome":
            pass  # A repeated Welcome changes nothing.
        else:
            log.warning("ignoring engine frame of unknown kind %r", kind)

    def _heartbeat(self) -> bytes:
        self._heartbeat_seq += 1
        return _frame(heartbeat=pb.Heartbeat(sequence=self._heartbeat_seq, time_msc=_now_msc()))

    def _market_answer(self, request: pb.MarketRequest) -> pb.MarketAnswer:
        """``mt5_market.answer``; bars and ticks made in another thread while this one sends
        the heartbeats that fall due: copy_rates of 100,000 bars can keep the terminal busy
        for seconds (a history download; simterminal's backfill), and the engine's watchdog
        would replace a worker that silent mid-answer. Meanwhile this thread only waits and
        writes heartbeats: the terminal is called by one thread at a time, and what the
        answer's calls queue (``_out``) is left to the loop. Not for ever: a call still
        running after ``MARKET_CALL_HUNG_S`` has hung, and the worker exits (EXIT_BROKER)
        rather than send heartbeats while it reads no engine frame; the engine replaces it."""
        args = (self.mt5, self._call, self.term.last_error, request)
        if request.WhichOneof("query") not in ("rates", "ticks"):
            return mt5_market.answer(*args)
        done: list[pb.MarketAnswer] = []
        failed: list[BaseException] = []

        def make() -> None:
            try:
                done.append(mt5_market.answer(*args))
            except BaseException as e:  # raised again in this thread
                failed.append(e)

        # A daemon: a terminal call that never returns does not keep the worker from exiting.
        thread = threading.Thread(target=make, name="market", daemon=True)
        thread.start()
        hung_at = time.monotonic() + MARKET_CALL_HUNG_S
        while True:
            thread.join(max(0.0, min(self._next_heartbeat, hung_at) - time.monotonic()))
            if not thread.is_alive():
                break
            now = time.monotonic()
            if now >= hung_at:
                self.term.hung = True
                raise _Exit(
                    EXIT_BROKER,
                    f"terminal call hung: {request.WhichOneof('query')} answer still running "
                    f"after {MARKET_CALL_HUNG_S:g} s; exiting for the engine to start a new worker",
                )
            self._next_heartbeat = next_heartbeat(self._next_heartbeat, self._heartbeat_s, now)
            try:
                self.sock.sendall(self._heartbeat())
            except (BrokenPipeError, ConnectionResetError) as e:
                raise _Exit(EXIT_OK, f"connection lost: {e}") from e
        if failed:
            raise failed[0]
        return done[0]

    def _fault(self, fault: pb.FaultInjection) -> None:
        if fault.ByteSize() == 0:
            self._delay_s = 0.0
            self._reject_next = 0
            return
        if fault.delay_ms:
            self._delay_s = fault.delay_ms / 1000.0
        self._reject_next += fault.reject_next
        enact_fault(self.sock, fault, self._flush, log)

    # -- main loop ----------------------------------------------------------------------------

    def run(self) -> None:
        """Serve until an ``_Exit`` unwinds the loop."""
        sock = self.sock
        sel = selectors.DefaultSelector()
        sel.register(sock, selectors.EVENT_READ)
        reader = self._reader
        now = time.monotonic()
        next_poll = now
        self._next_heartbeat = now + self._heartbeat_s
        try:
            while True:
                deadline = min(next_poll, self._next_heartbeat)
                if not self._connected:
                    deadline = min(deadline, self._next_reconnect)
                if self._delayed:
                    deadline = min(deadline, self._delayed[0][0])
                timeout = deadline - time.monotonic()
                if sel.select(timeout if timeout > 0 else 0):
                    payloads = read_frames(reader, sock)
                    now = time.monotonic()
                    for payload in payloads:
                        self._handle(payload, now)
                        # Each result goes out as soon as it is known.
                        self._flush()

                now = time.monotonic()
                while self._delayed and self._delayed[0][0] <= now:
                    self._execute(self._delayed.popleft()[1])
                    self._flush()

                self._maybe_reconnect(now)
                if now >= next_poll:
                    if self._connected:
                        self._poll()
                    next_poll = max(next_poll + self._poll_s, now)
                if now >= self._next_heartbeat:
                    if self._connected:
                        self._watch_link(now)
                    self._out.append(self._heartbeat())
                    self._next_heartbeat = next_heartbeat(
                        self._next_heartbeat, self._heartbeat_s, now
                    )
                self._flush()
        finally:
            sel.close()


class _DealFromResult:
    """A deal known only from an OrderSendResult (the terminal's history had not caught up)."""

    def __init__(self, **fields: Any) -> None:
        self.reason = c.DEAL_REASON_EXPERT
        self.profit = 0.0
        self.commission = 0.0
        self.swap = 0.0
        for key, value in fields.items():
            setattr(self, key, value)


# -- process ----------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mt5exec.workers.mt5", description="MetaTrader 5 terminal worker."
    )
    parser.add_argument("--socket", required=True, help="Unix socket the engine listens on")
    parser.add_argument("--config", type=Path, required=True, help="JSON config of the worker")
    parser.add_argument("--instance-id", help="overrides instance_id from the config")
    args = parser.parse_args(argv)

    setup_logging()
    try:
        cfg = load_config(args.config, args.instance_id)
        password = read_password(cfg)
    except ConfigError as e:
        log.error("bad config: %s", e)
        return EXIT_CONFIG
    try:
        mt5 = importlib.import_module(cfg.module)
    except ImportError as e:
        log.error("bad config: module %s cannot be imported: %s", cfg.module, e)
        return EXIT_CONFIG

    handle_signals()
    terminal = Terminal(mt5, cfg, password)
    del password
    try:
        return _serve(args.socket, terminal, cfg)
    finally:
        ignore_signals()
        terminal.stop()


def _serve(socket_path: str, terminal: Terminal, cfg: WorkerConfig) -> int:
    iid = cfg.instance_id
    log.info(
        "mt5 worker starting: instance=%s module=%s terminal=%s login=%s server=%s symbols=%s",
        iid,
        cfg.module,
        cfg.terminal_path or cfg.terminal_base or "(default)",
        cfg.login,
        cfg.server,
        ",".join(cfg.symbols),
    )

    def body() -> None:
        attached = terminal.attach(cfg.broker_retry_attempts)
        sock = connect_or_exit(socket_path)
        worker = MT5Worker(sock, terminal, cfg)
        if not attached:
            # Said instead of Hello: the engine fails the instance at once (LOGIN_FAILED)
            # rather than reporting it READY or restarting it with the same credentials.
            code, message = terminal.last_error()
            worker._event(
                Reason.LOGIN_FAILED,
                f"initialize failed {cfg.broker_retry_attempts} times: {message} ({code})",
            )
            worker._flush()
            raise _Exit(EXIT_LOGIN, f"login failed: {message} ({code})")
        if not worker.select_symbols():
            code, message = terminal.last_error()
            raise _Exit(EXIT_BROKER, f"terminal lost while selecting symbols: {message} ({code})")
        account = worker.account()
        if account is None:
            code, message = terminal.last_error()
            raise _Exit(EXIT_BROKER, f"account_info failed: {message} ({code})")
        worker.handshake(account)
        log.info(
            "mt5 worker started: instance=%s socket=%s symbols=%s account=%d margin_mode=%d",
            iid,
            socket_path,
            ",".join(worker.symbols),
            account.login,
            account.margin_mode,
        )
        worker.start()
        worker.run()

    return serve(log, "mt5 worker", iid, body)


if __name__ == "__main__":
    sys.exit(main())
