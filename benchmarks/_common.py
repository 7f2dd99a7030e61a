"""Helpers shared by the benchmark scripts: percentiles and result files."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def summary(samples_s: list[float]) -> dict[str, float]:
    """p50/p90/p99/mean in microseconds."""
    ordered = sorted(samples_s)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1e6

    return {
        "n": len(ordered),
        "p50_us": round(pct(50), 1),
        "p90_us": round(pct(90), 1),
        "p99_us": round(pct(99), 1),
        "mean_us": round(statistics.fmean(ordered) * 1e6, 1),
    }


def write(name: str, result: dict[str, Any]) -> Path:
    RESULTS.mkdir(exist_ok=True)
    result = {
        "benchmark": name,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        **result,
    }
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    return path
