"""The shared state of the simulated broker and the rules every part of it follows."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import TYPE_CHECKING

from mt5exec.sim.bars import Bars
from mt5exec.sim.broker.config import SimConfig
from mt5exec.sim.broker.outcomes import Activity, Reject, SendOutcome
from mt5exec.sim.broker.prices import Market
from mt5exec.sim.broker.records import Order, Position
from mt5exec.sim.constants import (
    TRADE_RETCODE_CHECK_OK,
    TRADE_RETCODE_ERROR,
    TRADE_RETCODE_NO_MONEY,
    TRADE_RETCODE_REJECT,
)
from mt5exec.sim.faults import FaultState
from mt5exec.sim.state import (
    Journal,
    Loaded,
    MemoryJournal,
    OrderState,
    StateStore,
)
from mt5exec.sim.tape import Tape
from mt5exec.terminal.v1 import worker_pb2 as pb

if TYPE_CHECKING:
    from mt5exec.sim.broker.fills import Plan
    from mt5exec.sim.broker.snapshots import PositionCache


class BrokerCore:
    """The state the parts of the broker share, and the rules they share: a change is journaled
    before it takes effect (``_commit``), the margin check, check results, the working orders.

    The trade logic (``fills``, ``positions``, ``pending``) and the reports (``snapshots``,
    ``persistence``) are mixins over this state: a trade changes the balance, the positions,
    the orders and the ticket counters together, under one journal record, so they share one
    account rather than each owning a piece of it. What needs no account is a component of its
    own: the prices (``prices.Market``), the checks (``checks``), the position snapshot cache
    (``snapshots.PositionCache``), the journal (``mt5exec.sim.state``).
    """

    config: SimConfig
    _clock: Callable[[], float]
    _markets: dict[str, Market]
    _hedging: bool
    _leverage: int
    balance: float
    faults: FaultState
    _positions: dict[int, Position]
    # Netting accounts hold at most one position per symbol.
    _netting: dict[str, Position]
    # Working orders of all symbols, by ticket.
    _orders: dict[int, Order]
    _next_order: int
    _next_deal: int
    _cache: PositionCache
    # The durable journal (SimBroker.open), or None; every change goes to _sink, which is the
    # journal or, without one, a bounded in-memory history for reconciliation.
    journal: StateStore | None
    _memory: MemoryJournal | None
    _sink: Journal
    # What SimBroker.open recovered, for the worker to report.
    restored: Loaded | None
    # True from a change's journal write until it took effect in memory: a snapshot taken then
    # (an exception or signal cut the change short) would claim a record it lacks.
    _in_trade: bool
    # Changes made without a request, for the worker to report.
    activity: Activity
    _slip_rng: random.Random
    _margin_call: bool
    # Epoch seconds of the next expiration or session change; inf: none pending.
    _next_timer: float
    _any_open: bool
    bars: dict[str, Bars]
    tapes: dict[str, Tape]

    def _now_msc(self) -> int:
        return int(self._clock() * 1000.0)

    def now(self) -> float:
        """The server's clock, epoch seconds."""
        return self._clock()

    def _floating_and_margin(self) -> tuple[float, float]:
        profit = 0.0
        margin = 0.0
        lev = self._leverage
        for m in self._markets.values():
            if m.positions:
                profit += m.floating()
                margin += m.margin(lev)
        return profit, margin

    def _fail(
        self,
        req: pb.OrderRequest,
        retcode: int,
        comment: str,
        m: Market | None,
        bid: float = 0.0,
        ask: float = 0.0,
    ) -> SendOutcome:
        result = pb.OrderResult(
            request_id=req.request_id,
            retcode=retcode,
            comment=comment,
            time_msc=self._now_msc(),
        )
        if bid:
            result.bid, result.ask = bid, ask
        elif m is not None:
            result.bid, result.ask = m.bid, m.ask
        if req.check_only:
            self._figures(result, None, 0.0, 0.0, 0.0)
        return SendOutcome(result)

    def _figures(
        self,
        result: pb.OrderResult,
        m: Market | None,
        added: float,
        closed: float,
        realized: float,
    ) -> None:
        """Put the account after a hypothetical trade into a check result: ``added`` lots of
        new exposure and ``closed`` lots closed on ``m``, ``realized`` profit booked."""
        profit, margin = self._floating_and_margin()
        if m is not None:
            lev = self._leverage
            margin = max(0.0, margin + m.margin_of(added, lev) - m.margin_of(closed, lev))
        equity = round(self.balance + profit, 2)
        margin = round(margin, 2)
        result.balance = round(self.balance + realized, 2)
        result.equity = equity
        result.margin = margin
        result.margin_free = round(equity - margin, 2)
        result.margin_level = round(equity / margin * 100.0, 2) if margin > 0 else 0.0

    def _checked(
        self,
        req: pb.OrderRequest,
        m: Market | None,
        added: float = 0.0,
        closed: float = 0.0,
        realized: float = 0.0,
    ) -> SendOutcome:
        result = pb.OrderResult(
            request_id=req.request_id,
            retcode=TRADE_RETCODE_CHECK_OK,
            comment="Done",
            time_msc=self._now_msc(),
        )
        if m is not None:
            result.bid, result.ask = m.bid, m.ask
        self._figures(result, m, added, closed, realized)
        return SendOutcome(result)

    def _check_margin(self, m: Market, added: float) -> None:
        if added > 0.0:
            profit, margin = self._floating_and_margin()
            free = self.balance + profit - margin
            required = m.margin_of(added, self._leverage)
            if required > free:
                raise Reject(
                    TRADE_RETCODE_NO_MONEY,
                    f"no money: margin {required:.2f} needed, {free:.2f} free",
                )

    def _take_reject(self) -> None:
        # A server-side rejection comes after the terminal's own checks, as on a real account.
        if self.faults.take_reject():
            raise Reject(TRADE_RETCODE_REJECT, "rejected (fault injection)")

    def _commit(self, *entries: bytes) -> None:
        """Journal one change; a change the journal cannot take is refused (and not made)."""
        self._in_trade = True
        try:
            self._sink.commit(*entries)
        except OSError as e:
            self._in_trade = False
            raise Reject(TRADE_RETCODE_ERROR, f"trade not saved: {e.strerror or e}") from None

    def _commit_plan(self, plan: Plan, extra: bytes = b"") -> None:
        self._in_trade = True
        try:
            self._sink.commit_deal(plan.entry_record(), extra)
        except OSError as err:
            self._in_trade = False
            raise Reject(TRADE_RETCODE_ERROR, f"trade not saved: {err.strerror or err}") from None

    @staticmethod
    def _order_outcome(req: pb.OrderRequest, result: pb.OrderResult, o: Order) -> SendOutcome:
        """The outcome of a request that placed or changed the working order ``o``."""
        return SendOutcome(
            result,
            order_updates=[pb.OrderUpdate(order=o.info(), request_id=req.request_id)],
            orders_changed=True,
        )

    def _add_order(self, m: Market, s: OrderState) -> Order:
        o = Order(m, s)
        self._orders[o.ticket] = o
        m.orders[o.ticket] = o
        m.arm(*o.trigger())
        if o.expiration and o.expiration < self._next_timer:
            self._next_timer = o.expiration
        return o

    def _drop_order(self, o: Order) -> None:
        del self._orders[o.ticket]
        del o.market.orders[o.ticket]

    def _note(self, update: pb.OrderUpdate) -> None:
        self.activity.order_updates.append(update)
        self.activity.orders_changed = True
