"""Where a stream is: the request that opens it again after a reconnect, and what each
response yields to the caller.

Executions of one instance resume after the last event yielded (``from_sequence``; before
the first event, after the sequence the stream's headers say it started after), so the caller
sees every event once, in order, across reconnects (docs/streams.md). Ticks, accounts
and instance events have no replay: after a reconnect they continue live.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from google.protobuf.message import Message

from mt5exec.v1 import common_pb2, stream_pb2

# The response header of a stream of one instance's executions: the sequence it starts after.
START_SEQUENCE = "mt5exec-start-sequence"
LIVE = stream_pb2.StreamExecutionsRequest.START_LIVE

Response = TypeVar("Response", bound=Message)
Taken = TypeVar("Taken", bound=Message, contravariant=True)
Item = TypeVar("Item", covariant=True)


class Cursor(Protocol[Taken, Item]):
    def request(self) -> Message: ...

    def opened(self, headers: Any) -> None: ...

    def take(self, response: Taken) -> Sequence[Item]: ...


@dataclass(slots=True)
class Executions:
    instance_id: str
    last_sequence: int = 0
    # Start at the instance's next event (nothing replayed); a reconnect resumes.
    live: bool = False

    def request(self) -> stream_pb2.StreamExecutionsRequest:
        # Without an instance the stream is live only (sequences are per instance).
        request = stream_pb2.StreamExecutionsRequest(
            instance_id=self.instance_id, from_sequence=self.last_sequence
        )
        if self.live:
            request.start = LIVE
        return request

    def opened(self, headers: Any) -> None:
        for key, value in headers or ():
            if key == START_SEQUENCE and self.instance_id:
                self.last_sequence, self.live = int(value), False

    def take(
        self, response: stream_pb2.StreamExecutionsResponse
    ) -> Sequence[common_pb2.ExecutionEvent]:
        if self.instance_id and response.events:
            self.last_sequence = response.events[-1].sequence
        return response.events


class _Reopened:
    """A stream opened again as it was first asked for."""

    opening: Message

    def request(self) -> Message:
        return self.opening

    def opened(self, headers: Any) -> None:
        pass


@dataclass(slots=True)
class Live(_Reopened, Generic[Response]):
    """Yields each response whole."""

    opening: Message

    def take(self, response: Response) -> Sequence[Response]:
        return (response,)


@dataclass(slots=True)
class Events(_Reopened):
    """Instance events: one item per event of each response."""

    opening: Message

    def take(
        self, response: stream_pb2.StreamInstanceEventsResponse
    ) -> Sequence[common_pb2.InstanceEvent]:
        return response.events


@dataclass(slots=True)
class Accounts(_Reopened):
    """Account updates: one item per account of each response."""

    opening: Message

    def take(self, response: stream_pb2.StreamAccountResponse) -> Sequence[common_pb2.Account]:
        return response.accounts
