"""The MetaTrader5-compatible simulated terminal: names, shapes, failures, durability, hooks.

The module keeps one attached terminal per process, as the real package does; every test
detaches at the end.
"""

from __future__ import annotations

import inspect
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from mt5exec.mt5 import simterminal as mt5
from mt5exec.sim.state import read_deals

PASSWORD = "Sim-Pa55word!"
LOGIN = 7001
SERVER = "Sim-Demo"


def names(text: str) -> list[str]:
    return text.split()


# The official field names of the MetaTrader5 package's result types (5.0.6231), in order.
OFFICIAL_FIELDS: dict[str, list[str]] = {
    "TerminalInfo": names(
        "community_account community_connection connected dlls_allowed trade_allowed "
        "tradeapi_disabled email_enabled ftp_enabled notifications_enabled mqid build maxbars "
        "codepage ping_last community_balance retransmission company name language path "
        "data_path commondata_path"
    ),
    "AccountInfo": names(
        "login trade_mode leverage limit_orders margin_so_mode trade_allowed trade_expert "
        "margin_mode currency_digits fifo_close balance credit profit equity margin margin_free "
        "margin_level margin_so_call margin_so_so margin_initial margin_maintenance assets "
        "liabilities commission_blocked name server currency company"
    ),
    "SymbolInfo": names(
        "custom chart_mode select visible session_deals session_buy_orders session_sell_orders "
        "volume volumehigh volumelow time digits spread spread_float ticks_bookdepth "
        "trade_calc_mode trade_mode start_time expiration_time trade_stops_level "
        "trade_freeze_level trade_exemode swap_mode swap_rollover3days margin_hedged_use_leg "
        "expiration_mode filling_mode order_mode order_gtc_mode option_mode option_right bid "
        "bidhigh bidlow ask askhigh asklow last lasthigh lastlow volume_real volumehigh_real "
        "volumelow_real option_strike point trade_tick_value trade_tick_value_profit "
        "trade_tick_value_loss trade_tick_size trade_contract_size trade_accrued_interest "
        "trade_face_value trade_liquidity_rate volume_min volume_max volume_step volume_limit "
        "swap_long swap_short margin_initial margin_maintenance session_volume session_turnover "
        "session_interest session_buy_orders_volume session_sell_orders_volume session_open "
        "session_close session_aw session_price_settlement session_price_limit_min "
        "session_price_limit_max margin_hedged price_change price_volatility price_theoretical "
        "price_greeks_delta price_greeks_theta price_greeks_gamma price_greeks_vega "
        "price_greeks_rho price_greeks_omega price_sensitivity basis category currency_base "
        "currency_profit currency_margin bank description exchange formula isin name page path"
    ),
    "Tick": names("time bid ask last volume time_msc flags volume_real"),
    "TradeRequest": names(
        "action magic order symbol volume price stoplimit sl tp deviation type type_filling "
        "type_time expiration comment position position_by"
    ),
    "OrderSendResult": names(
        "retcode deal order volume price bid ask comment request_id retcode_external request"
    ),
    "OrderCheckResult": names(
        "retcode balance equity profit margin margin_free margin_level comment request"
    ),
    "TradeOrder": names(
        "ticket time_setup time_setup_msc time_done time_done_msc time_expiration type "
        "type_time type_filling state magic position_id position_by_id reason volume_initial "
        "volume_current price_open sl tp price_current price_stoplimit symbol comment external_id"
    ),
    "TradePosition": names(
        "ticket time time_msc time_update time_update_msc type magic identifier reason volume "
        "price_open sl tp price_current swap profit symbol comment external_id"
    ),
    "TradeDeal": names(
        "ticket order time time_msc type entry magic position_id reason volume price commission "
        "swap profit fee symbol comment external_id"
    ),
}


@pytest.fixture(autouse=True)
def _detach() -> Iterator[None]:
    yield
    mt5.shutdown()
    mt5.clear_injected_failures()


def make_terminal(tmp_path: Path, **overrides: Any) -> Path:
    values: dict[str, Any] = {
        "login": LOGIN,
        "password": PASSWORD,
        "server": SERVER,
        "symbols": ["EURUSD", "GBPUSD", "USDJPY"],
        "tick_rate": 100,
    }
    values.update(overrides)
    directory = tmp_path / "terminal"
    mt5.write_terminal_config(directory, **values)
    return directory


def attach(directory: Path) -> None:
    assert mt5.initialize(
        str(directory), login=LOGIN, password=PASSWORD, server=SERVER, timeout=1000, portable=True
    ), mt5.last_error()
    assert mt5.last_error() == (mt5.RES_S_OK, "Success")


def buy(volume: float = 0.1, **extra: Any) -> Any:
    request = {
        "action": mt5.TRADE_ACTION_DEAL,
        "symbol": "EURUSD",
        "volume": volume,
        "type": mt5.ORDER_TYPE_BUY,
        "magic": 42,
        "comment": "t1",
    }
    request.update(extra)
    return mt5.order_send(request)


# -- names and shapes ------------------------------------------------------------------------------


def test_constants_have_the_official_values() -> None:
    expected = {
        "TRADE_ACTION_DEAL": 1,
        "TRADE_ACTION_SLTP": 6,
        "TRADE_ACTION_CLOSE_BY": 10,
        "ORDER_TYPE_SELL_STOP_LIMIT": 7,
        "ORDER_FILLING_RETURN": 2,
        "ORDER_FILLING_BOC": 3,
        "ORDER_STATE_REQUEST_CANCEL": 9,
        "DEAL_REASON_SL": 4,
        "DEAL_REASON_SO": 6,
        "DEAL_ENTRY_OUT_BY": 3,
        "TRADE_RETCODE_DONE": 10009,
        "TRADE_RETCODE_TIMEOUT": 10012,
        "TRADE_RETCODE_CONNECTION": 10031,
        "TRADE_RETCODE_FIFO_CLOSE": 10045,
        "RES_E_AUTH_FAILED": -6,
        "RES_E_INTERNAL_FAIL_CONNECT": -10004,
        "RES_E_INTERNAL_FAIL_TIMEOUT": -10005,
        "TIMEFRAME_H1": 0x4001,
        "TIMEFRAME_MN1": 0xC001,
        "COPY_TICKS_ALL": -1,
        "ACCOUNT_MARGIN_MODE_RETAIL_HEDGING": 2,
    }
    assert {name: getattr(mt5, name) for name in expected} == expected


def test_result_types_have_the_official_fields(tmp_path: Path) -> None:
    for name, fields in OFFICIAL_FIELDS.items():
        assert list(getattr(mt5, name)._fields) == fields, name

    attach(make_terminal(tmp_path))
    assert mt5.symbol_select("EURUSD", True)
    result = buy()
    assert result is not None
    check = mt5.order_check(
        {"action": mt5.TRADE_ACTION_DEAL, "symbol": "EURUSD", "volume": 0.1, "type": 0}
    )
    values = {
        "TerminalInfo": mt5.terminal_info(),
        "AccountInfo": mt5.account_info(),
        "SymbolInfo": mt5.symbol_info("EURUSD"),
        "Tick": mt5.symbol_info_tick("EURUSD"),
        "TradeRequest": result.request,
        "OrderSendResult": result,
        "OrderCheckResult": check,
        "TradeOrder": mt5.history_orders_get(ticket=result.order)[0],
        "TradePosition": mt5.positions_get()[0],
        "TradeDeal": mt5.history_deals_get(ticket=result.deal)[0],
    }
    for name, value in values.items():
        assert type(value).__name__ == name
        assert list(value._asdict()) == OFFICIAL_FIELDS[name], name


def test_the_module_has_every_function_the_worker_uses() -> None:
    for name in names(
        "initialize login shutdown last_error version terminal_info account_info symbols_total "
        "symbols_get symbol_info symbol_info_tick symbol_select copy_ticks_from copy_ticks_range "
        "order_calc_margin order_check order_send orders_total orders_get positions_total "
        "positions_get history_orders_total history_orders_get history_deals_total "
        "history_deals_get"
    ):
        assert callable(getattr(mt5, name)), name


# -- attaching and logging in --------------------------------------------------------------------


def test_calls_before_initialize_fail_with_no_ipc_connection() -> None:
    assert mt5.account_info() is None
    assert mt5.last_error() == (-10004, "No IPC connection")
    assert mt5.symbol_select("EURUSD") is False
    assert mt5.order_send({"action": 1}) is None
    assert mt5.version() is None


def test_initialize_without_a_terminal_fails(tmp_path: Path) -> None:
    assert mt5.initialize(str(tmp_path / "nowhere")) is False
    code, message = mt5.last_error()
    assert code == mt5.RES_E_INTERNAL_FAIL_INIT
    assert "not found" in message


@pytest.mark.parametrize(
    ("login", "password", "server"),
    [(LOGIN, "wrong", SERVER), (LOGIN + 1, PASSWORD, SERVER), (LOGIN, PASSWORD, "Other-Server")],
)
def test_wrong_credentials_are_refused(
    tmp_path: Path, login: int, password: str, server: str
) -> None:
    directory = make_terminal(tmp_path)
    assert mt5.initialize(str(directory), login=login, password=password, server=server) is False
    assert mt5.last_error() == (mt5.RES_E_AUTH_FAILED, "Terminal: Authorization failed")
    assert mt5.account_info() is None


def test_password_never_appears_in_errors(tmp_path: Path) -> None:
    directory = tmp_path / "terminal"
    directory.mkdir()
    (directory / mt5.CONFIG_FILE).write_text(json.dumps({"password": 12345678}))
    assert mt5.initialize(str(directory)) is False
    code, message = mt5.last_error()
    assert code == mt5.RES_E_INTERNAL_FAIL_INIT
    assert "password" in message
    assert "12345678" not in message
    assert "password=" not in repr(mt5.TerminalConfig(password=PASSWORD))
    assert PASSWORD not in repr(mt5.TerminalConfig(password=PASSWORD))


def test_initialize_takes_the_path_of_terminal64_exe(tmp_path: Path) -> None:
    directory = make_terminal(tmp_path)
    (directory / "terminal64.exe").write_bytes(b"MZ")
    assert mt5.initialize(str(directory / "terminal64.exe"), login=LOGIN, password=PASSWORD)
    info = mt5.terminal_info()
    assert info is not None
    assert Path(info.path) == directory.absolute()
    assert info.connected
    assert mt5.version() == (500, mt5.BUILD, mt5.BUILD_DATE)


def test_login_checks_credentials(tmp_path: Path) -> None:
    attach(make_terminal(tmp_path))
    assert mt5.login(LOGIN, password=PASSWORD, server=SERVER) is True
    assert mt5.login(LOGIN, password="nope") is False
    assert mt5.last_error()[0] == mt5.RES_E_AUTH_FAILED


def test_account_info(tmp_path: Path) -> None:
    attach(make_terminal(tmp_path, margin_mode="netting", leverage=50, initial_balance=2500))
    a = mt5.account_info()
    assert a is not None
    assert (a.login, a.server, a.currency, a.leverage) == (LOGIN, SERVER, "USD", 50)
    assert a.margin_mode == mt5.ACCOUNT_MARGIN_MODE_RETAIL_NETTING
    assert (a.balance, a.equity, a.margin, a.margin_free) == (2500, 2500, 0, 2500)


# -- symbols and ticks -----------------------------------------------------------------------------


def test_symbols(tmp_path: Path) -> None:
    attach(make_terminal(tmp_path))
    assert mt5.symbols_total() == 3
    all_symbols = mt5.symbols_get()
    assert all_symbols is not None
    assert [s.name for s in all_symbols] == ["EURUSD", "GBPUSD", "USDJPY"]
    some = mt5.symbols_get(group="*USD*,!EUR*")
    assert some is not None
    assert [s.name for s in some] == ["GBPUSD", "USDJPY"]
    info = mt5.symbol_info("EURUSD")
    assert info is not None
    assert not info.select
    assert mt5.symbol_select("EURUSD", True)
    info = mt5.symbol_info("EURUSD")
    assert info is not None
    assert info.select and info.visible
    assert (info.digits, info.point, info.trade_contract_size) == (5, 1e-5, 100_000.0)
    assert (info.volume_min, info.volume_max, info.volume_step) == (0.01, 100.0, 0.01)
    assert info.filling_mode == 3  # SYMBOL_FILLING_FOK | SYMBOL_FILLING_IOC
    assert info.trade_mode == mt5.SYMBOL_TRADE_MODE_FULL
    assert (info.currency_base, info.currency_profit, info.currency_margin) == ("EUR", "USD", "EUR")
    assert info.bid < info.ask
    assert mt5.symbol_info("NOPE") is None
    assert mt5.last_error() == (mt5.RES_E_FAIL, "Terminal: Call failed")
    assert mt5.symbol_select("NOPE") is False


def test_prices_advance_with_wall_time(tmp_path: Path) -> None:
    attach(make_terminal(tmp_path, tick_rate=200))
    first = mt5.symbol_info_tick("EURUSD")
    assert first is not None
    time.sleep(0.3)
    later = mt5.symbol_info_tick("EURUSD")
    assert later is not None
    assert later.time_msc > first.time_msc
    assert later.bid < later.ask
    assert later.time == later.time_msc // 1000


def test_copy_ticks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mt5, "TICKS_AS_NUMPY", False)
    attach(make_terminal(tmp_path, tick_rate=200))
    start = time.time()
    time.sleep(0.3)
    ticks = mt5.copy_ticks_from("EURUSD", start, 10, mt5.COPY_TICKS_ALL)
    assert ticks is not None
    assert 0 < len(ticks) <= 10
    times = [t.time_msc for t in ticks]
    assert times == sorted(times)
    assert times[0] >= int(start * 1000)
    assert all(t.flags & (mt5.TICK_FLAG_BID | mt5.TICK_FLAG_ASK) for t in ticks)
    since = datetime.fromtimestamp(start, UTC)
    ranged = mt5.copy_ticks_range("EURUSD", since, datetime.now(UTC), mt5.COPY_TICKS_INFO)
    assert ranged is not None
    assert len(ranged) >= len(ticks)
    assert mt5.copy_ticks_from("EURUSD", start, 10, mt5.COPY_TICKS_TRADE) == ()
    assert mt5.copy_ticks_from("EURUSD", start, 10, 99) is None
    assert mt5.last_error()[0] == mt5.RES_E_INVALID_PARAMS
    assert mt5.copy_ticks_from("EURUSD", "yesterday", 10, mt5.COPY_TICKS_ALL) is None
    assert mt5.last_error()[0] == mt5.RES_E_INVALID_PARAMS


def test_copy_ticks_as_numpy_when_available(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    np = pytest.importorskip("numpy")
    monkeypatch.setattr(mt5, "TICKS_AS_NUMPY", True)
    attach(make_terminal(tmp_path, tick_rate=200))
    start = time.time()
    time.sleep(0.2)
    ticks = mt5.copy_ticks_from("EURUSD", start, 100, mt5.COPY_TICKS_ALL)
    assert isinstance(ticks, np.ndarray)
    assert ticks.dtype.names == tuple(OFFICIAL_FIELDS["Tick"])
    assert len(ticks) > 0
    assert ticks["bid"][0] < ticks["ask"][0]


# -- trading ---------------------------------------------------------------------------------------


def test_market_buy_and_history(tmp_path: Path) -> None:
    attach(make_terminal(tmp_path))
    result = buy()
    assert result is not None
    assert result.retcode == mt5.TRADE_RETCODE_DONE
    assert result.price == result.ask
    assert result.request.symbol == "EURUSD"
    assert result.request_id == 1
    (position,) = mt5.positions_get()
    assert (position.ticket, position.identifier) == (result.order, result.order)
    assert (position.symbol, position.volume, position.price_open) == ("EURUSD", 0.1, result.price)
    assert (position.magic, position.comment) == (42, "t1")
    assert position.type == mt5.POSITION_TYPE_BUY
    assert mt5.positions_total() == 1
    assert mt5.positions_get(symbol="GBPUSD") == ()
    assert mt5.positions_get(group="*,!EUR*") == ()
    assert mt5.positions_get(ticket=result.order) == (position,)

    (deal,) = mt5.history_deals_get(ticket=result.deal)
    assert (deal.order, deal.position_id, deal.price, deal.volume) == (
        result.order,
        result.order,
        result.price,
        0.1,
    )
    assert deal.entry == mt5.DEAL_ENTRY_IN
    assert deal.reason == mt5.DEAL_REASON_EXPERT
    assert mt5.history_deals_get(position=result.order) == (deal,)
    now = datetime.now(UTC)
    assert mt5.history_deals_get(datetime(2020, 1, 1), now) == (deal,)
    assert mt5.history_deals_get(0, time.time() + 60, group="GBP*") == ()
    assert mt5.history_deals_total(0, time.time() + 60) == 1
    (order,) = mt5.history_orders_get(ticket=result.order)
    assert order.state == mt5.ORDER_STATE_FILLED
    assert order.comment == "t1"
    assert mt5.history_orders_total(0, time.time() + 60) == 1
    assert mt5.orders_total() == 0
    assert mt5.orders_get() == ()

    account = mt5.account_info()
    assert account is not None
    assert account.margin > 0


def test_close_by_position_ticket(tmp_path: Path) -> None:
    attach(make_terminal(tmp_path))
    first, second = buy(), buy(0.2)
    assert first is not None and second is not None
    close = mt5.order_send(
        {
            "action": mt5.TRADE_ACTION_DEAL,
            "symbol": "EURUSD",
            "volume": 0.1,
            "type": mt5.ORDER_TYPE_SELL,
            "position": first.order,
        }
    )
    assert close is not None
    assert close.retcode == mt5.TRADE_RETCODE_DONE
    assert [p.ticket for p in mt5.positions_get()] == [second.order]
    (deal,) = mt5.history_deals_get(ticket=close.deal)
    assert (deal.entry, deal.position_id) == (mt5.DEAL_ENTRY_OUT, first.order)


def test_order_check(tmp_path: Path) -> None:
    attach(make_terminal(tmp_path))
    request = {"action": mt5.TRADE_ACTION_DEAL, "symbol": "EURUSD", "volume": 1.0, "type": 0}
    check = mt5.order_check(request)
    assert check is not None
    assert (check.retcode, check.comment) == (0, "Done")
    tick = mt5.symbol_info_tick("EURUSD")
    assert tick is not None
    margin = mt5.order_calc_margin(mt5.ORDER_TYPE_BUY, "EURUSD", 1.0, tick.ask)
    assert margin is not None
    assert check.margin == pytest.approx(margin, rel=1e-3)
    assert check.margin_free == pytest.approx(check.equity - check.margin, abs=0.01)
    assert check.balance == 10_000
    assert mt5.positions_total() == 0  # nothing traded

    usdjpy = mt5.order_calc_margin(mt5.ORDER_TYPE_BUY, "USDJPY", 1.0, 150.0)
    assert usdjpy == 1000.0  # 100,000 USD at 1:100

    def retcode(**changes: Any) -> int:
        result = mt5.order_check({**request, **changes})
        assert result is not None
        return int(result.retcode)

    assert retcode(volume=1000.0) == mt5.TRADE_RETCODE_INVALID_VOLUME
    assert retcode(volume=0.015) == mt5.TRADE_RETCODE_INVALID_VOLUME
    assert retcode(volume=90.0) == mt5.TRADE_RETCODE_NO_MONEY
    assert retcode(type_filling=mt5.ORDER_FILLING_BOC) == mt5.TRADE_RETCODE_INVALID_FILL
    assert retcode(sl=tick.bid + 0.001) == mt5.TRADE_RETCODE_INVALID_STOPS
    assert retcode(symbol="NOPE") == mt5.TRADE_RETCODE_INVALID
    assert retcode(position=123) == mt5.TRADE_RETCODE_POSITION_CLOSED


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        ("not a dict", "Invalid 1st unnamed argument"),
        ({"symbol": "EURUSD"}, 'Invalid "action" argument'),
        ({"action": 1, "volume": "1"}, 'Invalid "volume" argument'),
        ({"action": 1, "magic": -1}, 'Invalid "magic" argument'),
        ({"action": 1, "volume": float("nan")}, 'Invalid "volume" argument'),
        ({"action": 1, "comment": 5}, 'Invalid "comment" argument'),
    ],
)
def test_malformed_requests_fail_with_invalid_params(
    tmp_path: Path, request_: Any, message: str
) -> None:
    attach(make_terminal(tmp_path))
    assert mt5.order_send(request_) is None
    assert mt5.last_error() == (mt5.RES_E_INVALID_PARAMS, message)
    assert mt5.order_check(request_) is None
    assert mt5.last_error() == (mt5.RES_E_INVALID_PARAMS, message)


def test_bad_arguments_fail_with_invalid_params(tmp_path: Path) -> None:
    attach(make_terminal(tmp_path))
    assert mt5.symbol_info(123) is None  # type: ignore[arg-type]
    assert mt5.last_error()[0] == mt5.RES_E_INVALID_PARAMS
    assert mt5.positions_get(ticket="1") is None  # type: ignore[arg-type]
    assert mt5.last_error() == (mt5.RES_E_INVALID_PARAMS, 'Invalid "ticket" argument')
    assert mt5.history_deals_get() is None
    assert mt5.last_error()[0] == mt5.RES_E_INVALID_PARAMS
    assert mt5.order_calc_margin(mt5.ORDER_TYPE_BUY, "EURUSD", -1.0, 1.0) is None
    assert mt5.last_error()[0] == mt5.RES_E_INVALID_PARAMS


def test_a_rejected_order_is_a_result_not_an_error(tmp_path: Path) -> None:
    attach(make_terminal(tmp_path))
    result = buy(volume=0.015)
    assert result is not None
    assert result.retcode == mt5.TRADE_RETCODE_INVALID_VOLUME
    assert mt5.last_error() == (mt5.RES_S_OK, "Success")
    assert mt5.positions_total() == 0


# -- durability ------------------------------------------------------------------------------------


def test_the_account_survives_shutdown_and_initialize(tmp_path: Path) -> None:
    directory = make_terminal(tmp_path)
    attach(directory)
    result = buy()
    assert result is not None
    balance = mt5.account_info().balance  # type: ignore[union-attr]
    mt5.shutdown()
    assert mt5.positions_get() is None
    assert mt5.last_error()[0] == mt5.RES_E_INTERNAL_FAIL_CONNECT

    attach(directory)
    (position,) = mt5.positions_get()
    assert position.ticket == result.order
    (deal,) = mt5.history_deals_get(0, time.time() + 60)
    assert deal.ticket == result.deal
    assert mt5.account_info().balance == balance  # type: ignore[union-attr]
    # New tickets follow the old ones.
    again = buy()
    assert again is not None
    assert again.order > result.order and again.deal > result.deal
    assert [d.ticket for d in read_deals(directory / mt5.STATE_NAME)] == [result.deal, again.deal]


# -- IPC failures (test hooks) ---------------------------------------------------------------------


def test_injected_ipc_failure_breaks_the_link_until_initialize(tmp_path: Path) -> None:
    directory = make_terminal(tmp_path)
    attach(directory)
    mt5.inject_ipc_failures(1, mt5.RES_E_INTERNAL_FAIL_TIMEOUT, functions=["order_send"])
    assert mt5.positions_total() == 0  # other calls are not affected
    assert buy() is None
    assert mt5.last_error() == (mt5.RES_E_INTERNAL_FAIL_TIMEOUT, "IPC timeout")
    assert mt5.positions_total() is None
    assert mt5.last_error() == (mt5.RES_E_INTERNAL_FAIL_CONNECT, "No IPC connection")
    attach(directory)
    assert mt5.positions_total() == 0  # the order never reached the broker


def test_lost_reply_of_an_executed_order(tmp_path: Path) -> None:
    directory = make_terminal(tmp_path)
    attach(directory)
    mt5.inject_ipc_failures(
        1, mt5.RES_E_INTERNAL_FAIL_TIMEOUT, functions=["order_send"], executed=True
    )
    assert buy() is None
    assert mt5.last_error()[0] == mt5.RES_E_INTERNAL_FAIL_TIMEOUT
    attach(directory)
    (position,) = mt5.positions_get()  # it did go through
    assert position.comment == "t1"


def test_failures_of_initialize_and_the_file_hook(tmp_path: Path) -> None:
    directory = make_terminal(tmp_path)
    mt5.write_hook_file(
        directory, ({"n": 2, "code": mt5.RES_E_INTERNAL_FAIL_CONNECT, "functions": ["initialize"]})
    )
    for _ in range(2):
        assert mt5.initialize(str(directory), login=LOGIN, password=PASSWORD) is False
        assert mt5.last_error()[0] == mt5.RES_E_INTERNAL_FAIL_CONNECT
    assert not (directory / mt5.INJECT_FILE).exists()
    attach(directory)

    mt5.write_hook_file(
        directory, ([{"n": 1, "code": mt5.RES_E_INTERNAL_FAIL_RECEIVE, "disconnect": False}])
    )
    assert mt5.account_info() is None
    assert mt5.last_error() == (mt5.RES_E_INTERNAL_FAIL_RECEIVE, "IPC recv failed")
    assert mt5.account_info() is not None  # disconnect=False: the link stayed up


# -- what the server does on its own -------------------------------------------------------------


def test_pending_orders_and_their_history(tmp_path: Path) -> None:
    attach(make_terminal(tmp_path, tick_rate=0))
    placed = mt5.order_send(
        {
            "action": mt5.TRADE_ACTION_PENDING,
            "symbol": "EURUSD",
            "volume": 0.1,
            "type": mt5.ORDER_TYPE_BUY_LIMIT,
            "price": 1.08,
            "type_filling": mt5.ORDER_FILLING_RETURN,
            "comment": "lim",
        }
    )
    assert placed is not None
    assert placed.retcode == mt5.TRADE_RETCODE_PLACED
    (order,) = mt5.orders_get()
    assert (order.ticket, order.type, order.state) == (
        placed.order,
        mt5.ORDER_TYPE_BUY_LIMIT,
        mt5.ORDER_STATE_PLACED,
    )
    assert (order.price_open, order.volume_current, order.comment) == (1.08, 0.1, "lim")
    assert mt5.orders_total() == 1
    assert mt5.orders_get(symbol="GBPUSD") == ()
    assert mt5.history_orders_get(ticket=placed.order) == ()  # working, not history yet

    assert mt5.set_price("EURUSD", 1.0795)  # the ask falls through the limit
    assert mt5.orders_total() == 0
    (done,) = mt5.history_orders_get(ticket=placed.order)
    assert done.state == mt5.ORDER_STATE_FILLED
    (deal,) = mt5.history_deals_get(position=mt5.positions_get()[0].ticket)
    assert (deal.order, deal.entry) == (placed.order, mt5.DEAL_ENTRY_IN)


def test_stop_loss_hit_lands_in_the_history_with_its_reason(tmp_path: Path) -> None:
    directory = make_terminal(tmp_path, tick_rate=0)
    attach(directory)
    opened = buy(sl=1.08, tp=1.09)
    assert opened is not None
    assert opened.retcode == mt5.TRADE_RETCODE_DONE, opened.comment
    # Through the hook file, as a test in another process would.
    mt5.write_hook_file(directory, {"set_price": {"EURUSD": 1.0799}})
    assert mt5.positions_get() == ()
    deals = mt5.history_deals_get(position=opened.order)
    assert deals is not None
    assert [d.reason for d in deals] == [mt5.DEAL_REASON_EXPERT, mt5.DEAL_REASON_SL]
    closing = deals[1]
    assert (closing.entry, closing.price) == (mt5.DEAL_ENTRY_OUT, 1.0799)
    (sl_order,) = mt5.history_orders_get(ticket=closing.order)
    assert sl_order.reason == mt5.ORDER_REASON_SL
    # The same history after attaching again (read back from the broker's journal).
    mt5.shutdown()
    attach(directory)
    again = mt5.history_deals_get(position=opened.order)
    assert again is not None
    assert [d.reason for d in again] == [mt5.DEAL_REASON_EXPERT, mt5.DEAL_REASON_SL]
    assert mt5.history_orders_get(ticket=closing.order)[0].reason == mt5.ORDER_REASON_SL


def test_symbol_settings_and_stop_out_levels(tmp_path: Path) -> None:
    attach(
        make_terminal(
            tmp_path,
            stop_out_level=20,
            margin_call_level=80,
            symbol_settings={"EURUSD": {"execution": "instant", "filling_mode": 2}},
        )
    )
    info = mt5.symbol_info("EURUSD")
    assert info is not None
    assert (info.trade_exemode, info.filling_mode) == (mt5.SYMBOL_TRADE_EXECUTION_INSTANT, 2)
    other = mt5.symbol_info("GBPUSD")
    assert other is not None
    assert other.trade_exemode == mt5.SYMBOL_TRADE_EXECUTION_MARKET
    account = mt5.account_info()
    assert account is not None
    assert (account.margin_so_call, account.margin_so_so) == (80, 20)
    fok = mt5.order_check(
        {"action": 1, "symbol": "EURUSD", "volume": 0.1, "type": 0, "type_filling": 0}
    )
    assert fok is not None
    assert fok.retcode == mt5.TRADE_RETCODE_INVALID_FILL


def test_bad_terminal_config_is_an_init_failure(tmp_path: Path) -> None:
    directory = make_terminal(tmp_path, symbol_settings={"XAUUSD": {"stops_level": 5}})
    assert mt5.initialize(str(directory)) is False
    code, message = mt5.last_error()
    assert code == mt5.RES_E_INTERNAL_FAIL_INIT
    assert "symbol_settings" in message


def test_the_api_shows_the_packages_signatures() -> None:
    """Every call goes through one wrapper (``_terminal_call``), whose body takes the attached
    session first: the functions still show the MetaTrader5 package's parameters, and
    ``None`` (``False`` for login/symbol_select) when they fail."""
    shown = {
        name: str(inspect.signature(getattr(mt5, name)))
        for name in ("copy_rates_from_pos", "positions_get", "login", "symbol_select", "version")
    }
    assert shown == {
        "copy_rates_from_pos": "(symbol: 'str', timeframe: 'int', start_pos: 'int', "
        "count: 'int') -> 'Any | None'",
        "positions_get": "(*, symbol: 'str | None' = None, group: 'str | None' = None, "
        "ticket: 'int | None' = None) -> 'tuple[TradePosition, ...] | None'",
        "login": "(login: 'int', password: 'str | None' = None, server: 'str | None' = None, "
        "timeout: 'int | None' = None) -> 'bool'",
        "symbol_select": "(symbol: 'str', enable: 'bool' = True) -> 'bool'",
        "version": "() -> 'tuple[int, int, str] | None'",
    }
    assert mt5.positions_get.__name__ == "positions_get"
    assert mt5.positions_get.__doc__ is not None
