"""Workers started by the server run under SCHED_BATCH (docs/architecture.md#scheduling), so
that a worker woken by a frame does not preempt the engine's thread that wrote it."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from mt5exec.mt5 import simterminal
from mt5exec.testing import ServerProcess
from mt5exec.v1 import common_pb2, instance_pb2
from support import create_sim

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="SCHED_BATCH is a Linux scheduling policy"
)


def _policies(pid: int) -> set[int]:
    """The scheduling policy of each thread of ``pid``."""
    return {os.sched_getscheduler(int(tid)) for tid in os.listdir(f"/proc/{pid}/task")}


def test_sim_and_mt5_workers_run_under_sched_batch(tmp_path: Path) -> None:
    config = tmp_path / "mt5exec.toml"
    config.write_text('[mt5]\nmodule = "mt5exec.mt5.simterminal"\npoll_interval_ms = 20\n')
    data = tmp_path / "data"
    with ServerProcess(data, config=config, env={"MT5EXEC_HISTORY_ENABLED": "false"}) as server:
        # The server keeps the policy it was started with: only the workers step back.
        assert os.sched_getscheduler(server.pid) == os.sched_getscheduler(0)
        # Short ids: a worker's socket path (under tmp_path) must stay within SUN_LEN (108
        # bytes) however high pytest's numbering of its base directories has gone.
        sim = create_sim(server, "bsim")
        assert sim.worker_pid
        assert _policies(sim.worker_pid) == {os.SCHED_BATCH}

        simterminal.write_terminal_config(
            data / "instances" / "default" / "bmt5" / "terminal",
            login=5012345,
            password="s3cret-Pa55",
            server="Sim-Demo",
            symbols=["EURUSD"],
            tick_rate=20,
            margin_mode="hedging",
        )
        mt5 = server.instances.CreateInstance(
            instance_pb2.CreateInstanceRequest(
                instance_id="bmt5",
                backend=common_pb2.BACKEND_MT5,
                config=common_pb2.InstanceConfig(
                    symbols=["EURUSD"], login=5012345, server="Sim-Demo"
                ),
                password="s3cret-Pa55",
            ),
            timeout=60,
        ).instance
        assert mt5.state == common_pb2.INSTANCE_STATE_READY
        assert mt5.worker_pid
        # The worker's threads (the market thread too) are all in SCHED_BATCH.
        assert _policies(mt5.worker_pid) == {os.SCHED_BATCH}
