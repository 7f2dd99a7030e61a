"""The mirror's keys of instance state: instance, health, account and positions, written from
the engine's state (what GetInstance, GetInstanceStats, GetAccount and ListPositions answer)
when it changed, and all of them on a full resync (with the keys of the orders the engine
holds)."""

from __future__ import annotations

import time
from collections.abc import Iterable

from mt5exec.engine import Engine
from mt5exec.errors import MT5ExecError
from mt5exec.mirror.client import Batch, Connection
from mt5exec.mirror.keys import INSTANCE_KEYS, Keys, Result, as_json, execution_status, health
from mt5exec.v1 import common_pb2, instance_pb2, order_pb2

# Orders listed per call of a resync: a page is encoded on the event loop, and a page of 100
# holds it for a few ms only.
_PAGE = 100


class Resync(Exception):
    """Redis lost what the mirror wrote (a FLUSHALL, a restart without persistence): every key
    is written again."""


class InstanceKeys:
    """Writes the per-instance keys, each only when its value changed since it was written
    (a cache of what Redis holds, emptied by a resync). What the engine answers is compared
    as bytes first: nothing is encoded as JSON again while it is unchanged."""

    def __init__(self, keys: Keys, engine: Engine) -> None:
        self._keys = keys
        self._engine = engine
        self._written: dict[str, str | None] = {}
        # instance id -> the encoded Instance, Account, positions last written
        self._instance_raw: dict[str, bytes] = {}
        self._account_raw: dict[str, bytes] = {}
        self._positions_raw: dict[str, bytes] = {}
        self._positions: dict[str, dict[str, str]] = {}
        self._known: set[str] = set()

    def reset(self) -> None:
        self._written.clear()
        self._instance_raw.clear()
        self._account_raw.clear()
        self._positions_raw.clear()
        self._positions.clear()
        self._known.clear()

    def _instance_values(self, instance: common_pb2.Instance) -> dict[str, str | None]:
        """The keys an Instance makes; None: the key must not exist."""
        status = health(instance.state)
        passing = instance.state == common_pb2.INSTANCE_STATE_READY
        return {
            "instance_state": as_json(instance),
            "instance_health": status,
            "instance_failure": instance.state_reason or None if status != "UP" else None,
            "health_check": "PASS" if passing else "FAIL",
            "health_check_error": None if passing else instance.state_reason or "NOT_READY",
        }

    def _latency(self, instance_id: str) -> str | None:
        try:
            stats = instance_pb2.InstanceStats.FromString(self._engine.instance_stats(instance_id))
        except MT5ExecError:
            return None
        if not stats.HasField("heartbeat_age") or not stats.worker_pid:
            return None
        return f"{stats.heartbeat_age.ToMilliseconds()}ms"

    def _set(
        self, pipe: Batch, instance_id: str, values: dict[str, str | None], full: bool
    ) -> None:
        written = self._written
        for name, value in values.items():
            key = self._keys.instance(name, instance_id)
            if not full and written.get(key, "") == value:
                continue
            if value is None:
                pipe.delete(key)
            else:
                pipe.set(key, value)
            written[key] = value

    def write(
        self,
        pipe: Batch,
        instances: Iterable[common_pb2.Instance],
        *,
        full: bool = False,
        changed: set[str] | None = None,
        traded: Iterable[str] = (),
    ) -> set[str]:
        """Queues the writes of what changed (everything with ``full``) and the removal of the
        keys of instances gone since; returns the ids of the instances there are. Without
        ``changed`` every key of every instance is looked at (the health check's latency
        too); with it, the instance keys of those in ``changed`` and the account and positions
        of those in ``traded``."""
        present: set[str] = set()
        traded = set(traded)
        for instance in instances:
            iid = instance.instance_id
            present.add(iid)
            every = changed is None or iid not in self._known
            if every or (changed is not None and iid in changed):
                raw = instance.SerializeToString()
                if full or self._instance_raw.get(iid) != raw:
                    self._set(pipe, iid, self._instance_values(instance), full)
                    self._instance_raw[iid] = raw
            if every:
                self._set(pipe, iid, {"health_check_latency": self._latency(iid)}, full)
            if every or iid in traded:
                self._write_account(pipe, iid, full)
                self._write_positions(pipe, iid, full)
            if iid not in self._known:
                pipe.sadd(self._keys.instances, iid)
        for gone in self._known - present:
            self.remove(pipe, gone)
        self._known = present
        return present

    def _write_account(self, pipe: Batch, instance_id: str, full: bool) -> None:
        try:
            raw = self._engine.get_account(instance_id)
        except MT5ExecError:
            return  # not running (no account yet), or just deleted: what it has stays
        if not full and self._account_raw.get(instance_id) == raw:
            return
        self._account_raw[instance_id] = raw
        account = order_pb2.GetAccountResponse.FromString(raw)
        value = as_json(account.account) if account.HasField("account") else None
        self._set(pipe, instance_id, {"account_state": value}, full)

    def _write_positions(self, pipe: Batch, instance_id: str, full: bool) -> None:
        try:
            raw = self._engine.list_positions(instance_id, "")
        except MT5ExecError:
            return
        if not full and self._positions_raw.get(instance_id) == raw:
            return
        self._positions_raw[instance_id] = raw
        positions = order_pb2.ListPositionsResponse.FromString(raw).positions
        now = {str(p.position_id): as_json(p) for p in positions}
        key = self._keys.instance("positions", instance_id)
        before = {} if full else self._positions.get(instance_id, {})
        if full:
            pipe.delete(key)
        changed = {k: v for k, v in now.items() if before.get(k) != v}
        if changed:
            pipe.hset(key, mapping=changed)
        closed = [k for k in before if k not in now]
        if closed:
            pipe.hdel(key, *closed)
        self._positions[instance_id] = now

    def remove(self, pipe: Batch, instance_id: str) -> None:
        """Queues the removal of a deleted instance's keys (its stream stays, trimmed)."""
        pipe.delete(*(self._keys.instance(name, instance_id) for name in INSTANCE_KEYS))
        pipe.srem(self._keys.instances, instance_id)
        for name in INSTANCE_KEYS:
            self._written.pop(self._keys.instance(name, instance_id), None)
        for cache in (self._instance_raw, self._account_raw, self._positions_raw):
            cache.pop(instance_id, None)
        self._positions.pop(instance_id, None)
        self._known.discard(instance_id)

    async def forget_stale(self, client: Connection, present: set[str]) -> None:
        """Removes the keys of instances Redis lists that the engine no longer has (deleted
        while the mirror was away)."""
        listed = await client.call("smembers", self._keys.instances)
        stale = {str(i) for i in listed} - present
        if stale:
            pipe = client.pipeline()
            for iid in stale:
                self.remove(pipe, iid)
            await client.execute(pipe)


async def write_orders(
    client: Connection,
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
            pipe = client.pipeline()
            for order in page.orders:
                result = results.get((instance_id, order.client_order_id))
                queue_order(pipe, keys, order, result, ttl_s)
            await client.execute(pipe)
            token = page.next_page_token
            if not token:
                break


def queue_order(
    pipe: Batch,
    keys: Keys,
    order: common_pb2.Order,
    result: Result | None,
    ttl_s: float,
    data: str | None = None,
) -> None:
    """Queues an order's ``execution_state`` (``data``: its JSON, when made already) and
    ``execution_status`` (and its result, when its fills are known): those of a finished
    order expire after ``ttl_s``."""
    iid, cid = order.instance_id, order.client_order_id
    status = execution_status(order.status)
    px = int(ttl_s * 1000) if ttl_s and status != "OPEN" else None
    state = as_json(order) if data is None else data
    pipe.set(keys.execution("execution_state", iid, cid), state, px=px)
    pipe.set(keys.execution("execution_status", iid, cid), status, px=px)
    if result is not None:
        pipe.set(keys.execution("execution_result", iid, cid), result.as_json(), px=px)
