"""What the mirror reports in /metrics (docs/observability.md): read when scraped. No Redis
import here: metrics.py reads it whether or not a mirror runs."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from mt5exec.engine import Engine
from mt5exec.errors import MT5ExecError


@dataclass
class MirrorStats:
    # Whether the mirror is connected and following the engine (1) or not (0).
    up: bool = False
    # Connections made again after Redis was lost.
    reconnects: int = 0
    # Full rebuilds of every key (each connection starts with one; a FLUSHALL causes one).
    resyncs: int = 0
    # Seconds from an execution event's time to its entry written, for the last batch.
    lag_seconds: float = 0.0
    # The last execution sequence written to Redis, per instance.
    written: dict[str, int] = field(default_factory=dict)
    # Entries added to the streams; instance events lost while Redis was down (over the
    # buffer); resumes that could not start where Redis stood (the engine no longer kept it).
    stream_entries: int = 0
    events_lost: int = 0
    sequence_gaps: int = 0


# The running mirror's (None: no [redis]).
current: MirrorStats | None = None


def collect(engine: Engine) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
    """The mirror's metrics (nothing without a mirror)."""
    stats = current
    if stats is None:
        return
    yield GaugeMetricFamily(
        "mt5exec_redis_mirror_up", "Whether the Redis mirror is connected", value=int(stats.up)
    )
    yield CounterMetricFamily(
        "mt5exec_redis_mirror_reconnects",
        "Connections to Redis made again after it was lost",
        value=stats.reconnects,
    )
    yield CounterMetricFamily(
        "mt5exec_redis_mirror_resyncs", "Full rebuilds of the mirror's keys", value=stats.resyncs
    )
    yield CounterMetricFamily(
        "mt5exec_redis_mirror_stream_entries",
        "Entries the mirror added to Redis streams",
        value=stats.stream_entries,
    )
    yield CounterMetricFamily(
        "mt5exec_redis_mirror_events_lost",
        "Instance events not written (over the buffer while Redis was down)",
        value=stats.events_lost,
    )
    yield CounterMetricFamily(
        "mt5exec_redis_mirror_sequence_gaps",
        "Execution streams resumed past events the engine no longer kept",
        value=stats.sequence_gaps,
    )
    yield GaugeMetricFamily(
        "mt5exec_redis_mirror_lag_seconds",
        "Age of the newest execution event when it was written to Redis",
        value=stats.lag_seconds,
    )
    lag = GaugeMetricFamily(
        "mt5exec_redis_mirror_lag_events",
        "Execution events of an instance not yet in its Redis stream",
        labels=["instance_id"],
    )
    for instance in engine.list_instances():
        iid = instance.instance_id
        try:
            behind = engine.last_sequence(iid) - stats.written.get(iid, 0)
        except MT5ExecError:
            continue
        lag.add_metric([iid], max(0, behind))
    yield lag
