"""The simulated MetaTrader5 module's depth of market: ``market_book_add``, ``market_book_get``
and ``market_book_release``, answered from the simulated broker's synthetic book
(mt5exec.sim.book) at the symbol's current quote.

As the terminal does: ``market_book_get`` answers only for a symbol added (and not released
since); an unknown symbol fails (``RES_E_FAIL``). The bodies take the session; simterminal
wraps them with its call decorator (lock, link, injected faults).
"""

from __future__ import annotations

import weakref
from typing import NamedTuple

from mt5exec.mt5 import constants as c
from mt5exec.mt5.simterminal_args import Refused, known_symbol
from mt5exec.mt5.simterminal_session import Session
from mt5exec.sim import book

# The symbols each attached terminal has added.
_added: weakref.WeakKeyDictionary[Session, set[str]] = weakref.WeakKeyDictionary()


class BookInfo(NamedTuple):
    """One level of the book (MqlBookInfo), as the MetaTrader5 package gives it."""

    type: int
    price: float
    volume: int
    volume_dbl: float


def added(s: Session) -> set[str]:
    """The symbols whose book ``s`` has added."""
    return _added.setdefault(s, set())


def market_book_add(s: Session, symbol: str) -> bool:
    added(s).add(known_symbol(s.specs, symbol))
    return True


def market_book_release(s: Session, symbol: str) -> bool:
    name = known_symbol(s.specs, symbol)
    if name not in added(s):
        raise Refused(c.RES_E_FAIL, "market_book_release: the book was not added")
    added(s).discard(name)
    return True


def market_book_get(s: Session, symbol: str) -> tuple[BookInfo, ...]:
    name = known_symbol(s.specs, symbol)
    if name not in added(s):
        raise Refused(c.RES_E_FAIL, "market_book_get: market_book_add it first")
    tick = s.feed.last(name)
    return tuple(
        BookInfo(kind, price, int(volume), volume)
        for kind, price, volume in book.levels(s.specs[name], tick.bid, tick.ask, s.cfg.seed)
    )
