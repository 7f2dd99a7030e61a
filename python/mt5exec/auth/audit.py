"""The audit of every mutating call: which RPCs are audited (``KINDS``, a row per RPC of
every mt5exec.v1 service: a new RPC without one stops the server at start, and the audit
test fails), and the hook the handlers call with each audited call's outcome.

A record is the call's time, principal (kind, subject, role, owner), peer, RPC, outcome
(status code, ErrorInfo reason) and request, its secrets redacted (every field named like
password, secret or token). The event loop only packs it (``marshal``, a few µs) and queues
it for the history process, which writes it to the DuckDB ``audit`` table and as a JSON line
on the ``mt5exec.audit`` logger (``audit_records``); batches leave once per loop iteration,
so an order costs no write of its own. Without a history process (``[history] enabled =
false``, or it is gone) the records are logged from a thread of this process instead.

What is audited:

- ``CALL``: a unary call that changes something. One record per call that authenticated and
  was not rate limited, whatever its outcome: PERMISSION_DENIED and NOT_FOUND (another
  owner's instance) are recorded with their code, like OK. Calls that fail to authenticate
  have no principal: they are counted (``mt5exec_auth_failures_total``), not recorded.
- ``SESSION``: OrderSession, which carries up to ~20,000 orders/s: a record when it opens
  (``session_open``) and one when it ends (``session_end``: its status and how many messages
  went in and out; a message may be a batch of up to 1,000 orders). Each order of a session is
  in the history's ``orders`` and ``executions`` tables already, by instance and
  client_order_id.
- ``READ``: reads, streams of reads, dry runs (CheckOrder), the caller's own identity, the
  audit itself: not recorded.
"""

from __future__ import annotations

import enum
import logging
import marshal
import queue
import re
import threading
import time
from collections.abc import Callable
from typing import Any

import grpc
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from google.protobuf.message import Message

from mt5exec.auth.principal import Principal

# What happens to the audit (the records themselves are on mt5exec.audit, nothing else is).
log = logging.getLogger("mt5exec.auth")


class Kind(enum.Enum):
    READ = "read"
    CALL = "call"
    SESSION = "session"


_INSTANCE = "mt5exec.v1.InstanceService/"
_ORDER = "mt5exec.v1.OrderService/"
_STREAM = "mt5exec.v1.StreamService/"
_AUTH = "mt5exec.v1.AuthService/"
_MARKET = "mt5exec.v1.MarketDataService/"
_R, _C = Kind.READ, Kind.CALL

KINDS: dict[str, Kind] = {
    _INSTANCE + "CreateInstance": _C,
    _INSTANCE + "GetInstance": _R,
    _INSTANCE + "ListInstances": _R,
    _INSTANCE + "StopInstance": _C,
    _INSTANCE + "StartInstance": _C,
    _INSTANCE + "RestartInstance": _C,
    _INSTANCE + "DeleteInstance": _C,
    _INSTANCE + "UpdateCredentials": _C,
    _INSTANCE + "UpdateInstanceConfig": _C,
    _INSTANCE + "SetTradingState": _C,
    _INSTANCE + "EngageKillSwitch": _C,
    _INSTANCE + "ReleaseKillSwitch": _C,
    _INSTANCE + "DeployExpert": _C,
    _INSTANCE + "GetInstanceStats": _R,
    _INSTANCE + "GetSystemStats": _R,
    _ORDER + "PlaceOrder": _C,
    _ORDER + "ModifyOrder": _C,
    _ORDER + "CancelOrder": _C,
    _ORDER + "ModifyPosition": _C,
    _ORDER + "ClosePosition": _C,
    _ORDER + "CloseAll": _C,
    _ORDER + "GetOrder": _R,
    _ORDER + "ListOrders": _R,
    _ORDER + "ListDeals": _R,
    _ORDER + "ListTicks": _R,
    _ORDER + "ExportHistory": _C,  # writes files on the server's host
    _ORDER + "ListPositions": _R,
    _ORDER + "GetAccount": _R,
    _ORDER + "CheckOrder": _R,  # a dry run: nothing is sent
    _ORDER + "OrderSession": Kind.SESSION,
    _ORDER + "CreateCopyRelation": _C,
    _ORDER + "ListCopyRelations": _R,
    _ORDER + "DeleteCopyRelation": _C,
    _ORDER + "GetCopyRelation": _R,
    _ORDER + "PublishSignal": _C,
    _STREAM + "StreamTicks": _R,
    _STREAM + "StreamExecutions": _R,
    _STREAM + "StreamAccount": _R,
    _STREAM + "StreamInstanceEvents": _R,
    _AUTH + "CreateApiKey": _C,  # its response's token is never recorded
    _AUTH + "ListApiKeys": _R,
    _AUTH + "RevokeApiKey": _C,
    _AUTH + "WhoAmI": _R,
    _AUTH + "ListAuditRecords": _R,
    _MARKET + "ListSymbols": _R,
    _MARKET + "GetSymbol": _R,
    _MARKET + "CalcMargin": _R,
    _MARKET + "CalcProfit": _R,
    _MARKET + "GetTerminalInfo": _R,
    _MARKET + "GetRates": _R,
    _MARKET + "GetTicks": _R,
    _MARKET + "StreamBook": _R,
}


def kind(full_name: str) -> Kind:
    """How ``package.Service/Method`` is audited; KeyError when it is not classified."""
    try:
        return KINDS[full_name]
    except KeyError:
        raise KeyError(f"{full_name} is not classified in mt5exec.auth.audit.KINDS") from None


# -- secrets ------------------------------------------------------------------------------

SECRET = re.compile(r"password|secret|token", re.IGNORECASE)
REDACTED = "[REDACTED]"


def has_secrets(descriptor: Descriptor, seen: frozenset[str] = frozenset()) -> bool:
    """Whether a message type has a field named like a secret, at any depth."""
    if descriptor.full_name in seen:
        return False
    seen = seen | {descriptor.full_name}
    for field in descriptor.fields:
        if SECRET.search(field.name):
            return True
        if field.message_type is not None and has_secrets(field.message_type, seen):
            return True
    return False


def redact(message: Message) -> None:
    """Replaces, in place and at any depth, the value of every field named like a secret:
    strings and bytes by ``[REDACTED]``, anything else is cleared."""
    for field, value in message.ListFields():
        if SECRET.search(field.name):
            if field.type == FieldDescriptor.TYPE_STRING and not field.is_repeated:
                setattr(message, field.name, REDACTED)
            elif field.type == FieldDescriptor.TYPE_BYTES and not field.is_repeated:
                setattr(message, field.name, REDACTED.encode())
            else:
                message.ClearField(field.name)
        elif (entry := field.message_type) is not None:
            if entry.GetOptions().map_entry:
                if entry.fields_by_name["value"].message_type is not None:
                    for item in value.values():
                        redact(item)
            elif field.is_repeated:
                for item in value:
                    redact(item)
            else:
                redact(value)


def _request_bytes(descriptor: Descriptor) -> Callable[[Any], bytes | None]:
    """What is recorded of a request of this type: its bytes as received (a raw request), or
    the decoded message's, secrets redacted on a copy (the servicer may keep parts of it);
    None for a request that did not decode."""
    secrets = has_secrets(descriptor)

    def encode(request: Any) -> bytes | None:
        if type(request) is bytes:
            return request
        if not isinstance(request, Message):
            return None
        if secrets:
            copy = type(request)()
            copy.CopyFrom(request)
            redact(copy)
            request = copy
        data: bytes = request.SerializeToString()
        return data

    return encode


# -- records -------------------------------------------------------------------------------

# The version of a record's layout (a tuple, packed with marshal: the history process runs
# this very interpreter): version, id (ns since the epoch, unique per server), event, method,
# principal kind, subject, role, owner (None: every owner), peer, status code name, reason,
# request (bytes or None: see audit_records for raw requests), messages in, messages out.
VERSION = 1

Sink = Callable[[bytes], bool]


class Auditor:
    """The records of one server: sent to ``sink`` (the history process's ``record_audit``),
    or, when there is none or it refuses one (it is gone, or far behind), logged from a
    thread of this process."""

    def __init__(self, sink: Sink | None) -> None:
        self._sink = sink
        self._last_id = 0
        self._fallback: queue.SimpleQueue[bytes | None] | None = None
        self._thread: threading.Thread | None = None

    def method(self, method: MethodDescriptor) -> MethodAudit | None:
        """The audit of ``method`` (None: not audited); TypeError when it is not classified."""
        full_name = f"{method.containing_service.full_name}/{method.name}"
        try:
            how = kind(full_name)
        except KeyError as e:
            raise TypeError(str(e.args[0])) from None
        if how is Kind.READ:
            return None
        return MethodAudit(self, full_name, _request_bytes(method.input_type))

    def next_id(self) -> int:
        """The time in ns since the epoch, made unique and increasing."""
        now = time.time_ns()
        if now <= self._last_id:
            now = self._last_id + 1
        self._last_id = now
        return now

    def send(self, payload: bytes) -> None:
        sink = self._sink
        if sink is None or not sink(payload):
            self._log(payload)

    def log_records(self, payloads: list[bytes]) -> None:
        """Logs records the sink took but could not send (its process went meanwhile)."""
        for payload in payloads:
            self._log(payload)

    def _log(self, payload: bytes) -> None:
        if self._fallback is None:
            self._fallback = queue.SimpleQueue()
            self._thread = threading.Thread(
                target=_log_records, args=(self._fallback,), name="mt5exec-audit", daemon=True
            )
            self._thread.start()
            log.warning(
                "audit records are written to the log only%s",
                "" if self._sink is None else " while the history process cannot take them",
            )
        self._fallback.put(payload)

    def close(self) -> None:
        """Logs what waits to be logged here."""
        if self._fallback is not None and self._thread is not None:
            self._fallback.put(None)
            self._thread.join(timeout=10)


def _log_records(records: queue.SimpleQueue[bytes | None]) -> None:
    from mt5exec.auth import audit_records

    while (payload := records.get()) is not None:
        try:
            audit_records.log_line(audit_records.describe(payload)[1])
        except Exception:  # a record that cannot be described must not end the thread
            log.exception("audit record not logged")


class MethodAudit:
    """The audit of one method: ``record`` with each outcome."""

    __slots__ = ("_auditor", "_encode", "method")

    def __init__(
        self, auditor: Auditor, method: str, encode: Callable[[Any], bytes | None]
    ) -> None:
        self._auditor = auditor
        self._encode = encode
        self.method = method

    def record(
        self,
        principal: Principal,
        context: Any,
        request: Any,
        code: grpc.StatusCode,
        reason: str = "",
        event: str = "call",
        messages: tuple[int, int] = (0, 0),
    ) -> None:
        auditor = self._auditor
        auditor.send(
            marshal.dumps(
                (
                    VERSION,
                    auditor.next_id(),
                    event,
                    self.method,
                    principal.kind,
                    principal.subject,
                    # The enums' own fields: their ``value`` and ``name`` are properties,
                    # several times the time of an attribute (this runs for every call).
                    principal.role._value_,
                    principal.owner,
                    context.peer(),
                    code._name_,
                    reason,
                    self._encode(request),
                    messages[0],
                    messages[1],
                )
            )
        )
