"""Every RPC refuses bad input with the right status, an ErrorInfo and the field's name."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest
from google.protobuf import duration_pb2, timestamp_pb2
from tests.support import BULK_RISK, create_sim, error_info, wait_for_price

from mt5exec.testing import ServerProcess
from mt5exec.v1 import auth_pb2, common_pb2, instance_pb2, order_pb2, stream_pb2

INVALID = grpc.StatusCode.INVALID_ARGUMENT
NOT_FOUND = grpc.StatusCode.NOT_FOUND
FAILED = grpc.StatusCode.FAILED_PRECONDITION
HUGE = 2**63 - 1
# Past what a Duration can hold; ToTimedelta() overflowed on it.
FOREVER = duration_pb2.Duration(seconds=10**15)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with ServerProcess(tmp_path_factory.mktemp("errors")) as proc:
        create_sim(proc, "known", ["EURUSD"], tick_rate=20)
        # An account of 100 with 1:100: one lot of EURUSD needs ten times its free margin.
        poor = common_pb2.InstanceConfig(
            symbols=["EURUSD"], tick_rate=20, initial_balance=100, risk=BULK_RISK
        )
        proc.instances.CreateInstance(
            instance_pb2.CreateInstanceRequest(instance_id="poor", config=poor), timeout=30
        )
        wait_for_price(proc, "poor", "EURUSD")
        time.sleep(0.2)
        yield proc


def first(stream: Any) -> Any:
    return next(iter(stream))


def raw(server: ServerProcess, method: str, payload: bytes) -> bytes:
    """A call with ``payload`` as the request's bytes."""
    assert server.channel is not None
    answer: bytes = server.channel.unary_unary(method)(payload, timeout=10)
    return answer


def order(**fields: Any) -> order_pb2.PlaceOrderRequest:
    """An order of 0.01 EURUSD on `known`, market unless fields say otherwise."""
    defaults: dict[str, Any] = {"instance_id": "known", "symbol": "EURUSD", "side": 1, "type": 1}
    return order_pb2.PlaceOrderRequest(**(defaults | {"volume": 0.01} | fields))


def length_delimited(number: int, payload: bytes) -> bytes:
    """Field ``number`` holding ``payload`` (under 128 bytes), encoded."""
    return bytes([number << 3 | 2, len(payload)]) + payload


# Field 23 (a varint) that no request has: what a client built from a newer API could send.
FIELD_23 = b"\xb8\x01\x01"
NEWER = order().SerializeToString() + FIELD_23


CASES: list[tuple[str, Callable[[ServerProcess], Any], grpc.StatusCode, str, str]] = [
    (
        "CreateCopyRelation no follower",
        lambda s: s.orders.CreateCopyRelation(
            order_pb2.CreateCopyRelationRequest(
                relation=order_pb2.CopyRelation(master_instance_id="known", multiplier=1.0)
            )
        ),
        INVALID,
        "FIELD_REQUIRED",
        "relation.follower_instance_id",
    ),
    (
        "CreateCopyRelation no master",
        lambda s: s.orders.CreateCopyRelation(
            order_pb2.CreateCopyRelationRequest(
                relation=order_pb2.CopyRelation(follower_instance_id="known", multiplier=1.0)
            )
        ),
        INVALID,
        "FIELD_REQUIRED",
        "relation.master_instance_id",
    ),
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
        "ListDeals page token past int64",
        lambda s: s.orders.ListDeals(
            order_pb2.ListDealsRequest(instance_id="known", page_token="99999999999999999999.1")
        ),
        INVALID,
        "PAGE_TOKEN_INVALID",
        "page_token",
    ),
    (
        "ListDeals page token of int64's largest time",
        lambda s: s.orders.ListDeals(
            order_pb2.ListDealsRequest(instance_id="known", page_token="9223372036854775807.1")
        ),
        INVALID,
        "PAGE_TOKEN_INVALID",
        "page_token",
    ),
    (
        "ListDeals page token past a Timestamp's years",
        lambda s: s.orders.ListDeals(
            order_pb2.ListDealsRequest(instance_id="known", page_token="253402300800000000.1")
        ),
        INVALID,
        "PAGE_TOKEN_INVALID",
        "page_token",
    ),
    (
        "ListDeals page token past a deal id's range",
        lambda s: s.orders.ListDeals(
            order_pb2.ListDealsRequest(instance_id="known", page_token="1.18446744073709551616")
        ),
        INVALID,
        "PAGE_TOKEN_INVALID",
        "page_token",
    ),
    (
        "ListDeals page token of fullwidth digits",
        lambda s: s.orders.ListDeals(
            order_pb2.ListDealsRequest(instance_id="known", page_token="\uff11.1")
        ),
        INVALID,
        "PAGE_TOKEN_INVALID",
        "page_token",
    ),
    (
        "ListDeals page token with a sign inside",
        lambda s: s.orders.ListDeals(
            order_pb2.ListDealsRequest(instance_id="known", page_token="1.-1")
        ),
        INVALID,
        "PAGE_TOKEN_INVALID",
        "page_token",
    ),
    (
        "ListOrders page token past int64",
        lambda s: s.orders.ListOrders(
            order_pb2.ListOrdersRequest(
                instance_id="known", history=True, page_token="99999999999999999999.x"
            )
        ),
        INVALID,
        "PAGE_TOKEN_INVALID",
        "page_token",
    ),
    (
        "ListOrders page token of fullwidth digits",
        lambda s: s.orders.ListOrders(
            order_pb2.ListOrdersRequest(instance_id="known", history=True, page_token="\uff11.x")
        ),
        INVALID,
        "PAGE_TOKEN_INVALID",
        "page_token",
    ),
    (
        "ExportHistory out_dir with a NUL",
        lambda s: s.orders.ExportHistory(order_pb2.ExportHistoryRequest(out_dir="a\0b")),
        INVALID,
        "PATH_INVALID",
        "out_dir",
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
    # -- bytes that are not a valid request (#18) ---------------------------------------------
    (
        "GetInstance truncated",
        lambda s: raw(s, "/mt5exec.v1.InstanceService/GetInstance", b"\x0a\x05kno"),
        INVALID,
        "REQUEST_INVALID",
        "request",
    ),
    (
        "GetInstance not UTF-8",
        lambda s: raw(s, "/mt5exec.v1.InstanceService/GetInstance", b"\x0a\x02\xff\xfe"),
        INVALID,
        "REQUEST_INVALID",
        "request",
    ),
    (
        "CreateInstance unknown field",
        lambda s: raw(s, "/mt5exec.v1.InstanceService/CreateInstance", b"\x38\x05"),
        INVALID,
        "REQUEST_INVALID",
        "request",
    ),
    (
        "CreateInstance config field of the wrong wire type",
        # config { symbols: a varint }: proto3 keeps it as an unknown field.
        lambda s: raw(s, "/mt5exec.v1.InstanceService/CreateInstance", b"\x22\x02\x08\x01"),
        INVALID,
        "REQUEST_INVALID",
        "config.symbols",
    ),
    (
        "PlaceOrder truncated",
        lambda s: raw(s, "/mt5exec.v1.OrderService/PlaceOrder", order().SerializeToString()[:-3]),
        INVALID,
        "REQUEST_INVALID",
        "request",
    ),
    (
        "PlaceOrder field number 23",
        # Skipped by the decoder, refused by the engine: not ignored.
        lambda s: raw(
            s, "/mt5exec.v1.OrderService/PlaceOrder", order().SerializeToString() + FIELD_23
        ),
        INVALID,
        "REQUEST_INVALID",
        "request",
    ),
    (
        "CheckOrder field number 23 in the order",
        lambda s: raw(s, "/mt5exec.v1.OrderService/CheckOrder", length_delimited(1, NEWER)),
        INVALID,
        "REQUEST_INVALID",
        "order",
    ),
    (
        "Health Check not UTF-8",
        lambda s: raw(s, "/grpc.health.v1.Health/Check", b"\x0a\x01\xff"),
        INVALID,
        "REQUEST_INVALID",
        "request",
    ),
    # -- values past what the field can hold (INTERNAL before #18) ---------------------------
    (
        "ModifyOrder expiration 2^63-1 s",
        lambda s: s.orders.ModifyOrder(
            order_pb2.ModifyOrderRequest(
                instance_id="known",
                client_order_id="nope",
                expiration=timestamp_pb2.Timestamp(seconds=HUGE),
            )
        ),
        INVALID,
        "VALUE_OUT_OF_RANGE",
        "expiration",
    ),
    (
        "ListOrders from_time 2^63-1 s",
        lambda s: s.orders.ListOrders(
            order_pb2.ListOrdersRequest(
                instance_id="known", from_time=timestamp_pb2.Timestamp(seconds=HUGE)
            )
        ),
        INVALID,
        "VALUE_OUT_OF_RANGE",
        "from_time",
    ),
    (
        "ListInstances page token of 5,000 digits",
        lambda s: s.instances.ListInstances(
            instance_pb2.ListInstancesRequest(page_token="9" * 5000)
        ),
        INVALID,
        "VALUE_TOO_LONG",
        "page_token",
    ),
    (
        "ListInstances page token of 1,000 digits",
        lambda s: s.instances.ListInstances(
            instance_pb2.ListInstancesRequest(page_token="9" * 1000)
        ),
        INVALID,
        "PAGE_TOKEN_INVALID",
        "page_token",
    ),
    (
        "ListInstances page token of a superscript digit",
        lambda s: s.instances.ListInstances(instance_pb2.ListInstancesRequest(page_token="\u00b2")),
        INVALID,
        "PAGE_TOKEN_INVALID",
        "page_token",
    ),
    (
        "ListAuditRecords page token of a superscript digit",
        lambda s: s.auth.ListAuditRecords(auth_pb2.ListAuditRecordsRequest(page_token="\u00b2")),
        INVALID,
        "PAGE_TOKEN_INVALID",
        "page_token",
    ),
    (
        "StopInstance grace 1e15 s",
        lambda s: s.instances.StopInstance(
            instance_pb2.StopInstanceRequest(instance_id="known", grace=FOREVER)
        ),
        INVALID,
        "VALUE_OUT_OF_RANGE",
        "grace",
    ),
    (
        "DeployExpert timeout 1e15 s",
        lambda s: s.instances.DeployExpert(
            instance_pb2.DeployExpertRequest(
                instance_id="known", expert_name="E1", expert_file=b"x", timeout=FOREVER
            )
        ),
        INVALID,
        "VALUE_OUT_OF_RANGE",
        "timeout",
    ),
    (
        "StreamAccount interval 1e15 s",
        lambda s: first(
            s.streams.StreamAccount(
                stream_pb2.StreamAccountRequest(instance_id="known", interval=FOREVER)
            )
        ),
        INVALID,
        "VALUE_OUT_OF_RANGE",
        "interval",
    ),
    # -- values the fields do not have (accepted before #18) ---------------------------------
    (
        "PlaceOrder time_in_force 99",
        lambda s: s.orders.PlaceOrder(order(time_in_force=99)),
        INVALID,
        "TIME_IN_FORCE_INVALID",
        "time_in_force",
    ),
    (
        "PlaceOrder time_in_force -1",
        lambda s: s.orders.PlaceOrder(order(time_in_force=-1)),
        INVALID,
        "TIME_IN_FORCE_INVALID",
        "time_in_force",
    ),
    (
        "CheckOrder time_in_force 99",
        lambda s: s.orders.CheckOrder(order_pb2.CheckOrderRequest(order=order(time_in_force=99))),
        INVALID,
        "TIME_IN_FORCE_INVALID",
        "order.time_in_force",
    ),
    (
        "ModifyOrder time_in_force 99",
        lambda s: s.orders.ModifyOrder(
            order_pb2.ModifyOrderRequest(instance_id="known", order_id=1, time_in_force=99)
        ),
        INVALID,
        "TIME_IN_FORCE_INVALID",
        "time_in_force",
    ),
    (
        "ListInstances unknown state",
        lambda s: s.instances.ListInstances(instance_pb2.ListInstancesRequest(states=[42])),
        INVALID,
        "INSTANCE_STATE_INVALID",
        "states",
    ),
    (
        "PlaceOrder market with a stop-limit price",
        lambda s: s.orders.PlaceOrder(order(stop_limit_price=1.05)),
        INVALID,
        "FIELD_NOT_APPLICABLE",
        "stop_limit_price",
    ),
    (
        "PlaceOrder market good for the day",
        lambda s: s.orders.PlaceOrder(order(time_in_force=common_pb2.TIME_IN_FORCE_DAY)),
        INVALID,
        "FIELD_NOT_APPLICABLE",
        "time_in_force",
    ),
    (
        "CreateInstance initial_balance 1e308",
        lambda s: s.instances.CreateInstance(
            instance_pb2.CreateInstanceRequest(
                instance_id="rich", config=common_pb2.InstanceConfig(initial_balance=1e308)
            )
        ),
        INVALID,
        "VALUE_OUT_OF_RANGE",
        "config.initial_balance",
    ),
    (
        "CreateInstance leverage 2^32-1",
        lambda s: s.instances.CreateInstance(
            instance_pb2.CreateInstanceRequest(
                instance_id="lever", config=common_pb2.InstanceConfig(leverage=2**32 - 1)
            )
        ),
        INVALID,
        "VALUE_OUT_OF_RANGE",
        "config.leverage",
    ),
    (
        "CreateInstance allowed symbol of 100,000 characters",
        lambda s: s.instances.CreateInstance(
            instance_pb2.CreateInstanceRequest(
                instance_id="wide",
                config=common_pb2.InstanceConfig(
                    risk=common_pb2.RiskLimits(allowed_symbols=["X" * 100_000])
                ),
            )
        ),
        INVALID,
        "VALUE_TOO_LONG",
        "config.risk.allowed_symbols",
    ),
    (
        "CreateInstance allowed symbol with a space",
        lambda s: s.instances.CreateInstance(
            instance_pb2.CreateInstanceRequest(
                instance_id="wide",
                config=common_pb2.InstanceConfig(
                    risk=common_pb2.RiskLimits(allowed_symbols=["EUR USD"])
                ),
            )
        ),
        INVALID,
        "LIMIT_INVALID",
        "risk.allowed_symbols",
    ),
    (
        "PlaceOrder more than the free margin",
        lambda s: s.orders.PlaceOrder(order(instance_id="poor", volume=1.0)),
        FAILED,
        "INSUFFICIENT_MARGIN",
        "volume",
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
    assert field.split(".")[-1] in caught.value.details() or field in ("key", "request")


def test_insufficient_margin_names_the_margin(server: ServerProcess) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        server.orders.PlaceOrder(order(instance_id="poor", volume=1.0))
    message = caught.value.details()
    assert "needs a margin of" in message and "the free margin is" in message, message


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.orders.PlaceOrder(order(symbol="X" * 100_000)),
        lambda s: s.orders.PlaceOrder(order(volume=1e308)),
        lambda s: s.orders.PlaceOrder(order(instance_id="X" * 100_000)),
        lambda s: s.instances.CreateInstance(
            instance_pb2.CreateInstanceRequest(
                instance_id="long", config=common_pb2.InstanceConfig(symbols=["X" * 1000])
            )
        ),
        lambda s: s.instances.GetInstance(instance_pb2.GetInstanceRequest(instance_id="/" * 1000)),
    ],
    ids=["symbol", "volume", "instance_id", "config.symbols", "GetInstance"],
)
def test_input_is_quoted_short(server: ServerProcess, call: Callable[[ServerProcess], Any]) -> None:
    """A default client gets the real status: the message quotes at most 64 characters of
    the input and prints numbers short (1e308 came back as 309 digits)."""
    with pytest.raises(grpc.RpcError) as caught:
        call(server)
    assert caught.value.code() == INVALID, caught.value.details()
    message = caught.value.details()
    assert len(message) < 300, message
    assert "0" * 20 not in message, message


def test_a_position_price_is_printed_short(server: ServerProcess) -> None:
    placed = server.orders.PlaceOrder(order(client_order_id="held"), timeout=10).order
    assert placed.position_id
    with pytest.raises(grpc.RpcError) as caught:
        server.orders.ModifyPosition(
            order_pb2.ModifyPositionRequest(
                instance_id="known", position_id=placed.position_id, stop_loss=1e308
            ),
            timeout=10,
        )
    assert error_info(caught.value).reason == "STOP_LOSS_WRONG_SIDE"
    assert "stop_loss: 1e308 must be below" in caught.value.details(), caught.value.details()
