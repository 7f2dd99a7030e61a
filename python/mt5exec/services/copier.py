"""The copy relations of OrderService (Create/List/Get/DeleteCopyRelation): who may link
which instances, and the relations as desired state on disk (``copy_relations.json`` in the
data directory, written atomically on every change and given back to the engine at start).
Their statistics, the copies refused for good and the closes owed (a removed relation's too)
go to ``copy_stats.json`` every few seconds when they changed, when a relation is removed, and
when the server stops, and continue from there after a restart.

The copying itself is the engine's (rust_core/src/copier/, docs/copier.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
import uuid
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import json_format

from mt5exec import _core, registry, templates
from mt5exec.auth import principal as auth
from mt5exec.engine import Engine
from mt5exec.errors import MT5ExecError, invalid, not_found
from mt5exec.files import atomic_write
from mt5exec.reasons import Reason
from mt5exec.v1 import order_pb2

log = logging.getLogger("mt5exec.copier")

FILE_NAME = "copy_relations.json"
VERSION = 1
STATS_FILE_NAME = "copy_stats.json"
# How often the relations' statistics are saved (when they changed).
STATS_EVERY_S = 2.0


def _relation_not_found(relation_id: str) -> MT5ExecError:
    return not_found(
        "relation_id", Reason.RELATION_NOT_FOUND, f"relation_id: no copy relation '{relation_id}'"
    )


def copy_defaults(runtime: templates.RuntimeConfig | None) -> _core.CopyDefaults:
    """A follower's defaults for its copies (docs/copier.md), from its runtime config (None:
    the packaged defaults): execution.json's lot, risk percent and stops, and its deviation
    capped by instance.json's slippage_limit (whole points, at least 1; 0: no cap)."""
    execution = runtime.execution if runtime else templates.ExecutionSection()
    limit = (
        runtime.instance.slippage_limit if runtime else templates.InstanceSection().slippage_limit
    )
    deviation = execution.deviation_points
    if limit > 0:
        cap = max(1, math.floor(limit))
        deviation = min(deviation, cap) if deviation else cap
    return _core.CopyDefaults(
        lot_size=execution.lot_size,
        risk_percent=execution.risk_percent,
        stop_loss_points=execution.stop_loss,
        take_profit_points=execution.take_profit,
        deviation_points=deviation,
    )


def _state_item(s: _core.CopyState) -> dict[str, object]:
    """A relation's state as saved in copy_stats.json."""
    return {
        "owner": s.owner,
        "relation_id": s.relation_id,
        "incarnation": s.incarnation,
        "copies": s.copies,
        "skipped": dict(s.skipped),
        "fills": s.fills,
        "slippage_sum": s.slippage_sum,
        "slippage_max": s.slippage_max,
        "refused": s.refused,
        "refused_pending": s.refused_pending,
        "owed": [list(o) for o in s.owed],
    }


def _state_of(item: dict[str, Any]) -> _core.CopyState:
    """A relation's saved state (a file of an older version lacks the later keys)."""
    return _core.CopyState(
        owner=item["owner"],
        relation_id=item["relation_id"],
        incarnation=item["incarnation"],
        copies=item["copies"],
        skipped=list(item["skipped"].items()),
        fills=item["fills"],
        slippage_sum=item["slippage_sum"],
        slippage_max=item["slippage_max"],
        refused=item["refused"],
        refused_pending=item.get("refused_pending", []),
        owed=[(int(p), float(v), int(d), str(a)) for p, v, d, a in item.get("owed", [])],
    )


class CopyRelations:
    """The relation RPCs, called by OrderService."""

    def __init__(self, engine: Engine, data_dir: Path, instances_dir: Path) -> None:
        self._engine = engine
        self._path = data_dir / FILE_NAME
        self._instances_dir = instances_dir
        # Saves one at a time, each writing the relations as they are when its turn comes:
        # the file ends as the last change left them.
        self._saving = asyncio.Lock()
        self._stats_path = data_dir / STATS_FILE_NAME
        self._stats_written = b""
        self._stats_saving = asyncio.Lock()
        self._stats_task: asyncio.Task[None] | None = None

    def _defaults(self, owner: str, instance_id: str) -> _core.CopyDefaults:
        """The follower's defaults, from its runtime config (unreadable: the packaged ones)."""
        path = templates.runtime_config_path(self._instances_dir / owner / instance_id)
        try:
            runtime = templates.RuntimeConfig.from_json(path.read_text(), str(path))
        except (OSError, UnicodeDecodeError, templates.TemplateError) as e:
            log.warning("copies to %s use the packaged defaults: %s", instance_id, e)
            runtime = None
        return copy_defaults(runtime)

    def _owner_on_disk(self, instance_id: str) -> str | None:
        """The owner of a recorded instance (None: no such instance)."""
        for path in self._instances_dir.glob(f"*/{instance_id}/{registry.RECORD_NAME}"):
            return path.parent.parent.name
        return None

    def _saved(
        self,
    ) -> tuple[dict[tuple[str, str, int], _core.CopyState], list[tuple[bytes, _core.CopyState]]]:
        """The relations' saved states, by (owner, id, incarnation), and the removed relations
        that still owed closes (encoded, with their state)."""
        try:
            data = json.loads(self._stats_path.read_bytes())
            states = [_state_of(item) for item in data["relations"]]
            removed = [
                (
                    json_format.ParseDict(
                        item["relation"], order_pb2.CopyRelation()
                    ).SerializeToString(),
                    _state_of(item),
                )
                for item in data.get("removed", [])
            ]
        except FileNotFoundError:
            return {}, []
        except (
            OSError,
            ValueError,
            KeyError,
            TypeError,
            AttributeError,
            json_format.ParseError,
        ) as e:
            log.error("copy relation statistics not restored: %s: %s", self._stats_path, e)
            return {}, []
        return {(s.owner, s.relation_id, s.incarnation): s for s in states}, removed

    def _stats_body(self) -> bytes:
        relations = [_state_item(s) for s in self._engine.copy_states()]
        removed = [
            {
                "relation": json_format.MessageToDict(
                    order_pb2.CopyRelation.FromString(raw), preserving_proto_field_name=True
                ),
                **_state_item(s),
            }
            for raw, s in self._engine.removed_copy_states()
        ]
        return json.dumps({"version": VERSION, "relations": relations, "removed": removed}).encode()

    async def _save_stats(self) -> None:
        """Writes the statistics off the event loop when they changed, one write at a time:
        a save cancelled (the server stopping) still holds its turn until its write has
        ended, so that no older body lands after a newer one."""
        async with self._stats_saving:
            body = self._stats_body()
            if body == self._stats_written:
                return
            write = asyncio.ensure_future(asyncio.to_thread(atomic_write, self._stats_path, body))
            try:
                await asyncio.shield(write)
            finally:
                if not write.done():
                    await asyncio.wait([write])
                    if not write.cancelled() and write.exception() is not None:
                        log.warning("copy relation statistics not saved: %s", write.exception())
            self._stats_written = body

    async def _keep_stats(self) -> None:
        """Saves the statistics when they changed, every few seconds (the last save is
        close's)."""
        while True:
            await asyncio.sleep(STATS_EVERY_S)
            try:
                await self._save_stats()
            except OSError as e:
                log.warning("copy relation statistics not saved: %s", e)

    async def close(self) -> None:
        """The server stopping (its workers stopped): the periodic saves end, the write under
        way (if any) ends, and the statistics are saved a last time."""
        task, self._stats_task = self._stats_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        try:
            await self._save_stats()
        except OSError as e:
            log.warning("copy relation statistics not saved at the end: %s", e)

    def _restore_removed(self, removed: list[tuple[bytes, _core.CopyState]]) -> None:
        """The removed relations that owed closes when the server stopped: kept until those
        are made (their follower gone or another owner's: dropped)."""
        for raw, state in removed:
            relation = order_pb2.CopyRelation.FromString(raw)
            if self._owner_on_disk(relation.follower_instance_id) != relation.owner:
                log.warning(
                    "closes owed by removed copy relation %r dropped: its follower was deleted",
                    relation.relation_id,
                )
                continue
            try:
                self._engine.restore_removed_copy_relation(
                    raw, self._defaults(relation.owner, relation.follower_instance_id), state
                )
            except MT5ExecError as e:
                log.error(
                    "closes owed by copy relation %r not restored: %s", relation.relation_id, e
                )

    def restore(self) -> int:
        """Gives the engine every saved relation (with its saved statistics); a relation it
        refuses is logged and left in the file, one naming an instance that no longer exists
        (or whose follower has another owner now) is dropped from it. Returns how many were
        restored. Starts saving the statistics (inside the server's event loop)."""
        with contextlib.suppress(RuntimeError):  # no running loop: nothing saved
            self._stats_task = asyncio.get_running_loop().create_task(self._keep_stats())
        states, removed = self._saved()
        self._restore_removed(removed)
        try:
            data = json.loads(self._path.read_bytes())
        except FileNotFoundError:
            return 0
        except (OSError, ValueError) as e:
            log.error("copy relations not restored: %s: %s", self._path, e)
            return 0
        restored = 0
        dropped = False
        for item in data.get("relations", []):
            try:
                relation = json_format.ParseDict(item, order_pb2.CopyRelation())
                if self._owner_on_disk(relation.follower_instance_id) != relation.owner or (
                    relation.master_instance_id
                    and self._owner_on_disk(relation.master_instance_id) is None
                ):
                    log.warning(
                        "copy relation %r dropped: its instances were deleted",
                        relation.relation_id,
                    )
                    dropped = True
                    continue
                key = (relation.owner, relation.relation_id, relation.created_time.seconds)
                self._engine.add_copy_relation(
                    relation.SerializeToString(),
                    created=False,
                    defaults=self._defaults(relation.owner, relation.follower_instance_id),
                    state=states.get(key),
                )
                restored += 1
            except (MT5ExecError, json_format.ParseError) as e:
                log.error("copy relation %r not restored: %s", item.get("relation_id"), e)
        if dropped:
            try:
                self._write()
            except OSError as e:
                log.error("copy relations not saved after dropping some: %s", e)
        return restored

    async def instance_deleted(self, instance_id: str) -> None:
        """Removes every relation naming a deleted instance (master or follower; its copies
        stay open), lets go of the closes owed to it as a follower, and saves the rest: an
        instance created again under the id, perhaps by another owner, is no relation's. A
        failed save is logged (the relations are dropped at the next start anyway)."""
        if not self._engine.copy_instance_deleted(instance_id):
            return
        try:
            await self._save()
        except OSError as e:
            log.error("copy relations of deleted instance %s not saved: %s", instance_id, e)
        await self._save_removed_stats()

    async def _save_removed_stats(self) -> None:
        """After a relation was removed: the closes it still owes are saved now (not within
        the next few seconds), so that a restart, even a kill -9, does not drop them."""
        try:
            await self._save_stats()
        except OSError as e:
            log.warning("copy relation statistics not saved: %s", e)

    def _body(self) -> bytes:
        relations = [
            json_format.MessageToDict(
                order_pb2.CopyRelation.FromString(raw), preserving_proto_field_name=True
            )
            for raw in self._engine.copy_relations()
        ]
        return json.dumps({"version": VERSION, "relations": relations}, indent=1).encode()

    def _write(self) -> None:
        atomic_write(self._path, self._body())

    async def _save(self) -> None:
        """Writes (and fsyncs) the file off the event loop, after the saves before."""
        async with self._saving:
            await asyncio.to_thread(atomic_write, self._path, self._body())

    def _owner_of(self, instance_id: str, field: str) -> str:
        """The owner of an instance the caller may see (another owner's: NOT_FOUND)."""
        try:
            owner = self._engine.get_instance(instance_id).owner
        except MT5ExecError as e:
            raise MT5ExecError(e.code, e.reason, e.message, field) from None
        if not auth.current().sees(owner):
            raise not_found(
                field, Reason.INSTANCE_NOT_FOUND, f"{field}: no instance '{instance_id}'"
            )
        return owner

    def _visible(self, relation_id: str, owner: str) -> order_pb2.GetCopyRelationResponse:
        """The caller's relation of the id (ids are their owner's own: another owner's is
        NOT_FOUND, as one that does not exist). An admin names the owner (``owner``) when
        several owners have the id."""
        principal = auth.current()
        if principal.owner is not None:
            if owner and owner != principal.owner:
                raise _relation_not_found(relation_id)
            owner = principal.owner
        elif not owner:
            owners = [
                r.owner
                for r in map(order_pb2.CopyRelation.FromString, self._engine.copy_relations())
                if r.relation_id == relation_id
            ]
            if len(owners) > 1:
                raise invalid(
                    "owner",
                    Reason.FIELD_REQUIRED,
                    f"owner: {len(owners)} owners have a copy relation '{relation_id}': "
                    "name the owner",
                )
            owner = owners[0] if owners else ""
        try:
            return order_pb2.GetCopyRelationResponse.FromString(
                self._engine.get_copy_relation(owner, relation_id)
            )
        except MT5ExecError:
            raise _relation_not_found(relation_id) from None

    async def create(
        self, request: order_pb2.CreateCopyRelationRequest
    ) -> order_pb2.CreateCopyRelationResponse:
        relation = order_pb2.CopyRelation()
        relation.CopyFrom(request.relation)
        # Before the instances are looked up: a missing one is the request's fault.
        if not relation.follower_instance_id:
            raise invalid(
                "relation.follower_instance_id",
                Reason.FIELD_REQUIRED,
                "relation.follower_instance_id: required",
            )
        if not relation.master_instance_id and not relation.signal_source:
            raise invalid(
                "relation.master_instance_id",
                Reason.FIELD_REQUIRED,
                "relation.master_instance_id or relation.signal_source: exactly one is required",
            )
        owner = self._owner_of(relation.follower_instance_id, "relation.follower_instance_id")
        if relation.master_instance_id:
            master_owner = self._owner_of(
                relation.master_instance_id, "relation.master_instance_id"
            )
            if master_owner != owner and auth.current().owner is not None:
                raise not_found(
                    "relation.master_instance_id",
                    Reason.INSTANCE_NOT_FOUND,
                    f"relation.master_instance_id: no instance '{relation.master_instance_id}'",
                )
        if not relation.relation_id:
            relation.relation_id = uuid.uuid4().hex[:16]
        relation.owner = owner
        relation.created_time.FromNanoseconds(time.time_ns())
        added = self._engine.add_copy_relation(
            relation.SerializeToString(),
            created=True,
            defaults=self._defaults(owner, relation.follower_instance_id),
        )
        try:
            await self._save()
        except OSError as e:
            # Not saved: not made (it would be gone after a restart), and no copy made for it
            # (its late join runs once it is saved).
            self._engine.remove_copy_relation(owner, relation.relation_id, close=False)
            raise MT5ExecError(
                grpc.StatusCode.UNAVAILABLE,
                Reason.RELATIONS_NOT_SAVED,
                f"the copy relations cannot be saved ({e}); the relation was not made",
            ) from None
        self._engine.copy_late_join(owner, relation.relation_id)
        return order_pb2.CreateCopyRelationResponse(
            relation=order_pb2.CopyRelation.FromString(added)
        )

    async def list(
        self, request: order_pb2.ListCopyRelationsRequest
    ) -> order_pb2.ListCopyRelationsResponse:
        principal = auth.current()
        response = order_pb2.ListCopyRelationsResponse()
        for raw in self._engine.copy_relations():
            relation = order_pb2.CopyRelation.FromString(raw)
            if not principal.sees(relation.owner):
                continue
            if request.master_instance_id and (
                relation.master_instance_id != request.master_instance_id
            ):
                continue
            response.relations.append(relation)
        return response

    async def get(
        self, request: order_pb2.GetCopyRelationRequest
    ) -> order_pb2.GetCopyRelationResponse:
        return self._visible(request.relation_id, request.owner)

    async def delete(
        self, request: order_pb2.DeleteCopyRelationRequest
    ) -> order_pb2.DeleteCopyRelationResponse:
        relation = self._visible(request.relation_id, request.owner).relation
        close = relation.on_delete == order_pb2.COPY_ON_DELETE_CLOSE
        # Copying stops first; the file follows (a failed save is retried by the next one).
        self._engine.remove_copy_relation(relation.owner, relation.relation_id, close)
        try:
            await self._save()
        except OSError as e:
            raise MT5ExecError(
                grpc.StatusCode.UNAVAILABLE,
                Reason.RELATIONS_NOT_SAVED,
                f"the relation stopped copying but the copy relations cannot be saved ({e}): "
                "it comes back after a restart unless a later change is saved",
            ) from None
        await self._save_removed_stats()
        return order_pb2.DeleteCopyRelationResponse()
