"""A little trading on a real server, for the tests of what /metrics shows of it."""

from __future__ import annotations

import grpc
from tests.support import create_sim, error_info, limit, market

from mt5exec.testing import ServerProcess
from mt5exec.v1 import common_pb2, order_pb2, stream_pb2

INSTANCE = "metrics-a"


def refused(call: object, request: object) -> str:
    """The ErrorInfo reason of a call that must fail."""
    try:
        call(request, timeout=60)  # type: ignore[operator]
    except grpc.RpcError as e:
        return error_info(e).reason
    raise AssertionError(f"{request} was not refused")


def trade_a_little(server: ServerProcess) -> None:
    """One fill, a risk refusal, a broker refusal (its retcode), a pending order changed and
    cancelled, a call on a missing instance, and an execution stream read and closed."""
    create_sim(server, INSTANCE, risk=common_pb2.RiskLimits(max_order_volume=100.0))
    orders = server.orders
    placed = orders.PlaceOrder(market(INSTANCE, "fill-1"), timeout=60)
    assert placed.order.status == common_pb2.ORDER_STATUS_FILLED
    # 90 lots need more margin than the account has: the risk check refuses it.
    assert refused(orders.PlaceOrder, market(INSTANCE, "big-1", volume=90)) == (
        "INSUFFICIENT_MARGIN"
    )
    # RETURN filling for a market order on market execution: the (simulated) broker refuses
    # it with TRADE_RETCODE_INVALID_FILL.
    broker = market(INSTANCE, "fill-return")
    broker.filling = common_pb2.FILLING_MODE_RETURN
    assert refused(orders.PlaceOrder, broker) == "INVALID_FILL"
    orders.PlaceOrder(limit(INSTANCE, "limit-1", 0.5), timeout=60)
    orders.ModifyOrder(
        order_pb2.ModifyOrderRequest(instance_id=INSTANCE, client_order_id="limit-1", price=0.6),
        timeout=60,
    )
    orders.CancelOrder(
        order_pb2.CancelOrderRequest(instance_id=INSTANCE, client_order_id="limit-1"),
        timeout=60,
    )
    assert refused(orders.PlaceOrder, market("metrics-missing", "x-1")) == "INSTANCE_NOT_FOUND"
    stream = server.streams.StreamExecutions(
        stream_pb2.StreamExecutionsRequest(instance_id=INSTANCE), timeout=60
    )
    assert next(stream).events
    stream.cancel()
