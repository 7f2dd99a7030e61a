"""Execution and instance events to Redis Streams, ticks to pub/sub.

An execution stream (``<prefix>executions:<instance_id>``) has one entry per engine event,
with the engine's sequence number: a follower reads the last entry back after a reconnection
and resumes the engine's subscription from it, so the stream has no gap and no duplicate. The
engine keeps no log of instance events: the mirror buffers them while Redis is away and numbers
them itself (``<prefix>instance_events``)."""

from __future__ import annotations

import collections
import time
from typing import Any

from mt5exec.engine import Engine
from mt5exec.errors import MT5ExecError
from mt5exec.mirror.client import Batch, Connection
from mt5exec.mirror.flush import Check
from mt5exec.mirror.keys import Keys, Result, as_json, compact
from mt5exec.mirror.state import Resync, queue_order
from mt5exec.mirror.stats import MirrorStats
from mt5exec.v1 import common_pb2, stream_pb2

# Orders whose fills are summed in memory (execution_result), oldest forgotten first.
_RESULTS_MAX = 200_000
# What one read of the engine's kept events may take (encoded on the event loop).
_TAKE_BYTES = 64 << 10


async def last_entry(client: Connection, stream: str) -> dict[str, str] | None:
    """The fields of a stream's last entry (None: no such stream, or empty)."""
    entries = await client.call("xrevrange", stream, count=1)
    fields = entries[0][1] if entries else None
    return None if fields is None else {str(k): str(v) for k, v in fields.items()}


class ExecutionWriter:
    """Writes an instance's execution events: the keys of their orders, then their entries."""

    def __init__(self, keys: Keys, stats: MirrorStats, maxlen: int, ttl_s: float) -> None:
        self._keys = keys
        self._stats = stats
        self._maxlen = maxlen
        self._ttl_s = ttl_s
        self.results: dict[tuple[str, str], Result] = {}
        # Instances whose kept fills are summed in ``results`` (by ``load_results``).
        self._loaded: set[str] = set()

    def _result(self, fill: common_pb2.Fill) -> Result:
        key = (fill.instance_id, fill.client_order_id)
        result = self.results.get(key)
        if result is None:
            if len(self.results) >= _RESULTS_MAX:
                for old in list(self.results)[: _RESULTS_MAX // 2]:
                    del self.results[old]
            result = self.results[key] = Result()
        return result

    async def load_results(self, engine: Engine, instance_id: str) -> None:
        """Sums the fills of the execution events the engine keeps for an instance (once per
        instance and server process): ``execution_result`` is summed in memory from the fills
        the mirror writes, and a new server process's resync writes it again from these."""
        if instance_id in self._loaded:
            return
        try:
            end = engine.last_sequence(instance_id)
            sub = engine.subscribe_executions(instance_id, 0, counted=False) if end else None
        except MT5ExecError:
            return
        self._loaded.add(instance_id)
        if sub is None:
            return
        try:
            seen = 0
            while seen < end:
                raw = await sub.next(_TAKE_BYTES)
                for event in stream_pb2.StreamExecutionsResponse.FromString(raw).events:
                    seen = event.sequence
                    if event.WhichOneof("event") == "fill":
                        self._result(event.fill).add(event.fill)
        except MT5ExecError:
            return
        finally:
            sub.close()

    def queue(
        self,
        pipe: Batch,
        instance_id: str,
        events: list[common_pb2.ExecutionEvent],
        stream_exists: bool,
    ) -> Check:
        """Queues the writes of ``events`` (after the last sequence written, in order); the
        check of their replies.

        The check raises Resync: the stream was there and is gone (Redis lost what the
        mirror wrote).
        """
        keys, ttl = self._keys, self._ttl_s
        stream = keys.executions(instance_id)
        # The entries first (one per event), then the keys of each order once: its last
        # state in the batch, its fills summed.
        orders: dict[str, tuple[common_pb2.Order, str]] = {}
        filled: set[str] = set()
        for event in events:
            kind = event.WhichOneof("event")
            if kind == "order_update":
                order = event.order_update
                data = as_json(order)
                orders[order.client_order_id] = (order, data)
            elif kind == "fill":
                fill = event.fill
                self._result(fill).add(fill)
                filled.add(fill.client_order_id)
                data = as_json(fill)
            else:
                data = "{}"
            fields: dict[str, str | int] = {
                "sequence": event.sequence,
                "type": kind or "",
                "data": data,
            }
            if event.refusals:
                fields["refusals"] = event.refusals
            pipe.xadd(
                stream,
                fields,
                maxlen=self._maxlen,
                # Only the first entry makes the stream: one found missing later was removed.
                nomkstream=stream_exists or event is not events[0],
            )
        for cid, (order, data) in orders.items():
            queue_order(pipe, keys, order, self.results.get((instance_id, cid)), ttl, data)
            filled.discard(cid)
        px = int(ttl * 1000) if ttl else None
        for cid in filled:
            result = self.results[(instance_id, cid)]
            pipe.set(keys.execution("execution_result", instance_id, cid), result.as_json(), px=px)
        last = events[-1]

        def check(results: list[Any]) -> None:
            if any(added is None for added in results[: len(events)]):
                raise Resync(f"{stream} is gone")
            self._stats.written[instance_id] = last.sequence
            self._stats.stream_entries += len(events)
            self._stats.lag_seconds = max(0.0, time.time() - last.time.ToMilliseconds() / 1000.0)

        return check


class InstanceEvents:
    """Instance events as they come, kept (up to ``limit``) until written to their stream;
    each numbered by the mirror and marked with ``event_id`` (this server's token and its
    index), so that what a broken pipeline wrote is recognised when the mirror resumes."""

    def __init__(self, token: str, stats: MirrorStats, limit: int = 10_000) -> None:
        self._token = token
        self._stats = stats
        self._buffer: collections.deque[tuple[int, common_pb2.InstanceEvent]] = collections.deque()
        self._limit = limit
        self._index = 0
        self.sequence = 0  # the last written

    def add(self, raw: bytes) -> list[str]:
        """Buffers the events of an encoded StreamInstanceEventsResponse; returns their
        instance ids."""
        ids = []
        for event in stream_pb2.StreamInstanceEventsResponse.FromString(raw).events:
            self._index += 1
            self._buffer.append((self._index, event))
            ids.append(event.instance_id)
        while len(self._buffer) > self._limit:
            self._buffer.popleft()
            self._stats.events_lost += 1
        return ids

    def __bool__(self) -> bool:
        return bool(self._buffer)

    async def resume(self, client: Connection, stream: str) -> None:
        """Continues the numbering after the stream's last entry, and drops what a broken
        pipeline of this server had written already."""
        last = await last_entry(client, stream)
        if last is None:
            return
        self.sequence = max(self.sequence, int(last["sequence"]))
        token, _, index = last.get("event_id", "").rpartition(":")
        if token == self._token:
            while self._buffer and self._buffer[0][0] <= int(index):
                self._buffer.popleft()

    def queue(self, pipe: Batch, stream: str, maxlen: int) -> Check | None:
        """Queues the entries of everything buffered; the check of their replies removes
        them from the buffer (None: nothing buffered)."""
        batch = list(self._buffer)
        if not batch:
            return None
        sequence = self.sequence
        for index, event in batch:
            sequence += 1
            fields: dict[str, str | int] = {
                "sequence": sequence,
                "event_id": f"{self._token}:{index}",
                "instance_id": event.instance_id,
                "type": "instance_event",
                "time": event.time.ToMilliseconds(),
                "data": as_json(event),
            }
            pipe.xadd(stream, fields, maxlen=maxlen)

        def check(results: list[Any]) -> None:
            self.sequence = sequence
            # By index: the buffer may have dropped its oldest meanwhile.
            while self._buffer and self._buffer[0][0] <= batch[-1][0]:
                self._buffer.popleft()
            self._stats.stream_entries += len(batch)

        return check


def queue_ticks(pipe: Batch, keys: Keys, raw: bytes) -> None:
    """Queues the publication of the ticks of an encoded StreamTicksResponse: one message per
    instance, the JSON array of its ticks in the batch."""
    by_instance: dict[str, list[dict[str, object]]] = {}
    for tick in stream_pb2.StreamTicksResponse.FromString(raw).ticks:
        by_instance.setdefault(tick.instance_id, []).append(
            {
                "symbol": tick.symbol,
                "bid": tick.bid,
                "ask": tick.ask,
                "last": tick.last,
                "volume": tick.volume,
                "time_msc": tick.time.ToMilliseconds(),
            }
        )
    for instance_id, ticks in by_instance.items():
        pipe.publish(keys.ticks(instance_id), compact(ticks))
