"""The secrets of the signal sources named in ``[signals.sources]``, read once at start."""

from __future__ import annotations

import stat
from collections.abc import Mapping
from pathlib import Path

from mt5exec.config import ConfigError, SignalsConfig

# As a JWT's shared secret: at least the hash's size (RFC 2104, RFC 7518).
MIN_SECRET_BYTES = 32


def _secret(name: str, path: Path) -> bytes:
    where = f"signals.sources.{name}: {path}"
    try:
        mode = path.stat().st_mode
        secret = path.read_bytes().strip()
    except OSError as e:
        raise ConfigError(f"{where}: cannot read ({e.strerror or e})") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"{where}: readable by other users than its owner (chmod 600 it)")
    if len(secret) < MIN_SECRET_BYTES:
        raise ConfigError(f"{where}: at least {MIN_SECRET_BYTES} bytes are required")
    return secret


def load_secrets(config: SignalsConfig) -> Mapping[str, bytes]:
    """Source name -> its secret (the file's bytes, surrounding whitespace stripped).

    Raises:
        ConfigError: a file is missing, unreadable, too short or readable by others.
    """
    return {name: _secret(name, path) for name, path in config.sources.items()}
