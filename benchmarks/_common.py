"""Helpers shared by the benchmark scripts: percentiles and result files."""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"

# The bearer token of the server measured: the Go load generator reads it from here, and so
# do the Python clients (``auth_metadata``), also in the processes a benchmark spawns.
TOKEN_ENV = "MT5EXEC_TOKEN"


def use_token(token: str | None) -> None:
    """Makes ``token`` (a ServerProcess's admin key) the one every client sends."""
    os.environ[TOKEN_ENV] = token or ""


def auth_metadata() -> tuple[tuple[str, str], ...] | None:
    """The call metadata that carries the token (``use_token``), None without one."""
    token = os.environ.get(TOKEN_ENV)
    return (("authorization", f"Bearer {token}"),) if token else None


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


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system, every thread) a process has used so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def child_pids(pid: int) -> list[int]:
    """The processes whose parent is ``pid``."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parent = int(f.read().rsplit(")", 1)[1].split()[1])
            except OSError:  # gone meanwhile
                continue
            if parent == pid:
                found.append(int(entry))
    return found


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


LOADGEN = Path(__file__).resolve().parent / "loadgen"


def loadgen(*args: str, timeout: float = 600.0) -> dict[str, Any] | None:
    """Runs the Go load generator (``benchmarks/loadgen``, built on first use) and returns its
    JSON; None when Go is not installed (the figures measured with it are then left out). It
    sends the token of ``use_token`` ($MT5EXEC_TOKEN).

    A client that costs little CPU, so that what saturates is the server: the Python client
    needs about as much CPU per call as the server it measures on a two-core machine.
    """
    go = shutil.which("go")
    if go is None:
        return None
    binary = LOADGEN / "bin" / "loadgen"
    sources = [*LOADGEN.glob("*.go"), LOADGEN / "go.mod"]
    if not binary.exists() or max(p.stat().st_mtime for p in sources) > binary.stat().st_mtime:
        subprocess.run([go, "build", "-o", str(binary), "."], cwd=LOADGEN, check=True)
    out = subprocess.run(
        [str(binary), *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if out.returncode != 0:
        raise RuntimeError(f"loadgen {' '.join(args)} failed: {out.stderr.strip()}")
    result: dict[str, Any] = json.loads(out.stdout)
    return result
