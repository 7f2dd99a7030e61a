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
A market order filled at once has no OrderUpdate: its result says all of it.
Changes the broker makes on its own go out the same way without an OrderResult, followed by
their WorkerEvents.

Config: a JSON object (``mt5exec.workers.sim_config``); every key is optional, the defaults
keep a plain always-open market.

The account lives in state files (``mt5exec.sim.state``) at ``--state``, else the config's
``state_path``, else ``./sim_state`` in the working directory (the server starts each worker in
its instance's directory); ``none`` turns persistence off. A restarted worker, even after
``kill -9``, carries on with the same account, working orders and order history: every change
is journaled before anything about it is sent (its OrderResult, or for a triggered fill its
DealReport). Snapshots are written at start, every ``CHECKPOINT_EVERY`` changes (after the
results went out) and on an orderly exit; prices are saved about once a second. A
reconciliation request searches the journal (about one memory scan of it per comment), which
compaction bounds: to the history of the config's retention, beside the account.

Fault injection (``mt5exec.sim.faults``, docs/simulated-broker.md#fault-injection): the faults
of ``FaultInjection`` frames, and from the start those of the environment (``MT5EXEC_SIM_*``:
exit at start, die right after a triggered fill is journaled, answer every order late) and the
``broker_outage`` file in the working directory.

Exit codes: 0 normal stop; 1 unexpected error; 2 bad command line or config, or unusable state
files; 3 could not connect or the handshake failed; 4 the engine broke the protocol; 70
``crash`` fault.

One thread and a ``poll`` loop (no asyncio): the loop sleeps exactly until the next tick,
heartbeat, delayed order, order expiration or session change is due, which keeps both latency
and idle CPU low. Margin (stop-out, margin call) is checked after every tick batch while
positions are open; the engine's clock in ticks and heartbeats is the server's clock.
"""

from __future__ import annotations

import argparse
import collections
import logging
import math
import os
import select
import signal
import socket
import struct
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from google.protobuf.message import Message

from mt5exec.reasons import Reason
from mt5exec.sim import book as sim_book
from mt5exec.sim import market
from mt5exec.sim.broker import Activity, SendOutcome, SimBroker
from mt5exec.sim.constants import TRADE_RETCODE_CONNECTION
from mt5exec.sim.faults import ENV_EXIT_AT_START, StartFaults
from mt5exec.sim.link import DEFAULT_RELOGIN_AFTER_S, BrokerLink
from mt5exec.sim.state import StateError
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
from mt5exec.workers.sim_config import DEFAULT_BATCH_INTERVAL_S, DEFAULT_STATE_PATH, STATE_NONE
from mt5exec.workers.sim_config import TICK_BATCH_MS_RANGE as TICK_BATCH_MS_RANGE
from mt5exec.workers.sim_config import WorkerConfig as WorkerConfig
from mt5exec.workers.sim_config import load_config as load_config
from mt5exec.workers.sim_config import state_path as state_path

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
# After a stall (blocked write, slow host) at most this much backlog of ticks is replayed; the
# rest is skipped, as a live feed would after a hiccup.
MAX_TICK_BACKLOG_S = 0.1
# Prices are saved this often while they move, so that a crash does not rewind the walk far.
PRICE_SAVE_INTERVAL_S = 1.0
# Pieces handed to one sendmsg; Linux refuses more than 1024 (IOV_MAX).
_MAX_IOV = 512


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
        # select.poll on the one socket: what selectors.DefaultSelector does, without its
        # bookkeeping (~2 µs of every wake-up, an order's or a tick's).
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        poll = poller.poll
        ceil = math.ceil
        reader = self._reader
        broker = self.broker
        period = self._tick_period
        now = time.monotonic()
        self._next_tick = now
        self._next_heartbeat = now + self._heartbeat_s
        batch_interval = self._batch_interval
        last_batch = now - batch_interval
        persist = broker.journal is not None
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
            # Milliseconds rounded up, as selectors does: never wake before the deadline.
            if poll(ceil(timeout * 1000.0) if timeout > 0 else 0):
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
