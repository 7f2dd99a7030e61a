"""The audit and the abuse limits, end to end on the real server: every mutating call is in
the history's ``audit`` table and in a JSON line of the ``mt5exec.audit`` log, secrets
redacted, refusals with their code, reads not at all, nothing lost through a full disk; a
principal over its call rate is RESOURCE_EXHAUSTED with RetryInfo while another is not; failed
authentications are counted in /metrics and, past their limit, throttled per peer address
while a valid token from that address still passes. The limits are configured so that counts
decide (a bucket that does not refill within the test), never timing."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import grpc
import pytest
from google.protobuf import message_factory
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from tests.e2e.test_e2e_auth_matrix import services
from tests.e2e.test_e2e_vault import (
    NEW_PASSWORD,
    PASSWORD,
    Node,
    create_mt5,
    duckdb_values_holding,
    files_holding,
)
from tests.e2e.test_history_disk_full import history_failures
from tests.support import BULK_RISK, create_sim, error_info, market, wait_until
from tests.tmpfs import fill, small_disk

from mt5exec.auth import audit, audit_records, rules
from mt5exec.auth.limits import Limits, TokenBuckets, peer_address
from mt5exec.auth.principal import Principal, Role
from mt5exec.config import AuthConfig
from mt5exec.errors import MT5ExecError
from mt5exec.testing import ServerProcess
from mt5exec.v1 import (
    auth_pb2,
    auth_pb2_grpc,
    common_pb2,
    instance_pb2,
    instance_pb2_grpc,
    order_pb2,
    order_pb2_grpc,
    stream_pb2,
    stream_pb2_grpc,
)

__all__ = ["small_disk"]  # the fixture

INS, ORD, AUT = "mt5exec.v1.InstanceService/", "mt5exec.v1.OrderService/", "mt5exec.v1.AuthService/"


def audit_lines(data: Path) -> list[dict[str, Any]]:
    """The JSON objects of the server's mt5exec.audit log lines."""
    marker = " mt5exec.audit: "
    text = (data / "server.log").read_text(errors="replace")
    return [json.loads(line.split(marker, 1)[1]) for line in text.splitlines() if marker in line]


def audit_rows(db_path: Path) -> list[dict[str, Any]]:
    """The audit table, oldest first (read once the server has stopped)."""
    with duckdb.connect(str(db_path), read_only=True) as db:
        cursor = db.execute(f"SELECT {', '.join(audit_records.COLUMNS)} FROM audit ORDER BY id")
        return [dict(zip(audit_records.COLUMNS, row, strict=True)) for row in cursor.fetchall()]


def listed(server: ServerProcess, **filters: Any) -> list[auth_pb2.AuditRecord]:
    """Every record ListAuditRecords gives, page by page (newest first)."""
    records: list[auth_pb2.AuditRecord] = []
    token = ""
    while True:
        request = auth_pb2.ListAuditRecordsRequest(page_size=3, page_token=token, **filters)
        page = server.auth.ListAuditRecords(request, timeout=30)
        records += page.records
        token = page.next_page_token
        if not token:
            return records


def refused(call: Callable[[], Any]) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value


def retry_info(error: grpc.RpcError) -> error_details_pb2.RetryInfo | None:
    assert isinstance(error, grpc.Call)
    status = rpc_status.from_call(error)
    assert status is not None
    for detail in status.details:
        if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            info = error_details_pb2.RetryInfo()
            detail.Unpack(info)
            return info
    return None


# -- what is audited ----------------------------------------------------------------------


def test_every_rpc_is_classified_and_no_read_of_a_viewer_is_audited() -> None:
    methods = {
        f"{service.full_name}/{method.name}" for service in services() for method in service.methods
    }
    assert set(audit.KINDS) == methods, "classify every RPC in mt5exec.auth.audit.KINDS"
    for name in methods:
        # What a viewer may call changes nothing.
        if rules.rule(name).role is Role.VIEWER:
            assert audit.kind(name) is audit.Kind.READ, name
    assert audit.kind(ORD + "OrderSession") is audit.Kind.SESSION
    assert audit.kind(ORD + "PlaceOrder") is audit.Kind.CALL


def test_a_record_has_its_secrets_redacted_and_its_bytes_summarised() -> None:
    request = instance_pb2.CreateInstanceRequest(instance_id="x", password="hunter2-Pa55")
    sent: list[bytes] = []

    def sink(payload: bytes) -> bool:
        sent.append(payload)
        return True

    auditor = audit.Auditor(sink)
    create = next(m for s in services() for m in s.methods if m.name == "CreateInstance")
    deploy = next(m for s in services() for m in s.methods if m.name == "DeployExpert")
    principal = Principal("k1", Role.ADMIN, None, "api_key")

    class Peer:
        def peer(self) -> str:
            return "ipv4:10.0.0.7:5000"

    create_audit, deploy_audit = auditor.method(create), auditor.method(deploy)
    assert create_audit is not None and deploy_audit is not None
    create_audit.record(principal, Peer(), request, grpc.StatusCode.OK)
    expert = message_factory.GetMessageClass(deploy.input_type)(
        instance_id="x", expert_file=b"\x00" * 5000
    )
    deploy_audit.record(principal, Peer(), expert, grpc.StatusCode.PERMISSION_DENIED, "NO")
    assert request.password == "hunter2-Pa55"  # the servicer's request is left alone
    assert all(b"hunter2" not in payload for payload in sent)
    (row, line), (deploy_row, _) = (audit_records.describe(p) for p in sent)
    assert "hunter2" not in line and "hunter2" not in str(row)
    assert json.loads(line)["request"] == {"instance_id": "x", "password": "[REDACTED]"}
    assert json.loads(line)["peer"] == "ipv4:10.0.0.7:5000"
    assert json.loads(deploy_row[12])["expert_file"]["bytes"] == 5000
    assert deploy_row[10:12] == ("PERMISSION_DENIED", "NO")


def test_rate_limit_buckets_and_peer_throttle_count_without_a_clock() -> None:
    buckets = TokenBuckets(rate=2.0, burst=3)
    assert [buckets.take("a", 0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("a", 0.0) == 0.5  # the next token in half a second
    assert buckets.take("b", 0.0) == 0.0  # another key: its own bucket
    assert buckets.take("a", 0.5) == 0.0
    assert peer_address("ipv4:10.0.0.7:51234") == "ipv4:10.0.0.7"
    assert peer_address("ipv6:[::1]:51234") == "ipv6:[::1]"

    now = [0.0]
    limits = Limits(
        AuthConfig(peer_failures=2, peer_failures_window_s=60, peer_cooldown_s=30),
        clock=lambda: now[0],
    )

    class Peer:
        def __init__(self, port: int) -> None:
            self.port = port

        def peer(self) -> str:
            return f"ipv4:10.0.0.7:{self.port}"

    bad = MT5ExecError(grpc.StatusCode.UNAUTHENTICATED, "TOKEN_INVALID", "no")
    answers = [limits.refused(Peer(port), bad) for port in range(4)]
    assert [a.reason for a in answers] == ["TOKEN_INVALID"] * 2 + ["AUTH_THROTTLED"] * 2
    assert answers[2].retry_after_ms == 30_000
    now[0] = 30.0  # the cooldown is over, and the bucket has refilled one failure's worth
    assert limits.refused(Peer(9), bad).reason == "TOKEN_INVALID"


# -- end to end ----------------------------------------------------------------------------


def test_mutating_calls_are_audited_with_their_outcome_secrets_redacted_and_reads_not(
    tmp_path: Path,
) -> None:
    node = Node(tmp_path)
    server = node.start({"MT5EXEC_HISTORY_FLUSH_INTERVAL_MS": "50"})
    try:
        create_mt5(node, "acct")  # the admin, with the account's password
        create_sim(server, "sim", risk=BULK_RISK)
        keys = {
            who: server.auth.CreateApiKey(
                auth_pb2.CreateApiKeyRequest(role=role, owner=owner), timeout=30
            )
            for who, role, owner in (
                ("trader", auth_pb2.ROLE_TRADER, "default"),
                ("bob", auth_pb2.ROLE_TRADER, "bob"),
            )
        }
        trader_channel = server.connect(keys["trader"].token)
        bob_channel = server.connect(keys["bob"].token)
        trader = instance_pb2_grpc.InstanceServiceStub(trader_channel)
        trader_orders = order_pb2_grpc.OrderServiceStub(trader_channel)
        bob = instance_pb2_grpc.InstanceServiceStub(bob_channel)

        # Mutating calls of the trader: a password change (OK), a delete its role may not
        # make, and bob's attempt on an instance that is not his (as if it did not exist).
        node.broker_password("acct", NEW_PASSWORD)
        trader.UpdateCredentials(
            instance_pb2.UpdateCredentialsRequest(instance_id="acct", password=NEW_PASSWORD),
            timeout=30,
        )
        denied = refused(
            lambda: trader.DeleteInstance(
                instance_pb2.DeleteInstanceRequest(instance_id="acct"), timeout=30
            )
        )
        assert denied.code() == grpc.StatusCode.PERMISSION_DENIED
        hidden = refused(
            lambda: bob.SetTradingState(
                instance_pb2.SetTradingStateRequest(
                    instance_id="acct", trading_state=common_pb2.TRADING_STATE_REDUCE_ONLY
                ),
                timeout=30,
            )
        )
        assert hidden.code() == grpc.StatusCode.NOT_FOUND
        placed = trader_orders.PlaceOrder(market("sim", "a-1"), timeout=30).order
        assert placed.status == common_pb2.ORDER_STATUS_FILLED
        session = list(
            trader_orders.OrderSession(
                iter(
                    [order_pb2.OrderSessionRequest(place=market("sim", f"s-{n}")) for n in range(3)]
                ),
                timeout=30,
            )
        )
        assert len(session) == 3
        # Reads, a dry run, a stream, the caller's identity: none is audited.
        trader.GetInstance(instance_pb2.GetInstanceRequest(instance_id="acct"), timeout=30)
        trader.ListInstances(instance_pb2.ListInstancesRequest(), timeout=30)
        trader_orders.CheckOrder(
            order_pb2.CheckOrderRequest(order=market("sim", "dry")), timeout=30
        )
        trader_orders.ListOrders(order_pb2.ListOrdersRequest(instance_id="sim"), timeout=30)
        auth_pb2_grpc.AuthServiceStub(trader_channel).WhoAmI(auth_pb2.WhoAmIRequest(), timeout=30)
        events = stream_pb2_grpc.StreamServiceStub(trader_channel).StreamInstanceEvents(
            stream_pb2.StreamInstanceEventsRequest(instance_ids=["sim"]), timeout=30
        )
        events.initial_metadata()
        events.cancel()

        # The admin reads the trader's records (ListAuditRecords flushes first).
        trader_id = keys["trader"].key.key_id
        mine = listed(server, subject=trader_id)
        assert [(r.method, r.event, r.code, r.reason, r.instance_id) for r in reversed(mine)] == [
            (INS + "UpdateCredentials", "call", "OK", "", "acct"),
            (INS + "DeleteInstance", "call", "PERMISSION_DENIED", "ROLE_FORBIDDEN", "acct"),
            (ORD + "PlaceOrder", "call", "OK", "", "sim"),
            (ORD + "OrderSession", "session_open", "OK", "", ""),
            (ORD + "OrderSession", "session_end", "OK", "", ""),
        ]
        assert {(r.principal_kind, r.role, r.owner) for r in mine} == {
            ("api_key", auth_pb2.ROLE_TRADER, "default")
        }
        assert (mine[0].messages_in, mine[0].messages_out) == (3, 3)
        assert json.loads(mine[-1].request_json) == {
            "instance_id": "acct",
            "password": "[REDACTED]",
        }
        assert json.loads(mine[2].request_json)["client_order_id"] == "a-1"
        assert [(r.method, r.code) for r in listed(server, subject=keys["bob"].key.key_id)] == [
            (INS + "SetTradingState", "NOT_FOUND")
        ]
        assert [r.method for r in listed(server, instance_id="acct")] == [
            INS + "SetTradingState",
            INS + "DeleteInstance",
            INS + "UpdateCredentials",
            INS + "CreateInstance",
        ]
        trader_channel.close()
        bob_channel.close()
        node.stop()
    finally:
        if node.server is not None:
            node.server.kill()

    rows = audit_rows(node.data / "history.duckdb")
    lines = audit_lines(node.data)
    # The table and the log hold the same records; no read is among them.
    assert [r["id"] for r in rows] == [line["id"] for line in lines]
    audited = {r["method"] for r in rows}
    assert audited == {
        INS + "CreateInstance",
        AUT + "CreateApiKey",
        INS + "UpdateCredentials",
        INS + "DeleteInstance",
        INS + "SetTradingState",
        ORD + "PlaceOrder",
        ORD + "OrderSession",
    }
    created = next(r for r in rows if r["instance_id"] == "acct")
    assert json.loads(created["request"])["password"] == "[REDACTED]"
    assert (created["principal_kind"], created["role"], created["owner"]) == (
        "api_key",
        "admin",
        None,
    )
    line = next(line for line in lines if line["method"] == INS + "DeleteInstance")
    assert line["principal"] == {
        "kind": "api_key",
        "subject": keys["trader"].key.key_id,
        "role": "trader",
        "owner": "default",
    }
    assert (line["code"], line["reason"], line["instance_id"]) == (
        "PERMISSION_DENIED",
        "ROLE_FORBIDDEN",
        "acct",
    )
    # No password and no API key token anywhere: files (log, DuckDB, ...) and DuckDB values.
    secrets = [PASSWORD, NEW_PASSWORD, *(k.token for k in keys.values())]
    assert files_holding(node.data, secrets) == []
    assert duckdb_values_holding(node.data / "history.duckdb", secrets) == []


def test_audit_rows_written_while_the_history_disk_is_full_are_all_there_once_freed(
    tmp_path: Path, small_disk: Path
) -> None:
    data = tmp_path / "data"
    db = small_disk / "history.duckdb"
    env = {"MT5EXEC_HISTORY_PATH": str(db), "MT5EXEC_HISTORY_FLUSH_INTERVAL_MS": "50"}
    states = [common_pb2.TRADING_STATE_REDUCE_ONLY, common_pb2.TRADING_STATE_ACTIVE]
    calls = 0
    with ServerProcess(data, env=env) as server:
        create_sim(server, "full", risk=BULK_RISK)

        def change() -> None:
            nonlocal calls
            state = states[calls % 2]
            server.instances.SetTradingState(
                instance_pb2.SetTradingStateRequest(instance_id="full", trading_state=state),
                timeout=30,
            )
            calls += 1

        filler = fill(small_disk)

        def failing_twice() -> bool:
            change()
            return history_failures(data) >= 2

        wait_until("the history failed to write twice", failing_twice)
        for _ in range(5):
            change()
        filler.unlink()
        for _ in range(5):
            change()
        # Once freed, every record is there (the listing flushes first).
        wait_until(
            "every record in the audit table",
            lambda: len(listed(server, instance_id="full")) == calls + 1,
        )
    rows = audit_rows(db)
    changes = [r for r in rows if r["method"] == INS + "SetTradingState"]
    assert len(changes) == calls > 10
    assert len({r["id"] for r in rows}) == len(rows)
    assert [line["id"] for line in audit_lines(data)] == [r["id"] for r in rows]


def test_rate_limits_auth_failures_and_the_peer_throttle(tmp_path: Path) -> None:
    """Calls per principal: a bucket of 5 that does not refill within the test; failed
    authentications: 3 per peer address, then a cooldown longer than the test. The history
    is off: the audit is then in the log only."""
    config = tmp_path / "mt5exec.toml"
    config.write_text(
        "[auth]\nrpc_per_second = 0.001\nrpc_burst = 5\n"
        "peer_failures = 3\npeer_failures_window_s = 86400\npeer_cooldown_s = 3600\n"
        "[history]\nenabled = false\n"
    )
    data = tmp_path / "data"
    with ServerProcess(data, config=config) as server:
        admin = server.auth
        made = [
            admin.CreateApiKey(
                auth_pb2.CreateApiKeyRequest(role=auth_pb2.ROLE_VIEWER, owner="o"), timeout=30
            )
            for _ in range(2)
        ]
        off = refused(lambda: admin.ListAuditRecords(auth_pb2.ListAuditRecordsRequest()))
        assert off.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert error_info(off).reason == "HISTORY_DISABLED"
        first, second = (server.connect(m.token) for m in made)
        who = auth_pb2.WhoAmIRequest()
        for _ in range(5):
            auth_pb2_grpc.AuthServiceStub(first).WhoAmI(who, timeout=30)
        limited = refused(lambda: auth_pb2_grpc.AuthServiceStub(first).WhoAmI(who, timeout=30))
        assert limited.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert error_info(limited).reason == "RATE_LIMITED"
        retry = retry_info(limited)
        assert retry is not None and retry.retry_delay.seconds > 100  # 1 call per 1000 s
        # Another principal has its own bucket.
        assert auth_pb2_grpc.AuthServiceStub(second).WhoAmI(who, timeout=30).subject == (
            made[1].key.key_id
        )

        # Failed authentications from this address: 3 are answered as such, then throttled.
        garbage = server.connect("garbage")
        nobody = server.connect(None)
        answers = []
        for channel in (garbage, nobody, garbage, nobody, garbage):
            error = refused(
                lambda c=channel: auth_pb2_grpc.AuthServiceStub(c).WhoAmI(who, timeout=30)
            )
            answers.append((error.code(), error_info(error).reason))
        assert answers == [
            (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_INVALID"),
            (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_MISSING"),
            (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_INVALID"),
            (grpc.StatusCode.RESOURCE_EXHAUSTED, "AUTH_THROTTLED"),
            (grpc.StatusCode.RESOURCE_EXHAUSTED, "AUTH_THROTTLED"),
        ]
        throttled = refused(lambda: auth_pb2_grpc.AuthServiceStub(nobody).WhoAmI(who, timeout=30))
        retry = retry_info(throttled)
        assert retry is not None and retry.retry_delay.seconds > 3000
        # A valid token from the same address is served all the same.
        assert auth_pb2_grpc.AuthServiceStub(second).WhoAmI(who, timeout=30).kind == "api_key"

        samples = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in ("mt5exec_auth_failures", "mt5exec_rate_limited")
            for s in server.metric_samples(family)
        }
        assert samples == {
            ("mt5exec_auth_failures_total", (("reason", "TOKEN_INVALID"),)): 3.0,
            ("mt5exec_auth_failures_total", (("reason", "TOKEN_MISSING"),)): 3.0,
            ("mt5exec_rate_limited_total", (("limit", "rpc"),)): 1.0,
            ("mt5exec_rate_limited_total", (("limit", "peer_failures"),)): 3.0,
        }
        for channel in (first, second, garbage, nobody):
            channel.close()
    # The history off, the audit is in the log (the admin's two keys; no token in it).
    lines = audit_lines(data)
    assert [(line["method"], line["code"]) for line in lines] == [
        (AUT + "CreateApiKey", "OK"),
        (AUT + "CreateApiKey", "OK"),
    ]
    log = (data / "server.log").read_text()
    assert all(m.token not in log for m in made)
