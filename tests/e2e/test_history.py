"""DuckDB history: rows written off-thread, idempotent on natural keys, batched, durable."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import duckdb
import pytest

from mt5exec.storage.history import HistoryError, HistoryWriter, stored_key
from mt5exec.storage.history_schema import (
    ACCOUNT_SNAPSHOTS,
    AUDIT,
    ORDERS,
    RISK_EVENTS,
    SCHEMA_VERSION,
    TABLES,
)
from mt5exec.v1 import common_pb2 as pb
from tmpfs import fill, small_disk

__all__ = ["small_disk"]  # the fixture

T0_NS = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z
T0 = dt.datetime(2026, 1, 1)


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def make_instance(
    instance_id: str = "i-1", state: pb.InstanceState = pb.INSTANCE_STATE_READY
) -> pb.Instance:
    inst = pb.Instance(
        instance_id=instance_id,
        owner="alice",
        backend=pb.BACKEND_SIM,
        state=state,
        trading_state=pb.TRADING_STATE_ACTIVE,
        worker_pid=4242,
        restarts=1,
    )
    inst.config.symbols.extend(["EURUSD", "XAUUSD"])
    inst.config.leverage = 100
    inst.config.margin_mode = pb.ACCOUNT_MARGIN_MODE_HEDGING
    inst.created_time.FromNanoseconds(T0_NS)
    return inst


def make_order(
    coid: str = "c-1",
    status: pb.OrderStatus = pb.ORDER_STATUS_NEW,
    updated_s: float | None = 1.0,
    instance_id: str = "i-1",
) -> pb.Order:
    order = pb.Order(
        instance_id=instance_id,
        client_order_id=coid,
        order_id=1001,
        symbol="EURUSD",
        side=pb.SIDE_BUY,
        type=pb.ORDER_TYPE_LIMIT,
        volume=0.5,
        price=1.08,
        stop_loss=1.07,
        take_profit=1.1,
        time_in_force=pb.TIME_IN_FORCE_GTC,
        status=status,
        comment="test",
    )
    order.created_time.FromNanoseconds(T0_NS)
    if updated_s is not None:
        order.updated_time.FromNanoseconds(T0_NS + int(updated_s * 1e9))
    return order


def fill_event(seq: int, deal_id: int | None = None, instance_id: str = "i-1") -> bytes:
    event = pb.ExecutionEvent(instance_id=instance_id, sequence=seq)
    event.time.FromNanoseconds(T0_NS + seq * 1_000_000_000)
    fill = event.fill
    fill.instance_id = instance_id
    fill.deal_id = seq if deal_id is None else deal_id
    fill.order_id = 1001
    fill.position_id = 7
    fill.client_order_id = "c-1"
    fill.symbol = "EURUSD"
    fill.side = pb.SIDE_BUY
    fill.entry = pb.FILL_ENTRY_IN
    fill.volume = 0.5
    fill.price = 1.0812
    fill.slippage_points = 2.0
    fill.profit = -1.25
    fill.time.FromNanoseconds(T0_NS + seq * 1_000_000_000)
    return event.SerializeToString()


def order_event(seq: int, order: pb.Order) -> bytes:
    event = pb.ExecutionEvent(instance_id=order.instance_id, sequence=seq)
    event.time.FromNanoseconds(T0_NS + seq * 1_000_000_000)
    event.order_update.CopyFrom(order)
    return event.SerializeToString()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "history.duckdb"


@pytest.fixture
def open_writer(db_path: Path) -> Iterator[Callable[..., HistoryWriter]]:
    """Factory of started writers, all closed at the end of the test."""
    writers: list[HistoryWriter] = []

    def factory(**kwargs: int) -> HistoryWriter:
        writer = HistoryWriter(db_path, **kwargs)
        writer.start()
        writers.append(writer)
        return writer

    yield factory
    for writer in writers:
        writer.close()


def count(writer: HistoryWriter, table: str) -> int:
    rows = writer.query(f"SELECT count(*) FROM {table}")
    return int(rows[0][0])


def wait_for(predicate: Callable[[], bool], timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def test_write_and_read_back(open_writer: Callable[..., HistoryWriter]) -> None:
    writer = open_writer()
    writer.record_instance(make_instance())
    writer.record_order(make_order())
    writer.record_execution(fill_event(1))
    assert writer.flush(timeout=10)

    (inst,) = writer.query(
        "SELECT instance_id, owner, backend, state, trading_state, config_json, worker_pid,"
        " restarts, created_at FROM instances"
    )
    assert inst[:5] == ("i-1", "alice", "SIM", "READY", "ACTIVE")
    assert json.loads(inst[5]) == {
        "symbols": ["EURUSD", "XAUUSD"],
        "leverage": 100,
        "margin_mode": "ACCOUNT_MARGIN_MODE_HEDGING",
    }
    assert inst[6:] == (4242, 1, T0)

    (order,) = writer.query(
        "SELECT instance_id, client_order_id, order_id, symbol, side, type, volume, price,"
        " stop_loss, take_profit, time_in_force, filling, status, comment, created_at,"
        " updated_at FROM orders"
    )
    assert order == (
        "i-1",
        "c-1",
        1001,
        "EURUSD",
        "BUY",
        "LIMIT",
        0.5,
        1.08,
        1.07,
        1.1,
        "GTC",
        None,  # FILLING_MODE_UNSPECIFIED
        "NEW",
        "test",
        T0,
        at(1),
    )

    (execution,) = writer.query(
        "SELECT instance_id, sequence, kind, time, deal_id, order_id, position_id,"
        " client_order_id, symbol, side, entry, volume, price, slippage_points, profit, status,"
        " raw FROM executions"
    )
    assert execution[:-1] == (
        "i-1",
        1,
        "fill",
        at(1),
        1,
        1001,
        7,
        "c-1",
        "EURUSD",
        "BUY",
        "IN",
        0.5,
        1.0812,
        2.0,
        -1.25,
        None,
    )
    assert pb.ExecutionEvent.FromString(execution[-1]).fill.deal_id == 1

    (deal,) = writer.query(
        "SELECT instance_id, deal_id, sequence, order_id, side, entry, volume, price, time"
        " FROM deals"
    )
    assert deal == ("i-1", 1, 1, 1001, "BUY", "IN", 0.5, 1.0812, at(1))
    assert writer.query("SELECT max(version) FROM schema_version") == [(SCHEMA_VERSION,)]
    assert writer.errors == 0


def test_same_execution_twice_is_one_row(open_writer: Callable[..., HistoryWriter]) -> None:
    writer = open_writer()
    event = fill_event(1)
    writer.record_execution(event)
    writer.record_execution(event)  # same batch
    assert writer.flush(timeout=10)
    writer.record_execution(event)  # later batch
    assert writer.flush(timeout=10)
    assert count(writer, "executions") == 1
    assert count(writer, "deals") == 1

    # The same deal reported again under another sequence (e.g. after reconciliation):
    # a second execution, still one deal.
    writer.record_execution(fill_event(2, deal_id=1))
    assert writer.flush(timeout=10)
    assert count(writer, "executions") == 2
    assert writer.query("SELECT deal_id, sequence FROM deals") == [(1, 1)]


def test_a_batch_with_a_stored_event_writes_its_new_rows_once(
    open_writer: Callable[..., HistoryWriter],
) -> None:
    """A batch is written with plain INSERTs first; one whose event is stored already is
    written again with the tables' rules: its new rows are all there, the stored ones as
    they were, and the next batch of new rows goes the plain way again."""
    writer = open_writer()
    writer.record_execution(fill_event(1, deal_id=7))
    assert writer.flush(timeout=10)
    writer.record_execution(fill_event(1, deal_id=7))  # stored already
    writer.record_execution(fill_event(2))
    writer.record_execution(fill_event(3, deal_id=7))  # its deal stored already
    writer.record_execution(order_event(4, make_order(status=pb.ORDER_STATUS_FILLED)))
    assert writer.flush(timeout=10)
    assert writer.conflicts == 1
    assert writer.query("SELECT sequence FROM executions ORDER BY 1") == [(1,), (2,), (3,), (4,)]
    assert writer.query("SELECT deal_id, sequence FROM deals ORDER BY 1") == [(2, 2), (7, 1)]
    assert writer.query("SELECT status FROM orders") == [("FILLED",)]
    writer.record_execution(fill_event(5))
    assert writer.flush(timeout=10)
    assert writer.conflicts == 1
    assert count(writer, "executions") == 5
    assert writer.errors == 0


def test_orders_go_in_plainly_unless_this_writer_wrote_them_open(
    open_writer: Callable[..., HistoryWriter],
) -> None:
    """Orders new to the writer go in with a plain INSERT; one it wrote in a state that may
    change gets the orders' rule (no conflict); one stored by another writer (a restart) it
    did not know of fails the plain INSERT, and the batch is written again with the rules:
    the newer version replaces the row, an older one does not."""
    writer = open_writer()
    writer.record_order(make_order("c-1", pb.ORDER_STATUS_ACCEPTED, updated_s=1))
    writer.record_order(make_order("c-2", pb.ORDER_STATUS_FILLED, updated_s=1))
    assert writer.flush(timeout=10)
    writer.record_order(make_order("c-1", pb.ORDER_STATUS_PARTIALLY_FILLED, updated_s=2))
    assert writer.flush(timeout=10)
    assert writer.conflicts == 0
    writer.close()

    writer = open_writer()
    writer.record_order(make_order("c-1", pb.ORDER_STATUS_FILLED, updated_s=3))
    writer.record_order(make_order("c-3", pb.ORDER_STATUS_NEW, updated_s=3))
    assert writer.flush(timeout=10)
    assert writer.conflicts == 1
    writer.record_order(make_order("c-2", pb.ORDER_STATUS_ACCEPTED, updated_s=0))  # older
    assert writer.flush(timeout=10)
    assert writer.conflicts == 2
    assert writer.query("SELECT client_order_id, status, updated_at FROM orders ORDER BY 1") == [
        ("c-1", "FILLED", at(3)),
        ("c-2", "FILLED", at(1)),
        ("c-3", "NEW", at(3)),
    ]
    assert writer.errors == 0


def test_only_a_duplicate_key_counts_as_a_stored_key() -> None:
    """The plain-INSERT pass is written again with the tables' rules only for a key stored
    already (DuckDB's own exceptions: a primary key, a unique column, a key twice in one
    statement), not for another constraint a row breaks (NOT NULL, CHECK)."""
    con = duckdb.connect()
    con.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, u INTEGER UNIQUE, n INTEGER NOT NULL)")
    con.execute("CREATE TABLE checked (v INTEGER CHECK (v > 0))")
    con.execute("INSERT INTO t VALUES (1, 1, 1)")

    def refusal(sql: str) -> duckdb.Error:
        with pytest.raises(duckdb.ConstraintException) as caught:
            con.execute(sql)
        return caught.value

    assert stored_key(refusal("INSERT INTO t VALUES (1, 2, 2)"))
    assert stored_key(refusal("INSERT INTO t VALUES (2, 1, 2)"))
    assert stored_key(refusal("INSERT INTO t VALUES (3, 3, 3), (3, 4, 4)"))
    assert not stored_key(refusal("INSERT INTO t VALUES (5, 5, NULL)"))
    assert not stored_key(refusal("INSERT INTO checked VALUES (0)"))
    assert not stored_key(ValueError("duplicate key"))
    con.close()


def test_order_status_update_keeps_latest(open_writer: Callable[..., HistoryWriter]) -> None:
    writer = open_writer()
    writer.record_order(make_order(status=pb.ORDER_STATUS_NEW, updated_s=1))
    assert writer.flush(timeout=10)
    writer.record_order(make_order(status=pb.ORDER_STATUS_ACCEPTED, updated_s=2))
    writer.record_order(make_order(status=pb.ORDER_STATUS_PARTIALLY_FILLED, updated_s=3))
    assert writer.flush(timeout=10)
    assert writer.query("SELECT status, updated_at FROM orders") == [("PARTIALLY_FILLED", at(3))]

    fill = make_order(status=pb.ORDER_STATUS_FILLED, updated_s=4)
    fill.filled_volume = 0.5
    fill.average_fill_price = 1.0799
    writer.record_order(fill)
    # A stale copy arriving later (replay, slow path) must not undo the fill.
    writer.record_order(make_order(status=pb.ORDER_STATUS_ACCEPTED, updated_s=2))
    assert writer.flush(timeout=10)
    writer.record_order(make_order(status=pb.ORDER_STATUS_NEW, updated_s=1))
    assert writer.flush(timeout=10)
    assert writer.query("SELECT status, filled_volume, average_fill_price FROM orders") == [
        ("FILLED", 0.5, 1.0799)
    ]
    assert count(writer, "orders") == 1


def test_order_events_update_orders_table(open_writer: Callable[..., HistoryWriter]) -> None:
    writer = open_writer()
    writer.record_execution(order_event(1, make_order(status=pb.ORDER_STATUS_ACCEPTED)))
    filled = make_order(status=pb.ORDER_STATUS_FILLED, updated_s=5)
    filled.retcode = 10009
    writer.record_execution(order_event(2, filled))
    writer.record_execution(fill_event(3))
    assert writer.flush(timeout=10)
    assert writer.query("SELECT sequence, kind, status, retcode FROM executions ORDER BY 1") == [
        (1, "order", "ACCEPTED", 0),
        (2, "order", "FILLED", 10009),
        (3, "fill", None, None),
    ]
    assert writer.query("SELECT client_order_id, status, retcode FROM orders") == [
        ("c-1", "FILLED", 10009)
    ]


def test_instance_upsert(open_writer: Callable[..., HistoryWriter]) -> None:
    writer = open_writer()
    writer.record_instance(make_instance(state=pb.INSTANCE_STATE_STARTING))
    writer.record_instance(make_instance("i-2"))
    assert writer.flush(timeout=10)
    writer.record_instance(make_instance(state=pb.INSTANCE_STATE_STOPPED))
    assert writer.flush(timeout=10)
    assert writer.query("SELECT instance_id, state FROM instances ORDER BY 1") == [
        ("i-1", "STOPPED"),
        ("i-2", "READY"),
    ]


def test_close_flushes_and_data_survives_reopen(db_path: Path) -> None:
    with HistoryWriter(db_path, flush_interval_ms=60_000) as writer:
        writer.record_instance(make_instance())
        writer.record_order(make_order())
        for seq in range(1, 101):
            writer.record_execution(fill_event(seq))
        # No flush(): the interval is a minute, so only close() can write these rows.
    assert not writer.running
    writer.close()  # idempotent

    with HistoryWriter(db_path) as reopened:
        assert count(reopened, "instances") == 1
        assert count(reopened, "orders") == 1
        assert count(reopened, "executions") == 100
        assert count(reopened, "deals") == 100
        # Replaying the same events after a restart changes nothing.
        for seq in range(1, 101):
            reopened.record_execution(fill_event(seq))
        assert reopened.flush(timeout=10)
        assert count(reopened, "executions") == 100


def test_burst_is_written_in_batches(open_writer: Callable[..., HistoryWriter]) -> None:
    rows = 10_000
    writer = open_writer(flush_interval_ms=200, batch_size=1000)
    events = [fill_event(seq) for seq in range(1, rows + 1)]
    start = time.perf_counter()
    for event in events:
        writer.record_execution(event)
    enqueued = time.perf_counter()
    assert writer.flush(timeout=60)
    elapsed = time.perf_counter() - start
    assert count(writer, "executions") == rows
    assert count(writer, "deals") == rows
    # Two tables written: one statement per table per flush, never one per row.
    assert writer.statements <= 2 * writer.flushes
    assert writer.flushes <= rows // 100, writer.flushes
    assert writer.rows_written == 2 * rows
    print(
        f"\nhistory burst: {rows} executions (+{rows} deals) in {elapsed * 1e3:.0f} ms = "
        f"{rows / elapsed:,.0f} events/s ({2 * rows / elapsed:,.0f} rows/s) in "
        f"{writer.flushes} flushes / {writer.statements} statements; record_execution "
        f"{(enqueued - start) / rows * 1e6:.2f} us/call"
    )


def test_batch_size_triggers_a_write(open_writer: Callable[..., HistoryWriter]) -> None:
    writer = open_writer(flush_interval_ms=60_000, batch_size=50)
    for seq in range(1, 51):
        writer.record_execution(fill_event(seq))
    assert wait_for(lambda: count(writer, "executions") == 50)


def test_interval_triggers_a_write(open_writer: Callable[..., HistoryWriter]) -> None:
    writer = open_writer(flush_interval_ms=20, batch_size=1000)
    writer.record_execution(fill_event(1))
    assert wait_for(lambda: count(writer, "executions") == 1)


def test_undecodable_event_is_counted_not_fatal(open_writer: Callable[..., HistoryWriter]) -> None:
    writer = open_writer()
    writer.record_execution(b"\xff\xff not protobuf")
    writer.record_execution(pb.ExecutionEvent(instance_id="i-1", sequence=9).SerializeToString())
    writer.record_execution(fill_event(1))
    assert writer.flush(timeout=10)
    assert writer.errors == 2
    assert writer.running
    assert count(writer, "executions") == 1


def test_a_failed_write_is_kept_and_retried_until_it_works(
    open_writer: Callable[..., HistoryWriter],
) -> None:
    writer = open_writer(flush_interval_ms=60_000)
    ddl = writer.cursor()  # a connection of its own: the writer's is busy retrying
    # A real failure: the target table is gone while rows are queued.
    ddl.execute("ALTER TABLE orders RENAME TO orders_away")
    writer.record_order(make_order())
    writer.record_execution(fill_event(1))
    assert not writer.flush(timeout=10)
    assert writer.failing
    writer.record_execution(fill_event(2))  # queued behind the rows that failed
    assert not writer.flush(timeout=10)  # each flush answers after the next attempt
    assert writer.errors >= 2
    assert count(writer, "executions") == 0, "nothing queued later was written first"
    ddl.execute("ALTER TABLE orders_away RENAME TO orders")
    assert wait_for(lambda: writer.flush(timeout=10), timeout=30)  # retried on its own
    assert not writer.failing
    assert count(writer, "orders") == 1
    assert [r[0] for r in writer.query("SELECT sequence FROM executions ORDER BY 1")] == [1, 2]
    assert writer.dropped == 0


def test_a_full_disk_invalidating_the_database_loses_no_row(small_disk: Path) -> None:
    """DuckDB invalidates a database whose checkpoint could not be written (every write is
    then refused): the writer opens it again, and writes everything once there is space."""
    writer = HistoryWriter(small_disk / "h.duckdb", flush_interval_ms=20)
    with writer:
        # Every commit checkpoints: on a full disk that is the fatal kind of failure.
        writer.cursor().execute("SET checkpoint_threshold = '1kb'")
        for seq in range(1, 51):
            writer.record_execution(fill_event(seq))
        assert writer.flush(timeout=30)
        filler = fill(small_disk)
        for seq in range(51, 101):
            writer.record_execution(fill_event(seq))
        assert not writer.flush(timeout=30)
        assert writer.failing
        filler.unlink()
        assert wait_for(lambda: writer.flush(timeout=10), timeout=60)
        assert writer.reopened >= 1
        assert count(writer, "executions") == 100
        assert count(writer, "deals") == 100
    assert writer.dropped == 0
    with duckdb.connect(str(small_disk / "h.duckdb"), read_only=True) as db:
        assert db.execute("SELECT count(*) FROM deals").fetchall() == [(100,)]


def test_close_on_a_full_disk_gives_up_after_its_grace_and_says_so(small_disk: Path) -> None:
    writer = HistoryWriter(small_disk / "h.duckdb", flush_interval_ms=20, close_retry_s=0.5)
    writer.start()
    filler = fill(small_disk)
    try:
        for seq in range(1, 11):
            writer.record_execution(fill_event(seq))
        assert not writer.flush(timeout=30)
        writer.close()
        assert not writer.running
        assert writer.dropped == 20  # 10 executions and their deals, counted, not hidden
    finally:
        filler.unlink()


def test_query_cannot_write(open_writer: Callable[..., HistoryWriter]) -> None:
    writer = open_writer()
    with pytest.raises(duckdb.Error, match="read-only"):
        writer.query("DELETE FROM orders")
    assert count(writer, "orders") == 0  # the cursor is still usable


def test_query_with_params(open_writer: Callable[..., HistoryWriter]) -> None:
    writer = open_writer()
    writer.record_order(make_order("a", instance_id="i-1"))
    writer.record_order(make_order("b", instance_id="i-2"))
    assert writer.flush(timeout=10)
    rows = writer.query("SELECT client_order_id FROM orders WHERE instance_id = ?", ["i-2"])
    assert rows == [("b",)]


def test_records_after_close_are_rejected(db_path: Path) -> None:
    writer = HistoryWriter(db_path)
    writer.start()
    writer.close()
    writer.record_execution(fill_event(1))
    assert writer.rejected == 1
    with pytest.raises(HistoryError):
        writer.query("SELECT 1")
    with pytest.raises(HistoryError):
        writer.start()


def test_queue_limit_rejects_instead_of_growing(db_path: Path) -> None:
    writer = HistoryWriter(db_path, batch_size=2, max_pending=2)
    for seq in range(1, 4):  # queued before start: nothing drains the queue yet
        writer.record_execution(fill_event(seq))
    assert writer.rejected == 1
    with writer:
        assert writer.flush(timeout=10)
        assert count(writer, "executions") == 2


def test_newer_schema_is_refused(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    conn = duckdb.connect(str(db_path))
    conn.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at TIMESTAMP)")
    conn.execute("INSERT INTO schema_version VALUES (?, ?)", [SCHEMA_VERSION + 1, T0])
    conn.close()
    with pytest.raises(HistoryError, match="newer"):
        HistoryWriter(db_path).start()


def test_second_process_cannot_open_the_file(
    open_writer: Callable[..., HistoryWriter], db_path: Path
) -> None:
    open_writer()
    script = (
        "import sys; from pathlib import Path\n"
        "from mt5exec.storage.history import HistoryError, HistoryWriter\n"
        "try:\n"
        "    HistoryWriter(Path(sys.argv[1])).start()\n"
        "except HistoryError as exc:\n"
        "    print(exc); sys.exit(3)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(db_path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPATH": str(Path(__file__).resolve().parents[2] / "python")},
        check=False,
    )
    assert result.returncode == 3, result.stderr
    assert "cannot open history database" in result.stdout


def test_schema_has_every_table(open_writer: Callable[..., HistoryWriter]) -> None:
    writer = open_writer()
    names = {row[0] for row in writer.query("SELECT table_name FROM duckdb_tables()")}
    assert names == {"schema_version", *(table.name for table in TABLES)}


def test_risk_rejections_are_queryable_by_reason(
    open_writer: Callable[..., HistoryWriter],
) -> None:
    writer = open_writer()
    refused = make_order("c-risk", pb.ORDER_STATUS_REJECTED)
    refused.reject_reason = "MAX_OPEN_POSITIONS"
    writer.record_execution(order_event(1, refused))
    # A throttle's refusals: one event standing for 25 refused orders.
    throttled = make_order("c-throttled", pb.ORDER_STATUS_REJECTED)
    throttled.reject_reason = "RATE_LIMITED"
    event = pb.ExecutionEvent.FromString(order_event(2, throttled))
    event.refusals = 25
    writer.record_execution(event.SerializeToString())
    assert writer.flush(timeout=10)
    by_reason = (
        "SELECT reject_reason, sum(coalesce(refusals, 1)) FROM executions "
        "WHERE status = 'REJECTED' GROUP BY 1 ORDER BY 1"
    )
    assert writer.query(by_reason) == [("MAX_OPEN_POSITIONS", 1), ("RATE_LIMITED", 25)]
    assert writer.query("SELECT reject_reason FROM orders ORDER BY 1") == [
        ("MAX_OPEN_POSITIONS",),
        ("RATE_LIMITED",),
    ]


def _old_database(db_path: Path, version: int) -> duckdb.DuckDBPyConnection:
    """A database as schema ``version`` (1 or 2) made it; the connection stays open."""
    db_path.parent.mkdir(parents=True)
    conn = duckdb.connect(str(db_path))
    conn.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at TIMESTAMP)")
    conn.execute("INSERT INTO schema_version VALUES (?, ?)", [version, T0])
    for table in TABLES:
        if (table is AUDIT and version < 5) or (
            table in (ACCOUNT_SNAPSHOTS, RISK_EVENTS) and version < 6
        ):
            continue  # v5, v6
        # v1: without reject_reason; v1 and v2: orders keyed without their creation time;
        # before v4: executions without refusals.
        # Before v7: orders without their encoded Order.
        columns = [
            c
            for c in table.columns
            if (version > 1 or c[0] != "reject_reason")
            and (version > 3 or c[0] != "refusals")
            and (version > 6 or c[0] != "encoded")
        ]
        key = ("instance_id", "client_order_id") if table is ORDERS and version < 3 else table.key
        cols = ", ".join(
            f"{name} {sqltype.replace(' NOT NULL', '') if name == 'created_at' else sqltype}"
            for name, sqltype in columns
        )
        conn.execute(f"CREATE TABLE {table.name} ({cols}, PRIMARY KEY ({', '.join(key)}))")
    return conn


def test_a_v1_database_is_migrated(db_path: Path) -> None:
    conn = _old_database(db_path, 1)
    # An order of v1 (columns by name: v2 added reject_reason as the last column).
    conn.execute(
        "INSERT INTO orders (instance_id, client_order_id, status, comment, created_at, "
        "recorded_at) VALUES ('i-1', 'c-v1', 'FILLED', 'kept', ?, ?)",
        [T0, T0],
    )
    conn.close()
    with HistoryWriter(db_path) as writer:
        assert writer.query(
            "SELECT client_order_id, status, comment, created_at, recorded_at, reject_reason "
            "FROM orders"
        ) == [("c-v1", "FILLED", "kept", T0, T0, None)]
        refused = make_order("c-old", pb.ORDER_STATUS_REJECTED)
        refused.reject_reason = "KILL_SWITCH"
        writer.record_execution(order_event(1, refused))
        assert writer.flush(timeout=10)
        assert writer.query("SELECT reject_reason FROM executions") == [("KILL_SWITCH",)]
        assert writer.query("SELECT reject_reason FROM orders WHERE client_order_id = 'c-old'") == [
            ("KILL_SWITCH",)
        ]
        assert writer.query("SELECT max(version) FROM schema_version") == [(SCHEMA_VERSION,)]


def test_a_v2_database_keeps_its_orders_and_then_keeps_reused_ids_apart(db_path: Path) -> None:
    conn = _old_database(db_path, 2)
    columns = [name for name, _ in ORDERS.columns if name != "encoded"]  # v7
    names = ", ".join(columns)
    marks = ", ".join("?" for _ in columns)
    row: dict[str, object] = {name: None for name in columns}
    row.update(instance_id="i-1", client_order_id="c-1", status="FILLED", recorded_at=T0)
    conn.execute(f"INSERT INTO orders ({names}) VALUES ({marks})", list(row.values()))
    row.update(client_order_id="c-2", created_at=T0)
    conn.execute(f"INSERT INTO orders ({names}) VALUES ({marks})", list(row.values()))
    conn.close()
    with HistoryWriter(db_path) as writer:
        assert writer.query("SELECT client_order_id, status FROM orders ORDER BY 1") == [
            ("c-1", "FILLED"),
            ("c-2", "FILLED"),
        ]
        # The id again, for a new order (created later): a row of its own.
        again = make_order("c-2", pb.ORDER_STATUS_ACCEPTED)
        again.created_time.FromNanoseconds(T0_NS + 86_400 * 10**9)
        writer.record_order(again)
        assert writer.flush(timeout=10)
        assert writer.query(
            "SELECT status FROM orders WHERE client_order_id = 'c-2' ORDER BY created_at"
        ) == [("FILLED",), ("ACCEPTED",)]
        assert writer.query("SELECT max(version) FROM schema_version") == [(SCHEMA_VERSION,)]
        # v4: a throttle's coalesced refusal keeps its count.
        refused = make_order("c-throttled", pb.ORDER_STATUS_REJECTED)
        refused.reject_reason = "RATE_LIMITED"
        event = pb.ExecutionEvent.FromString(order_event(9, refused))
        event.refusals = 41
        writer.record_execution(event.SerializeToString())
        assert writer.flush(timeout=10)
        assert writer.query("SELECT refusals FROM executions WHERE sequence = 9") == [(41,)]


def test_a_v4_database_gains_the_audit_table_and_keeps_every_audit_row(db_path: Path) -> None:
    conn = _old_database(db_path, 4)
    assert ("audit",) not in conn.execute("SHOW TABLES").fetchall()
    conn.close()
    with HistoryWriter(db_path) as writer:
        assert writer.query("SELECT max(version) FROM schema_version") == [(SCHEMA_VERSION,)]
        assert SCHEMA_VERSION >= 5
        row = (T0_NS, T0_NS // 1000, "call", "m", "api_key", "k1", "trader", "o", "p", None)
        row += ("OK", None, "{}", None, None)
        assert len(row) == len(AUDIT.columns)
        # Two rows of one id (two servers' clocks): both kept, the table has no key.
        assert writer.record_audit(row) and writer.record_audit((*row[:2], "again", *row[3:]))
        assert writer.flush(timeout=10)
        assert writer.query("SELECT id, time, event FROM audit ORDER BY event") == [
            (T0_NS, T0, "again"),
            (T0_NS, T0, "call"),
        ]


def test_a_v5_database_gains_account_snapshots_and_risk_events(db_path: Path) -> None:
    conn = _old_database(db_path, 5)
    assert ("account_snapshots",) not in conn.execute("SHOW TABLES").fetchall()
    conn.close()
    with HistoryWriter(db_path) as writer:
        assert writer.query("SELECT max(version) FROM schema_version") == [(SCHEMA_VERSION,)]
        snapshot = ("i1", T0_NS // 1000, 1000.0, 990.0, 50.0, 940.0, 1980.0, -10.0, "USD", "change")
        risk = (T0_NS // 1000, "kill_switch_engaged", "i1", "o", "{}", "why", "api_key", "k1")
        assert writer.record_row("account_snapshots", snapshot)
        assert writer.record_row("risk_events", (*risk, "trader", "o"))
        assert writer.flush(timeout=10)
        assert writer.query("SELECT instance_id, time, equity, reason FROM account_snapshots") == [
            ("i1", T0, 990.0, "change")
        ]
        assert writer.query("SELECT event, subject, role FROM risk_events") == [
            ("kill_switch_engaged", "k1", "trader")
        ]


def test_a_v6_database_keeps_its_orders_and_then_stores_each_one_encoded(db_path: Path) -> None:
    conn = _old_database(db_path, 6)
    conn.execute(
        "INSERT INTO orders (instance_id, client_order_id, status, created_at, recorded_at) "
        "VALUES ('i-1', 'c-v6', 'FILLED', ?, ?)",
        [T0, T0],
    )
    conn.close()
    with HistoryWriter(db_path) as writer:
        assert writer.query("SELECT max(version) FROM schema_version") == [(SCHEMA_VERSION,)]
        assert writer.query("SELECT client_order_id, status, encoded FROM orders") == [
            ("c-v6", "FILLED", None)
        ]
        # From an execution event whose order does not name its instance (the event does).
        order = make_order("c-v7", pb.ORDER_STATUS_FILLED, instance_id="")
        event = pb.ExecutionEvent.FromString(order_event(1, order))
        event.instance_id = "i-1"
        writer.record_execution(event.SerializeToString())
        writer.record_order(make_order("c-direct"))
        assert writer.flush(timeout=10)
        stored = dict(writer.query("SELECT client_order_id, encoded FROM orders"))
        assert stored["c-v6"] is None
        order.instance_id = "i-1"
        assert pb.Order.FromString(stored["c-v7"]) == order
        assert pb.Order.FromString(stored["c-direct"]) == make_order("c-direct")


def test_an_id_used_again_for_a_new_order_gets_a_row_of_its_own_also_in_one_batch(
    open_writer: Callable[..., HistoryWriter],
) -> None:
    writer = open_writer()
    first = make_order("c-1", pb.ORDER_STATUS_FILLED, updated_s=2)
    again = make_order("c-1", pb.ORDER_STATUS_ACCEPTED, updated_s=1)
    again.created_time.FromNanoseconds(T0_NS + 3_600 * 10**9)
    # In one batch, and the later order's update older than the first's last one.
    writer.record_order(first)
    writer.record_order(again)
    assert writer.flush(timeout=10)
    rows = writer.query("SELECT status, created_at FROM orders ORDER BY created_at")
    assert rows == [("FILLED", at(0)), ("ACCEPTED", at(3_600))]
