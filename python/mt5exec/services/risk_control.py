"""Risk controls: InstanceService's risk RPCs (``RiskControls``: runtime limits, trading
state, kill switch), owners' policies, kill switch scopes, and the validation of runtime
changes to an instance's limits and trading state.

The checks themselves run in the engine (``rust_core/src/risk``); this module decides what
they are configured with and keeps it on disk:

- ``<data_dir>/risk_owners.json`` (or ``[risk] owners_file``): per-owner instrument
  whitelists and order rates, read at start;
- ``<data_dir>/kill_switch.json``: engaged owner and global kill switches, so that they hold
  across a restart and also cover instances created while they are engaged (an instance's own
  kill switch is in its ``instance.json``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import tempfile
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from mt5exec.engine import Engine, validate_risk_limits
from mt5exec.errors import MT5ExecError, invalid
from mt5exec.registry import InstanceRecord
from mt5exec.server.handlers import Context
from mt5exec.services import validation
from mt5exec.v1 import common_pb2, instance_pb2

log = logging.getLogger("mt5exec.instances")

OwnerPolicies = dict[str, tuple[list[str], float]]

# The only InstanceConfig fields UpdateInstanceConfig changes on a live instance.
RUNTIME_FIELDS = frozenset({"risk", "trading_state"})
_STATES = (
    common_pb2.TRADING_STATE_ACTIVE,
    common_pb2.TRADING_STATE_REDUCE_ONLY,
    common_pb2.TRADING_STATE_HALTED,
)


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

    def save(self) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".kill_switch.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as f:
                json.dump({"global": self.everything, "owners": sorted(self.owners)}, f)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


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
        "FIELD_REQUIRED",
        "scope: one of instance_id, owner or global (true) is required",
    )


def trading_state(field_name: str, state: int) -> common_pb2.TradingState:
    if state not in _STATES:
        raise invalid(
            field_name,
            "TRADING_STATE_INVALID",
            f"{field_name}: expected ACTIVE, REDUCE_ONLY or HALTED, got {state}",
        )
    return typing.cast(common_pb2.TradingState, state)


def runtime_change(
    request: instance_pb2.UpdateInstanceConfigRequest, current_version: int
) -> tuple[common_pb2.RiskLimits | None, common_pb2.TradingState | None]:
    """Validates an UpdateInstanceConfig: the fields it may change, their values and the
    expected version; returns (new limits or None, new trading state or None)."""
    if request.expected_version and request.expected_version != current_version:
        raise MT5ExecError(
            grpc.StatusCode.ABORTED,
            "CONFIG_VERSION_MISMATCH",
            f"expected_version: the config is at version {current_version}, not "
            f"{request.expected_version}; read it again and retry",
            "expected_version",
        )
    given = {f.name for f, _ in request.config.ListFields()}
    fixed = sorted(given - RUNTIME_FIELDS)
    if fixed:
        raise invalid(
            f"config.{fixed[0]}",
            "FIELD_NOT_UPDATABLE",
            f"config.{fixed[0]}: cannot change on an existing instance (only risk and "
            "trading_state can); create a new instance instead",
        )
    if not given:
        raise invalid("config", "FIELD_REQUIRED", "config: give risk and/or trading_state")
    limits = None
    if "risk" in given:
        limits = common_pb2.RiskLimits()
        limits.CopyFrom(request.config.risk)
        validate_risk_limits(limits)
    state = None
    if "trading_state" in given:
        state = trading_state("config.trading_state", request.config.trading_state)
    return limits, state


class RiskControls:
    """InstanceService's risk RPCs (runtime limits, trading state, kill switch) and the saving
    of the daily risk counters; mixed into ``InstanceService``, which owns the records."""

    # Provided by InstanceService.
    _engine: Engine
    _records: dict[str, InstanceRecord]
    _kill_scopes: KillScopes
    _save: Callable[[InstanceRecord], None]
    _record: Callable[[str], InstanceRecord]
    _history: Callable[[common_pb2.Instance], None]

    def save_risk_counters(self) -> None:
        """Writes each instance's daily risk counters (trades today, the day's starting
        equity, the equity high) to its record when they changed, so that a restart of the
        server does not reset the daily limits."""
        for record in list(self._records.values()):
            with contextlib.suppress(MT5ExecError):
                state = self._engine.risk_day_state(record.instance_id)
                if state != record.risk_day:
                    record.risk_day = state
                    self._save(record)

    async def keep_risk_counters(self, period: float = 1.0) -> None:
        while True:
            await asyncio.sleep(period)
            self.save_risk_counters()

    async def UpdateInstanceConfig(
        self, request: instance_pb2.UpdateInstanceConfigRequest, context: Context
    ) -> instance_pb2.UpdateInstanceConfigResponse:
        """Changes an instance's risk limits and/or trading state at once, persisted and
        versioned (``expected_version`` guards against lost updates)."""
        instance_id = validation.instance_id(request.instance_id)
        record = self._record(instance_id)
        limits, state = runtime_change(request, record.config_version)
        record.config_version += 1
        if limits is not None:
            record.config.risk.CopyFrom(limits)
        if state is not None:
            record.config.trading_state = state
        self._save(record)
        if limits is not None:
            self._engine.set_risk_limits(instance_id, limits, record.config_version)
        if state is not None:
            self._engine.set_trading_state(instance_id, state)
        instance = self._engine.get_instance(instance_id)
        log.info("%s: config version %d", instance_id, record.config_version)
        self._history(instance)
        return instance_pb2.UpdateInstanceConfigResponse(
            instance=instance, version=record.config_version
        )

    async def SetTradingState(
        self, request: instance_pb2.SetTradingStateRequest, context: Context
    ) -> instance_pb2.SetTradingStateResponse:
        instance_id = validation.instance_id(request.instance_id)
        record = self._record(instance_id)
        state = trading_state("trading_state", request.trading_state)
        record.config.trading_state = state
        record.config_version += 1
        self._save(record)
        instance = self._engine.set_trading_state(instance_id, state)
        log.warning(
            "%s: trading state %s (%s)",
            instance_id,
            common_pb2.TradingState.Name(state),
            request.reason or "no reason given",
        )
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
        closes their positions with ``close_positions``); answers when the terminals have."""
        scope = scope_of(request.scope, request.HasField("scope"))
        records = self._records_in(scope)
        # On disk first: a restart in the middle keeps the switch engaged.
        if scope.instance_id is None:
            if scope.owner is None:
                self._kill_scopes.everything = True
            else:
                self._kill_scopes.owners.add(scope.owner)
            self._kill_scopes.save()
        for record in records:
            if not record.kill_switch:
                record.kill_switch = True
                self._save(record)
        log.warning(
            "kill switch engaged for %s%s: %s",
            scope.describe(),
            " (closing positions)" if request.close_positions else "",
            request.reason or "no reason given",
        )
        return await self._engine.engage_kill_switch(
            scope.instance_id, scope.owner, request.close_positions
        )

    async def ReleaseKillSwitch(
        self, request: instance_pb2.ReleaseKillSwitchRequest, context: Context
    ) -> instance_pb2.ReleaseKillSwitchResponse:
        scope = scope_of(request.scope, request.HasField("scope"))
        records = self._records_in(scope)
        if scope.instance_id is not None and self._kill_scopes.covers(records[0].owner):
            raise MT5ExecError(
                grpc.StatusCode.FAILED_PRECONDITION,
                "KILL_SWITCH",
                f"scope.instance_id: the kill switch of its owner '{records[0].owner}' or of "
                "all instances is engaged; release that one",
                "scope.instance_id",
            )
        if scope.instance_id is None:
            if scope.owner is None:
                self._kill_scopes.everything = False
                self._kill_scopes.owners.clear()
            elif self._kill_scopes.everything:
                raise MT5ExecError(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    "KILL_SWITCH",
                    "scope.owner: the kill switch of all instances is engaged; release that one",
                    "scope.owner",
                )
            else:
                self._kill_scopes.owners.discard(scope.owner)
            self._kill_scopes.save()
        for record in records:
            if record.kill_switch:
                record.kill_switch = False
                self._save(record)
        released = self._engine.release_kill_switch(scope.instance_id, scope.owner)
        log.warning("kill switch released for %s", scope.describe())
        return instance_pb2.ReleaseKillSwitchResponse(instance_ids=released)
