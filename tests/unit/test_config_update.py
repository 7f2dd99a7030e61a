"""UpdateInstanceConfig's change in isolation: the update mask, and the restrictive part of a
change (in force before it is saved) against the real risk rules."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import field_mask_pb2

from mt5exec.engine import validate_risk_limits
from mt5exec.errors import MT5ExecError
from mt5exec.services import config_update
from mt5exec.v1 import common_pb2, instance_pb2

RiskLimits = common_pb2.RiskLimits


def test_every_limit_has_a_direction() -> None:
    """A new RiskLimits field must say how it restricts, or restrictive_part would keep its
    old value only by accident."""
    classified = [*config_update.CAPS, *config_update.FLOORS, *config_update.SETS]
    assert sorted(classified) == sorted(config_update.RISK_FIELDS)


@pytest.mark.parametrize(
    ("old", "new", "held"),
    [
        # Caps: the smaller; 0 is none, the loosest.
        (
            RiskLimits(max_order_volume=10),
            RiskLimits(max_order_volume=1),
            RiskLimits(max_order_volume=1),
        ),
        (
            RiskLimits(max_order_volume=1),
            RiskLimits(max_order_volume=10),
            RiskLimits(max_order_volume=1),
        ),
        (RiskLimits(max_order_volume=1), RiskLimits(), RiskLimits(max_order_volume=1)),
        (RiskLimits(), RiskLimits(orders_per_second=5), RiskLimits(orders_per_second=5)),
        # Floors and windows: the larger.
        (
            RiskLimits(min_order_volume=0.1),
            RiskLimits(min_order_volume=0.5),
            RiskLimits(min_order_volume=0.5),
        ),
        (RiskLimits(duplicate_window_ms=100), RiskLimits(), RiskLimits(duplicate_window_ms=100)),
        # A mixed change: each limit its tighter value.
        (
            RiskLimits(max_order_volume=10, max_open_positions=5),
            RiskLimits(max_order_volume=1, max_open_positions=50),
            RiskLimits(max_order_volume=1, max_open_positions=5),
        ),
        # A floor above the cap cannot be held: the old pair.
        (
            RiskLimits(min_order_volume=0.01, max_order_volume=1),
            RiskLimits(min_order_volume=2, max_order_volume=5),
            RiskLimits(min_order_volume=0.01, max_order_volume=1),
        ),
        # Whitelists: the intersection; empty is every symbol; disjoint ones keep the old.
        (
            RiskLimits(),
            RiskLimits(allowed_symbols=["EURUSD"]),
            RiskLimits(allowed_symbols=["EURUSD"]),
        ),
        (
            RiskLimits(allowed_symbols=["EURUSD", "XAUUSD"]),
            RiskLimits(allowed_symbols=["XAUUSD", "GBPUSD"]),
            RiskLimits(allowed_symbols=["XAUUSD"]),
        ),
        (
            RiskLimits(allowed_symbols=["EURUSD"]),
            RiskLimits(),
            RiskLimits(allowed_symbols=["EURUSD"]),
        ),
        (
            RiskLimits(allowed_symbols=["EURUSD"]),
            RiskLimits(allowed_symbols=["GBPUSD"]),
            RiskLimits(allowed_symbols=["EURUSD"]),
        ),
        # Trading windows: the new one when it lies within the old one (overnight included).
        (
            RiskLimits(),
            RiskLimits(session_start="08:00", session_end="17:00"),
            RiskLimits(session_start="08:00", session_end="17:00"),
        ),
        (
            RiskLimits(session_start="22:00", session_end="06:00"),
            RiskLimits(session_start="23:00", session_end="01:00"),
            RiskLimits(session_start="23:00", session_end="01:00"),
        ),
        (
            RiskLimits(session_start="08:00", session_end="17:00"),
            RiskLimits(session_start="07:00", session_end="12:00"),
            RiskLimits(session_start="08:00", session_end="17:00"),
        ),
        (
            RiskLimits(session_start="08:00", session_end="17:00"),
            RiskLimits(),
            RiskLimits(session_start="08:00", session_end="17:00"),
        ),
    ],
)
def test_restrictive_part(old: RiskLimits, new: RiskLimits, held: RiskLimits) -> None:
    assert config_update.restrictive_part(old, new) == held
    validate_risk_limits(held)  # the engine takes it


def test_trading_states_order_by_restriction() -> None:
    active, reduce, halted = (
        common_pb2.TRADING_STATE_ACTIVE,
        common_pb2.TRADING_STATE_REDUCE_ONLY,
        common_pb2.TRADING_STATE_HALTED,
    )
    assert config_update.tighter_state(active, halted) == halted
    assert config_update.tighter_state(halted, reduce) == halted
    assert config_update.tighter_state(reduce, active) == reduce
    assert config_update.tighter_state(common_pb2.TRADING_STATE_UNSPECIFIED, reduce) == reduce


def _request(paths: list[str] | None, **risk: object) -> instance_pb2.UpdateInstanceConfigRequest:
    request = instance_pb2.UpdateInstanceConfigRequest(
        instance_id="i",
        config=common_pb2.InstanceConfig(risk=RiskLimits(**risk)),  # type: ignore[arg-type]
    )
    if paths is not None:
        request.update_mask.CopyFrom(field_mask_pb2.FieldMask(paths=paths))
    return request


CURRENT = common_pb2.InstanceConfig(
    risk=RiskLimits(max_order_volume=10, max_open_positions=20, allowed_symbols=["EURUSD"])
)


def test_a_mask_changes_the_named_limits_only() -> None:
    limits, state = config_update.requested(
        _request(["risk.max_order_volume", "risk.allowed_symbols"], max_order_volume=2),
        CURRENT,
        1,
    )
    assert state is None
    assert limits == RiskLimits(max_order_volume=2, max_open_positions=20)
    limits, _ = config_update.requested(
        _request(["risk.max_open_positions", "risk"], max_order_volume=3), CURRENT, 1
    )
    assert limits == RiskLimits(max_order_volume=3), "risk is the whole set, whatever the order"


@pytest.mark.parametrize(
    ("paths", "reason", "field"),
    [
        (None, "UPDATE_MASK_REQUIRED", "update_mask"),
        ([], "UPDATE_MASK_REQUIRED", "update_mask"),
        (["risk.nope"], "UPDATE_MASK_INVALID", "update_mask"),
        (["config.risk"], "UPDATE_MASK_INVALID", "update_mask"),
        (["symbols"], "FIELD_NOT_UPDATABLE", "update_mask"),
        (["trading_state"], "TRADING_STATE_INVALID", "config.trading_state"),
        (["risk.max_order_volume"], "LIMIT_INVALID", "risk.max_order_volume"),
    ],
)
def test_bad_masks_are_refused(paths: list[str] | None, reason: str, field: str) -> None:
    with pytest.raises(MT5ExecError) as caught:
        config_update.requested(_request(paths, max_order_volume=-1), CURRENT, 1)
    assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert (caught.value.reason, caught.value.field) == (reason, field)


def test_trading_state_alone_needs_no_mask() -> None:
    request = instance_pb2.UpdateInstanceConfigRequest(
        instance_id="i",
        config=common_pb2.InstanceConfig(trading_state=common_pb2.TRADING_STATE_HALTED),
    )
    assert config_update.requested(request, CURRENT, 1) == (None, common_pb2.TRADING_STATE_HALTED)
