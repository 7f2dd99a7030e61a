"""The credential vault (mt5exec.vault) on its own: sealing, its bindings, the key checks,
and rotation, on the embedded SQLite store and on a real PostgreSQL server."""

from __future__ import annotations

import base64
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from tests.postgres import Postgres, postgres_server

from mt5exec.config import load_config
from mt5exec.vault import Credential, CredentialUnreadable, KeyRetired, Vault, VaultKeyError
from mt5exec.vault.keys import KEY_ENV, OLD_KEY_ENV, KeySource, parse_key
from mt5exec.vault.rotate import PAUSE_ENV, rotate
from mt5exec.vault.store import PostgresStore, Row, SqliteStore, Store

PASSWORDS = {f"mt5-{n}": f"Pa55-{n}-{'x' * n}" for n in range(5)}


def credential(instance_id: str) -> Credential:
    return Credential(5_000_000 + len(instance_id), PASSWORDS[instance_id], "Sim-Demo")


def fill(vault: Vault) -> None:
    for instance_id in PASSWORDS:
        vault.put("acme", instance_id, credential(instance_id))


def assert_all_readable(vault: Vault) -> None:
    for instance_id in PASSWORDS:
        assert vault.get("acme", instance_id) == credential(instance_id)
        assert vault.get("acme", instance_id).password == PASSWORDS[instance_id]  # type: ignore[union-attr]


def random_key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    with postgres_server() as server:
        yield server


@pytest.fixture
def keep() -> Iterator[Callable[[Store], Store]]:
    """Closes at the end of the test every store it was given."""
    stores: list[Store] = []

    def add(store: Store) -> Store:
        stores.append(store)
        return store

    yield add
    for store in stores:
        store.close()


StoreFactory = Callable[[], Store]


@pytest.fixture(params=["sqlite", "postgres"])
def new_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    """Opens the same store again on each call (as a restarted server would)."""
    opened: list[Store] = []
    if request.param == "sqlite":

        def make() -> Store:
            opened.append(SqliteStore(tmp_path / "vault.db"))
            return opened[-1]
    else:
        dsn = request.getfixturevalue("postgres").database()

        def make() -> Store:
            opened.append(PostgresStore(dsn))
            return opened[-1]

    yield make
    for store in opened:
        store.close()


def file_keys(tmp_path: Path) -> KeySource:
    return KeySource(tmp_path / "vault.key", env={})


def test_round_trip_with_a_fresh_nonce_and_no_plaintext(
    new_store: StoreFactory, tmp_path: Path
) -> None:
    store = new_store()
    vault = Vault.open(store, file_keys(tmp_path))
    fill(vault)
    vault.put("acme", "mt5-0", credential("mt5-0"))
    first = store.get("mt5-0")
    vault.put("acme", "mt5-0", credential("mt5-0"))
    second = store.get("mt5-0")
    assert first is not None and second is not None
    assert len(first.nonce) == 12 and first.nonce != second.nonce
    assert first.ciphertext != second.ciphertext
    assert_all_readable(Vault.open(new_store(), file_keys(tmp_path)))
    assert vault.get("acme", "nobody") is None
    # The key file is the data dir's user's alone; nothing in the rows is the password.
    assert (tmp_path / "vault.key").stat().st_mode & 0o777 == 0o600
    for row in store.rows():
        for password in PASSWORDS.values():
            assert password.encode() not in row.ciphertext
    if isinstance(store, SqliteStore):
        assert (tmp_path / "vault.db").stat().st_mode & 0o777 == 0o600
        raw = (tmp_path / "vault.db").read_bytes()
        assert all(p.encode() not in raw for p in PASSWORDS.values())
    vault.delete("mt5-1")
    assert vault.get("acme", "mt5-1") is None


def tamper(store: Store, instance_id: str, sql: str, *params: object) -> None:
    """Runs an UPDATE on the instance's row behind the vault's back."""
    if isinstance(store, SqliteStore):
        with sqlite3.connect(store.location) as db:
            db.execute(sql.replace("%s", "?"), (*params, instance_id))
    else:
        with psycopg.connect(store._dsn) as conn:  # type: ignore[attr-defined]
            conn.execute(sql, (*params, instance_id))


def flip(data: bytes) -> bytes:
    return bytes([data[0] ^ 1]) + data[1:]


@pytest.mark.parametrize(
    "what", ["ciphertext", "nonce", "owner", "instance id", "key id", "unknown key id"]
)
def test_a_tampered_record_fails_alone(new_store: StoreFactory, tmp_path: Path, what: str) -> None:
    store = new_store()
    vault = Vault.open(store, file_keys(tmp_path))
    fill(vault)
    row = store.get("mt5-2")
    assert row is not None
    update = "UPDATE mt5exec_vault_credentials SET {} WHERE instance_id = %s"
    if what == "ciphertext":
        tamper(store, "mt5-2", update.format("ciphertext = %s"), flip(row.ciphertext))
    elif what == "nonce":
        tamper(store, "mt5-2", update.format("nonce = %s"), flip(row.nonce))
    elif what == "owner":
        # The owner column follows along: the binding still does not.
        tamper(store, "mt5-2", update.format("owner = %s"), "other")
        with pytest.raises(CredentialUnreadable):
            vault.get("other", "mt5-2")
    elif what == "instance id":
        # Another instance's sealed credential copied over this one's.
        other = store.get("mt5-3")
        assert other is not None
        tamper(
            store,
            "mt5-2",
            update.format("nonce = %s, ciphertext = %s"),
            other.nonce,
            other.ciphertext,
        )
    elif what == "key id":
        # Relabelled with another key the vault lists (a rotation's next key).
        second = parse_key(random_key(), "second")
        store.add_key(second.key_id, *second.check_value())
        vault.keyring = type(vault.keyring)(vault.keyring.current, (second,))
        tamper(store, "mt5-2", update.format("key_id = %s"), second.key_id)
    else:
        tamper(store, "mt5-2", update.format("key_id = %s"), "0123456789abcdef")
    with pytest.raises(CredentialUnreadable) as caught:
        vault.get("acme", "mt5-2")
    assert "mt5-2" in str(caught.value)
    assert all(p not in str(caught.value) for p in PASSWORDS.values())
    for instance_id in PASSWORDS:
        if instance_id != "mt5-2":
            assert vault.get("acme", instance_id) == credential(instance_id)


def test_a_wrong_master_key_is_refused_naming_its_source(
    new_store: StoreFactory, tmp_path: Path
) -> None:
    store = new_store()
    fill(Vault.open(store, file_keys(tmp_path)))
    right = (tmp_path / "vault.key").read_text()
    # From the environment.
    with pytest.raises(VaultKeyError) as caught:
        Vault.open(new_store(), KeySource(tmp_path / "vault.key", env={KEY_ENV: random_key()}))
    assert KEY_ENV in str(caught.value) and "does not open" in str(caught.value)
    with pytest.raises(VaultKeyError, match=KEY_ENV):
        Vault.open(new_store(), KeySource(tmp_path / "vault.key", env={KEY_ENV: "c2hvcnQ="}))
    # From the key file: replaced, or gone.
    (tmp_path / "vault.key").write_text(random_key())
    with pytest.raises(VaultKeyError, match=str(tmp_path / "vault.key")):
        Vault.open(new_store(), file_keys(tmp_path))
    (tmp_path / "vault.key").unlink()
    with pytest.raises(VaultKeyError, match="does not exist"):
        Vault.open(new_store(), file_keys(tmp_path))
    assert not (tmp_path / "vault.key").exists()  # not silently made anew
    # Even with no credential left, the key check tells a wrong key.
    (tmp_path / "vault.key").write_text(right)
    vault = Vault.open(new_store(), file_keys(tmp_path))
    for instance_id in PASSWORDS:
        vault.delete(instance_id)
    with pytest.raises(VaultKeyError):
        Vault.open(new_store(), KeySource(tmp_path / "vault.key", env={KEY_ENV: random_key()}))
    Vault.open(new_store(), file_keys(tmp_path))


def test_the_key_from_the_environment_in_hex_or_base64(
    tmp_path: Path, keep: Callable[[Store], Store]
) -> None:
    raw = os.urandom(32)
    hex_key = parse_key(raw.hex(), KEY_ENV)
    assert hex_key.key_id == parse_key(base64.b64encode(raw).decode(), KEY_ENV).key_id
    assert hex_key.key_id == parse_key(base64.urlsafe_b64encode(raw).decode(), KEY_ENV).key_id
    env = {KEY_ENV: raw.hex()}
    vault = Vault.open(
        keep(SqliteStore(tmp_path / "vault.db")), KeySource(tmp_path / "vault.key", env)
    )
    fill(vault)
    assert not (tmp_path / "vault.key").exists()  # the environment's key, no file
    other = {KEY_ENV: base64.b64encode(raw).decode()}
    assert_all_readable(
        Vault.open(
            keep(SqliteStore(tmp_path / "vault.db")), KeySource(tmp_path / "vault.key", other)
        )
    )


# -- rotation -----------------------------------------------------------------------------


def run_rotate(data_dir: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mt5exec", "vault", "rotate", "--data-dir", str(data_dir)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def kill_rotate_at(data_dir: Path, step: str, env: dict[str, str]) -> None:
    """Runs the rotation until ``step``, then kills it (SIGKILL)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "mt5exec", "vault", "rotate", "--data-dir", str(data_dir)],
        env={**os.environ, **env, PAUSE_ENV: step},
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    try:
        line = process.stdout.readline()
        assert line.strip() == f"vault rotate: paused at {step}", line
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(30)
        process.stdout.close()
    assert process.returncode == -signal.SIGKILL


def key_ids(store: Store) -> set[str]:
    return {row.key_id for row in store.rows()}


STEPS = ["new-key", "listed", "old-kept", "swapped", "record:1", "record:4", "retired"]


@pytest.mark.parametrize("step", STEPS)
def test_rotation_killed_at_any_step_loses_nothing_and_completes(
    tmp_path: Path, step: str, keep: Callable[[Store], Store]
) -> None:
    data = tmp_path / "data"
    config = load_config(overrides={"server.data_dir": str(data)}, env={})
    store = keep(SqliteStore(config.vault_db_path))
    fill(Vault.open(store, KeySource(config.vault_key_path, {})))
    old_id = parse_key((data / "vault.key").read_text(), "old").key_id

    kill_rotate_at(data, step, {})
    # Whatever the step, a server starting now reads every credential.
    assert_all_readable(
        Vault.open(keep(SqliteStore(config.vault_db_path)), KeySource(config.vault_key_path, {}))
    )

    done = run_rotate(data, {})
    assert done.returncode == 0, done.stderr
    new_id = parse_key((data / "vault.key").read_text(), "new").key_id
    assert new_id != old_id
    assert f"under key id {new_id}" in done.stdout
    assert key_ids(store) == {new_id}
    assert set(store.keys()) == {new_id}
    assert sorted(p.name for p in data.iterdir()) == ["vault.db", "vault.key"]
    assert_all_readable(
        Vault.open(keep(SqliteStore(config.vault_db_path)), KeySource(config.vault_key_path, {}))
    )


def test_rotation_through_the_environment_on_postgres(
    postgres: Postgres, tmp_path: Path, keep: Callable[[Store], Store]
) -> None:
    """MT5EXEC_VAULT_KEY the new key, MT5EXEC_VAULT_OLD_KEY the old one; killed halfway."""
    dsn = postgres.database()
    (tmp_path / "mt5exec.toml").write_text(f'[vault]\npostgres_dsn = "{dsn}"\n')
    old, new = random_key(), random_key()
    store = keep(PostgresStore(dsn))
    fill(Vault.open(store, KeySource(tmp_path / "unused", {KEY_ENV: old})))
    both = {KEY_ENV: new, OLD_KEY_ENV: old, "MT5EXEC_CONFIG": str(tmp_path / "mt5exec.toml")}

    kill_rotate_at(tmp_path, "record:2", both)
    assert len(key_ids(store)) == 2  # halfway: some records under each key
    assert_all_readable(Vault.open(keep(PostgresStore(dsn)), KeySource(tmp_path / "unused", both)))
    # Only one of the two keys while records need both: refused, naming the source.
    with pytest.raises(VaultKeyError, match=KEY_ENV):
        Vault.open(keep(PostgresStore(dsn)), KeySource(tmp_path / "unused", {KEY_ENV: new}))

    done = run_rotate(tmp_path, both)
    assert done.returncode == 0, done.stderr
    assert f"{OLD_KEY_ENV} is no longer needed" in done.stdout
    new_id = parse_key(new, "new").key_id
    assert key_ids(store) == {new_id} and set(store.keys()) == {new_id}
    assert_all_readable(
        Vault.open(keep(PostgresStore(dsn)), KeySource(tmp_path / "unused", {KEY_ENV: new}))
    )
    with pytest.raises(VaultKeyError):
        Vault.open(keep(PostgresStore(dsn)), KeySource(tmp_path / "unused", {KEY_ENV: old}))


def test_a_server_writing_during_a_rotation_strands_nothing(
    new_store: StoreFactory, tmp_path: Path
) -> None:
    """A running server keeps sealing under the key it loaded; once the rotation retired it,
    its next write finds the new key (file mode) instead of stranding a record."""
    server = Vault.open(new_store(), file_keys(tmp_path))
    fill(server)
    result = rotate(new_store(), file_keys(tmp_path))
    assert result.done and result.resealed == len(PASSWORDS)
    with pytest.raises(KeyRetired):  # what the server's store is told
        server.store.put(Row("mt5-9", "acme", server.keyring.current.key_id, b"0" * 12, b"x"))
    server.put("acme", "mt5-0", credential("mt5-0"))
    assert server.keyring.current.key_id == result.key_id
    assert key_ids(server.store) == {result.key_id}
    assert_all_readable(Vault.open(new_store(), file_keys(tmp_path)))


def test_an_unreadable_record_keeps_its_key_until_it_is_replaced(
    tmp_path: Path, keep: Callable[[Store], Store]
) -> None:
    store = keep(SqliteStore(tmp_path / "vault.db"))
    vault = Vault.open(store, file_keys(tmp_path))
    fill(vault)
    row = store.get("mt5-1")
    assert row is not None
    tamper(
        store,
        "mt5-1",
        "UPDATE mt5exec_vault_credentials SET ciphertext = %s WHERE instance_id = %s",
        flip(row.ciphertext),
    )
    result = rotate(store, file_keys(tmp_path))
    assert list(result.unreadable) == ["mt5-1"]
    assert result.kept == [row.key_id] and not result.done
    assert (tmp_path / "vault.key.old").exists()  # still needed
    assert_all_readable_but(Vault.open(store, file_keys(tmp_path)), "mt5-1")
    # Replaced (UpdateCredentials does this), the rotation finishes.
    Vault.open(store, file_keys(tmp_path)).put("acme", "mt5-1", credential("mt5-1"))
    again = rotate(store, file_keys(tmp_path))
    assert again.done and again.retired == [row.key_id]
    assert not (tmp_path / "vault.key.old").exists()
    assert_all_readable(Vault.open(store, file_keys(tmp_path)))


def assert_all_readable_but(vault: Vault, broken: str) -> None:
    for instance_id in PASSWORDS:
        if instance_id != broken:
            assert vault.get("acme", instance_id) == credential(instance_id)
    with pytest.raises(CredentialUnreadable):
        vault.get("acme", broken)


def test_the_vault_settings(tmp_path: Path) -> None:
    (tmp_path / "mt5exec.toml").write_text(
        '[vault]\nkey_file = "keys/master.key"\npostgres_dsn = "host=/run/pg dbname=x"\n'
    )
    config = load_config(
        tmp_path / "mt5exec.toml", env={}, overrides={"server.data_dir": str(tmp_path)}
    )
    assert config.vault.postgres_dsn == "host=/run/pg dbname=x"
    assert config.vault_key_path == Path.cwd() / "keys" / "master.key"
    default = load_config(env={}, overrides={"server.data_dir": str(tmp_path)})
    assert default.vault_key_path == tmp_path / "vault.key"
    assert default.vault_db_path == tmp_path / "vault.db"
    # MT5EXEC_VAULT_KEY is the key itself, not a setting.
    assert load_config(env={KEY_ENV: "x"}).vault == default.vault
