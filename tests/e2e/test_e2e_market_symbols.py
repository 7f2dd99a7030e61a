"""MarketDataService against a real server and sim worker (issue #24): symbols as
symbol_info gives them (with a group filter), margin and profit by the broker's own rules, the
terminal's state; an unknown symbol is NOT_FOUND, bad input INVALID_ARGUMENT naming the field
(StreamBook: tests/e2e/test_e2e_book.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2

from mt5exec.testing import ServerProcess
from mt5exec.v1 import common_pb2, market_pb2, market_pb2_grpc, order_pb2
from support import BULK_RISK, create_sim, error_info, market, wait_until

SYMBOLS = ["EURUSD", "GBPUSD", "USDJPY"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data: Path = tmp_path_factory.mktemp("market-symbols")
    with ServerProcess(data) as server:
        create_sim(server, "m1", symbols=SYMBOLS, risk=BULK_RISK)
        yield server


def _stub(server: ServerProcess) -> market_pb2_grpc.MarketDataServiceStub:
    assert server.channel is not None
    return market_pb2_grpc.MarketDataServiceStub(server.channel)


def _refusal(call: object) -> tuple[grpc.StatusCode, str, str]:
    with pytest.raises(grpc.RpcError) as e:
        call()  # type: ignore[operator]
    info = error_info(e.value)
    return e.value.code(), info.reason, info.metadata.get("field", "")


def test_list_symbols_and_group_filter(server: ServerProcess) -> None:
    stub = _stub(server)
    every = stub.ListSymbols(market_pb2.ListSymbolsRequest(instance_id="m1"), timeout=30)
    assert [s.name for s in every.symbols] == SYMBOLS
    eur = every.symbols[0]
    assert (eur.digits, eur.point, eur.contract_size) == (5, 0.00001, 100_000.0)
    assert eur.volume_min > 0 and eur.volume_step > 0 and eur.volume_max >= eur.volume_min
    assert eur.currency_base == "EUR" and eur.currency_profit == "USD"
    assert 0 < eur.bid < eur.ask and eur.time_msc > 0
    usd = stub.ListSymbols(
        market_pb2.ListSymbolsRequest(instance_id="m1", group="*USD*,!EUR*"), timeout=30
    )
    assert [s.name for s in usd.symbols] == ["GBPUSD", "USDJPY"]


def test_get_symbol_and_unknown(server: ServerProcess) -> None:
    stub = _stub(server)
    got = stub.GetSymbol(market_pb2.GetSymbolRequest(instance_id="m1", symbol="USDJPY"), timeout=30)
    assert got.symbol.name == "USDJPY" and got.symbol.digits == 3
    code, reason, field = _refusal(
        lambda: stub.GetSymbol(
            market_pb2.GetSymbolRequest(instance_id="m1", symbol="XAUUSD"), timeout=30
        )
    )
    assert (code, reason, field) == (grpc.StatusCode.NOT_FOUND, "SYMBOL_NOT_FOUND", "symbol")
    code, _, field = _refusal(
        lambda: stub.GetSymbol(market_pb2.GetSymbolRequest(instance_id="m1"), timeout=30)
    )
    assert (code, field) == (grpc.StatusCode.INVALID_ARGUMENT, "symbol")
    code, _, _ = _refusal(
        lambda: stub.GetSymbol(
            market_pb2.GetSymbolRequest(instance_id="nope", symbol="EURUSD"), timeout=30
        )
    )
    assert code == grpc.StatusCode.NOT_FOUND


def test_calc_margin_matches_the_margin_a_fill_takes(server: ServerProcess) -> None:
    stub = _stub(server)
    at = stub.CalcMargin(
        market_pb2.CalcMarginRequest(
            instance_id="m1", symbol="EURUSD", side=common_pb2.SIDE_BUY, volume=1.0, price=1.1
        ),
        timeout=30,
    )
    # 1 lot = 100,000 EUR at 1.1 USD, leverage 100.
    assert at.margin == pytest.approx(1100.0) and at.currency == "USD"

    def margin() -> float:
        return server.orders.GetAccount(
            order_pb2.GetAccountRequest(instance_id="m1"), timeout=30
        ).account.margin

    before = margin()
    filled = server.orders.PlaceOrder(market("m1", "margin-1", volume=0.5), timeout=30).order
    at_fill = stub.CalcMargin(
        market_pb2.CalcMarginRequest(
            instance_id="m1",
            symbol="EURUSD",
            side=common_pb2.SIDE_BUY,
            volume=0.5,
            price=filled.average_fill_price,
        ),
        timeout=30,
    )
    wait_until("the fill's margin in the account", lambda: margin() != before)
    # The account's margin follows the mid: within a few points of the fill's price.
    assert margin() - before == pytest.approx(at_fill.margin, rel=1e-3)
    code, _, field = _refusal(
        lambda: stub.CalcMargin(
            market_pb2.CalcMarginRequest(instance_id="m1", symbol="EURUSD", volume=1.0),
            timeout=30,
        )
    )
    assert (code, field) == (grpc.StatusCode.INVALID_ARGUMENT, "side")
    code, _, field = _refusal(
        lambda: stub.CalcMargin(
            market_pb2.CalcMarginRequest(
                instance_id="m1", symbol="EURUSD", side=common_pb2.SIDE_SELL, volume=-1
            ),
            timeout=30,
        )
    )
    assert (code, field) == (grpc.StatusCode.INVALID_ARGUMENT, "volume")


def test_calc_profit(server: ServerProcess) -> None:
    stub = _stub(server)

    def profit(symbol: str, side: int, open_: float, close: float) -> float:
        request = market_pb2.CalcProfitRequest(
            instance_id="m1",
            symbol=symbol,
            side=side,  # type: ignore[arg-type]
            volume=1.0,
            price_open=open_,
            price_close=close,
        )
        return float(stub.CalcProfit(request, timeout=30).profit)

    assert profit("EURUSD", common_pb2.SIDE_BUY, 1.1, 1.1010) == pytest.approx(100.0)
    assert profit("EURUSD", common_pb2.SIDE_SELL, 1.1, 1.1010) == pytest.approx(-100.0)
    # USDJPY's profit is in JPY: turned into USD at the current rate.
    jpy = profit("USDJPY", common_pb2.SIDE_BUY, 150.0, 151.0)
    assert 0 < jpy < 100_000 / 100
    code, _, field = _refusal(
        lambda: stub.CalcProfit(
            market_pb2.CalcProfitRequest(
                instance_id="m1",
                symbol="EURUSD",
                side=common_pb2.SIDE_BUY,
                volume=1.0,
                price_open=1.1,
            ),
            timeout=30,
        )
    )
    assert (code, field) == (grpc.StatusCode.INVALID_ARGUMENT, "price_close")


def test_terminal_info(server: ServerProcess) -> None:
    info = (
        _stub(server)
        .GetTerminalInfo(market_pb2.GetTerminalInfoRequest(instance_id="m1"), timeout=30)
        .terminal
    )
    assert info.connected and info.trade_allowed and info.backend == "sim"
    assert info.build > 0 and info.login > 0


def test_served_with_health_and_reflection(server: ServerProcess) -> None:
    assert server.channel is not None
    check = health_pb2_grpc.HealthStub(server.channel).Check(
        health_pb2.HealthCheckRequest(service="mt5exec.v1.MarketDataService"), timeout=30
    )
    assert check.status == health_pb2.HealthCheckResponse.SERVING
    info = server.channel.stream_stream(
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )
    (listed,) = info(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=30)
    assert "mt5exec.v1.MarketDataService" in {s.name for s in listed.list_services_response.service}
