"""Fill planning: a deal is worked out (``Plan``), journaled, then applied; market orders
(``TRADE_ACTION_DEAL``) with their liquidity, slippage and requotes."""

from __future__ import annotations

import math

from mt5exec.sim.broker.checks import (
    check_deviation,
    check_filling,
    check_stops,
    check_trade_mode,
    floor_step,
    market_of,
    volume_of,
)
from mt5exec.sim.broker.config import COMMENT_MAX, VOLUME_EPS
from mt5exec.sim.broker.core import BrokerCore
from mt5exec.sim.broker.outcomes import Reject, SendOutcome
from mt5exec.sim.broker.prices import Market, shift
from mt5exec.sim.broker.records import Position
from mt5exec.sim.constants import (
    DEAL_ENTRY_IN,
    DEAL_ENTRY_INOUT,
    DEAL_ENTRY_OUT,
    DEAL_REASON_EXPERT,
    DEAL_TYPE_BUY,
    DEAL_TYPE_SELL,
    ORDER_FILLING_FOK,
    ORDER_FILLING_IOC,
    ORDER_STATE_CANCELED,
    ORDER_STATE_PARTIAL,
    ORDER_STATE_PLACED,
    ORDER_TYPE_BUY,
    ORDER_TYPE_SELL,
    POSITION_TYPE_BUY,
    TRADE_RETCODE_DONE,
    TRADE_RETCODE_DONE_PARTIAL,
    TRADE_RETCODE_INVALID,
    TRADE_RETCODE_INVALID_CLOSE_VOLUME,
    TRADE_RETCODE_PLACED,
    TRADE_RETCODE_POSITION_CLOSED,
    TRADE_RETCODE_REJECT,
)
from mt5exec.sim.state import (
    DealEntry,
    OrderState,
    encode_deal,
    encode_order,
)
from mt5exec.sim.state.records import market_order
from mt5exec.sim.symbols import (
    SYMBOL_FILLING_FOK,
)
from mt5exec.terminal.v1 import worker_pb2 as pb


class Plan:
    """One deal worked out before anything changes (see ``FillsMixin._plan``).

    The journal must have a change before it takes effect, and a change the journal cannot take
    must leave the account as it was: so a deal is first planned (every number after it), then
    journaled, then applied.
    """

    __slots__ = (
        "balance",
        "closing",
        "comment",
        "deal",
        "deal_type",
        "entry",
        "exposure",
        "magic",
        "market",
        "new_open",
        "new_side",
        "new_sl",
        "new_tp",
        "new_volume",
        "order",
        "price",
        "profit",
        "reason",
        "request_id",
        "side",
        "target",
        "ticket",
        "time_msc",
        "volume",
    )

    balance: float
    closing: bool
    comment: str
    deal: int
    deal_type: int
    entry: int
    exposure: list[float]
    magic: int
    market: Market
    new_open: float
    new_side: int
    new_sl: float
    new_tp: float
    new_volume: float
    order: int
    price: float
    profit: float
    reason: int
    request_id: int
    side: int
    target: Position | None
    ticket: int
    time_msc: int
    volume: float

    def report(self) -> pb.DealReport:
        return pb.DealReport(
            ticket=self.deal,
            order=self.order,
            position_id=self.ticket,
            symbol=self.market.spec.name,
            type=self.deal_type,
            entry=self.entry,
            volume=self.volume,
            price=self.price,
            profit=self.profit,
            magic=self.magic,
            comment=self.comment,
            time_msc=self.time_msc,
            request_id=self.request_id,
            reason=self.reason,
        )

    def entry_record(self) -> DealEntry:
        """The deal as the journal records it, with the account after it."""
        m = self.market
        e = self.exposure
        return DealEntry(
            self.deal,
            self.order,
            self.ticket,
            self.request_id,
            self.magic,
            self.time_msc,
            self.deal_type,
            self.entry,
            self.reason,
            self.volume,
            self.price,
            self.profit,
            self.balance,
            m.bid_pts,
            m.ticks,
            m.time_msc,
            e[0],
            e[1],
            e[2],
            e[3],
            self.new_side,
            self.new_volume,
            self.new_open,
            self.new_sl,
            self.new_tp,
            m.spec.name,
            self.comment,
        )

    def encode(self) -> bytes:
        return encode_deal(self.entry_record())


class FillsMixin(BrokerCore):
    """Deals: planning, applying, and the market orders that make them."""

    def _slip(self, m: Market) -> int:
        s = m.rules.slippage_points
        return self._slip_rng.randint(-s, s) if s else 0

    def _plan(
        self,
        m: Market,
        side: int,
        volume: float,
        price: float,
        order: int,
        target: Position | None,
        request_id: int,
        magic: int,
        comment: str,
        reason: int,
        sl: float,
        tp: float,
        now: int,
        *,
        deal: int = 0,
        balance: float | None = None,
        exposure: list[float] | None = None,
        others: bool | None = None,
    ) -> Plan:
        """Work out a deal of ``volume`` at ``price`` on ``target`` (None: a new position)
        without changing anything. ``balance``/``exposure``: the account before it, when a
        deal planned earlier in the same change comes first; ``others``: whether positions
        other than ``target`` stay open on ``m`` (default: whether there are any)."""
        plan = Plan()
        plan.market = m
        plan.side = side
        plan.volume = volume
        plan.price = price
        plan.order = order
        plan.deal = deal or self._next_deal
        plan.target = target
        plan.request_id = request_id
        plan.magic = magic
        plan.comment = comment
        plan.reason = reason
        plan.time_msc = now
        plan.deal_type = DEAL_TYPE_BUY if side == ORDER_TYPE_BUY else DEAL_TYPE_SELL
        balance = self.balance if balance is None else balance
        if exposure is None:
            exposure = [m.buy_volume, m.buy_cost, m.sell_volume, m.sell_cost]
        profit = 0.0
        closing = False
        if target is None:
            ticket, new_side, new_volume, new_open = order, side, volume, price
            new_sl, new_tp = sl, tp
            shift(exposure, side, volume, price)
            entry = DEAL_ENTRY_IN
        elif target.side == side:
            # Netting: adding to the position moves its open price to the volume-weighted mean;
            # stops given with the order replace the position's.
            ticket, new_side = target.ticket, side
            new_volume = round(target.volume + volume, 8)
            new_open = (target.price_open * target.volume + price * volume) / new_volume
            new_sl, new_tp = sl or target.sl, tp or target.tp
            shift(exposure, side, volume, price)
            entry = DEAL_ENTRY_IN
        else:
            ticket = target.ticket
            closed = min(volume, target.volume)
            profit = target.profit_at(price, closed)
            balance = round(balance + profit, 2)
            remaining = round(target.volume - volume, 8)
            shift(exposure, target.side, -closed, target.price_open)
            if remaining > VOLUME_EPS:
                new_side, new_volume, new_open = target.side, remaining, target.price_open
                new_sl, new_tp = sl or target.sl, tp or target.tp
                entry = DEAL_ENTRY_OUT
            elif remaining < -VOLUME_EPS:
                # Netting reversal: the position keeps its ticket and flips side (MT5 keeps
                # the position identifier across a reversal); the old stops go with the old side.
                new_side, new_volume, new_open = side, -remaining, price
                new_sl, new_tp = sl, tp
                shift(exposure, side, new_volume, price)
                entry = DEAL_ENTRY_INOUT
            else:
                new_side, new_volume, new_open = target.side, 0.0, target.price_open
                new_sl, new_tp = target.sl, target.tp
                closing = True
                entry = DEAL_ENTRY_OUT
                if not (len(m.positions) > 1 if others is None else others):
                    # Flat: drop accumulated rounding error instead of carrying it forever.
                    exposure = [0.0, 0.0, 0.0, 0.0]
        plan.ticket = ticket
        plan.new_side = new_side
        plan.new_volume = new_volume
        plan.new_open = new_open
        plan.new_sl = new_sl
        plan.new_tp = new_tp
        plan.profit = profit
        plan.balance = balance
        plan.exposure = exposure
        plan.entry = entry
        plan.closing = closing
        return plan

    def _apply_plan(self, plan: Plan) -> None:
        """Make a journaled deal take effect."""
        m = plan.market
        if plan.deal >= self._next_deal:
            self._next_deal = plan.deal + 1
        self.balance = plan.balance
        m.buy_volume, m.buy_cost, m.sell_volume, m.sell_cost = plan.exposure
        target = plan.target
        ticket = plan.ticket
        if target is None:
            pos = Position(
                ticket,
                m,
                plan.side,
                plan.volume,
                plan.price,
                plan.time_msc,
                plan.magic,
                plan.comment,
                plan.new_sl,
                plan.new_tp,
            )
            self._positions[ticket] = pos
            m.positions[ticket] = pos
            if not self._hedging:
                self._netting[m.spec.name] = pos
            self._cache.set_entry(ticket, self._cache.entry(pos))
            if pos.sl or pos.tp:
                self._arm_stops(pos)
        elif plan.closing:
            del self._positions[ticket]
            del m.positions[ticket]
            self._cache.drop_entry(ticket)
            if self._netting.get(m.spec.name) is target:
                del self._netting[m.spec.name]
        else:
            flipped = target.side != plan.new_side
            moved = target.sl != plan.new_sl or target.tp != plan.new_tp
            target.side = plan.new_side
            target.volume = plan.new_volume
            target.price_open = plan.new_open
            target.sl = plan.new_sl
            target.tp = plan.new_tp
            target.changed()
            self._cache.set_entry(ticket, self._cache.entry(target))
            if (flipped or moved) and (target.sl or target.tp):
                self._arm_stops(target)
        self._cache.blob = None
        self._in_trade = False

    def _arm_stops(self, p: Position) -> None:
        m = p.market
        buy = p.side == POSITION_TYPE_BUY
        if p.sl:
            m.arm(2 if buy else 1, m.pts(p.sl))
        if p.tp:
            m.arm(3 if buy else 0, m.pts(p.tp))

    def _deal(self, req: pb.OrderRequest) -> SendOutcome:
        m = market_of(self._markets, req)
        side = req.type
        if side != ORDER_TYPE_BUY and side != ORDER_TYPE_SELL:
            raise Reject(TRADE_RETCODE_INVALID, f"unsupported order type {req.type} for a deal")
        volume = volume_of(m, req.volume)
        filling = req.type_filling
        if filling != ORDER_FILLING_FOK or not m.spec.filling_mode & SYMBOL_FILLING_FOK:
            check_filling(m, filling, pending=False, limit=False)

        # Which position does this deal touch, and does it open exposure?
        target: Position | None = None
        if req.position:
            target = self._positions.get(req.position)
            if target is None:
                raise Reject(TRADE_RETCODE_POSITION_CLOSED, f"position {req.position} not found")
            if target.market is not m:
                raise Reject(
                    TRADE_RETCODE_INVALID,
                    f"position {req.position} is on {target.market.spec.name}",
                )
            if target.side == side:
                raise Reject(
                    TRADE_RETCODE_INVALID,
                    f"closing position {req.position} needs the opposite order type",
                )
            if volume > target.volume + VOLUME_EPS:
                raise Reject(
                    TRADE_RETCODE_INVALID_CLOSE_VOLUME,
                    f"volume {volume} exceeds position volume {target.volume}",
                )
        elif not self._hedging:
            target = self._netting.get(m.spec.name)
        # Exposure this deal adds (0 when it only reduces).
        if target is None or target.side == side:
            added = volume
        else:
            added = max(0.0, volume - target.volume)
        buy = side == ORDER_TYPE_BUY
        if not m.plain:
            check_trade_mode(m, buy, added, self._clock)
        sl = tp = 0.0
        if not req.position and (req.sl or req.tp):
            # The stops belong to the position this deal leaves open.
            res_buy = buy if added > 0.0 or target is None else target.side == POSITION_TYPE_BUY
            check_stops(m, res_buy, m.bid_pts if res_buy else m.ask_pts, req.sl, req.tp)
            sl = m.pts(req.sl) / m.scale if req.sl else 0.0
            tp = m.pts(req.tp) / m.scale if req.tp else 0.0
        price_pts = m.ask_pts if buy else m.bid_pts
        instant = m.instant
        if instant:
            check_deviation(req, m, price_pts, 0)
        self._check_margin(m, added)
        fill = volume
        if m.liquidity != math.inf:
            available = m.available(buy)
            if available < volume - VOLUME_EPS:
                fill = floor_step(available, m.spec.volume_step)
                if filling == ORDER_FILLING_FOK:
                    raise Reject(
                        TRADE_RETCODE_REJECT,
                        f"fill or kill: only {fill} of {volume} lots available",
                    )
                if fill <= 0.0 and filling == ORDER_FILLING_IOC:
                    raise Reject(TRADE_RETCODE_REJECT, "no liquidity at this price")
        if req.check_only:
            closed = realized = 0.0
            if target is not None and target.side != side:
                closed = min(fill, target.volume)
                realized = target.profit_at(price_pts / m.scale, closed)
            return self._checked(req, m, min(added, fill), closed, realized)
        if self.faults.reject_next:
            self._take_reject()
        slip = self._slip(m) if m.slippage else 0
        if slip:
            price_pts += slip if buy else -slip
            if instant:
                check_deviation(req, m, price_pts, slip if buy else -slip)
        return self._market_fill(req, m, side, volume, fill, price_pts / m.scale, target, sl, tp)

    def _market_fill(
        self,
        req: pb.OrderRequest,
        m: Market,
        side: int,
        volume: float,
        fill: float,
        price: float,
        target: Position | None,
        sl: float,
        tp: float,
    ) -> SendOutcome:
        now = self._now_msc()
        order = self._next_order
        comment = req.comment[:COMMENT_MAX]
        filling = req.type_filling
        buy = side == ORDER_TYPE_BUY
        rest: OrderState | None = None
        if fill < volume - VOLUME_EPS:
            # Part of it (IOC, RETURN) or nothing yet (RETURN): the order records the rest.
            if filling == ORDER_FILLING_IOC:
                state = ORDER_STATE_CANCELED
            else:
                state = ORDER_STATE_PARTIAL if fill > 0.0 else ORDER_STATE_PLACED
            rest = market_order(
                order,
                m.spec.name,
                side,
                DEAL_REASON_EXPERT,
                volume,
                price,
                req.magic,
                now,
                req.position,
                comment,
                state=state,
                volume_current=round(volume - fill, 8),
                filling=filling,
            )
            rest.sl, rest.tp = sl, tp
            if state != ORDER_STATE_CANCELED:
                rest.time_done_msc = 0
            if fill <= 0.0:
                self._commit(encode_order(rest))
                self._next_order = order + 1
                self._in_trade = False
                working = self._add_order(m, rest)
                result = pb.OrderResult(
                    request_id=req.request_id,
                    retcode=TRADE_RETCODE_PLACED,
                    order=order,
                    bid=m.bid,
                    ask=m.ask,
                    comment="Order placed",
                    time_msc=now,
                )
                return self._order_outcome(req, result, working)
        plan = self._plan(
            m, side, fill, price, order, target, req.request_id, req.magic, comment,
            DEAL_REASON_EXPERT, sl, tp, now,
        )  # fmt: skip
        if rest is None:
            self._commit_plan(plan)
        else:
            # The position the filled part went to; the rest goes to the same one.
            rest.position_id = plan.ticket
            self._commit_plan(plan, encode_order(rest))
        self._next_order = order + 1
        self._apply_plan(plan)
        if m.liquidity != math.inf:
            m.consume(buy, fill)
        updates: list[pb.OrderUpdate] = []
        if rest is None:
            # Filled at once: no OrderUpdate. The result carries the order's ticket, volume,
            # price and position, and the engine records the order from it.
            orders_changed = False
            retcode = TRADE_RETCODE_DONE
        else:
            # The rest lives on (working, or cancelled by IOC): its state is news.
            if rest.state == ORDER_STATE_PARTIAL:
                info = self._add_order(m, rest).info()
                orders_changed = True
            else:
                info = rest.to_proto()
                orders_changed = False
            updates.append(pb.OrderUpdate(order=info, request_id=req.request_id))
            retcode = TRADE_RETCODE_DONE_PARTIAL
        result = pb.OrderResult(
            request_id=req.request_id,
            retcode=retcode,
            deal=plan.deal,
            order=order,
            volume=fill,
            price=price,
            bid=m.bid,
            ask=m.ask,
            comment="Request executed" if rest is None else "Request executed partially",
            time_msc=now,
            position=plan.ticket,
        )
        return SendOutcome(
            result,
            [plan.report()],
            updates,
            positions_changed=True,
            orders_changed=orders_changed,
            account_changed=True,
        )
