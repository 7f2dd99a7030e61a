"""Argument checks of ``mt5exec.mt5.simterminal``, with the MetaTrader5 package's messages, and
the filters of ``positions_get``, ``orders_get`` and ``history_*_get``.

A call that refuses its arguments raises ``Refused``; simterminal's call wrapper turns it into
the package's convention (``None`` or ``False``, and the code and message in ``last_error()``).
"""

from __future__ import annotations

import calendar
import math
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any, NoReturn, Protocol, TypeVar

from mt5exec.mt5 import constants as c
from mt5exec.mt5.simterminal_types import TradeRequest
from mt5exec.sim.bars import TIMEFRAMES
from mt5exec.sim.market import group_matcher
from mt5exec.terminal.v1 import worker_pb2 as pb


class Refused(Exception):
    """The call fails with ``code`` (and ``message``, default the code's description)."""

    def __init__(self, code: int, message: str | None = None) -> None:
        super().__init__(code, message)
        self.code = code
        self.message = message


def invalid(message: str = "Invalid arguments") -> NoReturn:
    raise Refused(c.RES_E_INVALID_PARAMS, message)


def known_symbol(specs: Mapping[str, object], symbol: Any) -> str:
    """The 1st argument, a symbol of the terminal (RES_E_FAIL for an unknown one)."""
    if not isinstance(symbol, str):
        invalid("Invalid 1st unnamed argument")
    if symbol not in specs:
        raise Refused(c.RES_E_FAIL)
    return symbol


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def seconds(value: Any) -> float | None:
    """A date argument in seconds since the epoch: a datetime (naive = UTC) or a number."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            return calendar.timegm(value.timetuple()) + value.microsecond / 1e6
        return value.timestamp()
    if is_number(value):
        return float(value)
    return None


def timeframe_minutes(timeframe: Any) -> int | None:
    """An MT5 TIMEFRAME_* value as minutes (W1 10080, MN1 43200), None if it is none."""
    if not is_int(timeframe):
        return None
    unit, n = timeframe & 0xC000, timeframe & 0x3FFF
    minutes = {0: n, 0x4000: n * 60, 0x8000: 10080 * n, 0xC000: 43200 * n}[unit]
    return minutes if minutes in TIMEFRAMES else None


def order_type(action: Any) -> int:
    """The 1st argument of ``order_calc_*``: ORDER_TYPE_BUY or ORDER_TYPE_SELL."""
    if not is_int(action) or action not in (c.ORDER_TYPE_BUY, c.ORDER_TYPE_SELL):
        invalid("Invalid 1st unnamed argument")
    return int(action)


def positive(value: Any, nth: str) -> float:
    """A volume or price argument (the ``nth`` unnamed one): a number above 0."""
    if not is_number(value) or not value > 0:
        invalid(f"Invalid {nth} unnamed argument")
    return float(value)


_REQUEST_INTS = (
    "action",
    "magic",
    "order",
    "deviation",
    "type",
    "type_filling",
    "type_time",
    "expiration",
    "position",
    "position_by",
)
_REQUEST_FLOATS = ("volume", "price", "stoplimit", "sl", "tp")
_UINT64 = 2**64


def parse_request(request: Any) -> TradeRequest:
    """The request dict of ``order_send``/``order_check`` as a ``TradeRequest``."""
    if not isinstance(request, dict):
        invalid("Invalid 1st unnamed argument")
    values: dict[str, Any] = {}
    if "action" not in request:
        invalid('Invalid "action" argument')
    for key in _REQUEST_INTS:
        if key in request:
            v = request[key]
            if isinstance(v, datetime) and key == "expiration":
                v = int(seconds(v) or 0)
            if not is_int(v) or not 0 <= v < _UINT64:
                invalid(f'Invalid "{key}" argument')
            values[key] = v
    for key in _REQUEST_FLOATS:
        if key in request:
            v = request[key]
            if not is_number(v) or not math.isfinite(v):
                invalid(f'Invalid "{key}" argument')
            values[key] = float(v)
    for key in ("symbol", "comment"):
        if key in request:
            v = request[key]
            if not isinstance(v, str):
                invalid(f'Invalid "{key}" argument')
            values[key] = v
    return TradeRequest(**values)


def to_proto(req: TradeRequest, request_id: int) -> pb.OrderRequest:
    """The request as the simulated broker takes it."""
    return pb.OrderRequest(
        request_id=request_id,
        action=req.action,
        symbol=req.symbol,
        volume=req.volume,
        type=req.type,
        price=req.price,
        stoplimit=req.stoplimit,
        sl=req.sl,
        tp=req.tp,
        deviation=req.deviation,
        type_filling=req.type_filling,
        type_time=req.type_time,
        expiration=req.expiration,
        position=req.position,
        position_by=req.position_by,
        order=req.order,
        magic=req.magic,
        comment=req.comment,
    )


class Item(Protocol):
    """What the filters of positions_get, orders_get and history_*_get look at."""

    @property
    def ticket(self) -> int: ...
    @property
    def symbol(self) -> str: ...


class HistoryItem(Item, Protocol):
    @property
    def position_id(self) -> int: ...


_I = TypeVar("_I", bound=Item)
_H = TypeVar("_H", bound=HistoryItem)


def filter_open(items: list[_I], symbol: Any, group: Any, ticket: Any) -> tuple[_I, ...]:
    if symbol is not None and not isinstance(symbol, str):
        invalid('Invalid "symbol" argument')
    if group is not None and not isinstance(group, str):
        invalid('Invalid "group" argument')
    if ticket is not None and not is_int(ticket):
        invalid('Invalid "ticket" argument')
    match = group_matcher(group) if group is not None else None
    return tuple(
        item
        for item in items
        if (symbol is None or item.symbol == symbol)
        and (match is None or match(item.symbol))
        and (ticket is None or item.ticket == ticket)
    )


def filter_history(
    items: Iterable[_H],
    time_of: Callable[[_H], int],
    date_from: Any,
    date_to: Any,
    group: Any = None,
    ticket: Any = None,
    position: Any = None,
) -> tuple[_H, ...]:
    for key, value in (("ticket", ticket), ("position", position)):
        if value is not None and not is_int(value):
            invalid(f'Invalid "{key}" argument')
    if group is not None and not isinstance(group, str):
        invalid('Invalid "group" argument')
    if ticket is not None:
        return tuple(i for i in items if i.ticket == ticket)
    if position is not None:
        return tuple(i for i in items if i.position_id == position)
    start = seconds(date_from)
    end = seconds(date_to)
    if start is None or end is None:
        invalid("Invalid arguments")
    lo, hi = int(start * 1000), int(end * 1000)
    match = group_matcher(group) if group is not None else None
    return tuple(i for i in items if lo <= time_of(i) <= hi and (match is None or match(i.symbol)))
