"""The Redis mirror's flush: the parts its writers hand in together go to Redis as one
pipeline, each part's check gets its own replies, and a failed check ends the flush (the
mirror's session, which then resyncs). Against a real redis-server."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from mt5exec.config import load_config
from mt5exec.mirror.client import Batch, Connection
from mt5exec.mirror.flush import Check, Flusher
from mt5exec.mirror.state import Resync
from redis_server import RedisServer, redis_server


@pytest.fixture(scope="module")
def rs() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


def _connection(rs: RedisServer) -> Connection:
    return Connection(load_config(env={"MT5EXEC_REDIS_URL": rs.url}).redis)


def test_parts_handed_in_together_are_one_batch(rs: RedisServer) -> None:
    seen: dict[str, list[Any]] = {}

    def part(name: str) -> Any:
        def collect(pipe: Batch) -> Check:
            pipe.set(f"flush:{name}", name)
            pipe.commands.append(("INCR", "flush:counter"))

            def check(replies: list[Any]) -> None:
                seen[name] = replies

            return check

        return collect

    async def main() -> int:
        client = _connection(rs)
        flush = Flusher(client, first=0.0, gap=0.0)
        runner = asyncio.create_task(flush.run())
        try:
            async with asyncio.timeout(60):
                await asyncio.gather(*(flush.submit(part(n)) for n in ("a", "b", "c")))
            return flush.batches
        finally:
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
            await client.close()

    rs.client().delete("flush:counter")
    batches = asyncio.run(main())
    assert batches == 1
    # Each check had its own two replies, in the order the parts came.
    assert seen == {"a": [b"OK", 1], "b": [b"OK", 2], "c": [b"OK", 3]}
    r = rs.client()
    assert [r.get(f"flush:{n}") for n in "abc"] == ["a", "b", "c"]


def test_a_part_collects_what_came_until_the_flush(rs: RedisServer) -> None:
    # What a writer has when the batch goes, not when it handed its part in.
    pending = ["first"]

    def collect(pipe: Batch) -> None:
        pipe.set("flush:late", ",".join(pending))

    async def main() -> None:
        client = _connection(rs)
        flush = Flusher(client, first=0.0, gap=0.0)
        submitted = asyncio.create_task(flush.submit(collect))
        await asyncio.sleep(0)  # handed in; the flush has not run
        pending.append("second")
        runner = asyncio.create_task(flush.run())
        try:
            async with asyncio.timeout(60):
                await submitted
        finally:
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
            await client.close()

    asyncio.run(main())
    assert rs.client().get("flush:late") == "first,second"


def test_a_failed_check_ends_the_flush(rs: RedisServer) -> None:
    def collect(pipe: Batch) -> Check:
        pipe.set("flush:checked", "1")

        def check(replies: list[Any]) -> None:
            raise Resync("gone")

        return check

    async def main() -> tuple[BaseException | None, bool]:
        client = _connection(rs)
        flush = Flusher(client, first=0.0, gap=0.0)
        runner = asyncio.create_task(flush.run())
        submitted = asyncio.create_task(flush.submit(collect))
        try:
            async with asyncio.timeout(60):
                await asyncio.wait([runner])
            await asyncio.gather(submitted, return_exceptions=True)
            return runner.exception(), submitted.cancelled()
        finally:
            await client.close()

    error, writer_cancelled = asyncio.run(main())
    assert isinstance(error, Resync)
    assert writer_cancelled  # (it ends with the session)


def test_a_batch_whose_caller_is_cancelled_is_still_written(rs: RedisServer) -> None:
    # As a thread's would: what a connection was given lands before close() returns (the
    # next connection's resume reads Redis after it).
    async def main() -> None:
        client = _connection(rs)
        await client.call("ping")
        batch = Batch()
        for i in range(1000):
            batch.set(f"flush:cancelled:{i}", str(i))
        caller = asyncio.create_task(client.execute(batch))
        await asyncio.sleep(0)  # given to the connection
        caller.cancel()
        await asyncio.gather(caller, return_exceptions=True)
        async with asyncio.timeout(60):
            await client.close()

    asyncio.run(main())
    assert rs.client().get("flush:cancelled:999") == "999"
