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
answer.

4. StreamBook (#24: 100 updates/s to 50 subscribers, p99, no loss for those keeping up): a
   sim instance with EURUSD at 200 ticks/s (a book each time its quote moves: ~100/s), 50
   StreamBook subscribers on one grpc.aio client for --book-seconds, then, in the same run and
   server, 50 StreamTicks subscribers of the same symbol: latency of each book or tick = client
   receive time - the worker's time stamp (Book.time, Tick.time: same host, same clock,
   milliseconds), loss = sequence gaps + dropped. Reported: p50/p99 of each and the ratio
   book p99 / ticks p99.

Usage: nice python benchmarks/market_data.py [--rounds 5] [--calls 40]
Writes benchmarks/results/market_data.json.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc

from _common import auth_metadata, summary, use_token, write
from mt5exec.mt5 import simterminal
from mt5exec.sim import market
from mt5exec.sim.broker import SimBroker, SimConfig
from mt5exec.terminal.v1 import worker_pb2
from mt5exec.testing import ServerProcess
from mt5exec.v1 import common_pb2, instance_pb2, market_pb2, market_pb2_grpc, stream_pb2
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


BOOK_SUBSCRIBERS = 50
# About half the sim's ticks move EURUSD's quote (a book each time): ~100 books/s.
BOOK_TICK_RATE = 200.0
_FANOUT_METHODS = {
    "book": (
        "/mt5exec.v1.MarketDataService/StreamBook",
        market_pb2.StreamBookRequest(instance_id="bf", symbol="EURUSD"),
        market_pb2.StreamBookResponse,
    ),
    "ticks": (
        "/mt5exec.v1.StreamService/StreamTicks",
        stream_pb2.StreamTicksRequest(instance_ids=["bf"], symbols=["EURUSD"]),
        stream_pb2.StreamTicksResponse,
    ),
}


async def _fanout_streams(address: str, kind: str, seconds: float) -> list[list[tuple[int, bytes]]]:
    """BOOK_SUBSCRIBERS streams of ``kind`` read for ``seconds`` once all are live: each
    one's (receive time ns, raw message), decoded afterwards."""
    method, request, _ = _FANOUT_METHODS[kind]
    got: list[list[tuple[int, bytes]]] = [[] for _ in range(BOOK_SUBSCRIBERS)]
    async with grpc.aio.insecure_channel(address) as channel:
        calls = [
            channel.unary_stream(method, request_serializer=type(request).SerializeToString)(
                request, metadata=auth_metadata()
            )
            for _ in range(BOOK_SUBSCRIBERS)
        ]
        await asyncio.gather(*(c.initial_metadata() for c in calls))
        until = time.monotonic() + seconds

        async def read(n: int) -> None:
            async for raw in calls[n]:
                got[n].append((time.time_ns(), raw))
                if time.monotonic() >= until:
                    break

        await asyncio.gather(*(read(n) for n in range(BOOK_SUBSCRIBERS)))
        for c in calls:
            c.cancel()
    return got


def _fanout_figures(
    kind: str, streams: list[list[tuple[int, bytes]]], seconds: float
) -> dict[str, float]:
    """Latency percentiles (ms) and loss of ``kind``'s streams."""
    decode = _FANOUT_METHODS[kind][2].FromString
    latencies: list[float] = []
    lost = messages = 0
    for stream in streams:
        expected = 1
        for received_ns, raw in stream:
            message = decode(raw)
            stamps = [message.time] if kind == "book" else [t.time for t in message.ticks]
            latencies += [(received_ns - s.ToNanoseconds()) / 1e9 for s in stamps]
            lost += max(0, message.sequence - expected)
            expected = message.sequence + len(stamps)
            messages += 1
        if stream:
            lost += decode(stream[-1][1]).dropped
    figures = summary(latencies)
    return {
        "subscribers": len(streams),
        "messages": messages,
        "updates_per_s_each": round(len(latencies) / len(streams) / seconds, 1),
        "p50_ms": round(float(figures["p50_us"]) / 1000, 2),
        "p99_ms": round(float(figures["p99_us"]) / 1000, 2),
        "lost": lost,
    }


def _book_fanout(seconds: float) -> dict[str, dict[str, float] | float]:
    """StreamBook to 50 subscribers beside StreamTicks to 50, the same server and run."""
    with tempfile.TemporaryDirectory() as tmp, ServerProcess(Path(tmp) / "server") as server:
        use_token(server.token)
        server.instances.CreateInstance(
            instance_pb2.CreateInstanceRequest(
                instance_id="bf",
                config=common_pb2.InstanceConfig(symbols=["EURUSD"], tick_rate=BOOK_TICK_RATE),
            ),
            timeout=60,
        )
        assert server.channel is not None
        stub = market_pb2_grpc.MarketDataServiceStub(server.channel)
        request = market_pb2.GetSymbolRequest(instance_id="bf", symbol="EURUSD")
        deadline = time.monotonic() + 60
        while True:
            try:
                stub.GetSymbol(request, timeout=10)
                break
            except grpc.RpcError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        book, ticks = (
            _fanout_figures(
                kind, asyncio.run(_fanout_streams(server.address, kind, seconds)), seconds
            )
            for kind in ("book", "ticks")
        )
    ratio = round(book["p99_ms"] / max(0.01, ticks["p99_ms"]), 2)
    return {"book": book, "ticks": ticks, "book_p99_vs_ticks_p99": ratio}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=40)
    parser.add_argument("--output", type=Path, help="JSON path (default benchmarks/results/)")
    parser.add_argument("--book-seconds", type=float, default=10.0)
    args = parser.parse_args(argv)
    book = _book_fanout(args.book_seconds)
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
    ratios["book_p99_vs_ticks_p99"] = float(book["book_p99_vs_ticks_p99"])  # type: ignore[arg-type]
    result = {
        "rounds": args.rounds,
        "server": served,
        "in_process": local,
        "mt5_worker": worker,
        "stream_book": book,
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
