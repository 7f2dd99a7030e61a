"""The trade copier end to end (real server, real sim workers): relations made, listed, read,
deleted and kept across a restart; a master's market fill copied (multiplier, fixed) under
derived client_order_ids; full and partial closes synced proportionally."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from tests.copier_support import (
    BUY,
    FIXED,
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
from tests.support import error_info, wait_for_price, wait_ready

from mt5exec.testing import ServerProcess
from mt5exec.v1 import order_pb2


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with ServerProcess(tmp_path_factory.mktemp("copier")) as proc:
        yield proc


def test_a_fill_is_copied_and_closes_follow_proportionally(server: ServerProcess) -> None:
    sims(server, "m1", "f1", "f2")
    relate(server, "double", "m1", "f1", multiplier=2.0)
    relate(server, "fixed", "m1", "f2", volume_mode=FIXED, fixed_volume=0.03)
    opened = place(server, "m1", "m1-open", BUY, 0.05)
    wait_net(server, "f1", 0.1)
    wait_net(server, "f2", 0.03)
    # The copies' ids derive from the relation, the master position and deal.
    (copy,) = orders_of(server, "f1", "double.")
    assert copy.client_order_id.endswith(":o")
    assert int(copy.client_order_id.split(":")[1], 36) == opened.position_id
    # A partial close of 2/5: 0.04 of 0.1 and 0.012 → 0.01 (the step) of 0.03.
    close(server, "m1", opened.position_id, 0.02)
    wait_net(server, "f1", 0.06)
    wait_net(server, "f2", 0.02)
    close(server, "m1", opened.position_id)
    wait_net(server, "f1", 0.0)
    wait_net(server, "f2", 0.0)
    figures = stats(server, "double")
    assert figures.copies == 3
    assert figures.latency_p50_seconds > 0 and figures.latency_p99_seconds > 0
    assert figures.fills == 1  # the opening copy's fill, measured against the master's price
    assert net(server, "m1") == 0.0
    scraped = server.metrics()
    assert 'mt5exec_copier_copies_total{owner="default",relation_id="double"} 3.0' in scraped
    latency = 'mt5exec_copier_latency_seconds_count{owner="default",relation_id="fixed"} 3.0'
    assert latency in scraped
    assert 'mt5exec_copier_fills_total{owner="default",relation_id="fixed"} 1.0' in scraped


def test_relations_are_checked_listed_and_deleted(server: ServerProcess) -> None:
    sims(server, "m2", "f3")
    with pytest.raises(grpc.RpcError) as bad:
        relate(server, "mapped", "m2", "f3", symbol_map={"EURUSD": "EURUSD.m"})
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(bad.value).metadata["field"] == "relation.symbol_map"
    with pytest.raises(grpc.RpcError) as zero:
        relate(server, "nothing", "m2", "f3", multiplier=0.0)
    assert error_info(zero.value).metadata["field"] == "relation.multiplier"
    made = relate(server, "listed", "m2", "f3")
    assert made.owner and made.HasField("created_time")
    with pytest.raises(grpc.RpcError) as twice:
        relate(server, "listed", "m2", "f3")
    assert twice.value.code() == grpc.StatusCode.ALREADY_EXISTS
    listed = server.orders.ListCopyRelations(
        order_pb2.ListCopyRelationsRequest(master_instance_id="m2"), timeout=10
    ).relations
    assert [r.relation_id for r in listed] == ["listed"]
    server.orders.DeleteCopyRelation(
        order_pb2.DeleteCopyRelationRequest(relation_id="listed"), timeout=10
    )
    place(server, "m2", "m2-after-delete", BUY, 0.01)
    assert positions(server, "m2")
    with pytest.raises(grpc.RpcError) as gone:
        server.orders.GetCopyRelation(
            order_pb2.GetCopyRelationRequest(relation_id="listed"), timeout=10
        )
    assert gone.value.code() == grpc.StatusCode.NOT_FOUND
    assert orders_of(server, "f3", "listed.") == []


def test_relations_survive_a_restart(tmp_path_factory: pytest.TempPathFactory) -> None:
    with ServerProcess(tmp_path_factory.mktemp("copier-restart")) as server:
        sims(server, "rm", "rf")
        relate(server, "kept", "rm", "rf", multiplier=3.0)
        server.terminate()
        server.start()
        for instance_id in ("rm", "rf"):
            wait_ready(server, instance_id)
        listed = server.orders.ListCopyRelations(
            order_pb2.ListCopyRelationsRequest(), timeout=10
        ).relations
        assert [(r.relation_id, r.multiplier) for r in listed] == [("kept", 3.0)]
        wait_for_price(server, "rm", "EURUSD")
        wait_for_price(server, "rf", "EURUSD")
        place(server, "rm", "after-restart", BUY, 0.01)
        wait_net(server, "rf", 0.03)
