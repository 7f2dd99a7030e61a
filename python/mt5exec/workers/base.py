"""The lifecycle every terminal worker shares, whatever backend it serves.

Owns what ``mt5exec.workers.sim`` and ``mt5exec.workers.mt5`` do alike: the exit codes both use,
connecting to the engine's Unix socket, the Hello/Welcome handshake, decoding engine frames,
reading frames in the ``selectors`` loop, the heartbeat schedule, the ``crash`` / ``disconnect``
/ ``freeze`` faults, SIGTERM/SIGINT handling and turning how the loop ended into an exit code.
Everything a backend does differently (its frames, its flush, its schedule) stays in its module.

A worker unwinds its loop by raising ``WorkerExit(code, reason)``; ``serve`` logs it and
returns the code. ``serve`` also puts the worker in ``SCHED_BATCH`` first (``batch_scheduling``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from types import FrameType
from typing import NoReturn

from google.protobuf.message import DecodeError

from mt5exec.config_error import ConfigError as ConfigError
from mt5exec.terminal.v1 import worker_pb2 as pb
from mt5exec.workers.protocol import (
    ConnectionClosed,
    FrameError,
    FrameReader,
    encode_frame,
    recv_frame,
)

PROTOCOL_VERSION = 1

# Exit codes every worker uses; a backend may add its own (the MT5 worker: 5 and 6).
EXIT_OK = 0
EXIT_ERROR = 1
EXIT_CONFIG = 2
EXIT_HANDSHAKE = 3
EXIT_PROTOCOL = 4
EXIT_CRASH = 70

CONNECT_TIMEOUT_S = 2.0
WELCOME_TIMEOUT_S = 10.0
DEFAULT_HEARTBEAT_MS = 1000
# Workers run under Linux's SCHED_BATCH (docs/architecture.md#scheduling): a worker woken by a
# frame the engine wrote does not preempt the engine thread that wrote it, which on a small box
# was the engine's dispatch thread in the middle of writing 30 copies of a master's deal.
# False keeps the normal policy.
BATCH_SCHEDULING = True

_log = logging.getLogger("mt5exec.workers.base")


class WorkerExit(BaseException):
    """Unwinds the loop to exit with ``code``; a BaseException so no handler swallows it."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def connect(path: str, timeout: float = CONNECT_TIMEOUT_S) -> socket.socket:
    """Connect to the engine's Unix socket, retrying while it is not there yet."""
    deadline = time.monotonic() + timeout
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(path)
        except (FileNotFoundError, ConnectionRefusedError):
            sock.close()
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.02)
            continue
        except BaseException:
            sock.close()
            raise
        return sock


def connect_or_exit(path: str) -> socket.socket:
    """``connect``, with a failure turned into ``WorkerExit(EXIT_HANDSHAKE)``."""
    try:
        return connect(path)
    except OSError as e:
        raise WorkerExit(EXIT_HANDSHAKE, f"cannot connect to {path}: {e}") from e


def handshake(sock: socket.socket, hello: pb.WorkerFrame, timeout: float) -> float:
    """Send Hello, wait for Welcome; the heartbeat interval (s) it asks for.

    ``WorkerExit(EXIT_HANDSHAKE)`` on anything but a Welcome of a protocol version we speak.
    """
    try:
        sock.sendall(encode_frame(hello))
        sock.settimeout(timeout)
        payload = recv_frame(sock)
        sock.settimeout(None)
    except (OSError, ConnectionClosed, FrameError) as e:
        raise WorkerExit(EXIT_HANDSHAKE, f"handshake failed: {e}") from e
    frame = pb.EngineFrame()
    try:
        frame.ParseFromString(payload)
    except DecodeError as e:
        raise WorkerExit(EXIT_HANDSHAKE, f"handshake failed: undecodable frame: {e}") from e
    kind = frame.WhichOneof("body")
    if kind != "welcome":
        raise WorkerExit(EXIT_HANDSHAKE, f"handshake failed: expected welcome, got {kind}")
    welcome = frame.welcome
    if welcome.protocol_version not in (0, PROTOCOL_VERSION):
        raise WorkerExit(
            EXIT_HANDSHAKE,
            f"handshake failed: engine speaks protocol {welcome.protocol_version}",
        )
    return (welcome.heartbeat_interval_ms or DEFAULT_HEARTBEAT_MS) / 1000.0


def parse_engine_frame(payload: bytes) -> pb.EngineFrame:
    """One engine frame; ``WorkerExit(EXIT_PROTOCOL)`` if it does not decode."""
    frame = pb.EngineFrame()
    try:
        frame.ParseFromString(payload)
    except DecodeError as e:
        raise WorkerExit(EXIT_PROTOCOL, f"undecodable engine frame: {e}") from e
    return frame


def read_frames(reader: FrameReader, sock: socket.socket) -> list[bytes]:
    """The frames one ``recv`` completed; EOF or a reset end the worker normally (exit 0), a
    framing error with ``EXIT_PROTOCOL``."""
    try:
        return reader.recv_from(sock)
    except (ConnectionClosed, ConnectionResetError) as e:
        raise WorkerExit(EXIT_OK, f"connection closed by engine: {e}") from e
    except FrameError as e:
        raise WorkerExit(EXIT_PROTOCOL, str(e)) from e


def next_heartbeat(due: float, interval: float, now: float) -> float:
    """When the heartbeat after the one ``due`` now is due: on its grid, unless that is
    already past (after a stall), then one interval from now."""
    due += interval
    return due if due > now else now + interval


def enact_fault(
    sock: socket.socket,
    fault: pb.FaultInjection,
    flush: Callable[[], None],
    log: logging.Logger,
) -> bool:
    """The process side of a fault: ``crash`` exits at once (``EXIT_CRASH``), ``disconnect``
    closes the socket and ends the worker (exit 0), ``freeze_ms`` sleeps. Whatever was already
    done is flushed to the engine first. True if the worker froze."""
    if fault.crash or fault.disconnect or fault.freeze_ms:
        flush()
    if fault.crash:
        log.warning("crash fault: exiting with code %d", EXIT_CRASH)
        logging.shutdown()
        os._exit(EXIT_CRASH)
    if fault.disconnect:
        sock.close()
        raise WorkerExit(EXIT_OK, "disconnect fault")
    if fault.freeze_ms:
        time.sleep(fault.freeze_ms / 1000.0)
        return True
    return False


def setup_logging() -> None:
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s",
    )


def _on_signal(signum: int, _frame: FrameType | None) -> NoReturn:
    raise WorkerExit(EXIT_OK, f"received {signal.Signals(signum).name}")


def handle_signals() -> None:
    """SIGTERM and SIGINT end the worker normally (``WorkerExit(EXIT_OK)`` from the loop)."""
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)


def ignore_signals() -> None:
    """For the cleanup after the loop, which a second signal must not cut short."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def batch_scheduling() -> bool:
    """Put the process's threads in ``SCHED_BATCH`` (those started later inherit it), when
    ``BATCH_SCHEDULING`` says so and the platform has it (not Windows, not Python under Wine);
    True if it did. A refusal is logged and the worker goes on under the normal policy."""
    setter = getattr(os, "sched_setscheduler", None)
    if not BATCH_SCHEDULING or setter is None:
        return False
    # The policy is a thread's own: every thread there is already (numpy's import starts one),
    # the calling one last, so that a thread started meanwhile inherits it.
    try:
        threads = [int(tid) for tid in os.listdir("/proc/self/task")]
    except OSError:
        threads = []
    try:
        for tid in [*threads, 0]:
            with contextlib.suppress(ProcessLookupError):  # a thread that has ended since
                setter(tid, os.SCHED_BATCH, os.sched_param(0))
    except OSError as e:
        _log.warning("cannot switch to SCHED_BATCH, keeping the normal policy: %s", e)
        return False
    return True


def serve(log: logging.Logger, what: str, instance_id: str, body: Callable[[], None]) -> int:
    """Run ``body`` (connect, handshake, loop) and turn how it ended into the exit code.

    ``what`` names the worker in the log lines ("sim worker", "mt5 worker"). The worker is put
    in ``SCHED_BATCH`` (``batch_scheduling``) before ``body`` starts any thread.
    """
    batch_scheduling()
    try:
        body()
    except WorkerExit as e:
        level = logging.INFO if e.code == EXIT_OK else logging.ERROR
        log.log(level, "%s stopped: instance=%s exit=%d (%s)", what, instance_id, e.code, e.reason)
        return e.code
    except Exception:
        log.exception(
            "%s stopped: instance=%s exit=%d (unexpected error)", what, instance_id, EXIT_ERROR
        )
        return EXIT_ERROR
    return EXIT_OK  # pragma: no cover - the loop only returns by raising WorkerExit
