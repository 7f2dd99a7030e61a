"""The copier's volume arithmetic: the Rust engine's (``_core.copy_volume``, what the copier
runs) against the plain-Python reference (``mt5exec.copier_reference``), over every mode, the
relation's clamp, the symbol's step and bounds, and raise-or-skip below the minimum."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.profiles import examples

from mt5exec import _core
from mt5exec import copier_reference as ref


def rust(sizing: ref.Sizing, inputs: ref.Inputs, bounds: ref.Bounds) -> tuple[float, str]:
    volume, reason = _core.copy_volume(
        sizing.mode,
        **{f.name: getattr(sizing, f.name) for f in dataclasses.fields(sizing) if f.name != "mode"},
        **dataclasses.asdict(inputs),
        volume_min=bounds.min,
        volume_max=bounds.max,
        volume_step=bounds.step,
    )
    return volume, reason


def reference(sizing: ref.Sizing, inputs: ref.Inputs, bounds: ref.Bounds) -> tuple[float, str]:
    try:
        return ref.follower_volume(sizing, inputs, bounds), ""
    except ref.Skip as skip:
        return 0.0, skip.reason


def both(sizing: ref.Sizing, inputs: ref.Inputs, bounds: ref.Bounds) -> tuple[float, str]:
    expected = reference(sizing, inputs, bounds)
    assert rust(sizing, inputs, bounds) == expected, (sizing, inputs, bounds)
    return expected


LOTS = ref.Bounds(min=0.01, max=100.0, step=0.01)
MODES = [ref.MULTIPLIER, ref.EQUITY_RATIO, ref.FIXED, ref.BALANCE_RATIO, ref.RISK_PERCENT]


def _maybe(values: st.SearchStrategy[float]) -> st.SearchStrategy[float]:
    return st.one_of(st.just(0.0), values)


money = _maybe(st.floats(1.0, 1e7, allow_nan=False))
lots = st.one_of(
    st.sampled_from([0.01, 0.03, 0.07, 0.1, 0.14, 0.29, 1.0, 2.5, 10.0]),
    st.floats(0.0, 500.0, allow_nan=False),
)
sizing_st = st.builds(
    ref.Sizing,
    mode=st.sampled_from([*MODES, 0, 9]),
    multiplier=st.one_of(st.sampled_from([0.1, 0.5, 1.0, 1.5, 3.0]), st.floats(0.0, 100.0)),
    fixed_volume=lots,
    risk_percent=st.floats(0.0, 100.0),
    min_volume=_maybe(st.sampled_from([0.01, 0.02, 0.5])),
    max_volume=_maybe(st.sampled_from([0.05, 0.5, 1.0, 50.0])),
    raise_to_minimum=st.booleans(),
)
inputs_st = st.builds(
    ref.Inputs,
    master_volume=lots,
    master_balance=money,
    master_equity=money,
    follower_balance=money,
    follower_equity=money,
    stop_distance=_maybe(st.one_of(st.sampled_from([0.0005, 0.001, 0.5]), st.floats(1e-6, 10.0))),
    tick_value=_maybe(st.sampled_from([1.0, 0.1, 10.0, 0.93])),
    tick_size=_maybe(st.sampled_from([0.00001, 0.001, 0.01, 0.25])),
)
bounds_st = st.builds(
    ref.Bounds,
    min=st.sampled_from([0.0, 0.01, 0.1, 1.0]),
    max=st.sampled_from([0.0, 1.0, 100.0, 500.0]),
    step=st.sampled_from([0.0, 0.001, 0.01, 0.1, 1.0]),
)


@settings(max_examples=examples(500), deadline=None)
@given(sizing_st, inputs_st, bounds_st)
def test_rust_and_the_reference_agree(
    sizing: ref.Sizing, inputs: ref.Inputs, bounds: ref.Bounds
) -> None:
    volume, reason = both(sizing, inputs, bounds)
    if not reason:
        # Whatever the mode, a copy is within the symbol's bounds and on its step.
        assert volume > 0
        assert volume >= bounds.min - 1e-12
        assert bounds.max == 0 or volume <= bounds.max + 1e-12
        if bounds.step and not (sizing.raise_to_minimum and volume == bounds.min):
            assert abs(volume / bounds.step - round(volume / bounds.step)) < 1e-6


@pytest.mark.parametrize(
    ("sizing", "inputs", "expected"),
    [
        # Multiplier, down to the step: 0.07 * 1.5 = 0.105 -> 0.1; 0.14 * 1.5 = 0.21 exactly.
        (ref.Sizing(ref.MULTIPLIER, multiplier=1.5), ref.Inputs(master_volume=0.07), (0.1, "")),
        (ref.Sizing(ref.MULTIPLIER, multiplier=1.5), ref.Inputs(master_volume=0.14), (0.21, "")),
        (ref.Sizing(ref.FIXED, fixed_volume=0.03), ref.Inputs(master_volume=5.0), (0.03, "")),
        # Ratios: follower/master.
        (
            ref.Sizing(ref.BALANCE_RATIO),
            ref.Inputs(master_volume=1.0, master_balance=10_000, follower_balance=2_500),
            (0.25, ""),
        ),
        (
            ref.Sizing(ref.EQUITY_RATIO),
            ref.Inputs(master_volume=1.0, master_equity=10_000, follower_equity=5_000),
            (0.5, ""),
        ),
        (ref.Sizing(ref.EQUITY_RATIO), ref.Inputs(master_volume=1.0), (0.0, "ACCOUNT_UNKNOWN")),
        # Risk: 1 % of 10,000 = 100; 50 points of 0.00001 at 1.0 a tick = 50 a lot: 2 lots.
        (
            ref.Sizing(ref.RISK_PERCENT, risk_percent=1.0),
            ref.Inputs(
                follower_equity=10_000, stop_distance=0.0005, tick_value=1.0, tick_size=0.00001
            ),
            (2.0, ""),
        ),
        (
            ref.Sizing(ref.RISK_PERCENT, risk_percent=1.0),
            ref.Inputs(follower_equity=10_000, tick_value=1.0, tick_size=0.00001),
            (0.0, "NO_STOP_LOSS"),
        ),
        # Below the minimum: skipped, or raised to it.
        (
            ref.Sizing(ref.MULTIPLIER, multiplier=0.1),
            ref.Inputs(master_volume=0.05),
            (0.0, "VOLUME_BELOW_MINIMUM"),
        ),
        (
            ref.Sizing(ref.MULTIPLIER, multiplier=0.1, raise_to_minimum=True),
            ref.Inputs(master_volume=0.05),
            (0.01, ""),
        ),
        # The relation's clamp, and the symbol's maximum.
        (
            ref.Sizing(ref.MULTIPLIER, multiplier=10.0, max_volume=0.5),
            ref.Inputs(master_volume=1.0),
            (0.5, ""),
        ),
        (
            ref.Sizing(ref.MULTIPLIER, multiplier=0.01, min_volume=0.02),
            ref.Inputs(master_volume=1.0),
            (0.02, ""),
        ),
        (ref.Sizing(ref.MULTIPLIER, multiplier=1000.0), ref.Inputs(master_volume=1.0), (100.0, "")),
        (ref.Sizing(0), ref.Inputs(master_volume=1.0), (0.0, "VOLUME_MODE_INVALID")),
    ],
)
def test_examples(sizing: ref.Sizing, inputs: ref.Inputs, expected: tuple[float, str]) -> None:
    assert both(sizing, inputs, LOTS) == expected
