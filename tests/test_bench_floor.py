"""The process-hop floor that order_roundtrip.py measures beside the server: a bare server
whose PlaceOrder crosses to an echo process and back, answering as the clients expect."""

from __future__ import annotations

import shutil

import grpc
import pytest
from benchmarks._common import loadgen
from benchmarks._hop_floor import floor_server
from grpc_health.v1 import health_pb2, health_pb2_grpc

from mt5exec.v1 import common_pb2, order_pb2, order_pb2_grpc


def test_floor_answers_null_rpcs_and_orders_through_its_echo_process() -> None:
    with floor_server() as address, grpc.insecure_channel(address) as channel:
        health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        stub = order_pb2_grpc.OrderServiceStub(channel)
        market = order_pb2.PlaceOrderRequest(
            instance_id="bench", symbol="EURUSD", type=common_pb2.ORDER_TYPE_MARKET, volume=0.01
        )
        limit = order_pb2.PlaceOrderRequest(
            instance_id="bench", symbol="EURUSD", type=common_pb2.ORDER_TYPE_LIMIT, volume=0.01
        )
        # Many at once: answers are matched to requests in order through the echo process.
        futures = [stub.PlaceOrder.future(market if i % 2 else limit) for i in range(50)]
        statuses = [f.result(timeout=10).order.status for f in futures]
        assert statuses == [
            common_pb2.ORDER_STATUS_FILLED if i % 2 else common_pb2.ORDER_STATUS_ACCEPTED
            for i in range(50)
        ]
        if shutil.which("go") is not None:
            out = loadgen("latency", "-addr", address, "-orders", "20", "-warmup-orders", "2")
            assert out is not None
            assert out["place_order"]["n"] == out["null_rpc"]["n"] == 20


def test_floor_server_is_gone_after_use() -> None:
    with floor_server() as address:
        pass
    channel = grpc.insecure_channel(address)
    with pytest.raises(grpc.RpcError) as e:
        health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=2)
    assert e.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
