"""The MT5 worker process over a real Unix socket, attached to the simulated terminal.

The worker is the real ``python -m mt5exec.workers.mt5`` with ``module`` set to
``mt5exec.mt5.simterminal``; the test plays the engine's side of the protocol, and the
"terminal" is a directory with ``simterminal.json`` whose account lives in the simulated broker.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from typing import Any

import pytest
from tests.mt5_worker_support import (
    LOGIN,
    SERVER,
    TRADE_KINDS,
    Engine,
    by_kind,
    engine,
    kinds,
    make_engine,
    market,
)

from mt5exec.mt5 import constants as c
from mt5exec.mt5 import simterminal
from mt5exec.terminal.v1 import worker_pb2 as pb

__all__ = ["engine", "make_engine"]  # the fixtures


# -- handshake, ticks, lifecycle -------------------------------------------------------------------


def test_hello_has_the_symbols_and_the_account(make_engine: Callable[..., Engine]) -> None:
    eng = make_engine(terminal={"margin_mode": "netting", "leverage": 200})
    hello = eng.handshake()
    assert eng.proc is not None
    assert (hello.protocol_version, hello.backend, hello.instance_id) == (1, "mt5", "mt5-1")
    assert hello.pid == eng.proc.pid
    assert {"ticks", "orders"} <= set(hello.capabilities)
    assert [s.name for s in hello.symbols] == ["EURUSD", "GBPUSD"]
    eurusd = hello.symbols[0]
    assert (eurusd.digits, eurusd.point, eurusd.contract_size) == (5, 1e-5, 100_000.0)
    assert (eurusd.volume_min, eurusd.volume_max, eurusd.volume_step) == (0.01, 100.0, 0.01)
    assert (eurusd.filling_mode, eurusd.trade_mode) == (3, c.SYMBOL_TRADE_MODE_FULL)
    assert (eurusd.currency_base, eurusd.currency_profit, eurusd.currency_margin) == (
        "EUR",
        "USD",
        "EUR",
    )
    assert eurusd.tick_size == 1e-5
    assert eurusd.tick_value == pytest.approx(1.0)
    account = hello.account
    assert (account.login, account.server, account.currency) == (LOGIN, SERVER, "USD")
    assert (account.balance, account.leverage) == (10_000, 200)
    assert account.margin_mode == c.ACCOUNT_MARGIN_MODE_RETAIL_NETTING

    positions, orders, account = eng.start_state()
    assert list(positions.positions) == []
    assert list(orders.orders) == []
    assert account.login == LOGIN

    eng.send(shutdown=pb.Shutdown(reason="test"))
    assert eng.wait() == 0


def test_ticks_flow_changes_only_with_heartbeats(engine: Engine) -> None:
    last: dict[str, tuple[int, float, float]] = {}
    batches = heartbeats = 0
    seqs: list[int] = []
    deadline = time.monotonic() + 60
    while (batches < 5 or heartbeats < 2) and time.monotonic() < deadline:
        frame = engine.read()
        kind = frame.WhichOneof("body")
        if kind == "ticks":
            batches += 1
            for t in frame.ticks.ticks:
                assert t.bid < t.ask
                previous = last.get(t.symbol)
                if previous is not None:
                    # A tick the terminal did not change is not sent again. Its price may equal
                    # the last one sent: a poll under load can miss the ticks between (A, B, A).
                    assert t.time_msc > previous[0]
                last[t.symbol] = (t.time_msc, t.bid, t.ask)
        elif kind == "heartbeat":
            heartbeats += 1
            seqs.append(frame.heartbeat.sequence)
    assert batches >= 5 and heartbeats >= 2
    assert set(last) == {"EURUSD", "GBPUSD"}
    assert seqs == list(range(1, len(seqs) + 1))


def test_ticks_from_copy_ticks_from(make_engine: Callable[..., Engine]) -> None:
    eng = make_engine(config={"tick_source": "copy"}, terminal={"tick_rate": 100})
    eng.handshake()
    eng.start_state()
    times: list[int] = []
    while len(times) < 20:
        frame = eng.read()
        if frame.WhichOneof("body") == "ticks":
            times.extend(t.time_msc for t in frame.ticks.ticks if t.symbol == "EURUSD")
    assert times == sorted(times)
    assert len(set(times)) == len(times)


def test_sigterm_and_eof_end_the_worker_with_0(make_engine: Callable[..., Engine]) -> None:
    eng = make_engine()
    eng.handshake()
    eng.start_state()
    assert eng.proc is not None
    eng.proc.send_signal(signal.SIGTERM)
    assert eng.wait() == 0
    assert "exit=0" in eng.stderr


def test_eof_ends_the_worker(engine: Engine) -> None:
    assert engine.conn is not None
    engine.conn.close()
    engine.conn = None
    assert engine.wait() == 0


# -- orders ----------------------------------------------------------------------------------------


def test_market_buy_frames_in_order_and_fill_at_ask(engine: Engine) -> None:
    frames = engine.order(**market(7))
    assert tuple(kinds(frames)) == TRADE_KINDS
    deal, positions, account, result = frames
    res = result.order_result
    assert (res.request_id, res.retcode, res.volume) == (7, c.TRADE_RETCODE_DONE, 0.1)
    assert res.price == res.ask  # a buy fills at the ask
    assert res.bid < res.ask
    assert res.position == res.order
    d = deal.deal
    assert (d.request_id, d.ticket, d.order, d.position_id) == (7, res.deal, res.order, res.order)
    assert (d.price, d.volume, d.symbol, d.comment, d.magic) == (
        res.price,
        0.1,
        "EURUSD",
        "cid-7",
        5,
    )
    assert (d.type, d.entry, d.reason) == (c.DEAL_TYPE_BUY, c.DEAL_ENTRY_IN, c.DEAL_REASON_EXPERT)
    (p,) = positions.positions.positions
    assert (p.ticket, p.price_open, p.volume, p.type, p.comment) == (
        res.order,
        res.price,
        0.1,
        c.POSITION_TYPE_BUY,
        "cid-7",
    )
    assert account.account.margin > 0


@pytest.mark.parametrize("blank_deal", [False, True], ids=["price-0", "price-and-deal-0"])
def test_fill_answered_without_price_takes_it_from_the_deal(
    engine: Engine, blank_deal: bool
) -> None:
    """Some brokers (and exchange execution) answer DONE with price 0, and sometimes deal 0
    (simterminal's ``blank_fill_results``): the result still carries the fill's price, deal
    and position, taken from the order's deal in the terminal's history."""
    simterminal.write_hook_file(engine.terminal_dir, {"blank_fill_results": 1, "deal": blank_deal})
    frames = engine.order(**market(9))
    deal = by_kind(frames, "deal")[0].deal
    res = frames[-1].order_result
    assert res.retcode == c.TRADE_RETCODE_DONE
    assert deal.price > 0
    assert (res.price, res.deal, res.volume, res.position) == (
        deal.price,
        deal.ticket,
        0.1,
        res.order,
    )
    (p,) = by_kind(frames, "positions")[-1].positions.positions
    assert p.price_open == res.price


def test_market_order_without_price_and_rejection(engine: Engine) -> None:
    frames = engine.order(**market(1, volume=0.015))
    assert kinds(frames) == ["order_result"]
    assert frames[0].order_result.retcode == c.TRADE_RETCODE_INVALID_VOLUME
    frames = engine.order(**market(2, volume=500.0))
    assert frames[-1].order_result.retcode == c.TRADE_RETCODE_INVALID_VOLUME


def test_check_only_answers_with_figures_and_trades_nothing(engine: Engine) -> None:
    frames = engine.order(**market(3, volume=1.0, check_only=True))
    assert kinds(frames) == ["order_result"]
    res = frames[0].order_result
    assert res.retcode == 0
    assert res.comment == "Done"
    assert res.margin == pytest.approx(1085, rel=0.05)
    assert res.margin_free == pytest.approx(res.equity - res.margin, abs=0.01)
    assert res.balance == 10_000
    engine.send(snapshot_request=pb.SnapshotRequest())
    positions = engine.read_until("positions")[-1].positions
    assert list(positions.positions) == []


def test_close_by_position_ticket_on_hedging(engine: Engine) -> None:
    first = engine.order(**market(1))[-1].order_result
    second = engine.order(**market(2, volume=0.2))[-1].order_result
    assert first.retcode == second.retcode == c.TRADE_RETCODE_DONE
    frames = engine.order(
        **market(3, side=c.ORDER_TYPE_SELL, position=first.position, comment="close-1")
    )
    assert tuple(kinds(frames)) == TRADE_KINDS
    res = frames[-1].order_result
    assert res.retcode == c.TRADE_RETCODE_DONE
    assert res.position == first.position
    assert res.price == res.bid  # a sell fills at the bid
    deal = frames[0].deal
    assert (deal.entry, deal.position_id, deal.request_id) == (
        c.DEAL_ENTRY_OUT,
        first.position,
        3,
    )
    (remaining,) = frames[1].positions.positions
    assert remaining.ticket == second.position


def test_sltp_modify(engine: Engine) -> None:
    opened = engine.order(**market(1))[-1].order_result
    sl = round(opened.bid - 0.0050, 5)
    tp = round(opened.bid + 0.0050, 5)
    frames = engine.order(
        request_id=2,
        action=c.TRADE_ACTION_SLTP,
        symbol="EURUSD",
        position=opened.position,
        sl=sl,
        tp=tp,
    )
    res = frames[-1].order_result
    assert res.retcode == c.TRADE_RETCODE_DONE, res.comment
    (position,) = by_kind(frames, "positions")[-1].positions.positions
    assert (position.ticket, position.sl, position.tp) == (opened.position, sl, tp)


def move_price(eng: Engine, symbol: str, bid: float, at: str | None = None) -> None:
    """The simulated trade server ticks at ``bid`` (simterminal's hook file): at the worker's
    next terminal call, or with ``at`` at its next call of that function."""
    move: dict[str, Any] = {"set_price": {symbol: bid}}
    if at is not None:
        move["at"] = at
    simterminal.write_hook_file(eng.terminal_dir, move)


# Where the trade server's fill lands among the worker's calls of a poll (history_deals_get,
# positions_get, orders_get, account_info): the fill of a real terminal comes at any moment, so
# its deal must still go out before or with the positions, orders and account it changed.
FILL_MOMENTS = (None, "positions_get", "orders_get", "account_info")


@pytest.mark.parametrize("at", FILL_MOMENTS)
def test_sl_hit_by_the_server_is_reported_as_a_deal(
    make_engine: Callable[..., Engine], at: str | None
) -> None:
    # No random walk: the price moves only when the test moves it.
    eng = make_engine(terminal={"tick_rate": 0})
    eng.handshake()
    eng.start_state()
    opened = eng.order(**market(1, sl=1.08000, tp=1.09000))[-1].order_result
    assert opened.retcode == c.TRADE_RETCODE_DONE, opened.comment

    move_price(eng, "EURUSD", 1.07990, at)
    frames = eng.read_until(lambda f: f.WhichOneof("body") == "account", 10.0)
    trade = [f for f in frames if f.WhichOneof("body") not in ("ticks", "heartbeat")]
    assert kinds(trade) == ["deal", "positions", "account"]
    deal = trade[0].deal
    assert deal.reason == c.DEAL_REASON_SL
    assert (deal.position_id, deal.entry, deal.type) == (
        opened.position,
        c.DEAL_ENTRY_OUT,
        c.DEAL_TYPE_SELL,
    )
    assert deal.request_id == 0  # nobody asked for it
    assert deal.price == 1.0799  # a buy closes at the bid
    assert deal.profit < 0
    assert list(trade[1].positions.positions) == []
    assert trade[2].account.balance == pytest.approx(10_000 + deal.profit)


@pytest.mark.parametrize("at", FILL_MOMENTS)
def test_pending_order_placed_modified_triggered_removed(
    make_engine: Callable[..., Engine], at: str | None
) -> None:
    eng = make_engine(terminal={"tick_rate": 0})
    eng.handshake()
    eng.start_state()
    pending: dict[str, Any] = {
        "action": c.TRADE_ACTION_PENDING,
        "symbol": "EURUSD",
        "volume": 0.1,
        "type": c.ORDER_TYPE_BUY_LIMIT,
        "type_filling": c.ORDER_FILLING_RETURN,
        "comment": "limit-1",
    }
    frames = eng.order(request_id=1, price=1.08000, **pending)
    assert kinds(frames) == ["order_update", "orders", "order_result"]
    res = frames[-1].order_result
    assert res.retcode == c.TRADE_RETCODE_PLACED
    update = frames[0].order_update
    assert (update.request_id, update.order.ticket, update.order.state) == (
        1,
        res.order,
        c.ORDER_STATE_PLACED,
    )
    (working,) = frames[1].orders.orders
    assert (working.ticket, working.price_open, working.comment) == (res.order, 1.08, "limit-1")

    frames = eng.order(
        request_id=2,
        action=c.TRADE_ACTION_MODIFY,
        order=res.order,
        price=1.08100,
        type_time=c.ORDER_TIME_GTC,
    )
    assert frames[-1].order_result.retcode == c.TRADE_RETCODE_DONE, frames[-1].order_result.comment
    (modified,) = by_kind(frames, "orders")[-1].orders.orders
    assert modified.price_open == 1.081

    # The ask falls to the limit: the server fills it.
    move_price(eng, "EURUSD", 1.08080, at)
    frames = eng.read_until(lambda f: f.WhichOneof("body") == "account", 10.0)
    trade = [f for f in frames if f.WhichOneof("body") not in ("ticks", "heartbeat")]
    assert kinds(trade) == ["deal", "order_update", "positions", "orders", "account"]
    deal = trade[0].deal
    assert (deal.order, deal.entry, deal.request_id) == (res.order, c.DEAL_ENTRY_IN, 0)
    assert deal.price <= 1.081
    assert trade[1].order_update.order.state == c.ORDER_STATE_FILLED
    assert trade[1].order_update.request_id == 0
    (position,) = trade[2].positions.positions
    assert position.volume == 0.1
    assert list(trade[3].orders.orders) == []

    frames = eng.order(request_id=3, price=1.07000, **pending)
    placed = frames[-1].order_result.order
    frames = eng.order(request_id=4, action=c.TRADE_ACTION_REMOVE, order=placed)
    assert frames[-1].order_result.retcode == c.TRADE_RETCODE_DONE
    update = by_kind(frames, "order_update")[0].order_update
    assert (update.request_id, update.order.state) == (4, c.ORDER_STATE_CANCELED)
    assert list(by_kind(frames, "orders")[-1].orders.orders) == []


def test_reconcile_finds_orders_and_deals_by_comment(engine: Engine) -> None:
    res = engine.order(**market(1, comment="key-A"))[-1].order_result
    engine.order(**market(2, comment="key-B"))
    engine.send(
        reconcile=pb.ReconcileRequest(
            request_id=9,
            comments=["key-A", "key-Z"],
            from_time_msc=int(time.time() * 1000) - 60_000,
        )
    )
    result = engine.read_until("reconcile_result")[-1].reconcile_result
    assert result.request_id == 9
    assert [(o.ticket, o.comment, o.state) for o in result.orders] == [
        (res.order, "key-A", c.ORDER_STATE_FILLED)
    ]
    assert [(d.ticket, d.order) for d in result.deals] == [(res.deal, res.order)]
