"""InstanceService and the files behind its instances, end to end on a real server, real
workers and real filesystems (tmpfs mounts filled until ENOSPC): a CreateInstance racing the
DeleteInstance of its id, credentials changed while the instance's files cannot be written,
a deletion the engine refuses, a corrupt record at start, restrictions unsaved at a graceful
stop, and one NOT_FOUND for an unknown instance, wherever it is looked up."""

from __future__ import annotations

import json
import re
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from tests.support import create_sim, error_info, wait_ready
from tests.tmpfs import tmpfs

from mt5exec.mt5 import simterminal
from mt5exec.testing import ServerProcess
from mt5exec.v1 import common_pb2, instance_pb2, order_pb2

# History off: its database is not what these tests are about.
ENV = {"MT5EXEC_HISTORY_ENABLED": "false"}
LOGIN, SERVER = 5012345, "Sim-Demo"
PASSWORD, NEW_PASSWORD = "s3cret-Fi1es-Pa55", "n3w-Fi1es-Pa55-2"


def refused(call: Callable[[], object]) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value


def instance_dir(data: Path, instance_id: str) -> Path:
    return data / "instances" / "default" / instance_id


def get(server: ServerProcess, instance_id: str) -> common_pb2.Instance:
    request = instance_pb2.GetInstanceRequest(instance_id=instance_id)
    return server.instances.GetInstance(request, timeout=5).instance


# -- a CreateInstance while the DeleteInstance of its id removes its files ------------------


def bulk(directory: Path, files: int) -> None:
    """Files enough that removing ``directory``'s tree takes a while."""
    directory.mkdir(parents=True, exist_ok=True)
    for n in range(files):
        (directory / f"f{n}").write_bytes(b"x")


def test_create_during_the_delete_of_its_id_makes_a_whole_instance(tmp_path: Path) -> None:
    """Whatever the interleaving, a CreateInstance of an id being deleted either is refused
    (ALREADY_EXISTS while the old one is there, ABORTED while its files are being removed)
    or makes a whole new instance, which comes back after a restart. Before, one that came
    in while the deleted instance's directory was being removed wrote into it, and the
    removal took the new instance's files (its record among them) from under it."""
    data = tmp_path / "data"
    with ServerProcess(data, env=ENV) as server:
        create_sim(server, "race")
        old = instance_dir(data, "race")
        # Its tree takes long to remove, wherever the instance's own files come in it.
        bulk(old / "config" / "bulk", 1000)
        for n in range(4):
            bulk(old / f"bulk{n}", 1000)

        deleted: list[object] = []
        delete = threading.Thread(
            target=lambda: deleted.append(
                server.instances.DeleteInstance(
                    instance_pb2.DeleteInstanceRequest(instance_id="race"), timeout=120
                )
            )
        )
        delete.start()
        request = instance_pb2.CreateInstanceRequest(
            instance_id="race", config=common_pb2.InstanceConfig(symbols=["EURUSD"], tick_rate=10)
        )
        refusals: dict[str, int] = {}
        deadline = time.monotonic() + 120
        while True:
            refusal = None
            try:
                server.instances.CreateInstance(request, timeout=60)
            except grpc.RpcError as e:
                refusal = (e.code(), error_info(e).reason, e.details())
            if refusal is None:
                break
            assert refusal[:2] in {
                (grpc.StatusCode.ALREADY_EXISTS, "INSTANCE_EXISTS"),
                (grpc.StatusCode.ABORTED, "INSTANCE_BEING_DELETED"),
            }, refusal
            refusals[refusal[1]] = refusals.get(refusal[1], 0) + 1
            assert time.monotonic() < deadline, f"not created within 120 s: {refusals}"
            time.sleep(0.002)
        delete.join(120)
        assert len(deleted) == 1, "DeleteInstance did not answer OK"

        new = instance_dir(data, "race")
        for path in ("instance.json", "config/runtime.json", "config/worker.json"):
            assert (new / path).is_file(), f"{path} of the new instance is missing ({refusals})"
        assert not [p.name for p in new.iterdir() if p.name.startswith("bulk")]
        assert not (new / "config" / "bulk").exists()
        wait_ready(server, "race")

    with ServerProcess(data, env=ENV) as server:
        wait_ready(server, "race")


# -- UpdateCredentials writes no file for a new password --------------------------------------


def mt5_server(root: Path) -> tuple[ServerProcess, Path]:
    """A server whose MT5 instances drive the simulated terminal (one login attempt)."""
    data = root / "data"
    config = root / "mt5exec.toml"
    config.write_text('[mt5]\nmodule = "mt5exec.mt5.simterminal"\npoll_interval_ms = 20\n')
    (data / "templates").mkdir(parents=True)
    (data / "templates" / "health_check.json").write_text(
        json.dumps({"broker_retry_attempts": 1, "broker_retry_initial_ms": 100})
    )
    return ServerProcess(data, config=config, env=ENV), data


def broker_takes(data: Path, instance_id: str, password: str) -> None:
    """The password the (simulated) broker takes for LOGIN."""
    simterminal.write_terminal_config(
        instance_dir(data, instance_id) / "terminal",
        login=LOGIN,
        password=password,
        server=SERVER,
        symbols=["EURUSD"],
        tick_rate=20,
        margin_mode="hedging",
    )


def create_mt5(server: ServerProcess, data: Path, instance_id: str) -> None:
    broker_takes(data, instance_id, PASSWORD)
    request = instance_pb2.CreateInstanceRequest(
        instance_id=instance_id,
        backend=common_pb2.BACKEND_MT5,
        config=common_pb2.InstanceConfig(symbols=["EURUSD"], login=LOGIN, server=SERVER),
        password=PASSWORD,
    )
    instance = server.instances.CreateInstance(request, timeout=60).instance
    assert instance.state == common_pb2.INSTANCE_STATE_READY


def test_update_credentials_while_the_instance_files_cannot_be_written(tmp_path: Path) -> None:
    """A new password goes to the vault and the engine, and into no file of the instance: on a
    full disk under its configs it is OK (it was INTERNAL: the worker's config was written
    again for nothing). A new login needs the worker's config: UNAVAILABLE
    (STATE_NOT_PERSISTED), and the worker starts with the login it had and the new password."""
    server, data = mt5_server(tmp_path)
    with server:
        create_mt5(server, data, "cred")
        server.instances.StopInstance(instance_pb2.StopInstanceRequest(instance_id="cred"))
        with tmpfs(instance_dir(data, "cred") / "config", "1m") as disk:
            disk.fill()
            broker_takes(data, "cred", NEW_PASSWORD)
            update = instance_pb2.UpdateCredentialsRequest(
                instance_id="cred", password=NEW_PASSWORD
            )
            server.instances.UpdateCredentials(update, timeout=30)

            update.login = LOGIN + 1
            e = refused(lambda: server.instances.UpdateCredentials(update, timeout=30))
            assert e.code() == grpc.StatusCode.UNAVAILABLE, e
            info = error_info(e)
            assert info.reason == "STATE_NOT_PERSISTED", info
            assert info.metadata["file"] == "instances/default/cred/config/worker.json", info
            assert info.metadata["errno"] == "ENOSPC", info
            assert "the credential vault has the new credential" in str(e.details())
        start = instance_pb2.StartInstanceRequest(instance_id="cred")
        started = server.instances.StartInstance(start, timeout=60).instance
        assert started.state == common_pb2.INSTANCE_STATE_READY
        account = server.orders.GetAccount(
            order_pb2.GetAccountRequest(instance_id="cred"), timeout=10
        ).account
        assert account.login == LOGIN


# -- a deletion the engine refuses keeps the credential ---------------------------------------


def vault_rows(data: Path) -> list[str]:
    with sqlite3.connect(data / "vault.db") as db:
        rows = db.execute("SELECT instance_id FROM mt5exec_vault_credentials").fetchall()
    return sorted(r[0] for r in rows)


def test_a_deletion_the_journal_refuses_keeps_the_credential(tmp_path: Path) -> None:
    """The engine refuses to delete an instance whose deletion it cannot journal (its disk
    full): the instance stays, and so does its password in the vault (it was removed before
    the engine was asked, leaving an instance that could not start again). Once the journal
    takes it, the deletion removes the credential."""
    server, data = mt5_server(tmp_path)
    with tmpfs(data / "journal", "1m") as journal, server:
        create_mt5(server, data, "keep")
        assert vault_rows(data) == ["keep"]
        journal.fill()
        delete = instance_pb2.DeleteInstanceRequest(instance_id="keep")
        e = refused(lambda: server.instances.DeleteInstance(delete, timeout=60))
        assert e.code() == grpc.StatusCode.UNAVAILABLE, e
        assert error_info(e).reason == "JOURNAL_UNAVAILABLE", error_info(e)
        assert get(server, "keep").state == common_pb2.INSTANCE_STATE_STOPPED
        assert vault_rows(data) == ["keep"]

        journal.free()
        server.instances.DeleteInstance(delete, timeout=60)
        assert vault_rows(data) == []


# -- a corrupt record at start ----------------------------------------------------------------


def test_a_record_with_corrupt_risk_counters_stops_neither_the_start_nor_the_others(
    tmp_path: Path,
) -> None:
    """Daily risk counters out of the engine's range in one instance's record (a day number
    of 31 digits): the server starts and restores the other instances; that one is left out,
    its directory and record as they are, and the log names it. Left out rather than started
    without its counters, which would reset its daily limits. (The server did not start.)"""
    data = tmp_path / "data"
    with ServerProcess(data, env=ENV) as server:
        create_sim(server, "good")
        create_sim(server, "corrupt")
    record_file = instance_dir(data, "corrupt") / "instance.json"
    record = json.loads(record_file.read_text())
    record["risk_day"] = [10**30, 1, 1000.0, 1000.0]
    corrupt = json.dumps(record)
    record_file.write_text(corrupt)

    with ServerProcess(data, env=ENV) as server:
        wait_ready(server, "good")
        e = refused(lambda: get(server, "corrupt"))
        assert e.code() == grpc.StatusCode.NOT_FOUND, e
        listed = server.instances.ListInstances(instance_pb2.ListInstancesRequest()).instances
        assert [i.instance_id for i in listed] == ["good"]
    assert record_file.read_text() == corrupt
    log = (data / "server.log").read_text()
    assert re.search(rf"ERROR .*skipping {re.escape(str(record_file))}: risk_day: day", log)


# -- restrictions unsaved at a graceful stop --------------------------------------------------


def test_a_graceful_stop_names_each_restriction_it_could_not_save(tmp_path: Path) -> None:
    """Restrictions in force whose saves are pending (a full disk) are tried once more at a
    graceful stop; each one still not saved is lost at the next start, and the log names
    it (nothing did)."""
    with tmpfs(tmp_path / "data") as disk:
        server = ServerProcess(
            tmp_path / "log", extra_args=["--data-dir", str(disk.path)], env=ENV
        ).start()
        try:
            create_sim(server, "unsaved")
            disk.fill()
            for scope in (
                instance_pb2.KillSwitchScope(instance_id="unsaved"),
                instance_pb2.KillSwitchScope(**{"global": True}),
            ):
                request = instance_pb2.EngageKillSwitchRequest(scope=scope)
                e = refused(lambda r=request: server.instances.EngageKillSwitch(r, timeout=30))
                assert error_info(e).reason == "STATE_NOT_PERSISTED", e
            assert server.terminate() == 0
        finally:
            server.kill()
    log = (tmp_path / "log" / "server.log").read_text()
    unsaved = [line for line in log.splitlines() if "stopping with a restriction not saved" in line]
    assert any(
        " ERROR " in line
        and "instances/default/unsaved/instance.json" in line
        and "instance unsaved: kill switch engaged" in line
        for line in unsaved
    ), unsaved
    assert any(
        " ERROR " in line
        and "kill_switch.json" in line
        and "kill switch engaged for all instances" in line
        for line in unsaved
    ), unsaved


# -- one NOT_FOUND for an unknown instance ----------------------------------------------------


def test_an_unknown_instance_is_the_same_not_found_in_the_engine_and_the_services(
    server: ServerProcess,
) -> None:
    """The engine (Rust) and the services (Python) say the same of an instance that does not
    exist, as the auth guard does of another owner's: nothing tells the two apart."""
    answers = []
    for call in (
        lambda: server.instances.GetInstance(  # the engine's lookup
            instance_pb2.GetInstanceRequest(instance_id="nowhere"), timeout=10
        ),
        lambda: server.orders.ListPositions(  # the engine's too
            order_pb2.ListPositionsRequest(instance_id="nowhere"), timeout=10
        ),
        lambda: server.instances.StopInstance(  # InstanceService's records
            instance_pb2.StopInstanceRequest(instance_id="nowhere"), timeout=10
        ),
        lambda: server.instances.UpdateCredentials(  # InstanceService's records
            instance_pb2.UpdateCredentialsRequest(instance_id="nowhere", password="x"),
            timeout=10,
        ),
    ):
        e = refused(call)
        info = error_info(e)
        answers.append((e.code(), e.details(), info.reason, dict(info.metadata)))
    assert answers[0][:3] == (
        grpc.StatusCode.NOT_FOUND,
        "instance_id: no instance 'nowhere'",
        "INSTANCE_NOT_FOUND",
    )
    assert all(a == answers[0] for a in answers), answers
