"""The Redis mirror's connection reads its password file off the event loop (at every
reconnect): a file that is slow to read holds up no other task of the server."""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path

from mt5exec.config import load_config
from mt5exec.mirror.client import Connection


def test_the_password_file_is_read_off_the_event_loop(tmp_path: Path) -> None:
    # A FIFO: its read waits for a writer, and the writer comes once a callback of the loop
    # has run, which it cannot while the read holds the loop.
    fifo = tmp_path / "redis.password"
    os.mkfifo(fifo, 0o600)
    env = {"MT5EXEC_REDIS_URL": "redis://127.0.0.1:1/0", "MT5EXEC_REDIS_PASSWORD_FILE": str(fifo)}
    config = load_config(env=env).redis
    loop_ran = threading.Event()
    woken_by_the_loop: list[bool] = []

    def writer() -> None:
        # (past the generous deadline the read is released all the same: the test ends)
        woken_by_the_loop.append(loop_ran.wait(60))
        with fifo.open("w") as f:
            f.write("s3cret\n")

    async def main() -> Connection:
        thread = threading.Thread(target=writer)
        thread.start()
        opening = asyncio.create_task(Connection.open(config))
        await asyncio.sleep(0)  # the open has started: its read waits for the writer
        asyncio.get_running_loop().call_soon(loop_ran.set)
        connection = await opening
        await asyncio.to_thread(thread.join, 60)
        await connection.close()
        return connection

    connection = asyncio.run(main())
    assert woken_by_the_loop == [True]
    assert connection._redis.connection_pool.connection_kwargs["password"] == "s3cret"
