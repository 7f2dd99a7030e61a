"""The synthetic depth of market (mt5exec.sim.book) and the simulated MetaTrader5 module's
market_book_add / get / release (mt5exec.mt5.simbook)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.unit.test_simterminal import attach, make_terminal

from mt5exec.mt5 import simterminal as mt5
from mt5exec.sim import book
from mt5exec.sim.symbols import DEFAULT_SYMBOLS

SPECS = DEFAULT_SYMBOLS


@pytest.fixture(autouse=True)
def _detach() -> Iterator[None]:
    yield
    mt5.shutdown()
    mt5.clear_injected_failures()


def test_the_book_sits_on_the_quote_and_is_the_same_for_the_same_seed() -> None:
    spec = SPECS["EURUSD"]
    bid, ask = 1.08512, 1.08527
    levels = book.levels(spec, bid, ask, seed=7)
    sells = [lv for lv in levels if lv.type == book.BOOK_TYPE_SELL]
    buys = [lv for lv in levels if lv.type == book.BOOK_TYPE_BUY]
    assert len(sells) == len(buys) == book.DEPTH
    assert levels[: book.DEPTH] == sells, "sells first"
    # Sells from the highest down to the ask, buys from the bid down.
    assert [lv.price for lv in sells] == sorted((lv.price for lv in sells), reverse=True)
    assert [lv.price for lv in buys] == sorted((lv.price for lv in buys), reverse=True)
    assert (sells[-1].price, buys[0].price) == (ask, bid)
    for lv in levels:
        assert spec.volume_min <= lv.volume <= spec.volume_max
        steps = (lv.volume - spec.volume_min) / spec.volume_step
        assert abs(steps - round(steps)) < 1e-6
    assert book.levels(spec, bid, ask, seed=7) == levels
    other = book.levels(spec, bid, ask, seed=8)
    assert [lv.volume for lv in other] != [lv.volume for lv in levels]
    assert [lv.price for lv in other] == [lv.price for lv in levels]


def test_books_are_due_when_added_and_when_the_quote_moves() -> None:
    books = book.Books()
    assert not books.due("EURUSD", 1.1, 1.2), "not added"
    assert books.add("EURUSD")
    assert books.due("EURUSD", 1.1, 1.2)
    assert not books.due("EURUSD", 1.1, 1.2), "same quote"
    assert books.due("EURUSD", 1.1, 1.3)
    assert not books.add("EURUSD"), "added once"
    assert books.due("EURUSD", 1.1, 1.3), "an add sends the book again"
    assert books.symbols == ["EURUSD"]
    assert books.release("EURUSD")
    assert not books.release("EURUSD")
    assert not books and books.symbols == []


def test_simterminal_market_book_add_get_release(tmp_path: Path) -> None:
    attach(make_terminal(tmp_path))
    assert mt5.market_book_get("EURUSD") is None, "not added"
    assert mt5.last_error()[0] == mt5.RES_E_FAIL
    assert mt5.market_book_add("EURUSD") is True
    levels = mt5.market_book_get("EURUSD")
    assert levels is not None, mt5.last_error()
    tick = mt5.symbol_info_tick("EURUSD")
    assert tick is not None
    assert levels[0]._fields == ("type", "price", "volume", "volume_dbl")
    sells = [lv for lv in levels if lv.type == mt5.BOOK_TYPE_SELL]
    buys = [lv for lv in levels if lv.type == mt5.BOOK_TYPE_BUY]
    assert min(lv.price for lv in sells) >= tick.ask
    assert max(lv.price for lv in buys) <= tick.bid
    assert mt5.market_book_release("EURUSD") is True
    assert mt5.market_book_get("EURUSD") is None, "released"
    assert mt5.market_book_release("EURUSD") is False, "not added any more"
    assert mt5.market_book_add("NOPE") is False
    assert mt5.last_error()[0] == mt5.RES_E_FAIL
