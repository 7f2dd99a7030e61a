"""The walking skeleton end to end: a real server, real sim workers, real DuckDB."""

from __future__ import annotations

import math
import threading
import time

import duckdb
import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tests.support import create_sim, error_info

from mt5exec.server.app import SERVICES
from mt5exec.services import auth as auth_svc
from mt5exec.services import instance as instance_svc
from mt5exec.services import market as market_svc
from mt5exec.services import order as order_svc
from mt5exec.services import stream as stream_svc
from mt5exec.services.auth import AuthService
from mt5exec.services.instance import InstanceService
from mt5exec.services.market import MarketDataService
from mt5exec.services.order import OrderService
from mt5exec.services.stream import StreamService
from mt5exec.testing import ServerProcess, process_gone, wait_gone
from mt5exec.v1 import common_pb2, instance_pb2, market_pb2, market_pb2_grpc, order_pb2, stream_pb2


def _ts(t: object) -> float:
    return t.seconds + t.nanos / 1e9  # type: ignore[attr-defined]


def test_health_is_serving(server: ServerProcess) -> None:
    assert server.channel is not None
    stub = health_pb2_grpc.HealthStub(server.channel)
    for service in ["", "mt5exec.v1.OrderService", "mt5exec.v1.StreamService"]:
        reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_metrics_show_the_server_process(server: ServerProcess) -> None:
    rss = [s.value for s in server.metric_samples("process_resident_memory_bytes")]
    assert rss and rss[0] > 10 * 2**20
    generations = {s.labels["generation"] for s in server.metric_samples("python_gc_collections")}
    assert generations == {"0", "1", "2"}


def test_ticks_order_fill_positions_account_stop(server: ServerProcess) -> None:
    instance = create_sim(server, "skeleton", ["EURUSD", "GBPUSD"], tick_rate=5)
    assert instance.state == common_pb2.INSTANCE_STATE_READY
    assert instance.worker_pid > 0
    assert [s.name for s in instance.symbols] == ["EURUSD", "GBPUSD"]
    eurusd = instance.symbols[0]
    assert (eurusd.digits, eurusd.volume_step) == (5, 0.01)

    ticks_call = server.streams.StreamTicks(
        stream_pb2.StreamTicksRequest(instance_ids=["skeleton"], symbols=["EURUSD"]), timeout=30
    )
    executions_call = server.streams.StreamExecutions(
        stream_pb2.StreamExecutionsRequest(instance_id="skeleton"), timeout=30
    )
    executions_call.initial_metadata()  # the subscription is live from here on

    # Ticks: only EURUSD, bid < ask, at the symbol's digits, times and sequence increasing.
    ticks: list[common_pb2.Tick] = []
    next_sequence = 1
    for message in ticks_call:
        assert message.sequence == next_sequence, "no tick lost"
        next_sequence += len(message.ticks)
        ticks.extend(message.ticks)
        if len(ticks) >= 4:
            break
    for tick in ticks:
        assert tick.symbol == "EURUSD" and tick.instance_id == "skeleton"
        assert 0 < tick.bid < tick.ask
        assert round(tick.bid, 5) == tick.bid
        assert _ts(tick.received_time) >= _ts(tick.time) - 1.0
    times = [_ts(t.time) for t in ticks]
    assert times == sorted(times) and len(set(times)) == len(times)

    # The order: filled at the ask the engine last saw from the worker.
    seen_asks: list[float] = []
    ended: list[grpc.RpcError] = []

    def read_ticks() -> None:
        try:
            for message in ticks_call:
                seen_asks.extend(t.ask for t in message.ticks)
        except grpc.RpcError as e:
            ended.append(e)

    reader = threading.Thread(target=read_ticks, daemon=True)
    reader.start()
    reply = server.orders.PlaceOrder(
        order_pb2.PlaceOrderRequest(
            instance_id="skeleton",
            client_order_id="skeleton-buy-1",
            symbol="EURUSD",
            side=common_pb2.SIDE_BUY,
            type=common_pb2.ORDER_TYPE_MARKET,
            volume=0.10,
        ),
        timeout=10,
    )
    order = reply.order
    assert order.status == common_pb2.ORDER_STATUS_FILLED
    assert order.client_order_id == "skeleton-buy-1"
    assert order.filled_volume == pytest.approx(0.10)
    assert order.average_fill_price == order.price, "no slippage in the default sim"
    assert order.average_fill_price in [t.ask for t in ticks] + seen_asks or math.isclose(
        order.average_fill_price, ticks[-1].ask, abs_tol=0.002
    )
    assert order.retcode == 10009 and order.order_id > 0 and order.position_id > 0

    # StreamExecutions delivers the fill, then the order's final status, numbered from 1.
    events: list[common_pb2.ExecutionEvent] = []
    for message in executions_call:
        events.extend(message.events)
        filled = common_pb2.ORDER_STATUS_FILLED
        if any(e.order_update.status == filled for e in events):
            break
    executions_call.cancel()
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    fills = [e.fill for e in events if e.HasField("fill")]
    assert len(fills) == 1
    fill = fills[0]
    assert fill.client_order_id == "skeleton-buy-1"
    assert fill.price == order.average_fill_price
    assert fill.volume == pytest.approx(0.10)
    assert fill.side == common_pb2.SIDE_BUY and fill.entry == common_pb2.FILL_ENTRY_IN
    updates = [e.order_update.status for e in events if e.HasField("order_update")]
    assert updates == [common_pb2.ORDER_STATUS_SUBMITTED, common_pb2.ORDER_STATUS_FILLED]
    assert events[-1].order_update.status == common_pb2.ORDER_STATUS_FILLED

    # Positions and account reflect the fill.
    positions = server.orders.ListPositions(
        order_pb2.ListPositionsRequest(instance_id="skeleton"), timeout=5
    ).positions
    assert len(positions) == 1
    position = positions[0]
    assert position.symbol == "EURUSD" and position.side == common_pb2.SIDE_BUY
    assert position.volume == pytest.approx(0.10)
    assert position.price_open == order.average_fill_price
    assert position.position_id == order.position_id
    other = server.orders.ListPositions(
        order_pb2.ListPositionsRequest(instance_id="skeleton", symbol="GBPUSD"), timeout=5
    )
    assert len(other.positions) == 0
    account = server.orders.GetAccount(
        order_pb2.GetAccountRequest(instance_id="skeleton"), timeout=5
    ).account
    assert account.balance == pytest.approx(10_000.0)
    expected_margin = 0.10 * 100_000 * order.average_fill_price / 100
    # Margin is converted to USD at the current EURUSD rate and rounded to cents.
    assert account.margin == pytest.approx(expected_margin, rel=2e-3)
    assert account.equity == pytest.approx(account.balance + account.profit, abs=0.01)
    assert account.free_margin == pytest.approx(account.equity - account.margin, abs=0.01)

    # StopInstance ends the worker: pid gone, not left as a zombie.
    pid = instance.worker_pid
    stopped = server.instances.StopInstance(
        instance_pb2.StopInstanceRequest(instance_id="skeleton"), timeout=30
    ).instance
    assert stopped.state == common_pb2.INSTANCE_STATE_STOPPED
    assert wait_gone([pid], timeout=5) == []
    got = server.instances.GetInstance(
        instance_pb2.GetInstanceRequest(instance_id="skeleton"), timeout=5
    ).instance
    assert got.state == common_pb2.INSTANCE_STATE_STOPPED and got.worker_pid == 0
    # The tick stream of a stopped instance ends with a status the client can act on.
    reader.join(5)
    assert not reader.is_alive()
    assert ended[0].code() == grpc.StatusCode.UNAVAILABLE
    assert error_info(ended[0]).reason == "INSTANCE_STOPPED"


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("symbol", "NOPE", "SYMBOL_UNKNOWN"),
        ("volume", 0.0, "VOLUME_INVALID"),
        ("volume", -0.1, "VOLUME_INVALID"),
        ("volume", float("nan"), "VOLUME_INVALID"),
        ("volume", float("inf"), "VOLUME_INVALID"),
        ("volume", 0.015, "VOLUME_OFF_STEP"),
        ("volume", 0.001, "VOLUME_BELOW_MIN"),
        ("volume", 1e9, "VOLUME_ABOVE_MAX"),
        ("side", common_pb2.SIDE_UNSPECIFIED, "SIDE_INVALID"),
        ("stop_loss", float("nan"), "PRICE_INVALID"),
        ("client_order_id", "has space", "CLIENT_ORDER_ID_INVALID"),
    ],
)
def test_bad_orders_are_invalid_argument(
    server: ServerProcess, field: str, value: object, reason: str
) -> None:
    if "errors" not in {
        i.instance_id
        for i in server.instances.ListInstances(instance_pb2.ListInstancesRequest()).instances
    }:
        create_sim(server, "errors", ["EURUSD"], tick_rate=20)  # waits for a first price
    request = order_pb2.PlaceOrderRequest(
        instance_id="errors",
        symbol="EURUSD",
        side=common_pb2.SIDE_BUY,
        type=common_pb2.ORDER_TYPE_MARKET,
        volume=0.1,
    )
    setattr(request, field, value)
    with pytest.raises(grpc.RpcError) as caught:
        server.orders.PlaceOrder(request, timeout=5)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    info = error_info(caught.value)
    assert (info.domain, info.reason, info.metadata["field"]) == ("mt5exec", reason, field)
    assert field in caught.value.details()
    positions = server.orders.ListPositions(
        order_pb2.ListPositionsRequest(instance_id="errors"), timeout=5
    )
    assert len(positions.positions) == 0, "nothing reached the terminal"


def test_unknown_instance_is_not_found(server: ServerProcess) -> None:
    calls = [
        lambda: server.orders.PlaceOrder(
            order_pb2.PlaceOrderRequest(
                instance_id="ghost", symbol="EURUSD", side=1, type=1, volume=0.1
            ),
            timeout=5,
        ),
        lambda: server.orders.GetAccount(order_pb2.GetAccountRequest(instance_id="ghost")),
        lambda: server.instances.GetInstance(instance_pb2.GetInstanceRequest(instance_id="ghost")),
        lambda: next(
            server.streams.StreamTicks(
                stream_pb2.StreamTicksRequest(instance_ids=["ghost"]), timeout=5
            )
        ),
    ]
    for call in calls:
        with pytest.raises(grpc.RpcError) as caught:
            call()
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
        assert error_info(caught.value).reason == "INSTANCE_NOT_FOUND"


@pytest.mark.parametrize("bad", ["../etc", "a/b", "x" * 65, ".hidden", "sp ace"])
def test_bad_instance_ids_are_refused(server: ServerProcess, bad: str) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        create_sim(server, bad)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(caught.value).metadata["field"] == "instance_id"


def test_bad_instance_config_names_the_field(server: ServerProcess) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        create_sim(server, "badsym", ["EURUSD", "DOGEUSD"])
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(caught.value).metadata["field"] == "config.symbols"
    with pytest.raises(grpc.RpcError) as caught:
        create_sim(server, "badrate", tick_rate=float("nan"))
    assert error_info(caught.value).metadata["field"] == "config.tick_rate"


def test_duplicate_instance_is_already_exists(server: ServerProcess) -> None:
    create_sim(server, "twice")
    with pytest.raises(grpc.RpcError) as caught:
        create_sim(server, "twice")
    assert caught.value.code() == grpc.StatusCode.ALREADY_EXISTS


def test_no_rpc_is_left_unbuilt(server: ServerProcess) -> None:
    # Every RPC of the descriptors has its servicer method, and no service plans one (those
    # would answer UNIMPLEMENTED).
    classes = (InstanceService, OrderService, StreamService, AuthService, MarketDataService)
    unbuilt = [
        f"{service.full_name}/{method.name}"
        for service, servicer in zip(SERVICES, classes, strict=True)
        for method in service.methods
        if not callable(getattr(servicer, method.name, None))
    ]
    assert unbuilt == []
    planned = [instance_svc, order_svc, stream_svc, auth_svc, market_svc]
    assert [m.__name__ for m in planned if m.PLANNED] == []
    # The last one built answers: an empty StreamBook request names its missing field.
    book = market_pb2_grpc.MarketDataServiceStub(server.channel).StreamBook(
        market_pb2.StreamBookRequest(), timeout=30
    )
    with pytest.raises(grpc.RpcError) as caught:
        next(iter(book))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(caught.value).metadata["field"] == "instance_id"


def test_list_instances_pages(server: ServerProcess) -> None:
    for name in ("page-a", "page-b", "page-c"):
        create_sim(server, name, tick_rate=1)
    seen: list[str] = []
    token = ""
    while True:
        page = server.instances.ListInstances(
            instance_pb2.ListInstancesRequest(page_size=2, page_token=token), timeout=5
        )
        assert len(page.instances) <= 2
        seen += [i.instance_id for i in page.instances]
        token = page.next_page_token
        if not token:
            break
    assert {"page-a", "page-b", "page-c"} <= set(seen)
    assert len(seen) == len(set(seen))


def test_history_records_instances_orders_and_executions(tmp_path: object) -> None:
    from pathlib import Path

    data = Path(str(tmp_path)) / "data"
    with ServerProcess(data) as srv:
        create_sim(srv, "hist", ["EURUSD"], tick_rate=20)
        time.sleep(0.2)
        for n in range(3):
            srv.orders.PlaceOrder(
                order_pb2.PlaceOrderRequest(
                    instance_id="hist",
                    client_order_id=f"h-{n}",
                    symbol="EURUSD",
                    side=common_pb2.SIDE_SELL,
                    type=common_pb2.ORDER_TYPE_MARKET,
                    volume=0.02,
                ),
                timeout=10,
            )
    db = duckdb.connect(str(data / "history.duckdb"), read_only=True)
    try:
        assert db.execute("select state from instances where instance_id='hist'").fetchall() == [
            ("STOPPED",)
        ]
        orders = db.execute(
            "select client_order_id, status from orders where instance_id='hist' order by 1"
        ).fetchall()
        assert orders == [(f"h-{n}", "FILLED") for n in range(3)]
        sequences = db.execute(
            "select sequence from executions where instance_id='hist' order by 1"
        ).fetchall()
        assert [s for (s,) in sequences] == list(range(1, 10)), "3 x (submitted, fill, filled)"
    finally:
        db.close()


def test_sigterm_stops_every_worker(tmp_path: object) -> None:
    from pathlib import Path

    srv = ServerProcess(Path(str(tmp_path)) / "data").start()
    try:
        pids = [create_sim(srv, f"w{n}", tick_rate=50).worker_pid for n in range(3)]
        assert all(not process_gone(p) for p in pids)
        assert srv.terminate() == 0
        assert wait_gone(pids, timeout=5) == []
    finally:
        srv.kill()


def test_sigkill_of_the_server_leaves_no_worker_trading(tmp_path: object) -> None:
    from pathlib import Path

    srv = ServerProcess(Path(str(tmp_path)) / "data").start()
    try:
        pids = [create_sim(srv, f"k{n}", tick_rate=50).worker_pid for n in range(2)]
        srv.kill()
        assert wait_gone(pids, timeout=5) == [], "workers exit when the engine's socket closes"
    finally:
        srv.kill()


def test_an_instance_made_again_numbers_its_events_after_the_deleted_one(tmp_path: object) -> None:
    """Clients and the history key events by (instance, sequence): an instance deleted and
    created again under its id goes on from the last number, so the history keeps both."""
    from pathlib import Path

    data = Path(str(tmp_path)) / "data"

    def order(cid: str) -> order_pb2.PlaceOrderRequest:
        return order_pb2.PlaceOrderRequest(
            instance_id="again",
            client_order_id=cid,
            symbol="EURUSD",
            side=common_pb2.SIDE_BUY,
            type=common_pb2.ORDER_TYPE_MARKET,
            volume=0.01,
        )

    def sequences(srv: ServerProcess, cid: str) -> list[int]:
        """The numbers of the events kept, up to the one of ``cid`` FILLED."""
        request = stream_pb2.StreamExecutionsRequest(instance_id="again", from_sequence=0)
        stream = srv.streams.StreamExecutions(request, timeout=60)
        seen: list[int] = []
        for message in stream:
            seen += [e.sequence for e in message.events]
            if any(
                e.order_update.client_order_id == cid
                and e.order_update.status == common_pb2.ORDER_STATUS_FILLED
                for e in message.events
            ):
                stream.cancel()
                return seen
        raise AssertionError(f"the stream ended before {cid} FILLED: {seen}")

    with ServerProcess(data) as srv:
        create_sim(srv, "again", ["EURUSD"], tick_rate=20)
        srv.orders.PlaceOrder(order("first"), timeout=10)
        before = sequences(srv, "first")
        srv.instances.DeleteInstance(
            instance_pb2.DeleteInstanceRequest(instance_id="again"), timeout=30
        )
        create_sim(srv, "again", ["EURUSD"], tick_rate=20)
        srv.orders.PlaceOrder(order("second"), timeout=10)
        after = sequences(srv, "second")
    assert before and after
    assert min(after) > max(before), (before, after)
    db = duckdb.connect(str(data / "history.duckdb"), read_only=True)
    try:
        cids = db.execute(
            "select distinct client_order_id from executions where instance_id='again' order by 1"
        ).fetchall()
    finally:
        db.close()
    assert cids == [("first",), ("second",)]
