"""benchmarks/metrics_overhead.py runs end to end (a smoke run: two rounds of a few calls) and
reports what its target is judged on; the figures themselves are the benchmark's, not this
test's."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "metrics_overhead.py"


def test_a_smoke_run_reports_every_server_and_its_ratios(tmp_path: Path) -> None:
    out = tmp_path / "metrics.json"
    args = ["--rounds", "2", "--calls", "5", "--warmup", "2", "--scrape-every", "0.2"]
    done = subprocess.run(
        [sys.executable, str(SCRIPT), *args, "--output", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["benchmark"] == "metrics_overhead"
    assert set(result["modes"]) == {"off", "off_control", "on"}
    for mode in result["modes"].values():
        for call in ("null_rpc", "place_order"):
            assert mode[call]["n"] == 2 * 5
            assert 0 < mode[call]["p50_us"] <= mode[call]["p99_us"]
    for mode in ("off_control", "on"):
        assert set(result["round_p50_ratios"][mode]) == {"null_rpc", "place_order"}
        assert all(value > 0 for value in result["ratios_vs_off"][mode].values())
    assert isinstance(result["met"], bool)
    assert result["target_p50_ratio"] == 1.03
    # The "on" server's /metrics was scraped while the calls ran, and it had timed them.
    assert result["scrapes"] > 0 and result["scrape_bytes"] > 0
    assert set(result["in_process_us"]) == {"bare_handler", "timed_handler", "added"}
