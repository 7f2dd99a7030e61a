"""``SimBroker``: the simulated MT5 account, composed of the parts of this package."""

from __future__ import annotations

import math
import os
import random
import time
from collections.abc import Callable

from mt5exec.reasons import Reason
from mt5exec.sim.bars import Bars
from mt5exec.sim.broker.config import SimConfig
from mt5exec.sim.broker.outcomes import Activity, Reject, SendOutcome
from mt5exec.sim.broker.pending import PendingMixin
from mt5exec.sim.broker.persistence import PersistenceMixin
from mt5exec.sim.broker.prices import Market, rate_to_account
from mt5exec.sim.broker.snapshots import PositionCache, SnapshotsMixin
from mt5exec.sim.constants import (
    ORDER_STATE_EXPIRED,
    TRADE_ACTION_CLOSE_BY,
    TRADE_ACTION_DEAL,
    TRADE_ACTION_MODIFY,
    TRADE_ACTION_PENDING,
    TRADE_ACTION_REMOVE,
    TRADE_ACTION_SLTP,
    TRADE_RETCODE_INVALID,
)
from mt5exec.sim.faults import FaultState
from mt5exec.sim.state import (
    AccountState,
    MemoryJournal,
    Retention,
    StateError,
    StateStore,
)
from mt5exec.sim.symbols import (
    DEFAULT_SYMBOLS,
    SymbolRules,
    SymbolSettings,
    SymbolSpec,
    resolve,
)
from mt5exec.sim.tape import Tape
from mt5exec.terminal.v1 import worker_pb2 as pb


class SimBroker(PendingMixin, SnapshotsMixin, PersistenceMixin):
    """A simulated MT5 account on a simulated market.

    ``clock`` returns seconds since the epoch (``time.time`` by default); it is the server's
    clock: it stamps ticks, deals, positions and results, and it decides sessions and
    expirations. Tests inject a clock to make every output reproducible.

    What it does, and what it does where MT5 leaves the behaviour open, is specified in
    docs/simulated-broker.md. The parts: ``prices`` (markets), ``checks``, ``fills``,
    ``positions``, ``pending``, ``snapshots``, ``persistence``; this class composes them.
    """

    def __init__(
        self,
        config: SimConfig,
        clock: Callable[[], float] = time.time,
        *,
        state: AccountState | None = None,
    ) -> None:
        """A fresh account from ``config``, or the saved account ``state`` when it is given.

        A saved account keeps its balance, positions, orders, ticket counters and prices; from
        ``config`` only the symbols, seed, tick rate, leverage and trading rules apply
        (``ValueError`` if its login, currency or margin mode differ, or if it holds positions
        or orders on symbols not configured).
        """
        config.check()
        self.config = config
        self._clock = clock
        now = self._now_msc()
        default = config.symbol_settings.get("*", SymbolSettings())
        # dict.fromkeys keeps the configured order and drops duplicates.
        self._markets = {}
        for name in dict.fromkeys(config.symbols):
            own = config.symbol_settings.get(name)
            spec, rules = resolve(DEFAULT_SYMBOLS[name], own.over(default) if own else default)
            self._markets[name] = Market(spec, rules, config.seed, now)
        for m in self._markets.values():
            m.rate = rate_to_account(self._markets, m.spec.currency_profit, config.currency)
        self._hedging = config.margin_mode == "hedging"
        self._leverage = config.leverage
        self.balance = round(config.initial_balance, 2)
        self.faults = FaultState()
        self._positions = {}
        self._netting = {}
        self._orders = {}
        self._next_order = 100_000_001
        self._next_deal = 500_000_001
        # The PositionSnapshot, cached in pieces (see PositionCache).
        self._cache = PositionCache()
        self.journal = None
        self._memory = MemoryJournal()
        self._sink = self._memory
        self.restored = None
        self._in_trade = False
        self.activity = Activity()
        self._slip_rng = random.Random(f"{config.seed}:slippage")
        self._margin_call = False
        self._next_timer = math.inf
        self._any_open = True
        if state is not None:
            self._restore(state)
        # M1 bars from the ticks from now on, a seeded backfill before (mt5exec.sim.bars).
        self.bars = {
            name: Bars(config.seed, name, m.step, m.spread, self._clock(), m.bid_pts, m.scale)
            for name, m in self._markets.items()
        }
        # Every tick from now on (mt5exec.sim.tape).
        self.tapes = {name: Tape() for name in self._markets}
        self._sessions(self._clock(), report=False)
        self._plan_timer()

    @classmethod
    def open(
        cls,
        config: SimConfig,
        path: str | os.PathLike[str],
        clock: Callable[[], float] = time.time,
        retention: Retention | None = None,
    ) -> SimBroker:
        """The account saved at ``path`` (a fresh one if there is none), journaled from now on.

        Damaged files are repaired or set aside (see ``mt5exec.sim.state``); ``StateError`` only
        when the files cannot be used at all. ``close`` writes the final snapshot. ``retention``:
        how much history the journal keeps when it is compacted (``maybe_checkpoint``).
        """
        store, loaded = StateStore.open(
            path,
            login=config.login,
            currency=config.currency,
            margin_mode=config.margin_mode,
            symbols=config.symbols,
            retention=retention,
        )
        try:
            broker = cls(config, clock, state=loaded.account)
            for name, saved in loaded.markets.items():
                m = broker._markets.get(name)
                if m is not None and saved.ticks >= m.ticks:
                    m.restore(saved.bid_pts, saved.ticks, saved.time_msc)
            broker._next_order = max(broker._next_order, loaded.next_order) + loaded.skip_tickets
            broker._next_deal = max(broker._next_deal, loaded.next_deal) + loaded.skip_tickets
            store.begin(broker.export_state())
        except OSError as e:
            store.close()
            raise StateError(f"{path}: cannot write the state files: {e}") from e
        except BaseException:
            store.close()
            raise
        broker.journal = store
        broker._sink = store
        broker._memory = None
        broker.restored = loaded
        return broker

    @property
    def symbols(self) -> list[str]:
        return list(self._markets)

    @property
    def trading_symbols(self) -> list[str]:
        """The symbols inside their sessions (as of the last ``poll``): the ones that tick."""
        return [name for name, m in self._markets.items() if m.is_open]

    def symbol_specs(self) -> list[SymbolSpec]:
        return [m.spec for m in self._markets.values()]

    def symbol_infos(self) -> list[pb.SymbolInfo]:
        return [m.spec.to_proto() for m in self._markets.values()]

    def symbol_rules(self, symbol: str) -> SymbolRules:
        """``symbol``'s trading rules (execution, sessions); KeyError when unknown."""
        return self._markets[symbol].rules

    def advance(self, symbol: str, time_msc: int | None = None) -> tuple[float, float]:
        """Move ``symbol`` one tick along its random walk; returns the new ``(bid, ask)``.

        The cheap form for the worker's tick loop, which stamps a whole batch with one time.
        Orders and stops the tick reaches fire at once (their changes go to ``activity``).
        """
        m = self._markets[symbol]
        m.advance()
        return self._ticked(symbol, m, time_msc)

    def set_price(
        self, symbol: str, bid: float, time_msc: int | None = None
    ) -> tuple[float, float]:
        """A tick of ``symbol`` at ``bid`` (ask = bid + spread) instead of the walk's next step,
        as a replayed tick would be; triggers fire as on any tick. Returns ``(bid, ask)``."""
        m = self._markets[symbol]
        m.jump(m.pts(bid))
        return self._ticked(symbol, m, time_msc)

    def _ticked(self, symbol: str, m: Market, time_msc: int | None) -> tuple[float, float]:
        """After a tick of ``m``: stamp it, record it in the bars and the tape, and fire the
        orders and stops it reaches."""
        m.time_msc = self._now_msc() if time_msc is None else time_msc
        self.bars[symbol].on_tick(m.time_msc, m.bid_pts, m.spread)
        self.tapes[symbol].add(m.time_msc, m.bid_pts, m.ask_pts)
        if m.armed and m.triggered():
            self._fire(m)
        return m.bid, m.ask

    def tick(self, symbol: str, time_msc: int | None = None) -> pb.Tick:
        """Move ``symbol`` one tick and return it as a protocol ``Tick``."""
        bid, ask = self.advance(symbol, time_msc)
        return pb.Tick(symbol=symbol, bid=bid, ask=ask, time_msc=self._markets[symbol].time_msc)

    def quote(self, symbol: str) -> tuple[float, float, int]:
        """The latest ``(bid, ask, time_msc)`` of ``symbol``, without moving it."""
        m = self._markets[symbol]
        return m.bid, m.ask, m.time_msc

    def apply_fault(self, fault: pb.FaultInjection) -> None:
        """Record an injected fault.

        A non-zero ``delay_ms`` replaces the current delay and ``reject_next`` adds to the
        pending rejections; an empty ``FaultInjection`` clears both (proto3 cannot tell "set to
        0" from "not set", so this is the one way to turn the delay off).
        """
        self.faults.apply(fault)

    def send(self, req: pb.OrderRequest) -> SendOutcome:
        """Execute one trade request, as ``order_send`` would on an MT5 terminal.

        With ``req.check_only`` it is checked exactly as a real send would be (``order_check``)
        and answered with retcode 0 or the error, plus the account after the hypothetical
        trade; nothing changes and nothing is journaled.
        """
        action = req.action
        try:
            if action == TRADE_ACTION_DEAL:
                return self._deal(req)
            if action == TRADE_ACTION_PENDING:
                return self._place(req)
            if action == TRADE_ACTION_MODIFY:
                return self._modify(req)
            if action == TRADE_ACTION_REMOVE:
                return self._remove(req)
            if action == TRADE_ACTION_SLTP:
                return self._sltp(req)
            if action == TRADE_ACTION_CLOSE_BY:
                return self._close_by(req)
            raise Reject(TRADE_RETCODE_INVALID, f"unsupported trade action {action}")
        except Reject as r:
            m = self._markets.get(req.symbol)
            if m is None:
                order = self._orders.get(req.order)
                m = order.market if order is not None else None
            return self._fail(req, r.retcode, r.comment, m, r.bid, r.ask)

    @property
    def next_timer(self) -> float:
        """Epoch seconds (server clock) at which ``poll`` next has work; inf: none pending."""
        return self._next_timer

    @property
    def market_open(self) -> bool:
        """Whether any symbol is inside its sessions (as of the last ``poll``)."""
        return self._any_open

    def poll(self) -> None:
        """Run what is due by the clock: order expirations and session changes."""
        now = self._clock()
        if now < self._next_timer:
            return
        retry = False
        for o in list(self._orders.values()):
            if o.expiration and o.expiration <= now:
                try:
                    self._note(self._finish(o, ORDER_STATE_EXPIRED))
                except Reject:
                    retry = True
        self._sessions(now, report=True)
        self._plan_timer()
        if retry:
            # The journal refused: try again in a second rather than on every pass.
            self._next_timer = min(self._next_timer, now + 1.0)

    def _sessions(self, now: float, *, report: bool) -> None:
        changed = []
        for m in self._markets.values():
            sessions = m.rules.sessions
            is_open = sessions.always or sessions.is_open(now)
            if is_open != m.is_open:
                m.is_open = is_open
                changed.append(m.spec.name)
        any_open = any(m.is_open for m in self._markets.values())
        if report and any_open != self._any_open:
            self.activity.events.append(
                pb.WorkerEvent(
                    kind="MARKET_OPEN" if any_open else Reason.MARKET_CLOSED,
                    message=f"{', '.join(changed)} {'opened' if any_open else 'closed'}",
                )
            )
        self._any_open = any_open

    def _plan_timer(self) -> None:
        now = self._clock()
        nxt = math.inf
        for o in self._orders.values():
            if o.expiration and o.expiration < nxt:
                nxt = o.expiration
        for m in self._markets.values():
            if not m.rules.sessions.always:
                nxt = min(nxt, m.rules.sessions.next_change(now))
        self._next_timer = nxt

    def take_activity(self) -> Activity | None:
        """The changes made since the last call without a request, or None if there were none."""
        act = self.activity
        if not act:
            return None
        self.activity = Activity()
        return act
