"""What operators watch per instance (``/metrics``), read from the engine when scraped.

Counted by the engine where an instance's execution events are published (under the lock
publishing holds anyway: nothing more on the hot path), since the server started:

- ``mt5exec_fills_total{instance_id,symbol}``, ``mt5exec_fill_volume_lots_total``,
  ``mt5exec_commission_total`` (its absolute value, in the account's currency);
- ``mt5exec_slippage_points{instance_id,symbol}``: histogram of the slippage of orders' own
  fills against the price asked (positive is worse);
- ``mt5exec_order_rejections_total{instance_id,reason}``: rejected orders by the risk check's
  reason or the terminal's retcode name (``NO_MONEY``, ``REQUOTE``, ...);
- ``mt5exec_order_updates_total{instance_id,status}``: order updates published, by status
  (``ORDER_STATUS_PARTIALLY_FILLED``, ``ORDER_STATUS_CANCELED``, ...).

Read from the live state when scraped: ``mt5exec_account_{balance,equity,margin_level,leverage}``
per instance, ``mt5exec_spread_points{instance_id,symbol}`` (the last tick's), and the worker's
``mt5exec_worker_resident_bytes`` and ``mt5exec_worker_cpu_seconds_total`` (``/proc``),
``mt5exec_instance_state{instance_id,state}`` (1 for the current state),
``mt5exec_instance_kill_switch{instance_id}``, and the order journal's
``mt5exec_journal_usable`` (0 once a failed write or fsync left it unusable) and
``mt5exec_journal_failures_total``.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from mt5exec.engine import SLIPPAGE_LE, Engine
from mt5exec.v1 import common_pb2

Family = CounterMetricFamily | GaugeMetricFamily | HistogramMetricFamily


def _executions(engine: Engine) -> Iterator[Family]:
    counted = engine.execution_counts()
    labels = ["instance_id", "symbol"]
    fills = CounterMetricFamily("mt5exec_fills", "Fills (deals)", labels=labels)
    volume = CounterMetricFamily("mt5exec_fill_volume_lots", "Volume filled in lots", labels=labels)
    commission = CounterMetricFamily(
        "mt5exec_commission",
        "Commission charged on fills (absolute value, account currency)",
        labels=labels,
    )
    slippage = HistogramMetricFamily(
        "mt5exec_slippage_points",
        "Slippage of orders' own fills against the price asked, in points (positive: worse)",
        labels=labels,
    )
    for f in counted.fills:
        key = [f.instance_id, f.symbol]
        fills.add_metric(key, f.fills)
        volume.add_metric(key, f.volume)
        commission.add_metric(key, f.commission)
        buckets = [
            *zip(SLIPPAGE_LE, f.slippage_cumulative, strict=True),
            ("+Inf", f.slippage_count),
        ]
        slippage.add_metric(key, buckets, sum_value=f.slippage_sum)
    yield from (fills, volume, commission, slippage)
    rejections = CounterMetricFamily(
        "mt5exec_order_rejections",
        "Rejected orders by reason: a risk check's, or the terminal's TRADE_RETCODE name",
        labels=["instance_id", "reason"],
    )
    for rejected in counted.rejections:
        rejections.add_metric([rejected.instance_id, rejected.label], rejected.count)
    yield rejections
    statuses = CounterMetricFamily(
        "mt5exec_order_updates",
        "Order updates published on the execution stream, by status",
        labels=["instance_id", "status"],
    )
    for updated in counted.updates:
        statuses.add_metric([updated.instance_id, updated.label], updated.count)
    yield statuses


def _gauges(engine: Engine) -> Iterator[Family]:
    one = ["instance_id"]
    balance = GaugeMetricFamily("mt5exec_account_balance", "Account balance", labels=one)
    equity = GaugeMetricFamily("mt5exec_account_equity", "Account equity", labels=one)
    margin_level = GaugeMetricFamily(
        "mt5exec_account_margin_level_percent",
        "Equity / margin in percent (0: no margin used)",
        labels=one,
    )
    leverage = GaugeMetricFamily("mt5exec_account_leverage", "Account leverage", labels=one)
    spread = GaugeMetricFamily(
        "mt5exec_spread_points",
        "Spread of the symbol's last tick, in points",
        labels=["instance_id", "symbol"],
    )
    rss = GaugeMetricFamily(
        "mt5exec_worker_resident_bytes", "Resident memory of the instance's worker", labels=one
    )
    cpu = CounterMetricFamily(
        "mt5exec_worker_cpu_seconds",
        "CPU time (user + system) of the instance's worker",
        labels=one,
    )
    for g in engine.instance_gauges():
        key = [g.instance_id]
        for family, value in (
            (balance, g.balance),
            (equity, g.equity),
            (margin_level, g.margin_level),
            (leverage, g.leverage),
            (rss, g.worker_resident_bytes),
            (cpu, g.worker_cpu_seconds),
        ):
            if value is not None:
                family.add_metric(key, value)
        for symbol, points in g.spreads.items():
            spread.add_metric([g.instance_id, symbol], points)
    yield from (balance, equity, margin_level, leverage, spread, rss, cpu)


def _instances(engine: Engine) -> Iterator[Family]:
    one = ["instance_id"]
    state = GaugeMetricFamily(
        "mt5exec_instance_state", "1 for each instance's current state", labels=[*one, "state"]
    )
    kill_switch = GaugeMetricFamily(
        "mt5exec_instance_kill_switch", "1 while the instance's kill switch is engaged", labels=one
    )
    for instance in engine.list_instances():
        name = common_pb2.InstanceState.Name(instance.state)
        state.add_metric([instance.instance_id, name], 1)
        kill_switch.add_metric([instance.instance_id], int(instance.kill_switch))
    yield from (state, kill_switch)
    health = engine.journal_health()
    if health is not None:
        usable, failures = health
        yield GaugeMetricFamily(
            "mt5exec_journal_usable",
            "0 once a failed write or fsync left the order journal unusable (every order is "
            "refused JOURNAL_UNAVAILABLE until the server restarts)",
            value=int(usable),
        )
        yield CounterMetricFamily(
            "mt5exec_journal_failures",
            "Order journal appends and fsyncs that failed",
            value=failures,
        )


def collect(engine: Engine) -> Iterator[Family]:
    """Every family above, read now."""
    yield from _executions(engine)
    yield from _gauges(engine)
    yield from _instances(engine)
