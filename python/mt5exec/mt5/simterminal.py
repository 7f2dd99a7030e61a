"""A ``MetaTrader5``-compatible module whose "terminal" is the simulated broker.

Owns the MetaTrader5 package's surface as the MT5 worker (``mt5exec.workers.mt5``) uses it, so
that the worker runs end to end on Linux, in CI and in demos, with ``module`` set to
``mt5exec.mt5.simterminal``: the same function names and signatures, the same constants (all of
``mt5exec.mt5.constants`` is re-exported), the same result shapes (named tuples whose
``_asdict()`` keys are the official field names) and the same failure convention (``None`` or
``False`` and a code in ``last_error()``, never an exception). One process attaches to one
terminal at a time, as with the real package.

The "terminal" is a directory (``initialize(path)``; a path to a file inside it, such as
``.../terminal64.exe``, names its directory). It holds:

``simterminal.json``
    What a real terminal would get from its broker: ``login``, ``password``, ``server``, and the
    simulated account and market (``symbols``, ``seed``, ``tick_rate``, ``initial_balance``,
    ``leverage``, ``currency``, ``margin_mode``, ``stop_out_level``, ``margin_call_level``,
    ``symbol_settings`` as for the sim worker, ``name``, ``company``). Written by whoever sets
    the terminal up (tests, a demo script; ``write_terminal_config``). ``initialize`` refuses
    credentials that differ from it with ``RES_E_AUTH_FAILED``. The password is compared, never
    logged or echoed.
``sim_state*``
    The account of an in-process ``mt5exec.sim.SimBroker`` (journal and snapshots, see
    ``mt5exec.sim.state``): positions and deals survive ``shutdown``/``initialize`` and process
    restarts, as an account at a broker does.
``simterminal.inject.json``
    Optional test hook, read and removed by the next API call (see ``inject_ipc_failures`` and
    ``set_price``), so that tests can break the IPC link of a worker running in another process
    or move its market.

Prices advance with wall time: every call that reads or trades catches the broker up by
``tick_rate`` ticks per second per symbol (at most ``MAX_CATCH_UP_TICKS`` per call after a long
pause), and the recent ticks stay available to ``copy_ticks_from``/``copy_ticks_range``.

``order_send`` goes to the broker, which plays the trade server: market and pending orders,
SLTP, MODIFY, REMOVE and CLOSE_BY, with MT5's rules and retcodes. ``order_check`` asks it the
same question with ``check_only`` (every check of a real send, nothing changes). What the broker
does on its own as prices move (triggered orders, SL/TP, stop-outs, expirations) lands in the
positions, orders and history that the module reports, as it would in a real terminal.

Fault injection (``inject_ipc_failures``, ``set_price``, ``write_hook_file``, broker outages,
fills answered without their price: ``blank_fill_results``) is described in
``mt5exec.mt5.simterminal_hooks``.

Beside this module, which holds the flat MetaTrader5 surface: ``simterminal_types`` (the result
named tuples and numpy dtypes), ``simterminal_config`` (``simterminal.json``),
``simterminal_session`` (the attached terminal: broker, price feed, history),
``simterminal_args`` (argument checks) and ``simterminal_hooks``. Every terminal call goes
through one wrapper, ``_terminal_call``: the lock, the link and injected faults, the call's
refusals and its answer, in that order.
"""

from __future__ import annotations

import contextlib
import functools
import hmac
import importlib
import inspect
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

from mt5exec.mt5 import constants as c
from mt5exec.mt5 import simbook
from mt5exec.mt5.constants import *  # noqa: F403 - the official module exposes every constant
from mt5exec.mt5.simterminal_args import (
    Refused,
    filter_history,
    filter_open,
    invalid,
    is_int,
    known_symbol,
    order_type,
    parse_request,
    positive,
    seconds,
    timeframe_minutes,
    to_proto,
)
from mt5exec.mt5.simterminal_config import CONFIG_FILE as CONFIG_FILE
from mt5exec.mt5.simterminal_config import DEFAULT_SERVER as DEFAULT_SERVER
from mt5exec.mt5.simterminal_config import ConfigError as ConfigError
from mt5exec.mt5.simterminal_config import TerminalConfig as TerminalConfig
from mt5exec.mt5.simterminal_config import load_terminal_config as load_terminal_config
from mt5exec.mt5.simterminal_config import write_terminal_config as write_terminal_config
from mt5exec.mt5.simterminal_hooks import FAULTS, Injection
from mt5exec.mt5.simterminal_hooks import INJECT_FILE as INJECT_FILE
from mt5exec.mt5.simterminal_hooks import LOCK as _lock
from mt5exec.mt5.simterminal_hooks import blank_fill_results as blank_fill_results
from mt5exec.mt5.simterminal_hooks import clear_injected_failures as clear_injected_failures
from mt5exec.mt5.simterminal_hooks import inject_ipc_failures as inject_ipc_failures
from mt5exec.mt5.simterminal_hooks import write_hook_file as write_hook_file
from mt5exec.mt5.simterminal_session import MAX_CATCH_UP_TICKS as MAX_CATCH_UP_TICKS
from mt5exec.mt5.simterminal_session import STATE_NAME as STATE_NAME
from mt5exec.mt5.simterminal_session import TICK_HISTORY as TICK_HISTORY
from mt5exec.mt5.simterminal_session import Session
from mt5exec.mt5.simterminal_types import *  # noqa: F403 - the result types, re-exported
from mt5exec.mt5.simterminal_types import (
    BUILD,
    BUILD_DATE,
    RATES_DTYPE,
    TICK_DTYPE,
    AccountInfo,
    OrderCheckResult,
    OrderSendResult,
    SymbolInfo,
    TerminalInfo,
    Tick,
    TradeDeal,
    TradeOrder,
    TradePosition,
)
from mt5exec.sim.market import group_matcher
from mt5exec.sim.state import StateError

__author__ = "mt5exec (simulated terminal)"
__version__ = "5.0.6231"

# Environment variable naming the terminal directory when ``initialize`` gets no path (the real
# package would look for an installed terminal instead).
PATH_ENV = "MT5EXEC_SIMTERMINAL_PATH"


def _numpy() -> Any:
    try:
        return importlib.import_module("numpy")
    except ImportError:
        return None


# copy_ticks_* return a numpy structured array when numpy is importable (like the real package,
# which requires it), else a tuple of Tick. Tests may switch this off to get tuples.
TICKS_AS_NUMPY: bool = _numpy() is not None


# -- module state ------------------------------------------------------------------------------

_T = TypeVar("_T")
_P = ParamSpec("_P")


_last_error: tuple[int, str] = (c.RES_S_OK, c.LAST_ERROR_MESSAGES[c.RES_S_OK])
_session: Session | None = None
# False after an (injected) IPC failure until initialize attaches again.
_connected = False


# -- call plumbing -----------------------------------------------------------------------------


def _set_error(code: int, message: str | None = None) -> None:
    global _last_error
    _last_error = (code, message if message is not None else c.LAST_ERROR_MESSAGES.get(code, ""))


def _ok(value: _T) -> _T:
    _set_error(c.RES_S_OK)
    return value


# Never set: what a hung call waits for.
_NEVER = threading.Event()


def _apply_failure(inj: Injection) -> None:
    global _connected
    _set_error(inj.code)
    if inj.disconnect:
        _connected = False


def _begin(name: str) -> Session | None:
    """Common entry of every terminal call: the link, then injected faults. Lock held."""
    session = _session
    if session is not None:
        FAULTS.read_file(session.dir)
        for symbol, bid in FAULTS.take_prices(name):
            if symbol in session.specs:
                session.set_price(symbol, bid)
    if session is None or not _connected:
        _set_error(c.RES_E_INTERNAL_FAIL_CONNECT)
        return None
    if FAULTS.take_hang(name):
        _NEVER.wait()  # a hung terminal: the call never returns (test hook)
    inj = FAULTS.take_injection(name)
    if inj is not None:
        if not inj.executed:
            _apply_failure(inj)
            return None
        FAULTS.lost_reply = inj
    session.catch_up()
    return session


def _end(value: _T) -> _T | None:
    """Common exit: the value, or None when an injected fault swallows the answer."""
    inj = FAULTS.lost_reply
    if inj is not None:
        FAULTS.lost_reply = None
        _apply_failure(inj)
        return None
    return _ok(value)


def _wrap(fn: Callable[..., Any], failed: Any) -> Callable[..., Any]:
    name = fn.__name__

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        with _lock:
            session = _begin(name)
            if session is None:
                return failed
            try:
                value = fn(session, *args, **kwargs)
            except Refused as e:
                _set_error(e.code, e.message)
                return failed
            answer = _end(value)
            return failed if answer is None else answer

    # The public signature is the body's without the session, and None when it fails.
    sig = inspect.signature(fn)
    answer = sig.return_annotation if failed is False else f"{sig.return_annotation} | None"
    public = sig.replace(parameters=list(sig.parameters.values())[1:], return_annotation=answer)
    call.__signature__ = public  # type: ignore[attr-defined]
    return call


def _terminal_call(fn: Callable[Concatenate[Session, _P], _T]) -> Callable[_P, _T | None]:
    """A MetaTrader5 function whose body is ``fn(session, *args)``; ``None`` when it fails.

    Under the one lock: the link and injected faults (``_begin``), the body (a ``Refused`` it
    raises is the call's error), and the answer (``_end``: lost if an injected fault says so).
    The function's name is the one injected failures name.
    """
    return _wrap(fn, None)


def _terminal_check(fn: Callable[Concatenate[Session, _P], bool]) -> Callable[_P, bool]:
    """As ``_terminal_call`` for the functions that answer ``False`` when they fail."""
    return _wrap(fn, False)


def _terminal_dir(path: str | os.PathLike[str]) -> Path:
    p = Path(path)
    # The real package takes the path of terminal64.exe; the simulator lives in its directory.
    if p.is_file() or p.suffix.lower() == ".exe":
        return p.parent
    return p


# -- connection --------------------------------------------------------------------------------


def initialize(
    path: str | os.PathLike[str] | None = None,
    *,
    login: int | None = None,
    password: str | None = None,
    server: str | None = None,
    timeout: int | None = None,
    portable: bool = False,
) -> bool:
    """Attach to the simulated terminal in ``path`` and log in; False + ``last_error`` if not."""
    with _lock:
        try:
            return _initialize(path, login, password, server, timeout, portable)
        except Refused as e:
            _set_error(e.code, e.message)
            return False


def _initialize(
    path: str | os.PathLike[str] | None,
    login: int | None,
    password: str | None,
    server: str | None,
    timeout: int | None,
    portable: bool,
) -> bool:
    global _session, _connected
    not_found = "IPC initialize failed, MetaTrader 5 x64 not found"
    if path is None:
        env = os.environ.get(PATH_ENV)
        if not env:
            raise Refused(c.RES_E_INTERNAL_FAIL_INIT, not_found)
        path = env
    if not isinstance(path, str | os.PathLike):
        invalid('Invalid "path" argument')
    _check_login_args(login, password, server, timeout)
    directory = _terminal_dir(path)
    FAULTS.read_file(directory)
    inj = FAULTS.take_injection("initialize")
    if inj is not None:
        raise Refused(inj.code)
    cfg_path = directory / CONFIG_FILE
    if not cfg_path.is_file():
        raise Refused(c.RES_E_INTERNAL_FAIL_INIT, not_found)
    try:
        cfg = load_terminal_config(cfg_path)
    except ConfigError as e:
        raise Refused(c.RES_E_INTERNAL_FAIL_INIT, f"IPC initialize failed, {e}") from None
    if not _credentials_match(cfg, login, password, server):
        raise Refused(c.RES_E_AUTH_FAILED)
    session = _session
    if session is not None and session.dir.resolve() != directory.resolve():
        # Another terminal: one process talks to one terminal at a time.
        _connected = False
        _session = None
        session.close()
        session = None
    if session is None:
        try:
            session = Session(directory, cfg, portable)
        except (StateError, ValueError, OSError) as e:
            raise Refused(c.RES_E_INTERNAL_FAIL_INIT, f"IPC initialize failed, {e}") from None
        _session = session
    _connected = True
    return _ok(True)


def _check_login_args(login: Any, password: Any, server: Any, timeout: Any) -> None:
    if login is not None and not is_int(login):
        invalid('Invalid "login" argument')
    if password is not None and not isinstance(password, str):
        invalid('Invalid "password" argument')
    if server is not None and not isinstance(server, str):
        invalid('Invalid "server" argument')
    if timeout is not None and not is_int(timeout):
        invalid('Invalid "timeout" argument')


def _credentials_match(
    cfg: TerminalConfig, login: int | None, password: str | None, server: str | None
) -> bool:
    if login is not None and login != cfg.login:
        return False
    if server is not None and server != cfg.server:
        return False
    if password is not None and cfg.password is not None:
        return hmac.compare_digest(password.encode(), cfg.password.encode())
    return True


@_terminal_check
def login(
    s: Session,
    login: int,
    password: str | None = None,
    server: str | None = None,
    timeout: int | None = None,
) -> bool:
    """Log the attached terminal into ``login``; the simulator has one account to offer."""
    if not is_int(login):
        invalid('Invalid "login" argument')
    _check_login_args(login, password, server, timeout)
    if not _credentials_match(s.cfg, login, password, server):
        raise Refused(c.RES_E_AUTH_FAILED)
    if FAULTS.broker_down():
        raise Refused(c.RES_E_FAIL, "no connection with the trade server")
    FAULTS.logged_out = False
    return True


def shutdown() -> None:
    """Detach from the terminal; its account is saved and carries on at the next initialize."""
    global _session, _connected
    with _lock:
        session = _session
        _session = None
        _connected = False
        FAULTS.lost_reply = None
        if session is not None:
            # The journal already holds every trade; a failed final snapshot only makes the
            # next initialize replay more. shutdown() never fails in the real package either.
            with contextlib.suppress(OSError):
                session.close()
        _ok(None)


def last_error() -> tuple[int, str]:
    """``(code, description)`` of the last call, ``(1, "Success")`` after a good one."""
    return _last_error


@_terminal_call
def version(s: Session) -> tuple[int, int, str]:
    """``(500, build, build date)`` of the terminal."""
    return (500, BUILD, BUILD_DATE)


@_terminal_call
def terminal_info(s: Session) -> TerminalInfo:
    path = str(s.dir.absolute())
    return TerminalInfo(
        connected=not FAULTS.logged_out,
        trade_allowed=not FAULTS.logged_out,
        ping_last=1000,
        company=s.cfg.company,
        name="MetaTrader 5 (mt5exec simulated terminal)",
        path=path,
        data_path=path,
        commondata_path=str(s.dir.absolute() / "Common"),
    )


@_terminal_call
def account_info(s: Session) -> AccountInfo:
    a = s.broker.account_snapshot()
    return AccountInfo(
        login=a.login,
        leverage=a.leverage,
        limit_orders=200,
        margin_mode=a.margin_mode,
        balance=a.balance,
        profit=a.profit,
        equity=a.equity,
        margin=a.margin,
        margin_free=a.margin_free,
        margin_level=a.margin_level,
        margin_so_call=s.cfg.margin_call_level,
        margin_so_so=s.cfg.stop_out_level,
        name=s.cfg.name,
        server=s.cfg.server,
        currency=a.currency,
        company=s.cfg.company,
    )


def set_price(symbol: str, bid: float) -> bool:
    """Test hook: the simulated market ticks at ``bid`` (ask = bid + spread) now, as a tick of
    the trade server would; orders and stops it reaches fire. False if not attached or the
    symbol is unknown. From another process: ``{"set_price": {"EURUSD": 1.08}}`` in the hook
    file (see ``simterminal_hooks``)."""
    with _lock:
        session = _session
        if session is None or symbol not in session.specs:
            return False
        session.set_price(symbol, bid)
        return True


# -- symbols and prices ------------------------------------------------------------------------


@_terminal_call
def symbols_total(s: Session) -> int:
    return len(s.specs)


@_terminal_call
def symbols_get(s: Session, group: str | None = None) -> tuple[SymbolInfo, ...]:
    if group is not None and not isinstance(group, str):
        invalid('Invalid "group" argument')
    match = group_matcher(group) if group is not None else None
    return tuple(
        s.symbol_info(spec) for spec in s.specs.values() if match is None or match(spec.name)
    )


@_terminal_call
def symbol_info(s: Session, symbol: str) -> SymbolInfo:
    return s.symbol_info(s.specs[known_symbol(s.specs, symbol)])


@_terminal_call
def symbol_info_tick(s: Session, symbol: str) -> Tick:
    return s.feed.last(known_symbol(s.specs, symbol))


@_terminal_check
def symbol_select(s: Session, symbol: str, enable: bool = True) -> bool:
    known_symbol(s.specs, symbol)
    if enable:
        s.selected.add(symbol)
    else:
        s.selected.discard(symbol)
    return True


def _ticks_result(ticks: Sequence[Tick]) -> Any:
    np = _numpy() if TICKS_AS_NUMPY else None
    if np is None:
        return tuple(ticks)
    return np.array([tuple(t) for t in ticks], dtype=TICK_DTYPE)


def _copy_ticks(s: Session, symbol: Any, date_from: Any, to: Any, count: Any, flags: Any) -> Any:
    if not isinstance(symbol, str):
        invalid("Invalid 1st unnamed argument")
    start = seconds(date_from)
    if start is None:
        invalid("Invalid 2nd unnamed argument")
    if not is_int(flags) or flags not in (c.COPY_TICKS_ALL, c.COPY_TICKS_INFO, c.COPY_TICKS_TRADE):
        invalid("Invalid 4th unnamed argument")
    known_symbol(s.specs, symbol)
    end: int | None = None
    limit: int | None = None
    if count is None:  # copy_ticks_range
        stop = seconds(to)
        if stop is None:
            invalid("Invalid 3rd unnamed argument")
        end = int(stop * 1000)
    else:
        if not is_int(count) or count <= 0:
            invalid("Invalid 3rd unnamed argument")
        limit = count
    # The simulated market has no trades: COPY_TICKS_TRADE finds nothing.
    ticks = (
        [] if flags == c.COPY_TICKS_TRADE else s.feed.select(symbol, int(start * 1000), end, limit)
    )
    return _ticks_result(ticks)


def _copy_rates(s: Session, symbol: Any, timeframe: Any, **form: Any) -> Any:
    if not isinstance(symbol, str):
        invalid("Invalid 1st unnamed argument")
    tf = timeframe_minutes(timeframe)
    if tf is None:
        invalid("Invalid 2nd unnamed argument")
    known_symbol(s.specs, symbol)
    picked: dict[str, int] = {}
    for key, value in form.items():
        number = value if key in ("start_pos", "count") else seconds(value)
        if number is None or (key == "count" and not (is_int(number) and number > 0)):
            invalid(f"Invalid {key} argument")
        picked[key] = int(number)
    series, start, stop = s.broker.bars[symbol].select(tf, **picked)
    scale = 10 ** s.specs[symbol].digits
    rows = [
        (t, o / scale, h / scale, lo / scale, cl / scale, v, sp, 0)
        for t, o, h, lo, cl, v, sp in series.rows(start, stop)
    ]
    np = _numpy()
    return tuple(rows) if np is None else np.array(rows, dtype=RATES_DTYPE)


@_terminal_call
def copy_rates_from(s: Session, symbol: str, timeframe: int, date_from: Any, count: int) -> Any:
    """The ``count`` bars opened at or before ``date_from``, oldest first."""
    return _copy_rates(s, symbol, timeframe, date_from=date_from, count=count)


@_terminal_call
def copy_rates_from_pos(s: Session, symbol: str, timeframe: int, start_pos: int, count: int) -> Any:
    """``count`` bars ending ``start_pos`` bars before the forming one (0), oldest first."""
    if not is_int(start_pos) or start_pos < 0:
        invalid("Invalid 3rd unnamed argument")
    return _copy_rates(s, symbol, timeframe, start_pos=start_pos, count=count)


@_terminal_call
def copy_rates_range(s: Session, symbol: str, timeframe: int, date_from: Any, date_to: Any) -> Any:
    """The bars opened from ``date_from`` to ``date_to``, oldest first."""
    return _copy_rates(s, symbol, timeframe, date_from=date_from, date_to=date_to)


@_terminal_call
def copy_ticks_from(s: Session, symbol: str, date_from: Any, count: int, flags: int) -> Any:
    """Ticks of ``symbol`` from ``date_from`` on (at most ``count``), oldest first."""
    return _copy_ticks(s, symbol, date_from, None, count, flags)


@_terminal_call
def copy_ticks_range(s: Session, symbol: str, date_from: Any, date_to: Any, flags: int) -> Any:
    """Ticks of ``symbol`` between ``date_from`` and ``date_to``, oldest first."""
    return _copy_ticks(s, symbol, date_from, date_to, None, flags)


# -- depth of market (mt5exec.mt5.simbook) ----------------------------------------------------

market_book_add = _terminal_check(simbook.market_book_add)
market_book_get = _terminal_call(simbook.market_book_get)
market_book_release = _terminal_check(simbook.market_book_release)


# -- trading -----------------------------------------------------------------------------------


@_terminal_call
def order_check(s: Session, request: dict[str, Any]) -> OrderCheckResult:
    """Check a trade request as ``order_send`` would, and the account after it; no change."""
    req = parse_request(request)
    proto = to_proto(req, 0)
    proto.check_only = True
    r = s.broker.send(proto).result
    return OrderCheckResult(
        retcode=r.retcode,
        balance=r.balance,
        equity=r.equity,
        profit=s.broker.account_snapshot().profit,
        margin=r.margin,
        margin_free=r.margin_free,
        margin_level=r.margin_level,
        comment=r.comment,
        request=req,
    )


def _calc_symbol(s: Session, symbol: Any) -> Any:
    if not isinstance(symbol, str):
        invalid("Invalid 2nd unnamed argument")
    return symbol


@_terminal_call
def order_calc_margin(s: Session, action: int, symbol: str, volume: float, price: float) -> float:
    """Margin in the account currency for ``volume`` lots of ``symbol`` (ORDER_TYPE_* action)."""
    order_type(action)
    _calc_symbol(s, symbol)
    lots = positive(volume, "3rd")
    at = positive(price, "4th")
    spec = s.specs.get(symbol)
    if spec is None:
        raise Refused(c.RES_E_FAIL)
    return round(s.margin_for(spec, lots, at), 2)


@_terminal_call
def order_calc_profit(
    s: Session, action: int, symbol: str, volume: float, price_open: float, price_close: float
) -> float:
    """Profit in the account currency of ``volume`` lots of ``symbol`` bought (ORDER_TYPE_BUY)
    or sold at ``price_open`` and closed at ``price_close``."""
    side = order_type(action)
    _calc_symbol(s, symbol)
    lots = positive(volume, "3rd")
    opened = positive(price_open, "4th")
    closed = positive(price_close, "5th")
    spec = s.specs.get(symbol)
    if spec is None:
        raise Refused(c.RES_E_FAIL)
    diff = closed - opened
    if side == c.ORDER_TYPE_SELL:
        diff = -diff
    rate = s.to_account(spec.currency_profit)
    return round(diff * lots * spec.contract_size * rate, 2)


@_terminal_call
def order_send(s: Session, request: dict[str, Any]) -> OrderSendResult:
    """Send a trade request to the (simulated) trade server and return its answer."""
    req = parse_request(request)
    s.request_seq += 1
    sent = to_proto(req, s.request_seq)
    outcome = s.broker.send(sent)
    s.absorb(outcome.deals, outcome.order_updates, sent.type_filling)
    r = outcome.result
    deal, price = r.deal, r.price
    if r.retcode in (c.TRADE_RETCODE_DONE, c.TRADE_RETCODE_DONE_PARTIAL) and r.volume > 0:
        blank_deal = FAULTS.take_blank_fill()
        if blank_deal is not None:
            price = 0.0  # as some brokers answer: the fill is in the history only
            if blank_deal:
                deal = 0
    return OrderSendResult(
        retcode=r.retcode,
        deal=deal,
        order=r.order,
        volume=r.volume,
        price=price,
        bid=r.bid,
        ask=r.ask,
        comment=r.comment,
        request_id=s.request_seq,
        retcode_external=0,
        request=req,
    )


# -- positions, orders, history ----------------------------------------------------------------


@_terminal_call
def positions_total(s: Session) -> int:
    return s.broker.position_count


@_terminal_call
def positions_get(
    s: Session, *, symbol: str | None = None, group: str | None = None, ticket: int | None = None
) -> tuple[TradePosition, ...]:
    """Open positions, optionally of one symbol, a group mask or one ticket."""
    return filter_open(s.positions(), symbol, group, ticket)


@_terminal_call
def orders_total(s: Session) -> int:
    return s.broker.order_count


@_terminal_call
def orders_get(
    s: Session, *, symbol: str | None = None, group: str | None = None, ticket: int | None = None
) -> tuple[TradeOrder, ...]:
    """Pending orders, optionally of one symbol, a group mask or one ticket."""
    return filter_open(s.open_orders(), symbol, group, ticket)


def _deal_time(d: TradeDeal) -> int:
    return d.time_msc


def _order_time(o: TradeOrder) -> int:
    return o.time_setup_msc


@_terminal_call
def history_deals_get(
    s: Session,
    date_from: Any = None,
    date_to: Any = None,
    *,
    group: str | None = None,
    ticket: int | None = None,
    position: int | None = None,
) -> tuple[TradeDeal, ...]:
    """Deals between two dates (optionally of a group mask), or of one ticket or position."""
    return filter_history(s.deal_history(), _deal_time, date_from, date_to, group, ticket, position)


@_terminal_call
def history_deals_total(s: Session, date_from: Any, date_to: Any) -> int:
    return len(filter_history(s.deal_history(), _deal_time, date_from, date_to))


@_terminal_call
def history_orders_get(
    s: Session,
    date_from: Any = None,
    date_to: Any = None,
    *,
    group: str | None = None,
    ticket: int | None = None,
    position: int | None = None,
) -> tuple[TradeOrder, ...]:
    """Orders in the history between two dates, or of one ticket or position."""
    return filter_history(
        s.order_history(), _order_time, date_from, date_to, group, ticket, position
    )


@_terminal_call
def history_orders_total(s: Session, date_from: Any, date_to: Any) -> int:
    return len(filter_history(s.order_history(), _order_time, date_from, date_to))
