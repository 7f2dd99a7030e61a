"""A stream ends with its instance: DeleteInstance ends every stream that names the instance
(alone or with others) with NOT_FOUND, so that none of them streams the next instance made
under the id, perhaps another owner's. End to end with the real server and sim workers."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from tests.support import error_info, wait_for_price

from mt5exec.testing import ServerProcess
from mt5exec.v1 import auth_pb2, common_pb2, instance_pb2, stream_pb2, stream_pb2_grpc

ALICE, BOB = "alice", "bob"


class Watch:
    """Reads a server stream on a thread until it ends; what it got and how it ended."""

    def __init__(self, call: Any) -> None:
        self.call = call
        call.initial_metadata()  # the server has subscribed
        self.messages: list[Any] = []
        self.error: grpc.RpcError | None = None
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for message in self.call:
                self.messages.append(message)
        except grpc.RpcError as e:
            self.error = e

    def ended(self, timeout: float = 60.0) -> grpc.RpcError:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the stream did not end"
        assert self.error is not None, "the stream ended without a status"
        return self.error


def create(server: ServerProcess, instance_id: str, owner: str) -> None:
    request = instance_pb2.CreateInstanceRequest(
        instance_id=instance_id,
        owner=owner,
        config=common_pb2.InstanceConfig(symbols=["EURUSD"], tick_rate=20),
    )
    server.instances.CreateInstance(request, timeout=60)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    with ServerProcess(tmp_path / "data") as server:
        yield server


def test_delete_ends_every_stream_of_the_instance_and_none_sees_its_successor(
    server: ServerProcess,
) -> None:
    create(server, "x", ALICE)
    create(server, "y", ALICE)
    create(server, "z", ALICE)
    server.instances.StopInstance(instance_pb2.StopInstanceRequest(instance_id="z"), timeout=60)
    wait_for_price(server, "x", "EURUSD")
    request = auth_pb2.CreateApiKeyRequest(role=auth_pb2.ROLE_VIEWER, owner=ALICE)
    token = server.auth.CreateApiKey(request, timeout=30).token
    with server.connect(token) as channel:
        streams = stream_pb2_grpc.StreamServiceStub(channel)
        watches = {
            # Several instances, one of them x (its stop ends none of these).
            "ticks x,y": streams.StreamTicks(
                stream_pb2.StreamTicksRequest(instance_ids=["x", "y"]), timeout=120
            ),
            "ticks of alice": streams.StreamTicks(stream_pb2.StreamTicksRequest(), timeout=120),
            "executions of alice": streams.StreamExecutions(
                stream_pb2.StreamExecutionsRequest(), timeout=120
            ),
            "events x,y": streams.StreamInstanceEvents(
                stream_pb2.StreamInstanceEventsRequest(instance_ids=["x", "y"]), timeout=120
            ),
            # One stopped instance: nothing else ends these.
            "ticks z": streams.StreamTicks(
                stream_pb2.StreamTicksRequest(instance_ids=["z"]), timeout=120
            ),
            "executions z": streams.StreamExecutions(
                stream_pb2.StreamExecutionsRequest(instance_id="z"), timeout=120
            ),
            "account z": streams.StreamAccount(
                stream_pb2.StreamAccountRequest(instance_id="z"), timeout=120
            ),
            "events z": streams.StreamInstanceEvents(
                stream_pb2.StreamInstanceEventsRequest(instance_ids=["z"]), timeout=120
            ),
        }
        watching = {name: Watch(call) for name, call in watches.items()}
        # A stream of y alone is not x's: it goes on.
        y_only = streams.StreamTicks(stream_pb2.StreamTicksRequest(instance_ids=["y"]), timeout=120)
        for instance_id in ("x", "z"):
            server.instances.DeleteInstance(
                instance_pb2.DeleteInstanceRequest(instance_id=instance_id), timeout=60
            )
        for name, watch in watching.items():
            error = watch.ended()
            assert error.code() == grpc.StatusCode.NOT_FOUND, (name, error)
            assert error_info(error).reason == "INSTANCE_NOT_FOUND", name
            assert "was deleted" in (error.details() or ""), name
        # The ids again, for bob: their data reaches none of alice's ended streams.
        create(server, "x", BOB)
        create(server, "z", BOB)
        wait_for_price(server, "x", "EURUSD")
        wait_for_price(server, "z", "EURUSD")
        assert next(y_only).ticks[0].instance_id == "y"
        y_only.cancel()
        ticks = [
            tick.instance_id
            for name in ("ticks x,y", "ticks of alice", "ticks z")
            for message in watching[name].messages
            for tick in message.ticks
        ]
        assert "z" not in ticks  # z was stopped while alice streamed it
        # Bob's own stream of x has its ticks: the id is live again.
        bobs = server.streams.StreamTicks(stream_pb2.StreamTicksRequest(instance_ids=["x"]))
        assert next(bobs).ticks[0].instance_id == "x"
        bobs.cancel()
