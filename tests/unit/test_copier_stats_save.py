"""copy_stats.json at the server's stop (issue #20): the periodic save cancelled while its
write is under way must not land after the last one. A real engine (no workers) and the real
file; only the first write is held at a gate, to put the stop in the middle of it."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

import pytest

from mt5exec import _core
from mt5exec.engine import Engine, EngineConfig
from mt5exec.files import atomic_write
from mt5exec.services import copier
from mt5exec.v1 import order_pb2


def _relation(relation_id: str) -> bytes:
    relation = order_pb2.CopyRelation(
        relation_id=relation_id,
        owner="ann",
        master_instance_id="m",
        follower_instance_id="f",
        volume_mode=order_pb2.COPY_VOLUME_MODE_MULTIPLIER,
        multiplier=1.0,
    )
    relation.created_time.seconds = 100
    return relation.SerializeToString()


async def _stopped_in_the_middle_of_a_write(
    tmp: Path, entered: threading.Event, gate: threading.Event, held: threading.Event
) -> dict[str, object]:
    engine = Engine(EngineConfig())
    relations = copier.CopyRelations(engine, tmp, tmp / "instances")
    relations.restore()  # starts the periodic saves
    state = _core.CopyState(owner="ann", relation_id="a", incarnation=100, copies=3)
    engine.add_copy_relation(_relation("a"), False, _core.CopyDefaults(), state)
    # The periodic save's write of relation a waits at the gate.
    await asyncio.to_thread(entered.wait, 60)
    engine.remove_copy_relation("ann", "a", close=False)
    closing = asyncio.create_task(relations.close())
    for _ in range(10):  # the cancel delivered while the write is held
        await asyncio.sleep(0)
    gate.set()
    await closing
    await asyncio.to_thread(held.wait, 60)  # the held write has ended too
    saved: dict[str, object] = json.loads((tmp / copier.STATS_FILE_NAME).read_bytes())
    return saved


def test_the_last_save_at_the_stop_is_the_one_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    entered, gate, held = threading.Event(), threading.Event(), threading.Event()
    first = [True]

    def held_write(path: Path, data: bytes, mode: int = 0o600) -> None:
        if first[0]:
            first[0] = False
            entered.set()
            gate.wait(60)
            atomic_write(path, data, mode)
            held.set()
            return
        atomic_write(path, data, mode)

    monkeypatch.setattr(copier, "atomic_write", held_write)
    monkeypatch.setattr(copier, "STATS_EVERY_S", 0.01)
    saved = asyncio.run(_stopped_in_the_middle_of_a_write(tmp_path, entered, gate, held))
    # Relation a was removed before the stop: the held write (with it) did not land last.
    assert saved["relations"] == [], saved
