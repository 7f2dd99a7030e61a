"""The bytes a signal's HMAC is computed over (docs/signals.md, "The signed bytes").

Eleven lines joined by ``\\n`` (no trailing newline), UTF-8:

    mt5exec-signal-v1
    <source>
    <signal_id>            (may be empty)
    <symbol>
    <side>                 1 (buy) or 2 (sell), decimal
    <volume>               each number: its IEEE-754 binary64 bits, big-endian,
    <risk_percent>         as 16 lowercase hex digits (0.0 is 0000000000000000)
    <stop_loss>
    <take_profit>
    <timestamp>            Unix time in nanoseconds, decimal (seconds * 10^9 + nanos)
    <nonce>

Numbers are signed by their bits, not by a decimal spelling, so that every language produces
the same bytes for the same double. No field may hold a newline (the server refuses a request
whose strings fall outside their patterns before it checks the signature), so the lines
cannot be re-split into other values.

This module is what a Python client signs with (:func:`sign`) and what the server verifies
with: one definition of the bytes.
"""

from __future__ import annotations

import hashlib
import hmac
import struct

from mt5exec.v1 import order_pb2

VERSION = "mt5exec-signal-v1"


def _bits(value: float) -> str:
    return struct.pack(">d", value).hex()


def timestamp_nanos(request: order_pb2.PublishSignalRequest) -> int:
    return request.timestamp.seconds * 1_000_000_000 + request.timestamp.nanos


def canonical(request: order_pb2.PublishSignalRequest) -> bytes:
    """The signed bytes of ``request`` (its ``signature`` is not part of them)."""
    lines = (
        VERSION,
        request.source,
        request.signal_id,
        request.symbol,
        str(int(request.side)),
        _bits(request.volume),
        _bits(request.risk_percent),
        _bits(request.stop_loss),
        _bits(request.take_profit),
        str(timestamp_nanos(request)),
        request.nonce,
    )
    return "\n".join(lines).encode()


def signature(secret: bytes, request: order_pb2.PublishSignalRequest) -> str:
    """The hex HMAC-SHA256 of ``request``'s canonical bytes under ``secret``."""
    return hmac.new(secret, canonical(request), hashlib.sha256).hexdigest()


def sign(secret: bytes, request: order_pb2.PublishSignalRequest) -> None:
    """Sets ``request.signature`` (a client's last step before PublishSignal)."""
    request.signature = signature(secret, request)


def verify(secret: bytes, request: order_pb2.PublishSignalRequest) -> bool:
    """Whether ``request.signature`` is its HMAC under ``secret`` (in constant time)."""
    expected = signature(secret, request).encode()
    return hmac.compare_digest(expected, request.signature.lower().encode())
