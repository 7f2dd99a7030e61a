"""Order round trip (PlaceOrder market → engine → sim worker → fill → response).

Measured beside a null RPC (grpc.health Check) on the same server, interleaved
call by call so that machine noise hits both alike, then broken down by
driving the layers below gRPC directly in this process:

  engine  - the Python engine wrapper → Rust → worker socket → sim fill → back
  broker  - the simulated broker's own fill (SimBroker.send), no I/O

and beside the floor of any design with a worker process: a bare grpc.aio server whose
PlaceOrder only passes the request to an echo process and back (``_hop_floor.py``), timed
with the same clients in the same run.

Usage: python benchmarks/order_roundtrip.py [--orders 2000] [--warmup 300] [--instant-only]
Writes benchmarks/results/order_roundtrip.json (with --instant-only, only the instant
terminal's server and engine: order_roundtrip_instant.json).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc
import uvloop
from grpc_health.v1 import health_pb2, health_pb2_grpc

from _common import auth_metadata, child_pids, cpu_seconds, loadgen, summary, use_token, write
from _hop_floor import floor_server
from mt5exec.engine import Engine, InstanceSpec, OrderArgs
from mt5exec.sim.broker import SimBroker, SimConfig
from mt5exec.terminal.v1 import worker_pb2
from mt5exec.testing import ServerProcess
from mt5exec.v1 import common_pb2, instance_pb2, order_pb2, order_pb2_grpc

INSTANT = Path(__file__).resolve().parent / "_instant_terminal.py"

CONFIG = common_pb2.InstanceConfig(
    symbols=["EURUSD"],
    tick_rate=10,
    margin_mode=common_pb2.ACCOUNT_MARGIN_MODE_NETTING,
    # The gate runs on every order; only its volume limits are set, so nothing throttles.
    risk=common_pb2.RiskLimits(max_order_volume=10.0, min_order_volume=0.01),
)


def order_request(i: int) -> order_pb2.PlaceOrderRequest:
    # Alternating sides keep the netting position small, so the fill cost stays flat.
    return order_pb2.PlaceOrderRequest(
        instance_id="bench",
        client_order_id=f"b{i}",
        symbol="EURUSD",
        side=common_pb2.SIDE_BUY if i % 2 == 0 else common_pb2.SIDE_SELL,
        type=common_pb2.ORDER_TYPE_MARKET,
        volume=0.01,
    )


def pending_request(i: int, bid: float) -> order_pb2.PlaceOrderRequest:
    # A buy limit 200 points under the market: placed, not filled.
    return order_pb2.PlaceOrderRequest(
        instance_id="bench",
        client_order_id=f"p{i}",
        symbol="EURUSD",
        side=common_pb2.SIDE_BUY,
        type=common_pb2.ORDER_TYPE_LIMIT,
        price=round(bid - 0.002, 5),
        volume=0.01,
    )


async def over_grpc(
    address: str, orders: int, warmup: int
) -> tuple[list[float], list[float], list[float]]:
    async with grpc.aio.insecure_channel(address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        stub = order_pb2_grpc.OrderServiceStub(channel)
        check = health_pb2.HealthCheckRequest()
        key = auth_metadata()
        null: list[float] = []
        order: list[float] = []
        pending: list[float] = []
        for i in range(warmup + orders):
            t0 = time.perf_counter()
            await health.Check(check)
            t1 = time.perf_counter()
            reply = await stub.PlaceOrder(order_request(i), metadata=key)
            t2 = time.perf_counter()
            assert reply.order.status == common_pb2.ORDER_STATUS_FILLED, reply
            placed = await stub.PlaceOrder(
                pending_request(i, reply.order.average_fill_price), metadata=key
            )
            t3 = time.perf_counter()
            assert placed.order.status == common_pb2.ORDER_STATUS_ACCEPTED, placed
            # Keep the book small: the cancel is not timed.
            await stub.CancelOrder(
                order_pb2.CancelOrderRequest(instance_id="bench", order_id=placed.order.order_id),
                metadata=key,
            )
            if i >= warmup:
                null.append(t1 - t0)
                order.append(t2 - t1)
                pending.append(t3 - t2)
        return null, order, pending


async def engine_direct(
    data_dir: Path, orders: int, warmup: int, instant: bool = False
) -> list[float]:
    """Market orders through the engine (no gRPC) to the sim worker, or to a worker that
    answers at once (``_instant_terminal``: the engine's round trip without a broker)."""
    engine = Engine()
    engine.attach(asyncio.get_running_loop())
    directory = data_dir / ("instant" if instant else "direct")
    directory.mkdir(parents=True)
    (directory / "c.json").write_text(
        '{"symbols": ["EURUSD"], "margin_mode": "netting", "state_path": "none"}'
    )
    worker = [str(INSTANT)] if instant else ["-m", "mt5exec.workers.sim"]
    argv = [sys.executable, *worker, "--config", str(directory / "c.json")]
    spec = InstanceSpec("direct", "bench", 1, directory, directory / "logs", argv, {}, CONFIG)
    await engine.create_instance(spec)
    await asyncio.sleep(0.3)
    samples: list[float] = []
    try:
        for i in range(warmup + orders):
            side = common_pb2.SIDE_BUY if i % 2 == 0 else common_pb2.SIDE_SELL
            t0 = time.perf_counter()
            await engine.place_order(OrderArgs("direct", f"d{i}", "EURUSD", side, 1, 0.01), 10.0)
            if i >= warmup:
                samples.append(time.perf_counter() - t0)
    finally:
        await engine.stop_all()
        engine.detach()
    return samples


def broker_only(orders: int) -> list[float]:
    broker = SimBroker(SimConfig(symbols=["EURUSD"], margin_mode="netting"))
    broker.tick("EURUSD")
    samples: list[float] = []
    for i in range(orders):
        request = worker_pb2.OrderRequest(
            request_id=i, action=1, symbol="EURUSD", volume=0.01, type=i % 2, type_filling=0
        )
        t0 = time.perf_counter()
        outcome = broker.send(request)
        samples.append(time.perf_counter() - t0)
        assert outcome.result.retcode == 10009
    return samples


def run_server(
    data_dir: Path, args: argparse.Namespace, history: bool, instant: bool = False
) -> tuple[list[float], list[float], list[float], dict[str, Any] | None]:
    """Round trips with this Python client, then (history on only) with the Go client, with
    the CPU each of the server's processes used per round of the Go client's run. With
    ``instant`` the instance's terminal is ``_instant_terminal`` instead of the sim."""
    env = {"MT5EXEC_HISTORY_ENABLED": "true" if history else "false"}
    server = ServerProcess(data_dir, env=env)
    if instant:
        server.args[1:3] = [str(INSTANT)]
    with server:
        use_token(server.token)
        instance = server.instances.CreateInstance(
            instance_pb2.CreateInstanceRequest(instance_id="bench", config=CONFIG), timeout=30
        ).instance
        time.sleep(0.3)  # a first price
        null, order, pending = uvloop.run(over_grpc(server.address, args.orders, args.warmup))
        if not history:
            return null, order, pending, None
        worker = "instant_worker" if instant else "sim_worker"
        processes = {"server": server.pid, worker: instance.worker_pid}
        processes.update(
            ("history", pid) for pid in child_pids(server.pid) if pid != instance.worker_pid
        )
        before = {name: cpu_seconds(pid) for name, pid in processes.items()}
        answers_before = worker_answers(server)
        go = go_latency(server.address, args, "g")
        if go is not None:
            rounds = args.orders + args.warmup
            go["cpu_us_per_round"] = {
                name: round((cpu_seconds(pid) - before[name]) / rounds * 1e6, 1)
                for name, pid in processes.items()
            }
            count_after, total_after = worker_answers(server)
            count, total = count_after - answers_before[0], total_after - answers_before[1]
            # Market and limit orders alike; cancels are not counted here.
            go["worker_answer_mean_us"] = round(total / count * 1e6, 1) if count else None
        return null, order, pending, go


def worker_answers(server: ServerProcess) -> tuple[float, float]:
    """(count, sum of seconds) of the engine's ``mt5exec_worker_request_seconds`` for orders
    placed: how long the sim worker took to answer them, as the engine saw it."""
    family = "mt5exec_worker_request_seconds"
    totals = {
        sample.name: sample.value
        for sample in server.metric_samples(family)
        if sample.labels.get("kind") == "place" and "le" not in sample.labels
    }
    return totals.get(f"{family}_count", 0.0), totals.get(f"{family}_sum", 0.0)


def go_latency(address: str, args: argparse.Namespace, prefix: str) -> dict[str, Any] | None:
    """Sequential round trips from the Go client (None without Go)."""
    return loadgen(
        "latency", "-addr", address, "-orders", str(args.orders),
        "-warmup-orders", str(args.warmup), "-prefix", prefix,
    )  # fmt: skip


def ratios(null: dict[str, float], order: dict[str, float]) -> dict[str, float]:
    return {
        "p50_order_vs_null": round(order["p50_us"] / null["p50_us"], 2),
        "p99_order_vs_null": round(order["p99_us"] / null["p99_us"], 2),
    }


def by_client(null: list[float], order: list[float], go: dict[str, Any] | None) -> dict[str, Any]:
    """Null RPC and market order p50/p99 with their ratios, per client (Go when it ran)."""
    s_null, s_order = summary(null), summary(order)
    result: dict[str, Any] = {
        "python": {"null_rpc": s_null, "place_order": s_order, **ratios(s_null, s_order)}
    }
    if go is not None:
        result["go"] = {
            "null_rpc": go["null_rpc"],
            "place_order": go["place_order"],
            **ratios(go["null_rpc"], go["place_order"]),
        }
        if "cpu_us_per_round" in go:
            result["go"]["cpu_us_per_round"] = go["cpu_us_per_round"]
    return result


def hop_floor(args: argparse.Namespace) -> dict[str, Any]:
    """The same round trips against the process-hop floor server (see ``_hop_floor``)."""
    with floor_server() as address:
        null, order, _ = uvloop.run(over_grpc(address, args.orders, args.warmup))
        go = go_latency(address, args, "f")
    return by_client(null, order, go)


def print_compared(name: str, compared: dict[str, Any]) -> None:
    for client in ("python", "go"):
        if client in compared:
            f = compared[client]
            print(
                f"{name}, {client} client: null p50 {f['null_rpc']['p50_us']:.1f}, "
                f"order p50 {f['place_order']['p50_us']:.1f} µs → "
                f"p50 {f['p50_order_vs_null']}x, p99 {f['p99_order_vs_null']}x"
            )
            if "cpu_us_per_round" in f:
                cpu = ", ".join(f"{k} {v:.0f}" for k, v in f["cpu_us_per_round"].items())
                print(f"  CPU µs per round (null, market, limit, cancel): {cpu}")


def instant_only(args: argparse.Namespace) -> None:
    """The instant terminal's line alone (before/after comparisons of the server's cost)."""
    with tempfile.TemporaryDirectory(prefix="mt5exec-bench-") as tmp:
        i_null, i_order, _, i_go = run_server(
            Path(tmp) / "server-instant", args, history=True, instant=True
        )
        direct_instant = uvloop.run(engine_direct(Path(tmp), args.orders, args.warmup, True))
    instant = {**by_client(i_null, i_order, i_go), "engine_direct": summary(direct_instant)}
    path = write("order_roundtrip_instant", {"orders": args.orders, "instant_terminal": instant})
    print_compared("instant terminal", instant)
    print(f"  engine direct, instant terminal p50 {instant['engine_direct']['p50_us']:8.1f} µs")
    print(f"written to {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument(
        "--instant-only",
        action="store_true",
        help="only the instant terminal's server and engine (order_roundtrip_instant.json)",
    )
    args = parser.parse_args()
    if args.instant_only:
        instant_only(args)
        return
    with tempfile.TemporaryDirectory(prefix="mt5exec-bench-") as tmp:
        null, order, pending, go = run_server(Path(tmp) / "server", args, history=True)
        null_nh, order_nh, _, _ = run_server(Path(tmp) / "server-nh", args, history=False)
        i_null, i_order, _, i_go = run_server(
            Path(tmp) / "server-instant", args, history=True, instant=True
        )
        direct = uvloop.run(engine_direct(Path(tmp), args.orders, args.warmup))
        direct_instant = uvloop.run(engine_direct(Path(tmp), args.orders, args.warmup, True))
    floor = hop_floor(args)
    broker = broker_only(args.orders)

    s_null, s_order, s_direct, s_broker = map(summary, (null, order, direct, broker))
    s_null_nh, s_order_nh = summary(null_nh), summary(order_nh)
    s_pending = summary(pending)
    result = {
        "orders": args.orders,
        "null_rpc": s_null,
        "place_order": s_order,
        "place_pending_order": s_pending,
        "p50_pending_vs_null": round(s_pending["p50_us"] / s_null["p50_us"], 2),
        "without_history": {
            "null_rpc": s_null_nh,
            "place_order": s_order_nh,
            "p50_order_vs_null": round(s_order_nh["p50_us"] / s_null_nh["p50_us"], 2),
            "p99_order_vs_null": round(s_order_nh["p99_us"] / s_null_nh["p99_us"], 2),
        },
        "engine_direct": s_direct,
        "sim_broker_fill": s_broker,
        "ratios": ratios(s_null, s_order),
        "go_client": None if go is None else {**go, **ratios(go["null_rpc"], go["place_order"])},
        # A bare server whose order only crosses to an echo process and back: the least any
        # design with a worker process reaches here (same clients, same run).
        "process_hop_floor": floor,
        # This server with a terminal that answers at once, with nothing but the result: the
        # least the server and the engine cost with any terminal.
        "instant_terminal": {
            **by_client(i_null, i_order, i_go),
            "engine_direct": summary(direct_instant),
        },
        "targets": {"p50_order_vs_null": 1.3, "p99_order_vs_null": 2.0},
        "breakdown_p50_us": {
            "grpc_and_python_floor (null RPC)": s_null["p50_us"],
            "server beyond the engine round trip (order - null - engine)": round(
                s_order["p50_us"] - s_null["p50_us"] - s_direct["p50_us"], 1
            ),
            "engine, worker hop and worker (engine - broker)": round(
                s_direct["p50_us"] - s_broker["p50_us"], 1
            ),
            "sim_broker_fill": s_broker["p50_us"],
        },
        "sim_broker_share_of_order_p50": round(s_broker["p50_us"] / s_order["p50_us"], 3),
    }
    path = write("order_roundtrip", result)
    print(f"null RPC      p50 {s_null['p50_us']:8.1f} µs   p99 {s_null['p99_us']:8.1f} µs")
    print(f"PlaceOrder    p50 {s_order['p50_us']:8.1f} µs   p99 {s_order['p99_us']:8.1f} µs")
    print(f"pending order p50 {s_pending['p50_us']:8.1f} µs   p99 {s_pending['p99_us']:8.1f} µs")
    print(
        f"without history: null p50 {s_null_nh['p50_us']:.1f} p99 {s_null_nh['p99_us']:.1f}, "
        f"order p50 {s_order_nh['p50_us']:.1f} p99 {s_order_nh['p99_us']:.1f} µs"
    )
    print(f"engine direct p50 {s_direct['p50_us']:8.1f} µs   p99 {s_direct['p99_us']:8.1f} µs")
    print(f"sim fill      p50 {s_broker['p50_us']:8.1f} µs")
    r = result["ratios"]
    print(
        f"ratios: p50 {r['p50_order_vs_null']}x (target ≤ 1.3), "
        f"p99 {r['p99_order_vs_null']}x (target ≤ 2.0)"
    )
    if go is not None:
        g = result["go_client"]
        gn, go_ = go["null_rpc"], go["place_order"]
        print(
            f"Go client: null p50 {gn['p50_us']:.1f} p99 {gn['p99_us']:.1f}, "
            f"order p50 {go_['p50_us']:.1f} p99 {go_['p99_us']:.1f} µs "
            f"→ p50 {g['p50_order_vs_null']}x, p99 {g['p99_order_vs_null']}x"
        )
        if go.get("worker_answer_mean_us"):
            share = go["worker_answer_mean_us"] / go["place_order"]["mean_us"]
            print(
                f"  the sim worker answered an order in {go['worker_answer_mean_us']:.0f} µs on "
                f"average (engine's histogram): {share:.0%} of the mean order round trip"
            )
        if "cpu_us_per_round" in go:
            print(
                "  CPU per round (null RPC, market order, limit order, cancel): "
                + ", ".join(f"{k} {v:.0f} µs" for k, v in go["cpu_us_per_round"].items())
            )
    instant = result["instant_terminal"]
    for name, compared in (("process-hop floor", floor), ("instant terminal", instant)):
        print_compared(name, compared)
    print(f"  engine direct, instant terminal p50 {instant['engine_direct']['p50_us']:8.1f} µs")
    for part, value in result["breakdown_p50_us"].items():
        print(f"  {part:52s} {value:8.1f} µs")
    print(f"written to {path}")


if __name__ == "__main__":
    main()
