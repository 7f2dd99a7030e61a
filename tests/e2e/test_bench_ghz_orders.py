"""benchmarks/ghz_orders.py runs end to end with ghz (a smoke run: one round of a few calls of
each kind, both variants) and reports what its targets are judged on; the figures themselves
are the benchmark's, not this test's. ghz: `make ghz` (part of `make test`) installs it into
tools/bin; skipped where neither ghz nor Go (to install it) is, failed so with CI=true."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "ghz_orders.py"
GHZ = Path.home() / "go" / "bin" / "ghz"
PINNED = Path(__file__).resolve().parents[2] / "tools" / "bin" / "ghz"


@pytest.fixture(autouse=True)
def _ghz_or_go() -> None:
    if shutil.which("ghz") or shutil.which("go") or GHZ.exists() or PINNED.exists():
        return
    if os.environ.get("CI") == "true":
        pytest.fail("neither ghz nor Go is installed (CI runs the ghz benchmark's smoke test)")
    pytest.skip("neither ghz nor Go is installed")


def test_a_smoke_run_measures_both_variants_with_ghz(tmp_path: Path) -> None:
    out = tmp_path / "ghz.json"
    args = ["--rounds", "1", "--calls", "30", "--seconds", "0.5", "--warmup", "20", "--idle", "0.2"]
    done = subprocess.run(
        [sys.executable, str(SCRIPT), *args, "--output", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PATH": f"{os.environ.get('PATH', '')}:{GHZ.parent}"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["benchmark"] == "ghz_orders"
    for variant in ("sim", "instant_terminal"):
        measured = result[variant]
        one = measured["one_connection"]
        assert len(one["rounds"]) == 1
        assert one["p50_order_vs_null"] > 0 and one["p99_order_vs_null"] > 0
        # Beside them, the process-hop floor (CheckOrder) of the same rounds.
        assert one["p50_floor_vs_null"] > 0 and one["p99_floor_vs_null"] > 0
        single = measured["cpu_us_per_call_one_connection"]
        assert {"null", "order", "floor"} <= set(single)
        assert single["floor"]["server"] > 0
        assert measured["concurrent_32"]["rate_order_vs_null"] > 0
        # Every call of ours was counted: the CPU of the server and the worker per order.
        assert {"server", "worker", "ghz"} <= set(measured["cpu_us_per_call"]["order"])
        assert measured["cpu_ours_order_vs_null"] > 0


def test_ghz_finds_the_methods_by_the_servers_reflection(tmp_path: Path) -> None:
    out = tmp_path / "ghz.json"
    args = ["--rounds", "1", "--calls", "20", "--seconds", "0.3", "--warmup", "10", "--idle", "0.1"]
    args += ["--only", "instant", "--reflection", "--output", str(out)]
    done = subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PATH": f"{os.environ.get('PATH', '')}:{GHZ.parent}"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["reflection"] is True
    assert result["instant_terminal"]["one_connection"]["p50_order_vs_null"] > 0
