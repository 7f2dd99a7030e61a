"""The MT5 worker process over a real Unix socket, attached to the simulated terminal.

The worker is the real ``python -m mt5exec.workers.mt5`` with ``module`` set to
``mt5exec.mt5.simterminal``; the test plays the engine's side of the protocol, and the
"terminal" is a directory with ``simterminal.json`` whose account lives in the simulated broker.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import mt5exec
from mt5exec.mt5 import constants as c
from mt5exec.mt5 import simterminal
from mt5exec.sim.state import read_deals
from mt5exec.terminal.v1 import worker_pb2 as pb
from mt5exec.workers.base import ConfigError
from mt5exec.workers.mt5 import (
    MARKET_CALL_HUNG_S,
    MT5Worker,
    Terminal,
    WorkerConfig,
    load_config,
)
from mt5exec.workers.protocol import FrameReader, send_frame

PYTHON_DIR = Path(mt5exec.__file__).resolve().parent.parent
STANDINS = Path(__file__).resolve().parent / "standins"
PASSWORD = "Wkr-s3cret-Pa55"
LOGIN = 8001
SERVER = "Sim-Demo"

# The frames of a filled market order, in this order (the engine answers the client on the
# result, and the client may read positions next); the OrderSnapshot comes only when the working
# orders changed.
TRADE_KINDS = ("deal", "order_update", "positions", "account", "order_result")


def kinds(frames: list[pb.WorkerFrame]) -> list[str]:
    return [f.WhichOneof("body") or "" for f in frames]


class Engine:
    """A minimal engine: listens, starts the MT5 worker, exchanges frames with it."""

    def __init__(
        self,
        tmp_path: Path,
        config: dict[str, Any] | None = None,
        *,
        terminal: dict[str, Any] | None = None,
        password: str = PASSWORD,
        env: dict[str, str] | None = None,
        start: bool = True,
    ) -> None:
        self.tmp = tmp_path
        self.path = str(tmp_path / "w.sock")
        self.terminal_dir = tmp_path / "terminal"
        values: dict[str, Any] = {
            "login": LOGIN,
            "password": PASSWORD,
            "server": SERVER,
            "symbols": ["EURUSD", "GBPUSD", "USDJPY"],
            "tick_rate": 50,
        }
        values.update(terminal or {})
        simterminal.write_terminal_config(self.terminal_dir, **values)
        self.password_file = tmp_path / "password"
        self.password_file.write_text(password + "\n")
        cfg: dict[str, Any] = {
            "instance_id": "mt5-1",
            "module": "mt5exec.mt5.simterminal",
            "terminal_path": str(self.terminal_dir),
            "login": LOGIN,
            "server": SERVER,
            "password_file": str(self.password_file),
            "delete_password_file": True,
            "symbols": ["EURUSD", "GBPUSD"],
            "poll_interval_ms": 20,
            "broker_retry_attempts": 3,
            "broker_retry_initial_ms": 20,
        }
        cfg.update(config or {})
        self.config_path = tmp_path / "worker.json"
        self.config_path.write_text(json.dumps(cfg))
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(self.path)
        self.listener.listen(1)
        self.env = dict(os.environ)
        self.env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(PYTHON_DIR), self.env.get("PYTHONPATH", "")) if p
        )
        self.env.update(env or {})
        self.stderr_path = tmp_path / "worker.stderr"
        self.proc: subprocess.Popen[bytes] | None = None
        self.conn: socket.socket | None = None
        self.reader = FrameReader()
        self.pending: list[bytes] = []
        if start:
            self.start()

    def start(self) -> None:
        with open(self.stderr_path, "wb") as stderr:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "mt5exec.workers.mt5",
                    "--socket",
                    self.path,
                    "--config",
                    str(self.config_path),
                ],
                env=self.env,
                cwd=self.tmp,
                stderr=stderr,
                # Its own group, as the supervisor starts it: the terminal it launches joins it.
                process_group=0,
            )

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    # The timeouts are deadlines for a worker that does not answer: on a loaded machine a
    # working one may take seconds to start or to be scheduled.
    def accept(self, timeout: float = 60.0) -> None:
        self.listener.settimeout(timeout)
        self.conn, _ = self.listener.accept()

    def read(self, timeout: float = 60.0) -> pb.WorkerFrame:
        assert self.conn is not None
        deadline = time.monotonic() + timeout
        while not self.pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no frame from the worker")
            self.conn.settimeout(remaining)
            self.pending.extend(self.reader.recv_from(self.conn))
        frame = pb.WorkerFrame()
        frame.ParseFromString(self.pending.pop(0))
        return frame

    def read_until(
        self, done: str | Callable[[pb.WorkerFrame], bool], timeout: float = 60.0
    ) -> list[pb.WorkerFrame]:
        """Frames up to and including the first one ``done`` accepts (a kind or a predicate)."""
        frames = []
        deadline = time.monotonic() + timeout
        while True:
            frame = self.read(max(0.01, deadline - time.monotonic()))
            frames.append(frame)
            if (frame.WhichOneof("body") == done) if isinstance(done, str) else done(frame):
                return frames

    def send(self, **body: Any) -> None:
        assert self.conn is not None
        send_frame(self.conn, pb.EngineFrame(**body))

    def handshake(self, heartbeat_ms: int = 1000) -> pb.Hello:
        self.accept()
        hello = self.read()
        assert hello.WhichOneof("body") == "hello"
        self.send(welcome=pb.Welcome(protocol_version=1, heartbeat_interval_ms=heartbeat_ms))
        return hello.hello

    def start_state(self) -> tuple[pb.PositionSnapshot, pb.OrderSnapshot, pb.AccountSnapshot]:
        """The frames the worker sends right after Welcome."""
        frames = self.read_until("account")
        by_kind = {f.WhichOneof("body"): f for f in frames}
        return by_kind["positions"].positions, by_kind["orders"].orders, by_kind["account"].account

    def order(self, **fields: Any) -> list[pb.WorkerFrame]:
        """Send an OrderRequest; the frames up to its result, ticks and heartbeats left out."""
        self.send(order=pb.OrderRequest(**fields))
        request_id = fields["request_id"]
        frames = self.read_until(
            lambda f: (
                f.WhichOneof("body") == "order_result" and f.order_result.request_id == request_id
            )
        )
        return [f for f in frames if f.WhichOneof("body") not in ("ticks", "heartbeat")]

    def wait(self, timeout: float = 60.0) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
        if self.conn is not None:
            self.conn.close()
        self.listener.close()


@pytest.fixture
def make_engine(tmp_path: Path) -> Iterator[Callable[..., Engine]]:
    engines: list[Engine] = []

    def make(**kwargs: Any) -> Engine:
        engine = Engine(tmp_path, **kwargs)
        engines.append(engine)
        return engine

    try:
        yield make
    finally:
        for engine in engines:
            engine.close()


@pytest.fixture
def engine(make_engine: Callable[..., Engine]) -> Engine:
    eng = make_engine()
    eng.handshake()
    eng.start_state()
    return eng


def market(request_id: int, side: int = c.ORDER_TYPE_BUY, **fields: Any) -> dict[str, Any]:
    order: dict[str, Any] = {
        "request_id": request_id,
        "action": c.TRADE_ACTION_DEAL,
        "symbol": "EURUSD",
        "volume": 0.1,
        "type": side,
        "type_filling": c.ORDER_FILLING_FOK,
        "comment": f"cid-{request_id}",
        "magic": 5,
    }
    order.update(fields)
    return order


def by_kind(frames: list[pb.WorkerFrame], kind: str) -> list[pb.WorkerFrame]:
    return [f for f in frames if f.WhichOneof("body") == kind]


# -- handshake, ticks, lifecycle -------------------------------------------------------------------


def test_hello_has_the_symbols_and_the_account(make_engine: Callable[..., Engine]) -> None:
    eng = make_engine(terminal={"margin_mode": "netting", "leverage": 200})
    hello = eng.handshake()
    assert eng.proc is not None
    assert (hello.protocol_version, hello.backend, hello.instance_id) == (1, "mt5", "mt5-1")
    assert hello.pid == eng.proc.pid
    assert {"ticks", "orders"} <= set(hello.capabilities)
    assert [s.name for s in hello.symbols] == ["EURUSD", "GBPUSD"]
    eurusd = hello.symbols[0]
    assert (eurusd.digits, eurusd.point, eurusd.contract_size) == (5, 1e-5, 100_000.0)
    assert (eurusd.volume_min, eurusd.volume_max, eurusd.volume_step) == (0.01, 100.0, 0.01)
    assert (eurusd.filling_mode, eurusd.trade_mode) == (3, c.SYMBOL_TRADE_MODE_FULL)
    assert (eurusd.currency_base, eurusd.currency_profit, eurusd.currency_margin) == (
        "EUR",
        "USD",
        "EUR",
    )
    assert eurusd.tick_size == 1e-5
    assert eurusd.tick_value == pytest.approx(1.0)
    account = hello.account
    assert (account.login, account.server, account.currency) == (LOGIN, SERVER, "USD")
    assert (account.balance, account.leverage) == (10_000, 200)
    assert account.margin_mode == c.ACCOUNT_MARGIN_MODE_RETAIL_NETTING

    positions, orders, account = eng.start_state()
    assert list(positions.positions) == []
    assert list(orders.orders) == []
    assert account.login == LOGIN

    eng.send(shutdown=pb.Shutdown(reason="test"))
    assert eng.wait() == 0


def test_ticks_flow_changes_only_with_heartbeats(engine: Engine) -> None:
    last: dict[str, tuple[int, float, float]] = {}
    batches = heartbeats = 0
    seqs: list[int] = []
    deadline = time.monotonic() + 60
    while (batches < 5 or heartbeats < 2) and time.monotonic() < deadline:
        frame = engine.read()
        kind = frame.WhichOneof("body")
        if kind == "ticks":
            batches += 1
            for t in frame.ticks.ticks:
                assert t.bid < t.ask
                previous = last.get(t.symbol)
                if previous is not None:
                    # A tick the terminal did not change is not sent again. Its price may equal
                    # the last one sent: a poll under load can miss the ticks between (A, B, A).
                    assert t.time_msc > previous[0]
                last[t.symbol] = (t.time_msc, t.bid, t.ask)
        elif kind == "heartbeat":
            heartbeats += 1
            seqs.append(frame.heartbeat.sequence)
    assert batches >= 5 and heartbeats >= 2
    assert set(last) == {"EURUSD", "GBPUSD"}
    assert seqs == list(range(1, len(seqs) + 1))


def test_ticks_from_copy_ticks_from(make_engine: Callable[..., Engine]) -> None:
    eng = make_engine(config={"tick_source": "copy"}, terminal={"tick_rate": 100})
    eng.handshake()
    eng.start_state()
    times: list[int] = []
    while len(times) < 20:
        frame = eng.read()
        if frame.WhichOneof("body") == "ticks":
            times.extend(t.time_msc for t in frame.ticks.ticks if t.symbol == "EURUSD")
    assert times == sorted(times)
    assert len(set(times)) == len(times)


def test_sigterm_and_eof_end_the_worker_with_0(make_engine: Callable[..., Engine]) -> None:
    eng = make_engine()
    eng.handshake()
    eng.start_state()
    assert eng.proc is not None
    eng.proc.send_signal(signal.SIGTERM)
    assert eng.wait() == 0
    assert "exit=0" in eng.stderr


def test_eof_ends_the_worker(engine: Engine) -> None:
    assert engine.conn is not None
    engine.conn.close()
    engine.conn = None
    assert engine.wait() == 0


# -- orders ----------------------------------------------------------------------------------------


def test_market_buy_frames_in_order_and_fill_at_ask(engine: Engine) -> None:
    frames = engine.order(**market(7))
    assert tuple(kinds(frames)) == TRADE_KINDS
    deal, update, positions, account, result = frames
    res = result.order_result
    assert (res.request_id, res.retcode, res.volume) == (7, c.TRADE_RETCODE_DONE, 0.1)
    assert res.price == res.ask  # a buy fills at the ask
    assert res.bid < res.ask
    assert res.position == res.order
    d = deal.deal
    assert (d.request_id, d.ticket, d.order, d.position_id) == (7, res.deal, res.order, res.order)
    assert (d.price, d.volume, d.symbol, d.comment, d.magic) == (
        res.price,
        0.1,
        "EURUSD",
        "cid-7",
        5,
    )
    assert (d.type, d.entry, d.reason) == (c.DEAL_TYPE_BUY, c.DEAL_ENTRY_IN, c.DEAL_REASON_EXPERT)
    o = update.order_update
    assert (o.request_id, o.order.ticket, o.order.state) == (7, res.order, c.ORDER_STATE_FILLED)
    (p,) = positions.positions.positions
    assert (p.ticket, p.price_open, p.volume, p.type, p.comment) == (
        res.order,
        res.price,
        0.1,
        c.POSITION_TYPE_BUY,
        "cid-7",
    )
    assert account.account.margin > 0


def test_market_order_without_price_and_rejection(engine: Engine) -> None:
    frames = engine.order(**market(1, volume=0.015))
    assert kinds(frames) == ["order_result"]
    assert frames[0].order_result.retcode == c.TRADE_RETCODE_INVALID_VOLUME
    frames = engine.order(**market(2, volume=500.0))
    assert frames[-1].order_result.retcode == c.TRADE_RETCODE_INVALID_VOLUME


def test_check_only_answers_with_figures_and_trades_nothing(engine: Engine) -> None:
    frames = engine.order(**market(3, volume=1.0, check_only=True))
    assert kinds(frames) == ["order_result"]
    res = frames[0].order_result
    assert res.retcode == 0
    assert res.comment == "Done"
    assert res.margin == pytest.approx(1085, rel=0.05)
    assert res.margin_free == pytest.approx(res.equity - res.margin, abs=0.01)
    assert res.balance == 10_000
    engine.send(snapshot_request=pb.SnapshotRequest())
    positions = engine.read_until("positions")[-1].positions
    assert list(positions.positions) == []


def test_close_by_position_ticket_on_hedging(engine: Engine) -> None:
    first = engine.order(**market(1))[-1].order_result
    second = engine.order(**market(2, volume=0.2))[-1].order_result
    assert first.retcode == second.retcode == c.TRADE_RETCODE_DONE
    frames = engine.order(
        **market(3, side=c.ORDER_TYPE_SELL, position=first.position, comment="close-1")
    )
    assert tuple(kinds(frames)) == TRADE_KINDS
    res = frames[-1].order_result
    assert res.retcode == c.TRADE_RETCODE_DONE
    assert res.position == first.position
    assert res.price == res.bid  # a sell fills at the bid
    deal = frames[0].deal
    assert (deal.entry, deal.position_id, deal.request_id) == (
        c.DEAL_ENTRY_OUT,
        first.position,
        3,
    )
    (remaining,) = frames[2].positions.positions
    assert remaining.ticket == second.position


def test_sltp_modify(engine: Engine) -> None:
    opened = engine.order(**market(1))[-1].order_result
    sl = round(opened.bid - 0.0050, 5)
    tp = round(opened.bid + 0.0050, 5)
    frames = engine.order(
        request_id=2,
        action=c.TRADE_ACTION_SLTP,
        symbol="EURUSD",
        position=opened.position,
        sl=sl,
        tp=tp,
    )
    res = frames[-1].order_result
    assert res.retcode == c.TRADE_RETCODE_DONE, res.comment
    (position,) = by_kind(frames, "positions")[-1].positions.positions
    assert (position.ticket, position.sl, position.tp) == (opened.position, sl, tp)


def move_price(eng: Engine, symbol: str, bid: float, at: str | None = None) -> None:
    """The simulated trade server ticks at ``bid`` (simterminal's hook file): at the worker's
    next terminal call, or with ``at`` at its next call of that function."""
    move: dict[str, Any] = {"set_price": {symbol: bid}}
    if at is not None:
        move["at"] = at
    simterminal.write_hook_file(eng.terminal_dir, move)


# Where the trade server's fill lands among the worker's calls of a poll (history_deals_get,
# positions_get, orders_get, account_info): the fill of a real terminal comes at any moment, so
# its deal must still go out before or with the positions, orders and account it changed.
FILL_MOMENTS = (None, "positions_get", "orders_get", "account_info")


@pytest.mark.parametrize("at", FILL_MOMENTS)
def test_sl_hit_by_the_server_is_reported_as_a_deal(
    make_engine: Callable[..., Engine], at: str | None
) -> None:
    # No random walk: the price moves only when the test moves it.
    eng = make_engine(terminal={"tick_rate": 0})
    eng.handshake()
    eng.start_state()
    opened = eng.order(**market(1, sl=1.08000, tp=1.09000))[-1].order_result
    assert opened.retcode == c.TRADE_RETCODE_DONE, opened.comment

    move_price(eng, "EURUSD", 1.07990, at)
    frames = eng.read_until(lambda f: f.WhichOneof("body") == "account", 10.0)
    trade = [f for f in frames if f.WhichOneof("body") not in ("ticks", "heartbeat")]
    assert kinds(trade) == ["deal", "positions", "account"]
    deal = trade[0].deal
    assert deal.reason == c.DEAL_REASON_SL
    assert (deal.position_id, deal.entry, deal.type) == (
        opened.position,
        c.DEAL_ENTRY_OUT,
        c.DEAL_TYPE_SELL,
    )
    assert deal.request_id == 0  # nobody asked for it
    assert deal.price == 1.0799  # a buy closes at the bid
    assert deal.profit < 0
    assert list(trade[1].positions.positions) == []
    assert trade[2].account.balance == pytest.approx(10_000 + deal.profit)


@pytest.mark.parametrize("at", FILL_MOMENTS)
def test_pending_order_placed_modified_triggered_removed(
    make_engine: Callable[..., Engine], at: str | None
) -> None:
    eng = make_engine(terminal={"tick_rate": 0})
    eng.handshake()
    eng.start_state()
    pending: dict[str, Any] = {
        "action": c.TRADE_ACTION_PENDING,
        "symbol": "EURUSD",
        "volume": 0.1,
        "type": c.ORDER_TYPE_BUY_LIMIT,
        "type_filling": c.ORDER_FILLING_RETURN,
        "comment": "limit-1",
    }
    frames = eng.order(request_id=1, price=1.08000, **pending)
    assert kinds(frames) == ["order_update", "orders", "order_result"]
    res = frames[-1].order_result
    assert res.retcode == c.TRADE_RETCODE_PLACED
    update = frames[0].order_update
    assert (update.request_id, update.order.ticket, update.order.state) == (
        1,
        res.order,
        c.ORDER_STATE_PLACED,
    )
    (working,) = frames[1].orders.orders
    assert (working.ticket, working.price_open, working.comment) == (res.order, 1.08, "limit-1")

    frames = eng.order(
        request_id=2,
        action=c.TRADE_ACTION_MODIFY,
        order=res.order,
        price=1.08100,
        type_time=c.ORDER_TIME_GTC,
    )
    assert frames[-1].order_result.retcode == c.TRADE_RETCODE_DONE, frames[-1].order_result.comment
    (modified,) = by_kind(frames, "orders")[-1].orders.orders
    assert modified.price_open == 1.081

    # The ask falls to the limit: the server fills it.
    move_price(eng, "EURUSD", 1.08080, at)
    frames = eng.read_until(lambda f: f.WhichOneof("body") == "account", 10.0)
    trade = [f for f in frames if f.WhichOneof("body") not in ("ticks", "heartbeat")]
    assert kinds(trade) == ["deal", "order_update", "positions", "orders", "account"]
    deal = trade[0].deal
    assert (deal.order, deal.entry, deal.request_id) == (res.order, c.DEAL_ENTRY_IN, 0)
    assert deal.price <= 1.081
    assert trade[1].order_update.order.state == c.ORDER_STATE_FILLED
    assert trade[1].order_update.request_id == 0
    (position,) = trade[2].positions.positions
    assert position.volume == 0.1
    assert list(trade[3].orders.orders) == []

    frames = eng.order(request_id=3, price=1.07000, **pending)
    placed = frames[-1].order_result.order
    frames = eng.order(request_id=4, action=c.TRADE_ACTION_REMOVE, order=placed)
    assert frames[-1].order_result.retcode == c.TRADE_RETCODE_DONE
    update = by_kind(frames, "order_update")[0].order_update
    assert (update.request_id, update.order.state) == (4, c.ORDER_STATE_CANCELED)
    assert list(by_kind(frames, "orders")[-1].orders.orders) == []


def test_reconcile_finds_orders_and_deals_by_comment(engine: Engine) -> None:
    res = engine.order(**market(1, comment="key-A"))[-1].order_result
    engine.order(**market(2, comment="key-B"))
    engine.send(
        reconcile=pb.ReconcileRequest(
            request_id=9,
            comments=["key-A", "key-Z"],
            from_time_msc=int(time.time() * 1000) - 60_000,
        )
    )
    result = engine.read_until("reconcile_result")[-1].reconcile_result
    assert result.request_id == 9
    assert [(o.ticket, o.comment, o.state) for o in result.orders] == [
        (res.order, "key-A", c.ORDER_STATE_FILLED)
    ]
    assert [(d.ticket, d.order) for d in result.deals] == [(res.deal, res.order)]


# -- failures --------------------------------------------------------------------------------------


def test_ipc_failure_order_answered_unknown_then_recovered_never_sent_twice(
    engine: Engine,
) -> None:
    inject = {"n": 1, "code": c.RES_E_INTERNAL_FAIL_TIMEOUT, "functions": ["order_send"]}
    simterminal.write_hook_file(
        engine.terminal_dir,
        {**inject, "executed": True},
    )
    frames = engine.order(**market(11, comment="lost-11"))
    assert kinds(frames) == ["order_result"]
    res = frames[0].order_result
    assert res.retcode == c.TRADE_RETCODE_TIMEOUT
    assert "-10005" in res.comment

    frames = engine.read_until(
        lambda f: f.WhichOneof("body") == "positions" and len(f.positions.positions) == 1, 10.0
    )
    events = [f.event.kind for f in by_kind(frames, "event")]
    assert events == ["BROKER_DISCONNECTED", "BROKER_CONNECTED"]
    (deal,) = by_kind(frames, "deal")
    assert (deal.deal.comment, deal.deal.request_id) == ("lost-11", 11)
    assert not by_kind(frames, "order_result")

    # Working again, and the lost order was not sent a second time.
    after = engine.order(**market(12, comment="next-12"))[-1].order_result
    assert after.retcode == c.TRADE_RETCODE_DONE
    comments = [d.comment for d in read_deals(engine.terminal_dir / simterminal.STATE_NAME)]
    assert comments == ["lost-11", "next-12"]
    snapshot = by_kind(engine.order(**market(13, volume=0.01)), "positions")[-1]
    assert len(snapshot.positions.positions) == 3


def test_ipc_failure_before_the_send_answers_connection(engine: Engine) -> None:
    simterminal.write_hook_file(
        engine.terminal_dir,
        {"n": 1, "code": c.RES_E_INTERNAL_FAIL_CONNECT, "functions": ["order_check"]},
    )
    frames = engine.order(**market(21))
    # The engine hears of the lost link first, then gets the answer: not sent.
    assert kinds(frames) == ["event", "order_result"]
    assert frames[0].event.kind == "BROKER_DISCONNECTED"
    assert frames[1].order_result.retcode == c.TRADE_RETCODE_CONNECTION
    frames = engine.read_until("event")
    assert frames[-1].event.kind == "BROKER_CONNECTED"
    assert engine.order(**market(22))[-1].order_result.retcode == c.TRADE_RETCODE_DONE
    assert [d.comment for d in read_deals(engine.terminal_dir / simterminal.STATE_NAME)] == [
        "cid-22"
    ]


def test_terminal_lost_for_good_exits_6(make_engine: Callable[..., Engine]) -> None:
    # Attempts at 0, 0.3 s and 0.9 s: time enough for an order to arrive in between.
    engine = make_engine(config={"broker_retry_initial_ms": 300})
    engine.handshake()
    engine.start_state()
    # Every later initialize fails too: the worker gives up after broker_retry_attempts.
    simterminal.write_hook_file(
        engine.terminal_dir,
        [
            {"n": 1, "code": c.RES_E_INTERNAL_FAIL_TIMEOUT, "functions": ["account_info"]},
            {"n": 10, "code": c.RES_E_INTERNAL_FAIL_INIT, "functions": ["initialize"]},
        ],
    )
    frames = engine.read_until("event", 10.0)
    assert frames[-1].event.kind == "BROKER_DISCONNECTED"
    res = engine.order(**market(31))[-1].order_result
    assert res.retcode == c.TRADE_RETCODE_CONNECTION
    assert engine.wait() == 6
    assert engine.stderr.count("attaching again failed") == 2
    assert "terminal lost: 3 attempts to attach again failed" in engine.stderr


def test_wrong_password_login_failed_after_retries(make_engine: Callable[..., Engine]) -> None:
    eng = make_engine(password="not-the-password", config={"broker_retry_initial_ms": 200})
    assert eng.proc is not None
    deadline = time.monotonic() + 60
    while "attempt 1 of 3" not in eng.stderr and time.monotonic() < deadline:
        time.sleep(0.01)
    # Retrying: the password is in the worker's memory, not on its command line.
    cmdline = Path(f"/proc/{eng.proc.pid}/cmdline").read_bytes()
    assert b"not-the-password" not in cmdline
    eng.accept()
    # Said instead of Hello: the engine fails the instance at once.
    event = eng.read().event
    assert event.kind == "LOGIN_FAILED"
    assert "Authorization failed" in event.message
    assert eng.wait() == 5
    stderr = eng.stderr
    assert stderr.count("initialize failed (attempt") == 3
    assert "not-the-password" not in stderr
    assert not eng.password_file.exists()


def test_the_password_stays_out_of_cmdline_environ_and_logs(
    make_engine: Callable[..., Engine],
) -> None:
    eng = make_engine()
    eng.handshake()
    eng.start_state()
    assert eng.proc is not None
    for what in ("cmdline", "environ"):
        assert PASSWORD.encode() not in Path(f"/proc/{eng.proc.pid}/{what}").read_bytes()
    assert not eng.password_file.exists()  # delete_password_file
    eng.order(**market(1))
    eng.send(shutdown=pb.Shutdown(reason="test"))
    assert eng.wait() == 0
    assert PASSWORD not in eng.stderr
    assert "mt5 worker started" in eng.stderr


def test_faults(engine: Engine) -> None:
    engine.send(fault=pb.FaultInjection(reject_next=1))
    assert engine.order(**market(1))[-1].order_result.retcode == c.TRADE_RETCODE_REJECT
    assert engine.order(**market(2))[-1].order_result.retcode == c.TRADE_RETCODE_DONE
    engine.send(fault=pb.FaultInjection(crash=True))
    assert engine.wait() == 70


# -- config and pieces -----------------------------------------------------------------------------


def test_config_errors(tmp_path: Path) -> None:
    path = tmp_path / "w.json"
    for bad in (
        {"poll_interval_ms": 0},
        {"symbols": "EURUSD"},
        {"tick_source": "bars"},
        {"login": "123"},
        {"login": -1},
        {"wine": [""]},
        {"module": ""},
        {"terminal_base": "/opt/mt5"},
    ):
        path.write_text(json.dumps(bad))
        with pytest.raises(ConfigError, match=str(path)):
            load_config(path)
    path.write_text(json.dumps({"instance_id": "x", "extra": 1, "symbols": ["A", "A", "B"]}))
    cfg = load_config(path, "y")
    assert (cfg.instance_id, cfg.symbols, cfg.module) == ("y", ["A", "B"], "MetaTrader5")
    # What the engine writes for an account without login/server, or a terminal without Wine.
    path.write_text(json.dumps({"login": 0, "server": "", "terminal_path": "", "wine": []}))
    cfg = load_config(path)
    assert (cfg.login, cfg.server, cfg.terminal_path, cfg.wine) == (None, None, None, None)


def test_missing_password_file_attaches_with_saved_credentials(
    make_engine: Callable[..., Engine],
) -> None:
    eng = make_engine(start=False)
    eng.password_file.unlink()
    eng.start()
    hello = eng.handshake()
    assert hello.account.login == LOGIN
    eng.send(shutdown=pb.Shutdown(reason="test"))
    assert eng.wait() == 0
    assert "does not exist: attaching without a password" in eng.stderr


def test_bad_config_exits_2(make_engine: Callable[..., Engine]) -> None:
    eng = make_engine(config={"module": "no.such.module"})
    assert eng.wait() == 2
    assert "no.such.module" in eng.stderr


def test_filling_falls_back_to_what_the_symbol_allows(tmp_path: Path) -> None:
    a, b = socket.socketpair()
    with a, b:
        worker = MT5Worker(a, Terminal(simterminal, WorkerConfig(), None), WorkerConfig())
        worker.infos["IOC"] = pb.SymbolInfo(name="IOC", filling_mode=2)
        worker.infos["NONE"] = pb.SymbolInfo(name="NONE", filling_mode=0)
        worker.infos["ALL"] = pb.SymbolInfo(name="ALL", filling_mode=7)

        def fill(symbol: str, filling: int, action: int = c.TRADE_ACTION_DEAL) -> int:
            return worker._filling(
                pb.OrderRequest(action=action, symbol=symbol, type_filling=filling)
            )

        assert fill("IOC", c.ORDER_FILLING_FOK) == c.ORDER_FILLING_IOC
        assert fill("IOC", c.ORDER_FILLING_IOC) == c.ORDER_FILLING_IOC
        assert fill("NONE", c.ORDER_FILLING_FOK) == c.ORDER_FILLING_RETURN
        assert fill("NONE", c.ORDER_FILLING_BOC) == c.ORDER_FILLING_BOC
        assert fill("ALL", c.ORDER_FILLING_FOK) == c.ORDER_FILLING_FOK
        assert fill("IOC", c.ORDER_FILLING_RETURN) == c.ORDER_FILLING_RETURN
        assert fill("IOC", c.ORDER_FILLING_FOK, c.TRADE_ACTION_SLTP) == c.ORDER_FILLING_FOK


def test_refused_filling_types_are_retried_but_never_boc() -> None:
    """A terminal whose symbol flags lie: order_check decides (a stand-in for the external
    MetaTrader5 package that refuses every filling type but RETURN)."""

    class Fussy:
        def __init__(self) -> None:
            self.checked: list[int] = []

        def order_check(self, request: dict[str, Any]) -> Any:
            self.checked.append(request["type_filling"])
            ok = request["type_filling"] == c.ORDER_FILLING_RETURN
            return SimpleNamespace(retcode=0 if ok else c.TRADE_RETCODE_INVALID_FILL, comment="")

        def last_error(self) -> tuple[int, str]:
            return (c.RES_S_OK, "Success")

    fussy = Fussy()
    a, b = socket.socketpair()
    with a, b:
        worker = MT5Worker(a, Terminal(fussy, WorkerConfig(), None), WorkerConfig())
        req = pb.OrderRequest(action=c.TRADE_ACTION_DEAL, symbol="X", type_filling=0)
        request = {"type_filling": c.ORDER_FILLING_FOK}
        assert worker._check(req, request).retcode == 0
        assert fussy.checked == [c.ORDER_FILLING_FOK, c.ORDER_FILLING_IOC, c.ORDER_FILLING_RETURN]
        assert request["type_filling"] == c.ORDER_FILLING_RETURN
        fussy.checked.clear()
        boc = pb.OrderRequest(action=c.TRADE_ACTION_DEAL, symbol="X", type_filling=3)
        check = worker._check(boc, {"type_filling": c.ORDER_FILLING_BOC})
        assert check.retcode == c.TRADE_RETCODE_INVALID_FILL
        assert fussy.checked == [c.ORDER_FILLING_BOC]


def test_filling_detected_end_to_end(make_engine: Callable[..., Engine]) -> None:
    # EURUSD allows IOC only; GBPUSD is on exchange execution (RETURN for market orders) but
    # claims no flags at all: the terminal's answer to order_check decides.
    eng = make_engine(
        terminal={
            "symbol_settings": {
                "EURUSD": {"filling_mode": 2},
                "GBPUSD": {"filling_mode": 0, "execution": "exchange"},
            }
        }
    )
    hello = eng.handshake()
    assert [s.filling_mode for s in hello.symbols] == [2, 0]
    eng.start_state()
    res = eng.order(**market(1, type_filling=c.ORDER_FILLING_FOK))[-1].order_result
    assert res.retcode == c.TRADE_RETCODE_DONE, res.comment
    res = eng.order(**market(2, symbol="GBPUSD"))[-1].order_result
    assert res.retcode == c.TRADE_RETCODE_DONE, res.comment
    # BOC is never swapped for another type: refused.
    res = eng.order(**market(3, type_filling=c.ORDER_FILLING_BOC))[-1].order_result
    assert res.retcode == c.TRADE_RETCODE_INVALID_FILL
    eng.send(
        reconcile=pb.ReconcileRequest(request_id=9, comments=["cid-1", "cid-2"], from_time_msc=0)
    )
    orders = eng.read_until("reconcile_result")[-1].reconcile_result.orders
    assert [(o.comment, o.type_filling) for o in orders] == [
        ("cid-1", c.ORDER_FILLING_IOC),
        ("cid-2", c.ORDER_FILLING_RETURN),
    ]


# -- a terminal the worker starts itself -----------------------------------------------------------


def install_fake_terminal(base: Path) -> None:
    base.mkdir(parents=True)
    exe = base / "terminal64.exe"
    exe.write_text(
        f"#!{sys.executable}\n"
        "import runpy, sys\n"
        "sys.argv[0] = 'terminal64.exe'\n"
        f"runpy.run_path({str(STANDINS / 'fake_terminal.py')!r}, run_name='__main__')\n"
    )
    exe.chmod(0o755)


def test_bootstrap_launches_the_terminal_and_scrubs_the_password(
    tmp_path: Path, make_engine: Callable[..., Engine]
) -> None:
    base = tmp_path / "base"
    install_fake_terminal(base)
    instance = tmp_path / "instance"
    record = tmp_path / "terminal-record.json"
    wine_record = tmp_path / "wine-record.json"
    # The simulated terminal lives where the worker will put the real one.
    simterminal.write_terminal_config(
        instance / "terminal",
        login=LOGIN,
        password=PASSWORD,
        server=SERVER,
        symbols=["EURUSD"],
    )
    eng = make_engine(
        config={
            # As the server writes it: the terminal's folder, inside the instance directory.
            "terminal_path": str(instance / "terminal"),
            "terminal_base": str(base),
            "instance_dir": str(instance),
            "wine": [sys.executable, str(STANDINS / "fake_wine.py")],
            "symbols": ["EURUSD"],
        },
        env={"FAKE_TERMINAL_RECORD": str(record), "FAKE_WINE_RECORD": str(wine_record)},
        start=False,
    )
    (eng.tmp / "terminal").rename(eng.tmp / "unused-terminal")  # not the one in use
    eng.start()
    hello = eng.handshake()
    assert [s.name for s in hello.symbols] == ["EURUSD"]
    eng.start_state()
    deadline = time.monotonic() + 60
    while not record.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    launched = json.loads(record.read_text())
    assert "/portable" in launched["argv"]
    assert any(a.startswith("/config:Z:") for a in launched["argv"])
    # (Whether the stand-in read the ini before the scrub is a race with the simulated login,
    # which does not wait for the terminal as a real one does: not asserted.)
    assert f"Login={LOGIN}" in launched["ini"]
    assert Path(launched["cwd"]) == instance / "terminal"
    assert os.getpgid(launched["pid"]) == eng.proc.pid  # type: ignore[union-attr]
    ini = (instance / "terminal" / "mt5exec-start.ini").read_bytes().decode("utf-16")
    assert f"Login={LOGIN}" in ini
    assert "Password" not in ini  # scrubbed once the login succeeded
    assert PASSWORD not in json.loads(wine_record.read_text())

    eng.send(shutdown=pb.Shutdown(reason="test"))
    assert eng.wait() == 0
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            os.kill(launched["pid"], 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        pytest.fail("the terminal outlived the worker")
    assert PASSWORD not in eng.stderr


def _book_request(engine: Engine, request_id: int, symbol: str = "EURUSD") -> pb.MarketAnswer:
    engine.send(
        market_request=pb.MarketRequest(request_id=request_id, book=pb.BookQuery(symbol=symbol))
    )
    frames = engine.read_until(
        lambda f: (
            f.WhichOneof("body") == "market_answer" and f.market_answer.request_id == request_id
        )
    )
    return frames[-1].market_answer


def _is_book(frame: pb.WorkerFrame) -> bool:
    return frame.WhichOneof("body") == "book" and frame.book.symbol == "EURUSD"


def test_books_added_again_after_the_terminal_is_attached_again(engine: Engine) -> None:
    assert _book_request(engine, 41).code == 0
    engine.read_until(_is_book)
    simterminal.write_hook_file(
        engine.terminal_dir,
        {"n": 1, "code": c.RES_E_INTERNAL_FAIL_CONNECT, "functions": ["order_check"]},
    )
    assert engine.order(**market(42))[-1].order_result.retcode == c.TRADE_RETCODE_CONNECTION
    engine.read_until(
        lambda f: f.WhichOneof("body") == "event" and f.event.kind == "BROKER_CONNECTED"
    )
    # The books went with the old session: the worker adds them again and sends them again.
    engine.read_until(_is_book)
    assert "keeps failing for a book" not in engine.stderr


def test_a_book_asked_while_disconnected_is_unavailable(make_engine: Callable[..., Engine]) -> None:
    # The first attempt to attach again fails; the next is a minute away.
    engine = make_engine(
        config={
            "broker_retry_initial_ms": 60_000,
            "broker_retry_max_ms": 60_000,
            "broker_retry_attempts": 5,
        }
    )
    engine.handshake()
    engine.start_state()
    simterminal.write_hook_file(
        engine.terminal_dir,
        [
            {"n": 1, "code": c.RES_E_INTERNAL_FAIL_CONNECT, "functions": ["order_check"]},
            {"n": 10, "code": c.RES_E_INTERNAL_FAIL_INIT, "functions": ["initialize"]},
        ],
    )
    assert engine.order(**market(51))[-1].order_result.retcode == c.TRADE_RETCODE_CONNECTION
    answer = _book_request(engine, 52)
    # A known symbol: not NOT_FOUND from a stale last_error, but the link that is down.
    assert (answer.code, answer.reason) == (14, "BROKER_DISCONNECTED")  # UNAVAILABLE


def test_a_hung_terminal_call_makes_the_worker_exit(engine: Engine) -> None:
    # copy_rates_from_pos never returns: the worker heartbeats while it waits, but not for
    # ever (MARKET_CALL_HUNG_S), then exits for the engine to replace it.
    simterminal.write_hook_file(
        engine.terminal_dir, {"hang": True, "functions": ["copy_rates_from_pos"]}
    )
    rates = pb.RatesQuery(symbol="EURUSD", timeframe=1, from_pos=True, count=10)
    engine.send(market_request=pb.MarketRequest(request_id=61, rates=rates))
    assert engine.wait(timeout=MARKET_CALL_HUNG_S + 120) == 6
    assert "terminal call hung: rates answer still running" in engine.stderr
