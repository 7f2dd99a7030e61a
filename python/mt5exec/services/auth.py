"""AuthService: API keys and the audit (admin), and WhoAmI (anyone authenticated)."""

from __future__ import annotations

import asyncio
import contextlib

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from mt5exec.auth import audit_records
from mt5exec.auth.guard import Guard
from mt5exec.auth.keys import ApiKey, KeyRefused
from mt5exec.auth.principal import Role, current
from mt5exec.errors import MT5ExecError, invalid, not_found
from mt5exec.reasons import Reason
from mt5exec.server.handlers import Context
from mt5exec.services import validation
from mt5exec.storage.history_process import HistoryProcess, HistoryUnavailable
from mt5exec.v1 import auth_pb2

PLANNED: dict[str, int | str] = {}

_TO_PB = {
    Role.ADMIN: auth_pb2.ROLE_ADMIN,
    Role.TRADER: auth_pb2.ROLE_TRADER,
    Role.VIEWER: auth_pb2.ROLE_VIEWER,
}
_FROM_PB = {number: role for role, number in _TO_PB.items()}


def _timestamp(seconds: float) -> Timestamp:
    t = Timestamp()
    t.FromNanoseconds(int(seconds * 1e9))
    return t


def _key(key: ApiKey) -> auth_pb2.ApiKey:
    message = auth_pb2.ApiKey(
        key_id=key.key_id,
        role=_TO_PB[key.role],
        owner=key.owner or "",
        label=key.label,
        created=_timestamp(key.created),
    )
    if key.revoked is not None:
        message.revoked.CopyFrom(_timestamp(key.revoked))
    return message


class AuthService:
    def __init__(self, guard: Guard, history: HistoryProcess | None = None) -> None:
        self._guard = guard
        self._keys = guard.keys
        self._history = history

    async def CreateApiKey(
        self, request: auth_pb2.CreateApiKeyRequest, context: Context
    ) -> auth_pb2.CreateApiKeyResponse:
        role = _FROM_PB.get(request.role)
        if role is None:
            raise invalid(
                "role", Reason.ROLE_INVALID, "role: ROLE_ADMIN, ROLE_TRADER or ROLE_VIEWER"
            )
        try:
            token, key = await asyncio.to_thread(
                self._keys.create, role, request.owner or None, request.label
            )
        except KeyRefused as e:
            raise invalid(e.field, Reason.VALUE_INVALID, e.message) from None
        return auth_pb2.CreateApiKeyResponse(key=_key(key), token=token)

    async def ListApiKeys(
        self, request: auth_pb2.ListApiKeysRequest, context: Context
    ) -> auth_pb2.ListApiKeysResponse:
        keys = await asyncio.to_thread(self._keys.list_keys)
        return auth_pb2.ListApiKeysResponse(keys=[_key(k) for k in keys])

    async def RevokeApiKey(
        self, request: auth_pb2.RevokeApiKeyRequest, context: Context
    ) -> auth_pb2.RevokeApiKeyResponse:
        key_id = validation.text("key_id", request.key_id, max_length=64)
        if not key_id:
            raise invalid("key_id", Reason.FIELD_REQUIRED, "key_id: required")
        try:
            key = await asyncio.to_thread(self._keys.revoke, key_id)
        except KeyRefused as e:
            raise not_found(e.field, Reason.KEY_NOT_FOUND, e.message) from None
        self._guard.end_streams([key_id])
        return auth_pb2.RevokeApiKeyResponse(key=_key(key))

    async def WhoAmI(
        self, request: auth_pb2.WhoAmIRequest, context: Context
    ) -> auth_pb2.WhoAmIResponse:
        principal = current()
        return auth_pb2.WhoAmIResponse(
            subject=principal.subject,
            role=_TO_PB[principal.role],
            owner=principal.owner or "",
            kind=principal.kind,
        )

    async def ListAuditRecords(
        self, request: auth_pb2.ListAuditRecordsRequest, context: Context
    ) -> bytes:
        params = audit_records.query_params(request)
        history = self._history
        if history is None:
            raise MT5ExecError(
                grpc.StatusCode.FAILED_PRECONDITION,
                Reason.HISTORY_DISABLED,
                "the audit is kept in the history database, which is off (history.enabled); "
                "its records are in the mt5exec.audit log",
            )
        try:
            # What was audited until now is read too: a flush first (while the history cannot
            # write, what it has written so far).
            with contextlib.suppress(HistoryUnavailable):
                await history.flush()
            return await history.query_audit(params)
        except HistoryUnavailable as e:
            raise MT5ExecError(
                grpc.StatusCode.UNAVAILABLE, Reason.HISTORY_UNAVAILABLE, f"the audit: {e}"
            ) from None
