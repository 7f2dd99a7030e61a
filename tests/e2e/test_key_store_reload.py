"""The API key store read again while a server runs: a store it cannot read (an odd entry)
is logged and the keys read last stay in force, the watching goes on, the reading never
waits for the store's lock, and unknown key ids do not make it look at its file per call.
At start, an odd entry is a clear error naming the file and the entry."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from tests.support import error_info

from mt5exec.auth.keys import PREFIX, UNKNOWN_ID_RETRY_S, KeyStore, Refresh
from mt5exec.auth.principal import Role, TokenRefused
from mt5exec.testing import ServerProcess
from mt5exec.v1 import auth_pb2, auth_pb2_grpc, stream_pb2, stream_pb2_grpc

# An entry without its role (the other fields as a key of ours has them).
NO_ROLE = {
    "id": "0123456789ab",
    "owner": "carol",
    "label": "",
    "created": "2025-01-01T00:00:00.000000+00:00",
    "revoked": None,
    "hmac_sha256": "00" * 32,
}


def _replace(path: Path, data: bytes) -> None:
    """Replaces ``path`` at once, as an editor or the command would."""
    tmp = path.with_name(path.name + ".test-tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _with_entries(path: Path, *entries: Any) -> bytes:
    store = json.loads(path.read_text())
    store["keys"] += list(entries)
    return json.dumps(store).encode()


@contextlib.contextmanager
def _lock_held(store: KeyStore) -> Iterator[None]:
    """The store's lock, held as ``mt5exec keys`` holds it while it changes the store."""
    fd = os.open(store.directory / ".lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _unknown_token() -> str:
    return f"{PREFIX}_{secrets.token_hex(6)}_{secrets.token_urlsafe(32)}"


# -- the store -------------------------------------------------------------------------------


def test_an_odd_entry_is_an_error_naming_the_file_and_entry(tmp_path: Path) -> None:
    store = KeyStore(tmp_path)
    admin = store.open()
    assert admin is not None
    good = store.path.read_bytes()
    for entry, why in [
        (NO_ROLE, "keys[1] (id '0123456789ab'): 'role' is missing"),
        ({**NO_ROLE, "role": "viewer", "created": 17}, "keys[1] (id '0123456789ab'): "),
        ({**NO_ROLE, "role": "viewer", "hmac_sha256": None}, "keys[1] (id '0123456789ab'): "),
        ("a string", "keys[1]: not an object but str"),
        (None, "keys[1]: not an object but NoneType"),
    ]:
        _replace(store.path, _with_entries(store.path, entry))
        # At start: a ValueError (the server's start refuses it as such).
        with pytest.raises(ValueError, match="keys") as refused:
            KeyStore(tmp_path).open()
        assert str(refused.value).startswith(f"{store.path}: {why}"), refused.value
        # Read again by a store in use: not read, its keys stay in force.
        assert store.refresh(force=True) is Refresh.FAILED
        assert store.verify(admin).role is Role.ADMIN
        _replace(store.path, good)
        assert store.refresh(force=True) is Refresh.READ
    # Not JSON a store's reading gets through.
    _replace(store.path, b"[" * 100_000)
    with pytest.raises(ValueError, match="nested too deeply"):
        KeyStore(tmp_path).open()
    assert store.refresh(force=True) is Refresh.FAILED


def test_refresh_does_not_wait_for_the_lock(tmp_path: Path) -> None:
    store = KeyStore(tmp_path)
    store.open()
    token, key = store.create(Role.VIEWER, "alice")
    other = KeyStore(tmp_path)  # the command line
    other.open(create_admin=False)
    other.revoke(key.key_id)
    done: dict[str, Refresh] = {}
    thread = threading.Thread(
        target=lambda: done.update(result=store.refresh(force=True)), daemon=True
    )
    with _lock_held(store):
        thread.start()
        thread.join(30)
        waited = thread.is_alive()
    thread.join(30)
    assert not waited, "refresh waited for the store's lock"
    assert done["result"] is Refresh.BUSY
    assert store.verify(token).subject == key.key_id  # not read yet: the next look reads it
    assert store.refresh(force=True) is Refresh.READ
    with pytest.raises(TokenRefused) as refused:
        store.verify(token)
    assert refused.value.reason == "TOKEN_REVOKED"


def test_unknown_key_ids_cost_no_file_access(tmp_path: Path) -> None:
    KeyStore(tmp_path).open()  # a first start
    store = KeyStore(tmp_path)  # the server, started again
    store.open()
    other = KeyStore(tmp_path)  # the command line
    other.open(create_admin=False)
    looks = store.disk_looks
    for _ in range(2000):
        with pytest.raises(TokenRefused):
            store.verify(_unknown_token())
    # The store did not change: none of them looked at the file.
    assert store.disk_looks == looks
    # Keys the command line makes are accepted at once, one right after the other.
    for role, owner in [(Role.TRADER, "alice"), (Role.VIEWER, "bob")]:
        token, key = other.create(role, owner)
        assert store.verify(token).subject == key.key_id
    looks = store.disk_looks
    for _ in range(2000):
        with pytest.raises(TokenRefused):
            store.verify(_unknown_token())
    # One look, for the first of them (the last key's change was not looked at since).
    assert store.disk_looks - looks <= 1


def test_a_failed_look_for_an_unknown_key_id_is_not_repeated_per_call(tmp_path: Path) -> None:
    store = KeyStore(tmp_path)
    store.open()
    other = KeyStore(tmp_path)
    other.open(create_admin=False)
    other.create(Role.TRADER, "alice")  # a change, which the store has not seen
    with _lock_held(store):  # ... and cannot read (BUSY) while this is held
        looks = store.disk_looks
        started = time.monotonic()
        for _ in range(2000):
            with pytest.raises(TokenRefused):
                store.verify(_unknown_token())
        elapsed = time.monotonic() - started
    looked = store.disk_looks - looks
    assert 1 <= looked <= elapsed / UNKNOWN_ID_RETRY_S + 1, (looked, elapsed)


# -- the server ------------------------------------------------------------------------------


def _serve(data: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "mt5exec",
            "serve",
            "--data-dir",
            str(data),
            "--listen",
            "127.0.0.1:0",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=data.parent,
    )


def _keys(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mt5exec", "keys", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_an_odd_entry_at_start_is_a_clear_error(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with ServerProcess(data):
        pass
    path = data / "auth" / "api_keys.json"
    _replace(path, _with_entries(path, NO_ROLE))
    out = _serve(data)
    assert out.returncode == 2, out.stderr
    assert f"{path}: keys[1] (id '0123456789ab'): 'role' is missing" in out.stderr
    assert "Traceback" not in out.stderr


def _who(server: ServerProcess, token: str) -> auth_pb2.WhoAmIResponse | str:
    """WhoAmI as ``token``; the reason when it is refused."""
    with server.connect(token) as channel:
        try:
            return auth_pb2_grpc.AuthServiceStub(channel).WhoAmI(
                auth_pb2.WhoAmIRequest(), timeout=30
            )
        except grpc.RpcError as e:
            refused = e
    assert refused.code() == grpc.StatusCode.UNAUTHENTICATED, refused
    return error_info(refused).reason


def _read_until_end(stream: Any, ended: dict[str, Any]) -> None:
    try:
        for _ in stream:
            pass
    except grpc.RpcError as e:
        ended["error"] = e


def _wait_for(condition: Any, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_an_odd_entry_while_serving_leaves_the_watching_going(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with ServerProcess(data) as server:
        made = _keys("create", "--role", "viewer", "--owner", "carol", "--data-dir", str(data))
        assert made.returncode == 0, made.stderr
        token = made.stdout.strip()
        who = _who(server, token)
        assert isinstance(who, auth_pb2.WhoAmIResponse), who
        # A stream of the key (carol has no instances: it stays open, sending nothing).
        channel = server.connect(token)
        stream = stream_pb2_grpc.StreamServiceStub(channel).StreamTicks(
            stream_pb2.StreamTicksRequest(), timeout=300
        )
        ended: dict[str, Any] = {}
        reader = threading.Thread(target=_read_until_end, args=(stream, ended), daemon=True)
        reader.start()
        try:
            path = data / "auth" / "api_keys.json"
            good = path.read_bytes()
            _replace(path, _with_entries(path, NO_ROLE))
            log = data / "server.log"
            _wait_for(
                lambda: "'role' is missing" in log.read_text(),
                "the server did not say it could not read the key store",
            )
            # The keys read last stay in force.
            assert isinstance(_who(server, token), auth_pb2.WhoAmIResponse)
            # Mended, then the command line revokes the key: the server still watches.
            _replace(path, good)
            revoked = _keys("revoke", who.subject, "--data-dir", str(data))
            assert revoked.returncode == 0, revoked.stderr
            _wait_for(
                lambda: _who(server, token) == "TOKEN_REVOKED",
                "the server still takes a key revoked on disk",
            )
            reader.join(60)
            assert "error" in ended, "the stream of the revoked key did not end"
            assert error_info(ended["error"]).reason == "TOKEN_REVOKED"
        finally:
            stream.cancel()
            channel.close()
    text = log.read_text()
    # Logged once (not once a second), and no task died.
    assert text.count("'role' is missing") == 1, text
    assert "Traceback" not in text
