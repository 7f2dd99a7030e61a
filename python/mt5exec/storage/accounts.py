"""Account snapshots (table ``account_snapshots``): in the history child, from the engine's
account events that the server forwards (conflated: a slow history never slows a stream).

A row when the balance or the margin changes (at once), when only the equity moved (at most
one a second per instance: equity moves with every tick while positions are open), and every
``interval_s`` while the instance's account events keep coming (``reason = 'interval'``),
changed or not. An instance whose events stopped (stopped, deleted) gets no more rows.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mt5exec.v1 import stream_pb2

Row = tuple[Any, ...]

EQUITY_EVERY_S = 1.0


@dataclass
class _Seen:
    account: Any
    row_at: float  # monotonic time of the last row
    seen_at: float  # of the last event
    values: tuple[float, float, float]


class AccountSnapshots:
    def __init__(self, record: Callable[[str, Row], bool], interval_s: float = 60.0) -> None:
        self._record = record
        self.interval_s = interval_s
        self._seen: dict[str, _Seen] = {}
        self._lock = threading.Lock()
        self.written = 0

    def add(self, batch: bytes, now: float | None = None, at_us: int | None = None) -> None:
        """An encoded StreamAccountResponse, received at ``now`` (monotonic) and ``at_us``
        (µs since the epoch: the time of a row whose account has no ``update_time``);
        unset: at once."""
        if now is None:
            now = time.monotonic()
        with self._lock:
            for account in stream_pb2.StreamAccountResponse.FromString(batch).accounts:
                values = (account.balance, account.equity, account.margin)
                seen = self._seen.get(account.instance_id)
                moved = seen is None or (
                    values[0] != seen.values[0]
                    or values[2] != seen.values[2]
                    or (values[1] != seen.values[1] and now - seen.row_at >= EQUITY_EVERY_S)
                )
                reason: str | None
                if moved:
                    reason = "change"
                elif seen is not None and now - seen.row_at >= self.interval_s:
                    reason = "interval"
                else:
                    reason = None
                if seen is None:
                    seen = self._seen[account.instance_id] = _Seen(account, now, now, values)
                seen.account, seen.seen_at = account, now
                if reason is not None:
                    seen.row_at = now
                    seen.values = values
                    self._write(account, reason, None, at_us)

    def due(self) -> None:
        """The minute's rows of the instances whose events keep coming but said nothing new."""
        now = time.monotonic()
        with self._lock:
            for instance_id, seen in list(self._seen.items()):
                if now - seen.seen_at > 5 * self.interval_s:
                    del self._seen[instance_id]  # its events stopped: no more rows
                elif now - seen.row_at >= self.interval_s:
                    seen.row_at = now
                    self._write(seen.account, "interval", time.time_ns() // 1000)

    def _write(
        self, account: Any, reason: str, at_us: int | None = None, received_us: int | None = None
    ) -> None:
        if at_us is None:
            stamp = account.update_time
            if account.HasField("update_time"):
                at_us = stamp.seconds * 1_000_000 + stamp.nanos // 1000
            else:
                at_us = time.time_ns() // 1000 if received_us is None else received_us
        row = (
            account.instance_id,
            at_us,
            account.balance,
            account.equity,
            account.margin,
            account.free_margin,
            account.margin_level,
            account.profit,
            account.currency,
            reason,
        )
        if self._record("account_snapshots", row):
            self.written += 1

    def run_timer(self, stop: threading.Event) -> None:
        """``due`` every few seconds until ``stop`` (a thread of the child)."""
        while not stop.wait(min(5.0, self.interval_s / 4)):
            self.due()
