"""Key, stream and channel names of the mirror, and the JSON written under them.

Names are those of seed 002 (``instance_state:<id>``, ``execution_status:<id>``, ...) after the
configured prefix; an execution's id is ``<instance_id>:<client_order_id>`` (client order ids
are unique per instance only). docs/redis.md is the reference of every key.
"""

from __future__ import annotations

import base64
import functools
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.internal import type_checkers
from google.protobuf.message import Message

from mt5exec.v1 import common_pb2


@dataclass(frozen=True, slots=True)
class Keys:
    """Every name the mirror writes, under ``prefix``."""

    prefix: str

    # The mirror's own hash: present while what it wrote is there (a FLUSHALL removes it).
    @property
    def marker(self) -> str:
        return f"{self.prefix}mirror"

    # The set of instance ids that have keys (to remove those of deleted instances).
    @property
    def instances(self) -> str:
        return f"{self.prefix}instances"

    @property
    def instance_events(self) -> str:
        return f"{self.prefix}instance_events"

    def instance(self, name: str, instance_id: str) -> str:
        """``instance_state``, ``instance_health``, ``instance_failure``, ``health_check``,
        ``health_check_latency``, ``health_check_error``, ``account_state``, ``positions``."""
        return f"{self.prefix}{name}:{instance_id}"

    def execution(self, name: str, instance_id: str, client_order_id: str) -> str:
        """``execution_state``, ``execution_status``, ``execution_result``."""
        return f"{self.prefix}{name}:{instance_id}:{client_order_id}"

    def executions(self, instance_id: str) -> str:
        """The stream of an instance's execution events."""
        return f"{self.prefix}executions:{instance_id}"

    def ticks(self, instance_id: str) -> str:
        """The pub/sub channel of an instance's ticks."""
        return f"{self.prefix}ticks:{instance_id}"


# Every per-instance key, for the removal of a deleted instance's.
INSTANCE_KEYS = (
    "instance_state",
    "instance_health",
    "instance_failure",
    "health_check",
    "health_check_latency",
    "health_check_error",
    "account_state",
    "positions",
)


def as_json(message: Message) -> str:
    """A message in the protobuf JSON mapping with its .proto field names (what a JSON gRPC
    gateway would answer, and ``json_format.MessageToDict(preserving_proto_field_name=True)``
    makes): enums by name, 64-bit integers as strings, times in RFC 3339, fields at their
    default left out. Made here from ``ListFields`` with a converter per field, ~10x faster
    than json_format (this runs for every execution event, on the server's event loop)."""
    return compact(_as_dict(message))


# json.dumps(value, separators=(",", ":")) without a new encoder per call.
compact = json.JSONEncoder(separators=(",", ":")).encode


Converter = Callable[[Any], Any]
_CONVERTERS: dict[FieldDescriptor, Converter] = {}
_INT64 = frozenset(
    {
        FieldDescriptor.TYPE_INT64,
        FieldDescriptor.TYPE_UINT64,
        FieldDescriptor.TYPE_SINT64,
        FieldDescriptor.TYPE_FIXED64,
        FieldDescriptor.TYPE_SFIXED64,
    }
)


def _as_dict(message: Message) -> dict[str, Any]:
    out = {}
    for field, value in message.ListFields():
        convert = _CONVERTERS.get(field)
        if convert is None:
            convert = _CONVERTERS[field] = _converter(field)
        out[field.name] = convert(value)
    return out


def _double(value: float) -> float | str:
    if math.isfinite(value):
        return value
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


def _converter(field: FieldDescriptor) -> Converter:
    one: Converter
    kind = field.type
    if kind == FieldDescriptor.TYPE_MESSAGE:
        assert field.message_type is not None
        name = field.message_type.full_name
        if field.message_type.GetOptions().map_entry:
            value_field = field.message_type.fields_by_name["value"]
            convert = _converter(value_field)
            return lambda m: {str(k): convert(v) for k, v in m.items()}
        if name == "google.protobuf.Timestamp":
            one = _timestamp
        elif name == "google.protobuf.Duration":
            one = _wkt_json
        elif name.startswith("google.protobuf."):
            one = _json_format
        else:
            one = _as_dict
    elif kind == FieldDescriptor.TYPE_ENUM:
        assert field.enum_type is not None
        names = {v.number: v.name for v in field.enum_type.values}
        one = lambda v: names.get(v, v)  # noqa: E731
    elif kind in _INT64:
        one = str
    elif kind == FieldDescriptor.TYPE_DOUBLE:
        one = _double
    elif kind == FieldDescriptor.TYPE_FLOAT:
        one = lambda v: _double(type_checkers.ToShortestFloat(v))  # noqa: E731
    elif kind == FieldDescriptor.TYPE_BYTES:
        one = lambda v: base64.b64encode(v).decode()  # noqa: E731
    else:
        one = _same
    if field.is_repeated:
        return lambda values: [one(v) for v in values]
    return one


def _same(value: Any) -> Any:
    return value


def _timestamp(value: Any) -> str:
    """RFC 3339 as ``Timestamp.ToJsonString`` writes it (0, 3, 6 or 9 digits of fraction),
    in a fraction of its time (the seconds' text is kept: events come in the same second)."""
    seconds, nanos = value.seconds, value.nanos
    text = _seconds_text(seconds)
    if not nanos:
        return text + "Z"
    if nanos % 1_000_000 == 0:
        return f"{text}.{nanos // 1_000_000:03d}Z"
    if nanos % 1000 == 0:
        return f"{text}.{nanos // 1000:06d}Z"
    return f"{text}.{nanos:09d}Z"


@functools.lru_cache(maxsize=256)
def _seconds_text(seconds: int) -> str:
    t = time.gmtime(seconds)
    return (
        f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}"
        f"T{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"
    )


def _wkt_json(value: Any) -> Any:
    return value.ToJsonString()


def _json_format(value: Message) -> Any:
    return json_format.MessageToDict(value, preserving_proto_field_name=True)


def health(state: int) -> str:
    """``instance_health``: UP when READY, DEGRADED when DEGRADED, DOWN otherwise."""
    if state == common_pb2.INSTANCE_STATE_READY:
        return "UP"
    if state == common_pb2.INSTANCE_STATE_DEGRADED:
        return "DEGRADED"
    return "DOWN"


_OPEN = frozenset(
    {
        common_pb2.ORDER_STATUS_NEW,
        common_pb2.ORDER_STATUS_SUBMITTED,
        common_pb2.ORDER_STATUS_ACCEPTED,
        common_pb2.ORDER_STATUS_PARTIALLY_FILLED,
        common_pb2.ORDER_STATUS_UNKNOWN,
    }
)


def execution_status(status: int) -> str:
    """``execution_status``: OPEN while the order works (or its outcome is unknown), FAILED
    when rejected, CLOSED when filled, cancelled or expired."""
    if status in _OPEN:
        return "OPEN"
    if status == common_pb2.ORDER_STATUS_REJECTED:
        return "FAILED"
    return "CLOSED"


class Result:
    """``execution_result`` of one order: its fills summed (each deal counted once)."""

    __slots__ = ("deals",)

    def __init__(self) -> None:
        # deal id -> (profit, commission, swap, volume, slippage in points)
        self.deals: dict[int, tuple[float, float, float, float, float]] = {}

    def add(self, fill: common_pb2.Fill) -> None:
        self.deals[fill.deal_id] = (
            fill.profit,
            fill.commission,
            fill.swap,
            fill.volume,
            fill.slippage_points,
        )

    def as_json(self) -> str:
        deals = self.deals.values()
        profit = sum(d[0] for d in deals)
        commission = sum(d[1] for d in deals)
        swap = sum(d[2] for d in deals)
        volume = sum(d[3] for d in deals)
        slippage = sum(d[3] * d[4] for d in deals) / volume if volume else 0.0
        out: dict[str, Any] = {
            "pnl": round(profit + commission + swap, 10),
            "slippage_points": round(slippage, 10),
            "profit": profit,
            "commission": commission,
            "swap": swap,
            "filled_volume": round(volume, 10),
            "fills": len(self.deals),
        }
        return compact(out)
