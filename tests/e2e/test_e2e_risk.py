"""The risk gate end to end: rejections, runtime limits, trading states, throttles and the
kill switch — real server, real workers."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest
from google.protobuf import field_mask_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from tests.support import BULK_RISK, create_sim, error_info, market, wait_for_price

from mt5exec.testing import ServerProcess
from mt5exec.v1 import common_pb2, instance_pb2, order_pb2, stream_pb2

FILLED = common_pb2.ORDER_STATUS_FILLED
REJECTED = common_pb2.ORDER_STATUS_REJECTED
ACCEPTED = common_pb2.ORDER_STATUS_ACCEPTED


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with ServerProcess(tmp_path_factory.mktemp("risk")) as proc:
        yield proc


def bid(server: ServerProcess, instance_id: str) -> float:
    """A price of the instance's EURUSD: a market order's fill (after its first tick)."""
    deadline = time.monotonic() + 60
    while True:
        probe = market(instance_id, f"probe-{time.time_ns()}")
        try:
            return server.orders.PlaceOrder(probe, timeout=10).order.average_fill_price
        except grpc.RpcError as e:
            if error_info(e).reason != "NO_PRICE" or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def refused(call: object) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call()  # type: ignore[operator]
    return caught.value


def with_limits(server: ServerProcess, instance_id: str, **limits: object) -> int:
    """Replaces the whole set of limits (update_mask "risk": those not given are 0, off)."""
    response = server.instances.UpdateInstanceConfig(
        instance_pb2.UpdateInstanceConfigRequest(
            instance_id=instance_id,
            config=common_pb2.InstanceConfig(risk=common_pb2.RiskLimits(**limits)),  # type: ignore[arg-type]
            update_mask=field_mask_pb2.FieldMask(paths=["risk"]),
        ),
        timeout=10,
    )
    return response.version


def test_defaults_come_from_the_risk_template(server: ServerProcess) -> None:
    instance = create_sim(server, "tmpl")
    risk = instance.config.risk
    assert (risk.max_trades_per_day, risk.max_open_positions, risk.orders_per_second) == (
        50,
        20,
        100.0,
    )
    assert instance.config_version == 1
    assert instance.trading_state == common_pb2.TRADING_STATE_ACTIVE


def test_a_rejection_names_its_reason_and_is_an_execution_event(server: ServerProcess) -> None:
    create_sim(server, "rej", risk=common_pb2.RiskLimits(max_order_volume=1.0))
    server.orders.PlaceOrder(market("rej", "rej-ok"), timeout=10)
    e = refused(lambda: server.orders.PlaceOrder(market("rej", "rej-big", volume=1.5), timeout=10))
    assert e.code() == grpc.StatusCode.FAILED_PRECONDITION
    info = error_info(e)
    assert (info.reason, info.metadata["field"]) == ("VOLUME_ABOVE_LIMIT", "volume")
    assert "1.5" in (e.details() or "")
    # Nothing reached the terminal, and the same id may be sent again within the limits.
    assert server.orders.PlaceOrder(market("rej", "rej-big", volume=1.0), timeout=10).order
    call = server.streams.StreamExecutions(
        stream_pb2.StreamExecutionsRequest(instance_id="rej", from_sequence=1), timeout=5
    )
    events = []
    try:
        for batch in call:
            events += batch.events
            if any(ev.order_update.client_order_id == "rej-big" for ev in events):
                break
    except grpc.RpcError:
        pass
    rejected = [ev.order_update for ev in events if ev.order_update.status == REJECTED]
    assert [(o.client_order_id, o.reject_reason) for o in rejected] == [
        ("rej-big", "VOLUME_ABOVE_LIMIT")
    ]
    check = server.orders.CheckOrder(
        order_pb2.CheckOrderRequest(order=market("rej", "rej-check", volume=2.0)), timeout=10
    )
    assert (check.accepted, check.reason) == (False, "VOLUME_ABOVE_LIMIT")
    assert check.margin_required > 0
    samples = server.metrics().splitlines()
    assert (
        'mt5exec_risk_rejections_total{instance_id="rej",reason="VOLUME_ABOVE_LIMIT"} 1.0'
        in samples
    )


def test_limits_change_at_runtime_versioned_and_guarded(server: ServerProcess) -> None:
    create_sim(server, "upd", risk=BULK_RISK)
    server.orders.PlaceOrder(market("upd", "upd-1", volume=2.0), timeout=10)
    version = with_limits(server, "upd", max_order_volume=1.0, min_order_volume=0.01)
    assert version == 2
    e = refused(lambda: server.orders.PlaceOrder(market("upd", "upd-2", volume=2.0), timeout=10))
    assert error_info(e).reason == "VOLUME_ABOVE_LIMIT"
    stale = instance_pb2.UpdateInstanceConfigRequest(
        instance_id="upd",
        config=common_pb2.InstanceConfig(risk=BULK_RISK),
        expected_version=1,
        update_mask=field_mask_pb2.FieldMask(paths=["risk"]),
    )
    e = refused(lambda: server.instances.UpdateInstanceConfig(stale, timeout=10))
    assert e.code() == grpc.StatusCode.ABORTED
    assert error_info(e).reason == "CONFIG_VERSION_MISMATCH"
    fixed = instance_pb2.UpdateInstanceConfigRequest(
        instance_id="upd", config=common_pb2.InstanceConfig(tick_rate=5)
    )
    e = refused(lambda: server.instances.UpdateInstanceConfig(fixed, timeout=10))
    assert (e.code(), error_info(e).metadata["field"]) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "config.tick_rate",
    )
    bad = instance_pb2.UpdateInstanceConfigRequest(
        instance_id="upd",
        config=common_pb2.InstanceConfig(risk=common_pb2.RiskLimits(max_daily_loss=-1)),
        update_mask=field_mask_pb2.FieldMask(paths=["risk.max_daily_loss"]),
    )
    e = refused(lambda: server.instances.UpdateInstanceConfig(bad, timeout=10))
    assert error_info(e).metadata["field"] == "risk.max_daily_loss"
    instance = server.instances.GetInstance(
        instance_pb2.GetInstanceRequest(instance_id="upd"), timeout=5
    ).instance
    assert (instance.config_version, instance.config.risk.max_order_volume) == (2, 1.0)


def test_reduce_only_and_halted(server: ServerProcess) -> None:
    create_sim(server, "states", risk=BULK_RISK)
    opened = server.orders.PlaceOrder(market("states", "st-open", volume=0.1), timeout=10).order
    events = server.streams.StreamInstanceEvents(
        stream_pb2.StreamInstanceEventsRequest(instance_ids=["states"]), timeout=30
    )
    events.initial_metadata()  # subscribed from here on
    reasons: list[str] = []

    def read() -> None:
        for batch in events:
            reasons.extend(event.reason for event in batch.events)
            if "TRADING_STATE_HALTED" in reasons:
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    server.instances.SetTradingState(
        instance_pb2.SetTradingStateRequest(
            instance_id="states",
            trading_state=common_pb2.TRADING_STATE_REDUCE_ONLY,
            reason="risk desk",
        ),
        timeout=5,
    )
    e = refused(lambda: server.orders.PlaceOrder(market("states", "st-more"), timeout=10))
    assert (e.code(), error_info(e).reason) == (grpc.StatusCode.FAILED_PRECONDITION, "REDUCE_ONLY")
    closed = server.orders.ClosePosition(
        order_pb2.ClosePositionRequest(
            instance_id="states", position_id=opened.position_id, volume=0.05
        ),
        timeout=10,
    )
    assert closed.order.status == FILLED
    response = server.instances.SetTradingState(
        instance_pb2.SetTradingStateRequest(
            instance_id="states", trading_state=common_pb2.TRADING_STATE_HALTED
        ),
        timeout=5,
    )
    assert response.instance.trading_state == common_pb2.TRADING_STATE_HALTED
    reader.join(10)
    events.cancel()
    # Operators watching instance events see trading state changes (lifecycle unchanged).
    assert reasons == ["TRADING_STATE_REDUCE_ONLY", "TRADING_STATE_HALTED"]
    e = refused(
        lambda: server.orders.ClosePosition(
            order_pb2.ClosePositionRequest(instance_id="states", position_id=opened.position_id),
            timeout=10,
        )
    )
    assert error_info(e).reason == "TRADING_HALTED"
    e = refused(
        lambda: server.instances.SetTradingState(
            instance_pb2.SetTradingStateRequest(instance_id="states", trading_state=0), timeout=5
        )
    )
    assert error_info(e).metadata["field"] == "trading_state"


def test_a_burst_gets_exactly_the_throttle(server: ServerProcess) -> None:
    rate = 20.0
    create_sim(
        server,
        "burst-risk",
        risk=common_pb2.RiskLimits(
            max_order_volume=10, min_order_volume=0.01, orders_per_second=rate
        ),
    )
    time.sleep(1.0)  # a full bucket
    requests = [
        order_pb2.OrderSessionRequest(place=market("burst-risk", f"b-{n}")) for n in range(1000)
    ]
    start = time.monotonic()
    responses = list(server.orders.OrderSession(iter(requests), timeout=60))
    elapsed = time.monotonic() - start
    accepted = [r for r in responses if r.code == 0]
    limited = [r for r in responses if r.reason == "RATE_LIMITED"]
    assert len(accepted) + len(limited) == 1000
    assert all(r.code == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0] for r in limited)
    # The bucket holds one second's worth; it refills at the rate while the burst runs.
    assert rate <= len(accepted) <= rate + int(elapsed * rate) + 1, (len(accepted), elapsed)
    # A unary call meets the throttle too: an instance whose bucket holds one token and
    # earns the next in 100 s (at 20/s, a loaded machine's slow calls earned tokens between
    # tries, and none was refused).
    create_sim(
        server,
        "unary-risk",
        risk=common_pb2.RiskLimits(
            max_order_volume=10, min_order_volume=0.01, orders_per_second=0.01
        ),
    )
    server.orders.PlaceOrder(market("unary-risk", "u-1"), timeout=30)
    e = refused(lambda: server.orders.PlaceOrder(market("unary-risk", "u-2"), timeout=30))
    assert (e.code(), error_info(e).reason) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "RATE_LIMITED")
    status = rpc_status.from_call(e)  # type: ignore[arg-type]
    assert status is not None
    retry = [d for d in status.details if d.Is(error_details_pb2.RetryInfo.DESCRIPTOR)]
    assert retry, "RESOURCE_EXHAUSTED carries RetryInfo"


def pending(instance_id: str, cid: str, price: float) -> order_pb2.PlaceOrderRequest:
    request = market(instance_id, cid)
    request.type = common_pb2.ORDER_TYPE_LIMIT
    request.price = price
    return request


def test_kill_switch_30_instances(tmp_path: Path) -> None:
    # Thirty interpreters start at once: on a loaded machine each may take longer than the
    # default 10 s.
    env = {"MT5EXEC_ENGINE_WORKER_START_TIMEOUT_S": "120"}
    with ServerProcess(tmp_path / "data", env=env) as server:
        ids = [f"k{n:02d}" for n in range(30)]
        with ThreadPoolExecutor(30) as pool:
            list(
                pool.map(
                    lambda i: create_sim(server, i, tick_rate=5, risk=BULK_RISK, timeout=180), ids
                )
            )
        price = round(bid(server, ids[0]) * 0.98, 5)

        def place_ten(instance_id: str) -> list[int]:
            return [
                server.orders.PlaceOrder(
                    pending(instance_id, f"{instance_id}-p{n}", price), timeout=60
                ).order.status
                for n in range(10)
            ]

        with ThreadPoolExecutor(30) as pool:
            statuses = [s for batch in pool.map(place_ten, ids) for s in batch]
        assert statuses == [ACCEPTED] * 300
        start = time.monotonic()
        response = server.instances.EngageKillSwitch(
            instance_pb2.EngageKillSwitchRequest(
                scope=instance_pb2.KillSwitchScope(**{"global": True}), reason="test"
            ),
            timeout=30,
        )
        elapsed = time.monotonic() - start
        assert sorted(response.instance_ids) == ids
        assert response.orders_cancelled == 300, response
        for instance_id in ids:
            open_orders = server.orders.ListOrders(
                order_pb2.ListOrdersRequest(instance_id=instance_id), timeout=5
            ).orders
            assert open_orders == [], instance_id
        e = refused(lambda: server.orders.PlaceOrder(market("k07", "after-kill"), timeout=10))
        assert (e.code(), error_info(e).reason) == (
            grpc.StatusCode.FAILED_PRECONDITION,
            "KILL_SWITCH",
        )
        one = instance_pb2.KillSwitchScope(instance_id="k07")
        e = refused(
            lambda: server.instances.ReleaseKillSwitch(
                instance_pb2.ReleaseKillSwitchRequest(scope=one), timeout=5
            )
        )
        assert error_info(e).reason == "KILL_SWITCH"  # the global one holds it
        released = server.instances.ReleaseKillSwitch(
            instance_pb2.ReleaseKillSwitchRequest(
                scope=instance_pb2.KillSwitchScope(**{"global": True})
            ),
            timeout=5,
        )
        assert sorted(released.instance_ids) == ids
        assert server.orders.PlaceOrder(market("k07", "after-release"), timeout=10).order
        print(f"kill switch, 30 instances x 10 pending orders: {elapsed * 1000:.0f} ms")


def wait_ready(server: ServerProcess, instance_id: str) -> common_pb2.Instance:
    deadline = time.monotonic() + 20
    while True:
        instance = server.instances.GetInstance(
            instance_pb2.GetInstanceRequest(instance_id=instance_id), timeout=5
        ).instance
        if instance.state == common_pb2.INSTANCE_STATE_READY or time.monotonic() > deadline:
            return instance
        time.sleep(0.05)


def test_kill_switch_closes_and_survives_a_restart(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with ServerProcess(data) as server:
        create_sim(server, "kc", risk=BULK_RISK)
        create_sim(server, "other", risk=BULK_RISK)
        for n in range(3):
            server.orders.PlaceOrder(market("kc", f"kc-{n}", volume=0.1), timeout=10)
        with_limits(server, "other", max_order_volume=5.0, min_order_volume=0.01)
        response = server.instances.EngageKillSwitch(
            instance_pb2.EngageKillSwitchRequest(
                scope=instance_pb2.KillSwitchScope(owner="default"), close_positions=True
            ),
            timeout=30,
        )
        assert response.positions_closed == 3
        listed = server.orders.ListPositions(
            order_pb2.ListPositionsRequest(instance_id="kc"), timeout=5
        )
        assert list(listed.positions) == []
    with ServerProcess(data) as server:
        for instance_id in ("kc", "other"):
            instance = wait_ready(server, instance_id)
            assert instance.kill_switch, instance_id
        # Runtime limits and their version came back too.
        assert (instance.config_version, instance.config.risk.max_order_volume) == (2, 5.0)
        e = refused(lambda: server.orders.PlaceOrder(market("other", "o-1"), timeout=10))
        assert error_info(e).reason == "KILL_SWITCH"
        # An instance created while its owner's switch is engaged is covered too.
        late = create_sim(server, "late")
        assert late.kill_switch
        server.instances.ReleaseKillSwitch(
            instance_pb2.ReleaseKillSwitchRequest(
                scope=instance_pb2.KillSwitchScope(owner="default")
            ),
            timeout=5,
        )
        assert server.orders.PlaceOrder(market("other", "o-2"), timeout=10).order


def test_orders_in_flight_at_the_kill_are_cancelled_when_accepted(tmp_path: Path) -> None:
    env = {"MT5EXEC_SIM_ORDER_DELAY_MS": "300"}
    with ServerProcess(tmp_path / "data", env=env) as server:
        create_sim(server, "flight", risk=BULK_RISK)
        price = round(bid(server, "flight") * 0.98, 5)
        with ThreadPoolExecutor(5) as pool:
            placed = [
                pool.submit(
                    server.orders.PlaceOrder, pending("flight", f"fl-{n}", price), timeout=10
                )
                for n in range(5)
            ]
            # All five sent (SUBMITTED, the worker holds each for 300 ms), then the kill.
            open_request = order_pb2.ListOrdersRequest(instance_id="flight")
            deadline = time.monotonic() + 60
            while len(server.orders.ListOrders(open_request, timeout=5).orders) < 5:
                assert time.monotonic() < deadline
                time.sleep(0.005)
            server.instances.EngageKillSwitch(
                instance_pb2.EngageKillSwitchRequest(
                    scope=instance_pb2.KillSwitchScope(instance_id="flight")
                ),
                timeout=10,
            )
            assert [f.result().order.status for f in placed] == [ACCEPTED] * 5
        deadline = time.monotonic() + 60
        request = order_pb2.ListOrdersRequest(instance_id="flight")
        while server.orders.ListOrders(request, timeout=5).orders:
            assert time.monotonic() < deadline, "orders accepted after the kill stayed open"
            time.sleep(0.05)


def hhmm(offset_minutes: int) -> str:
    minute = (time.gmtime().tm_hour * 60 + time.gmtime().tm_min + offset_minutes) % 1440
    return f"{minute // 60:02d}:{minute % 60:02d}"


def test_window_duplicates_stale_ticks_and_modify_collar(server: ServerProcess) -> None:
    limits = {"max_order_volume": 10.0, "min_order_volume": 0.01}
    create_sim(server, "rules", risk=BULK_RISK)
    with_limits(server, "rules", **limits, session_start=hhmm(120), session_end=hhmm(180))
    e = refused(lambda: server.orders.PlaceOrder(market("rules", "r-closed"), timeout=10))
    assert error_info(e).reason == "OUTSIDE_SESSION"
    with_limits(server, "rules", **limits, session_start=hhmm(-60), session_end=hhmm(60))
    server.orders.PlaceOrder(market("rules", "r-open"), timeout=10)
    with_limits(server, "rules", **limits, duplicate_window_ms=60_000)
    server.orders.PlaceOrder(market("rules", "r-dup-1", volume=0.03), timeout=10)
    e = refused(
        lambda: server.orders.PlaceOrder(market("rules", "r-dup-2", volume=0.03), timeout=10)
    )
    assert error_info(e).reason == "DUPLICATE_ORDER"
    server.orders.PlaceOrder(market("rules", "r-dup-3", volume=0.04), timeout=10)
    with_limits(server, "rules", **limits, price_collar_percent=1.0)
    price = bid(server, "rules")
    placed = server.orders.PlaceOrder(
        pending("rules", "r-lim", round(price * 0.995, 5)), timeout=10
    )
    assert placed.order.status == ACCEPTED
    e = refused(
        lambda: server.orders.PlaceOrder(
            pending("rules", "r-far", round(price * 0.98, 5)), timeout=10
        )
    )
    assert (error_info(e).reason, error_info(e).metadata["field"]) == ("PRICE_COLLAR", "price")
    far = order_pb2.ModifyOrderRequest(
        instance_id="rules", client_order_id="r-lim", price=round(price * 0.98, 5)
    )
    e = refused(lambda: server.orders.ModifyOrder(far, timeout=10))
    assert error_info(e).reason == "PRICE_COLLAR"
    # One tick per symbol every 5 s: most of the time the last one is older than 100 ms.
    create_sim(server, "slow", tick_rate=0.2, risk=BULK_RISK)
    with_limits(server, "slow", **limits, stale_tick_ms=100)
    reasons = []
    for n in range(10):
        try:
            server.orders.PlaceOrder(market("slow", f"s-{n}"), timeout=10)
        except grpc.RpcError as err:
            reasons.append(error_info(err).reason)
            break
        time.sleep(0.15)
    assert reasons == ["STALE_TICK"]


def test_owner_policies_and_daily_counts_survive_a_restart(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "risk_owners.json").write_text(
        '{"alice": {"allowed_symbols": ["EURUSD"], "orders_per_second": 5}}'
    )

    def create(server: ServerProcess, instance_id: str, owner: str) -> None:
        server.instances.CreateInstance(
            instance_pb2.CreateInstanceRequest(
                instance_id=instance_id,
                owner=owner,
                config=common_pb2.InstanceConfig(
                    symbols=["EURUSD", "GBPUSD"],
                    tick_rate=10,
                    risk=BULK_RISK,
                ),
            ),
            timeout=30,
        )
        wait_for_price(server, instance_id, "EURUSD")
        wait_for_price(server, instance_id, "GBPUSD")

    with ServerProcess(data) as server:
        create(server, "a1", "alice")
        create(server, "a2", "alice")
        create(server, "b1", "bob")
        gbp = market("a1", "a-gbp")
        gbp.symbol = "GBPUSD"
        e = refused(lambda: server.orders.PlaceOrder(gbp, timeout=10))
        assert error_info(e).reason == "SYMBOL_NOT_ALLOWED"
        bob_gbp = market("b1", "b-gbp")
        bob_gbp.symbol = "GBPUSD"
        server.orders.PlaceOrder(bob_gbp, timeout=10)
        # Alice's 5 orders/s are shared by her two instances: a burst gets the bucket's five
        # (plus what it earns back while the burst runs), then RATE_LIMITED.
        results = []
        start = time.monotonic()
        for n in range(20):
            try:
                server.orders.PlaceOrder(market(f"a{n % 2 + 1}", f"a-{n}"), timeout=10)
                results.append("ok")
            except grpc.RpcError as err:
                results.append(error_info(err).reason)
        elapsed = time.monotonic() - start
        assert results[:5] == ["ok"] * 5, results
        assert 5 <= results.count("ok") <= 5 + int(elapsed * 5) + 1, (results, elapsed)
        assert "RATE_LIMITED" in results and set(results) == {"ok", "RATE_LIMITED"}
        # a1 takes the even-numbered orders: cap its day at what it has sent.
        sent_by_a1 = sum(1 for n, r in enumerate(results) if r == "ok" and n % 2 == 0)
        with_limits(
            server, "a1", max_order_volume=10, min_order_volume=0.01, max_trades_per_day=sent_by_a1
        )
        e = refused(lambda: server.orders.PlaceOrder(market("a1", "a1-over"), timeout=10))
        assert error_info(e).reason == "MAX_TRADES_PER_DAY"
    with ServerProcess(data) as server:
        wait_ready(server, "a1")
        wait_for_price(server, "a1", "EURUSD")  # else NO_PRICE comes first
        e = refused(lambda: server.orders.PlaceOrder(market("a1", "a1-after"), timeout=10))
        assert error_info(e).reason == "MAX_TRADES_PER_DAY"


def test_a_killed_instance_cancels_what_its_terminal_reports_after_a_restart(
    server: ServerProcess,
) -> None:
    create_sim(server, "asleep", risk=BULK_RISK)
    price = round(bid(server, "asleep") * 0.98, 5)
    for n in range(3):
        server.orders.PlaceOrder(pending("asleep", f"as-{n}", price), timeout=10)
    server.instances.StopInstance(
        instance_pb2.StopInstanceRequest(instance_id="asleep"), timeout=30
    )
    response = server.instances.EngageKillSwitch(
        instance_pb2.EngageKillSwitchRequest(
            scope=instance_pb2.KillSwitchScope(instance_id="asleep")
        ),
        timeout=10,
    )
    assert response.orders_cancelled == 0  # no worker to ask
    server.instances.StartInstance(
        instance_pb2.StartInstanceRequest(instance_id="asleep"), timeout=30
    )
    deadline = time.monotonic() + 60
    request = order_pb2.ListOrdersRequest(instance_id="asleep")
    while server.orders.ListOrders(request, timeout=5).orders:
        assert time.monotonic() < deadline, "the terminal's pending orders stayed open"
        time.sleep(0.05)
    history = order_pb2.ListOrdersRequest(instance_id="asleep", history=True)
    statuses = {
        o.client_order_id: o.status for o in server.orders.ListOrders(history, timeout=5).orders
    }
    assert all(statuses[f"as-{n}"] == common_pb2.ORDER_STATUS_CANCELED for n in range(3))


def test_a_kill_switch_closes_what_a_stopped_instance_holds_once_it_is_back(
    server: ServerProcess,
) -> None:
    create_sim(server, "held", risk=BULK_RISK)
    for n in range(2):
        server.orders.PlaceOrder(market("held", f"held-{n}", volume=0.1), timeout=10)
    server.instances.StopInstance(instance_pb2.StopInstanceRequest(instance_id="held"), timeout=30)
    response = server.instances.EngageKillSwitch(
        instance_pb2.EngageKillSwitchRequest(
            scope=instance_pb2.KillSwitchScope(instance_id="held"), close_positions=True
        ),
        timeout=10,
    )
    assert response.positions_closed == 0  # no worker to take the closes now
    server.instances.StartInstance(
        instance_pb2.StartInstanceRequest(instance_id="held"), timeout=30
    )
    # Closed once the worker is back and has reported them (not left open for good).
    request = order_pb2.ListPositionsRequest(instance_id="held")
    deadline = time.monotonic() + 30
    while True:
        reason = ""
        try:
            if not server.orders.ListPositions(request, timeout=5).positions:
                break
        except grpc.RpcError as e:
            reason = error_info(e).reason
        assert reason in ("", "INSTANCE_NOT_READY")
        assert time.monotonic() < deadline, "the kill switch left the positions open"
        time.sleep(0.05)
    # Still engaged: nothing new gets through.
    e = refused(lambda: server.orders.PlaceOrder(market("held", "held-after"), timeout=10))
    assert error_info(e).reason == "KILL_SWITCH"


def test_kill_switch_bad_scopes_are_refused(server: ServerProcess) -> None:
    cases = [
        (instance_pb2.EngageKillSwitchRequest(), grpc.StatusCode.INVALID_ARGUMENT, "scope"),
        (
            instance_pb2.EngageKillSwitchRequest(
                scope=instance_pb2.KillSwitchScope(**{"global": False})
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "scope",
        ),
        (
            instance_pb2.EngageKillSwitchRequest(scope=instance_pb2.KillSwitchScope(owner="")),
            grpc.StatusCode.INVALID_ARGUMENT,
            "scope.owner",
        ),
        (
            instance_pb2.EngageKillSwitchRequest(
                scope=instance_pb2.KillSwitchScope(instance_id="no-such")
            ),
            grpc.StatusCode.NOT_FOUND,
            "instance_id",
        ),
    ]
    for request, code, field in cases:
        e = refused(lambda r=request: server.instances.EngageKillSwitch(r, timeout=5))  # type: ignore[misc]
        assert (e.code(), error_info(e).metadata["field"]) == (code, field), request
    e = refused(
        lambda: server.instances.ReleaseKillSwitch(
            instance_pb2.ReleaseKillSwitchRequest(), timeout=5
        )
    )
    assert (e.code(), error_info(e).metadata["field"]) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "scope",
    )
