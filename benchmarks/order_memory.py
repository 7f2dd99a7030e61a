"""What remembering orders costs: the server's memory and its journal as orders keep coming.

Two servers in turn, each fed the same batched OrderSession orders (Go load generator, 100
orders per message) in rounds: one with the default retention (an instance remembers at most
100,000 orders; the journal is compacted past 64 MB; 512 MB of execution events kept), and a
baseline that remembers every order and event for ten years and never compacts while running
(what the engine did before the retention). After every round the server's resident memory
(VmRSS), the journal's size, the execution log's and the sim broker's journal's are read;
at the end, the p50 of ListOrders pages (100 orders of the history, the first page and one ten
pages deep) beside a null RPC (health Check), with every remembered order in the book; then
1.5 rounds' orders paced at 15,000/s, timing each batch of 100 from its send to its last
answer: the order path's tail with the book at its cap (its retirement passes and the
journal's compactions run meanwhile) beside the server that never forgets.

Reported per server: RSS and journal size after each round, and their growth per 100,000
orders over the rounds after the first 200,000 (when the bounded server is past its cap).

Usage: python benchmarks/order_memory.py [--orders 100000] [--rounds 5]
Writes benchmarks/results/order_memory.json. Needs Go (the load generator); without it the
run is skipped.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from grpc_health.v1 import health_pb2, health_pb2_grpc

from _common import cpu_seconds, loadgen, use_token, write
from mt5exec.testing import ServerProcess
from mt5exec.v1 import common_pb2, instance_pb2, order_pb2

CONFIG = common_pb2.InstanceConfig(
    symbols=["EURUSD"],
    tick_rate=10,
    margin_mode=common_pb2.ACCOUNT_MARGIN_MODE_NETTING,
    # Every round trip pays the spread: enough money for a million of them.
    initial_balance=1e9,
    risk=common_pb2.RiskLimits(max_order_volume=10.0, min_order_volume=0.01),
)
BATCH = 100
# The paced run after the rounds: orders/s, below what one session takes (~25-40k/s), so that
# a batch's answer time is the order path's own, stalls included, not time spent queued.
PACED_RATE = 15_000
SERVERS = {
    "bounded": {},
    "unbounded": {
        "MT5EXEC_ENGINE_FINAL_ORDER_RETENTION_S": str(10 * 365 * 86400),
        "MT5EXEC_ENGINE_MAX_ORDERS_PER_INSTANCE": str(10**9),
        "MT5EXEC_ENGINE_JOURNAL_COMPACT_MB": str(10**6),
        "MT5EXEC_ENGINE_EXECUTION_LOG_MAX_MB": str(10**6),
    },
}


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def p50_us(call: Any, times: int = 30) -> float:
    samples = []
    for _ in range(times):
        t0 = time.perf_counter()
        call()
        samples.append(time.perf_counter() - t0)
    return round(statistics.median(samples) * 1e6, 1)


def listing(server: ServerProcess) -> dict[str, float]:
    """ListOrders page times beside a null RPC, with the book as the feeding left it."""
    request = order_pb2.ListOrdersRequest(instance_id="bench", history=True, page_size=100)
    deep = request
    for _ in range(10):
        deep = order_pb2.ListOrdersRequest(
            instance_id="bench",
            history=True,
            page_size=100,
            page_token=server.orders.ListOrders(deep, timeout=30).next_page_token,
        )
    check = health_pb2.HealthCheckRequest()
    health = health_pb2_grpc.HealthStub(server.channel)
    return {
        "null_rpc_p50_us": p50_us(lambda: health.Check(check, timeout=30)),
        "first_page_p50_us": p50_us(lambda: server.orders.ListOrders(request, timeout=30)),
        "page_11_p50_us": p50_us(lambda: server.orders.ListOrders(deep, timeout=30)),
    }


def feed(
    data_dir: Path, env: dict[str, str], orders: int, rounds: int
) -> tuple[list[dict[str, Any]], dict[str, float]]:
    # History off: the DuckDB child process is not what is measured.
    env = {"MT5EXEC_HISTORY_ENABLED": "false", **env}
    points = []
    with ServerProcess(data_dir, env=env) as server:
        use_token(server.token)
        worker = server.instances.CreateInstance(
            instance_pb2.CreateInstanceRequest(instance_id="bench", config=CONFIG), timeout=30
        ).instance.worker_pid
        time.sleep(0.3)
        journal = data_dir / "journal" / "orders.journal"
        for r in range(rounds):
            cpu = cpu_seconds(server.pid)
            result = loadgen(
                "session", "-addr", server.address, "-orders", str(orders),
                "-batch", str(BATCH), "-prefix", f"m{r}-",
            )  # fmt: skip
            if result is None:
                return [], {}
            time.sleep(0.5)  # a compaction under way finishes
            points.append(
                {
                    "orders": orders * (r + 1),
                    "filled": result["filled"],
                    "orders_per_s": round(result["orders_per_s"]),
                    # The server process, compaction thread included (the worker apart).
                    "server_cpu_us_per_order": round(
                        (cpu_seconds(server.pid) - cpu) / orders * 1e6, 1
                    ),
                    "rss_mb": round(rss_mb(server.pid), 1),
                    "sim_worker_rss_mb": round(rss_mb(worker), 1),
                    "journal_mb": round(journal.stat().st_size / 2**20, 2),
                    "execution_log_mb": round(
                        sum(p.stat().st_size for p in data_dir.rglob("executions*.log")) / 2**20,
                        2,
                    ),
                    # The simulated broker's own journal (compacted past 64 MB, keeping the
                    # history of its newest 100,000 orders of the last 24 h).
                    "sim_state_log_mb": round(
                        sum(p.stat().st_size for p in data_dir.rglob("sim_state.log")) / 2**20, 2
                    ),
                }
            )
            print(f"  {points[-1]}", flush=True)
        pages = listing(server)
        print(f"  ListOrders: {pages}", flush=True)
        paced = loadgen(
            "session", "-addr", server.address, "-orders", str(orders * 3 // 2),
            "-batch", str(BATCH), "-rate", str(PACED_RATE), "-prefix", "paced-",
        )  # fmt: skip
        assert paced is not None
        pages["paced_answer_ms"] = paced["answer_ms"]
        print(f"  paced at {PACED_RATE}/s, a batch's answer: {paced['answer_ms']}", flush=True)
    return points, pages


def growth_per_100k(points: list[dict[str, Any]], key: str, after: int) -> float | None:
    later = [p for p in points if p["orders"] >= after]
    if len(later) < 2:
        return None
    first, last = later[0], later[-1]
    return round((last[key] - first[key]) / (last["orders"] - first["orders"]) * 100_000, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=100_000, help="orders per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    result: dict[str, Any] = {"orders_per_round": args.orders, "rounds": args.rounds}
    with tempfile.TemporaryDirectory(prefix="mt5exec-bench-") as tmp:
        for name, env in SERVERS.items():
            print(f"{name}:", flush=True)
            points, pages = feed(Path(tmp) / name, env, args.orders, args.rounds)
            if not points:
                print("Go is not installed: skipped", file=sys.stderr)
                return
            result[name] = {
                "points": points,
                "list_orders": pages,
                "rss_mb_per_100k_orders_after_200k": growth_per_100k(points, "rss_mb", 200_000),
                "journal_mb_per_100k_orders_after_200k": growth_per_100k(
                    points, "journal_mb", 200_000
                ),
                "sim_state_log_mb_per_100k_orders_after_200k": growth_per_100k(
                    points, "sim_state_log_mb", 200_000
                ),
            }
    path = write("order_memory", result)
    for name in SERVERS:
        r = result[name]
        last = r["points"][-1]
        print(
            f"{name}: after {last['orders']:,} orders RSS {last['rss_mb']} MB, journal "
            f"{last['journal_mb']} MB; growth per 100k orders after 200k: RSS "
            f"{r['rss_mb_per_100k_orders_after_200k']} MB, journal "
            f"{r['journal_mb_per_100k_orders_after_200k']} MB, sim_state.log "
            f"{r['sim_state_log_mb_per_100k_orders_after_200k']} MB"
        )
    print(f"written to {path}")


if __name__ == "__main__":
    main()
