"""InstanceService: create, inspect and stop terminal instances."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import grpc

import mt5exec
from mt5exec.errors import MT5ExecError, invalid
from mt5exec.server.handlers import Context
from mt5exec.server.state import AppState
from mt5exec.services import validation
from mt5exec.sim.symbols import DEFAULT_SYMBOLS
from mt5exec.v1 import common_pb2, instance_pb2

# Methods the later issues build; they answer UNIMPLEMENTED naming the issue.
PLANNED = {
    "StartInstance": 3,
    "RestartInstance": 3,
    "DeleteInstance": 3,
    "UpdateInstanceConfig": 5,
    "SetTradingState": 5,
    "EngageKillSwitch": 5,
    "ReleaseKillSwitch": 5,
    "DeployExpert": 3,
    "GetInstanceStats": 3,
    "GetSystemStats": 3,
}

_MARGIN_MODES = {
    common_pb2.ACCOUNT_MARGIN_MODE_UNSPECIFIED: None,
    common_pb2.ACCOUNT_MARGIN_MODE_HEDGING: "hedging",
    common_pb2.ACCOUNT_MARGIN_MODE_NETTING: "netting",
}
_PACKAGE_ROOT = str(Path(mt5exec.__file__).resolve().parent.parent)


class InstanceService:
    def __init__(self, state: AppState) -> None:
        self._state = state

    def _sim_config(self, instance_id: str, config: common_pb2.InstanceConfig) -> dict[str, object]:
        """The runtime config of a sim worker: the request over the server's [sim] defaults."""
        defaults = self._state.config.sim
        symbols = list(config.symbols) or list(defaults.symbols)
        for symbol in symbols:
            if symbol not in DEFAULT_SYMBOLS:
                raise invalid(
                    "config.symbols",
                    "SYMBOL_UNKNOWN",
                    f"config.symbols: the simulated broker has no {symbol!r} "
                    f"(it has {', '.join(DEFAULT_SYMBOLS)})",
                )
        if len(set(symbols)) != len(symbols):
            raise invalid("config.symbols", "SYMBOL_DUPLICATE", "config.symbols: duplicates")
        margin_mode = _MARGIN_MODES.get(config.margin_mode, "")
        if margin_mode == "":
            raise invalid(
                "config.margin_mode",
                "MARGIN_MODE_INVALID",
                f"config.margin_mode: unknown value {config.margin_mode}",
            )
        balance = config.initial_balance or defaults.initial_balance
        validation.finite("config.initial_balance", balance, minimum=0.01, maximum=1e12)
        tick_rate = config.tick_rate or defaults.tick_rate
        validation.finite("config.tick_rate", tick_rate, minimum=0.0, maximum=100_000.0)
        leverage = config.leverage or defaults.leverage
        if leverage > 10_000:
            raise invalid("config.leverage", "VALUE_OUT_OF_RANGE", "config.leverage: at most 10000")
        return {
            "instance_id": instance_id,
            "symbols": symbols,
            "seed": config.seed or defaults.seed,
            "tick_rate": tick_rate,
            "initial_balance": balance,
            "leverage": leverage,
            "currency": config.currency or defaults.currency,
            "margin_mode": margin_mode or defaults.margin_mode,
        }

    async def CreateInstance(
        self, request: instance_pb2.CreateInstanceRequest, context: Context
    ) -> instance_pb2.CreateInstanceResponse:
        state = self._state
        instance_id = validation.instance_id(request.instance_id, generate=True)
        owner = validation.owner(request.owner)
        backend = request.backend or common_pb2.BACKEND_SIM
        if backend == common_pb2.BACKEND_MT5:
            raise MT5ExecError(
                grpc.StatusCode.UNIMPLEMENTED,
                "BACKEND_NOT_BUILT",
                "backend: BACKEND_MT5 instances arrive with issues #3 and #4",
                "backend",
            )
        if backend != common_pb2.BACKEND_SIM:
            raise invalid("backend", "BACKEND_INVALID", f"backend: unknown value {backend}")
        runtime = self._sim_config(instance_id, request.config)
        running = sum(
            1
            for i in state.engine.list_instances()
            if i.state not in (common_pb2.INSTANCE_STATE_STOPPED, common_pb2.INSTANCE_STATE_FAILED)
        )
        if running >= state.config.server.max_instances:
            raise MT5ExecError(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                "MAX_INSTANCES",
                f"this node runs at most {state.config.server.max_instances} instances",
            )
        directory = state.config.instances_dir / owner / instance_id
        directory.mkdir(parents=True, exist_ok=True)
        config_path = directory / "instance.json"
        config_path.write_text(json.dumps(runtime, indent=2))
        config = common_pb2.InstanceConfig()
        config.CopyFrom(request.config)
        del config.symbols[:]
        config.symbols.extend(runtime["symbols"])  # type: ignore[arg-type]
        argv = [sys.executable, "-m", "mt5exec.workers.sim", "--config", str(config_path)]
        env = {
            "PYTHONPATH": os.pathsep.join(
                filter(None, [_PACKAGE_ROOT, os.environ.get("PYTHONPATH")])
            )
        }
        instance = await state.engine.create_instance(
            instance_id, owner, backend, directory, argv, env, config
        )
        if state.history is not None:
            state.history.record_instance(instance.SerializeToString())
        return instance_pb2.CreateInstanceResponse(instance=instance)

    async def GetInstance(
        self, request: instance_pb2.GetInstanceRequest, context: Context
    ) -> instance_pb2.GetInstanceResponse:
        instance_id = validation.instance_id(request.instance_id)
        return instance_pb2.GetInstanceResponse(
            instance=self._state.engine.get_instance(instance_id)
        )

    async def ListInstances(
        self, request: instance_pb2.ListInstancesRequest, context: Context
    ) -> instance_pb2.ListInstancesResponse:
        instances = [
            i
            for i in self._state.engine.list_instances()
            if (not request.owner or i.owner == request.owner)
            and (not request.states or i.state in request.states)
        ]
        start = 0
        if request.page_token:
            if not request.page_token.isdigit():
                raise invalid("page_token", "PAGE_TOKEN_INVALID", "page_token: not from us")
            start = int(request.page_token)
        size = request.page_size or 100
        page = instances[start : start + size]
        more = start + size < len(instances)
        return instance_pb2.ListInstancesResponse(
            instances=page, next_page_token=str(start + size) if more else ""
        )

    async def StopInstance(
        self, request: instance_pb2.StopInstanceRequest, context: Context
    ) -> instance_pb2.StopInstanceResponse:
        instance_id = validation.instance_id(request.instance_id)
        grace = None
        if request.HasField("grace"):
            grace = validation.finite(
                "grace", request.grace.ToTimedelta().total_seconds(), maximum=600.0
            )
        instance = await self._state.engine.stop_instance(instance_id, grace)
        if self._state.history is not None:
            self._state.history.record_instance(instance.SerializeToString())
        return instance_pb2.StopInstanceResponse(instance=instance)
