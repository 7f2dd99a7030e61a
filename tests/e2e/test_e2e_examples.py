"""The Go and Node examples (examples/go, examples/node), built and run against a live server
as a user would run them, and protoc-gen-go on the .proto files as they are (no M flags).

Go and Node are on the project's machines: with CI=true a missing one fails the test."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from mt5exec.testing import ServerProcess

ROOT = Path(__file__).resolve().parents[2]
GO_DIR = ROOT / "examples" / "go"
NODE_DIR = ROOT / "examples" / "node"
BUF = ROOT / "tools" / "node_modules" / ".bin" / "buf"
# Module downloads and the first build of the protoc plugins take minutes on a new machine.
SLOW = 900


def _need(tool: str) -> str:
    found = shutil.which(tool)
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{tool} is not installed (CI runs the examples)")
        pytest.skip(f"{tool} is not installed")
    return found


def _run(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    out = subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=SLOW, check=False
    )
    assert out.returncode == 0, f"{' '.join(args)}:\n{out.stdout}\n{out.stderr}"
    return out.stdout


def _buf() -> Path:
    _need("npm")
    if not BUF.exists():
        _run(["npm", "ci", "--prefix", "tools", "--no-audit", "--no-fund"], ROOT)
    return BUF


@pytest.fixture(scope="module")
def env(server: ServerProcess) -> dict[str, str]:
    return {**os.environ, "MT5EXEC_TARGET": server.address, "MT5EXEC_TOKEN": server.token or ""}


def _check_run(out: str, instance_id: str) -> int:
    """Asserts what a run of either example prints; the sequence its executions start after."""
    lines = out.splitlines()
    assert lines[0] == f"instance {instance_id}: ready"
    assert sum(bool(re.fullmatch(r"tick EURUSD bid=1\.\d+ ask=1\.\d+", x)) for x in lines) == 3
    start = int(next(x for x in lines if x.startswith("executions start after")).split()[-1])
    assert re.search(r"^order \S+: ORDER_STATUS_FILLED$", out, re.M)
    executions = [x for x in lines if x.startswith("execution ")]
    # Only the new order's events, from the one after the start on: nothing replayed.
    assert executions[0].startswith(f"execution {start + 1}: ")
    assert any(re.fullmatch(r"execution \d+: fill 0\.01 @ 1\.\d+", x) for x in executions)
    assert executions[-1].endswith(": ORDER_STATUS_FILLED")
    return start


def test_go_example(env: dict[str, str]) -> None:
    go = _need("go")
    _buf()
    _run([go, "generate"], GO_DIR)
    _run([go, "vet", "."], GO_DIR)
    binary = GO_DIR / "gen" / "example"
    _run([go, "build", "-o", str(binary), "."], GO_DIR)
    first = _run([str(binary)], GO_DIR, env)
    assert "bad order: InvalidArgument reason=VOLUME_INVALID field=volume" in first
    assert _check_run(first, "example-go") == 0
    # Again: the instance is there, and the live stream starts after the first run's events.
    assert _check_run(_run([str(binary)], GO_DIR, env), "example-go") > 0


def test_node_example(env: dict[str, str]) -> None:
    node = _need("node")
    _need("npm")
    if not (NODE_DIR / "node_modules" / ".package-lock.json").exists():
        _run(["npm", "ci", "--no-audit", "--no-fund"], NODE_DIR)
    first = _run([node, "example.js"], NODE_DIR, env)
    assert "bad order: INVALID_ARGUMENT reason=VOLUME_INVALID field=volume" in first
    assert _check_run(first, "example-node") == 0
    assert _check_run(_run([node, "example.js"], NODE_DIR, env), "example-node") > 0


def test_protoc_gen_go_takes_the_protos_as_they_are(tmp_path: Path) -> None:
    """No managed mode and no M flags: the files' own go_package options."""
    _need("go")
    template = (
        '{"version":"v2","plugins":[{"local":["go","tool","protoc-gen-go"],'
        f'"out":"{tmp_path}","opt":"module=mt5exec/gen/go"}}]}}'
    )
    _run([str(_buf()), "generate", "--template", template, str(ROOT / "proto")], GO_DIR)
    common = (tmp_path / "mt5exec" / "v1" / "common.pb.go").read_text()
    assert "package mt5execv1" in common
    worker = (tmp_path / "mt5exec" / "terminal" / "v1" / "worker.pb.go").read_text()
    assert "package mt5execterminalv1" in worker
    order = (tmp_path / "mt5exec" / "v1" / "order.pb.go").read_text()
    assert "package mt5execv1" in order
