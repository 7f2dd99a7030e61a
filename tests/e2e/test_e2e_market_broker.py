"""The terminal's broker connection end to end (issue #24): the simulated broker goes away
(the ``broker_outage`` fault file in the worker's directory), the worker reports it, the
instance turns DEGRADED with reason BROKER_DISCONNECTED (an instance event), orders are refused
UNAVAILABLE with nothing sent, and the worker's re-login brings it back READY, counted."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from mt5exec.testing import ServerProcess
from mt5exec.v1 import (
    common_pb2,
    instance_pb2,
    market_pb2,
    market_pb2_grpc,
    order_pb2,
    stream_pb2,
)
from support import BULK_RISK, create_sim, error_info, market, wait_until

READY, DEGRADED = common_pb2.INSTANCE_STATE_READY, common_pb2.INSTANCE_STATE_DEGRADED


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data: Path = tmp_path_factory.mktemp("market-broker") / "data"
    (data / "templates").mkdir(parents=True)
    (data / "templates" / "health_check.json").write_text(
        json.dumps({"broker_relogin_after_ms": 300})
    )
    with ServerProcess(data) as server:
        create_sim(server, "b1", risk=BULK_RISK)
        yield server


def _instance(server: ServerProcess) -> common_pb2.Instance:
    return server.instances.GetInstance(
        instance_pb2.GetInstanceRequest(instance_id="b1"), timeout=30
    ).instance


def _terminal(server: ServerProcess) -> market_pb2.TerminalInfo:
    assert server.channel is not None
    stub = market_pb2_grpc.MarketDataServiceStub(server.channel)
    return stub.GetTerminalInfo(
        market_pb2.GetTerminalInfoRequest(instance_id="b1"), timeout=30
    ).terminal


def _worker_dir(server: ServerProcess) -> Path:
    # The worker runs in the instance's directory, where it keeps its state.
    found = [p.parent for p in server.data_dir.rglob("sim_state") if "b1" in p.parts]
    assert found, "no worker directory for b1"
    return found[0]


def test_broker_lost_and_restored(server: ServerProcess) -> None:
    events: list[common_pb2.InstanceEvent] = []
    stream = server.streams.StreamInstanceEvents(
        stream_pb2.StreamInstanceEventsRequest(instance_ids=["b1"]), timeout=300
    )
    stream.initial_metadata()

    def read() -> None:
        try:
            for message in stream:
                events.extend(message.events)
        except grpc.RpcError:
            pass

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    assert _terminal(server).relogins == 0
    positions = server.orders.ListPositions(
        order_pb2.ListPositionsRequest(instance_id="b1"), timeout=30
    ).positions
    # Ten minutes: down however slow the checks are; the test ends it after them ("0").
    (_worker_dir(server) / "broker_outage").write_text("600000")
    wait_until(
        "DEGRADED for BROKER_DISCONNECTED",
        lambda: (lambda i: i.state == DEGRADED and i.state_reason == "BROKER_DISCONNECTED")(
            _instance(server)
        ),
    )
    with pytest.raises(grpc.RpcError) as e:
        server.orders.PlaceOrder(market("b1", "while-down"), timeout=30)
    assert e.value.code() == grpc.StatusCode.UNAVAILABLE
    assert error_info(e.value).reason == "BROKER_DISCONNECTED"
    assert not _terminal(server).connected
    (_worker_dir(server) / "broker_outage").write_text("0")
    wait_until("READY again", lambda: _instance(server).state == READY, timeout=120)
    info = _terminal(server)
    assert info.connected and info.relogins == 1
    # Nothing was sent: the refused order is unknown and the positions are as they were.
    with pytest.raises(grpc.RpcError) as e:
        server.orders.GetOrder(
            order_pb2.GetOrderRequest(instance_id="b1", client_order_id="while-down"), timeout=30
        )
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    after = server.orders.ListPositions(
        order_pb2.ListPositionsRequest(instance_id="b1"), timeout=30
    ).positions
    assert list(after) == list(positions)
    placed = server.orders.PlaceOrder(market("b1", "after"), timeout=30).order
    assert placed.status == common_pb2.ORDER_STATUS_FILLED
    wait_until(
        "both instance events",
        lambda: (
            [e.reason for e in events if e.reason.startswith("BROKER_")]
            == ["BROKER_DISCONNECTED", "BROKER_CONNECTED"]
        ),
    )
    stream.cancel()
    reader.join(30)
