"""MarketDataService: the terminal's symbols, what an order would cost, and the terminal's
own state, asked of the instance's worker (docs/market-data.md); its depth of market
streamed (StreamBook).

Each call becomes a ``MarketRequest`` the engine numbers and passes to the worker; the
worker's ``MarketAnswer`` carries a gRPC code (NOT_FOUND for an unknown symbol, ...) or the
answer, whose messages are wire-compatible with the public ones (their bytes are passed on).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable

import grpc

from mt5exec.engine import Topic
from mt5exec.errors import MT5ExecError, invalid
from mt5exec.reasons import Reason
from mt5exec.server.handlers import MAX_MESSAGE_BYTES, Context
from mt5exec.server.state import AppState
from mt5exec.services import validation
from mt5exec.terminal.v1 import worker_pb2 as wpb
from mt5exec.v1 import common_pb2, market_pb2
from mt5exec.workers.protocol import MARKET_ANSWER_TIMEOUT_S

PLANNED: dict[str, int | str] = {}

# symbols_get's group: names, "*" wildcards, "!" exclusions, commas.
_GROUP = re.compile(r"[A-Za-z0-9_.#*!,\-]*")
_SYMBOL = re.compile(r"[A-Za-z0-9_.#\-]{1,64}")
# The most bars one GetRates may ask for (copy_rates_* count).
MAX_BARS = 100_000
_ACTIONS: dict[int, int] = {common_pb2.SIDE_BUY: 0, common_pb2.SIDE_SELL: 1}


def _symbol(value: str) -> str:
    if not value:
        raise invalid("symbol", Reason.FIELD_REQUIRED, "symbol: required")
    return validation.text("symbol", value, max_length=64, pattern=_SYMBOL)


def _side(value: int) -> int:
    validation.enum("side", value, common_pb2.Side.DESCRIPTOR, unspecified=False)
    return _ACTIONS[value]


def _volume(value: float) -> float:
    if not value > 0:
        raise invalid("volume", Reason.VALUE_OUT_OF_RANGE, "volume: must be more than 0")
    return validation.finite("volume", value, maximum=1e9)


def _price(field: str, value: float, *, required: bool) -> float:
    if required and not value > 0:
        raise invalid(field, Reason.VALUE_OUT_OF_RANGE, f"{field}: must be more than 0")
    return validation.finite(field, value, maximum=1e12)


def rates_query(request: market_pb2.GetRatesRequest) -> wpb.RatesQuery:
    """The worker's question for a GetRates request: which copy_rates form it is, checked."""
    query = wpb.RatesQuery(
        symbol=_symbol(request.symbol),
        timeframe=validation.enum(
            "timeframe", request.timeframe, market_pb2.Timeframe.DESCRIPTOR, unspecified=False
        ),
    )
    has_from, has_to = request.HasField("date_from"), request.HasField("date_to")
    if has_from:
        query.date_from = validation.timestamp_nanos("date_from", request.date_from) // 10**9
    if has_to:
        if not has_from:
            raise invalid("date_from", Reason.FIELD_REQUIRED, "date_from: required with date_to")
        query.date_to = validation.timestamp_nanos("date_to", request.date_to) // 10**9
        if query.date_to < query.date_from:
            raise invalid(
                "date_to", Reason.RANGE_REVERSED, "date_to: before date_from (a reversed range)"
            )
        for field in ("start_pos", "count"):
            if getattr(request, field):
                raise invalid(
                    field, Reason.FIELD_NOT_APPLICABLE, f"{field}: not with a range (date_to)"
                )
        return query
    if not 1 <= request.count <= MAX_BARS:
        raise invalid(
            "count",
            Reason.VALUE_OUT_OF_RANGE,
            f"count: must be 1 to {MAX_BARS:,} bars, got {request.count:,}",
        )
    query.count = request.count
    if has_from:
        if request.start_pos:
            raise invalid("start_pos", Reason.FIELD_NOT_APPLICABLE, "start_pos: not with date_from")
    else:
        query.from_pos = True
        query.start_pos = request.start_pos
    return query


def ticks_query(request: market_pb2.GetTicksRequest) -> wpb.TicksQuery:
    """The worker's question for a GetTicks request (copy_ticks_from or _range), checked."""
    query = wpb.TicksQuery(
        symbol=_symbol(request.symbol),
        flags=validation.enum(
            "flags", request.flags, market_pb2.CopyTicks.DESCRIPTOR, unspecified=False
        ),
    )
    if not request.HasField("date_from"):
        raise invalid("date_from", Reason.FIELD_REQUIRED, "date_from: required")
    query.from_msc = validation.timestamp_nanos("date_from", request.date_from) // 10**6
    if request.HasField("date_to"):
        query.range = True
        query.to_msc = validation.timestamp_nanos("date_to", request.date_to) // 10**6
        if query.to_msc < query.from_msc:
            raise invalid(
                "date_to", Reason.RANGE_REVERSED, "date_to: before date_from (a reversed range)"
            )
        if request.count:
            raise invalid("count", Reason.FIELD_NOT_APPLICABLE, "count: not with a range (date_to)")
        return query
    if not 1 <= request.count <= MAX_BARS:
        raise invalid(
            "count",
            Reason.VALUE_OUT_OF_RANGE,
            f"count: must be 1 to {MAX_BARS:,} ticks, got {request.count:,}",
        )
    query.count = request.count
    return query


class _Gate:
    """A book's lock and how many hold it or wait for it."""

    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.users = 0


class _Books:
    """The subscribers of each instance's symbol book, and the terminal's book kept in step:
    every subscriber's arrival asks the worker to add the book (``BookQuery``: the worker
    calls market_book_add only for the first, and answers NOT_FOUND for an unknown symbol),
    and the last one's leaving asks it to release it (market_book_release). One question at
    a time per book, so an add and a release never overtake each other. A book's lock lives
    while someone holds or waits for it or the book has subscribers (not one per symbol
    ever asked for)."""

    def __init__(self, ask: Callable[[str, wpb.MarketRequest], Awaitable[wpb.MarketAnswer]]):
        self._ask = ask
        self._count: dict[tuple[str, str], int] = {}
        self._gates: dict[tuple[str, str], _Gate] = {}
        self._releases: set[asyncio.Task[None]] = set()

    @contextlib.asynccontextmanager
    async def _locked(self, key: tuple[str, str]) -> AsyncIterator[None]:
        gate = self._gates.get(key)
        if gate is None:
            gate = self._gates[key] = _Gate()
        gate.users += 1
        try:
            async with gate.lock:
                yield
        finally:
            gate.users -= 1
            if not gate.users and key not in self._count:
                del self._gates[key]

    async def join(self, key: tuple[str, str]) -> None:
        """Counts a subscriber once the terminal has the book (raises when it cannot)."""
        async with self._locked(key):
            try:
                await self._ask(key[0], wpb.MarketRequest(book=wpb.BookQuery(symbol=key[1])))
            except MT5ExecError as e:
                # A refusal (NOT_FOUND, an instance not ready, a worker gone) added nothing;
                # a question that timed out may have been answered late, adding the book:
                # with no subscriber it goes (a release of a book never added changes
                # nothing).
                if e.reason == Reason.TERMINAL_TIMEOUT and key not in self._count:
                    self._release_later(key)
                raise
            except BaseException:
                # Cancelled: the worker may have added it all the same.
                if key not in self._count:
                    self._release_later(key)
                raise
            self._count[key] = self._count.get(key, 0) + 1

    def leave(self, key: tuple[str, str]) -> None:
        """A subscriber left; the last one's leaving releases the book (in the background:
        this runs in a stream's finally, which must not wait)."""
        left = self._count[key] - 1
        if left:
            self._count[key] = left
            return
        del self._count[key]
        self._release_later(key)

    def _release_later(self, key: tuple[str, str]) -> None:
        task = asyncio.get_running_loop().create_task(self._release(key))
        self._releases.add(task)
        task.add_done_callback(self._releases.discard)

    async def _release(self, key: tuple[str, str]) -> None:
        async with self._locked(key):
            if key in self._count:
                return  # Someone subscribed again meanwhile: the book stays.
            query = wpb.BookQuery(symbol=key[1], release=True)
            # A worker gone or stopping has released it with its terminal.
            with contextlib.suppress(MT5ExecError):
                await self._ask(key[0], wpb.MarketRequest(book=query))


class MarketDataService:
    def __init__(self, state: AppState) -> None:
        self._engine = state.engine
        self._books = _Books(self._ask)

    async def _ask(self, instance_id: str, request: wpb.MarketRequest) -> wpb.MarketAnswer:
        raw = await self._engine.market_query(
            validation.instance_id(instance_id),
            request.SerializeToString(),
            MARKET_ANSWER_TIMEOUT_S,
        )
        answer = wpb.MarketAnswer.FromString(raw)
        if answer.code:
            code = next(
                (c for c in grpc.StatusCode if c.value[0] == answer.code),
                grpc.StatusCode.UNAVAILABLE,
            )
            raise MT5ExecError(code, answer.reason, answer.message, answer.field)
        return answer

    async def ListSymbols(self, request: market_pb2.ListSymbolsRequest, context: Context) -> bytes:
        group = validation.text("group", request.group, max_length=1024, pattern=_GROUP)
        query = wpb.MarketRequest(symbols=wpb.SymbolsQuery(group=group))
        answer = await self._ask(request.instance_id, query)
        # SymbolList is wire-compatible with ListSymbolsResponse.
        return answer.symbols.SerializeToString()

    async def GetSymbol(self, request: market_pb2.GetSymbolRequest, context: Context) -> bytes:
        name = _symbol(request.symbol)
        answer = await self._ask(
            request.instance_id, wpb.MarketRequest(symbols=wpb.SymbolsQuery(name=name))
        )
        found = [s for s in answer.symbols.symbols if s.name == name]
        if not found:
            raise MT5ExecError(
                grpc.StatusCode.NOT_FOUND,
                Reason.SYMBOL_NOT_FOUND,
                f"symbol: the terminal has no symbol {name!r}",
                "symbol",
            )
        return market_pb2.GetSymbolResponse(
            symbol=market_pb2.Symbol.FromString(found[0].SerializeToString())
        ).SerializeToString()

    async def CalcMargin(
        self, request: market_pb2.CalcMarginRequest, context: Context
    ) -> market_pb2.CalcMarginResponse:
        calc = wpb.CalcQuery(
            symbol=_symbol(request.symbol),
            action=_side(request.side),
            volume=_volume(request.volume),
            price_open=_price("price", request.price, required=False),
        )
        answer = await self._ask(request.instance_id, wpb.MarketRequest(calc=calc))
        return market_pb2.CalcMarginResponse(
            margin=answer.calc.value, currency=answer.calc.currency
        )

    async def CalcProfit(
        self, request: market_pb2.CalcProfitRequest, context: Context
    ) -> market_pb2.CalcProfitResponse:
        calc = wpb.CalcQuery(
            symbol=_symbol(request.symbol),
            action=_side(request.side),
            volume=_volume(request.volume),
            price_open=_price("price_open", request.price_open, required=True),
            price_close=_price("price_close", request.price_close, required=True),
            profit=True,
        )
        answer = await self._ask(request.instance_id, wpb.MarketRequest(calc=calc))
        return market_pb2.CalcProfitResponse(
            profit=answer.calc.value, currency=answer.calc.currency
        )

    async def GetTerminalInfo(
        self, request: market_pb2.GetTerminalInfoRequest, context: Context
    ) -> bytes:
        answer = await self._ask(
            request.instance_id, wpb.MarketRequest(terminal=wpb.TerminalQuery())
        )
        return market_pb2.GetTerminalInfoResponse(
            terminal=market_pb2.TerminalInfo.FromString(answer.terminal.SerializeToString())
        ).SerializeToString()

    async def GetRates(
        self, request: market_pb2.GetRatesRequest, context: Context
    ) -> AsyncIterator[bytes]:
        query = rates_query(request)
        answer = await self._ask(request.instance_id, wpb.MarketRequest(rates=query))
        # Each page is an encoded GetRatesResponse of at most 10,000 bars (RatesPage).
        for page in answer.rates.pages:
            yield page

    async def GetTicks(
        self, request: market_pb2.GetTicksRequest, context: Context
    ) -> AsyncIterator[bytes]:
        query = ticks_query(request)
        answer = await self._ask(request.instance_id, wpb.MarketRequest(ticks=query))
        # Each page is an encoded GetTicksResponse of at most 10,000 ticks (TicksPage).
        for page in answer.ticks.pages:
            yield page

    async def StreamBook(
        self, request: market_pb2.StreamBookRequest, context: Context
    ) -> AsyncIterator[bytes]:
        instance_id = validation.instance_id(request.instance_id)
        key = (instance_id, _symbol(request.symbol))
        # Subscribed before the book is added: the first book the worker sends is not missed.
        sub = self._engine.subscribe(Topic.BOOK, [instance_id], [key[1]], conflate=request.conflate)
        joined = False
        try:
            await self._books.join(key)
            joined = True
            # Each message is one encoded StreamBookResponse (the engine's Book topic), taken
            # as the stream handler takes a Subscription's: one already queued without waiting.
            await context.send_initial_metadata(())
            ready, pull = sub.ready, sub.next
            while True:
                yield ready(MAX_MESSAGE_BYTES) or await pull(MAX_MESSAGE_BYTES)
        finally:
            sub.close()
            if joined:
                self._books.leave(key)
