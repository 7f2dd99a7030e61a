"""The engine below gRPC, with real sim workers: how its completions meet the event loop (an
order session's window and wake-ups; an instance created before anyone awaits it)."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
import uvloop

from mt5exec.engine import Engine, EngineConfig, InstanceSpec, Topic
from mt5exec.errors import MT5ExecError
from mt5exec.v1 import common_pb2, order_pb2

CONFIG = common_pb2.InstanceConfig(
    symbols=["EURUSD"],
    tick_rate=10,
    margin_mode=common_pb2.ACCOUNT_MARGIN_MODE_NETTING,
    risk=common_pb2.RiskLimits(max_order_volume=10.0, min_order_volume=0.01),
)


def request(n: int) -> bytes:
    place = order_pb2.PlaceOrderRequest(
        instance_id="sess",
        client_order_id=f"s{n}",
        symbol="EURUSD",
        side=common_pb2.SIDE_BUY if n % 2 == 0 else common_pb2.SIDE_SELL,
        type=common_pb2.ORDER_TYPE_MARKET,
        volume=0.01,
    )
    return order_pb2.OrderSessionRequest(place=place).SerializeToString()


def sim_spec(tmp: Path, instance_id: str) -> InstanceSpec:
    directory = tmp / instance_id
    directory.mkdir()
    (directory / "c.json").write_text(
        '{"symbols": ["EURUSD"], "margin_mode": "netting", "state_path": "none", "tick_rate": 100}'
    )
    argv = [sys.executable, "-m", "mt5exec.workers.sim", "--config", str(directory / "c.json")]
    return InstanceSpec(instance_id, "test", 1, directory, directory / "logs", argv, {}, CONFIG)


@contextlib.asynccontextmanager
async def _engine_with_sim(tmp: Path, journal_fsync: str = "interval:100") -> AsyncIterator[Engine]:
    """An engine with the sim instance "sess", once it has a first price."""
    engine = Engine(EngineConfig(journal_path=tmp / "orders.journal", journal_fsync=journal_fsync))
    engine.attach(asyncio.get_running_loop())
    try:
        await engine.create_instance(sim_spec(tmp, "sess"))
        await asyncio.sleep(0.3)  # a first price
        yield engine
    finally:
        await engine.stop_all()
        engine.detach()


async def _session_with_a_slow_writer(tmp: Path, orders: int, window: int) -> list[bytes]:
    got: list[bytes] = []
    async with _engine_with_sim(tmp) as engine:
        session = engine.open_session(window)

        async def feed() -> None:
            for n in range(orders):
                await session.submit(request(n))
            session.input_done()

        async def write() -> None:
            async for response in session.responses():
                got.append(response)
                # A gRPC write held by flow control: answers pile up meanwhile, and the feed
                # must still learn that the window has room.
                await asyncio.sleep(0.01)

        feeder = asyncio.create_task(feed())
        await asyncio.wait_for(write(), timeout=30)
        await feeder
    return got


def test_a_full_window_reopens_while_the_writer_is_slow(tmp_path: Path) -> None:
    got = uvloop.run(_session_with_a_slow_writer(tmp_path, orders=60, window=4))
    responses = [order_pb2.OrderSessionResponse.FromString(r) for r in got]
    assert sorted(r.client_order_id for r in responses) == sorted(f"s{n}" for n in range(60))
    assert all(r.code == 0 and r.order.status == common_pb2.ORDER_STATUS_FILLED for r in responses)


async def _created_stopped_then_awaited_late(tmp: Path) -> common_pb2.Instance:
    engine = Engine(EngineConfig())
    engine.attach(asyncio.get_running_loop())
    try:
        pending = engine.create_instance(sim_spec(tmp, "later"), start=False)
        # The completion (STOPPED at once) is drained while nobody awaits yet, as when the
        # server restores instances and awaits them after it started serving.
        await asyncio.sleep(0.2)
        return await asyncio.wait_for(pending, timeout=60)
    finally:
        await engine.stop_all()
        engine.detach()


def test_an_instance_awaited_after_its_completion_still_gets_it(tmp_path: Path) -> None:
    instance = uvloop.run(_created_stopped_then_awaited_late(tmp_path))
    assert instance.instance_id == "later"
    assert instance.state == common_pb2.INSTANCE_STATE_STOPPED


async def _session_orders_under_fsync_always(tmp: Path, orders: int) -> list[bytes]:
    got: list[bytes] = []
    async with _engine_with_sim(tmp, journal_fsync="always") as engine:
        session = engine.open_session(orders)
        for n in range(orders):
            await session.submit(request(n))
        session.input_done()
        async with asyncio.timeout(30):
            async for response in session.responses():
                got.append(response)
    return got


def test_orders_reach_the_terminal_in_submission_order_under_fsync_always(tmp_path: Path) -> None:
    # Each order waits for its fsync before it leaves; one that waits longer must not be
    # overtaken by the next (the broker numbers orders as it receives them).
    got = uvloop.run(_session_orders_under_fsync_always(tmp_path, orders=300))
    responses = [order_pb2.OrderSessionResponse.FromString(r) for r in got]
    assert len(responses) == 300
    assert all(r.code == 0 and r.order.status == common_pb2.ORDER_STATUS_FILLED for r in responses)
    by_submission = sorted(responses, key=lambda r: int(r.client_order_id[1:]))
    tickets = [r.order.order_id for r in by_submission]
    assert all(t > 0 for t in tickets)
    assert tickets == sorted(tickets), "an order overtook one submitted before it"


async def _ready_rules(tmp: Path) -> None:
    async with _engine_with_sim(tmp) as engine:
        subs = [engine.subscribe(Topic.TICKS, []) for _ in range(21)]
        first = subs[0]
        async with asyncio.timeout(10):
            await first.next(65536)
        await asyncio.sleep(0.5)  # ticks queue meanwhile
        assert first._core.queued() > 0
        # More than 20 subscribers: after its first message each waits between messages
        # (``next`` sleeps), so ``ready`` gives nothing although something is queued.
        assert first.ready(65536) is None
        for sub in subs[1:]:
            sub.close()
        # Few subscribers again: what is queued goes at once.
        assert first.ready(65536) is not None
        first.end(MT5ExecError(grpc.StatusCode.UNAVAILABLE, "SERVER_SHUTTING_DOWN", "bye"))
        await asyncio.sleep(0.5)
        assert first._core.queued() > 0
        assert first.ready(65536) is None, "an ended stream still gave a message"
        with pytest.raises(MT5ExecError) as ended:
            await first.next(65536)
        assert ended.value.reason == "SERVER_SHUTTING_DOWN"
        first.close()


def test_ready_gives_nothing_while_coalescing_or_once_ended(tmp_path: Path) -> None:
    uvloop.run(_ready_rules(tmp_path))


async def _cancelled_order_call(tmp: Path) -> tuple[int, int, bytes]:
    async with _engine_with_sim(tmp) as engine:
        place = order_pb2.OrderSessionRequest.FromString(request(0)).place
        answer = engine.place_order_raw(place.SerializeToString(), timeout=600)
        waiting = len(engine._orders)
        answer.cancel()  # the gRPC call's task was cancelled: its client went
        await asyncio.sleep(0)  # the done callbacks run
        left = len(engine._orders)
        # The cancelled order's answer, coming later, is dropped; the next call works.
        place.client_order_id = "s1"
        async with asyncio.timeout(60):
            second = await engine.place_order_raw(place.SerializeToString(), timeout=600)
        return waiting, left, second


def test_a_cancelled_order_call_forgets_its_wait_at_once(tmp_path: Path) -> None:
    # Before: the wait and its timer stayed until the answer or the timeout (here 10 min).
    waiting, left, second = uvloop.run(_cancelled_order_call(tmp_path))
    assert (waiting, left) == (1, 0)
    assert order_pb2.PlaceOrderResponse.FromString(second).order.client_order_id == "s1"
