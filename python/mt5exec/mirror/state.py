"""The mirror's keys of instance state: instance, health, account and positions, written from
the engine's state (what GetInstance, GetInstanceStats, GetAccount and ListPositions answer)
when it changed, and all of them on a full resync (with the keys of the orders the engine
holds)."""

from __future__ import annotations

import time
from collections.abc import Iterable

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline

from mt5exec.engine import Engine
from mt5exec.errors import MT5ExecError
from mt5exec.mirror.keys import INSTANCE_KEYS, Keys, Result, as_json, execution_status, health
from mt5exec.v1 import common_pb2, instance_pb2, order_pb2

# Orders listed per call of a resync (the engine's largest page).
_PAGE = 1000


class Resync(Exception):
    """Redis lost what the mirror wrote (a FLUSHALL, a restart without persistence): every key
    is written again."""


class InstanceKeys:
    """Writes the per-instance keys, each only when its value changed since it was written
    (a cache of what Redis holds, emptied by a resync)."""

    def __init__(self, keys: Keys, engine: Engine) -> None:
        self._keys = keys
        self._engine = engine
        self._written: dict[str, str | None] = {}
        self._positions: dict[str, dict[str, str]] = {}
        self._known: set[str] = set()

    def reset(self) -> None:
        self._written.clear()
        self._positions.clear()
        self._known.clear()

    def _values(self, instance: common_pb2.Instance) -> dict[str, str | None]:
        """Every string key of an instance; None: the key must not exist."""
        iid = instance.instance_id
        status = health(instance.state)
        passing = instance.state == common_pb2.INSTANCE_STATE_READY
        values: dict[str, str | None] = {
            "instance_state": as_json(instance),
            "instance_health": status,
            "instance_failure": instance.state_reason or None if status != "UP" else None,
            "health_check": "PASS" if passing else "FAIL",
            "health_check_error": None if passing else instance.state_reason or "NOT_READY",
            "health_check_latency": None,
            "account_state": None,
        }
        engine = self._engine
        try:
            stats = instance_pb2.InstanceStats.FromString(engine.instance_stats(iid))
            if stats.HasField("heartbeat_age"):
                age = stats.heartbeat_age.ToMilliseconds()
                values["health_check_latency"] = f"{age}ms"
            account = order_pb2.GetAccountResponse.FromString(engine.get_account(iid))
            if account.HasField("account"):
                values["account_state"] = as_json(account.account)
        except MT5ExecError:
            pass  # not running (no account yet), or just deleted: what it has is written
        return {self._keys.instance(name, iid): value for name, value in values.items()}

    def _position_fields(self, instance_id: str) -> dict[str, str]:
        try:
            raw = self._engine.list_positions(instance_id, "")
        except MT5ExecError:
            return {}
        positions = order_pb2.ListPositionsResponse.FromString(raw).positions
        return {str(p.position_id): as_json(p) for p in positions}

    def write(
        self,
        pipe: Pipeline,
        instances: Iterable[common_pb2.Instance],
        *,
        full: bool = False,
        only: set[str] | None = None,
    ) -> set[str]:
        """Queues the writes of what changed (everything with ``full``) of the instances in
        ``only`` (None: all), and the removal of the keys of instances gone since; returns
        the ids of the instances there are."""
        written = self._written
        present: set[str] = set()
        for instance in instances:
            iid = instance.instance_id
            present.add(iid)
            if only is not None and iid not in only and iid in self._known:
                continue
            for key, value in self._values(instance).items():
                if not full and written.get(key, "") == value:
                    continue
                if value is None:
                    pipe.delete(key)
                else:
                    pipe.set(key, value)
                written[key] = value
            self._write_positions(pipe, iid, full)
            if iid not in self._known:
                pipe.sadd(self._keys.instances, iid)
        for gone in self._known - present:
            self.remove(pipe, gone)
        self._known = present
        return present

    def _write_positions(self, pipe: Pipeline, instance_id: str, full: bool) -> None:
        key = self._keys.instance("positions", instance_id)
        now = self._position_fields(instance_id)
        before = {} if full else self._positions.get(instance_id, {})
        if full:
            pipe.delete(key)
        changed = {k: v for k, v in now.items() if before.get(k) != v}
        if changed:
            pipe.hset(key, mapping=changed)  # type: ignore[arg-type]
        closed = [k for k in before if k not in now]
        if closed:
            pipe.hdel(key, *closed)
        self._positions[instance_id] = now

    def remove(self, pipe: Pipeline, instance_id: str) -> None:
        """Queues the removal of a deleted instance's keys (its stream stays, trimmed)."""
        pipe.delete(*(self._keys.instance(name, instance_id) for name in INSTANCE_KEYS))
        pipe.srem(self._keys.instances, instance_id)
        for name in INSTANCE_KEYS:
            self._written.pop(self._keys.instance(name, instance_id), None)
        self._positions.pop(instance_id, None)
        self._known.discard(instance_id)

    async def forget_stale(self, client: aioredis.Redis, present: set[str]) -> None:
        """Removes the keys of instances Redis lists that the engine no longer has (deleted
        while the mirror was away)."""
        listed = await client.smembers(self._keys.instances)
        stale = {str(i) for i in listed} - present
        if stale:
            pipe = client.pipeline(transaction=False)
            for iid in stale:
                self.remove(pipe, iid)
            await pipe.execute()


async def write_orders(
    client: aioredis.Redis,
    keys: Keys,
    engine: Engine,
    instance_id: str,
    results: dict[tuple[str, str], Result],
    ttl_s: float,
) -> None:
    """The execution keys of every order the engine holds for an instance: the open ones and
    the history of the last ``ttl_s`` (all of it when 0), a page per pipeline."""
    since = None if not ttl_s else time.time_ns() - int(ttl_s * 1e9)
    for history in (False, True):
        token = ""
        while True:
            try:
                raw = engine.list_orders(
                    instance_id,
                    history,
                    from_nanos=since if history else None,
                    page_size=_PAGE,
                    page_token=token,
                )
            except MT5ExecError:
                return
            page = order_pb2.ListOrdersResponse.FromString(raw)
            pipe = client.pipeline(transaction=False)
            for order in page.orders:
                result = results.get((instance_id, order.client_order_id))
                queue_order(pipe, keys, order, result, ttl_s)
            await pipe.execute()
            token = page.next_page_token
            if not token:
                break


def queue_order(
    pipe: Pipeline, keys: Keys, order: common_pb2.Order, result: Result | None, ttl_s: float
) -> None:
    """Queues an order's ``execution_state`` and ``execution_status`` (and its result, when
    its fills are known): those of a finished order expire after ``ttl_s``."""
    iid, cid = order.instance_id, order.client_order_id
    status = execution_status(order.status)
    px = int(ttl_s * 1000) if ttl_s and status != "OPEN" else None
    pipe.set(keys.execution("execution_state", iid, cid), as_json(order), px=px)
    pipe.set(keys.execution("execution_status", iid, cid), status, px=px)
    if result is not None:
        pipe.set(keys.execution("execution_result", iid, cid), result.as_json(), px=px)
