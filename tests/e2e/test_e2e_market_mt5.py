"""MarketDataService through the MT5 worker (issue #24): the real server runs the MT5 worker,
which asks the MetaTrader5 API of ``mt5exec.mt5.simterminal`` (symbols_get, symbol_info,
order_calc_margin, order_calc_profit, terminal_info)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from tests.support import error_info, wait_for_price, wait_until

from mt5exec.mt5 import simterminal
from mt5exec.testing import ServerProcess
from mt5exec.v1 import common_pb2, instance_pb2, market_pb2, market_pb2_grpc, order_pb2

LOGIN, SERVER, PASSWORD = 5012345, "Sim-Demo", "s3cret-Pa55"
SYMBOLS = ["EURUSD", "GBPUSD", "USDJPY"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data = tmp_path_factory.mktemp("mt5-market")
    config = data / "mt5exec.toml"
    config.write_text('[mt5]\nmodule = "mt5exec.mt5.simterminal"\npoll_interval_ms = 20\n')
    (data / "data" / "templates").mkdir(parents=True)
    (data / "data" / "templates" / "health_check.json").write_text(
        json.dumps(
            {
                "broker_retry_attempts": 1,
                "broker_retry_initial_ms": 100,
                "broker_relogin_after_ms": 300,
            }
        )
    )
    with ServerProcess(data / "data", config=config) as proc:
        simterminal.write_terminal_config(
            proc.data_dir / "instances" / "default" / "mt5-m" / "terminal",
            login=LOGIN,
            password=PASSWORD,
            server=SERVER,
            symbols=SYMBOLS,
            tick_rate=20,
            margin_mode="hedging",
        )
        request = instance_pb2.CreateInstanceRequest(
            instance_id="mt5-m",
            backend=common_pb2.BACKEND_MT5,
            config=common_pb2.InstanceConfig(symbols=SYMBOLS, login=LOGIN, server=SERVER),
            password=PASSWORD,
        )
        proc.instances.CreateInstance(request, timeout=60)
        wait_for_price(proc, "mt5-m", "EURUSD")
        yield proc


def _stub(server: ServerProcess) -> market_pb2_grpc.MarketDataServiceStub:
    assert server.channel is not None
    return market_pb2_grpc.MarketDataServiceStub(server.channel)


def test_symbols_from_symbols_get(server: ServerProcess) -> None:
    stub = _stub(server)
    got = stub.ListSymbols(
        market_pb2.ListSymbolsRequest(instance_id="mt5-m", group="*USD*,!EUR*"), timeout=30
    )
    assert [s.name for s in got.symbols] == ["GBPUSD", "USDJPY"]
    one = stub.GetSymbol(
        market_pb2.GetSymbolRequest(instance_id="mt5-m", symbol="EURUSD"), timeout=30
    ).symbol
    assert (one.digits, one.contract_size, one.currency_profit) == (5, 100_000.0, "USD")
    assert one.path == "Forex\\EURUSD" and 0 < one.bid < one.ask
    with pytest.raises(grpc.RpcError) as e:
        stub.GetSymbol(
            market_pb2.GetSymbolRequest(instance_id="mt5-m", symbol="XAUUSD"), timeout=30
        )
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    assert error_info(e.value).metadata["field"] == "symbol"


def test_calc_margin_and_profit(server: ServerProcess) -> None:
    stub = _stub(server)
    margin = stub.CalcMargin(
        market_pb2.CalcMarginRequest(
            instance_id="mt5-m", symbol="EURUSD", side=common_pb2.SIDE_BUY, volume=1.0, price=1.1
        ),
        timeout=30,
    )
    assert margin.margin == pytest.approx(1100.0) and margin.currency == "USD"
    profit = stub.CalcProfit(
        market_pb2.CalcProfitRequest(
            instance_id="mt5-m",
            symbol="EURUSD",
            side=common_pb2.SIDE_SELL,
            volume=1.0,
            price_open=1.1,
            price_close=1.1010,
        ),
        timeout=30,
    )
    assert profit.profit == pytest.approx(-100.0)


def test_terminal_info_shows_no_paths(server: ServerProcess) -> None:
    info = (
        _stub(server)
        .GetTerminalInfo(market_pb2.GetTerminalInfoRequest(instance_id="mt5-m"), timeout=30)
        .terminal
    )
    assert info.connected and info.trade_allowed and info.backend == "mt5"
    assert info.login == LOGIN and info.server == SERVER and info.build > 0
    assert info.data_folder and "/" not in info.data_folder and "\\" not in info.data_folder


def test_rates_from_copy_rates(server: ServerProcess) -> None:
    stub = _stub(server)

    def bars(**fields: object) -> list[market_pb2.Rate]:
        request = market_pb2.GetRatesRequest(instance_id="mt5-m", symbol="EURUSD", **fields)  # type: ignore[arg-type]
        return [bar for page in stub.GetRates(request, timeout=60) for bar in page.rates]

    by_pos = bars(timeframe=market_pb2.TIMEFRAME_M5, start_pos=1, count=50)
    assert len(by_pos) == 50 and all(b.time % 300 == 0 for b in by_pos)
    first, last = by_pos[0].time, by_pos[-1].time
    assert (
        bars(timeframe=market_pb2.TIMEFRAME_M5, date_from=Timestamp(seconds=last), count=50)
        == by_pos
    )
    ranged = bars(
        timeframe=market_pb2.TIMEFRAME_M5,
        date_from=Timestamp(seconds=first),
        date_to=Timestamp(seconds=last),
    )
    assert ranged == by_pos
    weeks = bars(timeframe=market_pb2.TIMEFRAME_W1, start_pos=0, count=2)
    assert weeks and all(time.gmtime(b.time).tm_wday == 0 for b in weeks)


def test_ticks_from_copy_ticks(server: ServerProcess) -> None:
    stub = _stub(server)
    since = int(time.time() * 1000) - 60_000
    request = market_pb2.GetTicksRequest(
        instance_id="mt5-m",
        symbol="EURUSD",
        date_from=Timestamp(seconds=since // 1000),
        count=20,
        flags=market_pb2.COPY_TICKS_ALL,
    )
    ticks = [t for page in stub.GetTicks(request, timeout=60) for t in page.ticks]
    assert 0 < len(ticks) <= 20
    assert all(t.time_msc >= since - 1000 and 0 < t.bid < t.ask for t in ticks)
    assert [t.time_msc for t in ticks] == sorted(t.time_msc for t in ticks)


def test_broker_connection_lost_and_logged_in_again(server: ServerProcess) -> None:
    """Last: terminal_info says the broker is gone; DEGRADED, orders refused, re-login."""

    def instance() -> common_pb2.Instance:
        return server.instances.GetInstance(
            instance_pb2.GetInstanceRequest(instance_id="mt5-m"), timeout=30
        ).instance

    assert (
        _stub(server)
        .GetTerminalInfo(market_pb2.GetTerminalInfoRequest(instance_id="mt5-m"), timeout=30)
        .terminal.relogins
        == 0
    )
    terminal = server.data_dir / "instances" / "default" / "mt5-m" / "terminal"
    # Ten minutes: down however slow the checks are; the test ends it after them (0).
    simterminal.write_hook_file(terminal, {"broker_outage_ms": 600_000})
    wait_until(
        "DEGRADED for BROKER_DISCONNECTED",
        lambda: (
            instance().state_reason == "BROKER_DISCONNECTED"
            and instance().state == common_pb2.INSTANCE_STATE_DEGRADED
        ),
    )
    order = order_pb2.PlaceOrderRequest(
        instance_id="mt5-m",
        client_order_id="mt5-while-down",
        symbol="EURUSD",
        side=common_pb2.SIDE_BUY,
        type=common_pb2.ORDER_TYPE_MARKET,
        volume=0.01,
    )
    with pytest.raises(grpc.RpcError) as e:
        server.orders.PlaceOrder(order, timeout=30)
    assert e.value.code() == grpc.StatusCode.UNAVAILABLE
    assert error_info(e.value).reason == "BROKER_DISCONNECTED"
    simterminal.write_hook_file(terminal, {"broker_outage_ms": 0})
    wait_until(
        "READY again", lambda: instance().state == common_pb2.INSTANCE_STATE_READY, timeout=120
    )
    info = (
        _stub(server)
        .GetTerminalInfo(market_pb2.GetTerminalInfoRequest(instance_id="mt5-m"), timeout=30)
        .terminal
    )
    assert info.connected and info.relogins == 1
    with pytest.raises(grpc.RpcError) as e:
        server.orders.GetOrder(
            order_pb2.GetOrderRequest(instance_id="mt5-m", client_order_id="mt5-while-down"),
            timeout=30,
        )
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
