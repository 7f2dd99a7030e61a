"""The Redis connection of the mirror, from ``[redis]``.

A blocking redis-py client whose commands run on one thread of their own, in the order they
are given: the event loop that serves the RPCs only queues them. redis-py makes the connection
(TLS, password, database) and sends the few single commands; the mirror's many writes go as a
``Batch``: plain argument tuples, packed by hiredis and their replies parsed by hiredis on the
same connection, ~7x less CPU per command than a redis-py pipeline (whose per-command Python
held the GIL, and so the event loop, for ~0.7 ms an order)."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import hiredis
import redis
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.retry import Retry

from mt5exec.config import RedisConfig

Arg = str | int | float | bytes


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
    """One server's connection (made at its first command, on the thread). ``open`` reads
    the password file off the event loop (again at every reconnect: it may have changed)."""

    def __init__(self, config: RedisConfig, password: str | None = None) -> None:
        options: dict[str, Any] = {}
        if password is not None:
            options["password"] = password
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

    async def execute(self, batch: Batch) -> list[Any]:
        """Sends a batch; its replies (an error reply raises ResponseError)."""
        if not batch.commands:
            return []
        loop = asyncio.get_running_loop()
        result: list[Any] = await loop.run_in_executor(self._thread, self._send, batch.commands)
        return result

    def _send(self, commands: list[tuple[Arg, ...]]) -> list[Any]:
        """On the thread: the commands in one write, then every reply."""
        pool = self._redis.connection_pool
        conn = pool.get_connection()
        try:
            sock = conn._sock  # connected by get_connection (TLS included)
            assert sock is not None
            sock.sendall(b"".join([hiredis.pack_command(c) for c in commands]))
            reader = hiredis.Reader(replyError=ResponseError)
            replies: list[Any] = []
            while len(replies) < len(commands):
                data = sock.recv(1 << 16)
                if not data:
                    raise RedisConnectionError("Redis closed the connection")
                reader.feed(data)
                while (reply := reader.gets()) is not False:
                    replies.append(reply)
        except BaseException:
            # (replies may be left unread: the connection is not used again)
            conn.disconnect()  # type: ignore[no-untyped-call]
            raise
        finally:
            pool.release(conn)
        for reply in replies:
            if isinstance(reply, ResponseError):
                raise reply
        return replies

    async def call(self, command: str, *args: Any, **kwargs: Any) -> Any:
        """One command, e.g. ``call("xrevrange", stream, count=1)``."""
        method = getattr(self._redis, command)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, functools.partial(method, *args, **kwargs))

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._thread, self._redis.close)
        self._thread.shutdown(wait=False)
