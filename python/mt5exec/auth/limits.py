"""Abuse limits of every call of our services (``[auth]``):

- **calls per principal**: a token bucket per principal (its kind and subject) of
  ``rpc_burst`` calls refilled at ``rpc_per_second``; a call past it is RESOURCE_EXHAUSTED
  (reason RATE_LIMITED) with a RetryInfo of when the next one is there. Every RPC counts, a
  stream once (when it opens); health and reflection are not ours and not counted. A call is
  counted once authenticated, before its role is checked, so calls a role may not make count
  too (and cannot flood the audit).
- **failed authentications per peer address**: a peer (its address without the port) may
  fail ``peer_failures`` times per ``peer_failures_window_s`` (a bucket refilled at that rate);
  past that its failures are answered RESOURCE_EXHAUSTED (AUTH_THROTTLED) with a RetryInfo of
  the rest of a ``peer_cooldown_s`` cooldown, instead of UNAUTHENTICATED and its reason (no
  oracle for a token prober). The credentials of every call are still checked: a peer's valid
  token is never locked out, also not by another client behind the same address. (Checking a
  token costs less than the call itself, an HMAC or one remembered JWT signature, so skipping
  it would not make a flood cheaper.)

Every failed authentication is counted in ``mt5exec_auth_failures_total{reason}``, every
refusal here in ``mt5exec_rate_limited_total{limit}``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Hashable
from typing import Any

import grpc

from mt5exec import metrics
from mt5exec.auth.principal import Principal
from mt5exec.config import AuthConfig
from mt5exec.errors import MT5ExecError
from mt5exec.reasons import Reason

log = logging.getLogger("mt5exec.auth")

# Buckets kept at most (principals, peers); past it the full ones are forgotten (a full
# bucket is what a new one is anyway).
MAX_KEYS = 100_000
# A throttled peer or principal is logged at most this often.
_WARN_EVERY_S = 10.0


class TokenBuckets:
    """A token bucket per key: ``burst`` tokens, refilled at ``rate`` a second."""

    def __init__(self, rate: float, burst: float, max_keys: int = MAX_KEYS) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"rate must be > 0 and burst >= 1, got {rate} and {burst}")
        self.rate = rate
        self.burst = float(burst)
        self.max_keys = max_keys
        # key -> [tokens, when they were counted (monotonic s)]
        self._buckets: dict[Hashable, list[float]] = {}

    def take(self, key: Hashable, now: float) -> float:
        """Takes a token of ``key``'s bucket: 0.0, or (none there) the seconds until one is."""
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.max_keys:
                self._forget_full(now)
            self._buckets[key] = [self.burst - 1.0, now]
            return 0.0
        tokens = min(self.burst, bucket[0] + (now - bucket[1]) * self.rate)
        bucket[1] = now
        if tokens >= 1.0:
            bucket[0] = tokens - 1.0
            return 0.0
        bucket[0] = tokens
        return (1.0 - tokens) / self.rate

    def _forget_full(self, now: float) -> None:
        full = [
            key
            for key, (tokens, stamp) in self._buckets.items()
            if tokens + (now - stamp) * self.rate >= self.burst
        ]
        for key in full:
            del self._buckets[key]
        if len(self._buckets) >= self.max_keys:
            log.warning("rate limits: %d buckets in use, all forgotten", len(self._buckets))
            self._buckets.clear()

    def __len__(self) -> int:
        return len(self._buckets)


def peer_address(peer: str) -> str:
    """A gRPC peer (``ipv4:10.0.0.7:51234``, ``ipv6:[::1]:51234``, ``unix:/path``) without
    its port: what a peer's failures are counted by."""
    if peer.startswith(("ipv4:", "ipv6:")):
        return peer.rpartition(":")[0]
    return peer


def rate_limited(principal: Principal, wait_s: float, rate: float, burst: int) -> MT5ExecError:
    return MT5ExecError(
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        Reason.RATE_LIMITED,
        f"{principal.kind} {principal.subject}: more than {rate:g} calls/s (burst {burst}); "
        f"retry in {wait_s * 1000:.0f} ms",
        metadata={"rpc_per_second": f"{rate:g}", "rpc_burst": str(burst)},
        retry_after_ms=max(1, round(wait_s * 1000)),
    )


def auth_throttled(failures: int, window_s: float, wait_s: float) -> MT5ExecError:
    return MT5ExecError(
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        Reason.AUTH_THROTTLED,
        f"authorization: more than {failures} failed authentications from this address in "
        f"{window_s:g} s; retry in {wait_s:.0f} s",
        "authorization",
        retry_after_ms=max(1, round(wait_s * 1000)),
    )


class Limits:
    """The limits of one server (see the module's docstring); ``None`` parts are off."""

    def __init__(self, config: AuthConfig, clock: Any = time.monotonic) -> None:
        self._clock = clock
        self.rpc_per_second = config.rpc_per_second
        self.rpc_burst = config.rpc_burst
        self._calls = (
            TokenBuckets(config.rpc_per_second, config.rpc_burst)
            if config.rpc_per_second > 0
            else None
        )
        self.peer_failures = config.peer_failures
        self.window_s = config.peer_failures_window_s
        self.cooldown_s = config.peer_cooldown_s
        self._failures = (
            TokenBuckets(config.peer_failures / config.peer_failures_window_s, config.peer_failures)
            if config.peer_failures > 0
            else None
        )
        # Peers in their cooldown: until when (monotonic s).
        self._cooling: dict[str, float] = {}
        self._warned: dict[Hashable, float] = {}

    def admit(self, principal: Principal) -> None:
        """Counts an authenticated call; RATE_LIMITED when its principal is over its rate."""
        calls = self._calls
        if calls is None:
            return
        now = self._clock()
        key = (principal.kind, principal.subject)
        wait = calls.take(key, now)
        if wait:
            metrics.rate_limited["rpc"] += 1
            self._warn(
                key, now, "%s %s is over its %g calls/s",
                principal.kind, principal.subject, self.rpc_per_second,
            )  # fmt: skip
            raise rate_limited(principal, wait, self.rpc_per_second, self.rpc_burst)

    def refused(self, context: Any, error: MT5ExecError) -> MT5ExecError:
        """What a call that failed to authenticate with ``error`` is answered: ``error``, or
        AUTH_THROTTLED when its peer address failed too often."""
        metrics.auth_failures[error.reason] += 1
        failures = self._failures
        if failures is None:
            return error
        now = self._clock()
        peer = peer_address(str(context.peer()))
        until = self._cooling.get(peer)
        if until is not None and now >= until:
            del self._cooling[peer]
            until = None
        if until is None:
            if not failures.take(peer, now):
                return error
            if len(self._cooling) >= MAX_KEYS:
                self._cooling = {p: t for p, t in self._cooling.items() if t > now}
            until = self._cooling[peer] = now + self.cooldown_s
        metrics.rate_limited["peer_failures"] += 1
        self._warn(
            peer, now, "%s failed to authenticate more than %d times in %g s: throttled",
            peer, self.peer_failures, self.window_s,
        )  # fmt: skip
        return auth_throttled(self.peer_failures, self.window_s, until - now)

    def _warn(self, key: Hashable, now: float, message: str, *args: object) -> None:
        if now - self._warned.get(key, -_WARN_EVERY_S) >= _WARN_EVERY_S:
            if len(self._warned) >= MAX_KEYS:
                self._warned.clear()
            self._warned[key] = now
            log.warning(message, *args)
