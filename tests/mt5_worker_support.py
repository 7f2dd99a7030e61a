"""Helpers of the MT5 worker's tests (test_mt5_worker*.py, test_worker_pulse.py): a minimal engine
that starts the worker against the simulated MetaTrader5 module and exchanges frames with it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.worker_link import WorkerLink

import mt5exec
from mt5exec.mt5 import constants as c
from mt5exec.mt5 import simterminal
from mt5exec.terminal.v1 import worker_pb2 as pb

PYTHON_DIR = Path(mt5exec.__file__).resolve().parent.parent
STANDINS = Path(__file__).resolve().parent / "standins"
PASSWORD = "Wkr-s3cret-Pa55"
LOGIN = 8001
SERVER = "Sim-Demo"

# The frames of a filled market order, in this order (the engine answers the client on the
# result, and the client may read positions next); the OrderSnapshot comes only when the working
# orders changed. No OrderUpdate: the result says all of an order filled at once.
TRADE_KINDS = ("deal", "positions", "account", "order_result")


def kinds(frames: list[pb.WorkerFrame]) -> list[str]:
    return [f.WhichOneof("body") or "" for f in frames]


class Engine(WorkerLink):
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
        super().__init__()
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
