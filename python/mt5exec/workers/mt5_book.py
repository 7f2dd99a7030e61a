"""The MT5 worker's depth of market: the books the engine asks for (``BookQuery``, for
StreamBook subscribers) added at the terminal with ``market_book_add``, read with
``market_book_get`` at each poll (a ``BookUpdate`` when it changed), and released with
``market_book_release`` when the last subscriber left (docs/market-data.md)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from mt5exec import status_codes as status
from mt5exec.mt5 import constants as c
from mt5exec.reasons import Reason
from mt5exec.terminal.v1 import worker_pb2 as pb

log = logging.getLogger(__name__)

Call = Callable[..., Any]


class TerminalBooks:
    """The symbols added at the terminal, with the levels each was last sent with."""

    def __init__(self) -> None:
        self._sent: dict[str, tuple[tuple[int, float, float], ...] | None] = {}
        # Books whose market_book_get failed (warned once until it answers again).
        self._failing: set[str] = set()

    def __bool__(self) -> bool:
        return bool(self._sent)

    @property
    def symbols(self) -> list[str]:
        return sorted(self._sent)

    def query(
        self,
        mt5: Any,
        call: Call,
        last_error: Callable[[], tuple[int, str]],
        request: pb.MarketRequest,
        connected: bool = True,
    ) -> pb.MarketAnswer:
        """Adds (once) or releases the book of ``request.book.symbol``; an add of a symbol
        already added sends its book again at the next poll. Not ``connected``, an add is
        UNAVAILABLE (BROKER_DISCONNECTED): nothing was asked of the terminal."""
        q = request.book
        answer = pb.MarketAnswer(request_id=request.request_id)
        if q.release:
            self._failing.discard(q.symbol)
            if self._sent.pop(q.symbol, False) is not False:
                if not call("market_book_release", mt5.market_book_release, q.symbol):
                    log.warning("market_book_release(%s) failed: %s", q.symbol, last_error())
                else:
                    log.info("market_book_release(%s): the last subscriber left", q.symbol)
            return answer
        if q.symbol not in self._sent:
            if not connected:
                answer.code, answer.reason = status.UNAVAILABLE, Reason.BROKER_DISCONNECTED
                answer.message = "the terminal is disconnected; try again when it is back"
                return answer
            if not call("market_book_add", mt5.market_book_add, q.symbol):
                code, message = last_error()
                if code in c.IPC_ERRORS or call("symbol_info", mt5.symbol_info, q.symbol):
                    answer.code, answer.reason = status.UNAVAILABLE, Reason.TERMINAL_CALL_FAILED
                    answer.message = f"market_book_add failed at the terminal: {code} {message}"
                else:
                    answer.code, answer.reason, answer.field = (
                        status.NOT_FOUND,
                        Reason.SYMBOL_NOT_FOUND,
                        "symbol",
                    )
                    answer.message = f"symbol: the terminal has no symbol {q.symbol!r}"
                return answer
            log.info("market_book_add(%s): the first subscriber", q.symbol)
        self._sent[q.symbol] = None
        return answer

    def add_again(self, mt5: Any, call: Call, last_error: Callable[[], tuple[int, str]]) -> None:
        """After the terminal was attached again: its books went with the old session, so
        each is added again (a failed add is tried again at the next attach) and sent again
        at the next poll."""
        for name in self._sent:
            if call("market_book_add", mt5.market_book_add, name):
                self._sent[name] = None
                self._failing.discard(name)
                log.info("market_book_add(%s) again after attaching again", name)
            else:
                log.warning(
                    "market_book_add(%s) failed after attaching again: %s; tried again at "
                    "the next attach",
                    name,
                    last_error(),
                )

    def poll(self, mt5: Any, call: Call) -> list[pb.BookUpdate]:
        """The books that changed since they were last sent (``market_book_get``)."""
        out = []
        for name, last in self._sent.items():
            rows = call("market_book_get", mt5.market_book_get, name)
            if rows is None:
                if name not in self._failing:
                    self._failing.add(name)
                    log.warning(
                        "market_book_get(%s) keeps failing for a book added at the terminal: "
                        "its subscribers get nothing until it answers again",
                        name,
                    )
                continue
            if self._failing:
                self._failing.discard(name)
            levels = tuple((int(r.type), float(r.price), float(r.volume_dbl)) for r in rows)
            if levels == last:
                continue
            self._sent[name] = levels
            update = pb.BookUpdate(symbol=name, time_msc=int(time.time() * 1000))
            add = update.levels.add
            for kind, price, volume in levels:
                add(type=kind, price=price, volume=volume)
            out.append(update)
        return out
