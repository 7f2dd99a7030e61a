"""The history database in a child process of the server, and the server's handle on it.

DuckDB allows one writing process, and its Python API holds the GIL while it
appends and commits; in the server's own process a flush stalled the event
loop for milliseconds (p99 of every RPC went from ~1 ms to ~4 ms). So the
server owns a child process that owns the DuckDB file and batches what it gets
with ``HistoryWriter``. Execution events the child reads itself, from the
engine's execution logs (``log_tail``): nothing per event passes through the
server. Instances and ticks the server writes as already-encoded protobuf bytes
to the child's stdin (non-blocking, from the event loop). The child exits when
its stdin closes, so it never outlives the server, or on a SIGTERM (both after handling and
writing what it was sent).

Frames on stdin: one kind byte, a 4-byte big-endian length, the payload.
``I`` an encoded ``Instance``, ``O`` an ``Order``, ``T`` a
``StreamTicksResponse`` (tick storage), ``A`` an audit record
(``mt5exec.auth.audit``: the child logs it and writes it to the ``audit`` table, kept and
retried like every row until written), ``F`` a flush request whose 8-byte id
the child echoes on stdout (as an ``F`` frame) once everything logged and sent
before it is written, or as an ``E`` frame when it could not be written yet
(the child keeps it and retries), ``Q`` a ListAuditRecords query (an 8-byte id and the
filters), answered on stdout by a ``Q`` frame (the id, ``+`` and the encoded response, or
``-`` and an error), ``C`` an encoded StreamAccountResponse (account snapshots,
``mt5exec.storage.accounts``), ``K`` a risk event (JSON of the ``risk_events`` columns),
``H`` a history read for the API (an 8-byte id, then
``history_reads.pack``), answered by a ``Q`` frame too (``!`` and field, reason and message
separated by NUL bytes for a request it refuses); reads run on a thread of their own, so
neither the writer nor this loop waits for them. The child writes ``R`` on stdout when the
database is open.

Audit records leave the server in batches, one write per event loop iteration however many
calls ended in it; a flush, a query and ``close`` send those waiting first.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import select
import signal
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, TypeVar

from google.protobuf.message import DecodeError

from mt5exec.auth import principal
from mt5exec.auth.principal import Principal

if TYPE_CHECKING:
    from mt5exec.auth.audit_records import Row
    from mt5exec.storage import history_reads
    from mt5exec.storage.accounts import AccountSnapshots
    from mt5exec.storage.history import HistoryWriter
    from mt5exec.storage.log_tail import LogTail

_HEADER = struct.Struct(">cI")
_T = TypeVar("_T")
log = logging.getLogger("mt5exec.history")


class HistoryUnavailable(RuntimeError):
    """The history process could not start (bad path, database locked, newer schema), is
    gone, or cannot write at the moment (a flush)."""


class HistoryReadRefused(ValueError):
    """The history refused a read as asked (a page token it did not make): the field, a
    stable reason, the message."""

    def __init__(self, field: str, reason: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.reason = reason


# ---------------------------------------------------------------------------- the child


def _read_exact(stream: BinaryIO, n: int) -> bytes | None:
    data = stream.read(n)
    return data if data is not None and len(data) == n else None


def run_child(
    db: Path,
    flush_interval_ms: int,
    batch_size: int,
    tick_retention_days: float = 0.0,
    instances_dir: Path | None = None,
    account_interval_s: float = 60.0,
    reads_fd: int | None = None,
) -> int:
    from mt5exec.auth import audit_records
    from mt5exec.storage.accounts import AccountSnapshots
    from mt5exec.storage.history import HistoryError, HistoryWriter
    from mt5exec.storage.log_tail import LogTail
    from mt5exec.storage.ticks import TickStore
    from mt5exec.v1 import common_pb2

    # Below the server and the workers: history can wait, orders cannot. SCHED_IDLE runs
    # only on otherwise idle CPU and yields at once when the server wakes up.
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):
        os.nice(19)
    writer = HistoryWriter(db, flush_interval_ms=flush_interval_ms, batch_size=batch_size)
    try:
        writer.start()
    except HistoryError as e:
        print(f"history: {e}", file=sys.stderr, flush=True)
        return 3
    ticks = TickStore(writer.cursor, tick_retention_days) if tick_retention_days else None
    tail, tailer = None, None
    stop_tailing = threading.Event()
    if instances_dir is not None:
        stored = dict(writer.query("SELECT instance_id, max(sequence) FROM executions GROUP BY 1"))
        tail = LogTail(
            instances_dir, writer.record_execution, stored, backlog=lambda: writer.pending
        )
        tailer = threading.Thread(
            target=_tail_logs,
            args=(tail, flush_interval_ms / 1000.0, stop_tailing),
            name="history-log-tail",
            daemon=True,
        )
        tailer.start()
    accounts = AccountSnapshots(writer.record_row, account_interval_s)
    threading.Thread(
        target=accounts.run_timer, args=(stop_tailing,), name="history-accounts", daemon=True
    ).start()
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    out_lock = threading.Lock()

    def answer_frame(query_id: bytes, answer: bytes) -> None:
        with out_lock:
            stdout.write(_HEADER.pack(b"Q", 8 + len(answer)) + query_id + answer)
            stdout.flush()

    reader = None
    if reads_fd is not None:
        reader = threading.Thread(
            target=_serve_reads,
            args=(os.fdopen(reads_fd, "rb"), writer, answer_frame),
            name="history-read",
            daemon=True,
        )
        reader.start()
    audit_records.configure_log()
    deferred = _Deferred(writer, accounts)
    sigterm = _on_sigterm()
    stdout.write(_HEADER.pack(b"R", 0))
    stdout.flush()

    def handle(kind: bytes, payload: bytes) -> None:
        try:
            if kind == b"A":
                deferred.audit(payload)
            elif kind == b"C":
                deferred.account(payload)
            elif kind == b"K":
                writer.record_row("risk_events", _risk_row(payload))
            elif kind == b"I":
                writer.record_instance(common_pb2.Instance.FromString(payload))
            elif kind == b"O":
                writer.record_order(common_pb2.Order.FromString(payload))
        except (DecodeError, ValueError, KeyError, TypeError, EOFError) as e:
            deferred.skip(kind, e)
            return
        if kind == b"T" and ticks is not None:
            ticks.add(payload)
        elif kind == b"F":
            deferred.run()
            # Everything logged before the flush request, then everything sent.
            written = tail is None or tail.drain(writer.flush)
            if ticks is not None:
                ticks.flush()
            written = writer.flush() and written
            with out_lock:
                stdout.write(_HEADER.pack(b"F" if written else b"E", len(payload)) + payload)
                stdout.flush()
        elif kind == b"Q":
            deferred.run()
            answer_frame(payload[:8], _query(writer, payload[8:]))

    try:
        for kind, payload in _frames(stdin.fileno(), deferred.timeout, sigterm):
            if kind is not None:
                handle(kind, payload)
            else:
                deferred.log()
                if deferred.timeout() == 0.0:
                    deferred.run()
    finally:
        # However the frames end (stdin closed, a SIGTERM, an exception): what was read is
        # logged and written.
        try:
            deferred.run()
        except Exception:
            log.exception("history: records put off could not all be handled")
        stop_tailing.set()
        if tail is not None and tailer is not None:
            tailer.join()
            with contextlib.suppress(OSError):
                tail.drain(writer.flush)
        if ticks is not None:
            ticks.flush()
        writer.close()
    return 0


def _on_sigterm() -> int:
    """A SIGTERM (a supervisor, a cgroup stopping) ends the child as the end of its stdin
    does: the handler only makes the returned descriptor readable, and ``_frames`` ends."""
    wake, woken = os.pipe()
    os.set_blocking(woken, False)

    def handler(signum: int, frame: object) -> None:
        with contextlib.suppress(OSError):
            os.write(woken, b"T")

    signal.signal(signal.SIGTERM, handler)
    return wake


def _frames(
    fd: int, timeout: Callable[[], float | None], stop: int
) -> Iterator[tuple[bytes | None, bytes]]:
    """The frames of ``fd`` until it closes or ``stop`` becomes readable (a SIGTERM: what
    ``fd`` holds then is read and its frames given, nothing later; what is left of a frame is
    dropped). While ``timeout()`` says records wait (seconds until they are due), it sleeps
    that long and then reads all the frames that came meanwhile at once, rather than waking
    up for each (on a loaded machine a wake-up cost more than the frame's work); with
    nothing waiting it reads as soon as bytes come. A read's frames are followed by
    ``(None, b"")``, as is a wait that found no bytes."""
    buffer = b""
    size = _HEADER.size
    stopping, reads_left = False, _STOP_READS
    while True:
        if not stopping:
            wait = timeout()
            if wait is None:
                ready = select.select([fd, stop], [], [])[0]
            else:
                ready = select.select([stop], [], [], wait)[0] or select.select([fd], [], [], 0)[0]
            stopping = stop in ready
        if stopping:
            reads_left -= 1
            if reads_left < 0 or not select.select([fd], [], [], 0)[0]:
                return
        elif not ready:
            yield None, b""
            continue
        chunk = os.read(fd, _READ_SIZE)
        if not chunk:
            return
        buffer = buffer + chunk if buffer else chunk
        at, end = 0, len(buffer)
        while at + size <= end:
            kind, length = _HEADER.unpack_from(buffer, at)
            if at + size + length > end:
                break
            yield kind, buffer[at + size : at + size + length]
            at += size + length
        buffer = buffer[at:]
        yield None, b""


_READ_SIZE = 1 << 16
# After a SIGTERM, at most this many reads of what stdin holds (a server still writing does
# not keep the child).
_STOP_READS = 256
# How long audit records and account events wait to be handled with the others that come
# meanwhile (the longest a flush request or an audit query that comes then waits too), and
# how many may wait.
DEFER_S = 0.1
DEFER_MOST = 1000


class _Deferred:
    """Audit rows and account events, handled in order in bunches (at most ``DEFER_S``
    after the first came, before a flush or a query, at ``DEFER_MOST``, or as the child
    ends): on a loaded machine a record handled alone as it came cost 4-8 times the CPU of
    one among others (the woken process runs from cold caches): an audit record 115-200 µs
    against ~30. The audit's log lines are not put off: those of one read are written in one
    write once its frames are handled (``log``)."""

    def __init__(self, writer: HistoryWriter, accounts: AccountSnapshots) -> None:
        self._writer = writer
        self._accounts = accounts
        # the audit's log lines not written yet, and when the first of them was read
        self._lines: list[str] = []
        self._lines_at = 0.0
        # audit rows, and account events (payload, monotonic time, time in µs), in order
        self._rows: list[Row] = []
        self._events: list[tuple[bytes, float, int]] = []
        self._due = 0.0
        self.skipped = 0

    def audit(self, payload: bytes) -> None:
        """An audit record: its log line for this read's write, its row put off."""
        from mt5exec.auth import audit_records

        row, line = audit_records.describe(payload)
        if not self._lines:
            self._lines_at = time.time()
        self._lines.append(line)
        self._put_off(self._rows, row)

    def account(self, payload: bytes) -> None:
        self._put_off(self._events, (payload, time.monotonic(), time.time_ns() // 1000))

    def _put_off(self, items: list[_T], item: _T) -> None:
        if not self._rows and not self._events:
            self._due = time.monotonic() + DEFER_S
        items.append(item)
        if len(self._rows) + len(self._events) >= DEFER_MOST:
            self.run()

    def timeout(self) -> float | None:
        """Seconds until the records waiting are due; None when none waits."""
        return max(0.0, self._due - time.monotonic()) if self._rows or self._events else None

    def log(self) -> None:
        """Writes the audit's log lines not written yet (in one write)."""
        lines, self._lines = self._lines, []
        _log_audit_lines(lines, self._lines_at)

    def run(self) -> None:
        """The log lines, then every row and event waiting."""
        self.log()
        rows, self._rows = self._rows, []
        events, self._events = self._events, []
        for row in rows:
            if not self._writer.record_audit(row):
                log.error(
                    "history: audit record %d not queued (the writer is closed or full); it "
                    "is in the mt5exec.audit log only",
                    row[0],
                )
        for payload, now, at_us in events:
            try:
                self._accounts.add(payload, now, at_us)
            except (DecodeError, ValueError, KeyError, TypeError) as e:
                self.skip(b"C", e)

    def skip(self, kind: bytes, error: Exception) -> None:
        """One bad record is skipped (and said); the history goes on with the next."""
        self.skipped += 1
        log.error(
            "history: skipped an undecodable %r record (%s); %d so far", kind, error, self.skipped
        )


def _log_audit_lines(lines: list[str], at: float) -> None:
    """Writes the audit's log lines in one write to the ``mt5exec.audit`` handler's stream,
    each line as that handler formats a record of it made at ``at`` (one record formatted
    for all: the lines of one read share the time it was read). A logger set up otherwise
    (not one stream handler) gets a record a line."""
    if not lines:
        return
    from mt5exec.auth import audit_records

    logger = logging.getLogger(audit_records.LOGGER)
    handler = logger.handlers[0] if len(logger.handlers) == 1 else None
    if not isinstance(handler, logging.StreamHandler) or not logger.isEnabledFor(logging.INFO):
        for line in lines:
            audit_records.log_line(line)
    else:
        record = logger.makeRecord(logger.name, logging.INFO, __file__, 0, "\0", (), None)
        record.created, record.msecs = at, (at - int(at)) * 1000 // 1
        before, _, after = handler.format(record).partition("\0")
        end = after + handler.terminator
        text = "".join([before + line + end for line in lines])
        with handler.lock or contextlib.nullcontext():
            handler.stream.write(text)
            handler.flush()


# What a client is told of a failed read: the database's own text (its SQL, paths, values)
# goes to the server log only.
_FAILED = b"the read failed in the history database (the server log says why)"


def _query(writer: HistoryWriter, params: bytes) -> bytes:
    """``+`` and the encoded ListAuditRecordsResponse, or ``-`` and why not."""
    from mt5exec.auth import audit_records

    try:
        return b"+" + audit_records.answer(writer.query, params)
    except Exception:  # a query must not end the history process
        log.exception("history: audit query failed")
        return b"-" + _FAILED


_RISK_COLUMNS = (
    "event",
    "instance_id",
    "owner",
    "detail",
    "reason",
    "principal_kind",
    "subject",
    "role",
    "principal_owner",
)


def _risk_row(payload: bytes) -> tuple[object, ...]:
    """A ``K`` frame's JSON as a ``risk_events`` row (time in µs first)."""
    event = json.loads(payload)
    return (int(event["time_us"]), *(event.get(c) for c in _RISK_COLUMNS))


def _read_priority() -> None:
    """A read answers an RPC: its thread leaves the child's idle class where it may."""
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setscheduler(threading.get_native_id(), os.SCHED_OTHER, os.sched_param(0))


def _serve_reads(
    source: BinaryIO, writer: HistoryWriter, answer_frame: Callable[[bytes, bytes], None]
) -> None:
    """The API's reads (``H`` frames on a pipe of their own), one after the other, until
    the pipe closes: neither behind the frames of stdin nor in the child's idle class. The
    last answers are kept until the writer commits again (``history_reads.Answers``)."""
    from mt5exec.storage import history_reads

    _read_priority()
    answers = history_reads.Answers()
    while True:
        header = _read_exact(source, _HEADER.size)
        if header is None:
            return
        _, length = _HEADER.unpack(header)
        payload = _read_exact(source, length)
        if payload is None:
            return
        answer_frame(payload[:8], _read(writer, payload[8:], answers))


def _read(writer: HistoryWriter, payload: bytes, answers: history_reads.Answers) -> bytes:
    """``+`` and the encoded response of a history read, ``!`` and why it is refused (field,
    reason, message), or ``-`` and what failed."""
    from mt5exec.storage import history_reads

    commits = dict(writer.commits)  # before the read: a commit during it drops its answer
    try:
        return b"+" + writer.read(lambda query: answers.answer(query, payload, commits))
    except history_reads.BadRequest as e:
        return b"!" + "\0".join((e.field, e.reason, str(e))).encode()
    except Exception:  # a read must not end the history process
        log.exception("history: read failed")
        return b"-" + _FAILED


def _tail_logs(tail: LogTail, interval: float, stop: threading.Event) -> None:
    """Polls the logs: at once (what they gained while no history process ran), then every
    interval, or soon again while the last poll left bytes unread."""
    while True:
        try:
            tail.poll()
        except OSError as e:  # the instances directory itself: retried at the next poll
            log.warning("history: cannot list the execution logs: %s", e)
        if stop.wait(0.01 if tail.behind else interval):
            return


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="mt5exec history writer (child of the server)")
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--flush-interval-ms", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=10_000)
    parser.add_argument("--tick-retention-days", type=float, default=0.0, help="0: no ticks")
    parser.add_argument(
        "--instances-dir", type=Path, default=None, help="where the execution logs are read"
    )
    parser.add_argument("--account-interval-s", type=float, default=60.0)
    parser.add_argument("--reads-fd", type=int, default=None, help="pipe of the API's reads")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s history %(levelname)s %(message)s")
    return run_child(
        args.db,
        args.flush_interval_ms,
        args.batch_size,
        args.tick_retention_days,
        args.instances_dir,
        args.account_interval_s,
        args.reads_fd,
    )


# ---------------------------------------------------------------------------- the server side


class HistoryProcess:
    """The server's handle: record_* never block; the child does the DuckDB work."""

    # Past this much unsent data the child is stuck: drop (and count) rather than grow.
    MAX_BUFFERED = 64 * 1024 * 1024

    def __init__(
        self,
        path: Path,
        flush_interval_ms: int = 200,
        batch_size: int = 10_000,
        tick_retention_days: float = 0.0,
        instances_dir: Path | None = None,
    ) -> None:
        """``instances_dir``: where the engine's execution logs are (none: no executions)."""
        self.path = path
        self.instances_dir = instances_dir
        self.tick_retention_days = tick_retention_days
        self.flush_interval_ms = flush_interval_ms
        self.batch_size = batch_size
        self.dropped = 0
        self._proc: asyncio.subprocess.Process | None = None
        self._acks: dict[int, asyncio.Future[None]] = {}
        self._queries: dict[int, asyncio.Future[bytes]] = {}
        self._next_id = 0
        self._reader: asyncio.Task[None] | None = None
        self._reads: asyncio.WriteTransport | None = None
        # Audit records waiting for this loop iteration's end (one write for all of them),
        # and who takes those that cannot be sent (the auditor, which logs them).
        self._audits: list[bytes] = []
        self.unsent_audits: Callable[[list[bytes]], None] | None = None

    async def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # The API's reads go on a pipe of their own (read by a thread of normal priority).
        reads_out, reads_in = os.pipe()
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "mt5exec.storage.history_process",
            "--db",
            str(self.path),
            "--flush-interval-ms",
            str(self.flush_interval_ms),
            "--batch-size",
            str(self.batch_size),
            "--tick-retention-days",
            str(self.tick_retention_days),
            *(() if self.instances_dir is None else ("--instances-dir", str(self.instances_dir))),
            "--reads-fd",
            str(reads_out),
            pass_fds=(reads_out,),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            # A session of its own (the workers have their process groups): a Ctrl-C in the
            # terminal reaches the server only, which stops the child in order (closes its
            # stdin); the child never outlives the server either way.
            start_new_session=True,
        )
        os.close(reads_out)
        self._reads, _ = await asyncio.get_running_loop().connect_write_pipe(
            asyncio.Protocol, os.fdopen(reads_in, "wb", buffering=0)
        )
        assert self._proc.stdout is not None
        try:
            header = await self._proc.stdout.readexactly(_HEADER.size)
        except asyncio.IncompleteReadError:
            self._reads.close()
            code = await self._proc.wait()
            raise HistoryUnavailable(
                f"history process for {self.path} exited with code {code}"
            ) from None
        if header[:1] != b"R":
            raise HistoryUnavailable(f"history process sent {header!r} instead of ready")
        self._reader = asyncio.create_task(self._read_acks())

    async def _read_acks(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        stdout = self._proc.stdout
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                kind, length = _HEADER.unpack(await stdout.readexactly(_HEADER.size))
                payload = await stdout.readexactly(length)
                if kind == b"Q":
                    query = self._queries.pop(int.from_bytes(payload[:8], "big"), None)
                    if query is not None and not query.done():
                        if payload[8:9] == b"+":
                            query.set_result(payload[9:])
                        elif payload[8:9] == b"!":
                            field, reason, message = payload[9:].decode().split("\0", 2)
                            query.set_exception(HistoryReadRefused(field, reason, message))
                        else:
                            query.set_exception(
                                HistoryUnavailable(payload[9:].decode(errors="replace"))
                            )
                elif kind in (b"F", b"E"):
                    ack = self._acks.pop(int.from_bytes(payload, "big"), None)
                    if ack is not None and not ack.done():
                        if kind == b"F":
                            ack.set_result(None)
                        else:
                            ack.set_exception(
                                HistoryUnavailable(
                                    "the history database cannot be written at the moment "
                                    "(see the server log); what it has not written is kept "
                                    "and retried"
                                )
                            )
        waiting: list[asyncio.Future[None] | asyncio.Future[bytes]] = [
            *self._acks.values(),
            *self._queries.values(),
        ]
        for future in waiting:
            if not future.done():
                future.set_exception(HistoryUnavailable("history process exited"))
        self._acks.clear()
        self._queries.clear()
        if self._proc.returncode not in (None, 0):
            log.error("history process exited with code %s", self._proc.returncode)

    def _send(
        self, kind: bytes, payload: bytes, reads: asyncio.WriteTransport | None = None
    ) -> bool:
        """Queues one frame for the child (an ``H`` one on the reads pipe); False (and
        counted in ``dropped``) when the child is gone or too far behind."""
        proc = self._proc
        if (
            proc is None
            or proc.returncode is not None
            or proc.stdin is None
            or proc.stdin.is_closing()
        ):
            self.dropped += 1
            return False
        if kind == b"H":
            if reads is None or reads.is_closing():
                return False
            reads.write(_HEADER.pack(kind, len(payload)) + payload)
            return True
        if proc.stdin.transport.get_write_buffer_size() > self.MAX_BUFFERED:
            self.dropped += 1
            return False
        proc.stdin.write(_HEADER.pack(kind, len(payload)) + payload)
        return True

    def record_instance(self, instance_bytes: bytes) -> None:
        self._send(b"I", instance_bytes)

    def record_order(self, order_bytes: bytes) -> None:
        self._send(b"O", order_bytes)

    def record_ticks(self, batch: bytes) -> None:
        """An encoded StreamTicksResponse (only kept when tick storage is on)."""
        self._send(b"T", batch)

    def record_accounts(self, batch: bytes) -> None:
        """An encoded StreamAccountResponse (the child decides which make a snapshot)."""
        self._send(b"C", batch)

    def record_risk_event(
        self,
        event: str,
        instance_id: str | None,
        owner: str | None,
        detail: dict[str, object],
        reason: str = "",
    ) -> None:
        """A kill switch, trading state or limits change, with the principal of the call
        (none outside a call: the server itself)."""
        try:
            who: Principal | None = principal.current()
        except LookupError:
            who = None
        record = {
            "time_us": time.time_ns() // 1000,
            "event": event,
            "instance_id": instance_id,
            "owner": owner,
            "detail": json.dumps(detail, sort_keys=True),
            "reason": reason or None,
            "principal_kind": who.kind if who else "server",
            "subject": who.subject if who else None,
            "role": who.role.value if who else None,
            "principal_owner": who.owner if who else None,
        }
        self._send(b"K", json.dumps(record).encode())

    def record_audit(self, record: bytes) -> bool:
        """Queues a packed audit record, sent with the others of this loop iteration; False
        when the child cannot take it (gone, or more than MAX_BUFFERED behind): the caller
        logs it itself."""
        proc = self._proc
        if (
            proc is None
            or proc.returncode is not None
            or proc.stdin is None
            or proc.stdin.is_closing()
            or proc.stdin.transport.get_write_buffer_size() > self.MAX_BUFFERED
        ):
            return False
        if not self._audits:
            asyncio.get_running_loop().call_soon(self._send_audits)
        self._audits.append(record)
        return True

    def _send_audits(self) -> None:
        audits, self._audits = self._audits, []
        if not audits:
            return
        proc = self._proc
        if (
            proc is None
            or proc.returncode is not None
            or proc.stdin is None
            or (proc.stdin.is_closing())
        ):
            if self.unsent_audits is not None:
                self.unsent_audits(audits)
            else:
                self.dropped += len(audits)
            return
        pack = _HEADER.pack
        proc.stdin.write(b"".join([pack(b"A", len(a)) + a for a in audits]))

    async def query_audit(self, params: bytes) -> bytes:
        """The encoded ListAuditRecordsResponse of packed filters (``audit_records``)."""
        return await self._ask(b"Q", params)

    async def read(self, request: bytes) -> bytes:
        """The encoded response of a history read (``history_reads.pack``);
        ``HistoryReadRefused`` for a request it refuses."""
        return await self._ask(b"H", request)

    async def _ask(self, kind: bytes, params: bytes) -> bytes:
        if self._proc is None or self._reader is None or self._reader.done():
            raise HistoryUnavailable("the history process is not running")
        self._next_id += 1
        query_id = self._next_id
        answer: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._queries[query_id] = answer
        try:
            self._send_audits()
            if not self._send(kind, query_id.to_bytes(8, "big") + params, self._reads):
                raise HistoryUnavailable(
                    "the history process is behind or gone: the query was not sent"
                )
            return await answer
        finally:
            self._queries.pop(query_id, None)

    async def flush(self) -> None:
        """Waits until everything sent so far is committed; ``HistoryUnavailable`` when the
        child is gone or cannot write now (it keeps what it has and retries)."""
        if self._proc is None or self._reader is None or self._reader.done():
            raise HistoryUnavailable("the history process is not running")
        self._next_id += 1
        flush_id = self._next_id
        ack: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._acks[flush_id] = ack
        try:
            self._send_audits()
            if not self._send(b"F", flush_id.to_bytes(8, "big")):
                raise HistoryUnavailable(
                    "the history process is behind or gone: the flush request was not sent"
                )
            await ack
        finally:
            self._acks.pop(flush_id, None)

    async def close(self) -> None:
        """Lets the child write everything and exit."""
        proc = self._proc
        if proc is None:
            return
        self._send_audits()
        if self._reads is not None:
            self._reads.close()
        if proc.stdin is not None and not proc.stdin.is_closing():
            proc.stdin.close()
            with contextlib.suppress(ConnectionError):
                await proc.stdin.wait_closed()
        await proc.wait()
        if self._reader is not None:
            await self._reader
        self._proc = None


if __name__ == "__main__":
    sys.exit(main())
