"""The simulated broker's bars (issue #24): made from its own ticks, a seeded backfill before
it started, every timeframe's boundaries (minutes from UTC midnight, weeks from Monday, months
by the calendar), and the three copy_rates forms agreeing."""

from __future__ import annotations

import calendar
import time

import pytest

from mt5exec.sim import market
from mt5exec.sim.bars import MN1, TIMEFRAMES, W1, Bars, bucket
from mt5exec.sim.broker import SimBroker, SimConfig
from mt5exec.terminal.v1 import worker_pb2

# Wednesday 2026-01-28 23:57:00 UTC: the walk crosses a day and a month's end.
START = calendar.timegm((2026, 1, 28, 23, 57, 0))


class Clock:
    def __init__(self) -> None:
        self.now = float(START)

    def __call__(self) -> float:
        return self.now


def _broker() -> tuple[SimBroker, Clock]:
    clock = Clock()
    return SimBroker(SimConfig(["EURUSD"], seed=7), clock), clock


def test_bars_are_the_ticks_of_their_minute() -> None:
    broker, clock = _broker()
    ticks: dict[int, list[float]] = {}
    for _ in range(600):  # 5 minutes at 2 ticks a second
        clock.now += 0.5
        bid, _ = broker.advance("EURUSD")
        ticks.setdefault(int(clock.now) // 60 * 60, []).append(bid)
    bars = broker.bars["EURUSD"]
    series, start, stop = bars.select(1, start_pos=0, count=len(ticks))
    assert stop - start == len(ticks)
    scale = 10**5
    for t, o, h, lo, c, v, _ in series.rows(start, stop):
        seen = ticks[t]
        assert (o / scale, h / scale, lo / scale, c / scale, v) == (
            seen[0],
            max(seen),
            min(seen),
            seen[-1],
            len(seen),
        )


def test_backfill_before_the_start_is_seeded() -> None:
    a, _ = _broker()
    b, _ = _broker()
    first = a.bars["EURUSD"].select(1, start_pos=0, count=1000)
    again = b.bars["EURUSD"].select(1, start_pos=0, count=1000)
    rows = list(first[0].rows(first[1], first[2]))
    assert len(rows) == 1000 and rows == list(again[0].rows(again[1], again[2]))
    times = [r[0] for r in rows]
    assert times == list(range(times[0], times[0] + 60_000, 60))
    assert times[-1] == START - 60  # the minute before the start: no live bar yet
    for _, o, h, lo, c, _, _ in rows:
        assert lo <= min(o, c) <= max(o, c) <= h


@pytest.mark.parametrize("tf", sorted(TIMEFRAMES))
def test_boundaries(tf: int) -> None:
    broker, clock = _broker()
    for _ in range(120):
        clock.now += 1.0
        broker.advance("EURUSD")
    series, start, stop = broker.bars["EURUSD"].select(tf, start_pos=0, count=3)
    for t in series.time[start:stop]:
        day = time.gmtime(t)
        if tf == MN1:
            assert (day.tm_mday, day.tm_hour, day.tm_min) == (1, 0, 0)
        elif tf == W1:
            assert (day.tm_wday, day.tm_hour, day.tm_min) == (0, 0, 0)  # Monday
        else:
            assert t % (tf * 60) == 0
    # The bar holding the start is the one bucket() names, and the next one starts where it ends.
    open_, end = bucket(tf, START)
    assert open_ <= START < end
    assert bucket(tf, end)[0] == end


def test_weeks_and_months() -> None:
    assert bucket(W1, calendar.timegm((2026, 1, 28, 12, 0, 0)))[0] == calendar.timegm(
        (2026, 1, 26, 0, 0, 0)
    )
    assert bucket(MN1, calendar.timegm((2024, 2, 29, 23, 0, 0))) == (
        calendar.timegm((2024, 2, 1, 0, 0, 0)),
        calendar.timegm((2024, 3, 1, 0, 0, 0)),
    )
    assert bucket(MN1, calendar.timegm((2025, 12, 31, 0, 0, 0)))[1] == calendar.timegm(
        (2026, 1, 1, 0, 0, 0)
    )


@pytest.mark.parametrize("tf", [1, 5, 60, 1440])
def test_the_three_forms_agree(tf: int) -> None:
    broker, clock = _broker()
    for _ in range(300):
        clock.now += 1.0
        broker.advance("EURUSD")
    bars = broker.bars["EURUSD"]
    s, a, b = bars.select(tf, start_pos=2, count=20)
    by_pos = list(s.rows(a, b))
    assert len(by_pos) == 20
    s, a, b = bars.select(tf, date_from=by_pos[-1][0], count=20)
    assert list(s.rows(a, b)) == by_pos
    s, a, b = bars.select(tf, date_from=by_pos[0][0], date_to=by_pos[-1][0])
    assert list(s.rows(a, b)) == by_pos


def test_m1_pages_are_the_bars_encoded() -> None:
    """M1 pages are joined from each bar's encoding made once; they decode to the bars."""
    broker, clock = _broker()
    for _ in range(400):
        clock.now += 0.5
        broker.advance("EURUSD")
    series, start, stop = broker.bars["EURUSD"].select(1, start_pos=0, count=1500)
    assert series.entries is not None
    pages = market.rates_pages(series, start, stop, 10**5)
    decoded = [b for p in pages for b in worker_pb2.RatesPage.FromString(p).rates]
    expected = [
        (t, o / 1e5, h / 1e5, lo / 1e5, c / 1e5, v, sp)
        for t, o, h, lo, c, v, sp in series.rows(start, stop)
    ]
    assert [
        (b.time, b.open, b.high, b.low, b.close, b.tick_volume, b.spread) for b in decoded
    ] == expected
    assert len(decoded) == 1500


def test_live_bars_are_capped_and_the_newest_kept() -> None:
    bars = Bars(7, "EURUSD", 10, 20, START, 110_000, max_live=10)
    minutes = 25
    for n in range(minutes):
        for k in range(3):
            bars.on_tick((START + n * 60 + k) * 1000, 110_000 + n * 10 + k, 20)
    assert 5 <= len(bars.live) <= 10
    m1 = bars.m1(0)  # as far back as there is: no backfill before what is kept
    kept = len(m1)
    assert m1.time == [START + n * 60 for n in range(minutes - kept, minutes)]
    assert m1.open == [110_000 + n * 10 for n in range(minutes - kept, minutes)]
    assert m1.close == [110_000 + n * 10 + 2 for n in range(minutes - kept, minutes)]
    assert m1.entries is not None and len(m1.entries) == kept
    first = worker_pb2.RatesPage.FromString(m1.entries[0]).rates[0]
    assert (first.time, first.tick_volume) == (m1.time[0], 3)
    assert bars.select(1, start_pos=0, count=3)[0].time[-1] == START + (minutes - 1) * 60
