"""Auth at start: the first admin key, the key store's files, auth turned off (loopback only,
said loudly), and a store that cannot be used."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from tests.support import error_info

from mt5exec.auth.jwt import JwtVerifier
from mt5exec.auth.keys import KeyStore
from mt5exec.auth.principal import Role, TokenRefused
from mt5exec.config import AuthConfig, ConfigError, load_config
from mt5exec.testing import ServerProcess
from mt5exec.v1 import auth_pb2, auth_pb2_grpc, instance_pb2, instance_pb2_grpc


def _serve(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mt5exec", "serve", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
    )


def _who(server: ServerProcess, token: str | None) -> auth_pb2.WhoAmIResponse:
    with server.connect(token) as channel:
        stub = auth_pb2_grpc.AuthServiceStub(channel)
        return stub.WhoAmI(auth_pb2.WhoAmIRequest(), timeout=30)


def test_first_start_writes_an_admin_key_and_a_restart_keeps_it(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with ServerProcess(data) as server:
        token = server.token
        assert token is not None and token.startswith("mt5x_")
        assert stat.S_IMODE((data / "admin.key").stat().st_mode) == 0o600
        assert _who(server, token).role == auth_pb2.ROLE_ADMIN
        with pytest.raises(grpc.RpcError) as refused:
            _who(server, None)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert error_info(refused.value).reason == "TOKEN_MISSING"
    with ServerProcess(data) as again:
        assert again.token == token
        assert _who(again, token).role == auth_pb2.ROLE_ADMIN
    log = (data / "server.log").read_text()
    assert str(data / "admin.key") in log
    assert log.count("an admin API key was written") == 1
    # The secret part (mt5x_<key id>_<43 characters>; it may itself hold "_") is never logged.
    secret = token.split("_", 2)[2]
    assert len(secret) == 43 and secret not in log


def test_auth_off_only_on_loopback(tmp_path: Path) -> None:
    config = tmp_path / "mt5exec.toml"
    config.write_text("[server]\nallow_plaintext = true\n[auth]\nenabled = false\n")
    out = _serve("--config", str(config), "--listen", "0.0.0.0:0", cwd=tmp_path)
    assert out.returncode == 2
    assert "auth.enabled" in out.stderr and "loopback" in out.stderr
    with ServerProcess(tmp_path / "data", config=config) as server:
        # No token needed: every call is a local admin.
        who = _who(server, None)
        assert (who.subject, who.role, who.kind) == ("local", auth_pb2.ROLE_ADMIN, "local")
        with server.connect(None) as channel:
            stub = instance_pb2_grpc.InstanceServiceStub(channel)
            stub.ListInstances(instance_pb2.ListInstancesRequest(), timeout=30)
    log = (tmp_path / "data" / "server.log").read_text()
    assert "WARNING" in log and "AUTHENTICATION IS OFF" in log


def test_a_key_store_without_its_secret_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with ServerProcess(data):
        pass
    (data / "auth" / "hmac.key").unlink()
    out = _serve("--data-dir", str(data), "--listen", "127.0.0.1:0", cwd=tmp_path)
    assert out.returncode == 2
    assert "hmac.key" in out.stderr and "cannot be checked" in out.stderr


def test_key_store_round_trip(tmp_path: Path) -> None:
    store = KeyStore(tmp_path)
    admin = store.open()
    assert admin is not None and store.verify(admin).role is Role.ADMIN
    token, key = store.create(Role.VIEWER, "alice", "desk")
    principal = store.verify(token)
    assert (principal.subject, principal.role, principal.owner, principal.kind) == (
        key.key_id,
        Role.VIEWER,
        "alice",
        "api_key",
    )
    # Another process's store (the command line) sees it, and its revocation reaches this one.
    other = KeyStore(tmp_path)
    assert other.open() is None
    assert other.verify(token).owner == "alice"
    revoked: list[str] = []
    store.on_revoked = revoked.extend
    other.revoke(key.key_id)
    store.refresh(force=True)
    assert revoked == [key.key_id]
    with pytest.raises(TokenRefused) as refused:
        store.verify(token)
    assert refused.value.reason == "TOKEN_REVOKED"
    # The same id with another secret.
    forged = token[: -len(token.rsplit("_", 1)[1])] + "A" * 43
    with pytest.raises(TokenRefused) as refused:
        store.verify(forged)
    assert refused.value.reason == "TOKEN_INVALID"


def test_jwt_settings_are_checked_at_start(tmp_path: Path) -> None:
    short = tmp_path / "short.secret"
    short.write_bytes(b"x" * 31)
    with pytest.raises(ConfigError, match=r"auth\.jwt_secret_file.*32 bytes"):
        JwtVerifier(AuthConfig(jwt_secret_file=short))
    not_pem = tmp_path / "key.pem"
    not_pem.write_text("nope")
    with pytest.raises(ConfigError, match=r"auth\.jwt_public_key_file"):
        JwtVerifier(AuthConfig(jwt_public_key_file=not_pem))
    with pytest.raises(ConfigError, match=r"auth\.jwt_leeway_s"):
        load_config(env={"MT5EXEC_AUTH_JWT_LEEWAY_S": "301"})
    assert not JwtVerifier(AuthConfig()).configured
