"""The history's tables as Parquet files (``mt5exec history export``, ``ExportHistory``).

DuckDB's ``COPY (SELECT ...) TO '<file>' (FORMAT parquet)``, one file per table, from a
read-only transaction: in the history child on its read cursor while the server runs (the
writer goes on), or on the database opened read-only when no server holds it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from mt5exec.v1 import order_pb2

if TYPE_CHECKING:
    from mt5exec.config import ServerConfig

Query = Callable[[str, Sequence[object]], list[tuple[Any, ...]]]

# Each table and the column its rows are picked by in a time range (None: all of them).
TABLES: Final[dict[str, str | None]] = {
    "instances": None,
    "orders": "created_at",
    "executions": "time",
    "deals": "time",
    "audit": "time",
    "account_snapshots": "time",
    "risk_events": "time",
    "ticks": "time",
}


def _quote(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def _micros(ts: dt.datetime | None) -> int | None:
    if ts is None:
        return None
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=dt.UTC)
    return int(ts.timestamp() * 1_000_000)


def export(
    query: Query,
    out_dir: Path,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
) -> order_pb2.ExportHistoryResponse:
    """Writes ``<out_dir>/<table>.parquet`` for every table of the database (rows of
    [since, until) by each table's time); what was written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    present = {
        name
        for (name,) in query(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'", []
        )
    }
    response = order_pb2.ExportHistoryResponse()
    low, high = _micros(since), _micros(until)
    for table, column in TABLES.items():
        if table not in present:
            continue
        where = []
        if column is not None and low is not None:
            where.append(f"{column} >= make_timestamp({low:d})")
        if column is not None and high is not None:
            where.append(f"{column} < make_timestamp({high:d})")
        select = f"SELECT * FROM {table}" + (f" WHERE {' AND '.join(where)}" if where else "")
        path = out_dir / f"{table}.parquet"
        rows = query(f"COPY ({select}) TO {_quote(path)} (FORMAT parquet)", [])
        count = int(rows[0][0]) if rows and rows[0] else 0
        response.tables.add(table=table, path=str(path), rows=count)
    return response


def answer(query: Query, request: bytes) -> bytes:
    """An encoded ExportHistoryRequest -> the encoded response (in the history child)."""
    req = order_pb2.ExportHistoryRequest.FromString(request)
    since = req.since.ToDatetime() if req.HasField("since") else None
    until = req.until.ToDatetime() if req.HasField("until") else None
    return export(query, Path(req.out_dir), since, until).SerializeToString()


# ---------------------------------------------------------------------------- the command


def _when(text: str | None) -> dt.datetime | None:
    """An ISO 8601 date or time (UTC unless it says otherwise)."""
    if not text:
        return None
    when = dt.datetime.fromisoformat(text)
    return when if when.tzinfo is not None else when.replace(tzinfo=dt.UTC)


def command(config: ServerConfig, out: Path, since_text: str | None, until_text: str | None) -> int:
    """``mt5exec history export``: through the running server (which holds the database,
    and writes under its history.export_dir only), else from the database opened read-only
    (to ``out`` wherever it is)."""
    import sys

    from mt5exec.server.lock import holder

    try:
        since, until = _when(since_text), _when(until_text)
    except ValueError as e:
        print(f"mt5exec: --since/--until: {e}", file=sys.stderr)
        return 2
    out = out.resolve()
    running = holder(config.server.data_dir)
    try:
        if running is not None:
            response = _through_server(config, running.address, out, since, until)
        else:
            response = _offline(config.history_path, out, since, until)
    except ExportError as e:
        print(f"mt5exec: {e}", file=sys.stderr)
        return 1
    for table in response.tables:
        print(f"{table.table}: {table.rows} rows -> {table.path}")
    return 0


class ExportError(RuntimeError):
    pass


def _offline(
    db: Path, out: Path, since: dt.datetime | None, until: dt.datetime | None
) -> order_pb2.ExportHistoryResponse:
    import duckdb

    if not db.exists():
        raise ExportError(f"no history database at {db}")
    try:
        conn = duckdb.connect(str(db), read_only=True)
    except duckdb.Error as e:
        raise ExportError(f"cannot open {db} (is a server using it?): {e}") from None
    try:

        def query(sql: str, params: Sequence[object]) -> list[tuple[Any, ...]]:
            return conn.execute(sql, params).fetchall()

        return export(query, out, since, until)
    except (OSError, duckdb.Error) as e:
        raise ExportError(f"export to {out} failed: {e}") from None
    finally:
        conn.close()


def _through_server(
    config: ServerConfig,
    address: str,
    out: Path,
    since: dt.datetime | None,
    until: dt.datetime | None,
) -> order_pb2.ExportHistoryResponse:
    import os
    import sys

    import grpc

    from mt5exec.v1 import order_pb2_grpc

    if not address:
        raise ExportError("the server is starting; try again once it listens")
    host, _, port = address.rpartition(":")
    if host in ("0.0.0.0", "[::]", "::", ""):
        host = "127.0.0.1"
    target = f"{host}:{port}"
    token = os.environ.get("MT5EXEC_TOKEN", "")
    key_file = config.server.data_dir / "admin.key"
    if not token and key_file.exists():
        token = key_file.read_text().strip()
    if config.server.tls and config.server.tls_cert is not None:
        credentials = grpc.ssl_channel_credentials(config.server.tls_cert.read_bytes())
        channel = grpc.secure_channel(target, credentials)
    else:
        channel = grpc.insecure_channel(target)
    # The server writes only under its history.export_dir: --out there is kept, anywhere else
    # it is its last component there (each file's path is printed).
    export_dir = config.history_export_dir.resolve()
    if out.is_relative_to(export_dir):
        relative = out.relative_to(export_dir)
    else:
        relative = Path(out.name)
        print(
            f"mt5exec: the running server exports under {export_dir} (history.export_dir): "
            f"to {export_dir / relative}",
            file=sys.stderr,
        )
    request = order_pb2.ExportHistoryRequest(out_dir=str(relative), format="parquet")
    if since is not None:
        request.since.FromDatetime(since)
    if until is not None:
        request.until.FromDatetime(until)
    metadata = (("authorization", f"Bearer {token}"),) if token else None
    try:
        with channel:
            stub = order_pb2_grpc.OrderServiceStub(channel)
            response: order_pb2.ExportHistoryResponse = stub.ExportHistory(
                request, metadata=metadata, timeout=600
            )
            return response
    except grpc.RpcError as e:
        raise ExportError(
            f"the running server at {target} did not export: {e.code().name}: {e.details()}"
        ) from None
