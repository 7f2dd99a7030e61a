"""Client certificates as principals: the verified certificate of an mTLS connection mapped
through ``[auth.mtls]`` (subject or common name -> role and owner).

Only a server that requires and verifies client certificates (``[server] tls_client_ca``)
configures a mapping; without one no certificate is ever a principal, so a certificate that
gRPC merely received but did not verify can never be trusted.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Mapping
from typing import Any

from cryptography import x509

from mt5exec.auth.principal import Principal, Role
from mt5exec.config import CertificateIdentity

log = logging.getLogger("mt5exec.auth")

__all__ = ["CertificateMap", "configure", "principal_from_context"]


# A separator with the spaces people put after it ("CN=a, O=b"); not an escaped comma.
_SEPARATOR = re.compile(r"(?<!\\)([,+])\s+")
# As OpenSSL prints it (`-nameopt RFC2253`); cryptography knows it only by its OID.
_EMAIL_NAME = {"EMAILADDRESS": x509.NameOID.EMAIL_ADDRESS}
_EMAIL_OID = {x509.NameOID.EMAIL_ADDRESS: "emailAddress"}


def normalize_subject(subject: str) -> str:
    """An RFC 4514 subject as cryptography writes it ("CN=a, O=b" and "cn=a,O=b" are one)."""
    text = _SEPARATOR.sub(r"\1", subject.strip())
    try:
        return x509.Name.from_rfc4514_string(text, _EMAIL_NAME).rfc4514_string(_EMAIL_OID)
    except ValueError:
        return text


@functools.lru_cache(maxsize=1024)
def _names(pem: bytes) -> tuple[str, str | None]:
    """The RFC 4514 subject and first common name of a PEM certificate."""
    cert = x509.load_pem_x509_certificate(pem)
    common = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    cn = common[0].value if common else None
    return cert.subject.rfc4514_string(_EMAIL_OID), cn if isinstance(cn, str) else None


class CertificateMap:
    """``[auth.mtls]``: keys with "=" are full subjects, the others common names."""

    def __init__(self, identities: Mapping[str, CertificateIdentity]) -> None:
        self._subjects: dict[str, CertificateIdentity] = {}
        self._common_names: dict[str, CertificateIdentity] = {}
        for key, identity in identities.items():
            if "=" in key:
                self._subjects[normalize_subject(key)] = identity
            else:
                self._common_names[key] = identity

    def principal(self, pem: bytes) -> Principal | None:
        """The principal of a verified client certificate, None when it is not mapped."""
        try:
            subject, cn = _names(pem)
        except ValueError:
            log.warning("a client certificate could not be parsed")
            return None
        identity = self._subjects.get(subject)
        if identity is None and cn is not None:
            identity = self._common_names.get(cn)
        if identity is None:
            return None
        return Principal(subject, Role(identity.role), identity.owner, "mtls")


_map: CertificateMap | None = None


def configure(identities: Mapping[str, CertificateIdentity] | None) -> None:
    """Sets the mapping at server start: None unless client certificates are verified."""
    global _map
    _map = None if identities is None else CertificateMap(identities)


def principal_from_context(context: Any) -> Principal | None:
    """The principal of the call's verified client certificate, or None (no mTLS, no
    certificate, or a subject ``[auth.mtls]`` does not name).

    ``context`` is a ``grpc.ServicerContext`` or ``grpc.aio.ServicerContext``.
    """
    if _map is None:
        return None
    auth = context.auth_context()
    if auth.get("transport_security_type") != [b"ssl"]:
        return None
    pems = auth.get("x509_pem_cert")
    if not pems:
        return None
    return _map.principal(pems[0])
