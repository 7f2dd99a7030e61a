"""The credential vault: an MT5 account's login, password and server, sealed per instance
with AES-256-GCM under the master key, in a store (``mt5exec.vault.store``).

Opening the vault checks its keys: every key the store lists or a record names must be among
the keys given, and each given key the store lists must pass its check value. Otherwise
``VaultKeyError`` names the key's source (``MT5EXEC_VAULT_KEY`` or the key file's path): a wrong
key never opens an empty-looking vault. A fresh vault lists the current key (and, in file mode,
creates the key file).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag

from mt5exec.vault.errors import CredentialUnreadable, KeyRetired, VaultKeyError
from mt5exec.vault.keys import Keyring, KeySource, MasterKey, record_aad
from mt5exec.vault.store import Row, Store

log = logging.getLogger("mt5exec.vault")


@dataclass(frozen=True)
class Credential:
    """Seed 002's ``broker_credentials``: what a terminal logs in with."""

    login: int
    password: str = field(repr=False)
    server: str

    def encode(self) -> bytes:
        return json.dumps(
            {"login": self.login, "password": self.password, "server": self.server}
        ).encode()

    @classmethod
    def decode(cls, raw: bytes) -> Credential:
        value = json.loads(raw)
        return cls(int(value["login"]), str(value["password"]), str(value["server"]))


def seal(key: MasterKey, owner: str, instance_id: str, credential: Credential) -> Row:
    nonce, ciphertext = key.seal(credential.encode(), record_aad(owner, instance_id, key.key_id))
    return Row(instance_id, owner, key.key_id, nonce, ciphertext)


def unseal(key: MasterKey, row: Row, owner: str | None = None) -> Credential:
    """The row's credential (bound to ``owner``, by default the row's own); raises
    ``CredentialUnreadable``."""
    aad = record_aad(owner if owner is not None else row.owner, row.instance_id, key.key_id)
    try:
        return Credential.decode(key.open(row.nonce, row.ciphertext, aad))
    except (InvalidTag, ValueError, KeyError, TypeError):
        raise CredentialUnreadable(
            f"the credential of {row.instance_id} does not decrypt under key id {key.key_id} "
            "(altered ciphertext, nonce, owner, instance id or key id)"
        ) from None


def check_keys(store: Store, keyring: Keyring) -> None:
    """Raises ``VaultKeyError`` unless ``keyring`` opens every record of ``store``; lists
    the current key when the store does not yet."""
    listed = store.keys()
    for key in keyring:
        if key.key_id in listed and not key.verify(*listed[key.key_id]):
            raise VaultKeyError(
                f"the vault key from {key.source} (key id {key.key_id}) fails the key check "
                f"of {store.location}"
            )
    needed = set(listed) | store.key_ids_in_use()
    missing = sorted(needed - keyring.ids)
    if missing:
        current = keyring.current
        raise VaultKeyError(
            f"the vault key from {current.source} (key id {current.key_id}) does not open "
            f"{store.location}: it needs key id(s) {', '.join(missing)}. Give the vault's key "
            "(during an unfinished rotation also the other one: see docs/security.md)"
        )
    if keyring.current.key_id not in listed:
        store.add_key(keyring.current.key_id, *keyring.current.check_value())


class Vault:
    """Credentials by instance. Thread-safe; every call is a transaction of the store."""

    def __init__(self, store: Store, source: KeySource, keyring: Keyring) -> None:
        self.store = store
        self.source = source
        self.keyring = keyring

    @classmethod
    def open(cls, store: Store, source: KeySource) -> Vault:
        """Checks the keys (``VaultKeyError``); a fresh vault gets its key."""
        fresh = not store.keys() and not store.key_ids_in_use()
        keyring = source.load(create=fresh)
        if keyring is None:
            raise VaultKeyError(
                f"the vault key file {source.name} does not exist, but {store.location} holds "
                "credentials: restore the key file (or set MT5EXEC_VAULT_KEY)"
            )
        check_keys(store, keyring)
        log.info(
            "credential vault %s, key id %s from %s",
            store.location,
            keyring.current.key_id,
            source.name,
        )
        return cls(store, source, keyring)

    def _reload(self) -> bool:
        """Loads the keys again (a rotation in file mode replaced them); False when they
        come from the environment, which cannot change."""
        if self.source.from_env:
            return False
        keyring = self.source.load(create=False)
        if keyring is None:
            return False
        self.keyring = keyring
        return True

    def put(self, owner: str, instance_id: str, credential: Credential) -> None:
        """Seals and stores (replacing) the instance's credential."""
        try:
            self.store.put(seal(self.keyring.current, owner, instance_id, credential))
        except KeyRetired:
            if not self._reload():
                raise KeyRetired(
                    f"the vault key from {self.source.name} was retired by a rotation: restart "
                    "the server with the new key"
                ) from None
            self.store.put(seal(self.keyring.current, owner, instance_id, credential))

    def get(self, owner: str, instance_id: str) -> Credential | None:
        """The instance's credential, None when it has none; ``CredentialUnreadable`` when
        its record does not decrypt."""
        row = self.store.get(instance_id)
        if row is None:
            return None
        if row.owner != owner:
            raise CredentialUnreadable(
                f"the credential of {instance_id} is recorded for another owner"
            )
        key = self.keyring.get(row.key_id)
        if key is None and self._reload():
            key = self.keyring.get(row.key_id)
        if key is None:
            raise CredentialUnreadable(
                f"the credential of {instance_id} is sealed under key id {row.key_id}, which "
                f"this server does not have (its keys: {', '.join(sorted(self.keyring.ids))})"
            )
        return unseal(key, row, owner)

    def delete(self, instance_id: str) -> None:
        self.store.delete(instance_id)

    def prune(self, keep: set[str]) -> list[str]:
        """Deletes the records of instances not in ``keep`` (left by a crash between storing
        a credential and recording its instance); returns their ids."""
        gone = [row.instance_id for row in self.store.rows() if row.instance_id not in keep]
        for instance_id in gone:
            self.store.delete(instance_id)
        return gone

    def close(self) -> None:
        self.store.close()
