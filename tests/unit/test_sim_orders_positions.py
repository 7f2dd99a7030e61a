"""The simulated broker as an MT5 trade server: positions (SL/TP, SLTP, close by), stop-out and
margin call, filling and liquidity, requotes and slippage, sessions, order_check and
reconciliation. Pending orders and their checks: test_sim_orders.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.sim_orders_support import (
    NOW,
    PT,
    Clock,
    Mode,
    bid_ask,
    make,
    ok,
    order,
    place,
    px,
    set_ask,
    states,
)

from mt5exec.sim import SimBroker, SimConfig
from mt5exec.sim.broker import (
    DEAL_ENTRY_OUT,
    DEAL_ENTRY_OUT_BY,
    DEAL_REASON_SL,
    DEAL_REASON_SO,
    DEAL_REASON_TP,
    ORDER_FILLING_BOC,
    ORDER_FILLING_FOK,
    ORDER_FILLING_IOC,
    ORDER_FILLING_RETURN,
    ORDER_STATE_CANCELED,
    ORDER_STATE_FILLED,
    ORDER_STATE_PARTIAL,
    ORDER_STATE_PLACED,
    ORDER_STATE_REJECTED,
    ORDER_TYPE_BUY,
    ORDER_TYPE_BUY_LIMIT,
    ORDER_TYPE_BUY_STOP,
    ORDER_TYPE_CLOSE_BY,
    ORDER_TYPE_SELL,
    ORDER_TYPE_SELL_LIMIT,
    ORDER_TYPE_SELL_STOP,
    TRADE_ACTION_CLOSE_BY,
    TRADE_ACTION_MODIFY,
    TRADE_ACTION_PENDING,
    TRADE_ACTION_REMOVE,
    TRADE_ACTION_SLTP,
    TRADE_RETCODE_CHECK_OK,
    TRADE_RETCODE_DONE,
    TRADE_RETCODE_DONE_PARTIAL,
    TRADE_RETCODE_FROZEN,
    TRADE_RETCODE_INVALID,
    TRADE_RETCODE_INVALID_FILL,
    TRADE_RETCODE_INVALID_STOPS,
    TRADE_RETCODE_MARKET_CLOSED,
    TRADE_RETCODE_NO_CHANGES,
    TRADE_RETCODE_NO_MONEY,
    TRADE_RETCODE_PLACED,
    TRADE_RETCODE_POSITION_CLOSED,
    TRADE_RETCODE_REJECT,
    TRADE_RETCODE_REQUOTE,
)
from mt5exec.sim.symbols import SymbolSettings
from mt5exec.terminal.v1 import worker_pb2 as pb

# -- positions: SL/TP, SLTP, close by ------------------------------------------------------------


@pytest.mark.parametrize("mode", ["hedging", "netting"])
@pytest.mark.parametrize(("side", "hit"), [(0, "sl"), (0, "tp"), (1, "sl"), (1, "tp")])
def test_sl_and_tp_close_positions_with_their_reason(mode: Mode, side: int, hit: str) -> None:
    b = make(mode)
    bid, ask = bid_ask(b)
    buy = side == ORDER_TYPE_BUY
    sl = px(bid - 100 * PT) if buy else px(ask + 100 * PT)
    tp = px(bid + 100 * PT) if buy else px(ask - 100 * PT)
    res = ok(b, order(type=side, sl=sl, tp=tp, volume=0.2, magic=9))
    balance = b.balance
    # A buy closes at the bid, a sell at the ask.
    level = sl if hit == "sl" else tp
    if buy:
        b.set_price("EURUSD", level)
    else:
        set_ask(b, level)
    act = b.take_activity()
    assert act is not None
    (deal,) = act.deals
    assert deal.reason == (DEAL_REASON_SL if hit == "sl" else DEAL_REASON_TP)
    assert (deal.position_id, deal.entry, deal.request_id, deal.magic) == (
        res.position,
        DEAL_ENTRY_OUT,
        0,
        9,
    )
    assert deal.price == level
    assert deal.comment == f"[{hit} {level:.5f}]"
    assert (deal.profit < 0) == (hit == "sl")
    (update,) = act.order_updates
    assert (update.order.ticket, update.order.state) == (deal.order, ORDER_STATE_FILLED)
    assert update.order.type == (ORDER_TYPE_SELL if buy else ORDER_TYPE_BUY)
    assert not b.has_positions
    assert b.balance == round(balance + deal.profit, 2)


def test_sltp_action_sets_position_stops() -> None:
    b = make()
    bid, _ask = bid_ask(b)
    res = ok(b, order(type=ORDER_TYPE_BUY))
    sl, tp = px(bid - 50 * PT), px(bid + 50 * PT)
    out = b.send(order(TRADE_ACTION_SLTP, position=res.position, sl=sl, tp=tp, request_id=4))
    assert (out.result.retcode, out.result.position) == (TRADE_RETCODE_DONE, res.position)
    assert out.positions_changed and not out.deals and not out.order_updates
    (pos,) = b.positions_snapshot().positions
    assert (pos.sl, pos.tp) == (sl, tp)
    again = b.send(order(TRADE_ACTION_SLTP, position=res.position, sl=sl, tp=tp))
    assert again.result.retcode == TRADE_RETCODE_NO_CHANGES
    wrong = b.send(order(TRADE_ACTION_SLTP, position=res.position, sl=px(bid + PT)))
    assert wrong.result.retcode == TRADE_RETCODE_INVALID_STOPS
    gone = b.send(order(TRADE_ACTION_SLTP, position=999, sl=sl))
    assert gone.result.retcode == TRADE_RETCODE_POSITION_CLOSED
    # The new stop is live.
    b.set_price("EURUSD", sl)
    act = b.take_activity()
    assert act is not None and [d.reason for d in act.deals] == [DEAL_REASON_SL]


def test_sltp_on_netting_by_symbol_and_freeze_level() -> None:
    b = make("netting", settings={"EURUSD": SymbolSettings(freeze_level=20)})
    _bid, ask = bid_ask(b)
    ok(b, order(type=ORDER_TYPE_SELL))
    sl = px(ask + 15 * PT)
    ok(b, order(TRADE_ACTION_SLTP, sl=sl))
    (pos,) = b.positions_snapshot().positions
    assert pos.sl == sl
    # The stop is within the freeze level of the ask now: it cannot be moved.
    frozen = b.send(order(TRADE_ACTION_SLTP, sl=px(ask + 60 * PT)))
    assert frozen.result.retcode == TRADE_RETCODE_FROZEN


def test_close_by() -> None:
    b = make()
    buy = ok(b, order(type=ORDER_TYPE_BUY, volume=0.3))
    b.set_price("EURUSD", px(b.quote("EURUSD")[0] + 40 * PT))
    sell = ok(b, order(type=ORDER_TYPE_SELL, volume=0.1))
    balance = b.balance
    out = b.send(
        order(
            TRADE_ACTION_CLOSE_BY,
            position=buy.position,
            position_by=sell.position,
            request_id=8,
            comment="by",
        )
    )
    res = out.result
    assert (res.retcode, res.volume, res.price) == (TRADE_RETCODE_DONE, 0.1, sell.price)
    first, second = out.deals
    assert (first.entry, second.entry) == (DEAL_ENTRY_OUT_BY, DEAL_ENTRY_OUT_BY)
    assert (first.position_id, second.position_id) == (buy.position, sell.position)
    assert first.profit == round((sell.price - buy.price) * 0.1 * 100_000, 2)
    assert second.profit == 0.0
    assert b.balance == round(balance + first.profit, 2)
    (update,) = out.order_updates
    assert (update.order.type, update.order.state, update.request_id) == (
        ORDER_TYPE_CLOSE_BY,
        ORDER_STATE_FILLED,
        8,
    )
    (left,) = b.positions_snapshot().positions
    assert (left.ticket, left.volume) == (buy.position, pytest.approx(0.2))
    assert (
        b.send(
            order(TRADE_ACTION_CLOSE_BY, position=buy.position, position_by=sell.position)
        ).result.retcode
        == TRADE_RETCODE_POSITION_CLOSED
    )
    netting = make("netting")
    assert netting.send(order(TRADE_ACTION_CLOSE_BY, position=1, position_by=2)).result.retcode == (
        TRADE_RETCODE_INVALID
    )


# -- stop-out and margin call ---------------------------------------------------------------------


def test_margin_call_once_then_stop_out_closes_the_largest_loss_first() -> None:
    b = make(initial_balance=1_000.0, leverage=100, stop_out_level=50.0, margin_call_level=100.0)
    bid, _ask = bid_ask(b)
    small = ok(b, order(type=ORDER_TYPE_BUY, volume=0.2))
    big = ok(b, order(type=ORDER_TYPE_BUY, volume=0.6))
    b.check_margin()
    assert b.take_activity() is None
    # Equity falls under the margin (level < 100 %): one MARGIN_CALL, not one per check.
    events: list[pb.WorkerEvent] = []
    deals: list[pb.DealReport] = []
    price = bid
    while b.has_positions and price > bid - 0.05:
        price = px(price - 10 * PT)
        b.set_price("EURUSD", price)
        b.check_margin()
        act = b.take_activity()
        if act is not None:
            events.extend(act.events)
            deals.extend(act.deals)
            if act.deals:
                break
    assert [e.kind for e in events] == ["MARGIN_CALL"]
    # The first stop-out closes the position with the largest loss.
    assert deals[0].reason == DEAL_REASON_SO
    assert deals[0].position_id == big.position
    assert deals[0].comment.startswith("[so ")
    assert all(d.reason == DEAL_REASON_SO for d in deals)
    if b.has_positions:
        assert [p.ticket for p in b.positions_snapshot().positions] == [small.position]
        assert b.margin_level() >= 50.0


def test_stop_out_on_a_netting_account() -> None:
    b = make("netting", symbols=["EURUSD", "GBPUSD"], initial_balance=1_500.0, stop_out_level=50.0)
    eur = ok(b, order(type=ORDER_TYPE_SELL, volume=0.6))
    gbp = ok(b, order(symbol="GBPUSD", type=ORDER_TYPE_BUY, volume=0.5))
    _, ask = bid_ask(b)
    price = ask
    closed: list[pb.DealReport] = []
    while not closed and price < ask + 0.05:
        price = px(price + 20 * PT)
        set_ask(b, price)
        b.check_margin()
        act = b.take_activity()
        if act is not None:
            closed = list(act.deals)
    # The losing EURUSD short goes first, and that is enough.
    assert [(d.position_id, d.reason) for d in closed] == [(eur.position, DEAL_REASON_SO)]
    assert [p.ticket for p in b.positions_snapshot().positions] == [gbp.position]
    assert b.margin_level() >= 50.0


# -- filling and liquidity -----------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["hedging", "netting"])
def test_filling_modes_follow_the_symbol_and_execution_mode(mode: Mode) -> None:
    b = make(mode, settings={"EURUSD": SymbolSettings(filling_mode=1)})  # FOK only
    _bid, ask = bid_ask(b)
    assert (
        b.send(order(type_filling=ORDER_FILLING_IOC)).result.retcode == TRADE_RETCODE_INVALID_FILL
    )
    # RETURN is for pending orders, and for market orders only on exchange execution.
    assert b.send(order(type_filling=ORDER_FILLING_RETURN)).result.retcode == (
        TRADE_RETCODE_INVALID_FILL
    )
    place(b, ORDER_TYPE_BUY_LIMIT, ask - 50 * PT, type_filling=ORDER_FILLING_RETURN)
    # BOC only for limit orders with the BOC flag.
    boc = order(
        TRADE_ACTION_PENDING,
        type=ORDER_TYPE_BUY_LIMIT,
        price=px(ask - 60 * PT),
        type_filling=ORDER_FILLING_BOC,
    )
    assert b.send(boc).result.retcode == TRADE_RETCODE_INVALID_FILL
    b2 = make(settings={"EURUSD": SymbolSettings(filling_mode=4, execution="exchange")})
    assert b2.send(boc).result.retcode == TRADE_RETCODE_PLACED
    stop_boc = order(
        TRADE_ACTION_PENDING,
        type=ORDER_TYPE_BUY_STOP,
        price=px(ask + 60 * PT),
        type_filling=ORDER_FILLING_BOC,
    )
    assert b2.send(stop_boc).result.retcode == TRADE_RETCODE_INVALID_FILL
    assert b2.send(order(type_filling=ORDER_FILLING_RETURN)).result.retcode == TRADE_RETCODE_DONE


@pytest.mark.parametrize("mode", ["hedging", "netting"])
def test_ioc_fills_what_is_available_and_cancels_the_rest(mode: Mode) -> None:
    b = make(mode, settings={"EURUSD": SymbolSettings(liquidity=0.5)})
    out = b.send(order(type=0, volume=1.2, type_filling=ORDER_FILLING_IOC, comment="ioc"))
    res = out.result
    assert (res.retcode, res.volume) == (TRADE_RETCODE_DONE_PARTIAL, 0.5)
    (deal,) = out.deals
    assert deal.volume == 0.5
    (update,) = out.order_updates
    assert (update.order.state, update.order.volume_initial, update.order.volume_current) == (
        ORDER_STATE_CANCELED,
        1.2,
        pytest.approx(0.7),
    )
    assert not out.orders_changed and b.order_count == 0
    # The level is used up for this tick...
    nothing = b.send(order(type=0, volume=0.1, type_filling=ORDER_FILLING_IOC))
    assert nothing.result.retcode == TRADE_RETCODE_REJECT
    # ...and the other side has its own.
    assert ok(b, order(type=1, volume=0.5, type_filling=ORDER_FILLING_IOC)).volume == 0.5
    b.advance("EURUSD")
    assert ok(b, order(type=0, volume=0.3, type_filling=ORDER_FILLING_IOC)).volume == 0.3
    orders, _ = b.history(["ioc"])
    assert [(o.state, o.volume_current) for o in orders] == [
        (ORDER_STATE_CANCELED, pytest.approx(0.7))
    ]


@pytest.mark.parametrize("mode", ["hedging", "netting"])
def test_fok_that_cannot_fill_is_rejected_whole(mode: Mode) -> None:
    b = make(mode, settings={"EURUSD": SymbolSettings(liquidity=0.5)})
    out = b.send(order(type=0, volume=0.6, type_filling=ORDER_FILLING_FOK))
    assert out.result.retcode == TRADE_RETCODE_REJECT
    assert "fill or kill" in out.result.comment
    assert not out.deals and not out.order_updates and not b.has_positions
    assert ok(b, order(type=0, volume=0.5, type_filling=ORDER_FILLING_FOK)).volume == 0.5


@pytest.mark.parametrize("mode", ["hedging", "netting"])
def test_return_leaves_the_rest_working_until_filled(mode: Mode) -> None:
    b = make(mode, settings={"EURUSD": SymbolSettings(liquidity=0.4, execution="exchange")})
    out = b.send(order(type=0, volume=1.0, type_filling=ORDER_FILLING_RETURN, request_id=2))
    res = out.result
    assert (res.retcode, res.volume) == (TRADE_RETCODE_DONE_PARTIAL, 0.4)
    (update,) = out.order_updates
    assert (update.order.state, update.order.volume_current) == (
        ORDER_STATE_PARTIAL,
        pytest.approx(0.6),
    )
    assert out.orders_changed
    assert [o.ticket for o in b.orders_snapshot().orders] == [res.order]
    b.advance("EURUSD")
    assert states(b) == [(res.order, ORDER_STATE_PARTIAL)]
    b.advance("EURUSD")
    act_states = states(b)
    assert act_states == [(res.order, ORDER_STATE_FILLED)]
    assert b.order_count == 0
    # All three fills went into one position.
    (pos,) = b.positions_snapshot().positions
    assert pos.volume == pytest.approx(1.0)
    _, deals = b.history()
    assert [d.volume for d in deals] == [0.4, 0.4, pytest.approx(0.2)]
    assert {d.order for d in deals} == {res.order}
    # Nothing left at this level: a RETURN order waits whole.
    b.send(order(type=1, volume=0.4, type_filling=ORDER_FILLING_RETURN))
    waits = b.send(order(type=1, volume=0.2, type_filling=ORDER_FILLING_RETURN))
    assert waits.result.retcode == TRADE_RETCODE_PLACED
    assert [u.order.state for u in waits.order_updates] == [ORDER_STATE_PLACED]


@pytest.mark.parametrize("mode", ["hedging", "netting"])
def test_pending_order_fills_in_parts_by_liquidity(mode: Mode) -> None:
    b = make(mode, settings={"EURUSD": SymbolSettings(liquidity=0.3)})
    _bid, ask = bid_ask(b)
    res = place(
        b, ORDER_TYPE_BUY_LIMIT, ask - 20 * PT, volume=0.7, type_filling=ORDER_FILLING_RETURN
    )
    fok = place(b, ORDER_TYPE_BUY_LIMIT, ask - 20 * PT, volume=0.7)
    ioc = place(b, ORDER_TYPE_BUY_LIMIT, ask - 20 * PT, volume=0.7, type_filling=ORDER_FILLING_IOC)
    set_ask(b, ask - 25 * PT)
    # Time priority: the RETURN order takes the level; the FOK one cannot fill whole, the IOC
    # one finds nothing left: both are cancelled.
    assert states(b) == [
        (res.order, ORDER_STATE_PARTIAL),
        (fok.order, ORDER_STATE_CANCELED),
        (ioc.order, ORDER_STATE_CANCELED),
    ]
    seen = []
    for _ in range(2):
        set_ask(b, ask - 25 * PT)
        seen.extend(states(b))
    assert seen == [(res.order, ORDER_STATE_PARTIAL), (res.order, ORDER_STATE_FILLED)]
    (pos,) = b.positions_snapshot().positions
    assert (pos.ticket, pos.volume) == (res.order, pytest.approx(0.7))


@pytest.mark.parametrize("mode", ["hedging", "netting"])
def test_triggered_order_without_margin_is_rejected(mode: Mode) -> None:
    b = make(mode, initial_balance=100.0)
    _bid, ask = bid_ask(b)
    res = place(b, ORDER_TYPE_BUY_LIMIT, ask - 20 * PT, volume=5.0)
    set_ask(b, ask - 30 * PT)
    assert states(b) == [(res.order, ORDER_STATE_REJECTED)]
    assert not b.has_positions and b.order_count == 0
    assert b.send(order(volume=5.0)).result.retcode == TRADE_RETCODE_NO_MONEY


# -- requotes and slippage -----------------------------------------------------------------------


def _outcomes(
    seed: int, execution: str, deviation: int, mode: Mode = "hedging"
) -> list[tuple[int, float]]:
    b = make(
        mode,
        seed=seed,
        settings={"EURUSD": SymbolSettings(execution=execution, slippage_points=20)},
    )
    out = []
    for i in range(40):
        b.advance("EURUSD")
        bid, ask = bid_ask(b)
        side = i % 2
        res = b.send(order(type=side, price=ask if side == 0 else bid, deviation=deviation)).result
        quote = ask if side == 0 else bid
        if res.retcode == TRADE_RETCODE_REQUOTE:
            # The requote offers the moved market.
            moved = round(((res.ask if side == 0 else res.bid) - quote) / PT)
            assert abs(moved) > deviation
            out.append((res.retcode, moved))
        else:
            assert res.retcode == TRADE_RETCODE_DONE
            slip = round((res.price - quote) / PT) * (1 if side == 0 else -1)
            assert abs(slip) <= 20
            out.append((res.retcode, slip))
    return out


@pytest.mark.parametrize("mode", ["hedging", "netting"])
def test_requotes_and_slippage_are_seeded(mode: Mode) -> None:
    instant = _outcomes(5, "instant", 10, mode)
    assert instant == _outcomes(5, "instant", 10, mode)
    assert instant != _outcomes(6, "instant", 10)
    codes = {code for code, _ in instant}
    assert codes == {TRADE_RETCODE_DONE, TRADE_RETCODE_REQUOTE}
    # Within the deviation it fills at the slipped price.
    assert any(code == TRADE_RETCODE_DONE and slip != 0 for code, slip in instant)
    # A wide deviation never requotes; market execution ignores the deviation.
    assert {c for c, _ in _outcomes(5, "instant", 25)} == {TRADE_RETCODE_DONE}
    market = _outcomes(5, "market", 0)
    assert {c for c, _ in market} == {TRADE_RETCODE_DONE}
    assert any(slip for _, slip in market)


@pytest.mark.parametrize("mode", ["hedging", "netting"])
def test_instant_execution_requotes_a_stale_request_price(mode: Mode) -> None:
    b = make(mode, settings={"EURUSD": SymbolSettings(execution="instant")})
    bid, ask = bid_ask(b)
    stale = b.send(order(type=0, price=px(ask - 6 * PT), deviation=5)).result
    assert (stale.retcode, stale.bid, stale.ask) == (TRADE_RETCODE_REQUOTE, bid, ask)
    assert not b.has_positions
    fresh = ok(b, order(type=0, price=px(ask - 5 * PT), deviation=5))
    assert fresh.price == ask
    # No slippage by default: the e2e and the benchmarks stay deterministic.
    assert ok(make(), order(type=0, price=1.0)).price == ask


# -- sessions ------------------------------------------------------------------------------------

SATURDAY = 1_700_265_600.0  # 2023-11-18 00:00 UTC
SUNDAY_2200 = 1_700_431_200.0  # 2023-11-19 22:00 UTC


@pytest.mark.parametrize("mode", ["hedging", "netting"])
def test_market_closed_outside_sessions(mode: Mode) -> None:
    clock = Clock(SATURDAY)
    b = make(mode, clock=clock, settings={"*": SymbolSettings(sessions="fx")})
    bid, ask = bid_ask(b)
    assert not b.market_open and b.trading_symbols == []
    for req in (
        order(type=0),
        order(TRADE_ACTION_PENDING, type=ORDER_TYPE_BUY_LIMIT, price=px(ask - 50 * PT)),
    ):
        assert b.send(req).result.retcode == TRADE_RETCODE_MARKET_CLOSED
    assert b.next_timer == SUNDAY_2200
    clock.t = SUNDAY_2200
    b.poll()
    act = b.take_activity()
    assert act is not None
    assert [e.kind for e in act.events] == ["MARKET_OPEN"]
    assert b.market_open and b.trading_symbols == ["EURUSD"]
    res = place(b, ORDER_TYPE_BUY_LIMIT, ask - 50 * PT)
    pos = ok(b, order(type=0, sl=px(bid - 30 * PT)))
    friday_close = SUNDAY_2200 + 5 * 86400
    assert b.next_timer == friday_close
    clock.t = friday_close
    b.poll()
    act = b.take_activity()
    assert act is not None and [e.kind for e in act.events] == ["MARKET_CLOSED"]
    # Closed: nothing triggers, nothing can be changed.
    set_ask(b, ask - 60 * PT)
    assert b.take_activity() is None
    assert b.order_count == 1 and b.has_positions
    for req in (
        order(TRADE_ACTION_REMOVE, order=res.order),
        order(TRADE_ACTION_SLTP, position=pos.position, sl=px(bid - 100 * PT)),
        order(type=1, position=pos.position),
    ):
        assert b.send(req).result.retcode == TRADE_RETCODE_MARKET_CLOSED


def test_a_symbol_closed_while_another_trades() -> None:
    clock = Clock(SATURDAY)
    b = make(
        clock=clock,
        symbols=["EURUSD", "XAUUSD"],
        settings={"XAUUSD": SymbolSettings(sessions="fx")},
    )
    assert b.market_open and b.trading_symbols == ["EURUSD"]
    assert b.send(order(symbol="XAUUSD", volume=0.01)).result.retcode == (
        TRADE_RETCODE_MARKET_CLOSED
    )
    ok(b, order())


# -- check_only ----------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["hedging", "netting"])
def test_check_only_validates_like_a_send_and_changes_nothing(mode: Mode, tmp_path: Path) -> None:
    cfg = SimConfig(["EURUSD"], initial_balance=10_000.0, margin_mode=mode)
    b = SimBroker.open(cfg, tmp_path / "sim_state", clock=Clock())
    bid, ask = bid_ask(b)
    held = ok(b, order(type=0, volume=0.5))
    pending_res = place(b, ORDER_TYPE_BUY_LIMIT, ask - 50 * PT)
    b.apply_fault(pb.FaultInjection(reject_next=1))
    before = b.export_state()
    account = b.account_snapshot()
    assert b.journal is not None
    seq = b.journal.seq
    checks = [
        order(type=0, volume=1.0),
        order(type=1, volume=0.5, position=held.position),
        order(TRADE_ACTION_PENDING, type=ORDER_TYPE_SELL_LIMIT, price=px(bid + 50 * PT)),
        order(TRADE_ACTION_MODIFY, order=pending_res.order, price=px(ask - 70 * PT)),
        order(TRADE_ACTION_REMOVE, order=pending_res.order),
        order(TRADE_ACTION_SLTP, position=held.position, sl=px(bid - 100 * PT)),
    ]
    results = []
    for req in checks:
        req.check_only = True
        req.request_id = 77
        out = b.send(req)
        assert out.result.retcode == TRADE_RETCODE_CHECK_OK, out.result.comment
        assert not (out.deals or out.order_updates or out.positions_changed or out.orders_changed)
        results.append(out.result)
    opening, closing = results[0], results[1]
    assert opening.request_id == 77
    assert opening.balance == account.balance
    assert opening.equity == account.equity
    # One more lot of EURUSD at 1:100 needs about 1085 USD of margin.
    assert opening.margin == pytest.approx(account.margin * 3, abs=0.02)
    assert opening.margin_free == round(opening.equity - opening.margin, 2)
    assert opening.margin_level == round(opening.equity / opening.margin * 100, 2)
    assert closing.margin == 0.0
    assert closing.balance == round(account.balance + b.positions_snapshot().positions[0].profit, 2)
    # Errors are the send's errors, with the account as it is.
    bad = order(type=0, volume=10.0, check_only=True)
    assert b.send(bad).result.retcode == TRADE_RETCODE_NO_MONEY
    closed = order(type=1, position=999, check_only=True)
    res = b.send(closed).result
    assert (res.retcode, res.balance, res.equity) == (
        TRADE_RETCODE_POSITION_CLOSED,
        account.balance,
        account.equity,
    )
    # Nothing changed, nothing was journaled, the pending fault is still pending.
    assert b.export_state() == before
    assert b.journal.seq == seq
    assert b.faults.reject_next == 1
    assert b.send(order(type=0)).result.retcode == TRADE_RETCODE_REJECT
    b.close()


# -- reconciliation ------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["hedging", "netting"])
def test_reconcile_finds_orders_and_deals_by_comment(mode: Mode) -> None:
    clock = Clock()
    b = make(mode, clock=clock)
    bid, ask = bid_ask(b)
    market = ok(b, order(type=0, comment="k-market", request_id=1))
    clock.t += 10
    limit = place(b, ORDER_TYPE_BUY_LIMIT, ask - 20 * PT, comment="k-limit")
    cancelled = place(b, ORDER_TYPE_SELL_LIMIT, bid + 50 * PT, comment="k-gone")
    working = place(b, ORDER_TYPE_SELL_STOP, bid - 500 * PT, comment="k-open")
    ok(b, order(TRADE_ACTION_REMOVE, order=cancelled.order))
    set_ask(b, ask - 25 * PT)
    ok(b, order(type=1, comment="other"))
    result = b.reconcile(
        pb.ReconcileRequest(
            request_id=9, comments=["k-market", "k-limit", "k-gone", "k-open", "k-none"]
        )
    )
    assert result.request_id == 9
    got = {o.comment: (o.ticket, o.state) for o in result.orders}
    assert got == {
        "k-market": (market.order, ORDER_STATE_FILLED),
        "k-limit": (limit.order, ORDER_STATE_FILLED),
        "k-gone": (cancelled.order, ORDER_STATE_CANCELED),
        "k-open": (working.order, ORDER_STATE_PLACED),
    }
    assert sorted((d.comment, d.order) for d in result.deals) == [
        ("k-limit", limit.order),
        ("k-market", market.order),
    ]
    # from_time_msc leaves out what is older (working orders are always there).
    later = b.reconcile(
        pb.ReconcileRequest(comments=["k-market", "k-open"], from_time_msc=int(NOW * 1000) + 1)
    )
    assert [o.comment for o in later.orders] == ["k-open"]
    assert not later.deals
