"""Helpers of the Redis mirror tests: a server writing to a test's redis-server, reading what
the mirror wrote, and a steady flow of orders from an asyncio client."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path
from typing import Any

import grpc
import redis
from google.protobuf import json_format
from google.protobuf.message import Message

from mt5exec.testing import ServerProcess, bearer
from mt5exec.v1 import common_pb2, instance_pb2, order_pb2, order_pb2_grpc
from redis_server import RedisServer
from support import BULK_RISK, wait_for_price

PREFIX = "t:"


def mirrored_server(
    data: Path, rs: RedisServer, env: dict[str, str] | None = None
) -> ServerProcess:
    return ServerProcess(
        data, env={"MT5EXEC_REDIS_URL": rs.url, "MT5EXEC_REDIS_PREFIX": PREFIX, **(env or {})}
    )


def create_netting(server: ServerProcess, instance_id: str, tick_rate: float = 5) -> None:
    """A sim instance with one position per symbol at most (orders of both sides net out)."""
    config = common_pb2.InstanceConfig(
        symbols=["EURUSD"],
        tick_rate=tick_rate,
        risk=BULK_RISK,
        margin_mode=common_pb2.ACCOUNT_MARGIN_MODE_NETTING,
    )
    server.instances.CreateInstance(
        instance_pb2.CreateInstanceRequest(instance_id=instance_id, config=config), timeout=60
    )
    wait_for_price(server, instance_id, "EURUSD")


def as_dict(message: Message) -> dict[str, Any]:
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def get_json(r: redis.Redis, key: str) -> Any:
    value = r.get(PREFIX + key)
    return None if value is None else json.loads(str(value))


def entries(r: redis.Redis, stream: str) -> list[dict[str, str]]:
    return [dict(fields) for _, fields in r.xrange(PREFIX + stream)]  # type: ignore[union-attr]


def sequences(r: redis.Redis, instance_id: str) -> list[int]:
    return [int(e["sequence"]) for e in entries(r, f"executions:{instance_id}")]


def connected(r: redis.Redis) -> bool:
    try:
        return bool(r.ping())
    except redis.ConnectionError:
        return False


class OrderFlow:
    """Market orders at a steady rate from an asyncio client on a thread of its own, buy and
    sell in turn, until ``stop``; ``acked`` has the client order ids answered FILLED."""

    def __init__(self, server: ServerProcess, instance_id: str, rate: float = 500) -> None:
        self._address = server.address
        self._token = server.token or ""
        self._instance_id = instance_id
        self._rate = rate
        self.acked: list[str] = []
        self.failed: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    def start(self) -> OrderFlow:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=120)
        assert not self._thread.is_alive()

    async def _run(self) -> None:
        async with grpc.aio.insecure_channel(self._address) as channel:
            stub = order_pb2_grpc.OrderServiceStub(channel)
            metadata = bearer(self._token)
            started = time.monotonic()
            n = 0
            pending: set[asyncio.Task[None]] = set()
            while not self._stop.is_set():
                # Steady: the n-th order leaves at n / rate (late ones go at once).
                delay = started + n / self._rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                side = common_pb2.SIDE_BUY if n % 2 == 0 else common_pb2.SIDE_SELL
                request = order_pb2.PlaceOrderRequest(
                    instance_id=self._instance_id,
                    client_order_id=f"flow-{n}",
                    symbol="EURUSD",
                    side=side,
                    type=common_pb2.ORDER_TYPE_MARKET,
                    volume=0.01,
                )
                task = asyncio.create_task(self._place(stub, request, metadata))
                pending.add(task)
                task.add_done_callback(pending.discard)
                n += 1
                while len(pending) >= 64:  # at most 64 in flight: a steady flow, not a flood
                    await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            if pending:
                await asyncio.wait(pending)

    async def _place(
        self,
        stub: order_pb2_grpc.OrderServiceStub,
        request: order_pb2.PlaceOrderRequest,
        metadata: Any,
    ) -> None:
        try:
            response = await stub.PlaceOrder(request, metadata=metadata, timeout=60)
        except grpc.aio.AioRpcError:
            self.failed.append(request.client_order_id)
            return
        if response.order.status == common_pb2.ORDER_STATUS_FILLED:
            self.acked.append(request.client_order_id)
        else:
            self.failed.append(request.client_order_id)
