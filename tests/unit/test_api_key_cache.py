"""A verified API key token is remembered (no HMAC per call), but never past a revocation:
in this process, or by another (``mt5exec keys revoke``) once the store is read again."""

from __future__ import annotations

from pathlib import Path

import pytest

from mt5exec.auth.keys import KeyStore
from mt5exec.auth.principal import Role, TokenRefused


def test_a_remembered_token_is_refused_once_revoked_here_or_elsewhere(tmp_path: Path) -> None:
    store = KeyStore(tmp_path)
    store.open(create_admin=False)
    first, key = store.create(Role.TRADER, "alice")
    second, other = store.create(Role.VIEWER, "alice")
    for _ in range(2):  # the second time from the cache
        assert store.verify(first).subject == key.key_id
        assert store.verify(second).subject == other.key_id
    # Another token of the same key id is no hit.
    forged = first[:-1] + ("A" if first[-1] != "A" else "B")
    with pytest.raises(TokenRefused) as refused:
        store.verify(forged)
    assert refused.value.reason == "TOKEN_INVALID"
    # Revoked in this process.
    store.revoke(key.key_id)
    with pytest.raises(TokenRefused) as refused:
        store.verify(first)
    assert refused.value.reason == "TOKEN_REVOKED"
    # Revoked by another process: seen once the store is read again.
    KeyStore(tmp_path).revoke(other.key_id)
    store.refresh(force=True)
    with pytest.raises(TokenRefused) as refused:
        store.verify(second)
    assert refused.value.reason == "TOKEN_REVOKED"
