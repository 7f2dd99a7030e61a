"""The checks of a trade request, as an MT5 server makes them (see docs/simulated-broker.md):
plain functions of the request, the symbol's market and the clock, raising ``Reject``.

The checks that need the account (margin) live with it (``core``)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

from mt5exec.sim.broker.config import VOLUME_EPS
from mt5exec.sim.broker.outcomes import Reject
from mt5exec.sim.broker.prices import Market
from mt5exec.sim.constants import (
    ORDER_FILLING_BOC,
    ORDER_FILLING_FOK,
    ORDER_FILLING_IOC,
    ORDER_FILLING_RETURN,
    ORDER_TIME_DAY,
    ORDER_TIME_GTC,
    ORDER_TIME_SPECIFIED,
    ORDER_TIME_SPECIFIED_DAY,
    ORDER_TYPE_BUY_LIMIT,
    ORDER_TYPE_BUY_STOP,
    ORDER_TYPE_BUY_STOP_LIMIT,
    ORDER_TYPE_SELL_LIMIT,
    ORDER_TYPE_SELL_STOP_LIMIT,
    PENDING_TYPES,
    TRADE_RETCODE_CLOSE_ONLY,
    TRADE_RETCODE_FROZEN,
    TRADE_RETCODE_INVALID,
    TRADE_RETCODE_INVALID_EXPIRATION,
    TRADE_RETCODE_INVALID_FILL,
    TRADE_RETCODE_INVALID_PRICE,
    TRADE_RETCODE_INVALID_STOPS,
    TRADE_RETCODE_INVALID_VOLUME,
    TRADE_RETCODE_LONG_ONLY,
    TRADE_RETCODE_MARKET_CLOSED,
    TRADE_RETCODE_REQUOTE,
    TRADE_RETCODE_SHORT_ONLY,
    TRADE_RETCODE_TRADE_DISABLED,
)
from mt5exec.sim.symbols import (
    SYMBOL_FILLING_BOC,
    SYMBOL_FILLING_FOK,
    SYMBOL_FILLING_IOC,
    SYMBOL_TRADE_EXECUTION_EXCHANGE,
    SYMBOL_TRADE_MODE_CLOSEONLY,
    SYMBOL_TRADE_MODE_DISABLED,
    SYMBOL_TRADE_MODE_LONGONLY,
    SYMBOL_TRADE_MODE_SHORTONLY,
)
from mt5exec.terminal.v1 import worker_pb2 as pb

if TYPE_CHECKING:
    from mt5exec.sim.broker.records import Order


DAY_S = 86400


def end_of_day(t: float) -> int:
    """The midnight (UTC, epoch seconds) that ends the day holding ``t``."""
    return (int(t) // DAY_S + 1) * DAY_S


def floor_step(volume: float, step: float) -> float:
    return round(math.floor(volume / step + 1e-9) * step, 8)


def market_of(markets: dict[str, Market], req: pb.OrderRequest) -> Market:
    m = markets.get(req.symbol)
    if m is None:
        raise Reject(TRADE_RETCODE_INVALID, f"unknown symbol {req.symbol!r}")
    return m


def volume_of(m: Market, volume: float) -> float:
    spec = m.spec
    # `not (volume > 0)` also catches NaN.
    if not (volume > 0.0) or math.isinf(volume):
        raise Reject(TRADE_RETCODE_INVALID_VOLUME, f"invalid volume {volume}")
    if volume < spec.volume_min - VOLUME_EPS or volume > spec.volume_max + VOLUME_EPS:
        raise Reject(
            TRADE_RETCODE_INVALID_VOLUME,
            f"volume {volume} outside [{spec.volume_min}, {spec.volume_max}]",
        )
    steps = volume / spec.volume_step
    whole = round(steps)
    if abs(steps - whole) > 1e-6:
        raise Reject(
            TRADE_RETCODE_INVALID_VOLUME,
            f"volume {volume} is not a multiple of {spec.volume_step}",
        )
    return round(whole * spec.volume_step, 8)


def check_open(m: Market, clock: Callable[[], float]) -> None:
    """Trading allowed on ``m`` at all: not disabled, inside a session."""
    if m.spec.trade_mode == SYMBOL_TRADE_MODE_DISABLED:
        raise Reject(TRADE_RETCODE_TRADE_DISABLED, "trading is disabled")
    sessions = m.rules.sessions
    if not sessions.always and not sessions.is_open(clock()):
        raise Reject(TRADE_RETCODE_MARKET_CLOSED, f"market closed ({sessions.name} sessions)")


def check_trade_mode(m: Market, buy: bool, added: float, clock: Callable[[], float]) -> None:
    check_open(m, clock)
    if added > 0.0:
        trade_mode = m.spec.trade_mode
        if trade_mode == SYMBOL_TRADE_MODE_CLOSEONLY:
            raise Reject(TRADE_RETCODE_CLOSE_ONLY, "only closing is allowed")
        if trade_mode == SYMBOL_TRADE_MODE_LONGONLY and not buy:
            raise Reject(TRADE_RETCODE_LONG_ONLY, "only buying is allowed")
        if trade_mode == SYMBOL_TRADE_MODE_SHORTONLY and buy:
            raise Reject(TRADE_RETCODE_SHORT_ONLY, "only selling is allowed")


def check_filling(m: Market, filling: int, *, pending: bool, limit: bool) -> None:
    """MT5's filling rules (see docs/simulated-broker.md)."""
    flags = m.spec.filling_mode
    if filling == ORDER_FILLING_FOK:
        ok = bool(flags & SYMBOL_FILLING_FOK)
    elif filling == ORDER_FILLING_IOC:
        ok = bool(flags & SYMBOL_FILLING_IOC)
    elif filling == ORDER_FILLING_RETURN:
        ok = pending or m.rules.execution == SYMBOL_TRADE_EXECUTION_EXCHANGE
    elif filling == ORDER_FILLING_BOC:
        ok = limit and bool(flags & SYMBOL_FILLING_BOC)
    else:
        ok = False
    if not ok:
        raise Reject(TRADE_RETCODE_INVALID_FILL, f"filling type {filling} not allowed")


def check_stops(m: Market, buy: bool, ref_pts: int, sl: float, tp: float) -> None:
    """SL below and TP above ``ref_pts`` for a buy (the other way round for a sell), each
    at least the symbol's stops level away (and never on it)."""
    level = m.spec.stops_level
    for what, value, below in (("stop loss", sl, buy), ("take profit", tp, not buy)):
        if not value:
            continue
        if not math.isfinite(value) or value < 0.0:
            raise Reject(TRADE_RETCODE_INVALID_STOPS, f"invalid {what} {value}")
        gap = ref_pts - m.pts(value) if below else m.pts(value) - ref_pts
        if gap <= 0 or gap < level:
            ref = ref_pts / m.scale
            raise Reject(
                TRADE_RETCODE_INVALID_STOPS,
                f"{what} {value} must be {'below' if below else 'above'} {ref} "
                f"by at least {max(level, 1)} points",
            )


def check_pending_price(m: Market, otype: int, price: float, stoplimit: float) -> tuple[int, int]:
    """``(price_pts, stoplimit_pts)`` of a pending order, on the right side of the market
    and at least the stops level away from it."""
    if not math.isfinite(price) or price <= 0.0:
        raise Reject(TRADE_RETCODE_INVALID_PRICE, f"invalid price {price}")
    pts = m.pts(price)
    if otype == ORDER_TYPE_BUY_LIMIT:
        gap, where = m.ask_pts - pts, "below the ask"
    elif otype == ORDER_TYPE_SELL_LIMIT:
        gap, where = pts - m.bid_pts, "above the bid"
    elif otype in (ORDER_TYPE_BUY_STOP, ORDER_TYPE_BUY_STOP_LIMIT):
        gap, where = pts - m.ask_pts, "above the ask"
    else:
        gap, where = m.bid_pts - pts, "below the bid"
    level = m.spec.stops_level
    if gap <= 0 or gap < level:
        raise Reject(
            TRADE_RETCODE_INVALID_PRICE,
            f"price {price} must be {where} by at least {max(level, 1)} points",
        )
    limit_pts = 0
    if otype in (ORDER_TYPE_BUY_STOP_LIMIT, ORDER_TYPE_SELL_STOP_LIMIT):
        if not math.isfinite(stoplimit) or stoplimit <= 0.0:
            raise Reject(TRADE_RETCODE_INVALID_PRICE, f"invalid stop-limit price {stoplimit}")
        limit_pts = m.pts(stoplimit)
        # The limit order it turns into must not be marketable the moment it exists.
        buy = otype == ORDER_TYPE_BUY_STOP_LIMIT
        if (limit_pts > pts) if buy else (limit_pts < pts):
            raise Reject(
                TRADE_RETCODE_INVALID_PRICE,
                f"stop-limit price {stoplimit} must be "
                f"{'at or below' if buy else 'at or above'} the stop price {price}",
            )
    return pts, limit_pts


def check_frozen(o: Order) -> None:
    """MT5's freeze level: no change to an order this close to its activation price."""
    m = o.market
    level = m.spec.freeze_level
    if level <= 0 or o.type not in PENDING_TYPES:
        return
    pts = m.pts(o.price_open)
    t = o.type
    if t == ORDER_TYPE_BUY_LIMIT:
        gap = m.ask_pts - pts
    elif t == ORDER_TYPE_SELL_LIMIT:
        gap = pts - m.bid_pts
    elif t in (ORDER_TYPE_BUY_STOP, ORDER_TYPE_BUY_STOP_LIMIT):
        gap = pts - m.ask_pts
    else:
        gap = m.bid_pts - pts
    if gap <= level:
        raise Reject(
            TRADE_RETCODE_FROZEN,
            f"order {o.ticket} is within the freeze level ({level} points) of the market",
        )


def check_deviation(req: pb.OrderRequest, m: Market, price_pts: int, shift: int) -> None:
    """Instant execution: a fill further than ``deviation`` points from the request price
    is a requote, offering the market moved by ``shift`` points."""
    if req.price > 0.0 and abs(price_pts - m.pts(req.price)) > req.deviation:
        raise Reject(
            TRADE_RETCODE_REQUOTE,
            "requote",
            (m.bid_pts + shift) / m.scale,
            (m.ask_pts + shift) / m.scale,
        )


def expiration_of(type_time: int, expiration: int, now: float) -> int:
    """Epoch seconds at which a pending order expires (0: never); checks the request."""
    if type_time == ORDER_TIME_GTC:
        return 0
    if type_time == ORDER_TIME_DAY:
        return end_of_day(now)
    if type_time == ORDER_TIME_SPECIFIED:
        if expiration <= now:
            raise Reject(
                TRADE_RETCODE_INVALID_EXPIRATION,
                f"expiration {expiration} is not in the future"
                if expiration
                else "no expiration given",
            )
        return expiration
    if type_time == ORDER_TIME_SPECIFIED_DAY:
        end = end_of_day(expiration) if expiration > 0 else 0
        if end <= now:
            raise Reject(
                TRADE_RETCODE_INVALID_EXPIRATION,
                f"expiration day of {expiration} is over" if expiration else "no expiration given",
            )
        return end
    raise Reject(TRADE_RETCODE_INVALID_EXPIRATION, f"unknown expiration type {type_time}")
