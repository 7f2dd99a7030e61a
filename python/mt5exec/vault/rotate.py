"""``mt5exec vault rotate``: every credential sealed again under a new master key, without a
moment in which one is unreadable, and resumable after a crash at any point.

File mode (the key file): the next key is written to ``<key file>.new`` and listed in the
store; the key file is kept as ``<key file>.old`` (a hard link) and ``.new`` takes its place;
then each record is sealed under the new key (one transaction each, never over a record
changed since it was read); the old key leaves the store once no record names it, and
``.old`` is deleted. Environment mode: ``MT5EXEC_VAULT_KEY`` is the new key and
``MT5EXEC_VAULT_OLD_KEY`` the one being replaced; the same steps without the files.

Running it again resumes an unfinished rotation (the files say where it stopped); a finished
one starts a new rotation. A record that does not decrypt is not lost: it stays under its old
key, which stays listed (and ``.old`` stays) until the record is replaced (UpdateCredentials)
or deleted, and the command says so and fails.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field

from mt5exec.config import ServerConfig
from mt5exec.vault import key_source, open_store
from mt5exec.vault.credentials import check_keys, seal, unseal
from mt5exec.vault.errors import CredentialUnreadable, VaultError, VaultKeyError
from mt5exec.vault.keys import (
    OLD_KEY_ENV,
    KeyFiles,
    Keyring,
    KeySource,
    MasterKey,
    fsync_dir,
    generate,
)
from mt5exec.vault.store import Store

# Test hook: the step after which the command stops and waits to be killed ("new-key",
# "listed", "old-kept", "swapped", "record:<n>", "retired").
PAUSE_ENV = "MT5EXEC_VAULT_ROTATE_PAUSE"
_ROUNDS = 10


@dataclass
class Rotation:
    key_id: str
    resealed: int = 0
    retired: list[str] = field(default_factory=list)
    # Instance id -> why its record could not be sealed again.
    unreadable: dict[str, str] = field(default_factory=dict)
    # Keys still listed because a record needs them.
    kept: list[str] = field(default_factory=list)

    @property
    def done(self) -> bool:
        return not self.unreadable and not self.kept


def _pause(step: str) -> None:
    if os.environ.get(PAUSE_ENV) == step:
        print(f"vault rotate: paused at {step}", flush=True)
        while True:
            time.sleep(3600)


def _file_keys(files: KeyFiles) -> Keyring:
    """The target key first, then those it replaces; writes ``.new`` for a new rotation."""
    current = files.read(files.path)
    if current is None:
        raise VaultKeyError(f"{files.path}: no vault key file (nothing to rotate)")
    new = files.read(files.new)
    old = files.read(files.old)
    if new is not None:
        target = new  # the key file has not been replaced yet
    elif old is not None:
        target = current  # replaced: the records are being sealed again
    else:
        target = generate(str(files.path))
        files.write(files.new, target)
        _pause("new-key")
    others = [k for k in (current, old) if k is not None and k.key_id != target.key_id]
    return Keyring(target, tuple(others))


def _swap(files: KeyFiles) -> None:
    """The key file becomes the new key; the previous one stays as ``.old``."""
    if not files.new.exists():
        return
    if not files.old.exists():
        os.link(files.path, files.old)
        fsync_dir(files.path.parent)
        _pause("old-kept")
    os.replace(files.new, files.path)
    fsync_dir(files.path.parent)
    _pause("swapped")


def rotate(store: Store, source: KeySource) -> Rotation:
    """Rotates (or resumes); raises ``VaultKeyError`` when a needed key is missing."""
    if source.from_env:
        keyring = source.load(create=False)
        assert keyring is not None
    else:
        keyring = _file_keys(source.files)
    target: MasterKey = keyring.current
    check_keys(store, keyring)  # every record readable; the target listed
    _pause("listed")
    if not source.from_env:
        try:
            _swap(source.files)
        except OSError as e:
            raise VaultError(f"{source.files.path}: cannot replace the key file: {e}") from None
    result = Rotation(target.key_id)
    for _ in range(_ROUNDS):
        pending = [
            row
            for row in store.rows()
            if row.key_id != target.key_id and row.instance_id not in result.unreadable
        ]
        if not pending:
            break
        for row in pending:
            key = keyring.get(row.key_id)
            if key is None:
                result.unreadable[row.instance_id] = f"sealed under unknown key id {row.key_id}"
                continue
            try:
                credential = unseal(key, row)
            except CredentialUnreadable as e:
                result.unreadable[row.instance_id] = str(e)
                continue
            # False: written meanwhile (by a server): the next round looks at it again.
            if store.replace(seal(target, row.owner, row.instance_id, credential), row):
                result.resealed += 1
                _pause(f"record:{result.resealed}")
    for key_id in sorted(store.keys()):
        if key_id == target.key_id:
            continue
        if store.retire_key(key_id):
            result.retired.append(key_id)
        else:
            result.kept.append(key_id)
    _pause("retired")
    if result.done and not source.from_env:
        source.files.old.unlink(missing_ok=True)
        fsync_dir(source.files.path.parent)
    return result


def command(config: ServerConfig) -> int:
    """``mt5exec vault rotate``: 0 when done, 1 when records could not be sealed again, 2 for
    a key or store error."""
    try:
        store = open_store(config)
        try:
            source = key_source(config)
            result = rotate(store, source)
        finally:
            store.close()
    except (VaultError, OSError) as e:
        print(f"mt5exec: vault rotate: {e}", file=sys.stderr)
        return 2
    print(
        f"vault rotate: {result.resealed} credential(s) sealed under key id {result.key_id}"
        + (f"; key id(s) {', '.join(result.retired)} retired" if result.retired else "")
    )
    for instance_id, reason in sorted(result.unreadable.items()):
        print(f"mt5exec: vault rotate: {instance_id}: {reason}", file=sys.stderr)
    if not result.done:
        kept = ", ".join(result.kept)
        print(
            f"mt5exec: vault rotate: not finished: key id(s) {kept} still needed (the records "
            "above: UpdateCredentials or DeleteInstance them, then run it again)",
            file=sys.stderr,
        )
        return 1
    if source.from_env:
        print(f"vault rotate: done; {OLD_KEY_ENV} is no longer needed")
    else:
        print(f"vault rotate: done; the key is in {source.files.path}")
    return 0
