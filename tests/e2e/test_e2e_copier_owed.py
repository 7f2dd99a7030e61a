"""A close the copier owes a follower (issue #20): tried again while the follower's gate
refuses it, it is counted in the relation's statistics and told on the follower's execution
stream once, and its outcome (given up, then made) is said once. Real server, real sim
workers."""

from __future__ import annotations

from collections.abc import Callable

from tests.copier_support import BUY, close, orders_of, place, relate, sims, stats, wait_net
from tests.support import wait_ready, wait_until

from mt5exec.testing import ServerProcess
from mt5exec.v1 import common_pb2, instance_pb2, stream_pb2

COPIER = "copy of relation"  # how the copier's own REJECTED updates begin their message


def _order_updates(
    server: ServerProcess, instance_id: str, until: Callable[[common_pb2.Order], bool]
) -> list[common_pb2.Order]:
    """The instance's order updates from its first kept event until one meets ``until`` (the
    call's deadline fails the test)."""
    seen: list[common_pb2.Order] = []
    request = stream_pb2.StreamExecutionsRequest(instance_id=instance_id)
    stream = server.streams.StreamExecutions(request, timeout=150)
    try:
        for response in stream:
            for event in response.events:
                if event.HasField("order_update"):
                    seen.append(event.order_update)
                    if until(event.order_update):
                        return seen
    finally:
        stream.cancel()
    raise AssertionError(f"the stream of {instance_id} ended first: {seen}")


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
