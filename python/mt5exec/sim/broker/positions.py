"""Positions: stops (``TRADE_ACTION_SLTP``), close by, the server's own closes (SL, TP) and the
margin call and stop-out."""

from __future__ import annotations

from mt5exec.sim.broker.checks import (
    check_open,
    check_stops,
)
from mt5exec.sim.broker.config import COMMENT_MAX
from mt5exec.sim.broker.fills import FillsMixin
from mt5exec.sim.broker.outcomes import Reject, SendOutcome
from mt5exec.sim.broker.records import Position
from mt5exec.sim.constants import (
    DEAL_ENTRY_OUT_BY,
    DEAL_REASON_EXPERT,
    DEAL_REASON_SL,
    DEAL_REASON_SO,
    DEAL_REASON_TP,
    ORDER_FILLING_FOK,
    ORDER_TYPE_BUY,
    ORDER_TYPE_CLOSE_BY,
    ORDER_TYPE_SELL,
    POSITION_TYPE_BUY,
    TRADE_RETCODE_DONE,
    TRADE_RETCODE_FROZEN,
    TRADE_RETCODE_INVALID,
    TRADE_RETCODE_NO_CHANGES,
    TRADE_RETCODE_POSITION_CLOSED,
)
from mt5exec.sim.state import (
    encode_order,
    encode_sltp,
)
from mt5exec.sim.state.records import market_order
from mt5exec.terminal.v1 import worker_pb2 as pb


class PositionsMixin(FillsMixin):
    """What happens to open positions."""

    def _position_of(self, req: pb.OrderRequest, ticket: int) -> Position:
        if ticket:
            p = self._positions.get(ticket)
        elif not self._hedging:
            p = self._netting.get(req.symbol)
        else:
            p = None
        if p is None:
            raise Reject(
                TRADE_RETCODE_POSITION_CLOSED, f"position {ticket or req.symbol} not found"
            )
        if req.symbol and req.symbol != p.market.spec.name:
            raise Reject(TRADE_RETCODE_INVALID, f"position {p.ticket} is on {p.market.spec.name}")
        return p

    def _sltp(self, req: pb.OrderRequest) -> SendOutcome:
        p = self._position_of(req, req.position)
        m = p.market
        check_open(m, self._clock)
        buy = p.side == POSITION_TYPE_BUY
        close_pts = m.bid_pts if buy else m.ask_pts
        check_stops(m, buy, close_pts, req.sl, req.tp)
        sl = m.pts(req.sl) / m.scale if req.sl else 0.0
        tp = m.pts(req.tp) / m.scale if req.tp else 0.0
        if (sl, tp) == (p.sl, p.tp):
            raise Reject(TRADE_RETCODE_NO_CHANGES, "no changes")
        level = m.spec.freeze_level
        if level > 0:
            for value, below in ((p.sl, buy), (p.tp, not buy)):
                if value:
                    gap = close_pts - m.pts(value) if below else m.pts(value) - close_pts
                    if gap <= level:
                        raise Reject(
                            TRADE_RETCODE_FROZEN,
                            f"position {p.ticket}: stops within the freeze level ({level} points)",
                        )
        if req.check_only:
            return self._checked(req, m)
        self._commit(encode_sltp(p.ticket, sl, tp))
        self._in_trade = False
        p.sl, p.tp = sl, tp
        p.changed()
        self._cache.set_entry(p.ticket, self._cache.entry(p))
        self._cache.blob = None
        if sl or tp:
            self._arm_stops(p)
        result = pb.OrderResult(
            request_id=req.request_id,
            retcode=TRADE_RETCODE_DONE,
            bid=m.bid,
            ask=m.ask,
            comment="Request executed",
            time_msc=self._now_msc(),
            position=p.ticket,
        )
        return SendOutcome(result, positions_changed=True)

    def _close_by(self, req: pb.OrderRequest) -> SendOutcome:
        if not self._hedging:
            raise Reject(TRADE_RETCODE_INVALID, "close by needs a hedging account")
        p = self._position_of(req, req.position)
        if not req.position_by:
            raise Reject(TRADE_RETCODE_POSITION_CLOSED, "no opposite position given")
        by = self._positions.get(req.position_by)
        if by is None:
            raise Reject(TRADE_RETCODE_POSITION_CLOSED, f"position {req.position_by} not found")
        if by.market is not p.market or by.side == p.side:
            raise Reject(
                TRADE_RETCODE_INVALID,
                f"position {by.ticket} is not opposite to {p.ticket} on the same symbol",
            )
        m = p.market
        check_open(m, self._clock)
        volume = min(p.volume, by.volume)
        # Closed against each other at the opposite position's open price: the first deal
        # books the whole profit, the second none.
        price = by.price_open
        if req.check_only:
            return self._checked(req, m, 0.0, 2 * volume, p.profit_at(price, volume))
        now = self._now_msc()
        order = self._next_order
        comment = req.comment[:COMMENT_MAX]
        first = self._plan(
            m, 1 - p.side, volume, price, order, p, req.request_id, req.magic, comment,
            DEAL_REASON_EXPERT, 0.0, 0.0, now, others=True,
        )  # fmt: skip
        second = self._plan(
            m, 1 - by.side, volume, price, order, by, req.request_id, req.magic, comment,
            DEAL_REASON_EXPERT, 0.0, 0.0, now, deal=first.deal + 1, balance=first.balance,
            exposure=list(first.exposure), others=len(m.positions) - 1 - first.closing > 0,
        )  # fmt: skip
        first.entry = second.entry = DEAL_ENTRY_OUT_BY
        s = market_order(
            order,
            m.spec.name,
            ORDER_TYPE_CLOSE_BY,
            DEAL_REASON_EXPERT,
            volume,
            price,
            req.magic,
            now,
            p.ticket,
            comment,
            filling=ORDER_FILLING_FOK,
            position_by_id=by.ticket,
        )
        self._commit(first.encode(), second.encode(), encode_order(s))
        self._next_order = order + 1
        self._apply_plan(first)
        self._apply_plan(second)
        result = pb.OrderResult(
            request_id=req.request_id,
            retcode=TRADE_RETCODE_DONE,
            deal=first.deal,
            order=order,
            volume=volume,
            price=price,
            bid=m.bid,
            ask=m.ask,
            comment="Request executed",
            time_msc=now,
            position=p.ticket,
        )
        return SendOutcome(
            result,
            [first.report(), second.report()],
            [pb.OrderUpdate(order=s.to_proto(), request_id=req.request_id)],
            positions_changed=True,
            account_changed=True,
        )

    def _stop_hit(self, p: Position) -> bool:
        m = p.market
        buy = p.side == POSITION_TYPE_BUY
        close_pts = m.bid_pts if buy else m.ask_pts
        if p.sl and (close_pts <= m.pts(p.sl) if buy else close_pts >= m.pts(p.sl)):
            reason, tag, level = DEAL_REASON_SL, "sl", p.sl
        elif p.tp and (close_pts >= m.pts(p.tp) if buy else close_pts <= m.pts(p.tp)):
            reason, tag, level = DEAL_REASON_TP, "tp", p.tp
        else:
            return False
        return self._close_position(p, reason, f"[{tag} {level:.{m.spec.digits}f}]")

    def _close_position(self, p: Position, reason: int, comment: str) -> bool:
        """Close ``p`` at the market as the server does (SL, TP, stop-out); False if the
        journal cannot take it (it is then tried again later)."""
        m = p.market
        side = ORDER_TYPE_SELL if p.side == POSITION_TYPE_BUY else ORDER_TYPE_BUY
        price = m.bid if p.side == POSITION_TYPE_BUY else m.ask
        order = self._next_order
        now = self._now_msc()
        volume = p.volume
        plan = self._plan(
            m, side, volume, price, order, p, 0, p.magic, comment, reason, 0.0, 0.0, now
        )
        try:
            self._commit_plan(plan)
        except Reject:
            return False
        self._next_order = order + 1
        self._apply_plan(plan)
        act = self.activity
        act.deals.append(plan.report())
        s = market_order(
            order, m.spec.name, side, reason, volume, price, p.magic, now, p.ticket, comment,
            filling=ORDER_FILLING_FOK,
        )  # fmt: skip
        act.order_updates.append(pb.OrderUpdate(order=s.to_proto()))
        act.positions_changed = act.account_changed = True
        return True

    def check_margin(self) -> None:
        """Margin call and stop-out at the current prices (the worker runs this after every
        tick batch). Below ``stop_out_level`` the position with the largest loss is closed
        first, until the level is back above it."""
        if not self._positions:
            self._margin_call = False
            return
        profit, margin = self._floating_and_margin()
        if margin <= 0.0:
            self._margin_call = False
            return
        level = (self.balance + profit) / margin * 100.0
        config = self.config
        if level < config.margin_call_level:
            if not self._margin_call:
                self._margin_call = True
                self.activity.events.append(
                    pb.WorkerEvent(
                        kind="MARGIN_CALL",
                        message=f"margin level {level:.2f}% is below the margin call level "
                        f"{config.margin_call_level:g}%",
                    )
                )
        else:
            self._margin_call = False
        now = self._clock()
        while level < config.stop_out_level:
            candidates = [
                p
                for p in self._positions.values()
                if p.market.rules.sessions.always or p.market.rules.sessions.is_open(now)
            ]
            if not candidates:
                break
            worst = min(candidates, key=lambda p: p.profit_at(p.price_current(), p.volume))
            if not self._close_position(worst, DEAL_REASON_SO, f"[so {level:.2f}%]"):
                break
            profit, margin = self._floating_and_margin()
            if margin <= 0.0:
                break
            level = (self.balance + profit) / margin * 100.0
