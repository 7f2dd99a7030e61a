"""MarketDataService: the terminal's symbols, what an order would cost, and the terminal's
own state, asked of the instance's worker (docs/market-data.md).

Each call becomes a ``MarketRequest`` the engine numbers and passes to the worker; the
worker's ``MarketAnswer`` carries a gRPC code (NOT_FOUND for an unknown symbol, ...) or the
answer, whose messages are wire-compatible with the public ones (their bytes are passed on).
"""

from __future__ import annotations

import re

import grpc

from mt5exec.errors import MT5ExecError, invalid
from mt5exec.server.handlers import Context
from mt5exec.server.state import AppState
from mt5exec.services import validation
from mt5exec.terminal.v1 import worker_pb2 as wpb
from mt5exec.v1 import common_pb2, market_pb2

# Not built yet (issue #24): answered UNIMPLEMENTED.
PLANNED: dict[str, int | str] = {"GetRates": 24, "GetTicks": 24, "StreamBook": 24}

# How long a question waits for the terminal.
ANSWER_TIMEOUT_S = 30.0
# symbols_get's group: names, "*" wildcards, "!" exclusions, commas.
_GROUP = re.compile(r"[A-Za-z0-9_.#*!,\-]*")
_SYMBOL = re.compile(r"[A-Za-z0-9_.#\-]{1,64}")
_ACTIONS: dict[int, int] = {common_pb2.SIDE_BUY: 0, common_pb2.SIDE_SELL: 1}


def _symbol(value: str) -> str:
    if not value:
        raise invalid("symbol", "FIELD_REQUIRED", "symbol: required")
    return validation.text("symbol", value, max_length=64, pattern=_SYMBOL)


def _side(value: int) -> int:
    validation.enum("side", value, common_pb2.Side.DESCRIPTOR, unspecified=False)
    return _ACTIONS[value]


def _volume(value: float) -> float:
    if not value > 0:
        raise invalid("volume", "VALUE_OUT_OF_RANGE", "volume: must be more than 0")
    return validation.finite("volume", value, maximum=1e9)


def _price(field: str, value: float, *, required: bool) -> float:
    if required and not value > 0:
        raise invalid(field, "VALUE_OUT_OF_RANGE", f"{field}: must be more than 0")
    return validation.finite(field, value, maximum=1e12)


class MarketDataService:
    def __init__(self, state: AppState) -> None:
        self._engine = state.engine

    async def _ask(self, instance_id: str, request: wpb.MarketRequest) -> wpb.MarketAnswer:
        raw = await self._engine.market_query(
            validation.instance_id(instance_id), request.SerializeToString(), ANSWER_TIMEOUT_S
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
                "SYMBOL_NOT_FOUND",
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
