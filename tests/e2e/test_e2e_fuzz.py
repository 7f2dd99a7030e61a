"""Hostile bytes to every RPC of a real server: never UNKNOWN or INTERNAL, no instance made
by garbage, and the server keeps serving.

The methods come from the service descriptors of every ``mt5exec.v1`` module, health and
reflection, so a new RPC is fuzzed without an edit here. Each gets random bytes, valid
messages truncated or with a bit flipped, and messages whose fields take extreme values
(NaN, infinities, zero, negatives, 2^63-1, huge strings, unknown enum values). Requests go
out as raw bytes (identity serializers); of a stream only the first answer is read.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
import pkgutil
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from google.protobuf.message import DecodeError, Message
from google.protobuf.unknown_fields import UnknownFieldSet
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.profiles import examples
from tests.support import create_sim

import mt5exec.v1
from mt5exec.testing import ServerProcess
from mt5exec.v1 import instance_pb2

LIVE = "fz"
# A status no input may cause.
FORBIDDEN = {grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL}
# How long one call may take (a valid request may do real work, e.g. start a worker).
CALL_TIMEOUT = 30.0


def _services() -> list[Any]:
    modules = [
        importlib.import_module(f"mt5exec.v1.{m.name}")
        for m in pkgutil.iter_modules(mt5exec.v1.__path__)
        if m.name.endswith("_pb2")
    ]
    modules += [health_pb2, reflection_pb2]
    return [s for m in modules for s in m.DESCRIPTOR.services_by_name.values()]


METHODS: list[MethodDescriptor] = [m for s in _services() for m in s.methods]


# -- inputs ---------------------------------------------------------------------------------

_DOUBLES = [math.nan, math.inf, -math.inf, 0.0, -1.0, 1e308, -1e308, 5e-324, 0.01, 1.08]
_INTS = {
    FieldDescriptor.TYPE_INT32: [0, -1, 1, 2**31 - 1, -(2**31)],
    FieldDescriptor.TYPE_SINT32: [0, -1, 2**31 - 1, -(2**31)],
    FieldDescriptor.TYPE_SFIXED32: [0, -1, 2**31 - 1, -(2**31)],
    FieldDescriptor.TYPE_UINT32: [0, 1, 2**32 - 1],
    FieldDescriptor.TYPE_FIXED32: [0, 1, 2**32 - 1],
    FieldDescriptor.TYPE_INT64: [0, -1, 1, 2**63 - 1, -(2**63)],
    FieldDescriptor.TYPE_SINT64: [0, -1, 2**63 - 1, -(2**63)],
    FieldDescriptor.TYPE_SFIXED64: [0, -1, 2**63 - 1, -(2**63)],
    FieldDescriptor.TYPE_UINT64: [0, 1, 2**63 - 1, 2**64 - 1],
    FieldDescriptor.TYPE_FIXED64: [0, 1, 2**64 - 1],
}
# Timestamps and durations: their seconds take the 64-bit extremes above; these are the
# values just past what each can hold, and ones a client would send.
_SECONDS = [0, 1, -1, 10**15, 253_402_300_800, 315_576_000_001, 2**63 - 1, -(2**63)]
_STRINGS = ["", LIVE, "EURUSD", "x" * 100_000, "\u00b2", "a/b", "\u202e", " ", "0", "99999"]
_BYTES = [b"", b"\xff\xfe", b"x" * 70_000]


def _scalar(field: FieldDescriptor) -> st.SearchStrategy[Any]:
    if field.enum_type is not None:
        defined = [v.number for v in field.enum_type.values]
        return st.sampled_from([*defined, 99, -1, 2**31 - 1])
    if field.type in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return st.sampled_from(_DOUBLES) | st.floats()
    if field.type == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if field.type == FieldDescriptor.TYPE_STRING:
        return st.sampled_from(_STRINGS) | st.text(max_size=20)
    if field.type == FieldDescriptor.TYPE_BYTES:
        return st.sampled_from(_BYTES) | st.binary(max_size=20)
    if field.name == "seconds" and field.containing_type.full_name in (
        "google.protobuf.Timestamp",
        "google.protobuf.Duration",
    ):
        return st.sampled_from(_SECONDS)
    return st.sampled_from(_INTS[field.type])


@st.composite
def extremes(draw: st.DrawFn, descriptor: Descriptor, depth: int = 0) -> Message:
    """A message of the type whose fields (some of them) take extreme values."""
    message = message_factory.GetMessageClass(descriptor)()
    fields = list(descriptor.fields)
    chosen = draw(st.lists(st.sampled_from(fields), max_size=6, unique=True)) if fields else []
    for field in chosen:
        if field.message_type is not None:
            if depth >= 3 or field.message_type.GetOptions().map_entry:
                continue
            count = draw(st.integers(0, 2)) if field.is_repeated else 1
            for _ in range(count):
                value = draw(extremes(field.message_type, depth + 1))
                if field.is_repeated:
                    getattr(message, field.name).add().CopyFrom(value)
                else:
                    getattr(message, field.name).CopyFrom(value)
        elif field.is_repeated:
            getattr(message, field.name).extend(draw(st.lists(_scalar(field), max_size=3)))
        else:
            setattr(message, field.name, draw(_scalar(field)))
    return message


@st.composite
def payloads(draw: st.DrawFn, method: MethodDescriptor) -> bytes:
    kind = draw(st.sampled_from(["random", "truncated", "flipped", "extremes", "extremes"]))
    if kind == "random":
        return draw(st.binary(max_size=96))
    data = draw(extremes(method.input_type)).SerializeToString()
    if kind == "truncated" and len(data) > 1:
        # (Not to nothing: the empty request is among the random bytes.)
        return data[: draw(st.integers(1, len(data) - 1))]
    if kind == "flipped" and data:
        bit = draw(st.integers(0, len(data) * 8 - 1))
        flipped = bytearray(data)
        flipped[bit // 8] ^= 1 << (bit % 8)
        return bytes(flipped)
    return data


def well_formed(message: Message) -> bool:
    """Decodes without a field the type does not have, and every enum value is defined."""
    if len(UnknownFieldSet(message)):
        return False
    for field, value in message.ListFields():
        values = value if field.is_repeated else [value]
        if field.message_type is not None and not field.message_type.GetOptions().map_entry:
            if not all(well_formed(v) for v in values):
                return False
        elif field.enum_type is not None and any(
            v not in field.enum_type.values_by_number for v in values
        ):
            return False
    return True


# -- calls ----------------------------------------------------------------------------------


def _codes(message: Message) -> Iterator[int]:
    """Status codes a response carries in fields named `code` (OrderSession answers each
    request in-band)."""
    for field, value in message.ListFields():
        if field.name == "code" and field.type == FieldDescriptor.TYPE_INT32:
            yield value
        elif field.message_type is not None and not field.message_type.GetOptions().map_entry:
            for item in value if field.is_repeated else [value]:
                yield from _codes(item)


def call(channel: grpc.Channel, method: MethodDescriptor, payload: bytes) -> tuple[Any, bytes]:
    """The status of one call with ``payload`` (of a stream: its first answer's, or None when
    it is live and answered nothing yet) and its first response (b"" if none)."""
    path = f"/{method.containing_service.full_name}/{method.name}"
    try:
        if not method.client_streaming and not method.server_streaming:
            return grpc.StatusCode.OK, channel.unary_unary(path)(payload, timeout=CALL_TIMEOUT)
        if method.client_streaming:
            stream = channel.stream_stream(path)(iter([payload]), timeout=CALL_TIMEOUT)
            try:
                return grpc.StatusCode.OK, next(stream)
            except StopIteration:
                return grpc.StatusCode.OK, b""
            finally:
                stream.cancel()
        stream = channel.unary_stream(path)(payload, timeout=CALL_TIMEOUT)
        try:
            # Headers come at once from a live stream; a refused call ends without a message.
            stream.initial_metadata()
            if stream.done():
                return stream.code(), b""
            return None, b""
        finally:
            stream.cancel()
    except grpc.RpcError as e:
        return e.code(), b""  # type: ignore[attr-defined]


# -- the tests ------------------------------------------------------------------------------


@dataclasses.dataclass
class Target:
    server: ServerProcess
    # The instances before the fuzzing, and those well-formed requests created (and deleted).
    initial: set[str]
    created: set[str] = dataclasses.field(default_factory=set)


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    with ServerProcess(tmp_path_factory.mktemp("fuzz")) as server:
        create_sim(server, LIVE, ["EURUSD"], tick_rate=20)
        yield Target(server, _ids(server))


def _ids(server: ServerProcess) -> set[str]:
    listed = server.instances.ListInstances(instance_pb2.ListInstancesRequest(), timeout=10)
    return {i.instance_id for i in listed.instances}


@pytest.mark.parametrize(
    "method", METHODS, ids=[f"{m.containing_service.name}/{m.name}" for m in METHODS]
)
def test_no_input_is_unknown_or_internal(target: Target, method: MethodDescriptor) -> None:
    server = target.server
    assert server.channel is not None
    channel = server.channel
    request_type = message_factory.GetMessageClass(method.input_type)
    response_type = message_factory.GetMessageClass(method.output_type)

    @settings(
        max_examples=examples(40),
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(payload=payloads(method))
    def fuzz(payload: bytes) -> None:
        code, first = call(channel, method, payload)
        assert code not in FORBIDDEN, (code, payload[:200])
        if first:
            in_band = set(_codes(response_type.FromString(first)))
            assert not in_band & {c.value[0] for c in FORBIDDEN}, (in_band, payload[:200])
        if method.name == "CreateInstance" and code == grpc.StatusCode.OK:
            # Only a well-formed request may make an instance; this one goes again at once.
            try:
                assert well_formed(request_type.FromString(payload)), payload[:200]
            except DecodeError:
                pytest.fail(f"an undecodable request created an instance: {payload[:200]!r}")
            made = instance_pb2.CreateInstanceResponse.FromString(first).instance.instance_id
            target.created.add(made)
            server.instances.DeleteInstance(
                instance_pb2.DeleteInstanceRequest(instance_id=made), timeout=CALL_TIMEOUT
            )

    fuzz()


def test_garbage_made_no_instance_and_the_server_serves(target: Target) -> None:
    server = target.server
    ids = _ids(server)
    assert ids <= target.initial | target.created, ids - target.initial
    assert server.channel is not None
    check = server.channel.unary_unary(
        "/grpc.health.v1.Health/Check",
        request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
        response_deserializer=health_pb2.HealthCheckResponse.FromString,
    )
    for service in ["", "mt5exec.v1.InstanceService", "mt5exec.v1.OrderService"]:
        answer = check(health_pb2.HealthCheckRequest(service=service), timeout=10)
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
