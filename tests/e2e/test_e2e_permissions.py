"""The server's files are private whatever the umask it was started with: the data dir and
every directory in it 0700 or stricter, every file 0600 or stricter."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

from tests.support import create_sim, market

from mt5exec.testing import ServerProcess
from mt5exec.v1 import stream_pb2


def _wide(root: Path) -> list[str]:
    """Paths under ``root`` (itself included) that the group or others may use."""
    found = []
    for path in [root, *root.rglob("*")]:
        if path.name == "server.log" and path.parent == root:
            continue  # the test harness's capture of the server's output, not the server's
        try:
            mode = stat.S_IMODE(path.lstat().st_mode)
        except FileNotFoundError:  # gone meanwhile (a temporary file)
            continue
        if mode & 0o077:
            found.append(f"{oct(mode)} {path.relative_to(root.parent)}")
    return found


def test_every_file_and_directory_is_private_under_a_wide_umask(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)  # there already, as an operator might have made it
    os.chmod(data, 0o755)
    old = os.umask(0o022)  # the usual one: files 0644 and directories 0755 by default
    try:
        server = ServerProcess(data).start()
    finally:
        os.umask(old)
    try:
        create_sim(server, "private")
        server.orders.PlaceOrder(market("private", "p-1"), timeout=10)
        # Its execution events are in the log (and on their way to the history database).
        call = server.streams.StreamExecutions(
            stream_pb2.StreamExecutionsRequest(instance_id="private", from_sequence=0),
            timeout=10,
        )
        next(iter(call))
        call.cancel()
        expected = [
            "journal/orders.journal",
            "history.duckdb",
            "instances/*/private/executions.log",
            "instances/*/private/instance.json",
            "instances/*/private/config/runtime.json",
            "logs/*/private/worker.log",
        ]
        deadline = time.monotonic() + 30
        while any(not list(data.glob(pattern)) for pattern in expected):
            missing = [p for p in expected if not list(data.glob(p))]
            assert time.monotonic() < deadline, f"never written: {missing}"
            time.sleep(0.1)
        assert _wide(data) == []
    finally:
        server.terminate()
        server.kill()
    # What a stop writes (the risk counters saved, the history flushed) is private too.
    assert _wide(data) == []
