"""Redis failing under the mirror: trading goes on, and the mirror rebuilds what Redis lost
and resumes its streams without gap or duplicate (real server, real redis-server)."""

from __future__ import annotations

import json
from pathlib import Path

import grpc
import pytest
import redis

from mt5exec.testing import ServerProcess
from mt5exec.v1 import common_pb2, instance_pb2, order_pb2, stream_pb2
from redis_mirror import (
    PREFIX,
    OrderFlow,
    connected,
    create_netting,
    entries,
    get_json,
    mirrored_server,
    sequences,
)
from redis_server import redis_server
from support import error_info, market, wait_for_price, wait_ready, wait_until


def _mirror_up(server: ServerProcess) -> float:
    return sum(s.value for s in server.metric_samples("mt5exec_redis_mirror_up"))


def _counter(server: ServerProcess, name: str) -> float:
    return sum(s.value for s in server.metric_samples(name) if s.name.endswith("_total"))


def _filled(r: redis.Redis, instance_id: str) -> set[str]:
    """The client order ids of the FILLED updates in an instance's stream."""
    out = set()
    for entry in entries(r, f"executions:{instance_id}"):
        if entry["type"] == "order_update":
            order = json.loads(entry["data"])
            if order["status"] == "ORDER_STATUS_FILLED":
                out.add(order["client_order_id"])
    return out


def _complete(r: redis.Redis, server: ServerProcess, instance_id: str, acked: list[str]) -> None:
    """The stream holds every event of the instance once, in sequence (the mirror reports no
    event of the engine unwritten), and every acknowledged order's FILLED update."""

    def caught_up() -> bool:
        lag = server.metric_samples("mt5exec_redis_mirror_lag_events")
        behind = [s.value for s in lag if s.labels.get("instance_id") == instance_id]
        return behind == [0.0]

    wait_until("the mirror caught up with the engine", caught_up, timeout=120)
    seqs = sequences(r, instance_id)
    assert seqs == list(range(1, len(seqs) + 1)), "a gap or a duplicate in the stream"
    missing = set(acked) - _filled(r, instance_id)
    assert not missing, f"{len(missing)} acknowledged orders not in the stream"


def test_sigkill_redis_under_load_loses_and_repeats_no_event(tmp_path: Path) -> None:
    with redis_server() as rs:
        r = rs.client()
        with mirrored_server(tmp_path / "data", rs) as server:
            create_netting(server, "k1")
            flow = OrderFlow(server, "k1", rate=500).start()
            try:
                wait_until("200 orders mirrored", lambda: len(sequences(r, "k1")) >= 400)
                rs.kill()
                down_at = len(flow.acked)
                wait_until(
                    "orders acknowledged while Redis is down",
                    lambda: len(flow.acked) >= down_at + 300,
                )
                wait_until("the mirror sees Redis down", lambda: _mirror_up(server) == 0)
                rs.start()
                wait_until("the mirror back", lambda: _mirror_up(server) == 1)
                at = len(flow.acked)
                wait_until("orders after the restart", lambda: len(flow.acked) >= at + 300)
            finally:
                flow.stop()
            assert not flow.failed, f"orders failed: {flow.failed[:5]}"
            _complete(r, server, "k1", flow.acked)
            assert _counter(server, "mt5exec_redis_mirror_reconnects") >= 1
            assert _counter(server, "mt5exec_redis_mirror_resyncs") >= 2
            assert get_json(r, "instance_state:k1")["state"] == "INSTANCE_STATE_READY"


def test_flushall_rebuilds_every_key_and_the_streams_go_on(tmp_path: Path) -> None:
    with redis_server() as rs:
        r = rs.client()
        with mirrored_server(tmp_path / "data", rs) as server:
            create_netting(server, "f1")
            flow = OrderFlow(server, "f1", rate=100).start()
            try:
                wait_until("orders mirrored", lambda: len(sequences(r, "f1")) >= 100)
                resyncs = _counter(server, "mt5exec_redis_mirror_resyncs")
                r.flushall()
                wait_until(
                    "a resync after the flush",
                    lambda: _counter(server, "mt5exec_redis_mirror_resyncs") > resyncs,
                )
                at = len(flow.acked)
                wait_until("orders after the flush", lambda: len(flow.acked) >= at + 100)
            finally:
                flow.stop()
            for key in ("instance_state:f1", "instance_health:f1", "account_state:f1"):
                wait_until(f"{key} rebuilt", lambda key=key: r.exists(PREFIX + key) == 1)

            def same_positions() -> bool:
                listed = server.orders.ListPositions(
                    order_pb2.ListPositionsRequest(instance_id="f1"), timeout=30
                ).positions
                mirrored = set(r.hkeys(PREFIX + "positions:f1"))
                return mirrored == {str(p.position_id) for p in listed}

            wait_until("positions:f1 is ListPositions", same_positions)
            wait_until(
                "the first order's keys rebuilt",
                lambda: r.get(PREFIX + "execution_status:f1:flow-0") == "CLOSED",
            )
            _complete(r, server, "f1", flow.acked)


def test_trading_and_the_kill_switch_work_while_redis_is_down(tmp_path: Path) -> None:
    with redis_server() as rs:
        r = rs.client()
        with mirrored_server(tmp_path / "data", rs) as server:
            create_netting(server, "d1")
            wait_until("mirrored", lambda: r.get(PREFIX + "instance_health:d1") == "UP")
            rs.kill()
            assert not connected(r)
            placed = server.orders.PlaceOrder(market("d1", "while-down"), timeout=30).order
            assert placed.status == common_pb2.ORDER_STATUS_FILLED
            events = server.streams.StreamExecutions(
                stream_pb2.StreamExecutionsRequest(instance_id="d1", from_sequence=0), timeout=60
            )
            seen = next(iter(events))
            events.cancel()
            assert seen.events
            scope = instance_pb2.KillSwitchScope(instance_id="d1")
            engaged = server.instances.EngageKillSwitch(
                instance_pb2.EngageKillSwitchRequest(scope=scope, reason="redis test"), timeout=30
            )
            assert list(engaged.instance_ids) == ["d1"]
            with pytest.raises(grpc.RpcError) as refused:
                server.orders.PlaceOrder(market("d1", "after-kill"), timeout=30)
            assert error_info(refused.value).reason == "KILL_SWITCH"
            wait_until("the mirror sees Redis down", lambda: _mirror_up(server) == 0)
            rs.start()
            # Rebuilt from the engine: the kill switch engaged while Redis was away is there.
            wait_until(
                "instance_state shows the kill switch",
                lambda: (get_json(r, "instance_state:d1") or {}).get("kill_switch") is True,
            )
            wait_until(
                "the order placed while down",
                lambda: r.get(PREFIX + "execution_status:d1:while-down") == "CLOSED",
            )
            # The instance event of the kill switch, kept while Redis was away, written since.
            wait_until(
                "the kill switch's instance event",
                lambda: any("KILL_SWITCH" in e["data"] for e in entries(r, "instance_events")),
            )
            order = server.orders.GetOrder(
                order_pb2.GetOrderRequest(instance_id="d1", client_order_id="while-down"),
                timeout=30,
            ).order
            assert get_json(r, "execution_state:d1:while-down")["order_id"] == str(order.order_id)


def test_a_server_restart_continues_the_streams(tmp_path: Path) -> None:
    """The mirror of a new server process resumes where Redis stands: the execution stream
    and the instance events' numbering go on, nothing twice."""
    with redis_server() as rs:
        r = rs.client()
        data = tmp_path / "data"
        with mirrored_server(data, rs) as server:
            create_netting(server, "r1")
            for i in range(5):
                server.orders.PlaceOrder(market("r1", f"before-{i}"), timeout=30)
            _complete(r, server, "r1", [f"before-{i}" for i in range(5)])
            assert server.terminate() == 0
        first = sequences(r, "r1")
        events_before = len(entries(r, "instance_events"))
        with mirrored_server(data, rs) as server:
            wait_ready(server, "r1")
            wait_for_price(server, "r1", "EURUSD")
            for i in range(5):
                server.orders.PlaceOrder(market("r1", f"after-{i}"), timeout=30)
            _complete(r, server, "r1", [f"after-{i}" for i in range(5)])
            # The second server's instance events (its restart of the instance), written after
            # the first server's.
            wait_until(
                "the restart's instance events",
                lambda: len(entries(r, "instance_events")) > events_before,
            )
        seqs = sequences(r, "r1")
        assert seqs[: len(first)] == first and len(seqs) > len(first)
        numbers = [int(e["sequence"]) for e in entries(r, "instance_events")]
        assert numbers == list(range(1, len(numbers) + 1))


def test_a_new_server_writes_the_execution_results_again(tmp_path: Path) -> None:
    """execution_result is summed from the fills in memory: a new server process's resync
    writes it again from the events the engine keeps (here for keys Redis lost while the
    streams stayed, as a volatile-* eviction policy would remove them first)."""
    with redis_server() as rs:
        r = rs.client()
        data = tmp_path / "data"
        ids = [f"o{i}" for i in range(3)]
        with mirrored_server(data, rs) as server:
            create_netting(server, "e1")
            for cid in ids:
                server.orders.PlaceOrder(market("e1", cid), timeout=30)
            wait_until(
                "the results",
                lambda: all(
                    (get_json(r, f"execution_result:e1:{cid}") or {}).get("fills") == 1
                    for cid in ids
                ),
            )
            before = {cid: get_json(r, f"execution_result:e1:{cid}") for cid in ids}
            assert server.terminate() == 0
        assert r.delete(*r.keys(PREFIX + "execution_result:*")) == len(ids)
        with mirrored_server(data, rs) as server:
            wait_ready(server, "e1")
            wait_until(
                "the results written again",
                lambda: {cid: get_json(r, f"execution_result:e1:{cid}") for cid in ids} == before,
                timeout=60,
            )
