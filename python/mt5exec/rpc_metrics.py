"""Per-RPC metrics, counted by the server's handlers (``mt5exec.server.handlers``) when
``/metrics`` is served (off with it: then the handlers are not wrapped at all):

- ``mt5exec_rpc_seconds{method}``: histogram of unary calls' handling time, from the handler's
  start to its answer (after decoding, before encoding; refusals included);
- ``mt5exec_rpc_errors_total{method,code}``: calls (unary and streams) that ended with a status
  other than OK, by its name (a stream the client closes ends ``CANCELLED``);
- ``mt5exec_rpc_streams_total{method}``: streams opened.

``method`` is ``Service/Method`` (``OrderService/PlaceOrder``). The hot path pays one
``perf_counter`` pair and one histogram observation per unary call, with the method's labels
resolved once, when its handler is made.
"""

from __future__ import annotations

from collections.abc import Callable

import grpc
from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics

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

# No `_created` series per method and code: they double what /metrics carries for nothing an
# alert or a rate needs (the engine's families have none either).
disable_created_metrics()  # type: ignore[no-untyped-call]

_NAMES: dict[object, str] = {code: code.name for code in grpc.StatusCode}
_NAMES.update({code.value[0]: code.name for code in grpc.StatusCode})


def code_name(code: object) -> str:
    """A status code's name (a call that ended without one was cancelled)."""
    if code is None:
        return "CANCELLED"
    return _NAMES.get(code, "UNKNOWN")


class MethodMetrics:
    """One method's instruments, each with its labels resolved at its first use (a method
    that is never called, or a unary method's stream counter, shows no series)."""

    __slots__ = ("_by_code", "_name", "_rpc", "observe", "opened")

    def __init__(self, rpc: RpcMetrics, name: str) -> None:
        self._name = name
        self._rpc = rpc
        self._by_code: dict[object, Callable[[], None]] = {}
        self.observe: Callable[[float], None] = self._first_observation
        self.opened: Callable[[], None] = self._first_stream

    def _first_observation(self, seconds: float) -> None:
        self.observe = self._rpc.seconds.labels(self._name).observe
        self.observe(seconds)

    def _first_stream(self) -> None:
        self.opened = self._rpc.streams.labels(self._name).inc
        self.opened()

    def failed(self, code: object) -> None:
        """Counts a call that ended with ``code`` (not OK)."""
        count = self._by_code.get(code)
        if count is None:
            count = self._by_code[code] = self._rpc.errors.labels(self._name, code_name(code)).inc
        count()


class RpcMetrics:
    """The instruments of every method, in ``registry``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.seconds = Histogram(
            "mt5exec_rpc_seconds",
            "Handling time of unary calls by method",
            ["method"],
            buckets=BUCKETS_S,
            registry=registry,
        )
        self.errors = Counter(
            "mt5exec_rpc_errors",
            "Calls that ended with a status other than OK, by method and code",
            ["method", "code"],
            registry=registry,
        )
        self.streams = Counter(
            "mt5exec_rpc_streams", "Streams opened, by method", ["method"], registry=registry
        )

    def method(self, full_name: str) -> MethodMetrics:
        """The instruments of ``package.Service/Method``."""
        return MethodMetrics(self, full_name.rpartition(".")[2])
