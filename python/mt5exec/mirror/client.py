"""The Redis connection of the mirror, from ``[redis]``."""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from mt5exec.config import RedisConfig


def connect(config: RedisConfig) -> aioredis.Redis:
    """A client (connecting at its first command). No retries inside redis-py: a pipeline
    sent again after a broken connection could add its stream entries twice; the mirror
    reconnects itself and resumes from what Redis has."""
    options: dict[str, object] = {}
    if config.password_file is not None:
        options["password"] = config.password_file.read_text().strip()
    if config.tls_ca_file is not None:
        options["ssl_ca_certs"] = str(config.tls_ca_file)
    client: aioredis.Redis = aioredis.Redis.from_url(
        config.url,
        decode_responses=True,
        retry=Retry(NoBackoff(), 0),
        socket_timeout=10.0,
        socket_connect_timeout=5.0,
        **options,  # type: ignore[arg-type]
    )
    return client
