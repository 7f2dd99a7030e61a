"""The standard gRPC services beside ours: health and server reflection.

The libraries' servicers with what they leave out: health's ``List`` (the library's base
class raises NotImplementedError), reflection of a method's symbol (``pkg.Service.Method``,
which ``grpcurl describe`` and ghz ask for; the descriptor pool only knows services), and
reflection under ``grpc.reflection.v1`` as well as ``v1alpha`` (the library ships only
v1alpha; the two protocols are the same messages under another package name).
"""

from __future__ import annotations

import contextlib
from typing import Any

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.descriptor import FileDescriptor, ServiceDescriptor
from grpc_health.v1 import health, health_pb2
from grpc_reflection.v1alpha import reflection_pb2 as v1alpha_pb2
from grpc_reflection.v1alpha._async import ReflectionServicer

from mt5exec.server.handlers import Context, add_standard_service

HEALTH = health_pb2.DESCRIPTOR.services_by_name["Health"]
REFLECTION_V1ALPHA = v1alpha_pb2.DESCRIPTOR.services_by_name["ServerReflection"]


def _reflection_v1() -> FileDescriptor:
    """``grpc/reflection/v1/reflection.proto``: v1alpha's file under the v1 package."""
    pool = descriptor_pool.Default()
    name = "grpc/reflection/v1/reflection.proto"
    with contextlib.suppress(KeyError):
        return pool.FindFileByName(name)
    proto = descriptor_pb2.FileDescriptorProto.FromString(v1alpha_pb2.DESCRIPTOR.serialized_pb)
    old, new = f".{proto.package}.", ".grpc.reflection.v1."
    proto.name, proto.package = name, "grpc.reflection.v1"
    proto.ClearField("options")
    for message in proto.message_type:
        for field in message.field:
            if field.type_name.startswith(old):
                field.type_name = new + field.type_name[len(old) :]
    for method in proto.service[0].method:
        method.input_type = new + method.input_type[len(old) :]
        method.output_type = new + method.output_type[len(old) :]
    pool.Add(proto)
    return pool.FindFileByName(name)


REFLECTION_V1 = _reflection_v1().services_by_name["ServerReflection"]


class Health(health.aio.HealthServicer):  # type: ignore[misc]
    """The library's health servicer, with List."""

    async def List(
        self, request: health_pb2.HealthListRequest, context: Context
    ) -> health_pb2.HealthListResponse:
        return health_pb2.HealthListResponse(
            statuses={
                name: health_pb2.HealthCheckResponse(status=status)
                for name, status in self._server_status.items()
            }
        )


class Reflection(ReflectionServicer):  # type: ignore[misc]
    """The library's reflection servicer, also finding the file of a method's symbol."""

    def _file_containing_symbol(self, request: Any, fully_qualified_name: str) -> Any:
        service, _, method = fully_qualified_name.rpartition(".")
        with contextlib.suppress(KeyError):
            if method in self._pool.FindServiceByName(service).methods_by_name:
                fully_qualified_name = service
        return super()._file_containing_symbol(request, fully_qualified_name)


def add_standard_services(
    server: grpc.aio.Server, services: list[ServiceDescriptor], health_servicer: Health
) -> None:
    """Health, and reflection (both versions) of ``services``, health and reflection."""
    add_standard_service(server, HEALTH, health_servicer)
    reflected = [*services, HEALTH, REFLECTION_V1, REFLECTION_V1ALPHA]
    reflection = Reflection([s.full_name for s in reflected])
    # The servicer builds v1alpha messages: v1 requests are decoded as the same bytes.
    add_standard_service(server, REFLECTION_V1ALPHA, reflection, REFLECTION_V1.full_name)
    add_standard_service(server, REFLECTION_V1ALPHA, reflection)
