"""/metrics under a flood of idle connections: at most MAX_CONNECTIONS hold a thread, those
over are closed at once, and the endpoint answers again when the flood ends."""

from __future__ import annotations

import os
import select
import socket
import time
import urllib.error
from pathlib import Path

from mt5exec.metrics import MAX_CONNECTIONS
from mt5exec.testing import ServerProcess

FLOOD = MAX_CONNECTIONS + 64
# Threads the server may start or end meanwhile for other reasons (its executor's, gRPC's).
SLACK = 16


def _threads(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def _closed_by_server(conn: socket.socket) -> bool:
    """Reads a readable connection: True when the server closed it."""
    try:
        return conn.recv(1) == b""
    except ConnectionError:
        return True


def test_a_connection_flood_holds_no_more_threads_than_the_cap(tmp_path: Path) -> None:
    with ServerProcess(tmp_path / "data") as server:
        assert "mt5exec_instances" in server.metrics()
        host, _, port = server.metrics_address.rpartition(":")
        baseline = _threads(server.pid)
        flood = [socket.create_connection((host, int(port)), timeout=60) for _ in range(FLOOD)]
        most = baseline
        try:
            # Idle connections (nothing sent): all but MAX_CONNECTIONS are closed at once.
            closed: set[socket.socket] = set()
            deadline = time.monotonic() + 60
            while len(closed) < FLOOD - MAX_CONNECTIONS:
                assert time.monotonic() < deadline, f"{len(closed)} of {FLOOD} closed"
                most = max(most, _threads(server.pid))
                open_ = [c for c in flood if c not in closed]
                readable, _, _ = select.select(open_, [], [], 0.1)
                closed.update(c for c in readable if _closed_by_server(c))
            most = max(most, _threads(server.pid))
        finally:
            for conn in flood:
                conn.close()
        print(f"server threads: {baseline} before {FLOOD} connections, {most} at most during")
        assert most <= baseline + MAX_CONNECTIONS + SLACK, (baseline, most)
        # The flood over, an authorized scrape is answered.
        deadline = time.monotonic() + 60
        while True:
            try:
                text = server.metrics()
                break
            except (urllib.error.URLError, ConnectionError) as e:
                failed = e
            assert time.monotonic() < deadline, f"/metrics does not answer: {failed}"
            time.sleep(0.1)
        assert "mt5exec_instances" in text
