"""The sim worker process over a real Unix socket, playing the engine's side of the protocol."""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from tests.worker_link import WorkerLink

import mt5exec
from mt5exec.sim.state import Retention, StateStore, read_deals
from mt5exec.terminal.v1 import worker_pb2 as pb
from mt5exec.workers.protocol import (
    MAX_FRAME_SIZE,
    ConnectionClosed,
    FrameError,
    FrameReader,
    encode_field_frame,
    encode_frame,
    send_frame,
)
from mt5exec.workers.sim_config import ConfigError, load_config

# The directory that holds the mt5exec package, so the child imports the same code.
PYTHON_DIR = Path(mt5exec.__file__).resolve().parent.parent


class Engine(WorkerLink):
    """A minimal engine: accepts one worker connection and exchanges frames with it."""

    def __init__(
        self,
        tmp_path: Path,
        config: dict[str, Any] | None = None,
        *,
        args: Sequence[str] = (),
        socket_name: str = "w.sock",
    ) -> None:
        # The worker runs in tmp_path, as the server runs it in the instance's directory: the
        # default state files (./sim_state*) land there.
        self.cwd = tmp_path
        self.path = str(tmp_path / socket_name)
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(self.path)
        self.listener.listen(1)
        cfg: dict[str, Any] = {
            "instance_id": "inst-1",
            "symbols": ["EURUSD", "GBPUSD"],
            "tick_rate": 20.0,
        }
        cfg.update(config or {})
        cfg_path = tmp_path / "worker.json"
        cfg_path.write_text(json.dumps(cfg))
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(PYTHON_DIR), env.get("PYTHONPATH", "")) if p
        )
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mt5exec.workers.sim",
                "--socket",
                self.path,
                "--config",
                str(cfg_path),
                *args,
            ],
            env=env,
            cwd=tmp_path,
            stderr=subprocess.PIPE,
        )
        super().__init__()

    # The timeouts are deadlines for a worker that does not answer: on a loaded machine a
    # working one may take seconds to start or to be scheduled.
    def accept(self) -> None:
        self.listener.settimeout(60.0)
        self.conn, _ = self.listener.accept()
        self.conn.settimeout(60.0)

    def drain(self, timeout: float = 60.0) -> None:
        """Read frames until the worker closes the connection (or the timeout passes)."""
        while True:
            self.read(timeout)

    def handshake(self, heartbeat_ms: int = 1000) -> pb.Hello:
        self.accept()
        hello = self.read()
        assert hello.WhichOneof("body") == "hello"
        self.send(welcome=pb.Welcome(protocol_version=1, heartbeat_interval_ms=heartbeat_ms))
        return hello.hello

    def wait(self, timeout: float = 60.0) -> int:
        return self.proc.wait(timeout)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        if self.proc.stderr is not None:
            self.proc.stderr.close()
        if self.conn is not None:
            self.conn.close()
        self.listener.close()


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    eng = Engine(tmp_path)
    try:
        yield eng
    finally:
        eng.close()


def _kinds(frames: list[pb.WorkerFrame]) -> list[str]:
    return [f.WhichOneof("body") or "" for f in frames]


# -- framing -------------------------------------------------------------------------------------


def test_frame_reader_reassembles_split_and_merged_frames() -> None:
    frames = [encode_frame(pb.Heartbeat(sequence=i, time_msc=i * 1000)) for i in range(1, 50)]
    data = b"".join(frames)
    reader = FrameReader()
    got: list[bytes] = []
    for i in range(0, len(data), 7):
        got.extend(reader.feed(data[i : i + 7]))
    assert got == [f[4:] for f in frames]
    assert reader.pending == 0
    assert reader.feed(data) == [f[4:] for f in frames]


def test_field_frame_equals_wrapped_message() -> None:
    snap = pb.PositionSnapshot(positions=[pb.Position(ticket=i, comment="x" * i) for i in range(9)])
    wrapped = encode_frame(pb.WorkerFrame(positions=snap))
    fast = encode_field_frame(pb.WorkerFrame.POSITIONS_FIELD_NUMBER, snap.SerializeToString())
    assert fast == wrapped


def test_frame_reader_refuses_oversized_frames() -> None:
    with pytest.raises(FrameError):
        FrameReader().feed(struct.pack(">I", MAX_FRAME_SIZE + 1))


def test_frame_reader_reports_eof() -> None:
    a, b = socket.socketpair()
    with a, b:
        a.close()
        with pytest.raises(ConnectionClosed):
            FrameReader().recv_from(b)


# -- the worker process --------------------------------------------------------------------------


def test_hello_ticks_order_and_shutdown(engine: Engine) -> None:
    hello = engine.handshake(heartbeat_ms=100)
    assert (hello.protocol_version, hello.backend, hello.instance_id) == (1, "sim", "inst-1")
    assert hello.pid == engine.proc.pid
    assert set(hello.capabilities) >= {"ticks", "orders", "faults", "pending_orders"}
    assert [s.name for s in hello.symbols] == ["EURUSD", "GBPUSD"]
    assert hello.account.balance == 10_000

    last_time: dict[str, int] = {}
    last_ask = 0.0
    batches = heartbeats = 0
    seqs: list[int] = []
    while batches < 6 or heartbeats < 2:
        frame = engine.read()
        kind = frame.WhichOneof("body")
        if kind == "ticks":
            batches += 1
            for t in frame.ticks.ticks:
                assert t.bid < t.ask
                assert t.time_msc > last_time.get(t.symbol, 0)
                last_time[t.symbol] = t.time_msc
                if t.symbol == "EURUSD":
                    last_ask = t.ask
        elif kind == "heartbeat":
            heartbeats += 1
            seqs.append(frame.heartbeat.sequence)
    assert set(last_time) == {"EURUSD", "GBPUSD"}
    assert seqs == sorted(seqs)
    assert seqs[0] == 1

    engine.send(order=pb.OrderRequest(request_id=7, action=1, symbol="EURUSD", volume=0.1, type=0))
    frames = engine.read_until("order_result")
    for f in frames:
        if f.WhichOneof("body") == "ticks":
            for t in f.ticks.ticks:
                if t.symbol == "EURUSD":
                    last_ask = t.ask
    trade = [f for f in frames if f.WhichOneof("body") not in ("ticks", "heartbeat")]
    # No OrderUpdate: the result says all of an order filled at once.
    assert _kinds(trade) == ["deal", "positions", "account", "order_result"]
    deal, positions, account, result = trade
    res = result.order_result
    assert (res.request_id, res.retcode, res.volume) == (7, 10009, 0.1)
    assert res.price == last_ask
    assert deal.deal.price == res.price
    assert (deal.deal.request_id, deal.deal.order) == (7, res.order)
    assert [p.ticket for p in positions.positions.positions] == [res.position]
    assert account.account.margin > 0

    engine.send(shutdown=pb.Shutdown(reason="test"))
    assert engine.wait() == 0


def _tick_frames(tmp_path: Path, batch_ms: float, frames: int) -> tuple[list[int], list[int]]:
    """(ticks per TickBatch, ms between batches) of a 1,000 ticks/s worker, from the time it
    stamps on a batch's ticks; the first batch (what was due since the start) left out."""
    eng = Engine(tmp_path, {"symbols": ["EURUSD"], "tick_rate": 1000, "tick_batch_ms": batch_ms})
    try:
        eng.handshake()
        sizes, stamps = [], []
        while len(sizes) < frames:
            frame = eng.read()
            if frame.WhichOneof("body") == "ticks":
                sizes.append(len(frame.ticks.ticks))
                stamps.append(frame.ticks.ticks[0].time_msc)
    finally:
        eng.close()
    return sizes[1:], [b - a for a, b in pairwise(stamps)]


def test_tick_batch_ms_spaces_the_batches(tmp_path: Path) -> None:
    (tmp_path / "slow").mkdir()
    (tmp_path / "fast").mkdir()
    sizes, gaps = _tick_frames(tmp_path / "slow", 40.0, 6)
    assert min(gaps) >= 39  # whole ms
    # The ticks due since the last batch (40 ms: 40 at 1,000 ticks/s, however late the
    # batch), never more than MAX_TICK_BACKLOG_S' 100.
    assert all(35 <= size <= 100 for size in sizes), sizes
    fast_sizes, fast_gaps = _tick_frames(tmp_path / "fast", 0.5, 60)
    assert min(fast_gaps) < 39
    assert min(fast_sizes) < 35


def test_fill_price_is_the_latest_tick_seen(engine: Engine) -> None:
    engine.handshake()
    # Wait for a tick so there is a price to compare with, then trade right after it.
    latest: float | None = None
    while latest is None:
        frame = engine.read()
        if frame.WhichOneof("body") == "ticks":
            latest = [t.ask for t in frame.ticks.ticks if t.symbol == "EURUSD"][-1]
    engine.send(order=pb.OrderRequest(request_id=1, action=1, symbol="EURUSD", volume=0.1, type=0))
    for f in engine.read_until("order_result"):
        if f.WhichOneof("body") == "ticks":
            latest = [t.ask for t in f.ticks.ticks if t.symbol == "EURUSD"][-1]
        elif f.WhichOneof("body") == "order_result":
            assert f.order_result.price == latest


def test_worker_exits_when_engine_closes_the_socket(engine: Engine) -> None:
    engine.handshake()
    engine.read()
    assert engine.conn is not None
    engine.conn.close()
    engine.conn = None
    assert engine.wait() == 0


def test_crash_fault_exits_70(engine: Engine) -> None:
    engine.handshake()
    engine.send(fault=pb.FaultInjection(crash=True))
    assert engine.wait() == 70


def test_disconnect_fault_closes_and_exits_0(engine: Engine) -> None:
    engine.handshake()
    engine.send(fault=pb.FaultInjection(disconnect=True))
    assert engine.wait() == 0
    with pytest.raises(ConnectionClosed):
        engine.drain()


def test_sigterm_exits_0(engine: Engine) -> None:
    engine.handshake()
    engine.read()
    engine.proc.send_signal(signal.SIGTERM)
    assert engine.wait() == 0


def test_first_frame_not_welcome_exits_3(engine: Engine) -> None:
    engine.accept()
    assert engine.read().WhichOneof("body") == "hello"
    engine.send(shutdown=pb.Shutdown(reason="no welcome"))
    assert engine.wait() == 3


def test_close_before_welcome_exits_3(engine: Engine) -> None:
    engine.accept()
    engine.read()
    assert engine.conn is not None
    engine.conn.close()
    engine.conn = None
    assert engine.wait() == 3


def test_reject_delay_and_snapshot_request(engine: Engine) -> None:
    engine.handshake()
    engine.send(fault=pb.FaultInjection(reject_next=1))
    engine.send(order=pb.OrderRequest(request_id=1, action=1, symbol="EURUSD", volume=0.1, type=0))
    frames = engine.read_until("order_result")
    assert "deal" not in _kinds(frames)
    assert frames[-1].order_result.retcode == 10006

    engine.send(fault=pb.FaultInjection(delay_ms=300))
    sent = time.monotonic()
    engine.send(order=pb.OrderRequest(request_id=2, action=1, symbol="EURUSD", volume=0.1, type=0))
    frames = engine.read_until("order_result")
    assert time.monotonic() - sent >= 0.29
    assert frames[-1].order_result.retcode == 10009
    assert "ticks" in _kinds(frames)  # the delay does not stop the price feed

    engine.send(fault=pb.FaultInjection())  # clears the delay
    engine.send(snapshot_request=pb.SnapshotRequest())
    frames = engine.read_until("account")
    trade = [f for f in frames if f.WhichOneof("body") not in ("ticks", "heartbeat")]
    assert _kinds(trade) == ["positions", "orders", "account"]
    assert len(trade[0].positions.positions) == 1
    assert not trade[1].orders.orders


def test_freeze_fault_silences_the_worker(engine: Engine) -> None:
    engine.handshake(heartbeat_ms=50)
    # The worker stamps its heartbeats (every 50 ms) with its clock: the freeze is a gap of
    # 400 ms between two of them, from one before it to the next 2 s of the worker's time.
    beats = [engine.read_until("heartbeat")[-1].heartbeat.time_msc]
    engine.send(fault=pb.FaultInjection(freeze_ms=400))
    while beats[-1] - beats[0] < 2000:
        frame = engine.read()
        if frame.WhichOneof("body") == "heartbeat":
            beats.append(frame.heartbeat.time_msc)
    assert max(b - a for a, b in pairwise(beats)) >= 399


def test_bad_config_exits_2(tmp_path: Path) -> None:
    eng = Engine(tmp_path, {"symbols": ["NOPE"]})
    try:
        assert eng.wait() == 2
        assert eng.proc.stderr is not None
        assert b"NOPE" in eng.proc.stderr.read()
    finally:
        eng.close()


def test_equity_updates_while_positions_are_open(tmp_path: Path) -> None:
    eng = Engine(tmp_path, {"symbols": ["XAUUSD"], "tick_rate": 200.0})
    try:
        eng.handshake()
        eng.send(order=pb.OrderRequest(request_id=1, action=1, symbol="XAUUSD", volume=1, type=0))
        eng.read_until("order_result")
        accounts: list[pb.AccountSnapshot] = []
        while len(accounts) < 2:
            frame = eng.read()
            if frame.WhichOneof("body") == "account":
                accounts.append(frame.account)
        # Rate limited to one per 250 ms (of the worker's clock, which stamps them).
        assert accounts[1].time_msc - accounts[0].time_msc >= 249
        assert accounts[0].margin > 0
    finally:
        eng.close()


# -- durable state across worker restarts ----------------------------------------------------------


def _order(request_id: int, symbol: str = "EURUSD", **kw: Any) -> pb.OrderRequest:
    kw.setdefault("volume", 0.1)
    kw.setdefault("type", 0)
    return pb.OrderRequest(request_id=request_id, action=1, symbol=symbol, **kw)


def _start(
    tmp_path: Path, config: dict[str, Any], socket_name: str, *args: str
) -> tuple[Engine, pb.Hello, pb.PositionSnapshot]:
    """A worker after its handshake, with the PositionSnapshot that must follow Welcome (and
    the OrderSnapshot after it)."""
    eng = Engine(tmp_path, config, args=args, socket_name=socket_name)
    hello = eng.handshake()
    first = eng.read()
    assert first.WhichOneof("body") == "positions"
    assert eng.read().WhichOneof("body") == "orders"
    return eng, hello, first.positions


def _without_time(account: pb.AccountSnapshot) -> pb.AccountSnapshot:
    copy = pb.AccountSnapshot()
    copy.CopyFrom(account)
    copy.time_msc = 0
    return copy


def _kill(eng: Engine) -> None:
    os.kill(eng.proc.pid, signal.SIGKILL)
    assert eng.wait() == -signal.SIGKILL
    eng.close()


def test_kill_right_after_order_result_loses_nothing(tmp_path: Path) -> None:
    # No ticks: prices stay put, so the restored account must equal the acknowledged one.
    config: dict[str, Any] = {"symbols": ["EURUSD", "XAUUSD"], "tick_rate": 0}
    eng, hello, positions = _start(tmp_path, config, "a.sock")
    assert not positions.positions
    orders = [
        _order(1, magic=11, comment="first", sl=1.0, tp=1.2),
        _order(2, "XAUUSD", volume=0.05, type=1, comment="gold"),
        _order(3, volume=0.3, comment="third"),
    ]
    results: list[pb.OrderResult] = []
    last_positions = last_account = None
    for order in orders:
        eng.send(order=order)
        for f in eng.read_until("order_result"):
            kind = f.WhichOneof("body")
            if kind == "positions":
                last_positions = f.positions
            elif kind == "account":
                last_account = f.account
            elif kind == "order_result":
                assert f.order_result.retcode == 10009
                results.append(f.order_result)
    # A partial close and a full close (realized profit moves the balance).
    for order in (
        _order(4, volume=0.1, type=1, position=results[2].position),
        _order(5, type=1, position=results[0].position),
    ):
        eng.send(order=order)
        for f in eng.read_until("order_result"):
            kind = f.WhichOneof("body")
            if kind == "positions":
                last_positions = f.positions
            elif kind == "account":
                last_account = f.account
            elif kind == "order_result":
                results.append(f.order_result)
    _kill(eng)  # right after the last OrderResult
    assert last_positions is not None
    assert last_account is not None
    assert last_account.balance != hello.account.balance
    assert [p.volume for p in last_positions.positions] == [0.05, pytest.approx(0.2)]

    eng2, hello2, restored = _start(tmp_path, config, "b.sock")
    try:
        assert _without_time(hello2.account) == _without_time(last_account)
        assert restored == last_positions
        eng2.send(order=_order(6))
        result = eng2.read_until("order_result")[-1].order_result
        assert result.order > max(r.order for r in results)
        assert result.deal > max(r.deal for r in results)
        eng2.send(shutdown=pb.Shutdown(reason="test"))
        assert eng2.wait() == 0
    finally:
        eng2.close()


def test_kill_in_the_middle_of_a_burst(tmp_path: Path) -> None:
    config: dict[str, Any] = {"symbols": ["EURUSD"], "tick_rate": 50, "initial_balance": 1e7}
    eng, _, _ = _start(tmp_path, config, "a.sock")
    conn = eng.conn
    assert conn is not None

    def send_all() -> None:
        # One frame per write, so that the worker sees the burst in many reads.
        try:
            for i in range(1, 201):
                send_frame(conn, pb.EngineFrame(order=_order(i, comment=f"o{i}")))
        except OSError:
            pass  # the worker was killed

    sender = threading.Thread(target=send_all)
    sender.start()
    acknowledged: dict[int, int] = {}
    try:
        while len(acknowledged) < 40:
            frame = eng.read()
            if frame.WhichOneof("body") == "order_result":
                res = frame.order_result
                assert res.retcode == 10009
                acknowledged[res.request_id] = res.position
        _kill(eng)
    finally:
        sender.join(10)

    eng2, hello2, restored = _start(tmp_path, config, "b.sock")
    try:
        by_comment = {p.comment: p.ticket for p in restored.positions}
        # Every acknowledged order is there, with the ticket the engine was told...
        for request_id, ticket in acknowledged.items():
            assert by_comment[f"o{request_id}"] == ticket
        # ...and no order was applied twice (one position and one deal per order).
        assert len(by_comment) == len(restored.positions)
        deals = read_deals(tmp_path / "sim_state")
        request_ids = [d.request_id for d in deals]
        assert len(request_ids) == len(set(request_ids))
        assert {f"o{r}" for r in request_ids} == set(by_comment)
        assert hello2.account.balance == 1e7
        eng2.send(order=_order(1000))
        result = eng2.read_until("order_result")[-1].order_result
        assert result.order > max(d.order for d in deals)
    finally:
        eng2.close()


def test_restart_after_crash_fault_and_prices_continue(tmp_path: Path) -> None:
    config: dict[str, Any] = {"symbols": ["XAUUSD"], "tick_rate": 200}
    eng, _, _ = _start(tmp_path, config, "a.sock")
    deadline = time.monotonic() + 0.5
    while time.monotonic() < deadline:
        eng.read()  # let the walk move away from the start price
    eng.send(order=_order(1, "XAUUSD", volume=0.01))
    result = eng.read_until("order_result")[-1].order_result
    eng.send(fault=pb.FaultInjection(crash=True))
    assert eng.wait() == 70
    eng.close()

    eng2, _, restored = _start(tmp_path, config, "b.sock")
    try:
        (pos,) = restored.positions
        assert (pos.ticket, pos.price_open) == (result.position, result.price)
        # The price continues from where it was saved: the trade, or a price checkpoint at most
        # one tick batch later (20 ticks of at most 5 points), not from the start price.
        assert abs(pos.price_current - result.bid) <= 1.0
    finally:
        eng2.close()


def test_clean_shutdown_leaves_a_snapshot_to_start_from(tmp_path: Path) -> None:
    config: dict[str, Any] = {"symbols": ["EURUSD"], "tick_rate": 20}
    eng, _, _ = _start(tmp_path, config, "a.sock")
    for i in range(3):
        eng.send(order=_order(i + 1))
        eng.read_until("order_result")
    eng.send(shutdown=pb.Shutdown(reason="test"))
    assert eng.wait() == 0
    eng.close()
    store, loaded = StateStore.open(
        tmp_path / "sim_state",
        login=10_000_001,
        currency="USD",
        margin_mode="hedging",
        symbols=["EURUSD"],
    )
    store.close()
    assert loaded.account is not None
    assert loaded.replayed == 0
    assert len(loaded.account.positions) == 3


def test_state_path_options(tmp_path: Path) -> None:
    # --state none: nothing is written.
    off = tmp_path / "off"
    off.mkdir()
    eng, _, _ = _start(off, {"tick_rate": 0}, "w.sock", "--state", "none")
    eng.send(order=_order(1))
    eng.read_until("order_result")
    eng.send(shutdown=pb.Shutdown(reason="test"))
    assert eng.wait() == 0
    eng.close()
    assert not list(off.glob("sim_state*"))

    # state_path in the config, relative to the working directory.
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    eng, _, _ = _start(cfg, {"tick_rate": 0, "state_path": "acct/state"}, "w.sock")
    eng.send(order=_order(1))
    eng.read_until("order_result")
    _kill(eng)
    assert (cfg / "acct" / "state.log").exists()
    assert not list(cfg.glob("sim_state*"))

    # --state wins over the config.
    eng, _, restored = _start(
        cfg, {"tick_rate": 0, "state_path": "acct/state"}, "w2.sock", "--state", "other"
    )
    assert not restored.positions
    eng.close()
    eng, _, restored = _start(cfg, {"tick_rate": 0, "state_path": "acct/state"}, "w3.sock")
    assert len(restored.positions) == 1
    eng.close()


def test_corrupt_state_is_set_aside_and_the_worker_starts(tmp_path: Path) -> None:
    (tmp_path / "sim_state").write_bytes(b"\x00garbage" * 50)
    (tmp_path / "sim_state.log").write_bytes(bytes(range(256)) * 8)
    eng, hello, restored = _start(tmp_path, {"tick_rate": 0}, "w.sock")
    try:
        assert hello.account.balance == 10_000
        assert not restored.positions
        eng.send(shutdown=pb.Shutdown(reason="test"))
        assert eng.wait() == 0
        assert eng.proc.stderr is not None
        log = eng.proc.stderr.read().decode()
        assert "set aside" in log
    finally:
        eng.close()
    assert len(list(tmp_path.glob("sim_state.corrupt-*"))) == 1
    assert len(list(tmp_path.glob("sim_state.log.corrupt-*"))) == 1


def test_unusable_state_path_exits_2(tmp_path: Path) -> None:
    (tmp_path / "blocker").write_text("")
    eng = Engine(tmp_path, {"state_path": "blocker/sim_state"})
    try:
        assert eng.wait() == 2
        assert eng.proc.stderr is not None
        assert b"sim state" in eng.proc.stderr.read()
    finally:
        eng.close()


def test_state_path_in_the_config(tmp_path: Path) -> None:
    def load(value: Any) -> Path | None:
        path = tmp_path / "c.json"
        path.write_text(json.dumps({"state_path": value}))
        return load_config(path).state_path

    assert load_config(None).state_path == Path("sim_state")
    assert load("acct/state") == Path("acct/state")
    assert load("none") is None
    assert load(None) is None
    with pytest.raises(ConfigError, match="state_path"):
        load(5)
    with pytest.raises(ConfigError, match="state_path"):
        load(" ")


def test_retention_in_the_config(tmp_path: Path) -> None:
    def load(**values: Any) -> Retention:
        path = tmp_path / "c.json"
        path.write_text(json.dumps(values))
        return load_config(path).retention

    assert load_config(None).retention == Retention()
    assert load(retention_s=172_800, retention_orders=250_000) == Retention(
        keep_s=172_800.0, keep_orders=250_000
    )
    assert load(retention_orders=7) == Retention(keep_orders=7)
    for bad in ({"retention_s": 0}, {"retention_s": "1"}, {"retention_s": float("inf")}):
        with pytest.raises(ConfigError, match="retention_s"):
            load(**bad)
    for bad in ({"retention_orders": 0}, {"retention_orders": 1.5}, {"retention_orders": True}):
        with pytest.raises(ConfigError, match="retention_orders"):
            load(**bad)


def test_the_worker_journal_keeps_the_retention_of_its_config(tmp_path: Path) -> None:
    config = {"tick_rate": 0, "retention_s": 172_800, "retention_orders": 250_000}
    eng, _, _ = _start(tmp_path, config, "w.sock")
    try:
        eng.send(shutdown=pb.Shutdown(reason="test"))
        assert eng.wait() == 0
        assert eng.proc.stderr is not None
        log = eng.proc.stderr.read().decode()
    finally:
        eng.close()
    assert "a compaction keeps the order history of 172800 s and 250000 orders" in log
