"""The Redis live mirror (``[redis]``, off by default; docs/redis.md).

Instance, health, account, position and execution state written to Redis keys, execution and
instance events to Redis Streams, ticks optionally to pub/sub: fed from the engine's events on
tasks of their own, never awaited by an RPC. Redis being down stops nothing but the mirror,
which reconnects, rebuilds every key and resumes its streams where Redis has them.

Nothing here imports ``redis`` but ``writer`` (and what it imports): a server without
``[redis]`` never loads it.
"""
