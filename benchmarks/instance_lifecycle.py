"""Instance lifecycle: spawn → READY, 30 at once, worker RSS, idle supervisor CPU, crash → READY.

Baseline measured in the same run: the bare start of a worker's interpreter with its imports
(`python -c "import mt5exec.workers.sim"`), the floor under any spawn → READY.

Usage: python benchmarks/instance_lifecycle.py [--rounds 30]
Writes benchmarks/results/instance_lifecycle.json.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from _common import cpu_seconds, summary, write
from mt5exec.testing import ServerProcess, wait_gone
from mt5exec.v1 import common_pb2, instance_pb2

CONFIG = common_pb2.InstanceConfig(symbols=["EURUSD", "GBPUSD", "USDJPY", "XAUUSD"])


def create(server: ServerProcess, instance_id: str) -> tuple[float, common_pb2.Instance]:
    t0 = time.perf_counter()
    reply = server.instances.CreateInstance(
        instance_pb2.CreateInstanceRequest(instance_id=instance_id, config=CONFIG), timeout=60
    )
    return time.perf_counter() - t0, reply.instance


def delete(server: ServerProcess, instance_id: str) -> None:
    server.instances.DeleteInstance(
        instance_pb2.DeleteInstanceRequest(instance_id=instance_id), timeout=60
    )


def interpreter_floor(rounds: int) -> list[float]:
    samples = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import mt5exec.workers.sim"], check=True)
        samples.append(time.perf_counter() - t0)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    floor = interpreter_floor(args.rounds)
    with tempfile.TemporaryDirectory(prefix="mt5exec-bench-") as tmp:
        with ServerProcess(Path(tmp) / "server") as server:
            create(server, "warmup")
            delete(server, "warmup")
            single = []
            for n in range(args.rounds):
                elapsed, _ = create(server, f"one-{n}")
                single.append(elapsed)
                delete(server, f"one-{n}")

            t0 = time.perf_counter()
            with ThreadPoolExecutor(30) as pool:
                results = list(pool.map(lambda n: create(server, f"many-{n}"), range(30)))
            thirty_s = time.perf_counter() - t0
            instances = [i for _, i in results]
            assert all(i.state == common_pb2.INSTANCE_STATE_READY for i in instances)

            time.sleep(2.0)  # let start-up settle before reading RSS and idle CPU
            rss = [
                server.instances.GetInstanceStats(
                    instance_pb2.GetInstanceStatsRequest(instance_id=i.instance_id), timeout=5
                ).stats.rss_bytes
                for i in instances
            ]
            window = 5.0
            server_cpu0 = cpu_seconds(server.pid)
            workers_cpu0 = sum(cpu_seconds(i.worker_pid) for i in instances)
            time.sleep(window)
            server_cpu = (cpu_seconds(server.pid) - server_cpu0) / window * 100
            workers_cpu = (sum(cpu_seconds(i.worker_pid) for i in instances) - workers_cpu0) / 30
            workers_cpu = workers_cpu / window * 100

            recover = []
            for i in instances[:10]:
                current = server.instances.GetInstance(
                    instance_pb2.GetInstanceRequest(instance_id=i.instance_id), timeout=5
                ).instance
                t0 = time.perf_counter()
                os.kill(current.worker_pid, signal.SIGKILL)
                while True:
                    now = server.instances.GetInstance(
                        instance_pb2.GetInstanceRequest(instance_id=i.instance_id), timeout=5
                    ).instance
                    if (
                        now.state == common_pb2.INSTANCE_STATE_READY
                        and now.worker_pid != current.worker_pid
                    ):
                        break
                    time.sleep(0.005)
                recover.append(time.perf_counter() - t0)

            pids = [
                i.worker_pid
                for i in server.instances.ListInstances(
                    instance_pb2.ListInstancesRequest(), timeout=5
                ).instances
            ]
        left = wait_gone(pids)

    s_single, s_floor, s_recover = summary(single), summary(floor), summary(recover)
    result = {
        "spawn_to_ready": s_single,
        "interpreter_floor": s_floor,
        "ratio_p50_spawn_vs_floor": round(s_single["p50_us"] / s_floor["p50_us"], 2),
        "thirty_concurrent_ready_s": round(thirty_s, 3),
        "worker_rss_mb": {
            "mean": round(sum(rss) / len(rss) / 2**20, 1),
            "max": round(max(rss) / 2**20, 1),
        },
        "idle_cpu_percent_of_one_core": {
            "server_with_30_instances": round(server_cpu, 2),
            "per_worker_at_10_ticks_per_s_x4_symbols": round(workers_cpu, 2),
        },
        "kill9_to_ready": s_recover,
        "workers_left_after_sigterm": len(left),
        "targets": {
            "spawn_to_ready_p50_ms": 100,
            "thirty_ready_s": 2.0,
            "worker_rss_mb": 40,
            "kill9_to_ready_s": 2.0,
        },
    }
    path = write("instance_lifecycle", result)
    print(
        f"spawn → READY     p50 {s_single['p50_us'] / 1000:6.1f} ms  p99 "
        f"{s_single['p99_us'] / 1000:6.1f} ms  (target p50 ≤ 100 ms)"
    )
    print(
        f"interpreter floor p50 {s_floor['p50_us'] / 1000:6.1f} ms  → ratio "
        f"{result['ratio_p50_spawn_vs_floor']}x"
    )
    print(f"30 instances READY in {thirty_s:.2f} s (target ≤ 2 s)")
    print(
        f"worker RSS mean {result['worker_rss_mb']['mean']} MB, max "
        f"{result['worker_rss_mb']['max']} MB (target ≤ 40 MB)"
    )
    print(f"idle CPU: server {server_cpu:.2f} % with 30 instances, each worker {workers_cpu:.2f} %")
    print(
        f"kill -9 → READY   p50 {s_recover['p50_us'] / 1000:6.1f} ms  p99 "
        f"{s_recover['p99_us'] / 1000:6.1f} ms  (target ≤ 2 s)"
    )
    print(f"workers left after SIGTERM: {len(left)}")
    print(f"written to {path}")


if __name__ == "__main__":
    main()
