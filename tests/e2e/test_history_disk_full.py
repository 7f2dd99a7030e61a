"""History loses nothing when its disk fills up: a real server, a real tmpfs, real orders.

The history database alone sits on a small tmpfs the test mounts (the engine's journal, the
execution logs and the simulated broker's files stay on the normal disk, so orders keep
flowing). The tmpfs is filled while orders are placed and freed again; once the server has
stopped, the DuckDB ``deals`` and ``orders`` tables must hold exactly what the broker's ledger
(the simulated broker's journal) and the order answers say.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import duckdb
import grpc
import pytest

from mt5exec.sim.state import read_history
from mt5exec.testing import ServerProcess
from mt5exec.v1 import common_pb2, instance_pb2
from support import BULK_RISK, create_sim, error_info, market, wait_until
from tmpfs import fill, small_disk

__all__ = ["small_disk"]  # the fixture


def history_failures(data: Path) -> int:
    """Lines of the server's log in which the history says that its disk is full."""
    text = (data / "server.log").read_text(errors="replace")
    return sum(
        "history" in line and "No space left on device" in line for line in text.splitlines()
    )


def test_a_full_disk_under_the_history_loses_no_deal_and_no_order(
    tmp_path: Path, small_disk: Path
) -> None:
    data = tmp_path / "data"
    env = {
        "MT5EXEC_HISTORY_PATH": str(small_disk / "history.duckdb"),
        "MT5EXEC_HISTORY_FLUSH_INTERVAL_MS": "50",
    }
    placed: dict[str, int] = {}  # client_order_id -> the broker's order ticket
    n = 0

    def place() -> None:
        nonlocal n
        n += 1
        cid = f"o{n}"
        side = common_pb2.SIDE_BUY if n % 2 else common_pb2.SIDE_SELL
        order = server.orders.PlaceOrder(market("full", cid, side=side), timeout=30).order
        assert order.status == common_pb2.ORDER_STATUS_FILLED, order
        placed[cid] = order.order_id

    def failures() -> int:
        return history_failures(data)

    with ServerProcess(data, env=env) as server:
        create_sim(server, "full", risk=BULK_RISK)
        for _ in range(5):
            place()
        filler = fill(small_disk)

        # Orders go on while the history cannot write: it must keep what it has not written,
        # also past its next attempts (the server logs one line per few seconds of failing).
        def failing_twice() -> bool:
            place()
            return failures() >= 2

        wait_until("the history failed to write twice", failing_twice)
        for _ in range(5):
            place()
        filler.unlink()
        for _ in range(5):
            place()
    # The broker's ledger: its journal, read once its worker has stopped.
    state = next((data / "instances").glob("*/full/sim_state"))
    orders, deals = read_history(state)
    assert len(deals) == len(placed) > 15
    with duckdb.connect(str(small_disk / "history.duckdb"), read_only=True) as db:
        stored_deals = db.execute(
            "SELECT deal_id, order_id, volume, price FROM deals WHERE instance_id = 'full'"
        ).fetchall()
        stored_orders = db.execute(
            "SELECT client_order_id, order_id, status FROM orders WHERE instance_id = 'full'"
        ).fetchall()
    assert sorted(stored_deals) == sorted((d.ticket, d.order, d.volume, d.price) for d in deals)
    assert sorted(stored_orders) == sorted((cid, oid, "FILLED") for cid, oid in placed.items())
    assert {o.ticket for o in orders} == set(placed.values())


def test_delete_instance_waits_until_the_history_has_written_its_log(
    tmp_path: Path, small_disk: Path
) -> None:
    """DeleteInstance removes the instance's execution log, which the history reads: while the
    history cannot write, the delete is refused (the instance stays, stopped, with its log),
    also across a restart that loses what the history held in memory; once the disk is back,
    the delete succeeds and the database holds every deal and order of the instance."""
    data = tmp_path / "data"
    env = {
        "MT5EXEC_HISTORY_PATH": str(small_disk / "history.duckdb"),
        "MT5EXEC_HISTORY_FLUSH_INTERVAL_MS": "50",
    }
    placed: dict[str, int] = {}
    get = instance_pb2.GetInstanceRequest(instance_id="gone")
    delete = instance_pb2.DeleteInstanceRequest(instance_id="gone")

    def place() -> None:
        cid = f"o{len(placed) + 1}"
        side = common_pb2.SIDE_BUY if len(placed) % 2 else common_pb2.SIDE_SELL
        order = server.orders.PlaceOrder(market("gone", cid, side=side), timeout=30).order
        assert order.status == common_pb2.ORDER_STATUS_FILLED, order
        placed[cid] = order.order_id

    def failing() -> bool:
        place()
        return history_failures(data) >= 1

    with ServerProcess(data, env=env) as server:
        create_sim(server, "gone", risk=BULK_RISK)
        for _ in range(5):
            place()
        filler = fill(small_disk)
        wait_until("the history failed to write", failing)
        for _ in range(5):
            place()
        fill(small_disk)  # anything the history freed meanwhile is taken again
        with pytest.raises(grpc.RpcError) as refused:
            server.instances.DeleteInstance(delete, timeout=60)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE, refused.value
        assert error_info(refused.value).reason == "HISTORY_NOT_WRITTEN"
        instance = server.instances.GetInstance(get, timeout=10).instance
        assert instance.state == common_pb2.INSTANCE_STATE_STOPPED
    # Stopped while the disk is still full: the history gives up what it held in memory.
    orders, deals = read_history(next((data / "instances").glob("*/gone/sim_state")))
    assert len(deals) == len(placed) > 10
    filler.unlink()
    with ServerProcess(data, env=env) as server:
        instance = server.instances.GetInstance(get, timeout=10).instance
        assert instance.state == common_pb2.INSTANCE_STATE_STOPPED
        server.instances.DeleteInstance(delete, timeout=60)
        with pytest.raises(grpc.RpcError) as gone:
            server.instances.GetInstance(get, timeout=10)
        assert gone.value.code() == grpc.StatusCode.NOT_FOUND
        assert not list((data / "instances").glob("*/gone"))
        # The id is free again.
        create_sim(server, "gone", risk=BULK_RISK)
    with duckdb.connect(str(small_disk / "history.duckdb"), read_only=True) as db:
        stored_deals = db.execute(
            "SELECT deal_id, order_id, volume, price FROM deals WHERE instance_id = 'gone'"
        ).fetchall()
        stored_orders = db.execute(
            "SELECT client_order_id, order_id, status FROM orders WHERE instance_id = 'gone'"
        ).fetchall()
    assert sorted(stored_deals) == sorted((d.ticket, d.order, d.volume, d.price) for d in deals)
    assert sorted(stored_orders) == sorted((cid, oid, "FILLED") for cid, oid in placed.items())
    assert {o.ticket for o in orders} == set(placed.values())


def logged_sequences(directory: Path) -> list[int]:
    """The sequences of every event in an instance's execution logs (closed segments and the
    active log), read in the engine's record format."""
    sequences = []
    for path in sorted(directory.glob("executions*.log")):
        data, at = path.read_bytes(), 0
        while at + 8 <= len(data):
            length, crc = struct.unpack_from(">II", data, at)
            payload = data[at + 8 : at + 8 + length]
            assert len(payload) == length and zlib.crc32(payload) == crc, path
            sequences.append(common_pb2.ExecutionEvent.FromString(payload).sequence)
            at += 8 + length
    return sequences


def test_events_of_log_segments_closed_while_the_history_was_behind_reach_it(
    tmp_path: Path, small_disk: Path
) -> None:
    """The engine closes an instance's execution log past a segment's size (64 KB with
    engine.execution_log_max_mb 0.5) and begins a new one. The history, unable to write while
    its disk is full, stops with those events unwritten; started again once there is space,
    it reads them from the closed segments: DuckDB holds every event logged, each once
    (before, it read the active log only, and lost what the segments held)."""
    data = tmp_path / "data"
    env = {
        "MT5EXEC_HISTORY_PATH": str(small_disk / "history.duckdb"),
        "MT5EXEC_HISTORY_FLUSH_INTERVAL_MS": "50",
        "MT5EXEC_ENGINE_EXECUTION_LOG_MAX_MB": "0.5",
    }
    n = 0

    def place() -> None:
        nonlocal n
        n += 1
        side = common_pb2.SIDE_BUY if n % 2 else common_pb2.SIDE_SELL
        order = server.orders.PlaceOrder(market("seg", f"o{n}", side=side), timeout=30).order
        assert order.status == common_pb2.ORDER_STATUS_FILLED, order

    def segments() -> list[Path]:
        return list((data / "instances").glob("*/seg/executions-*.log"))

    with ServerProcess(data, env=env) as server:
        create_sim(server, "seg", risk=BULK_RISK)
        for _ in range(5):
            place()
        filler = fill(small_disk)

        def failing() -> bool:
            place()
            return history_failures(data) >= 1

        wait_until("the history failed to write", failing)

        def two_segments() -> bool:
            place()
            return len(segments()) >= 2

        wait_until("two segments were closed", two_segments, timeout=300)
        fill(small_disk)  # anything the history freed meanwhile is taken again
    # Stopped while the disk is full: the history gave up what it held in memory.
    filler.unlink()
    with ServerProcess(data, env=env):
        pass  # the history reads the logs at its start, and to their end when it stops
    logged = logged_sequences(next((data / "instances").glob("*/seg")))
    assert logged == list(range(1, len(logged) + 1)), "the engine deleted no segment"
    with duckdb.connect(str(small_disk / "history.duckdb"), read_only=True) as db:
        stored = db.execute(
            "SELECT sequence FROM executions WHERE instance_id = 'seg' ORDER BY 1"
        ).fetchall()
    assert [s for (s,) in stored] == logged
