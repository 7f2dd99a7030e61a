"""The terminal that ``mt5exec.mt5.simterminal`` attaches to: a ``SimBroker`` behind it, prices
that move with wall time, and the history the terminal keeps (see simterminal's docstring)."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable
from pathlib import Path

from mt5exec.mt5 import constants as c
from mt5exec.mt5.simterminal_config import TerminalConfig
from mt5exec.mt5.simterminal_types import (
    SymbolInfo,
    Tick,
    TradeDeal,
    TradeOrder,
    TradePosition,
)
from mt5exec.sim.broker import SimBroker, SimConfig
from mt5exec.sim.constants import ACTIVE_STATES
from mt5exec.sim.state.records import market_order
from mt5exec.sim.symbols import DEFAULT_SYMBOLS, SymbolSettings, SymbolSpec, resolve
from mt5exec.terminal.v1 import worker_pb2 as pb

STATE_NAME = "sim_state"
# Ticks kept per symbol for copy_ticks_from / copy_ticks_range.
TICK_HISTORY = 20_000
# After a long pause the walk does not replay hours of ticks: at most this many per symbol.
MAX_CATCH_UP_TICKS = 2_000


class Feed:
    """Moves the broker's prices along with wall time and keeps the recent ticks."""

    def __init__(self, broker: SimBroker, rate: float) -> None:
        self.broker = broker
        self.period = 1.0 / rate if rate > 0 else 0.0
        now = time.time()
        self.next_tick = now + self.period
        self.ticks: dict[str, deque[Tick]] = {}
        self.high_low: dict[str, list[float]] = {}
        for name in broker.symbols:
            bid, ask, t_msc = broker.quote(name)
            # A restored market carries the time of its last saved tick; the terminal shows it.
            t_msc = t_msc or int(now * 1000)
            first = Tick(t_msc // 1000, bid, ask, 0.0, 0, t_msc, _FLAGS_QUOTE, 0.0)
            self.ticks[name] = deque([first], maxlen=TICK_HISTORY)
            self.high_low[name] = [bid, bid, ask, ask]

    def catch_up(self) -> bool:
        """Advance the trading symbols by the ticks due since the last call; True if any."""
        if not self.period:
            return False
        now = time.time()
        if now < self.next_tick:
            return False
        due = int((now - self.next_tick) / self.period) + 1
        start = self.next_tick
        if due > MAX_CATCH_UP_TICKS:
            # Skip the stretch nobody watched; the walk goes on from the latest price.
            start = now - (MAX_CATCH_UP_TICKS - 1) * self.period
            due = MAX_CATCH_UP_TICKS
        self.next_tick = start + due * self.period
        # Symbols outside their sessions do not tick.
        symbols = self.broker.trading_symbols
        if not symbols:
            return False
        advance = self.broker.advance
        for i in range(due):
            t_msc = int((start + i * self.period) * 1000.0)
            for name in symbols:
                # Orders and stops the tick reaches fire inside advance (broker activity).
                self.record(name, *advance(name, t_msc), t_msc)
        return True

    def record(self, name: str, bid: float, ask: float, t_msc: int) -> None:
        ticks = self.ticks[name]
        prev = ticks[-1]
        flags = (_FLAG_BID if bid != prev.bid else 0) | (_FLAG_ASK if ask != prev.ask else 0)
        if not flags:
            # A step of the walk that changed nothing is no tick for the terminal.
            return
        # The deque may hold two ticks of the same millisecond at very high rates.
        ticks.append(Tick(t_msc // 1000, bid, ask, 0.0, 0, t_msc, flags, 0.0))
        hl = self.high_low[name]
        if bid > hl[0]:
            hl[0] = bid
        if bid < hl[1]:
            hl[1] = bid
        if ask > hl[2]:
            hl[2] = ask
        if ask < hl[3]:
            hl[3] = ask

    def last(self, name: str) -> Tick:
        return self.ticks[name][-1]

    def select(self, name: str, from_msc: int, to_msc: int | None, count: int | None) -> list[Tick]:
        out: list[Tick] = []
        for t in self.ticks[name]:
            if t.time_msc < from_msc:
                continue
            if to_msc is not None and t.time_msc > to_msc:
                break
            out.append(t)
            if count is not None and len(out) >= count:
                break
        return out


_FLAG_BID = c.TICK_FLAG_BID
_FLAG_ASK = c.TICK_FLAG_ASK
_FLAGS_QUOTE = c.TICK_FLAG_BID | c.TICK_FLAG_ASK


def trade_order(o: pb.OrderInfo, reason: int) -> TradeOrder:
    return TradeOrder(
        ticket=o.ticket,
        time_setup=o.time_setup_msc // 1000,
        time_setup_msc=o.time_setup_msc,
        time_done=o.time_done_msc // 1000,
        time_done_msc=o.time_done_msc,
        time_expiration=o.time_expiration,
        type=o.type,
        type_time=o.type_time,
        type_filling=o.type_filling,
        state=o.state,
        magic=o.magic,
        position_id=o.position_id,
        position_by_id=0,
        reason=reason,
        volume_initial=o.volume_initial,
        volume_current=o.volume_current,
        price_open=o.price_open,
        sl=o.sl,
        tp=o.tp,
        price_current=o.price_current,
        price_stoplimit=o.price_stoplimit,
        symbol=o.symbol,
        comment=o.comment,
        external_id="",
    )


class Session:
    """One attached terminal: its directory, config, broker, prices and history.

    The history (``history_*_get``) is read from the broker's journal once at attach time, then
    kept up to date from what the broker reports: the outcome of each ``order_send`` and the
    activity it had on its own (triggered orders, SL/TP, stop-outs, expirations).
    """

    def __init__(self, directory: Path, cfg: TerminalConfig, portable: bool) -> None:
        self.dir = directory
        self.cfg = cfg
        self.portable = portable
        sim = SimConfig(
            symbols=list(cfg.symbols),
            seed=cfg.seed,
            tick_rate=cfg.tick_rate,
            initial_balance=cfg.initial_balance,
            leverage=cfg.leverage,
            currency=cfg.currency,
            margin_mode=cfg.margin_mode,
            login=cfg.login,
            stop_out_level=cfg.stop_out_level,
            margin_call_level=cfg.margin_call_level,
            symbol_settings=dict(cfg.symbol_settings),
        )
        self.state_path = directory / STATE_NAME
        self.broker = SimBroker.open(sim, self.state_path)
        self.specs: dict[str, SymbolSpec] = {s.name: s for s in self.broker.symbol_specs()}
        default = cfg.symbol_settings.get("*", SymbolSettings())
        self.execution: dict[str, int] = {}
        for name in self.specs:
            own = cfg.symbol_settings.get(name)
            _, rules = resolve(DEFAULT_SYMBOLS[name], own.over(default) if own else default)
            self.execution[name] = rules.execution
        self.feed = Feed(self.broker, cfg.tick_rate)
        self.selected: set[str] = set()
        self.request_seq = 0
        self.deals: dict[int, TradeDeal] = {}
        self.history_orders: dict[int, TradeOrder] = {}
        # ORDER_REASON_* of orders, from their deals (an SL deal's order is an SL order).
        self.order_reasons: dict[int, int] = {}
        orders, deals = self.broker.history()
        self.absorb(deals, [pb.OrderUpdate(order=o) for o in orders])

    def close(self) -> None:
        self.broker.close()

    # -- history ---------------------------------------------------------------------------

    def absorb(
        self, deals: Iterable[pb.DealReport], updates: Iterable[pb.OrderUpdate], filling: int = 0
    ) -> None:
        """Record deals and order changes the broker reported. A deal's order that has no
        update (a market order filled at once, with ``filling``) is made up from the deal, as
        the broker's history does."""
        deals = list(deals)
        for d in deals:
            self._record_deal(d)
        named = set()
        for u in updates:
            o = u.order
            named.add(o.ticket)
            if o.state in ACTIVE_STATES:
                continue  # a working order: orders_get asks the broker
            reason = self.order_reasons.get(o.ticket, c.ORDER_REASON_EXPERT)
            self.history_orders[o.ticket] = trade_order(o, reason)
        for d in deals:
            if d.order and d.order not in named and d.order not in self.history_orders:
                made_up = market_order(
                    d.order,
                    d.symbol,
                    d.type,
                    d.reason,
                    d.volume,
                    d.price,
                    d.magic,
                    d.time_msc,
                    d.position_id,
                    d.comment,
                )
                made_up.type_filling = filling
                reason = self.order_reasons.get(d.order, c.ORDER_REASON_EXPERT)
                self.history_orders[d.order] = trade_order(made_up.to_proto(), reason)

    def _record_deal(self, d: pb.DealReport) -> None:
        reason = d.reason
        if reason == c.DEAL_REASON_CLIENT:
            # Journals written before deal reasons existed: every deal answered a request made
            # through this API, which MT5 records as an "expert" trade.
            reason = c.DEAL_REASON_EXPERT
        self.deals[d.ticket] = TradeDeal(
            ticket=d.ticket,
            order=d.order,
            time=d.time_msc // 1000,
            time_msc=d.time_msc,
            type=d.type,
            entry=d.entry,
            magic=d.magic,
            position_id=d.position_id,
            reason=reason,
            volume=d.volume,
            price=d.price,
            commission=d.commission,
            swap=d.swap,
            profit=d.profit,
            fee=0.0,
            symbol=d.symbol,
            comment=d.comment,
            external_id="",
        )
        if d.order:
            self.order_reasons[d.order] = _ORDER_REASON.get(reason, c.ORDER_REASON_EXPERT)

    # -- prices and account -------------------------------------------------------------------

    def catch_up(self) -> None:
        """Bring the market to now: timers, ticks, stop-out, and what the broker did on its own."""
        broker = self.broker
        if broker.now() >= broker.next_timer:
            broker.poll()  # expirations, sessions opening and closing
        if self.feed.catch_up():
            broker.check_margin()
        self.take_activity()

    def take_activity(self) -> None:
        act = self.broker.take_activity()
        if act is not None:
            self.absorb(act.deals, act.order_updates)

    def set_price(self, name: str, bid: float) -> None:
        """A tick at ``bid`` (test hook): triggers fire as on any tick."""
        t_msc = int(time.time() * 1000.0)
        self.feed.record(name, *self.broker.set_price(name, bid, t_msc), t_msc)
        self.broker.check_margin()
        self.take_activity()

    def mid(self, name: str) -> float:
        if name in self.specs:
            bid, ask, _ = self.broker.quote(name)
            return (bid + ask) / 2.0
        spec = DEFAULT_SYMBOLS.get(name)
        return spec.start_price if spec is not None else 1.0

    def to_account(self, currency: str) -> float:
        """Rate from ``currency`` to the account currency (1.0 when no pair links them)."""
        account = self.cfg.currency
        if currency == account:
            return 1.0
        for spec in [*self.specs.values(), *DEFAULT_SYMBOLS.values()]:
            if spec.currency_base == currency and spec.currency_profit == account:
                return self.mid(spec.name)
            if spec.currency_base == account and spec.currency_profit == currency:
                return 1.0 / self.mid(spec.name)
        return 1.0

    def margin_for(self, spec: SymbolSpec, volume: float, price: float | None = None) -> float:
        """Margin of ``volume`` lots of ``spec`` in the account currency (forex formula)."""
        if price is not None and spec.currency_profit == self.cfg.currency:
            rate = price
        else:
            rate = self.to_account(spec.currency_margin)
        return volume * spec.contract_size * rate / self.cfg.leverage

    # -- what the terminal shows ---------------------------------------------------------------

    def symbol_info(self, spec: SymbolSpec) -> SymbolInfo:
        """The ``symbol_info`` of ``spec`` as the market stands."""
        tick = self.feed.last(spec.name)
        hl = self.feed.high_low[spec.name]
        return SymbolInfo(
            select=spec.name in self.selected,
            visible=spec.name in self.selected,
            time=tick.time,
            digits=spec.digits,
            spread=round((tick.ask - tick.bid) / spec.point),
            trade_mode=spec.trade_mode,
            trade_exemode=self.execution[spec.name],
            trade_stops_level=spec.stops_level,
            trade_freeze_level=spec.freeze_level,
            filling_mode=spec.filling_mode,
            bid=tick.bid,
            bidhigh=hl[0],
            bidlow=hl[1],
            ask=tick.ask,
            askhigh=hl[2],
            asklow=hl[3],
            point=spec.point,
            trade_tick_value=spec.tick_value,
            trade_tick_value_profit=spec.tick_value,
            trade_tick_value_loss=spec.tick_value,
            trade_tick_size=spec.tick_size,
            trade_contract_size=spec.contract_size,
            volume_min=spec.volume_min,
            volume_max=spec.volume_max,
            volume_step=spec.volume_step,
            margin_hedged=spec.contract_size,
            currency_base=spec.currency_base,
            currency_profit=spec.currency_profit,
            currency_margin=spec.currency_margin,
            description=f"{spec.currency_base} vs {spec.currency_profit}",
            name=spec.name,
            path=f"Forex\\{spec.name}",
        )

    def positions(self) -> list[TradePosition]:
        out = []
        for p in self.broker.positions_snapshot().positions:
            out.append(
                TradePosition(
                    ticket=p.ticket,
                    time=p.time_msc // 1000,
                    time_msc=p.time_msc,
                    time_update=p.time_msc // 1000,
                    time_update_msc=p.time_msc,
                    type=p.type,
                    magic=p.magic,
                    identifier=p.ticket,
                    reason=c.POSITION_REASON_EXPERT,
                    volume=p.volume,
                    price_open=p.price_open,
                    sl=p.sl,
                    tp=p.tp,
                    price_current=p.price_current,
                    swap=p.swap,
                    profit=p.profit,
                    symbol=p.symbol,
                    comment=p.comment,
                    external_id="",
                )
            )
        return out

    def open_orders(self) -> list[TradeOrder]:
        return [trade_order(o, c.ORDER_REASON_EXPERT) for o in self.broker.orders_snapshot().orders]

    def deal_history(self) -> Iterable[TradeDeal]:
        return sorted(self.deals.values(), key=lambda d: (d.time_msc, d.ticket))

    def order_history(self) -> Iterable[TradeOrder]:
        return sorted(self.history_orders.values(), key=lambda o: (o.time_setup_msc, o.ticket))


_ORDER_REASON = {
    c.DEAL_REASON_CLIENT: c.ORDER_REASON_CLIENT,
    c.DEAL_REASON_MOBILE: c.ORDER_REASON_MOBILE,
    c.DEAL_REASON_WEB: c.ORDER_REASON_WEB,
    c.DEAL_REASON_EXPERT: c.ORDER_REASON_EXPERT,
    c.DEAL_REASON_SL: c.ORDER_REASON_SL,
    c.DEAL_REASON_TP: c.ORDER_REASON_TP,
    c.DEAL_REASON_SO: c.ORDER_REASON_SO,
}
