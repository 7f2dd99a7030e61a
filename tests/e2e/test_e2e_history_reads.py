"""History through the API (a real server, worker and DuckDB): GetOrder and ListOrders reach
past the engine's memory into the history, ListDeals pages the deals, ListTicks reads the
stored ticks. The engine is made to forget early (``engine.max_orders_per_instance``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from mt5exec.testing import ServerProcess
from mt5exec.v1 import common_pb2, instance_pb2, order_pb2
from support import BULK_RISK, create_sim, error_info, market, wait_until

KEPT = 5  # orders the engine remembers per instance
PLACED = 23
ENV = {
    "MT5EXEC_ENGINE_MAX_ORDERS_PER_INSTANCE": str(KEPT),
    "MT5EXEC_HISTORY_FLUSH_INTERVAL_MS": "50",
    "MT5EXEC_HISTORY_TICKS": "true",
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data: Path = tmp_path_factory.mktemp("history-reads")
    with ServerProcess(data, env=ENV) as server:
        create_sim(server, "h1", symbols=["EURUSD", "GBPUSD"], tick_rate=50, risk=BULK_RISK)
        for n in range(PLACED):
            order = market("h1", f"o-{n:02d}")
            if n % 3 == 0:
                order.symbol = "GBPUSD"
            placed = server.orders.PlaceOrder(order, timeout=30).order
            assert placed.status == common_pb2.ORDER_STATUS_FILLED, placed
        yield server


def _memory_forgot(server: ServerProcess) -> bool:
    """The engine no longer has o-00 (only its memory answers without a history)."""
    page = server.orders.ListOrders(
        order_pb2.ListOrdersRequest(instance_id="h1", history=True, page_size=1000), timeout=10
    )
    return len(page.orders) == PLACED


def _all_pages(server: ServerProcess, **filters: Any) -> list[order_pb2.ListOrdersResponse]:
    pages = []
    token = ""
    while True:
        page = server.orders.ListOrders(
            order_pb2.ListOrdersRequest(
                instance_id="h1", history=True, page_token=token, **filters
            ),
            timeout=10,
        )
        pages.append(page)
        token = page.next_page_token
        if not token:
            return pages


def test_an_order_the_engine_forgot_is_found_in_the_history(server: ServerProcess) -> None:
    request = order_pb2.GetOrderRequest(instance_id="h1", client_order_id="o-00")
    wait_until("o-00 in the history", lambda: _found(server, request))
    order = server.orders.GetOrder(request, timeout=10).order
    assert order.status == common_pb2.ORDER_STATUS_FILLED
    assert order.symbol == "GBPUSD" and order.volume == pytest.approx(0.01)
    assert order.created_time.seconds > 0 and order.order_id > 0
    by_ticket = server.orders.GetOrder(
        order_pb2.GetOrderRequest(instance_id="h1", order_id=order.order_id), timeout=10
    ).order
    assert by_ticket.client_order_id == "o-00"
    with pytest.raises(grpc.RpcError) as e:
        server.orders.GetOrder(
            order_pb2.GetOrderRequest(instance_id="h1", client_order_id="never"), timeout=10
        )
    assert e.value.code() == grpc.StatusCode.NOT_FOUND


def _found(server: ServerProcess, request: order_pb2.GetOrderRequest) -> bool:
    try:
        server.orders.GetOrder(request, timeout=10)
        return True
    except grpc.RpcError as e:
        if e.code() != grpc.StatusCode.NOT_FOUND:
            raise
        return False


def test_pages_go_on_from_memory_into_the_history(server: ServerProcess) -> None:
    wait_until("every order listed", lambda: _memory_forgot(server))
    pages = _all_pages(server, page_size=4)
    ids = [o.client_order_id for p in pages for o in p.orders]
    assert ids == [f"o-{n:02d}" for n in reversed(range(PLACED))]  # no gap, no duplicate
    assert all(len(p.orders) == 4 for p in pages[:-1])
    # The same with a filter: the symbol, across both.
    gbp = [
        o.client_order_id
        for p in _all_pages(server, page_size=3, symbol="GBPUSD")
        for o in p.orders
    ]
    assert gbp == [f"o-{n:02d}" for n in reversed(range(PLACED)) if n % 3 == 0]
    # Open orders are the engine's only: none.
    working = server.orders.ListOrders(
        order_pb2.ListOrdersRequest(instance_id="h1", history=False), timeout=10
    )
    assert not working.orders


def test_a_page_token_not_ours_is_refused(server: ServerProcess) -> None:
    with pytest.raises(grpc.RpcError) as e:
        server.orders.ListDeals(
            order_pb2.ListDealsRequest(instance_id="h1", page_token="nonsense"), timeout=10
        )
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(e.value).metadata["field"] == "page_token"


def _deals(server: ServerProcess, **filters: Any) -> list[common_pb2.Fill]:
    deals: list[common_pb2.Fill] = []
    token = ""
    while True:
        page = server.orders.ListDeals(
            order_pb2.ListDealsRequest(instance_id="h1", page_token=token, **filters),
            timeout=10,
        )
        deals += page.deals
        token = page.next_page_token
        if not token:
            return deals


def test_list_deals_pages_and_filters(server: ServerProcess) -> None:
    wait_until("every deal stored", lambda: len(_deals(server, page_size=1000)) == PLACED)
    every = _deals(server, page_size=5)
    assert len({d.deal_id for d in every}) == PLACED
    times = [(d.time.ToNanoseconds(), d.deal_id) for d in every]
    assert times == sorted(times, reverse=True)  # newest first
    assert {d.client_order_id for d in every} == {f"o-{n:02d}" for n in range(PLACED)}
    gbp = _deals(server, page_size=2, symbol="GBPUSD")
    assert {d.client_order_id for d in gbp} == {f"o-{n:02d}" for n in range(0, PLACED, 3)}
    # A time range: from the 5th newest deal's time to the newest's (excluded).
    newest, fifth = every[0].time, every[4].time
    ranged = _deals(server, from_time=fifth, to_time=newest)
    inside = [
        d
        for d in every
        if fifth.ToNanoseconds() // 1000
        <= d.time.ToNanoseconds() // 1000
        < newest.ToNanoseconds() // 1000
    ]
    assert [d.deal_id for d in ranged] == [d.deal_id for d in inside]
    assert 4 <= len(ranged) < PLACED


def test_stored_ticks_are_read_by_count_and_range(server: ServerProcess) -> None:
    def latest() -> list[common_pb2.Tick]:
        request = order_pb2.ListTicksRequest(instance_id="h1", symbol="EURUSD", count=20)
        return list(server.orders.ListTicks(request, timeout=10).ticks)

    wait_until("20 ticks stored", lambda: len(latest()) == 20)
    ticks = latest()
    stamps = [t.time.ToNanoseconds() for t in ticks]
    assert stamps == sorted(stamps)  # oldest first
    assert all(t.symbol == "EURUSD" and t.bid > 0 and t.ask >= t.bid for t in ticks)
    # The range of those ticks, in pages of 3: the same ticks (and maybe more at the end's µs).
    got: list[common_pb2.Tick] = []
    token = ""
    while True:
        page = server.orders.ListTicks(
            order_pb2.ListTicksRequest(
                instance_id="h1",
                symbol="EURUSD",
                from_time=ticks[0].time,
                to_time=ticks[-1].time,
                page_size=3,
                page_token=token,
            ),
            timeout=10,
        )
        got += page.ticks
        token = page.next_page_token
        if not token:
            break
    assert [(t.time.ToNanoseconds(), t.bid) for t in got] == [
        (t.time.ToNanoseconds(), t.bid) for t in ticks[:-1]
    ]
    with pytest.raises(grpc.RpcError) as e:
        server.orders.ListTicks(order_pb2.ListTicksRequest(instance_id="h1", count=1), timeout=10)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(e.value).metadata["field"] == "symbol"


def test_an_instance_made_again_lists_none_of_the_earlier_ones_ticks(
    server: ServerProcess,
) -> None:
    def listed(count: bool) -> list[common_pb2.Tick]:
        request = order_pb2.ListTicksRequest(instance_id="again", symbol="EURUSD")
        if count:
            request.count = 10_000
        else:
            request.page_size = 10_000
        return list(server.orders.ListTicks(request, timeout=10).ticks)

    create_sim(server, "again", tick_rate=50)
    wait_until("ticks stored", lambda: len(listed(True)) >= 5)
    server.instances.DeleteInstance(
        instance_pb2.DeleteInstanceRequest(instance_id="again"), timeout=60
    )
    made = create_sim(server, "again", tick_rate=50)
    since = made.created_time.ToNanoseconds() // 1000
    # Whatever of the earlier instance the history writes, none of it is listed.
    wait_until("the new instance's ticks stored", lambda: len(listed(True)) >= 5)
    for count in (True, False):
        ticks = listed(count)
        assert ticks, count
        early = [t for t in ticks if t.time.ToNanoseconds() // 1000 < since]
        assert early == [], (count, early[:3])
