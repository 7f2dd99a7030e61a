"""Durable state of the simulated broker: journal, snapshot, prices, recovery from damage, the
files themselves. Orders, triggered fills, history and compaction: test_sim_state_history.py."""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import pytest
from tests.sim_state_support import (
    NOW,
    config,
    crash,
    journal_of,
    market,
    open_broker,
    same_account,
    session,
    trade,
)

from mt5exec.sim.broker import (
    ORDER_TYPE_BUY,
    ORDER_TYPE_SELL,
    TRADE_RETCODE_ERROR,
    SimBroker,
)
from mt5exec.sim.state import (
    MIN_FILL_RECORD,
    StateError,
    StateStore,
    read_deals,
)
from tmpfs import small_disk

__all__ = ["small_disk"]  # the fixture


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


@pytest.mark.parametrize("cut", [1, 7, 30, MIN_FILL_RECORD - 1])
def test_torn_last_record_is_dropped(tmp_path: Path, cut: int) -> None:
    path = tmp_path / "sim_state"
    a = open_broker(path)
    results = [trade(a, market(request_id=i)) for i in range(3)]
    crash(a)
    log = journal_of(path)
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
    with journal_of(path).open("ab") as f:
        f.write(bytes(300))
    b = open_broker(path)
    assert b.restored is not None
    assert b.restored.problems == []
    assert b.position_count == 1
    b.close()


def test_corrupt_snapshot_is_set_aside_and_rebuilt_from_thejournal_of(tmp_path: Path) -> None:
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
    log = journal_of(path)
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
    journal_of(path).write_bytes(rnd.randbytes(2000))

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
    journal_of(path).unlink()
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
    os.truncate(journal_of(path), 100)
    b = open_broker(path)
    assert b.restored is not None
    assert "shorter" in b.restored.problems[0]
    assert len(list(tmp_path.glob("sim_state.log.corrupt-*"))) == 1
    assert b.export_state() == a.export_state()
    b.close()
