# Generated from ../_async by scripts/gen_sync_client.py: edit that, not this.
"""The connection and the two ways to call: unary calls with retries, and streams that
reconnect and resume (cursors.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any, Self, TypeVar

import grpc
from google.protobuf.message import Message

from mt5exec.client._sync_io import Channel, open_channel, sleep
from mt5exec.client.cursors import Cursor
from mt5exec.client.errors import from_rpc_error
from mt5exec.client.retry import RECONNECT, RetryPolicy
from mt5exec.client.settings import Settings
from mt5exec.v1 import auth_pb2_grpc, instance_pb2_grpc, order_pb2_grpc, stream_pb2_grpc

Response = TypeVar("Response", bound=Message)
Item = TypeVar("Item")


class SyncBase:
    """A channel to one server with its settings (Settings.resolve: arguments, environment,
    defaults); ``retry`` for unary calls that are safe to repeat, ``reconnect`` for streams."""

    def __init__(
        self,
        target: str | None = None,
        *,
        token: str | None = None,
        settings: Settings | None = None,
        retry: RetryPolicy | None = None,
        reconnect: RetryPolicy = RECONNECT,
    ) -> None:
        self.settings = settings or Settings.resolve(target=target, token=token)
        self.retry = retry or RetryPolicy()
        self.reconnect = reconnect
        self._metadata = self.settings.metadata()
        self._channel: Channel = open_channel(self.settings)
        self._instances = instance_pb2_grpc.InstanceServiceStub(self._channel)
        self._orders = order_pb2_grpc.OrderServiceStub(self._channel)
        self._streams = stream_pb2_grpc.StreamServiceStub(self._channel)
        self._auth = auth_pb2_grpc.AuthServiceStub(self._channel)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _call(
        self,
        method: Callable[..., Any],
        request: Message,
        *,
        timeout: float | None = None,
        retry: bool = False,
    ) -> Any:
        """One unary call; with ``retry`` tried again by the retry policy (the same request,
        so an order keeps its client_order_id). Failures raise errors.Error."""
        attempt = 1
        while True:
            try:
                return method(
                    request, timeout=timeout or self.settings.timeout, metadata=self._metadata
                )
            except grpc.RpcError as e:
                error = from_rpc_error(e)
                delay = self.retry.delay(attempt, error) if retry else None
                if delay is None:
                    raise error from None
            attempt += 1
            sleep(delay)

    def _stream(self, method: Callable[..., Any], cursor: Cursor[Response, Item]) -> Iterator[Item]:
        """The items of a server stream, reopened from where the cursor is when the server
        goes away or cannot be reached (the reconnect policy); other failures raise."""
        attempt = 1
        while True:
            call = method(cursor.request(), metadata=self._metadata)
            try:
                cursor.opened(call.initial_metadata())
                for response in call:
                    attempt = 1
                    for item in cursor.take(response):
                        yield item
                return
            except grpc.RpcError as e:
                error = from_rpc_error(e)
                delay = self.reconnect.delay(attempt, error)
                if delay is None:
                    raise error from None
            finally:
                call.cancel()
            attempt += 1
            sleep(delay)
