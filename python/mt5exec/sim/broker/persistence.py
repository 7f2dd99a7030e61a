"""The durable account: restoring and exporting it for ``mt5exec.sim.state``, checkpoints, and the
order and deal history that reconciliation searches."""

from __future__ import annotations

from collections.abc import Iterable

from mt5exec.sim.broker.config import CHECKPOINT_EVERY
from mt5exec.sim.broker.core import BrokerCore
from mt5exec.sim.broker.prices import shift
from mt5exec.sim.broker.records import Order, Position
from mt5exec.sim.state import (
    AccountState,
    MarketState,
    MemoryJournal,
    PositionState,
    read_history,
)
from mt5exec.terminal.v1 import worker_pb2 as pb


class PersistenceMixin(BrokerCore):
    """The account as the state files keep it."""

    def _restore(self, state: AccountState) -> None:
        config = self.config
        if (state.login, state.currency, state.margin_mode) != (
            config.login,
            config.currency,
            config.margin_mode,
        ):
            raise ValueError(
                f"saved account {state.login} ({state.currency}, {state.margin_mode}) is not the "
                f"configured {config.login} ({config.currency}, {config.margin_mode})"
            )
        self.balance = state.balance
        self._next_order = max(self._next_order, state.next_order)
        self._next_deal = max(self._next_deal, state.next_deal)
        for name, saved in state.markets.items():
            m = self._markets.get(name)
            if m is not None:
                m.restore(saved.bid_pts, saved.ticks, saved.time_msc)
                m.buy_volume, m.buy_cost = saved.buy_volume, saved.buy_cost
                m.sell_volume, m.sell_cost = saved.sell_volume, saved.sell_cost
        for p in state.positions.values():
            m = self._markets.get(p.symbol)
            if m is None:
                raise ValueError(f"saved position {p.ticket} is on unconfigured {p.symbol}")
            pos = Position(
                p.ticket,
                m,
                p.side,
                p.volume,
                p.price_open,
                p.time_msc,
                p.magic,
                p.comment,
                p.sl,
                p.tp,
            )
            self._positions[p.ticket] = pos
            m.positions[p.ticket] = pos
            self._cache.set_entry(p.ticket, b"")
            if not self._hedging:
                self._netting[p.symbol] = pos
            self._next_order = max(self._next_order, p.ticket + 1)
            if p.symbol not in state.markets:
                # No saved sums (not written by this module): rebuild them from the positions.
                exposure = [m.buy_volume, m.buy_cost, m.sell_volume, m.sell_cost]
                shift(exposure, p.side, p.volume, p.price_open)
                m.buy_volume, m.buy_cost, m.sell_volume, m.sell_cost = exposure
        for o in state.orders.values():
            m = self._markets.get(o.symbol)
            if m is None:
                raise ValueError(f"saved order {o.ticket} is on unconfigured {o.symbol}")
            order = Order(m, o)
            self._orders[o.ticket] = order
            m.orders[o.ticket] = order
            self._next_order = max(self._next_order, o.ticket + 1)
        for m in self._markets.values():
            m.rearm()

    def export_state(self) -> AccountState:
        """The account as ``mt5exec.sim.state`` saves it (everything but the history)."""
        config = self.config
        return AccountState(
            login=config.login,
            currency=config.currency,
            margin_mode=config.margin_mode,
            balance=self.balance,
            next_order=self._next_order,
            next_deal=self._next_deal,
            markets={
                name: MarketState(
                    m.bid_pts,
                    m.ticks,
                    m.time_msc,
                    m.buy_volume,
                    m.buy_cost,
                    m.sell_volume,
                    m.sell_cost,
                )
                for name, m in self._markets.items()
            },
            positions={
                t: PositionState(
                    t,
                    p.market.spec.name,
                    p.side,
                    p.volume,
                    p.price_open,
                    p.time_msc,
                    p.sl,
                    p.tp,
                    p.magic,
                    p.comment,
                )
                for t, p in self._positions.items()
            },
            # price_current is not state: pin it so that equal accounts export equal states.
            orders={t: o.record(price_current=0.0) for t, o in self._orders.items()},
        )

    def checkpoint(self) -> bool:
        """Write a snapshot now (the journal alone already holds every change); True if it did."""
        if self.journal is None or self._in_trade:
            return False
        self.journal.snapshot(self.export_state())
        return True

    def maybe_checkpoint(self, every: int = CHECKPOINT_EVERY, *, wait: bool = False) -> bool:
        """Snapshot once ``every`` changes were journaled since the last one; True if it did.

        Also compacts the journal when it is due: starts a compaction (on a thread), and puts
        it in place with a snapshot at a later call once its thread is done (``wait``: at
        once). Raises ``OSError`` when a snapshot or a compaction failed (try again later)."""
        journal = self.journal
        if journal is None or self._in_trade:
            return False
        if journal.finish_compaction(wait=wait):
            return self.checkpoint()  # the compacted journal's first snapshot
        if journal.compaction_due:
            journal.start_compaction(self.export_state(), self._now_msc())
            if wait and journal.finish_compaction(wait=True):
                return self.checkpoint()
        if journal.records_since_snapshot < every:
            return False
        return self.checkpoint()

    def save_prices(self) -> None:
        """Save the latest prices, so that a crash does not send the walk back to the last trade."""
        if self.journal is not None:
            self.journal.save_prices(
                (name, m.bid_pts, m.ticks, m.time_msc) for name, m in self._markets.items()
            )

    def close(self, *, snapshot: bool = True) -> None:
        """Detach the journal, writing a final snapshot first unless ``snapshot`` is False."""
        journal = self.journal
        if journal is None:
            return
        self.journal = None
        self._memory = MemoryJournal()
        self._sink = self._memory
        try:
            if snapshot and not self._in_trade:
                journal.snapshot(self.export_state())
        finally:
            journal.close()

    def history(
        self, comments: Iterable[str] | None = None, from_time_msc: int = 0
    ) -> tuple[list[pb.OrderInfo], list[pb.DealReport]]:
        """Orders (working ones as they are now) and deals from the journal, oldest first,
        optionally only those with one of ``comments`` and changed since ``from_time_msc``."""
        wanted = None if comments is None else set(comments)
        if self.journal is not None:
            orders, deals = read_history(
                self.journal.path, wanted, from_time_msc, self.journal.index
            )
        elif self._memory is not None:
            orders, deals = self._memory.history(wanted, from_time_msc)
        else:  # pragma: no cover - there is always one of the two
            orders, deals = [], []
        live = {t: o for t, o in self._orders.items() if wanted is None or o.comment in wanted}
        merged = [live.pop(o.ticket).info() if o.ticket in live else o for o in orders]
        merged.extend(o.info() for o in live.values())
        merged.sort(key=lambda o: o.ticket)
        return merged, deals

    def reconcile(self, req: pb.ReconcileRequest) -> pb.ReconcileResult:
        """What the account knows of orders whose comment is one of ``req.comments``: every
        working and historical one (changed since ``from_time_msc``; working ones always) and
        the deals with one of those comments or of one of those orders."""
        orders, deals = self.history(req.comments, req.from_time_msc)
        return pb.ReconcileResult(request_id=req.request_id, orders=orders, deals=deals)
