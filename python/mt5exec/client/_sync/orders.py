# Generated from ../_async by scripts/gen_sync_client.py: edit that, not this.
"""OrderService: orders, positions and accounts."""

from __future__ import annotations

from mt5exec.client._sync.base import SyncBase
from mt5exec.client.retry import new_client_order_id
from mt5exec.v1 import common_pb2, order_pb2


class SyncOrders(SyncBase):
    def place(
        self, request: order_pb2.PlaceOrderRequest, *, timeout: float | None = None
    ) -> common_pb2.Order:
        """PlaceOrder, tried again by the retry policy on UNAVAILABLE or DEADLINE_EXCEEDED
        with the same client_order_id (made here when the request has none): the server
        answers a repeat with the order the first attempt placed, so at most one exists."""
        if not request.client_order_id:
            keyed = order_pb2.PlaceOrderRequest()
            keyed.CopyFrom(request)
            keyed.client_order_id = new_client_order_id()
            request = keyed
        response: order_pb2.PlaceOrderResponse = self._call(
            self._orders.PlaceOrder, request, timeout=timeout, retry=True
        )
        return response.order

    def place_order(
        self,
        instance_id: str,
        symbol: str,
        side: common_pb2.Side,
        volume: float,
        *,
        type: common_pb2.OrderType = common_pb2.ORDER_TYPE_MARKET,
        price: float = 0.0,
        stop_loss: float = 0.0,
        take_profit: float = 0.0,
        client_order_id: str = "",
        comment: str = "",
        timeout: float | None = None,
    ) -> common_pb2.Order:
        """An order (``place`` with a PlaceOrderRequest takes every field)."""
        request = order_pb2.PlaceOrderRequest(
            instance_id=instance_id,
            symbol=symbol,
            side=side,
            volume=volume,
            type=type,
            price=price,
            stop_loss=stop_loss,
            take_profit=take_profit,
            client_order_id=client_order_id,
            comment=comment,
        )
        return self.place(request, timeout=timeout)

    def check_order(self, order: order_pb2.PlaceOrderRequest) -> order_pb2.CheckOrderResponse:
        """A dry run: the margin and the risk verdict; nothing is placed."""
        response: order_pb2.CheckOrderResponse = self._call(
            self._orders.CheckOrder, order_pb2.CheckOrderRequest(order=order), retry=True
        )
        return response

    def cancel_order(
        self, instance_id: str, order_id: int = 0, client_order_id: str = ""
    ) -> common_pb2.Order:
        request = order_pb2.CancelOrderRequest(
            instance_id=instance_id, order_id=order_id, client_order_id=client_order_id
        )
        response: order_pb2.CancelOrderResponse = self._call(self._orders.CancelOrder, request)
        return response.order

    def get_order(
        self, instance_id: str, order_id: int = 0, client_order_id: str = ""
    ) -> common_pb2.Order:
        request = order_pb2.GetOrderRequest(instance_id=instance_id)
        if client_order_id:
            request.client_order_id = client_order_id
        else:
            request.order_id = order_id
        response: order_pb2.GetOrderResponse = self._call(
            self._orders.GetOrder, request, retry=True
        )
        return response.order

    def list_orders(
        self, instance_id: str, *, history: bool = False, symbol: str = ""
    ) -> list[common_pb2.Order]:
        """Open orders (``history``: finished ones), all pages."""
        found: list[common_pb2.Order] = []
        request = order_pb2.ListOrdersRequest(
            instance_id=instance_id, history=history, symbol=symbol
        )
        while True:
            page: order_pb2.ListOrdersResponse = self._call(
                self._orders.ListOrders, request, retry=True
            )
            found.extend(page.orders)
            if not page.next_page_token:
                return found
            request.page_token = page.next_page_token

    def list_positions(self, instance_id: str, symbol: str = "") -> list[common_pb2.Position]:
        request = order_pb2.ListPositionsRequest(instance_id=instance_id, symbol=symbol)
        response: order_pb2.ListPositionsResponse = self._call(
            self._orders.ListPositions, request, retry=True
        )
        return list(response.positions)

    def close_position(
        self, instance_id: str, position_id: int, volume: float = 0.0
    ) -> common_pb2.Order:
        """Closes a position (``volume`` 0: all of it)."""
        request = order_pb2.ClosePositionRequest(
            instance_id=instance_id, position_id=position_id, volume=volume
        )
        response: order_pb2.ClosePositionResponse = self._call(self._orders.ClosePosition, request)
        return response.order

    def close_all(self, instance_id: str, symbol: str = "") -> list[common_pb2.Order]:
        request = order_pb2.CloseAllRequest(instance_id=instance_id, symbol=symbol)
        response: order_pb2.CloseAllResponse = self._call(self._orders.CloseAll, request)
        return list(response.orders)

    def get_account(self, instance_id: str) -> common_pb2.Account:
        request = order_pb2.GetAccountRequest(instance_id=instance_id)
        response: order_pb2.GetAccountResponse = self._call(
            self._orders.GetAccount, request, retry=True
        )
        return response.account
