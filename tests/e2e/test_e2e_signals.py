"""PublishSignal on a real server: the source's HMAC, the window and the nonces (kept across
a restart). Every refused signal sends nothing."""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from tests.support import BULK_RISK, create_sim, error_info, wait_for_price

from mt5exec.signals import canonical
from mt5exec.testing import ServerProcess
from mt5exec.v1 import auth_pb2, common_pb2, instance_pb2, order_pb2, order_pb2_grpc

SECRET = b"k" * 20 + os.urandom(16).hex().encode()
WINDOW_S = 30


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data = tmp_path_factory.mktemp("signals")
    secrets = tmp_path_factory.mktemp("signal-secrets")
    secret_file = secrets / "alpha.secret"
    secret_file.write_bytes(SECRET + b"\n")
    secret_file.chmod(0o600)
    config = secrets / "mt5exec.toml"
    config.write_text(
        f'[signals]\nwindow_s = {WINDOW_S}\n[signals.sources]\nalpha = "{secret_file}"\n'
    )
    proc = ServerProcess(data, config=config).start()
    try:
        yield proc
        assert proc.terminate() == 0
    finally:
        proc.kill()


def signal(
    skew_s: float = 0.0, nonce: str = "", **fields: object
) -> order_pb2.PublishSignalRequest:
    values: dict[str, object] = {
        "source": "alpha",
        "symbol": "EURUSD",
        "side": common_pb2.SIDE_BUY,
        "volume": 0.01,
        "stop_loss": 1.0,
        "nonce": nonce or uuid.uuid4().hex,
    }
    request = order_pb2.PublishSignalRequest(**(values | fields))  # type: ignore[arg-type]
    request.timestamp.FromNanoseconds(time.time_ns() + int(skew_s * 1e9))
    canonical.sign(SECRET, request)
    return request


def refusal(server: ServerProcess, request: order_pb2.PublishSignalRequest) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        server.orders.PublishSignal(request, timeout=30)
    return caught.value


def assert_refused(
    server: ServerProcess,
    request: order_pb2.PublishSignalRequest,
    code: grpc.StatusCode,
    reason: str,
    field: str,
) -> None:
    error = refusal(server, request)
    assert error.code() == code, error
    info = error_info(error)
    assert (info.reason, info.metadata["field"]) == (reason, field), info


def assert_verified(server: ServerProcess, request: order_pb2.PublishSignalRequest) -> None:
    """Passed every check (no relation follows the source here: no order is made)."""
    assert server.orders.PublishSignal(request, timeout=30).orders == []


UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED
INVALID = grpc.StatusCode.INVALID_ARGUMENT


def _flip(text: str, position: int) -> str:
    """``text`` (hex) with one bit of its character at ``position`` flipped."""
    flipped = format(int(text[position], 16) ^ 1, "x")
    return text[:position] + flipped + text[position + 1 :]


def test_a_signed_signal_passes_every_check(server: ServerProcess) -> None:
    assert_verified(server, signal())
    assert_verified(server, signal(skew_s=-WINDOW_S / 2, risk_percent=1.0, volume=0.0))


def test_a_bit_flipped_in_the_signature_is_unauthenticated(server: ServerProcess) -> None:
    for position in (0, 31, 63):
        request = signal()
        request.signature = _flip(request.signature, position)
        assert_refused(server, request, UNAUTHENTICATED, "SIGNATURE_INVALID", "signature")


def test_a_bit_flipped_in_the_body_is_unauthenticated(server: ServerProcess) -> None:
    changes = {
        "volume": lambda r: setattr(r, "volume", 0.02),
        "stop_loss": lambda r: setattr(r, "stop_loss", 1.0000000000000002),  # last mantissa bit
        "symbol": lambda r: setattr(r, "symbol", "EURUSE"),
        "side": lambda r: setattr(r, "side", common_pb2.SIDE_SELL),
        "nonce": lambda r: setattr(r, "nonce", r.nonce[:-1] + ("0" if r.nonce[-1] != "0" else "1")),
        "timestamp": lambda r: setattr(r.timestamp, "nanos", r.timestamp.nanos ^ 1),
        "signal_id": lambda r: setattr(r, "signal_id", "x"),
    }
    for name, change in changes.items():
        request = signal()
        change(request)
        error = refusal(server, request)
        assert error.code() == UNAUTHENTICATED, (name, error)
        assert error_info(error).reason == "SIGNATURE_INVALID", name


def test_an_unknown_source_or_a_missing_signature_is_unauthenticated(
    server: ServerProcess,
) -> None:
    request = signal()
    request.source = "beta"
    canonical.sign(SECRET, request)
    assert_refused(server, request, UNAUTHENTICATED, "SIGNAL_SOURCE_UNKNOWN", "source")
    request = signal()
    request.signature = ""
    assert_refused(server, request, UNAUTHENTICATED, "SIGNATURE_INVALID", "signature")
    # Signed with another secret.
    request = signal()
    canonical.sign(SECRET + b"x", request)
    assert_refused(server, request, UNAUTHENTICATED, "SIGNATURE_INVALID", "signature")


def test_clock_skew_beyond_the_window_either_way_is_refused(server: ServerProcess) -> None:
    for skew in (WINDOW_S + 60, -(WINDOW_S + 60), 86400.0):
        error = refusal(server, signal(skew_s=skew))
        assert error.code() == INVALID, error
        info = error_info(error)
        assert (info.reason, info.metadata["field"]) == ("SIGNAL_OUTSIDE_WINDOW", "timestamp")
        assert (int(info.metadata["skew_ms"]) > 0) == (skew > 0), info


def test_a_replayed_nonce_is_refused(server: ServerProcess) -> None:
    first = signal()
    assert_verified(server, first)
    assert_refused(server, first, INVALID, "NONCE_REUSED", "nonce")
    # Its nonce in another, freshly signed signal is a replay too.
    again = signal(nonce=first.nonce, volume=0.05)
    assert_refused(server, again, INVALID, "NONCE_REUSED", "nonce")


def test_a_malformed_field_is_invalid_before_the_signature(server: ServerProcess) -> None:
    cases = {
        "nonce": signal(nonce="short"),
        "symbol": signal(symbol="EUR\nUSD"),
        "side": signal(side=common_pb2.SIDE_UNSPECIFIED),
        "volume": signal(volume=-1.0),
        "risk_percent": signal(risk_percent=1.0),  # and volume: one or the other
    }
    for name, request in cases.items():
        error = refusal(server, request)
        assert error.code() == INVALID, (name, error)
        assert error_info(error).metadata["field"] == name, error


def test_nonces_stay_refused_after_a_restart(tmp_path: Path) -> None:
    secret_file = tmp_path / "alpha.secret"
    secret_file.write_bytes(SECRET)
    secret_file.chmod(0o600)
    config = tmp_path / "mt5exec.toml"
    config.write_text(f'[signals.sources]\nalpha = "{secret_file}"\n')
    data = tmp_path / "data"
    used = signal()
    with ServerProcess(data, config=config) as server:
        assert_verified(server, used)
    with ServerProcess(data, config=config) as server:
        assert_refused(server, used, INVALID, "NONCE_REUSED", "nonce")
        assert_verified(server, signal())
    # The server was killed: what it recorded before answering is still there.
    with ServerProcess(data, config=config) as server:
        killed = signal()
        assert_verified(server, killed)
        server.kill()
    with ServerProcess(data, config=config) as server:
        assert_refused(server, killed, INVALID, "NONCE_REUSED", "nonce")


def test_a_nonce_that_cannot_be_recorded_refuses_the_signal(tmp_path: Path) -> None:
    secret_file = tmp_path / "alpha.secret"
    secret_file.write_bytes(SECRET)
    secret_file.chmod(0o600)
    config = tmp_path / "mt5exec.toml"
    config.write_text(f'[signals.sources]\nalpha = "{secret_file}"\n')
    data = tmp_path / "data"
    with ServerProcess(data, config=config) as server:
        log = data / "signals" / "nonces.log"
        log.unlink(missing_ok=True)
        log.mkdir()  # where the log goes, a directory: no write can succeed
        request = signal()
        assert_refused(server, request, grpc.StatusCode.UNAVAILABLE, "NONCE_NOT_RECORDED", "nonce")
        shutil.rmtree(log)
        # The refused signal's nonce was not taken: sent again, it passes.
        assert_verified(server, request)


def test_a_secret_readable_by_others_stops_the_start(tmp_path: Path) -> None:
    secret_file = tmp_path / "alpha.secret"
    secret_file.write_bytes(SECRET)
    secret_file.chmod(0o644)
    config = tmp_path / "mt5exec.toml"
    config.write_text(f'[signals.sources]\nalpha = "{secret_file}"\n')
    with pytest.raises(RuntimeError, match="did not start"):
        ServerProcess(tmp_path / "data", config=config).start()
    assert "readable by other users" in (tmp_path / "data" / "server.log").read_text()


def _follow(server: ServerProcess, source: str, follower: str) -> None:
    relation = order_pb2.CopyRelation(
        signal_source=source,
        follower_instance_id=follower,
        volume_mode=order_pb2.COPY_VOLUME_MODE_MULTIPLIER,
        multiplier=1.0,
    )
    server.orders.CreateCopyRelation(
        order_pb2.CreateCopyRelationRequest(relation=relation), timeout=30
    )


def _orders(server: ServerProcess, instance_id: str) -> list[common_pb2.Order]:
    request = order_pb2.ListOrdersRequest(instance_id=instance_id, history=True)
    return list(server.orders.ListOrders(request, timeout=30).orders)


def test_a_valid_signal_makes_an_order_on_every_follower_and_a_refused_one_none(
    server: ServerProcess,
) -> None:
    followers = ["sf1", "sf2", "sf3"]
    for name in [*followers, "other"]:
        create_sim(server, name, risk=BULK_RISK)
    for name in followers:
        _follow(server, "alpha", name)
    _follow(server, "beta", "other")  # another source's follower

    # Refused: a flipped signature, a timestamp out of the window, a replay. Nothing is sent.
    forged = signal(signal_id="forged")
    forged.signature = _flip(forged.signature, 5)
    assert refusal(server, forged).code() == UNAUTHENTICATED
    assert refusal(server, signal(skew_s=WINDOW_S + 60, signal_id="late")).code() == INVALID
    valid = signal(signal_id="sig-1", volume=0.02)
    answer = server.orders.PublishSignal(valid, timeout=60)
    replay = refusal(server, valid)
    assert error_info(replay).reason == "NONCE_REUSED"

    assert sorted(o.instance_id for o in answer.orders) == followers
    for order in answer.orders:
        assert order.symbol == "EURUSD"
        assert order.side == common_pb2.SIDE_BUY
        assert order.volume == pytest.approx(0.02)
        assert order.status == common_pb2.ORDER_STATUS_FILLED, order
    for name in followers:
        assert [o.client_order_id for o in _orders(server, name)] == [
            o.client_order_id for o in answer.orders if o.instance_id == name
        ]
    assert _orders(server, "other") == []

    # The same signal sent again (same signal_id, a new nonce): the same orders, no second one.
    again = server.orders.PublishSignal(signal(signal_id="sig-1", volume=0.02), timeout=60)
    assert sorted((o.instance_id, o.order_id) for o in again.orders) == sorted(
        (o.instance_id, o.order_id) for o in answer.orders
    )
    for name in followers:
        assert len(_orders(server, name)) == 1


def _create_owned(server: ServerProcess, instance_id: str, owner: str) -> None:
    config = common_pb2.InstanceConfig(symbols=["EURUSD"], tick_rate=10, risk=BULK_RISK)
    request = instance_pb2.CreateInstanceRequest(
        instance_id=instance_id, owner=owner, config=config
    )
    server.instances.CreateInstance(request, timeout=60)
    wait_for_price(server, instance_id, "EURUSD")


def test_the_answer_lists_only_the_callers_followers_orders(server: ServerProcess) -> None:
    _create_owned(server, "vict-f", "vict")
    _create_owned(server, "eve-f", "eve")
    _follow(server, "alpha", "vict-f")
    _follow(server, "alpha", "eve-f")
    request = auth_pb2.CreateApiKeyRequest(role=auth_pb2.ROLE_TRADER, owner="eve")
    eve = server.connect(server.auth.CreateApiKey(request, timeout=30).token)
    try:
        answer = order_pb2_grpc.OrderServiceStub(eve).PublishSignal(
            signal(signal_id="owners"), timeout=60
        )
    finally:
        eve.close()
    # Both followers' orders were made; eve's answer names hers only.
    assert [o.instance_id for o in answer.orders] == ["eve-f"]
    assert len(_orders(server, "vict-f")) == 1
    assert [o.order_id for o in _orders(server, "eve-f")] == [answer.orders[0].order_id]
    # The admin's answer (the same signal again) names both.
    again = server.orders.PublishSignal(signal(signal_id="owners"), timeout=60)
    assert {o.instance_id for o in again.orders} >= {"eve-f", "vict-f"}
