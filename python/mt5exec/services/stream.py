"""StreamService: engine subscriptions written to gRPC as the bytes the engine encoded."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Callable

from mt5exec.auth import principal as auth
from mt5exec.engine import Subscription, Topic
from mt5exec.errors import invalid
from mt5exec.reasons import Reason
from mt5exec.server.handlers import MAX_MESSAGE_BYTES, Context
from mt5exec.server.state import AppState
from mt5exec.services import validation
from mt5exec.v1 import stream_pb2

PLANNED: dict[str, int | str] = {}


def _live(sub: Subscription, context: Context) -> AsyncGenerator[bytes, None]:
    """The subscription's messages for a servicer that adds to them (headers first)."""
    return sub.messages(MAX_MESSAGE_BYTES, before=lambda: context.send_initial_metadata(()))


async def _idle(context: Context) -> AsyncIterator[bytes]:
    """A stream of nothing, open until the client ends it: what a principal who sees no
    instance gets for "every instance"."""
    await context.send_initial_metadata(())
    await asyncio.get_running_loop().create_future()
    yield b""  # pragma: no cover - never reached


class StreamService:
    def __init__(
        self, state: AppState, instance_ids_of: Callable[[str], list[str]] | None = None
    ) -> None:
        self._engine = state.engine
        self._instance_ids_of = instance_ids_of

    def _scoped(self, ids: list[str]) -> list[str] | None:
        """The instances a subscription asking for ``ids`` follows: those; when none are
        given, every instance its principal sees ([]: all, for an admin; the instances of its
        owner at the time it subscribes otherwise), or None when it sees none."""
        owner = auth.current().owner
        if ids or owner is None or self._instance_ids_of is None:
            return ids
        return self._instance_ids_of(owner) or None

    # A servicer returns its Subscription: the stream handler writes its messages.

    def StreamTicks(
        self, request: stream_pb2.StreamTicksRequest, context: Context
    ) -> Subscription | AsyncIterator[bytes]:
        ids = self._scoped(
            [validation.instance_id(i, "instance_ids") for i in request.instance_ids]
        )
        if ids is None:
            return _idle(context)
        return self._engine.subscribe(
            Topic.TICKS, ids, list(request.symbols), conflate=request.conflate
        )

    def StreamExecutions(
        self, request: stream_pb2.StreamExecutionsRequest, context: Context
    ) -> Subscription | AsyncIterator[bytes]:
        live = request.start == stream_pb2.StreamExecutionsRequest.START_LIVE
        if live and request.from_sequence:
            raise invalid(
                "from_sequence",
                Reason.FIELD_NOT_APPLICABLE,
                "from_sequence: a live-only stream (START_LIVE) starts after the last event",
            )
        if request.instance_id:
            instance_id = validation.instance_id(request.instance_id)
            return self._engine.subscribe_executions(instance_id, request.from_sequence, live)
        if request.from_sequence:
            raise invalid(
                "instance_id",
                Reason.FIELD_REQUIRED,
                "instance_id: required to resume from a sequence (they are per instance)",
            )
        ids = self._scoped([])
        if ids is None:
            return _idle(context)
        return self._engine.subscribe(Topic.EXECUTIONS, ids)

    async def StreamAccount(
        self, request: stream_pb2.StreamAccountRequest, context: Context
    ) -> AsyncIterator[bytes]:
        instance_id = validation.instance_id(request.instance_id)
        interval = 0.0
        if request.HasField("interval"):
            interval = validation.seconds("interval", request.interval, maximum=3600.0)
            if interval and interval < 0.01:
                raise invalid("interval", Reason.VALUE_OUT_OF_RANGE, "interval: at least 10 ms")
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
    ) -> Subscription | AsyncIterator[bytes]:
        ids = self._scoped(
            [validation.instance_id(i, "instance_ids") for i in request.instance_ids]
        )
        if ids is None:
            return _idle(context)
        return self._engine.subscribe(Topic.INSTANCE_EVENTS, ids)
