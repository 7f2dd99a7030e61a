"""Order throughput and the journal's cost.

1. 32 concurrent unary clients: PlaceOrder/s beside null-RPC/s (health Check) at the same
   concurrency on the same server, in 5 alternating rounds of each; the ratio is the median
   of the rounds' ratios (target ≥ 0.7x). The speed of this kind of machine drifts by up to
   2x within seconds (a null RPC round may do 3,500/s and one 10 s later 7,000/s): measured
   one after the other, each kind would get a different machine.
2. One OrderSession stream: acknowledged orders/s (target ≥ 15,000/s), one order per request
   message, and 100 per message as an OrderSessionBatch with packed answers.
3. The journal: order round trip through the engine (no gRPC) with the journal off and with
   each fsync policy, so its cost is reported on its own.

1 and 2 run twice on the same server: with this Python client, and with the Go load generator
(``benchmarks/loadgen``; skipped when Go is not installed), which needs a fraction of the CPU
per call, so that its figures are the server's rather than the client's.

Usage: python benchmarks/order_throughput.py [--seconds 5]
Writes benchmarks/results/order_throughput.json.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import uvloop
from grpc_health.v1 import health_pb2, health_pb2_grpc

from _common import auth_metadata, loadgen, summary, use_token, write
from mt5exec.engine import Engine, EngineConfig, InstanceSpec, OrderArgs
from mt5exec.testing import ServerProcess
from mt5exec.v1 import common_pb2, instance_pb2, order_pb2, order_pb2_grpc

BATCH = 100  # orders per OrderSessionBatch in the batched session run

CONFIG = common_pb2.InstanceConfig(
    symbols=["EURUSD"],
    tick_rate=10,
    margin_mode=common_pb2.ACCOUNT_MARGIN_MODE_NETTING,
    # The gate runs on every order; only its volume limits are set, so nothing throttles.
    risk=common_pb2.RiskLimits(max_order_volume=10.0, min_order_volume=0.01),
)
CONCURRENCY = 32
# Alternating rounds of null RPCs and orders in the unary runs (as the Go load generator does).
ROUNDS = 5


def order(prefix: str, n: int) -> order_pb2.PlaceOrderRequest:
    return order_pb2.PlaceOrderRequest(
        instance_id="bench",
        client_order_id=f"{prefix}{n}",
        symbol="EURUSD",
        side=common_pb2.SIDE_BUY if n % 2 == 0 else common_pb2.SIDE_SELL,
        type=common_pb2.ORDER_TYPE_MARKET,
        volume=0.01,
    )


async def rate(seconds: float, call: object) -> float:
    """Calls/s of CONCURRENCY loops of ``await call(i)`` for ``seconds``."""
    done = 0
    stop = time.perf_counter() + seconds

    async def loop(worker: int) -> None:
        nonlocal done
        n = 0
        while time.perf_counter() < stop:
            await call(worker * 10_000_000 + n)  # type: ignore[operator]
            n += 1
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(loop(w) for w in range(CONCURRENCY)))
    return done / (time.perf_counter() - started)


async def unary(address: str, seconds: float) -> tuple[float, float, list[float]]:
    """Null RPC/s and PlaceOrder/s (over all rounds) and each round's ratio, sorted: ROUNDS
    alternating rounds of each, so that a drift of the machine's speed hits both alike."""
    async with grpc.aio.insecure_channel(address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        place = functools.partial(
            order_pb2_grpc.OrderServiceStub(channel).PlaceOrder, metadata=auth_metadata()
        )
        check = health_pb2.HealthCheckRequest()
        await rate(1.0, lambda n: health.Check(check))  # warm-up
        await rate(1.0, lambda n: place(order("w", n)))
        rates = []
        for r in range(ROUNDS):
            null_rate = await rate(seconds / ROUNDS, lambda n: health.Check(check))
            order_rate = await rate(seconds / ROUNDS, lambda n, tag=f"u{r}-": place(order(tag, n)))
            rates.append((null_rate, order_rate))
        # Rounds of equal length: the calls/s over all of them is the mean of theirs.
        return (
            statistics.fmean(n for n, _ in rates),
            statistics.fmean(o for _, o in rates),
            sorted(o / n for n, o in rates),
        )


async def session(address: str, count: int, batch: int = 1) -> tuple[float, int]:
    """Orders/s through one OrderSession, ``batch`` orders per request message (more than one:
    as an OrderSessionBatch, whose answers come packed)."""
    prefix = "s" if batch == 1 else "sb"
    async with grpc.aio.insecure_channel(address) as channel:
        stub = order_pb2_grpc.OrderServiceStub(channel)

        async def requests() -> AsyncIterator[order_pb2.OrderSessionRequest]:
            for start in range(0, count, batch):
                places = [
                    order_pb2.OrderSessionRequest(place=order(prefix, n))
                    for n in range(start, min(start + batch, count))
                ]
                if batch == 1:
                    yield places[0]
                else:
                    yield order_pb2.OrderSessionRequest(
                        batch=order_pb2.OrderSessionBatch(requests=places)
                    )

        started = time.perf_counter()
        filled = 0
        async for response in stub.OrderSession(requests(), metadata=auth_metadata()):
            for answer in response.batch or [response]:
                filled += answer.order.status == common_pb2.ORDER_STATUS_FILLED
        return count / (time.perf_counter() - started), filled


async def journal_cost(data: Path, policy: str | None, orders: int) -> list[float]:
    settings = EngineConfig(
        journal_path=None if policy is None else data / f"j-{policy}" / "orders.journal",
        journal_fsync=policy or "never",
    )
    engine = Engine(settings)
    engine.attach(asyncio.get_running_loop())
    directory = data / f"direct-{policy}"
    directory.mkdir(parents=True)
    (directory / "c.json").write_text(
        '{"symbols": ["EURUSD"], "margin_mode": "netting", "state_path": "none"}'
    )
    argv = [sys.executable, "-m", "mt5exec.workers.sim", "--config", str(directory / "c.json")]
    spec = InstanceSpec("direct", "bench", 1, directory, directory / "logs", argv, {}, CONFIG)
    await engine.create_instance(spec)
    await asyncio.sleep(0.3)
    samples = []
    try:
        for n in range(orders + 200):
            args = OrderArgs("direct", f"j{n}", "EURUSD", 1 + n % 2, 1, 0.01)
            t0 = time.perf_counter()
            await engine.place_order(args, 10.0)
            if n >= 200:
                samples.append(time.perf_counter() - t0)
    finally:
        await engine.stop_all()
        engine.detach()
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="per kind, all rounds")
    parser.add_argument("--session-orders", type=int, default=20_000)
    parser.add_argument("--journal-orders", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mt5exec-bench-") as tmp:
        with ServerProcess(Path(tmp) / "server") as server:
            use_token(server.token)
            server.instances.CreateInstance(
                instance_pb2.CreateInstanceRequest(instance_id="bench", config=CONFIG), timeout=30
            )
            time.sleep(0.3)
            null_rate, order_rate, ratios = uvloop.run(unary(server.address, args.seconds))
            session_rate, filled = uvloop.run(session(server.address, args.session_orders))
            batched_rate, batched_filled = uvloop.run(
                session(server.address, args.session_orders, BATCH)
            )
            go_unary = loadgen(
                "unary", "-addr", server.address, "-seconds", str(args.seconds), "-prefix", "gu"
            )
            go_session = loadgen(
                "session", "-addr", server.address, "-orders", str(args.session_orders),
                "-prefix", "gs",
            )  # fmt: skip
            # The same orders, BATCH to a request message (answers packed): what a high-rate
            # client sends when per-message cost is what limits it.
            go_batched = loadgen(
                "session", "-addr", server.address, "-orders", str(args.session_orders),
                "-prefix", "gb", "-batch", str(BATCH),
            )  # fmt: skip
        journal = {}
        for policy in (None, "never", "interval:100", "always"):
            samples = uvloop.run(journal_cost(Path(tmp), policy, args.journal_orders))
            journal[policy or "off"] = summary(samples)
    result = {
        "concurrency": CONCURRENCY,
        "null_rpc_per_s": round(null_rate),
        "place_order_per_s": round(order_rate),
        "round_ratios": [round(r, 2) for r in ratios],
        "ratio_orders_vs_null": round(statistics.median(ratios), 2),
        "order_session_per_s": round(session_rate),
        "order_session_filled": filled,
        "order_session_sent": args.session_orders,
        "order_session_batched": {
            "orders_per_request": BATCH,
            "orders_per_s": round(batched_rate),
            "filled": batched_filled,
        },
        "journal_round_trip_us": journal,
        "journal_cost_p50_us": {
            k: round(v["p50_us"] - journal["off"]["p50_us"], 1) for k, v in journal.items()
        },
        "go_client": None
        if go_unary is None or go_session is None or go_batched is None
        else {
            "null_rpc_per_s": round(go_unary["null_rpc_per_s"]),
            "place_order_per_s": round(go_unary["place_order_per_s"]),
            "round_ratios": [round(r, 2) for r in go_unary["round_ratios"]],
            "ratio_orders_vs_null": round(go_unary["median_ratio"], 2),
            "unary_filled": go_unary["filled"],
            "unary_orders": go_unary["orders"],
            "client_cpu_us_per_unary_order": round(go_unary["client_cpu_us_per_order"], 1),
            "order_session_per_s": round(go_session["orders_per_s"]),
            "order_session_ok": go_session["ok"],
            "order_session_filled": go_session["filled"],
            "client_cpu_us_per_session_order": round(go_session["client_cpu_us_per_order"], 1),
            "batched_session": {
                "orders_per_request": BATCH,
                "orders_per_s": round(go_batched["orders_per_s"]),
                "ok": go_batched["ok"],
                "filled": go_batched["filled"],
                "response_messages": go_batched["response_messages"],
                "client_cpu_us_per_order": round(go_batched["client_cpu_us_per_order"], 1),
            },
        },
        "targets": {"ratio_orders_vs_null": 0.7, "order_session_per_s": 15_000},
    }
    path = write("order_throughput", result)
    print(
        f"{CONCURRENCY} concurrent unary: null {null_rate:,.0f}/s, PlaceOrder {order_rate:,.0f}/s "
        f"→ {result['ratio_orders_vs_null']}x (target ≥ 0.7)"
    )
    print(
        f"one OrderSession: {session_rate:,.0f} orders/s acknowledged "
        f"({filled}/{args.session_orders} filled; target ≥ 15,000/s)"
    )
    print(
        f"one OrderSession in batches of {BATCH}: {batched_rate:,.0f} orders/s acknowledged "
        f"({batched_filled}/{args.session_orders} filled; target ≥ 15,000/s)"
    )
    go = result["go_client"]
    if go is not None:
        print(
            f"Go client: null {go['null_rpc_per_s']:,}/s, PlaceOrder {go['place_order_per_s']:,}/s "
            f"→ {go['ratio_orders_vs_null']}x; one OrderSession {go['order_session_per_s']:,} "
            f"orders/s ({go['order_session_filled']} filled)"
        )
        b = go["batched_session"]
        print(
            f"Go client, one OrderSession in batches of {BATCH}: {b['orders_per_s']:,} orders/s "
            f"({b['filled']} filled, {b['response_messages']} packed answer messages; "
            "target ≥ 15,000/s)"
        )
    for policy, s in journal.items():
        print(
            f"engine round trip, journal {policy:>12}: p50 {s['p50_us']:7.1f} µs "
            f"p99 {s['p99_us']:7.1f} µs"
        )
    print(f"written to {path}")


if __name__ == "__main__":
    main()
