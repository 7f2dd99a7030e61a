"""A stand-in for an Expert Advisor built with mql5/Include/mt5exec/Signals.mqh.

Writes the signal files exactly as the include does: under ``<files-dir>/mt5exec/``, the file
truncated and rewritten in place (FileOpen FILE_WRITE), UTF-8, one CRLF-terminated line,
``READY <unix time> <login> <symbol>`` once and ``HEARTBEAT <unix time> <seq>`` every
``--interval`` seconds, times in whole seconds (TimeGMT). The format is spelled out here on
purpose rather than imported from mt5exec, so that a change on one side breaks the tests.

``--clock-offset`` shifts the stamped times (a stale EA); ``--beats`` stops after that many
heartbeats (0: run until killed).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def write(path: Path, line: str) -> None:
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(line + "\r\n")
        f.flush()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files-dir", type=Path, required=True, help="<terminal>/MQL5/Files")
    parser.add_argument("--name", required=True)
    parser.add_argument("--login", type=int, default=12345678)
    parser.add_argument("--symbol", default="EURUSD")
    parser.add_argument("--ready", action="store_true")
    parser.add_argument("--heartbeat", action="store_true")
    parser.add_argument("--interval", type=float, default=0.2)
    parser.add_argument("--beats", type=int, default=0)
    parser.add_argument("--clock-offset", type=float, default=0.0)
    args = parser.parse_args()

    def now() -> int:
        return int(time.time() + args.clock_offset)

    directory = args.files_dir / "mt5exec"
    directory.mkdir(parents=True, exist_ok=True)
    if args.ready:
        write(directory / f"{args.name}.ready", f"READY {now()} {args.login} {args.symbol}")
    if not args.heartbeat:
        return 0
    seq = 0
    while args.beats == 0 or seq < args.beats:
        seq += 1
        write(directory / f"{args.name}.heartbeat", f"HEARTBEAT {now()} {seq}")
        if args.beats == 0 or seq < args.beats:
            time.sleep(args.interval)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
