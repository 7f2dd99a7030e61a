"""The Redis mirror's keys and streams match the engine (a real server writing to a real
redis-server the test starts); off without [redis]."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from test_e2e_tls import Authority

from mt5exec.config import ConfigError, load_config
from mt5exec.testing import ServerProcess
from mt5exec.v1 import common_pb2, instance_pb2, order_pb2, stream_pb2
from redis_mirror import (
    PREFIX,
    as_dict,
    create_netting,
    entries,
    get_json,
    mirrored_server,
    sequences,
)
from redis_server import RedisServer, redis_server
from support import limit, market, wait_until


@pytest.fixture(scope="module")
def rs() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


def _events(server: ServerProcess, instance_id: str, count: int) -> list[common_pb2.ExecutionEvent]:
    """The first ``count`` execution events of an instance, from StreamExecutions."""
    call = server.streams.StreamExecutions(
        stream_pb2.StreamExecutionsRequest(instance_id=instance_id, from_sequence=0), timeout=60
    )
    events: list[common_pb2.ExecutionEvent] = []
    for response in call:
        events.extend(response.events)
        if len(events) >= count:
            break
    call.cancel()
    return events[:count]


def test_keys_and_streams_match_the_engine(tmp_path: Path, rs: RedisServer) -> None:
    r = rs.client()
    with mirrored_server(tmp_path / "data", rs) as server:
        create_netting(server, "m1")
        filled = [
            server.orders.PlaceOrder(market("m1", f"f{i}"), timeout=30).order for i in range(3)
        ]
        pending = server.orders.PlaceOrder(limit("m1", "pend", 0.5), timeout=30).order
        assert pending.status == common_pb2.ORDER_STATUS_ACCEPTED
        with pytest.raises(grpc.RpcError):
            server.orders.PlaceOrder(market("m1", "too-big", volume=20.0), timeout=30)
        instance = server.instances.GetInstance(
            instance_pb2.GetInstanceRequest(instance_id="m1"), timeout=30
        ).instance
        assert all(o.status == common_pb2.ORDER_STATUS_FILLED for o in filled)

        # Instance and health keys.
        wait_until(
            "instance_state is GetInstance",
            lambda: get_json(r, "instance_state:m1") == as_dict(instance),
        )
        wait_until("instance_health UP", lambda: r.get(PREFIX + "instance_health:m1") == "UP")
        wait_until("health_check PASS", lambda: r.get(PREFIX + "health_check:m1") == "PASS")
        wait_until(
            "health_check_latency written",
            lambda: (
                re.fullmatch(r"\d+ms", str(r.get(PREFIX + "health_check_latency:m1"))) is not None
            ),
        )
        assert r.get(PREFIX + "health_check_error:m1") is None
        assert r.get(PREFIX + "instance_failure:m1") is None
        wait_until("the instances set", lambda: r.smembers(PREFIX + "instances") == {"m1"})

        # Executions: state as GetOrder, status, result from the fills.
        def order(cid: str) -> common_pb2.Order:
            return server.orders.GetOrder(
                order_pb2.GetOrderRequest(instance_id="m1", client_order_id=cid), timeout=30
            ).order

        for cid, status in [("f0", "CLOSED"), ("f2", "CLOSED"), ("pend", "OPEN")]:
            wait_until(
                f"execution keys of {cid}",
                lambda cid=cid: get_json(r, f"execution_state:m1:{cid}") == as_dict(order(cid)),
            )
            wait_until(
                f"execution_status of {cid}",
                lambda cid=cid, status=status: (
                    r.get(f"{PREFIX}execution_status:m1:{cid}") == status
                ),
            )
        # Refused by the risk check: an execution event, not an order the engine keeps.
        wait_until(
            "a refused order FAILED",
            lambda: r.get(f"{PREFIX}execution_status:m1:too-big") == "FAILED",
        )
        wait_until(
            "the refused order's reason",
            lambda: (
                (get_json(r, "execution_state:m1:too-big") or {}).get("reject_reason")
                == "VOLUME_ABOVE_LIMIT"
            ),
        )
        assert r.pttl(f"{PREFIX}execution_status:m1:f0") > 0, "a finished execution expires"
        assert r.pttl(f"{PREFIX}execution_status:m1:pend") == -1, "an open one does not"

        # The streams: every event once, in order, as the engine numbers and encodes it.
        wait_until("the stream has events", lambda: len(sequences(r, "m1")) >= 8)
        stream = entries(r, "executions:m1")
        engine_events = _events(server, "m1", len(stream))
        assert [int(e["sequence"]) for e in stream] == [e.sequence for e in engine_events]
        assert [int(e["sequence"]) for e in stream] == list(range(1, len(stream) + 1))
        for entry, event in zip(stream, engine_events, strict=True):
            kind = event.WhichOneof("event")
            assert entry["type"] == kind
            assert get_json_text(entry["data"]) == as_dict(getattr(event, kind))
        fills = [e.fill for e in engine_events if e.WhichOneof("event") == "fill"]
        f0 = next(f for f in fills if f.client_order_id == "f0")
        wait_until(
            "execution_result of f0",
            lambda: (get_json(r, "execution_result:m1:f0") or {}).get("fills") == 1,
        )
        result = get_json(r, "execution_result:m1:f0")
        assert result["fills"] == 1
        assert result["pnl"] == pytest.approx(f0.profit + f0.commission + f0.swap)
        assert result["slippage_points"] == pytest.approx(f0.slippage_points)
        assert result["filled_volume"] == pytest.approx(0.01)
        wait_until(
            "the instance events up to READY",
            lambda: any(
                get_json_text(e["data"])["state"] == "INSTANCE_STATE_READY"
                for e in entries(r, "instance_events")
            ),
        )
        states = [get_json_text(e["data"])["state"] for e in entries(r, "instance_events")]
        assert states[-1] == "INSTANCE_STATE_READY"
        assert [int(e["sequence"]) for e in entries(r, "instance_events")] == list(
            range(1, len(states) + 1)
        )

        # Account and positions as GetAccount and ListPositions (prices move with ticks: the
        # fields that do not).
        account = server.orders.GetAccount(
            order_pb2.GetAccountRequest(instance_id="m1"), timeout=30
        ).account
        steady = (
            "login",
            "currency",
            "balance",
            "leverage",
            "margin_mode",
            "server",
            "instance_id",
        )

        def same_account() -> bool:
            mirrored = get_json(r, "account_state:m1") or {}
            return all(mirrored.get(k) == as_dict(account).get(k) for k in steady)

        wait_until("account_state is GetAccount", same_account)
        positions = server.orders.ListPositions(
            order_pb2.ListPositionsRequest(instance_id="m1"), timeout=30
        ).positions
        assert len(positions) == 1  # netting: 3 buys, one position

        def same_positions() -> bool:
            mirrored = r.hgetall(PREFIX + "positions:m1")
            if set(mirrored) != {str(p.position_id) for p in positions}:
                return False
            for p in positions:
                got = get_json_text(mirrored[str(p.position_id)])
                if (got["symbol"], got["side"], got["volume"]) != (
                    p.symbol,
                    common_pb2.Side.Name(p.side),
                    p.volume,
                ):
                    return False
            return True

        wait_until("positions are ListPositions", same_positions)

        # A stopped instance is DOWN and FAILs its check; a deleted one's keys are gone.
        server.instances.StopInstance(
            instance_pb2.StopInstanceRequest(instance_id="m1"), timeout=60
        )
        wait_until("DOWN", lambda: r.get(PREFIX + "instance_health:m1") == "DOWN")
        wait_until("FAIL", lambda: r.get(PREFIX + "health_check:m1") == "FAIL")
        assert r.get(PREFIX + "health_check_error:m1")
        server.instances.DeleteInstance(
            instance_pb2.DeleteInstanceRequest(instance_id="m1"), timeout=60
        )
        wait_until("keys removed", lambda: r.get(PREFIX + "instance_state:m1") is None)
        assert r.smembers(PREFIX + "instances") == set()
        assert r.exists(PREFIX + "positions:m1") == 0
        up = server.metric_samples("mt5exec_redis_mirror_up")
        assert [s.value for s in up] == [1.0]


def get_json_text(text: str) -> dict[str, Any]:
    value = json.loads(text)
    assert isinstance(value, dict)
    return value


def test_password_from_a_file(tmp_path: Path) -> None:
    with redis_server(password="s3cret-pw") as rs:
        (tmp_path / "pw").write_text("s3cret-pw\n")
        env = {"MT5EXEC_REDIS_PASSWORD_FILE": str(tmp_path / "pw")}
        r = rs.client()
        with mirrored_server(tmp_path / "data", rs, env) as server:
            create_netting(server, "p1")
            wait_until(
                "written with the password", lambda: r.get(PREFIX + "instance_health:p1") == "UP"
            )
            assert server.terminate() == 0


def test_tls_with_the_servers_ca(tmp_path: Path) -> None:
    """rediss://: the server's certificate checked against [redis] tls_ca_file."""
    ca = Authority("redis test CA")
    pair = ca.server()
    with redis_server(tls=(pair.cert, pair.key, ca.pem)) as rs:
        assert rs.url.startswith("rediss://")
        r = rs.client()
        env = {"MT5EXEC_REDIS_TLS_CA_FILE": str(rs.ca_file)}
        with mirrored_server(tmp_path / "data", rs, env) as server:
            create_netting(server, "s1")
            wait_until("written over TLS", lambda: r.get(PREFIX + "instance_health:s1") == "UP")


def test_off_without_redis_section_and_not_imported(tmp_path: Path) -> None:
    """No [redis]: the server does not load redis at all (start-up cost), and no metric."""
    code = "import sys, mt5exec.server.app, mt5exec.metrics; print('redis' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    with ServerProcess(tmp_path / "data") as server:
        assert server.metric_samples("mt5exec_redis_mirror_up") == []


def test_redis_settings_are_checked_and_the_password_is_never_shown() -> None:
    with pytest.raises(ConfigError, match=r"redis\.url"):
        load_config(env={"MT5EXEC_REDIS_URL": "http://u:pw@host"})
    with pytest.raises(ConfigError, match=r"redis\.stream_maxlen"):
        load_config(env={"MT5EXEC_REDIS_URL": "redis://h", "MT5EXEC_REDIS_STREAM_MAXLEN": "0"})
    with pytest.raises(ConfigError, match=r"redis\.batch_interval_ms"):
        load_config(env={"MT5EXEC_REDIS_URL": "redis://h", "MT5EXEC_REDIS_BATCH_INTERVAL_MS": "0"})
    assert (
        load_config(
            env={"MT5EXEC_REDIS_URL": "redis://h", "MT5EXEC_REDIS_BATCH_INTERVAL_MS": "50"}
        ).redis.batch_interval_ms
        == 50
    )
    config = load_config(env={"MT5EXEC_REDIS_URL": "rediss://user:pw@host:6380/1"})
    assert config.redis.enabled
    assert config.as_dict()["redis"]["url"] == "rediss://user:***@host:6380/1"
    assert not load_config(env={}).redis.enabled


def test_ticks_on_pub_sub(tmp_path: Path, rs: RedisServer) -> None:
    pubsub = rs.client().pubsub()
    pubsub.subscribe(PREFIX + "ticks:t1")
    env = {"MT5EXEC_REDIS_TICKS": "true"}
    with mirrored_server(tmp_path / "data", rs, env) as server:
        create_netting(server, "t1", tick_rate=20)
        ticks: list[dict[str, Any]] = []

        def received() -> bool:
            message = pubsub.get_message(timeout=1.0)
            if message is not None and message["type"] == "message":
                ticks.extend(json.loads(message["data"]))
            return len(ticks) >= 20

        wait_until("20 ticks published", received)
        assert {t["symbol"] for t in ticks} == {"EURUSD"}
        assert all(t["bid"] > 0 and t["ask"] >= t["bid"] and t["time_msc"] > 0 for t in ticks)
    pubsub.close()
