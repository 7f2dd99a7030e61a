"""GetRates' cost (issue #24): M1 bars through the API beside a null RPC of the same server,
and beside reading the same bars in process.

1. A real server with one sim instance (EURUSD); after a warm-up that makes its backfill,
   interleaved rounds of: a null RPC (health Check), GetRates of the last 1,000 M1 bars, and of
   the last 100,000 (streamed in 10 messages), each timed by the client to its last byte.
2. In process, the same numbers of bars: the simulated MetaTrader5 module's
   copy_rates_from_pos (numpy rows, what the MT5 worker reads), and the sim worker's answer
   (SimBroker bars -> encoded pages, what the sim worker sends).

3. The MT5 worker (#24: 10,000 bars in <= 5 ms of worker time): 10,000 M1 bars read once from
   the simulated MetaTrader5 module (a numpy structured array, as the real package returns),
   then timed in turns: the worker's answer (pages a column at a time, mt5_arrays) and the
   same answer built row by row (the code before, kept for tuples); likewise 10,000 ticks of the
   package's tick dtype. Timed in CPU seconds of the process (worker time); reported as p50s
   and the ratio row-by-row / columns.

Reported as ratios (issue #24 sets none for these): GetRates of 1,000 bars against the null
RPC and the in-process read, of 100,000 bars against the in-process read and the sim worker's
answer. StreamBook is not built yet: not measured.

Usage: nice python benchmarks/market_data.py [--rounds 5] [--calls 40]
Writes benchmarks/results/market_data.json.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc

from _common import summary, write
from mt5exec.mt5 import simterminal
from mt5exec.sim import market
from mt5exec.sim.broker import SimBroker, SimConfig
from mt5exec.terminal.v1 import worker_pb2
from mt5exec.testing import ServerProcess
from mt5exec.v1 import common_pb2, instance_pb2, market_pb2, market_pb2_grpc
from mt5exec.workers import mt5_market

SIZES = (1_000, 100_000)


def _timed(fn: Callable[[], object], n: int) -> list[float]:
    out = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def _server(rounds: int, calls: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp, ServerProcess(Path(tmp) / "server") as server:
        server.instances.CreateInstance(
            instance_pb2.CreateInstanceRequest(
                instance_id="md",
                config=common_pb2.InstanceConfig(symbols=["EURUSD"], tick_rate=10),
            ),
            timeout=60,
        )
        assert server.channel is not None
        stub = market_pb2_grpc.MarketDataServiceStub(server.channel)
        health = health_pb2_grpc.HealthStub(server.channel)

        def rates(count: int) -> Callable[[], int]:
            request = market_pb2.GetRatesRequest(
                instance_id="md", symbol="EURUSD", timeframe=market_pb2.TIMEFRAME_M1, count=count
            )

            def call() -> int:
                got = sum(len(page.rates) for page in stub.GetRates(request, timeout=120))
                assert got == count, got
                return got

            return call

        calls_of = {
            "null_rpc": lambda: health.Check(health_pb2.HealthCheckRequest(), timeout=10),
            "get_rates_1000": rates(1_000),
            "get_rates_100000": rates(100_000),
        }
        rates(100_000)()  # the backfill is made on the first request that reaches it
        samples: dict[str, list[float]] = {name: [] for name in calls_of}
        for _ in range(rounds):
            for name, fn in calls_of.items():
                n = max(3, calls // 10) if name == "get_rates_100000" else calls
                samples[name] += _timed(fn, n)
        return {name: summary(s) for name, s in samples.items()}


def _in_process(calls: int) -> dict[str, object]:
    out: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp) / "terminal"
        simterminal.write_terminal_config(directory, symbols=["EURUSD"], tick_rate=10)
        assert simterminal.initialize(str(directory), portable=True)
        try:
            for count in SIZES:
                simterminal.copy_rates_from_pos("EURUSD", simterminal.TIMEFRAME_M1, 0, count)
                out[f"simterminal_copy_rates_{count}"] = summary(
                    _timed(
                        lambda c=count: simterminal.copy_rates_from_pos(
                            "EURUSD", simterminal.TIMEFRAME_M1, 0, c
                        ),
                        max(3, calls // 10) if count > 1_000 else calls,
                    )
                )
        finally:
            simterminal.shutdown()
    broker = SimBroker(SimConfig(["EURUSD"]))
    for count in SIZES:
        request = worker_pb2.MarketRequest(
            rates=worker_pb2.RatesQuery(symbol="EURUSD", timeframe=1, from_pos=True, count=count)
        )
        market.answer(broker, request)
        out[f"sim_worker_answer_{count}"] = summary(
            _timed(
                lambda r=request: market.answer(broker, r),
                max(3, calls // 10) if count > 1_000 else calls,
            )
        )
    return out


MT5_BARS = 10_000


def _cpu_timed(fn: Callable[[], object], n: int) -> list[float]:
    """CPU seconds of this process for each of ``n`` calls (worker time, not the machine's)."""
    out = []
    for _ in range(n):
        start = time.process_time()
        fn()
        out.append(time.process_time() - start)
    return out


def _mt5_answer(rows: object, page: Callable[[object], list[bytes]], ticks: bool) -> bytes:
    """What the MT5 worker sends for ``rows`` (its MarketAnswer, encoded)."""
    if ticks:
        answer = worker_pb2.MarketAnswer(ticks=worker_pb2.TicksChunks(pages=page(rows)))
    else:
        answer = worker_pb2.MarketAnswer(rates=worker_pb2.RatesChunks(pages=page(rows)))
    return answer.SerializeToString()


def _mt5_worker(rounds: int, calls: int) -> dict[str, object]:
    """The MT5 worker's time to turn 10,000 bars (ticks) of numpy rows into its answer: a column
    at a time (now) and row by row (before), in turns, in this process."""
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp) / "terminal"
        simterminal.write_terminal_config(directory, symbols=["EURUSD"], tick_rate=10)
        assert simterminal.initialize(str(directory), portable=True)
        try:
            bars = simterminal.copy_rates_from_pos("EURUSD", simterminal.TIMEFRAME_M1, 0, MT5_BARS)
        finally:
            simterminal.shutdown()
    assert len(bars) == MT5_BARS, len(bars)
    ticks = np.zeros(MT5_BARS, dtype=simterminal.TICK_DTYPE)
    ticks["time_msc"] = 1_767_225_600_000 + 250 * np.arange(MT5_BARS)
    ticks["time"] = ticks["time_msc"] // 1000
    ticks["bid"] = bars["close"]
    ticks["ask"] = bars["close"] + 0.00012
    ticks["flags"] = simterminal.TICK_FLAG_BID | simterminal.TICK_FLAG_ASK

    def by_row(page: Callable[[object], bytes]) -> Callable[[object], list[bytes]]:
        return lambda rows: mt5_market.split_pages(rows, page)

    cases = {
        "rates_10000_columns": (bars, mt5_market.rates_pages, False),
        "rates_10000_by_row": (bars, by_row(mt5_market.rates_page_by_row), False),
        "ticks_10000_columns": (ticks, mt5_market.ticks_pages, True),
        "ticks_10000_by_row": (ticks, by_row(mt5_market.ticks_page_by_row), True),
    }
    answers = {name: _mt5_answer(*case) for name, case in cases.items()}
    assert answers["rates_10000_columns"] == answers["rates_10000_by_row"]
    assert answers["ticks_10000_columns"] == answers["ticks_10000_by_row"]
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, case in cases.items():
            samples[name] += _cpu_timed(lambda c=case: _mt5_answer(*c), max(3, calls // 4))
    return {name: summary(s) for name, s in samples.items()}


def _mt5_ratios(worker: dict[str, object]) -> dict[str, float]:
    def p50(key: str) -> float:
        value = worker[key]
        assert isinstance(value, dict)
        return float(value["p50_us"])

    return {
        f"mt5_worker_{kind}_10000_by_row_vs_columns": round(
            p50(f"{kind}_10000_by_row") / p50(f"{kind}_10000_columns"), 2
        )
        for kind in ("rates", "ticks")
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=40)
    parser.add_argument("--output", type=Path, help="JSON path (default benchmarks/results/)")
    args = parser.parse_args(argv)
    served = _server(args.rounds, args.calls)
    local = _in_process(args.calls)
    worker = _mt5_worker(args.rounds, args.calls)

    def p50(table: dict[str, object], key: str) -> float:
        value = table[key]
        assert isinstance(value, dict)
        return float(value["p50_us"])

    ratios = {
        "get_rates_1000_vs_null_rpc": round(
            p50(served, "get_rates_1000") / p50(served, "null_rpc"), 2
        ),
        "get_rates_1000_vs_simterminal": round(
            p50(served, "get_rates_1000") / p50(local, "simterminal_copy_rates_1000"), 2
        ),
        "get_rates_100000_vs_simterminal": round(
            p50(served, "get_rates_100000") / p50(local, "simterminal_copy_rates_100000"), 2
        ),
        "get_rates_100000_vs_sim_worker_answer": round(
            p50(served, "get_rates_100000") / p50(local, "sim_worker_answer_100000"), 2
        ),
    }
    ratios.update(_mt5_ratios(worker))
    result = {
        "rounds": args.rounds,
        "server": served,
        "in_process": local,
        "mt5_worker": worker,
        "ratios": ratios,
    }
    path = write("market_data", result)
    if args.output is not None:
        args.output.write_text(path.read_text())
        path = args.output
    print(ratios)
    print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
