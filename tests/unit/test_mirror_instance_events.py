"""The Redis mirror's bound on instance events kept while Redis is away (the engine keeps no
log of them): the newest ``limit`` are written when Redis is back, the older counted as lost
(mt5exec_redis_mirror_events_lost_total; docs/redis.md)."""

from __future__ import annotations

from mt5exec.mirror.client import Batch
from mt5exec.mirror.stats import MirrorStats
from mt5exec.mirror.streams import InstanceEvents
from mt5exec.v1 import common_pb2, stream_pb2


def _encoded(*instance_ids: str) -> bytes:
    return stream_pb2.StreamInstanceEventsResponse(
        events=[
            common_pb2.InstanceEvent(instance_id=iid, state=common_pb2.INSTANCE_STATE_READY)
            for iid in instance_ids
        ]
    ).SerializeToString()


def test_events_over_the_bound_are_counted_and_the_newest_written() -> None:
    stats = MirrorStats()
    events = InstanceEvents("tok", stats, limit=3)
    assert events.add(_encoded("a", "b")) == ["a", "b"]
    events.add(_encoded("c", "d", "e"))
    assert stats.events_lost == 2
    pipe = Batch()
    check = events.queue(pipe, "t:instance_events", 100)
    assert check is not None
    written = [dict(zip(c[6::2], c[7::2], strict=True)) for c in pipe.commands]
    assert [c[:6] for c in pipe.commands] == [
        ("XADD", "t:instance_events", "MAXLEN", "~", 100, "*")
    ] * 3
    assert [(w["instance_id"], w["event_id"], w["sequence"]) for w in written] == [
        ("c", "tok:3", 1),
        ("d", "tok:4", 2),
        ("e", "tok:5", 3),
    ]
    check([b"1-1", b"1-2", b"1-3"])
    assert not events  # written: no longer kept
    assert events.queue(Batch(), "t:instance_events", 100) is None
