"""StreamService: engine subscriptions written to gRPC as the bytes the engine encoded."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from mt5exec.engine import Subscription, Topic
from mt5exec.errors import MT5ExecError
from mt5exec.server.handlers import Context
from mt5exec.server.state import AppState
from mt5exec.services import validation
from mt5exec.v1 import stream_pb2

PLANNED: dict[str, int | str] = {}

# A response carries at most this much; a subscriber that fell behind gets its
# backlog in few large messages instead of many small ones.
_MAX_MESSAGE_BYTES = 256 * 1024


async def _live(sub: Subscription, context: Context) -> AsyncIterator[bytes]:
    """The subscription's messages; headers go out first, so that a client that
    has them knows the subscription is live and will miss nothing from then on."""
    try:
        await context.send_initial_metadata(())
    except BaseException:
        sub.close()
        raise
    async for message in sub.messages(_MAX_MESSAGE_BYTES):
        yield message


class StreamService:
    def __init__(self, state: AppState) -> None:
        self._engine = state.engine

    async def StreamTicks(
        self, request: stream_pb2.StreamTicksRequest, context: Context
    ) -> AsyncIterator[bytes]:
        ids = [validation.instance_id(i, "instance_ids") for i in request.instance_ids]
        if request.conflate:
            raise MT5ExecError(
                grpc.StatusCode.UNIMPLEMENTED,
                "NOT_IMPLEMENTED",
                "conflate: conflation per subscriber is planned in issue #6",
                "conflate",
            )
        sub = self._engine.subscribe(Topic.TICKS, ids, list(request.symbols))
        async for message in _live(sub, context):
            yield message

    async def StreamExecutions(
        self, request: stream_pb2.StreamExecutionsRequest, context: Context
    ) -> AsyncIterator[bytes]:
        ids = [validation.instance_id(request.instance_id)] if request.instance_id else []
        if request.from_sequence:
            raise MT5ExecError(
                grpc.StatusCode.UNIMPLEMENTED,
                "NOT_IMPLEMENTED",
                "from_sequence: resuming a stream is planned in issue #6",
                "from_sequence",
            )
        sub = self._engine.subscribe(Topic.EXECUTIONS, ids)
        async for message in _live(sub, context):
            yield message

    async def StreamAccount(
        self, request: stream_pb2.StreamAccountRequest, context: Context
    ) -> AsyncIterator[bytes]:
        instance_id = validation.instance_id(request.instance_id)
        if request.HasField("interval"):
            raise MT5ExecError(
                grpc.StatusCode.UNIMPLEMENTED,
                "NOT_IMPLEMENTED",
                "interval: periodic account updates are planned in issue #6",
                "interval",
            )
        sub = self._engine.subscribe(Topic.ACCOUNTS, [instance_id])
        async for message in _live(sub, context):
            yield message

    async def StreamInstanceEvents(
        self, request: stream_pb2.StreamInstanceEventsRequest, context: Context
    ) -> AsyncIterator[bytes]:
        ids = [validation.instance_id(i, "instance_ids") for i in request.instance_ids]
        sub = self._engine.subscribe(Topic.INSTANCE_EVENTS, ids)
        async for message in _live(sub, context):
            yield message
