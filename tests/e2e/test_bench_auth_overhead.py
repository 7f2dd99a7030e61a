"""benchmarks/auth_overhead.py runs end to end (a smoke run: two rounds of a few calls) and
reports what its target is judged on; the figures themselves are the benchmark's, not this
test's."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "auth_overhead.py"


def test_a_smoke_run_reports_every_mode_and_its_ratios(tmp_path: Path) -> None:
    out = tmp_path / "auth.json"
    args = ["--rounds", "2", "--calls", "5", "--warmup", "2", "--output", str(out)]
    done = subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["benchmark"] == "auth_overhead"
    assert set(result["modes"]) == {"off", "off_control", "off_header", "api_key", "jwt"}
    for mode in result["modes"].values():
        for call in ("null_rpc", "place_order"):
            assert mode[call]["n"] == 2 * 5
            assert 0 < mode[call]["p50_us"] <= mode[call]["p99_us"]
    for mode in ("off_control", "off_header", "api_key", "jwt"):
        ratios = result["ratios_vs_off"][mode]
        assert set(ratios) == {
            "null_rpc_p50",
            "null_rpc_p99",
            "place_order_p50",
            "place_order_p99",
        }
        assert all(value > 0 for value in ratios.values())
        assert set(result["round_p50_ratios"][mode]) == {"null_rpc", "place_order"}
    assert {mode: type(met) for mode, met in result["met"].items()} == {
        "api_key": bool,
        "jwt": bool,
    }
    assert result["target_p50_ratio"] == 1.05
    assert set(result["server_cpu_us_per_pair"]) == set(result["modes"])
    assert {"audit_record_place_order", "rate_limit_admit", "authenticate_api_key"} <= set(
        result["in_process_us"]
    )
