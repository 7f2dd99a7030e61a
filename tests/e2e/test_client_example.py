"""examples/python/quickstart.py runs against a real server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from mt5exec.testing import ServerProcess

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "python" / "quickstart.py"


def test_the_python_example(server: ServerProcess) -> None:
    env = {**os.environ, "MT5EXEC_TARGET": server.address, "MT5EXEC_DATA_DIR": str(server.data_dir)}
    env.pop("MT5EXEC_TOKEN", None)
    done = subprocess.run(
        [sys.executable, str(EXAMPLE), "example"],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    lines = {line.split()[0]: line for line in done.stdout.splitlines()}
    assert set(lines) == {"connected", "tick", "order", "fill", "refused"}, done.stdout
    assert lines["order"].endswith("ORDER_STATUS_FILLED")
    assert lines["refused"].startswith("refused INVALID_ARGUMENT reason=VOLUME_OFF_STEP ")
    assert " field=volume: " in lines["refused"]
