"""What the Redis mirror costs trading: PlaceOrder's round trip and the tick fan-out with the
mirror on and off, in alternating rounds of the same run.

Three servers run side by side, each with a sim instance (netting, 2 symbols at --tick-rate
ticks/s each): ``off`` (no [redis]), ``off_control`` (a second one: what two servers differ by
anyway) and ``on`` (``[redis]`` writing to a redis-server this script starts, ``ticks = true``:
every tick published on pub/sub as well, the mirror's heaviest setting; with
``--no-mirror-ticks`` its default, ticks not published). Each round every
server has --subscribers StreamTicks clients open while --calls market PlaceOrders are timed,
interleaved server by server (each round starts the rotation with another server, so that the
machine's drift hits them alike). A Redis subscriber counts the ticks the mirror published.

Reported: PlaceOrder p50/p99 per server and the ratios against ``off`` (``round_p50_ratios``:
the median over the rounds of each round's p50 ratio); the ticks each server's subscribers
got, and those lost (gaps in ``sequence`` plus ``dropped``); the server processes' CPU per
order. Target: the mirror adds at most 5 % to PlaceOrder's p50 (ratio ≤ 1.05), and no tick is
lost.

Usage: nice python benchmarks/redis_mirror.py [--rounds 8] [--calls 150] [--warmup 100]
       [--subscribers 4] [--tick-rate 50] [--no-mirror-ticks] [--batch-interval-ms 25]
Writes benchmarks/results/redis_mirror.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import grpc
import redis.asyncio as aioredis
import uvloop

from _common import cpu_seconds, summary, write
from auth_overhead import order
from mt5exec.testing import ServerProcess
from mt5exec.v1 import (
    common_pb2,
    instance_pb2,
    order_pb2_grpc,
    stream_pb2,
    stream_pb2_grpc,
)

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from redis_server import RedisServer

MODES = ("off", "off_control", "on")
TARGET = 1.05
PREFIX = "bench:"


def config(tick_rate: float) -> common_pb2.InstanceConfig:
    return common_pb2.InstanceConfig(
        symbols=["EURUSD", "GBPUSD"],
        tick_rate=tick_rate,
        margin_mode=common_pb2.ACCOUNT_MARGIN_MODE_NETTING,
        risk=common_pb2.RiskLimits(max_order_volume=10.0, min_order_volume=0.01),
    )


Target = tuple[str, str | None, int]  # address, token, server pid


@contextmanager
def servers(root: Path, rs: RedisServer, args: argparse.Namespace) -> Iterator[dict[str, Target]]:
    ticks = "true" if args.mirror_ticks else "false"
    (root / "on.toml").write_text(
        f'[redis]\nurl = "{rs.url}"\nprefix = "{PREFIX}"\nticks = {ticks}\n'
        f"batch_interval_ms = {args.batch_interval_ms}\n"
    )
    with ExitStack() as stack:
        started = {
            mode: stack.enter_context(
                ServerProcess(root / mode, config=root / "on.toml" if mode == "on" else None)
            )
            for mode in MODES
        }
        for server in started.values():
            server.instances.CreateInstance(
                instance_pb2.CreateInstanceRequest(
                    instance_id="bench", config=config(args.tick_rate)
                ),
                timeout=60,
            )
        time.sleep(1.0)  # a first price
        yield {m: (s.address, s.token, s.pid) for m, s in started.items()}


class TickCount:
    """What one StreamTicks subscriber got: ticks, and those lost (sequence gaps, dropped)."""

    def __init__(self) -> None:
        self.received = 0
        self.lost = 0
        self._next = 0
        self._dropped = 0

    def add(self, response: stream_pb2.StreamTicksResponse) -> None:
        n = len(response.ticks)
        if self._next and response.sequence > self._next:
            self.lost += response.sequence - self._next
        self._next = response.sequence + n
        self.received += n
        if response.dropped > self._dropped:
            self.lost += response.dropped - self._dropped
            self._dropped = response.dropped


async def follow_ticks(
    stub: stream_pb2_grpc.StreamServiceStub, metadata: Any, count: TickCount
) -> None:
    call = stub.StreamTicks(stream_pb2.StreamTicksRequest(), metadata=metadata)
    try:
        async for response in call:
            count.add(response)
    except asyncio.CancelledError:
        call.cancel()
        raise


async def count_published(client: aioredis.Redis, counts: list[int]) -> None:
    pubsub = client.pubsub()
    await pubsub.psubscribe(f"{PREFIX}ticks:*")
    try:
        async for message in pubsub.listen():
            if message["type"] == "pmessage":
                counts[0] += len(json.loads(message["data"]))
    finally:
        await pubsub.aclose()


async def measure(
    targets: dict[str, Target], rs: RedisServer, args: argparse.Namespace
) -> dict[str, Any]:
    channels = {m: grpc.aio.insecure_channel(address) for m, (address, _, _) in targets.items()}
    metadata = {
        m: None if token is None else (("authorization", f"Bearer {token}"),)
        for m, (_, token, _) in targets.items()
    }
    orders = {m: order_pb2_grpc.OrderServiceStub(c) for m, c in channels.items()}
    streams = {m: stream_pb2_grpc.StreamServiceStub(c) for m, c in channels.items()}
    samples: dict[str, list[list[float]]] = {m: [] for m in MODES}
    ticks: dict[str, list[TickCount]] = {m: [] for m in MODES}
    published = [0]
    redis_client = aioredis.Redis(port=rs.port)
    counter = 0

    async def place(mode: str) -> float:
        nonlocal counter
        counter += 1
        t0 = time.perf_counter()
        reply = await orders[mode].PlaceOrder(order(mode, counter), metadata=metadata[mode])
        elapsed = time.perf_counter() - t0
        assert reply.order.status == common_pb2.ORDER_STATUS_FILLED, reply
        return elapsed

    try:
        for _ in range(args.warmup):
            for mode in MODES:
                await place(mode)
        cpu = {m: cpu_seconds(pid) for m, (_, _, pid) in targets.items()}
        publisher = asyncio.create_task(count_published(redis_client, published))
        for r in range(args.rounds):
            followers = []
            for m in MODES:
                for _ in range(args.subscribers):
                    count = TickCount()
                    ticks[m].append(count)
                    followers.append(
                        asyncio.create_task(follow_ticks(streams[m], metadata[m], count))
                    )
            rotation = MODES[r % len(MODES) :] + MODES[: r % len(MODES)]
            timed: dict[str, list[float]] = {m: [] for m in MODES}
            for _ in range(args.calls):
                for mode in rotation:
                    timed[mode].append(await place(mode))
            for task in followers:
                task.cancel()
            await asyncio.gather(*followers, return_exceptions=True)
            for mode in MODES:
                samples[mode].append(timed[mode])
        publisher.cancel()
        await asyncio.gather(publisher, return_exceptions=True)
        orders_timed = args.rounds * args.calls
        cpu_per_order = {
            m: round((cpu_seconds(pid) - cpu[m]) / orders_timed * 1e6, 1)
            for m, (_, _, pid) in targets.items()
        }
    finally:
        await redis_client.aclose()
        for channel in channels.values():
            await channel.close()
    return {
        "samples": samples,
        "ticks": {
            m: {"received": sum(t.received for t in ts), "lost": sum(t.lost for t in ts)}
            for m, ts in ticks.items()
        },
        "ticks_published_by_the_mirror": published[0],
        "server_cpu_us_per_order": cpu_per_order,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed (make setup installs it)")
    with tempfile.TemporaryDirectory(prefix="mt5exec-bench-") as tmp:
        rs = RedisServer(binary, Path(tmp))
        rs.start()
        try:
            with servers(Path(tmp), rs, args) as targets:
                measured = uvloop.run(measure(targets, rs, args))
        finally:
            rs.kill()
    samples = measured.pop("samples")
    modes = {m: summary([t for r in samples[m] for t in r]) for m in MODES}
    result: dict[str, Any] = {
        "rounds": args.rounds,
        "calls_per_round": args.calls,
        "subscribers_per_server": args.subscribers,
        "ticks_per_s_per_server": args.tick_rate * 2,
        "mirror_ticks_on_pub_sub": args.mirror_ticks,
        "mirror_batch_interval_ms": args.batch_interval_ms,
        "place_order": modes,
        "ratios_vs_off": {
            m: {p: round(modes[m][f"{p}_us"] / modes["off"][f"{p}_us"], 3) for p in ("p50", "p99")}
            for m in ("off_control", "on")
        },
        "round_p50_ratios": {
            m: round(
                statistics.median(
                    summary(mine)["p50_us"] / summary(off)["p50_us"]
                    for mine, off in zip(samples[m], samples["off"], strict=True)
                ),
                3,
            )
            for m in ("off_control", "on")
        },
        **measured,
        "target_p50_ratio": TARGET,
    }
    result["met"] = result["round_p50_ratios"]["on"] <= TARGET and all(
        t["lost"] == 0 for t in result["ticks"].values()
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--calls", type=int, default=150, help="orders per server and round")
    parser.add_argument("--warmup", type=int, default=100, help="orders per server, not timed")
    parser.add_argument("--subscribers", type=int, default=4, help="tick streams per server")
    parser.add_argument("--tick-rate", type=float, default=50.0, help="per symbol (2 symbols)")
    parser.add_argument(
        "--no-mirror-ticks",
        dest="mirror_ticks",
        action="store_false",
        help="the mirror without ticks on pub/sub (its default setting)",
    )
    parser.add_argument(
        "--batch-interval-ms", type=int, default=25, help="the mirror's [redis] batch_interval_ms"
    )
    args = parser.parse_args()
    result = run(args)
    path = write("redis_mirror", result)
    for mode in MODES:
        m = result["place_order"][mode]
        print(f"{mode:12s} PlaceOrder p50 {m['p50_us']:7.1f} p99 {m['p99_us']:8.1f} µs")
    print(f"ratios vs off: {result['ratios_vs_off']}")
    print(f"median of the rounds' p50 ratios: {result['round_p50_ratios']}")
    print(f"ticks: {result['ticks']}")
    print(f"ticks published by the mirror: {result['ticks_published_by_the_mirror']}")
    print(f"server CPU per order (µs): {result['server_cpu_us_per_order']}")
    print(f"target p50 ≤ {TARGET}x and no tick lost: {result['met']}")
    print(f"written to {path}")


if __name__ == "__main__":
    main()
