"""The simulated broker as a library: prices, fills, hedging/netting books, validation, faults."""

from __future__ import annotations

import math
import random
from typing import Any, Literal

import pytest

from mt5exec.sim import DEFAULT_SYMBOLS, SimBroker, SimConfig
from mt5exec.sim.broker import (
    DEAL_ENTRY_IN,
    DEAL_ENTRY_INOUT,
    DEAL_ENTRY_OUT,
    DEAL_TYPE_BUY,
    DEAL_TYPE_SELL,
    ORDER_TYPE_BUY,
    ORDER_TYPE_SELL,
    TRADE_RETCODE_DONE,
    TRADE_RETCODE_INVALID,
    TRADE_RETCODE_INVALID_CLOSE_VOLUME,
    TRADE_RETCODE_INVALID_VOLUME,
    TRADE_RETCODE_NO_MONEY,
    TRADE_RETCODE_POSITION_CLOSED,
    TRADE_RETCODE_REJECT,
)
from mt5exec.terminal.v1 import worker_pb2 as pb

NOW = 1_700_000_000.0


def make(
    symbols: list[str] | None = None,
    margin_mode: Literal["hedging", "netting"] = "hedging",
    **kw: Any,
) -> SimBroker:
    cfg = SimConfig(symbols or ["EURUSD"], margin_mode=margin_mode, **kw)
    return SimBroker(cfg, clock=lambda: NOW)


def market(
    symbol: str = "EURUSD", side: int = ORDER_TYPE_BUY, volume: float = 0.1, **kw: Any
) -> pb.OrderRequest:
    return pb.OrderRequest(action=1, symbol=symbol, type=side, volume=volume, **kw)


def walk(broker: SimBroker, symbol: str, n: int) -> None:
    for _ in range(n):
        broker.advance(symbol)


# -- prices ------------------------------------------------------------------------------------


def test_same_seed_gives_same_price_path() -> None:
    a, b, c = make(seed=7), make(seed=7), make(seed=8)
    path_a = [a.advance("EURUSD") for _ in range(500)]
    path_b = [b.advance("EURUSD") for _ in range(500)]
    path_c = [c.advance("EURUSD") for _ in range(500)]
    assert path_a == path_b
    assert path_a != path_c


def test_price_path_does_not_depend_on_interleaving() -> None:
    a = make(["EURUSD", "GBPUSD"], seed=3)
    b = make(["EURUSD", "GBPUSD"], seed=3)
    for _ in range(100):
        a.advance("EURUSD")
        a.advance("GBPUSD")
    walk(b, "GBPUSD", 100)
    walk(b, "EURUSD", 100)
    assert a.quote("EURUSD")[:2] == b.quote("EURUSD")[:2]
    assert a.quote("GBPUSD")[:2] == b.quote("GBPUSD")[:2]


@pytest.mark.parametrize("symbol", list(DEFAULT_SYMBOLS))
def test_bid_below_ask_and_rounded_to_digits(symbol: str) -> None:
    broker = make([symbol], seed=11)
    spec = DEFAULT_SYMBOLS[symbol]
    start = spec.start_price
    for _ in range(5000):
        bid, ask = broker.advance(symbol)
        assert bid < ask
        assert round(bid, spec.digits) == bid
        assert round(ask, spec.digits) == ask
        assert round((ask - bid) / spec.point) == spec.spread_points
    # A random walk stays in a plausible range over a few thousand ticks.
    assert abs(bid / start - 1.0) < 0.05


def test_tick_message_carries_clock_time() -> None:
    broker = make()
    tick = broker.tick("EURUSD")
    assert tick.symbol == "EURUSD"
    assert tick.time_msc == int(NOW * 1000)
    assert (tick.bid, tick.ask) == broker.quote("EURUSD")[:2]


def test_unknown_symbol_in_config_is_named() -> None:
    with pytest.raises(ValueError, match="EURXYZ"):
        SimBroker(SimConfig(["EURUSD", "EURXYZ"]))


def test_symbol_info_defaults() -> None:
    infos = {i.name: i for i in make(list(DEFAULT_SYMBOLS)).symbol_infos()}
    eur = infos["EURUSD"]
    assert (eur.digits, eur.point, eur.contract_size) == (5, 0.00001, 100_000)
    assert (eur.volume_min, eur.volume_max, eur.volume_step) == (0.01, 100, 0.01)
    assert (eur.filling_mode, eur.trade_mode) == (3, 4)
    assert (eur.currency_base, eur.currency_profit, eur.currency_margin) == ("EUR", "USD", "EUR")
    assert eur.tick_value == pytest.approx(1.0)
    assert eur.tick_size == eur.point
    assert infos["USDJPY"].tick_value == pytest.approx(100_000 * 0.001 / 151.5)
    assert (infos["XAUUSD"].digits, infos["XAUUSD"].contract_size) == (2, 100)


# -- fills and the hedging book ------------------------------------------------------------------


def test_buy_fills_at_ask_and_sell_at_bid() -> None:
    broker = make(seed=5)
    walk(broker, "EURUSD", 10)
    bid, ask, _ = broker.quote("EURUSD")
    buy = broker.send(market(side=ORDER_TYPE_BUY, request_id=1))
    sell = broker.send(market(side=ORDER_TYPE_SELL, request_id=2))
    assert buy.result.retcode == TRADE_RETCODE_DONE
    assert buy.result.price == ask
    assert sell.result.price == bid
    assert (buy.result.bid, buy.result.ask) == (bid, ask)
    assert buy.deals[0].type == DEAL_TYPE_BUY
    assert sell.deals[0].type == DEAL_TYPE_SELL


def test_result_and_deal_fields() -> None:
    broker = make()
    req = market(request_id=42, magic=777, comment="x" * 40, volume=0.25)
    out = broker.send(req)
    res, deal = out.result, out.deals[0]
    assert res.request_id == 42
    assert res.volume == 0.25
    assert res.order
    assert res.deal
    assert res.position == res.order
    assert res.time_msc == int(NOW * 1000)
    assert out.positions_changed
    assert out.account_changed
    assert deal.ticket == res.deal
    assert deal.order == res.order
    assert deal.position_id == res.order  # a position takes its opening order's ticket
    assert (deal.entry, deal.volume, deal.profit) == (DEAL_ENTRY_IN, 0.25, 0.0)
    assert (deal.request_id, deal.magic) == (42, 777)
    assert deal.comment == "x" * 31
    second = broker.send(market())
    assert second.result.deal > res.deal
    assert second.result.order > res.order


def test_hedging_two_buys_then_close_by_ticket_realizes_profit() -> None:
    broker = make(seed=2)
    first = broker.send(market(volume=0.1)).result
    second = broker.send(market(volume=0.2)).result
    snap = broker.positions_snapshot()
    assert [p.ticket for p in snap.positions] == [first.position, second.position]
    assert first.position != second.position

    walk(broker, "EURUSD", 200)
    bid, _, _ = broker.quote("EURUSD")
    expected = round((bid - first.price) * 0.1 * 100_000, 2)
    pos = next(p for p in broker.positions_snapshot().positions if p.ticket == first.position)
    assert pos.price_current == bid
    assert pos.profit == pytest.approx(expected)

    close = broker.send(market(side=ORDER_TYPE_SELL, volume=0.1, position=first.position))
    assert close.result.retcode == TRADE_RETCODE_DONE
    assert close.result.price == bid
    deal = close.deals[0]
    assert (deal.entry, deal.position_id) == (DEAL_ENTRY_OUT, first.position)
    assert deal.profit == pytest.approx(expected)
    assert broker.balance == pytest.approx(10_000 + expected)
    remaining = broker.positions_snapshot().positions
    assert [p.ticket for p in remaining] == [second.position]


def test_hedging_partial_close_and_close_volume_checks() -> None:
    broker = make()
    opened = broker.send(market(volume=0.3)).result
    assert broker.positions_snapshot().positions[0].volume == pytest.approx(0.3)
    part = broker.send(market(side=ORDER_TYPE_SELL, volume=0.1, position=opened.position))
    assert part.result.retcode == TRADE_RETCODE_DONE
    assert part.deals[0].entry == DEAL_ENTRY_OUT
    (pos,) = broker.positions_snapshot().positions
    assert pos.volume == pytest.approx(0.2)
    too_much = broker.send(market(side=ORDER_TYPE_SELL, volume=0.3, position=opened.position))
    assert too_much.result.retcode == TRADE_RETCODE_INVALID_CLOSE_VOLUME
    same_side = broker.send(market(side=ORDER_TYPE_BUY, volume=0.1, position=opened.position))
    assert same_side.result.retcode == TRADE_RETCODE_INVALID
    rest = broker.send(market(side=ORDER_TYPE_SELL, volume=0.2, position=opened.position))
    assert rest.result.retcode == TRADE_RETCODE_DONE
    assert not broker.has_positions


def test_unknown_position_is_position_closed() -> None:
    broker = make()
    out = broker.send(market(side=ORDER_TYPE_SELL, position=123456))
    assert out.result.retcode == TRADE_RETCODE_POSITION_CLOSED
    assert "123456" in out.result.comment
    assert not out.deals
    assert not out.positions_changed


# -- netting -------------------------------------------------------------------------------------


def test_netting_buy_then_sell_same_volume_is_flat() -> None:
    broker = make(margin_mode="netting")
    buy = broker.send(market(volume=0.5))
    sell = broker.send(market(side=ORDER_TYPE_SELL, volume=0.5))
    assert buy.deals[0].entry == DEAL_ENTRY_IN
    assert sell.deals[0].entry == DEAL_ENTRY_OUT
    assert sell.deals[0].position_id == buy.result.position
    assert not broker.positions_snapshot().positions
    spread_cost = round((buy.result.price - sell.result.price) * 0.5 * 100_000, 2)
    assert broker.balance == pytest.approx(10_000 - spread_cost)
    assert broker.account_snapshot().margin_mode == 0


def test_netting_add_and_partial_reduce() -> None:
    broker = make(margin_mode="netting")
    a = broker.send(market(volume=0.1)).result
    walk(broker, "EURUSD", 50)
    b = broker.send(market(volume=0.3)).result
    assert b.position == a.position
    (pos,) = broker.positions_snapshot().positions
    assert pos.volume == pytest.approx(0.4)
    assert pos.price_open == pytest.approx((a.price * 0.1 + b.price * 0.3) / 0.4)
    reduce = broker.send(market(side=ORDER_TYPE_SELL, volume=0.1))
    assert reduce.deals[0].entry == DEAL_ENTRY_OUT
    (pos,) = broker.positions_snapshot().positions
    assert (pos.ticket, pos.type) == (a.position, 0)
    assert pos.volume == pytest.approx(0.3)


def test_netting_reversal() -> None:
    broker = make(margin_mode="netting")
    opened = broker.send(market(volume=0.2)).result
    assert broker.positions_snapshot().positions[0].type == 0
    walk(broker, "EURUSD", 20)
    bid, _, _ = broker.quote("EURUSD")
    rev = broker.send(market(side=ORDER_TYPE_SELL, volume=0.5))
    deal = rev.deals[0]
    assert (deal.entry, deal.volume) == (DEAL_ENTRY_INOUT, 0.5)
    assert deal.profit == pytest.approx(round((bid - opened.price) * 0.2 * 100_000, 2))
    (pos,) = broker.positions_snapshot().positions
    assert (pos.ticket, pos.type) == (opened.position, 1)
    assert pos.volume == pytest.approx(0.3)
    assert pos.price_open == bid


# -- validation ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "volume",
    [math.nan, math.inf, -math.inf, 0.0, -0.1, 0.001, 0.005, 100.01, 1000.0, 0.015, 0.123],
)
def test_invalid_volume(volume: float) -> None:
    broker = make()
    out = broker.send(market(volume=volume))
    assert out.result.retcode == TRADE_RETCODE_INVALID_VOLUME
    assert not out.deals
    assert not broker.has_positions


@pytest.mark.parametrize("volume", [0.01, 0.07, 0.1, 0.29, 1.0, 12.34])
def test_valid_volumes_on_step(volume: float) -> None:
    broker = make(initial_balance=1e7)
    out = broker.send(market(volume=volume))
    assert out.result.retcode == TRADE_RETCODE_DONE
    assert out.result.volume == volume


def test_unknown_symbol_and_unsupported_requests() -> None:
    broker = make()
    assert broker.send(market(symbol="NOPE")).result.retcode == TRADE_RETCODE_INVALID
    res = broker.send(pb.OrderRequest(action=99, symbol="EURUSD", type=0, volume=0.1)).result
    assert res.retcode == TRADE_RETCODE_INVALID
    assert "action" in res.comment
    limit_as_deal = broker.send(market(side=2)).result
    assert limit_as_deal.retcode == TRADE_RETCODE_INVALID
    assert "type" in limit_as_deal.comment


def test_no_money() -> None:
    broker = make()
    out = broker.send(market(volume=100.0))  # 100 lots need ~108k USD margin at 1:100
    assert out.result.retcode == TRADE_RETCODE_NO_MONEY
    assert not broker.has_positions
    assert broker.balance == 10_000


# -- account -------------------------------------------------------------------------------------


def test_account_snapshot_margin_and_equity() -> None:
    broker = make(["EURUSD", "USDJPY"], leverage=100)
    empty = broker.account_snapshot()
    assert (empty.balance, empty.equity, empty.margin, empty.margin_level) == (10_000, 10_000, 0, 0)
    assert (empty.margin_mode, empty.leverage, empty.currency) == (2, 100, "USD")
    broker.send(market("USDJPY", volume=1.0))
    walk(broker, "USDJPY", 100)
    acct = broker.account_snapshot()
    # 1 lot of USDJPY = 100k USD notional, 1:100 -> 1000 USD margin whatever the rate.
    assert acct.margin == pytest.approx(1000.0, abs=0.01)
    (pos,) = broker.positions_snapshot().positions
    assert acct.profit == pytest.approx(pos.profit, abs=0.01)
    assert acct.equity == pytest.approx(acct.balance + acct.profit, abs=0.01)
    assert acct.margin_free == pytest.approx(acct.equity - acct.margin, abs=0.01)
    assert acct.margin_level == pytest.approx(acct.equity / acct.margin * 100, rel=1e-6)
    jpy_profit = (pos.price_current - pos.price_open) * 100_000
    assert pos.profit == pytest.approx(jpy_profit / broker.quote("USDJPY")[0], rel=1e-3)


# -- faults --------------------------------------------------------------------------------------


def test_reject_next_fault() -> None:
    broker = make()
    broker.apply_fault(pb.FaultInjection(reject_next=2, delay_ms=50))
    codes = [broker.send(market()).result.retcode for _ in range(3)]
    assert codes == [TRADE_RETCODE_REJECT, TRADE_RETCODE_REJECT, TRADE_RETCODE_DONE]
    assert broker.faults.rejected == 2
    assert broker.faults.delay_ms == 50
    broker.apply_fault(pb.FaultInjection(freeze_ms=10))
    assert broker.faults.delay_ms == 50  # other faults leave the delay alone
    broker.apply_fault(pb.FaultInjection())
    assert (broker.faults.delay_ms, broker.faults.reject_next) == (0, 0)
    assert broker.faults.freezes == 1


def test_snapshot_bytes_match_the_message() -> None:
    broker = make(["EURUSD", "XAUUSD"])
    broker.send(market(volume=0.1, magic=5, comment="a", sl=1.0, tp=2.0))
    broker.send(market("XAUUSD", side=ORDER_TYPE_SELL, volume=0.02))
    walk(broker, "XAUUSD", 10)
    snap = broker.positions_snapshot()
    assert pb.PositionSnapshot.FromString(broker.positions_snapshot_bytes()) == snap
    gold = snap.positions[1]
    assert (gold.symbol, gold.type, gold.volume) == ("XAUUSD", 1, 0.02)
    assert gold.price_current == broker.quote("XAUUSD")[1]
    assert gold.profit == pytest.approx(round((gold.price_open - gold.price_current) * 2, 2))
    eur = snap.positions[0]
    assert (eur.magic, eur.comment, eur.sl, eur.tp) == (5, "a", 1.0, 2.0)
    assert eur.time_msc == int(NOW * 1000)


# -- cached position snapshots -------------------------------------------------------------------


@pytest.mark.parametrize("currency", ["USD", "EUR"])
@pytest.mark.parametrize("margin_mode", ["hedging", "netting"])
def test_cached_position_snapshot_matches_a_fresh_encoding(
    currency: str, margin_mode: Literal["hedging", "netting"]
) -> None:
    # With a EUR account, USD profits convert at EURUSD: XAUUSD entries go stale on EURUSD ticks.
    symbols = ["EURUSD", "USDJPY", "XAUUSD"]
    broker = make(symbols, margin_mode, currency=currency, initial_balance=1e7, seed=4)
    rnd = random.Random(1)
    checked = 0
    for _ in range(1500):
        r = rnd.random()
        if r < 0.3:
            broker.advance(rnd.choice(symbols))
        elif r < 0.75 or not broker.has_positions:
            side = rnd.choice((ORDER_TYPE_BUY, ORDER_TYPE_SELL))
            volume = rnd.choice((0.01, 0.05, 0.1))
            assert broker.send(market(rnd.choice(symbols), side, volume)).result.retcode == 10009
        else:
            pos = rnd.choice(list(broker.positions_snapshot().positions))
            volume = pos.volume if rnd.random() < 0.6 else 0.01
            close = market(pos.symbol, 1 - pos.type, volume, position=pos.ticket)
            assert broker.send(close).result.retcode == TRADE_RETCODE_DONE
        if rnd.random() < 0.3:
            # A broker rebuilt from the same state has no cache: it encodes everything afresh.
            fresh = SimBroker(broker.config, clock=lambda: NOW, state=broker.export_state())
            assert broker.positions_snapshot_bytes() == fresh.positions_snapshot_bytes()
            checked += 1
    snap = broker.positions_snapshot().positions
    tickets = [p.ticket for p in snap]
    assert tickets == sorted(tickets)
    assert checked > 100
    if margin_mode == "hedging":
        assert len(snap) > 200  # spans several cache blocks
