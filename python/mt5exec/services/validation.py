"""Edge validation shared by the services: ids, numbers, times, enums and strings, with
errors naming the field.

``check_message`` is the part every request decoded in Python goes through (see
``mt5exec.server.handlers``): no field the server does not know (or of the wrong wire type),
no enum value outside its enum, no string over ``MAX_STRING`` characters. The rest are the
checks services make of particular fields; the ranges are documented in the proto files.
"""

from __future__ import annotations

import math
import re
import uuid
from typing import Any

from google.protobuf.descriptor import EnumDescriptor, FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from google.protobuf.unknown_fields import UnknownFieldSet

from mt5exec.errors import MT5ExecError, invalid, number, quote
from mt5exec.reasons import Reason

# Ids become path components and terminal comments: a strict alphabet, bounded length.
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_CLIENT_ORDER_ID = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
# A symbol name as the templates take it (MT5's own are at most 31 characters).
SYMBOL = re.compile(r"\S{1,64}")

# No string of a request is longer (fields with their own bound are checked tighter).
MAX_STRING = 1024
# What google.protobuf.Timestamp can hold: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z.
_TIMESTAMP_SECONDS = (-62_135_596_800, 253_402_300_799)
# What google.protobuf.Duration can hold: about +-10,000 years.
_DURATION_SECONDS = 315_576_000_000


def instance_id(value: str, field: str = "instance_id", *, generate: bool = False) -> str:
    if not value and generate:
        return f"i-{uuid.uuid4().hex[:12]}"
    if not value:
        raise invalid(field, Reason.FIELD_REQUIRED, f"{field}: required")
    if not _ID.fullmatch(value) or value in (".", ".."):
        raise invalid(
            field,
            Reason.ID_INVALID,
            f"{field}: {quote(value)} must match [A-Za-z0-9][A-Za-z0-9_.-]{{0,63}}",
        )
    return value


def owner(value: str) -> str:
    return instance_id(value or "default", "owner")


def client_order_id(value: str) -> str:
    if not value:
        # 24 hex digits (96 random bits) fit the 31-character MT5 comment as they are.
        return uuid.uuid4().hex[:24]
    if not _CLIENT_ORDER_ID.fullmatch(value):
        raise invalid(
            "client_order_id",
            Reason.CLIENT_ORDER_ID_INVALID,
            f"client_order_id: {quote(value)} must match [A-Za-z0-9_.:-]{{1,64}}",
        )
    return value


def finite(field: str, value: float, *, minimum: float = 0.0, maximum: float = math.inf) -> float:
    if not math.isfinite(value) or value < minimum or value > maximum:
        raise invalid(
            field,
            Reason.VALUE_OUT_OF_RANGE,
            f"{field}: must be a finite number in [{number(minimum)}, {number(maximum)}], "
            f"got {number(value)}",
        )
    return value


def integer(field: str, value: int, *, minimum: int, maximum: int) -> int:
    if not minimum <= value <= maximum:
        raise invalid(
            field,
            Reason.VALUE_OUT_OF_RANGE,
            f"{field}: must be an integer in [{minimum}, {maximum}], got {value}",
        )
    return value


def text(field: str, value: str, *, max_length: int, pattern: re.Pattern[str] | None = None) -> str:
    """A string of at most ``max_length`` characters (matching ``pattern`` when given)."""
    if len(value) > max_length:
        raise invalid(
            field,
            Reason.VALUE_TOO_LONG,
            f"{field}: at most {max_length} characters, got {len(value):,}",
        )
    if pattern is not None and not pattern.fullmatch(value):
        raise invalid(
            field, Reason.VALUE_INVALID, f"{field}: {quote(value)} must match {pattern.pattern}"
        )
    return value


def seconds(field: str, value: Message, *, minimum: float = 0.0, maximum: float) -> float:
    """A google.protobuf.Duration as seconds, in [minimum, maximum]."""
    secs, nanos = value.seconds, value.nanos  # type: ignore[attr-defined]
    if (
        abs(secs) > _DURATION_SECONDS
        or abs(nanos) >= 1_000_000_000
        or (secs and nanos and (secs > 0) != (nanos > 0))
    ):
        raise invalid(field, Reason.VALUE_OUT_OF_RANGE, f"{field}: not a valid duration")
    total = secs + nanos / 1e9
    if not minimum <= total <= maximum:
        raise invalid(
            field,
            Reason.VALUE_OUT_OF_RANGE,
            f"{field}: must be {number(minimum)} to {number(maximum)} s, got {number(total)} s",
        )
    return float(total)


def timestamp_nanos(field: str, value: Timestamp) -> int:
    """A google.protobuf.Timestamp (years 1 to 9999) as nanoseconds since the epoch."""
    low, high = _TIMESTAMP_SECONDS
    if not low <= value.seconds <= high or not 0 <= value.nanos < 1_000_000_000:
        raise invalid(
            field,
            Reason.VALUE_OUT_OF_RANGE,
            f"{field}: not a time between the years 1 and 9999 (seconds {value.seconds}, "
            f"nanos {value.nanos})",
        )
    return value.seconds * 1_000_000_000 + value.nanos


# The reasons of enums whose reason is not their name + _INVALID (the engine's spelling).
_ENUM_REASONS = {
    "mt5exec.v1.OrderType": Reason.ORDER_TYPE_INVALID,
    "mt5exec.v1.FillingMode": Reason.FILLING_INVALID,
    "mt5exec.v1.AccountMarginMode": Reason.MARGIN_MODE_INVALID,
}


def _enum_reason(enum: EnumDescriptor) -> str:
    return _ENUM_REASONS.get(enum.full_name) or (
        re.sub(r"(?<!^)(?=[A-Z])", "_", enum.name).upper() + "_INVALID"
    )


def enum(field: str, value: int, descriptor: EnumDescriptor, *, unspecified: bool = True) -> int:
    """``value`` if it is one of the enum's values (its zero value only with ``unspecified``)."""
    if value not in descriptor.values_by_number or (value == 0 and not unspecified):
        names = [v.name for v in descriptor.values if v.number or unspecified]
        raise invalid(
            field,
            _enum_reason(descriptor),
            f"{field}: {value} is not one of {', '.join(names)}",
        )
    return value


_WIRE_TYPES = {0: "varint", 1: "64-bit", 2: "length-delimited", 5: "32-bit"}


def check_message(message: Message, path: str = "") -> None:
    """Refuses what no service should see: fields the server does not know or of the wrong
    wire type (proto3 keeps them as unknown fields), enum values outside their enum, strings
    over MAX_STRING characters. Nested messages are checked too; errors name the field by
    its path from the request."""
    unknown = UnknownFieldSet(message)
    if len(unknown):
        field = unknown[0]
        known = message.DESCRIPTOR.fields_by_number.get(field.field_number)
        wire = _WIRE_TYPES.get(field.wire_type, str(field.wire_type))
        if known is not None:
            name = f"{path}{known.name}"
            raise request_invalid(name, f"{name}: wrong wire type ({wire}) for a {_kind(known)}")
        where = path.rstrip(".") or "request"
        raise request_invalid(
            where,
            f"{where}: field number {field.field_number} ({wire}) is not a field of "
            f"{message.DESCRIPTOR.full_name}",
        )
    for descriptor, value in message.ListFields():
        name = f"{path}{descriptor.name}"
        items = value if descriptor.is_repeated else (value,)
        if descriptor.message_type is not None:
            if descriptor.message_type.GetOptions().map_entry:
                entry = descriptor.message_type.fields_by_name["value"]
                items = value.values() if entry.message_type is not None else ()
            for item in items:
                check_message(item, f"{name}.")
        elif descriptor.enum_type is not None:
            for item in items:
                enum(name, item, descriptor.enum_type)
        elif descriptor.type == FieldDescriptor.TYPE_STRING:
            for item in items:
                text(name, item, max_length=MAX_STRING)


def request_invalid(field: str, message: str) -> MT5ExecError:
    return invalid(field, Reason.REQUEST_INVALID, message)


def _kind(descriptor: Any) -> str:
    kinds = {
        FieldDescriptor.TYPE_MESSAGE: "message",
        FieldDescriptor.TYPE_STRING: "string",
        FieldDescriptor.TYPE_BYTES: "bytes field",
        FieldDescriptor.TYPE_ENUM: "enum",
    }
    return kinds.get(descriptor.type, "number")
