"""The risk rules: the Rust engine against the pure-Python reference (differential), each
check at its boundary, and values that must never pass."""

from __future__ import annotations

import dataclasses
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.profiles import examples

from mt5exec import _core
from mt5exec import risk_reference as ref
from mt5exec.terminal.v1 import worker_pb2
from mt5exec.v1 import common_pb2

if not hasattr(_core, "RiskChecker"):
    pytest.fail(
        "_core.RiskChecker is built only with the test-bindings feature: `make build`, or "
        "`maturin develop --release --features test-bindings`",
        pytrace=False,
    )


def rust_verdict(order: ref.Order, s: ref.Scenario) -> str | None:
    spec = worker_pb2.SymbolInfo(
        name="EURUSD",
        contract_size=s.symbol.contract_size,
        tick_value=s.symbol.tick_value,
        tick_size=s.symbol.tick_size,
        trade_mode=s.symbol.trade_mode,
    )
    fields = {
        f.name: getattr(s, f.name)
        for f in dataclasses.fields(s)
        if f.name not in ("limits", "symbol", "bid", "ask")
    }
    checker = _core.RiskChecker(
        s.limits.SerializeToString(), spec.SerializeToString(), s.bid, s.ask, **fields
    )
    return checker.check(*order.args())


def both(order: ref.Order, s: ref.Scenario) -> str | None:
    expected = ref.check(order, s)
    assert rust_verdict(order, s) == expected, (order, s)
    return expected


# -- strategies ---------------------------------------------------------------------------


def _maybe(values: st.SearchStrategy[float]) -> st.SearchStrategy[float]:
    return st.one_of(st.just(0.0), values)


limits_st = st.builds(
    common_pb2.RiskLimits,
    max_order_volume=_maybe(st.sampled_from([0.5, 1.0, 2.0, 10.0])),
    min_order_volume=_maybe(st.sampled_from([0.01, 0.1, 0.5])),
    max_order_notional=_maybe(st.sampled_from([50_000.0, 110_000.0, 1e6])),
    max_symbol_exposure=_maybe(st.sampled_from([100_000.0, 300_000.0])),
    max_open_positions=st.sampled_from([0, 1, 3, 20]),
    max_pending_orders=st.sampled_from([0, 1, 3]),
    max_trades_per_day=st.sampled_from([0, 1, 5, 50]),
    max_daily_loss=_maybe(st.sampled_from([100.0, 500.0, 1000.0])),
    max_loss_per_trade=_maybe(st.sampled_from([10.0, 100.0, 1000.0])),
    max_drawdown_percent=_maybe(st.sampled_from([1.0, 5.0, 50.0])),
    max_deviation_points=st.sampled_from([0, 5, 20]),
    price_collar_percent=_maybe(st.sampled_from([0.1, 1.0, 10.0])),
    stale_tick_ms=st.sampled_from([0, 100, 1000]),
)
symbol_st = st.builds(
    ref.Symbol,
    contract_size=st.sampled_from([1.0, 100.0, 100_000.0]),
    tick_value=st.sampled_from([0.0, 0.67, 1.0, 10.0]),
    tick_size=st.sampled_from([0.0, 0.00001, 0.001, 0.01]),
    trade_mode=st.sampled_from([0, 1, 2, 3] + [4] * 16),
)
price_st = st.floats(min_value=0.5, max_value=2.0)
# True about one time in twenty: the early exits must not hide the later checks.
rarely = st.sampled_from([True] + [False] * 19)


@st.composite
def scenarios(draw: st.DrawFn) -> ref.Scenario:
    bid = draw(price_st)
    spread = draw(st.sampled_from([0.0, 0.00001, 0.0002]))
    equity = draw(st.sampled_from([0.0, 500.0, 9_000.0, 10_000.0, 12_000.0]))
    return ref.Scenario(
        limits=draw(limits_st),
        symbol=draw(symbol_st),
        bid=bid,
        ask=bid + spread,
        tick_age_ms=draw(st.sampled_from([0, 100, 101, 5_000])),
        hedging=draw(st.booleans()),
        equity=equity,
        free_margin=draw(st.sampled_from([math.inf, 0.0, 500.0, 10_000.0])),
        leverage=draw(st.sampled_from([1.0, 30.0, 100.0, 500.0])),
        net_volume=draw(st.sampled_from([0.0, 0.5, -0.5, 1.0, -2.0])),
        open_positions=draw(st.integers(0, 25)),
        pending_orders=draw(st.integers(0, 5)),
        trades_today=draw(st.integers(0, 60)),
        day_start_equity=draw(st.sampled_from([0.0, 10_000.0, 10_500.0])),
        equity_high=draw(st.sampled_from([0.0, 10_000.0, 10_100.0, 20_000.0])),
        trading_state=draw(st.sampled_from([1] * 16 + [2, 2, 3])),
        kill_switch=draw(rarely),
        symbol_allowed=not draw(rarely),
        in_session=not draw(rarely),
        duplicate=draw(rarely),
    )


@st.composite
def orders(draw: st.DrawFn, s: ref.Scenario) -> ref.Order:
    order_type = draw(st.sampled_from([1, 1, 2, 3, 4]))
    mid = (s.bid + s.ask) / 2
    near = st.floats(min_value=mid * 0.98, max_value=mid * 1.02)
    return ref.Order(
        buy=draw(st.booleans()),
        order_type=order_type,
        volume=draw(st.sampled_from([0.01, 0.1, 0.5, 1.0, 2.0, 2.01, 10.0, 50.0])),
        price=draw(near) if order_type != 1 else draw(_maybe(near)),
        stop_limit_price=draw(_maybe(near)) if order_type == 4 else 0.0,
        stop_loss=draw(_maybe(near)),
        take_profit=draw(_maybe(near)),
        deviation_points=draw(st.sampled_from([0, 5, 6, 20, 21])),
        closes_position=draw(rarely),
    )


@settings(max_examples=examples(4000), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_rust_and_reference_agree(data: st.DataObject) -> None:
    s = data.draw(scenarios())
    order = data.draw(orders(s))
    both(order, s)


# -- boundaries ---------------------------------------------------------------------------

BASE = ref.Scenario(
    limits=common_pb2.RiskLimits(),
    symbol=ref.Symbol(),
    bid=1.1,
    ask=1.1,
    equity=10_000.0,
    free_margin=10_000.0,
    day_start_equity=10_000.0,
    equity_high=10_000.0,
)
BUY = ref.Order(buy=True, order_type=ref.MARKET, volume=1.0)


def at(**limits: float) -> ref.Scenario:
    return dataclasses.replace(BASE, limits=common_pb2.RiskLimits(**limits))


@pytest.mark.parametrize(
    ("scenario", "order", "ok_value", "over_value", "field", "reason"),
    [
        (at(max_order_volume=2.0), BUY, 2.0, 2.01, "volume", "VOLUME_ABOVE_LIMIT"),
        (at(min_order_volume=0.1), BUY, 0.1, 0.09, "volume", "VOLUME_BELOW_LIMIT"),
        # 1 lot at 1.1 = 110,000 of notional (tick value 1 per 0.00001).
        (at(max_order_notional=110_000.0), BUY, 1.0, 1.01, "volume", "NOTIONAL_LIMIT"),
        (at(max_symbol_exposure=220_000.0), BUY, 2.0, 2.01, "volume", "EXPOSURE_LIMIT"),
        (at(max_deviation_points=10), BUY, 10, 11, "deviation_points", "DEVIATION_LIMIT"),
        # 1% of 1.1 = 0.011.
        (
            at(price_collar_percent=1.0),
            dataclasses.replace(BUY, order_type=ref.LIMIT),
            1.1 - 0.011,
            1.1 - 0.01101,
            "price",
            "PRICE_COLLAR",
        ),
        # SL 0.001 away on 1 lot = 100 of loss.
        (at(max_loss_per_trade=100.0), BUY, 1.1 - 0.001, 1.1 - 0.00101, "stop_loss", None),
    ],
)
def test_order_field_boundaries(
    scenario: ref.Scenario,
    order: ref.Order,
    ok_value: float,
    over_value: float,
    field: str,
    reason: str | None,
) -> None:
    reason = reason or "TRADE_LOSS_LIMIT"
    assert both(dataclasses.replace(order, **{field: ok_value}), scenario) is None
    assert both(dataclasses.replace(order, **{field: over_value}), scenario) == reason


@pytest.mark.parametrize(
    ("limit", "state_field", "ok", "over", "reason"),
    [
        ("max_open_positions", "open_positions", 19, 20, "MAX_OPEN_POSITIONS"),
        ("max_trades_per_day", "trades_today", 49, 50, "MAX_TRADES_PER_DAY"),
        ("max_daily_loss", "equity", 9_000.0, 8_999.0, "DAILY_LOSS_LIMIT"),
        ("max_drawdown_percent", "equity", 9_500.0, 9_499.0, "DRAWDOWN_LIMIT"),
        ("stale_tick_ms", "tick_age_ms", 500, 501, "STALE_TICK"),
        ("max_pending_orders", "pending_orders", 2, 3, "MAX_PENDING_ORDERS"),
    ],
)
def test_account_boundaries(
    limit: str, state_field: str, ok: float, over: float, reason: str
) -> None:
    value = {
        "max_open_positions": 20,
        "max_trades_per_day": 50,
        "max_daily_loss": 1_000.0,
        "max_drawdown_percent": 5.0,
        "stale_tick_ms": 500,
        "max_pending_orders": 3,
    }[limit]
    order = BUY
    if limit == "max_pending_orders":
        order = dataclasses.replace(BUY, order_type=ref.LIMIT, price=1.09)
    scenario = at(**{limit: value})
    assert both(order, dataclasses.replace(scenario, **{state_field: ok})) is None
    assert both(order, dataclasses.replace(scenario, **{state_field: over})) == reason


def test_margin_boundary() -> None:
    # 1 lot = 110,000 notional at 1:100 = 1,100 of margin.
    s = dataclasses.replace(BASE, free_margin=1_100.0)
    assert both(BUY, s) is None
    assert both(BUY, dataclasses.replace(s, free_margin=1_099.99)) == "INSUFFICIENT_MARGIN"


def test_trading_states_and_kill_switch() -> None:
    netting_long = dataclasses.replace(BASE, hedging=False, net_volume=1.0)
    sell = dataclasses.replace(BUY, buy=False)
    reduce_only = dataclasses.replace(netting_long, trading_state=ref.REDUCE_ONLY)
    assert both(sell, reduce_only) is None
    assert both(BUY, reduce_only) == "REDUCE_ONLY"
    assert both(dataclasses.replace(sell, volume=1.5), reduce_only) == "REDUCE_ONLY"
    halted = dataclasses.replace(netting_long, trading_state=ref.HALTED)
    assert both(sell, halted) == "TRADING_HALTED"
    assert both(sell, dataclasses.replace(BASE, kill_switch=True)) == "KILL_SWITCH"
    close = dataclasses.replace(sell, closes_position=True)
    closed_market = dataclasses.replace(
        BASE, symbol=ref.Symbol(trade_mode=3), symbol_allowed=False, in_session=False
    )
    assert both(close, closed_market) is None
    assert both(BUY, closed_market) == "SYMBOL_NOT_ALLOWED"
    assert both(BUY, dataclasses.replace(BASE, symbol=ref.Symbol(trade_mode=3))) == "CLOSE_ONLY"
    assert both(sell, dataclasses.replace(BASE, symbol=ref.Symbol(trade_mode=1))) == "LONG_ONLY"
    assert both(BUY, dataclasses.replace(BASE, in_session=False)) == "OUTSIDE_SESSION"
    assert both(BUY, dataclasses.replace(BASE, duplicate=True)) == "DUPLICATE_ORDER"


BAD = [math.nan, math.inf, -math.inf, -1.0, 5e-324, 1e-310, 1e308 * 10]


@pytest.mark.parametrize("value", [*BAD, 0.0, 1e300])
def test_bad_values_never_pass(value: float) -> None:
    limits = at(
        max_order_volume=10.0,
        max_order_notional=1e6,
        max_daily_loss=1000.0,
        max_loss_per_trade=100.0,
        price_collar_percent=10.0,
    )
    assert both(dataclasses.replace(BUY, volume=value), limits) is not None
    if value != 0.0:
        for field in ("price", "stop_loss", "take_profit", "stop_limit_price"):
            assert both(dataclasses.replace(BUY, **{field: value}), limits) is not None
    # An account that reports nonsense refuses new risk rather than waving it through.
    for field in ("equity", "free_margin"):
        if not math.isnan(value):
            continue
        s = dataclasses.replace(limits, **{field: value})
        assert rust_verdict(BUY, s) is not None


def test_limits_validation_names_the_field() -> None:
    from mt5exec.engine import validate_risk_limits
    from mt5exec.errors import MT5ExecError

    with pytest.raises(MT5ExecError) as e:
        validate_risk_limits(common_pb2.RiskLimits(max_daily_loss=math.nan))
    assert e.value.field == "risk.max_daily_loss"
    with pytest.raises(MT5ExecError) as e:
        validate_risk_limits(common_pb2.RiskLimits(session_start="25:00"))
    assert e.value.reason == "SESSION_INVALID"
    validate_risk_limits(common_pb2.RiskLimits(session_start="22:00", session_end="02:00"))
