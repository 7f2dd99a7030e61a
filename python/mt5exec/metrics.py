"""Prometheus metrics: read from the engine when scraped, so the hot path counts nothing
twice and pays nothing for an endpoint nobody scrapes.

Served on ``[server] metrics_listen`` (off by default) at ``/metrics``:

- ``mt5exec_risk_rejections_total{instance_id,reason}``: orders, changes and cancels the
  risk engine refused;
- ``mt5exec_stream_subscribers{topic}``, ``mt5exec_stream_queued_messages{topic}``;
- ``mt5exec_stream_dropped_total{topic}``: messages conflated or dropped for subscribers that
  fell behind (each subscriber also sees its own count in its stream);
- ``mt5exec_stream_cutoffs_total{reason}``: streams ended because the client stopped reading;
- ``mt5exec_instances{state}``; ``mt5exec_journal_records_total``, ``mt5exec_journal_fsyncs_total``.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Iterator
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    CollectorRegistry,
    GCCollector,
    ProcessCollector,
    start_http_server,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from mt5exec.config import parse_listen
from mt5exec.engine import Engine
from mt5exec.v1 import common_pb2

# Streams ended by the server, by reason (counted by the gRPC handlers: a write blocked past
# the timeout; the engine counts those it cut off for leaving too much unread).
stream_cutoffs: collections.Counter[str] = collections.Counter()


class EngineCollector(Collector):
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def collect(
        self,
    ) -> Iterator[GaugeMetricFamily | CounterMetricFamily | HistogramMetricFamily]:
        engine = self._engine
        rejections = CounterMetricFamily(
            "mt5exec_risk_rejections",
            "Requests the risk engine refused",
            labels=["instance_id", "reason"],
        )
        for instance_id, reason, count in engine.risk_rejections():
            rejections.add_metric([instance_id, reason], count)
        yield rejections
        subscribers = GaugeMetricFamily(
            "mt5exec_stream_subscribers", "Stream subscriptions", labels=["topic"]
        )
        queued = GaugeMetricFamily(
            "mt5exec_stream_queued_messages", "Messages waiting for subscribers", labels=["topic"]
        )
        dropped = CounterMetricFamily(
            "mt5exec_stream_dropped",
            "Messages conflated or dropped for subscribers that fell behind",
            labels=["topic"],
        )
        for topic, subs, waiting, lost in engine.stream_stats():
            subscribers.add_metric([topic], subs)
            queued.add_metric([topic], waiting)
            dropped.add_metric([topic], lost)
        yield from (subscribers, queued, dropped)
        cutoffs = CounterMetricFamily(
            "mt5exec_stream_cutoffs", "Streams ended by the server", labels=["reason"]
        )
        counts = stream_cutoffs.copy()
        counts["SLOW_CONSUMER"] += engine.stream_cutoffs()
        for reason, count in sorted(counts.items()):
            if count:
                cutoffs.add_metric([reason], count)
        yield cutoffs
        states: collections.Counter[str] = collections.Counter(
            common_pb2.InstanceState.Name(i.state) for i in engine.list_instances()
        )
        instances = GaugeMetricFamily("mt5exec_instances", "Instances by state", labels=["state"])
        for state, count in sorted(states.items()):
            instances.add_metric([state], count)
        yield instances
        latency = HistogramMetricFamily(
            "mt5exec_worker_request_seconds",
            "Time from a request's frame sent to a worker to its answer read, by kind",
            labels=["instance_id", "kind"],
        )
        for instance_id, kind, buckets, total in engine.worker_latency():
            latency.add_metric([instance_id, kind], buckets, sum_value=total)
        yield latency
        journal = engine.journal_stats()
        yield CounterMetricFamily(
            "mt5exec_journal_records", "Order journal records written", value=journal["records"]
        )
        yield CounterMetricFamily(
            "mt5exec_journal_fsyncs", "Order journal fsyncs", value=journal["fsyncs"]
        )
        yield CounterMetricFamily(
            "mt5exec_journal_compactions",
            "Order journal compactions while running",
            value=journal["compactions"],
        )


class MetricsServer:
    """The /metrics endpoint on its own thread (prometheus-client's WSGI server)."""

    def __init__(self, engine: Engine, listen: str) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(EngineCollector(engine))
        # The server process itself: process_* (CPU, resident memory, open files) and
        # python_gc_* (collections per generation).
        ProcessCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        host, port = parse_listen(listen)
        self._host = host
        self._server: WSGIServer
        self._thread: threading.Thread
        self._server, self._thread = start_http_server(port, host, self.registry)

    @property
    def address(self) -> str:
        return f"{self._host}:{self._server.server_port}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
