"""The copier's volume arithmetic in plain Python: a readable reference, used only as a test
oracle.

The server never runs this: the copier sizes copies in ``rust_core/src/copier/volume.rs``.
``tests/unit/test_copier_volume.py`` feeds the same inputs to both (through
``mt5exec._core.copy_volume``) and requires the same volume or the same skip reason. Keep the
two in step; the order of the steps is part of the contract:

1. the raw volume, by mode: fixed; multiplier * master; master * follower/master balance or
   equity (both known, else ``ACCOUNT_UNKNOWN``); risk percent: the follower's equity *
   percent / 100 divided by the loss of one lot at the stop loss (distance / tick size * tick
   value; no stop loss: ``NO_STOP_LOSS``; no tick value or equity: ``TICK_VALUE_UNKNOWN``);
2. not finite or negative: ``VOLUME_INVALID``;
3. the relation's clamp: at most ``max_volume``, then at least ``min_volume`` (0: none);
4. DOWN to the follower symbol's step (a copy never exceeds what the mode computed; a
   tolerance of 1e-9 steps absorbs binary fractions, and the result keeps 8 decimals);
5. at most the symbol's maximum (itself down to the step);
6. below the symbol's minimum (or zero): the minimum when the relation raises to it, else
   skipped, ``VOLUME_BELOW_MINIMUM``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from mt5exec.reasons import Reason
from mt5exec.v1 import order_pb2

MULTIPLIER = order_pb2.COPY_VOLUME_MODE_MULTIPLIER
EQUITY_RATIO = order_pb2.COPY_VOLUME_MODE_EQUITY_RATIO
FIXED = order_pb2.COPY_VOLUME_MODE_FIXED
BALANCE_RATIO = order_pb2.COPY_VOLUME_MODE_BALANCE_RATIO
RISK_PERCENT = order_pb2.COPY_VOLUME_MODE_RISK_PERCENT

# Volumes keep this many decimals after a step is applied (0.07 * 3 is 0.21).
DECIMALS = 8
# A volume within this many steps below a multiple counts as that multiple.
STEP_TOLERANCE = 1e-9


@dataclass(frozen=True)
class Sizing:
    """A relation's volume settings (proto ``CopyRelation``)."""

    mode: int
    multiplier: float = 0.0
    fixed_volume: float = 0.0
    risk_percent: float = 0.0
    min_volume: float = 0.0
    max_volume: float = 0.0
    raise_to_minimum: bool = False


@dataclass(frozen=True)
class Inputs:
    """What a copy is sized from (0: unknown)."""

    master_volume: float = 0.0
    master_balance: float = 0.0
    master_equity: float = 0.0
    follower_balance: float = 0.0
    follower_equity: float = 0.0
    # |entry - stop loss| in price units.
    stop_distance: float = 0.0
    # The follower symbol's value of one tick for one lot, and its tick size.
    tick_value: float = 0.0
    tick_size: float = 0.0


@dataclass(frozen=True)
class Bounds:
    """The follower symbol's volume_min, volume_max (0: none) and volume_step (0: none)."""

    min: float = 0.0
    max: float = 0.0
    step: float = 0.0


class Skip(Exception):
    """The copy is not made; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _round_half_away(x: float) -> float:
    """Nearest integer, halves away from zero (Python's round() rounds halves to even)."""
    whole = math.floor(abs(x))
    if abs(x) - whole >= 0.5:
        whole += 1
    return math.copysign(whole, x)


def _keep_decimals(volume: float) -> float:
    scale = 10.0**DECIMALS
    return _round_half_away(volume * scale) / scale


def floor_to_step(volume: float, step: float) -> float:
    if step <= 0:
        return volume
    return _keep_decimals(math.floor(volume / step + STEP_TOLERANCE) * step)


def raw_volume(sizing: Sizing, inputs: Inputs) -> float:
    """Step 1: the volume the mode asks for."""
    if sizing.mode == MULTIPLIER:
        return inputs.master_volume * sizing.multiplier
    if sizing.mode == FIXED:
        return sizing.fixed_volume
    if sizing.mode in (EQUITY_RATIO, BALANCE_RATIO):
        if sizing.mode == EQUITY_RATIO:
            follower, master = inputs.follower_equity, inputs.master_equity
        else:
            follower, master = inputs.follower_balance, inputs.master_balance
        if follower > 0 and master > 0:
            return inputs.master_volume * follower / master
        raise Skip(Reason.ACCOUNT_UNKNOWN)
    if sizing.mode == RISK_PERCENT:
        if inputs.stop_distance <= 0:
            raise Skip(Reason.NO_STOP_LOSS)
        if inputs.tick_value <= 0 or inputs.tick_size <= 0 or inputs.follower_equity <= 0:
            raise Skip(Reason.TICK_VALUE_UNKNOWN)
        loss_per_lot = inputs.stop_distance / inputs.tick_size * inputs.tick_value
        return inputs.follower_equity * sizing.risk_percent / 100.0 / loss_per_lot
    raise Skip(Reason.VOLUME_MODE_INVALID)


def follower_volume(sizing: Sizing, inputs: Inputs, bounds: Bounds) -> float:
    """The copy's volume; raises :class:`Skip` when no copy is made."""
    volume = raw_volume(sizing, inputs)
    if not math.isfinite(volume) or volume < 0:
        raise Skip(Reason.VOLUME_INVALID)
    if sizing.max_volume > 0:
        volume = min(volume, sizing.max_volume)
    if sizing.min_volume > 0:
        volume = max(volume, sizing.min_volume)
    volume = floor_to_step(volume, bounds.step)
    if bounds.max > 0:
        volume = min(volume, floor_to_step(bounds.max, bounds.step))
    if volume < bounds.min - 1e-12 or volume <= 0:
        if sizing.raise_to_minimum and bounds.min > 0:
            return bounds.min
        raise Skip(Reason.VOLUME_BELOW_MINIMUM)
    return volume
