"""The one mapping from mt5exec errors to gRPC statuses with google.rpc.ErrorInfo.

Every error a client sees carries a status code, a stable ``reason`` in an
``ErrorInfo`` (domain ``mt5exec``) and a message that names the field at fault.
"""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from mt5exec.reasons import Reason

DOMAIN = "mt5exec"

# At most this many characters of any client input are quoted back in a message: a message
# travels in the status trailers, which clients limit (8 KiB by default in many), and a
# status that does not fit arrives as RESOURCE_EXHAUSTED instead of the real one.
QUOTE_LIMIT = 64
# A message longer than this (whatever made it) is cut: the status must always fit.
MESSAGE_LIMIT = 1024


def quote(value: str | bytes) -> str:
    """``value`` quoted for an error message: its first QUOTE_LIMIT characters, and its
    length when it is longer."""
    if len(value) <= QUOTE_LIMIT:
        return repr(value)
    return f"{value[:QUOTE_LIMIT]!r}... ({len(value):,} characters)"


def number(value: float) -> str:
    """A number for an error message: the shortest exact form (1e+308, not 309 digits)."""
    return repr(value) if isinstance(value, float) else str(value)


class MT5ExecError(Exception):
    """An error with its gRPC status code, stable reason and optional field."""

    def __init__(
        self,
        code: grpc.StatusCode,
        reason: str,
        message: str,
        field: str = "",
        metadata: dict[str, str] | None = None,
        payload: bytes = b"",
        retry_after_ms: int = 0,
    ) -> None:
        if len(message) > MESSAGE_LIMIT:
            message = message[: MESSAGE_LIMIT - 3] + "..."
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.field = field
        self.metadata = dict(metadata or {})
        self.payload = payload
        self.retry_after_ms = retry_after_ms

    def to_status(self) -> grpc.Status:
        info = error_details_pb2.ErrorInfo(reason=self.reason, domain=DOMAIN)
        if self.field:
            info.metadata["field"] = self.field
        info.metadata.update(self.metadata)
        detail = any_pb2.Any()
        detail.Pack(info)
        details = [detail]
        if self.retry_after_ms:
            retry = error_details_pb2.RetryInfo()
            retry.retry_delay.FromMilliseconds(self.retry_after_ms)
            details.append(any_pb2.Any())
            details[-1].Pack(retry)
        status = status_pb2.Status(code=self.code.value[0], message=self.message, details=details)
        converted: grpc.Status = rpc_status.to_status(status)
        return converted

    def __repr__(self) -> str:
        return f"MT5ExecError({self.code.name}, {self.reason!r}, {self.message!r})"


_BY_NUMBER = {code.value[0]: code for code in grpc.StatusCode}


def status_code(number: int) -> grpc.StatusCode:
    """The grpc.StatusCode for a google.rpc.Code number."""
    return _BY_NUMBER.get(number, grpc.StatusCode.UNKNOWN)


def invalid(field: str, reason: str, message: str) -> MT5ExecError:
    """An INVALID_ARGUMENT about ``field``."""
    return MT5ExecError(grpc.StatusCode.INVALID_ARGUMENT, reason, message, field)


def not_found(field: str, reason: str, message: str) -> MT5ExecError:
    return MT5ExecError(grpc.StatusCode.NOT_FOUND, reason, message, field)


def instance_not_found(instance_id: str) -> MT5ExecError:
    """What an instance that does not exist gets, and one of another owner, which must not be
    told apart (the engine's ``EngineError::instance_not_found`` says the very same)."""
    return not_found(
        "instance_id", Reason.INSTANCE_NOT_FOUND, f"instance_id: no instance '{instance_id}'"
    )


def unimplemented(method: str, plan: int | str) -> MT5ExecError:
    """UNIMPLEMENTED for a method not built yet: ``plan`` is the issue that builds it, or
    what it waits for when no issue is filed yet."""
    if isinstance(plan, int):
        return MT5ExecError(
            grpc.StatusCode.UNIMPLEMENTED,
            Reason.NOT_IMPLEMENTED,
            f"{method} is not built yet (planned in issue #{plan})",
            metadata={"issue": str(plan)},
        )
    return MT5ExecError(
        grpc.StatusCode.UNIMPLEMENTED, Reason.NOT_IMPLEMENTED, f"{method} is not built yet ({plan})"
    )
