"""StreamService: engine subscriptions written to gRPC as the bytes the engine encoded."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator

from mt5exec.engine import Subscription, Topic
from mt5exec.errors import invalid
from mt5exec.server.handlers import Context
from mt5exec.server.state import AppState
from mt5exec.services import validation
from mt5exec.v1 import stream_pb2

PLANNED: dict[str, int | str] = {}

# A response carries at most this much; a subscriber that fell behind gets its
# backlog in few large messages instead of many small ones.
_MAX_MESSAGE_BYTES = 256 * 1024


def _live(sub: Subscription, context: Context) -> AsyncGenerator[bytes, None]:
    """The subscription's messages, written as they are (one generator between the engine
    and gRPC); headers go out first, so that a client that has them knows the subscription
    is live and will miss nothing from then on."""
    return sub.messages(_MAX_MESSAGE_BYTES, before=lambda: context.send_initial_metadata(()))


class StreamService:
    def __init__(self, state: AppState) -> None:
        self._engine = state.engine

    def StreamTicks(
        self, request: stream_pb2.StreamTicksRequest, context: Context
    ) -> AsyncIterator[bytes]:
        ids = [validation.instance_id(i, "instance_ids") for i in request.instance_ids]
        sub = self._engine.subscribe(
            Topic.TICKS, ids, list(request.symbols), conflate=request.conflate
        )
        return _live(sub, context)

    def StreamExecutions(
        self, request: stream_pb2.StreamExecutionsRequest, context: Context
    ) -> AsyncIterator[bytes]:
        if request.instance_id:
            instance_id = validation.instance_id(request.instance_id)
            sub = self._engine.subscribe_executions(instance_id, request.from_sequence)
        elif request.from_sequence:
            raise invalid(
                "instance_id",
                "FIELD_REQUIRED",
                "instance_id: required to resume from a sequence (they are per instance)",
            )
        else:
            sub = self._engine.subscribe(Topic.EXECUTIONS, [])
        return _live(sub, context)

    async def StreamAccount(
        self, request: stream_pb2.StreamAccountRequest, context: Context
    ) -> AsyncIterator[bytes]:
        instance_id = validation.instance_id(request.instance_id)
        interval = 0.0
        if request.HasField("interval"):
            interval = validation.finite(
                "interval", request.interval.ToTimedelta().total_seconds(), maximum=3600.0
            )
            if interval and interval < 0.01:
                raise invalid("interval", "VALUE_OUT_OF_RANGE", "interval: at least 10 ms")
        sub = self._engine.subscribe(Topic.ACCOUNTS, [instance_id])
        if not interval:
            async for message in _live(sub, context):
                yield message
            return
        # Changes as they come, and the current account whenever `interval` passed without
        # one (a GetAccountResponse is a StreamAccountResponse on the wire: field 1).
        changes = _live(sub, context)
        pending: asyncio.Task[bytes] | None = None
        try:
            while True:
                if pending is None:
                    pending = asyncio.ensure_future(anext(changes))
                done, _ = await asyncio.wait({pending}, timeout=interval)
                if done:
                    message = pending.result()
                    pending = None
                else:
                    message = self._engine.get_account(instance_id)
                yield message
        except StopAsyncIteration:
            return
        finally:
            if pending is not None:
                pending.cancel()
            await changes.aclose()

    def StreamInstanceEvents(
        self, request: stream_pb2.StreamInstanceEventsRequest, context: Context
    ) -> AsyncIterator[bytes]:
        ids = [validation.instance_id(i, "instance_ids") for i in request.instance_ids]
        sub = self._engine.subscribe(Topic.INSTANCE_EVENTS, ids)
        return _live(sub, context)
