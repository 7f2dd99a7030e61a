"""benchmarks/slow_consumers.py runs end to end (a smoke run: few streams, short phases) and
reports what its targets are judged on; the figures themselves are the benchmark's, not this
test's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "slow_consumers.py"


def test_a_smoke_run_cuts_every_stream_off_and_reports(tmp_path: Path) -> None:
    out = tmp_path / "slow.json"
    env = {**os.environ, "MT5EXEC_ENGINE_SLOW_CONSUMER_TIMEOUT_S": "1"}
    # Held until every stream is cut off (60 s at most), however loaded the machine.
    args = ["--streams", "10", "--hold", "3", "--after", "2", "--calm", "1", "--grace", "60"]
    args += ["--output", str(out)]
    done = subprocess.run(
        [sys.executable, str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.read_text())
    # Each stream that read nothing was cut off, and nothing of it stayed in the engine.
    assert result["cutoffs_at_end_of_hold"] == 10
    assert result["subscribers_at_end_of_hold"] == 0
    assert result["subscribers_after"] == 0
    assert result["met"]["all_cut_off"] is True
    for key in ("baseline_rss_mb", "peak_over_baseline_mb", "after_over_baseline_mb"):
        assert isinstance(result[key], float)
    assert result["check_with_streams"]["n"] > 0 and result["check_without_streams"]["n"] > 0
    assert {phase for _, phase, _ in result["rss_mb"]} == {"calm", "slow", "after"}
