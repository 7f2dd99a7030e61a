"""Method handlers built from the service descriptors.

Instead of the generated ``add_*Servicer_to_server`` helpers, handlers are made
here so that (1) a servicer may return already-encoded bytes, which are written
as they are (the engine encodes ticks, positions and order results once, in
Rust), (2) every ``MT5ExecError`` becomes a status with ``ErrorInfo`` in one
place, (3) a method that is not built yet answers UNIMPLEMENTED naming the
issue that builds it, and (4) a request that is not a valid message of its type is
INVALID_ARGUMENT (reason REQUEST_INVALID) for every method, also of the standard services
(health, reflection): the deserializer never raises, it hands the handler the error, and (5)
every method of our services passes its ``Gate`` (``mt5exec.auth.guard``: authentication,
role, instance scope) before anything else, so that no RPC or stream can be left open, with
the ``Limits`` (``mt5exec.auth.limits``: calls per principal, failed authentications per peer)
between authentication and the role, and (6) every mutating call's outcome is recorded by its
``Audit`` (``mt5exec.auth.audit``), off the event loop's hot path: the record is packed and
queued, nothing is written here.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol, TypeAlias

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from google.protobuf.message import DecodeError, Message

from mt5exec import metrics
from mt5exec.engine import Subscription
from mt5exec.errors import MT5ExecError, unimplemented
from mt5exec.reasons import Reason
from mt5exec.rpc_metrics import MethodMetrics, RpcMetrics
from mt5exec.server import memory
from mt5exec.services import validation

log = logging.getLogger("mt5exec.rpc")

Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"
Handler = Callable[[Any, Context], Any]


def serialize(message: Message | bytes) -> bytes:
    """Bytes pass through untouched; messages are serialized."""
    if type(message) is bytes:
        return message
    assert isinstance(message, Message)
    return message.SerializeToString()


def _internal(method: str, error: Exception) -> MT5ExecError:
    log.exception("%s failed", method, exc_info=error)
    return MT5ExecError(
        grpc.StatusCode.INTERNAL,
        Reason.INTERNAL,
        f"{method}: internal error ({type(error).__name__})",
    )


class _Undecodable:
    """What a request that is not a valid message decodes to: its handler answers with the
    error (a deserializer that raised would make grpc answer UNKNOWN)."""

    __slots__ = ("error",)

    def __init__(self, error: MT5ExecError) -> None:
        self.error = error


def _decoder(method: MethodDescriptor) -> Callable[[bytes], Any]:
    request_type = message_factory.GetMessageClass(method.input_type)
    type_name = method.input_type.full_name

    def decode(data: bytes) -> Any:
        try:
            request = request_type.FromString(data)
            validation.check_message(request)
        except MT5ExecError as e:
            return _Undecodable(e)
        except Exception as e:  # DecodeError, or whatever else bytes make the parser raise
            if not isinstance(e, DecodeError):
                log.warning("%s: undecodable request", type_name, exc_info=e)
            return _Undecodable(
                validation.request_invalid("request", f"request: not a {type_name} ({e})")
            )
        return request

    return decode


def _decoded(request: Any) -> Any:
    """The request, or its decoding error raised."""
    if type(request) is _Undecodable:
        raise request.error
    return request


class Gate(Protocol):
    """A method's admission (``mt5exec.auth.guard.Gate``)."""

    def authenticate(self, context: Context) -> Any:
        """The call's principal (UNAUTHENTICATED without one)."""

    def authorize(self, principal: Any, context: Context) -> None:
        """Checks the principal's role and makes it the current one."""

    def check(self, principal: Any, request: Any) -> None:
        """Scopes the decoded request to the principal's instances."""


class Limits(Protocol):
    """The abuse limits (``mt5exec.auth.limits.Limits``)."""

    def refused(self, context: Context, error: MT5ExecError) -> MT5ExecError:
        """What a call that failed to authenticate is answered (counted, maybe throttled)."""

    def admit(self, principal: Any) -> None:
        """Counts an authenticated call; RATE_LIMITED when its principal is over its rate."""


class Audit(Protocol):
    """The audit of a mutating method (``mt5exec.auth.audit.MethodAudit``)."""

    def record(
        self,
        principal: Any,
        context: Any,
        request: Any,
        code: grpc.StatusCode,
        reason: str = "",
        event: str = "call",
        messages: tuple[int, int] = (0, 0),
    ) -> None:
        """Records an outcome (packed and queued: no I/O here)."""


Admit = Callable[[Any, Context], Any]


def _admit_decoded(request: Any, context: Context) -> Any:
    return _decoded(request)


class _Steps:
    """A gated method's admission in two parts: ``caller``, who calls (authentication, then
    the rate limits: a call refused there is not audited), and ``request``, what it may do
    (the role, then the decoding error, then the scope: a call that is not allowed learns
    nothing else, not even that its request is bad)."""

    __slots__ = ("_authorize", "_check", "caller")

    def __init__(self, gate: Gate, limits: Limits | None) -> None:
        self._authorize, self._check = gate.authorize, gate.check
        self.caller: Callable[[Context], Any] = gate.authenticate
        if limits is not None:
            authenticate, refused, admitted = gate.authenticate, limits.refused, limits.admit

            def caller(context: Context) -> Any:
                try:
                    principal = authenticate(context)
                except MT5ExecError as e:
                    if e.code is grpc.StatusCode.UNAUTHENTICATED:
                        raise refused(context, e) from None
                    raise
                admitted(principal)
                return principal

            self.caller = caller

    def request(self, principal: Any, request: Any, context: Context) -> Any:
        self._authorize(principal, context)
        request = _decoded(request)
        self._check(principal, request)
        return request


def _admission(steps: _Steps | None) -> Admit:
    """The request to serve, from the request as the deserializer left it (``_Steps``)."""
    if steps is None:
        return _admit_decoded
    caller, admitted = steps.caller, steps.request

    def admit(request: Any, context: Context) -> Any:
        return admitted(caller(context), request, context)

    return admit


async def _each_decoded(requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
    """A client stream's requests; the first that did not decode raises its error (which
    ends the call with it)."""
    async for request in requests:
        yield _decoded(request)


class _Untimed:
    """The instruments of a server without RPC metrics: nothing is counted."""

    __slots__ = ()

    def observe(self, seconds: float) -> None:
        return None

    def failed(self, code: object) -> None:
        return None


_UNTIMED = _Untimed()
Instruments: TypeAlias = "MethodMetrics | _Untimed"


def _unary(
    name: str,
    fn: Callable[[Any, Context], Awaitable[Any]],
    admit: Admit = _admit_decoded,
    instruments: Instruments = _UNTIMED,
) -> Handler:
    """A unary method's handler; its handling time (and status, when not OK) is counted in
    ``instruments`` here rather than by a handler around it (one coroutine less a call)."""
    failed, clock = instruments.failed, time.perf_counter

    async def handler(request: Any, context: Context) -> Any:
        start = clock()
        try:
            try:
                return await fn(admit(request, context), context)
            except MT5ExecError as e:
                await context.abort_with_status(e.to_status())
            except (asyncio.CancelledError, grpc.aio.AbortError):
                raise
            except Exception as e:
                await context.abort_with_status(_internal(name, e).to_status())
        except BaseException:
            failed(context.code())
            raise
        finally:
            instruments.observe(clock() - start)

    return handler


def _audited_unary(
    name: str,
    fn: Callable[[Any, Context], Awaitable[Any]],
    steps: _Steps,
    audit: Audit,
    instruments: Instruments = _UNTIMED,
) -> Handler:
    """``_unary`` of a mutating method: the outcome of every call that got past its caller's
    authentication and rate limit is recorded, refusals included."""
    caller, admitted, record = steps.caller, steps.request, audit.record
    ok, cancelled = grpc.StatusCode.OK, grpc.StatusCode.CANCELLED
    failed, clock = instruments.failed, time.perf_counter

    async def handler(request: Any, context: Context) -> Any:
        start = clock()
        try:
            try:
                principal = caller(context)
            except MT5ExecError as e:
                await context.abort_with_status(e.to_status())
            try:
                response = await fn(admitted(principal, request, context), context)
            except MT5ExecError as e:
                record(principal, context, request, e.code, e.reason)
                await context.abort_with_status(e.to_status())
            except (asyncio.CancelledError, grpc.aio.AbortError):
                record(principal, context, request, cancelled)
                raise
            except Exception as e:
                error = _internal(name, e)
                record(principal, context, request, error.code, error.reason)
                await context.abort_with_status(error.to_status())
            record(principal, context, request, ok)
            return response
        except BaseException:
            failed(context.code())
            raise
        finally:
            instruments.observe(clock() - start)

    return handler


def _timed(behaviour: Handler, instruments: MethodMetrics) -> Handler:
    """A unary handler whose handling time (and status, when not OK) is counted (a method
    not built yet: ``_unary`` and ``_audited_unary`` count their own)."""
    failed, clock = instruments.failed, time.perf_counter

    async def handler(request: Any, context: Context) -> Any:
        start = clock()
        try:
            return await behaviour(request, context)
        except BaseException:
            failed(context.code())
            raise
        finally:
            instruments.observe(clock() - start)

    return handler


class _Counted:
    """A client stream's requests, counted (an audited session's messages in)."""

    __slots__ = ("_requests", "count")

    def __init__(self, requests: AsyncIterator[Any]) -> None:
        self._requests = requests
        self.count = 0

    def __aiter__(self) -> _Counted:
        return self

    async def __anext__(self) -> Any:
        item = await self._requests.__anext__()
        self.count += 1
        return item


class _SlowWatch:
    """Notices a stream whose client stopped reading: a message send blocked (HTTP/2 flow
    control) for longer than the timeout. Then its source is closed at once (a subscription
    leaves the engine and its queue is freed: nothing more is kept for that client) and the
    call is ended with RESOURCE_EXHAUSTED (SLOW_CONSUMER). The status goes out behind the
    message the transport holds (HTTP/2 sends a stream's trailers after its data): the client
    gets it once it reads again; the server keeps that one message until then, or until the
    client goes. One timer per stream, not one per message."""

    def __init__(self, timeout: float, context: Context) -> None:
        self.timeout = timeout
        self.since: float | None = None
        self.fired = False
        # What the stream writes from: closed when the watch fires.
        self.source: AsyncIterator[Any] | Subscription | None = None
        self._context = context
        self._loop = asyncio.get_running_loop()
        self._timer = self._loop.call_later(timeout, self._check)
        self._abort: asyncio.Task[None] | None = None

    def _check(self) -> None:
        now = self._loop.time()
        if self.since is not None and now - self.since >= self.timeout:
            self.fired = True
            source = self.source
            if isinstance(source, Subscription):
                if not source.cut_off:  # else the engine counted it
                    metrics.stream_cutoffs[Reason.SLOW_CONSUMER] += 1
                # Now, not in the stream's finally: that runs only once the blocked send
                # completes, which a client that reads nothing never lets happen.
                source.close()
            else:
                metrics.stream_cutoffs[Reason.SLOW_CONSUMER] += 1
            self._abort = self._loop.create_task(self._end(source))
            return
        self._timer = self._loop.call_later(self.timeout / 2, self._check)

    async def _end(self, source: AsyncIterator[Any] | Subscription | None) -> None:
        if source is not None and not isinstance(source, Subscription):
            # A servicer's generator, suspended where it yielded: its finally (which closes
            # its subscription) runs now.
            with contextlib.suppress(Exception):
                await source.aclose()  # type: ignore[attr-defined]
        with contextlib.suppress(grpc.aio.AbortError):
            await self._context.abort_with_status(slow_consumer(self.timeout).to_status())

    def stop(self) -> None:
        self._timer.cancel()


def slow_consumer(timeout: float) -> MT5ExecError:
    return MT5ExecError(
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        Reason.SLOW_CONSUMER,
        f"the client read nothing for {timeout:g} s while messages waited; "
        "reconnect (executions: resume from the last sequence seen)",
    )


def _nothing_ready() -> None:
    return None


# A stream response carries at most about this much: a subscriber that fell behind gets its
# backlog in few large messages instead of many small ones (~1,000 ticks each), and a client
# that stops reading leaves the server holding at most one of them (the message its transport
# cannot send) once its subscription is gone.
MAX_MESSAGE_BYTES = 64 * 1024


class _KnownPeer:
    """A call's peer, taken while the call is live, for a record made after it ended."""

    def __init__(self, peer: str) -> None:
        self._peer = peer

    def peer(self) -> str:
        return self._peer


def _streaming(
    name: str,
    fn: Callable[[Any, Context], AsyncIterator[Any] | Subscription],
    write_timeout: float,
    admit: Admit = _admit_decoded,
    session: tuple[_Steps, Audit] | None = None,
    instruments: MethodMetrics | None = None,
) -> Handler:
    """A server stream. With ``session`` (an audited stream: OrderSession) its opening and
    its end are recorded, with the messages that went in and out; with ``instruments``, its
    opening and a status other than OK are counted."""

    async def handler(request: Any, context: Context) -> AsyncIterator[Any]:
        # An async generator: grpc's own loop writes what it yields, the cheapest way per
        # message (about a fifth more messages/s than awaiting context.write).
        watch = _SlowWatch(write_timeout, context)
        clock = watch._loop.time
        source: AsyncIterator[Any] | Subscription | None = None
        principal: Any = None
        # The session's end is recorded after its call is over, when the call's context may
        # no longer be touched (its peer() crashed grpc's C core): the peer is taken at open.
        peer: _KnownPeer | None = None
        counted: _Counted | None = None
        outcome: tuple[grpc.StatusCode, str] = (grpc.StatusCode.OK, "")
        sent = 0
        if instruments is not None:
            instruments.opened()
        try:
            if session is None:
                admitted = admit(request, context)
            else:
                steps, audit = session
                caller = steps.caller(context)
                principal = caller
                admitted = counted = _Counted(steps.request(caller, request, context))
                peer = _KnownPeer(context.peer())
                audit.record(caller, peer, None, grpc.StatusCode.OK, "", "session_open")
            source = watch.source = fn(admitted, context)
            ready: Callable[[], Any] = _nothing_ready
            if isinstance(source, Subscription):
                # Headers first: a client that has them knows the subscription is live and
                # misses nothing from then on. Its messages are taken here, not wrapped in
                # another generator: one layer less per message, and no coroutine at all for
                # a message already queued.
                await context.send_initial_metadata(source.headers)
                ready = functools.partial(source.ready, MAX_MESSAGE_BYTES)
                pull: Callable[[], Awaitable[Any]] = functools.partial(
                    source.next, MAX_MESSAGE_BYTES
                )
            else:
                pull = source.__anext__
            while True:
                item = ready()
                if item is None:
                    try:
                        item = await pull()
                    except StopAsyncIteration:
                        break
                watch.since = clock()
                yield item
                sent += 1
                watch.since = None
        except MT5ExecError as e:
            # (A subscriber the engine cut off ends here, counted by the engine.)
            outcome = (e.code, e.reason)
            await context.abort_with_status(e.to_status())
        except (asyncio.CancelledError, grpc.aio.AbortError, GeneratorExit):
            outcome = (grpc.StatusCode.CANCELLED, "")
            raise
        except Exception as e:
            error = _internal(name, e)
            outcome = (error.code, error.reason)
            await context.abort_with_status(error.to_status())
        finally:
            watch.stop()
            if isinstance(source, Subscription):
                source.close()
            memory.stream_ended()
            if watch.fired:
                outcome = (grpc.StatusCode.RESOURCE_EXHAUSTED, Reason.SLOW_CONSUMER)
            if instruments is not None and outcome[0] is not grpc.StatusCode.OK:
                instruments.failed(outcome[0])
            if session is not None and principal is not None:
                messages = (0 if counted is None else counted.count, sent)
                session[1].record(principal, peer, None, *outcome, "session_end", messages)

    return handler


def _missing(
    full_name: str, issue: int | str, streaming: bool, admit: Admit = _admit_decoded
) -> Handler:
    error = unimplemented(full_name, issue)

    async def unary(request: Any, context: Context) -> Any:
        try:
            admit(request, context)
        except MT5ExecError as e:
            await context.abort_with_status(e.to_status())
        await context.abort_with_status(error.to_status())

    async def stream(request: Any, context: Context) -> AsyncIterator[Any]:
        try:
            admit(request, context)
        except MT5ExecError as e:
            await context.abort_with_status(e.to_status())
        await context.abort_with_status(error.to_status())
        yield b""  # pragma: no cover - abort raises

    return stream if streaming else unary


def _rpc_handler(
    method: MethodDescriptor, behaviour: Handler, raw: bool
) -> grpc.RpcMethodHandler[Any, Any]:
    kwargs: dict[str, Any] = {
        "request_deserializer": None if raw else _decoder(method),
        "response_serializer": serialize,
    }
    if method.client_streaming and method.server_streaming:
        return grpc.stream_stream_rpc_method_handler(behaviour, **kwargs)
    if method.client_streaming:
        return grpc.stream_unary_rpc_method_handler(behaviour, **kwargs)
    if method.server_streaming:
        return grpc.unary_stream_rpc_method_handler(behaviour, **kwargs)
    return grpc.unary_unary_rpc_method_handler(behaviour, **kwargs)


def _decoding_requests(fn: Callable[[Any, Context], Any]) -> Callable[[Any, Context], Any]:
    """``fn`` of a client-streaming method, given only requests that decoded."""

    def call(requests: AsyncIterator[Any], context: Context) -> Any:
        return fn(_each_decoded(requests), context)

    return call


def method_handlers(
    service: ServiceDescriptor,
    servicer: object,
    planned: dict[str, int | str],
    write_timeout: float = 10.0,
    gates: Callable[[MethodDescriptor], Gate] | None = None,
    limits: Limits | None = None,
    audits: Callable[[MethodDescriptor], Audit | None] | None = None,
    rpc: RpcMetrics | None = None,
) -> dict[str, grpc.RpcMethodHandler[Any, Any]]:
    """Handlers for every method of ``service``; ``planned`` maps missing ones to issues.
    Methods the servicer lists in ``RAW_REQUESTS`` get their requests as received bytes.
    ``gates`` gives each method's gate (the guard's; it raises for a method without a rule),
    ``limits`` the limits between authentication and the role, ``audits`` each method's
    audit (None: a read; it raises for a method not classified). A method not built yet is
    gated but not audited (it changes nothing). With ``rpc`` every method's calls are timed
    and counted (``mt5exec.rpc_metrics``)."""
    raw_requests: frozenset[str] = getattr(servicer, "RAW_REQUESTS", frozenset())
    handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}
    for method in service.methods:
        raw = method.name in raw_requests
        fn = getattr(servicer, method.name, None)
        full_name = f"{service.full_name}/{method.name}"
        steps = None if gates is None else _Steps(gates(method), limits)
        audit = None if audits is None else audits(method)
        admit = _admission(steps)
        instruments = None if rpc is None else rpc.method(full_name)
        if fn is None:
            issue = planned.get(method.name)
            if issue is None:
                raise TypeError(f"{full_name} has no servicer and no issue")
            behaviour = _missing(full_name, issue, method.server_streaming, admit)
        else:
            if method.client_streaming and not raw:
                fn = _decoding_requests(fn)
            timed = _UNTIMED if instruments is None else instruments
            if method.server_streaming:
                session = None if steps is None or audit is None else (steps, audit)
                behaviour = _streaming(full_name, fn, write_timeout, admit, session, instruments)
            elif steps is not None and audit is not None:
                behaviour = _audited_unary(full_name, fn, steps, audit, timed)
            else:
                behaviour = _unary(full_name, fn, admit, timed)
        if instruments is not None and fn is None and not method.server_streaming:
            behaviour = _timed(behaviour, instruments)
        handlers[method.name] = _rpc_handler(method, behaviour, raw)
    return handlers


def add_service(
    server: grpc.aio.Server,
    service: ServiceDescriptor,
    servicer: object,
    planned: dict[str, int | str],
    write_timeout: float = 10.0,
    gates: Callable[[MethodDescriptor], Gate] | None = None,
    limits: Limits | None = None,
    audits: Callable[[MethodDescriptor], Audit | None] | None = None,
    rpc: RpcMetrics | None = None,
) -> None:
    handlers = method_handlers(
        service, servicer, planned, write_timeout, gates, limits, audits, rpc
    )
    server.add_registered_method_handlers(service.full_name, handlers)


def _standard(method: MethodDescriptor, fn: Callable[..., Any]) -> Handler:
    """A library servicer's method (which writes with context.write, yields, or returns its
    response), given only requests that decoded."""

    def request_of(request: Any) -> Any:
        return _each_decoded(request) if method.client_streaming else _decoded(request)

    if inspect.isasyncgenfunction(fn):

        async def stream(request: Any, context: Context) -> AsyncIterator[Any]:
            try:
                async for response in fn(request_of(request), context):
                    yield response
            except MT5ExecError as e:
                await context.abort_with_status(e.to_status())

        return stream

    async def call(request: Any, context: Context) -> Any:
        try:
            return await fn(request_of(request), context)
        except MT5ExecError as e:
            await context.abort_with_status(e.to_status())

    return call


def add_standard_service(
    server: grpc.aio.Server, service: ServiceDescriptor, servicer: object, name: str = ""
) -> None:
    """A service implemented by a library's servicer (health, reflection) with the same
    refusal of undecodable requests as ours; ``name`` serves it under another name (a
    service with the same messages in another package)."""
    handlers = {
        method.name: _rpc_handler(method, _standard(method, getattr(servicer, method.name)), False)
        for method in service.methods
    }
    server.add_registered_method_handlers(name or service.full_name, handlers)
