"""InstanceService: instances, their trading state and the kill switch."""

from __future__ import annotations

from collections.abc import Sequence

from google.protobuf import duration_pb2

from mt5exec.client._async.base import AsyncBase
from mt5exec.v1 import common_pb2, instance_pb2

# A Python keyword: the field is set by name.
GLOBAL = "global"


def kill_switch_scope(
    instance_id: str | None, owner: str | None, everything: bool
) -> instance_pb2.KillSwitchScope:
    """One of an instance, an owner's instances or every instance."""
    if everything:
        scope = instance_pb2.KillSwitchScope()
        setattr(scope, GLOBAL, True)
        return scope
    if owner is not None:
        return instance_pb2.KillSwitchScope(owner=owner)
    return instance_pb2.KillSwitchScope(instance_id=instance_id or "")


class AsyncInstances(AsyncBase):
    async def list_instances(
        self, owner: str = "", states: Sequence[common_pb2.InstanceState] = ()
    ) -> list[common_pb2.Instance]:
        """Every instance the caller sees (all pages)."""
        found: list[common_pb2.Instance] = []
        request = instance_pb2.ListInstancesRequest(owner=owner, states=states)
        while True:
            page: instance_pb2.ListInstancesResponse = await self._call(
                self._instances.ListInstances, request, retry=True
            )
            found.extend(page.instances)
            if not page.next_page_token:
                return found
            request.page_token = page.next_page_token

    async def get_instance(self, instance_id: str) -> common_pb2.Instance:
        request = instance_pb2.GetInstanceRequest(instance_id=instance_id)
        response: instance_pb2.GetInstanceResponse = await self._call(
            self._instances.GetInstance, request, retry=True
        )
        return response.instance

    async def create_instance(
        self,
        instance_id: str = "",
        config: common_pb2.InstanceConfig | None = None,
        *,
        owner: str = "",
        backend: common_pb2.Backend = common_pb2.BACKEND_UNSPECIFIED,
        password: str = "",
        timeout: float | None = None,
    ) -> common_pb2.Instance:
        """A new instance, once READY (the server waits for its worker)."""
        request = instance_pb2.CreateInstanceRequest(
            instance_id=instance_id, owner=owner, backend=backend, config=config, password=password
        )
        response: instance_pb2.CreateInstanceResponse = await self._call(
            self._instances.CreateInstance, request, timeout=timeout
        )
        return response.instance

    async def start_instance(self, instance_id: str) -> common_pb2.Instance:
        request = instance_pb2.StartInstanceRequest(instance_id=instance_id)
        response: instance_pb2.StartInstanceResponse = await self._call(
            self._instances.StartInstance, request
        )
        return response.instance

    async def stop_instance(
        self, instance_id: str, grace: float | None = None
    ) -> common_pb2.Instance:
        request = instance_pb2.StopInstanceRequest(instance_id=instance_id)
        if grace is not None:
            request.grace.CopyFrom(duration_pb2.Duration(seconds=int(grace)))
        response: instance_pb2.StopInstanceResponse = await self._call(
            self._instances.StopInstance, request
        )
        return response.instance

    async def restart_instance(self, instance_id: str) -> common_pb2.Instance:
        request = instance_pb2.RestartInstanceRequest(instance_id=instance_id)
        response: instance_pb2.RestartInstanceResponse = await self._call(
            self._instances.RestartInstance, request
        )
        return response.instance

    async def delete_instance(self, instance_id: str) -> None:
        request = instance_pb2.DeleteInstanceRequest(instance_id=instance_id)
        await self._call(self._instances.DeleteInstance, request)

    async def set_trading_state(
        self, instance_id: str, state: common_pb2.TradingState, reason: str = ""
    ) -> common_pb2.Instance:
        request = instance_pb2.SetTradingStateRequest(
            instance_id=instance_id, trading_state=state, reason=reason
        )
        response: instance_pb2.SetTradingStateResponse = await self._call(
            self._instances.SetTradingState, request
        )
        return response.instance

    async def engage_kill_switch(
        self,
        instance_id: str | None = None,
        *,
        owner: str | None = None,
        everything: bool = False,
        close_positions: bool = False,
        reason: str = "",
    ) -> instance_pb2.EngageKillSwitchResponse:
        """HALTED and pending orders cancelled: one instance, an owner's, or ``everything``."""
        request = instance_pb2.EngageKillSwitchRequest(
            scope=kill_switch_scope(instance_id, owner, everything),
            close_positions=close_positions,
            reason=reason,
        )
        response: instance_pb2.EngageKillSwitchResponse = await self._call(
            self._instances.EngageKillSwitch, request
        )
        return response

    async def release_kill_switch(
        self, instance_id: str | None = None, *, owner: str | None = None, everything: bool = False
    ) -> instance_pb2.ReleaseKillSwitchResponse:
        request = instance_pb2.ReleaseKillSwitchRequest(
            scope=kill_switch_scope(instance_id, owner, everything)
        )
        response: instance_pb2.ReleaseKillSwitchResponse = await self._call(
            self._instances.ReleaseKillSwitch, request
        )
        return response

    async def instance_stats(self, instance_id: str) -> instance_pb2.InstanceStats:
        request = instance_pb2.GetInstanceStatsRequest(instance_id=instance_id)
        response: instance_pb2.GetInstanceStatsResponse = await self._call(
            self._instances.GetInstanceStats, request, retry=True
        )
        return response.stats

    async def system_stats(self) -> instance_pb2.GetSystemStatsResponse:
        response: instance_pb2.GetSystemStatsResponse = await self._call(
            self._instances.GetSystemStats, instance_pb2.GetSystemStatsRequest(), retry=True
        )
        return response
