"""The instruments order_roundtrip.py measures beside the server: the process-hop floor (a bare
server whose PlaceOrder crosses to an echo process and back) and the instant terminal (this
server with a worker that answers every order at once), each answering as the clients
expect."""

from __future__ import annotations

import shutil
from pathlib import Path

import grpc
import pytest
from benchmarks._common import loadgen
from benchmarks._hop_floor import floor_server
from grpc_health.v1 import health_pb2, health_pb2_grpc

from mt5exec.testing import ServerProcess
from mt5exec.v1 import common_pb2, order_pb2, order_pb2_grpc
from support import create_sim, limit, market

INSTANT = Path(__file__).resolve().parents[2] / "benchmarks" / "_instant_terminal.py"


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


def test_instant_terminal_serves_orders_through_this_server_without_the_sim(
    tmp_path: Path,
) -> None:
    server = ServerProcess(tmp_path, env={"MT5EXEC_HISTORY_ENABLED": "false"})
    server.args[1:3] = [str(INSTANT)]
    with server:
        instance = create_sim(server, "instant")
        cmdline = Path(f"/proc/{instance.worker_pid}/cmdline").read_bytes().split(b"\0")
        assert str(INSTANT).encode() in cmdline, cmdline
        filled = server.orders.PlaceOrder(market("instant", "m1"), timeout=10).order
        assert filled.status == common_pb2.ORDER_STATUS_FILLED
        assert filled.filled_volume == pytest.approx(0.01)
        placed = server.orders.PlaceOrder(
            limit("instant", "l1", round(filled.average_fill_price - 0.002, 5)), timeout=10
        ).order
        assert placed.status == common_pb2.ORDER_STATUS_ACCEPTED
        canceled = server.orders.CancelOrder(
            order_pb2.CancelOrderRequest(instance_id="instant", order_id=placed.order_id),
            timeout=10,
        ).order
        assert canceled.status == common_pb2.ORDER_STATUS_CANCELED
