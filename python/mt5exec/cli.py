"""The ``mt5exec`` command."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from mt5exec import __version__
from mt5exec.auth import cli as auth_cli
from mt5exec.client import cli as client_cli
from mt5exec.config import ConfigError, load_config


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mt5exec", description="gRPC execution server for MT5")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the server")
    serve.add_argument("--config", type=Path, help="TOML configuration file")
    serve.add_argument("--listen", help="HOST:PORT to listen on (port 0 picks a free one)")
    serve.add_argument("--data-dir", help="directory for instances and history")
    serve.add_argument(
        "--event-loop", choices=["uvloop", "asyncio"], default="uvloop", help="asyncio loop"
    )
    vault = commands.add_parser("vault", help="the credential vault (docs/security.md)")
    vault_commands = vault.add_subparsers(dest="vault_command", required=True)
    rotate = vault_commands.add_parser(
        "rotate", help="re-encrypt every stored credential under a new master key"
    )
    rotate.add_argument("--config", type=Path, help="TOML configuration file")
    rotate.add_argument("--data-dir", help="the server's data directory")
    history = commands.add_parser("history", help="the history database (docs/history.md)")
    history_commands = history.add_subparsers(dest="history_command", required=True)
    export = history_commands.add_parser(
        "export", help="its tables as Parquet files (also while the server runs)"
    )
    export.add_argument("--format", choices=["parquet"], default="parquet")
    export.add_argument("--config", type=Path, help="TOML configuration file")
    export.add_argument("--data-dir", help="the server's data directory")
    export.add_argument("--out", type=Path, default=Path("history-export"), help="directory")
    export.add_argument("--since", help="rows from this UTC time on (ISO 8601)")
    export.add_argument("--until", help="rows before this UTC time (ISO 8601)")
    auth_cli.add_parser(commands)
    client_cli.add_parsers(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command in client_cli.COMMANDS:
        return client_cli.run(args)
    overrides: dict[str, object] = {}
    if getattr(args, "listen", None):
        overrides["server.listen"] = args.listen
    if args.data_dir:
        overrides["server.data_dir"] = args.data_dir
    try:
        config = load_config(args.config, overrides=overrides)
    except ConfigError as e:
        print(f"mt5exec: {e}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=config.server.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.command == "keys":
        return auth_cli.command(args, config)
    if args.command == "history":
        from mt5exec.storage.history_export import command as export

        return export(config, args.out, args.since, args.until)
    if args.command == "vault":
        from mt5exec.vault.rotate import command

        return command(config)
    from mt5exec.server.app import serve
    from mt5exec.server.lock import AlreadyServing, ServerLock
    from mt5exec.templates import TemplateError
    from mt5exec.vault import VaultError

    try:
        # Before anything is opened: a second server on the same files stops here.
        lock = ServerLock(
            config.server.data_dir, config.history_path if config.history.enabled else None
        )
    except AlreadyServing as e:
        print(f"mt5exec: {e}", file=sys.stderr)
        return 2
    try:
        if args.event_loop == "uvloop":
            import uvloop

            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                runner.run(serve(config, lock))
        else:
            asyncio.run(serve(config, lock))
    except (ConfigError, TemplateError, VaultError) as e:
        print(f"mt5exec: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
