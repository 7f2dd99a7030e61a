"""StreamBook through the MT5 worker (issue #24): the real server runs the MT5 worker, which
adds, reads and releases the book with the MetaTrader5 API of ``mt5exec.mt5.simterminal``
(market_book_add / market_book_get / market_book_release)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from tests.support import error_info, wait_for_price, wait_until

from mt5exec.mt5 import simterminal
from mt5exec.sim import book
from mt5exec.sim.symbols import DEFAULT_SYMBOLS
from mt5exec.testing import ServerProcess
from mt5exec.v1 import common_pb2, instance_pb2, market_pb2, market_pb2_grpc

LOGIN, SERVER, PASSWORD = 5012399, "Sim-Demo", "s3cret-Pa55"
SEED = 77
SUBSCRIBERS = 'mt5exec_stream_subscribers{topic="book"}'


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data = tmp_path_factory.mktemp("mt5-book")
    config = data / "mt5exec.toml"
    config.write_text('[mt5]\nmodule = "mt5exec.mt5.simterminal"\npoll_interval_ms = 20\n')
    with ServerProcess(data / "data", config=config) as proc:
        simterminal.write_terminal_config(
            proc.data_dir / "instances" / "default" / "mt5-b" / "terminal",
            login=LOGIN,
            password=PASSWORD,
            server=SERVER,
            symbols=["EURUSD", "GBPUSD"],
            tick_rate=50,
            seed=SEED,
        )
        request = instance_pb2.CreateInstanceRequest(
            instance_id="mt5-b",
            backend=common_pb2.BACKEND_MT5,
            config=common_pb2.InstanceConfig(
                symbols=["EURUSD", "GBPUSD"], login=LOGIN, server=SERVER
            ),
            password=PASSWORD,
        )
        proc.instances.CreateInstance(request, timeout=60)
        wait_for_price(proc, "mt5-b", "EURUSD")
        yield proc


def _stub(server: ServerProcess) -> Any:
    return market_pb2_grpc.MarketDataServiceStub(server.channel)


def _books(server: ServerProcess) -> list[str]:
    request = market_pb2.GetTerminalInfoRequest(instance_id="mt5-b")
    return list(_stub(server).GetTerminalInfo(request, timeout=30).terminal.books)


def _subscribers(server: ServerProcess) -> float:
    for line in server.metrics().splitlines():
        if line.startswith(SUBSCRIBERS + " "):
            return float(line.split()[-1])
    return 0.0


def _open(server: ServerProcess, symbol: str = "EURUSD") -> Any:
    call = _stub(server).StreamBook(
        market_pb2.StreamBookRequest(instance_id="mt5-b", symbol=symbol), timeout=120
    )
    call.initial_metadata()
    return call


def test_books_from_market_book_get(server: ServerProcess) -> None:
    assert _books(server) == []
    call = _open(server)
    assert _books(server) == ["EURUSD"], "market_book_add for the first subscriber"
    got = []
    for message in call:
        got.append(message)
        if len(got) == 5:
            break
    spec = DEFAULT_SYMBOLS["EURUSD"]
    for n, message in enumerate(got):
        assert (message.instance_id, message.symbol, message.sequence) == ("mt5-b", "EURUSD", n + 1)
        sells = [lv for lv in message.levels if lv.type == book.BOOK_TYPE_SELL]
        buys = [lv for lv in message.levels if lv.type == book.BOOK_TYPE_BUY]
        bid, ask = buys[0].price, sells[-1].price
        assert bid < ask
        # The simulated terminal's book at that quote (market_book_get), from its seed.
        expected = book.levels(spec, bid, ask, SEED)
        assert [(lv.type, lv.price, lv.volume) for lv in message.levels] == expected
    assert len({(m.levels[0].price, m.levels[-1].price) for m in got}) > 1, "it follows the ticks"
    call.cancel()
    wait_until("released at the terminal", lambda: _books(server) == [])


def test_released_when_the_last_subscriber_leaves(server: ServerProcess) -> None:
    wait_until("no book stream", lambda: _subscribers(server) == 0)
    first, second = _open(server, "GBPUSD"), _open(server, "GBPUSD")
    assert next(iter(second)).symbol == "GBPUSD"
    first.cancel()
    wait_until("one subscriber left", lambda: _subscribers(server) == 1)
    assert next(iter(second)).symbol == "GBPUSD"
    assert _books(server) == ["GBPUSD"]
    second.cancel()
    wait_until("released at the terminal", lambda: _books(server) == [])


def test_an_unknown_symbol_is_not_found(server: ServerProcess) -> None:
    with pytest.raises(grpc.RpcError) as e:
        next(iter(_open(server, "XAUUSD")))
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    assert error_info(e.value).metadata["field"] == "symbol"
    assert _books(server) == []
