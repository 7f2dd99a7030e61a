"""Per-RPC metrics, counted by the server's handlers (``mt5exec.server.handlers``) when
``/metrics`` is served (off with it: then the handlers are not wrapped at all):

- ``mt5exec_rpc_seconds{method}``: histogram of unary calls' handling time, from the handler's
  start to its answer (after decoding, before encoding; refusals included);
- ``mt5exec_rpc_errors_total{method,code}``: calls (unary and streams) that ended with a status
  other than OK, by its name (a stream the client closes ends ``CANCELLED``);
- ``mt5exec_rpc_streams_total{method}``: streams opened.

``method`` is ``Service/Method`` (``OrderService/PlaceOrder``). The hot path pays one
``perf_counter`` pair and one list increment per unary call (the method's instruments are
resolved once, when its handler is made); the histogram is built when scraped.
"""

from __future__ import annotations

import collections
from bisect import bisect_left
from collections.abc import Callable, Iterator

import grpc
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

# From 100 µs (a null call on a quiet machine) to 10 s (past any terminal's order timeout).
BUCKETS_S = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
_LE = [repr(bound) for bound in BUCKETS_S]

_NAMES: dict[object, str] = {code: code.name for code in grpc.StatusCode}
_NAMES.update({code.value[0]: code.name for code in grpc.StatusCode})


def code_name(code: object) -> str:
    """A status code's name (a call that ended without one was cancelled)."""
    if code is None:
        return "CANCELLED"
    return _NAMES.get(code, "UNKNOWN")


class _Timings:
    """One method's handling times: counts per bucket (the last: above every bound) and
    their sum. Observed on the event loop's thread only, read by a scrape: a plain list
    increment (prometheus_client's Histogram takes a lock per bucket and for the sum, ~5x
    the time)."""

    __slots__ = ("counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(BUCKETS_S) + 1)
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(BUCKETS_S, seconds)] += 1
        self.total += seconds


class MethodMetrics:
    """One method's instruments. Its series appear once it is first called (a method never
    called, or a unary method's stream count, shows none)."""

    __slots__ = ("_errors", "_key", "_rpc", "observe")

    def __init__(self, rpc: RpcMetrics, name: str) -> None:
        self._rpc = rpc
        self._key = name
        self._errors = rpc.errors
        self.observe: Callable[[float], None] = self._first_observation

    def _first_observation(self, seconds: float) -> None:
        timings = self._rpc.timings.setdefault(self._key, _Timings())
        self.observe = timings.observe
        self.observe(seconds)

    def opened(self) -> None:
        """Counts a stream opened."""
        self._rpc.streams[self._key] += 1

    def failed(self, code: object) -> None:
        """Counts a call that ended with ``code`` (not OK)."""
        self._errors[(self._key, code_name(code))] += 1


class RpcMetrics(Collector):
    """Every method's instruments, read by ``registry`` when scraped."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.timings: dict[str, _Timings] = {}
        self.errors: collections.Counter[tuple[str, str]] = collections.Counter()
        self.streams: collections.Counter[str] = collections.Counter()
        registry.register(self)

    def method(self, full_name: str) -> MethodMetrics:
        """The instruments of ``package.Service/Method``."""
        return MethodMetrics(self, full_name.rpartition(".")[2])

    def collect(self) -> Iterator[HistogramMetricFamily | CounterMetricFamily]:
        seconds = HistogramMetricFamily(
            "mt5exec_rpc_seconds", "Handling time of unary calls by method", labels=["method"]
        )
        for method, timings in sorted(self.timings.copy().items()):
            counts, running, buckets = list(timings.counts), 0, []
            for le, count in zip(_LE, counts, strict=False):
                running += count
                buckets.append((le, running))
            buckets.append(("+Inf", sum(counts)))
            seconds.add_metric([method], buckets, sum_value=timings.total)
        yield seconds
        errors = CounterMetricFamily(
            "mt5exec_rpc_errors",
            "Calls that ended with a status other than OK, by method and code",
            labels=["method", "code"],
        )
        for (method, code), count in sorted(self.errors.copy().items()):
            errors.add_metric([method, code], count)
        yield errors
        streams = CounterMetricFamily(
            "mt5exec_rpc_streams", "Streams opened, by method", labels=["method"]
        )
        for method, count in sorted(self.streams.copy().items()):
            streams.add_metric([method], count)
        yield streams
