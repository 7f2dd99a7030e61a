"""Audit records made readable: what the history process does with the records the server
packs (``mt5exec.auth.audit``), and ListAuditRecords.

``describe`` turns a packed record into its ``audit`` table row and its JSON log line: the
request decoded by its method's type, every field named like a secret replaced by
``[REDACTED]`` (again: the server redacted decoded requests already, raw ones have none), bytes
replaced by their size and SHA-256. The line is one JSON object, logged at INFO on the
``mt5exec.audit`` logger, which has a handler of its own (``configure_log``): the server's
``log_level`` does not silence it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import marshal
import math
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import cache, lru_cache
from typing import Any

from google.protobuf import message_factory
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import DecodeError, Message
from google.protobuf.timestamp_pb2 import Timestamp

from mt5exec.auth import audit, rules
from mt5exec.errors import invalid
from mt5exec.reasons import Reason
from mt5exec.services import validation
from mt5exec.v1 import auth_pb2

LOGGER = "mt5exec.audit"
log = logging.getLogger(LOGGER)

# The audit table's columns, in order (mt5exec.storage.history_schema.AUDIT).
COLUMNS = (
    "id",
    "time",
    "event",
    "method",
    "principal_kind",
    "subject",
    "role",
    "owner",
    "peer",
    "instance_id",
    "code",
    "reason",
    "request",
    "messages_in",
    "messages_out",
)

Row = tuple[Any, ...]


def configure_log() -> None:
    """Gives ``mt5exec.audit`` a handler of its own on stderr at INFO, in the server's format."""
    logger = logging.getLogger(LOGGER)
    if logger.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


def log_line(line: str) -> None:
    log.info("%s", line)


# -- requests as JSON ------------------------------------------------------------------------


def _methods() -> dict[str, Any]:
    from mt5exec.v1 import instance_pb2, order_pb2, stream_pb2

    return {
        f"{service.full_name}/{method.name}": method
        for module in (instance_pb2, order_pb2, stream_pb2, auth_pb2)
        for service in module.DESCRIPTOR.services_by_name.values()
        for method in service.methods
    }


@cache
def _request_type(method: str) -> tuple[type[Message] | None, tuple[str, ...]]:
    """The request class of ``method`` and the path of the instance id its request names."""
    found = _methods().get(method)
    if found is None:
        return None, ()
    cls = message_factory.GetMessageClass(found.input_type)
    try:
        path = rules.rule(method).field
    except KeyError:
        path = ""
    if not path and "instance_id" in found.input_type.fields_by_name:
        path = "instance_id"
    return cls, tuple(path.split(".")) if path else ()


def _value(field: FieldDescriptor, value: Any) -> Any:
    kind = field.type
    if field.message_type is not None:
        if field.message_type.full_name in (
            "google.protobuf.Timestamp",
            "google.protobuf.Duration",
        ):
            try:
                return value.ToJsonString()
            except ValueError:
                return {"seconds": value.seconds, "nanos": value.nanos}
        return to_json(value)
    if field.enum_type is not None:
        known = field.enum_type.values_by_number.get(value)
        return value if known is None else known.name
    if kind == FieldDescriptor.TYPE_BYTES:
        return {"bytes": len(value), "sha256": hashlib.sha256(value).hexdigest()}
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


@cache
def _secret(name: str) -> bool:
    return audit.SECRET.search(name) is not None


def to_json(message: Message) -> dict[str, Any]:
    """The fields set in ``message`` (proto names), secrets redacted, bytes summarised."""
    out: dict[str, Any] = {}
    for field, value in message.ListFields():
        name = field.name
        if _secret(name):
            out[name] = audit.REDACTED
        elif (entry := field.message_type) is not None and entry.GetOptions().map_entry:
            value_field = entry.fields_by_name["value"]
            out[name] = {str(k): _value(value_field, v) for k, v in value.items()}
        elif field.is_repeated:
            out[name] = [_value(field, item) for item in value]
        else:
            out[name] = _value(field, value)
    return out


def _request(method: str, data: bytes | None) -> tuple[Any, str | None]:
    """The request as JSON data and the instance id it names."""
    if data is None:
        return None, None
    cls, path = _request_type(method)
    if cls is None:
        return {"bytes": len(data)}, None
    try:
        message = cls.FromString(data)
    except (DecodeError, ValueError, RuntimeError):
        return {"undecodable_bytes": len(data)}, None
    instance_id: Any = message
    for name in path:
        instance_id = getattr(instance_id, name, "")
    return to_json(message), (instance_id or None) if isinstance(instance_id, str) else None


@lru_cache(maxsize=4)
def _second(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")


def _time(ns: int) -> str:
    seconds, nanos = divmod(ns, 1_000_000_000)
    return f"{_second(seconds)}.{nanos // 1000:06d}Z"


def _json_encoder() -> Callable[[Any], str]:
    """``json.dumps(data, separators=(",", ":"), ensure_ascii=False)``: with the C encoder
    made once rather than per call (dumps makes one each time: 5-9 µs of the ~25 µs the
    history process spends on an audit record), where the interpreter has it."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return lambda data: json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    spec = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
    # No circular check (markers None): the data are trees made by ``to_json`` and describe.
    encode = make(
        None,
        spec.default,
        json.encoder.encode_basestring,
        None,
        spec.key_separator,
        spec.item_separator,
        False,
        False,
        True,
    )
    return lambda data: "".join(encode(data, 0))


_dumps: Callable[[Any], str] = _json_encoder()


def describe(payload: bytes) -> tuple[Row, str]:
    """A packed record's ``audit`` row and its log line."""
    record = marshal.loads(payload)
    if record[0] != audit.VERSION:
        raise ValueError(f"audit record of version {record[0]}, expected {audit.VERSION}")
    (_, record_id, event, method, kind, subject, role, owner, peer, code, reason, data) = record[
        :12
    ]
    messages_in, messages_out = record[12:14]
    request, instance_id = _request(method, data)
    request_json = _dumps(request)
    line: dict[str, Any] = {
        "time": _time(record_id),
        "id": record_id,
        "event": event,
        "method": method,
        "principal": {"kind": kind, "subject": subject, "role": role, "owner": owner},
        "peer": peer,
        "instance_id": instance_id,
        "code": code,
        "reason": reason or None,
    }
    if event != "call":
        line["messages_in"], line["messages_out"] = messages_in, messages_out
    row = (
        record_id,
        record_id // 1000,  # the time, in µs as rows stage times
        event,
        method,
        kind,
        subject,
        role,
        owner,
        peer,
        instance_id,
        code,
        reason or None,
        request_json,
        messages_in if event != "call" else None,
        messages_out if event != "call" else None,
    )
    # The request last, as encoded for the row (once).
    return row, f'{_dumps(line)[:-1]},"request":{request_json}}}'


# -- ListAuditRecords -------------------------------------------------------------------------

MAX_PAGE = 1000
DEFAULT_PAGE = 100

_ROLES = {
    "admin": auth_pb2.ROLE_ADMIN,
    "trader": auth_pb2.ROLE_TRADER,
    "viewer": auth_pb2.ROLE_VIEWER,
}


def query_params(request: auth_pb2.ListAuditRecordsRequest) -> bytes:
    """The validated filters of a request, packed for the history process."""
    start = end = None
    if request.HasField("start_time"):
        start = validation.timestamp_nanos("start_time", request.start_time)
    if request.HasField("end_time"):
        end = validation.timestamp_nanos("end_time", request.end_time)
    if start is not None and end is not None and end < start:
        raise invalid("end_time", Reason.VALUE_OUT_OF_RANGE, "end_time: before start_time")
    if request.page_size > MAX_PAGE:
        raise invalid(
            "page_size",
            Reason.VALUE_OUT_OF_RANGE,
            f"page_size: at most {MAX_PAGE}, got {request.page_size}",
        )
    before = None
    if request.page_token:
        if (
            not (request.page_token.isascii() and request.page_token.isdigit())
            or len(request.page_token) > 20
        ):
            raise invalid("page_token", Reason.PAGE_TOKEN_INVALID, "page_token: not one of ours")
        before = int(request.page_token)
    return marshal.dumps(
        (
            start,
            end,
            validation.text("subject", request.subject, max_length=validation.MAX_STRING),
            validation.text("instance_id", request.instance_id, max_length=64),
            request.page_size or DEFAULT_PAGE,
            before,
        )
    )


Query = Callable[[str, Sequence[object]], list[tuple[Any, ...]]]


def answer(query: Query, params: bytes) -> bytes:
    """The encoded ListAuditRecordsResponse of packed filters, read with ``query`` (the
    history writer's read-only cursor)."""
    start, end, subject, instance_id, size, before = marshal.loads(params)
    where: list[str] = []
    args: list[object] = []
    # id is the time in ns: the time filters use it too (and the table's zone maps).
    for condition, value in (
        ("id >= ?", start),
        ("id < ?", end),
        ("id < ?", before),
        ("subject = ?", subject or None),
        ("instance_id = ?", instance_id or None),
    ):
        if value is not None:
            where.append(condition)
            args.append(value)
    sql = f"SELECT {', '.join(COLUMNS)} FROM audit"
    if where:
        sql += " WHERE " + " AND ".join(where)
    rows = query(sql + " ORDER BY id DESC LIMIT ?", [*args, size + 1])
    response = auth_pb2.ListAuditRecordsResponse()
    for row in rows[:size]:
        values = dict(zip(COLUMNS, row, strict=True))
        stamp = Timestamp()
        stamp.FromNanoseconds(values["id"])
        response.records.add(
            id=values["id"],
            time=stamp,
            event=values["event"],
            method=values["method"],
            principal_kind=values["principal_kind"],
            subject=values["subject"],
            role=_ROLES.get(values["role"], auth_pb2.ROLE_UNSPECIFIED),
            owner=values["owner"] or "",
            peer=values["peer"] or "",
            instance_id=values["instance_id"] or "",
            code=values["code"],
            reason=values["reason"] or "",
            request_json=values["request"] or "",
            messages_in=values["messages_in"] or 0,
            messages_out=values["messages_out"] or 0,
        )
    if len(rows) > size:
        response.next_page_token = str(rows[size - 1][0])
    return response.SerializeToString()
