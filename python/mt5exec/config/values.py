"""Field validators of the server config: each takes the already type-converted value and
returns the value to store (possibly normalised) or raises ``_Invalid`` with a message that does
not repeat the field name; and the ``listen`` address parsing the server shares.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from typing import Any, Final

LOG_LEVELS: Final = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class _Invalid(ValueError):
    pass


Check = Callable[[Any], Any]


def _positive(value: Any) -> Any:
    if value <= 0:
        raise _Invalid(f"must be > 0, got {value!r}")
    return value


def _non_negative(value: Any) -> Any:
    if value < 0:
        raise _Invalid(f"must be >= 0, got {value!r}")
    return value


def _at_least_one(value: Any) -> Any:
    if value < 1:
        raise _Invalid(f"must be >= 1, got {value!r}")
    return value


def _listen(value: Any) -> Any:
    parse_listen(value)
    return value


def _listen_or_off(value: Any) -> Any:
    return value if value == "" else _listen(value)


def _log_level(value: Any) -> Any:
    level = str(value).upper()
    if level not in LOG_LEVELS:
        raise _Invalid(f"expected one of {', '.join(LOG_LEVELS)}, got {value!r}")
    return level


def _fsync_policy(value: Any) -> Any:
    text = str(value)
    if text in ("always", "never"):
        return text
    interval = text.removeprefix("interval:")
    if (
        text.startswith("interval:")
        and interval.isascii()
        and interval.isdigit()
        and int(interval) > 0
    ):
        return text
    raise _Invalid(f"expected always, never or interval:<ms>, got {value!r}")


def _opt(check: Check | None = None) -> dict[str, Any]:
    return {"check": check} if check is not None else {}


_HOST_RE: Final = re.compile(r"[A-Za-z0-9_.-]+")


def is_loopback(listen: str) -> bool:
    """Whether a ``HOST:PORT`` listen address is reachable from this machine only.

    Names other than ``localhost`` count as not loopback (what they resolve to may change).
    """
    host = parse_listen(listen)[0].strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_listen(value: str) -> tuple[str, int]:
    """Split a ``HOST:PORT`` listen address into host and port.

    IPv6 hosts are bracketed (``[::1]:50051``); port 0 asks the OS for a free port.

    Raises:
        ValueError: when the address is not ``HOST:PORT`` or the port is out of range.
    """
    host, sep, port_text = value.rpartition(":")
    if not sep or not host or not port_text:
        raise _Invalid(f"expected HOST:PORT, got {value!r}")
    if host.startswith("["):
        inner = host[1:-1] if host.endswith("]") else ""
        try:
            ipaddress.IPv6Address(inner)
        except ValueError:
            raise _Invalid(f"expected HOST:PORT with a valid [IPv6] host, got {value!r}") from None
    elif not _HOST_RE.fullmatch(host):
        raise _Invalid(f"expected HOST:PORT, got {value!r} (bracket IPv6 hosts: [::1]:50051)")
    if not (port_text.isascii() and port_text.isdigit()):
        raise _Invalid(f"port must be a number in 0-65535, got {port_text!r} in {value!r}")
    port = int(port_text)
    if port > 65535:
        raise _Invalid(f"port must be in 0-65535, got {port} in {value!r}")
    return host, port
