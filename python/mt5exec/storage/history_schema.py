"""The history database's schema: its tables, their keys and the rules that make writing a
row again harmless, the SQL that writes a batch, and the migrations from earlier versions.

Each flush of ``mt5exec.storage.history.HistoryWriter`` is one transaction, and each table
gets its whole batch in one ``INSERT ... SELECT`` statement fed by a DuckDB appender through
a connection-local staging table, which keeps the idempotency rules in SQL:

- ``instances``: upsert by ``instance_id``; the last record wins.
- ``orders``: upsert by ``(instance_id, client_order_id, created_at)`` (an id used again for a
  new order, once the engine forgot the first, makes a row of its own); a record replaces the
  row unless its ``updated_at`` is older than the stored one, so a stale replay cannot undo a
  fill.
  Order updates carried by execution events update this table too, so the engine's encoded
  events alone keep it current. ``encoded`` (v7) holds the row as the API's encoded Order,
  which the API's reads pass on as it is.
- ``executions``: insert-or-ignore by ``(instance_id, sequence)``; the raw event is kept.
- ``deals``: insert-or-ignore by the natural key ``(instance_id, deal_id)``, so a fill seen
  again under another sequence (e.g. after reconciliation) is not counted twice.

Orders the risk engine refused are there too: status ``REJECTED`` with ``reject_reason``
(``MAX_OPEN_POSITIONS``, ``KILL_SWITCH``…) in ``orders`` and ``executions``. Schema versions
are migrated forward on open (v2 added ``reject_reason``). A throttle's refusals
(``RATE_LIMITED``, ``TOO_MANY_IN_FLIGHT``) come as one event per instance, reason and second
whose ``refusals`` column (v4) says how many orders it stands for: count refusals with
``sum(coalesce(refusals, 1))``.

- ``account_snapshots`` and ``risk_events`` (v6): balance, equity and margin of each instance
  at each change and every minute (``mt5exec.storage.accounts``), and the kill switch, trading
  state and limit changes with who made them. Appended, like ``audit``.
- ``audit`` (v5): the audit of mutating calls (``mt5exec.auth.audit``): appended, never
  updated; ``id`` (the time in ns, unique per server) orders it. It has no key: a row is
  never refused as a duplicate.

Enum columns hold the enum value name without its type prefix (``BUY``, ``FILLED``, ``SIM``),
NULL for the ``*_UNSPECIFIED`` value. Times are UTC ``TIMESTAMP`` values (microseconds).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

SCHEMA_VERSION: Final = 8


def _is_time(sqltype: str) -> bool:
    return sqltype.split()[0] == "TIMESTAMP"


def _stage_type(sqltype: str) -> str:
    return "BIGINT" if _is_time(sqltype) else sqltype.replace(" NOT NULL", "")


@dataclass(frozen=True, slots=True)
class Table:
    name: str
    columns: tuple[tuple[str, str], ...]
    key: tuple[str, ...]
    # SQL after "ON CONFLICT (key)"; None means DO UPDATE of every non-key column.
    on_conflict: str | None = None
    # Extra condition of the DO UPDATE (references the target table by name).
    update_where: str | None = None
    # False: no primary key, every row is appended as it comes (``key`` names the column
    # that orders them).
    primary: bool = True

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.columns)

    @property
    def stage(self) -> str:
        return f"_stage_{self.name}"

    def create_sql(self) -> str:
        cols = ",\n  ".join(f"{name} {sqltype}" for name, sqltype in self.columns)
        if not self.primary:
            return f"CREATE TABLE IF NOT EXISTS {self.name} (\n  {cols}\n)"
        return (
            f"CREATE TABLE IF NOT EXISTS {self.name} (\n  {cols},\n"
            f"  PRIMARY KEY ({', '.join(self.key)})\n)"
        )

    def create_stage_sql(self) -> str:
        # Same columns without constraints: rows land here first, the INSERT applies the rules.
        # Times are staged as microseconds since the epoch and made TIMESTAMPs by DuckDB in
        # the INSERT: building a datetime object per value was a quarter of the writer's CPU.
        cols = ", ".join(f"{name} {_stage_type(sqltype)}" for name, sqltype in self.columns)
        return f"CREATE TEMP TABLE IF NOT EXISTS {self.stage} ({cols})"

    def insert_sql(self, rules: bool = True, upsert: bool = True) -> str:
        """The batch's INSERT; ``rules=False``: with no conflict clause (a key stored
        already fails it) when the table's rule is to keep the stored row, and also when it
        is to update it if ``upsert=False`` too (rows the writer knows to be new)."""
        names = ", ".join(self.column_names)
        values = ", ".join(
            f"make_timestamp({name})" if _is_time(sqltype) else name
            for name, sqltype in self.columns
        )
        if not self.primary or (not rules and (self.on_conflict == "DO NOTHING" or not upsert)):
            return f"INSERT INTO {self.name} ({names}) SELECT {values} FROM {self.stage}"
        conflict = self.on_conflict
        if conflict is None:
            sets = ", ".join(f"{c} = excluded.{c}" for c in self.column_names if c not in self.key)
            conflict = f"DO UPDATE SET {sets}"
            if self.update_where:
                conflict += f" WHERE {self.update_where}"
        return (
            f"INSERT INTO {self.name} ({names}) SELECT {values} FROM {self.stage} "
            f"ON CONFLICT ({', '.join(self.key)}) {conflict}"
        )


INSTANCES: Final = Table(
    name="instances",
    columns=(
        ("instance_id", "VARCHAR NOT NULL"),
        ("owner", "VARCHAR"),
        ("backend", "VARCHAR"),
        ("state", "VARCHAR"),
        ("state_reason", "VARCHAR"),
        ("trading_state", "VARCHAR"),
        # InstanceConfig as JSON (proto field names); never holds a password.
        ("config_json", "VARCHAR"),
        ("worker_pid", "UINTEGER"),
        ("restarts", "UINTEGER"),
        ("created_at", "TIMESTAMP"),
        ("started_at", "TIMESTAMP"),
        # When the server recorded this state of the instance.
        ("updated_at", "TIMESTAMP NOT NULL"),
    ),
    key=("instance_id",),
)

ORDERS: Final = Table(
    name="orders",
    columns=(
        ("instance_id", "VARCHAR NOT NULL"),
        ("client_order_id", "VARCHAR NOT NULL"),
        ("order_id", "UBIGINT"),
        ("symbol", "VARCHAR"),
        ("side", "VARCHAR"),
        ("type", "VARCHAR"),
        ("volume", "DOUBLE"),
        ("filled_volume", "DOUBLE"),
        ("price", "DOUBLE"),
        ("stop_limit_price", "DOUBLE"),
        ("stop_loss", "DOUBLE"),
        ("take_profit", "DOUBLE"),
        ("deviation_points", "UINTEGER"),
        ("time_in_force", "VARCHAR"),
        ("expiration", "TIMESTAMP"),
        ("filling", "VARCHAR"),
        ("status", "VARCHAR"),
        ("average_fill_price", "DOUBLE"),
        ("position_id", "UBIGINT"),
        ("retcode", "UINTEGER"),
        ("status_message", "VARCHAR"),
        # Stable reason of a REJECTED order (a risk check's or the terminal's), e.g. KILL_SWITCH.
        ("reject_reason", "VARCHAR"),
        ("comment", "VARCHAR"),
        # Order.created_time: with the ids, what tells an order from a later one that took
        # the client_order_id again after the engine forgot the first (or after its instance
        # was deleted and created again).
        ("created_at", "TIMESTAMP NOT NULL"),
        # Order.updated_time; orders the versions of one order.
        ("updated_at", "TIMESTAMP"),
        ("recorded_at", "TIMESTAMP NOT NULL"),
        # The row as the API's encoded Order (v7): a page read through the API is these
        # blobs one after the other, with no column made a message field by field. NULL in
        # rows written before v7 (their Order is made from the columns).
        ("encoded", "BLOB"),
    ),
    key=("instance_id", "client_order_id", "created_at"),
    update_where=(
        "excluded.updated_at IS NULL OR orders.updated_at IS NULL"
        " OR excluded.updated_at >= orders.updated_at"
    ),
)

EXECUTIONS: Final = Table(
    name="executions",
    columns=(
        ("instance_id", "VARCHAR NOT NULL"),
        ("sequence", "UBIGINT NOT NULL"),
        # 'order' (an order status change) or 'fill'.
        ("kind", "VARCHAR NOT NULL"),
        ("time", "TIMESTAMP"),
        ("client_order_id", "VARCHAR"),
        ("order_id", "UBIGINT"),
        ("position_id", "UBIGINT"),
        ("symbol", "VARCHAR"),
        ("side", "VARCHAR"),
        ("volume", "DOUBLE"),
        # Fill price for fills, the order's limit/stop/requested price for order updates.
        ("price", "DOUBLE"),
        # Order update fields.
        ("order_type", "VARCHAR"),
        ("status", "VARCHAR"),
        ("filled_volume", "DOUBLE"),
        ("average_fill_price", "DOUBLE"),
        ("retcode", "UINTEGER"),
        ("status_message", "VARCHAR"),
        ("reject_reason", "VARCHAR"),
        # How many refused orders a coalesced throttle refusal stands for (NULL: one).
        ("refusals", "UBIGINT"),
        # Fill fields.
        ("deal_id", "UBIGINT"),
        ("entry", "VARCHAR"),
        ("slippage_points", "DOUBLE"),
        ("profit", "DOUBLE"),
        ("commission", "DOUBLE"),
        ("swap", "DOUBLE"),
        # The encoded mt5exec.v1.ExecutionEvent, for replay to stream clients.
        ("raw", "BLOB NOT NULL"),
        ("recorded_at", "TIMESTAMP NOT NULL"),
    ),
    key=("instance_id", "sequence"),
    on_conflict="DO NOTHING",
)

DEALS: Final = Table(
    name="deals",
    columns=(
        ("instance_id", "VARCHAR NOT NULL"),
        ("deal_id", "UBIGINT NOT NULL"),
        # Sequence of the execution event that first reported the deal.
        ("sequence", "UBIGINT"),
        ("order_id", "UBIGINT"),
        ("position_id", "UBIGINT"),
        ("client_order_id", "VARCHAR"),
        ("symbol", "VARCHAR"),
        ("side", "VARCHAR"),
        ("entry", "VARCHAR"),
        ("volume", "DOUBLE"),
        ("price", "DOUBLE"),
        ("slippage_points", "DOUBLE"),
        ("profit", "DOUBLE"),
        ("commission", "DOUBLE"),
        ("swap", "DOUBLE"),
        ("time", "TIMESTAMP"),
        ("recorded_at", "TIMESTAMP NOT NULL"),
        # Why the deal was made (CLIENT, EXPERT, STOP_LOSS, TAKE_PROFIT, STOP_OUT, BROKER);
        # NULL for deals recorded before v8.
        ("reason", "VARCHAR"),
    ),
    key=("instance_id", "deal_id"),
    on_conflict="DO NOTHING",
)

AUDIT: Final = Table(
    name="audit",
    columns=(
        # The time in ns since the epoch, unique and increasing per server.
        ("id", "UBIGINT NOT NULL"),
        ("time", "TIMESTAMP NOT NULL"),
        # 'call', 'session_open' or 'session_end'.
        ("event", "VARCHAR NOT NULL"),
        # The RPC's full name, e.g. mt5exec.v1.OrderService/PlaceOrder.
        ("method", "VARCHAR NOT NULL"),
        # The principal: api_key, jwt, mtls or local; its subject, role, owner (NULL: admin).
        ("principal_kind", "VARCHAR NOT NULL"),
        ("subject", "VARCHAR NOT NULL"),
        ("role", "VARCHAR NOT NULL"),
        ("owner", "VARCHAR"),
        ("peer", "VARCHAR"),
        ("instance_id", "VARCHAR"),
        # The status code's name (OK, PERMISSION_DENIED, ...) and the ErrorInfo reason.
        ("code", "VARCHAR NOT NULL"),
        ("reason", "VARCHAR"),
        # The request as JSON, secrets redacted.
        ("request", "VARCHAR"),
        # session_end: the session's messages in and out.
        ("messages_in", "UBIGINT"),
        ("messages_out", "UBIGINT"),
    ),
    key=("id",),
    primary=False,
)

ACCOUNT_SNAPSHOTS: Final = Table(
    name="account_snapshots",
    columns=(
        ("instance_id", "VARCHAR NOT NULL"),
        # Account.update_time (when the terminal reported it), else when it was received.
        ("time", "TIMESTAMP NOT NULL"),
        ("balance", "DOUBLE"),
        ("equity", "DOUBLE"),
        ("margin", "DOUBLE"),
        ("free_margin", "DOUBLE"),
        ("margin_level", "DOUBLE"),
        ("profit", "DOUBLE"),
        ("currency", "VARCHAR"),
        # 'change' (balance, equity or margin moved) or 'interval' (the minute's snapshot).
        ("reason", "VARCHAR NOT NULL"),
    ),
    key=("time",),
    primary=False,
)

RISK_EVENTS: Final = Table(
    name="risk_events",
    columns=(
        ("time", "TIMESTAMP NOT NULL"),
        # kill_switch_engaged, kill_switch_released, trading_state, risk_limits.
        ("event", "VARCHAR NOT NULL"),
        # The scope: an instance, an owner's instances (instance_id NULL) or all (both NULL).
        ("instance_id", "VARCHAR"),
        ("owner", "VARCHAR"),
        # What it changed to, as JSON (the trading state, the limits, close_positions...).
        ("detail", "VARCHAR"),
        ("reason", "VARCHAR"),
        # Who did it: principal kind, subject, role, owner (NULL: admin).
        ("principal_kind", "VARCHAR"),
        ("subject", "VARCHAR"),
        ("role", "VARCHAR"),
        ("principal_owner", "VARCHAR"),
    ),
    key=("time",),
    primary=False,
)

# Write order inside a flush: parents before children, so readers never see a fill of an order
# whose row is missing once the transaction commits (all of it commits at once anyway).
TABLES: Final[tuple[Table, ...]] = (
    INSTANCES,
    ORDERS,
    EXECUTIONS,
    DEALS,
    AUDIT,
    ACCOUNT_SNAPSHOTS,
    RISK_EVENTS,
)

# What brings a database of the previous version to each version.
MIGRATIONS: Final[Mapping[int, tuple[str, ...]]] = {
    2: (
        "ALTER TABLE orders ADD COLUMN IF NOT EXISTS reject_reason VARCHAR",
        "ALTER TABLE executions ADD COLUMN IF NOT EXISTS reject_reason VARCHAR",
    ),
    # Orders keyed by creation time too (a reused client_order_id no longer overwrites the
    # order that had it first): the table made anew, as DuckDB does not change a key.
    3: (
        ORDERS.create_sql().replace("orders (", "orders_v3 (", 1),
        # By name: a database begun at v1 has reject_reason last (added by v2).
        "INSERT INTO orders_v3 BY NAME SELECT * REPLACE "
        "(coalesce(created_at, make_timestamp(0)) AS created_at) FROM orders",
        "DROP TABLE orders",
        "ALTER TABLE orders_v3 RENAME TO orders",
    ),
    4: ("ALTER TABLE executions ADD COLUMN IF NOT EXISTS refusals UBIGINT",),
    5: (AUDIT.create_sql(),),
    6: (ACCOUNT_SNAPSHOTS.create_sql(), RISK_EVENTS.create_sql()),
    # Rows of earlier versions keep NULL: their reads build the Order from the columns.
    7: ("ALTER TABLE orders ADD COLUMN IF NOT EXISTS encoded BLOB",),
    # Last, as the table declares it: a new database has the same column order.
    8: ("ALTER TABLE deals ADD COLUMN IF NOT EXISTS reason VARCHAR",),
}


INSERT_SQL: Final[Mapping[str, str]] = {table.name: table.insert_sql() for table in TABLES}
# The same, but plain INSERTs for the insert-or-ignore tables (executions, deals): what a
# batch of new rows is written with first (``HistoryWriter._write``).
NEW_ROWS_SQL: Final[Mapping[str, str]] = {t.name: t.insert_sql(rules=False) for t in TABLES}
# And a plain INSERT for the orders too: for a batch none of whose orders the writer wrote
# before in a state that may still change (an ON CONFLICT costs DuckDB 8-15 ms a statement,
# a plain INSERT ~2.5). An order it did not know of that is stored fails it like the above.
NEW_ORDERS_SQL: Final[Mapping[str, str]] = {
    **NEW_ROWS_SQL,
    ORDERS.name: ORDERS.insert_sql(rules=False, upsert=False),
}
# The keyless tables whose rows come as they are (``HistoryWriter.record_row``).
APPENDED: Final[Mapping[str, Table]] = {t.name: t for t in (ACCOUNT_SNAPSHOTS, RISK_EVENTS)}
