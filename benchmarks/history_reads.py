"""A ListOrders page of 100 from the history with 1,000,000 orders stored, beside a null RPC.

Setup: a server makes a sim instance and stops; its instance record is dated 31 days back
(what an instance that has traded for a month looks like: the history shows an instance the
orders of its own life only), and 1,000,000 finished orders spread over the last 30 days are
written straight into its DuckDB file with SQL, each with its encoded Order as the history
writer stores it (schema v7). The server starts again: the engine remembers none of them, so
every page comes from the history (through the history child's read thread).

Measured in one run, interleaved call by call: the null RPC (``AuthService/WhoAmI``, the
cheapest call that passes the gate, as in auth_overhead.py), the first page of 100, a page
of 100 from the middle of the month (a page token), both asked again and again (the history
process keeps its last answers until it writes again), and pages from the middle it has not
kept (64 pages in turn: a DuckDB query each). Target: p50 of a page ≤ 5x the null RPC's.

Usage: nice python benchmarks/history_reads.py [--orders 1000000] [--calls 300]
Writes benchmarks/results/history_reads.json.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import duckdb

from _common import child_pids, cpu_seconds, summary, write
from mt5exec.storage import history_reads as reads
from mt5exec.storage.history import HistoryWriter
from mt5exec.testing import ServerProcess
from mt5exec.v1 import auth_pb2, auth_pb2_grpc, common_pb2, instance_pb2, order_pb2, order_pb2_grpc

TARGET = 5.0
DAY_NS = 86_400 * 1_000_000_000


def _generate(db: Path, orders: int, end_us: int) -> float:
    """``orders`` filled orders of instance ``bench`` over the 30 days before ``end_us``."""
    schema = HistoryWriter(db)
    schema.start()
    schema.close()
    step = 30 * 86_400 * 1_000_000 // orders
    start = end_us - orders * step
    began = time.monotonic()
    with duckdb.connect(str(db)) as conn:
        conn.execute(
            f"""
            INSERT INTO orders BY NAME
            SELECT 'bench' AS instance_id, printf('h-%07d', i) AS client_order_id,
                   i + 1 AS order_id, CASE WHEN i % 3 = 0 THEN 'GBPUSD' ELSE 'EURUSD' END
                   AS symbol, CASE WHEN i % 2 = 0 THEN 'BUY' ELSE 'SELL' END AS side,
                   'MARKET' AS type, 0.01 AS volume, 0.01 AS filled_volume, 1.1 AS price,
                   'IOC' AS filling, 'FILLED' AS status, 1.1 AS average_fill_price,
                   i + 1 AS position_id, 10009 AS retcode, 'done' AS status_message,
                   make_timestamp({start} + i * {step}) AS created_at,
                   make_timestamp({start} + i * {step} + 1000) AS updated_at,
                   make_timestamp({start} + i * {step} + 2000) AS recorded_at
            FROM range({orders}) t(i)
            """
        )
        _encode(conn)
    return time.monotonic() - began


def _encode(conn: duckdb.DuckDBPyConnection, chunk: int = 100_000) -> None:
    """Each row's ``encoded`` Order, as the history writer stores it with the row."""
    conn.execute("CREATE TEMP TABLE encoded_orders (rid BIGINT, encoded BLOB)")
    appender = conn.appender("encoded_orders")
    (total,) = conn.execute("SELECT count(*) FROM orders").fetchall()[0]
    for low in range(0, total, chunk):
        rows = conn.execute(
            f"SELECT rowid, {reads._ORDER_COLUMNS} FROM orders "
            f"WHERE rowid >= {low} AND rowid < {low + chunk}"
        ).fetchall()
        appender.append_rows([(r[0], reads.order_of(r[1:]).SerializeToString()) for r in rows])
    appender.flush()
    conn.execute(
        "UPDATE orders SET encoded = e.encoded FROM encoded_orders e WHERE orders.rowid = e.rid"
    )


def _age_instance(data: Path, instance_id: str, days: int) -> None:
    record = next((data / "instances").glob(f"*/{instance_id}/instance.json"))
    content = json.loads(record.read_text())
    content["created_unix_ns"] = time.time_ns() - days * DAY_NS
    record.write_text(json.dumps(content))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mt5exec-history-reads-") as tmp:
        data = Path(tmp) / "data"
        with ServerProcess(data) as server:
            server.instances.CreateInstance(
                instance_pb2.CreateInstanceRequest(
                    instance_id="bench", config=common_pb2.InstanceConfig(symbols=["EURUSD"])
                ),
                timeout=60,
            )
        _age_instance(data, "bench", 31)
        end_us = time.time_ns() // 1000
        generated_s = _generate(data / "history.duckdb", args.orders, end_us)
        with ServerProcess(data) as server:
            channel = server.channel
            assert channel is not None
            who = auth_pb2_grpc.AuthServiceStub(channel).WhoAmI
            orders = order_pb2_grpc.OrderServiceStub(channel)
            first = order_pb2.ListOrdersRequest(instance_id="bench", history=True, page_size=100)
            middle = orders.ListOrders(
                order_pb2.ListOrdersRequest(
                    instance_id="bench",
                    history=True,
                    page_size=1,
                    to_time=_timestamp(end_us - 15 * 86_400 * 1_000_000),
                ),
                timeout=30,
            ).next_page_token
            deep = order_pb2.ListOrdersRequest(
                instance_id="bench", history=True, page_size=100, page_token=middle
            )
            got = orders.ListOrders(first, timeout=30)
            assert len(got.orders) == 100 and got.orders[0].client_order_id == (
                f"h-{args.orders - 1:07d}"
            ), got.orders[0]
            assert len(orders.ListOrders(deep, timeout=30).orders) == 100
            # Pages the history process has not kept (more than its Answers hold, in turn):
            # each one a DuckDB query.
            tokens = [middle]
            while len(tokens) < 2 * reads.Answers().size:
                request = order_pb2.ListOrdersRequest(
                    instance_id="bench", history=True, page_size=100, page_token=tokens[-1]
                )
                tokens.append(orders.ListOrders(request, timeout=30).next_page_token)
            unkept = itertools.cycle(
                [
                    order_pb2.ListOrdersRequest(
                        instance_id="bench", history=True, page_size=100, page_token=t
                    )
                    for t in tokens
                ]
            )
            samples: dict[str, list[float]] = {
                "null_rpc": [],
                "first_page": [],
                "deep_page": [],
                "deep_page_not_kept": [],
            }
            calls = (
                ("null_rpc", lambda: who(auth_pb2.WhoAmIRequest(), timeout=30)),
                ("first_page", lambda: orders.ListOrders(first, timeout=30)),
                ("deep_page", lambda: orders.ListOrders(deep, timeout=30)),
                ("deep_page_not_kept", lambda: orders.ListOrders(next(unkept), timeout=30)),
            )
            for i in range(args.warmup + args.calls):
                for name, call in calls:
                    began = time.perf_counter()
                    call()
                    took = time.perf_counter() - began
                    if i >= args.warmup:
                        samples[name].append(took)
            cpu = _cpu_per_call(server.pid, calls, args.calls)
        # The same pages read in this process, straight from DuckDB (what the history
        # process's read costs without the hops): the server is stopped, the file free.
        inside = _in_process(data / "history.duckdb", first, deep, args.calls)
    stats = {name: summary(s) for name, s in samples.items()}
    stats |= {f"in_process_{name}": summary(s) for name, s in inside.items()}
    null = stats["null_rpc"]
    ratios = {
        f"{name}_p50_ratio": round(stats[name]["p50_us"] / null["p50_us"], 2)
        for name in ("first_page", "deep_page", "deep_page_not_kept")
    } | {
        f"{name}_p99_ratio": round(stats[name]["p99_us"] / null["p99_us"], 2)
        for name in ("first_page", "deep_page", "deep_page_not_kept")
    }
    result = {
        "orders_stored": args.orders,
        "page_size": 100,
        "generate_s": round(generated_s, 2),
        "target_p50_ratio": TARGET,
        "stats": stats,
        "ratios": ratios,
        # CPU (server, its history process and this client) per call, in blocks of 20 calls
        # of a kind in turn: what the box's load does not inflate as it does wall time.
        "cpu_us_per_call": cpu,
        "cpu_ratios": {
            name: round(cpu[name]["total"] / cpu["null_rpc"]["total"], 2)
            for name in ("first_page", "deep_page", "deep_page_not_kept")
        },
        "met": all(v <= TARGET for k, v in ratios.items() if k.endswith("p50_ratio")),
    }
    path = write("history_reads", result)
    print(json.dumps(result, indent=2))
    print(f"written to {path}")


def _cpu_per_call(
    server_pid: int, calls: tuple[tuple[str, Callable[[], object]], ...], total: int
) -> dict[str, dict[str, float]]:
    """µs of CPU per call of each kind: by the server, its history process, this client, and
    in all."""
    # Not the sim worker: its ticks cost the same per second whatever is called.
    history = [
        pid
        for pid in child_pids(server_pid)
        if b"history_process" in Path(f"/proc/{pid}/cmdline").read_bytes()
    ]
    parts = {"server": [server_pid], "history": history, "client": [os.getpid()]}

    def spent() -> dict[str, float]:
        return {part: sum(cpu_seconds(pid) for pid in pids) for part, pids in parts.items()}

    used = {name: dict.fromkeys(parts, 0.0) for name, _ in calls}
    block = 20
    rounds = max(1, total // block)
    for _ in range(rounds):
        for name, call in calls:
            before = spent()
            for _ in range(block):
                call()
            after = spent()
            for part in parts:
                used[name][part] += after[part] - before[part]
    return {
        name: {part: round(s / (rounds * block) * 1e6, 1) for part, s in by.items()}
        | {"total": round(sum(by.values()) / (rounds * block) * 1e6, 1)}
        for name, by in used.items()
    }


def _in_process(
    db: Path, first: order_pb2.ListOrdersRequest, deep: order_pb2.ListOrdersRequest, calls: int
) -> dict[str, list[float]]:
    writer = HistoryWriter(db)
    writer.start()
    since = time.time_ns() - 31 * DAY_NS
    samples: dict[str, list[float]] = {"first_page": [], "deep_page": []}
    try:
        for _ in range(calls):
            for name, request in (("first_page", first), ("deep_page", deep)):
                began = time.perf_counter()
                writer.read(lambda q, r=request: reads.list_orders(q, r, since, True))
                samples[name].append(time.perf_counter() - began)
    finally:
        writer.close()
    return samples


def _timestamp(us: int) -> object:
    from google.protobuf.timestamp_pb2 import Timestamp

    return Timestamp(seconds=us // 1_000_000, nanos=us % 1_000_000 * 1000)


if __name__ == "__main__":
    main()
