"""A client hammering past its throttle: every order is answered RESOURCE_EXHAUSTED and counted,
but the execution events (a disk write each) are one per instance, reason and second, each
carrying how many orders it stands for."""

from __future__ import annotations

import time
from pathlib import Path

import duckdb
import grpc
from tests.support import create_sim, market

from mt5exec.testing import ServerProcess
from mt5exec.v1 import common_pb2, order_pb2, stream_pb2


def test_throttle_refusals_are_coalesced_into_counted_events(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with ServerProcess(data) as server:
        create_sim(
            server,
            "hammered",
            risk=common_pb2.RiskLimits(
                max_order_volume=10, min_order_volume=0.01, orders_per_second=5
            ),
        )
        requests = [
            order_pb2.OrderSessionRequest(place=market("hammered", f"h-{n}")) for n in range(1000)
        ]
        started = time.monotonic()
        answers = list(server.orders.OrderSession(iter(requests), timeout=120))
        elapsed = time.monotonic() - started
        limited = [a for a in answers if a.reason == "RATE_LIMITED"]
        # The bucket holds a second's worth, five orders, and refills at five a second.
        assert len(answers) - len(limited) <= 5 + int(5 * elapsed) + 1, elapsed
        assert all(a.code == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0] for a in limited)
        # Counted one by one.
        samples = server.metric_samples("mt5exec_risk_rejections")
        counted = [
            s.value
            for s in samples
            if s.name.endswith("_total")
            and s.labels == {"instance_id": "hammered", "reason": "RATE_LIMITED"}
        ]
        assert counted == [len(limited)]
        # Published once their second is over: read until they are all accounted for.
        call = server.streams.StreamExecutions(
            stream_pb2.StreamExecutionsRequest(instance_id="hammered", from_sequence=0),
            timeout=60,
        )
        events: list[common_pb2.ExecutionEvent] = []
        deadline = time.monotonic() + 60
        for message in call:
            events += [e for e in message.events if e.order_update.reject_reason == "RATE_LIMITED"]
            if sum(e.refusals for e in events) >= len(limited):
                break
            assert time.monotonic() < deadline
        call.cancel()
        assert sum(e.refusals for e in events) == len(limited)
        assert all(e.refusals >= 1 for e in events)
        assert all(e.order_update.status == common_pb2.ORDER_STATUS_REJECTED for e in events)
        # The first order refused in each window: at most one event a second.
        assert {e.order_update.client_order_id for e in events} <= {
            a.client_order_id for a in limited
        }
        assert len(events) <= int(elapsed) + 2, ([e.refusals for e in events], elapsed)
    # The history has one row per event, as the log.
    with duckdb.connect(str(data / "history.duckdb"), read_only=True) as db:
        row = db.execute(
            "SELECT count(*) FROM executions WHERE instance_id = 'hammered' "
            "AND reject_reason = 'RATE_LIMITED'"
        ).fetchone()
    assert row is not None and row[0] == len(events)
