"""The sim terminal worker: a process that serves one ``SimBroker`` over the worker protocol.

Run as ``python -m mt5exec.workers.sim --socket PATH [--config PATH] [--instance-id ID]
[--state PATH|none]``. It connects to the engine's Unix socket, says Hello, waits for Welcome,
sends the open positions and the working orders (and MARKET_CLOSED when no symbol is in its
session), then streams tick batches and heartbeats, executes the engine's trade requests
(``check_only`` ones included), answers reconciliation requests, and reports what the broker
does on its own (triggered orders, SL/TP, stop-outs, expirations, margin calls, sessions
opening and closing) until told to stop. It never outlives its connection: EOF, a reset,
Shutdown, SIGTERM or SIGINT end it with exit code 0.

Frames of an answered request: DealReport(s), OrderUpdate(s), PositionSnapshot, OrderSnapshot,
AccountSnapshot (each only when there is something in it or it changed), then the OrderResult.
Changes the broker makes on its own go out the same way without an OrderResult, followed by
their WorkerEvents.

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
    See below.

The account lives in state files (``mt5exec.sim.state``) at ``--state``, else the config's
``state_path``, else ``./sim_state`` in the working directory (the server starts each worker in
its instance's directory); ``none`` turns persistence off. A restarted worker, even after
``kill -9``, carries on with the same account, working orders and order history: every change
is journaled before anything about it is sent (its OrderResult, or for a triggered fill its
DealReport). Snapshots are written at start, every ``CHECKPOINT_EVERY`` changes (after the
results went out) and on an orderly exit; prices are saved about once a second. A
reconciliation request searches the journal (about one memory scan of it per comment), which
compaction bounds: to the history of the retention above, beside the account.

Fault injection (``mt5exec.sim.faults``, docs/simulated-broker.md#fault-injection): the faults
of ``FaultInjection`` frames, and from the start those of the environment (``MT5EXEC_SIM_*``:
exit at start, die right after a triggered fill is journaled, answer every order late) and the
``broker_outage`` file in the working directory.

Exit codes: 0 normal stop; 1 unexpected error; 2 bad command line or config, or unusable state
files; 3 could not connect or the handshake failed; 4 the engine broke the protocol; 70
``crash`` fault.

One thread and a ``selectors`` loop (no asyncio): the loop sleeps exactly until the next tick,
heartbeat, delayed order, order expiration or session change is due, which keeps both latency
and idle CPU low. Margin (stop-out, margin call) is checked after every tick batch while
positions are open; the engine's clock in ticks and heartbeats is the server's clock.
"""

from __future__ import annotations

import argparse
import collections
import json
import logging
import math
import os
import selectors
import signal
import socket
import struct
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from google.protobuf.message import Message

from mt5exec.reasons import Reason
from mt5exec.sim import book as sim_book
from mt5exec.sim import market
from mt5exec.sim.broker import Activity, SendOutcome, SimBroker, SimConfig
from mt5exec.sim.constants import TRADE_RETCODE_CONNECTION
from mt5exec.sim.faults import ENV_EXIT_AT_START, StartFaults
from mt5exec.sim.link import DEFAULT_RELOGIN_AFTER_S, BrokerLink
from mt5exec.sim.state import Retention, StateError
from mt5exec.sim.symbols import DEFAULT_SYMBOLS, parse_symbol_settings
from mt5exec.terminal.v1 import worker_pb2 as pb
from mt5exec.workers.base import CONNECT_TIMEOUT_S as CONNECT_TIMEOUT_S
from mt5exec.workers.base import (
    DEFAULT_HEARTBEAT_MS,
    EXIT_CONFIG,
    EXIT_ERROR,
    EXIT_HANDSHAKE,
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
from mt5exec.workers.base import EXIT_PROTOCOL as EXIT_PROTOCOL
from mt5exec.workers.base import WorkerExit as _Exit
from mt5exec.workers.base import connect as connect
from mt5exec.workers.protocol import (
    MAX_FRAME_SIZE,
    FrameError,
    FrameReader,
    encode_field_frame,
    encode_frame,
    varint,
)

log = logging.getLogger("mt5exec.workers.sim")

BACKEND = "sim"
CAPABILITIES = (
    "ticks",
    "orders",
    "faults",
    "pending_orders",
    "order_check",
    "reconcile",
    "market_data",
)

# Equity-only account updates while positions are open are rate limited to this.
ACCOUNT_INTERVAL_S = 0.25
# Ticks are sent at most this often unless the config's tick_batch_ms says otherwise;
# everything due in between goes in one TickBatch. At high tick rates this turns thousands of
# tiny writes per second into a few hundred larger ones.
DEFAULT_BATCH_INTERVAL_S = 0.002
# The range tick_batch_ms may take (milliseconds); the server checks requests against it too.
TICK_BATCH_MS_RANGE = (0.1, 1000.0)
# After a stall (blocked write, slow host) at most this much backlog of ticks is replayed; the
# rest is skipped, as a live feed would after a hiccup.
MAX_TICK_BACKLOG_S = 0.1
# Prices are saved this often while they move, so that a crash does not rewind the walk far.
PRICE_SAVE_INTERVAL_S = 1.0
DEFAULT_STATE_PATH = "sim_state"
# Pieces handed to one sendmsg; Linux refuses more than 1024 (IOV_MAX).
_MAX_IOV = 512
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


# WorkerFrame body field numbers by name.
_FIELD_NUMBERS = {f.name: f.number for f in pb.WorkerFrame.DESCRIPTOR.fields}


def _frame(**body: Message) -> bytes:
    """The frame of a WorkerFrame with one body field, e.g. ``_frame(orders=snapshot)``.

    Byte-for-byte ``encode_frame(pb.WorkerFrame(orders=snapshot))``, without copying the
    message into a wrapper first. Frames of every order use ``_small_frame``.
    """
    ((name, msg),) = body.items()
    return encode_field_frame(_FIELD_NUMBERS[name], msg.SerializeToString())


_FRAME_LENGTH = struct.Struct(">I")


def _key(name: str) -> bytes:
    return varint(_FIELD_NUMBERS[name] << 3 | 2)


_POSITIONS_KEY = _key("positions")


# Keys of the frames every order sends, and one-byte lengths: what ``_frame`` works out anew
# each time (~1 µs of a frame's 1.3 µs).
_DEAL_KEY, _UPDATE_KEY, _ACCOUNT_KEY, _RESULT_KEY = map(
    _key, ("deal", "order_update", "account", "order_result")
)
_SHORT_LENGTHS = [bytes((n,)) for n in range(0x80)]


def _small_frame(key: bytes, msg: Message) -> bytes:
    """``_frame`` for the messages of bounded size every order sends (a deal, an order
    update, the account, the result): far below ``MAX_FRAME_SIZE``."""
    payload = msg.SerializeToString()
    n = len(payload)
    length = _SHORT_LENGTHS[n] if n < 0x80 else varint(n)
    return _FRAME_LENGTH.pack(len(key) + len(length) + n) + key + length + payload


def _positions_frame(broker: SimBroker) -> tuple[bytes, bytes]:
    """The PositionSnapshot frame as (header, payload): what ``encode_field_frame`` gives.

    Kept in two pieces so that the payload, which grows with the open positions and is cached
    by the broker, is never copied on its way to the socket (see ``SimWorker._flush``).
    """
    payload = broker.positions_snapshot_bytes()
    key = _POSITIONS_KEY + varint(len(payload))
    size = len(key) + len(payload)
    if size > MAX_FRAME_SIZE:
        raise FrameError(f"frame of {size} bytes exceeds {MAX_FRAME_SIZE}")
    return _FRAME_LENGTH.pack(size) + key, payload


class SimWorker:
    """The protocol side of a sim instance: owns the socket, the schedule and the broker."""

    def __init__(
        self,
        sock: socket.socket,
        broker: SimBroker,
        instance_id: str,
        batch_interval_s: float = DEFAULT_BATCH_INTERVAL_S,
        relogin_after_s: float = DEFAULT_RELOGIN_AFTER_S,
        kill_after_trigger: bool = False,
    ) -> None:
        self.sock = sock
        self.broker = broker
        # Fault injection (mt5exec.sim.faults.StartFaults.kill_after_trigger).
        self._kill_after_trigger = kill_after_trigger
        self.instance_id = instance_id
        self._reader = FrameReader()
        self._out: list[bytes] = []
        # Orders handled since the last _settle: their results, and the snapshots they changed.
        self._results: list[bytes] = []
        self._positions_due = self._orders_due = self._account_due = False
        rate = broker.config.tick_rate
        self._tick_period = 1.0 / rate if rate > 0 else 0.0
        self._batch_interval = batch_interval_s
        self._max_burst = max(1, math.ceil(rate * MAX_TICK_BACKLOG_S)) if rate > 0 else 0
        self._heartbeat_s = DEFAULT_HEARTBEAT_MS / 1000.0
        self._heartbeat_seq = 0
        self._delayed: collections.deque[tuple[float, pb.OrderRequest]] = collections.deque()
        self._last_equity = broker.equity()
        self._last_account = 0.0
        now = time.monotonic()
        self._next_tick = now
        self._next_heartbeat = now + self._heartbeat_s
        self.ticks_sent = 0
        self._prices_moved = False
        self._next_price_save = now + PRICE_SAVE_INTERVAL_S
        self._next_checkpoint_try = now
        self._state_failing = False
        # The terminal's broker connection (mt5exec.sim.link).
        self.link = BrokerLink(relogin_after_s)
        # The symbols whose depth of market the engine added (StreamBook; mt5exec.sim.book).
        self.books = sim_book.Books()
        self._book_specs = {s.name: s for s in broker.symbol_specs()}

    # -- handshake --------------------------------------------------------------------------

    def hello(self) -> pb.WorkerFrame:
        return pb.WorkerFrame(
            hello=pb.Hello(
                protocol_version=PROTOCOL_VERSION,
                backend=BACKEND,
                instance_id=self.instance_id,
                capabilities=list(CAPABILITIES),
                pid=os.getpid(),
                symbols=self.broker.symbol_infos(),
                account=self.broker.account_snapshot(),
            )
        )

    def handshake(self, timeout: float = WELCOME_TIMEOUT_S) -> None:
        """Send Hello and wait for Welcome; ``_Exit(EXIT_HANDSHAKE)`` on anything else."""
        self._heartbeat_s = handshake(self.sock, self.hello(), timeout)
        # The positions and working orders right away: after a restart the engine must know
        # what is open before any order, and the account in Hello is only half of the picture.
        first = [*_positions_frame(self.broker), _frame(orders=self.broker.orders_snapshot())]
        if not self.broker.market_open:
            first.append(
                _frame(
                    event=pb.WorkerEvent(
                        kind=Reason.MARKET_CLOSED, message="every symbol is outside its sessions"
                    )
                )
            )
        try:
            self.sock.sendall(b"".join(first))
        except OSError as e:
            raise _Exit(EXIT_HANDSHAKE, f"handshake failed: {e}") from e

    # -- output -----------------------------------------------------------------------------

    def _flush(self) -> None:
        out = self._out
        if not out:
            return
        sock = self.sock
        try:
            if len(out) == 1:
                sock.sendall(out[0])
            elif len(out) <= _MAX_IOV:
                # Gathered by the kernel: a large positions payload is not copied into a join.
                sent = sock.sendmsg(out)
                if sent < sum(map(len, out)):
                    sock.sendall(b"".join(out)[sent:])
            else:
                sock.sendall(b"".join(out))
        except (BrokenPipeError, ConnectionResetError) as e:
            raise _Exit(EXIT_OK, f"connection lost: {e}") from e
        finally:
            out.clear()

    def _send_account(self, now: float) -> None:
        account = self.broker.account_snapshot()
        self._out.append(_small_frame(_ACCOUNT_KEY, account))
        self._last_equity = account.equity
        self._last_account = now

    # -- engine frames ----------------------------------------------------------------------

    def _handle(self, payload: bytes, now: float) -> None:
        frame = parse_engine_frame(payload)
        kind = frame.WhichOneof("body")
        if kind == "order":
            if not self.link.connected:
                # The engine refuses orders meanwhile; one already on its way finds no broker.
                result = pb.OrderResult(
                    request_id=frame.order.request_id,
                    retcode=TRADE_RETCODE_CONNECTION,
                    comment="no connection with the trade server",
                )
                self._results.append(_small_frame(_RESULT_KEY, result))
                return
            if self.broker.faults.delay_ms or self._delayed:
                # Queue behind earlier delayed orders so results keep the request order.
                due = now + self.broker.faults.delay_ms / 1000.0
                self._delayed.append((due, frame.order))
            else:
                self._record(self.broker.send(frame.order))
            return
        # Anything else comes after what the orders before it did.
        self._settle(now)
        if kind == "snapshot_request":
            self._out.extend(_positions_frame(self.broker))
            self._out.append(_frame(orders=self.broker.orders_snapshot()))
            self._send_account(now)
        elif kind == "reconcile":
            self._out.append(_frame(reconcile_result=self.broker.reconcile(frame.reconcile)))
        elif kind == "market_request" and frame.market_request.WhichOneof("query") == "book":
            book = sim_book.query(self.books, self._book_specs, frame.market_request)
            self._out.append(_frame(market_answer=book))
            self._send_books()
        elif kind == "market_request":
            answer = market.answer(
                self.broker,
                frame.market_request,
                connected=self.link.connected,
                relogins=self.link.relogins,
                pulse=self.pulse,
            )
            if answer.HasField("terminal"):
                answer.terminal.books.extend(self.books.symbols)
            self._out.append(_frame(market_answer=answer))
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

    def _send_books(self) -> None:
        """The book of each added symbol whose quote moved since its last one (or just added)."""
        quote, seed = self.broker.quote, self.broker.config.seed
        for name in self.books.symbols:
            bid, ask, time_msc = quote(name)
            if self.books.due(name, bid, ask):
                update = sim_book.update(self._book_specs[name], bid, ask, time_msc, seed)
                self._out.append(_frame(book=update))

    def _record(self, changes: SendOutcome | Activity) -> None:
        """A change's deals and order updates now; the snapshots it changed (and an order's
        result) wait for ``_settle``, so that orders read together share one positions,
        orders and account snapshot instead of one each."""
        out = self._out
        for deal in changes.deals:
            out.append(_small_frame(_DEAL_KEY, deal))
        for update in changes.order_updates:
            out.append(_small_frame(_UPDATE_KEY, update))
        self._positions_due |= changes.positions_changed
        self._orders_due |= changes.orders_changed
        self._account_due |= changes.account_changed
        if isinstance(changes, SendOutcome):
            self._results.append(_small_frame(_RESULT_KEY, changes.result))

    def _settle(self, now: float) -> None:
        """The snapshots the recorded changes made stale, then the orders' results: the
        order the engine relies on (a client that has its OrderResult and then reads
        positions, orders or the account must already see it)."""
        out = self._out
        if self._positions_due:
            out.extend(_positions_frame(self.broker))
        if self._orders_due:
            out.append(_frame(orders=self.broker.orders_snapshot()))
        if self._account_due:
            self._send_account(now)
        self._positions_due = self._orders_due = self._account_due = False
        if self._results:
            out.extend(self._results)
            self._results.clear()

    def _report(self, changes: SendOutcome | Activity, now: float) -> None:
        self._record(changes)
        self._settle(now)

    def _activity(self, now: float) -> None:
        """Report what the broker did on its own (triggers, stops, stop-out, timers)."""
        act = self.broker.take_activity()
        if act is None:
            return
        if act.deals and self._kill_after_trigger:
            # Fault injection: the fill is journaled, nothing about it has left the process.
            os.kill(os.getpid(), signal.SIGKILL)
        self._report(act, now)
        for event in act.events:
            log.info("instance=%s: %s %s", self.instance_id, event.kind, event.message)
            self._out.append(_frame(event=event))

    def _persist(self, now: float) -> None:
        """Price checkpoint and snapshot when due; called after the output went out."""
        broker = self.broker
        try:
            if self._prices_moved and now >= self._next_price_save:
                self._next_price_save = now + PRICE_SAVE_INTERVAL_S
                self._prices_moved = False
                broker.save_prices()
            if now >= self._next_checkpoint_try:
                broker.maybe_checkpoint()
        except OSError as e:
            # The journal still holds every trade; a failed snapshot only makes the next start
            # replay more. Retry later instead of on every pass of the loop.
            self._next_checkpoint_try = now + 10.0
            if not self._state_failing:
                log.warning("cannot save a checkpoint of the sim state: %s", e)
            self._state_failing = True
        else:
            if self._state_failing:
                log.info("sim state checkpoints work again")
            self._state_failing = False

    def _watch_link(self, now: float) -> None:
        """The broker connection, checked at each heartbeat (mt5exec.sim.link)."""
        self.link.poll_file(now)
        event = self.link.watch(now)
        if event is not None:
            log.warning("instance=%s: %s %s", self.instance_id, event.kind, event.message)
            self._out.append(_frame(event=event))
            if event.kind == "BROKER_CONNECTED":
                # As after a freeze: no burst of the ticks the outage skipped.
                self._next_tick = now

    def _beat(self, now: float) -> None:
        """The heartbeat (due now) and the broker connection's check that goes with it."""
        self._watch_link(now)
        self._heartbeat_seq += 1
        heartbeat = pb.Heartbeat(
            sequence=self._heartbeat_seq, time_msc=int(self.broker.now() * 1000.0)
        )
        self._out.append(_frame(heartbeat=heartbeat))
        self._next_heartbeat = next_heartbeat(self._next_heartbeat, self._heartbeat_s, now)

    def pulse(self) -> None:
        """Called every so many bars or ticks while a market answer is made (the first
        100,000 M1 bars are a backfill of seconds on a loaded machine): the heartbeat when
        due, sent at once with what is already queued, so that the engine's watchdog never
        takes a busy worker for a frozen one and replaces it mid-answer."""
        now = time.monotonic()
        if now >= self._next_heartbeat:
            self._beat(now)
            self._flush()

    def _fault(self, fault: pb.FaultInjection) -> None:
        if fault.broker_outage_ms:
            self.link.outage(time.monotonic(), fault.broker_outage_ms)
            self._watch_link(time.monotonic())
            return
        self.broker.apply_fault(fault)
        # Whatever was already done reaches the engine before the fault takes effect.
        if enact_fault(self.sock, fault, self._flush, log):
            # Resume as a live terminal would: no burst of stale ticks, a heartbeat right away.
            now = time.monotonic()
            self._next_tick = now
            self._next_heartbeat = now

    # -- main loop --------------------------------------------------------------------------

    def run(self) -> None:
        """Serve until an ``_Exit`` unwinds the loop."""
        sock = self.sock
        sel = selectors.DefaultSelector()
        sel.register(sock, selectors.EVENT_READ)
        reader = self._reader
        broker = self.broker
        period = self._tick_period
        now = time.monotonic()
        self._next_tick = now
        self._next_heartbeat = now + self._heartbeat_s
        batch_interval = self._batch_interval
        last_batch = now - batch_interval
        persist = broker.journal is not None
        try:
            while True:
                deadline = self._next_heartbeat
                if period:
                    deadline = min(deadline, max(self._next_tick, last_batch + batch_interval))
                if self._delayed:
                    deadline = min(deadline, self._delayed[0][0])
                timer = broker.next_timer
                if timer != math.inf:
                    deadline = min(deadline, time.monotonic() + (timer - broker.now()))
                timeout = deadline - time.monotonic()
                if sel.select(timeout if timeout > 0 else 0):
                    payloads = read_frames(reader, sock)
                    now = time.monotonic()
                    for payload in payloads:
                        self._handle(payload, now)
                    self._settle(now)

                now = time.monotonic()
                while self._delayed and self._delayed[0][0] <= now:
                    self._report(self.broker.send(self._delayed.popleft()[1]), now)

                if (
                    period
                    and now >= self._next_tick
                    and now - last_batch >= batch_interval
                    and self.link.connected
                ):
                    due = int((now - self._next_tick) / period) + 1
                    if due > self._max_burst:
                        due = self._max_burst
                        self._next_tick = now + period
                    else:
                        self._next_tick += due * period
                    last_batch = now
                    symbols = broker.trading_symbols
                    if symbols:
                        frame = pb.WorkerFrame()
                        add = frame.ticks.ticks.add
                        advance = broker.advance
                        time_msc = int(broker.now() * 1000.0)
                        for _ in range(due):
                            for name in symbols:
                                bid, ask = advance(name, time_msc)
                                add(symbol=name, bid=bid, ask=ask, time_msc=time_msc)
                        self._out.append(encode_frame(frame))
                        self.ticks_sent += due * len(symbols)
                        if self.books:
                            self._send_books()
                        self._prices_moved = True
                        if broker.has_positions:
                            broker.check_margin()
                        self._activity(now)
                        if (
                            broker.has_positions
                            and now - self._last_account >= ACCOUNT_INTERVAL_S
                            and broker.equity() != self._last_equity
                        ):
                            self._send_account(now)

                if broker.next_timer <= broker.now():
                    broker.poll()
                    self._activity(now)

                if now >= self._next_heartbeat:
                    self._beat(now)

                self._flush()
                if persist:
                    self._persist(now)
        finally:
            sel.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mt5exec.workers.sim", description="Simulated MT5 terminal worker."
    )
    parser.add_argument("--socket", required=True, help="Unix socket the engine listens on")
    parser.add_argument("--config", type=Path, help="JSON config (symbols, seed, tick_rate, ...)")
    parser.add_argument("--instance-id", help="overrides instance_id from the config")
    parser.add_argument(
        "--state",
        help=f"the account's state files (default: state_path from the config, else "
        f"./{DEFAULT_STATE_PATH}); {STATE_NONE!r} turns persistence off",
    )
    args = parser.parse_args(argv)

    setup_logging()
    faults = StartFaults.from_env()
    if faults.exit_at_start:
        log.error("%s is set: exiting at start (fault injection)", ENV_EXIT_AT_START)
        return EXIT_ERROR
    try:
        config = load_config(args.config, args.instance_id)
        if args.state is not None and not args.state.strip():
            raise ConfigError(f"--state: empty (use {STATE_NONE!r} to turn persistence off)")
        path = state_path(args.state) if args.state is not None else config.state_path
        clock = config.clock()
        broker = (
            SimBroker.open(config.sim, path, clock, retention=config.retention)
            if path is not None
            else SimBroker(config.sim, clock)
        )
    except (ConfigError, ValueError) as e:
        log.error("bad config: %s", e)
        return EXIT_CONFIG
    except StateError as e:
        log.error("cannot use the sim state: %s", e)
        return EXIT_CONFIG
    _log_restored(broker, path)
    if faults.order_delay_ms:
        # Answers arrive late, as from a slow trade server.
        broker.apply_fault(pb.FaultInjection(delay_ms=faults.order_delay_ms))

    handle_signals()
    iid = config.instance_id
    try:
        return _serve(args.socket, broker, config, faults)
    finally:
        # A signal during the final snapshot must not cut it short.
        ignore_signals()
        try:
            broker.close()
        except OSError as e:
            log.error("instance=%s: cannot write the final snapshot: %s", iid, e)


def _log_restored(broker: SimBroker, path: Path | None) -> None:
    loaded = broker.restored
    if path is None or loaded is None or broker.journal is None:
        log.info("sim state: not persisted")
        return
    retention = broker.journal.retention
    log.info(
        "sim state %s: a compaction keeps the order history of %g s and %d orders",
        path,
        retention.keep_s,
        retention.keep_orders,
    )
    acct = broker.account_snapshot()
    if loaded.account is None:
        log.info("sim state %s: new account, balance %.2f", path, acct.balance)
    else:
        log.info(
            "sim state %s: restored account, balance %.2f, %d open positions, %d working orders, "
            "%d changes replayed",
            path,
            acct.balance,
            broker.position_count,
            broker.order_count,
            loaded.replayed,
        )


def _serve(socket_path: str, broker: SimBroker, config: WorkerConfig, faults: StartFaults) -> int:
    iid = config.instance_id

    def body() -> None:
        sock = connect_or_exit(socket_path)
        worker = SimWorker(
            sock,
            broker,
            iid,
            config.batch_interval_s,
            config.relogin_after_s,
            faults.kill_after_trigger,
        )
        worker.handshake()
        log.info(
            "sim worker started: instance=%s socket=%s symbols=%s tick_rate=%g margin_mode=%s",
            iid,
            socket_path,
            ",".join(broker.symbols),
            config.sim.tick_rate,
            config.sim.margin_mode,
        )
        worker.run()

    return serve(log, "sim worker", iid, body)


if __name__ == "__main__":
    sys.exit(main())
