"""The copier's metrics, read from the engine when /metrics is scraped: per relation, copies
sent, copies skipped by reason, copy latency (master deal in -> follower order frame out) and
the follower fills' slippage against the master's price."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from mt5exec.engine import Engine


def collect(
    engine: Engine,
) -> Iterator[CounterMetricFamily | GaugeMetricFamily | HistogramMetricFamily]:
    copies = CounterMetricFamily(
        "mt5exec_copier_copies", "Follower orders the copier sent", labels=["relation_id"]
    )
    skipped = CounterMetricFamily(
        "mt5exec_copier_skipped",
        "Copies not made, by reason (filters, volume, the follower's refusal)",
        labels=["relation_id", "reason"],
    )
    latency = HistogramMetricFamily(
        "mt5exec_copier_latency_seconds",
        "Engine time from a master's deal report to the follower order's frame written",
        labels=["relation_id"],
    )
    fills = CounterMetricFamily(
        "mt5exec_copier_fills",
        "Follower fills measured against the master's price",
        labels=["relation_id"],
    )
    slippage = GaugeMetricFamily(
        "mt5exec_copier_slippage_points_mean",
        "Mean slippage of the follower fills against the master's price, in the follower "
        "symbol's points (positive: worse for the follower)",
        labels=["relation_id"],
    )
    for relation_id, sent, skips, buckets, total, filled, points in engine.copy_metrics():
        copies.add_metric([relation_id], sent)
        for reason, count in skips:
            skipped.add_metric([relation_id, reason], count)
        if buckets is not None:
            latency.add_metric([relation_id], buckets, sum_value=total)
        fills.add_metric([relation_id], filled)
        if filled:
            slippage.add_metric([relation_id], points / filled)
    yield from (copies, skipped, latency, fills, slippage)
