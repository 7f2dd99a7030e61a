"""Every RPC refuses bad input with the right status, an ErrorInfo and the field's name."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest
from google.protobuf import timestamp_pb2
from tests.support import create_sim, error_info

from mt5exec.testing import ServerProcess
from mt5exec.v1 import common_pb2, instance_pb2, order_pb2, stream_pb2

INVALID = grpc.StatusCode.INVALID_ARGUMENT
NOT_FOUND = grpc.StatusCode.NOT_FOUND


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with ServerProcess(tmp_path_factory.mktemp("errors")) as proc:
        create_sim(proc, "known", ["EURUSD"], tick_rate=20)
        time.sleep(0.2)
        yield proc


def first(stream: Any) -> Any:
    return next(iter(stream))


CASES: list[tuple[str, Callable[[ServerProcess], Any], grpc.StatusCode, str, str]] = [
    (
        "GetInstance bad id",
        lambda s: s.instances.GetInstance(instance_pb2.GetInstanceRequest(instance_id="a/b")),
        INVALID,
        "ID_INVALID",
        "instance_id",
    ),
    (
        "StopInstance unknown",
        lambda s: s.instances.StopInstance(instance_pb2.StopInstanceRequest(instance_id="ghost")),
        NOT_FOUND,
        "INSTANCE_NOT_FOUND",
        "instance_id",
    ),
    (
        "StartInstance unknown",
        lambda s: s.instances.StartInstance(instance_pb2.StartInstanceRequest(instance_id="ghost")),
        NOT_FOUND,
        "INSTANCE_NOT_FOUND",
        "instance_id",
    ),
    (
        "DeleteInstance empty id",
        lambda s: s.instances.DeleteInstance(instance_pb2.DeleteInstanceRequest()),
        INVALID,
        "FIELD_REQUIRED",
        "instance_id",
    ),
    (
        "GetInstanceStats unknown",
        lambda s: s.instances.GetInstanceStats(
            instance_pb2.GetInstanceStatsRequest(instance_id="ghost")
        ),
        NOT_FOUND,
        "INSTANCE_NOT_FOUND",
        "instance_id",
    ),
    (
        "DeployExpert without a file",
        lambda s: s.instances.DeployExpert(
            instance_pb2.DeployExpertRequest(instance_id="known", expert_name="E1")
        ),
        INVALID,
        "FIELD_REQUIRED",
        "expert_file",
    ),
    (
        "CreateInstance bad margin mode",
        lambda s: s.instances.CreateInstance(
            instance_pb2.CreateInstanceRequest(
                instance_id="mm", config=common_pb2.InstanceConfig(margin_mode=9)
            )
        ),
        INVALID,
        "MARGIN_MODE_INVALID",
        "config.margin_mode",
    ),
    (
        "CreateInstance bad backend",
        lambda s: s.instances.CreateInstance(
            instance_pb2.CreateInstanceRequest(instance_id="bb", backend=7)
        ),
        INVALID,
        "BACKEND_INVALID",
        "backend",
    ),
    (
        "ListInstances bad page token",
        lambda s: s.instances.ListInstances(instance_pb2.ListInstancesRequest(page_token="x")),
        INVALID,
        "PAGE_TOKEN_INVALID",
        "page_token",
    ),
    (
        "ListOrders bad page token",
        lambda s: s.orders.ListOrders(
            order_pb2.ListOrdersRequest(instance_id="known", history=True, page_token="x")
        ),
        INVALID,
        "PAGE_TOKEN_INVALID",
        "page_token",
    ),
    (
        "ListOrders unknown instance",
        lambda s: s.orders.ListOrders(order_pb2.ListOrdersRequest(instance_id="ghost")),
        grpc.StatusCode.NOT_FOUND,
        "INSTANCE_NOT_FOUND",
        "instance_id",
    ),
    (
        "CancelOrder without a key",
        lambda s: s.orders.CancelOrder(order_pb2.CancelOrderRequest(instance_id="known")),
        INVALID,
        "FIELD_REQUIRED",
        "order_id",
    ),
    (
        "CancelOrder unknown order",
        lambda s: s.orders.CancelOrder(
            order_pb2.CancelOrderRequest(instance_id="known", order_id=424242)
        ),
        NOT_FOUND,
        "ORDER_NOT_FOUND",
        "order_id",
    ),
    (
        "ModifyOrder unknown client id",
        lambda s: s.orders.ModifyOrder(
            order_pb2.ModifyOrderRequest(instance_id="known", client_order_id="nope", price=1.0)
        ),
        NOT_FOUND,
        "ORDER_NOT_FOUND",
        "client_order_id",
    ),
    (
        "ModifyOrder NaN price",
        lambda s: s.orders.ModifyOrder(
            order_pb2.ModifyOrderRequest(
                instance_id="known", client_order_id="nope", price=float("nan")
            )
        ),
        INVALID,
        "PRICE_INVALID",
        "price",
    ),
    (
        "ModifyPosition unknown position",
        lambda s: s.orders.ModifyPosition(
            order_pb2.ModifyPositionRequest(instance_id="known", position_id=77, stop_loss=1.0)
        ),
        NOT_FOUND,
        "POSITION_NOT_FOUND",
        "position_id",
    ),
    (
        "ModifyPosition without a position",
        lambda s: s.orders.ModifyPosition(order_pb2.ModifyPositionRequest(instance_id="known")),
        INVALID,
        "FIELD_REQUIRED",
        "position_id",
    ),
    (
        "ClosePosition unknown position",
        lambda s: s.orders.ClosePosition(
            order_pb2.ClosePositionRequest(instance_id="known", position_id=77)
        ),
        NOT_FOUND,
        "POSITION_NOT_FOUND",
        "position_id",
    ),
    (
        "CloseAll unknown instance",
        lambda s: s.orders.CloseAll(order_pb2.CloseAllRequest(instance_id="ghost")),
        NOT_FOUND,
        "INSTANCE_NOT_FOUND",
        "instance_id",
    ),
    (
        "GetOrder without a key",
        lambda s: s.orders.GetOrder(order_pb2.GetOrderRequest(instance_id="known")),
        INVALID,
        "FIELD_REQUIRED",
        "key",
    ),
    (
        "ListOrders unknown instance",
        lambda s: s.orders.ListOrders(order_pb2.ListOrdersRequest(instance_id="ghost")),
        NOT_FOUND,
        "INSTANCE_NOT_FOUND",
        "instance_id",
    ),
    (
        "CheckOrder bad volume",
        lambda s: s.orders.CheckOrder(
            order_pb2.CheckOrderRequest(
                order=order_pb2.PlaceOrderRequest(
                    instance_id="known", symbol="EURUSD", side=1, type=1, volume=-1
                )
            )
        ),
        INVALID,
        "VOLUME_INVALID",
        "volume",
    ),
    (
        "PlaceOrder comment too long",
        lambda s: s.orders.PlaceOrder(
            order_pb2.PlaceOrderRequest(
                instance_id="known", symbol="EURUSD", side=1, type=1, volume=0.1, comment="x" * 65
            )
        ),
        INVALID,
        "VALUE_TOO_LONG",
        "comment",
    ),
    (
        "PlaceOrder filling out of range",
        lambda s: s.orders.PlaceOrder(
            order_pb2.PlaceOrderRequest(
                instance_id="known", symbol="EURUSD", side=1, type=1, volume=0.1, filling=9
            )
        ),
        INVALID,
        "FILLING_INVALID",
        "filling",
    ),
    (
        "PlaceOrder expiration beyond any time",
        lambda s: s.orders.PlaceOrder(
            order_pb2.PlaceOrderRequest(
                instance_id="known",
                symbol="EURUSD",
                side=1,
                type=2,
                volume=0.1,
                price=1.0,
                time_in_force=3,
                expiration=timestamp_pb2.Timestamp(seconds=2**62),
            )
        ),
        INVALID,
        "VALUE_OUT_OF_RANGE",
        "expiration",
    ),
    (
        "StreamExecutions unknown instance",
        lambda s: first(
            s.streams.StreamExecutions(stream_pb2.StreamExecutionsRequest(instance_id="ghost"))
        ),
        NOT_FOUND,
        "INSTANCE_NOT_FOUND",
        "instance_id",
    ),
    (
        "StreamAccount bad id",
        lambda s: first(s.streams.StreamAccount(stream_pb2.StreamAccountRequest(instance_id=""))),
        INVALID,
        "FIELD_REQUIRED",
        "instance_id",
    ),
    (
        "StreamInstanceEvents unknown instance",
        lambda s: first(
            s.streams.StreamInstanceEvents(
                stream_pb2.StreamInstanceEventsRequest(instance_ids=["ghost"])
            )
        ),
        NOT_FOUND,
        "INSTANCE_NOT_FOUND",
        "instance_id",
    ),
]


@pytest.mark.parametrize(
    ("call", "code", "reason", "field"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_bad_input(
    server: ServerProcess,
    call: Callable[[ServerProcess], Any],
    code: grpc.StatusCode,
    reason: str,
    field: str,
) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        call(server)
    assert caught.value.code() == code, caught.value.details()
    info = error_info(caught.value)
    assert (info.domain, info.reason, info.metadata["field"]) == ("mt5exec", reason, field)
    assert field.split(".")[-1] in caught.value.details() or field == "key"
