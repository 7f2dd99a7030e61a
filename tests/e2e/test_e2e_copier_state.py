"""What a relation keeps across a restart (issue #20): its statistics (copies, skipped by
reason, fills) continue, a copy its follower refused for good (its risk gate) is not tried
and counted again by the recovery at every start, and the closes a deleted relation still owes
are made after it. Real server restarted, real sim workers."""

from __future__ import annotations

import json
from pathlib import Path

from tests.copier_support import (
    BUY,
    SELL,
    close,
    copy_follows_master,
    net,
    orders_of,
    place,
    relate,
    stats,
    wait_net,
)
from tests.support import create_sim, limit, wait_ready, wait_until

from mt5exec.testing import ServerProcess
from mt5exec.v1 import common_pb2, instance_pb2, order_pb2, stream_pb2


def _saved(server: ServerProcess) -> dict[str, object]:
    path = server.data_dir / "copy_stats.json"
    if not path.exists():
        return {}
    saved = json.loads(path.read_text())["relations"]
    if not saved:
        return {}  # saved before the relation was made (a save every 2 s when changed)
    (relation,) = saved
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
        copy_follows_master(server, "qm", master.order_id, lower, "qf", "pend.")


def test_a_close_owed_by_a_deleted_relation_is_made_after_a_restart(tmp_path: Path) -> None:
    """The master closed while the follower was stopped; the relation (leaving its copies
    open) deleted, then the server killed (-9) before the follower is back: after the restart
    the close the relation owed is made when the follower starts, exactly once."""
    with ServerProcess(tmp_path) as server:
        create_sim(server, "om")
        create_sim(server, "of")
        relate(server, "owing", "om", "of")
        opened = place(server, "om", "om-1", BUY, 0.02)
        place(server, "om", "om-2", SELL, 0.01)
        wait_net(server, "of", 0.01)
        server.instances.StopInstance(
            instance_pb2.StopInstanceRequest(instance_id="of"), timeout=60
        )
        close(server, "om", opened.position_id)
        wait_until(
            "the close refused",
            lambda: stats(server, "owing").skipped["INSTANCE_NOT_READY"] >= 1,
        )
        server.orders.DeleteCopyRelation(
            order_pb2.DeleteCopyRelationRequest(relation_id="owing"), timeout=30
        )
        # Saved when the relation was removed: a kill -9 right after does not lose it.
        removed = json.loads((server.data_dir / "copy_stats.json").read_text())["removed"]
        assert [r["relation"]["relation_id"] for r in removed] == ["owing"], removed
        assert [o[1] for o in removed[0]["owed"]] == [0.02], removed
        server.kill()
        server.start()
        wait_ready(server, "om")
        server.instances.StartInstance(
            instance_pb2.StartInstanceRequest(instance_id="of"), timeout=120
        )
        wait_ready(server, "of")
        # The owed close made; the copy of the position still open on the master left open.
        wait_net(server, "of", -0.01)
        closes = [o for o in orders_of(server, "of", "owing.") if ":c" in o.client_order_id]
        assert len(closes) == 1, closes
        # Made, the close is no longer owed: nothing left to save, nor to make at a restart.
        wait_until(
            "the owed close forgotten",
            lambda: json.loads((server.data_dir / "copy_stats.json").read_text())["removed"] == [],
        )
        server.terminate()
        server.start()
        for instance_id in ("om", "of"):
            wait_ready(server, instance_id)
        assert net(server, "of") == -0.01
        closes = [o for o in orders_of(server, "of", "owing.") if ":c" in o.client_order_id]
        assert len(closes) == 1, closes


def test_a_refused_pending_copy_is_not_tried_again_at_a_restart(tmp_path: Path) -> None:
    """copy_pending: the copy of the master's pending order is refused for good before it
    reaches the follower's journal (its sizing: below the symbol's minimum); after a restart
    the recovery neither places it nor counts it again (saved in copy_stats.json)."""
    with ServerProcess(tmp_path) as server:
        create_sim(server, "rm")
        create_sim(server, "rf")
        relate(
            server,
            "refp",
            "rm",
            "rf",
            copy_pending=True,
            volume_mode=order_pb2.COPY_VOLUME_MODE_FIXED,
            fixed_volume=0.001,
        )
        server.orders.PlaceOrder(
            limit("rm", "rm-limit", round(_ask(server, "rm") * 0.98, 5)), timeout=30
        )
        wait_until(
            "the pending copy refused",
            lambda: dict(stats(server, "refp").skipped) == {"VOLUME_BELOW_MINIMUM": 1},
        )
        wait_until(
            "the refusal saved",
            lambda: len(_saved(server).get("refused_pending", [])) == 1,  # type: ignore[arg-type]
        )
        server.terminate()
        server.start()
        for instance_id in ("rm", "rf"):
            wait_ready(server, instance_id)
        wait_until("the relation recovered", lambda: stats(server, "refp").recovered)
        assert dict(stats(server, "refp").skipped) == {"VOLUME_BELOW_MINIMUM": 1}
        open_orders = server.orders.ListOrders(
            order_pb2.ListOrdersRequest(instance_id="rf"), timeout=10
        ).orders
        assert list(open_orders) == []


def test_a_pending_order_the_copier_missed_is_placed_by_the_recovery(tmp_path: Path) -> None:
    """copy_pending: the master's pending order placed while the follower was stopped (its
    copy not made: the follower not ready); the server restarted, the follower started: the
    recovery places the copy, at the master's price, once."""
    with ServerProcess(tmp_path) as server:
        create_sim(server, "pm")
        create_sim(server, "pf")
        relate(server, "missed", "pm", "pf", copy_pending=True)
        server.instances.StopInstance(
            instance_pb2.StopInstanceRequest(instance_id="pf"), timeout=60
        )
        low = round(_ask(server, "pm") * 0.98, 5)
        server.orders.PlaceOrder(limit("pm", "pm-limit", low), timeout=30)
        wait_until(
            "the copy not made",
            lambda: stats(server, "missed").skipped["INSTANCE_NOT_READY"] >= 1,
        )
        server.terminate()
        server.start()
        wait_ready(server, "pm")
        assert not stats(server, "missed").recovered  # the follower is stopped
        server.instances.StartInstance(
            instance_pb2.StartInstanceRequest(instance_id="pf"), timeout=120
        )
        wait_ready(server, "pf")
        wait_until("the relation recovered", lambda: stats(server, "missed").recovered)

        def copies() -> list[common_pb2.Order]:
            # The open ones (the history also has the refusal while the follower was stopped).
            request = order_pb2.ListOrdersRequest(instance_id="pf")
            orders = server.orders.ListOrders(request, timeout=10).orders
            return [o for o in orders if o.client_order_id.startswith("missed.")]

        wait_until("the pending copy", lambda: [o.price for o in copies()] == [low])
        (copy,) = copies()
        assert copy.type == common_pb2.ORDER_TYPE_LIMIT
        assert copy.client_order_id.endswith(":p")


def _ask(server: ServerProcess, instance_id: str) -> float:
    request = stream_pb2.StreamTicksRequest(instance_ids=[instance_id], symbols=["EURUSD"])
    ticks = server.streams.StreamTicks(request, timeout=30)
    try:
        return float(next(iter(ticks)).ticks[0].ask)
    finally:
        ticks.cancel()


def test_a_deleted_followers_owed_closes_are_not_made_on_its_successor(tmp_path: Path) -> None:
    """The master closed while the follower was stopped (a close owed), then the follower
    deleted: its relation is gone with nothing kept owing, and an instance created again
    under the id (another account) gets no order of the old relation."""
    with ServerProcess(tmp_path) as server:
        create_sim(server, "zm")
        create_sim(server, "zf")
        relate(server, "gone", "zm", "zf")
        opened = place(server, "zm", "zm-1", BUY, 0.02)
        wait_net(server, "zf", 0.02)
        server.instances.StopInstance(
            instance_pb2.StopInstanceRequest(instance_id="zf"), timeout=60
        )
        close(server, "zm", opened.position_id)
        wait_until(
            "the close refused",
            lambda: stats(server, "gone").skipped["INSTANCE_NOT_READY"] >= 1,
        )
        server.instances.DeleteInstance(
            instance_pb2.DeleteInstanceRequest(instance_id="zf"), timeout=60
        )
        # Saved when the follower was deleted: nothing owed to it is kept.
        saved = json.loads((server.data_dir / "copy_stats.json").read_text())
        assert saved["relations"] == [] and saved["removed"] == [], saved
        create_sim(server, "zf")
        place(server, "zf", "zf-own", SELL, 0.01)
        wait_net(server, "zf", -0.01)
        assert orders_of(server, "zf", "gone.") == []
        server.terminate()
        server.start()
        wait_ready(server, "zf")
        place(server, "zf", "zf-own-2", SELL, 0.01)
        wait_net(server, "zf", -0.02)
        assert orders_of(server, "zf", "gone.") == []
