"""OrderService: order entry, modification, cancellation, positions and the account.

Validation of ids and shapes happens here; everything about the order itself (symbol,
volume, prices, sides, expiration, idempotency, the journal, routing) happens in the engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from mt5exec.auth import principal as auth
from mt5exec.engine import OrderArgs, OrderChanges
from mt5exec.errors import MT5ExecError, invalid, not_found, number
from mt5exec.reasons import Reason
from mt5exec.server.handlers import Context
from mt5exec.server.state import AppState
from mt5exec.services import validation
from mt5exec.services.copier import CopyRelations
from mt5exec.services.history import HistoryReads
from mt5exec.services.signals import Signals
from mt5exec.v1 import common_pb2, order_pb2

PLANNED: dict[str, int | str] = {}

# Orders one session may have in flight before it stops reading new ones (backpressure).
_SESSION_WINDOW = 1024


def _expiration_msc(request: order_pb2.ModifyOrderRequest) -> int:
    if not request.HasField("expiration"):
        return 0
    return validation.timestamp_nanos("expiration", request.expiration) // 1_000_000


class OrderService:
    # These requests go to the engine as received: it decodes and validates them.
    RAW_REQUESTS = frozenset({"PlaceOrder", "OrderSession"})

    def __init__(self, state: AppState) -> None:
        self._state = state
        self._engine = state.engine
        self._timeout = state.config.engine.order_timeout_s
        self._relations = CopyRelations(
            state.engine, state.config.server.data_dir, state.config.instances_dir
        )
        self._relations.restore()
        # DeleteInstance removes the relations naming the instance.
        state.copy_relations = self._relations
        self._history = HistoryReads(state)
        self._signals = Signals(state.config, state.engine, self._timeout)

    # The order calls return the engine's future of the answer (no coroutine of their own
    # between the handler and the engine: they run for every order).

    def PlaceOrder(self, request: bytes, context: Context) -> Awaitable[bytes]:
        # The engine, which decodes the request, refuses another owner's instance.
        owner = auth.current().owner
        return self._engine.place_order_raw(request, self._timeout, owner=owner)

    def CheckOrder(
        self, request: order_pb2.CheckOrderRequest, context: Context
    ) -> Awaitable[bytes]:
        raw = request.order.SerializeToString()
        # As PlaceOrder: the engine refuses another owner's instance too.
        owner = auth.current().owner
        return self._engine.place_order_raw(raw, self._timeout, check_only=True, owner=owner)

    def CancelOrder(
        self, request: order_pb2.CancelOrderRequest, context: Context
    ) -> Awaitable[bytes]:
        instance_id = validation.instance_id(request.instance_id)
        if not request.order_id and not request.client_order_id:
            raise invalid(
                "order_id", Reason.FIELD_REQUIRED, "order_id or client_order_id: required"
            )
        return self._engine.cancel_order(
            instance_id, request.order_id, request.client_order_id, self._timeout
        )

    def ModifyOrder(
        self, request: order_pb2.ModifyOrderRequest, context: Context
    ) -> Awaitable[bytes]:
        instance_id = validation.instance_id(request.instance_id)
        if not request.order_id and not request.client_order_id:
            raise invalid(
                "order_id", Reason.FIELD_REQUIRED, "order_id or client_order_id: required"
            )
        changes = OrderChanges(
            order_id=request.order_id,
            client_order_id=request.client_order_id,
            price=request.price,
            stop_limit_price=request.stop_limit_price,
            stop_loss=request.stop_loss,
            take_profit=request.take_profit,
            time_in_force=request.time_in_force,
            expiration_msc=_expiration_msc(request),
        )
        return self._engine.modify_order(instance_id, changes, self._timeout)

    def ModifyPosition(
        self, request: order_pb2.ModifyPositionRequest, context: Context
    ) -> Awaitable[bytes]:
        instance_id = validation.instance_id(request.instance_id)
        if not request.position_id:
            raise invalid("position_id", Reason.FIELD_REQUIRED, "position_id: required")
        return self._engine.modify_position(
            instance_id, request.position_id, request.stop_loss, request.take_profit, self._timeout
        )

    def _position(self, instance_id: str, position_id: int) -> common_pb2.Position:
        positions = order_pb2.ListPositionsResponse.FromString(
            self._engine.list_positions(instance_id, "")
        ).positions
        for position in positions:
            if position.position_id == position_id:
                return position
        raise not_found(
            "position_id", Reason.POSITION_NOT_FOUND, f"position_id: no open position {position_id}"
        )

    async def _close(
        self,
        instance_id: str,
        position: common_pb2.Position,
        volume: float,
        client_order_id: str,
        deviation_points: int,
    ) -> bytes:
        validation.finite("volume", volume)
        if volume > position.volume + 1e-9:
            raise invalid(
                "volume",
                Reason.VOLUME_ABOVE_POSITION,
                f"volume: {number(volume)} is more than the position's {number(position.volume)}",
            )
        close_side = (
            common_pb2.SIDE_SELL if position.side == common_pb2.SIDE_BUY else common_pb2.SIDE_BUY
        )
        args = OrderArgs(
            instance_id=instance_id,
            client_order_id=validation.client_order_id(client_order_id),
            symbol=position.symbol,
            side=close_side,
            order_type=common_pb2.ORDER_TYPE_MARKET,
            volume=volume or position.volume,
            deviation_points=deviation_points,
            position_id=position.position_id,
        )
        return await self._engine.place_order(args, self._timeout)

    async def ClosePosition(
        self, request: order_pb2.ClosePositionRequest, context: Context
    ) -> bytes:
        instance_id = validation.instance_id(request.instance_id)
        if not request.position_id:
            raise invalid("position_id", Reason.FIELD_REQUIRED, "position_id: required")
        position = self._position(instance_id, request.position_id)
        return await self._close(
            instance_id,
            position,
            request.volume,
            request.client_order_id,
            request.deviation_points,
        )

    async def CloseAll(
        self, request: order_pb2.CloseAllRequest, context: Context
    ) -> order_pb2.CloseAllResponse:
        instance_id = validation.instance_id(request.instance_id)
        positions = order_pb2.ListPositionsResponse.FromString(
            self._engine.list_positions(instance_id, request.symbol)
        ).positions
        batch = uuid.uuid4().hex[:12]
        results = await asyncio.gather(
            *(
                self._close(instance_id, p, 0.0, f"closeall-{batch}-{p.position_id}", 0)
                for p in positions
            ),
            return_exceptions=True,
        )
        response = order_pb2.CloseAllResponse()
        for result in results:
            payload = result.payload if isinstance(result, MT5ExecError) else result
            if isinstance(result, BaseException) and not isinstance(result, MT5ExecError):
                raise result
            if isinstance(payload, bytes) and payload:
                response.orders.append(order_pb2.PlaceOrderResponse.FromString(payload).order)
        return response

    async def GetOrder(self, request: order_pb2.GetOrderRequest, context: Context) -> bytes:
        instance_id = validation.instance_id(request.instance_id)
        key = request.WhichOneof("key")
        if key is None:
            raise invalid("key", Reason.FIELD_REQUIRED, "order_id or client_order_id: required")
        try:
            order = common_pb2.Order.FromString(
                self._engine.get_order(instance_id, request.order_id, request.client_order_id)
            )
        except MT5ExecError as e:
            # One the engine forgot (docs/history.md): from the history.
            if e.code != grpc.StatusCode.NOT_FOUND or e.reason != Reason.ORDER_NOT_FOUND:
                raise
            stored = await self._history.get_order(request)
            if stored is None:
                raise
            order = stored
        return order_pb2.GetOrderResponse(order=order).SerializeToString()

    async def ListOrders(self, request: order_pb2.ListOrdersRequest, context: Context) -> bytes:
        instance_id = validation.instance_id(request.instance_id)
        memory = self._engine.list_orders(
            instance_id,
            request.history,
            request.symbol,
            _nanos("from_time", request.from_time) if request.HasField("from_time") else None,
            _nanos("to_time", request.to_time) if request.HasField("to_time") else None,
            request.page_size,
            request.page_token,
        )
        return await self._history.list_orders(request, memory)

    async def ListDeals(self, request: order_pb2.ListDealsRequest, context: Context) -> bytes:
        return await self._history.list_deals(request)

    async def ListTicks(self, request: order_pb2.ListTicksRequest, context: Context) -> bytes:
        return await self._history.list_ticks(request)

    async def ExportHistory(
        self, request: order_pb2.ExportHistoryRequest, context: Context
    ) -> bytes:
        return await self._history.export(request)

    async def ListPositions(
        self, request: order_pb2.ListPositionsRequest, context: Context
    ) -> bytes:
        instance_id = validation.instance_id(request.instance_id)
        return self._engine.list_positions(instance_id, request.symbol)

    async def GetAccount(self, request: order_pb2.GetAccountRequest, context: Context) -> bytes:
        return self._engine.get_account(validation.instance_id(request.instance_id))

    async def PublishSignal(
        self, request: order_pb2.PublishSignalRequest, context: Context
    ) -> order_pb2.PublishSignalResponse:
        return await self._signals.publish(request)

    async def CreateCopyRelation(
        self, request: order_pb2.CreateCopyRelationRequest, context: Context
    ) -> order_pb2.CreateCopyRelationResponse:
        return await self._relations.create(request)

    async def ListCopyRelations(
        self, request: order_pb2.ListCopyRelationsRequest, context: Context
    ) -> order_pb2.ListCopyRelationsResponse:
        return await self._relations.list(request)

    async def GetCopyRelation(
        self, request: order_pb2.GetCopyRelationRequest, context: Context
    ) -> order_pb2.GetCopyRelationResponse:
        return await self._relations.get(request)

    async def DeleteCopyRelation(
        self, request: order_pb2.DeleteCopyRelationRequest, context: Context
    ) -> order_pb2.DeleteCopyRelationResponse:
        return await self._relations.delete(request)

    async def OrderSession(
        self, requests: AsyncIterator[bytes], context: Context
    ) -> AsyncIterator[bytes]:
        """Orders and cancels in, results out (matched by client_order_id), through the same
        validation, idempotency and journal as PlaceOrder, run by the engine: requests reach it
        as the bytes gRPC received and responses leave as the bytes it built. Up to a window
        of orders are in flight; a broken session loses no order it was answered for (they
        are journaled), and orders still in flight complete and can be read with GetOrder."""
        session = self._engine.open_session(_SESSION_WINDOW, owner=auth.current().owner)

        async def feed() -> None:
            try:
                async for raw in requests:
                    await session.submit(raw)
            finally:
                session.input_done()

        reader = asyncio.create_task(feed())
        try:
            async for response in session.responses():
                yield response
            await reader
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, grpc.aio.AbortError):
                await reader


_NANOS_RANGE = (-(2**63), 2**63 - 1)


def _nanos(field: str, t: Timestamp) -> int:
    """Nanoseconds since the epoch, held to what the engine counts in (years 1678 to 2262):
    a window reaching past them reaches past every order."""
    low, high = _NANOS_RANGE
    return min(max(validation.timestamp_nanos(field, t), low), high)
