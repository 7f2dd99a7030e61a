"""Helpers for tests that call a real server."""

from __future__ import annotations

import time
from collections.abc import Callable

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from mt5exec.testing import ServerProcess
from mt5exec.v1 import common_pb2, instance_pb2, order_pb2, stream_pb2


def error_info(error: grpc.RpcError) -> error_details_pb2.ErrorInfo:
    """The ErrorInfo detail of a failed call (fails the test when missing)."""
    assert isinstance(error, grpc.Call)
    status = rpc_status.from_call(error)
    assert status is not None, f"no status details: {error}"
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info
    raise AssertionError(f"no ErrorInfo in {status}")


# Limits of tests that push hundreds of orders through one instance: the volume bounds only
# (no throttle, in-flight cap or daily trade count).
BULK_RISK = common_pb2.RiskLimits(max_order_volume=10.0, min_order_volume=0.01)


def create_sim(
    server: ServerProcess,
    instance_id: str,
    symbols: list[str] | None = None,
    tick_rate: float = 10,
    risk: common_pb2.RiskLimits | None = None,
    timeout: float = 60.0,
) -> common_pb2.Instance:
    config = common_pb2.InstanceConfig(
        symbols=symbols or ["EURUSD"], tick_rate=tick_rate, risk=risk
    )
    response = server.instances.CreateInstance(
        instance_pb2.CreateInstanceRequest(instance_id=instance_id, config=config),
        timeout=timeout,
    )
    wait_for_price(server, instance_id, config.symbols[0])
    return response.instance


def wait_for_price(server: ServerProcess, instance_id: str, symbol: str) -> None:
    """Until the engine has a first tick of ``symbol`` (a dry run stops saying NO_PRICE)."""
    check = order_pb2.CheckOrderRequest(order=market(instance_id, "price-probe"))
    check.order.symbol = symbol
    deadline = time.monotonic() + 60
    while True:
        try:
            server.orders.CheckOrder(check, timeout=30)
            return
        except grpc.RpcError as e:
            late = e.code() == grpc.StatusCode.DEADLINE_EXCEEDED  # type: ignore[attr-defined]
            if not late and error_info(e).reason != "NO_PRICE":
                return
        assert time.monotonic() < deadline, f"no price of {symbol} on {instance_id} in 60 s"
        time.sleep(0.02)


def limit(instance_id: str, cid: str, price: float) -> order_pb2.PlaceOrderRequest:
    """A buy limit order for EURUSD, 0.01 lots."""
    return order_pb2.PlaceOrderRequest(
        instance_id=instance_id,
        client_order_id=cid,
        symbol="EURUSD",
        side=common_pb2.SIDE_BUY,
        type=common_pb2.ORDER_TYPE_LIMIT,
        price=price,
        volume=0.01,
    )


def market(
    instance_id: str, cid: str, volume: float = 0.01, side: int = common_pb2.SIDE_BUY
) -> order_pb2.PlaceOrderRequest:
    """A market order for EURUSD."""
    return order_pb2.PlaceOrderRequest(
        instance_id=instance_id,
        client_order_id=cid,
        symbol="EURUSD",
        side=side,
        type=common_pb2.ORDER_TYPE_MARKET,
        volume=volume,
    )


def wait_ready(server: ServerProcess, instance_id: str, timeout: float = 60.0) -> None:
    """Until the instance is READY (after a server restart its worker reconnects first)."""
    request = instance_pb2.GetInstanceRequest(instance_id=instance_id)
    deadline = time.monotonic() + timeout
    while True:
        # The whole time left for each call: a server restarting many workers on a loaded
        # machine may answer one call late (a 5 s deadline failed so in CI).
        left = max(deadline - time.monotonic(), 1.0)
        try:
            state = server.instances.GetInstance(request, timeout=left).instance.state
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.DEADLINE_EXCEEDED:  # type: ignore[attr-defined]
                raise
            state = common_pb2.INSTANCE_STATE_UNSPECIFIED
        if state == common_pb2.INSTANCE_STATE_READY:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{instance_id} is not READY after {timeout} s")
        time.sleep(0.02)


def wait_until(
    what: str, condition: Callable[[], bool], timeout: float = 60.0, every: float = 0.05
) -> None:
    """Waits for ``condition`` (checked every ``every`` seconds: more for a costly one); the
    deadline only matters when the test fails."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(every)


def execution_events(
    server: ServerProcess,
    instance_id: str,
    until: Callable[[common_pb2.ExecutionEvent], bool],
    timeout: float = 60.0,
) -> list[common_pb2.ExecutionEvent]:
    """The instance's execution events, from its first kept one to the first that meets
    ``until`` (the last one returned); the stream's deadline (``timeout``) fails the test."""
    seen: list[common_pb2.ExecutionEvent] = []
    request = stream_pb2.StreamExecutionsRequest(instance_id=instance_id)
    stream = server.streams.StreamExecutions(request, timeout=timeout)
    try:
        for response in stream:
            for event in response.events:
                seen.append(event)
                if until(event):
                    return seen
    finally:
        stream.cancel()
    raise AssertionError(f"the execution stream of {instance_id} ended first: {seen}")


def subscribers(server: ServerProcess, topic: str) -> float:
    """The server's open subscriptions of a stream topic ("executions", "instance_events",
    ...), from /metrics: how a test knows a stream it opened elsewhere is live."""
    samples = server.metric_samples("mt5exec_stream_subscribers")
    return sum(s.value for s in samples if s.labels.get("topic") == topic)
