"""The Redis connection of the mirror, from ``[redis]``.

A blocking redis-py client whose commands run on one thread of their own, in the order they
are given: the event loop that serves the RPCs only queues them. Sending, waiting for and
parsing Redis's answers (system calls, most of the mirror's cost) happen off it, without the
GIL for the system calls."""

from __future__ import annotations

import asyncio
import functools
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.client import Pipeline
from redis.retry import Retry

from mt5exec.config import RedisConfig


class Connection:
    """One server's connection (made at its first command, on the thread)."""

    def __init__(self, config: RedisConfig) -> None:
        options: dict[str, Any] = {}
        if config.password_file is not None:
            options["password"] = config.password_file.read_text().strip()
        if config.tls_ca_file is not None:
            options["ssl_ca_certs"] = str(config.tls_ca_file)
        # No retries inside redis-py: a pipeline sent again after a broken connection could
        # add its stream entries twice; the mirror reconnects itself and resumes from what
        # Redis has.
        self._redis: redis.Redis = redis.Redis.from_url(
            config.url,
            decode_responses=True,
            retry=Retry(NoBackoff(), 0),
            socket_timeout=10.0,
            socket_connect_timeout=5.0,
            # One thread sends every command: its pool never holds more than one connection
            # (a single-connection client would connect in its constructor, on the loop).
            **options,
        )
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="mt5exec-redis")

    def pipeline(self) -> Pipeline:
        return self._redis.pipeline(transaction=False)

    async def execute(self, pipe: Pipeline) -> list[Any]:
        """Sends a pipeline; its answers (an error raises)."""
        loop = asyncio.get_running_loop()
        result: list[Any] = await loop.run_in_executor(self._thread, pipe.execute)
        return result

    async def call(self, command: str, *args: Any, **kwargs: Any) -> Any:
        """One command, e.g. ``call("xrevrange", stream, count=1)``."""
        method = getattr(self._redis, command)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, functools.partial(method, *args, **kwargs))

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._thread, self._redis.close)
        self._thread.shutdown(wait=False)
