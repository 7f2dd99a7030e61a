"""Edge validation shared by the services: ids and numbers, with errors naming the field."""

from __future__ import annotations

import math
import re
import uuid

from mt5exec.errors import invalid

# Ids become path components and terminal comments: a strict alphabet, bounded length.
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_CLIENT_ORDER_ID = re.compile(r"[A-Za-z0-9_.:-]{1,64}")


def instance_id(value: str, field: str = "instance_id", *, generate: bool = False) -> str:
    if not value and generate:
        return f"i-{uuid.uuid4().hex[:12]}"
    if not value:
        raise invalid(field, "FIELD_REQUIRED", f"{field}: required")
    if not _ID.fullmatch(value) or value in (".", ".."):
        raise invalid(
            field,
            "ID_INVALID",
            f"{field}: {value[:80]!r} must match [A-Za-z0-9][A-Za-z0-9_.-]{{0,63}}",
        )
    return value


def owner(value: str) -> str:
    return instance_id(value or "default", "owner")


def client_order_id(value: str) -> str:
    if not value:
        # 24 hex digits (96 random bits) fit the 31-character MT5 comment as they are.
        return uuid.uuid4().hex[:24]
    if not _CLIENT_ORDER_ID.fullmatch(value):
        raise invalid(
            "client_order_id",
            "CLIENT_ORDER_ID_INVALID",
            f"client_order_id: {value[:80]!r} must match [A-Za-z0-9_.:-]{{1,64}}",
        )
    return value


def finite(field: str, value: float, *, minimum: float = 0.0, maximum: float = math.inf) -> float:
    if not math.isfinite(value) or value < minimum or value > maximum:
        raise invalid(
            field,
            "VALUE_OUT_OF_RANGE",
            f"{field}: must be a finite number in [{minimum:g}, {maximum:g}], got {value!r}",
        )
    return value
