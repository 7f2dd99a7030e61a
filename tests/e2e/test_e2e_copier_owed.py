"""What the copier owes a follower that was away or refusing (issue #20): a close its gate
keeps refusing is counted and told once, its outcome (given up, then made) said once; a master
position closed on its stop while the master's worker was dead closes the copy (at once, or
when the follower is back); a trade made while the follower was stopped is copied once it is
back, once. Real server, real sim workers."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import grpc
from tests.copier_support import (
    BUY,
    close,
    net,
    orders_of,
    place,
    positions,
    relate,
    sims,
    stats,
    wait_net,
)
from tests.support import create_sim, execution_events, wait_ready, wait_until

from mt5exec.testing import ServerProcess
from mt5exec.v1 import common_pb2, instance_pb2, order_pb2, stream_pb2

COPIER = "copy of relation"  # how the copier's own REJECTED updates begin their message


def _order_updates(
    server: ServerProcess, instance_id: str, until: Callable[[common_pb2.Order], bool]
) -> list[common_pb2.Order]:
    """The instance's order updates from its first kept event until one meets ``until`` (the
    call's deadline fails the test)."""
    events = execution_events(
        server,
        instance_id,
        lambda e: e.HasField("order_update") and until(e.order_update),
        timeout=150,
    )
    return [e.order_update for e in events if e.HasField("order_update")]


def _restart(server: ServerProcess, instance_id: str) -> None:
    server.instances.StopInstance(
        instance_pb2.StopInstanceRequest(instance_id=instance_id), timeout=60
    )
    server.instances.StartInstance(
        instance_pb2.StartInstanceRequest(instance_id=instance_id), timeout=120
    )
    wait_ready(server, instance_id)


def _trading(server: ServerProcess, instance_id: str, state: int) -> None:
    request = instance_pb2.SetTradingStateRequest(instance_id=instance_id, trading_state=state)  # type: ignore[arg-type]
    server.instances.SetTradingState(request, timeout=10)


def _copier_skipped(server: ServerProcess, relation_id: str, reason: str) -> float:
    return sum(
        s.value
        for s in server.metric_samples("mt5exec_copier_skipped")
        if s.name == "mt5exec_copier_skipped_total"
        and s.labels.get("relation_id") == relation_id
        and s.labels.get("reason") == reason
    )


def test_an_owed_close_the_gate_keeps_refusing_is_counted_and_told_once(
    server: ServerProcess,
) -> None:
    """The master closed while the follower was stopped; the follower comes back HALTED, so
    its gate refuses the owed close at every try of the retry window (~120 tries): one skip
    TRADING_HALTED, one refusal told (the gate's and the copier's), then one "given up" when
    the window ends; back to ACTIVE and ready again, the close is made, once."""
    sims(server, "gm", "gf")
    relate(server, "gated", "gm", "gf")
    opened = place(server, "gm", "gm-1", BUY, 0.01)
    wait_net(server, "gf", 0.01)
    server.instances.StopInstance(instance_pb2.StopInstanceRequest(instance_id="gf"), timeout=60)
    close(server, "gm", opened.position_id)
    wait_until("the close owed", lambda: stats(server, "gated").skipped["INSTANCE_NOT_READY"] == 1)
    _trading(server, "gf", common_pb2.TRADING_STATE_HALTED)
    server.instances.StartInstance(instance_pb2.StartInstanceRequest(instance_id="gf"), timeout=120)
    wait_ready(server, "gf")

    def given_up(order: common_pb2.Order) -> bool:
        return order.status_message.startswith(COPIER) and "given up" in order.status_message

    updates = _order_updates(server, "gf", given_up)
    refused = [
        o
        for o in updates
        if o.status == common_pb2.ORDER_STATUS_REJECTED and o.reject_reason == "TRADING_HALTED"
    ]
    # The gate's refusal and the copier's, of the same close, then the copier's "given up".
    (cid,) = {o.client_order_id for o in refused}
    assert cid.startswith("gated.") and ":c" in cid, refused
    assert len([o for o in refused if not o.status_message.startswith(COPIER)]) == 1, refused
    copier_told = [o.status_message for o in refused if o.status_message.startswith(COPIER)]
    assert len(copier_told) == 2 and "given up" in copier_told[-1], copier_told
    skipped = dict(stats(server, "gated").skipped)
    assert skipped == {"INSTANCE_NOT_READY": 1, "TRADING_HALTED": 1}, skipped
    assert _copier_skipped(server, "gated", "TRADING_HALTED") == 1
    # Trading again, the follower ready again: the close is made, under the same id, once.
    _trading(server, "gf", common_pb2.TRADING_STATE_ACTIVE)
    _restart(server, "gf")
    wait_net(server, "gf", 0.0)
    closes = [o for o in orders_of(server, "gf", "gated.") if ":c" in o.client_order_id]
    assert [o.client_order_id for o in closes] == [cid], closes
    assert dict(stats(server, "gated").skipped) == skipped


def _bid(server: ServerProcess, instance_id: str) -> float:
    request = stream_pb2.StreamTicksRequest(instance_ids=[instance_id], symbols=["EURUSD"])
    ticks = server.streams.StreamTicks(request, timeout=30)
    try:
        return float(next(iter(ticks)).ticks[0].bid)
    finally:
        ticks.cancel()


def _buy_between_stops(server: ServerProcess, instance_id: str) -> common_pb2.Order:
    """A 0.01 buy whose stop loss and take profit are 5 points either side of the bid: the
    price walk (a point per tick at most) soon reaches one of them."""
    for attempt in range(10):
        bid = _bid(server, instance_id)
        order = place(
            server,
            instance_id,
            f"{instance_id}-{attempt}",
            BUY,
            0.01,
            stop_loss=round(bid - 5e-5, 5),
            take_profit=round(bid + 5e-5, 5),
        )
        if order.status == common_pb2.ORDER_STATUS_FILLED:
            return order
    raise AssertionError("no buy with stops 5 points away was filled")


def test_a_master_closed_by_its_stop_while_its_worker_was_dead_closes_the_copy(
    tmp_path: Path,
) -> None:
    """The master's position closes on its SL/TP and its worker dies right after journaling
    that close, before any frame of it left (MT5EXEC_SIM_KILL_AFTER_TRIGGER): the engine never
    sees the deal. Restarted, the worker reports the master without the position: the copy
    (made without stops, so only the master's close closes it) is closed, once."""
    with ServerProcess(tmp_path, env={"MT5EXEC_SIM_KILL_AFTER_TRIGGER": "1"}) as server:
        create_sim(server, "sm", tick_rate=20)
        create_sim(server, "sf")
        relate(server, "stopped", "sm", "sf")
        opened = _buy_between_stops(server, "sm")
        wait_net(server, "sf", 0.01)

        def master() -> common_pb2.Instance:
            request = instance_pb2.GetInstanceRequest(instance_id="sm")
            return server.instances.GetInstance(request, timeout=10).instance

        wait_until(
            "the master's worker killed by its stop's fill, and restarted",
            lambda: master().restarts >= 1 and master().state == common_pb2.INSTANCE_STATE_READY,
        )
        # READY at once on its predecessor's positions: its own report comes later.
        wait_until(
            f"the new worker reports the master without position {opened.position_id}",
            lambda: positions(server, "sm") == [],
        )
        wait_net(server, "sf", 0.0)
        closes = [o for o in orders_of(server, "sf", "stopped.") if ":c" in o.client_order_id]
        assert len(closes) == 1 and closes[0].client_order_id.endswith(":0:c0"), closes
        assert stats(server, "stopped").copies == 2


def test_a_trade_made_while_the_follower_was_stopped_is_copied_once_it_is_back(
    server: ServerProcess,
) -> None:
    """The follower stopped (not deleted) while the master opens a position: the copy is
    skipped then (INSTANCE_NOT_READY, once), and made when the follower is back, under the
    recovery's id; coming back again (and the master trading again meanwhile) makes no
    second copy of it."""
    sims(server, "bm", "bf")
    relate(server, "back", "bm", "bf")

    def stop_follower() -> None:
        server.instances.StopInstance(
            instance_pb2.StopInstanceRequest(instance_id="bf"), timeout=60
        )

    def start_follower() -> None:
        server.instances.StartInstance(
            instance_pb2.StartInstanceRequest(instance_id="bf"), timeout=120
        )
        wait_ready(server, "bf")

    stop_follower()
    first = place(server, "bm", "bm-1", BUY, 0.01)
    wait_until("the copy skipped", lambda: stats(server, "back").skipped["INSTANCE_NOT_READY"] == 1)
    start_follower()
    wait_net(server, "bf", 0.01)
    stop_follower()
    second = place(server, "bm", "bm-2", BUY, 0.02)
    wait_until("the copy skipped", lambda: stats(server, "back").skipped["INSTANCE_NOT_READY"] == 2)
    start_follower()
    wait_net(server, "bf", 0.03)
    wait_until("caught up", lambda: stats(server, "back").recovered)
    # The skips are in the follower's history too, as REJECTED orders that were never sent.
    made = [
        o for o in orders_of(server, "bf", "back.") if o.status == common_pb2.ORDER_STATUS_FILLED
    ]
    copies = sorted(o.client_order_id for o in made)
    assert len(copies) == 2, copies
    assert [c.split(":")[-1] for c in copies] == ["j", "j"], copies
    assert {int(c.split(":")[1], 36) for c in copies} == {first.position_id, second.position_id}
    assert dict(stats(server, "back").skipped) == {"INSTANCE_NOT_READY": 2}
    assert stats(server, "back").copies == 2
    assert net(server, "bf") == 0.03


def test_a_master_stopped_out_while_both_were_away_closes_the_copy_when_the_follower_is_back(
    tmp_path: Path,
) -> None:
    """As above, the follower stopped meanwhile: the close is owed when the master's new
    worker reports the position gone (INSTANCE_NOT_READY), and made, once, when the follower
    is back."""
    with ServerProcess(tmp_path, env={"MT5EXEC_SIM_KILL_AFTER_TRIGGER": "1"}) as server:
        create_sim(server, "am", tick_rate=20)
        create_sim(server, "af")
        relate(server, "away", "am", "af")
        opened = place(server, "am", "am-1", BUY, 0.01)
        wait_net(server, "af", 0.01)
        server.instances.StopInstance(
            instance_pb2.StopInstanceRequest(instance_id="af"), timeout=60
        )
        for _ in range(10):  # stops 5 points either side of the bid (it may move meanwhile)
            bid = _bid(server, "am")
            request = order_pb2.ModifyPositionRequest(
                instance_id="am",
                position_id=opened.position_id,
                stop_loss=round(bid - 5e-5, 5),
                take_profit=round(bid + 5e-5, 5),
            )
            try:
                server.orders.ModifyPosition(request, timeout=30)
                break
            except grpc.RpcError:
                continue
        wait_until(
            "the close owed once the master's new worker reported",
            lambda: stats(server, "away").skipped["INSTANCE_NOT_READY"] == 1,
        )
        wait_until("the master without its position", lambda: positions(server, "am") == [])
        server.instances.StartInstance(
            instance_pb2.StartInstanceRequest(instance_id="af"), timeout=120
        )
        wait_ready(server, "af")
        wait_net(server, "af", 0.0)
        closes = [
            o
            for o in orders_of(server, "af", "away.")
            if ":c" in o.client_order_id and o.status == common_pb2.ORDER_STATUS_FILLED
        ]
        assert len(closes) == 1 and closes[0].client_order_id.endswith(":0:c0"), closes
