"""Helpers of the simulated broker's order tests (test_sim_orders*.py): a broker on an injectable
clock, request builders and price helpers."""

from __future__ import annotations

from typing import Any, Literal

from mt5exec.sim import SimBroker, SimConfig
from mt5exec.sim.broker import (
    TRADE_ACTION_DEAL,
    TRADE_ACTION_PENDING,
    TRADE_RETCODE_DONE,
    TRADE_RETCODE_PLACED,
)
from mt5exec.sim.symbols import SymbolSettings
from mt5exec.terminal.v1 import worker_pb2 as pb

# Tuesday 2023-11-14 22:13:20 UTC.
NOW = 1_700_000_000.0
PT = 0.00001  # EURUSD point
SPREAD = 10 * PT
Mode = Literal["hedging", "netting"]


class Clock:
    """An injectable server clock."""

    def __init__(self, t: float = NOW) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def make(
    mode: Mode = "hedging",
    *,
    clock: Clock | None = None,
    settings: dict[str, SymbolSettings] | None = None,
    **kw: Any,
) -> SimBroker:
    kw.setdefault("symbols", ["EURUSD"])
    kw.setdefault("initial_balance", 100_000.0)
    cfg = SimConfig(margin_mode=mode, symbol_settings=settings or {}, **kw)
    return SimBroker(cfg, clock=clock or Clock())


def order(action: int = TRADE_ACTION_DEAL, **kw: Any) -> pb.OrderRequest:
    kw.setdefault("symbol", "EURUSD")
    if action in (TRADE_ACTION_DEAL, TRADE_ACTION_PENDING):
        kw.setdefault("volume", 0.1)
    return pb.OrderRequest(action=action, **kw)


def px(value: float) -> float:
    return round(value, 5)


def bid_ask(b: SimBroker) -> tuple[float, float]:
    bid, ask, _ = b.quote("EURUSD")
    return bid, ask


def place(b: SimBroker, otype: int, price: float, **kw: Any) -> pb.OrderResult:
    out = b.send(order(TRADE_ACTION_PENDING, type=otype, price=px(price), **kw))
    assert out.result.retcode == TRADE_RETCODE_PLACED, out.result.comment
    return out.result


def ok(b: SimBroker, req: pb.OrderRequest) -> pb.OrderResult:
    out = b.send(req)
    assert out.result.retcode in (TRADE_RETCODE_DONE, TRADE_RETCODE_PLACED), out.result.comment
    return out.result


def set_ask(b: SimBroker, ask: float) -> None:
    b.set_price("EURUSD", px(ask - SPREAD))


def states(b: SimBroker) -> list[tuple[int, int]]:
    """(ticket, state) of the order updates the broker made on its own since the last call."""
    act = b.take_activity()
    return [] if act is None else [(u.order.ticket, u.order.state) for u in act.order_updates]
