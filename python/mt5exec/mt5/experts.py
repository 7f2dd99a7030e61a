"""Expert Advisor deployment into an instance's terminal, and confirmation that the EA runs.

This module owns the READY/heartbeat protocol (seed 004) between the server and an EA built
with ``mql5/Include/mt5exec/Signals.mqh``. The format is defined here and in that file, once
each (``tests/e2e/test_experts.py`` checks that the two agree). Under
``<terminal_dir>/MQL5/Files/mt5exec/`` the EA writes:

- ``<name>.ready``: ``READY <unix time> <account login> <symbol>`` + CRLF, when its OnInit has
  succeeded (the EA deletes it in OnDeinit);
- ``<name>.heartbeat``: ``HEARTBEAT <unix time> <seq>`` + CRLF, rewritten from OnTimer every
  N seconds (OnTimer runs without ticks, so a closed market does not look like a dead EA).

``<name>`` is the EA's file name without ``.ex5`` (MQL_PROGRAM_NAME), the text is UTF-8, and
times are ``TimeGMT()``: UNIX seconds of the host's clock, comparable with ``time.time()`` on
the same host (``TimeCurrent()``, as in the seed, is the broker's clock, hours off).

Files rather than the seed's terminal global variables: global variables are readable only
from inside the terminal (the MetaTrader5 package has no accessor), while files in the
portable data folder are per instance and readable by any process, even with the worker down.

A deployment is confirmed (``wait_for_signals``) when a READY written at or after the
deployment and a heartbeat written at or after it, no older than ``heartbeat_fresh``, have been
seen. The EA's clock has one-second resolution, so "at or after" compares whole seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, TypeVar

from mt5exec.files import atomic_write
from mt5exec.mt5.bootstrap import ExpertStartup

log = logging.getLogger("mt5exec.mt5.experts")

# The protocol; mirrored by the MT5EXEC_* defines in mql5/Include/mt5exec/Signals.mqh.
SIGNALS_DIR = "mt5exec"  # under MQL5/Files
EXPERTS_DIR = "mt5exec"  # under MQL5/Experts
READY_SUFFIX = ".ready"
HEARTBEAT_SUFFIX = ".heartbeat"
READY_TAG = "READY"
HEARTBEAT_TAG = "HEARTBEAT"
LINE_END = "\r\n"
SIGNAL_ENCODING = "utf-8"  # FileOpen(..., FILE_ANSI, 0, CP_UTF8)

_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
# Names Windows (and so Wine) maps to devices whatever the extension: CON.ex5 is the console.
_DEVICE_NAMES = frozenset(
    {"con", "prn", "aux", "nul"} | {f"{p}{i}" for p in ("com", "lpt") for i in range(1, 10)}
)
_MAX_SIGNAL_BYTES = 4096

Status = Literal["SUCCESS", "PARTIAL", "FAILED"]
_T = TypeVar("_T")


class ExpertNameError(ValueError):
    """An expert name that is not a plain file name of [A-Za-z0-9_.-]{1,64}."""


def validate_expert_name(name: str) -> str:
    """Return ``name`` if it can name ``<name>.ex5`` and its signal files, else raise."""
    if not isinstance(name, str) or not _NAME.fullmatch(name) or name in (".", ".."):
        raise ExpertNameError(
            f"expert name must be 1-64 characters of letters, digits, '_', '.', '-' "
            f"and no path, got {name!r}"
        )
    if name.endswith("."):
        raise ExpertNameError(f"expert name must not end with '.' (Windows drops it): {name!r}")
    if name.lower().endswith((".ex5", ".mq5")):
        raise ExpertNameError(f"expert name is given without extension, got {name!r}")
    if name.split(".", 1)[0].lower() in _DEVICE_NAMES:
        raise ExpertNameError(f"expert name {name!r} is a Windows device name")
    return name


def expert_path(terminal_dir: Path, name: str) -> Path:
    """Where ``deploy_expert`` puts the EA: ``MQL5/Experts/mt5exec/<name>.ex5``."""
    return terminal_dir / "MQL5" / "Experts" / EXPERTS_DIR / f"{validate_expert_name(name)}.ex5"


def signal_paths(terminal_dir: Path, name: str) -> tuple[Path, Path]:
    """The READY and heartbeat files of expert ``name``."""
    directory = terminal_dir / "MQL5" / "Files" / SIGNALS_DIR
    name = validate_expert_name(name)
    return directory / f"{name}{READY_SUFFIX}", directory / f"{name}{HEARTBEAT_SUFFIX}"


def startup_for(
    name: str, symbol: str, period: str = "H1", parameters: str | None = None
) -> ExpertStartup:
    """The ``[StartUp]`` entry that attaches a deployed expert to a chart at terminal start."""
    return ExpertStartup(
        expert=f"{EXPERTS_DIR}\\{validate_expert_name(name)}",
        symbol=symbol,
        period=period,
        parameters=parameters,
    )


# ------------------------------------------------------------------------------------- format


@dataclass(frozen=True)
class ReadySignal:
    time: int
    login: int
    symbol: str


@dataclass(frozen=True)
class HeartbeatSignal:
    time: int
    seq: int


def format_ready(unix_time: int, login: int, symbol: str) -> str:
    return f"{READY_TAG} {unix_time} {login} {symbol}{LINE_END}"


def format_heartbeat(unix_time: int, seq: int) -> str:
    return f"{HEARTBEAT_TAG} {unix_time} {seq}{LINE_END}"


def parse_ready(text: str) -> ReadySignal | None:
    """A complete READY line, or None (absent, foreign, or caught half-written)."""
    # The EA truncates then writes, so a reader can see a prefix of the line: a line counts
    # only with its terminator, which the EA writes last.
    if not text.endswith("\n"):
        return None
    parts = text.rstrip("\r\n").split(" ", 3)
    if len(parts) != 4 or parts[0] != READY_TAG or not parts[3]:
        return None
    unix_time, login = _nonneg_int(parts[1]), _nonneg_int(parts[2])
    if unix_time is None or login is None:
        return None
    return ReadySignal(unix_time, login, parts[3])


def parse_heartbeat(text: str) -> HeartbeatSignal | None:
    """A complete HEARTBEAT line, or None."""
    if not text.endswith("\n"):
        return None
    parts = text.rstrip("\r\n").split(" ")
    if len(parts) != 3 or parts[0] != HEARTBEAT_TAG:
        return None
    unix_time, seq = _nonneg_int(parts[1]), _nonneg_int(parts[2])
    if unix_time is None or seq is None:
        return None
    return HeartbeatSignal(unix_time, seq)


def _nonneg_int(text: str) -> int | None:
    return int(text) if text.isascii() and text.isdigit() else None


def _read(path: Path) -> str | None:
    try:
        with open(path, "rb") as f:
            data = f.read(_MAX_SIGNAL_BYTES)
    except (FileNotFoundError, PermissionError):
        # PermissionError: a sharing violation on Windows while the EA holds the file. Either
        # way, the next poll reads it again.
        return None
    # utf-8-sig: should a build put a BOM before FILE_ANSI/CP_UTF8 text, it is dropped here.
    return data.decode("utf-8-sig", errors="replace")


def _read_ready(path: Path) -> ReadySignal | None:
    text = _read(path)
    return parse_ready(text) if text is not None else None


def _read_heartbeat(path: Path) -> HeartbeatSignal | None:
    text = _read(path)
    return parse_heartbeat(text) if text is not None else None


def _iso(unix_time: float) -> str:
    return datetime.fromtimestamp(unix_time, UTC).isoformat(timespec="seconds")


# ------------------------------------------------------------------------------------- deploy


def clear_signals(terminal_dir: Path, name: str) -> None:
    """Delete the READY and heartbeat files of ``name`` (stale ones must not confirm anything)."""
    for path in signal_paths(terminal_dir, name):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def deploy_expert(terminal_dir: Path, name: str, ex5: bytes) -> Path:
    """Write ``MQL5/Experts/mt5exec/<name>.ex5`` atomically and clear stale signals of ``name``.

    Signals are cleared first: a terminal that already runs the EA reloads it when its .ex5
    changes, and the READY of that reload must not be deleted after it was written. Attaching
    the EA to a chart is the caller's (``startup_for`` + ``write_startup_ini`` at launch).
    """
    dest = expert_path(terminal_dir, name)
    if not terminal_dir.is_dir():
        raise FileNotFoundError(f"terminal directory {terminal_dir} does not exist")
    if not ex5:
        raise ValueError("ex5 is empty: pass the compiled expert's bytes")
    clear_signals(terminal_dir, name)
    dest.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(dest, ex5)  # the terminal must never load a truncated expert
    log.info(
        "expert %s deployed to %s (%d bytes, sha256 %s)",
        name,
        dest,
        len(ex5),
        hashlib.sha256(ex5).hexdigest()[:16],
    )
    return dest


# ------------------------------------------------------------------------------------ confirm


@dataclass(frozen=True)
class DeploymentResult:
    """What ``wait_for_signals`` saw. Times are UNIX seconds (the EA's whole seconds)."""

    status: Status
    ready_seen: bool
    heartbeat_seen: bool
    details: str
    ready_time: float | None = None
    last_heartbeat: float | None = None
    account_login: int | None = None
    symbol: str | None = None
    heartbeat_seq: int | None = None


async def wait_for_signals(
    terminal_dir: Path,
    name: str,
    *,
    timeout: float,
    since: float,
    poll_interval: float = 0.1,
    heartbeat_fresh: float = 30.0,
    expected_login: int | None = None,
) -> DeploymentResult:
    """Poll until the EA ``name`` has written a READY and a fresh heartbeat, or ``timeout``.

    ``since`` is the UNIX time of the deployment (take it before ``deploy_expert``): older
    signals do not count. ``expected_login`` also requires the READY to come from that
    account. SUCCESS needs both signals, PARTIAL means one, FAILED none; ``details`` says what
    was missing and what was seen instead. Sleeps between polls; each poll reads two files of
    a few dozen bytes, which is cheaper than handing them to a thread.
    """
    ready_path, heartbeat_path = signal_paths(terminal_dir, name)
    since_s = math.floor(since)  # the EA stamps whole seconds
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    ready: ReadySignal | None = None
    heartbeat: HeartbeatSignal | None = None
    stale_ready: ReadySignal | None = None
    foreign_ready: ReadySignal | None = None
    stale_heartbeat: HeartbeatSignal | None = None
    while True:
        now = time.time()
        r = _read_ready(ready_path)
        if r is not None and ready is None:
            if r.time < since_s:
                stale_ready = r
            elif expected_login is not None and r.login != expected_login:
                foreign_ready = r
            else:
                ready = r
        h = _read_heartbeat(heartbeat_path)
        if h is not None:
            if h.time >= since_s and now - h.time <= heartbeat_fresh:
                heartbeat = h
            elif heartbeat is None:
                stale_heartbeat = h
        if ready is not None and heartbeat is not None:
            break
        remaining = deadline - loop.time()
        if remaining <= 0:
            break
        await asyncio.sleep(min(poll_interval, remaining))

    missing: list[str] = []
    if ready is None:
        if foreign_ready is not None:
            missing.append(
                f"READY came from account {foreign_ready.login}, expected {expected_login}"
            )
        elif stale_ready is not None:
            missing.append(
                f"the only READY ({_iso(stale_ready.time)}) predates the deployment "
                f"({_iso(since)}): the new copy has not completed OnInit"
            )
        else:
            missing.append(
                "no READY: the EA is not attached to a chart, its OnInit failed, algorithmic "
                "trading is disabled, or it does not call Mt5execSignalReady()"
            )
    if heartbeat is None:
        if stale_heartbeat is not None:
            missing.append(
                f"the last heartbeat ({_iso(stale_heartbeat.time)}) predates the deployment "
                f"or is older than {heartbeat_fresh:g}s"
            )
        else:
            missing.append(
                "no heartbeat: OnTimer is not running (Mt5execSignalsInit not called, or the "
                "terminal is frozen)"
            )
    if not missing:
        assert ready is not None and heartbeat is not None
        status: Status = "SUCCESS"
        details = (
            f"{name}: READY at {_iso(ready.time)} on account {ready.login} {ready.symbol}; "
            f"heartbeat #{heartbeat.seq} at {_iso(heartbeat.time)}"
        )
    else:
        status = "PARTIAL" if len(missing) == 1 else "FAILED"
        details = f"{name}: " + "; ".join(missing) + f" (waited {timeout:g}s)"
    result = DeploymentResult(
        status=status,
        ready_seen=ready is not None,
        heartbeat_seen=heartbeat is not None,
        details=details,
        ready_time=float(ready.time) if ready is not None else None,
        last_heartbeat=float(heartbeat.time) if heartbeat is not None else None,
        account_login=ready.login if ready is not None else None,
        symbol=ready.symbol if ready is not None else None,
        heartbeat_seq=heartbeat.seq if heartbeat is not None else None,
    )
    log.log(logging.INFO if status == "SUCCESS" else logging.WARNING, "%s", details)
    return result


# ----------------------------------------------------------------------------------- watchdog


@dataclass(frozen=True)
class ExpertStatus:
    """The signals of one expert as they are on disk now (for a watchdog)."""

    name: str
    ready: bool
    ready_time: float | None
    account_login: int | None
    symbol: str | None
    last_heartbeat: float | None
    heartbeat_seq: int | None
    heartbeat_age: float | None

    def alive(self, max_age: float = 30.0) -> bool:
        """READY present and a heartbeat no older than ``max_age`` seconds."""
        return self.ready and self.heartbeat_age is not None and self.heartbeat_age <= max_age


def expert_status(terminal_dir: Path, name: str, *, now: float | None = None) -> ExpertStatus:
    """Read the READY and heartbeat files of ``name`` once (no waiting)."""
    ready_path, heartbeat_path = signal_paths(terminal_dir, name)
    ready = _read_settled(ready_path, parse_ready)
    heartbeat = _read_settled(heartbeat_path, parse_heartbeat)
    now = time.time() if now is None else now
    return ExpertStatus(
        name=name,
        ready=ready is not None,
        ready_time=float(ready.time) if ready is not None else None,
        account_login=ready.login if ready is not None else None,
        symbol=ready.symbol if ready is not None else None,
        last_heartbeat=float(heartbeat.time) if heartbeat is not None else None,
        heartbeat_seq=heartbeat.seq if heartbeat is not None else None,
        heartbeat_age=max(0.0, now - heartbeat.time) if heartbeat is not None else None,
    )


def _read_settled(path: Path, parse: Callable[[str], _T | None]) -> _T | None:
    # A read that races the EA's rewrite sees a partial line; the write of a few dozen bytes
    # finishes in microseconds, so re-reading at once is enough not to report a live EA dead.
    for _ in range(3):
        text = _read(path)
        if text is None:
            return None
        parsed = parse(text)
        if parsed is not None:
            return parsed
    return None
