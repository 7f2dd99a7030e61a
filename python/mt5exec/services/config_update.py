"""What an UpdateInstanceConfig changes, and which part of a change restricts trading.

A request names the fields it changes in ``update_mask`` (AIP-134): ``risk`` (the whole set
of limits), ``risk.<limit>`` (that one; the others keep their values) and ``trading_state``.
``config.risk`` without a mask is refused: the limits not given would become 0, which
disables them. ``config.trading_state`` alone needs no mask (it is a single field).

Fail closed: what restricts trading is in force before it is saved, what loosens only once it
is saved. ``restrictive_part`` is, field by field, the tighter of the old and the new value (a
mixed change is in force in that form at once, and in full once saved).
"""

from __future__ import annotations

import typing

import grpc

from mt5exec.engine import validate_risk_limits
from mt5exec.errors import MT5ExecError, invalid
from mt5exec.reasons import Reason
from mt5exec.v1 import common_pb2, instance_pb2

# The only InstanceConfig fields UpdateInstanceConfig changes on a live instance.
RUNTIME_FIELDS = frozenset({"risk", "trading_state"})
_CONFIG_FIELDS = frozenset(f.name for f in common_pb2.InstanceConfig.DESCRIPTOR.fields)
RISK_FIELDS = frozenset(f.name for f in common_pb2.RiskLimits.DESCRIPTOR.fields)

# How a limit restricts (0 disables each one): a cap by a smaller value, a floor or a window
# by a larger one. The whitelist and the trading window are compared as sets (below).
CAPS = (
    "max_order_volume",
    "max_order_notional",
    "max_symbol_exposure",
    "max_open_positions",
    "max_pending_orders",
    "max_trades_per_day",
    "max_daily_loss",
    "max_loss_per_trade",
    "max_drawdown_percent",
    "max_deviation_points",
    "price_collar_percent",
    "stale_tick_ms",
    "orders_per_second",
    "max_in_flight_orders",
)
FLOORS = ("min_order_volume", "duplicate_window_ms")
SETS = ("allowed_symbols", "session_start", "session_end")

_STATES = (
    common_pb2.TRADING_STATE_ACTIVE,
    common_pb2.TRADING_STATE_REDUCE_ONLY,
    common_pb2.TRADING_STATE_HALTED,
)
# How much a trading state restricts (an unset one is ACTIVE).
_RANK: dict[int, int] = {
    common_pb2.TRADING_STATE_UNSPECIFIED: 0,
    common_pb2.TRADING_STATE_ACTIVE: 0,
    common_pb2.TRADING_STATE_REDUCE_ONLY: 1,
    common_pb2.TRADING_STATE_HALTED: 2,
}
_DAY_MINUTES = 24 * 60


def trading_state(field_name: str, state: int) -> common_pb2.TradingState:
    if state not in _STATES:
        raise invalid(
            field_name,
            Reason.TRADING_STATE_INVALID,
            f"{field_name}: expected ACTIVE, REDUCE_ONLY or HALTED, got {state}",
        )
    return typing.cast(common_pb2.TradingState, state)


def requested(
    request: instance_pb2.UpdateInstanceConfigRequest,
    current: common_pb2.InstanceConfig,
    current_version: int,
) -> tuple[common_pb2.RiskLimits | None, common_pb2.TradingState | None]:
    """Validates an UpdateInstanceConfig against the config in force: the expected version,
    the mask and the new values. Returns (the new limits, all of them, or None; the new
    trading state or None)."""
    if request.expected_version and request.expected_version != current_version:
        raise MT5ExecError(
            grpc.StatusCode.ABORTED,
            Reason.CONFIG_VERSION_MISMATCH,
            f"expected_version: the config is at version {current_version}, not "
            f"{request.expected_version}; read it again and retry",
            "expected_version",
        )
    given = {f.name for f, _ in request.config.ListFields()}
    fixed = sorted(given - RUNTIME_FIELDS)
    if fixed:
        raise invalid(
            f"config.{fixed[0]}",
            Reason.FIELD_NOT_UPDATABLE,
            f"config.{fixed[0]}: cannot change on an existing instance (only risk and "
            "trading_state can); create a new instance instead",
        )
    paths = list(request.update_mask.paths)
    if not paths:
        if "risk" in given:
            raise invalid(
                "update_mask",
                Reason.UPDATE_MASK_REQUIRED,
                "update_mask: required with config.risk: name the limits to change (e.g. "
                '"risk.max_order_volume", or "risk" for the whole set); every limit left '
                "out would otherwise become 0, which disables it",
            )
        if "trading_state" not in given:
            raise invalid("config", Reason.FIELD_REQUIRED, "config: give risk and/or trading_state")
        paths = ["trading_state"]
    limits: common_pb2.RiskLimits | None = None
    state = None
    for path in sorted(paths, key=lambda p: p != "risk"):  # the whole set before its parts
        head, _, rest = path.partition(".")
        if path == "trading_state":
            state = trading_state("config.trading_state", request.config.trading_state)
        elif path == "risk":
            limits = common_pb2.RiskLimits()
            limits.CopyFrom(request.config.risk)
        elif head == "risk" and rest in RISK_FIELDS:
            if limits is None:
                limits = common_pb2.RiskLimits()
                limits.CopyFrom(current.risk)
            _copy_field(request.config.risk, limits, rest)
        elif head in _CONFIG_FIELDS and head not in RUNTIME_FIELDS:
            raise invalid(
                "update_mask",
                Reason.FIELD_NOT_UPDATABLE,
                f"update_mask: {path[:64]!r} cannot change on an existing instance (only "
                "risk and trading_state can)",
            )
        else:
            raise invalid(
                "update_mask",
                Reason.UPDATE_MASK_INVALID,
                f'update_mask: unknown path {path[:64]!r} (expected "risk", '
                '"risk.<limit>" or "trading_state")',
            )
    if limits is not None:
        validate_risk_limits(limits)
    return limits, state


def _copy_field(source: common_pb2.RiskLimits, target: common_pb2.RiskLimits, name: str) -> None:
    if name == "allowed_symbols":
        del target.allowed_symbols[:]
        target.allowed_symbols.extend(source.allowed_symbols)
    else:
        setattr(target, name, getattr(source, name))


def tighter_state(
    old: common_pb2.TradingState, new: common_pb2.TradingState
) -> common_pb2.TradingState:
    """The more restrictive of two trading states."""
    return new if _RANK.get(new, 0) > _RANK.get(old, 0) else old


def restrictive_part(
    old: common_pb2.RiskLimits, new: common_pb2.RiskLimits
) -> common_pb2.RiskLimits:
    """Limits no looser than ``old`` anywhere and as tight as ``new`` wherever ``new`` is
    tighter: per cap the smaller (0 = none), per floor or window the larger, the whitelist's
    intersection, the trading window that lies within the other. Where the tighter of the
    two cannot be expressed (disjoint whitelists or windows, a floor above the cap), the old
    value: never looser than what was in force."""
    held = common_pb2.RiskLimits()
    held.CopyFrom(old)
    for name in CAPS:
        a, b = getattr(old, name), getattr(new, name)
        setattr(held, name, a if not b else b if not a else min(a, b))
    for name in FLOORS:
        setattr(held, name, max(getattr(old, name), getattr(new, name)))
    if held.max_order_volume and held.min_order_volume > held.max_order_volume:
        held.min_order_volume, held.max_order_volume = old.min_order_volume, old.max_order_volume
    symbols = _tighter_whitelist(list(old.allowed_symbols), list(new.allowed_symbols))
    del held.allowed_symbols[:]
    held.allowed_symbols.extend(symbols)
    if _within(_minutes(new), _minutes(old)):
        held.session_start, held.session_end = new.session_start, new.session_end
    return held


def _tighter_whitelist(old: list[str], new: list[str]) -> list[str]:
    if not old:
        return new
    if not new:
        return old
    both = [s for s in new if s in old]
    return both or old


def _minutes(limits: common_pb2.RiskLimits) -> frozenset[int] | None:
    """The minutes of the day the trading window allows (None: no window, all of them)."""
    if not limits.session_start and not limits.session_end:
        return None

    def minute(text: str) -> int:
        hours, _, minutes = text.partition(":")
        return int(hours) * 60 + int(minutes)

    start, end = minute(limits.session_start), minute(limits.session_end)
    if start <= end:
        return frozenset(range(start, end))
    return frozenset(range(start, _DAY_MINUTES)) | frozenset(range(end))


def _within(inner: frozenset[int] | None, outer: frozenset[int] | None) -> bool:
    if outer is None:
        return True
    return inner is not None and inner <= outer


def changes(old: common_pb2.RiskLimits, new: common_pb2.RiskLimits) -> list[str]:
    """The limits that differ, as "risk.<name> <new value>" (a list by its name only)."""
    found = []
    for field in common_pb2.RiskLimits.DESCRIPTOR.fields:
        a, b = getattr(old, field.name), getattr(new, field.name)
        if a == b:
            continue
        if field.name == "allowed_symbols":
            found.append(f"risk.{field.name}")
        elif isinstance(b, str):
            found.append(f"risk.{field.name} {b!r}")
        else:
            found.append(f"risk.{field.name} {b:g}" if b else f"risk.{field.name} 0 (off)")
    return found
