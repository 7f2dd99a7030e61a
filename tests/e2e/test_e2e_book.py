"""StreamBook end to end on the simulated broker (issue #24): the real server and sim worker.
Books sit on the quotes the ticks carried and are the seeded synthetic book of those quotes;
a slow reader is conflated, a stalled one cut off like a tick stream; the terminal's book is
added for the first subscriber and released when the last one leaves (TerminalInfo.books)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from tests.support import error_info, wait_until

from mt5exec.sim import book
from mt5exec.sim.symbols import DEFAULT_SYMBOLS
from mt5exec.testing import ServerProcess
from mt5exec.v1 import (
    common_pb2,
    instance_pb2,
    market_pb2,
    market_pb2_grpc,
    stream_pb2,
)

SEED = 4242
SUBSCRIBERS = 'mt5exec_stream_subscribers{topic="book"}'
DROPPED = 'mt5exec_stream_dropped_total{topic="book"}'
SLOW_CUTOFFS = 'mt5exec_stream_cutoffs_total{reason="SLOW_CONSUMER"}'


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data = tmp_path_factory.mktemp("book")
    config = data / "mt5exec.toml"
    config.write_text("[engine]\nslow_consumer_timeout_s = 1.0\n")
    with ServerProcess(data / "data", config=config) as proc:
        proc.instances.CreateInstance(
            instance_pb2.CreateInstanceRequest(
                instance_id="bk",
                config=common_pb2.InstanceConfig(
                    symbols=["EURUSD", "GBPUSD"], tick_rate=500, seed=SEED
                ),
            ),
            timeout=60,
        )
        wait_until("bk ready", lambda: _state(proc) == common_pb2.INSTANCE_STATE_READY)
        yield proc


def _state(server: ServerProcess) -> int:
    request = instance_pb2.GetInstanceRequest(instance_id="bk")
    return server.instances.GetInstance(request, timeout=30).instance.state


def _stub(server: ServerProcess, channel: grpc.Channel | None = None) -> Any:
    return market_pb2_grpc.MarketDataServiceStub(channel or server.channel)


def _books(server: ServerProcess) -> list[str]:
    request = market_pb2.GetTerminalInfoRequest(instance_id="bk")
    return list(_stub(server).GetTerminalInfo(request, timeout=30).terminal.books)


def _metric(server: ServerProcess, name: str) -> float:
    for line in server.metrics().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


def _open(server: ServerProcess, symbol: str = "EURUSD", **extra: Any) -> Any:
    call = _stub(server).StreamBook(
        market_pb2.StreamBookRequest(instance_id="bk", symbol=symbol, **extra), timeout=120
    )
    call.initial_metadata()
    return call


def _best(levels: Any) -> tuple[float, float]:
    """(best bid, best ask) of a book's levels."""
    bid = max(lv.price for lv in levels if lv.type == book.BOOK_TYPE_BUY)
    ask = min(lv.price for lv in levels if lv.type == book.BOOK_TYPE_SELL)
    return bid, ask


def test_books_are_the_seeded_book_of_the_streamed_quotes(server: ServerProcess) -> None:
    quotes: set[tuple[float, float]] = set()
    ticks = server.streams.StreamTicks(
        stream_pb2.StreamTicksRequest(instance_ids=["bk"], symbols=["EURUSD"]), timeout=120
    )
    ticks.initial_metadata()

    def read_ticks() -> None:
        try:
            for message in ticks:
                quotes.update((t.bid, t.ask) for t in message.ticks)
        except grpc.RpcError:
            pass

    reader = threading.Thread(target=read_ticks, daemon=True)
    reader.start()
    call = _open(server)
    got = []
    for message in call:
        got.append(message)
        if len(got) == 30:
            break
    call.cancel()
    spec = DEFAULT_SYMBOLS["EURUSD"]
    for n, message in enumerate(got):
        assert (message.instance_id, message.symbol) == ("bk", "EURUSD")
        assert message.sequence == n + 1 and message.dropped == 0, "a reader that keeps up"
        assert message.time.seconds > 0
        bid, ask = _best(message.levels)
        assert bid < ask
        # Exactly the simulated broker's book at that quote, from the instance's seed.
        expected = book.levels(spec, bid, ask, SEED)
        assert [(lv.type, lv.price, lv.volume) for lv in message.levels] == expected
    # Every book sits on a quote the ticks carried (the first may be the quote of the moment
    # the book was added, before this tick stream's first tick: all but it).
    later = {_best(m.levels) for m in got[1:]}
    wait_until("the books' quotes among the ticks", lambda: later <= quotes)
    ticks.cancel()
    reader.join(30)


def test_refusals(server: ServerProcess) -> None:
    cases = [
        ({"instance_id": "bk", "symbol": "XAUUSD"}, grpc.StatusCode.NOT_FOUND, "symbol"),
        ({"instance_id": "bk"}, grpc.StatusCode.INVALID_ARGUMENT, "symbol"),
        ({"instance_id": "bk", "symbol": "EUR USD"}, grpc.StatusCode.INVALID_ARGUMENT, "symbol"),
        ({"symbol": "EURUSD"}, grpc.StatusCode.INVALID_ARGUMENT, "instance_id"),
        ({"instance_id": "nope", "symbol": "EURUSD"}, grpc.StatusCode.NOT_FOUND, "instance_id"),
    ]
    for fields, code, field in cases:
        with pytest.raises(grpc.RpcError) as e:
            for _ in _stub(server).StreamBook(market_pb2.StreamBookRequest(**fields), timeout=30):
                pass
        assert e.value.code() == code, fields
        assert error_info(e.value).metadata["field"] == field, fields
    assert "XAUUSD" not in _books(server)


def test_a_slow_reader_is_conflated_to_the_latest_book(server: ServerProcess) -> None:
    before = _metric(server, DROPPED)
    call = _open(server, conflate=True)
    messages = iter(call)
    first = next(messages)
    # Books may be conflated away before the first read already (a loaded machine): the
    # count of dropped books is the stream's, from its first book.
    assert first.dropped == first.sequence - 1
    # Read nothing until the engine has conflated books away.
    wait_until("books conflated away", lambda: _metric(server, DROPPED) > before + first.dropped)
    # What the transport already held comes first, whole; then the latest book when the
    # reader came back, the ones between counted as dropped.
    count, previous = 1, first
    for message in messages:
        count += 1
        if message.dropped > previous.dropped:
            break
        assert message.sequence == previous.sequence + 1
        previous = message
    call.cancel()
    assert message.sequence > previous.sequence + 1, "books conflated away"
    assert message.dropped == message.sequence - count, "fewer messages than books"
    bid, ask = _best(message.levels)
    assert bid < ask and len(message.levels) == 2 * book.DEPTH


def test_added_for_the_first_and_released_after_the_last(server: ServerProcess) -> None:
    wait_until("no book stream left", lambda: _metric(server, SUBSCRIBERS) == 0)
    wait_until("no book added", lambda: _books(server) == [])
    first = _open(server, "GBPUSD")
    # Headers come once the terminal has the book.
    assert _books(server) == ["GBPUSD"]
    second = _open(server, "GBPUSD")
    assert next(iter(second)).symbol == "GBPUSD"
    first.cancel()
    wait_until("one subscriber left", lambda: _metric(server, SUBSCRIBERS) == 1)
    assert next(iter(second)).symbol == "GBPUSD", "the book goes on for the other"
    assert _books(server) == ["GBPUSD"]
    second.cancel()
    wait_until("released at the terminal", lambda: _books(server) == [])
    # Added again for a new subscriber.
    again = _open(server, "GBPUSD")
    assert next(iter(again)).symbol == "GBPUSD"
    assert _books(server) == ["GBPUSD"]
    again.cancel()
    wait_until("released again", lambda: _books(server) == [])


def test_a_stalled_reader_is_cut_off_and_its_book_released(server: ServerProcess) -> None:
    wait_until("no book added", lambda: _books(server) == [])
    before = _metric(server, SLOW_CUTOFFS)
    # A small receive window (no BDP probing): the server's writes block soon.
    channel = server.connect(server.token, options=[("grpc.http2.bdp_probe", 0)])
    try:
        stalled = _stub(server, channel).StreamBook(
            market_pb2.StreamBookRequest(instance_id="bk", symbol="EURUSD"), timeout=120
        )
        stalled.initial_metadata()
        wait_until("cut off", lambda: _metric(server, SLOW_CUTOFFS) > before)
        wait_until("the subscription gone", lambda: _metric(server, SUBSCRIBERS) == 0)
        wait_until("released at the terminal", lambda: _books(server) == [])
        with pytest.raises(grpc.RpcError) as caught:
            for _ in stalled:
                pass
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert error_info(caught.value).reason == "SLOW_CONSUMER"
    finally:
        channel.close()


def test_a_worker_that_stops_ends_its_book_streams(server: ServerProcess) -> None:
    server.instances.CreateInstance(
        instance_pb2.CreateInstanceRequest(
            instance_id="rs", config=common_pb2.InstanceConfig(symbols=["EURUSD"], tick_rate=50)
        ),
        timeout=60,
    )
    request = market_pb2.StreamBookRequest(instance_id="rs", symbol="EURUSD")

    def ready() -> bool:
        get = instance_pb2.GetInstanceRequest(instance_id="rs")
        state = server.instances.GetInstance(get, timeout=30).instance.state
        return bool(state == common_pb2.INSTANCE_STATE_READY)

    wait_until("rs ready", ready)
    call = _stub(server).StreamBook(request, timeout=120)
    assert next(iter(call)).symbol == "EURUSD"
    # Its terminal's book goes with the worker: the stream ends, once what was queued is read.
    server.instances.RestartInstance(
        instance_pb2.RestartInstanceRequest(instance_id="rs"), timeout=60
    )
    with pytest.raises(grpc.RpcError) as e:
        for _ in call:
            pass
    assert e.value.code() == grpc.StatusCode.UNAVAILABLE
    assert error_info(e.value).reason == "WORKER_LOST"
    # Subscribed again, the new worker adds it.
    wait_until("rs ready again", ready)
    again = _stub(server).StreamBook(request, timeout=120)
    assert next(iter(again)).symbol == "EURUSD"
    again.cancel()
    # A stopped instance has no terminal to add a book at.
    server.instances.StopInstance(instance_pb2.StopInstanceRequest(instance_id="rs"), timeout=60)
    with pytest.raises(grpc.RpcError) as e:
        next(iter(_stub(server).StreamBook(request, timeout=60)))
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_info(e.value).reason == "INSTANCE_NOT_READY"
