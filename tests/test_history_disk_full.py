"""History loses nothing when its disk fills up: a real server, a real tmpfs, real orders.

The history database alone sits on a small tmpfs the test mounts (the engine's journal, the
execution logs and the simulated broker's files stay on the normal disk, so orders keep
flowing). The tmpfs is filled while orders are placed and freed again; once the server has
stopped, the DuckDB ``deals`` and ``orders`` tables must hold exactly what the broker's ledger
(the simulated broker's journal) and the order answers say.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import duckdb

from mt5exec.sim.state import read_history
from mt5exec.testing import ServerProcess
from mt5exec.v1 import common_pb2
from support import BULK_RISK, create_sim, market
from tmpfs import fill, small_disk

__all__ = ["small_disk"]  # the fixture


def wait_until(what: str, condition: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.05)


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

    log_path = data / "server.log"

    def failures() -> int:
        """Lines of the history telling that its disk is full."""
        text = log_path.read_text(errors="replace")
        return sum(
            "history" in line and "No space left on device" in line for line in text.splitlines()
        )

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
