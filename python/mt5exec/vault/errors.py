"""What the vault raises. Messages name the key source or the store, never a secret."""

from __future__ import annotations


class VaultError(Exception):
    """Base of the vault's errors."""


class VaultKeyError(VaultError):
    """The master key is missing, malformed or not the vault's (fatal at start)."""


class VaultUnavailable(VaultError):
    """The store cannot be read or written (disk, database connection)."""


class CredentialUnreadable(VaultError):
    """One record does not decrypt: tampered ciphertext, nonce or binding, or a key id this
    process does not have. Only its instance is affected."""


class KeyRetired(VaultError):
    """A record was to be sealed under a key the vault no longer lists (a rotation finished
    since this process loaded its keys)."""
