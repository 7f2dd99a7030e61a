"""Durable state of the simulated broker: journal, snapshot, prices, recovery from damage."""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any, Literal

import pytest

from mt5exec.sim import DEFAULT_SYMBOLS
from mt5exec.sim.broker import (
    ORDER_TYPE_BUY,
    ORDER_TYPE_SELL,
    TRADE_RETCODE_DONE,
    TRADE_RETCODE_ERROR,
    TRADE_RETCODE_PLACED,
    SimBroker,
    SimConfig,
)
from mt5exec.sim.state import (
    MIN_FILL_RECORD,
    DealEntry,
    MemoryJournal,
    Retention,
    StateError,
    StateStore,
    _parse_state,
    _scan,
    encode_deal,
    read_deals,
    read_history,
)
from mt5exec.terminal.v1 import worker_pb2 as pb
from tmpfs import fill, small_disk

__all__ = ["small_disk"]  # the fixture

NOW = 1_700_000_000.0


def config(margin_mode: Literal["hedging", "netting"] = "hedging", **kw: Any) -> SimConfig:
    kw.setdefault("symbols", ["EURUSD", "USDJPY", "XAUUSD"])
    kw.setdefault("initial_balance", 1_000_000.0)
    return SimConfig(margin_mode=margin_mode, **kw)


def open_broker(path: Path, cfg: SimConfig | None = None) -> SimBroker:
    return SimBroker.open(cfg or config(), path, clock=lambda: NOW)


def market(
    symbol: str = "EURUSD", side: int = ORDER_TYPE_BUY, volume: float = 0.1, **kw: Any
) -> pb.OrderRequest:
    return pb.OrderRequest(action=1, symbol=symbol, type=side, volume=volume, **kw)


def trade(broker: SimBroker, req: pb.OrderRequest) -> pb.OrderResult:
    out = broker.send(req)
    assert out.result.retcode == TRADE_RETCODE_DONE, out.result.comment
    return out.result


def stops(broker: SimBroker, symbol: str, buy: bool, distance: int = 500) -> tuple[float, float]:
    """Valid (sl, tp) ``distance`` points from the price a position of that side closes at."""
    bid, ask, _ = broker.quote(symbol)
    point = DEFAULT_SYMBOLS[symbol].point
    digits = DEFAULT_SYMBOLS[symbol].digits
    if buy:
        return round(bid - distance * point, digits), round(bid + distance * point, digits)
    return round(ask + distance * point, digits), round(ask - distance * point, digits)


def pending(broker: SimBroker, symbol: str, otype: int, **kw: Any) -> pb.OrderRequest:
    """A valid pending order of ``otype`` 300 points away from the market."""
    bid, ask, _ = broker.quote(symbol)
    spec = DEFAULT_SYMBOLS[symbol]
    away = 300 * spec.point
    price = {2: ask - away, 3: bid + away, 4: ask + away, 5: bid - away, 6: ask + away}.get(
        otype, bid - away
    )
    kw.setdefault("volume", 0.1)
    if otype in (6, 7):
        kw.setdefault("stoplimit", round(price - away / 3 if otype == 6 else price + away / 3, 5))
    return pb.OrderRequest(
        action=5, symbol=symbol, type=otype, price=round(price, spec.digits), **kw
    )


def session(broker: SimBroker, n: int = 12, seed: int = 0) -> list[pb.OrderResult]:
    """A mix of ticks, opens, partial and full closes (and netting adds/reversals), pending
    orders placed, modified and cancelled, position stops set."""
    rnd = random.Random(seed)
    results: list[pb.OrderResult] = []
    symbols = broker.symbols
    netting = broker.config.margin_mode == "netting"
    for i in range(n):
        for s in symbols:
            for _ in range(rnd.randrange(0, 30)):
                broker.advance(s)
        broker.take_activity()
        positions = list(broker.positions_snapshot().positions)
        orders = list(broker.orders_snapshot().orders)
        roll = rnd.random()
        if positions and roll < 0.3:
            pos = rnd.choice(positions)
            volume = pos.volume if rnd.random() < 0.5 else round(pos.volume / 2, 2) or pos.volume
            req = market(
                pos.symbol,
                ORDER_TYPE_SELL if pos.type == 0 else ORDER_TYPE_BUY,
                volume,
                position=pos.ticket,
                request_id=i + 1,
            )
        elif positions and roll < 0.4:
            pos = rnd.choice(positions)
            sl, tp = stops(broker, pos.symbol, pos.type == 0, rnd.choice((400, 600)))
            req = pb.OrderRequest(
                action=6, symbol=pos.symbol, position=pos.ticket, sl=sl, tp=tp, request_id=i + 1
            )
        elif roll < 0.55:
            symbol = rnd.choice(symbols)
            otype = rnd.randrange(2, 8)
            req = pending(
                broker, symbol, otype, request_id=i + 1, comment=f"p{i}", magic=rnd.randrange(99)
            )
        elif orders and roll < 0.65:
            o = rnd.choice(orders)
            if rnd.random() < 0.5:
                req = pb.OrderRequest(action=8, order=o.ticket, request_id=i + 1)
            else:
                moved = pending(broker, o.symbol, o.type)
                req = pb.OrderRequest(
                    action=7,
                    order=o.ticket,
                    price=moved.price,
                    stoplimit=moved.stoplimit,
                    request_id=i + 1,
                )
        else:
            symbol = rnd.choice(symbols)
            side = rnd.choice((ORDER_TYPE_BUY, ORDER_TYPE_SELL))
            sl = tp = 0.0
            has_position = any(p.symbol == symbol for p in positions)
            if rnd.random() < 0.5 and not (netting and has_position):
                sl, tp = stops(broker, symbol, side == ORDER_TYPE_BUY)
            req = market(
                symbol,
                side,
                rnd.choice((0.01, 0.1, 0.25, 0.5)),
                request_id=i + 1,
                magic=rnd.randrange(1000),
                comment=f"order {i} ü",
                sl=sl,
                tp=tp,
            )
        out = broker.send(req)
        if out.result.retcode == 10025:  # NO_CHANGES: a modification to where it already is
            continue
        assert out.result.retcode in (TRADE_RETCODE_DONE, TRADE_RETCODE_PLACED), out.result
        results.append(out.result)
    return results


def same_account(a: SimBroker, b: SimBroker) -> None:
    assert a.export_state() == b.export_state()
    assert a.orders_snapshot() == b.orders_snapshot()
    assert a.account_snapshot() == b.account_snapshot()
    assert a.positions_snapshot() == b.positions_snapshot()
    assert a.positions_snapshot_bytes() == b.positions_snapshot_bytes()
    for s in a.symbols:
        assert a.quote(s) == b.quote(s)


def crash(broker: SimBroker, *, prices: bool = True) -> None:
    """What kill -9 leaves behind: the journal as written, no final snapshot.

    With ``prices``, the worker's last price checkpoint happened after the last tick (else the
    prices of symbols not traded since their last tick are those of the journal).
    """
    if prices:
        broker.save_prices()
    broker.close(snapshot=False)


# -- round trips ---------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["hedging", "netting"])
@pytest.mark.parametrize("shutdown", ["clean", "crash"])
def test_restored_account_is_identical(tmp_path: Path, mode: Any, shutdown: str) -> None:
    path = tmp_path / "sim_state"
    cfg = config(mode)
    a = open_broker(path, cfg)
    assert a.restored is not None
    assert a.restored.account is None
    results = session(a, 40)
    assert a.has_positions
    assert a.order_count
    assert a.journal is not None
    records = a.journal.seq
    reference = SimBroker(cfg, clock=lambda: NOW, state=a.export_state())
    if shutdown == "clean":
        a.close()
    else:
        crash(a)

    b = open_broker(path, cfg)
    assert b.restored is not None
    assert b.restored.account is not None
    assert b.restored.problems == []
    assert b.restored.replayed == (0 if shutdown == "clean" else records)
    same_account(b, reference)

    # Tickets continue after every ticket issued before.
    nxt = trade(b, market())
    assert nxt.order > max(r.order for r in results)
    assert nxt.deal > max(r.deal for r in results)
    b.close()


def test_deal_history_survives(tmp_path: Path) -> None:
    path = tmp_path / "sim_state"
    a = open_broker(path)
    deals = []
    for req in (market(request_id=1, comment="a"), market("XAUUSD", ORDER_TYPE_SELL, 0.02)):
        deals.extend(a.send(req).deals)
    crash(a)
    b = open_broker(path)
    deals.extend(b.send(market(side=ORDER_TYPE_SELL, request_id=3)).deals)
    b.close()
    assert read_deals(path) == deals


def test_restore_from_state_object(tmp_path: Path) -> None:
    a = SimBroker(config(), clock=lambda: NOW)
    session(a, 20)
    b = SimBroker(config(), clock=lambda: NOW, state=a.export_state())
    same_account(a, b)
    with pytest.raises(ValueError, match="netting"):
        SimBroker(config("netting"), state=a.export_state())
    state = a.export_state()
    state.markets.clear()
    with pytest.raises(ValueError, match="unconfigured"):
        SimBroker(config(symbols=["GBPUSD"]), state=state)


def test_periodic_snapshot_bounds_the_replay(tmp_path: Path) -> None:
    path = tmp_path / "sim_state"
    a = open_broker(path)
    for i in range(7):
        trade(a, market(request_id=i))
        a.maybe_checkpoint(every=3)
    crash(a)
    b = open_broker(path)
    assert b.restored is not None
    assert b.restored.replayed == 1  # snapshots after the 3rd and 6th trade
    assert b.position_count == 7
    b.close()


# -- prices --------------------------------------------------------------------------------------


def test_walk_continues_exactly_after_restore(tmp_path: Path) -> None:
    path = tmp_path / "sim_state"
    uninterrupted = SimBroker(config(seed=9), clock=lambda: NOW)
    a = open_broker(path, config(seed=9))
    # 1500 ticks cross a generator block boundary (1024).
    for _ in range(1500):
        uninterrupted.advance("EURUSD")
        a.advance("EURUSD")
    crash(a)
    b = open_broker(path, config(seed=9))
    assert b.quote("EURUSD") == uninterrupted.quote("EURUSD")
    assert b.quote("EURUSD")[:2] != SimBroker(config(seed=9)).quote("EURUSD")[:2]
    path_b = [b.advance("EURUSD") for _ in range(700)]
    path_u = [uninterrupted.advance("EURUSD") for _ in range(700)]
    assert path_b == path_u
    b.close()


def test_prices_come_from_the_newest_source(tmp_path: Path) -> None:
    path = tmp_path / "sim_state"
    a = open_broker(path)
    for _ in range(50):
        a.advance("XAUUSD")
    trade(a, market("XAUUSD", volume=0.01))  # the trade record carries XAUUSD at tick 50
    at_trade = a.quote("XAUUSD")
    for _ in range(50):
        a.advance("USDJPY")
    a.save_prices()  # checkpoint: USDJPY at tick 50, XAUUSD at 50
    for _ in range(30):
        a.advance("USDJPY")  # lost: after the last save
    crash(a, prices=False)
    b = open_broker(path)
    assert b.quote("XAUUSD") == at_trade
    reference = SimBroker(config(), clock=lambda: NOW)
    for _ in range(50):
        reference.advance("USDJPY")
    assert b.quote("USDJPY")[:2] == reference.quote("USDJPY")[:2]
    b.close()


# -- damage --------------------------------------------------------------------------------------


def _journal(path: Path) -> Path:
    return path.with_name(path.name + ".log")


@pytest.mark.parametrize("cut", [1, 7, 30, MIN_FILL_RECORD - 1])
def test_torn_last_record_is_dropped(tmp_path: Path, cut: int) -> None:
    path = tmp_path / "sim_state"
    a = open_broker(path)
    results = [trade(a, market(request_id=i)) for i in range(3)]
    crash(a)
    log = _journal(path)
    size = log.stat().st_size
    os.truncate(log, size - cut)  # the last write was cut short

    b = open_broker(path)
    assert b.restored is not None
    assert b.restored.problems == []
    assert b.restored.replayed == 2
    assert [p.ticket for p in b.positions_snapshot().positions] == [r.position for r in results[:2]]
    state_after_two = b.export_state()
    # The torn bytes are gone, so records written now follow good ones.
    nxt = trade(b, market(request_id=9))
    assert nxt.order > results[1].order
    crash(b)
    c = open_broker(path)
    assert c.restored is not None
    assert c.restored.problems == []
    assert c.position_count == 3
    assert state_after_two.positions.items() <= c.export_state().positions.items()
    c.close()


def test_zero_filled_tail_is_dropped(tmp_path: Path) -> None:
    path = tmp_path / "sim_state"
    a = open_broker(path)
    trade(a, market())
    crash(a)
    with _journal(path).open("ab") as f:
        f.write(bytes(300))
    b = open_broker(path)
    assert b.restored is not None
    assert b.restored.problems == []
    assert b.position_count == 1
    b.close()


def test_corrupt_snapshot_is_set_aside_and_rebuilt_from_the_journal(tmp_path: Path) -> None:
    path = tmp_path / "sim_state"
    a = open_broker(path)
    session(a, 25)
    a.checkpoint()
    session(a, 10, seed=1)
    reference = SimBroker(config(), clock=lambda: NOW, state=a.export_state())
    crash(a)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))

    b = open_broker(path)
    assert b.restored is not None
    assert len(b.restored.problems) == 1
    assert "snapshot" in b.restored.problems[0]
    assert len(list(tmp_path.glob("sim_state.corrupt-*"))) == 1
    same_account(b, reference)
    b.close()
    # The next start is clean again.
    c = open_broker(path)
    assert c.restored is not None
    assert c.restored.problems == []
    same_account(c, reference)
    c.close()


def test_corrupt_journal_keeps_what_is_readable_and_never_reuses_tickets(tmp_path: Path) -> None:
    path = tmp_path / "sim_state"
    a = open_broker(path)
    log = _journal(path)
    base = log.stat().st_size
    results = [trade(a, market(request_id=i, comment=f"r{i}")) for i in range(10)]
    crash(a)
    assert len(read_deals(path)) == 10
    data = bytearray(log.read_bytes())
    # Damage the 6th of ten records of the same size.
    per_record = (len(data) - base) // 10
    data[base + 5 * per_record + 20] ^= 0x01
    log.write_bytes(bytes(data))

    b = open_broker(path)
    assert b.restored is not None
    assert len(b.restored.problems) == 1
    assert "unreadable" in b.restored.problems[0]
    assert len(list(tmp_path.glob("sim_state.log.corrupt-*"))) == 1
    # Up to the damage: the first five trades.
    assert [p.comment for p in b.positions_snapshot().positions] == [f"r{i}" for i in range(5)]
    nxt = trade(b, market())
    assert nxt.order > max(r.order for r in results)
    assert nxt.deal > max(r.deal for r in results)
    crash(b)
    c = open_broker(path)
    assert c.restored is not None
    assert c.restored.problems == []
    assert c.position_count == 6
    c.close()


def test_garbage_everywhere_starts_fresh(tmp_path: Path) -> None:
    path = tmp_path / "sim_state"
    a = open_broker(path)
    results = [trade(a, market(request_id=i)) for i in range(5)]
    crash(a)
    rnd = random.Random(4)
    path.write_bytes(rnd.randbytes(500))
    _journal(path).write_bytes(rnd.randbytes(2000))

    b = open_broker(path)
    assert b.restored is not None
    assert b.restored.account is None
    assert len(b.restored.problems) == 2
    assert b.balance == 1_000_000
    assert not b.has_positions
    assert len(list(tmp_path.glob("sim_state.corrupt-*"))) == 1
    assert len(list(tmp_path.glob("sim_state.log.corrupt-*"))) == 1
    nxt = trade(b, market())
    # Nothing readable says which tickets were used: skip as many as the garbage could hold.
    assert nxt.order > max(r.order for r in results)
    b.close()


def test_state_of_another_account_is_set_aside(tmp_path: Path) -> None:
    path = tmp_path / "sim_state"
    a = open_broker(path)
    results = [trade(a, market(request_id=i)) for i in range(3)]
    a.close()
    b = open_broker(path, config("netting"))
    assert b.restored is not None
    assert b.restored.account is None
    assert "margin mode" in b.restored.problems[0]
    assert len(list(tmp_path.glob("sim_state.mismatch-*"))) == 1
    assert len(list(tmp_path.glob("sim_state.log.mismatch-*"))) == 1
    assert not b.has_positions
    assert trade(b, market()).order > max(r.order for r in results)
    b.close()


def test_ticket_counters_never_go_back(tmp_path: Path) -> None:
    path = tmp_path / "sim_state"
    orders: list[int] = []
    deals: list[int] = []
    for cycle in range(6):
        b = open_broker(path)
        for i in range(3):
            r = trade(b, market(side=ORDER_TYPE_BUY if (cycle + i) % 2 else ORDER_TYPE_SELL))
            orders.append(r.order)
            deals.append(r.deal)
        if cycle == 2:
            b.checkpoint()
        if cycle % 2:
            b.close()
        else:
            crash(b)
    assert orders == sorted(set(orders))
    assert deals == sorted(set(deals))


# -- the files themselves ------------------------------------------------------------------------


def test_second_opener_is_refused_while_the_first_holds_the_lock(tmp_path: Path) -> None:
    path = tmp_path / "sim_state"
    a = open_broker(path)
    with pytest.raises(StateError, match="another process"):
        StateStore.open(
            path,
            login=a.config.login,
            currency="USD",
            margin_mode="hedging",
            symbols=a.symbols,
            lock_timeout=0.1,
        )
    a.close()
    store, _ = StateStore.open(
        path, login=a.config.login, currency="USD", margin_mode="hedging", symbols=a.symbols
    )
    store.close()


def test_unusable_directory_is_a_state_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(StateError):
        open_broker(blocker / "sim_state")


def test_a_trade_the_journal_cannot_take_is_rejected_and_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "sim_state"
    b = open_broker(path)
    first = trade(b, market(request_id=1))
    before = b.export_state()
    snap = b.positions_snapshot_bytes()
    journal = b.journal
    assert journal is not None
    good_fd = journal._log_fd
    full = os.open("/dev/full", os.O_WRONLY)
    try:
        journal._log_fd = full  # every write now fails with ENOSPC, as on a full disk
        out = b.send(market(request_id=2))
        assert out.result.retcode == TRADE_RETCODE_ERROR
        assert "not saved" in out.result.comment
        assert not out.deals
        closing = b.send(market(side=ORDER_TYPE_SELL, position=first.position))
        assert closing.result.retcode == TRADE_RETCODE_ERROR
    finally:
        journal._log_fd = good_fd
        os.close(full)
    assert b.export_state() == before
    assert b.positions_snapshot_bytes() == snap
    trade(b, market(request_id=3))
    crash(b)
    c = open_broker(path)
    assert c.position_count == 2
    c.close()


def test_missing_journal_keeps_the_snapshot_account(tmp_path: Path) -> None:
    path = tmp_path / "sim_state"
    a = open_broker(path)
    session(a, 15)
    a.close()
    reference = SimBroker(config(), clock=lambda: NOW, state=a.export_state())
    _journal(path).unlink()
    b = open_broker(path)
    assert b.restored is not None
    assert "deal history" in b.restored.problems[0]
    same_account(b, reference)
    trade(b, market(request_id=99))
    crash(b)
    c = open_broker(path)  # a new journal was started, with the snapshot's account as its base
    assert c.restored is not None
    assert c.restored.problems == []
    assert c.position_count == reference.position_count + 1
    assert [d.request_id for d in read_deals(path)] == [99]
    c.close()


def test_journal_shorter_than_the_snapshot_is_set_aside(tmp_path: Path) -> None:
    path = tmp_path / "sim_state"
    a = open_broker(path)
    session(a, 15)
    a.close()
    os.truncate(_journal(path), 100)
    b = open_broker(path)
    assert b.restored is not None
    assert "shorter" in b.restored.problems[0]
    assert len(list(tmp_path.glob("sim_state.log.corrupt-*"))) == 1
    assert b.export_state() == a.export_state()
    b.close()


# -- orders, triggered fills, history ------------------------------------------------------------


def _place(broker: SimBroker, req: pb.OrderRequest) -> pb.OrderResult:
    out = broker.send(req)
    assert out.result.retcode == TRADE_RETCODE_PLACED, out.result.comment
    return out.result


def test_working_orders_and_stops_survive_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "sim_state"
    a = open_broker(path)
    sl, tp = stops(a, "EURUSD", True)
    held = trade(a, market(comment="held"))
    trade(a, pb.OrderRequest(action=6, position=held.position, sl=sl, tp=tp))
    orders = [
        _place(a, pending(a, "EURUSD", otype, comment=f"t{otype}", type_time=t, expiration=e))
        for otype, t, e in ((2, 0, 0), (4, 1, 0), (6, 2, int(NOW) + 3600), (7, 3, int(NOW)))
    ]
    moved = pending(a, "EURUSD", 3)
    target = _place(a, pending(a, "EURUSD", 3))
    trade(a, pb.OrderRequest(action=7, order=target.order, price=moved.price - 0.0001))
    removed = _place(a, pending(a, "EURUSD", 5))
    trade(a, pb.OrderRequest(action=8, order=removed.order))
    reference = a.export_state()
    snapshot = a.orders_snapshot()
    crash(a)
    b = open_broker(path)
    assert b.export_state() == reference
    assert b.orders_snapshot() == snapshot
    assert [o.ticket for o in snapshot.orders] == [r.order for r in orders] + [target.order]
    (pos,) = b.positions_snapshot().positions
    assert (pos.sl, pos.tp) == (sl, tp)
    # The restored orders are live: the buy limit fills when the ask comes down to it.
    limit = snapshot.orders[0]
    b.set_price("EURUSD", round(limit.price_open - 0.0002, 5))
    act = b.take_activity()
    assert act is not None
    assert next((u.order.ticket, u.order.state) for u in act.order_updates) == (limit.ticket, 4)
    b.close()


def test_a_triggered_fill_is_journaled_with_its_order(tmp_path: Path) -> None:
    path = tmp_path / "sim_state"
    a = open_broker(path)
    res = _place(a, pending(a, "EURUSD", 3, comment="trig"))  # sell limit 300 points up
    a.set_price("EURUSD", round(a.quote("EURUSD")[0] + 0.0031, 5))
    act = a.take_activity()
    assert act is not None and len(act.deals) == 1
    reference = a.export_state()
    crash(a)  # right after the fill: nothing of it was sent anywhere yet
    b = open_broker(path)
    assert b.export_state() == reference
    assert b.order_count == 0 and b.position_count == 1
    orders, deals = read_history(path, ["trig"])
    assert [(o.ticket, o.state) for o in orders] == [(res.order, 4)]
    assert deals == act.deals
    # Prices going further do not fill it a second time.
    b.set_price("EURUSD", round(b.quote("EURUSD")[0] + 0.0010, 5))
    assert b.take_activity() is None
    b.close()


def test_history_and_reconcile_survive_restarts(tmp_path: Path) -> None:
    path = tmp_path / "sim_state"
    a = open_broker(path)
    session(a, 30, seed=3)
    first_orders, first_deals = a.history()
    assert first_orders and first_deals
    a.checkpoint()
    crash(a)
    b = open_broker(path)
    assert b.history() == (first_orders, first_deals)
    comments = [o.comment for o in first_orders if o.comment][:5]
    result = b.reconcile(pb.ReconcileRequest(request_id=3, comments=comments))
    assert {o.comment for o in result.orders} == set(comments)
    tickets = {o.ticket for o in result.orders}
    assert {d.order for d in result.deals} <= tickets | {0}
    assert all(d.comment in comments or d.order in tickets for d in result.deals)
    b.close()


def test_format_1_state_is_still_read(tmp_path: Path) -> None:
    # A format 1 base (no order count) and FILL record, as written before pending orders.
    import struct
    import zlib

    def frame(payload: bytes) -> bytes:
        return struct.pack("<II", len(payload), zlib.crc32(payload)) + payload

    def s(text: str) -> bytes:
        return bytes((len(text),)) + text.encode()

    head = struct.Struct("<B8sHQQQQdQBII").pack(
        1, b"mt5xsim\x00", 1, 0, 0, 100_000_001, 500_000_001, 1_000_000.0, 10_000_001, 1, 0, 0
    )
    fill = struct.Struct("<BQQQQQQqBBddddqQqddddBdddd").pack(
        4, 1, 500_000_001, 100_000_001, 100_000_001, 1, 5, int(NOW * 1000), 0, 0, 0.1,
        1.085, 0.0, 1_000_000.0, 108495, 0, int(NOW * 1000), 0.1, 0.1085, 0.0, 0.0,
        0, 0.1, 1.085, 1.0, 1.2,
    )  # fmt: skip
    path = tmp_path / "sim_state"
    _journal(path).write_bytes(frame(head + s("USD")) + frame(fill + s("EURUSD") + s("old")))
    b = open_broker(path)
    assert b.restored is not None and b.restored.problems == []
    (pos,) = b.positions_snapshot().positions
    assert (pos.ticket, pos.volume, pos.sl, pos.tp, pos.comment) == (
        100_000_001,
        0.1,
        1.0,
        1.2,
        "old",
    )
    assert [d.comment for d in read_deals(path)] == ["old"]
    assert trade(b, market()).order == 100_000_002
    b.close()


def test_history_search_by_comment_agrees_with_reading_everything(tmp_path: Path) -> None:
    path = tmp_path / "sim_state"
    a = open_broker(path)
    rnd = random.Random(8)
    for i in range(1500):  # several index blocks
        if rnd.random() < 0.3:
            out = a.send(pending(a, "EURUSD", rnd.randrange(2, 8), comment=f"key-{i % 97}"))
            if rnd.random() < 0.5:
                a.send(pb.OrderRequest(action=8, order=out.result.order))
        else:
            a.send(market(side=rnd.randrange(2), comment=f"key-{i % 97}", request_id=i))
        if i % 10 == 0:
            a.set_price("EURUSD", round(a.quote("EURUSD")[0] + rnd.randrange(-40, 41) * 1e-5, 5))
    orders, deals = a.history()
    for keys in (["key-5"], ["key-1", "key-96", "absent"], [f"key-{k}" for k in range(0, 97, 7)]):
        wanted = set(keys)
        tickets = {o.ticket for o in orders if o.comment in wanted}
        expected_deals = [d for d in deals if d.comment in wanted or d.order in tickets]
        got = a.reconcile(pb.ReconcileRequest(comments=keys))
        assert [o.ticket for o in got.orders] == sorted(tickets)
        assert list(got.deals) == expected_deals
        # The same after more records were appended behind the index.
        a.send(market(comment="later"))
    a.close()


def test_history_without_persistence_is_the_same(tmp_path: Path) -> None:
    cfg = config("netting")
    memory = SimBroker(cfg, clock=lambda: NOW)
    disk = open_broker(tmp_path / "sim_state", cfg)
    rnd = random.Random(2)
    for i in range(200):
        for b in (memory, disk):
            b.send(market(side=i % 2, volume=0.1 * (1 + i % 3), comment=f"cc{i % 7}"))
            if i % 5 == 0:
                b.send(pending(b, "EURUSD", 2 + i % 6, comment=f"cc{i % 7}"))
        jump = round(memory.quote("EURUSD")[0] + rnd.randrange(-300, 301) * 1e-5, 5)
        memory.set_price("EURUSD", jump)
        disk.set_price("EURUSD", jump)
    assert memory.history() == disk.history()
    assert memory.history(["cc3", "cc5"]) == disk.history(["cc3", "cc5"])
    assert len(memory.history()[0]) > 200
    disk.close()


# -- compaction ----------------------------------------------------------------------------------

SMALL = Retention(keep_s=3600.0, keep_orders=100, compact_bytes=20_000)


def records(path: Path) -> tuple[int, int]:
    """(records kept as history before the base's seq, records after it) in the journal."""
    data = _journal(path).read_bytes()
    base = _parse_state(data, 0)
    archive_end = base.log_offset or base.end
    before = after = 0
    for offset, _, _ in _scan(data, base.end):
        if offset < archive_end:
            before += 1
        else:
            after += 1
    return before, after


def flip(broker: SimBroker, i: int) -> pb.OrderResult:
    """A market order that opens or closes (netting): the account stays small."""
    return trade(broker, market(side=i % 2, comment=f"k{i}", request_id=i + 1))


def test_compaction_bounds_the_journal_and_keeps_the_recent_history(tmp_path: Path) -> None:
    path = tmp_path / "sim_state"
    a = SimBroker.open(config("netting"), path, clock=lambda: NOW, retention=SMALL)
    assert a.journal is not None
    results = []
    for i in range(3000):
        results.append(flip(a, i))
        a.maybe_checkpoint(wait=True)
        kept, after = records(path) if i % 500 == 499 else (0, 0)
        # The archive never holds more than the orders retained; what came after the last
        # compaction is at most what brings the journal to twice its compacted size.
        assert kept <= SMALL.keep_orders
        assert after <= 2 * SMALL.keep_orders + SMALL.compact_bytes // 150
    assert a.journal.compactions >= 10
    assert a.journal.compact_path.exists() is False
    orders, deals = a.history()
    assert len(deals) <= 3 * SMALL.keep_orders + SMALL.compact_bytes // 150
    next_order = a.export_state().next_order
    recent = [r for r in results if r.order >= next_order - SMALL.keep_orders]
    assert len(recent) == SMALL.keep_orders
    # Every order within the retention is found by its comment, as reconciliation asks.
    for r in recent[:: SMALL.keep_orders // 10]:
        found = a.reconcile(pb.ReconcileRequest(comments=[f"k{r.request_id - 1}"]))
        assert [o.ticket for o in found.orders] == [r.order]
        assert [d.ticket for d in found.deals] == [r.deal]
    # Older ones are gone: the bound is real.
    assert not a.reconcile(pb.ReconcileRequest(comments=["k5"])).orders
    reference = SimBroker(config("netting"), clock=lambda: NOW, state=a.export_state())
    crash(a)
    b = SimBroker.open(config("netting"), path, clock=lambda: NOW, retention=SMALL)
    assert b.restored is not None and b.restored.problems == []
    same_account(b, reference)
    assert b.history() == (orders, deals)
    b.close()


def test_compaction_keeps_what_is_recent_by_time(tmp_path: Path) -> None:
    now = [NOW]
    path = tmp_path / "sim_state"
    retention = Retention(keep_s=60.0, keep_orders=10_000, compact_bytes=5_000)
    a = SimBroker.open(config("netting"), path, clock=lambda: now[0], retention=retention)
    for i in range(40):
        flip(a, i)
        a.maybe_checkpoint(wait=True)
    now[0] += 61.0
    for i in range(40, 60):
        flip(a, i)
        a.maybe_checkpoint(wait=True)
    assert a.journal is not None and a.journal.compactions >= 1
    comments = {d.comment for d in a.history()[1]}
    assert {f"k{i}" for i in range(40, 60)} <= comments
    assert not comments & {f"k{i}" for i in range(30)}  # more than a minute before the newest
    a.close()


def test_orders_journaled_while_the_compaction_copies_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "sim_state"
    a = SimBroker.open(config("netting"), path, clock=lambda: NOW, retention=SMALL)
    assert a.journal is not None
    i = 0
    while not a.journal.compaction_due:
        flip(a, i)
        i += 1
    a.maybe_checkpoint()
    assert a.journal.compacting
    meanwhile = [flip(a, i + n) for n in range(25)]  # appended to the old file meanwhile
    assert a.maybe_checkpoint(wait=True)  # put in place, with a snapshot
    assert not a.journal.compacting and a.journal.compactions == 1
    deals = [d.ticket for d in a.history()[1]]
    assert deals[-25:] == [r.deal for r in meanwhile]
    reference = SimBroker(config("netting"), clock=lambda: NOW, state=a.export_state())
    history = a.history()
    flip(a, 999)
    crash(a)
    b = SimBroker.open(config("netting"), path, clock=lambda: NOW, retention=SMALL)
    assert b.restored is not None and b.restored.problems == []
    assert b.restored.replayed == 1
    assert b.history()[1][:-1] == history[1]
    reference.send(market(side=1, comment="k999", request_id=1000))
    same_account(b, reference)
    b.close()


def test_a_crash_before_the_new_snapshot_replays_from_the_compacted_base(tmp_path: Path) -> None:
    path = tmp_path / "sim_state"
    a = SimBroker.open(config("netting"), path, clock=lambda: NOW, retention=SMALL)
    assert a.journal is not None
    for i in range(300):
        flip(a, i)
    a.checkpoint()  # a snapshot of the journal before the compaction
    a.journal.compact(a.export_state(), int(NOW * 1000))  # renamed, no snapshot yet
    for i in range(300, 303):
        flip(a, i)
    reference = SimBroker(config("netting"), clock=lambda: NOW, state=a.export_state())
    history = a.history()
    crash(a)
    b = SimBroker.open(config("netting"), path, clock=lambda: NOW, retention=SMALL)
    assert b.restored is not None and b.restored.problems == []
    assert b.restored.replayed == 3  # from the compacted base, not from the old snapshot's offset
    same_account(b, reference)
    assert b.history() == history
    b.close()


def test_a_compaction_a_crash_interrupted_is_removed(tmp_path: Path) -> None:
    path = tmp_path / "sim_state"
    a = SimBroker.open(config("netting"), path, clock=lambda: NOW, retention=SMALL)
    assert a.journal is not None
    for i in range(200):
        flip(a, i)
    history = a.history()
    reference = SimBroker(config("netting"), clock=lambda: NOW, state=a.export_state())
    aside = a.journal.compact_path
    crash(a)
    # What a compaction killed while copying leaves: a file cut anywhere.
    aside.write_bytes(_journal(path).read_bytes()[:5_000])
    b = SimBroker.open(config("netting"), path, clock=lambda: NOW, retention=SMALL)
    assert b.restored is not None and b.restored.problems == []
    assert not aside.exists()
    same_account(b, reference)
    assert b.history() == history
    b.close()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_compacted_journal_is_the_same_account_and_the_same_recent_history(
    tmp_path: Path, seed: int
) -> None:
    """Pending orders, stops, partial closes: compaction changes nothing of the account, and
    the history it keeps is the full history's newest part, whole."""
    retention = Retention(keep_s=3600.0, keep_orders=30, compact_bytes=8_000)
    a = SimBroker.open(config(), tmp_path / "a", clock=lambda: NOW, retention=retention)
    full = open_broker(tmp_path / "b")
    for chunk in range(12):
        session(a, 15, seed=seed * 100 + chunk)
        session(full, 15, seed=seed * 100 + chunk)
        a.maybe_checkpoint(wait=True)
    assert a.journal is not None and a.journal.compactions >= 2
    same_account(a, full)
    orders, deals = a.history()
    all_orders, all_deals = full.history()
    assert deals == all_deals[len(all_deals) - len(deals) :]
    everything = {o.ticket: o for o in all_orders}
    assert all(everything[o.ticket] == o for o in orders)
    next_order = a.export_state().next_order
    kept = {o.ticket for o in orders}
    assert {t for t in everything if t >= next_order - retention.keep_orders} <= kept
    assert len(deals) < len(all_deals)
    crash(a)
    b = SimBroker.open(config(), tmp_path / "a", clock=lambda: NOW, retention=retention)
    same_account(b, full)
    assert b.history() == (orders, deals)
    b.close()
    full.close()


def test_a_compaction_on_a_full_disk_changes_nothing_and_works_later(small_disk: Path) -> None:
    path = small_disk / "sim_state"
    a = SimBroker.open(config("netting"), path, clock=lambda: NOW, retention=SMALL)
    assert a.journal is not None
    i = 0
    while not a.journal.compaction_due:
        flip(a, i)
        i += 1
    before = _journal(path).read_bytes()
    filler = fill(small_disk)
    try:
        with pytest.raises(OSError, match="No space left"):
            a.maybe_checkpoint(wait=True)
        assert not a.journal.compact_path.exists()
        assert _journal(path).read_bytes() == before
    finally:
        filler.unlink()
    flip(a, i)
    assert a.maybe_checkpoint(wait=True)
    assert a.journal.compactions == 1
    history = a.history()
    crash(a)
    b = SimBroker.open(config("netting"), path, clock=lambda: NOW, retention=SMALL)
    assert b.history() == history
    b.close()


def test_a_deal_goes_through_the_journal_as_it_was_given() -> None:
    """A DealEntry read back from a journal is the one committed, by the market-order path
    (commit_deal, one struct pack) and by the general one (commit of encode_deal) alike."""
    deal = DealEntry(
        500_000_007, 100_000_003, 100_000_002, 41, 7, 1_700_000_000_123, 1, 1, 3, 0.3,
        1.08345, -12.5, 987_654.32, 108_345, 1_025, 1_700_000_000_100, 0.1, 0.108345, 0.4,
        0.43338, 1, 0.1, 1.08, 1.09, 1.07, "EURUSD", "cid-7 é",
    )  # fmt: skip
    fast, general = MemoryJournal(), MemoryJournal()
    fast.commit_deal(deal)
    general.commit(encode_deal(deal))
    assert fast.history() == general.history()
    (report,) = fast.history()[1]
    assert (report.ticket, report.order, report.position_id, report.request_id) == deal[:4]
    assert (report.volume, report.price, report.profit) == (deal.volume, deal.price, deal.profit)
    assert (report.symbol, report.comment, report.reason) == ("EURUSD", "cid-7 é", 3)
