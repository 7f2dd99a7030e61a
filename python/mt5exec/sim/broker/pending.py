"""Pending orders: placing, modifying and removing them, and what a tick that reaches them (or
a position's stop) sets off."""

from __future__ import annotations

import math

from mt5exec.sim.broker.checks import (
    check_filling,
    check_frozen,
    check_open,
    check_pending_price,
    check_stops,
    check_trade_mode,
    expiration_of,
    floor_step,
    market_of,
    volume_of,
)
from mt5exec.sim.broker.config import COMMENT_MAX, VOLUME_EPS
from mt5exec.sim.broker.outcomes import Reject, SendOutcome
from mt5exec.sim.broker.positions import PositionsMixin
from mt5exec.sim.broker.prices import Market
from mt5exec.sim.broker.records import Order, Position
from mt5exec.sim.constants import (
    BUY_TYPES,
    DEAL_REASON_EXPERT,
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
    ORDER_TYPE_BUY_STOP_LIMIT,
    ORDER_TYPE_SELL,
    ORDER_TYPE_SELL_LIMIT,
    ORDER_TYPE_SELL_STOP,
    ORDER_TYPE_SELL_STOP_LIMIT,
    PENDING_TYPES,
    TRADE_RETCODE_DONE,
    TRADE_RETCODE_INVALID,
    TRADE_RETCODE_INVALID_ORDER,
    TRADE_RETCODE_NO_CHANGES,
    TRADE_RETCODE_PLACED,
)
from mt5exec.sim.state import (
    OrderState,
    encode_order,
)
from mt5exec.terminal.v1 import worker_pb2 as pb

# A tick can set off a chain (a stop-limit becoming a limit that fills, a fill whose position
# then sits beyond its stop); more rounds than this on one tick means something loops.
MAX_TRIGGER_ROUNDS = 16


class PendingMixin(PositionsMixin):
    """Working orders, and the triggers that fire them."""

    def _place(self, req: pb.OrderRequest) -> SendOutcome:
        m = market_of(self._markets, req)
        otype = req.type
        if otype not in PENDING_TYPES:
            raise Reject(TRADE_RETCODE_INVALID, f"order type {otype} is not a pending order")
        volume = volume_of(m, req.volume)
        buy = otype in BUY_TYPES
        check_trade_mode(m, buy, volume, self._clock)
        filling = req.type_filling
        limit = otype not in (ORDER_TYPE_BUY_STOP, ORDER_TYPE_SELL_STOP)
        check_filling(m, filling, pending=True, limit=limit)
        pts, limit_pts = check_pending_price(m, otype, req.price, req.stoplimit)
        check_stops(m, buy, limit_pts or pts, req.sl, req.tp)
        expiration = expiration_of(req.type_time, req.expiration, self._clock())
        if req.check_only:
            return self._checked(req, m)
        self._take_reject()
        now = self._now_msc()
        ticket = self._next_order
        s = OrderState(
            ticket,
            m.spec.name,
            otype,
            ORDER_STATE_PLACED,
            filling,
            req.type_time,
            DEAL_REASON_EXPERT,
            volume,
            volume,
            pts / m.scale,
            limit_pts / m.scale,
            m.pts(req.sl) / m.scale if req.sl else 0.0,
            m.pts(req.tp) / m.scale if req.tp else 0.0,
            m.ask if buy else m.bid,
            expiration,
            req.magic,
            now,
            0,
            0,
            0,
            req.comment[:COMMENT_MAX],
        )
        self._commit(encode_order(s))
        self._next_order = ticket + 1
        self._in_trade = False
        o = self._add_order(m, s)
        result = pb.OrderResult(
            request_id=req.request_id,
            retcode=TRADE_RETCODE_PLACED,
            order=ticket,
            volume=volume,
            price=s.price_open,
            bid=m.bid,
            ask=m.ask,
            comment="Order placed",
            time_msc=now,
        )
        return self._order_outcome(req, result, o)

    def _working(self, req: pb.OrderRequest) -> Order:
        o = self._orders.get(req.order)
        if o is None:
            raise Reject(TRADE_RETCODE_INVALID_ORDER, f"order {req.order} not found")
        return o

    def _modify(self, req: pb.OrderRequest) -> SendOutcome:
        o = self._working(req)
        m = o.market
        if o.type not in PENDING_TYPES:
            raise Reject(TRADE_RETCODE_INVALID, f"order {o.ticket} is not a pending order")
        check_open(m, self._clock)
        pts, limit_pts = check_pending_price(m, o.type, req.price, req.stoplimit)
        buy = o.buy
        check_stops(m, buy, limit_pts or pts, req.sl, req.tp)
        expiration = expiration_of(req.type_time, req.expiration, self._clock())
        price = pts / m.scale
        stoplimit = limit_pts / m.scale
        sl = m.pts(req.sl) / m.scale if req.sl else 0.0
        tp = m.pts(req.tp) / m.scale if req.tp else 0.0
        if (price, stoplimit, sl, tp, req.type_time, expiration) == (
            o.price_open,
            o.price_stoplimit,
            o.sl,
            o.tp,
            o.type_time,
            o.expiration,
        ):
            raise Reject(TRADE_RETCODE_NO_CHANGES, "no changes")
        check_frozen(o)
        if req.check_only:
            return self._checked(req, m)
        s = o.record()
        s.price_open, s.price_stoplimit, s.sl, s.tp = price, stoplimit, sl, tp
        s.type_time, s.time_expiration = req.type_time, expiration
        self._commit(encode_order(s))
        self._in_trade = False
        o.price_open, o.price_stoplimit, o.sl, o.tp = price, stoplimit, sl, tp
        o.type_time, o.expiration = req.type_time, expiration
        m.arm(*o.trigger())
        if expiration and expiration < self._next_timer:
            self._next_timer = expiration
        now = self._now_msc()
        result = pb.OrderResult(
            request_id=req.request_id,
            retcode=TRADE_RETCODE_DONE,
            order=o.ticket,
            volume=o.volume_current,
            price=price,
            bid=m.bid,
            ask=m.ask,
            comment="Request executed",
            time_msc=now,
        )
        return self._order_outcome(req, result, o)

    def _finish(self, o: Order, state: int) -> pb.OrderUpdate:
        """Move a working order to the history in ``state`` (journaled first)."""
        s = o.record(state)
        s.time_done_msc = self._now_msc()
        self._commit(encode_order(s))
        self._in_trade = False
        self._drop_order(o)
        return pb.OrderUpdate(order=s.to_proto())

    def _remove(self, req: pb.OrderRequest) -> SendOutcome:
        o = self._working(req)
        m = o.market
        check_open(m, self._clock)
        check_frozen(o)
        if req.check_only:
            return self._checked(req, m)
        update = self._finish(o, ORDER_STATE_CANCELED)
        update.request_id = req.request_id
        result = pb.OrderResult(
            request_id=req.request_id,
            retcode=TRADE_RETCODE_DONE,
            order=o.ticket,
            volume=o.volume_current,
            bid=m.bid,
            ask=m.ask,
            comment="Request executed",
            time_msc=update.order.time_done_msc,
        )
        return SendOutcome(result, order_updates=[update], orders_changed=True)

    def _fire(self, m: Market) -> None:
        """Run every order and stop the current tick of ``m`` reaches, then re-arm."""
        sessions = m.rules.sessions
        if not sessions.always and not sessions.is_open(self._clock()):
            return
        for _ in range(MAX_TRIGGER_ROUNDS):
            changed = False
            for p in list(m.positions.values()):
                if (p.sl or p.tp) and p.ticket in m.positions and self._stop_hit(p):
                    changed = True
            for o in list(m.orders.values()):
                if o.ticket in m.orders and o.fires() and self._trigger(o):
                    changed = True
            if not changed:
                break
        m.rearm()

    def _trigger(self, o: Order) -> bool:
        """Act on a working order the current tick reaches; True if anything changed."""
        act = self.activity
        try:
            if o.type in (ORDER_TYPE_BUY_STOP_LIMIT, ORDER_TYPE_SELL_STOP_LIMIT):
                # It turns into a limit order at its stop-limit price, same ticket, RETURN.
                s = o.record()
                s.type = ORDER_TYPE_BUY_LIMIT if o.buy else ORDER_TYPE_SELL_LIMIT
                s.price_open, s.price_stoplimit = o.price_stoplimit, 0.0
                s.type_filling = ORDER_FILLING_RETURN
                self._commit(encode_order(s))
                self._in_trade = False
                o.type, o.price_open, o.price_stoplimit = s.type, s.price_open, 0.0
                o.type_filling = ORDER_FILLING_RETURN
                act.order_updates.append(pb.OrderUpdate(order=o.info()))
                act.orders_changed = True
                return True
            return self._fill_working(o)
        except Reject:
            # Only the journal refuses here: leave the order as it is, the next tick retries.
            return False

    def _fill_working(self, o: Order) -> bool:
        m = o.market
        act = self.activity
        buy = o.buy
        side = ORDER_TYPE_BUY if buy else ORDER_TYPE_SELL
        price_pts = m.ask_pts if buy else m.bid_pts
        if o.type in (ORDER_TYPE_BUY_STOP, ORDER_TYPE_SELL_STOP):
            # A stop becomes a market order: it slips like one. A limit fills at its price or
            # better, which the current price already is.
            slip = self._slip(m)
            price_pts += slip if buy else -slip
        price = price_pts / m.scale
        want = o.volume_current
        fill = want
        if m.liquidity != math.inf:
            available = m.available(buy)
            if available < want - VOLUME_EPS:
                fill = floor_step(available, m.spec.volume_step)
        target: Position | None = None
        if not self._hedging:
            target = self._netting.get(m.spec.name)
        elif o.position_id:
            # Hedging: the position this order already filled into, or the one a market
            # order's rest is to close. Gone (or smaller than what would close it): done.
            target = self._positions.get(o.position_id)
            if target is None or (target.side != side and fill > target.volume + VOLUME_EPS):
                self._note(self._finish(o, ORDER_STATE_CANCELED))
                return True
        filling = o.type_filling
        if fill < want - VOLUME_EPS:
            if filling == ORDER_FILLING_FOK or (fill <= 0.0 and filling == ORDER_FILLING_IOC):
                self._note(self._finish(o, ORDER_STATE_CANCELED))
                return True
            if fill <= 0.0:
                return False  # RETURN: waits for the next price level
        added = fill if target is None or target.side == side else max(0.0, fill - target.volume)
        if added > 0.0:
            profit, margin = self._floating_and_margin()
            if m.margin_of(added, self._leverage) > self.balance + profit - margin:
                self._note(self._finish(o, ORDER_STATE_REJECTED))
                return True
        now = self._now_msc()
        rest = round(want - fill, 8)
        if rest <= VOLUME_EPS:
            state = ORDER_STATE_FILLED
            rest = 0.0
        else:
            state = ORDER_STATE_CANCELED if filling == ORDER_FILLING_IOC else ORDER_STATE_PARTIAL
        plan = self._plan(
            m, side, fill, price, o.ticket, target, 0, o.magic, o.comment, o.reason, o.sl, o.tp,
            now,
        )  # fmt: skip
        s = o.record(state, price)
        s.volume_current = rest
        if state != ORDER_STATE_PARTIAL:
            s.time_done_msc = now
        s.position_id = plan.ticket
        self._commit_plan(plan, encode_order(s))
        self._apply_plan(plan)
        m.consume(buy, fill)
        o.state, o.volume_current = state, rest
        o.time_done_msc, o.position_id = s.time_done_msc, s.position_id
        if state != ORDER_STATE_PARTIAL:
            self._drop_order(o)
        act.deals.append(plan.report())
        act.order_updates.append(pb.OrderUpdate(order=s.to_proto()))
        act.positions_changed = act.account_changed = act.orders_changed = True
        return True
