"""The principal a call is served for, its role, and ``current()``: the principal of the call
being served (set by the guard before a servicer runs)."""

from __future__ import annotations

import contextvars
import enum
from dataclasses import dataclass


class Role(enum.StrEnum):
    """What a principal may do; a role may do everything a lower one may
    (admin > trader > viewer). Its value is its name in config, tokens and the API."""

    ADMIN = "admin"
    TRADER = "trader"
    VIEWER = "viewer"

    @property
    def rank(self) -> int:
        return _RANK[self]

    def covers(self, role: Role) -> bool:
        """Whether this role may do what ``role`` may."""
        return self.rank >= role.rank

    @classmethod
    def parse(cls, text: str) -> Role:
        """``admin``, ``trader`` or ``viewer``; ValueError otherwise."""
        try:
            return cls(text)
        except ValueError:
            raise ValueError(f"expected admin, trader or viewer, got {text!r}") from None


_RANK = {Role.VIEWER: 1, Role.TRADER: 2, Role.ADMIN: 3}


@dataclass(frozen=True, slots=True)
class Principal:
    """Who calls. ``owner`` is None only for an admin (every owner's instances); ``kind`` is
    how it was authenticated: ``api_key`` (``subject`` is the key's id), ``jwt`` (its
    ``sub``), ``mtls`` (the client certificate's subject) or ``local`` (auth disabled).
    ``expires``: when its credential stops proving it (a JWT's ``exp`` with the leeway, unix
    seconds); a stream it opened ends then."""

    subject: str
    role: Role
    owner: str | None
    kind: str
    expires: float | None = None

    def may(self, role: Role) -> bool:
        return self.role.covers(role)

    def sees(self, owner: str | None) -> bool:
        """Whether an instance of ``owner`` (None: one that does not exist) is visible."""
        return self.owner is None or (owner is not None and owner == self.owner)


class TokenRefused(Exception):
    """A bearer token that proves nothing: ``reason`` is TOKEN_INVALID, TOKEN_EXPIRED or
    TOKEN_REVOKED; ``message`` says why without quoting the token."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


# Every call when auth is disabled (allowed on a loopback listen address only).
LOCAL_ADMIN = Principal("local", Role.ADMIN, None, "local")

_CURRENT: contextvars.ContextVar[Principal] = contextvars.ContextVar("mt5exec_principal")


def current() -> Principal:
    """The principal of the call being served. Outside a call (a background task of the
    server itself) there is none: LookupError."""
    return _CURRENT.get()


def set_current(principal: Principal) -> None:
    """Makes ``principal`` the current one for the rest of the calling task (the guard)."""
    _CURRENT.set(principal)
