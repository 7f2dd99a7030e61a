"""The MetaTrader 5 worker's answers to market data questions (``MarketRequest`` frames):
``symbols_get`` / ``symbol_info``, ``order_calc_margin`` / ``order_calc_profit`` and
``terminal_info``, turned into the protocol's messages (docs/market-data.md)."""

from __future__ import annotations

import ntpath
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal

from mt5exec import status_codes as status
from mt5exec.mt5 import constants as c
from mt5exec.reasons import Reason
from mt5exec.terminal.v1 import worker_pb2 as pb

# The worker's _call: the terminal call's value, or None (failed, or no link).
Call = Callable[..., Any]

# Bars per RatesPage (one streamed GetRatesResponse), and per request.
PAGE_BARS = 10_000
MAX_BARS = 100_000


class LinkWatch:
    """The terminal's broker connection, checked at each heartbeat: lost (not connected, or
    trading not allowed), ``BROKER_DISCONNECTED``; then a login every ``relogin_after_s``
    until the terminal is connected again: ``BROKER_CONNECTED``, a re-login counted."""

    __slots__ = ("next_login", "relogin_after_s", "relogins", "up")

    def __init__(self, relogin_after_s: float) -> None:
        self.relogin_after_s = relogin_after_s
        self.up = True
        self.next_login = 0.0
        self.relogins = 0

    def watch(self, now: float, up: bool, login: Callable[[], bool]) -> pb.WorkerEvent | None:
        if self.up:
            if up:
                return None
            self.up = False
            self.next_login = now + self.relogin_after_s
            return pb.WorkerEvent(
                kind=Reason.BROKER_DISCONNECTED,
                message="terminal_info: the terminal lost its broker connection",
            )
        if up:
            self.up = True
            return pb.WorkerEvent(kind="BROKER_CONNECTED", message="the terminal reconnected")
        if now < self.next_login:
            return None
        self.next_login = now + self.relogin_after_s
        if not login():
            return None
        self.up = True
        self.relogins += 1
        return pb.WorkerEvent(
            kind="BROKER_CONNECTED", message=f"logged in again (re-login {self.relogins})"
        )


def symbol_proto(info: Any) -> pb.SymbolInfo:
    """A ``symbol_info`` result's trading rules: what the worker's snapshots carry."""
    return pb.SymbolInfo(
        name=info.name,
        digits=info.digits,
        point=info.point,
        contract_size=info.trade_contract_size,
        volume_min=info.volume_min,
        volume_max=info.volume_max,
        volume_step=info.volume_step,
        stops_level=max(0, info.trade_stops_level),
        freeze_level=max(0, info.trade_freeze_level),
        filling_mode=info.filling_mode,
        trade_mode=info.trade_mode,
        currency_base=info.currency_base,
        currency_profit=info.currency_profit,
        currency_margin=info.currency_margin,
        tick_value=info.trade_tick_value,
        tick_size=info.trade_tick_size,
    )


def symbol_full(info: Any) -> pb.SymbolInfo:
    """Everything of a ``symbol_info`` result the protocol carries (ListSymbols, GetSymbol)."""
    out = symbol_proto(info)
    out.MergeFrom(
        pb.SymbolInfo(
            description=info.description,
            path=info.path,
            trade_execution_mode=info.trade_exemode,
            trade_calc_mode=info.trade_calc_mode,
            swap_mode=info.swap_mode,
            swap_long=info.swap_long,
            swap_short=info.swap_short,
            swap_rollover3days=info.swap_rollover3days,
            margin_initial=info.margin_initial,
            margin_maintenance=info.margin_maintenance,
            margin_hedged=info.margin_hedged,
            spread=max(0, info.spread),
            spread_float=info.spread_float,
            bid=info.bid,
            ask=info.ask,
            time_msc=info.time * 1000,
            order_mode=info.order_mode,
            expiration_mode=info.expiration_mode,
            select=info.select,
        )
    )
    return out


def mt5_timeframe(minutes: int) -> int | None:
    """A mt5exec.v1.Timeframe (minutes) as MT5's TIMEFRAME_* value."""
    if minutes == 43200:
        return c.TIMEFRAME_MN1
    if minutes == 10080:
        return c.TIMEFRAME_W1
    if minutes < 60:
        return minutes if minutes in (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30) else None
    hours, rest = divmod(minutes, 60)
    return 0x4000 | hours if not rest and hours in (1, 2, 3, 4, 6, 8, 12, 24) else None


def _is_array(rows: Any) -> bool:
    """A numpy structured array (what the MetaTrader5 package returns), numpy not imported."""
    return type(rows).__module__ == "numpy" and getattr(rows.dtype, "names", None) is not None


def split_pages(rows: Any, page: Callable[[Any], bytes]) -> list[bytes]:
    """``page`` of each PAGE_BARS rows of ``rows``."""
    return [page(rows[first : first + PAGE_BARS]) for first in range(0, len(rows), PAGE_BARS)]


def rates_pages(rows: Any) -> list[bytes]:
    """copy_rates_* rows as encoded RatesPage messages of at most PAGE_BARS bars: a numpy
    structured array a column at a time (mt5_arrays), MqlRates tuples a row at a time."""
    if _is_array(rows):
        from mt5exec.workers import mt5_arrays  # numpy is there: the rows are its arrays

        return split_pages(rows, mt5_arrays.rates_page)
    return split_pages([tuple(r) for r in rows], rates_page_by_row)


def rates_page_by_row(rows: Any) -> bytes:
    """Bars (MqlRates tuples, or a structured array) as an encoded RatesPage, row by row."""
    page = pb.RatesPage()
    add = page.rates.add
    for t, o, h, lo, cl, v, sp, real in rows.tolist() if _is_array(rows) else rows:
        add(
            time=t,
            open=o,
            high=h,
            low=lo,
            close=cl,
            tick_volume=v,
            spread=max(0, sp),
            real_volume=real,
        )
    return page.SerializeToString()


def ticks_pages(rows: Any) -> list[bytes]:
    """copy_ticks_* rows as encoded TicksPage messages of at most PAGE_BARS ticks (as
    ``rates_pages``)."""
    if _is_array(rows):
        from mt5exec.workers import mt5_arrays

        return split_pages(rows, mt5_arrays.ticks_page)
    return split_pages([tuple(r) for r in rows], ticks_page_by_row)


def ticks_page_by_row(rows: Any) -> bytes:
    """Ticks (MqlTick: time, bid, ask, last, volume, time_msc, flags, volume_real) as an
    encoded TicksPage, row by row."""
    page = pb.TicksPage()
    add = page.ticks.add
    for _, bid, ask, last, volume, msc, flags, _real in rows.tolist() if _is_array(rows) else rows:
        add(time_msc=msc, bid=bid, ask=ask, last=last, volume=volume, flags=flags)
    return page.SerializeToString()


def _rates(
    mt5: Any, call: Call, last_error: Callable[[], tuple[int, str]], q: pb.RatesQuery
) -> pb.MarketAnswer:
    tf = mt5_timeframe(q.timeframe)
    if tf is None:
        return _refused(
            status.INVALID_ARGUMENT,
            Reason.TIMEFRAME_INVALID,
            f"timeframe: {q.timeframe} is not one",
            "timeframe",
        )
    info = _symbol(mt5, call, last_error, q.symbol)
    if isinstance(info, pb.MarketAnswer):
        return info
    args: tuple[Any, ...]
    if q.from_pos:
        what, args = "copy_rates_from_pos", (q.start_pos, q.count)
    elif q.date_to:
        what, args = "copy_rates_range", (_utc(q.date_from), _utc(q.date_to))
    else:
        what, args = "copy_rates_from", (_utc(q.date_from), q.count)
    rows = call(what, getattr(mt5, what), q.symbol, tf, *args)
    if rows is None:
        return _unavailable(what, last_error)
    if len(rows) > MAX_BARS:
        return _too_many(len(rows), "bars")
    return pb.MarketAnswer(rates=pb.RatesChunks(pages=rates_pages(rows)))


def _ticks(
    mt5: Any, call: Call, last_error: Callable[[], tuple[int, str]], q: pb.TicksQuery
) -> pb.MarketAnswer:
    info = _symbol(mt5, call, last_error, q.symbol)
    if isinstance(info, pb.MarketAnswer):
        return info
    flags = {1: c.COPY_TICKS_INFO, 2: c.COPY_TICKS_TRADE}.get(q.flags, c.COPY_TICKS_ALL)
    start = datetime.fromtimestamp(q.from_msc / 1000, UTC)
    if q.range:
        what = "copy_ticks_range"
        end = datetime.fromtimestamp(q.to_msc / 1000, UTC)
        rows = call(what, mt5.copy_ticks_range, q.symbol, start, end, flags)
    else:
        what = "copy_ticks_from"
        rows = call(what, mt5.copy_ticks_from, q.symbol, start, q.count, flags)
    if rows is None:
        return _unavailable(what, last_error)
    if len(rows) > MAX_BARS:
        return _too_many(len(rows), "ticks")
    return pb.MarketAnswer(ticks=pb.TicksChunks(pages=ticks_pages(rows)))


def _utc(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _refused(code: int, reason: str, message: str, field: str = "") -> pb.MarketAnswer:
    return pb.MarketAnswer(code=code, reason=reason, message=message, field=field)


def _too_many(n: int, what: Literal["bars", "ticks"]) -> pb.MarketAnswer:
    return _refused(
        status.INVALID_ARGUMENT,
        f"TOO_MANY_{what.upper()}",
        f"date_from: the range holds {n:,} {what}, more than {MAX_BARS:,}",
        "date_from",
    )


def _unavailable(what: str, last_error: Callable[[], tuple[int, str]]) -> pb.MarketAnswer:
    code, message = last_error()
    return _refused(
        status.UNAVAILABLE,
        Reason.TERMINAL_CALL_FAILED,
        f"{what} failed at the terminal: {code} {message}",
    )


def _unknown(name: str) -> pb.MarketAnswer:
    return _refused(
        status.NOT_FOUND,
        Reason.SYMBOL_NOT_FOUND,
        f"symbol: the terminal has no symbol {name!r}",
        "symbol",
    )


def answer(
    mt5: Any,
    call: Call,
    last_error: Callable[[], tuple[int, str]],
    request: pb.MarketRequest,
) -> pb.MarketAnswer:
    """The answer to ``request`` (its request_id set)."""
    out = _answer(mt5, call, last_error, request)
    out.request_id = request.request_id
    return out


def _symbol(
    mt5: Any, call: Call, last_error: Callable[[], tuple[int, str]], name: str
) -> Any | pb.MarketAnswer:
    info = call("symbol_info", mt5.symbol_info, name)
    if info is not None:
        return info
    code, _ = last_error()
    if code in c.IPC_ERRORS:
        return _unavailable("symbol_info", last_error)
    return _unknown(name)


def _answer(
    mt5: Any, call: Call, last_error: Callable[[], tuple[int, str]], request: pb.MarketRequest
) -> pb.MarketAnswer:
    kind = request.WhichOneof("query")
    if kind == "symbols":
        q = request.symbols
        if q.name:
            info = _symbol(mt5, call, last_error, q.name)
            if isinstance(info, pb.MarketAnswer):
                return info
            infos: Any = (info,)
        else:
            args = (q.group,) if q.group else ()
            infos = call("symbols_get", mt5.symbols_get, *args)
            if infos is None:
                return _unavailable("symbols_get", last_error)
        return pb.MarketAnswer(symbols=pb.SymbolList(symbols=[symbol_full(i) for i in infos]))
    if kind == "calc":
        k = request.calc
        info = _symbol(mt5, call, last_error, k.symbol)
        if isinstance(info, pb.MarketAnswer):
            return info
        account = call("account_info", mt5.account_info)
        if account is None:
            return _unavailable("account_info", last_error)
        if k.profit:
            value = call(
                "order_calc_profit",
                mt5.order_calc_profit,
                k.action,
                k.symbol,
                k.volume,
                k.price_open,
                k.price_close,
            )
        else:
            price = k.price_open or (info.ask if k.action == c.ORDER_TYPE_BUY else info.bid)
            value = call(
                "order_calc_margin", mt5.order_calc_margin, k.action, k.symbol, k.volume, price
            )
        if value is None:
            return _unavailable(
                "order_calc_profit" if k.profit else "order_calc_margin", last_error
            )
        return pb.MarketAnswer(calc=pb.CalcResult(value=value, currency=account.currency))
    if kind == "rates":
        return _rates(mt5, call, last_error, request.rates)
    if kind == "ticks":
        return _ticks(mt5, call, last_error, request.ticks)
    if kind == "terminal":
        info = call("terminal_info", mt5.terminal_info)
        account = call("account_info", mt5.account_info)
        if info is None:
            return _unavailable("terminal_info", last_error)
        return pb.MarketAnswer(
            terminal=pb.TerminalState(
                build=info.build,
                connected=info.connected,
                trade_allowed=info.trade_allowed,
                tradeapi_disabled=info.tradeapi_disabled,
                ping_last=max(0, info.ping_last),
                community_account=info.community_account,
                community_connection=info.community_connection,
                company=info.company,
                name=info.name,
                language=info.language,
                max_bars=max(0, info.maxbars),
                dlls_allowed=info.dlls_allowed,
                # Only the folder's name: the full path tells where the server's files are.
                data_folder=ntpath.basename(info.data_path.rstrip("\\/").replace("/", "\\")),
                backend="mt5",
                login=0 if account is None else account.login,
                server="" if account is None else account.server,
            )
        )
    return _refused(
        status.INVALID_ARGUMENT, Reason.QUERY_UNKNOWN, f"a market question of unknown kind {kind!r}"
    )
