"""Slow consumers: many StreamTicks clients that never read cost the server little, and only
while they are there.

A real server runs one sim instance (4 symbols, 1,000 ticks/s in 2 ms batches). A client
process opens N streams (a channel each, a small receive window: no BDP probing), waits for
their headers and then reads nothing; after the hold it closes them and exits. Meanwhile the
server's RSS is sampled, and a health ``Check`` loop runs beside it (sequential unary calls from
this process) to see whether the others are slowed.

Measured in the same run:

  calm     - the Check loop's latencies before the streams (after a warm-up), and the RSS
             baseline
  slow     - the same while the N streams are open and unread (they are cut off as they stall)
  after    - RSS and latencies until ``--after`` seconds after the client is gone; the Check
             p99 without the streams is that of the calm and after phases together

Targets (issue 18): RSS <= baseline + 150 MB throughout, <= baseline + 30 MB within 10 s of the
clients gone; Check p99 while slow <= 2x its p99 when calm; every stream cut off and its
subscription gone from the engine.

Usage: python benchmarks/slow_consumers.py [--streams 500] [--hold 60] [--after 10]
       [--calm 10] [--grace 0] [--output PATH]
       (a smoke run: --streams 10 --hold 3 --after 2 --calm 1 --grace 60, with
       MT5EXEC_ENGINE_SLOW_CONSUMER_TIMEOUT_S=1 for the server)
Writes benchmarks/results/slow_consumers.json (or PATH).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import statistics
import tempfile
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from _common import auth_metadata, summary, use_token, write
from mt5exec.testing import ServerProcess
from mt5exec.v1 import common_pb2, instance_pb2, stream_pb2

SYMBOLS = ["EURUSD", "GBPUSD", "USDJPY", "XAUUSD"]
TICK_RATE = 250.0  # per symbol: 1,000 ticks/s in all
INSTANCE = "slow"
TICKS_METHOD = "/mt5exec.v1.StreamService/StreamTicks"
SUBSCRIBERS = 'mt5exec_stream_subscribers{topic="ticks"}'
CUTOFFS = 'mt5exec_stream_cutoffs_total{reason="SLOW_CONSUMER"}'
TARGETS = {"peak_over_baseline_mb": 150.0, "after_over_baseline_mb": 30.0, "check_p99_ratio": 2.0}


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def metric(server: ServerProcess, name: str) -> float:
    for line in server.metrics().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


# -- the client that reads nothing (a process of its own) ------------------------------------


def _stalled_client(address: str, streams: int, conn: Connection) -> None:
    async def main() -> None:
        options = [("grpc.use_local_subchannel_pool", 1), ("grpc.http2.bdp_probe", 0)]
        channels = [grpc.aio.insecure_channel(address, options=options) for _ in range(streams)]
        request = stream_pb2.StreamTicksRequest(instance_ids=[INSTANCE])
        calls: list[Any] = [
            ch.unary_stream(
                TICKS_METHOD,
                request_serializer=stream_pb2.StreamTicksRequest.SerializeToString,
                response_deserializer=None,
            )(request, metadata=auth_metadata())
            for ch in channels
        ]
        await asyncio.gather(*(c.initial_metadata() for c in calls))
        conn.send("open")
        await asyncio.get_running_loop().run_in_executor(None, conn.recv)  # "close"
        for c in calls:
            c.cancel()
        await asyncio.gather(*(ch.close() for ch in channels))

    asyncio.run(main())
    conn.send("closed")


# -- the Check loop ----------------------------------------------------------------------------


class CheckLoop:
    """Sequential health Checks on a channel of its own; latencies kept per phase."""

    def __init__(self, address: str) -> None:
        self._channel = grpc.insecure_channel(address)
        self._stub = health_pb2_grpc.HealthStub(self._channel)
        self.phase = "warmup"
        self.samples: dict[str, list[float]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        request = health_pb2.HealthCheckRequest()
        while not self._stop.is_set():
            phase = self.phase
            started = time.perf_counter()
            self._stub.Check(request, timeout=30)
            self.samples.setdefault(phase, []).append(time.perf_counter() - started)
            time.sleep(0.002)

    def __enter__(self) -> CheckLoop:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(60)
        self._channel.close()


# -- the run -----------------------------------------------------------------------------------


def run(
    streams: int, hold_s: float, after_s: float, calm_s: float, grace_s: float = 0.0
) -> dict[str, Any]:
    data = Path(tempfile.mkdtemp(prefix="mt5exec-slow-"))
    with ServerProcess(data / "data") as server:
        use_token(server.token)
        server.instances.CreateInstance(
            instance_pb2.CreateInstanceRequest(
                instance_id=INSTANCE,
                config=common_pb2.InstanceConfig(symbols=SYMBOLS, tick_rate=TICK_RATE),
            ),
            timeout=60,
        )
        samples: list[tuple[float, str, float]] = []
        with CheckLoop(server.address) as checks:
            time.sleep(2.0)
            checks.phase = "calm"
            started = time.monotonic()
            while time.monotonic() - started < calm_s:
                samples.append((time.monotonic() - started, "calm", rss_mb(server.pid)))
                time.sleep(0.25)
            baseline = statistics.median(r for _, _, r in samples)
            # A fresh interpreter: a child forked from this process would inherit gRPC's
            # threads and state (its C core does not support fork with live channels).
            spawn = multiprocessing.get_context("spawn")
            ours, theirs = spawn.Pipe()
            client = spawn.Process(target=_stalled_client, args=(server.address, streams, theirs))
            client.start()
            if not ours.poll(120):
                raise RuntimeError("the streams did not open")
            assert ours.recv() == "open"
            checks.phase = "slow"
            opened = time.monotonic()
            all_cut_off: float | None = None
            while True:
                held = time.monotonic() - opened
                if all_cut_off is None and metric(server, CUTOFFS) >= streams:
                    all_cut_off = round(held, 2)
                if held >= hold_s and (all_cut_off is not None or held >= hold_s + grace_s):
                    break
                samples.append((time.monotonic() - started, "slow", rss_mb(server.pid)))
                time.sleep(0.25)
            cutoffs = metric(server, CUTOFFS)
            subscribers_held = metric(server, SUBSCRIBERS)
            ours.send("close")
            if not ours.poll(120):
                raise RuntimeError("the streams did not close")
            client.join(60)
            checks.phase = "after"
            gone = time.monotonic()
            back_within: float | None = None
            while time.monotonic() - gone < after_s:
                rss = rss_mb(server.pid)
                samples.append((time.monotonic() - started, "after", rss))
                if back_within is None and rss <= baseline + TARGETS["after_over_baseline_mb"]:
                    back_within = round(time.monotonic() - gone, 2)
                time.sleep(0.25)
            final_rss = rss_mb(server.pid)
            subscribers_after = metric(server, SUBSCRIBERS)
    calm = summary(checks.samples.get("calm", []) + checks.samples.get("after", []) or [0.0])
    slow = summary(checks.samples.get("slow", [0.0]))
    peak = max(r for _, phase, r in samples if phase != "calm")
    result: dict[str, Any] = {
        "streams": streams,
        "hold_s": hold_s,
        "ticks_per_s": TICK_RATE * len(SYMBOLS),
        "baseline_rss_mb": round(baseline, 1),
        "peak_over_baseline_mb": round(peak - baseline, 1),
        "after_over_baseline_mb": round(final_rss - baseline, 1),
        "back_within_s": back_within,
        "cutoffs_at_end_of_hold": cutoffs,
        "all_cut_off_after_s": all_cut_off,
        "subscribers_at_end_of_hold": subscribers_held,
        "subscribers_after": subscribers_after,
        "check_without_streams": calm,
        "check_with_streams": slow,
        "check_p99_ratio": round(slow["p99_us"] / calm["p99_us"], 2) if calm["p99_us"] else None,
        "rss_mb": [(round(t, 2), phase, round(r, 1)) for t, phase, r in samples],
        "targets": TARGETS,
    }
    result["met"] = {
        "peak": result["peak_over_baseline_mb"] <= TARGETS["peak_over_baseline_mb"],
        "after": back_within is not None and back_within <= 10.0,
        "check_p99": result["check_p99_ratio"] is not None
        and result["check_p99_ratio"] <= TARGETS["check_p99_ratio"],
        "all_cut_off": cutoffs >= streams and subscribers_held == 0,
    }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=500)
    parser.add_argument("--hold", type=float, default=60.0, help="seconds the streams stay open")
    parser.add_argument("--after", type=float, default=10.0, help="seconds watched after")
    parser.add_argument("--calm", type=float, default=10.0, help="seconds before the streams")
    parser.add_argument(
        "--grace", type=float, default=0.0, help="seconds the hold may run over, until all are cut"
    )
    parser.add_argument("--output", type=Path, help="write the JSON here instead")
    args = parser.parse_args()
    result = run(args.streams, args.hold, args.after, args.calm, args.grace)
    if args.output is not None:
        args.output.write_text(json.dumps(result, indent=2) + "\n")
        path = args.output
    else:
        path = write("slow_consumers", result)
    brief = {k: v for k, v in result.items() if k != "rss_mb"}
    print(json.dumps(brief, indent=2))
    print(f"written to {path}")


if __name__ == "__main__":
    main()
