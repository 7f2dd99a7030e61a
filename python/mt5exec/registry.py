"""The desired state of every instance, on disk, so that instances survive a server restart.

Each instance directory holds ``instance.json``: who owns it, its backend, the
configuration it was created with, whether the operator wants it running, and
the experts deployed to it. The server writes it on every change (atomically)
and reads them all on start.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import grpc
from google.protobuf import json_format

from mt5exec.engine import RiskDayState
from mt5exec.errors import MT5ExecError
from mt5exec.files import atomic_write
from mt5exec.reasons import Reason
from mt5exec.v1 import common_pb2

log = logging.getLogger("mt5exec.registry")

T = TypeVar("T")

RECORD_NAME = "instance.json"
VERSION = 1


@dataclass
class InstanceRecord:
    instance_id: str
    owner: str
    backend: int
    config: common_pb2.InstanceConfig
    desired_running: bool = True
    created_unix_ns: int = 0
    experts: list[str] = field(default_factory=list)
    # Bumped by every UpdateInstanceConfig (optimistic concurrency).
    config_version: int = 1
    kill_switch: bool = False
    # The risk engine's daily counters.
    risk_day: RiskDayState | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "version": VERSION,
            "instance_id": self.instance_id,
            "owner": self.owner,
            "backend": common_pb2.Backend.Name(self.backend),
            "config": json_format.MessageToDict(self.config, preserving_proto_field_name=True),
            "desired": "running" if self.desired_running else "stopped",
            "created_unix_ns": self.created_unix_ns,
            "experts": self.experts,
            "config_version": self.config_version,
            "kill_switch": self.kill_switch,
            "risk_day": None if self.risk_day is None else _risk_day_json(self.risk_day),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> InstanceRecord:
        if data.get("version") != VERSION:
            raise ValueError(f"version: expected {VERSION}, got {data.get('version')!r}")
        desired = data["desired"]
        if desired not in ("running", "stopped"):
            raise ValueError(f"desired: expected running or stopped, got {desired!r}")
        config = json_format.ParseDict(data["config"], common_pb2.InstanceConfig())
        return cls(
            instance_id=str(data["instance_id"]),
            owner=str(data["owner"]),
            backend=common_pb2.Backend.Value(data["backend"]),
            config=config,
            desired_running=desired == "running",
            created_unix_ns=int(data["created_unix_ns"]),
            experts=[str(e) for e in data.get("experts", [])],
            config_version=int(data.get("config_version", 1)),
            kill_switch=bool(data.get("kill_switch", False)),
            risk_day=_risk_day(data.get("risk_day")),
        )


def _risk_day_json(state: RiskDayState) -> list[int | float]:
    return [state.day, state.trades_today, state.day_start_equity, state.equity_high]


def _risk_day(value: Any) -> RiskDayState | None:
    """The saved daily risk counters, checked against what the engine holds (a day number
    and a trade count in its integer ranges, finite equities): a record out of them is
    refused like any other corrupt one."""
    if value is None:
        return None
    if not isinstance(value, list) or len(value) != 4:
        raise ValueError(
            f"risk_day: expected [day, trades, start equity, high], got {str(value)[:60]}"
        )
    day, trades, start_equity, high = value
    for name, number, bound in (("day", day, 2**63), ("trades", trades, 2**32)):
        if isinstance(number, bool) or not isinstance(number, int) or not 0 <= number < bound:
            raise ValueError(
                f"risk_day: {name}: expected an integer in [0, {bound}), got {str(number)[:40]}"
            )
    equities = []
    for name, number in (("start equity", start_equity), ("high", high)):
        if isinstance(number, bool) or not isinstance(number, int | float):
            raise ValueError(f"risk_day: {name}: expected a number, got {str(number)[:40]}")
        try:
            equity = float(number)
        except OverflowError:
            equity = math.inf
        if not math.isfinite(equity):
            raise ValueError(f"risk_day: {name}: expected a finite number, got {equity}")
        equities.append(equity)
    return RiskDayState(day, trades, equities[0], equities[1])


def write_record(directory: Path, record: InstanceRecord) -> None:
    """Replaces ``<directory>/instance.json`` atomically and durably (outside a server: the
    server writes records through its ``RecordWriter``)."""
    RecordWriter().write_now(directory, record)


# Fault injection for tests (docs/risk.md, "Fault injection for tests"): while the file this
# names exists, every record write waits (a disk that hangs) and touches "<file>.held"; when
# the file names an instance id, only the writes of that instance's record wait.
WRITE_GATE_ENV = "MT5EXEC_TEST_RECORD_WRITE_GATE"


@dataclass(frozen=True)
class Snapshot:
    """A record as it was when taken (on the event loop), numbered in the order taken."""

    directory: Path
    data: bytes
    number: int


@dataclass
class _RecordFile:
    lock: threading.Lock = field(default_factory=threading.Lock)
    written: int = 0  # the number of the newest snapshot on disk
    retired: int = 0  # snapshots up to this one are moot (their instance was deleted)


class RecordWriter:
    """Every write of the instances' records, in one place so that they land in order: a
    snapshot is numbered when taken (on the event loop), the writes of one record run one at
    a time (in threads: ``in_thread``), and a snapshot older than the one on disk is not
    written. So the daily counters and the control-plane changes (a kill switch, a trading
    state) are written from threads, and an older copy never overwrites the newer record."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._taken = 0
        self._files: dict[Path, _RecordFile] = {}
        gate = os.environ.get(WRITE_GATE_ENV)
        self._gate = Path(gate) if gate else None

    def snapshot(self, directory: Path, record: InstanceRecord) -> Snapshot:
        data = json.dumps(record.to_json(), indent=2).encode()
        with self._lock:
            self._taken += 1
            return Snapshot(directory, data, self._taken)

    def _file(self, directory: Path) -> _RecordFile:
        with self._lock:
            return self._files.setdefault(directory, _RecordFile())

    def write(self, snapshot: Snapshot) -> bool:
        """Writes ``snapshot`` unless a newer one of its record is on disk already (False
        then); raises OSError. Any thread; waits for a write of the same record under way."""
        file = self._file(snapshot.directory)
        with file.lock:
            if snapshot.number <= max(file.written, file.retired):
                return False
            self._wait_gate(snapshot.directory.name)
            snapshot.directory.mkdir(parents=True, exist_ok=True)
            atomic_write(snapshot.directory / RECORD_NAME, snapshot.data)
            file.written = snapshot.number
            return True

    def newest(self, snapshot: Snapshot) -> bool:
        """Whether ``snapshot`` is what is on disk of its record (nothing written since)."""
        return self._file(snapshot.directory).written == snapshot.number

    def write_now(self, directory: Path, record: InstanceRecord) -> None:
        """Writes ``record`` as it is (raises OSError)."""
        self.write(self.snapshot(directory, record))

    def retire(self, directory: Path) -> None:
        """The record's instance is deleted: every snapshot of it taken so far is moot (its
        directory is not made again). Does not wait: ``settle`` waits for a write under way."""
        with self._lock:
            self._files.setdefault(directory, _RecordFile()).retired = self._taken

    def settle(self, directory: Path) -> None:
        """Waits until no write of the record is under way (blocks: call it from a thread)."""
        with self._file(directory).lock:
            pass

    def _wait_gate(self, instance_id: str) -> None:
        if self._gate is None:
            return
        try:
            only = self._gate.read_text().strip()
        except OSError:
            return  # no gate
        if only and only != instance_id:
            return
        held = self._gate.with_name(self._gate.name + ".held")
        while self._gate.exists():
            held.touch()
            time.sleep(0.01)


async def in_thread(write: Callable[[], T]) -> T:
    """Runs the blocking ``write`` (a record's, with its fsyncs) in a thread, off the event
    loop. When the caller is cancelled meanwhile, it still waits for the write to end before
    the cancellation goes on: what follows a write never runs while it is under way."""
    future = asyncio.ensure_future(asyncio.to_thread(write))
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        await asyncio.wait([future])
        raise


def read_records(instances_dir: Path) -> list[tuple[Path, InstanceRecord]]:
    """Every readable record under ``<instances_dir>/<owner>/<instance>/``; unreadable ones
    are logged and skipped (their directories are left alone for an operator)."""
    found: list[tuple[Path, InstanceRecord]] = []
    if not instances_dir.is_dir():
        return found
    for path in sorted(instances_dir.glob(f"*/*/{RECORD_NAME}")):
        try:
            record = InstanceRecord.from_json(json.loads(path.read_text()))
        except (OSError, ValueError, KeyError, TypeError, json_format.ParseError) as e:
            log.error("skipping %s: %s", path, e)
            continue
        directory = path.parent
        if (directory.parent.name, directory.name) != (record.owner, record.instance_id):
            log.error("skipping %s: it names %s/%s", path, record.owner, record.instance_id)
            continue
        found.append((directory, record))
    return found


SEQUENCES_NAME = "deleted_sequences.json"


def read_sequence_floors(instances_dir: Path) -> dict[str, int]:
    """The last execution sequence of every deleted instance, by id: an instance created again
    under that id numbers its events after it, so that clients and the history (which key
    events by instance and sequence) never see a number twice."""
    path = instances_dir / SEQUENCES_NAME
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        log.error("cannot read %s: %s", path, e)
        return {}
    if not isinstance(data, dict):
        log.error("cannot read %s: not an object", path)
        return {}
    return {str(k): int(v) for k, v in data.items() if isinstance(v, int)}


def write_sequence_floor(instances_dir: Path, instance_id: str, sequence: int) -> None:
    """Remembers the last sequence of an instance being deleted (atomic, durable replace)."""
    floors = read_sequence_floors(instances_dir)
    floors[instance_id] = max(sequence, floors.get(instance_id, 0))
    instances_dir.mkdir(parents=True, exist_ok=True)
    data = json.dumps(floors, indent=2, sort_keys=True).encode()
    atomic_write(instances_dir / SEQUENCES_NAME, data)


def unsaved(
    what: str,
    file: str,
    error: OSError,
    in_force: str = "",
    not_applied: str = "",
    changed: str = "",
) -> MT5ExecError:
    """UNAVAILABLE (``STATE_NOT_PERSISTED``): ``file`` could not be written to save ``what``.
    ``in_force``: the restriction that holds all the same (its saving is retried); empty when
    nothing changed. ``not_applied``: what of the change waits for a save (it loosens).
    ``changed``: what, restricting nothing, was changed all the same (else nothing was)."""
    cause = error.strerror or type(error).__name__
    if in_force:
        message = (
            f"in force: {in_force}; not saved: cannot write {file} ({cause}); saving is retried "
            "until it succeeds (a server restart before then loses it)"
        )
        if not_applied:
            message += f"; not applied, as it loosens and needs the save: {not_applied}"
    else:
        message = f"{changed or 'nothing changed'}: cannot write {file} ({cause}) to save {what}"
    metadata = {
        "file": file,
        "errno": errno.errorcode.get(error.errno or 0, ""),
        "in_force": "true" if in_force else "false",
    }
    return MT5ExecError(
        grpc.StatusCode.UNAVAILABLE, Reason.STATE_NOT_PERSISTED, message, metadata=metadata
    )


# A save of state in force: called on the event loop, it takes what to write (a snapshot of
# the state as it is then) and answers the blocking write of it, which may run in a thread.
Take = Callable[[], Callable[[], object]]


@dataclass
class _Pending:
    take: Take
    instance_ids: list[str]


class PendingSaves:
    """Saves that failed (disk full, read-only, ...) of state already in force: retried in
    the background with backoff until they succeed, each write in a thread, under ``lock``
    (the control-plane changes' lock: a retry takes the state as it is, never between a
    change's write and its making). A later successful save of the same key (by anyone)
    makes one moot. ``saved(key, instance_ids)`` is called when one lands."""

    def __init__(
        self,
        saved: Callable[[str, list[str]], None],
        lock: asyncio.Lock | None = None,
        initial_s: float = 0.1,
        max_s: float = 5.0,
    ) -> None:
        self._saved = saved
        self._lock = lock or asyncio.Lock()
        self._initial_s = initial_s
        self._max_s = max_s
        self._pending: dict[str, _Pending] = {}
        self._task: asyncio.Task[None] | None = None

    def __contains__(self, key: str) -> bool:
        return key in self._pending

    def add(self, key: str, take: Take, instance_ids: Iterable[str]) -> None:
        """The save ``take`` makes failed: retry it (the latest one per key) until it
        succeeds."""
        self._pending[key] = _Pending(take, list(instance_ids))
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._retry())

    def done(self, key: str) -> None:
        """``key`` was saved: nothing left to retry for it."""
        pending = self._pending.pop(key, None)
        if pending is not None:
            log.warning("%s saved (it had failed before)", key)
            self._saved(key, pending.instance_ids)

    def unsaved(self) -> list[tuple[str, list[str]]]:
        """The keys not saved yet, each with its instances."""
        return [(key, list(p.instance_ids)) for key, p in self._pending.items()]

    def retry_once(self) -> None:
        """Each save once more, written here (blocking: for the server's stop)."""
        for key, pending in list(self._pending.items()):
            try:
                pending.take()()
            except OSError as e:
                log.debug("%s still not saved: %s", key, e)
                continue
            if self._pending.get(key) is pending:
                self.done(key)

    async def _retry_once_off_loop(self) -> None:
        for key, pending in list(self._pending.items()):
            async with self._lock:
                if self._pending.get(key) is not pending:
                    continue  # saved meanwhile, or failed again with newer state
                try:
                    await in_thread(pending.take())
                except OSError as e:
                    log.debug("%s still not saved: %s", key, e)
                    continue
                if self._pending.get(key) is pending:
                    self.done(key)

    async def _retry(self) -> None:
        delay = self._initial_s
        while self._pending:
            await asyncio.sleep(delay)
            await self._retry_once_off_loop()
            delay = min(delay * 2, self._max_s)
