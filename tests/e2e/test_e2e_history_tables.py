"""The account snapshots and risk events of the history (a real server, worker and DuckDB),
read through ExportHistory while the server runs, and the snapshot rules in the history
child's AccountSnapshots."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import duckdb

from mt5exec.storage.accounts import AccountSnapshots
from mt5exec.testing import ServerProcess
from mt5exec.v1 import common_pb2, instance_pb2, order_pb2, stream_pb2
from support import BULK_RISK, create_sim, market, wait_until

ENV = {"MT5EXEC_HISTORY_FLUSH_INTERVAL_MS": "50"}


def _table(server: ServerProcess, out: Path, table: str, sql: str) -> list[tuple[Any, ...]]:
    server.orders.ExportHistory(order_pb2.ExportHistoryRequest(out_dir=str(out)), timeout=60)
    with duckdb.connect() as conn:
        conn.execute(f"CREATE VIEW t AS SELECT * FROM read_parquet('{out / f'{table}.parquet'}')")
        return conn.execute(sql).fetchall()


def test_account_snapshots_and_risk_events_are_kept(tmp_path: Path) -> None:
    # The exports go under tmp_path (ExportHistory writes inside history.export_dir only).
    env = {**ENV, "MT5EXEC_HISTORY_EXPORT_DIR": str(tmp_path)}
    with ServerProcess(tmp_path / "data", env=env) as server:
        create_sim(server, "t1", risk=BULK_RISK)
        placed = server.orders.PlaceOrder(market("t1", "buy-1", volume=0.1), timeout=30).order
        assert placed.status == common_pb2.ORDER_STATUS_FILLED
        # A snapshot with the position's margin (the account changed when it opened).
        wait_until(
            "a snapshot with margin",
            lambda: (
                _table(
                    server,
                    tmp_path / "a",
                    "account_snapshots",
                    "SELECT count(*) FROM t WHERE instance_id = 't1' AND margin > 0",
                )
                != [(0,)]
            ),
        )
        balance, equity = _table(
            server,
            tmp_path / "b",
            "account_snapshots",
            "SELECT balance, equity FROM t WHERE instance_id = 't1' ORDER BY time DESC LIMIT 1",
        )[0]
        assert balance > 0 and equity > 0
        instances = server.instances
        instances.SetTradingState(
            instance_pb2.SetTradingStateRequest(
                instance_id="t1",
                trading_state=common_pb2.TRADING_STATE_REDUCE_ONLY,
                reason="desk says so",
            ),
            timeout=30,
        )
        scope = instance_pb2.KillSwitchScope(instance_id="t1")
        instances.EngageKillSwitch(
            instance_pb2.EngageKillSwitchRequest(scope=scope, reason="drill"), timeout=60
        )
        instances.ReleaseKillSwitch(instance_pb2.ReleaseKillSwitchRequest(scope=scope), timeout=60)
        config = common_pb2.InstanceConfig(risk=common_pb2.RiskLimits(max_order_volume=2.0))
        instances.UpdateInstanceConfig(
            instance_pb2.UpdateInstanceConfigRequest(
                instance_id="t1",
                config=config,
                update_mask={"paths": ["risk.max_order_volume"]},
            ),
            timeout=30,
        )
        wanted = [
            ("trading_state", "desk says so"),
            ("kill_switch_engaged", "drill"),
            ("kill_switch_released", None),
            ("risk_limits", None),
        ]
        query = (
            "SELECT event, reason, principal_kind, role, instance_id, detail FROM t ORDER BY time"
        )

        def events() -> list[tuple[Any, ...]]:
            return _table(server, tmp_path / "c", "risk_events", query)

        wait_until("four risk events", lambda: len(events()) == 4)
        got = events()
        assert [(e[0], e[1]) for e in got] == wanted
        # Who: the admin's API key (the server's admin.key).
        assert {(e[2], e[3], e[4]) for e in got} == {("api_key", "admin", "t1")}
        assert '"REDUCE_ONLY"' in got[0][5] or "TRADING_STATE_REDUCE_ONLY" in got[0][5]
        assert "risk.max_order_volume" in got[3][5]


def _accounts(*balances_equities_margins: tuple[float, float, float]) -> bytes:
    return stream_pb2.StreamAccountResponse(
        accounts=[
            common_pb2.Account(instance_id="i1", balance=b, equity=e, margin=m)
            for b, e, m in balances_equities_margins
        ]
    ).SerializeToString()


def test_snapshots_at_each_change_and_every_interval() -> None:
    rows: list[tuple[Any, ...]] = []
    snapshots = AccountSnapshots(lambda table, row: rows.append(row) is None, interval_s=1.0)
    snapshots.add(_accounts((100, 100, 0)))
    snapshots.add(_accounts((100, 100, 0)))  # unchanged: no row
    assert [r[-1] for r in rows] == ["change"]
    snapshots.add(_accounts((100, 100, 5)))  # the margin moved: at once
    assert [(r[2], r[4], r[-1]) for r in rows] == [(100, 0, "change"), (100, 5, "change")]
    # Nothing new: a row each interval while events come (they keep coming while the test
    # waits: an instance whose events stopped is forgotten, however late the timer is).
    stop = threading.Event()
    timer = threading.Thread(target=snapshots.run_timer, args=(stop,))
    timer.start()

    def interval_row() -> bool:
        snapshots.add(_accounts((100, 100, 5)))  # unchanged: no "change" row
        return rows[-1][-1] == "interval"

    try:
        wait_until("an interval row", interval_row, timeout=30)
    finally:
        stop.set()
        timer.join()
