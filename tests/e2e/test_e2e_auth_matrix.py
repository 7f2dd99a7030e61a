"""Who may do what, end to end: every RPC of every mt5exec.v1 service (found in the
descriptors) called as each kind of caller, against the real server.

The table names every RPC: one the descriptors have and the table does not fails the test,
as does a row for an RPC that is gone. Callers: no token, a garbage token, an expired JWT, a
revoked API key (all UNAUTHENTICATED, each with its reason), a viewer and a trader of owner
alice, a trader of owner bob, and an admin. Requests name instances of alice.

Why one file of ~1,000 lines: it is one table, a row per RPC, and the test that every RPC has
its row must see the whole table; split by service, a new service's rows would have no home.
"""

from __future__ import annotations

import base64
import json
import os
import pkgutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import Any

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from google.protobuf import duration_pb2, message_factory
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from google.protobuf.timestamp_pb2 import Timestamp
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2
from tests.support import BULK_RISK, error_info, limit, market, wait_for_price

import mt5exec.v1
from mt5exec.testing import ServerProcess, bearer
from mt5exec.v1 import (
    auth_pb2,
    auth_pb2_grpc,
    common_pb2,
    instance_pb2,
    instance_pb2_grpc,
    market_pb2,
    order_pb2,
    stream_pb2,
    stream_pb2_grpc,
)

OK = grpc.StatusCode.OK
UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED
DENIED = grpc.StatusCode.PERMISSION_DENIED
NOT_FOUND = grpc.StatusCode.NOT_FOUND
FAILED = grpc.StatusCode.FAILED_PRECONDITION
UNIMPLEMENTED = grpc.StatusCode.UNIMPLEMENTED
_BY_NUMBER = {code.value[0]: code for code in grpc.StatusCode}

# The callers without valid credentials, and the reason each gets.
REFUSED = {
    "none": "TOKEN_MISSING",
    "garbage": "TOKEN_INVALID",
    "expired": "TOKEN_EXPIRED",
    "revoked": "TOKEN_REVOKED",
}
# The callers with valid ones, in the order of a row's codes (the admin last: it may
# change what the others would have found).
ALLOWED = ("viewer", "trader", "other", "admin")

ALICE = "alice"
PRICE_FAR = 0.5  # a buy limit far below EURUSD's price: it stays pending


# -- the server ----------------------------------------------------------------------------


@dataclass
class World:
    server: ServerProcess
    channels: dict[str, grpc.Channel]
    tokens: dict[str, str]
    key_ids: dict[str, str]
    position_id: int
    hs_secret: bytes
    ed_key: ed25519.Ed25519PrivateKey
    rsa_key: rsa.RSAPrivateKey

    def stub(self, who: str) -> auth_pb2_grpc.AuthServiceStub:
        return auth_pb2_grpc.AuthServiceStub(self.channels[who])


def _jwt_files(directory: Path) -> tuple[bytes, ed25519.Ed25519PrivateKey, rsa.RSAPrivateKey]:
    secret = os.urandom(32).hex().encode()
    (directory / "hs256.secret").write_bytes(secret)
    ed_key = ed25519.Ed25519PrivateKey.generate()
    (directory / "ed25519.pem").write_bytes(
        ed_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(rsa_key.public_key()))
    jwk |= {"kid": "r1", "alg": "RS256", "use": "sig"}
    (directory / "jwks.json").write_text(json.dumps({"keys": [jwk]}))
    return secret, ed_key, rsa_key


def hs256(secret: bytes, **claims: Any) -> str:
    return jwt.encode({"exp": int(time.time()) + 600, **claims}, secret, algorithm="HS256")


def _create(server: ServerProcess, instance_id: str, owner: str, tick_rate: float) -> Any:
    config = common_pb2.InstanceConfig(
        symbols=["EURUSD"],
        tick_rate=tick_rate,
        margin_mode=common_pb2.ACCOUNT_MARGIN_MODE_HEDGING,
        risk=BULK_RISK,
    )
    request = instance_pb2.CreateInstanceRequest(
        instance_id=instance_id, owner=owner, config=config
    )
    return server.instances.CreateInstance.future(request, timeout=60)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    data = tmp_path_factory.mktemp("auth")
    secrets_dir = tmp_path_factory.mktemp("auth-keys")
    secret, ed_key, rsa_key = _jwt_files(secrets_dir)
    config = secrets_dir / "mt5exec.toml"
    config.write_text(
        "[auth]\n"
        # Every refused caller is refused on purpose, from this one address: no throttle.
        "peer_failures = 0\n"
        f'jwt_secret_file = "{secrets_dir / "hs256.secret"}"\n'
        f'jwt_public_key_file = "{secrets_dir / "ed25519.pem"}"\n'
        f'jwt_jwks_file = "{secrets_dir / "jwks.json"}"\n'
    )
    with ServerProcess(data, config=config) as server:
        assert server.token is not None
        created = [
            _create(server, "a1", ALICE, 20),
            _create(server, "a-life", ALICE, 2),
            _create(server, "a-del", ALICE, 2),
            _create(server, "a-kill", ALICE, 2),
            _create(server, "b1", "bob", 20),
        ]
        for future in created:
            future.result()
        wait_for_price(server, "a1", "EURUSD")
        admin = server.auth

        def key(role: int, owner: str = "") -> auth_pb2.CreateApiKeyResponse:
            request = auth_pb2.CreateApiKeyRequest(role=role, owner=owner)
            return admin.CreateApiKey(request, timeout=30)

        viewer = key(auth_pb2.ROLE_VIEWER, ALICE)
        trader = key(auth_pb2.ROLE_TRADER, ALICE)
        other = key(auth_pb2.ROLE_TRADER, "bob")
        throwaway = key(auth_pb2.ROLE_VIEWER, ALICE)
        revoked = key(auth_pb2.ROLE_ADMIN)
        admin.RevokeApiKey(auth_pb2.RevokeApiKeyRequest(key_id=revoked.key.key_id), timeout=30)
        tokens = {
            "garbage": "garbage",
            "expired": jwt.encode(
                {"sub": "late", "role": "admin", "exp": int(time.time()) - 3600},
                secret,
                algorithm="HS256",
            ),
            "revoked": revoked.token,
            "viewer": viewer.token,
            "trader": trader.token,
            "other": other.token,
            "admin": server.token,
        }
        # What the trader and the admin modify, cancel and close (orders of their own each).
        orders = server.orders
        orders.PlaceOrder(market("a1", "filled-0"), timeout=30)
        position = orders.PlaceOrder(market("a1", "pos-0", volume=1.0), timeout=30).order
        for who in ("trader", "admin"):
            for what in ("mod", "cancel"):
                orders.PlaceOrder(limit("a1", f"{what}-{who}", PRICE_FAR), timeout=30)
        channels = {"none": server.connect(None)} | {
            who: server.connect(token) for who, token in tokens.items()
        }
        try:
            yield World(
                server=server,
                channels=channels,
                tokens=tokens,
                key_ids={"throwaway": throwaway.key.key_id, "viewer": viewer.key.key_id},
                position_id=position.position_id,
                hs_secret=secret,
                ed_key=ed_key,
                rsa_key=rsa_key,
            )
        finally:
            for channel in channels.values():
                channel.close()


# -- the table -------------------------------------------------------------------------------

Build = Callable[[str, str], Any]


@dataclass(frozen=True)
class Row:
    """A request naming instance ``instance`` (``build(instance, caller)``), and the code each
    of ALLOWED gets."""

    build: Build
    instance: str
    codes: tuple[grpc.StatusCode, grpc.StatusCode, grpc.StatusCode, grpc.StatusCode]


READ = (OK, OK, NOT_FOUND, OK)  # viewer, trader of alice, trader of bob, admin
TRADE = (DENIED, OK, NOT_FOUND, OK)
ADMIN = (DENIED, DENIED, DENIED, OK)
NOT_BUILT = (DENIED, DENIED, DENIED, UNIMPLEMENTED)
ANYONE = (OK, OK, OK, OK)
# The matrix's server stores no ticks: who may read them gets FAILED_PRECONDITION.
NO_TICKS = (
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.FAILED_PRECONDITION,
    NOT_FOUND,
    grpc.StatusCode.FAILED_PRECONDITION,
)

INS, ORD, STR, AUT, MKT = (
    "mt5exec.v1.InstanceService/",
    "mt5exec.v1.OrderService/",
    "mt5exec.v1.StreamService/",
    "mt5exec.v1.AuthService/",
    "mt5exec.v1.MarketDataService/",
)
ACTIVE = common_pb2.TRADING_STATE_ACTIVE


def _kill_scope(instance_id: str) -> instance_pb2.KillSwitchScope:
    return instance_pb2.KillSwitchScope(instance_id=instance_id)


def _signal() -> order_pb2.PublishSignalRequest:
    request = order_pb2.PublishSignalRequest(
        source="s", symbol="EURUSD", side=common_pb2.SIDE_BUY, volume=0.01, nonce="n" * 16
    )
    request.timestamp.GetCurrentTime()
    request.signature = "0" * 64
    return request


# The throwaway key's id, known once the world is made (RevokeApiKey's request).
KEY_IDS: dict[str, str] = {}
POSITION: dict[str, int] = {}

TABLE: dict[str, Row] = {
    INS + "CreateInstance": Row(
        lambda i, w: instance_pb2.CreateInstanceRequest(
            instance_id=i, owner=ALICE, config=common_pb2.InstanceConfig(tick_rate=1)
        ),
        "a-new",
        ADMIN,
    ),
    INS + "GetInstance": Row(
        lambda i, w: instance_pb2.GetInstanceRequest(instance_id=i), "a1", READ
    ),
    INS + "ListInstances": Row(lambda i, w: instance_pb2.ListInstancesRequest(), "a1", ANYONE),
    INS + "StopInstance": Row(
        lambda i, w: instance_pb2.StopInstanceRequest(instance_id=i), "a-life", ADMIN
    ),
    INS + "StartInstance": Row(
        lambda i, w: instance_pb2.StartInstanceRequest(instance_id=i), "a-life", ADMIN
    ),
    INS + "RestartInstance": Row(
        lambda i, w: instance_pb2.RestartInstanceRequest(instance_id=i), "a-life", ADMIN
    ),
    INS + "DeleteInstance": Row(
        lambda i, w: instance_pb2.DeleteInstanceRequest(instance_id=i), "a-del", ADMIN
    ),
    # A sim instance has no credentials: a caller allowed to try learns so.
    INS + "UpdateCredentials": Row(
        lambda i, w: instance_pb2.UpdateCredentialsRequest(instance_id=i, password="secret-1"),
        "a1",
        (DENIED, FAILED, NOT_FOUND, FAILED),
    ),
    INS + "UpdateInstanceConfig": Row(
        lambda i, w: instance_pb2.UpdateInstanceConfigRequest(
            instance_id=i, config=common_pb2.InstanceConfig(trading_state=ACTIVE)
        ),
        "a1",
        TRADE,
    ),
    INS + "SetTradingState": Row(
        lambda i, w: instance_pb2.SetTradingStateRequest(instance_id=i, trading_state=ACTIVE),
        "a1",
        TRADE,
    ),
    INS + "EngageKillSwitch": Row(
        lambda i, w: instance_pb2.EngageKillSwitchRequest(scope=_kill_scope(i)), "a-kill", TRADE
    ),
    INS + "ReleaseKillSwitch": Row(
        lambda i, w: instance_pb2.ReleaseKillSwitchRequest(scope=_kill_scope(i)), "a-kill", TRADE
    ),
    INS + "DeployExpert": Row(
        lambda i, w: instance_pb2.DeployExpertRequest(
            instance_id=i,
            expert_name="Probe",
            expert_file=b"ex5",
            timeout=duration_pb2.Duration(),
        ),
        "a1",
        ADMIN,
    ),
    INS + "GetInstanceStats": Row(
        lambda i, w: instance_pb2.GetInstanceStatsRequest(instance_id=i), "a1", READ
    ),
    INS + "GetSystemStats": Row(lambda i, w: instance_pb2.GetSystemStatsRequest(), "a1", ADMIN),
    ORD + "PlaceOrder": Row(lambda i, w: market(i, f"po-{w}"), "a1", TRADE),
    ORD + "ModifyOrder": Row(
        lambda i, w: order_pb2.ModifyOrderRequest(
            instance_id=i, client_order_id=f"mod-{w}", price=PRICE_FAR + 0.01
        ),
        "a1",
        TRADE,
    ),
    ORD + "CancelOrder": Row(
        lambda i, w: order_pb2.CancelOrderRequest(instance_id=i, client_order_id=f"cancel-{w}"),
        "a1",
        TRADE,
    ),
    ORD + "ModifyPosition": Row(
        lambda i, w: order_pb2.ModifyPositionRequest(
            instance_id=i,
            position_id=POSITION["id"],
            stop_loss=PRICE_FAR + (0.01 if w == "admin" else 0.0),
        ),
        "a1",
        TRADE,
    ),
    ORD + "ClosePosition": Row(
        lambda i, w: order_pb2.ClosePositionRequest(
            instance_id=i, position_id=POSITION["id"], volume=0.01, client_order_id=f"close-{w}"
        ),
        "a1",
        TRADE,
    ),
    ORD + "CloseAll": Row(
        lambda i, w: order_pb2.CloseAllRequest(instance_id=i, symbol="GBPUSD"), "a1", TRADE
    ),
    ORD + "GetOrder": Row(
        lambda i, w: order_pb2.GetOrderRequest(instance_id=i, client_order_id="filled-0"),
        "a1",
        READ,
    ),
    ORD + "ListOrders": Row(lambda i, w: order_pb2.ListOrdersRequest(instance_id=i), "a1", READ),
    ORD + "ListPositions": Row(
        lambda i, w: order_pb2.ListPositionsRequest(instance_id=i), "a1", READ
    ),
    ORD + "GetAccount": Row(lambda i, w: order_pb2.GetAccountRequest(instance_id=i), "a1", READ),
    ORD + "ListDeals": Row(lambda i, w: order_pb2.ListDealsRequest(instance_id=i), "a1", READ),
    ORD + "ListTicks": Row(
        lambda i, w: order_pb2.ListTicksRequest(instance_id=i, symbol="EURUSD", count=1),
        "a1",
        NO_TICKS,
    ),
    ORD + "ExportHistory": Row(
        # Outside the export directory: refused once the caller may call it (nothing is
        # written).
        lambda i, w: order_pb2.ExportHistoryRequest(out_dir=f"../export-{w}"),
        "a1",
        (DENIED, DENIED, DENIED, grpc.StatusCode.INVALID_ARGUMENT),
    ),
    ORD + "CheckOrder": Row(
        lambda i, w: order_pb2.CheckOrderRequest(order=market(i, f"co-{w}")), "a1", TRADE
    ),
    ORD + "OrderSession": Row(
        lambda i, w: order_pb2.OrderSessionRequest(place=market(i, f"os-{w}")), "a1", TRADE
    ),
    # Relations named after their master and caller; a magic filter no order matches.
    ORD + "CreateCopyRelation": Row(
        lambda i, w: order_pb2.CreateCopyRelationRequest(
            relation=order_pb2.CopyRelation(
                relation_id=f"{i}-{w}",
                master_instance_id=i,
                follower_instance_id="a-kill",
                volume_mode=order_pb2.COPY_VOLUME_MODE_MULTIPLIER,
                multiplier=1.0,
                magics=[424242],
            )
        ),
        "a1",
        TRADE,
    ),
    ORD + "ListCopyRelations": Row(
        lambda i, w: order_pb2.ListCopyRelationsRequest(master_instance_id=i), "a1", READ
    ),
    ORD + "GetCopyRelation": Row(
        lambda i, w: order_pb2.GetCopyRelationRequest(relation_id=f"{i}-admin"), "a1", READ
    ),
    ORD + "DeleteCopyRelation": Row(
        lambda i, w: order_pb2.DeleteCopyRelationRequest(
            relation_id=f"{i}-{w}" if w in ("trader", "admin") else f"{i}-admin"
        ),
        "a1",
        TRADE,
    ),
    # Past the gate (any trader), an unknown source's signal is UNAUTHENTICATED: the source's
    # HMAC is the signal's credential (test_e2e_signals.py).
    ORD + "PublishSignal": Row(
        lambda i, w: _signal(), "a1", (DENIED, UNAUTHENTICATED, UNAUTHENTICATED, UNAUTHENTICATED)
    ),
    STR + "StreamTicks": Row(
        lambda i, w: stream_pb2.StreamTicksRequest(instance_ids=[i]), "a1", READ
    ),
    STR + "StreamExecutions": Row(
        lambda i, w: stream_pb2.StreamExecutionsRequest(instance_id=i), "a1", READ
    ),
    STR + "StreamAccount": Row(
        lambda i, w: stream_pb2.StreamAccountRequest(
            instance_id=i, interval=duration_pb2.Duration(nanos=50_000_000)
        ),
        "a1",
        READ,
    ),
    STR + "StreamInstanceEvents": Row(
        lambda i, w: stream_pb2.StreamInstanceEventsRequest(instance_ids=[i]), "a1", READ
    ),
    AUT + "CreateApiKey": Row(
        lambda i, w: auth_pb2.CreateApiKeyRequest(role=auth_pb2.ROLE_VIEWER, owner=ALICE),
        "a1",
        ADMIN,
    ),
    AUT + "ListApiKeys": Row(lambda i, w: auth_pb2.ListApiKeysRequest(), "a1", ADMIN),
    AUT + "RevokeApiKey": Row(
        lambda i, w: auth_pb2.RevokeApiKeyRequest(key_id=KEY_IDS["throwaway"]), "a1", ADMIN
    ),
    AUT + "WhoAmI": Row(lambda i, w: auth_pb2.WhoAmIRequest(), "a1", ANYONE),
    AUT + "ListAuditRecords": Row(
        lambda i, w: auth_pb2.ListAuditRecordsRequest(instance_id=i), "a1", ADMIN
    ),
    MKT + "ListSymbols": Row(lambda i, w: market_pb2.ListSymbolsRequest(instance_id=i), "a1", READ),
    MKT + "GetSymbol": Row(
        lambda i, w: market_pb2.GetSymbolRequest(instance_id=i, symbol="EURUSD"), "a1", READ
    ),
    MKT + "CalcMargin": Row(
        lambda i, w: market_pb2.CalcMarginRequest(
            instance_id=i, symbol="EURUSD", side=common_pb2.SIDE_BUY, volume=0.1
        ),
        "a1",
        READ,
    ),
    MKT + "CalcProfit": Row(
        lambda i, w: market_pb2.CalcProfitRequest(
            instance_id=i,
            symbol="EURUSD",
            side=common_pb2.SIDE_BUY,
            volume=0.1,
            price_open=1.1,
            price_close=1.2,
        ),
        "a1",
        READ,
    ),
    MKT + "GetTerminalInfo": Row(
        lambda i, w: market_pb2.GetTerminalInfoRequest(instance_id=i), "a1", READ
    ),
    MKT + "GetRates": Row(
        lambda i, w: market_pb2.GetRatesRequest(
            instance_id=i, symbol="EURUSD", timeframe=market_pb2.TIMEFRAME_M1, count=10
        ),
        "a1",
        READ,
    ),
    MKT + "GetTicks": Row(
        lambda i, w: market_pb2.GetTicksRequest(
            instance_id=i,
            symbol="EURUSD",
            date_from=Timestamp(seconds=1),
            count=10,
            flags=market_pb2.COPY_TICKS_ALL,
        ),
        "a1",
        READ,
    ),
    MKT + "StreamBook": Row(
        lambda i, w: market_pb2.StreamBookRequest(instance_id=i, symbol="EURUSD"),
        "a1",
        READ,
    ),
}


def services() -> list[ServiceDescriptor]:
    """Every service of every generated mt5exec.v1 module."""
    found = []
    for module in pkgutil.iter_modules(mt5exec.v1.__path__):
        if module.name.endswith("_pb2"):
            descriptor = import_module(f"mt5exec.v1.{module.name}").DESCRIPTOR
            found += list(descriptor.services_by_name.values())
    return found


def methods() -> dict[str, MethodDescriptor]:
    return {f"{s.full_name}/{m.name}": m for s in services() for m in s.methods}


# -- calling ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    code: grpc.StatusCode
    reason: str = ""
    message: str = ""


def _failed(e: grpc.RpcError) -> Outcome:
    assert isinstance(e, grpc.Call)
    return Outcome(e.code(), error_info(e).reason, e.details() or "")


def call(
    world: World, who: str, method: MethodDescriptor, request: Any, poke: bool = True
) -> Outcome:
    """The outcome of one call: its status, or for a stream the first message's (a stream
    that sends one is OK; an OrderSession's first answer carries its own code)."""
    channel = world.channels[who]
    path = f"/{method.containing_service.full_name}/{method.name}"
    response = message_factory.GetMessageClass(method.output_type)
    kwargs = {
        "request_serializer": type(request).SerializeToString,
        "response_deserializer": response.FromString,
    }
    try:
        if method.client_streaming:
            stream = channel.stream_stream(path, **kwargs)(iter([request]), timeout=60)
            try:
                first = next(stream)
            finally:
                stream.cancel()
            if first.code:
                return Outcome(_BY_NUMBER[first.code], first.reason, first.message)
            return Outcome(OK)
        if method.server_streaming:
            stream = channel.unary_stream(path, **kwargs)(request, timeout=60)
            try:
                stream.initial_metadata()
                if poke and method.name == "StreamInstanceEvents":
                    _instance_event(world, request.instance_ids[0])
                next(stream)
            finally:
                stream.cancel()
            return Outcome(OK)
        channel.unary_unary(path, **kwargs)(request, timeout=60)
        return Outcome(OK)
    except grpc.RpcError as e:
        return _failed(e)


def _instance_event(world: World, instance_id: str) -> None:
    """Makes the instance publish events (its trading state there and back)."""
    stub = world.server.instances
    for state in (common_pb2.TRADING_STATE_REDUCE_ONLY, ACTIVE):
        request = instance_pb2.SetTradingStateRequest(instance_id=instance_id, trading_state=state)
        stub.SetTradingState(request, timeout=30)


# -- the tests -------------------------------------------------------------------------------


def test_the_table_names_every_rpc() -> None:
    found = set(methods())
    assert not found - set(TABLE), f"RPCs without a row: {sorted(found - set(TABLE))}"
    assert not set(TABLE) - found, f"rows of RPCs that are gone: {sorted(set(TABLE) - found)}"


def test_every_rpc_for_every_caller(world: World) -> None:
    KEY_IDS.update(world.key_ids)
    POSITION["id"] = world.position_id
    by_name = methods()
    wrong = []
    for name, row in TABLE.items():
        method = by_name[name]
        for who, reason in REFUSED.items():
            got = call(world, who, method, row.build(row.instance, who))
            if (got.code, got.reason) != (UNAUTHENTICATED, reason):
                wrong.append(f"{name} as {who}: {got}, expected UNAUTHENTICATED {reason}")
        for who, expected in zip(ALLOWED, row.codes, strict=True):
            got = call(world, who, method, row.build(row.instance, who))
            if got.code != expected:
                wrong.append(f"{name} as {who}: {got}, expected {expected.name}")
            elif expected == DENIED and got.reason != "ROLE_FORBIDDEN":
                wrong.append(f"{name} as {who}: {got}, expected reason ROLE_FORBIDDEN")
    assert wrong == [], "\n".join(wrong)


def test_another_owners_instance_is_exactly_one_that_does_not_exist(world: World) -> None:
    """For every RPC where bob's trader gets NOT_FOUND for alice's instance, the same call
    naming an instance that does not exist gets the same status, reason and message."""
    KEY_IDS.update(world.key_ids)
    POSITION["id"] = world.position_id
    by_name = methods()
    compared = 0
    for name, row in TABLE.items():
        if row.codes[ALLOWED.index("other")] != NOT_FOUND:
            continue
        method = by_name[name]
        theirs = call(world, "other", method, row.build(row.instance, "other"), poke=False)
        nothing = call(world, "other", method, row.build("zz-none", "other"), poke=False)
        assert theirs.code == nothing.code == NOT_FOUND, name
        # Get/DeleteCopyRelation name a relation: another owner's is one that does not exist.
        by_relation = "relation_id" in row.build("", "").DESCRIPTOR.fields_by_name
        expected = "RELATION_NOT_FOUND" if by_relation else "INSTANCE_NOT_FOUND"
        assert theirs.reason == nothing.reason == expected, name
        assert theirs.message.replace(row.instance, "X") == nothing.message.replace(
            "zz-none", "X"
        ), name
        compared += 1
    assert compared >= 20


def test_list_instances_shows_the_owners_own(world: World) -> None:
    def listed(who: str, owner: str = "") -> set[str]:
        stub = instance_pb2_grpc.InstanceServiceStub(world.channels[who])
        request = instance_pb2.ListInstancesRequest(owner=owner)
        return {i.instance_id for i in stub.ListInstances(request, timeout=30).instances}

    everything = listed("admin")
    assert {"a1", "a-kill", "b1"} <= everything
    alices = listed("admin", ALICE)
    assert "b1" not in alices
    assert listed("viewer") == listed("trader") == alices
    assert listed("other") == {"b1"}
    assert listed("viewer", "bob") == set()


def _ticks_of(world: World, who: str, wanted: int) -> list[str]:
    """The instance ids of the first ``wanted`` ticks of a StreamTicks with no instance ids."""
    stub = stream_pb2_grpc.StreamServiceStub(world.channels[who])
    stream = stub.StreamTicks(stream_pb2.StreamTicksRequest(), timeout=60)
    ids: list[str] = []
    try:
        for message in stream:
            ids += [t.instance_id for t in message.ticks]
            if len(ids) >= wanted:
                break
    finally:
        stream.cancel()
    return ids


def test_stream_ticks_without_ids_is_the_owners_instances(world: World) -> None:
    # b1 ticks (the admin sees it), but alice's trader and bob's see their owner's only.
    admin_seen: set[str] = set()
    deadline = time.monotonic() + 60
    while "b1" not in admin_seen:
        assert time.monotonic() < deadline, "no tick of b1 reached the admin"
        admin_seen |= set(_ticks_of(world, "admin", 50))
    alices = {
        i.instance_id
        for i in world.server.instances.ListInstances(
            instance_pb2.ListInstancesRequest(owner=ALICE), timeout=30
        ).instances
    }
    seen = _ticks_of(world, "trader", 200)
    assert set(seen) <= alices and "a1" in seen
    assert set(_ticks_of(world, "other", 50)) == {"b1"}


def test_a_principal_without_instances_streams_nothing(world: World) -> None:
    token = (
        world.stub("admin")
        .CreateApiKey(
            auth_pb2.CreateApiKeyRequest(role=auth_pb2.ROLE_VIEWER, owner="carol"), timeout=30
        )
        .token
    )
    with world.server.connect(token) as channel:
        stream = stream_pb2_grpc.StreamServiceStub(channel).StreamTicks(
            stream_pb2.StreamTicksRequest(), timeout=2
        )
        got = list(_until_status(stream))
    assert got == [grpc.StatusCode.DEADLINE_EXCEEDED]


def _until_status(stream: Any) -> Iterator[Any]:
    """The messages of a stream, then its status code."""
    try:
        yield from stream
    except grpc.RpcError as e:
        yield e.code()


def test_kill_switch_owner_and_global_scopes_need_an_admin(world: World) -> None:
    trader = world.channels["trader"]
    stub = instance_pb2_grpc.InstanceServiceStub(trader)
    for scope in (
        instance_pb2.KillSwitchScope(owner=ALICE),
        instance_pb2.KillSwitchScope(**{"global": True}),
    ):
        for rpc, request in (
            (stub.EngageKillSwitch, instance_pb2.EngageKillSwitchRequest(scope=scope)),
            (stub.ReleaseKillSwitch, instance_pb2.ReleaseKillSwitchRequest(scope=scope)),
        ):
            with pytest.raises(grpc.RpcError) as refused:
                rpc(request, timeout=30)
            assert refused.value.code() == DENIED
            assert error_info(refused.value).reason == "ROLE_FORBIDDEN"
    # An admin may (an owner without instances: nothing else is halted).
    nobody = instance_pb2.KillSwitchScope(owner="nobody")
    admin = world.server.instances
    engaged = admin.EngageKillSwitch(instance_pb2.EngageKillSwitchRequest(scope=nobody), timeout=30)
    assert list(engaged.instance_ids) == []
    admin.ReleaseKillSwitch(instance_pb2.ReleaseKillSwitchRequest(scope=nobody), timeout=30)


def _who(world: World, token: str) -> Outcome | auth_pb2.WhoAmIResponse:
    with world.server.connect(token) as channel:
        try:
            return auth_pb2_grpc.AuthServiceStub(channel).WhoAmI(
                auth_pb2.WhoAmIRequest(), timeout=30
            )
        except grpc.RpcError as e:
            return _failed(e)


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_jwts(world: World) -> None:
    now = int(time.time())
    claims = {"sub": "ops@alice", "role": "trader", "owner": ALICE, "exp": now + 600}
    # Accepted: HS256 with the secret, EdDSA with the PEM's key, RS256 with the JWKS's.
    good = [
        jwt.encode(claims, world.hs_secret, algorithm="HS256"),
        jwt.encode(claims, world.ed_key, algorithm="EdDSA"),
        jwt.encode(claims, world.rsa_key, algorithm="RS256", headers={"kid": "r1"}),
        # Expired within the leeway (30 s by default).
        jwt.encode(claims | {"exp": now - 5}, world.hs_secret, algorithm="HS256"),
    ]
    for token in good:
        who = _who(world, token)
        assert isinstance(who, auth_pb2.WhoAmIResponse), who
        assert (who.subject, who.role, who.owner, who.kind) == (
            "ops@alice",
            auth_pb2.ROLE_TRADER,
            ALICE,
            "jwt",
        )
    # Refused.
    other_ed = ed25519.Ed25519PrivateKey.generate()
    other_rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = world.ed_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    unsigned = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}."
    # HS256 signed with the public key as its secret (the classic confusion).
    head = f"{_b64({'alg': 'HS256', 'typ': 'JWT'})}.{_b64(claims)}"
    confused = f"{head}.{_hs256_signature(public_pem, head)}"
    bad = {
        "another secret": (jwt.encode(claims, os.urandom(32), algorithm="HS256"), "TOKEN_INVALID"),
        "another Ed25519 key": (jwt.encode(claims, other_ed, algorithm="EdDSA"), "TOKEN_INVALID"),
        "another RSA key": (
            jwt.encode(claims, other_rsa, algorithm="RS256", headers={"kid": "r1"}),
            "TOKEN_INVALID",
        ),
        "alg none": (unsigned, "TOKEN_INVALID"),
        "HS256 with the public key": (confused, "TOKEN_INVALID"),
        "RS384 (not configured)": (
            jwt.encode(claims, world.rsa_key, algorithm="RS384"),
            "TOKEN_INVALID",
        ),
        "expired beyond the leeway": (
            jwt.encode(claims | {"exp": now - 3600}, world.hs_secret, algorithm="HS256"),
            "TOKEN_EXPIRED",
        ),
        "no exp": (
            jwt.encode({k: v for k, v in claims.items() if k != "exp"}, world.hs_secret),
            "TOKEN_INVALID",
        ),
        "a trader without owner": (
            hs256(world.hs_secret, sub="x", role="trader"),
            "TOKEN_INVALID",
        ),
        "an unknown role": (
            hs256(world.hs_secret, sub="x", role="root", owner=ALICE),
            "TOKEN_INVALID",
        ),
    }
    for what, (token, reason) in bad.items():
        got = _who(world, token)
        assert isinstance(got, Outcome), what
        assert (got.code, got.reason) == (UNAUTHENTICATED, reason), (what, got)


def _hs256_signature(key: bytes, head: str) -> str:
    import hashlib
    import hmac

    digest = hmac.new(key, head.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def test_malformed_credentials(world: World) -> None:
    for metadata, reason in (
        ((("authorization", "Basic dXNlcjpwYXNz"),), "TOKEN_INVALID"),
        ((("authorization", "Bearer"),), "TOKEN_INVALID"),
        (bearer("mt5x_000000000000_" + "A" * 43), "TOKEN_INVALID"),
        (bearer(world.tokens["trader"][:-1] + "x"), "TOKEN_INVALID"),
        (bearer("a.b.c"), "TOKEN_INVALID"),
    ):
        with pytest.raises(grpc.RpcError) as refused:
            world.stub("none").WhoAmI(auth_pb2.WhoAmIRequest(), metadata=metadata, timeout=30)
        assert refused.value.code() == UNAUTHENTICATED
        assert error_info(refused.value).reason == reason


def test_api_keys_are_stored_hashed(world: World) -> None:
    admin = world.stub("admin")
    created = admin.CreateApiKey(
        auth_pb2.CreateApiKeyRequest(role=auth_pb2.ROLE_TRADER, owner=ALICE, label="hashed"),
        timeout=30,
    )
    token = created.token
    assert token.startswith(f"mt5x_{created.key.key_id}_")
    listed = admin.ListApiKeys(auth_pb2.ListApiKeysRequest(), timeout=30).keys
    assert created.key.key_id in {k.key_id for k in listed}
    assert token not in str(listed)
    secret = token.rsplit("_", 1)[1].encode()
    data_dir = world.server.data_dir
    for path in [p for p in data_dir.rglob("*") if p.is_file()]:
        content = path.read_bytes()
        assert secret not in content, f"{path} holds an API key"
        if path.name != "admin.key":
            assert world.tokens["admin"].encode() not in content, f"{path} holds the admin key"
    store = data_dir / "auth" / "api_keys.json"
    assert (store.stat().st_mode & 0o777) == 0o600
    assert ((data_dir / "admin.key").stat().st_mode & 0o777) == 0o600
    assert ((data_dir / "auth" / "hmac.key").stat().st_mode & 0o777) == 0o600


def _read_until_end(stream: Any, ended: dict[str, Any]) -> None:
    try:
        for _ in stream:
            ended.setdefault("first", time.monotonic())
    except grpc.RpcError as e:
        ended["error"] = e
    ended["at"] = time.monotonic()


def test_revocation_ends_the_keys_streams(world: World) -> None:
    admin = world.stub("admin")
    made = admin.CreateApiKey(
        auth_pb2.CreateApiKeyRequest(role=auth_pb2.ROLE_TRADER, owner=ALICE), timeout=30
    )
    channel = world.server.connect(made.token)
    stop = threading.Event()
    streams = stream_pb2_grpc.StreamServiceStub(channel)
    calls = {
        "ticks": streams.StreamTicks(stream_pb2.StreamTicksRequest(instance_ids=["a1"])),
        # A stream the servicer makes of its own (not an engine subscription).
        "account": streams.StreamAccount(
            stream_pb2.StreamAccountRequest(
                instance_id="a1", interval=duration_pb2.Duration(seconds=1)
            )
        ),
        # One whose client sends an order, then nothing: the server waits for its input.
        "session": channel.stream_stream(
            "/mt5exec.v1.OrderService/OrderSession",
            request_serializer=order_pb2.OrderSessionRequest.SerializeToString,
            response_deserializer=order_pb2.OrderSessionResponse.FromString,
        )(_one_order_then_wait(stop)),
    }
    results: dict[str, dict[str, Any]] = {name: {} for name in calls}
    readers = [
        threading.Thread(target=_read_until_end, args=(stream, results[name]), daemon=True)
        for name, stream in calls.items()
    ]
    for reader in readers:
        reader.start()
    # Each is open and has sent a message.
    deadline = time.monotonic() + 60
    while not all("first" in r for r in results.values()):
        assert time.monotonic() < deadline, f"not every stream sent: {results}"
        time.sleep(0.01)
    revoked_at = time.monotonic()
    admin.RevokeApiKey(auth_pb2.RevokeApiKeyRequest(key_id=made.key.key_id), timeout=30)
    for reader in readers:
        reader.join(30)
    try:
        for name, result in results.items():
            assert "error" in result, f"{name} did not end"
            error = result["error"]
            assert error.code() == UNAUTHENTICATED, (name, error)
            assert error_info(error).reason == "TOKEN_REVOKED", name
            print(f"{name}: ended {result['at'] - revoked_at:.3f} s after the revocation")
        # And the next call is refused.
        with pytest.raises(grpc.RpcError) as refused:
            auth_pb2_grpc.AuthServiceStub(channel).WhoAmI(auth_pb2.WhoAmIRequest(), timeout=30)
        assert error_info(refused.value).reason == "TOKEN_REVOKED"
    finally:
        stop.set()
        for stream in calls.values():
            stream.cancel()
        channel.close()


def _one_order_then_wait(stop: threading.Event) -> Iterator[order_pb2.OrderSessionRequest]:
    yield order_pb2.OrderSessionRequest(place=market("a1", "revoked-session"))
    stop.wait()


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mt5exec", "keys", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_keys_from_the_command_line(world: World) -> None:
    data_dir = str(world.server.data_dir)
    made = _cli("create", "--role", "viewer", "--owner", ALICE, "--data-dir", data_dir)
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    who = _who(world, token)
    assert isinstance(who, auth_pb2.WhoAmIResponse), who
    assert (who.role, who.owner) == (auth_pb2.ROLE_VIEWER, ALICE)
    listed = _cli("list", "--data-dir", data_dir)
    assert who.subject in listed.stdout and token not in listed.stdout
    # A stream of the key, open when the command revokes it, ends.
    channel = world.server.connect(token)
    stream = stream_pb2_grpc.StreamServiceStub(channel).StreamTicks(
        stream_pb2.StreamTicksRequest(instance_ids=["a1"]), timeout=60
    )
    next(stream)
    ended: dict[str, Any] = {}
    reader = threading.Thread(target=_read_until_end, args=(stream, ended), daemon=True)
    reader.start()
    assert _cli("revoke", who.subject, "--data-dir", data_dir).returncode == 0
    reader.join(30)
    channel.close()
    assert "error" in ended, "the stream of a key revoked on disk did not end"
    assert error_info(ended["error"]).reason == "TOKEN_REVOKED"
    deadline = time.monotonic() + 30
    while isinstance(got := _who(world, token), auth_pb2.WhoAmIResponse):
        assert time.monotonic() < deadline, "the server still takes a key revoked on disk"
        time.sleep(0.05)
    assert (got.code, got.reason) == (UNAUTHENTICATED, "TOKEN_REVOKED")
    refused = _cli("create", "--role", "trader", "--data-dir", data_dir)
    assert refused.returncode == 2 and "owner" in refused.stderr


def test_health_and_reflection_need_no_token(world: World) -> None:
    """They tell whether the server serves and the API's schema: nothing of any instance."""
    none = world.channels["none"]
    check = health_pb2_grpc.HealthStub(none).Check(health_pb2.HealthCheckRequest(), timeout=30)
    assert check.status == health_pb2.HealthCheckResponse.SERVING
    info = none.stream_stream(
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )
    (listed,) = info(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=30)
    names = {s.name for s in listed.list_services_response.service}
    assert "mt5exec.v1.AuthService" in names


def test_a_stream_ends_when_its_jwt_expires(world: World) -> None:
    # Expired 20 s ago: still good for the last 10 s of the 30 s leeway, then the stream ends.
    claims = {"sub": "ops@alice", "role": "trader", "owner": ALICE}
    token = jwt.encode(claims | {"exp": int(time.time()) - 20}, world.hs_secret, algorithm="HS256")
    streams = stream_pb2_grpc.StreamServiceStub(world.server.connect(token))
    result: dict[str, Any] = {}
    reader = threading.Thread(
        target=_read_until_end,
        args=(streams.StreamTicks(stream_pb2.StreamTicksRequest(instance_ids=["a1"])), result),
        daemon=True,
    )
    reader.start()
    reader.join(60)
    assert not reader.is_alive(), "the stream outlived its JWT"
    assert "first" in result, f"the stream was refused at its start: {result}"
    error = result["error"]
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED, error
    assert error_info(error).reason == "TOKEN_EXPIRED"
