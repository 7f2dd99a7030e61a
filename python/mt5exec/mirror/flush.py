"""One pipeline for all the mirror's writes: the execution streams of every instance, the
state keys, the instance events and the ticks go to Redis together, at most every
``gap`` seconds. A batch costs the server's event loop about as much to send as a few events
cost to encode (the write to the socket, the wake-up for its replies, the tasks around them):
with each writer sending its own, the mirror sent ~2 batches per order and per tick
(benchmarks/results/redis_mirror_notes.json).

A writer hands in a ``collect`` function and waits: at the next flush, ``collect`` queues its
commands on the shared batch (reading what it has to write only then: everything that came
meanwhile goes in the same batch) and returns a function that checks its replies."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from mt5exec.mirror.client import Batch, Connection

# Checks a part's replies (raises to end the session, e.g. Resync).
Check = Callable[[list[Any]], None]
# Queues a part's commands on the batch; its check (None: nothing to check).
Collect = Callable[[Batch], Check | None]


class Flusher:
    """Sends what the writers collect, one batch at a time: the first part waits ``first``
    seconds for those that follow it (the RPC that made an event answers first), and batches
    start at least ``gap`` seconds apart."""

    def __init__(self, client: Connection, first: float, gap: float) -> None:
        self._client = client
        self._first = first
        self._gap = gap
        self._parts: list[Collect] = []
        self._wake = asyncio.Event()
        self._done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._last = 0.0
        # Batches sent (for the tests and the benchmark's notes).
        self.batches = 0

    async def submit(self, collect: Collect) -> None:
        """Returns once what ``collect`` queued is written (and its check passed)."""
        self._parts.append(collect)
        self._wake.set()
        await asyncio.shield(self._done)

    async def run(self) -> None:
        """Flushes until cancelled, or until a batch fails (that error ends it)."""
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            await asyncio.sleep(max(self._first, self._last + self._gap - loop.time()))
            self._wake.clear()
            parts, self._parts = self._parts, []
            done, self._done = self._done, loop.create_future()
            try:
                batch = Batch()
                checks: list[tuple[int, int, Check]] = []
                for collect in parts:
                    start = len(batch)
                    check = collect(batch)
                    if check is not None:
                        checks.append((start, len(batch), check))
                self._last = loop.time()
                replies = await self._client.execute(batch)
                self.batches += 1
                for start, end, check in checks:
                    check(replies[start:end])
            except BaseException:
                done.cancel()  # (its writers end with the session)
                raise
            done.set_result(None)
