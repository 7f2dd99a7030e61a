"""The credential vault: MT5 logins sealed with AES-256-GCM under a master key, in an
embedded SQLite file or in PostgreSQL. See docs/security.md ("Credential vault")."""

from __future__ import annotations

from collections.abc import Mapping

from mt5exec.config import ServerConfig
from mt5exec.vault.credentials import Credential, Vault
from mt5exec.vault.errors import (
    CredentialUnreadable,
    KeyRetired,
    VaultError,
    VaultKeyError,
    VaultUnavailable,
)
from mt5exec.vault.keys import KeySource
from mt5exec.vault.store import PostgresStore, SqliteStore, Store

__all__ = [
    "Credential",
    "CredentialUnreadable",
    "KeyRetired",
    "Vault",
    "VaultError",
    "VaultKeyError",
    "VaultUnavailable",
    "key_source",
    "open_store",
    "open_vault",
]


def open_store(config: ServerConfig) -> Store:
    if config.vault.postgres_dsn:
        return PostgresStore(config.vault.postgres_dsn)
    return SqliteStore(config.vault_db_path)


def key_source(config: ServerConfig, env: Mapping[str, str] | None = None) -> KeySource:
    return KeySource(config.vault_key_path, env)


def open_vault(config: ServerConfig, env: Mapping[str, str] | None = None) -> Vault:
    """The server's vault; raises ``VaultKeyError`` (wrong or missing key) or
    ``VaultUnavailable`` (the store cannot be opened)."""
    store = open_store(config)
    try:
        return Vault.open(store, key_source(config, env))
    except BaseException:
        store.close()
        raise
