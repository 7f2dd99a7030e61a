"""GetRates against a real server and sim worker (issue #24): the last 1,000 M1 bars on a
fresh instance, 100,000 bars streamed in pages, the three copy_rates forms agreeing, a bar's
open/high/low/close matching the ticks of its minute (their history: the ticks streamed), and
bad input refused naming the field."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from mt5exec.testing import ServerProcess
from mt5exec.v1 import market_pb2, market_pb2_grpc
from support import create_sim, error_info, wait_until

M1, H1 = market_pb2.TIMEFRAME_M1, market_pb2.TIMEFRAME_H1


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data: Path = tmp_path_factory.mktemp("market-rates")
    with ServerProcess(data) as server:
        create_sim(server, "r1", symbols=["EURUSD"], tick_rate=20)
        yield server


def _stub(server: ServerProcess) -> market_pb2_grpc.MarketDataServiceStub:
    assert server.channel is not None
    return market_pb2_grpc.MarketDataServiceStub(server.channel)


def _rates(server: ServerProcess, **fields: object) -> list[list[market_pb2.Rate]]:
    request = market_pb2.GetRatesRequest(instance_id="r1", symbol="EURUSD", **fields)  # type: ignore[arg-type]
    return [list(page.rates) for page in _stub(server).GetRates(request, timeout=120)]


def _flat(pages: list[list[market_pb2.Rate]]) -> list[market_pb2.Rate]:
    return [bar for page in pages for bar in page]


def _ts(seconds: int) -> Timestamp:
    return Timestamp(seconds=seconds)


def test_last_1000_m1_bars_on_a_fresh_instance(server: ServerProcess) -> None:
    bars = _flat(_rates(server, timeframe=M1, count=1000))
    assert len(bars) == 1000
    times = [b.time for b in bars]
    assert times == sorted(times) and len(set(times)) == 1000
    assert all(t % 60 == 0 for t in times)
    assert all(b.low <= min(b.open, b.close) <= max(b.open, b.close) <= b.high for b in bars)


def test_100000_bars_come_in_pages(server: ServerProcess) -> None:
    pages = _rates(server, timeframe=M1, count=100_000)
    assert len(pages) >= 10 and all(len(p) <= 10_000 for p in pages)
    bars = _flat(pages)
    assert len(bars) == 100_000
    assert [b.time for b in bars] == sorted(b.time for b in bars)


def test_the_three_forms_agree(server: ServerProcess) -> None:
    by_pos = _flat(_rates(server, timeframe=H1, start_pos=1, count=30))
    assert len(by_pos) == 30
    first, last = by_pos[0].time, by_pos[-1].time
    assert _flat(_rates(server, timeframe=H1, date_from=_ts(last), count=30)) == by_pos
    assert _flat(_rates(server, timeframe=H1, date_from=_ts(first), date_to=_ts(last))) == by_pos


def test_a_bar_is_the_ticks_of_its_minute(server: ServerProcess) -> None:
    """The first minute the instance ticked through (its ticks history, which is the ticks
    StreamTicks carried: test_e2e_market_ticks): that minute's bar has their prices. No wait
    for a minute yet to come: the first one ends at most a minute after the instance's start."""
    stub = _stub(server)

    def ticks(**fields: object) -> list[market_pb2.HistoryTick]:
        request = market_pb2.GetTicksRequest(
            instance_id="r1",
            symbol="EURUSD",
            flags=market_pb2.COPY_TICKS_ALL,
            **fields,  # type: ignore[arg-type]
        )
        return [t for page in stub.GetTicks(request, timeout=60) for t in page.ticks]

    wait_until("a tick in the history", lambda: bool(ticks(date_from=_ts(0), count=1)))
    first_minute = ticks(date_from=_ts(0), count=1)[0].time_msc // 60_000
    # A later minute's bar has begun: no tick of the first minute is still to come.
    wait_until(
        "a tick after the first minute",
        lambda: (
            _flat(_rates(server, timeframe=M1, start_pos=0, count=1))[-1].time > first_minute * 60
        ),
        timeout=180,
    )
    minute = [
        t.bid
        for t in ticks(date_from=_ts(first_minute * 60), date_to=_ts(first_minute * 60 + 60))
        if t.time_msc // 60_000 == first_minute
    ]
    bar = next(
        b
        for b in _flat(_rates(server, timeframe=M1, start_pos=0, count=5))
        if b.time == first_minute * 60
    )
    assert (bar.open, bar.high, bar.low, bar.close) == (
        minute[0],
        max(minute),
        min(minute),
        minute[-1],
    )
    assert bar.tick_volume == len(minute)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"timeframe": M1, "count": 0}, "count"),
        ({"timeframe": M1, "count": 100_001}, "count"),
        ({"timeframe": 7, "count": 10}, "timeframe"),
        ({"count": 10}, "timeframe"),
        ({"timeframe": M1, "date_from": _ts(2_000_000), "date_to": _ts(1_000_000)}, "date_to"),
        ({"timeframe": M1, "date_to": _ts(1_000_000)}, "date_from"),
    ],
)
def test_bad_input_names_the_field(
    server: ServerProcess, fields: dict[str, object], field: str
) -> None:
    with pytest.raises(grpc.RpcError) as e:
        _rates(server, **fields)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(e.value).metadata["field"] == field


def test_unknown_symbol_is_not_found(server: ServerProcess) -> None:
    request = market_pb2.GetRatesRequest(instance_id="r1", symbol="XAUUSD", timeframe=M1, count=10)
    with pytest.raises(grpc.RpcError) as e:
        list(_stub(server).GetRates(request, timeout=60))
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
