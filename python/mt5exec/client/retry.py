"""When a call is tried again: bounded exponential backoff, for the status codes that say the
request may not have been served (``UNAVAILABLE``, ``DEADLINE_EXCEEDED``)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass

import grpc

from mt5exec.client.errors import Error

RETRYABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """``max_attempts`` tries in all (None: no limit; 1: no retry), waiting ``initial_backoff``
    seconds after the first failure, then ``multiplier`` times longer each time, at most
    ``max_backoff``. ``on_retry(attempt, error)`` is called before each wait (for logs)."""

    max_attempts: int | None = 5
    initial_backoff: float = 0.2
    max_backoff: float = 3.0
    multiplier: float = 2.0
    codes: frozenset[grpc.StatusCode] = RETRYABLE
    on_retry: Callable[[int, Error], None] | None = None

    def delay(self, attempt: int, error: Error) -> float | None:
        """The wait before attempt ``attempt + 1`` after ``error`` ended attempt ``attempt``
        (from 1), or None when it is not tried again."""
        if error.code not in self.codes:
            return None
        if self.max_attempts is not None and attempt >= self.max_attempts:
            return None
        if self.on_retry is not None:
            self.on_retry(attempt, error)
        return min(self.max_backoff, self.initial_backoff * self.multiplier ** (attempt - 1))


# A stream reconnects for as long as it takes (a server restart), only when the server is
# unreachable or going away.
RECONNECT = RetryPolicy(max_attempts=None, codes=frozenset({grpc.StatusCode.UNAVAILABLE}))


def new_client_order_id() -> str:
    """An idempotency key for an order made client-side, so that a retry sends it again."""
    return f"c-{uuid.uuid4().hex}"
