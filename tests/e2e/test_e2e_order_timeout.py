"""An order the terminal does not answer within ``engine.order_timeout_s``: DEADLINE_EXCEEDED
with ORDER_OUTCOME_UNKNOWN naming its client_order_id, and the order completes all the same
(the engine awaits order answers through futures it resolves itself: #25)."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import grpc
import pytest
from tests.support import error_info, market

from mt5exec.testing import ServerProcess
from mt5exec.v1 import common_pb2, instance_pb2, order_pb2


def test_an_order_unanswered_in_time_is_outcome_unknown_then_found_filled(tmp_path: Path) -> None:
    # Every order answer of this server's workers is delayed by 2 s; the server waits 0.5 s.
    env = {"MT5EXEC_SIM_ORDER_DELAY_MS": "2000", "MT5EXEC_ENGINE_ORDER_TIMEOUT_S": "0.5"}
    with ServerProcess(tmp_path / "data", env=env) as server:
        server.instances.CreateInstance(
            instance_pb2.CreateInstanceRequest(
                instance_id="late",
                config=common_pb2.InstanceConfig(symbols=["EURUSD"], tick_rate=20),
            ),
            timeout=30,
        )
        # Until the engine has a price (a dry run would time out as well: it asks the worker).
        deadline = time.monotonic() + 60
        for n in itertools.count():
            cid = f"slow-{n}"
            with pytest.raises(grpc.RpcError) as caught:
                server.orders.PlaceOrder(market("late", cid), timeout=30)
            info = error_info(caught.value)
            if info.reason != "NO_PRICE":
                break
            assert time.monotonic() < deadline, "no price in 60 s"
            time.sleep(0.02)
        assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert info.reason == "ORDER_OUTCOME_UNKNOWN"
        assert info.metadata["client_order_id"] == cid
        # The answer that came late settled it: the retry the error asks for finds it filled.
        get = order_pb2.GetOrderRequest(instance_id="late", client_order_id=cid)
        deadline = time.monotonic() + 60
        while (order := server.orders.GetOrder(get, timeout=30).order).status != (
            common_pb2.ORDER_STATUS_FILLED
        ):
            assert time.monotonic() < deadline, order
            time.sleep(0.1)
        again = server.orders.PlaceOrder(market("late", cid), timeout=30).order
        assert again.order_id == order.order_id
        assert again.status == common_pb2.ORDER_STATUS_FILLED
