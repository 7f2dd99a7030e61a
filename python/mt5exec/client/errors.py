"""Failed calls as exceptions: one class per gRPC status code, each carrying the status and
the server's ``google.rpc.ErrorInfo`` (``reason``, ``field``, ``metadata``) decoded with
grpcio-status."""

from __future__ import annotations

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status


class Error(Exception):
    """A call that failed: its status ``code`` and ``message``, and from its ErrorInfo the
    stable ``reason`` (e.g. ``VOLUME_BELOW_MIN``), the ``field`` at fault (empty when none) and
    the rest of the ``metadata``; ``retry_after`` (seconds) when the server sent a RetryInfo."""

    def __init__(
        self,
        code: grpc.StatusCode,
        message: str,
        reason: str = "",
        metadata: dict[str, str] | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.code = code
        self.message = message
        self.reason = reason
        self.metadata = dict(metadata or {})
        self.field = self.metadata.get("field", "")
        self.retry_after = retry_after
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f" [{self.field}]" if self.field else ""
        reason = f" {self.reason}" if self.reason else ""
        return f"{self.code.name}{reason}{where}: {self.message}"


class Cancelled(Error): ...


class Unknown(Error): ...


class InvalidArgument(Error): ...


class DeadlineExceeded(Error): ...


class NotFound(Error): ...


class AlreadyExists(Error): ...


class PermissionDenied(Error): ...


class ResourceExhausted(Error): ...


class FailedPrecondition(Error): ...


class Aborted(Error): ...


class OutOfRange(Error): ...


class Unimplemented(Error): ...


class Internal(Error): ...


class Unavailable(Error): ...


class DataLoss(Error): ...


class Unauthenticated(Error): ...


BY_CODE: dict[grpc.StatusCode, type[Error]] = {
    grpc.StatusCode.CANCELLED: Cancelled,
    grpc.StatusCode.UNKNOWN: Unknown,
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExists,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.ABORTED: Aborted,
    grpc.StatusCode.OUT_OF_RANGE: OutOfRange,
    grpc.StatusCode.UNIMPLEMENTED: Unimplemented,
    grpc.StatusCode.INTERNAL: Internal,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DATA_LOSS: DataLoss,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
}


def from_rpc_error(error: grpc.RpcError) -> Error:
    """The exception for a failed call (sync or asyncio): its class is the status code's."""
    assert isinstance(error, grpc.Call | grpc.aio.AioRpcError), error
    code, message = error.code(), error.details() or ""
    reason, metadata, retry_after = "", {}, None
    status = rpc_status.from_call(error)
    for detail in status.details if status is not None else ():
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reason, metadata = info.reason, dict(info.metadata)
        elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = error_details_pb2.RetryInfo()
            detail.Unpack(retry)
            retry_after = retry.retry_delay.ToTimedelta().total_seconds()
    return BY_CODE.get(code, Error)(code, message, reason, metadata, retry_after)
