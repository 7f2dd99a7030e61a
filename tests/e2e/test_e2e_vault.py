"""The credential vault end to end: the real server keeps MT5 passwords encrypted (SQLite in
the data dir, or a real PostgreSQL server), starts MT5 instances from it after a restart, and
refuses a wrong master key. The MT5 workers drive ``mt5exec.mt5.simterminal``, whose broker
side (``simterminal.json`` in the terminal directory, written by the tests as a broker would)
checks the password a worker logs in with."""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import grpc
import psycopg
import pytest
from tests.postgres import Postgres, postgres_server
from tests.support import error_info, wait_ready

from mt5exec.mt5 import simterminal
from mt5exec.testing import ServerProcess
from mt5exec.v1 import common_pb2, instance_pb2, order_pb2

LOGIN, SERVER = 5012345, "Sim-Demo"
PASSWORD, NEW_PASSWORD = "s3cret-Vau1t-Pa55", "n3w-Vau1t-Pa55-2"


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    with postgres_server() as server:
        yield server


class Node:
    """A data dir and config; ``start()`` runs a server on them (again after a stop)."""

    def __init__(self, root: Path, vault: str = "") -> None:
        self.data = root / "data"
        self.config = root / "mt5exec.toml"
        self.config.write_text(
            '[mt5]\nmodule = "mt5exec.mt5.simterminal"\npoll_interval_ms = 20\n' + vault
        )
        templates = self.data / "templates"
        templates.mkdir(parents=True)
        # One login attempt: a wrong password fails at once.
        (templates / "health_check.json").write_text(
            json.dumps({"broker_retry_attempts": 1, "broker_retry_initial_ms": 100})
        )
        self.server: ServerProcess | None = None

    def start(self, env: dict[str, str] | None = None) -> ServerProcess:
        self.server = ServerProcess(self.data, config=self.config, env=env)
        return self.server.start()

    def stop(self) -> None:
        assert self.server is not None
        assert self.server.terminate() == 0
        self.server = None

    def terminal_dir(self, instance_id: str) -> Path:
        return self.data / "instances" / "default" / instance_id / "terminal"

    def broker_password(self, instance_id: str, password: str) -> None:
        """What the broker takes (a real install brings it with its servers.dat)."""
        simterminal.write_terminal_config(
            self.terminal_dir(instance_id),
            login=LOGIN,
            password=password,
            server=SERVER,
            symbols=["EURUSD"],
            tick_rate=20,
            margin_mode="hedging",
        )


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    node = Node(tmp_path)
    yield node
    if node.server is not None:
        node.server.kill()


def create_mt5(node: Node, instance_id: str) -> common_pb2.Instance:
    assert node.server is not None
    node.broker_password(instance_id, PASSWORD)
    request = instance_pb2.CreateInstanceRequest(
        instance_id=instance_id,
        backend=common_pb2.BACKEND_MT5,
        config=common_pb2.InstanceConfig(symbols=["EURUSD"], login=LOGIN, server=SERVER),
        password=PASSWORD,
    )
    instance = node.server.instances.CreateInstance(request, timeout=60).instance
    assert instance.state == common_pb2.INSTANCE_STATE_READY
    return instance


def get(server: ServerProcess, instance_id: str) -> common_pb2.Instance:
    request = instance_pb2.GetInstanceRequest(instance_id=instance_id)
    return server.instances.GetInstance(request, timeout=5).instance


def update(server: ServerProcess, instance_id: str, password: str) -> common_pb2.Instance:
    request = instance_pb2.UpdateCredentialsRequest(instance_id=instance_id, password=password)
    return server.instances.UpdateCredentials(request, timeout=10).instance


def start_instance(server: ServerProcess, instance_id: str) -> common_pb2.Instance:
    request = instance_pb2.StartInstanceRequest(instance_id=instance_id)
    return server.instances.StartInstance(request, timeout=60).instance


def wait_state(server: ServerProcess, instance_id: str, state: int) -> common_pb2.Instance:
    deadline = time.monotonic() + 60
    while (instance := get(server, instance_id)).state != state:
        assert time.monotonic() < deadline, f"{instance_id}: {instance}"
        time.sleep(0.05)
    return instance


def process_text(pid: int) -> bytes:
    """What a process shows of itself to others: its environment and command line."""
    return Path(f"/proc/{pid}/environ").read_bytes() + Path(f"/proc/{pid}/cmdline").read_bytes()


def files_holding(root: Path, secrets: list[str]) -> list[str]:
    return [
        f"{path}: {secret}"
        for path in root.rglob("*")
        if path.is_file() and path.name != "simterminal.json"  # the broker's side
        for secret in secrets
        if secret.encode() in path.read_bytes()
    ]


def duckdb_values_holding(path: Path, secrets: list[str]) -> list[str]:
    """Every text value of every table of the history (its file may compress them)."""
    found = []
    with duckdb.connect(str(path), read_only=True) as db:
        columns = db.execute(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE data_type = 'VARCHAR'"
        ).fetchall()
        for table, column in columns:
            for secret in secrets:
                (count,) = db.execute(
                    f'SELECT count(*) FROM "{table}" WHERE contains("{column}", ?)', [secret]
                ).fetchone() or (0,)
                if count:
                    found.append(f"{table}.{column}: {secret}")
    return found


@pytest.mark.parametrize("store", ["sqlite", "postgres"])
def test_restart_and_password_change_with_the_password_nowhere_in_plaintext(
    tmp_path: Path, request: pytest.FixtureRequest, store: str
) -> None:
    pg: Postgres | None = None
    dsn = vault = ""
    if store == "postgres":
        pg = request.getfixturevalue("postgres")
        dsn = pg.database()
        vault = f'[vault]\npostgres_dsn = "{dsn}"\n'
    node = Node(tmp_path, vault)
    try:
        server = node.start()
        first = create_mt5(node, "acct")
        assert PASSWORD.encode() not in process_text(first.worker_pid)

        # A new password: at the broker, then in the vault; the worker's next start uses it.
        node.broker_password("acct", NEW_PASSWORD)
        update(server, "acct", NEW_PASSWORD)
        restarted = server.instances.RestartInstance(
            instance_pb2.RestartInstanceRequest(instance_id="acct"), timeout=60
        ).instance
        assert restarted.state == common_pb2.INSTANCE_STATE_READY
        node.stop()

        # The server comes back and so does the instance, with no password sent.
        server = node.start()
        wait_ready(server, "acct", timeout=60)
        account = server.orders.GetAccount(
            order_pb2.GetAccountRequest(instance_id="acct"), timeout=10
        ).account
        assert account.login == LOGIN
        worker = get(server, "acct").worker_pid
        assert worker and NEW_PASSWORD.encode() not in process_text(worker)
        node.stop()
    finally:
        if node.server is not None:
            node.server.kill()

    secrets = [PASSWORD, NEW_PASSWORD]
    assert files_holding(node.data, secrets) == []  # vault, logs, journal, history...
    assert duckdb_values_holding(node.data / "history.duckdb", secrets) == []
    if pg is None:
        assert (node.data / "vault.db").exists()
        return
    assert not (node.data / "vault.db").exists()
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT * FROM mt5exec_vault_credentials").fetchall()
    assert [r[0] for r in rows] == ["acct"]
    for row in rows:
        for value in row:
            raw = value if isinstance(value, bytes) else str(value).encode()
            assert all(s.encode() not in raw for s in secrets)
    pg.checkpoint()
    assert files_holding(pg.data, secrets) == []  # tables and WAL


def test_the_password_comes_from_the_vault_also_after_a_rotation(node: Node) -> None:
    """The simulated broker takes a login without a password (a terminal that saved it), so
    READY alone does not show that the vault's password was used: a wrong one stored with
    UpdateCredentials makes the restarted instance fail its login."""
    server = node.start()
    create_mt5(node, "acct")
    update(server, "acct", "not-the-password")
    assert get(server, "acct").state == common_pb2.INSTANCE_STATE_READY  # until its next start
    node.stop()

    rotated = subprocess.run(
        [sys.executable, "-m", "mt5exec", "vault", "rotate", "--data-dir", str(node.data)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert rotated.returncode == 0, rotated.stderr
    assert "1 credential(s) sealed" in rotated.stdout

    server = node.start()
    failed = wait_state(server, "acct", common_pb2.INSTANCE_STATE_FAILED)
    assert "LOGIN_FAILED" in failed.state_reason
    update(server, "acct", PASSWORD)
    assert start_instance(server, "acct").state == common_pb2.INSTANCE_STATE_READY
    node.stop()


def test_a_tampered_credential_fails_its_instance_only(node: Node) -> None:
    server = node.start()
    create_mt5(node, "bad")
    create_mt5(node, "good")
    node.stop()
    with sqlite3.connect(node.data / "vault.db") as db:
        (ciphertext,) = db.execute(
            "SELECT ciphertext FROM mt5exec_vault_credentials WHERE instance_id = 'bad'"
        ).fetchone()
        db.execute(
            "UPDATE mt5exec_vault_credentials SET ciphertext = ? WHERE instance_id = 'bad'",
            (bytes([ciphertext[0] ^ 1]) + ciphertext[1:],),
        )

    server = node.start()
    wait_ready(server, "good", timeout=60)
    assert get(server, "bad").state == common_pb2.INSTANCE_STATE_STOPPED
    log = (node.data / "server.log").read_text()
    assert "instance bad stays STOPPED: CREDENTIAL_UNREADABLE" in log
    with pytest.raises(grpc.RpcError) as caught:
        start_instance(server, "bad")
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_info(caught.value).reason == "CREDENTIAL_UNREADABLE"
    # A new password mends it.
    update(server, "bad", PASSWORD)
    assert start_instance(server, "bad").state == common_pb2.INSTANCE_STATE_READY
    node.stop()


def test_a_wrong_master_key_stops_the_start_naming_its_source(node: Node) -> None:
    node.start()
    create_mt5(node, "acct")
    node.stop()
    log = node.data / "server.log"

    def refused(env: dict[str, str] | None, source: str) -> None:
        before = log.stat().st_size
        with pytest.raises(RuntimeError, match="server did not start"):
            node.start(env)
        assert node.server is not None and node.server.process is not None
        assert node.server.process.returncode == 2
        node.server = None
        said = log.read_text()[before:]
        assert f"the vault key from {source}" in said and "does not open" in said, said
        assert "Traceback" not in said

    refused({"MT5EXEC_VAULT_KEY": base64.b64encode(os.urandom(32)).decode()}, "MT5EXEC_VAULT_KEY")
    key_file = node.data / "vault.key"
    right = key_file.read_bytes()
    key_file.write_text(base64.b64encode(os.urandom(32)).decode())
    refused(None, str(key_file))
    # With its key back, nothing was lost.
    key_file.write_bytes(right)
    server = node.start()
    wait_ready(server, "acct", timeout=60)
    node.stop()


def test_update_credentials_checks_its_input_and_delete_drops_the_credential(
    node: Node,
) -> None:
    server = node.start()
    create_mt5(node, "acct")
    server.instances.CreateInstance(
        instance_pb2.CreateInstanceRequest(instance_id="sim"), timeout=30
    )

    def refused(request: instance_pb2.UpdateCredentialsRequest) -> tuple[grpc.StatusCode, str]:
        with pytest.raises(grpc.RpcError) as caught:
            server.instances.UpdateCredentials(request, timeout=10)
        info = error_info(caught.value)
        assert "bad\tpass" not in (caught.value.details() or "")
        return caught.value.code(), f"{info.reason} {info.metadata['field']}"

    request = instance_pb2.UpdateCredentialsRequest
    assert refused(request(instance_id="sim", password=PASSWORD)) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "BACKEND_NOT_MT5 instance_id",
    )
    assert refused(request(instance_id="acct")) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "FIELD_REQUIRED password",
    )
    assert refused(request(instance_id="acct", password="bad\tpass")) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "PASSWORD_INVALID password",
    )
    assert refused(request(instance_id="acct", password=PASSWORD, login=0)) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "VALUE_OUT_OF_RANGE login",
    )
    assert refused(request(instance_id="nope", password=PASSWORD))[0] == (grpc.StatusCode.NOT_FOUND)

    def stored() -> list[str]:
        with sqlite3.connect(node.data / "vault.db") as db:
            rows = db.execute("SELECT instance_id FROM mt5exec_vault_credentials").fetchall()
        return [r[0] for r in rows]

    assert stored() == ["acct"]
    server.instances.DeleteInstance(
        instance_pb2.DeleteInstanceRequest(instance_id="acct"), timeout=30
    )
    assert stored() == []
    node.stop()
