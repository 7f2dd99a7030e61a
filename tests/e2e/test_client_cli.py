"""The operator commands (mt5exec instances|orders|positions|kill-switch|status) run as a
subprocess against a real server; --json output parsed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest
from tests.support import wait_for_price

from mt5exec import __version__
from mt5exec.testing import ServerProcess
from mt5exec.v1 import auth_pb2


def mt5exec(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "mt5exec", *args], capture_output=True, text=True, timeout=120
    )
    if check:
        assert done.returncode == 0, done.stderr
    return done


@pytest.fixture(scope="module")
def run(server: ServerProcess) -> Any:
    """mt5exec with the server's address and the token of its data dir; --json parsed."""

    def run(*args: str) -> Any:
        done = mt5exec(*args, "--target", server.address, "--data-dir", str(server.data_dir))
        return json.loads(done.stdout) if "--json" in args else done.stdout

    return run


def test_instances_orders_positions_kill_switch(server: ServerProcess, run: Any) -> None:
    created = run("instances", "create", "k1", "--symbols", "EURUSD", "--tick-rate", "20", "--json")
    assert (created["instance_id"], created["state"]) == ("k1", "INSTANCE_STATE_READY")
    assert "k1" in [i["instance_id"] for i in run("instances", "list", "--json")]
    table = run("instances", "list").splitlines()
    assert table[0].split()[:3] == ["ID", "STATE", "TRADING"]
    assert any(line.split()[:3] == ["k1", "READY", "ACTIVE"] for line in table)
    wait_for_price(server, "k1", "EURUSD")

    pending = run(
        "orders",
        "place",
        "k1",
        "EURUSD",
        "buy",
        "0.01",
        "--type",
        "limit",
        "--price",
        "1.0",
        "--json",
    )
    assert pending["status"] == "ORDER_STATUS_ACCEPTED"
    assert pending["client_order_id"].startswith("c-")
    filled = run("orders", "place", "k1", "EURUSD", "buy", "0.01", "--json")
    assert filled["status"] == "ORDER_STATUS_FILLED"
    listed = run("orders", "list", "k1", "--json")
    assert [o["client_order_id"] for o in listed] == [pending["client_order_id"]]
    positions = run("positions", "k1", "--json")
    assert [p["volume"] for p in positions] == [0.01]
    assert "EURUSD" in run("positions", "k1").splitlines()[1]

    engaged = run("kill-switch", "engage", "--instance", "k1", "--json")
    assert engaged["instance_ids"] == ["k1"]
    assert engaged["orders_cancelled"] == 1
    assert "KILL SWITCH" in run("instances", "list")
    status = run("status", "--json")
    assert status["whoami"]["role"] == "ROLE_ADMIN"
    assert [i["kill_switch"] for i in status["instances"] if i["instance_id"] == "k1"] == [True]
    assert run("kill-switch", "release", "--instance", "k1", "--json")["instance_ids"] == ["k1"]

    again = run(
        "orders",
        "place",
        "k1",
        "EURUSD",
        "buy",
        "0.01",
        "--type",
        "limit",
        "--price",
        "1.0",
        "--json",
    )
    cancelled = run(
        "orders", "cancel", "k1", "--client-order-id", again["client_order_id"], "--json"
    )
    assert cancelled["status"] == "ORDER_STATUS_CANCELED"
    history = run("orders", "list", "k1", "--history", "--json")
    assert {o["client_order_id"] for o in history} >= {
        pending["client_order_id"],
        again["client_order_id"],
    }

    assert run("instances", "stop", "k1", "--json")["state"] == "INSTANCE_STATE_STOPPED"
    assert run("instances", "start", "k1", "--json")["state"] == "INSTANCE_STATE_READY"
    assert run("instances", "delete", "k1", "--json") == {"deleted": "k1"}
    assert "k1" not in [i["instance_id"] for i in run("instances", "list", "--json")]


def test_a_refused_call_is_one_line_with_its_reason_and_field(server: ServerProcess) -> None:
    target = ["--target", server.address, "--data-dir", str(server.data_dir)]
    done = mt5exec("orders", "place", "nowhere", "EURUSD", "buy", "-1", *target, check=False)
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1
    assert done.stderr.startswith("mt5exec: NOT_FOUND INSTANCE_NOT_FOUND [instance_id]: ")
    done = mt5exec("instances", "create", "bad id", *target, check=False)
    assert done.returncode == 1
    assert done.stderr.startswith("mt5exec: INVALID_ARGUMENT ")
    assert "[instance_id]" in done.stderr
    bad = mt5exec("status", "--target", server.address, "--token", "mt5x_no_no", check=False)
    assert bad.returncode == 1
    assert bad.stderr.split()[1:3] == ["UNAUTHENTICATED", "TOKEN_INVALID"]
    unsure = mt5exec("status", "--target", server.address, "--cert", "c.pem", check=False)
    assert (unsure.returncode, unsure.stderr.strip()) == (
        2,
        "mt5exec: a client certificate and its key go together (mTLS)",
    )


def test_status_for_a_trader(server: ServerProcess) -> None:
    request = auth_pb2.CreateApiKeyRequest(role=auth_pb2.ROLE_TRADER, owner="desk", label="cli")
    token = server.auth.CreateApiKey(request, timeout=30).token
    status = json.loads(
        mt5exec("status", "--json", "--target", server.address, "--token", token).stdout
    )
    assert status["whoami"]["role"] == "ROLE_TRADER"
    assert (status["system"], status["instances"]) == (None, [])
    table = mt5exec("status", "--target", server.address, "--token", token).stdout
    assert table.splitlines()[1].split()[2:5] == ["TRADER", "desk", "0"]


def test_the_token_from_the_environment_and_the_version(server: ServerProcess) -> None:
    assert server.token is not None
    done = subprocess.run(
        [sys.executable, "-m", "mt5exec", "status", "--json", "--target", server.address],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "MT5EXEC_TOKEN": server.token},
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["whoami"]["kind"] == "api_key"
    assert mt5exec("--version").stdout.strip() == f"mt5exec {__version__}"
