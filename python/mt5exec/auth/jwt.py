"""JWTs as bearer tokens (PyJWT): HS256 with a shared secret, RS256 or EdDSA with a public
key PEM or a JWKS file (``[auth] jwt_*``).

Each configured key is bound to one algorithm (the secret to HS256, an RSA key to RS256, an
Ed25519 key to EdDSA), and a token is checked only with the keys of its own algorithm and
only with that algorithm: ``none``, an algorithm no key is configured for, and a token signed
with one kind of key passed off as another are refused. Claims ``sub``, ``role`` and ``exp``
are required, ``owner`` too unless the role is admin (an admin's is every owner); ``exp``,
``nbf`` and ``iat`` are checked with ``jwt_leeway_s`` of clock skew.

A token that verified is remembered until it expires (a bounded cache): the next call with
it costs a dict lookup instead of a signature check.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from mt5exec.auth.keys import KeyRefused, check_grant
from mt5exec.auth.principal import Principal, Role, TokenRefused
from mt5exec.config import AuthConfig, ConfigError
from mt5exec.reasons import Reason

# A shared secret shorter than this is refused (RFC 7518: at least the hash's size).
MIN_SECRET_BYTES = 32
_CACHE_MAX = 10_000


@dataclass(frozen=True)
class _Key:
    algorithm: str
    key: Any
    kid: str | None


def _public_algorithm(key: Any, source: str) -> str:
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < 2048:
            raise ConfigError(f"{source}: an RSA key of at least 2048 bits is required")
        return "RS256"
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "EdDSA"
    raise ConfigError(f"{source}: expected an RSA or Ed25519 public key")


def _load_keys(config: AuthConfig) -> list[_Key]:
    keys: list[_Key] = []
    if config.jwt_secret_file is not None:
        source = f"auth.jwt_secret_file: {config.jwt_secret_file}"
        secret = _read(config.jwt_secret_file, source).strip()
        if len(secret) < MIN_SECRET_BYTES:
            raise ConfigError(f"{source}: at least {MIN_SECRET_BYTES} bytes are required")
        keys.append(_Key("HS256", secret, None))
    if config.jwt_public_key_file is not None:
        source = f"auth.jwt_public_key_file: {config.jwt_public_key_file}"
        try:
            public = serialization.load_pem_public_key(_read(config.jwt_public_key_file, source))
        except ValueError as e:
            raise ConfigError(f"{source}: not a PEM public key ({e})") from None
        keys.append(_Key(_public_algorithm(public, source), public, None))
    if config.jwt_jwks_file is not None:
        source = f"auth.jwt_jwks_file: {config.jwt_jwks_file}"
        try:
            jwks = jwt.PyJWKSet.from_json(_read(config.jwt_jwks_file, source).decode())
        except (jwt.PyJWKSetError, jwt.InvalidKeyError, ValueError) as e:
            raise ConfigError(f"{source}: not a usable JWKS ({e})") from None
        for jwk in jwks.keys:
            algorithm = _public_algorithm(jwk.key, f"{source}: key {jwk.key_id!r}")
            if jwk.algorithm_name != algorithm:
                raise ConfigError(
                    f"{source}: key {jwk.key_id!r}: alg {jwk.algorithm_name} does not fit "
                    f"its key ({algorithm})"
                )
            keys.append(_Key(algorithm, jwk.key, jwk.key_id))
    return keys


def _read(path: Path, source: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise ConfigError(f"{source}: cannot read ({e.strerror or e})") from None


class JwtVerifier:
    """Checks JWTs against the configured keys (none configured: every JWT is refused)."""

    def __init__(self, config: AuthConfig) -> None:
        self._keys = _load_keys(config)
        self._leeway = config.jwt_leeway_s
        self._issuer = config.jwt_issuer or None
        self._audience = config.jwt_audience or None
        self._verified: dict[str, tuple[Principal, float]] = {}

    @property
    def configured(self) -> bool:
        return bool(self._keys)

    @property
    def algorithms(self) -> list[str]:
        return sorted({k.algorithm for k in self._keys})

    def verify(self, token: str) -> Principal:
        """The principal a JWT names; TokenRefused (TOKEN_INVALID, TOKEN_EXPIRED) otherwise."""
        known = self._verified.get(token)
        if known is not None:
            principal, expires = known
            if time.time() <= expires + self._leeway:
                return principal
            del self._verified[token]
            raise TokenRefused(Reason.TOKEN_EXPIRED, "the JWT has expired")
        principal, expires = self._check(token)
        if len(self._verified) >= _CACHE_MAX:
            self._verified.clear()
        self._verified[token] = (principal, expires)
        return principal

    def _check(self, token: str) -> tuple[Principal, float]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise TokenRefused(Reason.TOKEN_INVALID, "not a valid JWT") from None
        algorithm, kid = header.get("alg"), header.get("kid")
        candidates = [
            k
            for k in self._keys
            if k.algorithm == algorithm and (kid is None or k.kid is None or k.kid == kid)
        ]
        if not candidates:
            raise TokenRefused(
                Reason.TOKEN_INVALID,
                f"JWT algorithm {str(algorithm)[:16]!r} is not accepted here "
                f"(accepted: {', '.join(self.algorithms) or 'none: no JWT key is configured'})",
            )
        claims: dict[str, Any] | None = None
        for candidate in candidates:
            try:
                claims = jwt.decode(
                    token,
                    candidate.key,
                    algorithms=[candidate.algorithm],
                    leeway=self._leeway,
                    issuer=self._issuer,
                    audience=self._audience,
                    options={"require": ["exp", "sub", "role"]},
                )
                break
            except jwt.ExpiredSignatureError:
                raise TokenRefused(Reason.TOKEN_EXPIRED, "the JWT has expired") from None
            except jwt.InvalidSignatureError:
                continue
            except jwt.InvalidTokenError as e:
                raise TokenRefused(Reason.TOKEN_INVALID, f"not a valid JWT ({e})") from None
        if claims is None:
            raise TokenRefused(Reason.TOKEN_INVALID, "not a valid JWT (signature)")
        expires = float(claims["exp"])
        return _principal(claims, expires + self._leeway), expires


def _principal(claims: dict[str, Any], expires: float) -> Principal:
    subject = claims["sub"]
    if not isinstance(subject, str) or not subject:
        raise TokenRefused(Reason.TOKEN_INVALID, "not a valid JWT (sub)")
    try:
        role = Role.parse(claims["role"])
    except ValueError as e:
        raise TokenRefused(Reason.TOKEN_INVALID, f"not a valid JWT (role: {e})") from None
    owner = claims.get("owner")
    if owner is not None and not isinstance(owner, str):
        raise TokenRefused(Reason.TOKEN_INVALID, "not a valid JWT (owner)")
    try:
        owner = check_grant(role, owner)
    except KeyRefused as e:
        raise TokenRefused(Reason.TOKEN_INVALID, f"not a valid JWT ({e})") from None
    return Principal(subject, role, owner, "jwt", expires)
