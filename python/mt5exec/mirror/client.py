"""The Redis connection of the mirror, from ``[redis]``.

One connection on the server's event loop (redis-py's asyncio client makes it: TLS, password,
database), used by one operation at a time, in the order they are given. redis-py sends the
few single commands; the mirror's many writes go as a ``Batch``: plain argument tuples, packed
by hiredis, written at once, their replies parsed by hiredis: no Python per command beyond its
tuple, and no thread: a thread of its own cost the server a hand-over per batch (the pool's
queue, the GIL taken back and forth, the loop woken from outside) and ~0.3 ms of CPU per order
(benchmarks/results/redis_mirror_notes.json)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import hiredis
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from mt5exec.config import RedisConfig

Arg = str | int | float | bytes
T = TypeVar("T")

# What a batch's write and replies may take before the connection is given up.
_TIMEOUT_S = 10.0


class Batch:
    """Commands sent together (one write, replies read at once), redis-py's pipeline methods
    the mirror uses, each queued as its arguments."""

    __slots__ = ("commands",)

    def __init__(self) -> None:
        self.commands: list[tuple[Arg, ...]] = []

    def __len__(self) -> int:
        return len(self.commands)

    def set(self, key: str, value: str, px: int | None = None) -> None:
        if px:
            self.commands.append(("SET", key, value, "PX", px))
        else:
            self.commands.append(("SET", key, value))

    def delete(self, *keys: str) -> None:
        self.commands.append(("DEL", *keys))

    def exists(self, key: str) -> None:
        self.commands.append(("EXISTS", key))

    def hset(self, key: str, mapping: Mapping[str, Arg]) -> None:
        args: list[Arg] = ["HSET", key]
        for field, value in mapping.items():
            args += (field, value)
        self.commands.append(tuple(args))

    def hdel(self, key: str, *fields: str) -> None:
        self.commands.append(("HDEL", key, *fields))

    def sadd(self, key: str, member: str) -> None:
        self.commands.append(("SADD", key, member))

    def srem(self, key: str, member: str) -> None:
        self.commands.append(("SREM", key, member))

    def publish(self, channel: str, message: str) -> None:
        self.commands.append(("PUBLISH", channel, message))

    def xadd(
        self, stream: str, fields: Mapping[str, Arg], *, maxlen: int, nomkstream: bool = False
    ) -> None:
        """An entry with an id of Redis's making, the stream trimmed to ~``maxlen``."""
        args: list[Arg] = ["XADD", stream]
        if nomkstream:
            args.append("NOMKSTREAM")
        args += ("MAXLEN", "~", maxlen, "*")
        for field, value in fields.items():
            args += (field, value)
        self.commands.append(tuple(args))


class Connection:
    """One server's connection (made at its first command). ``open`` reads the password file
    off the event loop (again at every reconnect: it may have changed).

    Operations run one at a time in the order given, each to its end once begun: one whose
    caller is cancelled still completes (as a thread's would), and ``close`` waits for the
    last, so that what a connection sent has landed before the next one reads Redis."""

    def __init__(self, config: RedisConfig, password: str | None = None) -> None:
        options: dict[str, Any] = {}
        if password is not None:
            options["password"] = password
        if config.tls_ca_file is not None:
            options["ssl_ca_certs"] = str(config.tls_ca_file)
        # No retries inside redis-py: a pipeline sent again after a broken connection could
        # add its stream entries twice; the mirror reconnects itself and resumes from what
        # Redis has.
        self._redis: aioredis.Redis = aioredis.Redis.from_url(
            config.url,
            decode_responses=True,
            retry=Retry(NoBackoff(), 0),
            socket_timeout=_TIMEOUT_S,
            socket_connect_timeout=5.0,
            single_connection_client=True,
            **options,
        )
        self._last: asyncio.Task[Any] | None = None
        self._conn: aioredis.connection.AbstractConnection | None = None

    @classmethod
    async def open(cls, config: RedisConfig) -> Connection:
        """A connection with the password of ``config.password_file``, read on a thread (a
        slow or stuck file system must not hold up the server's event loop)."""
        password = None
        if config.password_file is not None:
            text = await asyncio.to_thread(config.password_file.read_text)
            password = text.strip()
        return cls(config, password)

    def pipeline(self) -> Batch:
        return Batch()

    async def _in_turn(self, operation: Callable[[], Awaitable[T]]) -> T:
        """Runs ``operation`` after the one before it (to its end, its caller cancelled or
        not)."""
        before = self._last

        async def run() -> T:
            if before is not None:
                await asyncio.wait([before])
            return await operation()

        task = self._last = asyncio.create_task(run())
        # (an error of one whose caller was cancelled is retrieved here: nobody awaits it)
        task.add_done_callback(lambda t: t.cancelled() or t.exception())
        return await asyncio.shield(task)

    async def execute(self, batch: Batch) -> list[Any]:
        """Sends a batch; its replies (an error reply raises ResponseError)."""
        if not batch.commands:
            return []
        commands = batch.commands
        return await self._in_turn(lambda: self._send(commands))

    async def _send(self, commands: list[tuple[Arg, ...]]) -> list[Any]:
        """The commands in one write, then every reply."""
        conn = self._conn
        if conn is None:
            await self._redis.initialize()
            conn = self._conn = self._redis.connection
            assert conn is not None
        try:
            if not conn.is_connected:
                await conn.connect()  # type: ignore[no-untyped-call]
            reader, writer = conn._reader, conn._writer
            assert reader is not None and writer is not None
            parser = hiredis.Reader(replyError=ResponseError)
            replies: list[Any] = []
            async with asyncio.timeout(_TIMEOUT_S):
                # (hiredis's stub types the command as a tuple of one element)
                writer.write(b"".join([hiredis.pack_command(c) for c in commands]))  # type: ignore[arg-type]
                await writer.drain()
                while len(replies) < len(commands):
                    data = await reader.read(1 << 16)
                    if not data:
                        raise RedisConnectionError("Redis closed the connection")
                    parser.feed(data)
                    while (reply := parser.gets()) is not False:
                        replies.append(reply)
        except TimeoutError:
            await conn.disconnect(nowait=True)
            raise RedisTimeoutError("Redis did not answer a batch in time") from None
        except BaseException:
            # (replies may be left unread: the connection is not used again)
            await conn.disconnect(nowait=True)
            raise
        for reply in replies:
            if isinstance(reply, ResponseError):
                raise reply
        return replies

    async def call(self, command: str, *args: Any, **kwargs: Any) -> Any:
        """One command, e.g. ``call("xrevrange", stream, count=1)``."""
        method = getattr(self._redis, command)
        return await self._in_turn(lambda: method(*args, **kwargs))

    async def close(self) -> None:
        """Closes the connection after the operations given (their errors are theirs)."""
        if self._last is not None:
            await asyncio.wait([self._last])
            if not self._last.cancelled():
                self._last.exception()  # (retrieved: reported to its caller)
        await self._redis.aclose(close_connection_pool=True)
