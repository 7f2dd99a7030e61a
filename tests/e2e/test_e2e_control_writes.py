"""Control-plane record writes (kill switch, trading state, limits) run off the event loop,
one change at a time in the order they came: a restriction is in force before its write (also
while it waits behind another), the call answers once its record is on disk (a kill -9 right
after the answer keeps it), the record on disk is the state in force after any mix of
concurrent calls, and a restriction whose write fails stays in force. Writes are held with
the ``MT5EXEC_TEST_RECORD_WRITE_GATE`` hook (every record write waits while its file exists).
"""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import field_mask_pb2
from tests.support import BULK_RISK, create_sim, error_info, market, wait_ready, wait_until

from mt5exec import registry
from mt5exec.testing import ServerProcess
from mt5exec.v1 import common_pb2, instance_pb2, order_pb2
from tmpfs import tmpfs

HALTED = common_pb2.TRADING_STATE_HALTED
ACTIVE = common_pb2.TRADING_STATE_ACTIVE
ENV = {"MT5EXEC_HISTORY_ENABLED": "false"}


def on_disk(data: Path, instance_id: str) -> Any:
    path = data / "instances" / "default" / instance_id / registry.RECORD_NAME
    return json.loads(path.read_text())


def refusal(server: ServerProcess, instance_id: str, volume: float = 0.01) -> str:
    """The reason a dry run of a market order is refused with ("" when it is accepted)."""
    request = order_pb2.CheckOrderRequest(order=market(instance_id, "probe", volume))
    check = server.orders.CheckOrder(request, timeout=30)
    return "" if check.accepted else check.reason


def get(server: ServerProcess, instance_id: str) -> common_pb2.Instance:
    request = instance_pb2.GetInstanceRequest(instance_id=instance_id)
    return server.instances.GetInstance(request, timeout=30).instance


def logged(data: Path, text: str) -> int:
    return (data / "server.log").read_text().count(text)


class Call:
    """A call made in a thread: its answer, or the error it answered."""

    def __init__(self, call: Callable[[], object]) -> None:
        self.answer: object = None
        self.error: grpc.RpcError | None = None
        self._call = call
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.answer = self._call()
        except grpc.RpcError as e:
            self.error = e

    def result(self) -> object:
        self.thread.join(60)
        assert not self.thread.is_alive(), "no answer within 60 s"
        if self.error is not None:
            raise self.error
        return self.answer


def set_state(server: ServerProcess, instance_id: str, state: int) -> object:
    request = instance_pb2.SetTradingStateRequest(instance_id=instance_id, trading_state=state)  # type: ignore[arg-type]
    return server.instances.SetTradingState(request, timeout=60)


def kill_switch(server: ServerProcess, instance_id: str, engaged: bool) -> object:
    scope = instance_pb2.KillSwitchScope(instance_id=instance_id)
    if engaged:
        engage = instance_pb2.EngageKillSwitchRequest(scope=scope)
        return server.instances.EngageKillSwitch(engage, timeout=60)
    release = instance_pb2.ReleaseKillSwitchRequest(scope=scope)
    return server.instances.ReleaseKillSwitch(release, timeout=60)


def max_volume(server: ServerProcess, instance_id: str, volume: float) -> object:
    request = instance_pb2.UpdateInstanceConfigRequest(
        instance_id=instance_id,
        config=common_pb2.InstanceConfig(risk=common_pb2.RiskLimits(max_order_volume=volume)),
        update_mask=field_mask_pb2.FieldMask(paths=["risk.max_order_volume"]),
    )
    return server.instances.UpdateInstanceConfig(request, timeout=60)


def test_a_restriction_is_in_force_while_its_write_hangs_and_answered_once_written(
    tmp_path: Path,
) -> None:
    """HALTED set while record writes hang: orders are refused at once and the loop answers
    meanwhile (the write is in a thread); the call answers only once the record is written,
    so a kill -9 right after the answer keeps it."""
    gate = tmp_path / "gate"
    data = tmp_path / "data"
    env = {**ENV, registry.WRITE_GATE_ENV: str(gate)}
    server = ServerProcess(data, env=env).start()
    try:
        create_sim(server, "cw1")
        gate.touch()
        halt = Call(lambda: set_state(server, "cw1", HALTED))
        wait_until(
            "HALTED in force while its write hangs",
            lambda: refusal(server, "cw1") == "TRADING_HALTED",
        )
        wait_until("its write is held", (tmp_path / "gate.held").exists)
        assert on_disk(data, "cw1")["config"].get("trading_state") != "TRADING_STATE_HALTED"
        assert halt.thread.is_alive(), "answered before its record was written"
        gate.unlink()
        halt.result()
    finally:
        server.kill()  # SIGKILL right after the answer: nothing more is written
    server = ServerProcess(data, env=ENV).start()
    try:
        wait_ready(server, "cw1")
        assert get(server, "cw1").trading_state == HALTED
        assert refusal(server, "cw1") == "TRADING_HALTED"
    finally:
        server.kill()


def in_force_and_on_disk(server: ServerProcess, data: Path, instance_id: str) -> None:
    """The record on disk says what is in force (kill switch, trading state, the volume
    limit, the config version)."""
    instance = get(server, instance_id)
    record = on_disk(data, instance_id)
    state = common_pb2.TradingState.Name(instance.trading_state)
    assert (
        record["kill_switch"],
        record["config"].get("trading_state", "TRADING_STATE_ACTIVE"),
        record["config"]["risk"]["max_order_volume"],
        record["config_version"],
    ) == (
        instance.kill_switch,
        state,
        instance.config.risk.max_order_volume,
        instance.config_version,
    ), instance


def test_concurrent_control_calls_leave_on_disk_what_is_in_force(tmp_path: Path) -> None:
    """Rounds of kill switch, trading state and limit changes of one instance, each round's
    six calls at once from six threads, started in a shuffled order: once a round's calls
    have answered, the record on disk is the state in force; a kill -9 and a restart keep
    it."""
    data = tmp_path / "data"
    server = ServerProcess(data, env=ENV).start()
    shuffled = random.Random(25)
    changes: list[Callable[[], object]] = [
        lambda: kill_switch(server, "cw2", engaged=True),
        lambda: kill_switch(server, "cw2", engaged=False),
        lambda: set_state(server, "cw2", HALTED),
        lambda: set_state(server, "cw2", ACTIVE),
        lambda: max_volume(server, "cw2", 0.5),
        lambda: max_volume(server, "cw2", 5.0),
    ]
    try:
        create_sim(server, "cw2", risk=BULK_RISK)
        for _ in range(15):
            shuffled.shuffle(changes)
            for call in [Call(change) for change in changes]:
                call.result()
            in_force_and_on_disk(server, data, "cw2")
        before = get(server, "cw2")
    finally:
        server.kill()
    server = ServerProcess(data, env=ENV).start()
    try:
        wait_ready(server, "cw2")
        after = get(server, "cw2")
        assert (after.kill_switch, after.trading_state, after.config_version) == (
            before.kill_switch,
            before.trading_state,
            before.config_version,
        )
        assert after.config.risk.max_order_volume == before.config.risk.max_order_volume
    finally:
        server.kill()


def test_a_kill_switch_engaged_while_a_release_is_written_stays_engaged(tmp_path: Path) -> None:
    """The release's write hangs; a kill switch engaged meanwhile is in force at once, the
    release lands first (its turn) and does not lift it: engaged in force, on disk and after
    a restart."""
    gate = tmp_path / "gate"
    data = tmp_path / "data"
    env = {**ENV, registry.WRITE_GATE_ENV: str(gate)}
    server = ServerProcess(data, env=env).start()
    try:
        create_sim(server, "cw3")
        kill_switch(server, "cw3", engaged=True)
        gate.touch()
        release = Call(lambda: kill_switch(server, "cw3", engaged=False))
        wait_until(
            "the release is being written",
            lambda: (
                logged(data, "kill switch release asked for instance cw3") == 1
                and (tmp_path / "gate.held").exists()
            ),
        )
        engage = Call(lambda: kill_switch(server, "cw3", engaged=True))
        wait_until(
            "the second engage is in the server",
            lambda: logged(data, "kill switch engaged for instance cw3") == 2,
        )
        assert refusal(server, "cw3") == "KILL_SWITCH"
        gate.unlink()
        release.result()
        engage.result()
        assert get(server, "cw3").kill_switch
        assert refusal(server, "cw3") == "KILL_SWITCH"
        assert on_disk(data, "cw3")["kill_switch"] is True
        assert server.terminate() == 0
    finally:
        server.kill()
    server = ServerProcess(data, env=ENV).start()
    try:
        wait_ready(server, "cw3")
        assert refusal(server, "cw3") == "KILL_SWITCH"
    finally:
        server.kill()


def test_a_restriction_made_while_a_loosening_is_written_holds_when_its_write_fails(
    tmp_path: Path,
) -> None:
    """A wider volume limit is being written (held) when HALTED comes: HALTED is in force at
    once. The disk fills before either write: the wider limit answers UNAVAILABLE and is not
    applied, HALTED answers UNAVAILABLE in force, and is saved once the disk has room."""
    gate = tmp_path / "gate"
    with tmpfs(tmp_path / "data") as disk:
        env = {**ENV, registry.WRITE_GATE_ENV: str(gate)}
        server = ServerProcess(
            tmp_path / "log", extra_args=["--data-dir", str(disk.path)], env=env
        ).start()
        try:
            create_sim(server, "cw4", risk=BULK_RISK)
            max_volume(server, "cw4", 1.0)
            gate.touch()
            wider = Call(lambda: max_volume(server, "cw4", 5.0))
            wait_until(
                "the wider limit is being written",
                lambda: (
                    logged(tmp_path / "log", "cw4: config change asked (at version 2)") == 1
                    and (tmp_path / "gate.held").exists()
                ),
            )
            halt = Call(lambda: set_state(server, "cw4", HALTED))
            wait_until(
                "HALTED in force while the wider limit is written",
                lambda: refusal(server, "cw4") == "TRADING_HALTED",
            )
            disk.fill()
            gate.unlink()
            for call, in_force in ((wider, "false"), (halt, "true")):
                with pytest.raises(grpc.RpcError) as caught:
                    call.result()
                assert caught.value.code() == grpc.StatusCode.UNAVAILABLE, caught.value
                info = error_info(caught.value)
                assert info.reason == "STATE_NOT_PERSISTED", info
                assert (info.metadata["errno"], info.metadata["in_force"]) == ("ENOSPC", in_force)
            instance = get(server, "cw4")
            assert (instance.trading_state, instance.config.risk.max_order_volume) == (HALTED, 1.0)
            assert refusal(server, "cw4") == "TRADING_HALTED"
            disk.free()
            wait_until(
                "HALTED saved once the disk has room",
                lambda: (
                    on_disk(disk.path, "cw4")["config"].get("trading_state")
                    == "TRADING_STATE_HALTED"
                ),
            )
            assert on_disk(disk.path, "cw4")["config"]["risk"]["max_order_volume"] == 1.0
        finally:
            server.kill()


def test_the_daily_counters_never_write_a_copy_older_than_a_change_being_written(
    tmp_path: Path,
) -> None:
    """A wider volume limit of cw5 is being written (held: the gate names cw5 alone) while
    orders change the daily counters of cw5 and cw6. The counters' save passes cw5 by while
    its change is written (a copy of cw5 taken then would hold the old limit and land after
    the change); cw6's counters land meanwhile. Once the change lands, cw5's counters follow
    and the record keeps the wider limit."""
    gate = tmp_path / "gate"
    data = tmp_path / "data"
    env = {**ENV, registry.WRITE_GATE_ENV: str(gate)}
    server = ServerProcess(data, env=env).start()
    try:
        for instance_id in ("cw5", "cw6"):
            create_sim(server, instance_id, risk=BULK_RISK)
        max_volume(server, "cw5", 1.0)

        def trades(instance_id: str) -> int:
            return int((on_disk(data, instance_id)["risk_day"] or [0, 0])[1])

        server.orders.PlaceOrder(market("cw5", "first"), timeout=60)
        wait_until("cw5's first order counted on disk", lambda: trades("cw5") == 1)
        gate.write_text("cw5")
        wider = Call(lambda: max_volume(server, "cw5", 5.0))
        wait_until(
            "the wider limit is being written",
            lambda: (
                logged(data, "cw5: config change asked (at version 2)") == 1
                and (tmp_path / "gate.held").exists()
            ),
        )
        server.orders.PlaceOrder(market("cw5", "second"), timeout=60)
        server.orders.PlaceOrder(market("cw6", "first"), timeout=60)
        # A pass of the counters' save after both orders: cw6's are written.
        wait_until("cw6's order counted on disk", lambda: trades("cw6") == 1)
        assert on_disk(data, "cw5")["config"]["risk"]["max_order_volume"] == 1.0  # held
        gate.unlink()
        wider.result()
        wait_until("cw5's second order counted on disk", lambda: trades("cw5") == 2)
        assert on_disk(data, "cw5")["config"]["risk"]["max_order_volume"] == 5.0
        assert get(server, "cw5").config.risk.max_order_volume == 5.0
    finally:
        server.kill()
