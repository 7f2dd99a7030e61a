"""The simulated broker as an MT5 trade server: pending orders (every type, placed, triggered,
filled), validation, expiration, modify and remove. Positions, stop-out, filling, requotes,
sessions, order_check and reconciliation: test_sim_orders_positions.py."""

from __future__ import annotations

import math

import pytest
from tests.sim_orders_support import (
    NOW,
    PT,
    SPREAD,
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

from mt5exec.sim.broker import (
    DEAL_ENTRY_IN,
    DEAL_REASON_EXPERT,
    ORDER_FILLING_RETURN,
    ORDER_STATE_CANCELED,
    ORDER_STATE_EXPIRED,
    ORDER_STATE_FILLED,
    ORDER_STATE_PLACED,
    ORDER_TIME_DAY,
    ORDER_TIME_GTC,
    ORDER_TIME_SPECIFIED,
    ORDER_TIME_SPECIFIED_DAY,
    ORDER_TYPE_BUY,
    ORDER_TYPE_BUY_LIMIT,
    ORDER_TYPE_BUY_STOP,
    ORDER_TYPE_BUY_STOP_LIMIT,
    ORDER_TYPE_SELL_LIMIT,
    ORDER_TYPE_SELL_STOP,
    ORDER_TYPE_SELL_STOP_LIMIT,
    TRADE_ACTION_MODIFY,
    TRADE_ACTION_PENDING,
    TRADE_ACTION_REMOVE,
    TRADE_RETCODE_DONE,
    TRADE_RETCODE_FROZEN,
    TRADE_RETCODE_INVALID_EXPIRATION,
    TRADE_RETCODE_INVALID_ORDER,
    TRADE_RETCODE_INVALID_PRICE,
    TRADE_RETCODE_INVALID_STOPS,
    TRADE_RETCODE_NO_CHANGES,
    TRADE_RETCODE_PLACED,
)
from mt5exec.sim.symbols import SymbolSettings

# -- pending orders: every type, placed, triggered, filled ---------------------------------------

# type -> (placement offset from the market, price that triggers it), as functions of (bid, ask).
TRIGGERS = {
    ORDER_TYPE_BUY_LIMIT: (lambda bid, ask: ask - 50 * PT, lambda p: p - 2 * PT - SPREAD),
    ORDER_TYPE_SELL_LIMIT: (lambda bid, ask: bid + 50 * PT, lambda p: p + 2 * PT),
    ORDER_TYPE_BUY_STOP: (lambda bid, ask: ask + 50 * PT, lambda p: p + 2 * PT - SPREAD),
    ORDER_TYPE_SELL_STOP: (lambda bid, ask: bid - 50 * PT, lambda p: p - 2 * PT),
}


@pytest.mark.parametrize("mode", ["hedging", "netting"])
@pytest.mark.parametrize("otype", sorted(TRIGGERS))
def test_limit_and_stop_orders_trigger_and_fill(mode: Mode, otype: int) -> None:
    b = make(mode)
    bid, ask = bid_ask(b)
    at, trigger_bid = TRIGGERS[otype]
    price = px(at(bid, ask))
    buy = otype in (ORDER_TYPE_BUY_LIMIT, ORDER_TYPE_BUY_STOP)
    sl = px(price - 300 * PT) if buy else px(price + 300 * PT)
    tp = px(price + 300 * PT) if buy else px(price - 300 * PT)
    out = b.send(
        order(
            TRADE_ACTION_PENDING,
            type=otype,
            price=price,
            sl=sl,
            tp=tp,
            magic=7,
            comment="pend",
            request_id=11,
        )
    )
    res = out.result
    assert (res.retcode, res.volume, res.price) == (TRADE_RETCODE_PLACED, 0.1, price)
    assert not out.deals and out.orders_changed and not out.positions_changed
    (update,) = out.order_updates
    assert update.request_id == 11
    assert (update.order.ticket, update.order.type, update.order.state) == (
        res.order,
        otype,
        ORDER_STATE_PLACED,
    )
    assert [o.ticket for o in b.orders_snapshot().orders] == [res.order]

    # A tick short of the price does nothing.
    short = trigger_bid(price) + (3 * PT if otype in (2, 5) else -3 * PT)
    b.set_price("EURUSD", px(short))
    assert b.take_activity() is None
    b.set_price("EURUSD", px(trigger_bid(price)))
    act = b.take_activity()
    assert act is not None
    (deal,) = act.deals
    assert (deal.request_id, deal.order, deal.comment, deal.magic) == (0, res.order, "pend", 7)
    assert (deal.entry, deal.reason, deal.volume) == (DEAL_ENTRY_IN, DEAL_REASON_EXPERT, 0.1)
    bid2, ask2 = bid_ask(b)
    assert deal.price == (ask2 if buy else bid2)
    # A limit fills at its price or better.
    if otype == ORDER_TYPE_BUY_LIMIT:
        assert deal.price <= price
    if otype == ORDER_TYPE_SELL_LIMIT:
        assert deal.price >= price
    (filled,) = act.order_updates
    assert (filled.request_id, filled.order.state, filled.order.volume_current) == (
        0,
        ORDER_STATE_FILLED,
        0.0,
    )
    assert filled.order.position_id == deal.position_id
    assert act.positions_changed and act.orders_changed and act.account_changed
    assert b.order_count == 0
    (pos,) = b.positions_snapshot().positions
    assert (pos.ticket, pos.sl, pos.tp, pos.comment) == (deal.position_id, sl, tp, "pend")
    orders, deals = b.history(["pend"])
    assert [(o.ticket, o.state) for o in orders] == [(res.order, ORDER_STATE_FILLED)]
    assert [d.ticket for d in deals] == [deal.ticket]


@pytest.mark.parametrize("mode", ["hedging", "netting"])
@pytest.mark.parametrize("otype", [ORDER_TYPE_BUY_STOP_LIMIT, ORDER_TYPE_SELL_STOP_LIMIT])
def test_stop_limit_turns_into_a_limit_order_then_fills(mode: Mode, otype: int) -> None:
    b = make(mode)
    bid, ask = bid_ask(b)
    buy = otype == ORDER_TYPE_BUY_STOP_LIMIT
    price = px(ask + 50 * PT if buy else bid - 50 * PT)
    limit = px(price - 20 * PT if buy else price + 20 * PT)
    res = place(b, otype, price, stoplimit=limit, comment="sl-order")
    # Reaching the stop price: a limit order at the stop-limit price, same ticket.
    if buy:
        set_ask(b, price + PT)
    else:
        b.set_price("EURUSD", px(price - PT))
    act = b.take_activity()
    assert act is not None and not act.deals
    (update,) = act.order_updates
    o = update.order
    assert (o.ticket, o.state, o.price_open, o.type_filling) == (
        res.order,
        ORDER_STATE_PLACED,
        limit,
        ORDER_FILLING_RETURN,
    )
    assert o.type == (ORDER_TYPE_BUY_LIMIT if buy else ORDER_TYPE_SELL_LIMIT)
    (working,) = b.orders_snapshot().orders
    assert working.type == o.type
    # Then it fills like any limit order.
    if buy:
        set_ask(b, limit)
    else:
        b.set_price("EURUSD", limit)
    act = b.take_activity()
    assert act is not None
    assert [(d.order, d.comment) for d in act.deals] == [(res.order, "sl-order")]
    assert [u.order.state for u in act.order_updates] == [ORDER_STATE_FILLED]
    assert b.order_count == 0 and b.position_count == 1


def test_pending_orders_add_to_a_netting_position_and_replace_its_stops() -> None:
    b = make("netting")
    bid, ask = bid_ask(b)
    first = ok(b, order(type=ORDER_TYPE_BUY, volume=0.2))
    sl = px(bid - 400 * PT)
    place(b, ORDER_TYPE_BUY_LIMIT, ask - 30 * PT, volume=0.3, sl=sl)
    set_ask(b, ask - 31 * PT)
    (pos,) = b.positions_snapshot().positions
    assert pos.ticket == first.position
    assert pos.volume == pytest.approx(0.5)
    assert pos.sl == sl


# -- validation ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("otype", "offset"),
    [
        (ORDER_TYPE_BUY_LIMIT, +10),  # above the ask
        (ORDER_TYPE_SELL_LIMIT, -10),  # below the bid
        (ORDER_TYPE_BUY_STOP, -10),
        (ORDER_TYPE_SELL_STOP, +10),
        (ORDER_TYPE_BUY_STOP_LIMIT, -10),
        (ORDER_TYPE_SELL_STOP_LIMIT, +10),
        (ORDER_TYPE_BUY_LIMIT, 0),  # at the market
    ],
)
def test_pending_price_on_the_wrong_side_is_invalid_price(otype: int, offset: int) -> None:
    b = make()
    bid, ask = bid_ask(b)
    ref = ask if otype in (ORDER_TYPE_BUY_LIMIT, ORDER_TYPE_BUY_STOP, 6) else bid
    out = b.send(
        order(TRADE_ACTION_PENDING, type=otype, price=px(ref + offset * PT), stoplimit=px(ref))
    )
    assert out.result.retcode == TRADE_RETCODE_INVALID_PRICE
    assert not out.order_updates and b.order_count == 0


def test_stops_level_and_stop_limit_price() -> None:
    b = make(settings={"EURUSD": SymbolSettings(stops_level=20)})
    bid, ask = bid_ask(b)
    too_close = b.send(
        order(TRADE_ACTION_PENDING, type=ORDER_TYPE_BUY_LIMIT, price=px(ask - 15 * PT))
    )
    assert too_close.result.retcode == TRADE_RETCODE_INVALID_PRICE
    assert "20 points" in too_close.result.comment
    place(b, ORDER_TYPE_BUY_LIMIT, ask - 20 * PT)
    # The stop-limit price of a buy stop limit must be at or below its stop price.
    bad = b.send(
        order(
            TRADE_ACTION_PENDING,
            type=ORDER_TYPE_BUY_STOP_LIMIT,
            price=px(ask + 50 * PT),
            stoplimit=px(ask + 60 * PT),
        )
    )
    assert bad.result.retcode == TRADE_RETCODE_INVALID_PRICE
    missing = b.send(
        order(TRADE_ACTION_PENDING, type=ORDER_TYPE_SELL_STOP_LIMIT, price=px(bid - 50 * PT))
    )
    assert missing.result.retcode == TRADE_RETCODE_INVALID_PRICE


@pytest.mark.parametrize(
    ("otype", "sl", "tp"),
    [
        (ORDER_TYPE_BUY_LIMIT, +100, 0),  # buy SL above the price
        (ORDER_TYPE_BUY_LIMIT, 0, -100),  # buy TP below
        (ORDER_TYPE_SELL_LIMIT, -100, 0),
        (ORDER_TYPE_SELL_LIMIT, 0, +100),
        (ORDER_TYPE_BUY_LIMIT, -10, 0),  # inside the stops level of 20
        (ORDER_TYPE_SELL_STOP, 0, -19),
    ],
)
def test_pending_stops_on_the_wrong_side_or_too_close(otype: int, sl: int, tp: int) -> None:
    b = make(settings={"EURUSD": SymbolSettings(stops_level=20)})
    bid, ask = bid_ask(b)
    price = {
        ORDER_TYPE_BUY_LIMIT: ask - 100 * PT,
        ORDER_TYPE_SELL_LIMIT: bid + 100 * PT,
        ORDER_TYPE_SELL_STOP: bid - 100 * PT,
    }[otype]
    out = b.send(
        order(
            TRADE_ACTION_PENDING,
            type=otype,
            price=px(price),
            sl=px(price + sl * PT) if sl else 0.0,
            tp=px(price + tp * PT) if tp else 0.0,
        )
    )
    assert out.result.retcode == TRADE_RETCODE_INVALID_STOPS


@pytest.mark.parametrize("mode", ["hedging", "netting"])
def test_market_order_stops_are_checked_against_the_close_price(mode: Mode) -> None:
    b = make(mode, settings={"*": SymbolSettings(stops_level=10)})
    bid, ask = bid_ask(b)
    # A buy closes at the bid: its SL must be 10 points below it, its TP 10 above.
    assert b.send(order(type=0, sl=px(bid - 9 * PT))).result.retcode == TRADE_RETCODE_INVALID_STOPS
    assert b.send(order(type=0, tp=px(bid + 5 * PT))).result.retcode == TRADE_RETCODE_INVALID_STOPS
    assert b.send(order(type=1, sl=px(ask - PT))).result.retcode == TRADE_RETCODE_INVALID_STOPS
    assert b.send(order(type=1, sl=float("nan"))).result.retcode == TRADE_RETCODE_INVALID_STOPS
    res = ok(b, order(type=0, sl=px(bid - 10 * PT), tp=px(bid + 10 * PT)))
    (pos,) = b.positions_snapshot().positions
    assert (pos.ticket, pos.sl, pos.tp) == (res.position, px(bid - 10 * PT), px(bid + 10 * PT))


@pytest.mark.parametrize("mode", ["hedging", "netting"])
def test_expiration_checks(mode: Mode) -> None:
    clock = Clock()
    b = make(mode, clock=clock)
    _bid, ask = bid_ask(b)
    base = {
        "action": TRADE_ACTION_PENDING,
        "type": ORDER_TYPE_BUY_LIMIT,
        "price": px(ask - 50 * PT),
    }
    for type_time, expiration in (
        (ORDER_TIME_SPECIFIED, 0),  # missing
        (ORDER_TIME_SPECIFIED, int(NOW) - 1),  # past
        (ORDER_TIME_SPECIFIED, int(NOW)),  # now is not the future
        (ORDER_TIME_SPECIFIED_DAY, int(NOW) - 86400),  # yesterday
        (ORDER_TIME_SPECIFIED_DAY, 0),
        (9, int(NOW) + 60),
    ):
        out = b.send(order(**base, type_time=type_time, expiration=expiration))
        assert out.result.retcode == TRADE_RETCODE_INVALID_EXPIRATION, (type_time, expiration)
    assert b.order_count == 0
    day = place(b, ORDER_TYPE_BUY_LIMIT, ask - 50 * PT, type_time=ORDER_TIME_DAY)
    (o,) = b.orders_snapshot().orders
    assert o.ticket == day.order
    assert o.time_expiration == 1_700_006_400  # 2023-11-15 00:00 UTC


# -- expiration ----------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["hedging", "netting"])
def test_day_order_expires_at_the_end_of_the_day(mode: Mode) -> None:
    clock = Clock()
    b = make(mode, clock=clock)
    bid, ask = bid_ask(b)
    day = place(b, ORDER_TYPE_BUY_LIMIT, ask - 50 * PT, type_time=ORDER_TIME_DAY, comment="d")
    gtc = place(b, ORDER_TYPE_SELL_LIMIT, bid + 50 * PT, type_time=ORDER_TIME_GTC)
    midnight = 1_700_006_400
    assert b.next_timer == midnight
    clock.t = midnight - 0.001
    b.poll()
    assert b.take_activity() is None
    clock.t = midnight
    b.poll()
    act = b.take_activity()
    assert act is not None and act.orders_changed and not act.deals
    assert [(u.order.ticket, u.order.state) for u in act.order_updates] == [
        (day.order, ORDER_STATE_EXPIRED)
    ]
    assert act.order_updates[0].order.time_done_msc == midnight * 1000
    assert [o.ticket for o in b.orders_snapshot().orders] == [gtc.order]
    assert b.next_timer == math.inf
    assert [o.state for o in b.history(["d"])[0]] == [ORDER_STATE_EXPIRED]


@pytest.mark.parametrize("mode", ["hedging", "netting"])
def test_specified_and_specified_day_expiration(mode: Mode) -> None:
    clock = Clock()
    b = make(mode, clock=clock)
    bid, ask = bid_ask(b)
    at = int(NOW) + 90
    spec = place(
        b, ORDER_TYPE_BUY_STOP, ask + 50 * PT, type_time=ORDER_TIME_SPECIFIED, expiration=at
    )
    # SPECIFIED_DAY: until the end of the day holding the given time (tomorrow here).
    spec_day = place(
        b,
        ORDER_TYPE_SELL_STOP,
        bid - 50 * PT,
        type_time=ORDER_TIME_SPECIFIED_DAY,
        expiration=int(NOW) + 86400,
    )
    assert b.next_timer == at
    clock.t = at + 5
    b.poll()
    assert states(b) == [(spec.order, ORDER_STATE_EXPIRED)]
    assert b.next_timer == 1_700_006_400 + 86400
    clock.t = 1_700_006_400 + 86400
    b.poll()
    assert states(b) == [(spec_day.order, ORDER_STATE_EXPIRED)]
    assert b.order_count == 0


# -- modify and remove ---------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["hedging", "netting"])
def test_modify_moves_the_order_and_its_trigger(mode: Mode) -> None:
    clock = Clock()
    b = make(mode, clock=clock)
    _bid, ask = bid_ask(b)
    res = place(b, ORDER_TYPE_BUY_LIMIT, ask - 50 * PT, comment="m")
    new_price = px(ask - 80 * PT)
    sl = px(new_price - 100 * PT)
    req = order(
        TRADE_ACTION_MODIFY,
        symbol="",
        order=res.order,
        price=new_price,
        sl=sl,
        type_time=ORDER_TIME_SPECIFIED,
        expiration=int(NOW) + 3600,
        request_id=5,
    )
    out = b.send(req)
    assert (out.result.retcode, out.result.order) == (TRADE_RETCODE_DONE, res.order)
    (update,) = out.order_updates
    assert (update.request_id, update.order.state, update.order.price_open, update.order.sl) == (
        5,
        ORDER_STATE_PLACED,
        new_price,
        sl,
    )
    assert update.order.time_expiration == int(NOW) + 3600
    assert out.orders_changed
    # The same again changes nothing.
    assert b.send(req).result.retcode == TRADE_RETCODE_NO_CHANGES
    # The old price no longer triggers it; the new one does.
    set_ask(b, ask - 60 * PT)
    assert b.take_activity() is None
    set_ask(b, new_price)
    assert states(b) == [(res.order, ORDER_STATE_FILLED)]
    assert b.position_count == 1


@pytest.mark.parametrize("mode", ["hedging", "netting"])
def test_modify_and_remove_errors(mode: Mode) -> None:
    b = make(mode, settings={"EURUSD": SymbolSettings(freeze_level=30)})
    _bid, ask = bid_ask(b)
    unknown = b.send(order(TRADE_ACTION_MODIFY, order=42, price=1.0))
    assert unknown.result.retcode == TRADE_RETCODE_INVALID_ORDER
    assert b.send(order(TRADE_ACTION_REMOVE, order=42)).result.retcode == (
        TRADE_RETCODE_INVALID_ORDER
    )
    near = place(b, ORDER_TYPE_BUY_LIMIT, ask - 25 * PT)
    far = place(b, ORDER_TYPE_BUY_LIMIT, ask - 100 * PT)
    # Within the freeze level of the market: neither modified nor removed.
    frozen = b.send(order(TRADE_ACTION_MODIFY, order=near.order, price=px(ask - 90 * PT)))
    assert frozen.result.retcode == TRADE_RETCODE_FROZEN
    assert b.send(order(TRADE_ACTION_REMOVE, order=near.order)).result.retcode == (
        TRADE_RETCODE_FROZEN
    )
    wrong_side = b.send(order(TRADE_ACTION_MODIFY, order=far.order, price=px(ask + 10 * PT)))
    assert wrong_side.result.retcode == TRADE_RETCODE_INVALID_PRICE
    assert b.order_count == 2


@pytest.mark.parametrize("mode", ["hedging", "netting"])
def test_remove_cancels(mode: Mode) -> None:
    b = make(mode)
    bid, _ask = bid_ask(b)
    res = place(b, ORDER_TYPE_SELL_STOP, bid - 50 * PT, comment="gone")
    out = b.send(order(TRADE_ACTION_REMOVE, order=res.order, request_id=3))
    assert (out.result.retcode, out.result.order) == (TRADE_RETCODE_DONE, res.order)
    (update,) = out.order_updates
    assert (update.request_id, update.order.state) == (3, ORDER_STATE_CANCELED)
    assert update.order.time_done_msc == int(NOW * 1000)
    assert out.orders_changed and b.order_count == 0
    b.set_price("EURUSD", px(bid - 100 * PT))
    assert b.take_activity() is None
    assert b.send(order(TRADE_ACTION_REMOVE, order=res.order)).result.retcode == (
        TRADE_RETCODE_INVALID_ORDER
    )
    assert [o.state for o in b.history(["gone"])[0]] == [ORDER_STATE_CANCELED]
