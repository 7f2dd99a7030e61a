"""benchmarks/control_writes.py runs end to end (a smoke run: one round of a few orders)
and reports what it is judged on; the figures themselves are the benchmark's, not this
test's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "control_writes.py"


def test_a_smoke_run_reports_the_ratios_and_the_fsyncs_on_the_loop(tmp_path: Path) -> None:
    out = tmp_path / "control_writes.json"
    args = ["--rounds", "1", "--orders", "20", "--output", str(out)]
    done = subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["benchmark"] == "control_writes"
    (run,) = result["rounds"]["head"]
    assert run["alone"]["place_order"]["n"] == 20
    assert run["beside_control_calls"]["control_calls"]["n"] > 0
    assert set(run["ratio_beside_alone"]) == {"p50_us", "p99_us"}
    assert result["head_median_ratio_p99"] > 0
    fsyncs = result["fsyncs_of_control_calls"]["head"]
    if fsyncs is None:  # no strace, or it may not trace here: CI must check it
        assert os.environ.get("CI") != "true", "strace could not count the fsyncs (CI=true)"
        return
    assert fsyncs["on_loop_per_call"] == 0, fsyncs  # every record write is in a thread
    assert fsyncs["other_threads_per_call"] >= 1, fsyncs
