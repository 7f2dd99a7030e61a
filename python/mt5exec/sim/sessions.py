"""Trading sessions of the simulated broker: when a symbol can be traded.

Owns the weekly session calendar of a symbol (MT5's ``SymbolInfoSessionTrade``) and its config
syntax. All times are the sim server's clock, UTC, seconds since the epoch. A calendar is a set
of weekly windows; a symbol is open inside any window. Config forms:

``"always"``
    Open around the clock, weekends included (the default, so that demos work on a Saturday).
``"fx"``
    The usual retail FX week: Sunday 22:00 to Friday 22:00 UTC.
``[["Sun 22:00", "Fri 22:00"], ["Mon 08:00", "Mon 12:30"], ...]``
    Explicit windows, each ``[start, end]`` as ``"<Day> HH:MM"`` (days Mon..Sun, English, any
    case; ``"24:00"`` is allowed as an end). A window may wrap around the end of the week
    (``["Sun 22:00", "Fri 22:00"]`` does, since the week here starts on Monday). Overlapping
    windows merge.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from typing import Any

WEEK_S = 7 * 86400
# 1970-01-05 00:00 UTC was a Monday: the epoch offset of the week grid.
_MONDAY_S = 4 * 86400
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
FX_WINDOWS = (("Sun 22:00", "Fri 22:00"),)


class SessionError(ValueError):
    """A session spec that cannot be read; the message says what is wrong."""


def _second_of_week(text: str, *, end: bool) -> int:
    parts = text.split()
    if len(parts) != 2 or parts[0].lower()[:3] not in _DAYS:
        raise SessionError(f'expected "<Day> HH:MM" (e.g. "Sun 22:00"), got {text!r}')
    day = _DAYS.index(parts[0].lower()[:3])
    try:
        hh, mm = (int(x) for x in parts[1].split(":"))
    except ValueError:
        raise SessionError(f"bad time of day in {text!r}") from None
    if not (0 <= mm < 60 and (0 <= hh < 24 or (end and hh == 24 and mm == 0))):
        raise SessionError(f"bad time of day in {text!r}")
    return day * 86400 + hh * 3600 + mm * 60


class Sessions:
    """A weekly calendar of trading windows; ``Sessions.ALWAYS`` when there is no closing."""

    __slots__ = ("_edges", "_ends", "_starts", "always", "name")

    ALWAYS: Sessions

    def __init__(self, windows: Sequence[tuple[int, int]], name: str) -> None:
        """``windows`` as ``(start, end)`` seconds of the week (Monday 00:00 = 0), end exclusive.

        An end at or before its start wraps around the end of the week.
        """
        self.name = name
        spans: list[tuple[int, int]] = []
        for start, end in windows:
            start %= WEEK_S
            end = end % WEEK_S if end != WEEK_S else WEEK_S
            if end > start:
                spans.append((start, end))
            else:
                spans.append((start, WEEK_S))
                if end > 0:
                    spans.append((0, end))
        spans.sort()
        merged: list[list[int]] = []
        for start, end in spans:
            if merged and start <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], end)
            else:
                merged.append([start, end])
        self._starts = [s for s, _ in merged]
        self._ends = [e for _, e in merged]
        self.always = merged == [[0, WEEK_S]]
        # Where the state flips, in seconds of the week: a window running into the next week's
        # first one (end of week -> Monday 00:00) is one window, not a close and an open.
        wraps = bool(merged) and merged[0][0] == 0 and merged[-1][1] == WEEK_S
        edges: set[int] = set()
        for start, end in merged:
            if not (wraps and start == 0):
                edges.add(start)
            if not (wraps and end == WEEK_S):
                edges.add(end % WEEK_S)
        self._edges = sorted(edges)

    @classmethod
    def parse(cls, spec: Any) -> Sessions:
        """A calendar from its config form (see the module docstring); ``SessionError`` if bad."""
        if spec is None or spec == "always":
            return cls.ALWAYS
        if spec == "fx":
            windows: Any = FX_WINDOWS
            name = "fx"
        elif isinstance(spec, list) and spec:
            windows = spec
            name = "custom"
        else:
            raise SessionError(f'expected "always", "fx" or a list of windows, got {spec!r}')
        spans = []
        for w in windows:
            if (
                not isinstance(w, (list, tuple))
                or len(w) != 2
                or not all(isinstance(x, str) for x in w)
            ):
                raise SessionError(f'expected a window ["<Day> HH:MM", "<Day> HH:MM"], got {w!r}')
            start = _second_of_week(w[0], end=False)
            end = _second_of_week(w[1], end=True)
            if start == end:
                raise SessionError(f"empty window {w!r}")
            spans.append((start, end))
        return cls(spans, name)

    def _week_second(self, t: float) -> float:
        return (t - _MONDAY_S) % WEEK_S

    @property
    def windows(self) -> list[tuple[int, int]]:
        """The merged windows, ``(start, end)`` seconds of the week."""
        return list(zip(self._starts, self._ends, strict=True))

    def is_open(self, t: float) -> bool:
        """Whether trading is open at ``t`` (epoch seconds)."""
        if self.always:
            return True
        s = self._week_second(t)
        i = bisect.bisect_right(self._starts, s) - 1
        return i >= 0 and s < self._ends[i]

    def next_change(self, t: float) -> float:
        """The first time after ``t`` at which ``is_open`` changes; ``inf`` if it never does."""
        edges = self._edges
        if not edges:
            return math.inf
        s = self._week_second(t)
        base = t - s
        i = bisect.bisect_right(edges, s)
        return base + (edges[i] if i < len(edges) else WEEK_S + edges[0])

    def __repr__(self) -> str:
        return f"Sessions({self.name})"


Sessions.ALWAYS = Sessions([(0, WEEK_S)], "always")
