"""A synthetic depth of market around a symbol's bid and ask (``market_book_get``).

``DEPTH`` levels a side, ``gap`` points apart: sell levels from the ask up, buy levels from
the bid down, so the best ask is the ask and the best bid the bid. A level's volume depends
only on the seed, the symbol, the side and the level's price (a whole number of points): the
same prices give the same book, and the book moves with the ticks. Volumes are whole steps of
the symbol's volume step, from its minimum, at most its maximum.

Levels come as MT5 lists them (MqlBookInfo): sells first, from the highest price, then buys
from the highest. Used by the sim worker (``BookUpdate`` frames) and by the simulated
MetaTrader5 module's ``market_book_get`` (mt5exec.mt5.simbook).
"""

from __future__ import annotations

import zlib
from collections.abc import Container
from typing import NamedTuple, Protocol

from mt5exec import status_codes as status
from mt5exec.reasons import Reason
from mt5exec.terminal.v1 import worker_pb2 as pb

# BOOK_TYPE_SELL, BOOK_TYPE_BUY.
BOOK_TYPE_SELL = 1
BOOK_TYPE_BUY = 2
# Levels a side.
DEPTH = 10
# A level's volume is volume_min plus this many volume steps at most.
MAX_STEPS = 99
_MASK = (1 << 64) - 1


class Spec(Protocol):
    """What the book needs of a symbol (mt5exec.sim.symbols.SymbolSpec has it)."""

    @property
    def name(self) -> str: ...
    @property
    def digits(self) -> int: ...
    @property
    def point(self) -> float: ...
    @property
    def volume_min(self) -> float: ...
    @property
    def volume_max(self) -> float: ...
    @property
    def volume_step(self) -> float: ...
    @property
    def spread_points(self) -> int: ...


class Level(NamedTuple):
    type: int
    price: float
    volume: float


def _mix(value: int) -> int:
    """splitmix64's finaliser: a well-spread 64-bit hash of an integer."""
    value = (value + 0x9E3779B97F4A7C15) & _MASK
    value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & _MASK
    return value ^ (value >> 31)


def gap_points(spec: Spec) -> int:
    """Points between two levels of a side: half the symbol's spread, at least one."""
    return max(1, spec.spread_points // 2)


def levels(spec: Spec, bid: float, ask: float, seed: int) -> list[Level]:
    """The book of ``spec`` at ``bid``/``ask``: ``DEPTH`` sells then ``DEPTH`` buys."""
    point, digits = spec.point, spec.digits
    gap = gap_points(spec)
    base = _mix(seed ^ (zlib.crc32(spec.name.encode()) << 32))
    ask_points, bid_points = round(ask / point), round(bid / point)

    def level(kind: int, points: int) -> Level:
        steps = _mix(base ^ (points << 2) ^ kind) % (MAX_STEPS + 1)
        volume = min(spec.volume_max, spec.volume_min + steps * spec.volume_step)
        return Level(kind, round(points * point, digits), round(volume, 8))

    sells = [level(BOOK_TYPE_SELL, ask_points + i * gap) for i in reversed(range(DEPTH))]
    buys = [level(BOOK_TYPE_BUY, bid_points - i * gap) for i in range(DEPTH)]
    return sells + buys


def update(spec: Spec, bid: float, ask: float, time_msc: int, seed: int) -> pb.BookUpdate:
    """The worker protocol's ``BookUpdate`` of ``levels``."""
    book = pb.BookUpdate(symbol=spec.name, time_msc=time_msc)
    add = book.levels.add
    for kind, price, volume in levels(spec, bid, ask, seed):
        add(type=kind, price=price, volume=volume)
    return book


class Books:
    """The symbols whose book a terminal was asked for (market_book_add), and the quote each
    was last sent at: a book goes out when added and when its quote moved."""

    def __init__(self) -> None:
        self._sent: dict[str, tuple[float, float] | None] = {}

    def __bool__(self) -> bool:
        return bool(self._sent)

    @property
    def symbols(self) -> list[str]:
        return sorted(self._sent)

    def add(self, symbol: str) -> bool:
        """Adds ``symbol``; False when it was already added (then its book goes out again)."""
        new = symbol not in self._sent
        self._sent[symbol] = None
        return new

    def release(self, symbol: str) -> bool:
        """Releases ``symbol``; False when it was not added."""
        return self._sent.pop(symbol, False) is not False

    def due(self, symbol: str, bid: float, ask: float) -> bool:
        """Whether ``symbol`` (added) must be sent at this quote; noted as sent if so."""
        if symbol not in self._sent or self._sent[symbol] == (bid, ask):
            return False
        self._sent[symbol] = (bid, ask)
        return True


def query(books: Books, known: Container[str], request: pb.MarketRequest) -> pb.MarketAnswer:
    """A worker's answer to a ``BookQuery`` (market_book_add or _release) of ``known``
    symbols: NOT_FOUND for another; an add or release noted in ``books``."""
    q = request.book
    answer = pb.MarketAnswer(request_id=request.request_id)
    if q.symbol not in known:
        answer.code, answer.reason, answer.field = (
            status.NOT_FOUND,
            Reason.SYMBOL_NOT_FOUND,
            "symbol",
        )
        answer.message = f"symbol: the terminal has no symbol {q.symbol!r}"
    elif q.release:
        books.release(q.symbol)
    else:
        books.add(q.symbol)
    return answer
