"""The check every call of our services passes before its servicer runs.

``mt5exec.server.handlers`` builds each method's handler with the method's ``Gate``:
``enter`` authenticates the call (its bearer token, else a verified client certificate),
checks the method's role (``rules``), makes the principal ``current()`` for the rest of the
call and, for a stream of an API key, lists it so that revoking the key ends it; ``check``
then scopes the decoded request to the principal's instances. (The handlers call ``enter``'s
two steps apart, ``authenticate`` and ``authorize``, with the limits of
``mt5exec.auth.limits`` between them.)

Statuses: no token, a malformed, unknown, expired or revoked one: UNAUTHENTICATED (reason
TOKEN_MISSING, TOKEN_INVALID, TOKEN_EXPIRED, TOKEN_REVOKED); a method the role may not call:
PERMISSION_DENIED (ROLE_FORBIDDEN); another owner's instance: NOT_FOUND, the very status an
instance that does not exist gets (INSTANCE_NOT_FOUND, same message).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import time
from collections.abc import Callable
from typing import Any

import grpc
from google.protobuf.descriptor import MethodDescriptor

from mt5exec.auth import rules
from mt5exec.auth.jwt import JwtVerifier
from mt5exec.auth.keys import PREFIX, KeyStore
from mt5exec.auth.principal import LOCAL_ADMIN, Principal, Role, TokenRefused, set_current
from mt5exec.errors import MT5ExecError, instance_not_found
from mt5exec.reasons import Reason
from mt5exec.services import validation

log = logging.getLogger("mt5exec.auth")

Context = Any  # grpc.aio.ServicerContext
CertificatePrincipal = Callable[[Context], Principal | None]


def unauthenticated(reason: str, message: str) -> MT5ExecError:
    return MT5ExecError(
        grpc.StatusCode.UNAUTHENTICATED, reason, f"authorization: {message}", "authorization"
    )


def forbidden(method: str, principal: Principal, needs: str) -> MT5ExecError:
    return MT5ExecError(
        grpc.StatusCode.PERMISSION_DENIED,
        Reason.ROLE_FORBIDDEN,
        f"{method}: a {principal.role.value} may not call it ({needs})",
    )


_MISSING = unauthenticated(
    Reason.TOKEN_MISSING, "a bearer token is required (metadata 'authorization: Bearer <token>')"
)
_NOT_BEARER = unauthenticated(Reason.TOKEN_INVALID, "expected 'Bearer <token>'")


def _bearer(context: Context) -> str | None:
    """The call's bearer token, None when it has no authorization metadata."""
    for key, value in context.invocation_metadata() or ():
        if key == "authorization":
            scheme, _, token = str(value).partition(" ")
            token = token.strip()
            if scheme.lower() != "bearer" or not token:
                raise _NOT_BEARER
            return token
    return None


def _certificate_hook() -> CertificatePrincipal | None:
    """``mt5exec.auth.mtls.principal_from_context`` when the module is there."""
    try:
        module = importlib.import_module("mt5exec.auth.mtls")
    except ModuleNotFoundError as e:
        if e.name != "mt5exec.auth.mtls":
            raise
        return None
    hook: CertificatePrincipal = module.principal_from_context
    return hook


def _getter(path: str) -> Callable[[Any], Any]:
    names = path.split(".")

    def get(message: Any) -> Any:
        for name in names:
            message = getattr(message, name)
        return message

    return get


class Gate:
    """One method's admission (see the module's docstring)."""

    def __init__(self, guard: Guard, full_name: str, rule: rules.Rule, stream: bool) -> None:
        self._guard = guard
        self._full_name = full_name
        self._rule = rule
        self._stream = stream
        self._needs = f"it needs {rule.role.value}"
        # The roles that may call it (``Principal.may``), found by identity per call.
        self._roles = tuple(role for role in Role if role.covers(rule.role))
        self.check: Callable[[Principal, Any], None] = self._scope(rule)
        # The call's principal (UNAUTHENTICATED without one): the guard's, not wrapped
        # (it runs for every call).
        self.authenticate: Callable[[Context], Principal] = guard.authenticate

    def enter(self, context: Context) -> Principal:
        principal = self.authenticate(context)
        self.authorize(principal, context)
        return principal

    def authorize(self, principal: Principal, context: Context) -> None:
        """Checks the principal's role (PERMISSION_DENIED) and makes it ``current()``; a
        stream is listed so that the end of its credential ends it."""
        if principal.role not in self._roles:
            raise forbidden(self._full_name, principal, self._needs)
        set_current(principal)
        if self._stream:
            if principal.kind == "api_key":
                self._guard.track(principal.subject, context)
            if principal.expires is not None:
                self._guard.end_at(principal.expires, context)

    def _scope(self, rule: rules.Rule) -> Callable[[Principal, Any], None]:
        visible = self._guard.check_visible
        if rule.scope is rules.Scope.INSTANCE:
            get = _getter(rule.field)

            def instance(principal: Principal, request: Any) -> None:
                if principal.owner is not None:
                    visible(principal, get(request))

            return instance
        if rule.scope is rules.Scope.INSTANCES:
            get = _getter(rule.field)

            def instances(principal: Principal, request: Any) -> None:
                if principal.owner is not None:
                    for instance_id in get(request):
                        visible(principal, instance_id)

            return instances
        if rule.scope is rules.Scope.KILL_SWITCH:
            return self._kill_switch
        return _nothing

    def _kill_switch(self, principal: Principal, request: Any) -> None:
        if principal.owner is None:
            return
        which = request.scope.WhichOneof("scope")
        if which == "instance_id":
            self._guard.check_visible(principal, request.scope.instance_id)
        elif which is not None:
            raise forbidden(self._full_name, principal, "the owner and global scopes need an admin")


def _nothing(principal: Principal, request: Any) -> None:
    return None


class Guard:
    """Authentication and authorization of every call (``enabled`` false: every call is a
    local admin)."""

    def __init__(
        self,
        *,
        enabled: bool,
        keys: KeyStore,
        jwts: JwtVerifier,
        owner_of: Callable[[str], str | None],
    ) -> None:
        self.enabled = enabled
        self.keys = keys
        self.jwts = jwts
        self._owner_of = owner_of
        self._certificate = _certificate_hook()
        # Open streams of each API key: the handler's task and its context.
        self._streams: dict[str, dict[asyncio.Task[Any], Context]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ending: set[asyncio.Task[None]] = set()
        keys.on_revoked = self.end_streams

    def gate(self, method: MethodDescriptor) -> Gate:
        """The admission of ``method``; TypeError when it has no rule."""
        full_name = f"{method.containing_service.full_name}/{method.name}"
        try:
            rule = rules.rule(full_name)
        except KeyError as e:
            raise TypeError(str(e.args[0])) from None
        if method.client_streaming and rule.scope not in (rules.Scope.NONE, rules.Scope.ENGINE):
            raise TypeError(f"{full_name}: a client stream's requests cannot be scoped here")
        return Gate(self, full_name, rule, method.server_streaming)

    def authenticate(self, context: Context) -> Principal:
        if not self.enabled:
            return LOCAL_ADMIN
        token = _bearer(context)
        if token is None:
            if self._certificate is not None:
                principal = self._certificate(context)
                if principal is not None:
                    return principal
            raise _MISSING
        try:
            if token.startswith(PREFIX + "_"):
                return self.keys.verify(token)
            if token.count(".") == 2:
                return self.jwts.verify(token)
        except TokenRefused as e:
            log.debug("refused a token from %s: %s", context.peer(), e.reason)
            raise unauthenticated(e.reason, e.message) from None
        raise unauthenticated(Reason.TOKEN_INVALID, "neither an API key nor a JWT")

    def check_visible(self, principal: Principal, instance_id: str) -> None:
        """NOT_FOUND for an instance the principal may not see, as for one that does not
        exist. An empty or malformed id is left to the servicer (it refuses it alike)."""
        if not instance_id or principal.owner is None:
            return
        if self._owner_of(instance_id) == principal.owner:
            return
        try:
            validation.instance_id(instance_id)
        except MT5ExecError:
            return
        raise instance_not_found(instance_id)

    # -- streams of API keys, for revocation --------------------------------------------

    def track(self, key_id: str, context: Context) -> None:
        task = asyncio.current_task()
        if task is None:
            return
        self._loop = task.get_loop()
        streams = self._streams.setdefault(key_id, {})
        streams[task] = context

        def done(task: asyncio.Task[Any]) -> None:
            open_ = self._streams.get(key_id)
            if open_ is not None:
                open_.pop(task, None)
                if not open_:
                    del self._streams[key_id]

        task.add_done_callback(done)

    def end_at(self, expires: float, context: Context) -> None:
        """Ends the calling stream with UNAUTHENTICATED (TOKEN_EXPIRED) when its credential
        expires (a JWT's ``exp``): a stream is no way to outlive a token."""
        task = asyncio.current_task()
        if task is None:
            return
        loop = task.get_loop()
        error = unauthenticated(Reason.TOKEN_EXPIRED, "the JWT this stream was opened with expired")

        def expire() -> None:
            if not task.done():
                ending = loop.create_task(_end(task, context, error))
                self._ending.add(ending)
                ending.add_done_callback(self._ending.discard)

        timer = loop.call_later(max(0.0, expires - time.time()), expire)
        task.add_done_callback(lambda _: timer.cancel())

    def open_streams(self, key_id: str) -> int:
        return len(self._streams.get(key_id, ()))

    def end_streams(self, key_ids: list[str]) -> None:
        """Ends the open streams of revoked keys with UNAUTHENTICATED (TOKEN_REVOKED), from
        any thread (a revocation the key store read from its file)."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._end_streams, list(key_ids))

    def _end_streams(self, key_ids: list[str]) -> None:
        for key_id in key_ids:
            error = unauthenticated(Reason.TOKEN_REVOKED, f"API key {key_id} is revoked")
            for task, context in list(self._streams.pop(key_id, {}).items()):
                ending = task.get_loop().create_task(_end(task, context, error))
                self._ending.add(ending)
                ending.add_done_callback(self._ending.discard)


async def _end(task: asyncio.Task[Any], context: Context, error: MT5ExecError) -> None:
    """Ends a stream from outside its handler: its status first, then its task (which may be
    waiting for a message that never comes)."""
    with contextlib.suppress(Exception):
        await context.abort_with_status(error.to_status())
    task.cancel()
