"""The StreamBook service's table of book locks (services/market.py ``_Books``): a lock lives
while the book is asked about or has subscribers, not one per symbol ever asked for; and only
a question that may have added the book (timed out, cancelled) is followed by a release."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from mt5exec.errors import MT5ExecError
from mt5exec.reasons import Reason
from mt5exec.services.market import _Books
from mt5exec.terminal.v1 import worker_pb2 as wpb


class _Terminal:
    """Answers the book questions as told (the worker's side), recording them."""

    def __init__(self, refuse: MT5ExecError | None = None) -> None:
        self.refuse = refuse
        self.asked: list[tuple[str, bool]] = []

    async def ask(self, instance_id: str, request: wpb.MarketRequest) -> wpb.MarketAnswer:
        self.asked.append((request.book.symbol, request.book.release))
        await asyncio.sleep(0)
        if self.refuse is not None and not request.book.release:
            raise self.refuse
        return wpb.MarketAnswer(request_id=request.request_id)


async def _settle(books: _Books) -> None:
    while books._releases:
        await asyncio.gather(*books._releases)


def test_refused_joins_leave_no_lock_and_release_nothing() -> None:
    refusal = MT5ExecError(
        grpc.StatusCode.NOT_FOUND, Reason.SYMBOL_NOT_FOUND, "no such symbol", "symbol"
    )
    terminal = _Terminal(refusal)
    books = _Books(terminal.ask)

    async def run() -> None:
        for n in range(1000):
            with pytest.raises(MT5ExecError):
                await books.join(("mt5-1", f"NOPE{n}"))
        await _settle(books)

    asyncio.run(run())
    assert books._gates == {}
    # A definite refusal added nothing: nothing to release.
    assert all(not release for _, release in terminal.asked)
    assert len(terminal.asked) == 1000


def test_a_timed_out_join_is_released_and_leaves_no_lock() -> None:
    timeout = MT5ExecError(grpc.StatusCode.UNAVAILABLE, Reason.TERMINAL_TIMEOUT, "no answer")
    terminal = _Terminal(timeout)
    books = _Books(terminal.ask)

    async def run() -> None:
        with pytest.raises(MT5ExecError):
            await books.join(("mt5-1", "EURUSD"))
        await _settle(books)

    asyncio.run(run())
    # A late answer may have added it: released, and then the lock goes too.
    assert terminal.asked == [("EURUSD", False), ("EURUSD", True)]
    assert books._gates == {}


def test_a_book_keeps_its_lock_while_subscribed_then_drops_it() -> None:
    terminal = _Terminal()
    books = _Books(terminal.ask)
    key = ("mt5-1", "EURUSD")

    async def run() -> None:
        await asyncio.gather(books.join(key), books.join(key))
        assert list(books._gates) == [key]
        books.leave(key)
        books.leave(key)
        await _settle(books)

    asyncio.run(run())
    assert terminal.asked == [("EURUSD", False), ("EURUSD", False), ("EURUSD", True)]
    assert books._gates == {}
