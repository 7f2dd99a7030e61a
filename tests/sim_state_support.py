"""Helpers of the simulated broker's durable-state tests (test_sim_state*.py): brokers on files,
orders, sessions, crashes and account comparisons."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any, Literal

from mt5exec.sim import DEFAULT_SYMBOLS
from mt5exec.sim.broker import (
    ORDER_TYPE_BUY,
    ORDER_TYPE_SELL,
    TRADE_RETCODE_DONE,
    TRADE_RETCODE_PLACED,
    SimBroker,
    SimConfig,
)
from mt5exec.terminal.v1 import worker_pb2 as pb

NOW = 1_700_000_000.0


def config(margin_mode: Literal["hedging", "netting"] = "hedging", **kw: Any) -> SimConfig:
    kw.setdefault("symbols", ["EURUSD", "USDJPY", "XAUUSD"])
    kw.setdefault("initial_balance", 1_000_000.0)
    return SimConfig(margin_mode=margin_mode, **kw)


def open_broker(path: Path, cfg: SimConfig | None = None) -> SimBroker:
    return SimBroker.open(cfg or config(), path, clock=lambda: NOW)


def market(
    symbol: str = "EURUSD", side: int = ORDER_TYPE_BUY, volume: float = 0.1, **kw: Any
) -> pb.OrderRequest:
    return pb.OrderRequest(action=1, symbol=symbol, type=side, volume=volume, **kw)


def trade(broker: SimBroker, req: pb.OrderRequest) -> pb.OrderResult:
    out = broker.send(req)
    assert out.result.retcode == TRADE_RETCODE_DONE, out.result.comment
    return out.result


def stops(broker: SimBroker, symbol: str, buy: bool, distance: int = 500) -> tuple[float, float]:
    """Valid (sl, tp) ``distance`` points from the price a position of that side closes at."""
    bid, ask, _ = broker.quote(symbol)
    point = DEFAULT_SYMBOLS[symbol].point
    digits = DEFAULT_SYMBOLS[symbol].digits
    if buy:
        return round(bid - distance * point, digits), round(bid + distance * point, digits)
    return round(ask + distance * point, digits), round(ask - distance * point, digits)


def pending(broker: SimBroker, symbol: str, otype: int, **kw: Any) -> pb.OrderRequest:
    """A valid pending order of ``otype`` 300 points away from the market."""
    bid, ask, _ = broker.quote(symbol)
    spec = DEFAULT_SYMBOLS[symbol]
    away = 300 * spec.point
    price = {2: ask - away, 3: bid + away, 4: ask + away, 5: bid - away, 6: ask + away}.get(
        otype, bid - away
    )
    kw.setdefault("volume", 0.1)
    if otype in (6, 7):
        kw.setdefault("stoplimit", round(price - away / 3 if otype == 6 else price + away / 3, 5))
    return pb.OrderRequest(
        action=5, symbol=symbol, type=otype, price=round(price, spec.digits), **kw
    )


def session(broker: SimBroker, n: int = 12, seed: int = 0) -> list[pb.OrderResult]:
    """A mix of ticks, opens, partial and full closes (and netting adds/reversals), pending
    orders placed, modified and cancelled, position stops set."""
    rnd = random.Random(seed)
    results: list[pb.OrderResult] = []
    symbols = broker.symbols
    netting = broker.config.margin_mode == "netting"
    for i in range(n):
        for s in symbols:
            for _ in range(rnd.randrange(0, 30)):
                broker.advance(s)
        broker.take_activity()
        positions = list(broker.positions_snapshot().positions)
        orders = list(broker.orders_snapshot().orders)
        roll = rnd.random()
        if positions and roll < 0.3:
            pos = rnd.choice(positions)
            volume = pos.volume if rnd.random() < 0.5 else round(pos.volume / 2, 2) or pos.volume
            req = market(
                pos.symbol,
                ORDER_TYPE_SELL if pos.type == 0 else ORDER_TYPE_BUY,
                volume,
                position=pos.ticket,
                request_id=i + 1,
            )
        elif positions and roll < 0.4:
            pos = rnd.choice(positions)
            sl, tp = stops(broker, pos.symbol, pos.type == 0, rnd.choice((400, 600)))
            req = pb.OrderRequest(
                action=6, symbol=pos.symbol, position=pos.ticket, sl=sl, tp=tp, request_id=i + 1
            )
        elif roll < 0.55:
            symbol = rnd.choice(symbols)
            otype = rnd.randrange(2, 8)
            req = pending(
                broker, symbol, otype, request_id=i + 1, comment=f"p{i}", magic=rnd.randrange(99)
            )
        elif orders and roll < 0.65:
            o = rnd.choice(orders)
            if rnd.random() < 0.5:
                req = pb.OrderRequest(action=8, order=o.ticket, request_id=i + 1)
            else:
                moved = pending(broker, o.symbol, o.type)
                req = pb.OrderRequest(
                    action=7,
                    order=o.ticket,
                    price=moved.price,
                    stoplimit=moved.stoplimit,
                    request_id=i + 1,
                )
        else:
            symbol = rnd.choice(symbols)
            side = rnd.choice((ORDER_TYPE_BUY, ORDER_TYPE_SELL))
            sl = tp = 0.0
            has_position = any(p.symbol == symbol for p in positions)
            if rnd.random() < 0.5 and not (netting and has_position):
                sl, tp = stops(broker, symbol, side == ORDER_TYPE_BUY)
            req = market(
                symbol,
                side,
                rnd.choice((0.01, 0.1, 0.25, 0.5)),
                request_id=i + 1,
                magic=rnd.randrange(1000),
                comment=f"order {i} ü",
                sl=sl,
                tp=tp,
            )
        out = broker.send(req)
        if out.result.retcode == 10025:  # NO_CHANGES: a modification to where it already is
            continue
        assert out.result.retcode in (TRADE_RETCODE_DONE, TRADE_RETCODE_PLACED), out.result
        results.append(out.result)
    return results


def same_account(a: SimBroker, b: SimBroker) -> None:
    assert a.export_state() == b.export_state()
    assert a.orders_snapshot() == b.orders_snapshot()
    assert a.account_snapshot() == b.account_snapshot()
    assert a.positions_snapshot() == b.positions_snapshot()
    assert a.positions_snapshot_bytes() == b.positions_snapshot_bytes()
    for s in a.symbols:
        assert a.quote(s) == b.quote(s)


def crash(broker: SimBroker, *, prices: bool = True) -> None:
    """What kill -9 leaves behind: the journal as written, no final snapshot.

    With ``prices``, the worker's last price checkpoint happened after the last tick (else the
    prices of symbols not traded since their last tick are those of the journal).
    """
    if prices:
        broker.save_prices()
    broker.close(snapshot=False)


def journal_of(path: Path) -> Path:
    """The journal file of the state at ``path``."""
    return path.with_name(path.name + ".log")
