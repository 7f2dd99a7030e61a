"""Property test of the simulated broker's order lifecycle.

Random sequences of orders placed, modified, cancelled, market orders, stops, price jumps,
clock steps and margin checks, on hedging and netting accounts, with and without limited
liquidity, must never produce an illegal ORDER_STATE transition or a negative volume; the
account equation (equity = balance + floating profit) must hold after every step; and the
journal must restore exactly the account the broker ended with.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.profiles import examples

from mt5exec.sim import SimBroker, SimConfig
from mt5exec.sim.broker import (
    ACTIVE_STATES,
    LEGAL_TRANSITIONS,
    ORDER_FILLING_FOK,
    ORDER_FILLING_IOC,
    ORDER_FILLING_RETURN,
    TRADE_ACTION_DEAL,
    TRADE_ACTION_MODIFY,
    TRADE_ACTION_PENDING,
    TRADE_ACTION_REMOVE,
    TRADE_ACTION_SLTP,
    Activity,
    SendOutcome,
)
from mt5exec.sim.symbols import SymbolSettings
from mt5exec.terminal.v1 import worker_pb2 as pb

PT = 0.00001
NOW = 1_700_000_000.0

place = st.tuples(
    st.just("place"),
    st.integers(2, 7),  # order type
    st.integers(1, 50),  # points away from the market
    st.sampled_from([0.1, 0.3, 0.5, 1.0]),
    st.sampled_from([ORDER_FILLING_FOK, ORDER_FILLING_IOC, ORDER_FILLING_RETURN]),
    st.booleans(),  # with stops
    st.integers(0, 2),  # GTC, DAY, SPECIFIED
)
market = st.tuples(
    st.just("market"),
    st.integers(0, 1),
    st.sampled_from([0.1, 0.4, 0.9]),
    st.sampled_from([ORDER_FILLING_FOK, ORDER_FILLING_IOC, ORDER_FILLING_RETURN]),
    st.booleans(),
)
modify = st.tuples(st.just("modify"), st.integers(0, 5), st.integers(1, 120))
cancel = st.tuples(st.just("cancel"), st.integers(0, 5))
close = st.tuples(st.just("close"), st.integers(0, 5), st.booleans())
sltp = st.tuples(st.just("sltp"), st.integers(0, 5), st.integers(5, 150))
jump = st.tuples(st.just("jump"), st.integers(-90, 90))
tick = st.tuples(st.just("tick"), st.integers(1, 30))
clock = st.tuples(st.just("clock"), st.integers(1, 40_000))
margin = st.tuples(st.just("margin"))
# Placements and price jumps are listed twice: they are what makes orders fire.
steps = st.lists(
    st.one_of(place, place, market, modify, cancel, close, sltp, jump, jump, tick, clock, margin),
    min_size=10,
    max_size=80,
)


class Checker:
    """Follows every order's state through the updates and checks each transition."""

    def __init__(self) -> None:
        self.state: dict[int, int] = {}

    def see(self, updates: list[pb.OrderUpdate]) -> None:
        for u in updates:
            o = u.order
            before = self.state.get(o.ticket)
            assert o.state in LEGAL_TRANSITIONS[before], (o.ticket, before, o.state)
            assert o.volume_current >= 0.0
            assert o.volume_current <= o.volume_initial + 1e-9
            self.state[o.ticket] = o.state

    def outcome(self, out: SendOutcome | Activity | None) -> None:
        if out is not None:
            self.see(out.order_updates)
            for d in out.deals:
                assert d.volume > 0.0


def check_account(b: SimBroker) -> None:
    account = b.account_snapshot()
    positions = b.positions_snapshot().positions
    floating = sum(p.profit for p in positions)
    # Positions' profits are rounded one by one, the account's floating profit once.
    assert abs(account.equity - (account.balance + floating)) <= 0.01 * (len(positions) + 1)
    assert abs(account.profit - floating) <= 0.01 * (len(positions) + 1)
    assert all(p.volume > 0.0 for p in positions)
    for o in b.orders_snapshot().orders:
        assert o.state in ACTIVE_STATES
        assert 0.0 < o.volume_current <= o.volume_initial + 1e-9


def run(b: SimBroker, clock: list[float], plan: list[tuple[Any, ...]], checker: Checker) -> None:
    for step in plan:
        kind = step[0]
        bid, ask, _ = b.quote("EURUSD")
        orders = list(b.orders_snapshot().orders)
        positions = list(b.positions_snapshot().positions)
        out: SendOutcome | None = None
        if kind == "place":
            _, otype, away, volume, filling, with_stops, type_time = step
            buy = otype in (2, 4, 6)
            below = otype in (2, 5, 7)
            ref = ask if buy else bid
            price = round(ref - away * PT if below else ref + away * PT, 5)
            stoplimit = 0.0
            if otype in (6, 7):
                stoplimit = round(price - 10 * PT if buy else price + 10 * PT, 5)
            entry = stoplimit or price
            sl = tp = 0.0
            if with_stops:
                sl = round(entry - 60 * PT if buy else entry + 60 * PT, 5)
                tp = round(entry + 60 * PT if buy else entry - 60 * PT, 5)
            out = b.send(
                pb.OrderRequest(
                    action=TRADE_ACTION_PENDING,
                    symbol="EURUSD",
                    type=otype,
                    volume=volume,
                    price=price,
                    stoplimit=stoplimit,
                    sl=sl,
                    tp=tp,
                    type_filling=filling,
                    type_time=type_time,
                    expiration=int(clock[0]) + 3600 if type_time == 2 else 0,
                )
            )
        elif kind == "market":
            _, side, volume, filling, with_stops = step
            sl = tp = 0.0
            if with_stops and not positions:
                sl = round(bid - 80 * PT if side == 0 else ask + 80 * PT, 5)
                tp = round(bid + 80 * PT if side == 0 else ask - 80 * PT, 5)
            out = b.send(
                pb.OrderRequest(
                    action=TRADE_ACTION_DEAL,
                    symbol="EURUSD",
                    type=side,
                    volume=volume,
                    type_filling=filling,
                    sl=sl,
                    tp=tp,
                )
            )
        elif kind == "modify" and orders:
            o = orders[step[1] % len(orders)]
            buy = o.type in (0, 2, 4, 6)
            below = o.type in (2, 5, 7)
            ref = ask if buy else bid
            price = round(ref - step[2] * PT if below else ref + step[2] * PT, 5)
            stoplimit = 0.0
            if o.type in (6, 7):
                stoplimit = round(price - 10 * PT if buy else price + 10 * PT, 5)
            out = b.send(
                pb.OrderRequest(
                    action=TRADE_ACTION_MODIFY, order=o.ticket, price=price, stoplimit=stoplimit
                )
            )
        elif kind == "cancel" and orders:
            o = orders[step[1] % len(orders)]
            out = b.send(pb.OrderRequest(action=TRADE_ACTION_REMOVE, order=o.ticket))
        elif kind == "close" and positions:
            p = positions[step[1] % len(positions)]
            volume = p.volume if step[2] else max(0.1, round(p.volume / 2, 1))
            out = b.send(
                pb.OrderRequest(
                    action=TRADE_ACTION_DEAL,
                    symbol="EURUSD",
                    type=1 - p.type,
                    volume=min(volume, p.volume),
                    position=p.ticket,
                    type_filling=ORDER_FILLING_IOC,
                )
            )
        elif kind == "sltp" and positions:
            p = positions[step[1] % len(positions)]
            d = step[2] * PT
            close_price = bid if p.type == 0 else ask
            out = b.send(
                pb.OrderRequest(
                    action=TRADE_ACTION_SLTP,
                    symbol="EURUSD",
                    position=p.ticket,
                    sl=round(close_price - d if p.type == 0 else close_price + d, 5),
                    tp=round(close_price + d if p.type == 0 else close_price - d, 5),
                )
            )
        elif kind == "jump":
            b.set_price("EURUSD", round(bid + step[1] * PT, 5))
        elif kind == "tick":
            for _ in range(step[1]):
                b.advance("EURUSD")
        elif kind == "clock":
            clock[0] += step[1]
            b.poll()
        elif kind == "margin":
            b.check_margin()
        if out is not None:
            assert out.result.retcode != 10011, out.result.comment  # never a journal error
            checker.outcome(out)
        checker.outcome(b.take_activity())
        check_account(b)


@settings(
    max_examples=examples(200),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    mode=st.sampled_from(["hedging", "netting"]),
    liquidity=st.sampled_from([None, 0.3, 1.0]),
    execution=st.sampled_from(["market", "exchange"]),
    slippage=st.sampled_from([0, 5]),
    balance=st.sampled_from([5_000.0, 1_200.0]),
    plan=steps,
)
def test_order_lifecycle(
    mode: str,
    liquidity: float | None,
    execution: str,
    slippage: int,
    balance: float,
    plan: list[Any],
) -> None:
    clock = [NOW]
    cfg = SimConfig(
        ["EURUSD"],
        initial_balance=balance,
        margin_mode="hedging" if mode == "hedging" else "netting",
        symbol_settings={
            "EURUSD": SymbolSettings(
                liquidity=liquidity, execution=execution, slippage_points=slippage
            )
        },
    )
    checker = Checker()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "sim_state"
        b = SimBroker.open(cfg, path, clock=lambda: clock[0])
        run(b, clock, plan, checker)
        final = b.export_state()
        orders, deals = b.history()
        b.save_prices()
        b.close(snapshot=False)  # as kill -9 leaves it
        restored = SimBroker.open(cfg, path, clock=lambda: clock[0])
        try:
            assert restored.export_state() == final
            assert restored.history() == (orders, deals)
        finally:
            restored.close()
    # The history agrees with what was reported: every order's last reported state.
    last = {o.ticket: o.state for o in orders}
    for ticket, state in checker.state.items():
        assert last.get(ticket) == state, (ticket, state, last.get(ticket))
