"""Copy relation ids are their owner's own (issue #20): two owners may use the same id, each
sees and deletes only its own, another owner's relation is NOT_FOUND as one that does not
exist, and an admin names the owner when the id is ambiguous. Real server, auth on, real sim
workers."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from tests.copier_support import BUY, MULTIPLIER, place, wait_net
from tests.support import BULK_RISK, error_info, wait_for_price

from mt5exec.testing import ServerProcess
from mt5exec.v1 import auth_pb2, common_pb2, instance_pb2, order_pb2, order_pb2_grpc


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with ServerProcess(tmp_path_factory.mktemp("copier-owners")) as proc:
        yield proc


def _instance(server: ServerProcess, instance_id: str, owner: str) -> None:
    config = common_pb2.InstanceConfig(symbols=["EURUSD"], tick_rate=10, risk=BULK_RISK)
    request = instance_pb2.CreateInstanceRequest(
        instance_id=instance_id, owner=owner, config=config
    )
    server.instances.CreateInstance(request, timeout=60)
    wait_for_price(server, instance_id, "EURUSD")


def _trader(server: ServerProcess, owner: str) -> order_pb2_grpc.OrderServiceStub:
    request = auth_pb2.CreateApiKeyRequest(role=auth_pb2.ROLE_TRADER, owner=owner)
    channel = server.connect(server.auth.CreateApiKey(request, timeout=30).token)
    return order_pb2_grpc.OrderServiceStub(channel)


def _relation(relation_id: str, master: str, follower: str) -> order_pb2.CreateCopyRelationRequest:
    return order_pb2.CreateCopyRelationRequest(
        relation=order_pb2.CopyRelation(
            relation_id=relation_id,
            master_instance_id=master,
            follower_instance_id=follower,
            volume_mode=MULTIPLIER,
            multiplier=1.0,
        )
    )


def _get(stub: order_pb2_grpc.OrderServiceStub, relation_id: str, owner: str = "") -> object:
    request = order_pb2.GetCopyRelationRequest(relation_id=relation_id, owner=owner)
    return stub.GetCopyRelation(request, timeout=30).relation


def _refused(call: object, *args: object) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call(*args, timeout=30)  # type: ignore[operator]
    return caught.value


def test_two_owners_use_the_same_relation_id(server: ServerProcess) -> None:
    for name, owner in (("ann-m", "ann"), ("ann-f", "ann"), ("bob-m", "bob"), ("bob-f", "bob")):
        _instance(server, name, owner)
    ann, bob = _trader(server, "ann"), _trader(server, "bob")
    ann.CreateCopyRelation(_relation("same", "ann-m", "ann-f"), timeout=30)
    ann.CreateCopyRelation(_relation("anns", "ann-m", "ann-f"), timeout=30)
    # Bob's "same" is made: nothing tells him Ann has one.
    made = bob.CreateCopyRelation(_relation("same", "bob-m", "bob-f"), timeout=30).relation
    assert (made.relation_id, made.owner) == ("same", "bob")
    # His own id again: ALREADY_EXISTS (his own, which he knows).
    again = _refused(bob.CreateCopyRelation, _relation("same", "bob-m", "bob-f"))
    assert again.code() == grpc.StatusCode.ALREADY_EXISTS
    # Ann's other relation: NOT_FOUND for Bob, as an id nobody has, even naming her.
    for relation_id, owner in (("anns", ""), ("anns", "ann"), ("nobody", "")):
        for call in (bob.GetCopyRelation, bob.DeleteCopyRelation):
            request_type = (
                order_pb2.GetCopyRelationRequest
                if call is bob.GetCopyRelation
                else order_pb2.DeleteCopyRelationRequest
            )
            error = _refused(call, request_type(relation_id=relation_id, owner=owner))
            assert error.code() == grpc.StatusCode.NOT_FOUND
            assert error_info(error).reason == "RELATION_NOT_FOUND"
    assert _get(bob, "same").follower_instance_id == "bob-f"  # type: ignore[attr-defined]
    assert _get(ann, "same").follower_instance_id == "ann-f"  # type: ignore[attr-defined]
    # Each one's relation copies its own master's trades.
    place(server, "bob-m", "bob-1", BUY, 0.02)
    place(server, "ann-m", "ann-1", BUY, 0.01)
    wait_net(server, "bob-f", 0.02)
    wait_net(server, "ann-f", 0.02)  # two relations of Ann's copy to ann-f
    # The admin names the owner when the id is ambiguous.
    ambiguous = _refused(
        server.orders.GetCopyRelation, order_pb2.GetCopyRelationRequest(relation_id="same")
    )
    assert ambiguous.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(ambiguous).metadata["field"] == "owner"
    assert _get(server.orders, "same", "ann").follower_instance_id == "ann-f"  # type: ignore[attr-defined]
    assert _get(server.orders, "anns").owner == "ann"  # type: ignore[attr-defined]
    # Bob deletes his; Ann's stays (and is now the only "same").
    bob.DeleteCopyRelation(order_pb2.DeleteCopyRelationRequest(relation_id="same"), timeout=30)
    assert _get(server.orders, "same").owner == "ann"  # type: ignore[attr-defined]
    listed = server.orders.ListCopyRelations(order_pb2.ListCopyRelationsRequest(), timeout=30)
    assert sorted((r.relation_id, r.owner) for r in listed.relations) == [
        ("anns", "ann"),
        ("same", "ann"),
    ]
    scraped = server.metrics()
    assert 'mt5exec_copier_copies_total{owner="ann",relation_id="same"} 1.0' in scraped
