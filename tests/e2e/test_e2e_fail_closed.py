"""Fail closed, end to end on a real full filesystem (a tmpfs this test mounts as the server's
data dir, filled until ENOSPC): restrictions are in force even when they cannot be saved, are
saved once the disk takes them and hold across a restart; what loosens waits for the save;
control-plane calls answer UNAVAILABLE (never INTERNAL) and leave nothing half made; partial
config updates name their fields (update_mask) and keep every other limit."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import field_mask_pb2
from tests.support import create_sim, error_info, market, wait_ready, wait_until

from mt5exec.testing import ServerProcess
from mt5exec.v1 import common_pb2, instance_pb2, order_pb2, stream_pb2
from tmpfs import Disk, tmpfs

HALTED = common_pb2.TRADING_STATE_HALTED
ACTIVE = common_pb2.TRADING_STATE_ACTIVE
# History off: its database is not what these tests are about (and it has its own).
ENV = {"MT5EXEC_HISTORY_ENABLED": "false"}


def server_on(disk: Disk, log_dir: Path, env: dict[str, str] | None = None) -> ServerProcess:
    """A server whose data dir is the tmpfs; its log (ServerProcess writes it into the
    directory it is given) stays off the full disk (the last --data-dir wins)."""
    return ServerProcess(
        log_dir, extra_args=["--data-dir", str(disk.path)], env={**ENV, **(env or {})}
    ).start()


def refused(call: Callable[[], object]) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value


def not_persisted(disk: Disk, call: Callable[[], object], in_force: bool) -> grpc.RpcError:
    """On the full disk, the call answers UNAVAILABLE / STATE_NOT_PERSISTED, saying whether
    what it asked for is in force all the same."""
    disk.fill()  # again: whatever was freed since is taken
    e = refused(call)
    assert e.code() == grpc.StatusCode.UNAVAILABLE, e
    info = error_info(e)
    assert info.reason == "STATE_NOT_PERSISTED", info
    assert info.metadata["errno"] == "ENOSPC", info
    assert info.metadata["in_force"] == ("true" if in_force else "false"), info
    return e


def order_refusal(server: ServerProcess, instance_id: str, cid: str, volume: float = 0.01) -> str:
    """The reason a dry run and a real market order of ``instance_id`` are refused with (the
    same for both); fails when either goes through."""
    check = server.orders.CheckOrder(
        order_pb2.CheckOrderRequest(order=market(instance_id, f"{cid}-check", volume)), timeout=10
    )
    assert not check.accepted, f"{instance_id}: CheckOrder accepted"
    e = refused(lambda: server.orders.PlaceOrder(market(instance_id, cid, volume), timeout=10))
    assert e.code() == grpc.StatusCode.FAILED_PRECONDITION, e
    assert error_info(e).reason == check.reason
    return check.reason


def get(server: ServerProcess, instance_id: str) -> common_pb2.Instance:
    request = instance_pb2.GetInstanceRequest(instance_id=instance_id)
    return server.instances.GetInstance(request, timeout=5).instance


def record(disk: Disk, instance_id: str) -> Any:
    """The instance's record as it is on disk."""
    return json.loads(
        (disk.path / "instances" / "default" / instance_id / "instance.json").read_text()
    )


class Events:
    """The reasons of StreamInstanceEvents, collected in a thread."""

    def __init__(self, server: ServerProcess) -> None:
        self.call = server.streams.StreamInstanceEvents(
            stream_pb2.StreamInstanceEventsRequest(), timeout=300
        )
        self.call.initial_metadata()  # subscribed from here on
        self.seen: list[tuple[str, str]] = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            for message in self.call:
                self.seen.extend((e.instance_id, e.reason) for e in message.events)
        except grpc.RpcError:
            pass

    def close(self) -> None:
        self.call.cancel()
        self.thread.join(5)


def engage(server: ServerProcess, scope: instance_pb2.KillSwitchScope) -> object:
    request = instance_pb2.EngageKillSwitchRequest(scope=scope, reason="desk stop")
    return server.instances.EngageKillSwitch(request, timeout=30)


def release(server: ServerProcess, scope: instance_pb2.KillSwitchScope) -> object:
    request = instance_pb2.ReleaseKillSwitchRequest(scope=scope)
    return server.instances.ReleaseKillSwitch(request, timeout=30)


def set_state(server: ServerProcess, instance_id: str, state: int) -> object:
    request = instance_pb2.SetTradingStateRequest(instance_id=instance_id, trading_state=state)  # type: ignore[arg-type]
    return server.instances.SetTradingState(request, timeout=10)


def update(
    server: ServerProcess, instance_id: str, paths: list[str], **limits: object
) -> instance_pb2.UpdateInstanceConfigResponse:
    request = instance_pb2.UpdateInstanceConfigRequest(
        instance_id=instance_id,
        config=common_pb2.InstanceConfig(risk=common_pb2.RiskLimits(**limits)),  # type: ignore[arg-type]
        update_mask=field_mask_pb2.FieldMask(paths=paths),
    )
    response: instance_pb2.UpdateInstanceConfigResponse = server.instances.UpdateInstanceConfig(
        request, timeout=10
    )
    return response


EVERYTHING = instance_pb2.KillSwitchScope(**{"global": True})


def test_restrictions_hold_on_a_full_disk_are_saved_when_it_frees_and_survive_a_restart(
    tmp_path: Path,
) -> None:
    with tmpfs(tmp_path / "data") as disk:
        server = server_on(disk, tmp_path / "log")
        try:
            for instance_id in ("fc-kill", "fc-halt", "fc-all"):
                create_sim(server, instance_id)
            events = Events(server)
            disk.fill()

            # An instance's kill switch: refused orders at once, though not saved.
            not_persisted(
                disk,
                lambda: engage(server, instance_pb2.KillSwitchScope(instance_id="fc-kill")),
                in_force=True,
            )
            assert order_refusal(server, "fc-kill", "k-1") == "KILL_SWITCH"
            assert get(server, "fc-kill").kill_switch

            # HALTED the same; going back to ACTIVE loosens: refused, still HALTED.
            not_persisted(disk, lambda: set_state(server, "fc-halt", HALTED), in_force=True)
            assert order_refusal(server, "fc-halt", "h-1") == "TRADING_HALTED"
            not_persisted(disk, lambda: set_state(server, "fc-halt", ACTIVE), in_force=False)
            assert get(server, "fc-halt").trading_state == HALTED
            assert order_refusal(server, "fc-halt", "h-2") == "TRADING_HALTED"

            # The global kill switch; its release loosens: refused, still engaged.
            probe = order_pb2.CheckOrderRequest(order=market("fc-all", "a-0"))
            assert server.orders.CheckOrder(probe, timeout=10).accepted
            not_persisted(disk, lambda: engage(server, EVERYTHING), in_force=True)
            assert order_refusal(server, "fc-all", "a-1") == "KILL_SWITCH"
            not_persisted(disk, lambda: release(server, EVERYTHING), in_force=False)
            assert order_refusal(server, "fc-all", "a-2") == "KILL_SWITCH"
            assert get(server, "fc-all").kill_switch

            # Nothing of it is on disk yet; instance events say so.
            assert record(disk, "fc-kill")["kill_switch"] is False
            assert not (disk.path / "kill_switch.json").exists()
            wait_until(
                "STATE_NOT_PERSISTED events",
                lambda: (
                    {
                        ("fc-kill", "STATE_NOT_PERSISTED: instances/default/fc-kill/instance.json"),
                        ("fc-halt", "STATE_NOT_PERSISTED: instances/default/fc-halt/instance.json"),
                        ("fc-all", "STATE_NOT_PERSISTED: kill_switch.json"),
                    }
                    <= set(events.seen)
                ),
            )

            # Space again: the retried saves land.
            disk.free()
            wait_until(
                "the restrictions saved",
                lambda: (
                    (disk.path / "kill_switch.json").exists()
                    and json.loads((disk.path / "kill_switch.json").read_text())["global"] is True
                    and record(disk, "fc-kill")["kill_switch"] is True
                    and record(disk, "fc-all")["kill_switch"] is True
                    and record(disk, "fc-halt")["config"]["trading_state"] == "TRADING_STATE_HALTED"
                ),
            )
            wait_until(
                "STATE_PERSISTED events",
                lambda: (
                    ("fc-kill", "STATE_PERSISTED: instances/default/fc-kill/instance.json")
                    in events.seen
                ),
            )
            events.close()
            assert server.terminate() == 0
        finally:
            server.kill()

        # A restart keeps them in force.
        server = server_on(disk, tmp_path / "log")
        try:
            for instance_id in ("fc-kill", "fc-halt", "fc-all"):
                wait_ready(server, instance_id, timeout=30)
            assert order_refusal(server, "fc-kill", "k-3") == "KILL_SWITCH"
            assert order_refusal(server, "fc-all", "a-3") == "KILL_SWITCH"
            assert get(server, "fc-halt").trading_state == HALTED
            # Released with room on the disk: saved, then in force.
            release(server, EVERYTHING)
            assert server.orders.PlaceOrder(market("fc-all", "a-4"), timeout=10).order.order_id
            assert json.loads((disk.path / "kill_switch.json").read_text())["global"] is False
            assert order_refusal(server, "fc-halt", "h-3") == "TRADING_HALTED"
            assert server.terminate() == 0
        finally:
            server.kill()


def test_a_tighter_limit_holds_on_a_full_disk_and_a_looser_one_waits(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "data") as disk:
        server = server_on(disk, tmp_path / "log")
        try:
            before = create_sim(server, "fc-lim").config.risk
            assert (before.max_order_volume, before.orders_per_second) == (10.0, 100.0)
            disk.fill()
            # Mixed: a tighter volume cap (in force at once) and a looser rate (waits).
            e = not_persisted(
                disk,
                lambda: update(
                    server,
                    "fc-lim",
                    ["risk.max_order_volume", "risk.orders_per_second"],
                    max_order_volume=0.05,
                    orders_per_second=1000.0,
                ),
                in_force=True,
            )
            assert "risk.orders_per_second" in e.details()  # type: ignore[attr-defined]
            risk = get(server, "fc-lim").config.risk
            assert (risk.max_order_volume, risk.orders_per_second) == (0.05, 100.0)
            assert risk.max_open_positions == before.max_open_positions
            assert order_refusal(server, "fc-lim", "l-1", volume=0.1) == "VOLUME_ABOVE_LIMIT"
            # Only looser: nothing changes.
            not_persisted(
                disk,
                lambda: update(
                    server, "fc-lim", ["risk.max_open_positions"], max_open_positions=99
                ),
                in_force=False,
            )
            assert get(server, "fc-lim").config.risk.max_open_positions == before.max_open_positions
            # Space again: the tighter part is saved; the looser part, asked again, goes through.
            disk.free()
            wait_until(
                "the tighter limit saved",
                lambda: record(disk, "fc-lim")["config"]["risk"]["max_order_volume"] == 0.05,
            )
            version = get(server, "fc-lim").config_version
            response = update(
                server, "fc-lim", ["risk.orders_per_second"], orders_per_second=1000.0
            )
            assert response.version == version + 1
            risk = response.instance.config.risk
            assert (risk.max_order_volume, risk.orders_per_second) == (0.05, 1000.0)
            assert server.terminate() == 0
        finally:
            server.kill()


def test_control_plane_calls_on_a_full_disk_answer_unavailable_and_leave_nothing_half_made(
    tmp_path: Path,
) -> None:
    with tmpfs(tmp_path / "data") as disk:
        server = server_on(disk, tmp_path / "log", env={"MT5EXEC_SERVER_MAX_INSTANCES": "2"})
        try:
            create_sim(server, "fc-one")
            disk.fill()
            for _ in range(3):  # never counted against server.max_instances (2)
                not_persisted(disk, lambda: create_sim(server, "fc-half"), in_force=False)
            e = refused(lambda: get(server, "fc-half"))
            assert e.code() == grpc.StatusCode.NOT_FOUND
            assert not (disk.path / "instances" / "default" / "fc-half").exists()
            # Stopping, starting and deleting save the record first: nothing changes.
            stop = instance_pb2.StopInstanceRequest(instance_id="fc-one")
            not_persisted(disk, lambda: server.instances.StopInstance(stop, timeout=30), False)
            delete = instance_pb2.DeleteInstanceRequest(instance_id="fc-one")
            not_persisted(disk, lambda: server.instances.DeleteInstance(delete, timeout=30), False)
            assert get(server, "fc-one").state == common_pb2.INSTANCE_STATE_READY
            assert record(disk, "fc-one")["desired"] == "running"

            disk.free()
            create_sim(server, "fc-half")  # the id is free, and the node has room for it
            server.instances.StopInstance(stop, timeout=30)
            server.instances.DeleteInstance(delete, timeout=30)
            assert server.terminate() == 0
        finally:
            server.kill()
        server = server_on(disk, tmp_path / "log")
        try:
            wait_ready(server, "fc-half", timeout=30)
            listed = server.instances.ListInstances(instance_pb2.ListInstancesRequest(), timeout=5)
            assert [i.instance_id for i in listed.instances] == ["fc-half"]
            assert server.terminate() == 0
        finally:
            server.kill()


def test_a_create_that_fails_after_validation_leaves_nothing_behind(tmp_path: Path) -> None:
    """The operator's risk template has a trading window with a start and no end: each field
    is valid alone, and the engine refuses the pair when the instance is registered, after its
    files and record are written. The id stays free and nothing comes back after a restart."""
    data = tmp_path / "data"
    templates = data / "templates"
    templates.mkdir(parents=True)
    (templates / "risk.json").write_text(json.dumps({"session_start": "08:00"}))
    env = {**ENV, "MT5EXEC_SERVER_MAX_INSTANCES": "1"}  # a half-made one would fill it
    request = instance_pb2.CreateInstanceRequest(
        instance_id="fc-bad", config=common_pb2.InstanceConfig(symbols=["EURUSD"])
    )
    with ServerProcess(data, env=env) as server:
        for _ in range(2):  # the id is still free the second time (no ALREADY_EXISTS)
            e = refused(lambda: server.instances.CreateInstance(request, timeout=30))
            assert e.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert error_info(e).metadata["field"] == "risk.session_end"
        assert refused(lambda: get(server, "fc-bad")).code() == grpc.StatusCode.NOT_FOUND
        assert not (data / "instances" / "default" / "fc-bad").exists()
    # Nothing comes back after a restart; with a usable template the id is created.
    (templates / "risk.json").unlink()
    with ServerProcess(data, env=env) as server:
        listed = server.instances.ListInstances(instance_pb2.ListInstancesRequest(), timeout=5)
        assert list(listed.instances) == []
        created = server.instances.CreateInstance(request, timeout=30).instance
        assert created.state == common_pb2.INSTANCE_STATE_READY


def test_update_mask_changes_only_the_named_fields(server: ServerProcess) -> None:
    before = create_sim(server, "mask").config.risk
    assert before.max_daily_loss and before.max_open_positions and before.price_collar_percent
    response = update(server, "mask", ["risk.max_order_volume"], max_order_volume=2.0)
    after = response.instance.config.risk
    expected = common_pb2.RiskLimits()
    expected.CopyFrom(before)
    expected.max_order_volume = 2.0
    assert after == expected
    assert get(server, "mask").config.risk == expected  # read back

    # config.risk without a mask: refused (it would turn every limit not given off).
    bare = instance_pb2.UpdateInstanceConfigRequest(
        instance_id="mask",
        config=common_pb2.InstanceConfig(risk=common_pb2.RiskLimits(max_order_volume=1.0)),
    )
    e = refused(lambda: server.instances.UpdateInstanceConfig(bare, timeout=10))
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (error_info(e).reason, error_info(e).metadata["field"]) == (
        "UPDATE_MASK_REQUIRED",
        "update_mask",
    )
    for path, reason in [
        ("risk.no_such_limit", "UPDATE_MASK_INVALID"),
        ("leverage", "FIELD_NOT_UPDATABLE"),
        ("risk.max_order_volume.x", "UPDATE_MASK_INVALID"),
    ]:
        e = refused(lambda: update(server, "mask", [path], max_order_volume=1.0))  # noqa: B023
        assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, path
        assert (error_info(e).reason, error_info(e).metadata["field"]) == (reason, "update_mask")
    assert get(server, "mask").config.risk == expected  # none of those changed anything

    # trading_state alone needs no mask (a single field).
    halt = instance_pb2.UpdateInstanceConfigRequest(
        instance_id="mask", config=common_pb2.InstanceConfig(trading_state=HALTED)
    )
    instance = server.instances.UpdateInstanceConfig(halt, timeout=10).instance
    assert (instance.trading_state, instance.config.risk) == (HALTED, expected)
    # "risk" is the whole set: what it does not give is 0 (off), as asked.
    whole = update(server, "mask", ["risk"], max_order_volume=3.0)
    assert whole.instance.config.risk == common_pb2.RiskLimits(max_order_volume=3.0)
    assert whole.instance.trading_state == HALTED
