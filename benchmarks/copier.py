"""Trade copier: one master, 30 simulated followers, one server, one run.

Rounds one after another: a market order on the master (alternately buy and sell, so that
the netting positions stay small); a round ends when all 30 followers have reported a fill
(StreamExecutions of every instance, read by this client). Two ways to copy, same server:

  client  - the copy done by a client through the public API (the way without a copier): on
            the master's fill on StreamExecutions, 30 PlaceOrders at once (grpc.aio, uvloop);
  engine  - the engine's copier: 30 relations master -> follower (multiplier 1); the client
            only watches.

Reported for each: master fill first seen (its PlaceOrder answer or its fill on the stream,
whichever came first) -> the 30th follower fill seen (p50, p99),
the CPU per round of each process (the server's event loop thread and its other threads, the
workers together, the history child, this client: /proc, over the measured rounds), and for
the engine its own time from the master's deal report to each follower order frame
written (CopyRelationStats of GetCopyRelation: the slowest relation's p50 and p99 stand for
the 30th follower order). Ratio: client p50 / engine p50 (target >= 10).

Usage: python benchmarks/copier.py [--rounds 200] [--warmup 20] [--followers 30]
Writes benchmarks/results/copier.json.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import uvloop

from _common import auth_metadata, child_pids, cpu_seconds, summary, use_token, write
from mt5exec.testing import ServerProcess
from mt5exec.v1 import (
    common_pb2,
    instance_pb2,
    order_pb2,
    order_pb2_grpc,
    stream_pb2,
    stream_pb2_grpc,
)

MASTER = "master"
CONFIG = common_pb2.InstanceConfig(
    symbols=["EURUSD"],
    tick_rate=2,
    margin_mode=common_pb2.ACCOUNT_MARGIN_MODE_NETTING,
    # The gate runs on every order; only its volume limits are set, so nothing throttles.
    risk=common_pb2.RiskLimits(max_order_volume=10.0, min_order_volume=0.01),
)


def followers(n: int) -> list[str]:
    return [f"f{i:02d}" for i in range(n)]


def side(i: int) -> common_pb2.Side:
    return common_pb2.SIDE_BUY if i % 2 == 0 else common_pb2.SIDE_SELL


@dataclass
class Round:
    """One master order and what the stream showed of it."""

    index: int
    want: int
    master_fill: float = 0.0
    follower_fills: int = 0
    last_fill: float = 0.0
    done: asyncio.Event = field(default_factory=asyncio.Event)


class Watcher:
    """Reads StreamExecutions of every instance; the fills of the current round are its."""

    def __init__(self) -> None:
        self.current: Round | None = None
        self.on_master_fill: (
            Callable[[Round, common_pb2.Fill], Coroutine[Any, Any, None]] | None
        ) = None
        self.started = asyncio.Event()
        self.tasks: set[asyncio.Task[None]] = set()

    async def run(self, stub: stream_pb2_grpc.StreamServiceStub) -> None:
        call = stub.StreamExecutions(stream_pb2.StreamExecutionsRequest(), metadata=auth_metadata())
        await call.initial_metadata()
        self.started.set()
        async for response in call:
            now = time.perf_counter()
            for event in response.events:
                if event.WhichOneof("event") == "fill":
                    self._fill(event.fill, now)

    def _fill(self, fill: common_pb2.Fill, now: float) -> None:
        r = self.current
        if r is None:
            return
        if fill.instance_id == MASTER:
            if not r.master_fill:
                r.master_fill = now
                if self.on_master_fill is not None:
                    task = asyncio.create_task(self.on_master_fill(r, fill))
                    self.tasks.add(task)
                    task.add_done_callback(self.tasks.discard)
        else:
            r.follower_fills += 1
            r.last_fill = now
        if r.master_fill and r.follower_fills >= r.want:
            r.done.set()


class Cpu:
    """CPU seconds used so far by the server's event loop thread, its other threads (the
    engine's), the workers together, the history child and this process."""

    def __init__(self, server_pid: int) -> None:
        self._server = server_pid

    def now(self) -> dict[str, float]:
        loop = _thread_cpu(self._server, self._server)
        used = {
            "server_loop": loop,
            "server_engine": cpu_seconds(self._server) - loop,
            "workers": 0.0,
            "history": 0.0,
            "client": time.process_time(),
        }
        for pid in child_pids(self._server):
            try:
                history = b"history_process" in Path(f"/proc/{pid}/cmdline").read_bytes()
                used["history" if history else "workers"] += cpu_seconds(pid)
            except OSError:  # gone meanwhile
                continue
        return used


def _thread_cpu(pid: int, tid: int) -> float:
    with open(f"/proc/{pid}/task/{tid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def per_round(before: dict[str, float], after: dict[str, float], count: int) -> dict[str, float]:
    """µs of CPU per round of each part, and all of them together."""
    used: dict[str, float] = {k: round((after[k] - before[k]) / count * 1e6) for k in before}
    used["all"] = sum(used.values())
    return used


async def rounds(
    address: str,
    names: list[str],
    count: int,
    warmup: int,
    tag: str,
    client_copies: bool,
    cpu: Cpu,
) -> tuple[list[float], dict[str, float]]:
    """Master fill seen -> the 30th follower fill seen, per round (after the warmup), and the
    CPU per round of each part over those rounds."""
    key = auth_metadata()
    async with grpc.aio.insecure_channel(address) as channel:
        orders = order_pb2_grpc.OrderServiceStub(channel)
        watcher = Watcher()

        async def copy(r: Round, fill: common_pb2.Fill) -> None:
            # What a client copier does: the master's deal, to every follower, at once.
            replies = await asyncio.gather(
                *(
                    orders.PlaceOrder(
                        order_pb2.PlaceOrderRequest(
                            instance_id=name,
                            client_order_id=f"{tag}{r.index}-{name}",
                            symbol=fill.symbol,
                            side=fill.side,
                            type=common_pb2.ORDER_TYPE_MARKET,
                            volume=fill.volume,
                        ),
                        metadata=key,
                    )
                    for name in names
                )
            )
            for reply in replies:
                assert reply.order.status == common_pb2.ORDER_STATUS_FILLED, reply

        if client_copies:
            watcher.on_master_fill = copy
        reader = asyncio.create_task(watcher.run(stream_pb2_grpc.StreamServiceStub(channel)))
        await watcher.started.wait()
        samples: list[float] = []
        before = cpu.now()
        try:
            for i in range(warmup + count):
                if i == warmup:
                    before = cpu.now()
                r = Round(i, len(names))
                watcher.current = r
                reply = await orders.PlaceOrder(
                    order_pb2.PlaceOrderRequest(
                        instance_id=MASTER,
                        client_order_id=f"{tag}m{i}",
                        symbol="EURUSD",
                        side=side(i),
                        type=common_pb2.ORDER_TYPE_MARKET,
                        volume=0.01,
                    ),
                    metadata=key,
                )
                assert reply.order.status == common_pb2.ORDER_STATUS_FILLED, reply
                answered = time.perf_counter()
                await asyncio.wait_for(r.done.wait(), 60)
                # Stragglers of this round (none expected) must not count for the next.
                watcher.current = None
                if i >= warmup:
                    # From when the master's fill was first known here: its order's answer
                    # or its fill on the stream (on a busy box the stream's can come after
                    # the copies left).
                    samples.append(r.last_fill - min(r.master_fill, answered))
            used = per_round(before, cpu.now(), count)
        finally:
            reader.cancel()
        return samples, used


def create_instances(server: ServerProcess, names: list[str]) -> None:
    # A few at a time: 31 workers starting at once on a busy two-core box miss their start
    # timeout.
    everyone = [MASTER, *names]
    for start in range(0, len(everyone), 6):
        futures = [
            server.instances.CreateInstance.future(
                instance_pb2.CreateInstanceRequest(instance_id=name, config=CONFIG), timeout=180
            )
            for name in everyone[start : start + 6]
        ]
        for future in futures:
            future.result()
    for name in [MASTER, *names]:
        wait_for_price(server, name)


def wait_for_price(server: ServerProcess, name: str) -> None:
    check = order_pb2.CheckOrderRequest(
        order=order_pb2.PlaceOrderRequest(
            instance_id=name,
            client_order_id="probe",
            symbol="EURUSD",
            side=common_pb2.SIDE_BUY,
            type=common_pb2.ORDER_TYPE_MARKET,
            volume=0.01,
        )
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            server.orders.CheckOrder(check, timeout=10)
            return
        except grpc.RpcError as e:
            if "NO_PRICE" not in str(e.details()):
                return
        time.sleep(0.05)
    raise TimeoutError(f"no price on {name}")


def relate(server: ServerProcess, names: list[str]) -> list[str] | str:
    """A relation master -> each follower; their ids, or why the copier could not be used."""
    ids = []
    for name in names:
        relation = order_pb2.CopyRelation(
            master_instance_id=MASTER,
            follower_instance_id=name,
            volume_mode=order_pb2.COPY_VOLUME_MODE_MULTIPLIER,
            multiplier=1.0,
        )
        try:
            created = server.orders.CreateCopyRelation(
                order_pb2.CreateCopyRelationRequest(relation=relation), timeout=30
            )
        except grpc.RpcError as e:
            return f"CreateCopyRelation: {e.code().name}: {e.details()}"
        ids.append(created.relation.relation_id)
    return ids


def engine_times(server: ServerProcess, ids: list[str]) -> dict[str, Any]:
    """The copier's own latency (master deal in -> follower order frame out), per relation;
    the slowest relation's stands for the 30th follower order of a deal."""
    stats = [
        server.orders.GetCopyRelation(
            order_pb2.GetCopyRelationRequest(relation_id=i), timeout=30
        ).stats
        for i in ids
    ]
    p50 = [s.latency_p50_seconds * 1e6 for s in stats]
    p99 = [s.latency_p99_seconds * 1e6 for s in stats]
    return {
        "copies": sum(s.copies for s in stats),
        "skipped": sum(sum(s.skipped.values()) for s in stats),
        "p50_us_30th": round(max(p50), 1),
        "p99_us_30th": round(max(p99), 1),
        "p50_us_first": round(min(p50), 1),
        "targets": {"p50_us_30th": 1000, "p99_us_30th": 5000},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--followers", type=int, default=30)
    args = parser.parse_args()
    names = followers(args.followers)
    env = {
        "MT5EXEC_SERVER_MAX_INSTANCES": str(args.followers + 1),
        "MT5EXEC_ENGINE_WORKER_START_TIMEOUT_S": "60",
    }
    with (
        tempfile.TemporaryDirectory(prefix="mt5exec-bench-") as tmp,
        ServerProcess(Path(tmp) / "server", env=env, start_timeout=60) as server,
    ):
        use_token(server.token)
        create_instances(server, names)
        cpu = Cpu(server.pid)
        client, client_cpu = uvloop.run(
            rounds(server.address, names, args.rounds, args.warmup, "c", True, cpu)
        )
        ids = relate(server, names)
        engine: list[float] | None = None
        engine_cpu: dict[str, float] | None = None
        times: dict[str, Any] | str
        if isinstance(ids, str):
            times = ids
        else:
            print(f"{len(ids)} relations made; the engine copies", file=sys.stderr, flush=True)
            engine, engine_cpu = uvloop.run(
                rounds(server.address, names, args.rounds, args.warmup, "e", False, cpu)
            )
            times = engine_times(server, ids)
    s_client = summary(client)
    result: dict[str, Any] = {
        "rounds": args.rounds,
        "followers": args.followers,
        "client_copy_fill_to_fills": s_client,
        "engine_copy_fill_to_fills": None if engine is None else summary(engine),
        "engine_deal_to_order": times,
        "cpu_us_per_round": {"client_copy": client_cpu, "engine_copy": engine_cpu},
        "targets": {"p50_client_vs_engine": 10.0},
    }
    print(
        f"client copy (StreamExecutions -> {args.followers} x PlaceOrder): master fill -> "
        f"last follower fill p50 {s_client['p50_us']:.0f} µs, p99 {s_client['p99_us']:.0f} µs"
    )
    if engine is not None and isinstance(times, dict):
        s_engine = result["engine_copy_fill_to_fills"]
        result["p50_client_vs_engine"] = round(s_client["p50_us"] / s_engine["p50_us"], 1)
        print(
            f"engine copier: master fill -> last follower fill p50 {s_engine['p50_us']:.0f} µs, "
            f"p99 {s_engine['p99_us']:.0f} µs -> {result['p50_client_vs_engine']}x (target >= 10)"
        )
        print(
            f"engine time, deal in -> 30th order out: p50 {times['p50_us_30th']:.0f} µs "
            f"(target <= 1000), p99 {times['p99_us_30th']:.0f} µs (target <= 5000)"
        )
        print(f"CPU µs per round, client copy: {client_cpu}")
        print(f"CPU µs per round, engine copy: {engine_cpu}")
    else:
        print(f"engine copier not measured: {times}")
    print(f"written to {write('copier', result)}")


if __name__ == "__main__":
    main()
