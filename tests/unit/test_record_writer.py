"""registry.RecordWriter: the writes of an instance's record land in the order their
snapshots were taken, whichever thread writes them, and never bring a deleted one back;
registry.in_thread: a write in a thread is waited for also when its caller is cancelled."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

import pytest
from tests.support import wait_until

from mt5exec import registry
from mt5exec.registry import InstanceRecord, RecordWriter
from mt5exec.v1 import common_pb2


def record(kill_switch: bool) -> InstanceRecord:
    return InstanceRecord(
        "r1",
        "default",
        common_pb2.BACKEND_SIM,
        common_pb2.InstanceConfig(),
        kill_switch=kill_switch,
    )


def on_disk(directory: Path) -> bool:
    data = json.loads((directory / registry.RECORD_NAME).read_text())
    return bool(data["kill_switch"])


def test_an_older_snapshot_written_after_a_newer_one_is_skipped(tmp_path: Path) -> None:
    writer = RecordWriter()
    older = writer.snapshot(tmp_path, record(kill_switch=False))
    newer = writer.snapshot(tmp_path, record(kill_switch=True))
    assert writer.write(newer)
    assert not writer.write(older)
    assert on_disk(tmp_path) is True
    assert writer.newest(newer) and not writer.newest(older)


def test_a_write_waits_for_the_one_under_way_and_lands_after_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write held (the test hook: a disk that hangs) from a thread; a newer one made
    meanwhile waits for it and is what ends up on disk."""
    gate = tmp_path / "gate"
    gate.touch()
    monkeypatch.setenv(registry.WRITE_GATE_ENV, str(gate))
    writer = RecordWriter()
    directory = tmp_path / "r1"
    older = writer.snapshot(directory, record(kill_switch=False))
    newer = writer.snapshot(directory, record(kill_switch=True))
    results: dict[str, bool] = {}
    first = threading.Thread(target=lambda: results.update(older=writer.write(older)))
    first.start()
    wait_until("the older write is held", (tmp_path / "gate.held").exists)
    second = threading.Thread(target=lambda: results.update(newer=writer.write(newer)))
    second.start()
    gate.unlink()
    first.join(30)
    second.join(30)
    assert results == {"older": True, "newer": True}
    assert on_disk(directory) is True


def test_a_retired_record_is_not_written_again(tmp_path: Path) -> None:
    writer = RecordWriter()
    directory = tmp_path / "r1"
    taken = writer.snapshot(directory, record(kill_switch=False))
    writer.retire(directory)
    assert not writer.write(taken)
    assert not directory.exists()
    writer.write_now(directory, record(kill_switch=True))  # created again under its id
    assert on_disk(directory) is True


def test_retire_does_not_wait_for_a_write_under_way_and_settle_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A deletion on the event loop never waits for a disk: ``retire`` returns while a write
    of the record hangs, and ``settle`` (from a thread, before the directory goes) ends only
    after it."""
    gate = tmp_path / "gate"
    gate.touch()
    monkeypatch.setenv(registry.WRITE_GATE_ENV, str(gate))
    writer = RecordWriter()
    directory = tmp_path / "r1"
    held = writer.snapshot(directory, record(kill_switch=False))
    later = writer.snapshot(directory, record(kill_switch=True))
    writing = threading.Thread(target=writer.write, args=(held,), daemon=True)
    writing.start()
    wait_until("the write is held", (tmp_path / "gate.held").exists)
    retiring = threading.Thread(target=writer.retire, args=(directory,), daemon=True)
    retiring.start()
    retiring.join(30)
    assert not retiring.is_alive(), "retire waited for the write under way"
    settling = threading.Thread(target=writer.settle, args=(directory,), daemon=True)
    settling.start()
    assert settling.is_alive()  # the held write cannot have ended: its gate is still there
    gate.unlink()
    settling.join(30)
    writing.join(30)
    assert not settling.is_alive() and not writing.is_alive()
    assert not writer.write(later)  # taken before the retirement: moot
    assert on_disk(directory) is False


def test_a_cancelled_caller_of_in_thread_goes_on_only_once_the_write_has_ended() -> None:
    started, release = threading.Event(), threading.Event()
    ended: list[str] = []

    def write() -> None:
        started.set()
        release.wait(30)
        ended.append("write")

    async def main() -> None:
        task = asyncio.ensure_future(registry.in_thread(write))
        await asyncio.to_thread(started.wait, 30)
        task.cancel()
        for _ in range(10):
            await asyncio.sleep(0)
        assert not task.done()  # the write cannot have ended: it waits for ``release``
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await task
        ended.append("caller")

    asyncio.run(main())
    assert ended == ["write", "caller"]
