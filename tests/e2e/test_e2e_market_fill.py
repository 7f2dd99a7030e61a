"""A market order filled at once, as a client sees it (#25): the worker sends no OrderUpdate for
it (its result says all of it), and the answer, GetOrder, ListOrders, StreamExecutions and the
journal after a kill -9 of the worker, a graceful restart of the server and a kill -9 of the
server still show the whole order: its stops, its fill, one FILLED update. Real server, real sim
workers."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from tests.support import create_sim, execution_events, market, wait_ready, wait_until

from mt5exec.testing import ServerProcess
from mt5exec.v1 import common_pb2, instance_pb2, order_pb2

FILLED = common_pb2.ORDER_STATUS_FILLED
SUBMITTED = common_pb2.ORDER_STATUS_SUBMITTED


def _get(server: ServerProcess, instance_id: str, cid: str) -> common_pb2.Order:
    request = order_pb2.GetOrderRequest(instance_id=instance_id, client_order_id=cid)
    return server.orders.GetOrder(request, timeout=60).order


def _history(server: ServerProcess, instance_id: str) -> dict[str, common_pb2.Order]:
    request = order_pb2.ListOrdersRequest(instance_id=instance_id, history=True)
    return {o.client_order_id: o for o in server.orders.ListOrders(request, timeout=60).orders}


def _events(server: ServerProcess, instance_id: str, last: str) -> list[tuple[str, str, int]]:
    """(kind, client_order_id, status) of the instance's execution events, from its first kept
    one to the FILLED update of ``last``."""

    def described(event: common_pb2.ExecutionEvent) -> tuple[str, str, int]:
        if event.HasField("order_update"):
            o = event.order_update
            return ("order_update", o.client_order_id, o.status)
        return ("fill", event.fill.client_order_id, 0)

    return [
        described(e)
        for e in execution_events(
            server, instance_id, lambda e: described(e) == ("order_update", last, FILLED)
        )
    ]


def _order_with_stops(instance_id: str, cid: str, price: float) -> order_pb2.PlaceOrderRequest:
    request = market(instance_id, cid)
    request.stop_loss = round(price - 0.01, 5)
    request.take_profit = round(price + 0.01, 5)
    return request


def test_a_market_order_keeps_its_stops_and_fill_through_worker_and_server_restarts_and_crashes(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    with ServerProcess(data) as server:
        create_sim(server, "mf", tick_rate=20)
        first = server.orders.PlaceOrder(market("mf", "mf-plain"), timeout=60).order
        request = _order_with_stops("mf", "mf-stops", first.average_fill_price)
        placed = server.orders.PlaceOrder(request, timeout=60).order
        # The whole order in the answer, from the result alone.
        assert placed.status == FILLED
        assert (placed.stop_loss, placed.take_profit) == (request.stop_loss, request.take_profit)
        assert placed.filled_volume == 0.01 and placed.average_fill_price > 0
        assert placed.price == placed.average_fill_price, "a market order's price is its fill's"
        assert placed.order_id > 0 and placed.position_id > 0 and placed.retcode == 10009
        assert _get(server, "mf", "mf-stops") == placed
        assert _history(server, "mf")["mf-stops"] == placed
        (position,) = [
            p
            for p in server.orders.ListPositions(
                order_pb2.ListPositionsRequest(instance_id="mf"), timeout=60
            ).positions
            if p.position_id == placed.position_id
        ]
        assert (position.stop_loss, position.take_profit) == (
            request.stop_loss,
            request.take_profit,
        )

        # The worker killed and started again: the order is as it was, a retry sends nothing.
        get = instance_pb2.GetInstanceRequest(instance_id="mf")
        old_pid = server.instances.GetInstance(get, timeout=60).instance.worker_pid
        os.kill(old_pid, signal.SIGKILL)
        wait_until(
            "a new worker",
            lambda: (
                server.instances.GetInstance(get, timeout=60).instance.worker_pid
                not in (0, old_pid)
            ),
        )
        wait_ready(server, "mf")
        assert _get(server, "mf", "mf-stops") == placed
        assert server.orders.PlaceOrder(request, timeout=60).order == placed
        server.orders.PlaceOrder(market("mf", "mf-after"), timeout=60)
        # One SUBMITTED update, one fill, one FILLED update per order: nothing replayed.
        assert _events(server, "mf", "mf-after") == [
            (kind, cid, status)
            for cid in ("mf-plain", "mf-stops", "mf-after")
            for kind, status in (("order_update", SUBMITTED), ("fill", 0), ("order_update", FILLED))
        ]

    # The server stopped and started again: the journal gives back the same order.
    with ServerProcess(data) as again:
        wait_ready(again, "mf")
        assert _get(again, "mf", "mf-stops") == placed
        assert again.orders.PlaceOrder(request, timeout=60).order == placed
        # A crash: an order answered FILLED is in the journal with its stops (the server's
        # kill -9 takes its workers with it).
        crash_request = _order_with_stops("mf", "mf-crash", placed.average_fill_price)
        crashed = again.orders.PlaceOrder(crash_request, timeout=60).order
        assert crashed.status == FILLED and crashed.stop_loss == crash_request.stop_loss
        again.kill()

    with ServerProcess(data) as after_crash:
        wait_ready(after_crash, "mf")
        assert _get(after_crash, "mf", "mf-stops") == placed
        assert _get(after_crash, "mf", "mf-crash") == crashed
        assert after_crash.orders.PlaceOrder(crash_request, timeout=60).order == crashed
        assert _history(after_crash, "mf")["mf-crash"] == crashed
