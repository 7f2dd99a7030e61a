"""The MT5 worker writes copy_rates_* / copy_ticks_* numpy arrays as RatesPage / TicksPage bytes
a column at a time (mt5exec.workers.mt5_arrays): the bytes must be the protobuf library's for
the same rows, byte for byte, since the server streams them to clients unread."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from mt5exec.mt5.simterminal_types import RATES_DTYPE, TICK_DTYPE
from mt5exec.terminal.v1 import worker_pb2 as pb
from mt5exec.workers import mt5_arrays, mt5_market

INT64 = st.integers(-(2**63), 2**63 - 1)
UINT64 = st.integers(0, 2**64 - 1)
UINT32 = st.integers(0, 2**32 - 1)
# Zeros (left out by proto3), -0.0 (kept), NaN and infinities among ordinary prices.
DOUBLE = st.one_of(st.sampled_from([0.0, -0.0, math.nan, math.inf, 1.08321]), st.floats())
SMALL = st.one_of(st.just(0), st.integers(0, 300), UINT64)

RATE = st.tuples(
    st.one_of(st.just(0), st.integers(0, 2**33), INT64),
    DOUBLE,
    DOUBLE,
    DOUBLE,
    DOUBLE,
    SMALL,
    st.integers(-(2**31), 2**31 - 1),  # spread: int32 in MqlRates, sent as 0 when negative
    SMALL,
)
TICK = st.tuples(
    INT64,
    DOUBLE,
    DOUBLE,
    DOUBLE,
    SMALL,
    st.one_of(st.just(0), st.integers(0, 2**42), INT64),
    st.one_of(st.just(0), UINT32),
    DOUBLE,
)


@settings(max_examples=300, deadline=None)
@given(st.lists(RATE, max_size=40))
def test_rates_bytes_are_the_protobuf_librarys(rows: list[tuple[Any, ...]]) -> None:
    array = np.array(rows, dtype=RATES_DTYPE)
    # The reference: the protobuf library, a message a row (the worker's code for tuples).
    assert mt5_arrays.rates_page(array) == mt5_market.rates_page_by_row(rows)


@settings(max_examples=300, deadline=None)
@given(st.lists(TICK, max_size=40))
def test_ticks_bytes_are_the_protobuf_librarys(rows: list[tuple[Any, ...]]) -> None:
    array = np.array(rows, dtype=TICK_DTYPE)
    assert mt5_arrays.ticks_page(array) == mt5_market.ticks_page_by_row(rows)


def test_the_worker_pages_arrays_and_tuples_alike() -> None:
    """25,000 bars: three pages of at most 10,000, the same bytes from the numpy array (a
    column at a time) and from MqlRates tuples (row by row), decoding to the bars."""
    n = 25_000
    array = np.zeros(n, dtype=RATES_DTYPE)
    array["time"] = 1_767_225_600 + 60 * np.arange(n)
    array["open"] = 1.08 + np.arange(n) * 1e-5
    array["high"] = array["open"] + 2e-4
    array["low"] = array["open"] - 1e-4
    array["close"] = array["open"] + 1e-4
    array["tick_volume"] = np.arange(n) % 500
    array["spread"] = np.arange(n) % 7 - 1
    pages = mt5_market.rates_pages(array)
    assert pages == mt5_market.rates_pages([tuple(r) for r in array.tolist()])
    decoded = [pb.RatesPage.FromString(p).rates for p in pages]
    assert [len(d) for d in decoded] == [10_000, 10_000, 5_000]
    last = decoded[2][4_999]
    assert (last.time, last.open, last.tick_volume) == (
        int(array["time"][-1]),
        float(array["open"][-1]),
        int(array["tick_volume"][-1]),
    )
    assert decoded[0][0].spread == 0  # -1 at the terminal


def test_the_worker_pages_tick_arrays_and_tuples_alike() -> None:
    n = 12_345
    array = np.zeros(n, dtype=TICK_DTYPE)
    array["time_msc"] = 1_767_225_600_000 + np.arange(n) * 250
    array["time"] = array["time_msc"] // 1000
    array["bid"] = 1.08 + (np.arange(n) % 13) * 1e-5
    array["ask"] = array["bid"] + 2e-5
    array["flags"] = 6
    pages = mt5_market.ticks_pages(array)
    assert pages == mt5_market.ticks_pages([tuple(r) for r in array.tolist()])
    assert [len(pb.TicksPage.FromString(p).ticks) for p in pages] == [10_000, 2_345]
