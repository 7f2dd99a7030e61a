"""The operator commands of ``mt5exec`` (instances, orders, positions, kill-switch, status),
made on mt5exec.client: tables for people, ``--json`` for scripts, one line on stderr and exit
code 1 for a refused call (2 for bad settings)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message

from mt5exec.client import Client, Error, Settings, SettingsError
from mt5exec.client.tables import instances_table, orders_table, positions_table, render, role
from mt5exec.v1 import auth_pb2, common_pb2

COMMANDS = frozenset({"instances", "orders", "positions", "kill-switch", "status"})
SIDES = {"buy": common_pb2.SIDE_BUY, "sell": common_pb2.SIDE_SELL}
TYPES = {
    "market": common_pb2.ORDER_TYPE_MARKET,
    "limit": common_pb2.ORDER_TYPE_LIMIT,
    "stop": common_pb2.ORDER_TYPE_STOP,
    "stop-limit": common_pb2.ORDER_TYPE_STOP_LIMIT,
}
BACKENDS = {"sim": common_pb2.BACKEND_SIM, "mt5": common_pb2.BACKEND_MT5}


def _connection() -> argparse.ArgumentParser:
    """The flags every operator command takes (settings.py says the environment's)."""
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("connection")
    group.add_argument("--target", help="HOST:PORT of the server (MT5EXEC_TARGET)")
    group.add_argument("--token", help="bearer token (MT5EXEC_TOKEN)")
    group.add_argument("--data-dir", help="a server's data dir: its admin.key is the token")
    group.add_argument("--ca", help="PEM CA file: connect with TLS (MT5EXEC_TLS_CA)")
    group.add_argument("--cert", help="PEM client certificate, for mTLS (MT5EXEC_TLS_CERT)")
    group.add_argument("--key", help="PEM client key, for mTLS (MT5EXEC_TLS_KEY)")
    group.add_argument("--server-name", help="the name the server's certificate carries")
    group.add_argument("--timeout", type=float, default=60.0, help="seconds per call (60)")
    group.add_argument("--json", action="store_true", help="JSON output, for scripts")
    return common


def _scope(parser: argparse.ArgumentParser) -> None:
    scope = parser.add_mutually_exclusive_group(required=True)
    scope.add_argument("--instance", help="one instance")
    scope.add_argument("--owner", help="every instance of an owner")
    scope.add_argument("--all", action="store_true", help="every instance")


def add_parsers(commands: Any) -> None:
    """The operator commands, as subcommands of ``mt5exec``."""
    common = _connection()

    def add(parent: Any, name: str, help: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = parent.add_parser(name, help=help, parents=[common])
        return parser

    instances = commands.add_parser("instances", help="list, create, start, stop, delete")
    verbs = instances.add_subparsers(dest="verb", required=True)
    listing = add(verbs, "list", "the instances the token sees")
    listing.add_argument("--owner", default="")
    create = add(verbs, "create", "a new instance (waits until READY)")
    create.add_argument("instance_id")
    create.add_argument("--symbols", default="EURUSD", help="comma-separated (EURUSD)")
    create.add_argument("--owner", default="")
    create.add_argument("--backend", choices=sorted(BACKENDS), default="sim")
    create.add_argument("--tick-rate", type=float, default=0.0, help="sim ticks/s per symbol")
    create.add_argument("--balance", type=float, default=0.0, help="sim starting balance")
    for verb in ("start", "stop", "delete"):
        add(verbs, verb, f"{verb} an instance").add_argument("instance_id")

    orders = commands.add_parser("orders", help="place, list, cancel")
    verbs = orders.add_subparsers(dest="verb", required=True)
    place = add(verbs, "place", "an order (retried safely: one client_order_id)")
    place.add_argument("instance_id")
    place.add_argument("symbol")
    place.add_argument("side", choices=sorted(SIDES))
    place.add_argument("volume", type=float)
    place.add_argument("--type", choices=list(TYPES), default="market")
    place.add_argument("--price", type=float, default=0.0)
    place.add_argument("--sl", type=float, default=0.0, help="stop loss")
    place.add_argument("--tp", type=float, default=0.0, help="take profit")
    place.add_argument("--client-order-id", default="", help="idempotency key (made if none)")
    place.add_argument("--comment", default="")
    listing = add(verbs, "list", "open orders (--history: finished ones)")
    listing.add_argument("instance_id")
    listing.add_argument("--history", action="store_true")
    listing.add_argument("--symbol", default="")
    cancel = add(verbs, "cancel", "a pending order, by ticket or client_order_id")
    cancel.add_argument("instance_id")
    cancel.add_argument("order_id", type=int, nargs="?", default=0)
    cancel.add_argument("--client-order-id", default="")

    positions = add(commands, "positions", "open positions of an instance")
    positions.add_argument("instance_id")
    positions.add_argument("--symbol", default="")

    kill = commands.add_parser("kill-switch", help="engage or release the kill switch")
    verbs = kill.add_subparsers(dest="verb", required=True)
    engage = add(verbs, "engage", "HALTED at once, pending orders cancelled")
    _scope(engage)
    engage.add_argument("--close-positions", action="store_true")
    engage.add_argument("--reason", default="")
    _scope(add(verbs, "release", "trading again"))

    add(commands, "status", "who the token is, the server and its instances")


def _dict(message: Message) -> dict[str, Any]:
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def _out(args: argparse.Namespace, data: Any, text: Callable[[], str]) -> None:
    """``data`` (messages, lists of them) as JSON with --json, else ``text()``."""
    if args.json:

        def plain(value: Any) -> Any:
            if isinstance(value, Message):
                return _dict(value)
            if isinstance(value, list | tuple):
                return [plain(v) for v in value]
            if isinstance(value, dict):
                return {k: plain(v) for k, v in value.items()}
            return value

        print(json.dumps(plain(data), indent=2))
    else:
        print(text())


def _instances(client: Client, args: argparse.Namespace) -> None:
    if args.verb == "list":
        found = client.list_instances(owner=args.owner)
        _out(args, found, lambda: instances_table(found))
        return
    if args.verb == "create":
        config = common_pb2.InstanceConfig(
            symbols=[s for s in args.symbols.split(",") if s],
            tick_rate=args.tick_rate,
            initial_balance=args.balance,
        )
        instance = client.create_instance(
            args.instance_id, config, owner=args.owner, backend=BACKENDS[args.backend]
        )
    elif args.verb == "start":
        instance = client.start_instance(args.instance_id)
    elif args.verb == "stop":
        instance = client.stop_instance(args.instance_id)
    else:
        client.delete_instance(args.instance_id)
        _out(args, {"deleted": args.instance_id}, lambda: f"deleted {args.instance_id}")
        return
    _out(args, instance, lambda: instances_table([instance]))


def _orders(client: Client, args: argparse.Namespace) -> None:
    if args.verb == "list":
        found = client.list_orders(args.instance_id, history=args.history, symbol=args.symbol)
        _out(args, found, lambda: orders_table(found))
        return
    if args.verb == "place":
        order = client.place_order(
            args.instance_id,
            args.symbol,
            SIDES[args.side],
            args.volume,
            type=TYPES[args.type],
            price=args.price,
            stop_loss=args.sl,
            take_profit=args.tp,
            client_order_id=args.client_order_id,
            comment=args.comment,
        )
    else:
        order = client.cancel_order(args.instance_id, args.order_id, args.client_order_id)
    _out(args, order, lambda: orders_table([order]))


def _kill_switch(client: Client, args: argparse.Namespace) -> None:
    scope = {"instance_id": args.instance, "owner": args.owner, "everything": args.all}
    if args.verb == "engage":
        engaged = client.engage_kill_switch(
            **scope, close_positions=args.close_positions, reason=args.reason
        )
        _out(
            args,
            engaged,
            lambda: (
                f"engaged on {', '.join(engaged.instance_ids) or 'no instance'}: "
                f"{engaged.orders_cancelled} orders cancelled, "
                f"{engaged.positions_closed} positions closed"
            ),
        )
        return
    released = client.release_kill_switch(**scope)
    _out(args, released, lambda: f"released on {', '.join(released.instance_ids) or 'no instance'}")


def _status(client: Client, args: argparse.Namespace) -> None:
    me, found = client.whoami(), client.list_instances()
    # The server's own figures are an admin's to read; others see their instances.
    stats = client.system_stats() if me.role == auth_pb2.ROLE_ADMIN else None
    data = {"whoami": me, "system": stats, "instances": found}

    def text() -> str:
        ready = sum(i.state == common_pb2.INSTANCE_STATE_READY for i in found)
        uptime = f"{stats.uptime.seconds}s" if stats is not None else "-"
        head = render(
            ["TARGET", "AS", "ROLE", "OWNER", "INSTANCES", "READY", "UPTIME"],
            [
                [
                    client.settings.target,
                    me.subject,
                    role(me.role),
                    me.owner or "-",
                    str(len(found)),
                    str(ready),
                    uptime,
                ]
            ],
        )
        return f"{head}\n\n{instances_table(found)}"

    _out(args, data, text)


def _positions(client: Client, args: argparse.Namespace) -> None:
    found = client.list_positions(args.instance_id, args.symbol)
    _out(args, found, lambda: positions_table(found))


def run(args: argparse.Namespace) -> int:
    """Runs an operator command; its exit code."""
    try:
        settings = Settings.resolve(
            target=args.target,
            token=args.token,
            data_dir=args.data_dir,
            ca_file=args.ca,
            cert_file=args.cert,
            key_file=args.key,
            server_name=args.server_name,
            timeout=args.timeout,
        )
    except SettingsError as e:
        print(f"mt5exec: {e}", file=sys.stderr)
        return 2
    handlers: dict[str, Callable[[Client, argparse.Namespace], None]] = {
        "instances": _instances,
        "orders": _orders,
        "positions": _positions,
        "kill-switch": _kill_switch,
        "status": _status,
    }
    try:
        with Client(settings=settings) as client:
            handlers[args.command](client, args)
    except Error as e:
        print(f"mt5exec: {e}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # The reader went away (`| head`): nothing more to say, and nowhere to say it.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return 0
