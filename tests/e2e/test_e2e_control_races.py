"""Control-plane changes that meet a CreateInstance or an UpdateCredentials while a record is
being written (held with the ``MT5EXEC_TEST_RECORD_WRITE_GATE`` hook, docs/risk.md): a kill
switch engaged or released during a creation is what the new instance has, in force and
after a restart; a new login is not lost to a config change written meanwhile."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.test_e2e_control_writes import ENV, HALTED, Call, get, on_disk, refusal, set_state
from tests.e2e.test_e2e_instance_files import LOGIN, PASSWORD, create_mt5, mt5_server
from tests.support import create_sim, wait_ready, wait_until

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
