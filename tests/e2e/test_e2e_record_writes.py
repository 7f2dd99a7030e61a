"""The daily risk counters are written off the event loop: a record write that hangs (the
``MT5EXEC_TEST_RECORD_WRITE_GATE`` hook: writes wait while its file exists) does not hold
up the answers of CheckOrder and PlaceOrder, and a trading state set while the counters'
write is held is what the record says once both have landed (the ordering itself:
tests/unit/test_record_writer.py)."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import grpc
import pytest
from tests.support import BULK_RISK, create_sim, market, wait_until

from mt5exec import registry
from mt5exec.testing import ServerProcess
from mt5exec.v1 import common_pb2, instance_pb2, order_pb2


def on_disk(data: Path, instance_id: str) -> Any:
    path = data / "instances" / "default" / instance_id / registry.RECORD_NAME
    return json.loads(path.read_text())


def test_a_hung_counters_write_holds_up_no_order_and_the_newer_record_lands(
    tmp_path: Path,
) -> None:
    gate = tmp_path / "gate"
    held = tmp_path / "gate.held"
    data = tmp_path / "data"
    env = {registry.WRITE_GATE_ENV: str(gate), "MT5EXEC_HISTORY_ENABLED": "false"}
    with ServerProcess(data, env=env) as server:
        create_sim(server, "r1", risk=BULK_RISK)
        gate.touch()
        server.orders.PlaceOrder(market("r1", "first"), timeout=30)
        wait_until("the daily counters' write is under way, held", held.exists)
        # The loop answers meanwhile (a write on it would hold every call until the gate goes).
        check = server.orders.CheckOrder(
            order_pb2.CheckOrderRequest(order=market("r1", "probe")), timeout=30
        )
        assert check.accepted, check
        server.orders.PlaceOrder(market("r1", "second"), timeout=30)
        # No order counted on disk yet: the write is held.
        assert (on_disk(data, "r1")["risk_day"] or [0, 0])[1] == 0
        # A trading state set now (in force at once) is written after the held write: that
        # one's turn first (the writes of a record run one at a time, in order), so the call
        # waits for it; the record on disk is the newer one in the end.
        answers: list[object] = []

        def halt() -> None:
            request = instance_pb2.SetTradingStateRequest(
                instance_id="r1", trading_state=common_pb2.TRADING_STATE_HALTED
            )
            answers.append(server.instances.SetTradingState(request, timeout=60))

        halting = threading.Thread(target=halt)
        halting.start()
        wait_until(
            "the server is setting HALTED",
            lambda: "trading state TRADING_STATE_HALTED" in (data / "server.log").read_text(),
        )
        gate.unlink()
        halting.join(60)
        assert len(answers) == 1
        assert on_disk(data, "r1")["config"]["trading_state"] == "TRADING_STATE_HALTED"
        # Both orders counted on disk in the end (the counters written after the state).
        wait_until(
            "both orders' counts are written",
            lambda: (on_disk(data, "r1")["risk_day"] or [0, 0])[1] == 2,
        )
        assert on_disk(data, "r1")["config"]["trading_state"] == "TRADING_STATE_HALTED"
        with pytest.raises(grpc.RpcError) as refused:
            server.orders.PlaceOrder(market("r1", "after"), timeout=30)
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION, refused.value
