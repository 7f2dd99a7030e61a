"""The copier's netting followers, late join and deletion, end to end (real server, real sim
workers)."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from tests.copier_support import (
    BUY,
    SELL,
    close,
    copy_follows_master,
    net,
    orders_of,
    place,
    relate,
    sim,
    wait_net,
)
from tests.support import error_info, limit, wait_until

from mt5exec.testing import ServerProcess
from mt5exec.v1 import common_pb2, order_pb2, stream_pb2


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with ServerProcess(tmp_path_factory.mktemp("copier-lifecycle")) as proc:
        yield proc


def test_a_netting_follower_holds_the_hedging_masters_net(server: ServerProcess) -> None:
    sim(server, "hm", margin_mode=common_pb2.ACCOUNT_MARGIN_MODE_HEDGING)
    sim(server, "nf", margin_mode=common_pb2.ACCOUNT_MARGIN_MODE_NETTING)
    relate(server, "net", "hm", "nf")
    long = place(server, "hm", "hm-long", BUY, 0.05)
    short = place(server, "hm", "hm-short", SELL, 0.02)
    assert long.position_id != short.position_id  # two positions on the master
    wait_net(server, "nf", 0.03)
    close(server, "hm", long.position_id, 0.02)  # the long's partial close: 0.03 long left
    wait_net(server, "nf", 0.01)
    close(server, "hm", short.position_id)  # the short gone: the net is the long's 0.03
    wait_net(server, "nf", 0.03)
    close(server, "hm", long.position_id)
    wait_net(server, "nf", 0.0)
    assert net(server, "hm") == 0.0


def test_a_netting_masters_reversal_closes_the_copy_and_opens_the_rest(
    server: ServerProcess,
) -> None:
    sim(server, "rvm", margin_mode=common_pb2.ACCOUNT_MARGIN_MODE_NETTING)
    sim(server, "rvf", margin_mode=common_pb2.ACCOUNT_MARGIN_MODE_NETTING)
    relate(server, "rev-net", "rvm", "rvf", multiplier=2.0)
    place(server, "rvm", "rvm-buy", BUY, 0.1)
    wait_net(server, "rvf", 0.2)
    place(server, "rvm", "rvm-sell", SELL, 0.3)  # the master's reversal: 0.2 short
    wait_net(server, "rvm", -0.2)
    wait_net(server, "rvf", -0.4)
    actions = sorted(
        o.client_order_id.rsplit(":", 1)[1] for o in orders_of(server, "rvf", "rev-net.")
    )
    assert actions == ["c0", "o", "r"]


def test_late_join_copies_open_positions_or_only_new_trades(server: ServerProcess) -> None:
    sim(server, "lm")
    sim(server, "l-open")
    sim(server, "l-new")
    held = place(server, "lm", "lm-held", BUY, 0.02)
    relate(server, "late-open", "lm", "l-open", late_join=order_pb2.COPY_LATE_JOIN_OPEN_POSITIONS)
    relate(server, "late-new", "lm", "l-new", late_join=order_pb2.COPY_LATE_JOIN_NEW_ONLY)
    wait_net(server, "l-open", 0.02)
    (joined,) = orders_of(server, "l-open", "late-open.")
    assert joined.client_order_id.endswith(":j")
    place(server, "lm", "lm-new", SELL, 0.01)
    wait_net(server, "l-new", -0.01)
    wait_net(server, "l-open", 0.01)
    close(server, "lm", held.position_id)  # closes the late joiner's copy too
    wait_net(server, "l-open", -0.01)
    assert net(server, "l-new") == -0.01


def test_deleting_a_relation_leaves_or_closes_its_copies(server: ServerProcess) -> None:
    sim(server, "dm")
    sim(server, "d-leave")
    sim(server, "d-close")
    relate(server, "leave", "dm", "d-leave", on_delete=order_pb2.COPY_ON_DELETE_LEAVE_OPEN)
    relate(server, "closes", "dm", "d-close", on_delete=order_pb2.COPY_ON_DELETE_CLOSE)
    place(server, "dm", "dm-1", BUY, 0.03)
    wait_net(server, "d-leave", 0.03)
    wait_net(server, "d-close", 0.03)
    for relation_id in ("leave", "closes"):
        server.orders.DeleteCopyRelation(
            order_pb2.DeleteCopyRelationRequest(relation_id=relation_id), timeout=30
        )
    wait_net(server, "d-close", 0.0)
    (closed,) = [
        o for o in orders_of(server, "d-close", "closes.") if o.client_order_id[-2:] == "d0"
    ]
    assert closed.status == common_pb2.ORDER_STATUS_FILLED
    # Copies are submitted when the master's deal arrives, before its order's result: a copy
    # of this one would be in the follower's orders when PlaceOrder returns.
    place(server, "dm", "dm-2", BUY, 0.01)
    assert len(orders_of(server, "d-leave", "leave.")) == 1
    assert len(orders_of(server, "d-close", "closes.")) == 2  # the copy and its close
    assert net(server, "d-leave") == 0.03


def test_pending_orders_are_copied_modified_and_cancelled(server: ServerProcess) -> None:
    sim(server, "pm")
    sim(server, "p-copy")
    relate(server, "pend", "pm", "p-copy", copy_pending=True, copy_stops=True)
    ticks = server.streams.StreamTicks(
        stream_pb2.StreamTicksRequest(instance_ids=["pm"], symbols=["EURUSD"]), timeout=30
    )
    try:
        ask = next(iter(ticks)).ticks[0].ask
    finally:
        ticks.cancel()
    # Below the market (it stays pending), within the price collar.
    low, lower = round(ask * 0.98, 5), round(ask * 0.97, 5)
    master = server.orders.PlaceOrder(limit("pm", "pm-limit", low), timeout=30).order

    def copy() -> list[common_pb2.Order]:
        return orders_of(server, "p-copy", "pend.")

    wait_until("the pending copy", lambda: len(copy()) == 1)
    (placed,) = copy()
    assert placed.client_order_id.endswith(":p")
    assert (placed.type, placed.price, placed.volume) == (master.type, low, 0.01)
    copy_follows_master(server, "pm", master.order_id, lower, "p-copy", "pend.")


def test_a_late_join_copies_the_masters_pending_orders(server: ServerProcess) -> None:
    """copy_pending with COPY_LATE_JOIN_OPEN_POSITIONS: the master's pending orders placed
    before the relation was made are placed on the follower too, and follow their master."""
    sim(server, "ljm")
    sim(server, "ljf")
    ticks = server.streams.StreamTicks(
        stream_pb2.StreamTicksRequest(instance_ids=["ljm"], symbols=["EURUSD"]), timeout=30
    )
    try:
        ask = next(iter(ticks)).ticks[0].ask
    finally:
        ticks.cancel()
    low = round(ask * 0.98, 5)
    master = server.orders.PlaceOrder(limit("ljm", "ljm-limit", low), timeout=30).order
    relate(
        server,
        "ljoin",
        "ljm",
        "ljf",
        copy_pending=True,
        late_join=order_pb2.COPY_LATE_JOIN_OPEN_POSITIONS,
    )

    def copy() -> list[common_pb2.Order]:
        return orders_of(server, "ljf", "ljoin.")

    wait_until(
        "the pending copy", lambda: [(o.price, o.type) for o in copy()] == [(low, master.type)]
    )
    server.orders.CancelOrder(
        order_pb2.CancelOrderRequest(instance_id="ljm", order_id=master.order_id), timeout=30
    )
    wait_until(
        "the copy cancelled",
        lambda: [o.status for o in copy()] == [common_pb2.ORDER_STATUS_CANCELED],
    )


def test_a_late_join_not_saved_makes_no_copy(server: ServerProcess) -> None:
    """CreateCopyRelation with a late join while copy_relations.json cannot be written: the
    relation is not made (UNAVAILABLE) and the master's open position and pending order are
    not copied (before, the late join ran first and left copies nothing follows)."""
    sim(server, "nsm")
    sim(server, "nsf")
    place(server, "nsm", "nsm-held", BUY, 0.02)
    price = place(server, "nsm", "nsm-probe", BUY, 0.01).price
    server.orders.PlaceOrder(limit("nsm", "nsm-limit", round(price * 0.98, 5)), timeout=30)
    blocker = server.data_dir / "copy_relations.json"
    saved = blocker.read_bytes() if blocker.exists() else None
    blocker.unlink(missing_ok=True)
    (blocker / "in-the-way").mkdir(parents=True)  # os.replace over it fails
    try:
        with pytest.raises(grpc.RpcError) as refused:
            relate(
                server,
                "unsaved",
                "nsm",
                "nsf",
                copy_pending=True,
                late_join=order_pb2.COPY_LATE_JOIN_OPEN_POSITIONS,
            )
    finally:
        (blocker / "in-the-way").rmdir()
        blocker.rmdir()
        if saved is not None:
            blocker.write_bytes(saved)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    assert error_info(refused.value).reason == "RELATIONS_NOT_SAVED"
    listed = server.orders.ListCopyRelations(order_pb2.ListCopyRelationsRequest(), timeout=10)
    assert "unsaved" not in [r.relation_id for r in listed.relations]
    # The follower's own order after the refusal: a copy sent before it would be there too.
    place(server, "nsf", "nsf-own", SELL, 0.01)
    wait_net(server, "nsf", -0.01)
    assert orders_of(server, "nsf", "unsaved.") == []
