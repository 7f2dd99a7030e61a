"""The sim worker process over a real Unix socket, playing the engine's side of the protocol."""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import mt5exec
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

# The directory that holds the mt5exec package, so the child imports the same code.
PYTHON_DIR = Path(mt5exec.__file__).resolve().parent.parent


class Engine:
    """A minimal engine: accepts one worker connection and exchanges frames with it."""

    def __init__(self, tmp_path: Path, config: dict[str, Any] | None = None) -> None:
        self.path = str(tmp_path / "w.sock")
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
            ],
            env=env,
            stderr=subprocess.PIPE,
        )
        self.conn: socket.socket | None = None
        self.reader = FrameReader()
        self.pending: list[bytes] = []

    def accept(self) -> None:
        self.listener.settimeout(5.0)
        self.conn, _ = self.listener.accept()
        self.conn.settimeout(5.0)

    def read(self, timeout: float = 5.0) -> pb.WorkerFrame:
        assert self.conn is not None
        deadline = time.monotonic() + timeout
        while not self.pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no frame from worker")
            self.conn.settimeout(remaining)
            self.pending.extend(self.reader.recv_from(self.conn))
        frame = pb.WorkerFrame()
        frame.ParseFromString(self.pending.pop(0))
        return frame

    def read_until(self, kind: str, timeout: float = 5.0) -> list[pb.WorkerFrame]:
        frames = []
        while True:
            frame = self.read(timeout)
            frames.append(frame)
            if frame.WhichOneof("body") == kind:
                return frames

    def drain(self, timeout: float = 5.0) -> None:
        """Read frames until the worker closes the connection (or the timeout passes)."""
        while True:
            self.read(timeout)

    def send(self, **body: Any) -> None:
        assert self.conn is not None
        send_frame(self.conn, pb.EngineFrame(**body))

    def handshake(self, heartbeat_ms: int = 1000) -> pb.Hello:
        self.accept()
        hello = self.read()
        assert hello.WhichOneof("body") == "hello"
        self.send(welcome=pb.Welcome(protocol_version=1, heartbeat_interval_ms=heartbeat_ms))
        return hello.hello

    def wait(self, timeout: float = 5.0) -> int:
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
    assert set(hello.capabilities) >= {"ticks", "orders", "faults"}
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
    assert _kinds(trade) == ["deal", "positions", "account", "order_result"]
    deal, positions, account, result = trade
    res = result.order_result
    assert (res.request_id, res.retcode, res.volume) == (7, 10009, 0.1)
    assert res.price == last_ask
    assert deal.deal.price == res.price
    assert deal.deal.request_id == 7
    assert [p.ticket for p in positions.positions.positions] == [res.position]
    assert account.account.margin > 0

    engine.send(shutdown=pb.Shutdown(reason="test"))
    assert engine.wait() == 0


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
    start = time.monotonic()
    assert engine.wait() == 0
    assert time.monotonic() - start < 1.0


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
    assert _kinds(trade) == ["positions", "account"]
    assert len(trade[0].positions.positions) == 1


def test_freeze_fault_silences_the_worker(engine: Engine) -> None:
    engine.handshake(heartbeat_ms=50)
    engine.read()
    engine.send(fault=pb.FaultInjection(freeze_ms=400))
    time.sleep(0.05)  # frames written before the freeze may still arrive; drain them
    assert engine.conn is not None
    engine.conn.setblocking(False)
    try:
        while engine.reader.recv_from(engine.conn):
            pass
    except BlockingIOError:
        pass
    engine.pending.clear()
    start = time.monotonic()
    engine.read(timeout=2.0)
    assert time.monotonic() - start >= 0.25


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
        accounts: list[tuple[float, pb.AccountSnapshot]] = []
        deadline = time.monotonic() + 2.0
        while len(accounts) < 2 and time.monotonic() < deadline:
            frame = eng.read()
            if frame.WhichOneof("body") == "account":
                accounts.append((time.monotonic(), frame.account))
        assert len(accounts) == 2
        assert accounts[1][0] - accounts[0][0] >= 0.2  # rate limited to one per 250 ms
        assert accounts[0][1].margin > 0
    finally:
        eng.close()
