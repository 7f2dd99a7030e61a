"""What a relation keeps across a restart (issue #20): its statistics (copies, skipped by
reason, fills) continue, and a copy its follower refused for good (its risk gate) is not tried
and counted again by the recovery at every start. Real server restarted, real sim workers."""

from __future__ import annotations

import json
from pathlib import Path

from tests.copier_support import BUY, net, orders_of, place, relate, stats, wait_net
from tests.support import create_sim, limit, wait_ready, wait_until

from mt5exec.testing import ServerProcess
from mt5exec.v1 import common_pb2, order_pb2, stream_pb2


def _saved(server: ServerProcess) -> dict[str, object]:
    path = server.data_dir / "copy_stats.json"
    if not path.exists():
        return {}
    (relation,) = json.loads(path.read_text())["relations"]
    assert isinstance(relation, dict)
    return relation


def test_statistics_and_refusals_survive_a_restart(tmp_path: Path) -> None:
    with ServerProcess(tmp_path) as server:
        create_sim(server, "km")
        # The follower's risk gate refuses an order above 0.05 lots.
        limits = common_pb2.RiskLimits(max_order_volume=0.05, min_order_volume=0.01)
        create_sim(server, "kf", risk=limits)
        relate(server, "kept", "km", "kf")
        place(server, "km", "km-1", BUY, 0.01)
        wait_net(server, "kf", 0.01)
        place(server, "km", "km-2", BUY, 0.1)
        wait_until("the big copy refused", lambda: sum(stats(server, "kept").skipped.values()) == 1)
        before = stats(server, "kept")
        (reason,) = before.skipped
        assert reason == "VOLUME_ABOVE_LIMIT", before  # the risk gate's max_order_volume
        wait_until(
            "the statistics saved",
            lambda: _saved(server).get("copies") == 1 and len(_saved(server)["refused"]) == 1,  # type: ignore[arg-type]
        )
        server.terminate()
        server.start()
        for instance_id in ("km", "kf"):
            wait_ready(server, instance_id)
        wait_until("the relation recovered", lambda: stats(server, "kept").recovered)
        after = stats(server, "kept")
        # Continued, not reset; the refused copy was not tried (nor counted) again.
        assert after.copies == 1, after
        assert dict(after.skipped) == {reason: 1}, after
        assert after.fills == before.fills == 1
        assert net(server, "kf") == 0.01


def test_a_pending_copy_made_before_a_restart_still_follows_its_master(tmp_path: Path) -> None:
    """copy_pending: the master's pending order copied, the server restarted; the master's
    later price change and cancel still reach the copy (found in the follower's journal)."""
    with ServerProcess(tmp_path) as server:
        create_sim(server, "qm")
        create_sim(server, "qf")
        relate(server, "pend", "qm", "qf", copy_pending=True)
        ask = _ask(server, "qm")
        # Below the market (it stays pending), within the price collar.
        low, lower = round(ask * 0.98, 5), round(ask * 0.97, 5)
        master = server.orders.PlaceOrder(limit("qm", "qm-limit", low), timeout=30).order

        def copy() -> list[common_pb2.Order]:
            return orders_of(server, "qf", "pend.")

        wait_until("the pending copy", lambda: [o.price for o in copy()] == [low])
        server.terminate()
        server.start()
        for instance_id in ("qm", "qf"):
            wait_ready(server, instance_id)
        server.orders.ModifyOrder(
            order_pb2.ModifyOrderRequest(instance_id="qm", order_id=master.order_id, price=lower),
            timeout=30,
        )
        wait_until("the copy's new price", lambda: [o.price for o in copy()] == [lower])
        server.orders.CancelOrder(
            order_pb2.CancelOrderRequest(instance_id="qm", order_id=master.order_id), timeout=30
        )
        wait_until(
            "the copy cancelled",
            lambda: [o.status for o in copy()] == [common_pb2.ORDER_STATUS_CANCELED],
        )


def _ask(server: ServerProcess, instance_id: str) -> float:
    request = stream_pb2.StreamTicksRequest(instance_ids=[instance_id], symbols=["EURUSD"])
    ticks = server.streams.StreamTicks(request, timeout=30)
    try:
        return float(next(iter(ticks)).ticks[0].ask)
    finally:
        ticks.cancel()
