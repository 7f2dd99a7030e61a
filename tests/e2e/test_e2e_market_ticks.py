"""GetTicks against a real server and sim worker (issue #24): the terminal's tick history is
the ticks StreamTicks carried (copy_ticks_range and copy_ticks_from agree with it), the
COPY_TICKS flags, pages of at most 10,000 ticks, and bad input refused naming the field."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from mt5exec.testing import ServerProcess
from mt5exec.v1 import market_pb2, market_pb2_grpc, stream_pb2
from support import create_sim, error_info, wait_until

ALL, INFO, TRADE = (
    market_pb2.COPY_TICKS_ALL,
    market_pb2.COPY_TICKS_INFO,
    market_pb2.COPY_TICKS_TRADE,
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data: Path = tmp_path_factory.mktemp("market-ticks")
    with ServerProcess(data) as server:
        create_sim(server, "t1", symbols=["EURUSD"], tick_rate=1000)
        yield server


def _ms(msc: int) -> Timestamp:
    ts = Timestamp()
    ts.FromMilliseconds(msc)
    return ts


def _ticks(server: ServerProcess, **fields: object) -> list[list[market_pb2.HistoryTick]]:
    assert server.channel is not None
    stub = market_pb2_grpc.MarketDataServiceStub(server.channel)
    request = market_pb2.GetTicksRequest(instance_id="t1", symbol="EURUSD", **fields)  # type: ignore[arg-type]
    return [list(page.ticks) for page in stub.GetTicks(request, timeout=60)]


def _streamed(server: ServerProcess, wanted: int) -> list[tuple[int, float, float]]:
    stream = server.streams.StreamTicks(
        stream_pb2.StreamTicksRequest(instance_ids=["t1"], symbols=["EURUSD"]), timeout=300
    )
    seen: list[tuple[int, float, float]] = []

    def read() -> None:
        try:
            for message in stream:
                for tick in message.ticks:
                    seen.append((tick.time.ToMilliseconds(), tick.bid, tick.ask))
        except grpc.RpcError:
            pass

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    wait_until(f"{wanted} ticks streamed", lambda: len(seen) >= wanted)
    stream.cancel()
    reader.join(30)
    return list(seen)


def test_history_is_the_streamed_ticks(server: ServerProcess) -> None:
    seen = _streamed(server, 200)
    first, last = seen[0][0], seen[-1][0]
    # Ticks of one batch share a time: the range's edges may hold ticks streamed before or
    # after; compare inside them.
    inner = [t for t in seen if first < t[0] < last]
    ranged = [
        (t.time_msc, t.bid, t.ask)
        for page in _ticks(server, date_from=_ms(first), date_to=_ms(last), flags=ALL)
        for t in page
    ]
    assert [t for t in ranged if first < t[0] < last] == inner
    counted = [
        (t.time_msc, t.bid, t.ask)
        for page in _ticks(server, date_from=_ms(first + 1), count=len(inner), flags=INFO)
        for t in page
    ]
    assert counted == inner[: len(counted)] and len(counted) == len(inner)
    # The simulated market has quotes, no trades.
    assert _ticks(server, date_from=_ms(first), date_to=_ms(last), flags=TRADE) in ([], [[]])


def test_large_answers_come_in_pages(server: ServerProcess) -> None:
    wait_until(
        "25,000 ticks in the history",
        lambda: sum(map(len, _ticks(server, date_from=_ms(0), count=25_000, flags=ALL))) >= 25_000,
        timeout=600,
        every=2.0,  # each check reads up to 25,000 ticks
    )
    pages = _ticks(server, date_from=_ms(0), count=25_000, flags=ALL)
    assert [len(p) for p in pages] == [10_000, 10_000, 5_000]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"date_from": _ms(1), "count": 10}, "flags"),
        ({"count": 10, "flags": ALL}, "date_from"),
        ({"date_from": _ms(1), "count": 0, "flags": ALL}, "count"),
        ({"date_from": _ms(1), "count": 100_001, "flags": ALL}, "count"),
        ({"date_from": _ms(2000), "date_to": _ms(1000), "flags": ALL}, "date_to"),
    ],
)
def test_bad_input_names_the_field(
    server: ServerProcess, fields: dict[str, object], field: str
) -> None:
    with pytest.raises(grpc.RpcError) as e:
        _ticks(server, **fields)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(e.value).metadata["field"] == field
