"""API keys: ``mt5x_<id>_<secret>``, shown once, kept only as a keyed hash.

The store is ``<data_dir>/auth/api_keys.json`` (0600, replaced atomically): per key its id,
role, owner, label, creation and revocation times and ``HMAC-SHA256(server secret, token)``.
The server secret is 32 random bytes in ``<data_dir>/auth/hmac.key`` (0600), made with the
store; without it no stored key can be checked, so a store without its secret is an error.
A stolen store gives no usable token: the hash is keyed, and the secret has 256 bits.

Verifying a token is a dict lookup by id and one HMAC, compared in constant time. The server
and the ``mt5exec keys`` command may both change the store: each change is made under an
exclusive lock on ``auth/.lock`` from the file as it is then, and a server sees the file's
changes at the latest a second after they were made (a key created by the command works at
once: an unknown id reads the file again).
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from mt5exec.auth.principal import Principal, Role, TokenRefused

log = logging.getLogger("mt5exec.auth")

PREFIX = "mt5x"
_TOKEN = re.compile(rf"{PREFIX}_([0-9a-f]{{12}})_([A-Za-z0-9_-]{{43}})")
# What an owner may be (as an instance's owner).
_OWNER = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
LABEL_MAX = 128
# How often (seconds) a server looks whether the store file changed.
RELOAD_INTERVAL_S = 1.0


class KeyRefused(Exception):
    """A key operation refused: ``field`` names what is wrong."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class ApiKey:
    """A key as stored (its token is not: only ``digest``)."""

    key_id: str
    role: Role
    owner: str | None
    label: str
    created: float
    revoked: float | None
    digest: bytes
    # Made once (every call of the key is this principal).
    principal: Principal = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        principal = Principal(self.key_id, self.role, self.owner, "api_key")
        object.__setattr__(self, "principal", principal)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.key_id,
            "role": self.role.value,
            "owner": self.owner,
            "label": self.label,
            "created": _iso(self.created),
            "revoked": None if self.revoked is None else _iso(self.revoked),
            "hmac_sha256": self.digest.hex(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ApiKey:
        return cls(
            key_id=str(data["id"]),
            role=Role.parse(data["role"]),
            owner=None if data["owner"] is None else str(data["owner"]),
            label=str(data.get("label", "")),
            created=_epoch(data["created"]),
            revoked=None if data.get("revoked") is None else _epoch(data["revoked"]),
            digest=bytes.fromhex(data["hmac_sha256"]),
        )


def _iso(t: float) -> str:
    return datetime.datetime.fromtimestamp(t, datetime.UTC).isoformat(timespec="microseconds")


def _epoch(text: str) -> float:
    return datetime.datetime.fromisoformat(text).timestamp()


def check_grant(role: Role, owner: str | None) -> str | None:
    """The owner a key of ``role`` is for: none for an admin (every owner's), a valid owner
    for the others; KeyRefused naming ``owner`` otherwise."""
    if role is Role.ADMIN:
        if owner:
            raise KeyRefused("owner", "owner: an admin key is every owner's; give none")
        return None
    if not owner:
        raise KeyRefused("owner", f"owner: required for a {role.value} key")
    if not _OWNER.fullmatch(owner) or owner in (".", ".."):
        raise KeyRefused("owner", f"owner: {owner!r} must match [A-Za-z0-9][A-Za-z0-9_.-]{{0,63}}")
    return owner


def _write_private(path: Path, data: bytes) -> None:
    """Replaces ``path`` with ``data`` atomically (0600, synced before and after the rename)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class KeyStore:
    """The API keys of one data dir."""

    def __init__(self, data_dir: Path) -> None:
        self.directory = data_dir / "auth"
        self.path = self.directory / "api_keys.json"
        self.secret_path = self.directory / "hmac.key"
        self.admin_key_path = data_dir / "admin.key"
        self._lock_path = self.directory / ".lock"
        self._secret = b""
        self._keys: dict[str, ApiKey] = {}
        self._stamp: tuple[int, int, int] | None = None
        self._checked = 0.0
        # Called with the ids of keys found revoked when the file is read again.
        self.on_revoked: Callable[[list[str]], None] | None = None

    # -- files ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _file_stamp(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def _read(self) -> None:
        """Loads the store and its secret as they are on disk (OSError, ValueError)."""
        stamp = self._file_stamp()
        data = json.loads(self.path.read_text())
        if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
            raise ValueError(f"{self.path}: not an API key store")
        keys = {}
        for entry in data["keys"]:
            key = ApiKey.from_json(entry)
            keys[key.key_id] = key
        if not self._secret:
            try:
                secret = self.secret_path.read_bytes()
            except FileNotFoundError:
                raise ValueError(
                    f"{self.secret_path} is missing: the API keys in {self.path} cannot be "
                    "checked without it (restore it, or move both away to start anew)"
                ) from None
            if len(secret) < 32:
                raise ValueError(f"{self.secret_path}: too short to be this store's secret")
            self._secret = secret
        newly_revoked = [
            k.key_id
            for k in keys.values()
            if k.revoked is not None
            and (old := self._keys.get(k.key_id)) is not None
            and old.revoked is None
        ]
        self._keys, self._stamp = keys, stamp
        if newly_revoked and self.on_revoked is not None:
            self.on_revoked(newly_revoked)

    def _save(self) -> None:
        body = {"version": 1, "keys": [k.to_json() for k in self._keys.values()]}
        _write_private(self.path, (json.dumps(body, indent=2) + "\n").encode())
        self._stamp = self._file_stamp()

    def open(self, *, create_admin: bool = True) -> str | None:
        """Loads the store; on an empty data dir (no store) makes it with its secret and, with
        ``create_admin``, a first admin key, whose token is written to ``admin.key`` (0600)
        and returned. Raises ValueError (or OSError) for a store that cannot be used."""
        with self._locked():
            if self.path.exists():
                self._read()
                return None
            self._secret = secrets.token_bytes(32)
            _write_private(self.secret_path, self._secret)
            self._keys = {}
            token = None
            if create_admin:
                token, key = self._new(Role.ADMIN, None, "first admin (admin.key)")
                self._keys[key.key_id] = key
                _write_private(self.admin_key_path, (token + "\n").encode())
            self._save()
            return token

    # -- keys ----------------------------------------------------------------------------

    def _digest(self, token: str) -> bytes:
        return hmac.digest(self._secret, token.encode(), hashlib.sha256)

    def _new(self, role: Role, owner: str | None, label: str) -> tuple[str, ApiKey]:
        key_id = secrets.token_hex(6)
        while key_id in self._keys:
            key_id = secrets.token_hex(6)
        token = f"{PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"
        key = ApiKey(key_id, role, owner, label, time.time(), None, self._digest(token))
        return token, key

    def create(self, role: Role, owner: str | None, label: str = "") -> tuple[str, ApiKey]:
        """A new key: its token (shown once, kept nowhere) and what is stored of it."""
        owner = check_grant(role, owner)
        if len(label) > LABEL_MAX:
            raise KeyRefused("label", f"label: at most {LABEL_MAX} characters")
        with self._locked():
            self._read()
            token, key = self._new(role, owner, label)
            self._keys[key.key_id] = key
            self._save()
        log.info("API key %s created (%s, owner %s)", key.key_id, role.value, owner or "*")
        return token, key

    def revoke(self, key_id: str) -> ApiKey:
        """Revokes a key (again: no change); KeyRefused when there is none of that id."""
        with self._locked():
            self._read()
            key = self._keys.get(key_id)
            if key is None:
                raise KeyRefused("key_id", f"key_id: no API key {key_id!r}")
            if key.revoked is None:
                key = replace(key, revoked=time.time())
                self._keys[key_id] = key
                self._save()
                log.warning("API key %s revoked", key_id)
        return key

    def list_keys(self) -> list[ApiKey]:
        self.refresh()
        return sorted(self._keys.values(), key=lambda k: (k.created, k.key_id))

    def refresh(self, force: bool = False) -> None:
        """Reads the file again if it changed (at most once a second unless ``force``)."""
        now = time.monotonic()
        if not force and now - self._checked < RELOAD_INTERVAL_S:
            return
        self._checked = now
        if self._file_stamp() != self._stamp:
            try:
                with self._locked():
                    self._read()
            except (OSError, ValueError) as e:
                # The keys read last stay in force (a half-edited file must not lock out).
                log.error("API key store not read again: %s", e)

    def verify(self, token: str) -> Principal:
        """The principal of an API key token; TokenRefused when it is none of ours or is
        revoked. (A server calls ``refresh`` every second, so that what ``mt5exec keys``
        changed is in force within one.)"""
        match = _TOKEN.fullmatch(token)
        if match is None:
            raise TokenRefused("TOKEN_INVALID", "not a valid API key")
        key_id = match.group(1)
        key = self._keys.get(key_id)
        if key is None:
            self.refresh(force=True)  # made by `mt5exec keys create` a moment ago?
            key = self._keys.get(key_id)
        if key is None or not hmac.compare_digest(key.digest, self._digest(token)):
            raise TokenRefused("TOKEN_INVALID", "not a valid API key")
        if key.revoked is not None:
            raise TokenRefused("TOKEN_REVOKED", f"API key {key_id} is revoked")
        return key.principal
