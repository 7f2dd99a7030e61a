"""PublishSignal: a signal of a configured source is checked (shape, HMAC, window, nonce) and,
only once it passes all four, handed to the copier (``Engine.copy_signal``), which sends it to
every relation whose ``signal_source`` is the source; the answer lists the orders made.

Order of the checks (docs/signals.md): the fields' shapes (INVALID_ARGUMENT: a string outside
its pattern could re-split the signed lines); the source and its signature (UNAUTHENTICATED:
an unknown source is told apart from a bad signature by its reason only); the timestamp against
the window (INVALID_ARGUMENT, SIGNAL_OUTSIDE_WINDOW); the nonce (INVALID_ARGUMENT,
NONCE_REUSED), recorded durably before anything is sent (UNAVAILABLE, NONCE_NOT_RECORDED when
it cannot be: nothing is sent).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping

import grpc

from mt5exec.auth import principal as auth
from mt5exec.config import ServerConfig
from mt5exec.engine import Engine
from mt5exec.errors import MT5ExecError, invalid, quote
from mt5exec.reasons import Reason
from mt5exec.services import validation
from mt5exec.signals import canonical
from mt5exec.signals.nonces import NonceLog
from mt5exec.signals.sources import load_secrets
from mt5exec.v1 import common_pb2, order_pb2

log = logging.getLogger(__name__)

# As a relation's signal_source (rust_core/src/copier/spec.rs).
_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_NONCE = re.compile(r"[A-Za-z0-9_.:-]{8,64}")
_SIGNAL_ID = re.compile(r"[A-Za-z0-9_.:-]{0,64}")
_SYMBOL = re.compile(r"[!-~]{1,64}")  # printable ASCII, no space
_SIGNATURE = re.compile(r"[0-9A-Fa-f]{64}")
_SIDES = (common_pb2.SIDE_BUY, common_pb2.SIDE_SELL)


def _unauthenticated(reason: str, message: str, field: str) -> MT5ExecError:
    return MT5ExecError(grpc.StatusCode.UNAUTHENTICATED, reason, message, field)


def _check_shape(request: order_pb2.PublishSignalRequest) -> None:
    validation.text("source", request.source, max_length=64, pattern=_NAME)
    validation.text("signal_id", request.signal_id, max_length=64, pattern=_SIGNAL_ID)
    validation.text("symbol", request.symbol, max_length=64, pattern=_SYMBOL)
    validation.text("nonce", request.nonce, max_length=64, pattern=_NONCE)
    if request.side not in _SIDES:
        raise invalid(
            "side", Reason.SIDE_INVALID, f"side: {request.side} is not SIDE_BUY or SIDE_SELL"
        )
    validation.finite("volume", request.volume)
    validation.finite("risk_percent", request.risk_percent, maximum=100.0)
    if request.volume and request.risk_percent:
        raise invalid(
            "risk_percent",
            Reason.FIELD_CONFLICT,
            "risk_percent: give volume or risk_percent, not both",
        )
    validation.finite("stop_loss", request.stop_loss)
    validation.finite("take_profit", request.take_profit)
    if request.risk_percent and not request.stop_loss:
        raise invalid(
            "stop_loss", Reason.FIELD_REQUIRED, "stop_loss: required to size by risk_percent"
        )
    if not request.HasField("timestamp"):
        raise invalid("timestamp", Reason.FIELD_REQUIRED, "timestamp: required")
    validation.timestamp_nanos("timestamp", request.timestamp)


class Signals:
    """The sources' secrets, the window and the nonces seen: PublishSignal's checks."""

    def __init__(self, config: ServerConfig, engine: Engine, timeout: float) -> None:
        self._engine = engine
        self._timeout = timeout
        self.secrets: Mapping[str, bytes] = load_secrets(config.signals)
        self.window_ns = int(config.signals.window_s * 1e9)
        self.nonces = NonceLog(config.data_dir / "signals" / "nonces.log", self.window_ns)
        if self.secrets:
            self.nonces.load()
            log.info("signal sources: %s", ", ".join(sorted(self.secrets)))

    def _check_signature(self, request: order_pb2.PublishSignalRequest) -> None:
        secret = self.secrets.get(request.source)
        if secret is None:
            raise _unauthenticated(
                Reason.SIGNAL_SOURCE_UNKNOWN,
                f"source: {quote(request.source)} is not a configured signal source",
                "source",
            )
        if not _SIGNATURE.fullmatch(request.signature) or not canonical.verify(secret, request):
            raise _unauthenticated(
                Reason.SIGNATURE_INVALID,
                "signature: not the HMAC-SHA256 of this signal under its source's secret "
                "(docs/signals.md: the signed bytes)",
                "signature",
            )

    def _check_window(self, request: order_pb2.PublishSignalRequest) -> None:
        skew = canonical.timestamp_nanos(request) - time.time_ns()
        if abs(skew) > self.window_ns:
            when = "ahead of" if skew > 0 else "behind"
            raise MT5ExecError(
                grpc.StatusCode.INVALID_ARGUMENT,
                Reason.SIGNAL_OUTSIDE_WINDOW,
                f"timestamp: {abs(skew) / 1e9:.3f} s {when} the server's clock, outside the "
                f"window of ±{self.window_ns / 1e9:g} s",
                "timestamp",
                metadata={"skew_ms": str(skew // 1_000_000)},
            )

    async def _take_nonce(self, request: order_pb2.PublishSignalRequest) -> None:
        stamp = canonical.timestamp_nanos(request)
        try:
            taken = await self.nonces.take(request.source, request.nonce, stamp)
        except OSError as e:
            log.error("signal nonce log %s: %s; signal refused", self.nonces.path, e)
            raise MT5ExecError(
                grpc.StatusCode.UNAVAILABLE,
                Reason.NONCE_NOT_RECORDED,
                "nonce: could not be recorded (the server's disk); nothing was sent",
                "nonce",
            ) from None
        if not taken:
            raise invalid(
                "nonce",
                Reason.NONCE_REUSED,
                f"nonce: {quote(request.nonce)} was already used by a signal of "
                f"{quote(request.source)} (a replay); nothing was sent",
            )

    async def verify(self, request: order_pb2.PublishSignalRequest) -> None:
        """Returns when ``request`` is an authentic, fresh signal, its nonce now taken."""
        _check_shape(request)
        self._check_signature(request)
        self._check_window(request)
        await self._take_nonce(request)

    def _owner_of(self, instance_id: str) -> str | None:
        """The owner of ``instance_id`` (None: gone meanwhile, seen by an admin only)."""
        try:
            return self._engine.get_instance(instance_id).owner
        except MT5ExecError:
            return None

    async def publish(
        self, request: order_pb2.PublishSignalRequest
    ) -> order_pb2.PublishSignalResponse:
        await self.verify(request)
        copies = await self._engine.copy_signal(
            request.source,
            request.signal_id or request.nonce,
            request.symbol,
            request.side,
            request.volume,
            request.risk_percent,
            request.stop_loss,
            request.take_profit,
            timeout=self._timeout,
        )
        response = order_pb2.PublishSignalResponse()
        caller = auth.current()
        for copy in copies:
            # Made: placed (a terminal's refusal included: its order says REJECTED). A
            # follower skipped or refused before sending has an execution event saying why.
            # Listed only when the caller may see the follower: a source's secret is shared
            # by every owner following it, its orders are their owners' own.
            if copy.order and caller.sees(self._owner_of(copy.follower_instance_id)):
                response.orders.append(order_pb2.PlaceOrderResponse.FromString(copy.order).order)
            if copy.error is not None:
                log.info(
                    "signal %s of %s on %s: %s",
                    request.signal_id or request.nonce,
                    request.source,
                    copy.follower_instance_id,
                    copy.error.reason,
                )
        return response
