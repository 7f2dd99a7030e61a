"""PlaceOrder against a null RPC, measured with ghz (a gRPC load tool nobody here wrote).

The real server (auth on: ghz sends the admin token as call metadata) with one instance, in
two variants: the sim worker, and ``_instant_terminal`` (a worker that answers every order at
once: the server's and the engine's own cost). For each, alternating rounds of ghz runs of
the null RPC (``grpc.health.v1.Health/Check``) and of PlaceOrder (market, buy and sell in
turn, a client_order_id of its own per call from ghz's ``{{.RequestNumber}}``):

- one connection, one call at a time: p50 and p99 of each round, ratio PlaceOrder/Check, and
  beside them the process-hop floor: CheckOrder (``--floor``, on by default), a dry run that
  takes the same way through the gate, the engine, the worker and back (the engine's I/O
  thread, the notifier, the event loop's wake-up) without the journal, the execution log,
  the order book or the audit record: what any order costs before its own work;
- 32 concurrent calls on one connection: calls/s of each round, ratio PlaceOrder/Check;

each ratio the median of its rounds' (the machine's speed drifts within seconds: measured one
after the other, each kind would get a different machine). Beside them, the CPU each of our
processes (server, worker, history child) and ghz itself used per call, read from /proc around
every ghz run, less what each uses idle (measured first), the history child's all charged to
the orders (it works for them only, lagging into the next run): the figure that holds on a
loaded machine.

ghz is taken from $PATH or $(go env GOPATH)/bin, else installed with
``go install github.com/bojand/ghz/cmd/ghz@v0.120.0``; without Go the script says so and
exits 2 (it is not part of ``make bench``). ghz calls with ``--protoset`` built from proto/
(plus the health service's descriptor), or with ``--reflection`` through the server's
reflection service (the way a user points ghz at a server without our protos).

Usage: python benchmarks/ghz_orders.py [--rounds 5] [--calls 1500] [--seconds 2]
    [--warmup 500] [--only sim|instant] [--reflection] [--output PATH]
Writes benchmarks/results/ghz_orders.json (or PATH).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path
from typing import Any

from google.protobuf import descriptor_pb2
from grpc_health.v1 import health_pb2
from grpc_tools import protoc

from _common import child_pids, cpu_seconds, write
from mt5exec.testing import ServerProcess
from mt5exec.v1 import common_pb2, instance_pb2, order_pb2

ROOT = Path(__file__).resolve().parent.parent
INSTANT = Path(__file__).resolve().parent / "_instant_terminal.py"
GHZ_VERSION = "v0.120.0"
NULL_CALL = "grpc.health.v1.Health/Check"
ORDER_CALL = "mt5exec.v1.OrderService/PlaceOrder"
FLOOR_CALL = "mt5exec.v1.OrderService/CheckOrder"
CONCURRENCY = 32

CONFIG = common_pb2.InstanceConfig(
    symbols=["EURUSD"],
    tick_rate=10,
    margin_mode=common_pb2.ACCOUNT_MARGIN_MODE_NETTING,
    # The gate runs on every order; only its volume limits are set, so nothing throttles.
    risk=common_pb2.RiskLimits(max_order_volume=10.0, min_order_volume=0.01),
)


def find_ghz() -> str | None:
    """ghz's path: where `make ghz` puts it (tools/bin), on $PATH, in Go's bin directory, or
    installed there now (None without Go)."""
    pinned = ROOT / "tools" / "bin" / "ghz"
    if pinned.exists():
        return str(pinned)
    found = shutil.which("ghz")
    if found:
        return found
    go = shutil.which("go")
    gopath = Path.home() / "go"
    if go is not None:
        out = subprocess.run([go, "env", "GOPATH"], capture_output=True, text=True, check=True)
        gopath = Path(out.stdout.strip().split(os.pathsep)[0] or gopath)
    binary = gopath / "bin" / "ghz"
    if binary.exists():
        return str(binary)
    if go is None:
        return None
    print(f"installing ghz {GHZ_VERSION} with go install ...", file=sys.stderr)
    subprocess.run([go, "install", f"github.com/bojand/ghz/cmd/ghz@{GHZ_VERSION}"], check=True)
    return str(binary)


def build_protoset(path: Path) -> Path:
    """A FileDescriptorSet of proto/ (with its imports) and the health service."""
    well_known = resources.files("grpc_tools") / "_proto"
    files = sorted(str(p.relative_to(ROOT / "proto")) for p in (ROOT / "proto").rglob("*.proto"))
    args = ["protoc", f"-I{ROOT / 'proto'}", f"-I{well_known}", "--include_imports"]
    if protoc.main([*args, f"--descriptor_set_out={path}", *files]) != 0:
        raise SystemExit("protoc failed building the protoset")
    fds = descriptor_pb2.FileDescriptorSet.FromString(path.read_bytes())
    health = descriptor_pb2.FileDescriptorProto.FromString(health_pb2.DESCRIPTOR.serialized_pb)
    fds.file.append(health)
    path.write_bytes(fds.SerializeToString())
    return path


FLOOR_DATA = json.dumps({
    "order": {"instance_id": "bench", "symbol": "EURUSD", "type": "ORDER_TYPE_MARKET",
              "volume": 0.01, "side": "SIDE_BUY"}
})  # fmt: skip


def order_data(prefix: str) -> str:
    """A buy and a sell (ghz sends the items of a list in turn), each call its own id."""
    order = {
        "instance_id": "bench",
        "client_order_id": prefix + "n{{.RequestNumber}}",
        "symbol": "EURUSD",
        "type": "ORDER_TYPE_MARKET",
        "volume": 0.01,
    }
    return json.dumps([{**order, "side": "SIDE_BUY"}, {**order, "side": "SIDE_SELL"}])


class Processes:
    """CPU seconds of the server's processes, and of ghz, around each run."""

    def __init__(self, server: ServerProcess, worker_pid: int) -> None:
        self.pids = {"server": server.pid, "worker": worker_pid}
        children = [pid for pid in child_pids(server.pid) if pid != worker_pid]
        if len(children) == 1:
            self.pids["history"] = children[0]

    def idle(self, seconds: float) -> dict[str, float]:
        """CPU seconds per second each process uses while no call comes."""
        before = self.now()
        time.sleep(seconds)
        after = self.now()
        return {name: (after[name] - before[name]) / seconds for name in self.pids}

    def now(self) -> dict[str, float]:
        used = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        used["ghz"] = children.ru_utime + children.ru_stime
        return used


def ghz(
    binary: str, protoset: Path | None, address: str, token: str, call: str, data: str, *load: str
) -> dict[str, Any]:
    """One ghz run's JSON report; raises when a call failed. Without ``protoset`` ghz finds
    the method by the server's reflection."""
    schema = [f"--protoset={protoset}"] if protoset else []
    out = subprocess.run(
        [
            binary, "--insecure", *schema, f"--call={call}",
            f"--data={data}", f"--metadata={json.dumps({'authorization': f'Bearer {token}'})}",
            "--format=json", "--connections=1", *load, address,
        ],
        capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip
    if out.returncode != 0 and not out.stdout:
        raise RuntimeError(f"ghz {call} failed: {out.stderr.strip()}")
    report: dict[str, Any] = json.loads(out.stdout)
    codes = report.get("statusCodeDistribution", {})
    if set(codes) != {"OK"}:
        raise RuntimeError(f"ghz {call}: {codes} {report.get('errorDistribution')}")
    return report


def latency_us(report: dict[str, Any], percentage: int) -> float:
    for bucket in report["latencyDistribution"]:
        if bucket["percentage"] == percentage:
            return round(float(bucket["latency"]) / 1e3, 1)
    raise KeyError(percentage)


def measure(binary: str, protoset: Path | None, server: ServerProcess, args: argparse.Namespace,
            tag: str, processes: Processes) -> dict[str, Any]:  # fmt: skip
    """Alternating rounds of Check and PlaceOrder, at one call at a time then at 32."""
    token = server.token or ""

    def run(call: str, data: str, *load: str) -> dict[str, Any]:
        return ghz(binary, protoset, server.address, token, call, data, *load)

    idle = processes.idle(args.idle)
    cpu: dict[str, dict[str, float]] = {"null": {}, "order": {}}
    calls = {"null": 0, "order": 0}
    # The same of the one-connection runs alone (the floor is measured there only).
    cpu1: dict[str, dict[str, float]] = {"null": {}, "order": {}}
    calls1 = {"null": 0, "order": 0}
    if args.floor:
        cpu1["floor"], calls1["floor"] = {}, 0

    def counted(kind: str, call: str, data: str, *load: str, single: bool) -> dict[str, Any]:
        before, started = processes.now(), time.monotonic()
        report = run(call, data, *load)
        after, took = processes.now(), time.monotonic() - started
        # Less what each process uses with nothing asked of it (ticks, timers, polls).
        used = {name: after[name] - before[name] - idle.get(name, 0.0) * took for name in after}
        into = [(cpu1, calls1)] if single else []
        if kind in cpu:
            into.append((cpu, calls))
        elif "history" in used:  # the floor's: the history child's is the orders' (below)
            cpu["null"]["history"] = cpu["null"].get("history", 0.0) + used["history"]
        for used_of, calls_of in into:
            for name, seconds in used.items():
                used_of[kind][name] = used_of[kind].get(name, 0.0) + seconds
            calls_of[kind] += report["count"]
        return report

    # Warm-up: both kinds, one at a time and concurrent.
    warmup = str(args.warmup)
    run(NULL_CALL, "{}", "-n", warmup, "-c", "1")
    run(ORDER_CALL, order_data(f"{tag}w"), "-n", warmup, "-c", "1")
    if args.floor:
        run(FLOOR_CALL, FLOOR_DATA, "-n", warmup, "-c", "1")
    run(ORDER_CALL, order_data(f"{tag}x"), "-n", str(4 * args.warmup), "-c", str(CONCURRENCY))
    single: list[dict[str, float]] = []
    concurrent: list[dict[str, float]] = []
    for r in range(args.rounds):
        one = ("-n", str(args.calls), "-c", "1")
        null = counted("null", NULL_CALL, "{}", *one, single=True)
        order = counted("order", ORDER_CALL, order_data(f"{tag}s{r}"), *one, single=True)
        single.append({
            "null_p50_us": latency_us(null, 50), "null_p99_us": latency_us(null, 99),
            "order_p50_us": latency_us(order, 50), "order_p99_us": latency_us(order, 99),
        })  # fmt: skip
        if args.floor:
            floor = counted("floor", FLOOR_CALL, FLOOR_DATA, *one, single=True)
            single[-1]["floor_p50_us"] = latency_us(floor, 50)
            single[-1]["floor_p99_us"] = latency_us(floor, 99)
        many = ("-z", f"{args.seconds}s", "--duration-stop=ignore", "-c", str(CONCURRENCY))
        null = counted("null", NULL_CALL, "{}", *many, single=False)
        order = counted("order", ORDER_CALL, order_data(f"{tag}c{r}"), *many, single=False)
        concurrent.append({"null_rps": round(null["rps"], 1), "order_rps": round(order["rps"], 1)})
    placed = server.orders.GetOrder(
        order_pb2.GetOrderRequest(instance_id="bench", client_order_id=f"{tag}s0n0"), timeout=30
    ).order
    assert placed.status == common_pb2.ORDER_STATUS_FILLED, placed
    # The history child works for the orders only (it reads their execution events), behind
    # them: what it used during a Check run was the last order run's.
    for used_of in (cpu, cpu1):
        for other in ("null", "floor"):
            if "history" in used_of.get(other, {}):
                used_of["order"]["history"] += used_of[other]["history"]
                used_of[other]["history"] = 0.0

    def us_per_call(
        used_of: dict[str, dict[str, float]], calls_of: dict[str, int]
    ) -> dict[str, dict[str, float]]:
        return {
            kind: {name: round(used / calls_of[kind] * 1e6, 1) for name, used in of.items()}
            for kind, of in used_of.items()
        }

    per_call, per_call1 = us_per_call(cpu, calls), us_per_call(cpu1, calls1)
    ours = {kind: sum(v for k, v in per_call[kind].items() if k != "ghz") for kind in per_call}

    def median(rounds: list[dict[str, float]], top: str, bottom: str) -> float:
        return round(statistics.median(r[top] / r[bottom] for r in rounds), 2)

    one_connection: dict[str, Any] = {
        "rounds": single,
        "p50_order_vs_null": median(single, "order_p50_us", "null_p50_us"),
        "p99_order_vs_null": median(single, "order_p99_us", "null_p99_us"),
    }
    if args.floor:
        one_connection["p50_floor_vs_null"] = median(single, "floor_p50_us", "null_p50_us")
        one_connection["p99_floor_vs_null"] = median(single, "floor_p99_us", "null_p99_us")
    return {
        "one_connection": one_connection,
        f"concurrent_{CONCURRENCY}": {
            "rounds": concurrent,
            "rate_order_vs_null": median(concurrent, "order_rps", "null_rps"),
        },
        "idle_cpu_ms_per_s": {name: round(rate * 1e3, 1) for name, rate in idle.items()},
        "cpu_us_per_call": per_call,
        # One connection alone (a wake-up of each process per call): the floor beside them.
        "cpu_us_per_call_one_connection": per_call1,
        "cpu_ours_order_vs_null": round(ours["order"] / ours["null"], 2),
    }


def variant(binary: str, protoset: Path | None, data_dir: Path, args: argparse.Namespace,
            instant: bool) -> dict[str, Any]:  # fmt: skip
    server = ServerProcess(data_dir, env={"MT5EXEC_HISTORY_ENABLED": "true"})
    if instant:
        server.args[1:3] = [str(INSTANT)]
    with server:
        instance = server.instances.CreateInstance(
            instance_pb2.CreateInstanceRequest(instance_id="bench", config=CONFIG), timeout=30
        ).instance
        time.sleep(0.5)  # a first price, and the history child started
        processes = Processes(server, instance.worker_pid)
        return measure(binary, protoset, server, args, "i" if instant else "s", processes)


def report(name: str, result: dict[str, Any]) -> None:
    one, many = result["one_connection"], result[f"concurrent_{CONCURRENCY}"]
    print(
        f"{name}: one connection p50 {one['p50_order_vs_null']}x, p99 "
        f"{one['p99_order_vs_null']}x; {CONCURRENCY} concurrent rate "
        f"{many['rate_order_vs_null']}x (medians of {len(one['rounds'])} rounds)"
    )
    if "p50_floor_vs_null" in one:
        print(
            f"  process-hop floor (CheckOrder): p50 {one['p50_floor_vs_null']}x, "
            f"p99 {one['p99_floor_vs_null']}x"
        )
    for r in one["rounds"]:
        floor = f", CheckOrder p50 {r['floor_p50_us']:.0f} µs" if "floor_p50_us" in r else ""
        print(
            f"  1 conn: Check p50 {r['null_p50_us']:.0f} p99 {r['null_p99_us']:.0f} µs, "
            f"PlaceOrder p50 {r['order_p50_us']:.0f} p99 {r['order_p99_us']:.0f} µs{floor}"
        )
    for r in many["rounds"]:
        print(
            f"  {CONCURRENCY} conc: Check {r['null_rps']:.0f}/s, PlaceOrder {r['order_rps']:.0f}/s"
        )
    idle = ", ".join(f"{k} {v:.1f}" for k, v in result["idle_cpu_ms_per_s"].items())
    print(f"  idle CPU ms/s (taken off the figures below): {idle}")
    for kind, used in result["cpu_us_per_call"].items():
        parts = ", ".join(f"{k} {v:.0f}" for k, v in used.items())
        print(f"  CPU µs per {kind} call: {parts}")
    for kind, used in result["cpu_us_per_call_one_connection"].items():
        parts = ", ".join(f"{k} {v:.0f}" for k, v in used.items())
        print(f"  at one connection, CPU µs per {kind} call: {parts}")
    print(f"  CPU of our processes per order / per null RPC: {result['cpu_ours_order_vs_null']}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=1500, help="per one-connection round")
    parser.add_argument("--seconds", type=float, default=2.0, help="per concurrent round")
    parser.add_argument("--idle", type=float, default=3.0, help="s of idle CPU measured")
    parser.add_argument("--warmup", type=int, default=500, help="calls of each kind first")
    parser.add_argument("--only", choices=("sim", "instant"), help="one variant only")
    parser.add_argument(
        "--floor",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="CheckOrder too, at one connection: the process-hop floor (default: on)",
    )
    parser.add_argument("--output", type=Path, help="write the JSON here instead")
    parser.add_argument(
        "--reflection", action="store_true", help="ghz finds the methods by server reflection"
    )
    args = parser.parse_args()
    binary = find_ghz()
    if binary is None:
        print(
            "ghz_orders: ghz is not installed and Go is not there to install it "
            f"(go install github.com/bojand/ghz/cmd/ghz@{GHZ_VERSION}); nothing measured",
            file=sys.stderr,
        )
        sys.exit(2)
    result: dict[str, Any] = {"ghz": binary, "reflection": args.reflection,
                              "rounds": args.rounds, "calls": args.calls,
                              "seconds": args.seconds, "load_average": os.getloadavg()}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="mt5exec-bench-") as tmp:
        protoset = None if args.reflection else build_protoset(Path(tmp) / "mt5exec.protoset")
        for name, instant in (("sim", False), ("instant_terminal", True)):
            if args.only in (None, name.split("_")[0]):
                result[name] = variant(binary, protoset, Path(tmp) / name, args, instant)
                report(name, result[name])
    result["load_average_after"] = os.getloadavg()
    result["targets"] = {
        "instant_terminal p50_order_vs_null": 1.2,
        "instant_terminal p99_order_vs_null": 2.0,
        "sim p50_order_vs_null": 1.5,
        f"rate_order_vs_null at {CONCURRENCY}": 0.7,
        "cpu_ours_order_vs_null": 1.5,
    }
    if args.output is not None:
        args.output.write_text(json.dumps({"benchmark": "ghz_orders", **result}, indent=2) + "\n")
        print(f"written to {args.output}")
    else:
        print(f"written to {write('ghz_orders', result)}")


if __name__ == "__main__":
    main()
