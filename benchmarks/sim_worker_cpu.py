"""The sim worker's CPU per market order, the worker process alone (#25: reported, not targeted).

This script plays the engine on the worker's Unix socket (Hello, Welcome, then one market
order at a time, each answered before the next goes out) and reads the worker's CPU from
``/proc/<pid>/task/*/schedstat`` (nanoseconds, every thread) over the orders, less what the
same worker burns idle (ticks, heartbeats) over as long. Beside it, in alternating rounds:
``_instant_terminal.py``, a Python worker that answers each order at once with its result
alone (no fill, deal report, snapshots or journal): the protocol's floor. With
``--against DIR`` (the ``python/`` directory of another checkout) the sim worker of that tree
runs a round too, for a before/after ratio in the same run.

Netting account, EURUSD, 10 ticks/s, state files on (as the server runs it), alternating buy
and sell of 0.01 lots so that the position stays small.

Usage: python benchmarks/sim_worker_cpu.py [--orders 2000] [--rounds 6] [--against DIR]
Writes benchmarks/results/sim_worker_cpu.json.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import write
from mt5exec.terminal.v1 import worker_pb2 as pb
from mt5exec.workers.protocol import FrameReader, encode_frame

HERE = Path(__file__).resolve().parent
PYTHON_DIR = HERE.parent / "python"
INSTANT = HERE / "_instant_terminal.py"
CONFIG = {
    "instance_id": "bench",
    "symbols": ["EURUSD"],
    "tick_rate": 10.0,
    "margin_mode": "netting",
}
IDLE_S = 1.0


def cpu_ns(pid: int) -> int:
    """CPU time (ns) every thread of ``pid`` has used so far."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
            total += int(f.read().split()[0])
    return total


class Driver:
    """The engine's side of one worker: a listening socket, the worker process, its frames."""

    def __init__(self, workdir: Path, argv: list[str], python_dir: Path) -> None:
        self.path = str(workdir / "w.sock")
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(self.path)
        self.listener.listen(1)
        config = workdir / "worker.json"
        config.write_text(json.dumps(CONFIG))
        env = {**os.environ, "PYTHONPATH": str(python_dir)}
        self.proc = subprocess.Popen(
            [sys.executable, *argv, "--socket", self.path, "--config", str(config)],
            env=env,
            cwd=workdir,
            stderr=subprocess.DEVNULL,
        )
        self.listener.settimeout(60)
        self.conn, _ = self.listener.accept()
        self.conn.settimeout(60)
        self.reader = FrameReader()
        self.pending: list[bytes] = []
        hello = self.read()
        assert hello.WhichOneof("body") == "hello", hello
        self.send(
            pb.EngineFrame(welcome=pb.Welcome(protocol_version=1, heartbeat_interval_ms=1000))
        )

    def read(self) -> pb.WorkerFrame:
        while not self.pending:
            self.pending.extend(self.reader.recv_from(self.conn))
        return pb.WorkerFrame.FromString(self.pending.pop(0))

    def send(self, frame: pb.EngineFrame) -> None:
        self.conn.sendall(encode_frame(frame))

    def order(self, i: int, kinds: dict[str, int] | None = None) -> None:
        """One market order, and every frame up to its result."""
        request = pb.OrderRequest(
            request_id=i,
            action=1,  # TRADE_ACTION_DEAL
            symbol="EURUSD",
            volume=0.01,
            type=i % 2,  # buy, sell, buy, ...
            type_filling=0,
            deviation=10,
            comment=f"{i:024x}",
        )
        self.send(pb.EngineFrame(order=request))
        while True:
            frame = self.read()
            kind = frame.WhichOneof("body") or ""
            if kinds is not None:
                kinds[kind] = kinds.get(kind, 0) + 1
            if kind == "order_result":
                assert frame.order_result.retcode == 10009, frame  # TRADE_RETCODE_DONE
                return

    def close(self) -> None:
        self.conn.close()
        self.listener.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def measure(argv: list[str], python_dir: Path, orders: int, warmup: int) -> dict[str, Any]:
    """CPU per order (µs) of one worker, idle CPU taken off, and the frames of an order."""
    with tempfile.TemporaryDirectory() as d:
        driver = Driver(Path(d), argv, python_dir)
        try:
            pid = driver.proc.pid
            for i in range(1, warmup + 1):
                driver.order(i)
            c0, t0 = cpu_ns(pid), time.monotonic()
            time.sleep(IDLE_S)
            idle_per_s = (cpu_ns(pid) - c0) / (time.monotonic() - t0)
            kinds: dict[str, int] = {}
            c0, t0 = cpu_ns(pid), time.monotonic()
            for i in range(warmup + 1, warmup + orders + 1):
                driver.order(i, kinds)
            used, wall = cpu_ns(pid) - c0, time.monotonic() - t0
        finally:
            driver.close()
    return {
        "cpu_us_per_order": round((used - idle_per_s * wall) / orders / 1000, 1),
        "idle_cpu_us_per_s": round(idle_per_s / 1000, 1),
        "frames_per_order": {k: round(v / orders, 2) for k, v in sorted(kinds.items())},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--orders", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--against", type=Path, help="python/ dir of another tree's sim worker")
    args = parser.parse_args()
    workers: dict[str, tuple[list[str], Path]] = {
        "sim": (["-m", "mt5exec.workers.sim"], PYTHON_DIR),
        "instant": ([str(INSTANT)], PYTHON_DIR),
    }
    if args.against is not None:
        workers["sim_against"] = (["-m", "mt5exec.workers.sim"], args.against.resolve())
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in workers}
    for r in range(args.rounds):
        order = list(workers.items())
        for name, (argv, python_dir) in order if r % 2 == 0 else reversed(order):
            runs[name].append(measure(argv, python_dir, args.orders, args.warmup))
    median = {
        name: round(statistics.median(x["cpu_us_per_order"] for x in results), 1)
        for name, results in runs.items()
    }
    result: dict[str, Any] = {
        "orders_per_round": args.orders,
        "rounds": args.rounds,
        "load_average": os.getloadavg(),
        "cpu_us_per_order_median": median,
        "sim_over_instant": round(median["sim"] / median["instant"], 2),
        "frames_per_order": {
            name: results[-1]["frames_per_order"] for name, results in runs.items()
        },
        "runs": runs,
    }
    if "sim_against" in median:
        result["against"] = str(args.against)
        result["sim_over_against"] = round(median["sim"] / median["sim_against"], 3)
    print(
        "CPU per market order (median of rounds): "
        + ", ".join(f"{name} {us:.0f} µs" for name, us in median.items())
        + f"; sim / instant {result['sim_over_instant']}x"
        + (f"; sim / against {result['sim_over_against']}x" if "sim_over_against" in result else "")
    )
    print(f"written to {write('sim_worker_cpu', result)}")


if __name__ == "__main__":
    main()
