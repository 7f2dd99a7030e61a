"""The gRPC status numbers (``grpc.StatusCode`` values) that workers put in
``MarketAnswer.code``, defined once: the workers and the simulated broker do not import grpc
(tests/unit/test_status_codes.py checks them against ``grpc.StatusCode``)."""

from __future__ import annotations

from typing import Final

INVALID_ARGUMENT: Final = 3
NOT_FOUND: Final = 5
UNAVAILABLE: Final = 14
