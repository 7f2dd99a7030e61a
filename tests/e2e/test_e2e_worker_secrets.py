"""What the server's children are given of its secrets, end to end with the real server: the
vault's master key and PostgreSQL DSN stay out of every child's environment, and a worker's
password file is gone when its start is over, also when the worker never read it."""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from tests.mt5_server_support import create_mt5
from tests.postgres import postgres_server

from mt5exec.testing import ServerProcess
from mt5exec.v1 import common_pb2, instance_pb2

LOGIN, SERVER, PASSWORD = 5012345, "Sim-Demo", "s3cret-Pa55-w0rd"
STATES = common_pb2.InstanceState


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


def cmdline(pid: int) -> bytes:
    return Path(f"/proc/{pid}/cmdline").read_bytes()


def environ(pid: int) -> dict[bytes, bytes]:
    entries = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(e.partition(b"=")[::2] for e in entries if e)


def history_child(server: ServerProcess) -> int:
    (pid,) = [p for p in children(server.pid) if b"mt5exec.storage.history_process" in cmdline(p)]
    return pid


def get(server: ServerProcess, instance_id: str) -> common_pb2.Instance:
    request = instance_pb2.GetInstanceRequest(instance_id=instance_id)
    return server.instances.GetInstance(request, timeout=10).instance


def test_the_vault_key_and_dsn_reach_no_child(tmp_path: Path) -> None:
    key = base64.b64encode(os.urandom(32)).decode()
    with postgres_server() as pg:
        dsn = pg.database()
        env = {
            "MT5EXEC_VAULT_KEY": key,
            "MT5EXEC_VAULT_POSTGRES_DSN": dsn,
            "MT5EXEC_TEST_MARKER": "inherited",  # what is not a secret still reaches them
        }
        with ServerProcess(tmp_path / "data", env=env) as server:
            request = instance_pb2.CreateInstanceRequest(
                instance_id="sim", config=common_pb2.InstanceConfig(tick_rate=2)
            )
            worker = server.instances.CreateInstance(request, timeout=60).instance.worker_pid
            history = history_child(server)
            assert worker in children(server.pid)
            for pid in (worker, history):
                seen = environ(pid)
                assert seen.get(b"MT5EXEC_TEST_MARKER") == b"inherited", pid
                assert b"MT5EXEC_VAULT_KEY" not in seen, pid
                assert b"MT5EXEC_VAULT_POSTGRES_DSN" not in seen, pid
                text = Path(f"/proc/{pid}/environ").read_bytes() + cmdline(pid)
                assert key.encode() not in text and dsn.encode() not in text, pid
            # The vault took them: it is the PostgreSQL one, sealed under this key.
            assert not (server.data_dir / "vault.db").exists()
            assert not (server.data_dir / "vault.key").exists()


# -- the password file ----------------------------------------------------------------------

# Loaded by every Python process of the server (PYTHONPATH): the worker of an instance whose
# id starts with "broken" exits at once, before it reads its password file (a worker that
# fails at start).
_CRASH_AT_START = """\
import os, sys
if any("/broken" in arg for arg in sys.orig_argv) and "mt5exec.workers.mt5" in sys.orig_argv:
    os._exit(3)
"""


@pytest.fixture
def mt5_server(tmp_path: Path) -> Iterator[ServerProcess]:
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(_CRASH_AT_START)
    data = tmp_path / "data"
    templates = data / "templates"
    templates.mkdir(parents=True)
    # A worker that fails is given up on after two quick tries.
    (templates / "health_check.json").write_text(
        json.dumps(
            {
                "max_consecutive_failures": 2,
                "restart_backoff_initial_ms": 50,
                "broker_retry_attempts": 1,
                "broker_retry_initial_ms": 100,
            }
        )
    )
    config = tmp_path / "mt5exec.toml"
    config.write_text('[mt5]\nmodule = "mt5exec.mt5.simterminal"\npoll_interval_ms = 20\n')
    path = os.pathsep.join(filter(None, [str(hook), os.environ.get("PYTHONPATH")]))
    with ServerProcess(data, config=config, env={"PYTHONPATH": path}) as server:
        yield server


def instance_dir(server: ServerProcess, instance_id: str) -> Path:
    return server.data_dir / "instances" / "default" / instance_id


def test_the_password_file_is_gone_when_the_worker_never_read_it(
    mt5_server: ServerProcess,
) -> None:
    server = mt5_server
    with pytest.raises(grpc.RpcError):
        create_mt5(server, "broken", PASSWORD)
    deadline = time.monotonic() + 60
    while (instance := get(server, "broken")).state != STATES.INSTANCE_STATE_FAILED:
        assert time.monotonic() < deadline, instance
        time.sleep(0.05)
    assert "WORKER_EXITED" in instance.state_reason
    directory = instance_dir(server, "broken")
    assert (directory / "config" / "worker.json").exists()  # the start got as far as the worker
    assert not (directory / ".terminal-password").exists()
    assert PASSWORD.encode() not in b"".join(
        p.read_bytes() for p in directory.rglob("*") if p.is_file() and p.name != "simterminal.json"
    )

    # A worker that starts reads it and it is gone as well.
    create_mt5(server, "good", PASSWORD)
    assert get(server, "good").state == STATES.INSTANCE_STATE_READY
    assert not (instance_dir(server, "good") / ".terminal-password").exists()
