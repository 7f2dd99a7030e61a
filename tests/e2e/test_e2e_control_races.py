"""Control-plane changes that meet a CreateInstance or an UpdateCredentials while a record is
being written (held with the ``MT5EXEC_TEST_RECORD_WRITE_GATE`` hook, docs/risk.md): a kill
switch engaged or released during a creation is what the new instance has, in force and
after a restart; a new login is not lost to a config change written meanwhile; a server
stopping waits for the changes under way and logs each restriction it could not write."""

from __future__ import annotations

import signal
from pathlib import Path

from tests.e2e.test_e2e_control_writes import (
    ENV,
    HALTED,
    Call,
    get,
    logged,
    on_disk,
    refusal,
    set_state,
)
from tests.e2e.test_e2e_instance_files import LOGIN, PASSWORD, create_mt5, mt5_server
from tests.support import BULK_RISK, create_sim, market, wait_ready, wait_until

from mt5exec import registry
from mt5exec.testing import ServerProcess
from mt5exec.v1 import instance_pb2

GLOBAL = instance_pb2.KillSwitchScope(**{"global": True})


def test_a_global_kill_switch_engaged_while_an_instance_is_created_halts_it(
    tmp_path: Path,
) -> None:
    """new1's record is being written when the global kill switch is engaged: new1 comes up
    with the switch engaged (its orders refused), and so after a restart."""
    gate = tmp_path / "gate"
    data = tmp_path / "data"
    server = ServerProcess(data, env={**ENV, registry.WRITE_GATE_ENV: str(gate)}).start()
    try:
        create_sim(server, "old1")
        gate.write_text("new1")
        create = Call(lambda: create_sim(server, "new1"))
        wait_until("new1's record is being written", (tmp_path / "gate.held").exists)
        engage = instance_pb2.EngageKillSwitchRequest(scope=GLOBAL, reason="desk stop")
        server.instances.EngageKillSwitch(engage, timeout=60)
        assert refusal(server, "old1") == "KILL_SWITCH"
        gate.unlink()
        create.result()
        assert get(server, "new1").kill_switch
        assert refusal(server, "new1") == "KILL_SWITCH"
    finally:
        server.kill()
    server = ServerProcess(data, env=ENV).start()
    try:
        wait_ready(server, "new1")
        assert refusal(server, "new1") == "KILL_SWITCH"
        release = instance_pb2.ReleaseKillSwitchRequest(scope=GLOBAL)
        server.instances.ReleaseKillSwitch(release, timeout=60)
        assert refusal(server, "new1") == ""
    finally:
        server.kill()


def test_a_global_kill_switch_released_while_an_instance_is_created_leaves_it_consistent(
    tmp_path: Path,
) -> None:
    """The global kill switch is released while new1's record is being written: new1's
    switch in force is what its record and kill_switch.json say (the same after a
    restart)."""
    gate = tmp_path / "gate"
    data = tmp_path / "data"
    server = ServerProcess(data, env={**ENV, registry.WRITE_GATE_ENV: str(gate)}).start()
    try:
        create_sim(server, "old2")
        engage = instance_pb2.EngageKillSwitchRequest(scope=GLOBAL)
        server.instances.EngageKillSwitch(engage, timeout=60)
        gate.write_text("new2")
        create = Call(lambda: create_sim(server, "new2"))
        wait_until("new2's record is being written", (tmp_path / "gate.held").exists)
        release = instance_pb2.ReleaseKillSwitchRequest(scope=GLOBAL)
        server.instances.ReleaseKillSwitch(release, timeout=60)
        assert refusal(server, "old2") == ""
        gate.unlink()
        create.result()
        in_force = refusal(server, "new2")
        on_file = on_disk(data, "new2")["kill_switch"]
        assert in_force == ("KILL_SWITCH" if on_file else ""), (in_force, on_file)
    finally:
        server.kill()
    server = ServerProcess(data, env=ENV).start()
    try:
        wait_ready(server, "new2")
        assert refusal(server, "new2") == in_force
    finally:
        server.kill()


def test_a_new_login_is_not_lost_to_a_config_change_written_meanwhile(tmp_path: Path) -> None:
    """HALTED of an MT5 instance is being written when UpdateCredentials gives it a new
    login: once both answered, its record has the new login (and HALTED)."""
    _, data = mt5_server(tmp_path)
    gate = tmp_path / "gate"
    env = {**ENV, registry.WRITE_GATE_ENV: str(gate)}
    server = ServerProcess(data, config=tmp_path / "mt5exec.toml", env=env).start()
    try:
        create_mt5(server, data, "cred")
        gate.write_text("cred")
        halt = Call(lambda: set_state(server, "cred", HALTED))
        wait_until("the HALTED write held", (tmp_path / "gate.held").exists)
        update = instance_pb2.UpdateCredentialsRequest(
            instance_id="cred", password=PASSWORD, login=LOGIN + 1
        )
        cred = Call(lambda: server.instances.UpdateCredentials(update, timeout=60))
        worker = data / "instances" / "default" / "cred" / "config" / "worker.json"
        wait_until("worker.json has the new login", lambda: str(LOGIN + 1) in worker.read_text())
        gate.unlink()
        halt.result()
        cred.result()
        record = on_disk(data, "cred")
        assert int(record["config"]["login"]) == LOGIN + 1
        assert record["config"]["trading_state"] == "TRADING_STATE_HALTED"
    finally:
        server.kill()


def stopped_with_changes_under_way(tmp_path: Path, grace: float) -> tuple[ServerProcess, Path]:
    """A server told to stop (SIGTERM) while a change of st1 (an order's daily counters, then
    HALTED) is being written (held) and a kill switch of st1 waits for its turn; the calls
    themselves are cancelled by their clients, so the gRPC stop does not wait for them."""
    gate = tmp_path / "gate"
    data = tmp_path / "data"
    env = {
        **ENV,
        registry.WRITE_GATE_ENV: str(gate),
        "MT5EXEC_SERVER_GRACE_PERIOD_S": str(grace),
    }
    server = ServerProcess(data, env=env).start()
    create_sim(server, "st1", risk=BULK_RISK)
    gate.write_text("st1")
    server.orders.PlaceOrder(market("st1", "counted"), timeout=60)
    wait_until("the daily counters' write held", (tmp_path / "gate.held").exists)
    halt = server.instances.SetTradingState.future(
        instance_pb2.SetTradingStateRequest(instance_id="st1", trading_state=HALTED),
        timeout=60,
    )
    wait_until("HALTED in force", lambda: refusal(server, "st1") == "TRADING_HALTED")
    scope = instance_pb2.KillSwitchScope(instance_id="st1")
    engage = server.instances.EngageKillSwitch.future(
        instance_pb2.EngageKillSwitchRequest(scope=scope), timeout=60
    )
    wait_until("the kill switch in force", lambda: logged(data, "kill switch engaged for") == 1)
    halt.cancel()
    engage.cancel()
    assert server.process is not None
    server.process.send_signal(signal.SIGTERM)
    return server, data


def test_a_stop_waits_for_the_control_changes_under_way(tmp_path: Path) -> None:
    """The changes under way when the server stops are written before it exits: HALTED and
    the kill switch are on disk after the restart."""
    server, data = stopped_with_changes_under_way(tmp_path, grace=120)
    try:
        wait_until("the stop waits for the changes", lambda: logged(data, "stopping: waiting") == 1)
        (tmp_path / "gate").unlink()
        assert server.process is not None
        assert server.process.wait(60) == 0
    finally:
        server.kill()
    assert on_disk(data, "st1")["kill_switch"]
    assert on_disk(data, "st1")["config"]["trading_state"] == "TRADING_STATE_HALTED"
    server = ServerProcess(data, env=ENV).start()
    try:
        wait_ready(server, "st1")
        assert refusal(server, "st1") == "KILL_SWITCH"
        assert get(server, "st1").trading_state == HALTED
    finally:
        server.kill()


def test_a_stop_logs_every_restriction_and_counters_it_could_not_write(tmp_path: Path) -> None:
    """The writes still hang when the stop's wait ends: the kill switch waiting for its turn,
    HALTED being written and st1's daily counters are each logged (ERROR) as not saved."""
    server, data = stopped_with_changes_under_way(tmp_path, grace=0.5)
    try:
        wait_until(
            "each loss logged",
            lambda: (
                logged(
                    data,
                    "restriction not written (its change had not ended): the kill "
                    "switch of instance st1",
                )
                == 1
                and logged(
                    data,
                    "being written, instance st1: kill switch released, "
                    "trading_state TRADING_STATE_HALTED",
                )
                == 1
                and logged(data, "daily risk counters of instance st1 not saved") == 1
            ),
        )
    finally:
        (tmp_path / "gate").unlink()  # the process ends once its writes have
        server.kill()
