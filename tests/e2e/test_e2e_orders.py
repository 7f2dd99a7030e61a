"""Orders end to end: idempotency, the journal, closes, lookups — real server, real workers."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import duckdb
import grpc
import pytest
from google.protobuf import timestamp_pb2
from tests.support import (
    BULK_RISK,
    create_sim,
    error_info,
    limit,
    market,
    wait_for_price,
    wait_ready,
)

from mt5exec.testing import ServerProcess
from mt5exec.v1 import common_pb2, instance_pb2, order_pb2

FILLED = common_pb2.ORDER_STATUS_FILLED


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with ServerProcess(tmp_path_factory.mktemp("orders")) as proc:
        yield proc


def positions(server: ServerProcess, instance_id: str) -> list[common_pb2.Position]:
    request = order_pb2.ListPositionsRequest(instance_id=instance_id)
    return list(server.orders.ListPositions(request, timeout=5).positions)


def ready_instance(server: ServerProcess, instance_id: str, **config: object) -> None:
    server.instances.CreateInstance(
        instance_pb2.CreateInstanceRequest(
            instance_id=instance_id,
            config=common_pb2.InstanceConfig(symbols=["EURUSD"], tick_rate=20, **config),  # type: ignore[arg-type]
        ),
        timeout=30,
    )
    wait_for_price(server, instance_id, "EURUSD")


def test_same_id_same_payload_is_one_order(server: ServerProcess) -> None:
    ready_instance(server, "idem")
    first = server.orders.PlaceOrder(market("idem", "once"), timeout=10).order
    again = server.orders.PlaceOrder(market("idem", "once"), timeout=10).order
    assert first.status == FILLED
    assert again == first
    assert len(positions(server, "idem")) == 1

    with pytest.raises(grpc.RpcError) as caught:
        server.orders.PlaceOrder(market("idem", "once", volume=0.02), timeout=10)
    assert caught.value.code() == grpc.StatusCode.ALREADY_EXISTS
    info = error_info(caught.value)
    assert (info.reason, info.metadata["field"]) == ("CLIENT_ORDER_ID_REUSED", "client_order_id")
    assert len(positions(server, "idem")) == 1


def test_a_generated_id_is_returned(server: ServerProcess) -> None:
    ready_instance(server, "gen")
    order = server.orders.PlaceOrder(market("gen", ""), timeout=10).order
    assert len(order.client_order_id) == 24
    got = server.orders.GetOrder(
        order_pb2.GetOrderRequest(instance_id="gen", client_order_id=order.client_order_id),
        timeout=5,
    ).order
    assert got == order


def test_a_thousand_concurrent_calls_with_100_ids_make_100_orders(server: ServerProcess) -> None:
    ready_instance(server, "burst", risk=BULK_RISK)
    cids = [f"burst-{n % 100}" for n in range(1000)]
    with ThreadPoolExecutor(32) as pool:
        orders = list(
            pool.map(lambda cid: server.orders.PlaceOrder(market("burst", cid), timeout=30), cids)
        )
    by_cid: dict[str, set[int]] = {}
    for reply in orders:
        assert reply.order.status == FILLED
        by_cid.setdefault(reply.order.client_order_id, set()).add(reply.order.order_id)
    assert len(by_cid) == 100
    assert all(len(ids) == 1 for ids in by_cid.values()), "one terminal order per id"
    assert len(positions(server, "burst")) == 100, "exactly 100 broker orders (hedging)"


def test_get_and_list_orders(server: ServerProcess) -> None:
    ready_instance(server, "lookup")
    placed = [
        server.orders.PlaceOrder(market("lookup", f"look-{n}"), timeout=10).order for n in range(3)
    ]
    by_ticket = server.orders.GetOrder(
        order_pb2.GetOrderRequest(instance_id="lookup", order_id=placed[1].order_id), timeout=5
    ).order
    assert by_ticket.client_order_id == "look-1"
    history = server.orders.ListOrders(
        order_pb2.ListOrdersRequest(instance_id="lookup", history=True, page_size=2), timeout=5
    )
    assert [o.client_order_id for o in history.orders] == ["look-2", "look-1"]
    rest = server.orders.ListOrders(
        order_pb2.ListOrdersRequest(
            instance_id="lookup", history=True, page_token=history.next_page_token
        ),
        timeout=5,
    )
    assert [o.client_order_id for o in rest.orders] == ["look-0"]
    assert not rest.next_page_token
    with pytest.raises(grpc.RpcError) as caught:
        server.orders.GetOrder(
            order_pb2.GetOrderRequest(instance_id="lookup", client_order_id="nope"), timeout=5
        )
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert error_info(caught.value).reason == "ORDER_NOT_FOUND"


@pytest.mark.parametrize(
    ("margin_mode", "instance_id"),
    [
        (common_pb2.ACCOUNT_MARGIN_MODE_HEDGING, "close-hedge"),
        (common_pb2.ACCOUNT_MARGIN_MODE_NETTING, "close-net"),
    ],
)
def test_partial_close_full_close_and_close_all(
    server: ServerProcess, margin_mode: int, instance_id: str
) -> None:
    ready_instance(server, instance_id, margin_mode=margin_mode)
    opened = server.orders.PlaceOrder(market(instance_id, "open-1", volume=0.3), timeout=10).order
    position_id = positions(server, instance_id)[0].position_id
    assert position_id == opened.position_id
    partial = server.orders.ClosePosition(
        order_pb2.ClosePositionRequest(
            instance_id=instance_id, position_id=position_id, volume=0.1, client_order_id="cut-1"
        ),
        timeout=10,
    ).order
    assert partial.status == FILLED
    assert partial.side == common_pb2.SIDE_SELL
    left = positions(server, instance_id)
    assert [round(p.volume, 2) for p in left] == [0.2]

    with pytest.raises(grpc.RpcError) as caught:
        server.orders.ClosePosition(
            order_pb2.ClosePositionRequest(
                instance_id=instance_id, position_id=position_id, volume=0.5
            ),
            timeout=10,
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as caught:
        server.orders.ClosePosition(
            order_pb2.ClosePositionRequest(instance_id=instance_id, position_id=999999),
            timeout=10,
        )
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND

    server.orders.PlaceOrder(
        market(instance_id, "open-2", volume=0.1, side=common_pb2.SIDE_BUY), timeout=10
    )
    closed = server.orders.CloseAll(
        order_pb2.CloseAllRequest(instance_id=instance_id, symbol="EURUSD"), timeout=30
    )
    assert closed.orders
    assert all(o.status == FILLED for o in closed.orders)
    assert positions(server, instance_id) == []


def test_bad_fields_name_themselves_and_reach_nothing(server: ServerProcess) -> None:
    ready_instance(server, "bad")
    base = market("bad", "")
    cases = {
        "price": dict(type=common_pb2.ORDER_TYPE_LIMIT, price=0.0),
        "stop_limit_price": dict(type=common_pb2.ORDER_TYPE_STOP_LIMIT, price=9.0),
        "expiration": dict(
            type=common_pb2.ORDER_TYPE_LIMIT,
            price=0.5,
            time_in_force=common_pb2.TIME_IN_FORCE_SPECIFIED,
        ),
        "take_profit": dict(take_profit=0.5),
        "volume": dict(volume=float("inf")),
        "type": dict(type=common_pb2.ORDER_TYPE_UNSPECIFIED),
    }
    for field, changes in cases.items():
        request = order_pb2.PlaceOrderRequest()
        request.CopyFrom(base)
        for name, value in changes.items():
            setattr(request, name, value)
        with pytest.raises(grpc.RpcError) as caught:
            server.orders.PlaceOrder(request, timeout=10)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, field
        assert error_info(caught.value).metadata["field"] == field
    assert positions(server, "bad") == []
    history = server.orders.ListOrders(
        order_pb2.ListOrdersRequest(instance_id="bad", history=True), timeout=5
    )
    assert list(history.orders) == [], "nothing reached the journal or the terminal"


def test_orders_survive_a_server_restart(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with ServerProcess(data) as first:
        create_sim(first, "durable", ["EURUSD"], tick_rate=20)
        placed = first.orders.PlaceOrder(market("durable", "keep-me"), timeout=10).order
    with ServerProcess(data) as second:
        wait_ready(second, "durable")
        got = second.orders.GetOrder(
            order_pb2.GetOrderRequest(instance_id="durable", client_order_id="keep-me"),
            timeout=5,
        ).order
        assert (got.status, got.order_id) == (FILLED, placed.order_id)
        retried = second.orders.PlaceOrder(market("durable", "keep-me"), timeout=10).order
        assert retried.order_id == placed.order_id
        assert len(positions(second, "durable")) == 1, "the retry sent nothing"


def test_kill9_mid_burst_loses_no_acknowledged_order_and_sends_none_twice(
    tmp_path: Path,
) -> None:
    with ServerProcess(tmp_path / "data") as server:
        instance = create_sim(server, "storm", ["EURUSD"], tick_rate=20, risk=BULK_RISK)
        acked: dict[str, int] = {}
        failed: list[str] = []
        lock = threading.Lock()
        killed = threading.Event()

        def send(n: int) -> None:
            cid = f"storm-{n}"
            try:
                order = server.orders.PlaceOrder(market("storm", cid), timeout=15).order
                with lock:
                    acked[cid] = order.order_id
                    if len(acked) == 100 and not killed.is_set():  # kill -9 it mid-burst
                        killed.set()
                        os.kill(instance.worker_pid, signal.SIGKILL)
            except grpc.RpcError:
                with lock:
                    failed.append(cid)

        with ThreadPoolExecutor(16) as pool:
            list(pool.map(send, range(500)))
        assert acked, "some orders were acknowledged before the kill"
        assert failed, "the kill landed mid-burst"

        deadline = time.monotonic() + 60
        while True:
            now = server.instances.GetInstance(
                instance_pb2.GetInstanceRequest(instance_id="storm"), timeout=5
            ).instance
            if (
                now.state == common_pb2.INSTANCE_STATE_READY
                and now.worker_pid != instance.worker_pid
            ):
                break
            assert time.monotonic() < deadline, f"no new worker READY: {now}"
            time.sleep(0.05)

        for cid, order_id in acked.items():
            got = server.orders.GetOrder(
                order_pb2.GetOrderRequest(instance_id="storm", client_order_id=cid), timeout=5
            ).order
            assert (got.status, got.order_id) == (FILLED, order_id)
        statuses: dict[str, int] = {}
        absent = 0  # refused before reaching the engine's book (e.g. while not READY)
        for cid in failed:
            # The orders in flight at the kill are UNKNOWN until reconciliation resolves them.
            deadline = time.monotonic() + 60
            while True:
                try:
                    got = server.orders.GetOrder(
                        order_pb2.GetOrderRequest(instance_id="storm", client_order_id=cid),
                        timeout=5,
                    ).order
                except grpc.RpcError as e:
                    if e.code() != grpc.StatusCode.NOT_FOUND:
                        raise
                    absent += 1
                    break
                if got.status != common_pb2.ORDER_STATUS_UNKNOWN:
                    statuses[cid] = got.status
                    break
                assert time.monotonic() < deadline, f"{cid} still UNKNOWN: not reconciled"
                time.sleep(0.05)
        filled = len(acked) + sum(s == FILLED for s in statuses.values())
        assert len(positions(server, "storm")) == filled, "the terminal matches the journal"

        # Retrying everything with the same ids sends nothing twice: only ids the engine
        # never took become orders now.
        acked.clear()
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(send, range(500)))
        assert len(positions(server, "storm")) == filled + absent


def test_order_session_same_path_as_place_order(server: ServerProcess) -> None:
    ready_instance(server, "session", risk=BULK_RISK)
    requests = [
        order_pb2.OrderSessionRequest(place=market("session", f"s-{n}")) for n in range(200)
    ]
    requests.append(order_pb2.OrderSessionRequest(place=market("session", "s-7")))  # duplicate
    bad = market("session", "s-bad")
    bad.volume = -1
    requests.append(order_pb2.OrderSessionRequest(place=bad))
    responses = list(server.orders.OrderSession(iter(requests), timeout=60))
    assert len(responses) == 202
    by_cid: dict[str, list[order_pb2.OrderSessionResponse]] = {}
    for r in responses:
        by_cid.setdefault(r.client_order_id, []).append(r)
    (refused,) = by_cid.pop("s-bad")
    assert refused.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert refused.reason == "VOLUME_INVALID"
    assert all(r.code == 0 and r.order.status == FILLED for rs in by_cid.values() for r in rs)
    first, second = by_cid["s-7"]
    assert first.order == second.order, "the duplicate got the original result"
    assert len(positions(server, "session")) == 200


def test_order_session_batches_answer_packed(server: ServerProcess) -> None:
    ready_instance(server, "batched", risk=BULK_RISK)
    place = order_pb2.OrderSessionRequest
    batches = [
        place(
            batch=order_pb2.OrderSessionBatch(
                requests=[place(place=market("batched", f"b-{k}-{n}")) for n in range(100)]
            )
        )
        for k in range(3)
    ]
    bad = market("batched", "b-bad")
    bad.volume = float("nan")
    mixed = [
        place(place=bad),
        place(place=market("batched", "b-0-5")),  # a duplicate: the original answer
        place(batch=order_pb2.OrderSessionBatch()),  # a batch inside a batch: refused
        place(cancel=order_pb2.CancelOrderRequest(instance_id="batched", order_id=999999)),
    ]
    batches.append(place(batch=order_pb2.OrderSessionBatch(requests=mixed)))
    too_many = [place(place=market("batched", f"x-{n}")) for n in range(1001)]
    batches.append(place(batch=order_pb2.OrderSessionBatch(requests=too_many)))
    messages = list(server.orders.OrderSession(iter(batches), timeout=60))
    answers = [a for m in messages for a in m.batch]
    assert all(not m.client_order_id and not m.code for m in messages), "packed messages only"
    assert len(messages) < len(answers) == 300 + 4 + 1
    by_cid: dict[str, list[order_pb2.OrderSessionResponse]] = {}
    for a in answers:
        by_cid.setdefault(a.client_order_id, []).append(a)
    (refused,) = by_cid.pop("b-bad")
    assert (refused.code, refused.reason) == (3, "VOLUME_INVALID")
    unnamed = by_cid.pop("")
    assert sorted(a.reason for a in unnamed) == [
        "BATCH_NESTED",
        "BATCH_TOO_LARGE",
        "ORDER_NOT_FOUND",
    ]
    first, second = by_cid.pop("b-0-5")
    assert first.order == second.order, "the duplicate got the original result"
    assert sorted(by_cid) == sorted(
        f"b-{k}-{n}" for k in range(3) for n in range(100) if (k, n) != (0, 5)
    )
    assert all(a.code == 0 and a.order.status == FILLED for rs in by_cid.values() for a in rs)
    assert len(positions(server, "batched")) == 300, "no order of the oversized batch was sent"


def test_retries_past_the_client_deadline_make_one_order(tmp_path: Path) -> None:
    # Every order answer of this server's workers is delayed by 300 ms (a fault injection).
    env = {"MT5EXEC_SIM_ORDER_DELAY_MS": "300"}
    with ServerProcess(tmp_path / "data", env=env) as slow:
        ready_instance(slow, "deadline")
        outcomes = []
        for _ in range(5):
            try:
                slow.orders.PlaceOrder(market("deadline", "late-1"), timeout=0.1)
                outcomes.append("OK")
            except grpc.RpcError as e:
                outcomes.append(e.code().name)
        assert outcomes[0] == "DEADLINE_EXCEEDED", outcomes
        final = slow.orders.PlaceOrder(market("deadline", "late-1"), timeout=10).order
        assert final.status == FILLED
        got = slow.orders.GetOrder(
            order_pb2.GetOrderRequest(instance_id="deadline", client_order_id="late-1"),
            timeout=5,
        ).order
        assert got.order_id == final.order_id
        assert len(positions(slow, "deadline")) == 1, "six submissions, one order"


@pytest.mark.parametrize(
    ("order_type", "offset", "stop_limit_offset"),
    [
        (common_pb2.ORDER_TYPE_LIMIT, -0.0050, 0.0),
        (common_pb2.ORDER_TYPE_STOP, 0.0050, 0.0),
        (common_pb2.ORDER_TYPE_STOP_LIMIT, 0.0050, 0.0040),
    ],
)
def test_pending_orders_place_modify_cancel(
    server: ServerProcess, order_type: int, offset: float, stop_limit_offset: float
) -> None:
    instance_id = f"pend-{order_type}"
    ready_instance(server, instance_id)
    tick_order = server.orders.CheckOrder(
        order_pb2.CheckOrderRequest(order=market(instance_id, "probe")), timeout=10
    )
    assert tick_order.accepted, tick_order
    assert tick_order.margin_required > 0
    assert positions(server, instance_id) == [], "CheckOrder sends nothing"
    account = server.orders.GetAccount(
        order_pb2.GetAccountRequest(instance_id=instance_id), timeout=5
    ).account
    assert tick_order.free_margin_after == pytest.approx(
        account.free_margin - tick_order.margin_required, rel=0.05
    )
    # A market reference: the ask of a filled probe order, closed again at once.
    probe = server.orders.PlaceOrder(market(instance_id, "ref"), timeout=10).order
    server.orders.ClosePosition(
        order_pb2.ClosePositionRequest(instance_id=instance_id, position_id=probe.position_id),
        timeout=10,
    )
    base = probe.average_fill_price
    request = order_pb2.PlaceOrderRequest(
        instance_id=instance_id,
        client_order_id="resting",
        symbol="EURUSD",
        side=common_pb2.SIDE_BUY,
        type=order_type,
        volume=0.05,
        price=round(base + offset, 5),
        stop_limit_price=round(base + stop_limit_offset, 5) if stop_limit_offset else 0.0,
        time_in_force=common_pb2.TIME_IN_FORCE_GTC,
    )
    placed = server.orders.PlaceOrder(request, timeout=10).order
    assert placed.status == common_pb2.ORDER_STATUS_ACCEPTED
    assert placed.order_id > 0
    open_orders = server.orders.ListOrders(
        order_pb2.ListOrdersRequest(instance_id=instance_id), timeout=5
    ).orders
    assert [o.client_order_id for o in open_orders] == ["resting"]

    new_price = round(placed.price + (-0.0010 if offset < 0 else 0.0010), 5)
    modify = order_pb2.ModifyOrderRequest(
        instance_id=instance_id, client_order_id="resting", price=new_price
    )
    if stop_limit_offset:
        modify.stop_limit_price = round(placed.stop_limit_price + 0.0010, 5)
    modified = server.orders.ModifyOrder(modify, timeout=10).order
    assert modified.price == pytest.approx(new_price)

    cancelled = server.orders.CancelOrder(
        order_pb2.CancelOrderRequest(instance_id=instance_id, order_id=placed.order_id),
        timeout=10,
    ).order
    assert cancelled.status == common_pb2.ORDER_STATUS_CANCELED
    history = server.orders.ListOrders(
        order_pb2.ListOrdersRequest(instance_id=instance_id, history=True), timeout=5
    ).orders
    assert "resting" in [o.client_order_id for o in history]
    with pytest.raises(grpc.RpcError) as caught:
        server.orders.CancelOrder(
            order_pb2.CancelOrderRequest(instance_id=instance_id, client_order_id="resting"),
            timeout=10,
        )
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_info(caught.value).reason == "ORDER_NOT_PENDING"


def test_stop_mid_flood_leaves_no_order_unknown(server: ServerProcess) -> None:
    # The worker answers what it was sent before the Shutdown, then exits: those last answers
    # are read before the engine calls the worker gone (its exit raced them before).
    ready_instance(
        server, "stopflood", margin_mode=common_pb2.ACCOUNT_MARGIN_MODE_NETTING, risk=BULK_RISK
    )
    ids = [f"sf-{n}" for n in range(600)]

    def requests() -> Iterator[order_pb2.OrderSessionRequest]:
        for n, cid in enumerate(ids):
            order = market("stopflood", cid)
            order.side = common_pb2.SIDE_BUY if n % 2 == 0 else common_pb2.SIDE_SELL
            yield order_pb2.OrderSessionRequest(place=order)

    answers: list[order_pb2.OrderSessionResponse] = []
    stopped = threading.Event()

    def stop_after_some() -> None:
        while len(answers) < 50:
            time.sleep(0.001)
        server.instances.StopInstance(
            instance_pb2.StopInstanceRequest(instance_id="stopflood"), timeout=30
        )
        stopped.set()

    stopper = threading.Thread(target=stop_after_some)
    stopper.start()
    for answer in server.orders.OrderSession(requests(), timeout=60):
        answers.append(answer)
    stopper.join(30)
    assert stopped.is_set()
    assert len(answers) == len(ids)
    statuses = {
        cid: server.orders.GetOrder(
            order_pb2.GetOrderRequest(instance_id="stopflood", client_order_id=cid), timeout=10
        ).order.status
        for cid in ids
        if any(a.client_order_id == cid and a.code == 0 for a in answers)
    }
    unknown = [cid for cid, status in statuses.items() if status == common_pb2.ORDER_STATUS_UNKNOWN]
    assert unknown == [], f"{len(unknown)} of {len(statuses)} accepted orders left UNKNOWN"


def worker_latency_samples(server: ServerProcess, instance_id: str) -> dict[str, dict[str, float]]:
    """``mt5exec_worker_request_seconds`` of one instance from /metrics: kind → series → value
    (series: ``count``, ``sum``, and each bucket's ``le``)."""
    found: dict[str, dict[str, float]] = {}
    for sample in server.metric_samples("mt5exec_worker_request_seconds"):
        if sample.labels["instance_id"] != instance_id:
            continue
        series = sample.name.rsplit("_", 1)[1]
        key = sample.labels["le"] if series == "bucket" else series
        found.setdefault(sample.labels["kind"], {})[key] = sample.value
    return found


def test_worker_answer_times_are_histograms_per_instance_and_kind(server: ServerProcess) -> None:
    ready_instance(server, "lat")
    for n in range(3):
        assert server.orders.PlaceOrder(market("lat", f"lat-{n}"), timeout=10).order
    # A repeat is answered from the journal: nothing goes to the worker, nothing is timed.
    server.orders.PlaceOrder(market("lat", "lat-0"), timeout=10)
    bid = server.orders.PlaceOrder(market("lat", "lat-3"), timeout=10).order.average_fill_price
    placed = server.orders.PlaceOrder(
        limit("lat", "lat-limit", round(bid - 0.01, 5)), timeout=10
    ).order
    server.orders.CancelOrder(
        order_pb2.CancelOrderRequest(instance_id="lat", order_id=placed.order_id), timeout=10
    )
    samples = worker_latency_samples(server, "lat")
    # The dry run is ready_instance's price probe (CheckOrder until a first tick is there).
    assert {kind: series["count"] for kind, series in samples.items()} == {
        "place": 5,
        "cancel": 1,
        "check": 1,
    }
    for series in samples.values():
        buckets = [v for k, v in series.items() if k not in ("count", "sum")]
        assert buckets == sorted(buckets), "cumulative"
        assert series["+Inf"] == series["count"]
        # Answered within the order timeout, and not instantly.
        assert 0 < series["sum"] < series["count"] * 10
        assert series["10.0"] == series["count"]


def remembered(server: ServerProcess, instance_id: str) -> list[str]:
    """The client_order_ids of the orders the engine knows: working, then final ones."""
    return [
        o.client_order_id
        for history in (False, True)
        for o in server.orders.ListOrders(
            order_pb2.ListOrdersRequest(instance_id=instance_id, history=history, page_size=1000),
            timeout=10,
        ).orders
    ]


def test_memory_and_journal_stay_bounded_and_a_restart_remembers_the_same(tmp_path: Path) -> None:
    # 50 orders remembered per instance and a 20 KB compaction threshold: 400 orders (~1,200
    # journal records) go through both bounds many times over.
    env = {
        "MT5EXEC_ENGINE_MAX_ORDERS_PER_INSTANCE": "50",
        "MT5EXEC_ENGINE_JOURNAL_COMPACT_MB": "0.02",
        "MT5EXEC_SERVER_METRICS_LISTEN": "127.0.0.1:0",
        # The engine's memory alone: the history would answer for the orders it forgot.
        "MT5EXEC_HISTORY_ENABLED": "false",
    }
    data = tmp_path / "data"
    sides = (common_pb2.SIDE_BUY, common_pb2.SIDE_SELL)
    with ServerProcess(data, env=env) as server:
        ready_instance(
            server,
            "bounded",
            risk=BULK_RISK,
            margin_mode=common_pb2.ACCOUNT_MARGIN_MODE_NETTING,
        )
        # A working order placed first is never forgotten, however old.
        working = limit("bounded", "working", 0.5)
        assert server.orders.PlaceOrder(working, timeout=10).order.status == (
            common_pb2.ORDER_STATUS_ACCEPTED
        )
        with ThreadPoolExecutor(8) as pool:
            filled = list(
                pool.map(
                    lambda n: (
                        server.orders.PlaceOrder(
                            market("bounded", f"b{n:03d}", side=sides[n % 2]), timeout=30
                        ).order
                    ),
                    range(400),
                )
            )
        assert all(o.status == FILLED for o in filled)
        kept = remembered(server, "bounded")
        assert "working" in kept
        # The book is looked through once it is a tenth over its cap.
        assert len(kept) <= 50 + 5, f"{len(kept)} orders remembered"
        assert "b399" in kept or "b398" in kept, "the newest are remembered"
        # A forgotten order is not found; a remembered one is, and its id is still taken.
        with pytest.raises(grpc.RpcError) as caught:
            server.orders.GetOrder(
                order_pb2.GetOrderRequest(instance_id="bounded", client_order_id="b000"),
                timeout=5,
            )
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
        newest = next(o for o in reversed(filled) if o.client_order_id in kept)
        again = server.orders.PlaceOrder(
            market("bounded", newest.client_order_id, side=newest.side), timeout=10
        ).order
        assert again.order_id == newest.order_id, "a remembered id is still idempotent"
        compactions = server.metric_samples("mt5exec_journal_compactions")
        assert compactions and compactions[0].value >= 1, "the journal compacted while running"
    with ServerProcess(data, env=env) as again_server:
        after = remembered(again_server, "bounded")
        assert "working" in after
        assert newest.client_order_id in after
        assert len(after) <= 50, f"{len(after)} orders after the restart"
        # Compacted on start to a record per remembered order (~1,200 records, ~200 KB, went
        # in). The size while running depends on how far appends got during a compaction on
        # a busy machine (the next is due at twice what it left), so it is checked here.
        size = (data / "journal" / "orders.journal").stat().st_size
        assert size < 45_000, f"journal of {size} bytes"


def test_final_orders_are_forgotten_after_their_retention(tmp_path: Path) -> None:
    env = {"MT5EXEC_ENGINE_FINAL_ORDER_RETENTION_S": "1"}
    with ServerProcess(tmp_path / "data", env=env) as server:
        ready_instance(server, "aging", risk=BULK_RISK)
        for cid in ("old-1", "old-2", "old-3"):
            server.orders.PlaceOrder(market("aging", cid), timeout=10)
        assert sorted(remembered(server, "aging")) == ["old-1", "old-2", "old-3"]
        time.sleep(1.2)
        # Each new order forgets a few of those past their time (the listing goes on into the
        # history database, which keeps them: docs/history.md).
        server.orders.PlaceOrder(market("aging", "new"), timeout=10)
        # Forgotten, the id is free again: a new order, a second position.
        reused = server.orders.PlaceOrder(market("aging", "old-1"), timeout=10).order
        assert reused.status == FILLED
        assert len(positions(server, "aging")) == 5
    # The history database keeps both orders that had the id.
    with duckdb.connect(str(tmp_path / "data" / "history.duckdb"), read_only=True) as db:
        rows = db.execute(
            "SELECT status, order_id FROM orders WHERE instance_id = 'aging' "
            "AND client_order_id = 'old-1' ORDER BY created_at"
        ).fetchall()
    assert [status for status, _ in rows] == ["FILLED", "FILLED"]
    assert rows[1][1] == reused.order_id != rows[0][1]


def test_paging_through_the_history_while_orders_come_skips_and_repeats_nothing(
    server: ServerProcess,
) -> None:
    ready_instance(server, "pages")
    for n in range(5):
        server.orders.PlaceOrder(market("pages", f"p{n}"), timeout=10)

    def page(token: str = "", **fields: object) -> order_pb2.ListOrdersResponse:
        request = order_pb2.ListOrdersRequest(
            instance_id="pages", history=True, page_size=2, page_token=token, **fields
        )  # type: ignore[arg-type]
        return server.orders.ListOrders(request, timeout=5)

    first = page()
    assert [o.client_order_id for o in first.orders] == ["p4", "p3"]
    # A newer order does not shift the pages still to be read.
    server.orders.PlaceOrder(market("pages", "p5"), timeout=10)
    second = page(first.next_page_token)
    assert [o.client_order_id for o in second.orders] == ["p2", "p1"]
    third = page(second.next_page_token)
    assert [o.client_order_id for o in third.orders] == ["p0"]
    assert not third.next_page_token
    # The time window: created at or after from_time, before to_time.
    p1 = second.orders[1]
    window = page(from_time=p1.created_time, to_time=first.orders[1].created_time)
    assert [o.client_order_id for o in window.orders] == ["p2", "p1"]
    # A window reaching past the years a 64-bit nanosecond count holds reaches past all.
    far = page(to_time=timestamp_pb2.Timestamp(seconds=253402300799))  # 9999-12-31
    assert [o.client_order_id for o in far.orders] == ["p5", "p4"]
    with pytest.raises(grpc.RpcError) as caught:
        page("not-ours")
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(caught.value).reason == "PAGE_TOKEN_INVALID"


def test_a_reused_id_is_never_reconciled_with_the_forgotten_order_it_once_named(
    tmp_path: Path,
) -> None:
    # Answers take 2 s (so a worker can be killed while one waits), final orders are
    # remembered 1 s.
    # The engine's memory alone (the history would answer GetOrder for the forgotten order).
    env = {
        "MT5EXEC_SIM_ORDER_DELAY_MS": "2000",
        "MT5EXEC_ENGINE_FINAL_ORDER_RETENTION_S": "1",
        "MT5EXEC_HISTORY_ENABLED": "false",
    }
    with ServerProcess(tmp_path / "data", env=env) as server:
        ready_instance(server, "reuse")
        first = server.orders.PlaceOrder(market("reuse", "dup"), timeout=10).order
        assert first.status == FILLED
        time.sleep(1.2)
        server.orders.PlaceOrder(market("reuse", "other"), timeout=10)
        get = order_pb2.GetOrderRequest(instance_id="reuse", client_order_id="dup")
        with pytest.raises(grpc.RpcError) as caught:
            server.orders.GetOrder(get, timeout=5)
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND, "forgotten"
        # The id again; the worker dies while the order waits there, before it is executed.
        worker = server.instances.GetInstance(
            instance_pb2.GetInstanceRequest(instance_id="reuse"), timeout=5
        ).instance.worker_pid
        outcome: list[grpc.StatusCode] = []

        def place() -> None:
            try:
                server.orders.PlaceOrder(market("reuse", "dup", volume=0.02), timeout=10)
                outcome.append(grpc.StatusCode.OK)
            except grpc.RpcError as e:
                outcome.append(e.code())

        thread = threading.Thread(target=place)
        thread.start()
        deadline = time.monotonic() + 60
        while True:  # until the order has gone to the worker (journaled, then sent)
            try:
                if server.orders.GetOrder(get, timeout=5).order.status == (
                    common_pb2.ORDER_STATUS_SUBMITTED
                ):
                    break
            except grpc.RpcError as e:
                if e.code() != grpc.StatusCode.NOT_FOUND:
                    raise
            assert time.monotonic() < deadline, "the order never went to the worker"
            time.sleep(0.01)
        os.kill(worker, signal.SIGKILL)
        thread.join(60)
        assert outcome and outcome[0] != grpc.StatusCode.OK
        # Reconciled once the worker is back: the terminal holds the older order with the
        # same comment (filled), but not this one.
        deadline = time.monotonic() + 60
        while (got := server.orders.GetOrder(get, timeout=5).order).status == (
            common_pb2.ORDER_STATUS_UNKNOWN
        ):
            assert time.monotonic() < deadline, "still UNKNOWN"
            time.sleep(0.1)
        assert got.status == common_pb2.ORDER_STATUS_REJECTED, got
        assert got.order_id != first.order_id
        assert len(positions(server, "reuse")) == 2, "dup (the first) and other, nothing more"


def test_a_deleted_instances_orders_stay_gone_for_a_new_instance_of_its_id(
    tmp_path: Path,
) -> None:
    """Deleting an instance deletes its account; a new instance under the same id starts
    with no orders, also after a restart (the journal must not hand it the old ones)."""

    def orders(server: ServerProcess, history: bool) -> list[str]:
        listed = server.orders.ListOrders(
            order_pb2.ListOrdersRequest(instance_id="again", history=history), timeout=5
        )
        return [o.client_order_id for o in listed.orders]

    with ServerProcess(tmp_path) as server:
        create_sim(server, "again")
        filled = server.orders.PlaceOrder(market("again", "old-market"), timeout=10).order
        assert filled.status == common_pb2.ORDER_STATUS_FILLED
        below = round(filled.average_fill_price - 0.002, 5)
        working = server.orders.PlaceOrder(limit("again", "old-limit", below), timeout=10).order
        assert working.status == common_pb2.ORDER_STATUS_ACCEPTED
        server.instances.DeleteInstance(
            instance_pb2.DeleteInstanceRequest(instance_id="again"), timeout=30
        )
        create_sim(server, "again")
        assert orders(server, False) == orders(server, True) == []
    with ServerProcess(tmp_path) as server:
        wait_ready(server, "again")
        wait_for_price(server, "again", "EURUSD")  # for the order below
        assert orders(server, False) == [], "the deleted instance's working order came back"
        assert orders(server, True) == []
        # Its ids are free again, with any payload.
        reused = server.orders.PlaceOrder(market("again", "old-limit"), timeout=10).order
        assert reused.status == common_pb2.ORDER_STATUS_FILLED


def test_under_fsync_always_a_deletion_is_synced_before_it_is_done(tmp_path: Path) -> None:
    env = {"MT5EXEC_ENGINE_JOURNAL_FSYNC": "always"}

    def fsyncs(server: ServerProcess) -> float:
        return server.metric_samples("mt5exec_journal_fsyncs")[0].value

    with ServerProcess(tmp_path, env=env) as server:
        create_sim(server, "synced")
        server.orders.PlaceOrder(market("synced", "before-delete"), timeout=10)
        server.instances.StopInstance(
            instance_pb2.StopInstanceRequest(instance_id="synced"), timeout=30
        )
        before = fsyncs(server)
        server.instances.DeleteInstance(
            instance_pb2.DeleteInstanceRequest(instance_id="synced"), timeout=30
        )
        assert fsyncs(server) > before
