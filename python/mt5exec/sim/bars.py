"""Bars (MqlRates) of the simulated broker, made from its own ticks.

Each symbol keeps M1 bars in points: every tick the broker makes (``SimBroker.advance`` /
``set_price``) lands in the bar of its minute, so a bar's open/high/low/close are prices its
ticks carried. Before the broker started there is a seeded backfill: a walk backwards from the
first price, generated when a request first reaches that far (at most ``MAX_BACKFILL`` minutes),
the same for the same seed and start. Other timeframes are aggregated from M1 on request:
minutes, hours and days from the epoch (UTC midnight), weeks from Monday, months by the
calendar (docs/market-data.md#bars).
"""

from __future__ import annotations

import bisect
import calendar
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from mt5exec.terminal.v1 import worker_pb2 as pb
from mt5exec.workers.protocol import varint

# The timeframes, as mt5exec.v1.Timeframe numbers (minutes; W1 and MN1 by the calendar).
W1 = 10080
MN1 = 43200
TIMEFRAMES = frozenset(
    (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30, 60, 120, 180, 240, 360, 480, 720, 1440, W1, MN1)
)
# The most bars one request may ask for (MT5's default "max bars in chart").
MAX_BARS = 100_000
# How far back the backfill may go, in minutes.
MAX_BACKFILL = 200_000
# The most live M1 bars kept (~347 days), as the tick tape (sim/tape.py): once reached, the
# oldest half goes, and the backfill with it (older still).
MAX_LIVE = 500_000
_BACKFILL_TICKS = 6
_DAY = 86_400
# RatesPage.rates: field 1, length-delimited.
_RATES_TAG = b"\x0a"
# Long work (a backfill, an aggregation) calls its ``pulse`` after this many bars: the worker
# answers the engine's watchdog in between (mt5exec.workers.sim.SimWorker.pulse).
PULSE_BARS = 1_000


def idle() -> None:
    """A ``pulse`` that does nothing (no worker to keep alive)."""


@dataclass(slots=True)
class Series:
    """Bars oldest first, as columns (prices in points)."""

    time: list[int]
    open: list[int]
    high: list[int]
    low: list[int]
    close: list[int]
    ticks: list[int]
    spread: list[int]

    # M1 only: each bar as an encoded ``RatesPage.rates`` entry (joined, they make a page).
    entries: list[bytes] | None = None

    def __len__(self) -> int:
        return len(self.time)

    def rows(self, start: int, stop: int) -> Iterator[tuple[int, int, int, int, int, int, int]]:
        return zip(
            self.time[start:stop],
            self.open[start:stop],
            self.high[start:stop],
            self.low[start:stop],
            self.close[start:stop],
            self.ticks[start:stop],
            self.spread[start:stop],
            strict=True,
        )


def bucket(tf: int, t: int) -> tuple[int, int]:
    """``(open time, next open time)`` of the bar of timeframe ``tf`` holding second ``t``."""
    if tf == MN1:
        y, m = time.gmtime(t)[:2]
        start = calendar.timegm((y, m, 1, 0, 0, 0))
        ny, nm = (y + 1, 1) if m == 12 else (y, m + 1)
        return start, calendar.timegm((ny, nm, 1, 0, 0, 0))
    if tf == W1:
        day = t // _DAY
        # 1970-01-01 was a Thursday: Monday is 3 days before a multiple of 7 days.
        monday = (day - (day + 3) % 7) * _DAY
        return monday, monday + 7 * _DAY
    width = tf * 60
    start = t - t % width
    return start, start + width


class Bars:
    """The M1 bars of one symbol."""

    __slots__ = (
        "_back",
        "_birth",
        "_birth_pts",
        "_max_live",
        "_rng",
        "_scale",
        "_spread",
        "_step",
        "_trimmed",
        "live",
    )

    def __init__(
        self,
        seed: int,
        symbol: str,
        step: int,
        spread: int,
        birth_s: float,
        birth_pts: int,
        scale: int = 100_000,
        max_live: int = MAX_LIVE,
    ) -> None:
        # Live bars; ``entries`` holds the encoding of every bar but the forming one.
        self.live = Series([], [], [], [], [], [], [], [])
        # Backfill, newest first (minute before the birth minute first).
        self._back = Series([], [], [], [], [], [], [], [])
        self._scale = scale
        self._birth = int(birth_s) // 60 * 60
        self._birth_pts = birth_pts
        self._step = max(1, step)
        self._spread = spread
        self._rng = random.Random(f"{seed}:{symbol}:backfill")
        self._max_live = max(2, max_live)
        # The oldest live bars went (MAX_LIVE): no backfill is made any more.
        self._trimmed = False

    def on_tick(self, time_msc: int, bid_pts: int, spread: int) -> None:
        minute = time_msc // 60_000 * 60
        s = self.live
        t = s.time
        if t and minute <= t[-1]:
            # This minute's bar (a clock that stepped back stays in the last one).
            if bid_pts > s.high[-1]:
                s.high[-1] = bid_pts
            elif bid_pts < s.low[-1]:
                s.low[-1] = bid_pts
            s.close[-1] = bid_pts
            s.ticks[-1] += 1
            if spread < s.spread[-1]:
                s.spread[-1] = spread
            return
        if minute < self._birth:
            return  # before the broker started: the backfill's minutes
        if t:
            assert s.entries is not None
            s.entries.append(self._entry(s, -1))  # the last bar is complete
            if len(t) >= self._max_live:
                self._trim()
        t.append(minute)
        s.open.append(bid_pts)
        s.high.append(bid_pts)
        s.low.append(bid_pts)
        s.close.append(bid_pts)
        s.ticks.append(1)
        s.spread.append(spread)

    def _trim(self) -> None:
        """Drops the oldest half of the live bars, and the backfill (older still)."""
        s = self.live
        half = self._max_live // 2
        assert s.entries is not None
        for column in (s.time, s.open, s.high, s.low, s.close, s.ticks, s.spread, s.entries):
            del column[:half]
        self._back = Series([], [], [], [], [], [], [], [])
        self._trimmed = True

    def _backfill(self, minutes: int, pulse: Callable[[], None]) -> None:
        """Extends the backfill to ``minutes`` bars (at most MAX_BACKFILL), calling ``pulse``
        every PULSE_BARS bars."""
        b = self._back
        want = min(minutes, MAX_BACKFILL)
        rng, step, floor = self._rng, self._step, self._spread + self._step
        price = b.open[-1] if b.time else self._birth_pts
        at = b.time[-1] if b.time else self._birth
        while len(b.time) < want:
            if len(b.time) % PULSE_BARS == 0:
                pulse()
            at -= 60
            close = high = low = price
            for _ in range(_BACKFILL_TICKS - 1):
                price += int(rng.random() * (2 * step + 1)) - step
                if price < floor:
                    price = 2 * floor - price
                high = max(high, price)
                low = min(low, price)
            b.time.append(at)
            b.open.append(price)
            b.high.append(high)
            b.low.append(low)
            b.close.append(close)
            b.ticks.append(_BACKFILL_TICKS)
            b.spread.append(self._spread)
            assert b.entries is not None
            b.entries.append(self._entry(b, -1))

    def _entry(self, s: Series, i: int) -> bytes:
        """Bar ``i`` of ``s`` as an encoded ``RatesPage.rates`` entry (tag, length, RateBar)."""
        scale = self._scale
        body = pb.RateBar(
            time=s.time[i],
            open=s.open[i] / scale,
            high=s.high[i] / scale,
            low=s.low[i] / scale,
            close=s.close[i] / scale,
            tick_volume=s.ticks[i],
            spread=s.spread[i],
        ).SerializeToString()
        return _RATES_TAG + varint(len(body)) + body

    def m1(self, since: int, pulse: Callable[[], None] = idle) -> Series:
        """The M1 bars from second ``since`` on (backfilled as far as that), oldest first;
        only those are copied, however long the history."""
        wanted = 0 if self._trimmed else (self._birth - since + 59) // 60
        self._backfill(wanted, pulse)
        b, s = self._back, self.live
        k = max(0, min(len(b.time), wanted))
        back = slice(k - 1, None, -1) if k else slice(0, 0)
        live = slice(bisect.bisect_left(s.time, since), None)
        assert b.entries is not None and s.entries is not None
        forming = [self._entry(s, -1)] if s.time else []
        entries = b.entries[back] + (s.entries + forming)[live]
        return Series(
            b.time[back] + s.time[live],
            b.open[back] + s.open[live],
            b.high[back] + s.high[live],
            b.low[back] + s.low[live],
            b.close[back] + s.close[live],
            b.ticks[back] + s.ticks[live],
            b.spread[back] + s.spread[live],
            entries,
        )

    def series(self, tf: int, since: int, pulse: Callable[[], None] = idle) -> Series:
        """Bars of timeframe ``tf`` from (about) second ``since`` on, oldest first."""
        m1 = self.m1(since, pulse)
        if tf == 1:
            return m1
        out = Series([], [], [], [], [], [], [])
        end = -1
        for i, (t, o, h, lo, c, v, sp) in enumerate(m1.rows(0, len(m1))):
            if i % (10 * PULSE_BARS) == 0:
                pulse()
            if t >= end:
                start, end = bucket(tf, t)
                out.time.append(start)
                out.open.append(o)
                out.high.append(h)
                out.low.append(lo)
                out.close.append(c)
                out.ticks.append(v)
                out.spread.append(sp)
                continue
            if h > out.high[-1]:
                out.high[-1] = h
            if lo < out.low[-1]:
                out.low[-1] = lo
            out.close[-1] = c
            out.ticks[-1] += v
            if sp < out.spread[-1]:
                out.spread[-1] = sp
        return out

    def select(
        self,
        tf: int,
        pulse: Callable[[], None] = idle,
        /,
        *,
        date_from: int = 0,
        date_to: int = 0,
        start_pos: int = -1,
        count: int = 0,
    ) -> tuple[Series, int, int]:
        """The three copy_rates forms: ``(series, start, stop)`` of the bars chosen.

        ``start_pos`` >= 0: copy_rates_from_pos (0 is the forming bar); ``date_to``:
        copy_rates_range (open times in [date_from, date_to]); else copy_rates_from (the
        ``count`` bars opened at or before ``date_from``). ``pulse`` is called every so many
        bars of the work (a backfill of 100,000 minutes takes seconds on a loaded machine)."""
        now = self.live.time[-1] if self.live.time else self._birth
        span = 44_640 if tf == MN1 else tf  # minutes in the longest bar
        if start_pos >= 0:
            since = now - (start_pos + count + 1) * span * 60
        elif date_to:
            since = date_from
        else:
            since = min(date_from, now) - (count + 1) * span * 60
        s = self.series(tf, since, pulse)
        times = s.time
        if start_pos >= 0:
            stop = max(0, len(times) - start_pos)
            return s, max(0, stop - count), stop
        if date_to:
            return s, bisect.bisect_left(times, date_from), bisect.bisect_right(times, date_to)
        stop = bisect.bisect_right(times, date_from)
        return s, max(0, stop - count), stop
