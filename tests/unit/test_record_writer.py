"""registry.RecordWriter: the writes of an instance's record land in the order their
snapshots were taken, whichever thread writes them, and never bring a deleted one back."""

from __future__ import annotations

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
