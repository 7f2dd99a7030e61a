"""The server's own subscribers (the Redis mirror's, one per instance) do not push the clients'
streams into coalescing: only counted subscriptions make the coalescing delay."""

from __future__ import annotations

from mt5exec.engine import Engine, Topic


def test_uncounted_subscriptions_do_not_make_streams_coalesce() -> None:
    engine = Engine()
    own = [engine.subscribe(Topic.EXECUTIONS, [], counted=False) for _ in range(40)]
    assert engine.coalesce_delay() == 0.0
    clients = [engine.subscribe(Topic.TICKS, []) for _ in range(21)]
    assert engine.coalesce_delay() > 0.0
    for sub in clients:
        sub.close()
    assert engine.coalesce_delay() == 0.0
    for sub in own:
        sub.close()
    assert engine._uncounted == set()
