"""The engine's end of a worker's socket in the worker tests (test_sim_worker*.py and the MT5
worker's, through mt5_worker_support.py): frames read against deadlines, frames sent."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Any

from mt5exec.terminal.v1 import worker_pb2 as pb
from mt5exec.workers.protocol import FrameReader, send_frame


class WorkerLink:
    """A connected worker's frames. The timeouts are deadlines for a worker that does not
    answer: on a loaded machine a working one may take seconds to start or to be scheduled."""

    def __init__(self) -> None:
        self.conn: socket.socket | None = None
        self.reader = FrameReader()
        self.pending: list[bytes] = []

    def read(self, timeout: float = 60.0) -> pb.WorkerFrame:
        assert self.conn is not None
        deadline = time.monotonic() + timeout
        while not self.pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no frame from the worker")
            self.conn.settimeout(remaining)
            self.pending.extend(self.reader.recv_from(self.conn))
        frame = pb.WorkerFrame()
        frame.ParseFromString(self.pending.pop(0))
        return frame

    def read_until(
        self, done: str | Callable[[pb.WorkerFrame], bool], timeout: float = 60.0
    ) -> list[pb.WorkerFrame]:
        """Frames up to and including the first one ``done`` accepts (a kind or a predicate)."""
        frames = []
        deadline = time.monotonic() + timeout
        while True:
            frame = self.read(max(0.01, deadline - time.monotonic()))
            frames.append(frame)
            if (frame.WhichOneof("body") == done) if isinstance(done, str) else done(frame):
                return frames

    def send(self, **body: Any) -> None:
        assert self.conn is not None
        send_frame(self.conn, pb.EngineFrame(**body))
