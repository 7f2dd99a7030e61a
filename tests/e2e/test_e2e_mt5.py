"""The MT5 backend end to end: the real server runs the MT5 worker, which drives the
MetaTrader5 API of ``mt5exec.mt5.simterminal`` (the simulated broker behind that API)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import grpc
import pytest
from tests.mt5_server_support import (
    LOGIN,
    PASSWORD,
    SERVER,
    create_mt5,
    terminal_dir,
    trade_in_terminal,
    write_terminal,
)
from tests.support import error_info, execution_events, wait_for_price, wait_until

from mt5exec.mt5 import constants as c
from mt5exec.mt5 import simterminal
from mt5exec.testing import ServerProcess
from mt5exec.v1 import common_pb2, instance_pb2, order_pb2, stream_pb2

FILLED = common_pb2.ORDER_STATUS_FILLED


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data = tmp_path_factory.mktemp("mt5")
    config = data / "mt5exec.toml"
    config.write_text('[mt5]\nmodule = "mt5exec.mt5.simterminal"\npoll_interval_ms = 20\n')
    templates = data / "data" / "templates"
    templates.mkdir(parents=True)
    # One login attempt, so that the wrong-password test fails fast.
    (templates / "health_check.json").write_text(
        json.dumps({"broker_retry_attempts": 1, "broker_retry_initial_ms": 100})
    )
    with ServerProcess(data / "data", config=config) as proc:
        yield proc


def test_place_modify_close_and_an_sl_hit(server: ServerProcess) -> None:
    instance = create_mt5(server, "mt5-a")
    assert instance.state == common_pb2.INSTANCE_STATE_READY
    assert instance.backend == common_pb2.BACKEND_MT5
    assert [s.name for s in instance.symbols] == ["EURUSD"]
    account = server.orders.GetAccount(
        order_pb2.GetAccountRequest(instance_id="mt5-a"), timeout=5
    ).account
    assert account.login == LOGIN
    wait_for_price(server, "mt5-a", "EURUSD")

    events: list[common_pb2.ExecutionEvent] = []
    call = server.streams.StreamExecutions(
        stream_pb2.StreamExecutionsRequest(instance_id="mt5-a"), timeout=60
    )
    call.initial_metadata()

    def read() -> None:
        try:
            for message in call:
                events.extend(message.events)
        except grpc.RpcError:
            pass

    reader = threading.Thread(target=read, daemon=True)
    reader.start()

    order = server.orders.PlaceOrder(
        order_pb2.PlaceOrderRequest(
            instance_id="mt5-a",
            client_order_id="mt5-buy",
            symbol="EURUSD",
            side=common_pb2.SIDE_BUY,
            type=common_pb2.ORDER_TYPE_MARKET,
            volume=0.3,
        ),
        timeout=15,
    ).order
    assert order.status == FILLED
    (position,) = server.orders.ListPositions(
        order_pb2.ListPositionsRequest(instance_id="mt5-a"), timeout=5
    ).positions
    assert position.volume == pytest.approx(0.3)

    stop = round(position.price_open - 0.0050, 5)
    moved = server.orders.ModifyPosition(
        order_pb2.ModifyPositionRequest(
            instance_id="mt5-a", position_id=position.position_id, stop_loss=stop
        ),
        timeout=15,
    ).position
    assert moved.stop_loss == pytest.approx(stop)

    closed = server.orders.ClosePosition(
        order_pb2.ClosePositionRequest(
            instance_id="mt5-a",
            position_id=position.position_id,
            volume=0.1,
            client_order_id="mt5-cut",
        ),
        timeout=15,
    ).order
    assert closed.status == FILLED
    (left,) = server.orders.ListPositions(
        order_pb2.ListPositionsRequest(instance_id="mt5-a"), timeout=5
    ).positions
    assert left.volume == pytest.approx(0.2)

    # The "trade server" moves the market through the stop: the worker finds the deal in the
    # history and reports it as a fill with reason STOP_LOSS.
    simterminal.write_hook_file(
        terminal_dir(server, "mt5-a"), {"set_price": {"EURUSD": round(stop - 0.0010, 5)}}
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if any(
            e.HasField("fill") and e.fill.reason == common_pb2.FILL_REASON_STOP_LOSS for e in events
        ):
            break
        time.sleep(0.05)
    call.cancel()
    reader.join(5)
    sl_fills = [e.fill for e in events if e.HasField("fill")]
    assert any(f.reason == common_pb2.FILL_REASON_STOP_LOSS for f in sl_fills), sl_fills
    assert (
        server.orders.ListPositions(
            order_pb2.ListPositionsRequest(instance_id="mt5-a"), timeout=5
        ).positions
        == []
    )


def test_mt5_needs_credentials_and_a_wrong_password_fails(server: ServerProcess) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        server.instances.CreateInstance(
            instance_pb2.CreateInstanceRequest(
                instance_id="mt5-nopw",
                backend=common_pb2.BACKEND_MT5,
                config=common_pb2.InstanceConfig(login=LOGIN, server=SERVER),
            ),
            timeout=10,
        )
    assert error_info(caught.value).metadata["field"] == "password"
    with pytest.raises(grpc.RpcError) as caught:
        create_mt5(server, "mt5-badpw", request_password="wrong")
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_info(caught.value).reason == "LOGIN_FAILED"
    instance = server.instances.GetInstance(
        instance_pb2.GetInstanceRequest(instance_id="mt5-badpw"), timeout=5
    ).instance
    assert instance.state == common_pb2.INSTANCE_STATE_FAILED


def test_the_password_is_nowhere_on_disk(server: ServerProcess) -> None:
    create_mt5(server, "mt5-secret")
    instance_dir = server.data_dir / "instances" / "default" / "mt5-secret"
    logs = server.data_dir / "logs" / "default" / "mt5-secret"
    for path in [*instance_dir.rglob("*"), *logs.rglob("*"), server.data_dir / "server.log"]:
        if path.is_file() and path.name != "simterminal.json":  # the broker's side
            assert PASSWORD.encode() not in path.read_bytes(), path


def test_a_pending_order_triggered_by_the_market_is_filled(server: ServerProcess) -> None:
    create_mt5(server, "mt5-pend")
    wait_for_price(server, "mt5-pend", "EURUSD")
    probe = server.orders.PlaceOrder(
        order_pb2.PlaceOrderRequest(
            instance_id="mt5-pend",
            client_order_id="probe",
            symbol="EURUSD",
            side=common_pb2.SIDE_BUY,
            type=common_pb2.ORDER_TYPE_MARKET,
            volume=0.01,
        ),
        timeout=15,
    ).order
    limit = round(probe.average_fill_price - 0.0030, 5)
    placed = server.orders.PlaceOrder(
        order_pb2.PlaceOrderRequest(
            instance_id="mt5-pend",
            client_order_id="dip-buyer",
            symbol="EURUSD",
            side=common_pb2.SIDE_BUY,
            type=common_pb2.ORDER_TYPE_LIMIT,
            price=limit,
            volume=0.02,
        ),
        timeout=15,
    ).order
    assert placed.status == common_pb2.ORDER_STATUS_ACCEPTED
    simterminal.write_hook_file(
        terminal_dir(server, "mt5-pend"), {"set_price": {"EURUSD": round(limit - 0.0010, 5)}}
    )
    deadline = time.monotonic() + 60
    order = placed
    while time.monotonic() < deadline and order.status != FILLED:
        time.sleep(0.05)
        order = server.orders.GetOrder(
            order_pb2.GetOrderRequest(instance_id="mt5-pend", client_order_id="dip-buyer"),
            timeout=5,
        ).order
    assert order.status == FILLED
    assert order.filled_volume == pytest.approx(0.02)
    assert order.average_fill_price <= limit


def test_a_fill_answered_without_its_price_shows_the_deal_price(server: ServerProcess) -> None:
    """A broker answering DONE with price 0 and deal 0 (simterminal's ``blank_fill_results``):
    the order still shows the price it was filled at, from its deal."""
    create_mt5(server, "mt5-blank")
    wait_for_price(server, "mt5-blank", "EURUSD")
    simterminal.write_hook_file(
        terminal_dir(server, "mt5-blank"), {"blank_fill_results": 1, "deal": True}
    )
    order = server.orders.PlaceOrder(
        order_pb2.PlaceOrderRequest(
            instance_id="mt5-blank",
            client_order_id="unpriced",
            symbol="EURUSD",
            side=common_pb2.SIDE_BUY,
            type=common_pb2.ORDER_TYPE_MARKET,
            volume=0.05,
        ),
        timeout=60,
    ).order
    assert order.status == FILLED
    (position,) = server.orders.ListPositions(
        order_pb2.ListPositionsRequest(instance_id="mt5-blank"), timeout=60
    ).positions
    assert position.price_open > 0
    assert (order.price, order.average_fill_price) == (position.price_open, position.price_open)
    got = server.orders.GetOrder(
        order_pb2.GetOrderRequest(instance_id="mt5-blank", client_order_id="unpriced"),
        timeout=60,
    ).order
    assert (got.price, got.average_fill_price, got.position_id) == (
        position.price_open,
        position.price_open,
        position.position_id,
    )


def test_a_first_start_reports_none_of_the_terminals_old_deals(server: ServerProcess) -> None:
    """A new instance on a terminal that traded before: the deals already in its history are
    the account's past, not news (only those made after an instance's first start are
    reported, at its later starts too: workers.mt5_deals)."""
    terminal = write_terminal(server, "mt5-old")
    old = [
        trade_in_terminal(terminal, {"volume": 0.01, "type": side}).deal
        for side in (c.ORDER_TYPE_BUY, c.ORDER_TYPE_SELL)
    ]
    create_mt5(server, "mt5-old", terminal_written=True)
    wait_for_price(server, "mt5-old", "EURUSD")
    marker = server.orders.PlaceOrder(
        order_pb2.PlaceOrderRequest(
            instance_id="mt5-old",
            client_order_id="old-1",
            symbol="EURUSD",
            side=common_pb2.SIDE_BUY,
            type=common_pb2.ORDER_TYPE_MARKET,
            volume=0.01,
        ),
        timeout=60,
    ).order
    events = execution_events(
        server, "mt5-old", lambda e: e.HasField("fill") and e.fill.order_id == marker.order_id
    )
    reported = [e.fill.deal_id for e in events if e.HasField("fill")]
    assert not set(old) & set(reported), (old, reported)

    def stored() -> list[int]:
        request = order_pb2.ListDealsRequest(instance_id="mt5-old", page_size=1000)
        return [d.deal_id for d in server.orders.ListDeals(request, timeout=30).deals]

    wait_until("the marker's deal stored", lambda: reported[-1] in stored())
    assert not set(old) & set(stored())
