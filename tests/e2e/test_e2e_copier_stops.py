"""A master position closed by the broker at its stop loss or take profit closes the copies, end
to end (real server, real sim workers: the sim's price walk crosses a tight SL/TP bracket)."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from tests.copier_support import BUY, place, positions, relate, sim, wait_net
from tests.support import execution_events, wait_until

from mt5exec.testing import ServerProcess
from mt5exec.v1 import common_pb2, order_pb2, stream_pb2

OUT = common_pb2.FILL_ENTRY_OUT


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with ServerProcess(tmp_path_factory.mktemp("copier-stops")) as proc:
        yield proc


def _bid(server: ServerProcess, instance_id: str) -> float:
    request = stream_pb2.StreamTicksRequest(instance_ids=[instance_id], symbols=["EURUSD"])
    stream = server.streams.StreamTicks(request, timeout=30)
    try:
        return float(next(iter(stream)).ticks[0].bid)
    finally:
        stream.cancel()


def _bracket(server: ServerProcess, instance_id: str, position_id: int) -> bool:
    """Puts a stop loss and a take profit two points either side of the bid (True when the
    broker took them; the price may have moved past one meanwhile)."""
    bid = _bid(server, instance_id)
    request = order_pb2.ModifyPositionRequest(
        instance_id=instance_id,
        position_id=position_id,
        stop_loss=round(bid - 0.00002, 5),
        take_profit=round(bid + 0.00002, 5),
    )
    try:
        server.orders.ModifyPosition(request, timeout=30)
    except grpc.RpcError:
        return False
    return True


def _closing_reason(server: ServerProcess, instance_id: str, position_id: int) -> int:
    """The reason of the deal that closed the position, from the instance's kept execution
    events (the call's deadline fails the test)."""

    def closing(event: common_pb2.ExecutionEvent) -> bool:
        fill = event.fill
        return event.HasField("fill") and fill.position_id == position_id and fill.entry == OUT

    return int(execution_events(server, instance_id, closing)[-1].fill.reason)


def test_a_master_position_closed_by_its_stops_closes_the_copy(server: ServerProcess) -> None:
    sim(server, "sm")
    sim(server, "sf")
    relate(server, "stops", "sm", "sf")  # stops not copied: only the copier closes the copy
    opened = place(server, "sm", "sm-1", BUY, 0.02)
    wait_net(server, "sf", 0.02)
    (copy,) = positions(server, "sf")
    assert (copy.stop_loss, copy.take_profit) == (0.0, 0.0)
    wait_until("the bracket set", lambda: _bracket(server, "sm", opened.position_id))
    wait_until(
        "the broker closed the master's position at its SL or TP",
        lambda: positions(server, "sm") == [],
        timeout=120,
    )

    assert _closing_reason(server, "sm", opened.position_id) in (
        common_pb2.FILL_REASON_STOP_LOSS,
        common_pb2.FILL_REASON_TAKE_PROFIT,
    )
    wait_net(server, "sf", 0.0)
