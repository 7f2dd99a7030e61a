"""The simulated broker's answers to market data questions (``MarketRequest`` frames):
symbols as ``symbol_info`` gives them, margin and profit by the rules its fills use, and the
terminal's state. Also MT5's group masks (``symbols_get(group=...)``), which the simulated
MetaTrader5 module uses too.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from mt5exec import status_codes as status
from mt5exec.reasons import Reason
from mt5exec.sim.bars import MAX_BARS, TIMEFRAMES, Series, idle
from mt5exec.sim.broker import SimBroker
from mt5exec.terminal.v1 import worker_pb2 as pb

# What the terminal reports of itself.
BUILD = 4755
NAME = "mt5exec simulated broker"
# Bars per RatesPage (one streamed GetRatesResponse).
PAGE_BARS = 10_000
MAX_TICKS = 100_000
# mt5exec.v1.CopyTicks; TICK_FLAG_BID | TICK_FLAG_ASK.
COPY_TICKS_TRADE = 2
TICK_FLAGS_QUOTE = 2 | 4


def group_matcher(group: str) -> Callable[[str], bool]:
    """MT5 group masks: comma-separated, ``*`` wildcards, ``!`` excludes; case-insensitive."""
    include: list[re.Pattern[str]] = []
    exclude: list[re.Pattern[str]] = []
    for part in group.split(","):
        p = part.strip()
        if not p:
            continue
        target = exclude if p.startswith("!") else include
        glob = p.lstrip("!")
        target.append(re.compile(".*".join(map(re.escape, glob.split("*"))), re.IGNORECASE))

    def match(name: str) -> bool:
        return any(r.fullmatch(name) for r in include) and not any(
            r.fullmatch(name) for r in exclude
        )

    return match


def symbol_info(broker: SimBroker, name: str) -> pb.SymbolInfo:
    """Everything ``symbol_info`` would say of ``name`` (one of the broker's symbols)."""
    spec = next(s for s in broker.symbol_specs() if s.name == name)
    rules = broker.symbol_rules(name)
    bid, ask, time_msc = broker.quote(name)
    info = spec.to_proto()
    info.description = f"{spec.currency_base} vs {spec.currency_profit}"
    info.path = f"Forex\\{spec.name}"
    info.trade_execution_mode = rules.execution
    info.trade_calc_mode = 0  # SYMBOL_CALC_MODE_FOREX
    info.swap_rollover3days = 3  # Wednesday
    info.margin_hedged = spec.contract_size
    info.spread = round((ask - bid) / spec.point)
    info.spread_float = True
    info.bid, info.ask, info.time_msc = bid, ask, time_msc
    info.order_mode = 127
    info.expiration_mode = 15
    info.select = True
    if not rules.sessions.always:
        for start, end in rules.sessions.windows:
            info.trade_sessions.add(start_second=start, end_second=end)
    return info


def rates_pages(
    series: Series, start: int, stop: int, scale: float, pulse: Callable[[], None] = idle
) -> list[bytes]:
    """Bars ``start:stop`` of ``series`` (prices in points of ``scale``) as encoded
    RatesPage messages of at most PAGE_BARS bars (``pulse`` called before each one made)."""
    if series.entries is not None:
        # M1: every bar was encoded once, when it was made (the forming one now).
        entries = series.entries
        return [
            b"".join(entries[first : min(stop, first + PAGE_BARS)])
            for first in range(start, stop, PAGE_BARS)
        ]
    pages = []
    for first in range(start, stop, PAGE_BARS):
        pulse()
        page = pb.RatesPage()
        add = page.rates.add
        for t, o, h, lo, c, v, sp in series.rows(first, min(stop, first + PAGE_BARS)):
            add(
                time=t,
                open=o / scale,
                high=h / scale,
                low=lo / scale,
                close=c / scale,
                tick_volume=v,
                spread=sp,
            )
        pages.append(page.SerializeToString())
    return pages


def _rates(broker: SimBroker, q: pb.RatesQuery, pulse: Callable[[], None]) -> pb.MarketAnswer:
    if q.symbol not in broker.symbols:
        return _unknown(q.symbol)
    if q.timeframe not in TIMEFRAMES:
        return _refused(
            status.INVALID_ARGUMENT,
            Reason.TIMEFRAME_INVALID,
            f"timeframe: {q.timeframe} is not one",
            "timeframe",
        )
    bars = broker.bars[q.symbol]
    if q.from_pos:
        picked = {"start_pos": q.start_pos, "count": q.count}
    elif q.date_to:
        picked = {"date_from": q.date_from, "date_to": q.date_to}
    else:
        picked = {"date_from": q.date_from, "count": q.count}
    series, start, stop = bars.select(q.timeframe, pulse, **picked)
    if stop - start > MAX_BARS:
        return _refused(
            status.INVALID_ARGUMENT,
            Reason.TOO_MANY_BARS,
            f"date_from: the range holds {stop - start:,} bars, more than {MAX_BARS:,}",
            "date_from",
        )
    scale = 10 ** next(s.digits for s in broker.symbol_specs() if s.name == q.symbol)
    pages = rates_pages(series, start, stop, scale, pulse)
    return pb.MarketAnswer(rates=pb.RatesChunks(pages=pages))


def _ticks(broker: SimBroker, q: pb.TicksQuery, pulse: Callable[[], None]) -> pb.MarketAnswer:
    if q.symbol not in broker.symbols:
        return _unknown(q.symbol)
    if q.flags == COPY_TICKS_TRADE:
        return pb.MarketAnswer(ticks=pb.TicksChunks())  # no trades in the simulated market
    tape = broker.tapes[q.symbol]
    start, stop = tape.select(q.from_msc, q.to_msc if q.range else None, q.count)
    if stop - start > MAX_TICKS:
        return _refused(
            status.INVALID_ARGUMENT,
            Reason.TOO_MANY_TICKS,
            f"date_from: the range holds {stop - start:,} ticks, more than {MAX_TICKS:,}",
            "date_from",
        )
    scale = 10 ** next(s.digits for s in broker.symbol_specs() if s.name == q.symbol)
    pages = []
    for first in range(start, stop, PAGE_BARS):
        pulse()
        last = min(stop, first + PAGE_BARS)
        page = pb.TicksPage()
        add = page.ticks.add
        for t, b, a in zip(
            tape.time[first:last], tape.bid[first:last], tape.ask[first:last], strict=True
        ):
            add(time_msc=t, bid=b / scale, ask=a / scale, flags=TICK_FLAGS_QUOTE)
        pages.append(page.SerializeToString())
    return pb.MarketAnswer(ticks=pb.TicksChunks(pages=pages))


def _refused(code: int, reason: str, message: str, field: str) -> pb.MarketAnswer:
    return pb.MarketAnswer(code=code, reason=reason, message=message, field=field)


def _unknown(name: str) -> pb.MarketAnswer:
    return _refused(
        status.NOT_FOUND,
        Reason.SYMBOL_NOT_FOUND,
        f"symbol: the terminal has no symbol {name!r}",
        "symbol",
    )


def answer(
    broker: SimBroker,
    request: pb.MarketRequest,
    *,
    connected: bool = True,
    relogins: int = 0,
    pulse: Callable[[], None] = idle,
) -> pb.MarketAnswer:
    """The answer to ``request`` (its request_id set); ``connected`` and ``relogins``: the
    broker connection as the worker sees it. Long answers (bars, ticks) call ``pulse`` every
    so many bars or ticks, for the worker to keep its heartbeats going."""
    out = _answer(broker, request, connected, pulse)
    if out.HasField("terminal"):
        out.terminal.relogins = relogins
    out.request_id = request.request_id
    return out


def _answer(
    broker: SimBroker, request: pb.MarketRequest, connected: bool, pulse: Callable[[], None]
) -> pb.MarketAnswer:
    kind = request.WhichOneof("query")
    names = broker.symbols
    if kind == "symbols":
        q = request.symbols
        if q.name:
            if q.name not in names:
                return _unknown(q.name)
            chosen = [q.name]
        else:
            match = group_matcher(q.group) if q.group else None
            chosen = [n for n in names if match is None or match(n)]
        return pb.MarketAnswer(
            symbols=pb.SymbolList(symbols=[symbol_info(broker, n) for n in chosen])
        )
    if kind == "calc":
        c = request.calc
        if c.symbol not in names:
            return _unknown(c.symbol)
        currency = broker.config.currency
        if c.profit:
            value = broker.profit_of(c.symbol, c.action == 0, c.volume, c.price_open, c.price_close)
        else:
            value = round(broker.margin_at(c.symbol, c.volume, c.price_open), 2)
        return pb.MarketAnswer(calc=pb.CalcResult(value=value, currency=currency))
    if kind == "rates":
        return _rates(broker, request.rates, pulse)
    if kind == "ticks":
        return _ticks(broker, request.ticks, pulse)
    if kind == "terminal":
        account = broker.account_snapshot()
        return pb.MarketAnswer(
            terminal=pb.TerminalState(
                build=BUILD,
                connected=connected,
                trade_allowed=connected,
                ping_last=1000,
                company=NAME,
                name=NAME,
                language="English",
                max_bars=100_000,
                backend="sim",
                login=account.login,
                server=account.server,
            )
        )
    return _refused(
        status.INVALID_ARGUMENT,
        Reason.QUERY_UNKNOWN,
        f"a market question of unknown kind {kind!r}",
        "",
    )
