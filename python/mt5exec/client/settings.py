"""Where and how a client connects: the target, the bearer token and TLS.

Each setting is taken from its argument, else from the environment, else its default:
``MT5EXEC_TARGET`` (``127.0.0.1:50051``), ``MT5EXEC_TOKEN`` (else the ``admin.key`` of
``data_dir`` or ``MT5EXEC_DATA_DIR``, as a server writes it on its first start),
``MT5EXEC_TLS_CA``, ``MT5EXEC_TLS_CERT``, ``MT5EXEC_TLS_KEY``, ``MT5EXEC_TLS_SERVER_NAME``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

DEFAULT_TARGET = "127.0.0.1:50051"

# The channel tries to reconnect within 3 s of a server coming back (grpc's default backoff
# grows to 120 s, and calls fail fast meanwhile).
CHANNEL_OPTIONS: tuple[tuple[str, Any], ...] = (
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.min_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 3000),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
)


class SettingsError(ValueError):
    """A setting that cannot be used (a file that cannot be read, a key without a cert)."""


@dataclass(frozen=True, slots=True)
class Settings:
    target: str = DEFAULT_TARGET
    token: str | None = None
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    # The name the server's certificate must carry when it is not the target's host.
    server_name: str | None = None
    # Seconds each unary call may take (None: no deadline).
    timeout: float | None = 60.0
    options: tuple[tuple[str, Any], ...] = field(default=CHANNEL_OPTIONS)

    @classmethod
    def resolve(
        cls,
        target: str | None = None,
        token: str | None = None,
        data_dir: str | Path | None = None,
        ca_file: str | Path | None = None,
        cert_file: str | Path | None = None,
        key_file: str | Path | None = None,
        server_name: str | None = None,
        timeout: float | None = 60.0,
        environ: Mapping[str, str] = os.environ,
    ) -> Settings:
        """Settings from the arguments given, the environment for the others."""

        def path(value: str | Path | None, env: str) -> Path | None:
            chosen = value or environ.get(env)
            return Path(chosen) if chosen else None

        token = token or environ.get("MT5EXEC_TOKEN") or None
        data = path(data_dir, "MT5EXEC_DATA_DIR")
        if token is None and data is not None and (data / "admin.key").exists():
            token = _read(data / "admin.key").decode().strip()
        settings = cls(
            target=target or environ.get("MT5EXEC_TARGET") or DEFAULT_TARGET,
            token=token,
            ca_file=path(ca_file, "MT5EXEC_TLS_CA"),
            cert_file=path(cert_file, "MT5EXEC_TLS_CERT"),
            key_file=path(key_file, "MT5EXEC_TLS_KEY"),
            server_name=server_name or environ.get("MT5EXEC_TLS_SERVER_NAME") or None,
            timeout=timeout,
        )
        if (settings.cert_file is None) != (settings.key_file is None):
            raise SettingsError("a client certificate and its key go together (mTLS)")
        return settings

    @property
    def tls(self) -> bool:
        return self.ca_file is not None or self.cert_file is not None

    def credentials(self) -> grpc.ChannelCredentials:
        """TLS credentials: the CA (None: the system's), and for mTLS the client's pair."""
        ca = _read(self.ca_file) if self.ca_file else None
        key = _read(self.key_file) if self.key_file else None
        cert = _read(self.cert_file) if self.cert_file else None
        return grpc.ssl_channel_credentials(ca, key, cert)

    def channel_options(self) -> list[tuple[str, Any]]:
        options = list(self.options)
        if self.server_name:
            options.append(("grpc.ssl_target_name_override", self.server_name))
        return options

    def metadata(self) -> tuple[tuple[str, str], ...]:
        """The metadata every call carries: the bearer token."""
        return (("authorization", f"Bearer {self.token}"),) if self.token else ()


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise SettingsError(f"cannot read {path}: {e.strerror}") from e
