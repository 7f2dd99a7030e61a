"""Plain-text tables of instances, orders and positions for the operator commands."""

from __future__ import annotations

from collections.abc import Sequence

from google.protobuf.internal.enum_type_wrapper import EnumTypeWrapper

from mt5exec.v1 import auth_pb2, common_pb2


def render(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell, a header line first."""
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in [headers, *rows]
    )


def name(enum: EnumTypeWrapper, value: int) -> str:
    """An enum value's name without its type's prefix (that of its UNSPECIFIED value):
    SIDE_BUY -> BUY."""
    prefix = enum.DESCRIPTOR.values_by_number[0].name.removesuffix("UNSPECIFIED")
    return enum.Name(value).removeprefix(prefix)


def role(value: int) -> str:
    return name(auth_pb2.Role, value)


def instances_table(instances: Sequence[common_pb2.Instance]) -> str:
    rows = [
        [
            i.instance_id,
            name(common_pb2.InstanceState, i.state),
            "KILL SWITCH" if i.kill_switch else name(common_pb2.TradingState, i.trading_state),
            i.owner or "-",
            name(common_pb2.Backend, i.backend),
            ",".join(i.config.symbols),
            str(i.worker_pid or "-"),
            i.state_reason,
        ]
        for i in instances
    ]
    headers = ["ID", "STATE", "TRADING", "OWNER", "BACKEND", "SYMBOLS", "PID", "REASON"]
    return render(headers, rows)


def orders_table(orders: Sequence[common_pb2.Order]) -> str:
    rows = [
        [
            o.client_order_id,
            str(o.order_id),
            o.symbol,
            name(common_pb2.Side, o.side),
            name(common_pb2.OrderType, o.type),
            f"{o.volume:g}",
            f"{o.filled_volume:g}",
            f"{o.price:g}",
            name(common_pb2.OrderStatus, o.status),
        ]
        for o in orders
    ]
    headers = ["CLIENT ORDER ID", "TICKET", "SYMBOL", "SIDE", "TYPE", "VOLUME", "FILLED"]
    return render([*headers, "PRICE", "STATUS"], rows)


def positions_table(positions: Sequence[common_pb2.Position]) -> str:
    rows = [
        [
            str(p.position_id),
            p.symbol,
            name(common_pb2.Side, p.side),
            f"{p.volume:g}",
            f"{p.price_open:g}",
            f"{p.price_current:g}",
            f"{p.profit:.2f}",
        ]
        for p in positions
    ]
    headers = ["TICKET", "SYMBOL", "SIDE", "VOLUME", "OPEN", "CURRENT", "PROFIT"]
    return render(headers, rows)
