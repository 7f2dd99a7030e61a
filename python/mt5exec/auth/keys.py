"""API keys: ``mt5x_<id>_<secret>``, shown once, kept only as a keyed hash.

The store is ``<data_dir>/auth/api_keys.json`` (0600, replaced atomically): per key its id,
role, owner, label, creation and revocation times and ``HMAC-SHA256(server secret, token)``.
The server secret is 32 random bytes in ``<data_dir>/auth/hmac.key`` (0600), made with the
store; without it no stored key can be checked, so a store without its secret is an error.
A stolen store gives no usable token: the hash is keyed, and the secret has 256 bits.

Verifying a token is a dict lookup by id and one HMAC, compared in constant time. The server
and the ``mt5exec keys`` command may both change the store: each change is made under an
exclusive lock on ``auth/.lock`` from the file as it is then, and a server sees the file's
changes at the latest a second after they were made. A key created by the command works at
once: each change writes a new random value into ``auth/generation``, which a server has
mapped into memory, and an id the server does not know makes it read the file again only when
that value moved (so a flood of made-up ids costs no file access; after a look that failed,
one a second at most). A server never waits for the lock: while another holds it, the server
looks again later.
"""

from __future__ import annotations

import contextlib
import datetime
import enum
import fcntl
import hashlib
import hmac
import json
import logging
import mmap
import os
import re
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from mt5exec.auth.principal import Principal, Role, TokenRefused
from mt5exec.files import atomic_write
from mt5exec.reasons import Reason

log = logging.getLogger("mt5exec.auth")

PREFIX = "mt5x"
# Verified tokens remembered at most (the cache is emptied when full).
_VERIFIED_MAX = 10_000
_TOKEN = re.compile(rf"{PREFIX}_([0-9a-f]{{12}})_([A-Za-z0-9_-]{{43}})")
# What an owner may be (as an instance's owner).
_OWNER = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
LABEL_MAX = 128
# How often (seconds) a server looks whether the store file changed.
RELOAD_INTERVAL_S = 1.0
# After a look for an unknown key id that failed (store locked or unreadable), the next
# such look comes this much later (seconds) at the earliest.
UNKNOWN_ID_RETRY_S = 1.0
_GENERATION_SIZE = 8


class Refresh(enum.Enum):
    """What ``KeyStore.refresh`` did."""

    SKIPPED = "skipped"  # looked less than RELOAD_INTERVAL_S ago
    UNCHANGED = "unchanged"
    READ = "read"
    BUSY = "busy"  # the store was being changed (locked): not read, looked at again next time
    FAILED = "failed"  # not readable: the keys read last stay in force


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


def _entry_name(index: int, entry: object) -> str:
    """An entry of the store's ``keys`` as an error names it."""
    key_id = entry.get("id") if isinstance(entry, dict) else None
    if isinstance(key_id, str):
        return f"keys[{index}] (id {key_id[:40]!r})"
    return f"keys[{index}]"


def _why(e: Exception) -> str:
    if isinstance(e, KeyError):
        return f"{e.args[0]!r} is missing"
    return str(e)


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
    atomic_write(path, data)


class KeyStore:
    """The API keys of one data dir."""

    def __init__(self, data_dir: Path) -> None:
        self.directory = data_dir / "auth"
        self.path = self.directory / "api_keys.json"
        self.secret_path = self.directory / "hmac.key"
        self.admin_key_path = data_dir / "admin.key"
        self._lock_path = self.directory / ".lock"
        self.generation_path = self.directory / "generation"
        self._secret = b""
        self._keys: dict[str, ApiKey] = {}
        # Tokens verified, by token: their key (a hit counts while it is still the current one).
        self._verified: dict[str, ApiKey] = {}
        self._stamp: tuple[int, int, int] | None = None
        self._checked = 0.0
        # ``generation`` mapped (read from memory: no file access), the value it had before
        # the last successful look at the store, how many changes this store made, and when
        # an unknown id may look again after a failed look.
        self._generation: mmap.mmap | None = None
        self._seen_generation = b""
        self._saves = 0
        self._unknown_retry_at = 0.0
        # The last failure to read the file again, so that it is logged once.
        self._failure: tuple[tuple[int, int, int] | None, str] | None = None
        # How many times ``refresh`` looked at the file (a stat).
        self.disk_looks = 0
        # Called with the ids of keys found revoked when the file is read again.
        self.on_revoked: Callable[[list[str]], None] | None = None

    # -- files ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self, *, wait: bool = True) -> Iterator[bool]:
        """Holds the store's lock; without ``wait``, yields False at once when another
        holds it. A change saved meanwhile is announced once the lock is released (a server
        that sees it then finds the lock free)."""
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        saves = self._saves
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            os.close(fd)
            if self._saves != saves:
                self._announce()

    def _announce(self) -> None:
        """A new value in ``generation``: the servers that mapped it see the store changed."""
        fd = os.open(self.generation_path, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            os.pwrite(fd, secrets.token_bytes(_GENERATION_SIZE), 0)
        finally:
            os.close(fd)

    def _map_generation(self) -> None:
        """Maps ``generation`` (made when missing), read-only: verifying reads it from
        memory. (Under the lock: nobody announces meanwhile.)"""
        fd = os.open(self.generation_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if os.fstat(fd).st_size < _GENERATION_SIZE:
                os.pwrite(fd, secrets.token_bytes(_GENERATION_SIZE), 0)
            self._generation = mmap.mmap(fd, _GENERATION_SIZE, prot=mmap.PROT_READ)
        finally:
            os.close(fd)

    def _generation_now(self) -> bytes:
        return b"" if self._generation is None else self._generation[:]

    def _file_stamp(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def _read(self) -> None:
        """Loads the store and its secret as they are on disk (OSError, ValueError)."""
        stamp = self._file_stamp()
        try:
            data = json.loads(self.path.read_text())
        except RecursionError:
            raise ValueError(f"{self.path}: nested too deeply to be an API key store") from None
        if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
            raise ValueError(f"{self.path}: not an API key store")
        keys = {}
        for index, entry in enumerate(data["keys"]):
            try:
                if not isinstance(entry, dict):
                    raise ValueError(f"not an object but {type(entry).__name__}")
                key = ApiKey.from_json(entry)
            except (KeyError, TypeError, ValueError) as e:
                raise ValueError(f"{self.path}: {_entry_name(index, entry)}: {_why(e)}") from None
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
        self._saves += 1

    def open(self, *, create_admin: bool = True) -> str | None:
        """Loads the store; on an empty data dir (no store) makes it with its secret and, with
        ``create_admin``, a first admin key, whose token is written to ``admin.key`` (0600)
        and returned. Raises ValueError (or OSError) for a store that cannot be used."""
        with self._locked():
            self._map_generation()
            if self.path.exists():
                generation = self._generation_now()
                self._read()
                self._seen_generation = generation
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

    def refresh(self, force: bool = False) -> Refresh:
        """Reads the file again if it changed (at most once a second unless ``force``).
        Never waits: while another holds the store's lock it returns BUSY (the next call
        looks again). A file that cannot be read is logged (once) and FAILED: the keys read
        last stay in force (a half-edited file must not lock anyone out)."""
        now = time.monotonic()
        if not force and now - self._checked < RELOAD_INTERVAL_S:
            return Refresh.SKIPPED
        self._checked = now
        self.disk_looks += 1
        generation = self._generation_now()  # before looking: a later change is seen next time
        stamp = None
        try:
            stamp = self._file_stamp()
            if stamp == self._stamp:
                self._seen_generation = generation
                return Refresh.UNCHANGED
            with self._locked(wait=False) as locked:
                if not locked:
                    return Refresh.BUSY
                self._read()
        except (OSError, ValueError) as e:
            failure = (stamp, str(e))
            if failure != self._failure:
                self._failure = failure
                log.error("API key store not read again (the keys read last stay): %s", e)
            return Refresh.FAILED
        self._failure = None
        self._seen_generation = generation
        return Refresh.READ

    def _look_for_new_keys(self) -> bool:
        """For an unknown key id (made by `mt5exec keys create` a moment ago?): reads the
        store again only when ``generation`` moved since the last look, which costs no file
        access, so made-up ids cost none; after a failed look, once a second at most."""
        if self._generation_now() == self._seen_generation:
            return False
        now = time.monotonic()
        if now < self._unknown_retry_at:
            return False
        if self.refresh(force=True) in (Refresh.READ, Refresh.UNCHANGED):
            return True
        self._unknown_retry_at = now + UNKNOWN_ID_RETRY_S
        return False

    def verify(self, token: str) -> Principal:
        """The principal of an API key token; TokenRefused when it is none of ours or is
        revoked. (A server calls ``refresh`` every second, so that what ``mt5exec keys``
        changed is in force within one.) A token verified before is found in a cache without
        its HMAC again, as long as its key is the store's current, unrevoked one."""
        known = self._verified.get(token)
        if known is not None and known.revoked is None and self._keys.get(known.key_id) is known:
            return known.principal
        match = _TOKEN.fullmatch(token)
        if match is None:
            raise TokenRefused(Reason.TOKEN_INVALID, "not a valid API key")
        key_id = match.group(1)
        key = self._keys.get(key_id)
        if key is None and self._look_for_new_keys():
            key = self._keys.get(key_id)
        if key is None or not hmac.compare_digest(key.digest, self._digest(token)):
            raise TokenRefused(Reason.TOKEN_INVALID, "not a valid API key")
        if key.revoked is not None:
            raise TokenRefused(Reason.TOKEN_REVOKED, f"API key {key_id} is revoked")
        if len(self._verified) >= _VERIFIED_MAX:
            self._verified.clear()
        self._verified[token] = key
        return key.principal
