"""After a server restart, what only the terminal knows (positions, account) is an error until
the instance's worker has reported it, never an empty answer; orders, from the journal, are
known at once."""

from __future__ import annotations

import time
from pathlib import Path

import grpc
from tests.support import create_sim, error_info, market

from mt5exec.testing import ServerProcess, wait_gone
from mt5exec.v1 import common_pb2, instance_pb2, order_pb2


def test_positions_and_account_before_the_instance_reported_are_not_ready(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    server = ServerProcess(data).start()
    try:
        up = create_sim(server, "holder", ["EURUSD"], tick_rate=20)
        filled = server.orders.PlaceOrder(market("holder", "held", volume=0.3), timeout=10).order
        assert filled.status == common_pb2.ORDER_STATUS_FILLED
        server.kill()  # SIGKILL: its worker goes with it; the broker keeps the position
        assert wait_gone([up.worker_pid]) == []
    finally:
        server.kill()

    server = ServerProcess(data).start()
    try:
        positions_request = order_pb2.ListPositionsRequest(instance_id="holder")
        account_request = order_pb2.GetAccountRequest(instance_id="holder")
        # From the journal: known before the worker is back.
        orders = server.orders.ListOrders(
            order_pb2.ListOrdersRequest(instance_id="holder", history=True), timeout=30
        ).orders
        assert [o.client_order_id for o in orders] == ["held"]
        not_ready = {"positions": 0, "account": 0}
        answered: dict[str, bool] = {"positions": False, "account": False}
        deadline = time.monotonic() + 60
        while not all(answered.values()):
            assert time.monotonic() < deadline, f"no answer after 60 s: {answered}"
            for what, call, request in (
                ("positions", server.orders.ListPositions, positions_request),
                ("account", server.orders.GetAccount, account_request),
            ):
                error: grpc.RpcError | None = None
                try:
                    response = call(request, timeout=30)
                except grpc.RpcError as e:
                    error = e
                if error is not None:
                    # Not known yet: said so, naming why.
                    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION, error
                    info = error_info(error)
                    assert (info.reason, info.metadata["field"]) == (
                        "INSTANCE_NOT_READY",
                        "instance_id",
                    )
                    not_ready[what] += 1
                    continue
                if what == "positions":
                    # Every OK answer has the position: none known is never none open.
                    assert isinstance(response, order_pb2.ListPositionsResponse)
                    assert [(p.position_id, round(p.volume, 2)) for p in response.positions] == [
                        (filled.position_id, 0.3)
                    ]
                else:
                    assert isinstance(response, order_pb2.GetAccountResponse)
                    assert response.account.balance > 0
                answered[what] = True
        # Once it answers, the instance is READY: the engine knew what was open before that.
        state = server.instances.GetInstance(
            instance_pb2.GetInstanceRequest(instance_id="holder"), timeout=30
        ).instance.state
        assert state == common_pb2.INSTANCE_STATE_READY
        print(f"answered INSTANCE_NOT_READY before the worker reported: {not_ready}")
    finally:
        server.terminate()
        server.kill()
