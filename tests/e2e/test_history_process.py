"""The history child process: real process, real DuckDB file, bytes in, rows out."""

from __future__ import annotations

import asyncio
import json
import marshal
import os
import signal
import struct
import zlib
from pathlib import Path

import duckdb
import pytest

from mt5exec.auth import audit
from mt5exec.storage.history_process import HistoryProcess, HistoryUnavailable
from mt5exec.storage.log_tail import LogTail
from mt5exec.v1 import common_pb2, order_pb2, stream_pb2
from tmpfs import fill, small_disk

__all__ = ["small_disk"]  # the fixture


def _log(instances: Path, instance_id: str, events: bytes) -> None:
    """Appends a batch's events to the instance's execution log, as the engine writes it."""
    path = instances / "owner" / instance_id / "executions.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "ab") as f:
        for event in stream_pb2.StreamExecutionsResponse.FromString(events).events:
            payload = event.SerializeToString()
            f.write(struct.pack(">II", len(payload), zlib.crc32(payload)) + payload)


def _append(path: Path, data: bytes) -> None:
    with open(path, "ab") as f:
        f.write(data)


def _batch(instance_id: str, first_sequence: int) -> bytes:
    fill = common_pb2.Fill(
        instance_id=instance_id,
        deal_id=500 + first_sequence,
        client_order_id=f"c{first_sequence}",
        symbol="EURUSD",
        side=common_pb2.SIDE_BUY,
        volume=0.1,
        price=1.1,
    )
    order = common_pb2.Order(
        instance_id=instance_id,
        client_order_id=f"c{first_sequence}",
        symbol="EURUSD",
        status=common_pb2.ORDER_STATUS_FILLED,
    )
    return stream_pb2.StreamExecutionsResponse(
        events=[
            common_pb2.ExecutionEvent(instance_id=instance_id, sequence=first_sequence, fill=fill),
            common_pb2.ExecutionEvent(
                instance_id=instance_id, sequence=first_sequence + 1, order_update=order
            ),
        ]
    ).SerializeToString()


def test_records_reach_duckdb_and_the_child_exits_on_close(tmp_path: Path) -> None:
    db = tmp_path / "h.duckdb"

    async def scenario() -> int:
        instances = tmp_path / "instances"
        history = HistoryProcess(db, flush_interval_ms=50, instances_dir=instances)
        await history.start()
        instance = common_pb2.Instance(instance_id="a", owner="o", backend=common_pb2.BACKEND_SIM)
        history.record_instance(instance.SerializeToString())
        _log(instances, "a", _batch("a", 1))
        _log(instances, "a", _batch("a", 1))  # a replay changes nothing
        _log(instances, "a", _batch("a", 3))
        await history.flush()
        assert history._proc is not None
        proc = history._proc
        await history.close()
        assert proc.returncode is not None
        return proc.returncode

    assert asyncio.run(scenario()) == 0
    con = duckdb.connect(str(db), read_only=True)
    try:
        assert con.execute("select count(*) from executions").fetchone() == (4,)
        assert con.execute("select count(*) from deals").fetchone() == (2,)
        assert con.execute("select status from orders order by 1").fetchall() == [
            ("FILLED",),
            ("FILLED",),
        ]
        assert con.execute("select owner from instances").fetchall() == [("o",)]
    finally:
        con.close()


def test_unusable_path_is_reported(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")

    async def scenario() -> None:
        await HistoryProcess(blocker / "h.duckdb").start()

    with pytest.raises((HistoryUnavailable, OSError)):
        asyncio.run(scenario())


def test_a_dead_child_never_breaks_the_caller(tmp_path: Path) -> None:
    async def scenario() -> int:
        history = HistoryProcess(tmp_path / "h.duckdb")
        await history.start()
        assert history._proc is not None
        os.kill(history._proc.pid, signal.SIGKILL)
        await history._proc.wait()
        await asyncio.sleep(0.05)
        order = common_pb2.Order(instance_id="a", client_order_id="c").SerializeToString()
        for _ in range(10):
            history.record_order(order)
        await asyncio.sleep(0.05)
        for _ in range(10):
            history.record_order(order)
        with pytest.raises(HistoryUnavailable):
            await asyncio.wait_for(history.flush(), 5)
        await history.close()
        return history.dropped

    assert asyncio.run(scenario()) > 0


def test_a_bad_record_is_skipped_and_the_history_goes_on(tmp_path: Path) -> None:
    db = tmp_path / "h.duckdb"

    async def scenario() -> None:
        instances = tmp_path / "instances"
        history = HistoryProcess(db, flush_interval_ms=50, instances_dir=instances)
        await history.start()
        history.record_order(b"\xff\xff\xff")  # not an Order
        assert history._send(b"K", b"[]")  # JSON, not an object
        assert history._send(b"A", b"")  # no audit record
        _log(instances, "a", _batch("a", 3))
        await history.flush()
        await history.close()

    asyncio.run(scenario())
    con = duckdb.connect(str(db), read_only=True)
    try:
        assert con.execute("select sequence from executions order by 1").fetchall() == [
            (3,),
            (4,),
        ]
    finally:
        con.close()


def test_a_flush_the_child_cannot_get_fails_at_once(tmp_path: Path) -> None:
    async def scenario() -> None:
        history = HistoryProcess(tmp_path / "h.duckdb")
        await history.start()
        history.MAX_BUFFERED = -1  # as if the child were far behind: nothing more is queued
        with pytest.raises(HistoryUnavailable, match="flush request was not sent"):
            await asyncio.wait_for(history.flush(), timeout=60)
        assert history._acks == {}
        history.MAX_BUFFERED = HistoryProcess.MAX_BUFFERED
        await history.close()

    asyncio.run(scenario())


def test_events_logged_while_no_history_ran_are_caught_up_once(tmp_path: Path) -> None:
    """The logs are the source: a history process started after events were logged (a server
    that crashed before passing them on) writes them, and one started again writes nothing
    twice; a record still being written waits for its end."""
    db, instances = tmp_path / "h.duckdb", tmp_path / "instances"
    _log(instances, "a", _batch("a", 1))
    _log(instances, "b", _batch("b", 1))

    async def run(extra: bytes = b"") -> None:
        history = HistoryProcess(db, flush_interval_ms=50, instances_dir=instances)
        await history.start()
        if extra:
            path = instances / "owner" / "a" / "executions.log"
            _append(path, extra[:5])  # half a record: not read yet
            await history.flush()
            _append(path, extra[5:])
        await history.flush()
        await history.close()

    def sequences() -> list[tuple[str, int]]:
        con = duckdb.connect(str(db), read_only=True)
        try:
            rows = con.execute("select instance_id, sequence from executions order by 1, 2")
            return [(str(i), int(q)) for i, q in rows.fetchall()]
        finally:
            con.close()

    asyncio.run(run())
    assert sequences() == [("a", 1), ("a", 2), ("b", 1), ("b", 2)]
    event = stream_pb2.StreamExecutionsResponse.FromString(_batch("a", 3)).events[0]
    payload = event.SerializeToString()
    asyncio.run(run(struct.pack(">II", len(payload), zlib.crc32(payload)) + payload))
    assert sequences() == [("a", 1), ("a", 2), ("a", 3), ("b", 1), ("b", 2)]


def test_a_log_made_anew_is_read_from_its_start(tmp_path: Path) -> None:
    """An instance deleted and created again between two polls: its new log (another file at
    the same path, already as long as the old one) is read from its first record."""
    instances = tmp_path / "instances"
    got: list[int] = []
    tail = LogTail(
        instances, lambda raw: got.append(common_pb2.ExecutionEvent.FromString(raw).sequence)
    )
    _log(instances, "a", _batch("a", 1))
    assert tail.poll() == 2
    path = instances / "owner" / "a" / "executions.log"
    path.unlink()
    _log(instances, "a", _batch("a", 7))
    _log(instances, "a", _batch("a", 9))
    assert tail.poll() == 4
    assert got == [1, 2, 7, 8, 9, 10]


def test_the_tail_waits_while_the_writer_is_behind(tmp_path: Path) -> None:
    instances = tmp_path / "instances"
    got: list[bytes] = []
    backlog = [10]
    tail = LogTail(instances, got.append, backlog=lambda: backlog[0], max_backlog=5)
    _log(instances, "a", _batch("a", 1))
    assert tail.poll() == 0
    assert tail.behind
    backlog[0] = 0
    tail.drain(lambda: None)
    assert len(got) == 2
    assert not tail.behind


def test_an_event_the_writer_refuses_is_read_again(tmp_path: Path) -> None:
    instances = tmp_path / "instances"
    got: list[int] = []
    open_ = [True]

    def record(raw: bytes) -> bool:
        if not open_[0]:
            return False
        got.append(common_pb2.ExecutionEvent.FromString(raw).sequence)
        open_[0] = len(got) < 3  # refuses everything after the third event
        return True

    tail = LogTail(instances, record)
    _log(instances, "a", _batch("a", 1))
    _log(instances, "a", _batch("a", 3))
    assert tail.poll() == 3
    assert tail.behind
    assert not tail.drain(lambda: False)  # a writer that cannot write stops the drain
    open_[0] = True
    assert tail.drain(lambda: True)
    assert got == [1, 2, 3, 4]


def test_a_flush_on_a_full_disk_fails_and_the_history_catches_up_after(
    tmp_path: Path, small_disk: Path
) -> None:
    db, instances = small_disk / "h.duckdb", tmp_path / "instances"

    async def scenario() -> None:
        history = HistoryProcess(db, flush_interval_ms=20, instances_dir=instances)
        await history.start()
        _log(instances, "a", _batch("a", 1))
        await history.flush()
        filler = fill(small_disk)
        try:
            for first in range(3, 203, 2):  # more than the page the log's last write left
                _log(instances, "a", _batch("a", first))
            with pytest.raises(HistoryUnavailable, match="cannot be written"):
                await asyncio.wait_for(history.flush(), 30)
        finally:
            filler.unlink()
        _log(instances, "a", _batch("a", 203))
        deadline = asyncio.get_running_loop().time() + 60
        while True:
            try:
                await asyncio.wait_for(history.flush(), 30)
                break
            except HistoryUnavailable:
                assert asyncio.get_running_loop().time() < deadline, "never caught up"
                await asyncio.sleep(0.05)
        await history.close()

    asyncio.run(scenario())
    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute("select sequence from executions order by 1").fetchall()
        assert [q for (q,) in rows] == list(range(1, 205))
        assert con.execute("select count(*) from deals").fetchone() == (102,)


def _audit_record(record_id: int) -> bytes:
    """A packed audit record as the server's auditor sends it (``mt5exec.auth.audit``)."""
    request = order_pb2.CancelOrderRequest(instance_id="a", order_id=record_id)
    method = "mt5exec.v1.OrderService/CancelOrder"
    principal = ("api_key", "k", "trader", "o")
    data = request.SerializeToString()
    return marshal.dumps(
        (audit.VERSION, record_id, "call", method, *principal, "ipv4:x", "OK", "", data, 0, 0)
    )


def test_frames_apart_together_and_split_across_reads_are_each_handled_once_in_order(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """The child reads what is waiting at once and handles audit records and account events
    in bunches: a frame cut between two reads, frames in one write, frames apart, all are
    written and logged once, in the order sent, each log line whole; a flush waits for
    those still put off (their rows are in the file once it is answered: the child killed
    then, none is written later)."""
    db = tmp_path / "h.duckdb"
    first = 1_767_225_600_000_000_000
    ids = [first + n for n in range(34)]
    account = stream_pb2.StreamAccountResponse(
        accounts=[common_pb2.Account(instance_id="a", balance=100.0, equity=100.0)]
    ).SerializeToString()

    def frame(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">cI", kind, len(payload)) + payload

    async def scenario() -> None:
        history = HistoryProcess(db, flush_interval_ms=50)
        await history.start()
        assert history._proc is not None and history._proc.stdin is not None
        stdin = history._proc.stdin
        for record_id in ids[:10]:  # apart
            stdin.write(frame(b"A", _audit_record(record_id)))
            await stdin.drain()
            await asyncio.sleep(0.02)
        stdin.write(b"".join(frame(b"A", _audit_record(i)) for i in ids[10:30]))  # together
        stdin.write(frame(b"C", account))
        for record_id in ids[30:]:  # each cut in two writes, read apart
            whole = frame(b"A", _audit_record(record_id))
            stdin.write(whole[:7])
            await stdin.drain()
            await asyncio.sleep(0.3)  # longer than the child puts records off
            stdin.write(whole[7:])
        await asyncio.wait_for(history.flush(), 60)
        proc = history._proc
        assert proc is not None
        proc.kill()  # after the flush's answer, nothing more reaches the file
        await proc.wait()
        await history.close()

    asyncio.run(scenario())
    logged = [
        json.loads(line.split(" mt5exec.audit: ", 1)[1])
        for line in capfd.readouterr().err.splitlines()
        if " mt5exec.audit: " in line
    ]
    assert [entry["id"] for entry in logged] == ids
    assert [entry["request"]["order_id"] for entry in logged] == ids
    con = duckdb.connect(str(db), read_only=True)
    try:
        assert con.execute("select id from audit order by id").fetchall() == [(i,) for i in ids]
        assert con.execute("select balance, reason from account_snapshots").fetchall() == [
            (100.0, "change")
        ]
    finally:
        con.close()


def test_a_sigterm_logs_and_writes_what_the_child_was_sent(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """A supervisor's SIGTERM (the server still running) ends the child as the end of its
    stdin does: every audit record it was sent is in the log and in the table, the account
    event in its table, and it exits 0."""
    db = tmp_path / "h.duckdb"
    ids = [1_767_225_600_000_000_000 + n for n in range(20)]
    account = stream_pb2.StreamAccountResponse(
        accounts=[common_pb2.Account(instance_id="a", balance=100.0, equity=100.0)]
    ).SerializeToString()

    def frame(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">cI", kind, len(payload)) + payload

    async def scenario() -> int | None:
        history = HistoryProcess(db, flush_interval_ms=50)
        await history.start()
        proc = history._proc
        assert proc is not None and proc.stdin is not None
        for record_id in ids[:10]:
            proc.stdin.write(frame(b"A", _audit_record(record_id)))
        await proc.stdin.drain()
        proc.stdin.write(b"".join(frame(b"A", _audit_record(i)) for i in ids[10:]))
        proc.stdin.write(frame(b"C", account))
        await proc.stdin.drain()
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), 60)
        await history.close()
        return code

    assert asyncio.run(scenario()) == 0
    logged = [
        json.loads(line.split(" mt5exec.audit: ", 1)[1])["id"]
        for line in capfd.readouterr().err.splitlines()
        if " mt5exec.audit: " in line
    ]
    assert logged == ids
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("select id from audit order by id").fetchall() == [(i,) for i in ids]
        assert con.execute("select count(*) from account_snapshots").fetchone() == (1,)
