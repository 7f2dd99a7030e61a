"""The history child process: real process, real DuckDB file, bytes in, rows out."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import duckdb
import pytest

from mt5exec.storage.history_process import HistoryProcess, HistoryUnavailable, events_of
from mt5exec.v1 import common_pb2, stream_pb2


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
        history = HistoryProcess(db, flush_interval_ms=50)
        await history.start()
        instance = common_pb2.Instance(instance_id="a", owner="o", backend=common_pb2.BACKEND_SIM)
        history.record_instance(instance.SerializeToString())
        history.record_executions(_batch("a", 1))
        history.record_executions(_batch("a", 1))  # a replay changes nothing
        history.record_executions(_batch("a", 3))
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
        for n in range(10):
            history.record_executions(_batch("a", 2 * n + 1))
        await asyncio.sleep(0.05)
        for n in range(10):
            history.record_executions(_batch("a", 100 + 2 * n))
        with pytest.raises(HistoryUnavailable):
            await asyncio.wait_for(history.flush(), 5)
        await history.close()
        return history.dropped

    assert asyncio.run(scenario()) > 0


def test_events_are_sliced_out_of_a_batch_byte_for_byte() -> None:
    batch = stream_pb2.StreamExecutionsResponse()
    for i in range(200):  # lengths across the one- and two-byte varint boundary
        event = batch.events.add(instance_id="i" * i, sequence=i + 1)
        event.order_update.client_order_id = f"c{i}"
    raw = batch.SerializeToString()
    assert events_of(raw, stream_pb2.StreamExecutionsResponse) == [
        e.SerializeToString() for e in batch.events
    ]
    assert events_of(b"", stream_pb2.StreamExecutionsResponse) == []
    with pytest.raises(ValueError, match="truncated"):
        events_of(raw[:-1], stream_pb2.StreamExecutionsResponse)


def test_a_bad_record_is_skipped_and_the_history_goes_on(tmp_path: Path) -> None:
    db = tmp_path / "h.duckdb"

    async def scenario() -> None:
        history = HistoryProcess(db, flush_interval_ms=50)
        await history.start()
        history.record_executions(_batch("a", 1)[:-3])  # truncated
        history.record_order(b"\xff\xff\xff")  # not an Order
        history.record_executions(_batch("a", 3))
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
            await asyncio.wait_for(history.flush(), timeout=5)
        assert history._acks == {}
        history.MAX_BUFFERED = HistoryProcess.MAX_BUFFERED
        await history.close()

    asyncio.run(scenario())
