"""The history's reader of the execution logs (``mt5exec.storage.log_tail``) across the
engine's log segments: real files, written and rotated as the engine does (records: a 4-byte
big-endian length, the CRC-32 of the payload, an encoded ``ExecutionEvent``; past a segment's
size ``executions.log`` is renamed ``executions-<first sequence, 20 digits>.log`` and a new one
begun; closed segments are deleted past the limits)."""

from __future__ import annotations

import json
import logging
import shutil
import struct
import zlib
from pathlib import Path

import pytest

from mt5exec.storage import log_tail
from mt5exec.storage.log_tail import LogTail
from mt5exec.v1 import common_pb2


class EngineLog:
    """One instance's execution log, written like the engine's (``rust_core/src/events.rs``)."""

    def __init__(self, instances: Path, instance_id: str = "a", owner: str = "owner") -> None:
        self.instance_id = instance_id
        self.dir = instances / owner / instance_id
        self.dir.mkdir(parents=True, exist_ok=True)
        self.active = self.dir / "executions.log"
        self.active.touch()
        self.last = 0
        self.active_first = 1

    def append(self, count: int) -> None:
        """Logs the next ``count`` events."""
        with open(self.active, "ab") as f:
            for _ in range(count):
                self.last += 1
                event = common_pb2.ExecutionEvent(
                    instance_id=self.instance_id,
                    sequence=self.last,
                    fill=common_pb2.Fill(instance_id=self.instance_id, deal_id=self.last),
                )
                f.write(record(event.SerializeToString()))

    def rotate(self) -> Path:
        """Closes the active log as a segment and begins a new one (as ``EventLog::rotate``)."""
        segment = self.segment(self.active_first)
        self.active.rename(segment)
        self.active.touch()
        self.active_first = self.last + 1
        return segment

    def segment(self, first: int) -> Path:
        return self.dir / f"executions-{first:020}.log"


def record(payload: bytes) -> bytes:
    return struct.pack(">II", len(payload), zlib.crc32(payload)) + payload


class Recorder:
    """The writer's side: keeps the sequences handed to it; refuses while ``open`` is False."""

    def __init__(self, refuse_after: int | None = None) -> None:
        self.got: list[tuple[str, int]] = []
        self.refuse_after = refuse_after

    def __call__(self, raw: bytes) -> bool:
        if self.refuse_after is not None and len(self.got) >= self.refuse_after:
            return False
        event = common_pb2.ExecutionEvent.FromString(raw)
        self.got.append((event.instance_id, event.sequence))
        return True

    def sequences(self, instance_id: str = "a") -> list[int]:
        return [s for i, s in self.got if i == instance_id]


def read_syscalls() -> int:
    """Read calls of this thread so far (Linux: /proc/thread-self/io)."""
    try:
        text = Path("/proc/thread-self/io").read_text()
    except OSError:
        pytest.skip("no /proc/thread-self/io")
    return next(int(line.split()[1]) for line in text.splitlines() if line.startswith("syscr:"))


def test_a_log_closed_while_being_read_is_read_on_from_where_it_stopped(tmp_path: Path) -> None:
    """The engine renames the active log the history is reading to a segment: the history
    reads the rest of that file, then the new log, each event once; also when the log was
    closed again before it was ever read."""
    engine = EngineLog(tmp_path)
    got = Recorder()
    tail = LogTail(tmp_path, got)
    engine.append(5)
    assert tail.poll() == 5
    engine.append(3)  # 6-8: logged, not read yet
    engine.rotate()
    engine.append(2)  # 9-10 in the new log
    assert tail.poll() == 5
    assert got.sequences() == list(range(1, 11))
    # Closed twice between two polls: the middle segment was never seen.
    engine.append(3)
    engine.rotate()
    engine.append(4)
    engine.rotate()
    engine.append(2)
    assert tail.poll() == 9
    assert got.sequences() == list(range(1, 20))
    assert tail.poll() == 0


def test_a_restart_reads_the_closed_segments_beyond_what_the_database_holds(
    tmp_path: Path,
) -> None:
    """A history started again (the database holding up to ``stored``) reads the events of
    the closed segments after it, then the active log's, and nothing it holds."""
    engine = EngineLog(tmp_path)
    for _ in range(3):
        engine.append(10)
        engine.rotate()
    engine.append(5)  # segments 1-10, 11-20, 21-30; active 31-35
    for stored, expected in ((15, range(16, 36)), (20, range(21, 36)), (0, range(1, 36))):
        got = Recorder()
        tail = LogTail(tmp_path, got, stored={"a": stored} if stored else None)
        assert tail.poll() == len(expected)
        assert got.sequences() == list(expected)
        assert tail.poll() == 0


def test_an_event_refused_in_a_closed_segment_is_read_again_before_the_active_log(
    tmp_path: Path,
) -> None:
    """The writer refuses an event of a file that the engine closes before the history reads
    it again: the rest of that segment comes first, then the new log; the poll stops at the
    refusal (no other instance is read meanwhile)."""
    engine = EngineLog(tmp_path, "a")
    other = EngineLog(tmp_path, "b")
    engine.append(10)
    other.append(2)
    got = Recorder(refuse_after=7)
    tail = LogTail(tmp_path, got)
    assert tail.poll() == 7
    assert tail.behind
    assert got.sequences("a") == list(range(1, 8))
    assert got.sequences("b") == []
    engine.rotate()
    engine.append(5)
    assert tail.poll() == 0  # still refused
    got.refuse_after = None
    assert tail.drain(lambda: True)
    assert got.sequences("a") == list(range(1, 16))
    assert got.sequences("b") == [1, 2]


def test_a_segment_longer_than_a_chunk_is_read_to_its_end_before_the_active_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = EngineLog(tmp_path)
    engine.append(1)
    monkeypatch.setattr(log_tail, "CHUNK", 3 * engine.active.stat().st_size)
    engine.append(19)
    engine.rotate()
    engine.append(3)
    got = Recorder()
    tail = LogTail(tmp_path, got)
    polls = 0
    while tail.poll() or tail.behind:
        polls += 1
        assert got.sequences() == list(range(1, len(got.got) + 1))
    assert polls > 5
    assert got.sequences() == list(range(1, 24))


def test_events_deleted_before_the_history_read_them_are_reported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The engine deleted segments the history had not read (past engine.execution_log_max_mb):
    the history reads on from what is there and logs an ERROR naming the instance and the
    sequences it lacks, while running and after a restart."""
    caplog.set_level(logging.WARNING, logger="mt5exec.history")
    engine = EngineLog(tmp_path)
    got = Recorder()
    tail = LogTail(tmp_path, got)
    engine.append(5)
    assert tail.poll() == 5
    engine.append(5)  # 6-10, never read
    first = engine.rotate()
    engine.append(5)
    second = engine.rotate()
    engine.append(5)  # 16-20
    first.unlink()
    second.unlink()
    assert not caplog.records
    assert tail.poll() == 5
    assert got.sequences() == [1, 2, 3, 4, 5, 16, 17, 18, 19, 20]
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1, errors
    assert "instance a: sequences 6-15 are missing" in errors[0]
    # A restart with the database at 20: events 21-25 were in a segment deleted since.
    caplog.clear()
    engine.append(5)
    engine.rotate().unlink()
    engine.append(2)
    got = Recorder()
    assert LogTail(tmp_path, got, stored={"a": 20}).poll() == 2
    assert got.sequences() == [26, 27]
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "instance a: sequences 21-25 are missing" in errors[0], errors


def test_an_instance_created_again_after_its_floor_is_no_gap(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Deleted and created again, an instance numbers its events after the last one of its
    deleted incarnation (``deleted_sequences.json``): the history reads them as they come and
    reports no gap, also when the deleted incarnation's last events never reached its log."""
    caplog.set_level(logging.WARNING, logger="mt5exec.history")
    got = Recorder()
    tail = LogTail(tmp_path, got)
    engine = EngineLog(tmp_path)
    engine.append(4)
    assert tail.poll() == 4
    for floor in (4, 9):  # the second time, 8 and 9 were numbered but never logged
        # DeleteInstance waits until the history has read the log, then removes it.
        shutil.rmtree(engine.dir)
        (tmp_path / "deleted_sequences.json").write_text(json.dumps({"a": floor}))
        assert tail.poll() == 0
        engine = EngineLog(tmp_path)
        engine.last = floor
        engine.append(3)
        assert tail.poll() == 3
    assert got.sequences() == [1, 2, 3, 4, 5, 6, 7, 10, 11, 12]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "8-9 were never logged" in warnings[0], warnings


def test_a_damaged_closed_segment_does_not_stop_the_history(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """What of a closed segment is no whole record never will be: it is skipped and said,
    and the later files are read."""
    caplog.set_level(logging.WARNING, logger="mt5exec.history")
    engine = EngineLog(tmp_path)
    engine.append(3)
    segment = engine.rotate()
    engine.append(2)
    with open(segment, "ab") as f:
        f.write(b"\x00\x00\x00\x10torn")
    got = Recorder()
    assert LogTail(tmp_path, got).poll() == 5
    assert got.sequences() == [1, 2, 3, 4, 5]
    assert any("no whole record" in r.getMessage() for r in caplog.records)


def test_caught_up_polls_read_no_file(tmp_path: Path) -> None:
    """Once the history holds everything, a poll reads no file (neither the closed segments
    nor the active logs), however many segments there are."""
    for instance_id in ("a", "b", "c"):
        engine = EngineLog(tmp_path, instance_id)
        for _ in range(4):
            engine.append(3)
            engine.rotate()
        engine.append(2)
    got = Recorder()
    tail = LogTail(tmp_path, got)
    assert tail.poll() == 3 * 14
    assert tail.poll() == 0
    baseline = read_syscalls()
    baseline = read_syscalls() - baseline  # what reading the counter costs
    before = read_syscalls()
    for _ in range(10):
        assert tail.poll() == 0
    assert read_syscalls() - before == baseline
    # A new event is read, alone.
    engine.append(1)
    assert tail.poll() == 1
    assert got.got[-1] == ("c", 15)


def test_a_log_that_cannot_be_read_fails_the_drain(tmp_path: Path) -> None:
    """A drain (what a flush, and so DeleteInstance, waits for) does not claim to have read a
    log it could not open; the other instances are read all the same."""
    (tmp_path / "owner" / "a" / "executions.log").mkdir(parents=True)  # no file: unreadable
    EngineLog(tmp_path, "b").append(2)
    got = Recorder()
    tail = LogTail(tmp_path, got)
    assert not tail.drain(lambda: True)
    assert got.sequences("b") == [1, 2]
