"""Prometheus metrics: read from the engine when scraped, so the hot path counts nothing
twice and pays nothing for an endpoint nobody scrapes.

Served on ``[server] metrics_listen`` (off by default) at ``/metrics``; with
``metrics_token_file`` a request without ``Authorization: Bearer <token>`` gets 401, and with
``tls_cert`` it is HTTPS:

- ``mt5exec_risk_rejections_total{instance_id,reason}``: orders, changes and cancels the
  risk engine refused;
- ``mt5exec_stream_subscribers{topic}``, ``mt5exec_stream_queued_messages{topic}``;
- ``mt5exec_stream_dropped_total{topic}``: messages conflated or dropped for subscribers that
  fell behind (each subscriber also sees its own count in its stream);
- ``mt5exec_stream_cutoffs_total{reason}``: streams ended because the client stopped reading;
- ``mt5exec_instances{state}``; ``mt5exec_journal_records_total``, ``mt5exec_journal_fsyncs_total``;
- ``mt5exec_auth_failures_total{reason}``: calls refused UNAUTHENTICATED (``TOKEN_MISSING``,
  ``TOKEN_INVALID``, ``TOKEN_EXPIRED``, ``TOKEN_REVOKED``), also those answered AUTH_THROTTLED;
- ``mt5exec_rate_limited_total{limit}``: calls refused RESOURCE_EXHAUSTED by ``rpc`` (a
  principal over ``[auth] rpc_per_second``) or ``peer_failures`` (a peer address that failed
  to authenticate too often);
- fills, rejections, slippage, account, spread and worker figures: ``mt5exec.trading_metrics``;
  per-RPC latency and errors: ``mt5exec.rpc_metrics``;
- the copier's copies, skips, latency and slippage per relation: ``mt5exec.copier_metrics``.
"""

from __future__ import annotations

import collections
import hmac
import logging
import socket
import ssl
import threading
from collections.abc import Iterable, Iterator
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from prometheus_client import CollectorRegistry, GCCollector, ProcessCollector, make_wsgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from mt5exec import copier_metrics, trading_metrics
from mt5exec.config import parse_listen
from mt5exec.engine import Engine
from mt5exec.mirror import stats as mirror_stats
from mt5exec.reasons import Reason
from mt5exec.rpc_metrics import RpcMetrics
from mt5exec.v1 import common_pb2

# Streams ended by the server, by reason (counted by the gRPC handlers: a write blocked past
# the timeout; the engine counts those it cut off for leaving too much unread).
stream_cutoffs: collections.Counter[str] = collections.Counter()
# Failed authentications by reason, and calls refused by a rate limit, by limit (counted by
# mt5exec.auth.limits).
auth_failures: collections.Counter[str] = collections.Counter()
rate_limited: collections.Counter[str] = collections.Counter()


def _counters(
    name: str, documentation: str, label: str, counts: collections.Counter[str]
) -> CounterMetricFamily:
    family = CounterMetricFamily(name, documentation, labels=[label])
    for value, count in sorted(counts.copy().items()):
        family.add_metric([value], count)
    return family


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
        counts[Reason.SLOW_CONSUMER] += engine.stream_cutoffs()
        for reason, count in sorted(counts.items()):
            if count:
                cutoffs.add_metric([reason], count)
        yield cutoffs
        yield _counters(
            "mt5exec_auth_failures", "Calls refused UNAUTHENTICATED", "reason", auth_failures
        )
        yield _counters(
            "mt5exec_rate_limited", "Calls refused by a rate limit", "limit", rate_limited
        )
        states: collections.Counter[str] = collections.Counter(
            common_pb2.InstanceState.Name(i.state) for i in engine.list_instances()
        )
        instances = GaugeMetricFamily("mt5exec_instances", "Instances by state", labels=["state"])
        for state, count in sorted(states.items()):
            instances.add_metric([state], count)
        yield instances
        yield from trading_metrics.collect(engine)
        yield from copier_metrics.collect(engine)
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
            "mt5exec_journal_records", "Order journal records written", value=journal.records
        )
        yield CounterMetricFamily(
            "mt5exec_journal_fsyncs", "Order journal fsyncs", value=journal.fsyncs
        )
        yield CounterMetricFamily(
            "mt5exec_journal_compactions",
            "Order journal compactions while running",
            value=journal.compactions,
        )
        yield from mirror_stats.collect(engine)


log = logging.getLogger("mt5exec.metrics")

# A connection that sends nothing (or never finishes its TLS handshake) holds a thread no longer.
_CONNECTION_TIMEOUT_S = 5.0
# Connections served at once (a thread each); one more is closed as soon as it is accepted,
# before its TLS handshake or token is looked at: a flood of connections costs no threads.
MAX_CONNECTIONS = 8


def require_token(app: WSGIApplication, token: bytes) -> WSGIApplication:
    """``app`` behind ``Authorization: Bearer <token>`` (401 without it)."""

    def guarded(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        scheme, _, given = str(environ.get("HTTP_AUTHORIZATION", "")).partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(
            given.strip().encode("latin-1", "replace"), token
        ):
            return app(environ, start_response)
        start_response(
            "401 Unauthorized",
            [
                ("WWW-Authenticate", 'Bearer realm="mt5exec metrics"'),
                ("Content-Type", "text/plain"),
            ],
        )
        return [b"401: /metrics requires Authorization: Bearer <token>\n"]

    return guarded


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class _HTTPServer(ThreadingMixIn, WSGIServer):
    """prometheus-client's threading WSGI server, with TLS per connection: the handshake runs
    on the connection's thread, where a client that stalls it cannot hold up the others. At
    most MAX_CONNECTIONS are served at once; those over are closed at once."""

    daemon_threads = True

    def __init__(self, host: str, port: int, tls: ssl.SSLContext | None) -> None:
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.tls = tls
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        super().__init__((host, port), _QuietHandler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            log.debug(
                "metrics: %d connections served, one from %s closed",
                MAX_CONNECTIONS,
                client_address,
            )
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def finish_request(self, request: Any, client_address: Any) -> None:
        request.settimeout(_CONNECTION_TIMEOUT_S)
        if self.tls is None:
            super().finish_request(request, client_address)
            return
        with self.tls.wrap_socket(request, server_side=True) as secure:
            super().finish_request(secure, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A failed handshake, a timeout or a reset: the client's problem, not the server's.
        log.debug("metrics request from %s failed", client_address, exc_info=True)


class MetricsServer:
    """The /metrics endpoint on its own thread."""

    def __init__(
        self,
        engine: Engine,
        listen: str,
        *,
        token: bytes | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(EngineCollector(engine))
        # Per-RPC latency and errors, counted by the handlers (mt5exec.rpc_metrics).
        self.rpc = RpcMetrics(self.registry)
        # The server process itself: process_* (CPU, resident memory, open files) and
        # python_gc_* (collections per generation).
        ProcessCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        host, port = parse_listen(listen)
        self._host = host
        app = make_wsgi_app(self.registry)
        self._server = _HTTPServer(host.strip("[]"), port, tls)
        self._server.set_app(app if token is None else require_token(app, token))
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="metrics", daemon=True
        )
        self._thread.start()

    @property
    def address(self) -> str:
        return f"{self._host}:{self._server.server_port}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
