"""What the server may expose where, checked at start: ``check_transport`` (TLS and
loopback rules for each listener) and ``check_auth`` (the auth settings that must hold together).
"""

from __future__ import annotations

from mt5exec.config.sections import (
    ServerConfig,
)
from mt5exec.config.values import (
    is_loopback,
)
from mt5exec.config_error import ConfigError


def check_transport(config: ServerConfig) -> None:
    """Refuses settings that would expose the server on a network without protection.

    Raises:
        ConfigError: naming the settings that would fix it.
    """
    server = config.server
    if (server.tls_cert is None) != (server.tls_key is None):
        given, missing = (
            ("tls_cert", "tls_key") if server.tls_key is None else ("tls_key", "tls_cert")
        )
        raise ConfigError(f"server.{missing}: required with server.{given}")
    if server.tls_client_ca is not None and not server.tls:
        raise ConfigError("server.tls_client_ca: requires server.tls_cert and server.tls_key")
    if config.auth.mtls and server.tls_client_ca is None:
        raise ConfigError(
            "auth.mtls: requires server.tls_client_ca (client certificates are verified only "
            "with it)"
        )
    plaintext = "set server.tls_cert and server.tls_key, or server.allow_plaintext = true"
    if not server.tls and not server.allow_plaintext and not is_loopback(server.listen):
        raise ConfigError(
            f"server.listen: {server.listen} is not a loopback address and TLS is off: "
            f"{plaintext} to serve plaintext on a network"
        )
    if server.metrics_listen and not is_loopback(server.metrics_listen):
        if server.metrics_token_file is None:
            raise ConfigError(
                f"server.metrics_listen: {server.metrics_listen} is not a loopback address: "
                "set server.metrics_token_file (the bearer token /metrics will require)"
            )
        if not server.tls and not server.allow_plaintext:
            raise ConfigError(
                f"server.metrics_listen: {server.metrics_listen} is not a loopback address and "
                f"TLS is off: {plaintext} to send its token in the clear"
            )


def check_auth(config: ServerConfig) -> None:
    """Refuses to serve without authentication anywhere but on a loopback address.

    Raises:
        ConfigError: naming the setting.
    """
    if not config.auth.enabled and not is_loopback(config.server.listen):
        raise ConfigError(
            f"auth.enabled: false is allowed only on a loopback listen address, and "
            f"server.listen is {config.server.listen}"
        )
