"""``mt5exec.files.atomic_write`` and the files written with it: whole, private and durable
(the file and the rename into its directory synced) once the write returns.

That a write is synced cannot be seen without a power cut, so ``os.fsync`` is wrapped to
record what it was called on: the inode and whether it is a directory."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tests.tmpfs import tmpfs

from mt5exec import files, registry
from mt5exec.auth import keys as api_keys
from mt5exec.registry import InstanceRecord
from mt5exec.services.risk_control import KillScopes
from mt5exec.v1 import common_pb2
from mt5exec.vault import keys as vault_keys
from mt5exec.workers import mt5_deals


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


Synced = list[tuple[str, int]]  # ("file" | "dir", inode), in order; "replace" for a rename


@pytest.fixture
def synced(monkeypatch: pytest.MonkeyPatch) -> Synced:
    """What ``os.fsync`` and ``os.replace`` were called on, in order."""
    calls: Synced = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        st = os.fstat(fd)
        calls.append(("dir" if stat.S_ISDIR(st.st_mode) else "file", st.st_ino))
        real_fsync(fd)

    def replace(src: str | Path, dst: str | Path) -> None:
        calls.append(("replace", os.stat(src).st_ino))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    return calls


def assert_durable(path: Path, calls: Synced) -> None:
    """``path`` was synced, then renamed into place, then its directory synced."""
    inode = path.stat().st_ino
    directory = path.parent.stat().st_ino
    assert ("file", inode) in calls, f"{path} not synced: {calls}"
    assert ("replace", inode) in calls, f"{path} not renamed into place: {calls}"
    assert ("dir", directory) in calls, f"{path.parent} not synced: {calls}"
    assert calls.index(("file", inode)) < calls.index(("replace", inode))
    assert calls.index(("replace", inode)) < len(calls) - 1 - calls[::-1].index(("dir", directory))


def test_atomic_write_replaces_the_file_whole_and_private_whatever_the_umask(
    tmp_path: Path, umask_022: None, synced: Synced
) -> None:
    path = tmp_path / "state.json"
    path.write_text("old")
    path.chmod(0o644)
    files.atomic_write(path, b'{"new": true}')
    assert path.read_bytes() == b'{"new": true}'
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]
    assert_durable(path, synced)


def test_atomic_write_on_a_full_disk_keeps_the_old_file_and_leaves_no_temporary(
    tmp_path: Path,
) -> None:
    with tmpfs(tmp_path / "disk", "1m") as disk:
        path = disk.path / "state.json"
        files.atomic_write(path, b"old")
        disk.fill()
        with pytest.raises(OSError, match="No space left") as caught:
            files.atomic_write(path, b"x" * 65536)
        assert caught.value.errno == errno.ENOSPC
        assert path.read_bytes() == b"old"
        assert sorted(p.name for p in disk.path.iterdir()) == ["filler", "state.json"]


def _record(directory: Path) -> Path:
    record = InstanceRecord("a-1", "default", common_pb2.BACKEND_SIM, common_pb2.InstanceConfig())
    registry.write_record(directory, record)
    return directory / registry.RECORD_NAME


def _sequence_floor(directory: Path) -> Path:
    registry.write_sequence_floor(directory, "a-1", 42)
    return directory / registry.SEQUENCES_NAME


def _kill_switch(directory: Path) -> Path:
    scopes = KillScopes(directory / "kill_switch.json", everything=True)
    scopes.take()()
    return scopes.path


def _api_keys(directory: Path) -> Path:
    store = api_keys.KeyStore(directory)
    store.open()
    return store.path


def _vault_key(directory: Path) -> Path:
    key_files = vault_keys.KeyFiles(directory / "vault.key")
    key_files.create()
    return key_files.path


@pytest.mark.parametrize(
    "write",
    [_record, _sequence_floor, _kill_switch, _api_keys, _vault_key],
    ids=["instance.json", "deleted_sequences.json", "kill_switch.json", "api_keys", "vault.key"],
)
def test_state_files_are_synced_before_and_after_they_are_replaced(
    tmp_path: Path, umask_022: None, synced: Synced, write: Callable[[Path], Path]
) -> None:
    path = write(tmp_path)
    assert_durable(path, synced)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_the_mt5_workers_deal_record_is_replaced_whole_without_a_sync(
    tmp_path: Path, umask_022: None, synced: Synced
) -> None:
    # Written after every answer that carried deals: two fsyncs each would cost the worker
    # milliseconds an order; an older record after a power cut only reports deals again.
    path = tmp_path / mt5_deals.STATE_FILE
    mark = mt5_deals.DealMark(5012345, "Sim-Demo", 100, {7: 150, 8: 160})
    assert mt5_deals.save(path, mark)
    assert [kind for kind, _ in synced] == ["replace"]
    assert mt5_deals.load(path, 5012345, "Sim-Demo") == mark
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
