"""The mirror's JSON is the protobuf JSON mapping: what json_format.MessageToDict makes with
the .proto field names, for every message the mirror writes, with every field set."""

from __future__ import annotations

import json

import pytest
from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from mt5exec.mirror.keys import Result, as_json
from mt5exec.v1 import common_pb2, instance_pb2

_INT64 = (
    FieldDescriptor.TYPE_INT64,
    FieldDescriptor.TYPE_UINT64,
    FieldDescriptor.TYPE_SINT64,
    FieldDescriptor.TYPE_FIXED64,
    FieldDescriptor.TYPE_SFIXED64,
)


def _filled(message: Message, depth: int = 0) -> Message:
    """``message`` with every field set to a value that is not its default."""
    for field in message.DESCRIPTOR.fields:
        if (
            field.containing_oneof is not None
            and field.name != field.containing_oneof.fields[0].name
        ):
            continue
        kind = field.type
        if kind == field.TYPE_MESSAGE:
            if field.message_type.full_name == "google.protobuf.Timestamp":
                sub = getattr(message, field.name)
                target = sub.add() if field.is_repeated else sub
                target.FromNanoseconds(1_796_606_374_069_257_935)
            elif field.message_type.full_name == "google.protobuf.Duration":
                getattr(message, field.name).FromMilliseconds(1500)
            elif depth < 3:
                sub = getattr(message, field.name)
                _filled(sub.add() if field.is_repeated else sub, depth + 1)
            continue
        if kind == field.TYPE_ENUM:
            value: object = field.enum_type.values[-1].number
        elif kind == field.TYPE_STRING:
            value = f"{field.name}-é"
        elif kind == field.TYPE_BOOL:
            value = True
        elif kind in (field.TYPE_DOUBLE, field.TYPE_FLOAT):
            value = 1.1 + field.number
        elif kind in _INT64:
            value = 2**40 + field.number
        else:
            value = 7
        if field.is_repeated:
            getattr(message, field.name).extend([value, value])
        else:
            setattr(message, field.name, value)
    return message


@pytest.mark.parametrize(
    "message",
    [
        common_pb2.Instance(),
        common_pb2.Order(),
        common_pb2.Fill(),
        common_pb2.Account(),
        common_pb2.Position(),
        common_pb2.InstanceEvent(),
        common_pb2.ExecutionEvent(),
        instance_pb2.InstanceStats(),
    ],
    ids=lambda m: m.DESCRIPTOR.name,
)
def test_json_is_the_protobuf_json_mapping(message: Message) -> None:
    _filled(message)
    expected = json_format.MessageToDict(message, preserving_proto_field_name=True)
    assert json.loads(as_json(message)) == expected
    # Defaults are left out, as json_format does.
    assert json.loads(as_json(type(message)())) == {}


def test_not_finite_prices_are_named() -> None:
    tick = common_pb2.Tick(bid=float("nan"), ask=float("inf"), last=float("-inf"))
    expected = json_format.MessageToDict(tick, preserving_proto_field_name=True)
    assert json.loads(as_json(tick)) == expected


def test_a_result_counts_each_deal_once() -> None:
    result = Result()
    fill = common_pb2.Fill(deal_id=1, volume=0.5, profit=10.0, commission=-1.0, slippage_points=2)
    result.add(fill)
    result.add(fill)  # the same deal again (a replay)
    result.add(common_pb2.Fill(deal_id=2, volume=1.5, profit=-4.0, swap=-0.5, slippage_points=-2))
    got = json.loads(result.as_json())
    assert got["fills"] == 2
    assert got["pnl"] == pytest.approx(10.0 - 1.0 - 4.0 - 0.5)
    assert got["filled_volume"] == pytest.approx(2.0)
    assert got["slippage_points"] == pytest.approx((0.5 * 2 - 1.5 * 2) / 2.0)


@pytest.mark.parametrize("nanos", [0, 5_000_000, 5_000, 5, 999_999_999])
@pytest.mark.parametrize("seconds", [0, 1_796_606_374, 253_402_300_799, -62_135_596_800])
def test_times_are_written_as_json_format_writes_them(seconds: int, nanos: int) -> None:
    tick = common_pb2.Tick(symbol="X")
    tick.time.seconds, tick.time.nanos = seconds, nanos
    expected = json_format.MessageToDict(tick, preserving_proto_field_name=True)
    assert json.loads(as_json(tick)) == expected
