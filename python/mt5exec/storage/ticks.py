"""Tick storage (optional): ticks appended to DuckDB in batches, pruned after the retention.

Runs in the history child process, beside ``HistoryWriter`` on its own cursor of the same
database, so it is never on the fan-out path: the server forwards the encoded tick batches of
an internal subscription, and a subscriber that falls behind (this one) is conflated, never
the clients.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import time
from collections.abc import Callable
from typing import Any

from mt5exec.v1 import stream_pb2

log = logging.getLogger("mt5exec.history")

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS ticks ("
    "instance_id VARCHAR NOT NULL, symbol VARCHAR NOT NULL, time TIMESTAMP NOT NULL, "
    "received_at TIMESTAMP, bid DOUBLE, ask DOUBLE, last DOUBLE, volume DOUBLE)"
)


def _ts(seconds: int, nanos: int) -> dt.datetime:
    return dt.datetime(1970, 1, 1) + dt.timedelta(seconds=seconds, microseconds=nanos // 1000)


class TickStore:
    """Buffers decoded ticks and appends them every ``flush_interval_s``; ``connect`` gives a
    cursor of the database (taken again after an error: the writer may have reopened it)."""

    def __init__(
        self, connect: Callable[[], Any], retention_days: float, flush_interval_s: float = 1.0
    ) -> None:
        self._connect = connect
        self._conn: Any = connect()
        self.retention_days = retention_days
        self.flush_interval_s = flush_interval_s
        self._rows: list[tuple[Any, ...]] = []
        self._last_flush = time.monotonic()
        self._last_prune = 0.0
        self.written = 0
        self.errors = 0
        self._appender: Any = None
        self._conn.execute(_SCHEMA)
        self.prune()

    def add(self, batch: bytes) -> None:
        """An encoded StreamTicksResponse."""
        for t in stream_pb2.StreamTicksResponse.FromString(batch).ticks:
            self._rows.append(
                (
                    t.instance_id,
                    t.symbol,
                    _ts(t.time.seconds, t.time.nanos),
                    _ts(t.received_time.seconds, t.received_time.nanos),
                    t.bid,
                    t.ask,
                    t.last,
                    t.volume,
                )
            )
        if time.monotonic() - self._last_flush >= self.flush_interval_s:
            self.flush()

    def flush(self) -> None:
        self._last_flush = time.monotonic()
        if self._rows:
            rows, self._rows = self._rows, []
            try:
                if self._conn is None:
                    self._conn = self._connect()
                if self._appender is None:
                    self._appender = self._conn.appender("ticks")
                self._appender.append_rows(rows)
                self._appender.flush()
                self.written += len(rows)
            except Exception as e:  # history must never take the process down
                self._drop_connection()
                self.errors += 1
                log.error("tick store: %d ticks not written: %s", len(rows), e)
        if time.monotonic() - self._last_prune >= 3600:
            try:
                self.prune()
            except Exception as e:
                self._drop_connection()
                log.error("tick store: pruning failed: %s", e)

    def _drop_connection(self) -> None:
        self._appender = None
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
        self._conn = None

    def prune(self) -> None:
        """Deletes ticks older than the retention period."""
        self._last_prune = time.monotonic()
        cutoff = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(
            days=self.retention_days
        )
        if self._conn is None:
            self._conn = self._connect()
        self._conn.execute("DELETE FROM ticks WHERE time < ?", [cutoff])
