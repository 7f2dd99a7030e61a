"""Risk controls: InstanceService's risk RPCs (``RiskControls``: runtime limits, trading
state, kill switch), owners' policies and kill switch scopes.

The checks themselves run in the engine (``rust_core/src/risk``); this module decides what
they are configured with and keeps it on disk:

- ``<data_dir>/risk_owners.json`` (or ``[risk] owners_file``): per-owner instrument
  whitelists and order rates, read at start;
- ``<data_dir>/kill_switch.json``: engaged owner and global kill switches, so that they hold
  across a restart and also cover instances created while they are engaged (an instance's own
  kill switch is in its ``instance.json``).

Fail closed: what restricts trading (a kill switch, HALTED or REDUCE_ONLY, a tighter limit) is
in force in the engine before it is written, and stays in force when it cannot be written
(the call answers UNAVAILABLE ``STATE_NOT_PERSISTED``, the save is retried in the background
and an instance event says so). What loosens is written first and in force only once written.

The changes are made one at a time (``_control``), each written in a thread and answered once
written, so that they land in the order they were made and the event loop never waits for a
disk. A restriction is in force at once, also while it waits for its turn: the changes ahead
of it then make only what it leaves (``_held``, ``_engaging``, ``_engaging_scopes``).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import logging
import math
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import grpc

from mt5exec import registry
from mt5exec.engine import Engine, RiskDayState
from mt5exec.errors import MT5ExecError, instance_not_found, invalid
from mt5exec.files import atomic_write
from mt5exec.reasons import Reason
from mt5exec.registry import InstanceRecord, PendingSaves, Take
from mt5exec.server.handlers import Context
from mt5exec.server.state import AppState
from mt5exec.services import config_update, validation
from mt5exec.v1 import common_pb2, instance_pb2

log = logging.getLogger("mt5exec.instances")

OwnerPolicies = dict[str, tuple[list[str], float]]

KILL_SWITCH_FILE = "kill_switch.json"

T = TypeVar("T")
# A change of limits and trading state asked, validated against the record as it is.
Requested = Callable[
    [InstanceRecord], tuple[common_pb2.RiskLimits | None, common_pb2.TradingState | None]
]


def load_owner_policies(path: Path) -> OwnerPolicies:
    """Reads the owners file (missing: no policies). Raises ValueError naming the entry."""
    if not path.exists():
        return {}
    data = json.loads(path.read_text())
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected an object keyed by owner")
    policies: OwnerPolicies = {}
    for owner, entry in data.items():
        where = f"{path}: {owner}"
        if not isinstance(entry, dict) or set(entry) - {"allowed_symbols", "orders_per_second"}:
            raise ValueError(f"{where}: expected {{allowed_symbols, orders_per_second}}")
        symbols = entry.get("allowed_symbols", [])
        if not isinstance(symbols, list) or not all(isinstance(s, str) and s for s in symbols):
            raise ValueError(f"{where}.allowed_symbols: expected a list of symbol names")
        rate = entry.get("orders_per_second", 0)
        if isinstance(rate, bool) or not isinstance(rate, int | float):
            raise ValueError(f"{where}.orders_per_second: expected a number")
        if not (math.isfinite(rate) and rate >= 0):
            raise ValueError(f"{where}.orders_per_second: expected a number >= 0")
        policies[owner] = (list(symbols), float(rate))
    return policies


@dataclass
class KillScopes:
    """Engaged owner and global kill switches, kept in a JSON file."""

    path: Path
    everything: bool = False
    owners: set[str] = field(default_factory=set)

    @classmethod
    def load(cls, path: Path) -> KillScopes:
        if not path.exists():
            return cls(path)
        data: dict[str, Any] = json.loads(path.read_text())
        return cls(path, bool(data.get("global", False)), set(data.get("owners", [])))

    def covers(self, owner: str) -> bool:
        return self.everything or owner in self.owners

    def copy(self) -> KillScopes:
        return KillScopes(self.path, self.everything, set(self.owners))

    def take(self) -> Callable[[], object]:
        """The write of the switches as they are now (blocking: it may run in a thread)."""
        data = json.dumps({"global": self.everything, "owners": sorted(self.owners)}).encode()
        path = self.path
        return lambda: atomic_write(path, data)

    def engage(self, scope: Scope) -> None:
        """Engages an owner's or the global switch (``scope`` not an instance's)."""
        if scope.owner is None:
            self.everything = True
        else:
            self.owners.add(scope.owner)

    def describe(self) -> str:
        """The engaged owner and global kill switches, in words."""
        engaged = ["all instances"] if self.everything else []
        engaged += [f"owner {owner}" for owner in sorted(self.owners)]
        return "kill switch engaged for " + (", ".join(engaged) or "no owner")


@dataclass(frozen=True)
class Scope:
    """A kill switch scope: one instance, one owner, or everything (both None)."""

    instance_id: str | None
    owner: str | None

    def describe(self) -> str:
        if self.instance_id is not None:
            return f"instance {self.instance_id}"
        return f"owner {self.owner}" if self.owner is not None else "all instances"


def scope_of(request: instance_pb2.KillSwitchScope, has_scope: bool) -> Scope:
    which = request.WhichOneof("scope") if has_scope else None
    if which == "instance_id":
        return Scope(validation.instance_id(request.instance_id, field="scope.instance_id"), None)
    if which == "owner":
        return Scope(None, validation.instance_id(request.owner, field="scope.owner"))
    if which == "global" and getattr(request, "global"):
        return Scope(None, None)
    raise invalid(
        "scope",
        Reason.FIELD_REQUIRED,
        "scope: one of instance_id, owner or global (true) is required",
    )


class RiskControls:
    """InstanceService's risk RPCs (runtime limits, trading state, kill switch) and the saving
    of the daily risk counters; mixed into ``InstanceService``, which owns the records."""

    # Provided by InstanceService.
    _engine: Engine
    _records: dict[str, InstanceRecord]
    _kill_scopes: KillScopes
    _pending: PendingSaves
    _control: asyncio.Lock
    _writing: set[str]
    _record: Callable[[str], InstanceRecord]
    _history: Callable[[common_pb2.Instance], None]
    _write: Callable[[InstanceRecord], Awaitable[None]]
    _record_writer: registry.RecordWriter
    _directory: Callable[[str, str], Path]
    _record_file: Callable[[InstanceRecord], str]
    _persist: Callable[[str, Take, Iterable[str]], Awaitable[OSError | None]]
    _persist_record: Callable[[InstanceRecord, OSError | None], Awaitable[OSError | None]]
    _state: AppState

    def _init_risk_controls(self) -> None:
        # Restrictions in force that wait for their turn to be saved: per instance the limits
        # and trading state asked, the instances of kill switches engaged, the owner and
        # global switches engaged.
        self._held: dict[str, list[tuple[common_pb2.RiskLimits, common_pb2.TradingState]]] = {}
        self._engaging: Counter[str] = Counter()
        self._engaging_scopes: list[Scope] = []
        # Running changes, kept to their end when their call is cancelled (``_settle``).
        self._changes: set[asyncio.Future[Any]] = set()

    async def _settle(self, change: Awaitable[T]) -> T:
        """Runs a control-plane change to its end, also when its call is cancelled meanwhile
        (a change is never cut between its write and its making)."""
        task = asyncio.ensure_future(change)
        self._changes.add(task)
        task.add_done_callback(self._forget)
        return await asyncio.shield(task)

    def _forget(self, task: asyncio.Future[Any]) -> None:
        self._changes.discard(task)
        if not task.cancelled():
            task.exception()  # answered to its call, or to no one when that was cancelled

    def _risk_event(
        self,
        event: str,
        instance_id: str | None,
        owner: str | None,
        detail: dict[str, object],
        reason: str = "",
    ) -> None:
        """A row of ``risk_events`` in the history (with the call's principal)."""
        if self._state.history is not None:
            self._state.history.record_risk_event(event, instance_id, owner, detail, reason)

    def _config_event(
        self,
        record: InstanceRecord,
        old: tuple[common_pb2.RiskLimits, common_pb2.TradingState],
        new: tuple[common_pb2.RiskLimits, common_pb2.TradingState],
        saved: bool,
        reason: str,
    ) -> None:
        changes = config_update.changes(old[0], new[0])
        detail: dict[str, object] = {
            "trading_state": common_pb2.TradingState.Name(new[1]),
            "version": record.config_version,
            "saved": saved,
        }
        if changes:
            detail["changes"] = changes
        event = "risk_limits" if changes else "trading_state"
        if changes or new[1] != old[1]:
            self._risk_event(event, record.instance_id, record.owner, detail, reason)

    def _counters_to_save(self) -> list[tuple[InstanceRecord, RiskDayState, registry.Snapshot]]:
        """The records whose daily risk counters (trades today, the day's starting equity,
        the equity high) changed, each with the counters and a snapshot of it to write."""
        changed = []
        for record in list(self._records.values()):
            if record.instance_id in self._writing:
                continue  # a control-plane change is writing it: its counters next time
            with contextlib.suppress(MT5ExecError):
                state = self._engine.risk_day_state(record.instance_id)
                if state != record.risk_day:
                    candidate = copy.deepcopy(record)
                    candidate.risk_day = state
                    directory = self._directory(record.owner, record.instance_id)
                    changed.append(
                        (record, state, self._record_writer.snapshot(directory, candidate))
                    )
        return changed

    def _counters_written(
        self,
        saves: list[tuple[InstanceRecord, RiskDayState, registry.Snapshot]],
        results: list[bool | OSError],
    ) -> list[str]:
        """Takes the counters written as saved; returns the instances whose counters were not
        (a failed write is tried again next time). A snapshot found older than the record on
        disk was not written: the counters are written again next time (the newer record was
        taken before them)."""
        failed = []
        for (record, state, snapshot), result in zip(saves, results, strict=True):
            if isinstance(result, OSError):
                log.debug("%s: risk counters not saved: %s", record.instance_id, result)
                failed.append(record.instance_id)
            elif result and self._record_writer.newest(snapshot):
                record.risk_day = state
        return failed

    def _write_snapshots(
        self, saves: list[tuple[InstanceRecord, RiskDayState, registry.Snapshot]]
    ) -> list[bool | OSError]:
        results: list[bool | OSError] = []
        for _, _, snapshot in saves:
            try:
                results.append(self._record_writer.write(snapshot))
            except OSError as e:
                results.append(e)
        return results

    def save_risk_counters(self) -> list[str]:
        """Writes each instance's daily risk counters to its record when they changed (here,
        on the stop), so that a restart of the server does not reset the daily limits, and
        tries the pending saves again. Returns the instances whose counters it could not
        write."""
        saves = self._counters_to_save()
        failed = self._counters_written(saves, self._write_snapshots(saves))
        self._pending.retry_once()
        return failed

    async def finish_changes(self, timeout: float) -> None:
        """The server is stopping (its calls have ended): waits up to ``timeout`` for the
        control-plane changes under way to be written (cancelled when the server stops)."""
        if self._changes:
            log.info(
                "stopping: waiting up to %gs for %d control-plane changes to be written",
                timeout,
                len(self._changes),
            )
            await asyncio.wait(set(self._changes), timeout=timeout)

    def save_before_stop(self) -> None:
        """The server is stopping: the daily counters and every restriction whose save is
        pending are written once more. Whatever still cannot be is lost at the next start:
        each is logged (ERROR) naming it, and so is every restriction in force whose change
        had not been written (its write hangs, or it waits for its turn)."""
        for instance_id in sorted(self._writing):
            record = self._records.get(instance_id)
            with contextlib.suppress(MT5ExecError):
                if record is None or self._engine.risk_day_state(instance_id) == record.risk_day:
                    continue  # nothing to lose
            log.error(
                "stopping with the daily risk counters of instance %s not saved (a change of "
                "its record is being written): the next start counts its day from then on",
                instance_id,
            )
        for what in self._unwritten():
            log.error(
                "stopping with a restriction not written (its change had not ended): %s; the "
                "next start does not have it",
                what,
            )
        for instance_id in self.save_risk_counters():
            log.error(
                "stopping with the daily risk counters of instance %s not saved: the next "
                "start counts its day from then on",
                instance_id,
            )
        for file, instance_ids in self._pending.unsaved():
            if file == KILL_SWITCH_FILE:
                what = self._kill_scopes.describe()
            else:
                what = "; ".join(self._in_force(i) for i in instance_ids if i in self._records)
            log.error(
                "stopping with a restriction not saved (%s cannot be written): %s; the next "
                "start does not have it",
                file,
                what,
            )

    def _unwritten(self) -> list[str]:
        """The restrictions in force whose change has not been written, in words."""
        unwritten = [f"the kill switch of {scope.describe()}" for scope in self._engaging_scopes]
        unwritten += [f"the kill switch of instance {i}" for i in sorted(self._engaging)]
        for instance_id, held in sorted(self._held.items()):
            record = self._records.get(instance_id)
            if record is None:
                continue
            old_limits, old_state = self._config_of(record)
            for limits, state in held:
                tighter = config_update.tighter_state(old_state, state)
                changes = config_update.changes(
                    old_limits, config_update.restrictive_part(old_limits, limits)
                )
                if tighter != old_state:
                    changes.insert(0, f"trading_state {common_pb2.TradingState.Name(tighter)}")
                if changes:
                    unwritten.append(f"instance {instance_id}: " + ", ".join(changes))
        unwritten += [
            f"being written, {self._in_force(i)}"
            for i in sorted(self._writing)
            if i in self._records
        ]
        return unwritten

    def _in_force(self, instance_id: str) -> str:
        """An instance's restrictions as they are in memory, in words."""
        record = self._records[instance_id]
        state = record.config.trading_state or common_pb2.TRADING_STATE_ACTIVE
        return (
            f"instance {instance_id}: kill switch "
            f"{'engaged' if record.kill_switch else 'released'}, trading_state "
            f"{common_pb2.TradingState.Name(state)}, risk limits of config version "
            f"{record.config_version}"
        )

    async def keep_risk_counters(self, period: float = 1.0) -> None:
        """Saves the daily risk counters every ``period`` while they change, written from a
        thread (two fsyncs each: on the event loop they stalled every call for milliseconds);
        the record writer keeps them from overwriting a newer record written meanwhile."""
        while True:
            await asyncio.sleep(period)
            saves = self._counters_to_save()
            if saves:
                results = await asyncio.to_thread(self._write_snapshots, saves)
            else:
                results = []
            self._counters_written(saves, results)

    def _tightened(
        self, instance_id: str, limits: common_pb2.RiskLimits, state: common_pb2.TradingState
    ) -> tuple[common_pb2.RiskLimits, common_pb2.TradingState]:
        """``limits`` and ``state`` tightened by the restrictions waiting for their turn."""
        for held_limits, held_state in self._held.get(instance_id, []):
            limits = config_update.restrictive_part(limits, held_limits)
            state = config_update.tighter_state(state, held_state)
        return limits, state

    def _apply(
        self,
        instance_id: str,
        limits: common_pb2.RiskLimits,
        state: common_pb2.TradingState,
        version: int,
    ) -> common_pb2.Instance:
        """Puts ``limits`` and ``state`` in force, with the restrictions waiting for their
        turn (those are in force already, and stay)."""
        limits, state = self._tightened(instance_id, limits, state)
        self._engine.set_risk_limits(instance_id, limits, version)
        return self._engine.set_trading_state(instance_id, state)

    @staticmethod
    def _config_of(record: InstanceRecord) -> tuple[common_pb2.RiskLimits, common_pb2.TradingState]:
        limits = common_pb2.RiskLimits()
        limits.CopyFrom(record.config.risk)
        return limits, record.config.trading_state or common_pb2.TRADING_STATE_ACTIVE

    async def _change_config(
        self, record: InstanceRecord, requested: Requested, reason: str = ""
    ) -> common_pb2.Instance:
        """Changes an instance's limits and/or trading state, failing closed: what the change
        restricts is in force at once, before its turn; in its turn the change, validated
        again against the record as it is then, is made (``_changed``)."""
        instance_id = record.instance_id
        limits, state = requested(record)  # raises with nothing changed
        log.info("%s: config change asked (at version %d)", instance_id, record.config_version)
        old_limits, old_state = self._config_of(record)
        new = (old_limits if limits is None else limits, old_state if state is None else state)
        self._held.setdefault(instance_id, []).append(new)
        try:
            self._apply(instance_id, old_limits, old_state, record.config_version)
        except BaseException:
            self._unhold(instance_id, new)
            raise
        return await self._settle(self._changed(record, requested, reason, new))

    def _unhold(
        self, instance_id: str, held: tuple[common_pb2.RiskLimits, common_pb2.TradingState]
    ) -> None:
        """A change's restriction no longer waits for its turn."""
        waiting = self._held[instance_id]
        waiting.remove(held)
        if not waiting:
            del self._held[instance_id]

    async def _changed(
        self,
        record: InstanceRecord,
        requested: Requested,
        reason: str,
        held_now: tuple[common_pb2.RiskLimits, common_pb2.TradingState],
    ) -> common_pb2.Instance:
        """The change in its turn: the restrictive part of it (all of it when it only
        restricts) is in force, then it is saved, then what loosens is in force too. When
        saving fails, the restrictive part stays (saved in the background) and the call
        answers UNAVAILABLE."""
        instance_id = record.instance_id
        async with self._control:
            self._unhold(instance_id, held_now)
            try:
                if self._records.get(instance_id) is not record:
                    raise instance_not_found(instance_id)  # deleted meanwhile
                limits, state = requested(record)  # the version may have moved meanwhile
            except MT5ExecError:
                # Not made: what it held in force goes (the others' restrictions stay).
                with contextlib.suppress(MT5ExecError):
                    self._apply(instance_id, *self._config_of(record), record.config_version)
                raise
            return await self._change_saved(record, limits, state, reason)

    async def _change_saved(
        self,
        record: InstanceRecord,
        limits: common_pb2.RiskLimits | None,
        state: common_pb2.TradingState | None,
        reason: str,
    ) -> common_pb2.Instance:
        old_limits, old_state = self._config_of(record)
        new_limits = old_limits if limits is None else limits
        new_state = old_state if state is None else state
        held_limits = config_update.restrictive_part(old_limits, new_limits)
        held_state = config_update.tighter_state(old_state, new_state)
        version = record.config_version + 1
        restricts = held_limits != old_limits or held_state != old_state
        if restricts:
            self._apply(record.instance_id, held_limits, held_state, version)
            record.config.risk.CopyFrom(held_limits)
            record.config.trading_state = held_state
            record.config_version = version
        candidate = copy.deepcopy(record)
        candidate.config.risk.CopyFrom(new_limits)
        candidate.config.trading_state = new_state
        candidate.config_version = version
        try:
            await self._write(candidate)
        except OSError as e:
            what = "the config change"
            if not restricts:
                raise registry.unsaved(what, self._record_file(record), e) from None
            await self._persist_record(record, e)  # retried from now on, and announced
            self._config_event(
                record, (old_limits, old_state), (held_limits, held_state), False, reason
            )
            in_force = config_update.changes(old_limits, held_limits)
            if held_state != old_state:
                in_force.insert(0, f"trading_state {common_pb2.TradingState.Name(held_state)}")
            waiting = config_update.changes(held_limits, new_limits)
            if new_state != held_state:
                waiting.insert(0, f"trading_state {common_pb2.TradingState.Name(new_state)}")
            raise registry.unsaved(
                what,
                self._record_file(record),
                e,
                in_force=f"{record.instance_id}: " + ", ".join(in_force),
                not_applied=", ".join(waiting),
            ) from None
        # Only what this change made: the rest of the config may have changed meanwhile (an
        # UpdateCredentials' login and server), and is saved by its own write.
        record.config.risk.CopyFrom(new_limits)
        record.config.trading_state = new_state
        record.config_version = version
        instance = self._apply(record.instance_id, new_limits, new_state, version)
        self._config_event(record, (old_limits, old_state), (new_limits, new_state), True, reason)
        return instance

    async def UpdateInstanceConfig(
        self, request: instance_pb2.UpdateInstanceConfigRequest, context: Context
    ) -> instance_pb2.UpdateInstanceConfigResponse:
        """Changes the fields of an instance's config that ``update_mask`` names (its risk
        limits, its trading state) at once, persisted and versioned (``expected_version``
        guards against lost updates)."""
        instance_id = validation.instance_id(request.instance_id)
        record = self._record(instance_id)

        def requested(
            record: InstanceRecord,
        ) -> tuple[common_pb2.RiskLimits | None, common_pb2.TradingState | None]:
            return config_update.requested(request, record.config, record.config_version)

        instance = await self._change_config(record, requested)
        log.info("%s: config version %d", instance_id, instance.config_version)
        self._history(instance)
        return instance_pb2.UpdateInstanceConfigResponse(
            instance=instance, version=instance.config_version
        )

    async def SetTradingState(
        self, request: instance_pb2.SetTradingStateRequest, context: Context
    ) -> instance_pb2.SetTradingStateResponse:
        instance_id = validation.instance_id(request.instance_id)
        record = self._record(instance_id)
        state = config_update.trading_state("trading_state", request.trading_state)
        log.warning(
            "%s: trading state %s (%s)",
            instance_id,
            common_pb2.TradingState.Name(state),
            request.reason or "no reason given",
        )
        instance = await self._change_config(record, lambda _: (None, state), request.reason)
        self._history(instance)
        return instance_pb2.SetTradingStateResponse(instance=instance)

    def _records_in(self, scope: Scope) -> list[InstanceRecord]:
        if scope.instance_id is not None:
            return [self._record(scope.instance_id)]
        return [r for r in self._records.values() if scope.owner is None or r.owner == scope.owner]

    async def EngageKillSwitch(
        self, request: instance_pb2.EngageKillSwitchRequest, context: Context
    ) -> instance_pb2.EngageKillSwitchResponse:
        """HALTs every instance of the scope at once and cancels their pending orders (and
        closes their positions with ``close_positions``); answers when the terminals have.
        In force in the engine first, then saved in its turn; it stays in force when it
        cannot be saved."""
        scope = scope_of(request.scope, request.HasField("scope"))
        records = self._records_in(scope)
        log.warning(
            "kill switch engaged for %s%s: %s",
            scope.describe(),
            " (closing positions)" if request.close_positions else "",
            request.reason or "no reason given",
        )
        answered = self._engine.engage_kill_switch(
            scope.instance_id, scope.owner, request.close_positions
        )
        ids = [r.instance_id for r in records]
        # In force until saved, whatever the changes ahead of it make meanwhile.
        self._engaging.update(ids)
        if scope.instance_id is None:
            self._engaging_scopes.append(scope)
            self._kill_scopes.engage(scope)
        self._risk_event(
            "kill_switch_engaged",
            scope.instance_id,
            scope.owner,
            {"close_positions": request.close_positions, "instances": len(records)},
            request.reason,
        )
        failed: list[tuple[str, OSError]] = await self._settle(self._engaged(scope, ids))
        response = await answered
        if failed:
            error = failed[0][1]
            raise registry.unsaved(
                "the kill switch",
                ", ".join(f for f, _ in failed),
                error,
                in_force=f"the kill switch of {scope.describe()} ("
                f"{response.orders_cancelled} orders cancelled, "
                f"{response.positions_closed} positions closed)",
            )
        return response

    async def _engaged(self, scope: Scope, ids: list[str]) -> list[tuple[str, OSError]]:
        """Saves a kill switch engaged (in force already), in its turn; answers the files
        that could not be written (saved in the background from then on)."""
        failed: list[tuple[str, OSError]] = []
        async with self._control:
            try:
                for instance_id in ids:
                    record = self._records.get(instance_id)
                    if record is None:
                        continue  # deleted meanwhile
                    if not record.kill_switch or self._record_file(record) in self._pending:
                        record.kill_switch = True
                        error = await self._persist_record(record, None)
                        if error is not None:
                            failed.append((self._record_file(record), error))
                if scope.instance_id is not None:
                    return failed
                self._kill_scopes.engage(scope)  # again: a release ahead may have cleared it
                error = await self._persist(KILL_SWITCH_FILE, self._kill_scopes.take, ids)
                if error is not None:
                    failed.append((KILL_SWITCH_FILE, error))
                return failed
            finally:
                self._engaging.subtract(ids)
                for instance_id in ids:
                    if self._engaging[instance_id] <= 0:
                        del self._engaging[instance_id]
                if scope.instance_id is None:
                    self._engaging_scopes.remove(scope)

    async def ReleaseKillSwitch(
        self, request: instance_pb2.ReleaseKillSwitchRequest, context: Context
    ) -> instance_pb2.ReleaseKillSwitchResponse:
        """Saved first, released only once saved: the instances' records first, the owner's
        or global switch last, so that a failure in between leaves it engaged on disk."""
        scope = scope_of(request.scope, request.HasField("scope"))
        self._records_in(scope)  # NOT_FOUND now for an unknown instance
        log.info("kill switch release asked for %s", scope.describe())
        released: list[str] = await self._settle(self._release(scope))
        self._risk_event(
            "kill_switch_released",
            scope.instance_id,
            scope.owner,
            {"instances": list(released)},
        )
        log.warning("kill switch released for %s", scope.describe())
        return instance_pb2.ReleaseKillSwitchResponse(instance_ids=released)

    async def _release(self, scope: Scope) -> list[str]:
        async with self._control:
            records = self._records_in(scope)
            if scope.instance_id is not None and self._kill_scopes.covers(records[0].owner):
                raise MT5ExecError(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    Reason.KILL_SWITCH,
                    f"scope.instance_id: the kill switch of its owner '{records[0].owner}' or "
                    "of all instances is engaged; release that one",
                    "scope.instance_id",
                )
            scopes = self._kill_scopes.copy()
            if scope.instance_id is None:
                if scope.owner is None:
                    scopes.everything = False
                    scopes.owners.clear()
                elif scopes.everything:
                    raise MT5ExecError(
                        grpc.StatusCode.FAILED_PRECONDITION,
                        Reason.KILL_SWITCH,
                        "scope.owner: the kill switch of all instances is engaged; release "
                        "that one",
                        "scope.owner",
                    )
                else:
                    scopes.owners.discard(scope.owner)
            engaged = [r for r in records if r.kill_switch]
            written: list[InstanceRecord] = []
            file = ""
            try:
                for record in engaged:
                    file = self._record_file(record)
                    candidate = copy.deepcopy(record)
                    candidate.kill_switch = False
                    await self._write(candidate)
                    written.append(record)
                if scope.instance_id is None:
                    file = KILL_SWITCH_FILE
                    await registry.in_thread(scopes.take())
            except OSError as e:
                # Those written say released: written again as they are (engaged).
                for record in written:
                    await self._persist_record(record, None)
                raise registry.unsaved("the release of the kill switch", file, e) from None
            return self._released(scope, records, engaged, scopes)

    def _released(
        self,
        scope: Scope,
        records: list[InstanceRecord],
        engaged: list[InstanceRecord],
        scopes: KillScopes,
    ) -> list[str]:
        """A release saved: in force, but for the switches engaged since it was taken (those
        wait for their turn, in force)."""
        for record in engaged:
            record.kill_switch = False
        if scope.instance_id is None:
            for waiting in self._engaging_scopes:
                scopes.engage(waiting)
            self._kill_scopes.everything, self._kill_scopes.owners = (
                scopes.everything,
                scopes.owners,
            )
            self._pending.done(KILL_SWITCH_FILE)
        if not any(record.instance_id in self._engaging for record in records):
            return self._engine.release_kill_switch(scope.instance_id, scope.owner)
        released = []
        # The records in the scope now: an instance created meanwhile took the switch in force
        # then (``_register``), which this release releases too.
        current = records if scope.instance_id is not None else self._records_in(scope)
        for record in current:
            if record.instance_id not in self._engaging:
                released += self._engine.release_kill_switch(record.instance_id, None)
        return released
