"""The simulated broker's journal keeps at least the order history the engine remembers: an
operator's ``engine.final_order_retention_s`` and ``engine.max_orders_per_instance`` reach the
sim worker's journal (a real server and worker)."""

from __future__ import annotations

import time
from pathlib import Path

from mt5exec.testing import ServerProcess
from support import create_sim


def test_the_engine_retention_reaches_the_sim_journal(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = {
        "MT5EXEC_ENGINE_FINAL_ORDER_RETENTION_S": "172800",
        "MT5EXEC_ENGINE_MAX_ORDERS_PER_INSTANCE": "250000",
    }
    wanted = "a compaction keeps the order history of 172800 s and 250000 orders"
    with ServerProcess(data, env=env) as server:
        create_sim(server, "kept")
        logs = data / "logs" / "default" / "kept"
        deadline = time.monotonic() + 30
        while not any(wanted in f.read_text(errors="replace") for f in logs.glob("*.log")):
            assert time.monotonic() < deadline, f"no {wanted!r} in {sorted(logs.iterdir())}"
            time.sleep(0.05)
