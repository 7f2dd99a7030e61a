"""Typed asyncio wrapper over the Rust Trade Engine; the only importer of ``_core``.

The engine never calls into Python. It queues answers (by token) and the ids of
stream subscriptions that have data, and writes one byte to a socket this
module watches with ``loop.add_reader``; one ``drain()`` call then resolves
every waiting future and wakes every ready stream. No thread waits with the
GIL held, and the event loop never blocks.

One file over 800 lines on purpose: it is the whole Python side of the boundary (the one
importer of ``_core``, the one translation of ``CoreError``), a method per binding, each a
few lines, in the order of ``rust_core/src/python/``; splitting it would spread the rule
that only this module touches ``_core``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import functools
import os
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Final

import grpc

from mt5exec import _core
from mt5exec.errors import MT5ExecError, status_code
from mt5exec.reasons import Reason
from mt5exec.v1 import common_pb2, instance_pb2


class Topic(enum.IntEnum):
    TICKS = 0
    EXECUTIONS = 1
    ACCOUNTS = 2
    INSTANCE_EVENTS = 3
    BOOK = 4


@dataclass(frozen=True)
class Supervision:
    """Watchdog and restart policy of one instance (the health-check template)."""

    heartbeat_interval_ms: int = 1000
    missed_heartbeats_degraded: int = 2
    missed_heartbeats_restart: int = 5
    max_consecutive_failures: int = 3
    restart_backoff_initial_ms: int = 100
    restart_backoff_max_ms: int = 30_000
    stable_after_s: float = 10.0
    start_timeout_s: float = 10.0


@dataclass(frozen=True)
class InstanceSpec:
    """Everything the engine needs to run an instance's worker."""

    instance_id: str
    owner: str
    backend: int
    directory: Path
    log_directory: Path
    argv: list[str]
    env: dict[str, str]
    config: common_pb2.InstanceConfig
    supervision: Supervision = Supervision()
    created_unix_ns: int | None = None
    # Written (0600) before every worker start; the worker reads and deletes them.
    secret_files: tuple[tuple[str, str], ...] = dataclasses.field(default=(), repr=False)
    # Version of config (its risk limits and trading state change at runtime).
    config_version: int = 1
    kill_switch: bool = False
    # Events are numbered after this one when the instance has no log yet (an earlier
    # instance of the same id was deleted).
    first_sequence_after: int = 0


@dataclass(frozen=True)
class OrderArgs:
    """A new order as the engine takes it (the fields of PlaceOrderRequest)."""

    instance_id: str
    client_order_id: str
    symbol: str
    side: int
    order_type: int
    volume: float
    price: float = 0.0
    stop_limit_price: float = 0.0
    stop_loss: float = 0.0
    take_profit: float = 0.0
    deviation_points: int = 0
    time_in_force: int = 0
    expiration_msc: int = 0
    filling: int = 0
    comment: str = ""
    magic: int = 0
    position_id: int = 0


@dataclass(frozen=True)
class OrderChanges:
    """Changes to a pending order (0 keeps a field)."""

    order_id: int = 0
    client_order_id: str = ""
    price: float = 0.0
    stop_limit_price: float = 0.0
    stop_loss: float = 0.0
    take_profit: float = 0.0
    time_in_force: int = 0
    expiration_msc: int = 0


@dataclass(frozen=True)
class SignalCopy:
    """One follower's copy of a signal: its order (an encoded PlaceOrderResponse) or why none
    was made."""

    follower_instance_id: str
    client_order_id: str
    order: bytes | None
    error: MT5ExecError | None


# The engine's tunables (``_core.EngineConfig``): every argument is optional and defaults to
# the engine's own value, written once in Rust (rust_core/src/config.rs).
EngineConfig = _core.EngineConfig
# The engine's defaults, which the ``[engine]`` section of the server's config starts from.
ENGINE_DEFAULTS: Final = EngineConfig()
# The order journal's counters (``Engine.journal_stats``).
JournalStats = _core.JournalStats


def _translate(error: _core.CoreError, payload: bytes = b"") -> MT5ExecError:
    code, reason, message, field, retry_after_ms = error.args
    return MT5ExecError(
        status_code(code), reason, message, field, payload=payload, retry_after_ms=retry_after_ms
    )


class _CoreErrors:
    """``with _CORE_ERRORS:`` raises the MT5ExecError of any CoreError its body raises: the one
    translation at the boundary. A class, not ``contextlib.contextmanager``: it guards every
    order, and entering it costs a method call, not a generator."""

    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if isinstance(error, _core.CoreError):
            raise _translate(error) from None


_CORE_ERRORS = _CoreErrors()

# A deadline that never comes (no order waiting).
_NEVER: Final = float("inf")
_TICK_S: Final = 0.001


def validate_risk_limits(limits: common_pb2.RiskLimits) -> None:
    """Raises INVALID_ARGUMENT (naming the field) for limits the engine cannot use."""
    with _CORE_ERRORS:
        _core.validate_risk_limits(limits.SerializeToString())


# What the engine counted and reads per instance (see the methods of the same names).
ExecutionCounts = _core.ExecutionCounts
InstanceGauges = _core.InstanceGauges
# An instance's daily risk counters (``Engine.risk_day_state``), saved in its record.
RiskDayState = _core.RiskDayState

# The `le` labels of the engine's latency histogram buckets.
_LATENCY_LE = [repr(bound) for bound in _core.LATENCY_BOUNDS_S]
# The `le` labels of the slippage histogram buckets (``FillCounts.slippage_cumulative``).
SLIPPAGE_LE: Final = [repr(bound) for bound in _core.SLIPPAGE_BOUNDS_POINTS]


@dataclass(slots=True)
class _OrderWait:
    """An order call awaiting its answer (``Engine._order``): by ``deadline`` (the loop's
    time) it is DEADLINE_EXCEEDED. ``gone`` is its done callback (a cancelled call forgets
    its wait at once), taken off again when it is answered."""

    future: asyncio.Future[bytes]
    deadline: float
    timeout: float
    client_order_id: str
    gone: Callable[[asyncio.Future[bytes]], None]


def _expire(future: asyncio.Future[tuple[int, str, str, bytes]]) -> None:
    if not future.done():
        future.set_exception(TimeoutError())


# A StreamExecutions response header: the sequence the stream starts after (its first event
# is the next one; a resume from it misses nothing).
START_SEQUENCE_HEADER = "mt5exec-start-sequence"


class Subscription:
    """A stream subscriber: yields encoded response messages as they come."""

    def __init__(
        self,
        engine: Engine,
        core: _core.Subscription,
        headers: tuple[tuple[str, str], ...] = (),
    ) -> None:
        self._engine = engine
        self._core = core
        # The stream's response headers (initial metadata).
        self.headers = headers
        # The future the stream's task waits on while its queue is empty (None while it
        # runs): cheaper per message than an asyncio.Event, which this path crosses once
        # for every message written.
        self._waiter: asyncio.Future[None] | None = None
        self._ended: MT5ExecError | None = None
        # ready(max_bytes): the next encoded response if one is queued and may go now, else
        # None (then await ``next``): nothing once ended, nor after the first message while
        # the engine coalesces. The engine's own call, not a method here: a stream makes it
        # for every message it writes, and a Python frame per message is a cost.
        self.ready: Callable[[int], bytes | None] = core.ready

    @property
    def id(self) -> int:
        return self._core.id

    @property
    def cut_off(self) -> bool:
        """Whether the engine cut it off for leaving too much unread (and counted it)."""
        return self._core.cut_off

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def end(self, error: MT5ExecError) -> None:
        """Ends the stream from the server side (e.g. shutdown)."""
        self._ended = error
        self._core.end()
        self._wake()

    async def next(self, max_bytes: int) -> bytes:
        """The next encoded response (everything queued, up to about ``max_bytes``), waiting
        for one if none is queued; raises MT5ExecError when the stream is ended.

        A coroutine rather than a generator: a stream's handler awaits it once per message,
        and that costs less than one more async-generator layer on every message written.
        """
        if self._core.yielded:
            # Many busy subscribers: let each one's next message gather more (fewer, larger
            # messages), since per-message cost is what saturates first.
            delay = self._engine.coalesce_delay()
            if delay:
                await asyncio.sleep(delay)
        take = self._core.take
        while True:
            if self._ended is not None:
                raise self._ended
            try:
                data = take(max_bytes)
            except _core.CoreError as e:
                raise _translate(e) from None
            if data is not None:
                return data
            # The queue is empty: the engine announces this subscription again when it next
            # queues for it (announcements are drained on this thread, so none can fall
            # between the take above and this wait).
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    async def messages(
        self,
        max_bytes: int = 65536,
        before: Callable[[], Awaitable[None]] | None = None,
    ) -> AsyncGenerator[bytes, None]:
        """Encoded responses; raises MT5ExecError when the stream is ended. ``before`` runs
        first (a stream's headers: once a client has them, it misses nothing)."""
        try:
            if before is not None:
                await before()
            while True:
                yield await self.next(max_bytes)
        finally:
            self.close()

    def close(self) -> None:
        self._engine._forget(self)


class OrderSession:
    """A bidirectional order session run by the engine: encoded requests in, encoded
    responses out; Python only moves bytes between gRPC and the engine.

    Two sides wait here: ``responses`` for answers, ``submit`` for room in the window. The
    engine announces a session only when its queue goes from empty to not (answers arriving
    while the writer is busy are not announced again), so the writer reopens the window after
    every batch it takes: each take frees as many slots as it took answers."""

    def __init__(self, engine: Engine, core: _core.OrderSession, window: int) -> None:
        self._engine = engine
        self._core = core
        self._window = window
        self._ready = asyncio.Event()  # answers are queued (or the input ended)
        self._room = asyncio.Event()  # answers were taken or announced: the window may have room
        self._input_done = False

    @property
    def id(self) -> int:
        return self._core.id

    def _wake(self) -> None:
        self._ready.set()
        self._room.set()

    async def submit(self, raw: bytes) -> None:
        """Submits an encoded OrderSessionRequest, waiting while the window is full."""
        outstanding, room = self._core.outstanding, self._room
        while outstanding() >= self._window:
            room.clear()
            # Look again after the clear: what was answered in between is not missed.
            if outstanding() < self._window:
                break
            await room.wait()
        self._engine._core.session_submit(self._core, raw)

    def input_done(self) -> None:
        self._input_done = True
        self._ready.set()

    async def responses(self) -> AsyncIterator[bytes]:
        """Encoded OrderSessionResponses until the input is done and every order answered."""
        try:
            while True:
                self._ready.clear()
                batch = self._core.take()
                if batch:
                    self._room.set()
                for response in batch:
                    yield response
                if not batch:
                    if self._input_done and self._core.outstanding() == 0:
                        # An answer leaves the count under the queue's lock, before it is
                        # queued: take once more, so that one counted out just before the
                        # empty take is not lost.
                        for response in self._core.take():
                            yield response
                        return
                    await self._ready.wait()
        finally:
            self._engine._unlist(self.id)


class Engine:
    """The Trade Engine, bound to the running event loop."""

    def __init__(self, config: EngineConfig = ENGINE_DEFAULTS) -> None:
        self.config = config
        self._core = _core.Engine(config)
        self._coalesce_max_s = config.stream_coalesce_max_s
        self._futures: dict[int, asyncio.Future[tuple[int, str, str, bytes]]] = {}
        # Orders, cancels and modifications awaited (``_order``): resolved by ``_on_wake``
        # with the response itself, or its error.
        self._orders: dict[int, _OrderWait] = {}
        # One timer for all of them, due at the earliest deadline (``_order``), not a timer
        # of each: an order costs no timer to start and cancel.
        self._order_timer: asyncio.TimerHandle | None = None
        self._order_timer_at = _NEVER
        self._subscriptions: dict[int, Subscription | OrderSession] = {}
        # Subscriptions of the server's own (the Redis mirror's): they do not count towards
        # coalescing, which the clients' streams would otherwise pay for.
        self._uncounted: set[int] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._fd = self._core.notify_fd()

    # -- event loop integration -------------------------------------------------------

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        loop.add_reader(self._fd, self._on_wake)

    def detach(self) -> None:
        if self._order_timer is not None:
            self._order_timer.cancel()
            self._order_timer, self._order_timer_at = None, _NEVER
        if self._loop is not None:
            self._loop.remove_reader(self._fd)
            self._loop = None

    def _on_wake(self) -> None:
        # Not contextlib.suppress: this runs for every batch of answers.
        try:  # noqa: SIM105
            os.read(self._fd, 4096)
        except BlockingIOError:
            pass
        completions, ready = self._core.drain()
        futures, orders = self._futures, self._orders
        for c in completions:
            order = orders.pop(c.token, None)
            if order is not None:
                answer = order.future
                # Answered: nothing is left to forget (no callback scheduled per order).
                answer.remove_done_callback(order.gone)
                if not answer.done():
                    code = c.code
                    if code:
                        answer.set_exception(
                            MT5ExecError(status_code(code), c.reason, c.message, payload=c.payload)
                        )
                    else:
                        answer.set_result(c.payload)
                continue
            future = futures.pop(c.token, None)
            if future is not None and not future.done():
                future.set_result((c.code, c.reason, c.message, c.payload))
        subscriptions = self._subscriptions
        for sub_id in ready:
            sub = subscriptions.get(sub_id)
            if sub is not None:
                sub._wake()

    async def _await(self, token: int, timeout: float | None = None) -> bytes:
        return await self._settle(token, *self._expect(token, timeout))

    def _expect(
        self, token: int, timeout: float | None = None
    ) -> tuple[asyncio.Future[tuple[int, str, str, bytes]], asyncio.TimerHandle | None]:
        """Registers the future that ``token``'s completion resolves. Synchronous, so that a
        caller can register before it yields: a completion drained before then is lost."""
        loop = self._loop
        assert loop is not None, "Engine.attach(loop) first"
        future: asyncio.Future[tuple[int, str, str, bytes]] = loop.create_future()
        self._futures[token] = future
        # A timer on the future itself: asyncio.wait_for would wrap it in a task.
        timer = None if timeout is None else loop.call_later(timeout, _expire, future)
        return future, timer

    async def _settle(
        self,
        token: int,
        future: asyncio.Future[tuple[int, str, str, bytes]],
        timer: asyncio.TimerHandle | None,
    ) -> bytes:
        try:
            code, reason, message, payload = await future
        finally:
            self._futures.pop(token, None)
            if timer is not None:
                timer.cancel()
        if code:
            raise MT5ExecError(status_code(code), reason, message, payload=payload)
        return payload

    # -- instances -------------------------------------------------------------------

    def create_instance(
        self,
        spec: InstanceSpec,
        *,
        start: bool = True,
    ) -> Awaitable[common_pb2.Instance]:
        """Registers the instance at once (errors raise here); awaiting the result waits
        until it is READY, or STOPPED when ``start`` is false."""
        with _CORE_ERRORS:
            core_spec = _core.InstanceSpec(
                instance_id=spec.instance_id,
                owner=spec.owner,
                backend=spec.backend,
                directory=spec.directory,
                log_directory=spec.log_directory,
                argv=spec.argv,
                env=list(spec.env.items()),
                config=spec.config.SerializeToString(),
                supervision=dataclasses.asdict(spec.supervision),
                created_unix_ns=spec.created_unix_ns,
                secret_files=list(spec.secret_files),
                config_version=spec.config_version,
                kill_switch=spec.kill_switch,
                first_sequence_after=spec.first_sequence_after,
            )
            token = self._core.create_instance(core_spec, start)
        return self._instance(token)

    def _instance(self, token: int) -> Awaitable[common_pb2.Instance]:
        """The instance ``token`` completes with. Its future is registered now, not when the
        caller gets round to awaiting: an instance created STOPPED completes at once, and
        restore() awaits its instances only later."""
        return self._instance_when(token, *self._expect(token))

    async def _instance_when(
        self,
        token: int,
        future: asyncio.Future[tuple[int, str, str, bytes]],
        timer: asyncio.TimerHandle | None,
    ) -> common_pb2.Instance:
        return common_pb2.Instance.FromString(await self._settle(token, future, timer))

    async def start_instance(self, instance_id: str) -> common_pb2.Instance:
        with _CORE_ERRORS:
            token = self._core.start_instance(instance_id)
        return await self._instance(token)

    async def restart_instance(self, instance_id: str) -> common_pb2.Instance:
        with _CORE_ERRORS:
            token = self._core.restart_instance(instance_id)
        return await self._instance(token)

    def report_health(self, instance_id: str, healthy: bool, reason: str) -> None:
        with _CORE_ERRORS:
            self._core.report_health(instance_id, healthy, reason)

    def announce(self, instance_id: str, reason: str) -> None:
        """Publishes an instance event with ``reason`` (the lifecycle state unchanged)."""
        with _CORE_ERRORS:
            self._core.announce(instance_id, reason)

    def set_secret_files(self, instance_id: str, secret_files: tuple[tuple[str, str], ...]) -> None:
        """Replaces the instance's secret files (see ``InstanceSpec``): the next start of its
        worker writes these."""
        with _CORE_ERRORS:
            self._core.set_secret_files(instance_id, list(secret_files))

    def remove_instance(self, instance_id: str) -> None:
        with _CORE_ERRORS:
            self._core.remove_instance(instance_id)

    def instance_stats(self, instance_id: str) -> bytes:
        """An encoded InstanceStats."""
        with _CORE_ERRORS:
            return self._core.instance_stats(instance_id)

    async def stop_instance(
        self, instance_id: str, grace_s: float | None = None
    ) -> common_pb2.Instance:
        with _CORE_ERRORS:
            token = self._core.stop_instance(instance_id, grace_s)
        return common_pb2.Instance.FromString(await self._await(token))

    async def stop_all(self) -> list[common_pb2.Instance]:
        """Stops every running worker; returns the stopped instances."""
        ids = self._core.running_instances()
        results = await asyncio.gather(
            *(self.stop_instance(i) for i in ids), return_exceptions=True
        )
        stopped = []
        for result in results:
            if isinstance(result, common_pb2.Instance):
                stopped.append(result)
            elif not isinstance(result, MT5ExecError):
                raise result
        # Throttle refusals of the last second are in the execution logs too.
        self._core.flush_refusals()
        return stopped

    def get_instance(self, instance_id: str) -> common_pb2.Instance:
        with _CORE_ERRORS:
            return common_pb2.Instance.FromString(self._core.get_instance(instance_id))

    # -- risk ---------------------------------------------------------------------------

    def set_risk_limits(
        self, instance_id: str, limits: common_pb2.RiskLimits, version: int
    ) -> common_pb2.Instance:
        with _CORE_ERRORS:
            raw = self._core.set_risk_limits(instance_id, limits.SerializeToString(), version)
        return common_pb2.Instance.FromString(raw)

    def set_trading_state(self, instance_id: str, state: int) -> common_pb2.Instance:
        with _CORE_ERRORS:
            return common_pb2.Instance.FromString(self._core.set_trading_state(instance_id, state))

    def engage_kill_switch(
        self, instance_id: str | None, owner: str | None, close_positions: bool
    ) -> Awaitable[instance_pb2.EngageKillSwitchResponse]:
        """HALTs the scope's instances at once (before this returns); awaiting the result
        waits until every cancel (and close) has been answered by the terminals."""
        with _CORE_ERRORS:
            token = self._core.engage_kill_switch(instance_id, owner, close_positions)
        return self._engaged(token, *self._expect(token))

    async def _engaged(
        self,
        token: int,
        future: asyncio.Future[tuple[int, str, str, bytes]],
        timer: asyncio.TimerHandle | None,
    ) -> instance_pb2.EngageKillSwitchResponse:
        payload = await self._settle(token, future, timer)
        return instance_pb2.EngageKillSwitchResponse.FromString(payload)

    def release_kill_switch(self, instance_id: str | None, owner: str | None) -> list[str]:
        with _CORE_ERRORS:
            return self._core.release_kill_switch(instance_id, owner)

    def configure_risk(
        self,
        global_orders_per_second: float,
        owner_orders_per_second: float,
        owners: dict[str, tuple[list[str], float]],
    ) -> None:
        self._core.configure_risk(global_orders_per_second, owner_orders_per_second, owners)

    def risk_day_state(self, instance_id: str) -> RiskDayState:
        """An instance's daily risk counters."""
        with _CORE_ERRORS:
            return self._core.risk_day_state(instance_id)

    def restore_risk_day_state(self, instance_id: str, state: RiskDayState) -> None:
        with _CORE_ERRORS:
            self._core.restore_risk_day_state(instance_id, state)

    def stream_stats(self) -> list[tuple[str, int, int, int]]:
        """Per topic: (name, subscribers, queued messages, dropped or conflated messages)."""
        return self._core.stream_stats()

    def stream_cutoffs(self) -> int:
        """Subscribers the engine cut off for leaving more than their bound unread."""
        return self._core.stream_cutoffs()

    # -- the copier ------------------------------------------------------------------

    def add_copy_relation(
        self,
        relation: bytes,
        created: bool,
        defaults: _core.CopyDefaults,
        state: _core.CopyState | None = None,
    ) -> bytes:
        """Adds an encoded CopyRelation with its follower's defaults (docs/copier.md) and,
        restored, the state it saved; ``created`` (not restored): its symbols are checked
        against the follower's (its late join is copy_late_join, once saved)."""
        with _CORE_ERRORS:
            return self._core.add_copy_relation(relation, created, defaults, state)

    def copy_states(self) -> list[_core.CopyState]:
        """Every relation's statistics and refusals to save."""
        return self._core.copy_states()

    def removed_copy_states(self) -> list[tuple[bytes, _core.CopyState]]:
        """Every removed relation still owing closes (encoded) and its state to save."""
        return self._core.removed_copy_states()

    def restore_removed_copy_relation(
        self, relation: bytes, defaults: _core.CopyDefaults, state: _core.CopyState
    ) -> None:
        """A removed relation that owed closes when the server stopped: they are made when
        its follower is ready, and only those."""
        with _CORE_ERRORS:
            self._core.restore_removed_copy_relation(relation, defaults, state)

    def remove_copy_relation(self, owner: str, relation_id: str, close: bool) -> bytes:
        with _CORE_ERRORS:
            return self._core.remove_copy_relation(owner, relation_id, close)

    def copy_late_join(self, owner: str, relation_id: str) -> None:
        """A relation made and saved: a late join copies the master's open positions (and
        pending orders) now."""
        with _CORE_ERRORS:
            self._core.copy_late_join(owner, relation_id)

    def copy_instance_deleted(self, instance_id: str) -> bool:
        """A deleted instance: the relations naming it removed (copies left open), nothing
        owed to it as a follower kept. Whether any relation was let go."""
        return self._core.copy_instance_deleted(instance_id)

    def copy_relations(self) -> list[bytes]:
        return self._core.copy_relations()

    def get_copy_relation(self, owner: str, relation_id: str) -> bytes:
        """An owner's relation: an encoded GetCopyRelationResponse (with its statistics)."""
        with _CORE_ERRORS:
            return self._core.get_copy_relation(owner, relation_id)

    def copy_metrics(self) -> list[_core.CopyMetrics]:
        """What every relation did since the start (copier_metrics.py)."""
        return self._core.copy_metrics()

    async def copy_signal(
        self,
        source: str,
        signal_id: str,
        symbol: str,
        side: int,
        volume: float,
        risk_percent: float = 0.0,
        stop_loss: float = 0.0,
        take_profit: float = 0.0,
        price: float = 0.0,
        timeout: float = 10.0,
    ) -> list[SignalCopy]:
        """Copies a signal to every relation following ``source`` (docs/copier.md); one
        follower's refusal is its own result, never an exception."""
        made = self._core.copy_signal(
            source, signal_id, symbol, side, volume, risk_percent, price, stop_loss, take_profit
        )
        # Registered before any await: a completion drained before then would be lost.
        expected = [self._expect(m.token, timeout) if m.token else None for m in made]

        async def one(i: int) -> SignalCopy:
            result = made[i]
            follower, cid = result.follower_instance_id, result.client_order_id
            waiting = expected[i]
            if waiting is None:
                refusal = MT5ExecError(
                    status_code(result.code),
                    result.reason,
                    result.message,
                    result.field,
                    retry_after_ms=result.retry_after_ms,
                )
                return SignalCopy(follower, cid, None, refusal)
            try:
                return SignalCopy(follower, cid, await self._settle(result.token, *waiting), None)
            except MT5ExecError as e:
                return SignalCopy(follower, cid, e.payload or None, e)
            except TimeoutError:
                unknown = MT5ExecError(
                    grpc.StatusCode.DEADLINE_EXCEEDED,
                    Reason.ORDER_OUTCOME_UNKNOWN,
                    f"no answer from the terminal within {timeout:g} s",
                )
                return SignalCopy(follower, cid, None, unknown)

        return list(await asyncio.gather(*(one(i) for i in range(len(made)))))

    def risk_rejections(self) -> list[tuple[str, str, int]]:
        """(instance id, reason, count) of every order the risk engine refused."""
        return self._core.risk_rejections()

    def execution_counts(self) -> ExecutionCounts:
        """Executions counted per instance since the start (``_core.Engine.execution_counts``):
        fills by symbol with their slippage histogram, rejections by reason, order updates by
        status."""
        return self._core.execution_counts()

    def journal_health(self) -> tuple[bool, int] | None:
        """The order journal's (usable, failed appends and fsyncs); None without one."""
        return self._core.journal_health()

    def instance_gauges(self) -> list[InstanceGauges]:
        """Per instance: its account, spreads and worker figures now."""
        return self._core.instance_gauges()

    def worker_latency(self) -> list[tuple[str, str, list[tuple[str, int]], float]]:
        """How long workers took to answer, per instance and request kind (place, cancel,
        modify, sltp, check): (instance id, kind, Prometheus buckets as (le, cumulative
        count) ending with +Inf, sum of seconds)."""
        return [
            (
                s.instance_id,
                s.kind,
                [*zip(_LATENCY_LE, s.cumulative, strict=True), ("+Inf", s.count)],
                s.sum_s,
            )
            for s in self._core.worker_latency()
        ]

    def list_instances(self) -> list[common_pb2.Instance]:
        return [common_pb2.Instance.FromString(b) for b in self._core.list_instances()]

    def worker_pids(self) -> list[int]:
        return self._core.worker_pids()

    # -- orders and state ------------------------------------------------------------

    # The order calls are not coroutines: each makes its request at once (raising its
    # refusal) and returns the future its answer resolves (``_order``), which the caller
    # awaits: no coroutine frames between the gRPC handler and the answer.

    def place_order(self, order: OrderArgs, timeout: float) -> asyncio.Future[bytes]:
        """An encoded PlaceOrderResponse, awaited (idempotent on the client_order_id)."""
        with _CORE_ERRORS:
            token = self._core.place_order(**vars(order))
        return self._order(token, timeout, order.client_order_id)

    def place_order_raw(
        self, raw: bytes, timeout: float, check_only: bool = False, owner: str | None = None
    ) -> asyncio.Future[bytes]:
        """Places an order from an encoded PlaceOrderRequest (validated by the engine): an
        encoded PlaceOrderResponse, awaited, or with ``check_only`` a CheckOrderResponse
        (the terminal's order_check: nothing is sent for execution). With ``owner``, another
        owner's instance is NOT_FOUND exactly as one that does not exist."""
        with _CORE_ERRORS:
            token, client_order_id = self._core.place_order_raw(raw, check_only, owner)
        return self._order(token, timeout, client_order_id)

    def cancel_order(
        self, instance_id: str, order_id: int, client_order_id: str, timeout: float
    ) -> asyncio.Future[bytes]:
        with _CORE_ERRORS:
            token = self._core.cancel_order(instance_id, order_id, client_order_id)
        return self._order(token, timeout, client_order_id)

    def modify_order(
        self, instance_id: str, changes: OrderChanges, timeout: float
    ) -> asyncio.Future[bytes]:
        with _CORE_ERRORS:
            token = self._core.modify_order(instance_id, **vars(changes))
        return self._order(token, timeout, changes.client_order_id)

    def modify_position(
        self,
        instance_id: str,
        position_id: int,
        stop_loss: float,
        take_profit: float,
        timeout: float,
    ) -> asyncio.Future[bytes]:
        with _CORE_ERRORS:
            token = self._core.modify_position(instance_id, position_id, stop_loss, take_profit)
        return self._order(token, timeout, "")

    def last_sequence(self, instance_id: str) -> int:
        """The last execution event sequence of an instance."""
        with _CORE_ERRORS:
            return self._core.last_sequence(instance_id)

    def get_order(self, instance_id: str, order_id: int, client_order_id: str) -> bytes:
        """An encoded Order."""
        with _CORE_ERRORS:
            return self._core.get_order(instance_id, order_id, client_order_id)

    def list_orders(
        self,
        instance_id: str,
        history: bool,
        symbol: str = "",
        from_nanos: int | None = None,
        to_nanos: int | None = None,
        page_size: int = 0,
        page_token: str = "",
    ) -> bytes:
        """One page of orders, newest first: an encoded ListOrdersResponse."""
        with _CORE_ERRORS:
            return self._core.list_orders(
                instance_id, history, symbol, from_nanos, to_nanos, page_size, page_token
            )

    def open_session(self, window: int = 1024, owner: str | None = None) -> OrderSession:
        """A session; with ``owner``, its orders and cancels may name only that owner's
        instances (another's is NOT_FOUND, as one that does not exist)."""
        session = OrderSession(self, self._core.open_session(owner), window)
        self._list(session)
        return session

    def journal_stats(self) -> JournalStats:
        return self._core.journal_stats()

    def _order(self, token: int, timeout: float, client_order_id: str) -> asyncio.Future[bytes]:
        """The future ``token``'s answer resolves: the response, or its error; after
        ``timeout`` without one, DEADLINE_EXCEEDED (ORDER_OUTCOME_UNKNOWN). Registered before
        the caller yields: a completion drained before then would be lost."""
        loop = self._loop
        assert loop is not None, "Engine.attach(loop) first"
        answer: asyncio.Future[bytes] = loop.create_future()
        deadline = loop.time() + timeout
        gone = functools.partial(self._order_gone, token)
        self._orders[token] = _OrderWait(answer, deadline, timeout, client_order_id, gone)
        answer.add_done_callback(gone)
        if deadline < self._order_timer_at:
            self._arm_orders(loop, deadline)
        return answer

    def _arm_orders(self, loop: asyncio.AbstractEventLoop, at: float) -> None:
        if self._order_timer is not None:
            self._order_timer.cancel()
        self._order_timer = loop.call_at(at, self._orders_due)
        self._order_timer_at = at

    def _orders_due(self) -> None:
        """The orders past their deadline expire; the timer is set for the next deadline."""
        self._order_timer, self._order_timer_at = None, _NEVER
        loop = self._loop
        if loop is None:
            return
        # Within a tick of the loop's clock (uvloop's counts in ms) a deadline is due: not
        # due, it would set the timer again for less than a tick, which runs at once.
        now, upcoming = loop.time() + _TICK_S, _NEVER
        due = []
        for token, order in self._orders.items():
            if order.deadline <= now:
                due.append(token)
            elif order.deadline < upcoming:
                upcoming = order.deadline
        for token in due:
            self._order_expired(token)
        if upcoming < _NEVER:
            self._arm_orders(loop, upcoming)

    def _order_gone(self, token: int, answer: asyncio.Future[bytes]) -> None:
        """A call cancelled (its client went) forgets its wait at once; an answer coming
        later finds no wait and is dropped, as after a timeout."""
        if answer.cancelled():
            self._orders.pop(token, None)

    def _order_expired(self, token: int) -> None:
        order = self._orders.pop(token, None)
        if order is None:
            return
        answer = order.future
        answer.remove_done_callback(order.gone)
        if answer.done():
            return
        cid = order.client_order_id
        answer.set_exception(
            MT5ExecError(
                grpc.StatusCode.DEADLINE_EXCEEDED,
                Reason.ORDER_OUTCOME_UNKNOWN,
                f"no answer from the terminal within {order.timeout:g} s; the outcome is "
                "unknown until reconciled: retry with the same client_order_id, never a new one",
                metadata={"client_order_id": cid} if cid else None,
            )
        )

    async def market_query(self, instance_id: str, request: bytes, timeout: float) -> bytes:
        """Asks the instance's terminal a market data question (an encoded ``MarketRequest``);
        returns the worker's encoded ``MarketAnswer`` (its ``code`` says how it went)."""
        with _CORE_ERRORS:
            token = self._core.market_query(instance_id, request)
        try:
            return await self._await(token, timeout)
        except TimeoutError:
            self._core.market_forget(instance_id, token)
            raise MT5ExecError(
                grpc.StatusCode.UNAVAILABLE,
                Reason.TERMINAL_TIMEOUT,
                f"no answer from the terminal within {timeout:g} s",
            ) from None
        except asyncio.CancelledError:  # the caller went: its question goes too
            self._core.market_forget(instance_id, token)
            raise

    def get_account(self, instance_id: str) -> bytes:
        with _CORE_ERRORS:
            return self._core.get_account(instance_id)

    def list_positions(self, instance_id: str, symbol: str) -> bytes:
        with _CORE_ERRORS:
            return self._core.list_positions(instance_id, symbol)

    # -- streams ---------------------------------------------------------------------

    def subscribe(
        self,
        topic: Topic,
        instance_ids: list[str],
        symbols: list[str] | None = None,
        conflate: bool = False,
        counted: bool = True,
    ) -> Subscription:
        """``counted``: false for the server's own subscribers (not in ``coalesce_delay``)."""
        with _CORE_ERRORS:
            core = self._core.subscribe(int(topic), instance_ids, symbols or [], conflate)
        sub = Subscription(self, core)
        self._list(sub, counted)
        return sub

    def coalesce_delay(self) -> float:
        """Seconds a subscriber waits between messages: none with few subscribers (lowest
        latency), growing with their number up to ``stream_coalesce_max_s`` (bigger batches)."""
        count = len(self._subscriptions) - len(self._uncounted)
        return 0.0 if count <= 20 else min(self._coalesce_max_s, count * 0.00005)

    def _list(self, sub: Subscription | OrderSession, counted: bool = True) -> None:
        self._subscriptions[sub.id] = sub
        if not counted:
            self._uncounted.add(sub.id)
        self._core.set_coalescing(self.coalesce_delay() > 0)

    def _unlist(self, sub_id: int) -> Subscription | OrderSession | None:
        sub = self._subscriptions.pop(sub_id, None)
        self._uncounted.discard(sub_id)
        self._core.set_coalescing(self.coalesce_delay() > 0)
        return sub

    def subscribe_executions(
        self, instance_id: str, from_sequence: int, live: bool = False, counted: bool = True
    ) -> Subscription:
        """One instance's execution events after ``from_sequence`` (``live``: after the last
        one): missed ones, then live. Its headers name the sequence it starts after.
        ``counted`` as for ``subscribe``."""
        with _CORE_ERRORS:
            core, after = self._core.subscribe_executions(instance_id, from_sequence, live)
        sub = Subscription(self, core, headers=((START_SEQUENCE_HEADER, str(after)),))
        self._list(sub, counted)
        return sub

    def _forget(self, sub: Subscription) -> None:
        if self._unlist(sub.id) is not None:
            self._core.unsubscribe(sub._core)

    def end_streams(self, error: MT5ExecError) -> None:
        for sub in list(self._subscriptions.values()):
            if isinstance(sub, Subscription):
                sub.end(error)
