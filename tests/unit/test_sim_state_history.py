"""Durable state of the simulated broker: orders, triggered fills, history and compaction.
The journal, snapshot, prices and damage: test_sim_state.py."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from tests.sim_state_support import (
    NOW,
    config,
    crash,
    journal_of,
    market,
    open_broker,
    pending,
    same_account,
    session,
    stops,
    trade,
)

from mt5exec.sim.broker import (
    TRADE_RETCODE_PLACED,
    SimBroker,
)
from mt5exec.sim.state import (
    DealEntry,
    MemoryJournal,
    Retention,
    _parse_state,
    _scan,
    encode_deal,
    read_deals,
    read_history,
)
from mt5exec.terminal.v1 import worker_pb2 as pb
from tmpfs import fill, small_disk

__all__ = ["small_disk"]  # the fixture


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
    journal_of(path).write_bytes(frame(head + s("USD")) + frame(fill + s("EURUSD") + s("old")))
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
    data = journal_of(path).read_bytes()
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
    aside.write_bytes(journal_of(path).read_bytes()[:5_000])
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
    before = journal_of(path).read_bytes()
    filler = fill(small_disk)
    try:
        with pytest.raises(OSError, match="No space left"):
            a.maybe_checkpoint(wait=True)
        assert not a.journal.compact_path.exists()
        assert journal_of(path).read_bytes() == before
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
