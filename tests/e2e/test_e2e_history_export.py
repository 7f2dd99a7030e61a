"""``mt5exec history export`` (a real server, worker and DuckDB; the Parquet read back with
duckdb), and a second server on the same files refused before it opens anything."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import duckdb
import grpc
import pytest

from mt5exec.testing import ServerProcess
from mt5exec.v1 import auth_pb2, common_pb2, instance_pb2, order_pb2
from support import create_sim, error_info, market, wait_until

ENV = {"MT5EXEC_HISTORY_FLUSH_INTERVAL_MS": "50"}


def _mt5exec(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mt5exec", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "MT5EXEC_SERVER_METRICS_LISTEN": "127.0.0.1:0", **(env or {})},
        check=False,
    )


def _rows(
    path: Path, sql: str = "SELECT client_order_id FROM t ORDER BY 1"
) -> list[tuple[object, ...]]:
    with duckdb.connect() as conn:
        conn.execute(f"CREATE VIEW t AS SELECT * FROM read_parquet('{path}')")
        return conn.execute(sql).fetchall()


def test_export_round_trip_while_the_server_runs_and_after(tmp_path: Path) -> None:
    data = tmp_path / "data"
    cids = [f"x-{n}" for n in range(3)]
    with ServerProcess(data, env=ENV) as server:
        create_sim(server, "ex1")
        for cid in cids:
            order = server.orders.PlaceOrder(market("ex1", cid), timeout=30).order
            assert order.status == common_pb2.ORDER_STATUS_FILLED
        request = order_pb2.ListDealsRequest(instance_id="ex1")
        wait_until("3 deals stored", lambda: len(server.orders.ListDeals(request).deals) == 3)
        live = _mt5exec("history", "export", "--data-dir", str(data), "--out", str(tmp_path / "a"))
        assert live.returncode == 0, live.stderr
        assert "orders: 3 rows" in live.stdout
        # The server writes under its export directory only: --out's name there.
        exported = data / "exports" / "a"
        assert f"-> {exported / 'orders.parquet'}" in live.stdout
        assert f"exports under {data / 'exports'}" in live.stderr
        assert not (tmp_path / "a").exists()
        # The export was a call of the server (the database is its history child's).
        audit = server.auth.ListAuditRecords(auth_pb2.ListAuditRecordsRequest(), timeout=30)
        exports = [r for r in audit.records if r.method.endswith("/ExportHistory")]
        assert [r.code for r in exports] == ["OK"]
    assert _rows(exported / "orders.parquet") == [(c,) for c in cids]
    assert _rows(exported / "deals.parquet") == [(c,) for c in cids]
    assert _rows(exported / "instances.parquet", "SELECT instance_id FROM t") == [("ex1",)]
    # Stopped: from the file, with a time range.
    stopped = _mt5exec("history", "export", "--data-dir", str(data), "--out", str(tmp_path / "b"))
    assert stopped.returncode == 0, stopped.stderr
    assert _rows(tmp_path / "b" / "orders.parquet") == [(c,) for c in cids]
    future = _mt5exec(
        "history", "export", "--data-dir", str(data), "--out", str(tmp_path / "c"),
        "--since", "2200-01-01",
    )  # fmt: skip
    assert future.returncode == 0, future.stderr
    assert _rows(tmp_path / "c" / "orders.parquet") == []
    assert _rows(tmp_path / "c" / "instances.parquet", "SELECT instance_id FROM t") == [("ex1",)]


def test_a_second_server_on_the_same_files_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with ServerProcess(data) as server:
        second = _mt5exec("serve", "--listen", "127.0.0.1:0", "--data-dir", str(data))
        assert second.returncode == 2
        assert f"another mt5exec server (pid {server.pid}) is using {data}" in second.stderr
        # Refused before it opened anything: no vault, no engine, no history.
        assert "credential vault" not in second.stderr
        # Another data directory, the same history database: refused too.
        db = data / "history.duckdb"
        other = _mt5exec(
            "serve", "--listen", "127.0.0.1:0", "--data-dir", str(tmp_path / "other"),
            env={"MT5EXEC_HISTORY_PATH": str(db)},
        )  # fmt: skip
        assert other.returncode == 2
        assert f"is using {db}" in other.stderr
        # The first one serves on.
        assert server.instances.ListInstances(instance_pb2.ListInstancesRequest(), timeout=10)
    # Once it is gone, a server starts there again.
    with ServerProcess(data) as again:
        again.instances.ListInstances(instance_pb2.ListInstancesRequest(), timeout=10)


def _refused(server: ServerProcess, out_dir: str) -> tuple[grpc.StatusCode, str, str]:
    request = order_pb2.ExportHistoryRequest(out_dir=out_dir)
    with pytest.raises(grpc.RpcError) as caught:
        server.orders.ExportHistory(request, timeout=60)
    info = error_info(caught.value)
    return caught.value.code(), info.reason, info.metadata["field"]


def test_an_export_writes_inside_the_export_directory_only(tmp_path: Path) -> None:
    data = tmp_path / "data"
    exports = tmp_path / "exports"
    env = {**ENV, "MT5EXEC_HISTORY_EXPORT_DIR": str(exports)}
    with ServerProcess(data, env=env) as server:
        outside = (grpc.StatusCode.INVALID_ARGUMENT, "EXPORT_DIR_OUTSIDE", "out_dir")
        exports.mkdir()
        (exports / "to-data").symlink_to(data)
        for out_dir in (str(data), str(tmp_path / "elsewhere"), "../data", "to-data", "/"):
            assert _refused(server, out_dir) == outside, out_dir
        invalid = (grpc.StatusCode.INVALID_ARGUMENT, "PATH_INVALID", "out_dir")
        assert _refused(server, "a\0b") == invalid
        assert _refused(server, str(exports / "x\0")) == invalid
        # Nothing was written outside.
        assert list(data.rglob("*.parquet")) == []
        assert not (tmp_path / "elsewhere").exists()
        # Relative to it, or absolute inside it.
        for out_dir, where in (("one", exports / "one"), (str(exports / "two"), exports / "two")):
            request = order_pb2.ExportHistoryRequest(out_dir=out_dir)
            answer = server.orders.ExportHistory(request, timeout=60)
            assert {Path(t.path).parent for t in answer.tables} == {where}, out_dir
            assert (where / "instances.parquet").exists()
