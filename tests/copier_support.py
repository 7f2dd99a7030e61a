"""Helpers of the copier's end-to-end tests (tests/test_e2e_copier*.py)."""

from __future__ import annotations

from tests.support import create_sim, execution_events, wait_until

from mt5exec.testing import ServerProcess
from mt5exec.v1 import common_pb2, order_pb2

BUY, SELL = common_pb2.SIDE_BUY, common_pb2.SIDE_SELL
MULTIPLIER = order_pb2.COPY_VOLUME_MODE_MULTIPLIER
FIXED = order_pb2.COPY_VOLUME_MODE_FIXED


def sims(server: ServerProcess, *ids: str, **kwargs: object) -> None:
    for instance_id in ids:
        create_sim(server, instance_id, **kwargs)  # type: ignore[arg-type]


def relate(
    server: ServerProcess, relation_id: str, master: str, follower: str, **fields: object
) -> order_pb2.CopyRelation:
    fields.setdefault("volume_mode", MULTIPLIER)
    if fields["volume_mode"] == MULTIPLIER:
        fields.setdefault("multiplier", 1.0)
    relation = order_pb2.CopyRelation(
        relation_id=relation_id,
        master_instance_id=master,
        follower_instance_id=follower,
        **fields,  # type: ignore[arg-type]
    )
    request = order_pb2.CreateCopyRelationRequest(relation=relation)
    return server.orders.CreateCopyRelation(request, timeout=30).relation


def positions(
    server: ServerProcess, instance_id: str, symbol: str = ""
) -> list[common_pb2.Position]:
    request = order_pb2.ListPositionsRequest(instance_id=instance_id, symbol=symbol)
    return list(server.orders.ListPositions(request, timeout=10).positions)


def net(server: ServerProcess, instance_id: str) -> float:
    """Signed open volume (buys positive), rounded to the lot step."""
    total = sum(p.volume if p.side == BUY else -p.volume for p in positions(server, instance_id))
    return round(total, 8)


def wait_net(server: ServerProcess, instance_id: str, volume: float) -> None:
    wait_until(
        f"{instance_id} holds {volume} net (has {net(server, instance_id)})",
        lambda: abs(net(server, instance_id) - volume) < 1e-9,
    )


def orders_of(server: ServerProcess, instance_id: str, prefix: str) -> list[common_pb2.Order]:
    """The instance's orders (open and history) whose client_order_id starts with prefix."""
    found: dict[str, common_pb2.Order] = {}
    for history in (False, True):
        request = order_pb2.ListOrdersRequest(instance_id=instance_id, history=history)
        for order in server.orders.ListOrders(request, timeout=10).orders:
            if order.client_order_id.startswith(prefix):
                found[order.client_order_id] = order
    return list(found.values())


def copy_follows_master(
    server: ServerProcess, master: str, order_id: int, price: float, follower: str, prefix: str
) -> None:
    """The master's pending order moved to ``price`` then cancelled: its copy on ``follower``
    (its only order under ``prefix``) moves, then is cancelled, with it."""

    def copy() -> list[common_pb2.Order]:
        return orders_of(server, follower, prefix)

    server.orders.ModifyOrder(
        order_pb2.ModifyOrderRequest(instance_id=master, order_id=order_id, price=price),
        timeout=30,
    )
    wait_until("the copy's new price", lambda: [o.price for o in copy()] == [price])
    server.orders.CancelOrder(
        order_pb2.CancelOrderRequest(instance_id=master, order_id=order_id), timeout=30
    )
    wait_until(
        "the copy cancelled",
        lambda: [o.status for o in copy()] == [common_pb2.ORDER_STATUS_CANCELED],
    )


def stats(server: ServerProcess, relation_id: str) -> order_pb2.CopyRelationStats:
    request = order_pb2.GetCopyRelationRequest(relation_id=relation_id)
    return server.orders.GetCopyRelation(request, timeout=10).stats


def place(
    server: ServerProcess,
    instance_id: str,
    cid: str,
    side: int,
    volume: float,
    symbol: str = "EURUSD",
    **fields: object,
) -> common_pb2.Order:
    request = order_pb2.PlaceOrderRequest(
        instance_id=instance_id,
        client_order_id=cid,
        symbol=symbol,
        side=side,
        type=common_pb2.ORDER_TYPE_MARKET,
        volume=volume,
        **fields,  # type: ignore[arg-type]
    )
    return server.orders.PlaceOrder(request, timeout=30).order


def close(server: ServerProcess, instance_id: str, position_id: int, volume: float = 0.0) -> None:
    request = order_pb2.ClosePositionRequest(
        instance_id=instance_id, position_id=position_id, volume=volume
    )
    server.orders.ClosePosition(request, timeout=30)


def sim(
    server: ServerProcess, instance_id: str, symbols: list[str] | None = None, **config: object
) -> None:
    """A sim instance with config fields (initial_balance, margin_mode...), READY with prices."""
    from tests.support import wait_for_price

    from mt5exec.v1 import instance_pb2

    cfg = common_pb2.InstanceConfig(
        symbols=symbols or ["EURUSD"],
        tick_rate=5,
        **config,  # type: ignore[arg-type]
    )
    server.instances.CreateInstance(
        instance_pb2.CreateInstanceRequest(instance_id=instance_id, config=cfg), timeout=60
    )
    for symbol in cfg.symbols:
        wait_for_price(server, instance_id, symbol)


def refused_copy(server: ServerProcess, instance_id: str, reason: str) -> common_pb2.Order:
    """The first REJECTED order update of ``reason`` in the instance's execution events (the
    copier tells a copy it did not make there); the call's deadline fails the test."""

    def refused(event: common_pb2.ExecutionEvent) -> bool:
        order = event.order_update
        return (
            event.HasField("order_update")
            and order.status == common_pb2.ORDER_STATUS_REJECTED
            and order.reject_reason == reason
        )

    return execution_events(server, instance_id, refused)[-1].order_update
