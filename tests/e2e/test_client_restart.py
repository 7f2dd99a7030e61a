"""mt5exec.client across a real server restart: PlaceOrder retried with the same
client_order_id, and streams that reconnect and resume from their last sequence."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from tests.support import limit, subscribers, wait_for_price, wait_ready, wait_until

from mt5exec.client import AsyncClient, Client, RetryPolicy, errors
from mt5exec.testing import ServerProcess, wait_gone
from mt5exec.v1 import common_pb2, instance_pb2

BUY, LIMIT = common_pb2.SIDE_BUY, common_pb2.ORDER_TYPE_LIMIT
FAR = 1.0  # a buy limit well below EURUSD, within the price collar: it stays pending


class Restartable:
    """A real server that stops and starts again on the same address and data dir."""

    def __init__(self, data: Path) -> None:
        self.data = data
        self.server = ServerProcess(data).start()
        self.address = self.server.address
        self.token = self.server.token

    def stop(self) -> None:
        assert self.server.terminate() == 0

    def start(self) -> ServerProcess:
        self.server = ServerProcess(self.data, extra_args=["--listen", self.address]).start()
        return self.server

    def close(self) -> None:
        server = self.server
        if server.channel is None:
            return
        pids = [
            i.worker_pid
            for i in server.instances.ListInstances(instance_pb2.ListInstancesRequest()).instances
            if i.worker_pid
        ]
        try:
            assert server.terminate() == 0
            assert wait_gone(pids) == [], "workers outlived the server"
        finally:
            server.kill()


@pytest.fixture
def restartable(tmp_path: Path) -> Iterator[Restartable]:
    r = Restartable(tmp_path / "data")
    try:
        with Client(r.address, token=r.token) as client:
            config = common_pb2.InstanceConfig(symbols=["EURUSD"], tick_rate=20)
            client.create_instance("r1", config)
        wait_for_price(r.server, "r1", "EURUSD")
        yield r
    finally:
        r.close()


def back_up(r: Restartable) -> None:
    """Starts the server again and waits until r1 trades."""
    server = r.start()
    wait_ready(server, "r1")
    wait_for_price(server, "r1", "EURUSD")


def test_place_order_is_retried_with_the_same_id_until_the_server_is_back(
    restartable: Restartable,
) -> None:
    failures: list[errors.Error] = []

    def restart_once(attempt: int, error: errors.Error) -> None:
        failures.append(error)
        if len(failures) == 1:
            back_up(restartable)

    retry = RetryPolicy(max_attempts=20, initial_backoff=0.05, on_retry=restart_once)
    restartable.stop()
    with Client(restartable.address, token=restartable.token, retry=retry) as client:
        order = client.place_order("r1", "EURUSD", BUY, 0.01, type=LIMIT, price=FAR)
        assert [e.code for e in failures][:1] == [grpc.StatusCode.UNAVAILABLE]
        assert order.client_order_id.startswith("c-")
        failed = len(failures)
        # The server restarts again between a first attempt that was served and a second with
        # the same id: the second answers the first's order, and one order exists.
        restartable.stop()
        back_up(restartable)
        again = client.place_order(
            "r1", "EURUSD", BUY, 0.01, type=LIMIT, price=FAR, client_order_id=order.client_order_id
        )
        assert again.order_id == order.order_id
        ids = [o.client_order_id for o in client.list_orders("r1")]
        assert ids.count(order.client_order_id) == 1
        assert len(ids) == 1
        assert len(failures) == failed, "the repeat was answered at once, not retried"


def test_streams_resume_after_a_restart(restartable: Restartable) -> None:
    reconnects: list[errors.Error] = []
    reconnect = RetryPolicy(
        max_attempts=None,
        initial_backoff=0.05,
        max_backoff=1.0,
        codes=frozenset({grpc.StatusCode.UNAVAILABLE}),
        on_retry=lambda attempt, error: reconnects.append(error),
    )
    with Client(restartable.address, token=restartable.token, reconnect=reconnect) as client:
        executions = client.executions("r1")
        ticks = client.ticks(["r1"])
        before = [
            client.place_order("r1", "EURUSD", BUY, 0.01, type=LIMIT, price=FAR) for _ in "ab"
        ]
        assert next(ticks).ticks
        events: list[common_pb2.ExecutionEvent] = []

        def read_until(order: common_pb2.Order) -> None:
            while not any(e.order_update.client_order_id == order.client_order_id for e in events):
                events.append(next(executions))

        read_until(before[-1])
        restartable.stop()
        back_up(restartable)
        after = [client.place_order("r1", "EURUSD", BUY, 0.01, type=LIMIT, price=FAR) for _ in "cd"]
        read_until(after[-1])
        assert reconnects, "the stream did not reconnect"
        assert {e.code for e in reconnects} == {grpc.StatusCode.UNAVAILABLE}
        sequences = [e.sequence for e in events]
        assert sequences == list(range(1, len(sequences) + 1)), "a gap or a duplicate"
        # Ticks continue live on a new subscription once the server is back.
        count = len(reconnects)
        deadline = time.monotonic() + 120
        response = next(ticks)
        while len(reconnects) == count or not response.ticks:
            assert time.monotonic() < deadline, "no live ticks on a new subscription"
            response = next(ticks)
        executions.close()
        ticks.close()


def test_a_live_stream_broken_before_its_first_event_resumes_where_it_started(
    restartable: Restartable,
) -> None:
    """A live-only stream that loses its server before any event resumes after the sequence
    its headers named: the order placed while it was away is its first event."""

    def meanwhile(attempt: int, error: errors.Error) -> None:
        if not placed:
            back_up(restartable)
            placed.append(
                restartable.server.orders.PlaceOrder(limit("r1", "gap", FAR), timeout=60).order
            )

    placed: list[common_pb2.Order] = []
    reconnect = RetryPolicy(max_attempts=None, initial_backoff=0.05, on_retry=meanwhile)
    with Client(restartable.address, token=restartable.token, reconnect=reconnect) as client:
        client.place_order("r1", "EURUSD", BUY, 0.01, type=LIMIT, price=FAR)
        live = client.executions("r1", live=True)
        first: list[common_pb2.ExecutionEvent] = []
        baseline = subscribers(restartable.server, "executions")
        reader = threading.Thread(target=lambda: first.append(next(live)), daemon=True)
        reader.start()
        wait_until(
            "the live stream is open",
            lambda: subscribers(restartable.server, "executions") > baseline,
        )
        restartable.stop()
        reader.join(300)
        assert placed, "the stream did not try to reconnect"
        assert first, "no event: the order placed while the server was away was missed"
        assert first[0].order_update.client_order_id == "gap"


def test_the_asyncio_client_resumes_too(restartable: Restartable) -> None:
    reconnects: list[errors.Error] = []
    reconnect = RetryPolicy(
        max_attempts=None,
        initial_backoff=0.05,
        codes=frozenset({grpc.StatusCode.UNAVAILABLE}),
        on_retry=lambda attempt, error: reconnects.append(error),
    )

    async def run() -> list[common_pb2.ExecutionEvent]:
        client = AsyncClient(restartable.address, token=restartable.token, reconnect=reconnect)
        async with client:
            stream = client.executions("r1")
            events: list[common_pb2.ExecutionEvent] = []

            async def read_until(order: common_pb2.Order) -> None:
                cid = order.client_order_id
                while not any(e.order_update.client_order_id == cid for e in events):
                    events.append(await anext(stream))

            await read_until(
                await client.place_order("r1", "EURUSD", BUY, 0.01, type=LIMIT, price=FAR)
            )
            await asyncio.to_thread(restartable.stop)
            await asyncio.to_thread(back_up, restartable)
            await read_until(
                await client.place_order("r1", "EURUSD", BUY, 0.01, type=LIMIT, price=FAR)
            )
            await stream.aclose()
            return events

    sequences = [e.sequence for e in asyncio.run(run())]
    assert reconnects, "the stream did not reconnect"
    assert sequences == list(range(1, len(sequences) + 1)), "a gap or a duplicate"
