"""The mirror's life: connect, rebuild every key (a full resync), then follow the engine's
events until Redis fails; back off, connect again, and so on. Nothing here is awaited by an
RPC, and no failure of Redis reaches trading."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from typing import Any

from redis.exceptions import RedisError

from mt5exec.config import RedisConfig
from mt5exec.engine import Engine, Subscription, Topic
from mt5exec.errors import MT5ExecError
from mt5exec.mirror import stats as mirror_stats
from mt5exec.mirror.client import Batch, Connection
from mt5exec.mirror.flush import Check, Flusher
from mt5exec.mirror.keys import Keys
from mt5exec.mirror.state import InstanceKeys, Resync, write_orders
from mt5exec.mirror.streams import ExecutionWriter, InstanceEvents, last_entry, queue_ticks
from mt5exec.reasons import Reason
from mt5exec.v1 import stream_pb2

log = logging.getLogger("mt5exec.mirror")

_BACKOFF_MIN_S = 0.1
_BACKOFF_MAX_S = 5.0
# The shortest time between two writes of an instance's state keys (events in between are
# written together).
_STATE_GAP_S = 0.1
# How long an event waits to be written with those that follow it (the shortest time between
# two batches is [redis] batch_interval_ms: docs/redis.md).
_FIRST_S = 0.005
# What one batch of execution events may take (~300 events: a replay of many is written, and
# encoded on the event loop, a few ms at a time).
_TAKE_BYTES = 64 << 10
# Reasons a subscription ends that end its follower too.
_FINAL = frozenset({Reason.INSTANCE_NOT_FOUND, Reason.SERVER_SHUTTING_DOWN})


def _first(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The error that ended a task group (not the cancellations it caused)."""
    for error in group.exceptions:
        if isinstance(error, BaseExceptionGroup):
            return _first(error)
        if not isinstance(error, asyncio.CancelledError):
            return error
    return group.exceptions[0]


class _Take:
    """What a follower of an instance's executions hands to the flush: the events come, and
    its sequence written so far."""

    def __init__(self, mirror: Mirror, iid: str, sub: Subscription, last: int, exists: bool):
        self.mirror, self.iid, self.sub = mirror, iid, sub
        self.last, self.exists = last, exists
        self.raw = b""

    def collect(self, pipe: Batch) -> Check | None:
        """At the flush: the events taken, with what came meanwhile (concatenated responses
        are one), up to a batch's worth."""
        raw, ready = self.raw, self.sub.ready
        while len(raw) < _TAKE_BYTES and (more := ready(_TAKE_BYTES)):
            raw += more
        response = stream_pb2.StreamExecutionsResponse.FromString(raw)
        events = [e for e in response.events if e.sequence > self.last]
        if not events:
            return None
        mirror = self.mirror
        check = mirror._executions.queue(pipe, self.iid, events, self.exists)

        def checked(results: list[Any]) -> None:
            check(results)
            self.exists, self.last = True, events[-1].sequence
            mirror._traded.add(self.iid)
            mirror._changed.set()

        return checked


class Mirror:
    """Writes the engine's state and events to Redis while the server runs."""

    def __init__(self, config: RedisConfig, engine: Engine) -> None:
        self._config = config
        self._engine = engine
        self._keys = Keys(config.prefix)
        self.stats = mirror_stats.MirrorStats()
        mirror_stats.current = self.stats
        self._token = secrets.token_hex(6)
        self._events = InstanceEvents(self._token, self.stats)
        self._executions = ExecutionWriter(
            self._keys, self.stats, config.stream_maxlen, config.execution_ttl_s
        )
        self._state = InstanceKeys(self._keys, engine)
        # Instances whose state (instance events) or account and positions (fills) changed.
        self._dirty: set[str] = set()
        self._traded: set[str] = set()
        self._changed = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        """Call before instances are made or restored: the instance events are subscribed
        to here, so none of theirs is missed (the engine keeps no log of them)."""
        log.info("Redis mirror: writing to %s", self._config.display_url)
        events = self._engine.subscribe(Topic.INSTANCE_EVENTS, [], counted=False)
        self._tasks = [
            asyncio.create_task(self._buffer_instance_events(events)),
            asyncio.create_task(self._run()),
        ]

    async def close(self) -> None:
        """Stops the mirror after one last write of the instances' state (best effort)."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if mirror_stats.current is self.stats:
            mirror_stats.current = None
        try:
            async with asyncio.timeout(2.0):
                client = await Connection.open(self._config)
                pipe = client.pipeline()
                self._state.write(pipe, self._engine.list_instances())
                await client.execute(pipe)
                await client.close()
        except (TimeoutError, RedisError, OSError) as e:
            log.info("Redis mirror: the last state was not written (%s)", e)

    # -- connection ------------------------------------------------------------------------

    async def _run(self) -> None:
        delay = _BACKOFF_MIN_S
        lost = False
        while True:
            client: Connection | None = None
            try:
                client = await Connection.open(self._config)  # (the password file again)
                await client.call("ping")
                if lost:
                    self.stats.reconnects += 1
                    log.warning("Redis mirror: connected again; rebuilding every key")
                lost, delay = False, _BACKOFF_MIN_S
                await self._session(client)
            except Resync as e:
                log.warning("Redis mirror: %s; rebuilding every key", e)
            except (RedisError, OSError) as e:
                if not lost:
                    log.warning("Redis mirror: %s; reconnecting (trading goes on)", e)
                lost = True
            except Exception:
                log.exception("Redis mirror: failed; starting again")
                lost = True
            finally:
                self.stats.up = False
                if client is not None:
                    # After what its thread still sends: a new connection's resume reads
                    # Redis once nothing of this one can land any more.
                    with contextlib.suppress(RedisError, OSError):
                        await client.close()
            if lost:
                await asyncio.sleep(delay)
                delay = min(delay * 2, _BACKOFF_MAX_S)

    async def _session(self, client: Connection) -> None:
        await self._resync(client)
        self.stats.up = True
        flush = Flusher(client, _FIRST_S, self._config.batch_interval_ms / 1000.0)
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(flush.run())
                group.create_task(self._keep_state(client, flush, group))
                if self._config.ticks:
                    group.create_task(self._publish_ticks(flush))
        except BaseExceptionGroup as group_error:
            raise _first(group_error) from None

    async def _resync(self, client: Connection) -> None:
        """Every key written again from the engine's state; the instance events' numbering
        continued from their stream."""
        keys, state = self._keys, self._state
        state.reset()
        instances = self._engine.list_instances()
        pipe = client.pipeline()
        pipe.hset(
            keys.marker,
            mapping={"token": self._token, "resynced_unix_ms": int(time.time() * 1000)},
        )
        present = state.write(pipe, instances, full=True)
        await client.execute(pipe)
        await state.forget_stale(client, present)
        for instance in instances:
            await self._executions.load_results(self._engine, instance.instance_id)
            await write_orders(
                client,
                keys,
                self._engine,
                instance.instance_id,
                self._executions.results,
                self._config.execution_ttl_s,
            )
        await self._events.resume(client, keys.instance_events)
        self.stats.resyncs += 1

    # -- state keys and instance events ----------------------------------------------------

    async def _keep_state(
        self, client: Connection, flush: Flusher, group: asyncio.TaskGroup
    ) -> None:
        """Writes what changed (the instances named by events at once, every instance each
        refresh interval), follows each instance's executions, checks Redis still has the
        mirror's keys."""
        interval = self._config.refresh_interval_ms / 1000.0
        following: dict[str, asyncio.Task[None]] = {}
        next_full = 0.0
        while True:
            instances = self._engine.list_instances()
            for instance in instances:
                iid = instance.instance_id
                task = following.get(iid)
                if task is None or task.done():
                    following[iid] = group.create_task(self._follow_executions(client, flush, iid))
            now = time.monotonic()
            periodic = now >= next_full
            if periodic:
                next_full = now + interval

            def collect(pipe: Batch, periodic: bool = periodic) -> Check:
                # (at the flush: what changed until then is in this batch)
                self._changed.clear()
                changed, self._dirty = self._dirty, set()
                traded, self._traded = self._traded, set()
                pipe.exists(self._keys.marker)
                self._state.write(
                    pipe,
                    self._engine.list_instances(),
                    changed=None if periodic else changed,
                    traded=traded,
                )
                events = self._events.queue(
                    pipe, self._keys.instance_events, self._config.stream_maxlen
                )

                def check(results: list[object]) -> None:
                    if not results[0]:
                        raise Resync(f"{self._keys.marker} is gone")
                    if events is not None:
                        events(results)

                return check

            await flush.submit(collect)
            if not self._dirty and not self._traded and not self._events:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(max(0.0, next_full - time.monotonic())):
                        await self._changed.wait()
            await asyncio.sleep(_STATE_GAP_S)

    async def _buffer_instance_events(self, sub: Subscription) -> None:
        """Instance events into the buffer, Redis up or down (the engine keeps no log of them
        to resume from)."""
        while True:
            try:
                async for raw in sub.messages(1 << 20):
                    self._dirty.update(self._events.add(raw))
                    self._changed.set()
            except MT5ExecError as e:
                if e.reason == Reason.SERVER_SHUTTING_DOWN:
                    return
                log.warning("Redis mirror: instance events ended (%s); again", e.reason)
            sub = self._engine.subscribe(Topic.INSTANCE_EVENTS, [], counted=False)

    # -- executions ------------------------------------------------------------------------

    async def _follow_executions(self, client: Connection, flush: Flusher, iid: str) -> None:
        """An instance's execution events into its stream, from the last one the stream has:
        no gap, no duplicate."""
        last_fields = await last_entry(client, self._keys.executions(iid))
        last = int(last_fields["sequence"]) if last_fields else 0
        exists = last_fields is not None
        while True:
            try:
                sub = self._engine.subscribe_executions(iid, last, counted=False)
            except MT5ExecError as e:
                if e.reason != Reason.SEQUENCE_EXPIRED:
                    return
                # Not kept any more: from the oldest kept (the stream has a gap; counted).
                log.warning("Redis mirror: %s: %s", iid, e)
                self.stats.sequence_gaps += 1
                try:
                    sub = self._engine.subscribe_executions(iid, 0, counted=False)
                except MT5ExecError:
                    return
            take = _Take(self, iid, sub, last, exists)
            try:
                while True:
                    take.raw = await sub.next(_TAKE_BYTES)
                    await flush.submit(take.collect)
                    last, exists = take.last, take.exists
            except MT5ExecError as e:
                if e.reason in _FINAL:
                    return
                log.info("Redis mirror: %s executions ended (%s); resuming", iid, e)
                await asyncio.sleep(_BACKOFF_MIN_S)
            finally:
                sub.close()

    # -- ticks -----------------------------------------------------------------------------

    async def _publish_ticks(self, flush: Flusher) -> None:
        while True:
            sub = self._engine.subscribe(Topic.TICKS, [], counted=False)
            try:
                while True:
                    raw = await sub.next(1 << 20)

                    def collect(pipe: Batch, raw: bytes = raw, sub: Subscription = sub) -> None:
                        # At the flush: every tick that came meanwhile, in one message per
                        # instance.
                        while (more := sub.ready(1 << 20)) is not None:
                            raw += more
                        queue_ticks(pipe, self._keys, raw)

                    await flush.submit(collect)
            except MT5ExecError as e:
                if e.reason == Reason.SERVER_SHUTTING_DOWN:
                    return
            finally:
                sub.close()
