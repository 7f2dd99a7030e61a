"""Where the vault's records live: an embedded SQLite file (the default, ``<data_dir>/vault.db``,
0600) or a PostgreSQL database (``[vault] postgres_dsn``). Both hold two tables:

- ``mt5exec_vault_keys``: one row per key a record may be sealed under (its id and check
  value); a key leaves it once no record needs it (the end of a rotation);
- ``mt5exec_vault_credentials``: one row per instance (seed 002's ``broker_credentials``):
  its owner, the key id, the nonce and the AES-256-GCM ciphertext of login, password and server.

Every change is one transaction (SQLite: rollback journal, ``synchronous=FULL``): a crash
leaves each record either as it was or as it became. A record is written only while its key is
listed, and a key is dropped only while no record names it, both under a lock on the key's row,
so a rotation finishing beside a running server cannot strand a record.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from mt5exec.vault.errors import KeyRetired, VaultUnavailable

_KEYS = "mt5exec_vault_keys"
_CREDENTIALS = "mt5exec_vault_credentials"


@dataclass(frozen=True)
class Row:
    """A sealed credential as stored."""

    instance_id: str
    owner: str
    key_id: str
    nonce: bytes
    ciphertext: bytes


class _Cursor(Protocol):
    def execute(self, query: Any, params: Any = ..., /) -> Any: ...
    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...


class Store:
    """The SQL both backends share; subclasses open the connection and the transactions."""

    location: str
    # A lock on the key's row while a record is written under it / the key is dropped.
    _share = ""
    _exclusive = ""
    _blob = "BLOB"

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def _transaction(self) -> contextlib.AbstractContextManager[_Cursor]:
        raise NotImplementedError

    def _q(self, sql: str) -> str:
        return sql

    @contextlib.contextmanager
    def _tx(self) -> Iterator[_Cursor]:
        with self._lock:
            try:
                with self._transaction() as cur:
                    yield cur
            except (KeyRetired, VaultUnavailable):
                raise
            except Exception as e:
                if not self._is_db_error(e):
                    raise
                raise VaultUnavailable(f"{self.location}: {e}") from None

    def _is_db_error(self, e: Exception) -> bool:
        return isinstance(e, sqlite3.Error | OSError)

    def _create_schema(self) -> None:
        with self._tx() as cur:
            cur.execute(
                f"CREATE TABLE IF NOT EXISTS {_KEYS} (key_id TEXT PRIMARY KEY, "
                f"check_nonce {self._blob} NOT NULL, check_value {self._blob} NOT NULL)"
            )
            cur.execute(
                f"CREATE TABLE IF NOT EXISTS {_CREDENTIALS} (instance_id TEXT PRIMARY KEY, "
                f"owner TEXT NOT NULL, key_id TEXT NOT NULL, nonce {self._blob} NOT NULL, "
                f"ciphertext {self._blob} NOT NULL)"
            )

    # -- keys -----------------------------------------------------------------------------

    def keys(self) -> dict[str, tuple[bytes, bytes]]:
        """Key id -> (check nonce, check value) of every key the vault lists."""
        with self._tx() as cur:
            cur.execute(f"SELECT key_id, check_nonce, check_value FROM {_KEYS}")
            return {k: (bytes(n), bytes(c)) for k, n, c in cur.fetchall()}

    def add_key(self, key_id: str, check_nonce: bytes, check_value: bytes) -> None:
        with self._tx() as cur:
            cur.execute(
                self._q(
                    f"INSERT INTO {_KEYS} (key_id, check_nonce, check_value) VALUES (%s, %s, %s) "
                    "ON CONFLICT (key_id) DO NOTHING"
                ),
                (key_id, check_nonce, check_value),
            )

    def retire_key(self, key_id: str) -> bool:
        """Drops the key when no record names it; True when it is gone."""
        with self._tx() as cur:
            cur.execute(
                self._q(f"SELECT 1 FROM {_KEYS} WHERE key_id = %s{self._exclusive}"), (key_id,)
            )
            if cur.fetchone() is None:
                return True
            cur.execute(
                self._q(f"SELECT 1 FROM {_CREDENTIALS} WHERE key_id = %s LIMIT 1"), (key_id,)
            )
            if cur.fetchone() is not None:
                return False
            cur.execute(self._q(f"DELETE FROM {_KEYS} WHERE key_id = %s"), (key_id,))
            return True

    def key_ids_in_use(self) -> set[str]:
        with self._tx() as cur:
            cur.execute(f"SELECT DISTINCT key_id FROM {_CREDENTIALS}")
            return {k for (k,) in cur.fetchall()}

    # -- records --------------------------------------------------------------------------

    def get(self, instance_id: str) -> Row | None:
        with self._tx() as cur:
            cur.execute(
                self._q(
                    f"SELECT instance_id, owner, key_id, nonce, ciphertext FROM {_CREDENTIALS} "
                    "WHERE instance_id = %s"
                ),
                (instance_id,),
            )
            found = cur.fetchone()
        return None if found is None else _row(found)

    def rows(self) -> list[Row]:
        with self._tx() as cur:
            cur.execute(
                f"SELECT instance_id, owner, key_id, nonce, ciphertext FROM {_CREDENTIALS} "
                "ORDER BY instance_id"
            )
            return [_row(r) for r in cur.fetchall()]

    def put(self, row: Row) -> None:
        """Inserts or replaces the instance's record; ``KeyRetired`` when its key is not
        listed (any more)."""
        with self._tx() as cur:
            self._require_key(cur, row.key_id)
            cur.execute(
                self._q(
                    f"INSERT INTO {_CREDENTIALS} (instance_id, owner, key_id, nonce, ciphertext) "
                    "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (instance_id) DO UPDATE SET "
                    "owner = excluded.owner, key_id = excluded.key_id, nonce = excluded.nonce, "
                    "ciphertext = excluded.ciphertext"
                ),
                (row.instance_id, row.owner, row.key_id, row.nonce, row.ciphertext),
            )

    def replace(self, row: Row, expected: Row) -> bool:
        """Replaces ``expected`` by ``row`` unless the record changed since it was read (a
        rotation never overwrites a newer write); True when replaced."""
        with self._tx() as cur:
            self._require_key(cur, row.key_id)
            cur.execute(
                self._q(
                    f"UPDATE {_CREDENTIALS} SET key_id = %s, nonce = %s, ciphertext = %s "
                    "WHERE instance_id = %s AND key_id = %s AND nonce = %s"
                ),
                (
                    row.key_id,
                    row.nonce,
                    row.ciphertext,
                    expected.instance_id,
                    expected.key_id,
                    expected.nonce,
                ),
            )
            changed: int = cur.rowcount  # type: ignore[attr-defined]
            return changed == 1

    def delete(self, instance_id: str) -> None:
        with self._tx() as cur:
            cur.execute(
                self._q(f"DELETE FROM {_CREDENTIALS} WHERE instance_id = %s"), (instance_id,)
            )

    def _require_key(self, cur: _Cursor, key_id: str) -> None:
        cur.execute(self._q(f"SELECT 1 FROM {_KEYS} WHERE key_id = %s{self._share}"), (key_id,))
        if cur.fetchone() is None:
            raise KeyRetired(f"key id {key_id} is not listed in {self.location}")

    def close(self) -> None:
        raise NotImplementedError


def _row(values: Any) -> Row:
    instance_id, owner, key_id, nonce, ciphertext = values
    return Row(instance_id, owner, key_id, bytes(nonce), bytes(ciphertext))


class SqliteStore(Store):
    """The embedded store: one SQLite file, 0600."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.location = str(path)
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            # 0600 before SQLite sees it; its journal takes the same mode.
            os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600))
            os.chmod(path, 0o600)
            self._db = sqlite3.connect(
                path, isolation_level=None, check_same_thread=False, timeout=30.0
            )
            self._db.execute("PRAGMA synchronous = FULL")
        except (OSError, sqlite3.Error) as e:
            raise VaultUnavailable(f"{path}: cannot open the vault: {e}") from None
        self._create_schema()

    def _q(self, sql: str) -> str:
        return sql.replace("%s", "?")

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[_Cursor]:
        cur = self._db.cursor()
        # IMMEDIATE: the write lock from the start, so that a check and the write it guards
        # are one step for every other connection.
        cur.execute("BEGIN IMMEDIATE")
        try:
            yield cur
        except BaseException:
            self._db.rollback()
            raise
        else:
            self._db.commit()
        finally:
            cur.close()

    def close(self) -> None:
        with self._lock:
            self._db.close()


class PostgresStore(Store):
    """The vault in PostgreSQL (psycopg 3); one connection, opened again after a failure."""

    _share = " FOR SHARE"
    _exclusive = " FOR UPDATE"
    _blob = "BYTEA"

    def __init__(self, dsn: str) -> None:
        import psycopg
        from psycopg.conninfo import conninfo_to_dict

        super().__init__()
        self._psycopg = psycopg
        self._dsn = dsn
        try:
            shown = conninfo_to_dict(dsn)
        except psycopg.Error as e:
            raise VaultUnavailable(f"[vault] postgres_dsn: {e}") from None
        shown.pop("password", None)
        self.location = "PostgreSQL " + " ".join(f"{k}={v}" for k, v in sorted(shown.items()))
        self._conn: Any = None
        self._create_schema()

    def _is_db_error(self, e: Exception) -> bool:
        return isinstance(e, self._psycopg.Error)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[_Cursor]:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = self._psycopg.connect(self._dsn, autocommit=True, connect_timeout=10)
        with self._conn.transaction(), self._conn.cursor() as cur:
            yield cur

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
