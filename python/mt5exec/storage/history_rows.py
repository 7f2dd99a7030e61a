"""Rows of the history's tables from the messages the writer gets (its thread only), and the
batch of one flush: rows de-duplicated by key with the same rules as the tables' SQL
(``mt5exec.storage.history_schema``).

Enum columns hold the enum value name without its type prefix (``BUY``, ``FILLED``, ``SIM``),
NULL for the ``*_UNSPECIFIED`` value. Times are staged as microseconds since the epoch.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Mapping
from typing import Any, Final

from google.protobuf import json_format

from mt5exec.storage.history_schema import ORDERS, TABLES, Table
from mt5exec.v1 import common_pb2

Row = tuple[Any, ...]


def _enum_names(enum: Any) -> dict[int, str | None]:
    names: dict[int, str | None] = {}
    prefix = ""
    for value in enum.DESCRIPTOR.values:
        if value.number == 0:
            prefix = value.name.removesuffix("UNSPECIFIED")
    for value in enum.DESCRIPTOR.values:
        names[value.number] = None if value.number == 0 else value.name.removeprefix(prefix)
    return names


_SIDE: Final = _enum_names(common_pb2.Side)
_ORDER_TYPE: Final = _enum_names(common_pb2.OrderType)
_ORDER_STATUS: Final = _enum_names(common_pb2.OrderStatus)
_TIME_IN_FORCE: Final = _enum_names(common_pb2.TimeInForce)
_FILLING: Final = _enum_names(common_pb2.FillingMode)
_ENTRY: Final = _enum_names(common_pb2.FillEntry)
_FILL_REASON: Final = _enum_names(common_pb2.FillReason)
_BACKEND: Final = _enum_names(common_pb2.Backend)
_INSTANCE_STATE: Final = _enum_names(common_pb2.InstanceState)
_TRADING_STATE: Final = _enum_names(common_pb2.TradingState)


def _enum(names: Mapping[int, str | None], number: int) -> str | None:
    # A value from a newer proto than this server knows is kept as its number.
    return names[number] if number in names else str(number)


_EPOCH: Final = dt.datetime(1970, 1, 1)


def _ts(msg: Any, field: str, otherwise: int | None = None) -> int | None:
    """A Timestamp field as microseconds since the epoch (how rows stage times);
    ``otherwise`` when the field is not set."""
    if not msg.HasField(field):
        return otherwise
    stamp = getattr(msg, field)
    return stamp.seconds * 1_000_000 + stamp.nanos // 1000  # type: ignore[no-any-return]


def from_ns(ns: int) -> dt.datetime:
    return _EPOCH + dt.timedelta(microseconds=ns // 1000)


def instance_row(inst: Any, recorded: int) -> Row:
    config_json = json_format.MessageToJson(
        inst.config, preserving_proto_field_name=True, indent=None, sort_keys=True
    )
    return (
        inst.instance_id,
        inst.owner,
        _enum(_BACKEND, inst.backend),
        _enum(_INSTANCE_STATE, inst.state),
        inst.state_reason,
        _enum(_TRADING_STATE, inst.trading_state),
        config_json,
        inst.worker_pid,
        inst.restarts,
        _ts(inst, "created_time"),
        _ts(inst, "started_time"),
        recorded,
    )


def _encoded_order(order: Any, instance_id: str, encoded: bytes | None) -> bytes:
    """The Order as the API gives it back: with its instance and a creation time (the row's
    key holds 0 for an order without one), else as it came (``encoded``) or serialised."""
    if order.HasField("created_time") and (order.instance_id or not instance_id):
        return order.SerializeToString() if encoded is None else encoded
    whole = common_pb2.Order()
    whole.CopyFrom(order)
    whole.instance_id = order.instance_id or instance_id
    whole.created_time.SetInParent()
    return whole.SerializeToString()


def order_row(
    order: Any,
    recorded: int,
    instance_id: str = "",
    encoded: bytes | None = None,
    created: int | None = None,
    updated: int | None = None,
) -> Row:
    """``encoded``: the order's bytes as they came, when the caller has them; ``created``
    and ``updated``: its times in µs, when the caller has them (``updated`` None: read)."""
    return (
        order.instance_id or instance_id,
        order.client_order_id,
        order.order_id,
        order.symbol,
        _enum(_SIDE, order.side),
        _enum(_ORDER_TYPE, order.type),
        order.volume,
        order.filled_volume,
        order.price,
        order.stop_limit_price,
        order.stop_loss,
        order.take_profit,
        order.deviation_points,
        _enum(_TIME_IN_FORCE, order.time_in_force),
        _ts(order, "expiration"),
        _enum(_FILLING, order.filling),
        _enum(_ORDER_STATUS, order.status),
        order.average_fill_price,
        order.position_id,
        order.retcode,
        order.status_message,
        order.reject_reason or None,
        order.comment,
        _ts(order, "created_time", 0) if created is None else created,
        _ts(order, "updated_time") if updated is None else updated,
        recorded,
        _encoded_order(order, instance_id, encoded),
    )


class OrderVersion:
    """An order's state as recorded, its row built only if it is the batch's latest of the
    order (``Batch.upsert_order``): a market order's SUBMITTED and FILLED updates come in
    one batch, and building a row costs more than the execution row it comes with."""

    __slots__ = ("_encoded", "_instance_id", "_order", "_recorded", "key", "updated")

    def __init__(
        self, order: Any, recorded: int, instance_id: str = "", encoded: bytes | None = None
    ) -> None:
        self._order, self._recorded = order, recorded
        self._instance_id, self._encoded = instance_id, encoded
        self.key = (
            order.instance_id or instance_id,
            order.client_order_id,
            _ts(order, "created_time", 0),
        )
        self.updated = _ts(order, "updated_time")

    def row(self) -> Row:
        return order_row(
            self._order,
            self._recorded,
            self._instance_id,
            self._encoded,
            *self.key[2:],
            self.updated,
        )


def execution_rows(raw: bytes, recorded: int) -> tuple[Row, OrderVersion | None, Row | None] | None:
    """(execution row, order version or None, deal row or None); None for an unusable
    event."""
    event = common_pb2.ExecutionEvent()
    event.ParseFromString(raw)
    kind = event.WhichOneof("event")
    if kind == "fill":
        fill = event.fill
        instance_id = event.instance_id or fill.instance_id
        when = _ts(event, "time")
        if when is None:
            when = _ts(fill, "time")
        side, entry = _enum(_SIDE, fill.side), _enum(_ENTRY, fill.entry)
        execution: Row = (
            instance_id,
            event.sequence,
            "fill",
            when,
            fill.client_order_id,
            fill.order_id,
            fill.position_id,
            fill.symbol,
            side,
            fill.volume,
            fill.price,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            fill.deal_id,
            entry,
            fill.slippage_points,
            fill.profit,
            fill.commission,
            fill.swap,
            raw,
            recorded,
        )
        deal: Row | None = None
        # Ticket 0 means "not assigned": it cannot serve as the natural key of a deal.
        if fill.deal_id:
            deal = (
                instance_id,
                fill.deal_id,
                event.sequence,
                fill.order_id,
                fill.position_id,
                fill.client_order_id,
                fill.symbol,
                side,
                entry,
                fill.volume,
                fill.price,
                fill.slippage_points,
                fill.profit,
                fill.commission,
                fill.swap,
                _ts(fill, "time", when),
                recorded,
                _enum(_FILL_REASON, fill.reason),
            )
        return execution, None, deal
    if kind == "order_update":
        order = event.order_update
        instance_id = event.instance_id or order.instance_id
        when = _ts(event, "time")
        execution = (
            instance_id,
            event.sequence,
            "order",
            _ts(order, "updated_time") if when is None else when,
            order.client_order_id,
            order.order_id,
            order.position_id,
            order.symbol,
            _enum(_SIDE, order.side),
            order.volume,
            order.price,
            _enum(_ORDER_TYPE, order.type),
            _enum(_ORDER_STATUS, order.status),
            order.filled_volume,
            order.average_fill_price,
            order.retcode,
            order.status_message,
            order.reject_reason or None,
            event.refusals or None,
            None,
            None,
            None,
            None,
            None,
            None,
            raw,
            recorded,
        )
        version = OrderVersion(order, recorded, instance_id) if order.client_order_id else None
        return execution, version, None
    return None


# --------------------------------------------------------------------------------------------
# Queue items: (kind, payload, recorded_ns). Tuples keep the caller's side to one allocation.

ITEM_INSTANCE: Final = 0
ITEM_ORDER: Final = 1
ITEM_EXECUTION: Final = 2
ITEM_BARRIER: Final = 3
ITEM_AUDIT: Final = 4
ITEM_ROW: Final = 5

Item = tuple[int, Any, int]


class Barrier:
    """A flush() call waiting for the writer to pass its place in the queue."""

    __slots__ = ("done", "ok")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.ok = False


class Batch:
    """Converted rows of one flush, de-duplicated per table by primary key. The orders'
    rows are built by ``seal`` (before the batch is written), of each order's latest
    version only."""

    __slots__ = ("_orders", "rows")

    def __init__(self) -> None:
        self.rows: dict[str, dict[tuple[Any, ...], Row]] = {t.name: {} for t in TABLES}
        self._orders: dict[tuple[Any, ...], OrderVersion] = {}

    def __len__(self) -> int:
        return sum(len(rows) for rows in self.rows.values()) + len(self._orders)

    def upsert(self, table: Table, row: Row, nkey: int) -> None:
        # The appender would otherwise hand DuckDB two rows with one key in one statement.
        self.rows[table.name][row[:nkey]] = row

    def upsert_order(self, version: OrderVersion) -> None:
        orders = self._orders
        old = orders.get(version.key)
        # Same rule as the SQL: an older updated_at does not replace a newer one.
        new_at, old_at = version.updated, None if old is None else old.updated
        if old is None or new_at is None or old_at is None or new_at >= old_at:
            orders[version.key] = version

    def seal(self) -> None:
        """Builds the orders' rows (once: the batch is then written, and maybe again)."""
        if self._orders:
            rows = self.rows[ORDERS.name]
            for key, version in self._orders.items():
                rows[key] = version.row()
            self._orders = {}

    def insert_ignore(self, table: Table, row: Row, nkey: int) -> None:
        self.rows[table.name].setdefault(row[:nkey], row)

    def append(self, table: Table, row: Row) -> None:
        # A table without a key (audit): every row, none taken for another.
        rows = self.rows[table.name]
        rows[(len(rows),)] = row
