"""How clients reach the server: TLS and mTLS credentials for gRPC and /metrics, read from
``[server]`` and checked at start, so that a bad file is a clear error naming the setting
instead of a failed handshake later.

What may listen where is decided in :func:`mt5exec.config.check_transport`; this module reads
the files, builds the credentials, binds, and warns about what it was allowed to do.
"""

from __future__ import annotations

import datetime
import logging
import ssl
import stat
from dataclasses import dataclass
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from mt5exec.config import ConfigError, ServerSection, is_loopback

log = logging.getLogger("mt5exec.server")

# A certificate this close to its end is worth a warning at every start.
_EXPIRY_WARNING = datetime.timedelta(days=14)


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """The PEM contents of ``[server] tls_cert``, ``tls_key`` and ``tls_client_ca``."""

    cert: bytes
    key: bytes
    client_ca: bytes | None

    @property
    def mutual(self) -> bool:
        return self.client_ca is not None


def _read(setting: str, path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise ConfigError(f"server.{setting}: cannot read {path}: {e.strerror or e}") from None


def _certificates(setting: str, path: Path, data: bytes) -> list[x509.Certificate]:
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError:
        certs = []
    if not certs:
        raise ConfigError(f"server.{setting}: {path} holds no PEM certificate")
    return certs


def _check_key(path: Path, data: bytes, cert: x509.Certificate) -> None:
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise ConfigError(
            f"server.tls_key: {path} is encrypted; give the key without a passphrase "
            "(readable by the server's user only)"
        ) from None
    except ValueError:
        raise ConfigError(f"server.tls_key: {path} holds no PEM private key") from None
    der = serialization.Encoding.DER
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(der, spki) != cert.public_key().public_bytes(der, spki):
        raise ConfigError(f"server.tls_key: {path} is not the key of server.tls_cert's certificate")
    if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("server.tls_key: %s is readable by other users than its owner", path)


def _warn_expiry(path: Path, cert: x509.Certificate) -> None:
    now = datetime.datetime.now(datetime.UTC)
    end = cert.not_valid_after_utc
    if end <= now:
        log.error("server.tls_cert: %s expired on %s; clients will refuse it", path, end)
    elif end - now < _EXPIRY_WARNING:
        log.warning("server.tls_cert: %s expires on %s", path, end)
    if cert.not_valid_before_utc > now:
        log.error("server.tls_cert: %s is not valid before %s", path, cert.not_valid_before_utc)


def load_tls(section: ServerSection) -> TlsFiles | None:
    """The TLS files of ``section`` once checked; None when TLS is off.

    Raises:
        ConfigError: a file is missing or unreadable, holds no PEM certificate or key, or the
            key is not the certificate's.
    """
    if section.tls_cert is None or section.tls_key is None:
        return None
    cert = _read("tls_cert", section.tls_cert)
    leaf = _certificates("tls_cert", section.tls_cert, cert)[0]
    key = _read("tls_key", section.tls_key)
    _check_key(section.tls_key, key, leaf)
    _warn_expiry(section.tls_cert, leaf)
    client_ca = None
    if section.tls_client_ca is not None:
        client_ca = _read("tls_client_ca", section.tls_client_ca)
        _certificates("tls_client_ca", section.tls_client_ca, client_ca)
    return TlsFiles(cert, key, client_ca)


def read_metrics_token(section: ServerSection) -> bytes | None:
    """The bearer token ``/metrics`` requires, or None when none is configured.

    Raises:
        ConfigError: the file cannot be read or is empty.
    """
    if section.metrics_token_file is None:
        return None
    token = _read("metrics_token_file", section.metrics_token_file).strip()
    if not token:
        raise ConfigError(f"server.metrics_token_file: {section.metrics_token_file} is empty")
    return token


def metrics_ssl_context(tls: TlsFiles | None, section: ServerSection) -> ssl.SSLContext | None:
    """HTTPS for /metrics with the server's certificate (its clients authenticate with the
    token, not a certificate)."""
    if tls is None or section.tls_cert is None or section.tls_key is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(section.tls_cert, section.tls_key)
    return context


def bind(server: grpc.aio.Server, section: ServerSection, tls: TlsFiles | None) -> int:
    """Adds the listening port (secure when ``tls``); returns the port bound.

    Raises:
        OSError: the address cannot be bound.
    """
    host, _, port = section.listen.rpartition(":")
    address = f"{host}:{port}"
    if tls is None:
        bound = server.add_insecure_port(address)
        if not is_loopback(section.listen):
            log.warning(
                "serving PLAINTEXT on %s (server.allow_plaintext = true): anyone on the network "
                "can read and alter calls, tokens included; set server.tls_cert and "
                "server.tls_key to serve TLS",
                section.listen,
            )
    else:
        credentials = grpc.ssl_server_credentials(
            [(tls.key, tls.cert)],
            root_certificates=tls.client_ca,
            require_client_auth=tls.mutual,
        )
        bound = server.add_secure_port(address, credentials)
        log.info(
            "TLS on %s%s",
            section.listen,
            " (client certificates required)" if tls.mutual else "",
        )
    if bound == 0:
        raise OSError(f"server.listen: cannot bind {section.listen}")
    return bound
