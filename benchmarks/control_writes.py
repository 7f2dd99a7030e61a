"""The event loop's stall from control-plane record writes (kill switch, trading state,
limits: each an ``instance.json`` written with two fsyncs).

PlaceOrder on one connection, one call at a time, on an instance of its own; beside it, in
another thread, a client flips another instance's kill switch, trading state and a limit,
``--control-rate`` calls a second (each answered before the next; the same rate for every
tree). Measured alone and beside the flips, in the same run: the ratio beside/alone of
PlaceOrder's p50 and p99 is the stall those writes put on the calls around them, and the
server's CPU per control call is what the beside phase costs more than the alone one.
With ``--base DIR`` (the ``python`` directory of another tree, e.g. a git worktree of the
commit before) the server of that tree is measured too, alternating with this one's.

Where strace is installed, the fsyncs of 60 control calls (no orders) are also counted by
thread: those on the server's main thread (the event loop's) and the time they kept it, a
figure the machine's load does not blur.

The data dir is on the real disk (a tmpfs would make the fsyncs free).

Usage: python benchmarks/control_writes.py [--rounds 3] [--orders 1000] [--control-rate 20]
       [--base DIR] [--output PATH]
Writes benchmarks/results/control_writes.json.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import field_mask_pb2

from _common import cpu_seconds, summary, write
from mt5exec.testing import ServerProcess
from mt5exec.v1 import common_pb2, instance_pb2, order_pb2

RISK = common_pb2.RiskLimits(max_order_volume=10.0, min_order_volume=0.01)
HALTED = common_pb2.TRADING_STATE_HALTED
ACTIVE = common_pb2.TRADING_STATE_ACTIVE


def create(server: ServerProcess, instance_id: str) -> None:
    config = common_pb2.InstanceConfig(
        symbols=["EURUSD"],
        tick_rate=10,
        risk=RISK,
        margin_mode=common_pb2.ACCOUNT_MARGIN_MODE_NETTING,  # buys and sells net out
        initial_balance=1e9,
    )
    request = instance_pb2.CreateInstanceRequest(instance_id=instance_id, config=config)
    server.instances.CreateInstance(request, timeout=60)
    check = order_pb2.CheckOrderRequest(order=order(instance_id, "probe", 0))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if server.orders.CheckOrder(check, timeout=30).accepted:
                return
        except grpc.RpcError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{instance_id}: no price in 60 s")


def order(instance_id: str, prefix: str, i: int) -> order_pb2.PlaceOrderRequest:
    return order_pb2.PlaceOrderRequest(
        instance_id=instance_id,
        client_order_id=f"{prefix}-{i}",
        symbol="EURUSD",
        side=common_pb2.SIDE_BUY if i % 2 == 0 else common_pb2.SIDE_SELL,
        type=common_pb2.ORDER_TYPE_MARKET,
        volume=0.01,
    )


def flip(server: ServerProcess, i: int) -> None:
    """One control-plane change of the side instance (each restricts or loosens in turn)."""
    which, on = (i // 2) % 3, i % 2 == 0
    if which == 0:
        scope = instance_pb2.KillSwitchScope(instance_id="side")
        if on:
            server.instances.EngageKillSwitch(
                instance_pb2.EngageKillSwitchRequest(scope=scope), timeout=60
            )
        else:
            server.instances.ReleaseKillSwitch(
                instance_pb2.ReleaseKillSwitchRequest(scope=scope), timeout=60
            )
    elif which == 1:
        server.instances.SetTradingState(
            instance_pb2.SetTradingStateRequest(
                instance_id="side", trading_state=HALTED if on else ACTIVE
            ),
            timeout=60,
        )
    else:
        limits = common_pb2.RiskLimits(max_open_positions=50 if on else 500)
        server.instances.UpdateInstanceConfig(
            instance_pb2.UpdateInstanceConfigRequest(
                instance_id="side",
                config=common_pb2.InstanceConfig(risk=limits),
                update_mask=field_mask_pb2.FieldMask(paths=["risk.max_open_positions"]),
            ),
            timeout=60,
        )


def phase(server: ServerProcess, orders: int, prefix: str, rate: float) -> dict[str, Any]:
    """``orders`` PlaceOrders, beside ``rate`` control calls a second (0: alone)."""
    stop = threading.Event()
    flips: list[float] = []

    def flipping() -> None:
        i = 0
        due = time.perf_counter()
        while not stop.wait(max(0.0, due - time.perf_counter())):
            started = time.perf_counter()
            flip(server, i)
            flips.append(time.perf_counter() - started)
            i += 1
            due += 1 / rate

    thread = threading.Thread(target=flipping) if rate else None
    if thread is not None:
        thread.start()
        while not flips:  # flipping from here on
            time.sleep(0.001)
    done = len(flips)
    cpu = cpu_seconds(server.pid)
    samples = []
    for i in range(orders):
        started = time.perf_counter()
        server.orders.PlaceOrder(order("bench", prefix, i), timeout=60)
        samples.append(time.perf_counter() - started)
    cpu = cpu_seconds(server.pid) - cpu
    calls = len(flips) - done
    stop.set()
    if thread is not None:
        thread.join()
    result: dict[str, Any] = {"place_order": summary(samples)}
    result["max_us"] = round(max(samples) * 1e6, 1)
    result["seconds"] = round(sum(samples), 2)
    result["server_cpu_s"] = round(cpu, 3)
    if flips:
        result["control_calls"] = {"during": calls, **summary(flips)}
    return result


_FSYNC = re.compile(r"(\d+)\s+f(?:data)?sync\(.*<([\d.]+)>$")


def _lines(trace: Path) -> list[str]:
    """The complete lines strace has written so far."""
    try:
        text = trace.read_text()
    except FileNotFoundError:
        return []
    return text.splitlines()[: text.count("\n")]


def fsyncs(tree: str | None, data: Path, calls: int = 60) -> dict[str, float] | None:
    """The fsyncs per control call on the event loop's thread and on the others, and the
    milliseconds a call's fsyncs kept the loop's thread (strace; None without it, or when
    it may not trace)."""
    strace = shutil.which("strace")
    if strace is None:
        return None
    env = {"MT5EXEC_HISTORY_ENABLED": "false"}
    if tree is not None:
        env["PYTHONPATH"] = tree
    server = ServerProcess(data, env=env).start()
    trace = data / "fsyncs.strace"
    try:
        create(server, "side")
        flip(server, 0)
        args = ["-f", "-qq", "-T", "-e", "trace=fsync,fdatasync", "-o", str(trace)]
        tracer = subprocess.Popen([strace, *args, "-p", str(server.pid)])
        # Control calls until one's fsync is in the trace: strace has attached to every
        # thread (it attaches to all of them before it traces any); the calls counted
        # start after those lines.
        probes = 0
        while not any(_FSYNC.match(line) for line in _lines(trace)):
            if tracer.poll() is not None or probes == 1000:
                return None  # not allowed to trace here
            probes += 1
            flip(server, probes)
        skip = len(_lines(trace))
        for i in range(probes + 1, probes + calls + 1):
            flip(server, i)
        tracer.terminate()
        tracer.wait(30)
    finally:
        server.kill()
    counts: collections.Counter[str] = collections.Counter()
    loop_s = 0.0
    for line in _lines(trace)[skip:]:
        found = _FSYNC.match(line)
        if found is None:
            continue
        on_loop = int(found.group(1)) == server.pid
        counts["loop" if on_loop else "other"] += 1
        if on_loop:
            loop_s += float(found.group(2))
    return {
        "on_loop_per_call": round(counts["loop"] / calls, 2),
        "other_threads_per_call": round(counts["other"] / calls, 2),
        "loop_blocked_ms_per_call": round(loop_s / calls * 1e3, 2),
    }


def measure(tree: str | None, orders: int, rate: float, round_: int, data: Path) -> dict[str, Any]:
    env = {"MT5EXEC_HISTORY_ENABLED": "false"}
    if tree is not None:
        env["PYTHONPATH"] = tree
    server = ServerProcess(data, env=env).start()
    try:
        create(server, "bench")
        create(server, "side")
        phase(server, 100, f"warm{round_}", rate)  # warm-up, not kept
        alone = phase(server, orders, f"a{round_}", 0)
        beside = phase(server, orders, f"b{round_}", rate)
    finally:
        server.kill()
    ratios = {
        key: round(beside["place_order"][key] / alone["place_order"][key], 2)
        for key in ("p50_us", "p99_us")
    }
    # The server's CPU beside the calls beyond what the same orders cost alone, per call.
    extra = beside["server_cpu_s"] - alone["server_cpu_s"]
    calls = max(beside["control_calls"]["during"], 1)
    return {
        "alone": alone,
        "beside_control_calls": beside,
        "ratio_beside_alone": ratios,
        "server_cpu_per_control_call_us": round(extra / calls * 1e6),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--orders", type=int, default=1000)
    parser.add_argument("--control-rate", type=float, default=20.0)
    parser.add_argument("--base", help="the python/ directory of the tree to compare with")
    parser.add_argument("--output", type=Path, help="write the JSON here instead")
    args = parser.parse_args()
    trees: dict[str, str | None] = {"head": None}
    if args.base:
        trees = {"base": os.path.abspath(args.base), **trees}
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in trees}
    # The data dirs on the real disk (next to the results), not in a tmpfs /tmp.
    with tempfile.TemporaryDirectory(prefix="control-writes-", dir=Path(__file__).parent) as tmp:
        for round_ in range(args.rounds):
            for name, tree in trees.items():
                data = Path(tmp) / f"{name}-{round_}"
                run = measure(tree, args.orders, args.control_rate, round_, data)
                runs[name].append(run)
                print(name, round_, run["ratio_beside_alone"], flush=True)
        syncs = {name: fsyncs(tree, Path(tmp) / f"{name}-fsyncs") for name, tree in trees.items()}
        print("fsyncs", syncs, flush=True)
    result: dict[str, Any] = {
        "orders_per_phase": args.orders,
        "control_calls_per_second": args.control_rate,
        "fsyncs_of_control_calls": syncs,
        "rounds": runs,
    }
    for name, found in runs.items():
        result[f"{name}_median_ratio_p99"] = statistics.median(
            r["ratio_beside_alone"]["p99_us"] for r in found
        )
        result[f"{name}_median_ratio_p50"] = statistics.median(
            r["ratio_beside_alone"]["p50_us"] for r in found
        )
    if args.output is not None:
        args.output.write_text(json.dumps({"benchmark": "control_writes", **result}, indent=2))
        print(args.output)
    else:
        print(write("control_writes", result))


if __name__ == "__main__":
    main()
