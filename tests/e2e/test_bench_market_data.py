"""benchmarks/market_data.py runs end to end (a smoke run: one round of a few calls) and
reports every measure and its ratios; the figures themselves are the benchmark's."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "market_data.py"


def test_a_smoke_run_reports_every_measure(tmp_path: Path) -> None:
    out = tmp_path / "market.json"
    done = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            *("--rounds", "1", "--calls", "3", "--book-seconds", "2", "--output", str(out)),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["benchmark"] == "market_data"
    assert set(result["server"]) == {"null_rpc", "get_rates_1000", "get_rates_100000"}
    assert set(result["in_process"]) == {
        "simterminal_copy_rates_1000",
        "simterminal_copy_rates_100000",
        "sim_worker_answer_1000",
        "sim_worker_answer_100000",
    }
    assert set(result["mt5_worker"]) == {
        f"{kind}_10000_{how}" for kind in ("rates", "ticks") for how in ("columns", "by_row")
    }
    for table in (result["server"], result["in_process"], result["mt5_worker"]):
        assert all(0 < v["p50_us"] <= v["p99_us"] for v in table.values())
    assert all(value > 0 for value in result["ratios"].values())
    # StreamBook beside StreamTicks: 50 subscribers each, every one received something.
    for kind in ("book", "ticks"):
        figures = result["stream_book"][kind]
        assert figures["subscribers"] == 50 and figures["messages"] >= 50
        assert 0 < figures["p50_ms"] <= figures["p99_ms"]
