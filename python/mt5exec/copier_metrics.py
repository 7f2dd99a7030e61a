"""The copier's metrics, read from the engine when /metrics is scraped: per relation, copies
sent, copies skipped by reason, copy latency (master deal in -> follower order frame out) and
the follower fills' slippage against the master's price."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from mt5exec import _core
from mt5exec.engine import Engine

_LE = [repr(bound) for bound in _core.LATENCY_BOUNDS_S]
# Relation ids are their owner's own: two owners may have the same.
_LABELS = ["relation_id", "owner"]


def collect(
    engine: Engine,
) -> Iterator[CounterMetricFamily | GaugeMetricFamily | HistogramMetricFamily]:
    copies = CounterMetricFamily(
        "mt5exec_copier_copies", "Follower orders the copier sent", labels=_LABELS
    )
    skipped = CounterMetricFamily(
        "mt5exec_copier_skipped",
        "Copies not made, by reason (filters, volume, the follower's refusal)",
        labels=[*_LABELS, "reason"],
    )
    latency = HistogramMetricFamily(
        "mt5exec_copier_latency_seconds",
        "Engine time from a master's deal report to the follower order's frame written",
        labels=_LABELS,
    )
    fills = CounterMetricFamily(
        "mt5exec_copier_fills",
        "Follower fills measured against the master's price",
        labels=_LABELS,
    )
    slippage = GaugeMetricFamily(
        "mt5exec_copier_slippage_points_mean",
        "Mean slippage of the follower fills against the master's price, in the follower "
        "symbol's points (positive: worse for the follower)",
        labels=_LABELS,
    )
    for m in engine.copy_metrics():
        labels = [m.relation_id, m.owner]
        copies.add_metric(labels, m.copies)
        for reason, count in m.skipped:
            skipped.add_metric([*labels, reason], count)
        if m.latency_cumulative is not None:
            buckets = [*zip(_LE, m.latency_cumulative, strict=True), ("+Inf", m.latency_count)]
            latency.add_metric(labels, buckets, sum_value=m.latency_sum_s)
        fills.add_metric(labels, m.fills)
        if m.fills:
            slippage.add_metric(labels, m.slippage_sum / m.fills)
    yield from (copies, skipped, latency, fills, slippage)
