"""``mt5exec keys``: API keys from the command line (create, list, revoke)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from mt5exec.auth.keys import KeyRefused, KeyStore
from mt5exec.auth.principal import Role
from mt5exec.config import ServerConfig


def add_parser(commands: Any) -> None:
    """Adds ``keys`` to the command's subparsers."""
    keys = commands.add_parser("keys", help="API keys of a data dir").add_subparsers(
        dest="keys_command", required=True
    )
    create = keys.add_parser("create", help="make a key and print its token (shown once)")
    create.add_argument("--role", required=True, choices=[r.value for r in Role])
    create.add_argument("--owner", help="whose instances it may use (none for admin)")
    create.add_argument("--label", default="", help="what the key is for")
    listing = keys.add_parser("list", help="the keys (never their tokens)")
    revoke = keys.add_parser("revoke", help="revoke a key (a running server sees it within 1 s)")
    revoke.add_argument("key_id")
    for command in (create, listing, revoke):
        command.add_argument("--config", type=Path, help="TOML configuration file")
        command.add_argument("--data-dir", help="the server's data directory")


def command(args: argparse.Namespace, config: ServerConfig) -> int:
    from mt5exec.server import private

    private.restrict(config.server.data_dir)
    store = KeyStore(config.server.data_dir)
    try:
        store.open(create_admin=False)
        if args.keys_command == "create":
            token, key = store.create(Role(args.role), args.owner, args.label)
            print(token)
            owner = key.owner or "every owner"
            print(f"key {key.key_id}: {key.role.value} of {owner}", file=sys.stderr)
        elif args.keys_command == "list":
            for key in store.list_keys():
                state = "revoked" if key.revoked is not None else "valid"
                print(f"{key.key_id}\t{key.role.value}\t{key.owner or '*'}\t{state}\t{key.label}")
        else:
            store.revoke(args.key_id)
    except KeyRefused as e:
        print(f"mt5exec keys: {e.message}", file=sys.stderr)
        return 2
    except (OSError, ValueError) as e:
        print(f"mt5exec keys: {e}", file=sys.stderr)
        return 1
    return 0
