"""StreamExecutions from *now* (start = START_LIVE), and the sequence a stream starts after
(response header mt5exec-start-sequence), against a real server and sim worker."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from tests.support import create_sim, error_info, market

from mt5exec.testing import ServerProcess
from mt5exec.v1 import common_pb2, stream_pb2

LIVE = stream_pb2.StreamExecutionsRequest.START_LIVE
HEADER = "mt5exec-start-sequence"


def _open(server: ServerProcess, **fields: Any) -> tuple[Any, int]:
    """A StreamExecutions call of instance "live" and the sequence its headers say it starts
    after (the headers come once the subscription is in place)."""
    call = server.streams.StreamExecutions(
        stream_pb2.StreamExecutionsRequest(instance_id="live", **fields), timeout=60
    )
    headers = dict(call.initial_metadata())
    return call, int(headers[HEADER])


def _client_order_id(event: common_pb2.ExecutionEvent) -> str:
    kind = event.WhichOneof("event")
    return (
        event.order_update.client_order_id if kind == "order_update" else event.fill.client_order_id
    )


def _read_until_filled(call: Any, cid: str) -> list[common_pb2.ExecutionEvent]:
    """The events up to and including the FILLED update of order ``cid``."""
    events: list[common_pb2.ExecutionEvent] = []
    for message in call:
        for event in message.events:
            events.append(event)
            update = event.order_update
            if update.client_order_id == cid and update.status == common_pb2.ORDER_STATUS_FILLED:
                call.cancel()
                return events
    raise AssertionError(f"the stream ended before {cid} was filled")


def test_a_live_only_stream_gets_no_old_event_and_names_where_to_resume(
    server: ServerProcess,
) -> None:
    create_sim(server, "live")
    for n in range(3):
        server.orders.PlaceOrder(market("live", f"old-{n}"), timeout=30)
    # Every event so far, as a replay from the start has it.
    replay, start = _open(server)
    assert start == 0
    old = _read_until_filled(replay, "old-2")
    last_old = old[-1].sequence
    assert [e.sequence for e in old] == list(range(1, last_old + 1))

    live, now = _open(server, start=LIVE)
    # The current sequence: at least every event of the three orders, none of them replayed.
    assert now >= last_old
    server.orders.PlaceOrder(market("live", "new-0"), timeout=30)
    fresh = _read_until_filled(live, "new-0")
    assert fresh[0].sequence == now + 1, "the first live event is the next one"
    assert [e.sequence for e in fresh] == list(range(now + 1, fresh[-1].sequence + 1))
    assert {_client_order_id(e) for e in fresh} == {"new-0"}, "no old event"

    # Later, a resume from that sequence misses nothing and repeats nothing.
    server.orders.PlaceOrder(market("live", "new-1"), timeout=30)
    resumed, after = _open(server, from_sequence=now)
    assert after == now
    again = _read_until_filled(resumed, "new-1")
    assert [e.sequence for e in again[: len(fresh)]] == [e.sequence for e in fresh]
    assert [e.sequence for e in again] == list(range(now + 1, again[-1].sequence + 1))
    assert {_client_order_id(e) for e in again[len(fresh) :]} == {"new-1"}


def test_a_live_only_stream_takes_no_sequence(server: ServerProcess) -> None:
    create_sim(server, "live-refused")
    request = stream_pb2.StreamExecutionsRequest(
        instance_id="live-refused", start=LIVE, from_sequence=1
    )
    with pytest.raises(grpc.RpcError) as caught:
        next(iter(server.streams.StreamExecutions(request, timeout=30)))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    info = error_info(caught.value)
    assert (info.reason, info.metadata["field"]) == ("FIELD_NOT_APPLICABLE", "from_sequence")
