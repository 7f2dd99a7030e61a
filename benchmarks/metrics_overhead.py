"""What the per-RPC metrics cost a call: a null RPC and PlaceOrder on a server that serves
/metrics (every unary call timed into ``mt5exec_rpc_seconds``, its errors counted) against
servers that do not (their handlers are not wrapped at all), in alternating rounds of the same
run.

Three servers run side by side, each with a sim instance and auth on (their admin API key):
``off`` and ``off_control`` without ``metrics_listen`` (what two servers differ by anyway),
``on`` with it, scraped every ``--scrape-every`` seconds as Prometheus would (the scrape runs
on the metrics thread; it is part of what metrics cost). The null RPC is
``AuthService/WhoAmI`` (it passes the handler wrapper and the gate, nothing else). Each round
times ``--calls`` pairs (WhoAmI, then a market PlaceOrder) per server, interleaved pair by pair
and rotated each round, so that the machine's drift hits them alike; ``round_p50_ratios`` are
the medians over the rounds of each round's p50 ratio against ``off``, and
``server_cpu_us_per_pair`` what each server process spent. ``in_process_us`` is the wrapper's
own cost, timed in this process: a timed handler around a coroutine that returns at once,
against the bare coroutine.

Target: the metrics add at most 3 % to the p50 of each call (ratio ≤ 1.03 against off).

Usage: python benchmarks/metrics_overhead.py [--rounds 10] [--calls 200] [--warmup 100]
       [--scrape-every 5] [--output PATH]
Writes benchmarks/results/metrics_overhead.json (or PATH).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
import timeit
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path
from typing import Any

import uvloop
from prometheus_client import CollectorRegistry

from _common import summary, write
from auth_overhead import CONFIG, measure
from mt5exec.rpc_metrics import RpcMetrics
from mt5exec.server.handlers import _timed
from mt5exec.testing import ServerProcess
from mt5exec.v1 import instance_pb2

MODES = ("off", "off_control", "on")
COMPARED = ("off_control", "on")
TARGET = 1.03

Target = tuple[str, str | None, int]  # address, token, server pid


@contextmanager
def servers(root: Path) -> Iterator[tuple[dict[str, Target], ServerProcess]]:
    """Each mode's address, token and pid; and the server whose /metrics is scraped."""
    with ExitStack() as stack:
        started = {
            mode: stack.enter_context(
                ServerProcess(
                    root / mode,
                    env=None if mode == "on" else {"MT5EXEC_SERVER_METRICS_LISTEN": ""},
                )
            )
            for mode in MODES
        }
        assert started["on"].metrics_address and not started["off"].metrics_address
        for server in started.values():
            server.instances.CreateInstance(
                instance_pb2.CreateInstanceRequest(instance_id="bench", config=CONFIG), timeout=30
            )
        time.sleep(1.0)  # a first price
        yield (
            {m: (s.address, s.token, s.pid) for m, s in started.items()},
            started["on"],
        )


@contextmanager
def scraping(server: ServerProcess, every: float) -> Iterator[list[int]]:
    """Scrapes /metrics every ``every`` seconds on a thread (the sizes of the scrapes)."""
    sizes: list[int] = []
    stop = threading.Event()

    def scrape() -> None:
        # Once at the start, then every ``every`` seconds: a short run still scrapes.
        while True:
            with urllib.request.urlopen(f"http://{server.metrics_address}/metrics") as r:
                sizes.append(len(r.read()))
            if stop.wait(every):
                return

    thread = threading.Thread(target=scrape, daemon=True)
    thread.start()
    try:
        yield sizes
    finally:
        stop.set()
        thread.join()


def in_process(repeat: int = 50_000) -> dict[str, float]:
    """µs per call of a coroutine handler that returns at once, bare and timed."""

    async def bare(request: Any, context: Any) -> Any:
        return request

    timed = _timed(bare, RpcMetrics(CollectorRegistry()).method("x.Service/Method"))

    def per_call(handler: Any) -> float:
        def drive() -> None:
            # Run to its end without a loop: nothing in it waits.
            with suppress(StopIteration):
                handler(None, None).send(None)

        return round(min(timeit.repeat(drive, number=repeat, repeat=5)) / repeat * 1e6, 3)

    result = {"bare_handler": per_call(bare), "timed_handler": per_call(timed)}
    result["added"] = round(result["timed_handler"] - result["bare_handler"], 3)
    return result


def run(rounds: int, calls: int, warmup: int, scrape_every: float) -> dict[str, Any]:
    with (
        tempfile.TemporaryDirectory(prefix="mt5exec-bench-") as tmp,
        servers(Path(tmp)) as (targets, scraped),
        scraping(scraped, scrape_every) as scrapes,
    ):
        samples, cpu = uvloop.run(measure(targets, rounds, calls, warmup, MODES))
    result: dict[str, Any] = {
        "rounds": rounds,
        "calls_per_round": calls,
        "null_rpc": "AuthService/WhoAmI",
        "scrape_every_s": scrape_every,
        "scrapes": len(scrapes),
        "scrape_bytes": max(scrapes, default=0),
        "modes": {
            m: {call: summary([t for r in runs for t in r]) for call, runs in samples[m].items()}
            for m in MODES
        },
    }
    result["ratios_vs_off"] = {
        mode: {
            f"{call}_{p}": round(
                result["modes"][mode][call][f"{p}_us"] / result["modes"]["off"][call][f"{p}_us"], 3
            )
            for call in ("null_rpc", "place_order")
            for p in ("p50", "p99")
        }
        for mode in COMPARED
    }
    result["server_cpu_us_per_pair"] = cpu
    result["round_p50_ratios"] = {
        mode: {
            call: round(
                statistics.median(
                    summary(mine)["p50_us"] / summary(off)["p50_us"]
                    for mine, off in zip(samples[mode][call], samples["off"][call], strict=True)
                ),
                3,
            )
            for call in ("null_rpc", "place_order")
        }
        for mode in COMPARED
    }
    result["target_p50_ratio"] = TARGET
    result["met"] = all(
        result["round_p50_ratios"]["on"][call] <= TARGET for call in ("null_rpc", "place_order")
    )
    result["in_process_us"] = in_process()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--calls", type=int, default=200, help="pairs per server and round")
    parser.add_argument("--warmup", type=int, default=100, help="pairs per server, not timed")
    parser.add_argument("--scrape-every", type=float, default=5.0, help="seconds")
    parser.add_argument("--output", type=Path, help="write the JSON here instead")
    args = parser.parse_args()
    result = run(args.rounds, args.calls, args.warmup, args.scrape_every)
    if args.output is not None:
        args.output.write_text(
            json.dumps({"benchmark": "metrics_overhead", **result}, indent=2) + "\n"
        )
        path = args.output
    else:
        path = write("metrics_overhead", result)
    for mode in MODES:
        m = result["modes"][mode]
        null, placed = m["null_rpc"], m["place_order"]
        print(
            f"{mode:11s} WhoAmI p50 {null['p50_us']:7.1f} p99 {null['p99_us']:8.1f} µs | "
            f"PlaceOrder p50 {placed['p50_us']:7.1f} p99 {placed['p99_us']:8.1f} µs"
        )
    for mode, r in result["ratios_vs_off"].items():
        print(f"{mode:11s} vs off: " + ", ".join(f"{k} {v:.3f}x" for k, v in r.items()))
        print(f"{'':11s} median of the rounds' p50 ratios: {result['round_p50_ratios'][mode]}")
    print(f"server CPU per pair (µs): {result['server_cpu_us_per_pair']}")
    print(f"scrapes: {result['scrapes']} of up to {result['scrape_bytes']} bytes")
    print(f"target p50 ≤ {TARGET}x: {result['met']}")
    print(f"in process (µs per call): {result['in_process_us']}")
    print(f"written to {path}")


if __name__ == "__main__":
    main()
