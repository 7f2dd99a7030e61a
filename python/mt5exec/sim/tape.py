"""The simulated broker's tick history (what ``copy_ticks_*`` reads): every tick it made,
per symbol, in compact arrays (time in ms, bid and ask in points), at most ``MAX_KEPT``
(the oldest half goes when that is reached). It starts when the worker does."""

from __future__ import annotations

import bisect
from array import array

MAX_KEPT = 500_000


class Tape:
    __slots__ = ("ask", "bid", "time")

    def __init__(self) -> None:
        self.time = array("q")
        self.bid = array("q")
        self.ask = array("q")

    def add(self, time_msc: int, bid_pts: int, ask_pts: int) -> None:
        if len(self.time) >= MAX_KEPT:
            half = MAX_KEPT // 2
            del self.time[:half], self.bid[:half], self.ask[:half]
        self.time.append(time_msc)
        self.bid.append(bid_pts)
        self.ask.append(ask_pts)

    def select(self, from_msc: int, to_msc: int | None, count: int | None) -> tuple[int, int]:
        """``(start, stop)`` of the ticks from ``from_msc`` on: up to ``to_msc`` (inclusive), or
        at most ``count`` of them."""
        start = bisect.bisect_left(self.time, from_msc)
        if to_msc is not None:
            return start, bisect.bisect_right(self.time, to_msc)
        return start, min(len(self.time), start + (count or 0))
