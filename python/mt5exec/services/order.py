"""OrderService: order entry and the account/position views, all through the engine."""

from __future__ import annotations

from mt5exec.errors import invalid
from mt5exec.server.handlers import Context
from mt5exec.server.state import AppState
from mt5exec.services import validation
from mt5exec.v1 import order_pb2

PLANNED = {
    "ModifyOrder": 4,
    "CancelOrder": 4,
    "ModifyPosition": 4,
    "ClosePosition": 4,
    "CloseAll": 4,
    "GetOrder": 4,
    "ListOrders": 4,
    "CheckOrder": 4,
    "OrderSession": 4,
    "CreateCopyRelation": 7,
    "ListCopyRelations": 7,
    "DeleteCopyRelation": 7,
    "PublishSignal": 7,
}

_MAX_COMMENT = 64


class OrderService:
    def __init__(self, state: AppState) -> None:
        self._state = state
        self._engine = state.engine
        self._timeout = state.config.engine.order_timeout_s

    async def PlaceOrder(self, request: order_pb2.PlaceOrderRequest, context: Context) -> bytes:
        instance_id = validation.instance_id(request.instance_id)
        client_order_id = validation.client_order_id(request.client_order_id)
        if not request.symbol:
            raise invalid("symbol", "FIELD_REQUIRED", "symbol: required")
        if len(request.comment) > _MAX_COMMENT:
            raise invalid(
                "comment", "COMMENT_TOO_LONG", f"comment: at most {_MAX_COMMENT} characters"
            )
        return await self._engine.place_order(
            instance_id,
            client_order_id,
            request.symbol,
            request.side,
            request.type,
            request.volume,
            request.price,
            request.stop_loss,
            request.take_profit,
            request.deviation_points,
            request.comment,
            request.magic,
            self._timeout,
        )

    async def ListPositions(
        self, request: order_pb2.ListPositionsRequest, context: Context
    ) -> bytes:
        instance_id = validation.instance_id(request.instance_id)
        return self._engine.list_positions(instance_id, request.symbol)

    async def GetAccount(self, request: order_pb2.GetAccountRequest, context: Context) -> bytes:
        return self._engine.get_account(validation.instance_id(request.instance_id))
