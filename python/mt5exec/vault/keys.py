"""The vault's master keys: where they come from, their ids and check values, and the
AES-256-GCM sealing of a credential under one.

A master key is 32 random bytes, from ``MT5EXEC_VAULT_KEY`` (64 hex digits or base64) or from
a key file (base64, 0600; ``<data_dir>/vault.key`` unless ``[vault] key_file`` says otherwise)
created on the first start. Its id is derived from the key (the first 8 bytes of an
HMAC-SHA256 of a fixed label, in hex): a record names the id of the key it is sealed under, so
that keys can be told apart during a rotation without storing anything about them in clear.
A check value (a fixed text sealed under the key) is stored with the vault for every key it
knows, so that a wrong key is recognised at start.

During a rotation in file mode the key file has two companions: ``<key file>.new`` (the next
key, before it takes the key file's place) and ``<key file>.old`` (the key it replaced, until
no record is sealed under it any more). Both are read as well, so every record stays readable.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from mt5exec.files import atomic_write
from mt5exec.vault.errors import VaultKeyError

KEY_ENV = "MT5EXEC_VAULT_KEY"
OLD_KEY_ENV = "MT5EXEC_VAULT_OLD_KEY"
# The configuration's variable for [vault] postgres_dsn, which may hold a password.
DSN_ENV = "MT5EXEC_VAULT_POSTGRES_DSN"
# What the server takes out of its environment at start: no child inherits them.
SECRET_ENVS = (KEY_ENV, OLD_KEY_ENV, DSN_ENV)
KEY_BYTES = 32
NONCE_BYTES = 12

_ID_LABEL = b"mt5exec vault key id"
_CHECK_TEXT = b"mt5exec vault key check"
_AAD_VERSION = "mt5exec-vault/1"
_HEX = re.compile(r"[0-9A-Fa-f]{64}")


@dataclass(frozen=True)
class MasterKey:
    """A 256-bit key and where it came from (an environment variable or a file path)."""

    key: bytes = field(repr=False)
    source: str
    key_id: str = field(init=False)

    def __post_init__(self) -> None:
        digest = hmac.new(self.key, _ID_LABEL, hashlib.sha256).digest()
        object.__setattr__(self, "key_id", digest[:8].hex())

    def seal(self, plaintext: bytes, aad: bytes) -> tuple[bytes, bytes]:
        """``(nonce, ciphertext)``: a fresh random 96-bit nonce for every call."""
        nonce = os.urandom(NONCE_BYTES)
        return nonce, AESGCM(self.key).encrypt(nonce, plaintext, aad)

    def open(self, nonce: bytes, ciphertext: bytes, aad: bytes) -> bytes:
        """The plaintext; raises ``InvalidTag`` for a wrong key, nonce, ciphertext or AAD."""
        return AESGCM(self.key).decrypt(nonce, ciphertext, aad)

    def check_value(self) -> tuple[bytes, bytes]:
        return self.seal(_CHECK_TEXT, self._check_aad())

    def verify(self, nonce: bytes, check: bytes) -> bool:
        try:
            return self.open(nonce, check, self._check_aad()) == _CHECK_TEXT
        except (InvalidTag, ValueError):
            return False

    def _check_aad(self) -> bytes:
        return f"{_AAD_VERSION}/check/{self.key_id}".encode()


def record_aad(owner: str, instance_id: str, key_id: str) -> bytes:
    """What a credential's ciphertext is bound to: moved to another instance or owner, or
    relabelled with another key id, it no longer decrypts."""
    return json.dumps([_AAD_VERSION, owner, instance_id, key_id]).encode()


def parse_key(text: str, source: str) -> MasterKey:
    """A key written as 64 hex digits or as base64 (standard or URL-safe) of 32 bytes."""
    text = text.strip()
    raw: bytes | None = None
    if _HEX.fullmatch(text):
        raw = bytes.fromhex(text)
    else:
        with contextlib.suppress(binascii.Error, ValueError):
            raw = base64.b64decode(text.replace("-", "+").replace("_", "/"), validate=True)
    if raw is None or len(raw) != KEY_BYTES:
        raise VaultKeyError(
            f"{source}: not a 256-bit key (expected 64 hex digits or the base64 of 32 bytes, "
            "e.g. from `openssl rand -base64 32`)"
        )
    return MasterKey(raw, source)


def generate(source: str) -> MasterKey:
    return MasterKey(os.urandom(KEY_BYTES), source)


def encode(key: MasterKey) -> str:
    return base64.b64encode(key.key).decode()


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class KeyFiles:
    """The key file and its rotation companions (``.new``, ``.old``)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.new = path.with_name(path.name + ".new")
        self.old = path.with_name(path.name + ".old")

    def read(self, path: Path) -> MasterKey | None:
        """The key in ``path``; None when there is no such file."""
        try:
            text = path.read_text()
        except FileNotFoundError:
            return None
        except OSError as e:
            raise VaultKeyError(f"{path}: cannot read the vault key: {e.strerror or e}") from None
        return parse_key(text, str(path))

    def write(self, path: Path, key: MasterKey) -> None:
        """Writes ``key`` to ``path`` (0600) durably: the file is whole or absent."""
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        atomic_write(path, (encode(key) + "\n").encode())

    def create(self) -> MasterKey:
        """A new key in the key file (first start)."""
        key = generate(str(self.path))
        try:
            self.write(self.path, key)
        except OSError as e:
            raise VaultKeyError(f"{self.path}: cannot create the vault key: {e}") from None
        return key


@dataclass(frozen=True)
class Keyring:
    """The key new records are sealed under (``current``) and every key that may still be
    needed to read one."""

    current: MasterKey
    others: tuple[MasterKey, ...] = ()

    def __iter__(self) -> Iterator[MasterKey]:
        yield self.current
        yield from self.others

    def get(self, key_id: str) -> MasterKey | None:
        return next((k for k in self if k.key_id == key_id), None)

    @property
    def ids(self) -> set[str]:
        return {k.key_id for k in self}


def take_from_environ() -> dict[str, str]:
    """Removes the vault's secrets from this process's environment and returns them: the
    workers and the history process it starts (from Python or Rust alike: ``os.environ.pop``
    unsets the variable for the whole process) never see them."""
    return {name: os.environ.pop(name) for name in SECRET_ENVS if name in os.environ}


class KeySource:
    """Where the keys come from: ``MT5EXEC_VAULT_KEY`` (and ``MT5EXEC_VAULT_OLD_KEY`` while a
    rotation is not finished) when set, else the key file and its companions."""

    def __init__(self, key_file: Path, env: Mapping[str, str] | None = None) -> None:
        environ = os.environ if env is None else env
        self.files = KeyFiles(key_file)
        self._env_key = environ.get(KEY_ENV, "")
        self._env_old = environ.get(OLD_KEY_ENV, "")

    @property
    def from_env(self) -> bool:
        return bool(self._env_key)

    @property
    def name(self) -> str:
        """The key's source as an operator would look for it."""
        return KEY_ENV if self.from_env else str(self.files.path)

    def load(self, *, create: bool) -> Keyring | None:
        """The keys as they are now; None when the key file does not exist and ``create`` is
        false. With ``create``, a missing key file is made (a new vault)."""
        if self.from_env:
            old = parse_key(self._env_old, OLD_KEY_ENV) if self._env_old else None
            return Keyring(parse_key(self._env_key, KEY_ENV), (old,) if old else ())
        if self._env_old:
            raise VaultKeyError(f"{OLD_KEY_ENV} is set but {KEY_ENV} is not: set both")
        current = self.files.read(self.files.path)
        if current is None:
            if not create:
                return None
            current = self.files.create()
        others = [self.files.read(p) for p in (self.files.old, self.files.new)]
        return Keyring(current, tuple(k for k in others if k is not None))
