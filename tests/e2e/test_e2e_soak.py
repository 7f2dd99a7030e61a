"""Soak: 100 subscribers offered 10,000 ticks/s for 10 s, one client that stops reading,
bounded RSS.

The 100 subscribers run on grpc.aio in a background thread with its own event loop; while the
window runs they only keep each message's receive time and raw bytes (as
``benchmarks/tick_fanout.py`` does), and everything is decoded and checked afterwards.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
import uvloop
from tests.support import error_info

from mt5exec.testing import ServerProcess, bearer
from mt5exec.v1 import common_pb2, instance_pb2, stream_pb2, stream_pb2_grpc

SYMBOLS = ["EURUSD", "GBPUSD", "USDJPY", "XAUUSD"]
TICK_RATE = 2500.0  # per symbol: 4 x 2,500 = 10,000 ticks/s
OFFERED_PER_S = TICK_RATE * len(SYMBOLS)
INSTANCE = "soak"
SUBSCRIBERS = 100
WINDOW_S = 10.0
WARMUP_S = 0.5
TICKS_METHOD = "/mt5exec.v1.StreamService/StreamTicks"
MAX_RSS_GROWTH_KB = 100 * 1024


@dataclass
class Fanout:
    """What the subscriber thread recorded: (receive ns, raw message) per subscriber."""

    records: list[list[tuple[int, bytes]]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    start: int = 0
    end: int = 0
    started: threading.Event = field(default_factory=threading.Event)


async def _subscribe(address: str, token: str | None, fanout: Fanout) -> None:
    """SUBSCRIBERS streams, a channel each; records every message until the window ends."""
    options = [("grpc.use_local_subchannel_pool", 1)]
    channels = [grpc.aio.insecure_channel(address, options=options) for _ in range(SUBSCRIBERS)]
    request = stream_pb2.StreamTicksRequest(instance_ids=[INSTANCE])
    calls = [
        ch.unary_stream(
            TICKS_METHOD,
            request_serializer=stream_pb2.StreamTicksRequest.SerializeToString,
            response_deserializer=None,  # raw bytes: decode after the window
        )(request, metadata=bearer(token) if token else None)
        for ch in channels
    ]
    fanout.records = [[] for _ in calls]

    async def reader(call: Any, out: list[tuple[int, bytes]]) -> None:
        clock = time.monotonic_ns
        append = out.append
        try:
            while True:
                message = await call.read()
                if message is grpc.aio.EOF:
                    fanout.errors.append("stream ended")
                    return
                append((clock(), message))
        except asyncio.CancelledError:
            pass
        except grpc.aio.AioRpcError as e:
            if e.code() != grpc.StatusCode.CANCELLED:
                fanout.errors.append(f"{e.code()}: {e.details()}")

    try:
        # Headers mean the subscription is live: from then on nothing may be missed.
        await asyncio.gather(*(c.initial_metadata() for c in calls))
        tasks = [
            asyncio.create_task(reader(c, r)) for c, r in zip(calls, fanout.records, strict=True)
        ]
        await asyncio.sleep(WARMUP_S)
        fanout.start = time.monotonic_ns()
        fanout.started.set()
        await asyncio.sleep(WINDOW_S)
        fanout.end = time.monotonic_ns()
        for c in calls:
            c.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        fanout.started.set()
        for ch in channels:
            await ch.close()


def _run_subscribers(address: str, token: str | None, fanout: Fanout) -> None:
    try:
        uvloop.run(_subscribe(address, token, fanout))
    except Exception as e:
        fanout.errors.append(repr(e))
        fanout.started.set()


@dataclass
class Checked:
    gaps: int = 0
    dropped: int = 0
    backwards: int = 0
    ticks_in_window: int = 0


def _check(records: list[tuple[int, bytes]], start: int, end: int) -> Checked:
    """Sequence contiguity, `dropped`, per-symbol tick time order; ticks received in the window."""
    parse = stream_pb2.StreamTicksResponse.FromString
    out = Checked()
    expected = 1
    last: dict[str, int] = {}
    for received, raw in records:
        message = parse(raw)
        ticks = message.ticks
        if message.sequence != expected:
            out.gaps += 1
        expected = message.sequence + len(ticks)
        out.dropped = max(out.dropped, message.dropped)
        for tick in ticks:
            t = tick.time
            ns = t.seconds * 1_000_000_000 + t.nanos
            symbol = tick.symbol
            if ns < last.get(symbol, 0):
                out.backwards += 1
            last[symbol] = ns
        if start <= received < end:
            out.ticks_in_window += len(ticks)
    return out


def _vm_rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def _wait_ready(server: ServerProcess, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    request = instance_pb2.GetInstanceRequest(instance_id=INSTANCE)
    while server.instances.GetInstance(request, timeout=5).instance.state != (
        common_pb2.INSTANCE_STATE_READY
    ):
        assert time.monotonic() < deadline, "instance not READY"
        time.sleep(0.05)


def _sleep_until(deadline_ns: int) -> None:
    time.sleep(max(0.0, (deadline_ns - time.monotonic_ns()) / 1e9))


def test_100_subscribers_keep_up_a_slow_one_is_cut_off_and_rss_stays_bounded(
    tmp_path: Path,
) -> None:
    config = tmp_path / "mt5exec.toml"
    config.write_text("[engine]\nslow_consumer_timeout_s = 2.0\n")
    with ServerProcess(tmp_path / "data", config=config) as server:
        server.instances.CreateInstance(
            instance_pb2.CreateInstanceRequest(
                instance_id=INSTANCE,
                config=common_pb2.InstanceConfig(symbols=SYMBOLS, tick_rate=TICK_RATE),
            ),
            timeout=60,
        )
        _wait_ready(server)

        # The slow one: a small receive window (no BDP probing), one message read, then nothing.
        slow_channel = server.connect(server.token, options=[("grpc.http2.bdp_probe", 0)])
        slow = stream_pb2_grpc.StreamServiceStub(slow_channel).StreamTicks(
            stream_pb2.StreamTicksRequest(instance_ids=[INSTANCE]), timeout=60
        )
        slow_messages = iter(slow)
        next(slow_messages)

        fanout = Fanout()
        thread = threading.Thread(
            target=_run_subscribers, args=(server.address, server.token, fanout), daemon=True
        )
        thread.start()
        assert fanout.started.wait(30), "subscribers did not start"
        assert fanout.start, f"subscribers failed: {fanout.errors}"
        _sleep_until(fanout.start + 2_000_000_000)
        rss_2s = _vm_rss_kb(server.pid)
        _sleep_until(fanout.start + int(WINDOW_S * 1e9))
        rss_10s = _vm_rss_kb(server.pid)
        thread.join(30)
        assert not thread.is_alive()

        with pytest.raises(grpc.RpcError) as caught:
            for _ in slow_messages:
                pass
        slow_channel.close()

    window_s = (fanout.end - fanout.start) / 1e9
    checking = time.monotonic()
    results = [_check(r, fanout.start, fanout.end) for r in fanout.records]
    checked_s = time.monotonic() - checking
    ticks = sorted(c.ticks_in_window for c in results)
    growth_kb = rss_10s - rss_2s
    print(
        f"window {window_s:.2f} s; ticks per subscriber min {ticks[0]} median "
        f"{ticks[len(ticks) // 2]} max {ticks[-1]} (offered {OFFERED_PER_S * window_s:.0f}); "
        f"server RSS {rss_2s / 1024:.1f} MB at 2 s, {rss_10s / 1024:.1f} MB at 10 s "
        f"(+{growth_kb / 1024:.1f} MB); checked in {checked_s:.1f} s"
    )

    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert error_info(caught.value).reason == "SLOW_CONSUMER"

    assert fanout.errors == [], "every subscriber stream ran until cancelled"
    assert len(results) == SUBSCRIBERS
    assert [c.gaps for c in results] == [0] * SUBSCRIBERS, "contiguous sequence numbers"
    assert [c.dropped for c in results] == [0] * SUBSCRIBERS, "nothing dropped"
    assert [c.backwards for c in results] == [0] * SUBSCRIBERS, "tick times never go backwards"
    # How many ticks a loaded machine's sim makes is no test of the server (the rate is
    # measured by benchmarks/tick_fanout.py); that every subscriber got them all is.
    assert ticks[0] > 0, "every subscriber got ticks"
    assert growth_kb < MAX_RSS_GROWTH_KB, "server RSS bounded"
