"""Streams end to end: conflation, a client that stops reading, periodic account updates."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any

import grpc
import pytest
from tests.support import BULK_RISK, error_info, market, wait_for_price, wait_ready

from mt5exec.testing import ServerProcess
from mt5exec.v1 import common_pb2, instance_pb2, order_pb2, stream_pb2, stream_pb2_grpc

SYMBOLS = ["EURUSD", "GBPUSD", "USDJPY", "XAUUSD"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data = tmp_path_factory.mktemp("streams")
    config = data / "mt5exec.toml"
    config.write_text("[engine]\nslow_consumer_timeout_s = 1.0\n")
    with ServerProcess(data / "data", config=config) as proc:
        proc.instances.CreateInstance(
            instance_pb2.CreateInstanceRequest(
                instance_id="fast",
                config=common_pb2.InstanceConfig(symbols=SYMBOLS, tick_rate=1000),
            ),
            timeout=30,
        )
        yield proc


def test_a_reader_that_keeps_up_misses_nothing(server: ServerProcess) -> None:
    call = server.streams.StreamTicks(
        stream_pb2.StreamTicksRequest(instance_ids=["fast"]), timeout=60
    )
    expected = 1
    for message in call:
        assert message.sequence == expected, "no gap"
        assert message.dropped == 0
        expected += len(message.ticks)
        if expected > 4000:
            break
    call.cancel()
    assert expected > 4000, "the stream ended early"


def test_tick_batch_ms_sets_how_often_ticks_go_out(server: ServerProcess) -> None:
    server.instances.CreateInstance(
        instance_pb2.CreateInstanceRequest(
            instance_id="slowbatch",
            config=common_pb2.InstanceConfig(symbols=["EURUSD"], tick_rate=1000, tick_batch_ms=100),
        ),
        timeout=30,
    )
    got = server.instances.GetInstance(
        instance_pb2.GetInstanceRequest(instance_id="slowbatch"), timeout=5
    ).instance
    assert got.config.tick_batch_ms == 100

    def batch_gaps_ms(instance_id: str) -> list[int]:
        """The gaps between the worker's successive tick batches: a batch's ticks share the
        terminal time the worker stamps on it."""
        call = server.streams.StreamTicks(
            stream_pb2.StreamTicksRequest(instance_ids=[instance_id]), timeout=60
        )
        times: list[int] = []
        for message in call:
            for tick in message.ticks:
                ms = tick.time.ToMilliseconds()
                if tick.symbol == "EURUSD" and (not times or ms != times[-1]):
                    times.append(ms)
            if len(times) >= 8:
                break
        call.cancel()
        return [b - a for a, b in pairwise(times)]

    # Batches at least 100 ms apart (the stamps are whole ms), where the default 2 ms batches
    # of the "fast" instance come closer together.
    assert min(batch_gaps_ms("slowbatch")) >= 99
    assert min(batch_gaps_ms("fast")) < 99
    server.instances.DeleteInstance(
        instance_pb2.DeleteInstanceRequest(instance_id="slowbatch"), timeout=30
    )
    for bad in (float("nan"), 0.05, 5000.0, -1.0):
        with pytest.raises(grpc.RpcError) as caught:
            server.instances.CreateInstance(
                instance_pb2.CreateInstanceRequest(
                    instance_id="badbatch",
                    config=common_pb2.InstanceConfig(tick_batch_ms=bad),
                ),
                timeout=30,
            )
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert error_info(caught.value).metadata["field"] == "config.tick_batch_ms"


def metric(server: ServerProcess, name: str) -> float:
    """A sample's value from the server's /metrics (0 when absent)."""
    for line in server.metrics().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


def test_conflation_delivers_the_latest_per_symbol(server: ServerProcess) -> None:
    before = metric(server, TICKS_DROPPED)
    call = server.streams.StreamTicks(
        stream_pb2.StreamTicksRequest(instance_ids=["fast"], conflate=True), timeout=60
    )
    iterator = iter(call)
    next(iterator)
    # Fall behind on purpose: read nothing until the engine has conflated ticks away.
    _wait_until(lambda: metric(server, TICKS_DROPPED) > before, "ticks conflated away")
    seen: list[stream_pb2.StreamTicksResponse] = []
    for message in iterator:  # what was in flight before, then the conflated ones
        seen.append(message)
        if message.dropped > 0:
            break
    call.cancel()
    assert seen[-1].dropped > 0, "ticks were conflated away"
    dropped = metric(server, TICKS_DROPPED)
    assert dropped >= seen[-1].dropped, "the metric counts what subscribers lost"
    for message in seen:
        symbols = [t.symbol for t in message.ticks]
        assert len(symbols) == len(set(symbols)), "at most one tick per symbol per message"


def test_a_client_that_stops_reading_is_cut_off_and_others_are_not(
    server: ServerProcess,
) -> None:
    cutoffs = metric(server, SLOW_CUTOFFS)
    # A small receive window (no BDP probing), so that the server is blocked quickly.
    channel = server.connect(server.token, options=[("grpc.http2.bdp_probe", 0)])
    stalled = stream_pb2_grpc.StreamServiceStub(channel).StreamTicks(
        stream_pb2.StreamTicksRequest(instance_ids=["fast"]), timeout=120
    )
    stalled.initial_metadata()
    healthy_gaps: list[int] = []
    healthy_errors: list[grpc.RpcError] = []
    healthy_count = [0]
    stop = threading.Event()

    def healthy() -> None:
        call = server.streams.StreamTicks(
            stream_pb2.StreamTicksRequest(instance_ids=["fast"]), timeout=120
        )
        expected = 1
        try:
            for message in call:
                if message.sequence != expected:
                    healthy_gaps.append(message.sequence - expected)
                expected = message.sequence + len(message.ticks)
                healthy_count[0] += len(message.ticks)
                if stop.is_set():
                    call.cancel()
                    return
        except grpc.RpcError as e:
            healthy_errors.append(e)

    reader = threading.Thread(target=healthy, daemon=True)
    reader.start()
    # The stalled client's window fills, then the write timeout runs out: it is cut off,
    # and the reader that keeps up goes on.
    _wait_until(lambda: metric(server, SLOW_CUTOFFS) > cutoffs, "the stalled stream cut off")
    at_cutoff = healthy_count[0]
    _wait_until(
        lambda: healthy_count[0] > at_cutoff + 1000 or bool(healthy_errors), "the reader goes on"
    )
    stop.set()
    reader.join(60)
    with pytest.raises(grpc.RpcError) as caught:
        for _ in stalled:
            pass
    channel.close()
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert error_info(caught.value).reason == "SLOW_CONSUMER"
    assert healthy_errors == [], "the reader that kept up was not cut off"
    assert healthy_gaps == [], "the reader that kept up lost nothing"
    assert healthy_count[0] > at_cutoff + 1000, "it went on after the other was cut off"


TICK_SUBSCRIBERS = 'mt5exec_stream_subscribers{topic="ticks"}'
TICKS_DROPPED = 'mt5exec_stream_dropped_total{topic="ticks"}'
SLOW_CUTOFFS = 'mt5exec_stream_cutoffs_total{reason="SLOW_CONSUMER"}'


def _wait_until(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        time.sleep(0.05)


def _stalled_ticks(server: ServerProcess) -> tuple[grpc.Channel, Any]:
    """A StreamTicks of the fast instance whose client reads nothing (a small receive window:
    no BDP probing), once its subscription is live."""
    channel = server.connect(server.token, options=[("grpc.http2.bdp_probe", 0)])
    call = stream_pb2_grpc.StreamServiceStub(channel).StreamTicks(
        stream_pb2.StreamTicksRequest(instance_ids=["fast"]), timeout=120
    )
    call.initial_metadata()
    return channel, call


def _ended_slow(call: Any) -> None:
    """Reads what the stalled call still has in flight: it ends RESOURCE_EXHAUSTED."""
    with pytest.raises(grpc.RpcError) as caught:
        for _ in call:
            pass
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert error_info(caught.value).reason == "SLOW_CONSUMER"


def test_a_cut_off_stream_leaves_the_engine_at_once(server: ServerProcess) -> None:
    # The write timeout (1 s here) ends a stream whose client reads nothing; its subscription
    # leaves the engine then, not once the client reads again or goes away.
    before = metric(server, SLOW_CUTOFFS)
    _wait_until(lambda: metric(server, TICK_SUBSCRIBERS) == 0, "no other tick stream")
    channel, stalled = _stalled_ticks(server)
    try:
        assert metric(server, TICK_SUBSCRIBERS) == 1
        _wait_until(lambda: metric(server, SLOW_CUTOFFS) > before, "cut off")
        # The client still reads nothing, and holds its connection: the engine is rid of it.
        _wait_until(
            lambda: metric(server, TICK_SUBSCRIBERS) == 0, "the subscription gone", timeout=30
        )
        assert metric(server, 'mt5exec_stream_queued_messages{topic="ticks"}') == 0
        _ended_slow(stalled)
    finally:
        channel.close()


def test_the_engine_cuts_off_a_subscriber_past_its_queue_bound(tmp_path: Path) -> None:
    # A write timeout that never comes in this test: the engine bounds what a subscriber may
    # leave unread (64 KB here) by itself.
    config = tmp_path / "mt5exec.toml"
    config.write_text("[engine]\nslow_consumer_timeout_s = 600\nstream_queue_max_kb = 64\n")
    with ServerProcess(tmp_path / "data", config=config) as server:
        server.instances.CreateInstance(
            instance_pb2.CreateInstanceRequest(
                instance_id="fast",
                config=common_pb2.InstanceConfig(symbols=SYMBOLS, tick_rate=1000),
            ),
            timeout=30,
        )
        channel, stalled = _stalled_ticks(server)
        try:
            _wait_until(lambda: metric(server, SLOW_CUTOFFS) == 1, "cut off by the engine")
            assert metric(server, TICK_SUBSCRIBERS) == 0
            # Another stream goes on (conflated: however slowly this test reads, it never has
            # more than the latest tick per symbol queued).
            reader = server.streams.StreamTicks(
                stream_pb2.StreamTicksRequest(instance_ids=["fast"], conflate=True), timeout=30
            )
            received = 0
            for message in reader:
                received += len(message.ticks)
                if received >= 2_000:  # far more than 64 KB's worth in all
                    break
            reader.cancel()
            assert metric(server, SLOW_CUTOFFS) == 1
            _ended_slow(stalled)
        finally:
            channel.close()


def test_account_updates_at_an_interval(server: ServerProcess) -> None:
    request = stream_pb2.StreamAccountRequest(instance_id="fast")
    request.interval.FromMilliseconds(100)
    # No trading: without the interval nothing would come, and the call would run out.
    call = server.streams.StreamAccount(request, timeout=60)
    started = time.monotonic()
    accounts = []
    for message in call:
        accounts.extend(message.accounts)
        if len(accounts) >= 5:
            break
    call.cancel()
    elapsed = time.monotonic() - started
    assert all(a.instance_id == "fast" and a.balance > 0 for a in accounts)
    assert elapsed > 0.3, "not more often than every 100 ms"


def test_bad_interval_is_invalid(server: ServerProcess) -> None:
    request = stream_pb2.StreamAccountRequest(instance_id="fast")
    request.interval.FromMilliseconds(1)
    with pytest.raises(grpc.RpcError) as caught:
        next(iter(server.streams.StreamAccount(request, timeout=10)))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(caught.value).metadata["field"] == "interval"


def test_instance_events_follow_a_restart(server: ServerProcess, tmp_path: Path) -> None:
    call = server.streams.StreamInstanceEvents(
        stream_pb2.StreamInstanceEventsRequest(instance_ids=["fast"]), timeout=30
    )
    call.initial_metadata()
    events: list[common_pb2.InstanceEvent] = []

    def read() -> None:
        try:
            for message in call:
                events.extend(message.events)
        except grpc.RpcError:
            pass

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    server.instances.RestartInstance(
        instance_pb2.RestartInstanceRequest(instance_id="fast"), timeout=30
    )
    _wait_until(
        lambda: [e.state for e in events][-1:] == [common_pb2.INSTANCE_STATE_READY],
        "the READY event",
    )
    call.cancel()
    thread.join(5)
    states = [common_pb2.InstanceState.Name(e.state) for e in events]
    assert states[0] == "INSTANCE_STATE_STOPPING"
    assert states[-1] == "INSTANCE_STATE_READY"
    assert all(e.reason or e.state == common_pb2.INSTANCE_STATE_READY for e in events)


def _buy(server: ServerProcess, instance_id: str, cid: str) -> None:
    from mt5exec.v1 import order_pb2

    server.orders.PlaceOrder(
        order_pb2.PlaceOrderRequest(
            instance_id=instance_id,
            client_order_id=cid,
            symbol="EURUSD",
            side=common_pb2.SIDE_BUY,
            type=common_pb2.ORDER_TYPE_MARKET,
            volume=0.01,
        ),
        timeout=10,
    )


def _events(server: ServerProcess, instance_id: str, after: int, count: int) -> list[int]:
    call = server.streams.StreamExecutions(
        stream_pb2.StreamExecutionsRequest(instance_id=instance_id, from_sequence=after),
        timeout=60,
    )
    seqs: list[int] = []
    for message in call:
        seqs.extend(e.sequence for e in message.events)
        if len(seqs) >= count:
            break
    call.cancel()
    return seqs


def test_executions_resume_without_gap_or_duplicate(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with ServerProcess(data) as first:
        first.instances.CreateInstance(
            instance_pb2.CreateInstanceRequest(
                instance_id="resume",
                config=common_pb2.InstanceConfig(symbols=["EURUSD"], tick_rate=20),
            ),
            timeout=30,
        )
        wait_for_price(first, "resume", "EURUSD")
        for n in range(4):
            _buy(first, "resume", f"r-{n}")  # 3 events each: submitted, fill, filled
        seen = _events(first, "resume", 0 + 5, 7)
        assert seen == list(range(6, 13)), "after 5: the seven missed, in order"
        for n in range(4, 6):
            _buy(first, "resume", f"r-{n}")
        assert _events(first, "resume", 12, 6) == list(range(13, 19))
    with ServerProcess(data) as second:
        wait_ready(second, "resume")
        wait_for_price(second, "resume", "EURUSD")
        _buy(second, "resume", "after-restart")
        # Numbering continues after the restart; a client resumes across it.
        assert _events(second, "resume", 15, 6) == list(range(16, 22))
        with pytest.raises(grpc.RpcError) as caught:
            _events(second, "resume", 999, 1)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert error_info(caught.value).reason == "SEQUENCE_AHEAD"


def test_ticks_are_stored_when_asked_and_old_ones_pruned(tmp_path: Path) -> None:
    import datetime as dt

    import duckdb

    data = tmp_path / "data"
    config = tmp_path / "mt5exec.toml"
    config.write_text("[history]\nticks = true\ntick_retention_days = 30\n")
    started = time.time()
    with ServerProcess(data, config=config) as srv:
        srv.instances.CreateInstance(
            instance_pb2.CreateInstanceRequest(
                instance_id="taped",
                config=common_pb2.InstanceConfig(symbols=["EURUSD", "GBPUSD"], tick_rate=100),
            ),
            timeout=30,
        )
        # Ticks flow for a while (a client sees 200 of them); the store keeps them through
        # the server's stop.
        call = srv.streams.StreamTicks(
            stream_pb2.StreamTicksRequest(instance_ids=["taped"]), timeout=60
        )
        streamed = 0
        for message in call:
            streamed += len(message.ticks)
            if streamed >= 200:
                break
        call.cancel()
    stopped = time.time()
    db = duckdb.connect(str(data / "history.duckdb"))
    try:
        stored = db.execute(
            "select symbol, epoch_ms(time) from ticks where instance_id='taped'"
        ).fetchall()
        assert {symbol for symbol, _ in stored} == {"EURUSD", "GBPUSD"}
        # Stamped with the terminal's time of each tick, while the server ran.
        assert all(started * 1000 - 1 <= ms <= stopped * 1000 for _, ms in stored)
        (bad,) = db.execute("select count(*) from ticks where bid >= ask or bid <= 0").fetchone()
        assert bad == 0
        old = dt.datetime(2020, 1, 1)
        db.execute("insert into ticks values ('taped', 'EURUSD', ?, ?, 1.0, 1.1, 0, 0)", [old, old])
    finally:
        db.close()
    with ServerProcess(data, config=config):
        pass  # the store prunes on start
    db = duckdb.connect(str(data / "history.duckdb"), read_only=True)
    try:
        (old_left,) = db.execute("select count(*) from ticks where time < '2021-01-01'").fetchone()
        assert old_left == 0, "ticks older than the retention are pruned"
    finally:
        db.close()


def test_idle_streams_survive_and_shutdown_ends_them_with_a_status(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data").start()
    try:
        server.instances.CreateInstance(
            instance_pb2.CreateInstanceRequest(
                instance_id="quiet", config=common_pb2.InstanceConfig(symbols=["EURUSD"])
            ),
            timeout=30,
        )
        wait_for_price(server, "quiet", "EURUSD")
        call = server.streams.StreamExecutions(
            stream_pb2.StreamExecutionsRequest(instance_id="quiet"), timeout=60
        )
        call.initial_metadata()
        time.sleep(3.0)  # nothing happens on the stream
        _buy(server, "quiet", "wake-up")
        first = next(iter(call))
        assert first.events[0].order_update.client_order_id == "wake-up"
        assert server.process is not None
        server.process.send_signal(signal.SIGINT)  # a graceful stop
        with pytest.raises(grpc.RpcError) as caught:
            for _ in call:
                pass
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        assert error_info(caught.value).reason == "SERVER_SHUTTING_DOWN"
        assert server.terminate() == 0
    finally:
        server.kill()


def test_the_event_log_is_bounded_and_a_resume_past_it_is_refused(tmp_path: Path) -> None:
    # 2 MB kept in 256 KB segments; 8,000 market orders make ~24,000 events (~3.5 MB): the
    # disk keeps more of them than the ring of 10,000 in memory, but not all.
    env = {"MT5EXEC_ENGINE_EXECUTION_LOG_MAX_MB": "2"}
    data = tmp_path / "data"
    place = order_pb2.OrderSessionRequest
    sides = (common_pb2.SIDE_BUY, common_pb2.SIDE_SELL)
    with ServerProcess(data, env=env) as server:
        server.instances.CreateInstance(
            instance_pb2.CreateInstanceRequest(
                instance_id="logged",
                config=common_pb2.InstanceConfig(
                    symbols=["EURUSD"],
                    tick_rate=20,
                    margin_mode=common_pb2.ACCOUNT_MARGIN_MODE_NETTING,
                    risk=BULK_RISK,
                ),
            ),
            timeout=30,
        )
        wait_for_price(server, "logged", "EURUSD")
        batches = [
            place(
                batch=order_pb2.OrderSessionBatch(
                    requests=[
                        place(place=market("logged", f"e{k}-{n}", side=sides[n % 2]))
                        for n in range(500)
                    ]
                )
            )
            for k in range(16)
        ]
        messages = server.orders.OrderSession(iter(batches), timeout=120)
        answers = [a for m in messages for a in m.batch]
        assert len(answers) == 8000 and all(a.code == 0 for a in answers)
        instance_dir = next(data.rglob("executions.log")).parent
        # Segments past the limit are deleted on a thread of their own, a moment later.
        deadline = time.monotonic() + 60
        while True:
            logs = sorted(instance_dir.glob("executions*.log"))
            try:
                kept = sum(p.stat().st_size for p in logs)
            except FileNotFoundError:
                continue  # deleted between the listing and its size
            if kept <= 2 * 2**20 or time.monotonic() > deadline:
                break
            time.sleep(0.01)
        assert len(logs) > 2, logs
        assert kept <= 2 * 2**20
        # Closed segments are named after their first event.
        oldest = int(logs[0].name.removeprefix("executions-").removesuffix(".log"))
        assert oldest > 1, "the oldest events were deleted"
        with pytest.raises(grpc.RpcError) as caught:
            _events(server, "logged", 1, 1)
        assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        info = error_info(caught.value)
        assert (info.reason, info.metadata["field"]) == ("SEQUENCE_EXPIRED", "from_sequence")
        assert f"resume from {oldest - 1}" in (caught.value.details() or "")
        # Right before the oldest kept (older than the ring): replayed from the segments on
        # disk, without a gap.
        replay = _events(server, "logged", oldest - 1, 50)
        assert replay[:50] == list(range(oldest, oldest + 50))
    with ServerProcess(data, env=env) as again:
        # A restart reads only the newest events and keeps numbering after them.
        wait_ready(again, "logged")
        assert _events(again, "logged", 0, 1)[0] == oldest
        wait_for_price(again, "logged", "EURUSD")
        _buy(again, "logged", "after-restart")
        assert _events(again, "logged", oldest - 1, 1)[0] == oldest
