"""The MT5 terminal worker: serves one MetaTrader 5 terminal over the worker protocol.

Run as ``python -m mt5exec.workers.mt5 --socket PATH --config FILE``. It attaches the
MetaTrader5 package (or any module with the same API, e.g. ``mt5exec.mt5.simterminal``, named
by the config's ``module``) to its terminal, connects to the engine's Unix socket, says Hello
with the symbols and the account, waits for Welcome, then polls the terminal for ticks, fills
and account changes, and executes the engine's orders. Same lifecycle as ``workers.sim``: it
never outlives its connection (EOF, a reset, Shutdown, SIGTERM or SIGINT end it with exit code
0), so it never trades unsupervised.

Config (JSON): see ``workers.mt5_config``.

The password lives in this process's memory only (it is needed again to re-attach after an IPC
failure): never on a command line, in the environment, in a log line or in a frame. With
``terminal_base`` it is also in the terminal's startup ini until the login succeeded, then
scrubbed (``mt5exec.mt5.bootstrap``).

What the engine gets, and in which order after an order: DealReport(s) of the new deals (the
one answering the request carries its request_id), OrderUpdate(s) (none for a market order
filled at once: its result says it all), then PositionSnapshot,
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
import importlib
import logging
import os
import selectors
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from mt5exec.mt5 import constants as c
from mt5exec.reasons import Reason
from mt5exec.terminal.v1 import worker_pb2 as pb
from mt5exec.workers import mt5_deals, mt5_market
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
from mt5exec.workers.mt5_config import WorkerConfig as WorkerConfig
from mt5exec.workers.mt5_config import load_config as load_config
from mt5exec.workers.mt5_config import read_password
from mt5exec.workers.mt5_convert import (
    account_key,
    account_proto,
    deal_proto,
    now_msc,
    order_key,
    order_proto,
    position_key,
    position_proto,
    row_value,
    worker_frame,
)
from mt5exec.workers.mt5_market import LinkWatch, symbol_proto
from mt5exec.workers.mt5_orders import DEAL_AHEAD_S, DEAL_LOOKBACK_S, DEAL_SLACK_S, OrderExecution
from mt5exec.workers.mt5_terminal import Terminal as Terminal
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

# How many times _send_state reads the state while the history keeps showing new deals.
STATE_READS = 3
# copy_ticks_from: at most this many ticks per symbol and poll.
COPY_TICKS_MAX = 5000
# What _invoke gives when the terminal was not called (no link) or the call raised.
_NOT_CALLED = object()


# -- the worker --------------------------------------------------------------------------------


class MT5Worker(OrderExecution):
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
        self._deals_path = (cfg.instance_dir or Path.cwd()) / mt5_deals.STATE_FILE
        self._deals_unsaved = False
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
        if self._deals_unsaved:
            self._save_deals()

    def _save_deals(self) -> None:
        """The deals reported so far, for the next start (``mt5_deals``), once written."""
        mark = mt5_deals.DealMark(
            self.cfg.login, self.cfg.server, self._deal_floor, self._seen_deals
        )
        self._deals_unsaved = not mt5_deals.save(self._deals_path, mark)

    def _event(self, kind: str, message: str) -> None:
        self._out.append(worker_frame(event=pb.WorkerEvent(kind=kind, message=message)))

    def _result(self, req: pb.OrderRequest, retcode: int, comment: str) -> None:
        tick = self._last_tick.get(req.symbol)
        result = pb.OrderResult(
            request_id=req.request_id, retcode=retcode, comment=comment, time_msc=now_msc()
        )
        if tick is not None:
            result.bid, result.ask = tick[0], tick[1]
        self._out.append(worker_frame(order_result=result))

    # -- state polling ------------------------------------------------------------------------

    def _init_deals(self) -> None:
        """The deals made since the last ones this instance reported (``mt5_deals``): reported
        now, before the first positions report. On a first start (no record of this account),
        the deals already in the history belong to the past: remembered, none reported."""
        mark = mt5_deals.load(self._deals_path, self.cfg.login, self.cfg.server)
        if mark is not None:
            self._deal_floor, self._seen_deals = mark.floor, mark.seen
            missed = self._new_deals()
            if missed:
                log.info("%d deal(s) made since the last start reported", len(missed))
                self._report_deals(missed)
            # None (the history not read): the next poll reads it from the same floor.
            return
        self._deals_unsaved = True
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
        self._deals_unsaved = True
        for d in deals:
            rid = request_id if order and d.order == order else 0
            if not rid and d.comment in self._unknown:
                # The deal of a request whose outcome was unknown: it did go through.
                unknown_rid, until = self._unknown[d.comment]
                if until >= now:
                    rid = unknown_rid
            self._out.append(worker_frame(deal=deal_proto(d, rid)))

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
            keys = {p.ticket: position_key(p) for p in positions}
            if force or keys != self._positions:
                self._positions = keys
                snap = pb.PositionSnapshot(positions=[position_proto(p) for p in positions])
                frames.append(worker_frame(positions=snap))
        if orders is not None:
            order_keys = {o.ticket: order_key(o) for o in orders}
            if force or order_keys != self._orders:
                if self._orders is not None:
                    self._order_updates(orders, order_keys, reported)
                self._orders = order_keys
                snap_o = pb.OrderSnapshot(orders=[order_proto(o) for o in orders])
                frames.append(worker_frame(orders=snap_o))
        self._out.extend(frames)
        if account is not None:
            key = account_key(account)
            if force or key != self._account:
                self._account = key
                self._out.append(worker_frame(account=account))

    def _order_updates(
        self, orders: Sequence[Any], keys: dict[int, tuple[Any, ...]], reported: int
    ) -> None:
        old = self._orders or {}
        for o in orders:
            if o.ticket != reported and old.get(o.ticket) != keys[o.ticket]:
                self._out.append(worker_frame(order_update=pb.OrderUpdate(order=order_proto(o))))
        for ticket in sorted(old.keys() - keys.keys() - {reported}):
            # Gone from the open orders: filled, cancelled or expired; the history says which.
            done = self._many("history_orders_get", self.mt5.history_orders_get, ticket=ticket)
            for o in done or ():
                self._out.append(worker_frame(order_update=pb.OrderUpdate(order=order_proto(o))))

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
        if positions is not None and {p.ticket: position_key(p) for p in positions} != (
            self._positions
        ):
            return True
        if orders is not None and {o.ticket: order_key(o) for o in orders} != self._orders:
            return True
        return account is not None and account_key(account) != self._account

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
                    t_msc = int(row_value(row, "time_msc"))
                    if t_msc <= since:
                        continue
                    since = t_msc
                    bid, ask = float(row_value(row, "bid")), float(row_value(row, "ask"))
                    last = float(row_value(row, "last"))
                    volume = float(row_value(row, "volume_real") or row_value(row, "volume"))
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
        return worker_frame(
            heartbeat=pb.Heartbeat(sequence=self._heartbeat_seq, time_msc=now_msc())
        )

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
