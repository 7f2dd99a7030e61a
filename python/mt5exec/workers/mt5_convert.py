"""MetaTrader5 result rows (AccountInfo, TradePosition, TradeOrder, TradeDeal) turned into the
worker protocol's messages, and the keys that tell when they changed.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from mt5exec.terminal.v1 import worker_pb2 as pb
from mt5exec.workers.protocol import encode_frame

log = logging.getLogger("mt5exec.workers.mt5")


def now_msc() -> int:
    return int(time.time() * 1000.0)


def account_proto(info: Any) -> pb.AccountSnapshot:
    return pb.AccountSnapshot(
        login=info.login,
        currency=info.currency,
        balance=info.balance,
        equity=info.equity,
        margin=info.margin,
        margin_free=info.margin_free,
        margin_level=info.margin_level,
        leverage=info.leverage,
        profit=info.profit,
        margin_mode=info.margin_mode,
        server=info.server,
        time_msc=now_msc(),
    )


def position_proto(p: Any) -> pb.Position:
    return pb.Position(
        ticket=p.ticket,
        symbol=p.symbol,
        type=p.type,
        volume=p.volume,
        price_open=p.price_open,
        price_current=p.price_current,
        sl=p.sl,
        tp=p.tp,
        profit=p.profit,
        swap=p.swap,
        time_msc=p.time_msc,
        magic=p.magic,
        comment=p.comment,
    )


def order_proto(o: Any) -> pb.OrderInfo:
    return pb.OrderInfo(
        ticket=o.ticket,
        symbol=o.symbol,
        type=o.type,
        state=o.state,
        volume_initial=o.volume_initial,
        volume_current=o.volume_current,
        price_open=o.price_open,
        price_stoplimit=o.price_stoplimit,
        sl=o.sl,
        tp=o.tp,
        price_current=o.price_current,
        type_time=o.type_time,
        time_expiration=o.time_expiration,
        type_filling=o.type_filling,
        magic=o.magic,
        comment=o.comment,
        time_setup_msc=o.time_setup_msc,
        time_done_msc=o.time_done_msc,
        position_id=o.position_id,
    )


def deal_proto(d: Any, request_id: int = 0) -> pb.DealReport:
    return pb.DealReport(
        ticket=d.ticket,
        order=d.order,
        position_id=d.position_id,
        symbol=d.symbol,
        type=d.type,
        entry=d.entry,
        volume=d.volume,
        price=d.price,
        profit=d.profit,
        commission=d.commission,
        swap=d.swap,
        magic=d.magic,
        comment=d.comment,
        time_msc=d.time_msc,
        request_id=request_id,
        reason=d.reason,
    )


def row_value(row: Any, name: str) -> Any:
    """A field of a tick: a Tick named tuple (attribute) or a numpy record (item)."""
    try:
        return getattr(row, name)
    except AttributeError:
        return row[name]


def position_key(p: Any) -> tuple[Any, ...]:
    # Not price_current/profit: they move with every tick and travel in the account.
    return (p.ticket, p.type, p.volume, p.price_open, p.sl, p.tp)


def order_key(o: Any) -> tuple[Any, ...]:
    return (
        o.ticket,
        o.type,
        o.state,
        o.volume_current,
        o.price_open,
        o.price_stoplimit,
        o.sl,
        o.tp,
        o.type_time,
        o.time_expiration,
    )


def account_key(a: pb.AccountSnapshot) -> tuple[Any, ...]:
    return (a.balance, a.equity, a.margin, a.margin_free, a.profit, a.leverage, a.margin_mode)


def worker_frame(**body: Any) -> bytes:
    return encode_frame(pb.WorkerFrame(**body))
