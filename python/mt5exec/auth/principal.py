"""The principal a call is served for: who it is, its role and the owner it is scoped to."""

from __future__ import annotations

import contextvars
import enum
from dataclasses import dataclass


class Role(enum.StrEnum):
    """What a principal may do; its value is the name used in config, tokens and the API."""

    ADMIN = "admin"
    TRADER = "trader"
    VIEWER = "viewer"


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller.

    ``owner`` is None only for an admin (every owner). ``kind`` is how it authenticated:
    "api_key", "jwt", "mtls" or "local" (auth disabled).
    """

    subject: str
    role: Role
    owner: str | None
    kind: str


_CURRENT: contextvars.ContextVar[Principal] = contextvars.ContextVar("mt5exec_principal")


def current() -> Principal:
    """The principal of the call being served.

    Raises:
        LookupError: outside a call (nothing set it).
    """
    return _CURRENT.get()


def use(principal: Principal) -> contextvars.Token[Principal]:
    """Makes ``principal`` the current one in this context (the RPC handler wrapper's job)."""
    return _CURRENT.set(principal)
