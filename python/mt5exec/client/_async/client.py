"""The client: every service's typed methods on one channel."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from google.protobuf import duration_pb2

from mt5exec.client import cursors
from mt5exec.client._async.instances import AsyncInstances
from mt5exec.client._async.orders import AsyncOrders
from mt5exec.v1 import auth_pb2, common_pb2, stream_pb2


class AsyncClient(AsyncInstances, AsyncOrders):
    """Made with ``(target, token=...)`` or ``(settings=Settings.resolve(...))``; failures
    raise mt5exec.client.errors.Error subclasses."""

    async def whoami(self) -> auth_pb2.WhoAmIResponse:
        response: auth_pb2.WhoAmIResponse = await self._call(
            self._auth.WhoAmI, auth_pb2.WhoAmIRequest(), retry=True
        )
        return response

    def executions(
        self, instance_id: str = "", from_sequence: int = 0, *, live: bool = False
    ) -> AsyncIterator[common_pb2.ExecutionEvent]:
        """Execution events. With ``instance_id``: those after ``from_sequence`` (``live``:
        from the next one on, nothing replayed), and across reconnects every event once, in
        order (it resumes after the last one yielded). Without: every instance's, live."""
        cursor = cursors.Executions(instance_id, from_sequence, live)
        return self._stream(self._streams.StreamExecutions, cursor)

    def ticks(
        self, instance_ids: Sequence[str] = (), symbols: Sequence[str] = (), conflate: bool = False
    ) -> AsyncIterator[stream_pb2.StreamTicksResponse]:
        """Ticks, live (after a reconnect too: a new subscription, numbered from 1 again)."""
        request = stream_pb2.StreamTicksRequest(
            instance_ids=instance_ids, symbols=symbols, conflate=conflate
        )
        cursor = cursors.Live[stream_pb2.StreamTicksResponse](request)
        return self._stream(self._streams.StreamTicks, cursor)

    def instance_events(
        self, instance_ids: Sequence[str] = ()
    ) -> AsyncIterator[common_pb2.InstanceEvent]:
        """Instance state changes, live (after a reconnect too)."""
        request = stream_pb2.StreamInstanceEventsRequest(instance_ids=instance_ids)
        return self._stream(self._streams.StreamInstanceEvents, cursors.Events(request))

    def accounts(
        self, instance_id: str, interval: float = 0.0
    ) -> AsyncIterator[common_pb2.Account]:
        """The account on change (and every ``interval`` seconds when given), live."""
        request = stream_pb2.StreamAccountRequest(instance_id=instance_id)
        if interval:
            request.interval.CopyFrom(duration_pb2.Duration(nanos=int(interval * 1e9) % 10**9))
            request.interval.seconds = int(interval)
        return self._stream(self._streams.StreamAccount, cursors.Accounts(request))
