"""mt5exec from Python: a tick, an order and its executions, and a refused order's ErrorInfo.

    MT5EXEC_TARGET=127.0.0.1:50051 MT5EXEC_DATA_DIR=mt5exec-data python quickstart.py [INSTANCE]

The token is MT5EXEC_TOKEN, else the admin.key of MT5EXEC_DATA_DIR (docs/client.md). The
instance (default "demo") is created on the simulated broker when it does not exist.
"""

from __future__ import annotations

import asyncio
import sys

from mt5exec.client import AsyncClient, errors
from mt5exec.v1 import common_pb2


async def main(instance_id: str) -> None:
    async with AsyncClient() as client:
        me = await client.whoami()
        print(f"connected to {client.settings.target} as {me.subject} ({me.kind})")
        try:
            await client.get_instance(instance_id)
        except errors.NotFound:
            config = common_pb2.InstanceConfig(symbols=["EURUSD"], tick_rate=10)
            await client.create_instance(instance_id, config)

        # A tick: the instance has a price (a stream reconnects by itself if the server restarts).
        async for batch in client.ticks([instance_id], ["EURUSD"]):
            tick = batch.ticks[0]
            print(f"tick {tick.symbol} bid={tick.bid} ask={tick.ask}")
            break

        # An order: retried on UNAVAILABLE / DEADLINE_EXCEEDED with one client_order_id.
        order = await client.place_order(instance_id, "EURUSD", common_pb2.SIDE_BUY, 0.01)
        print(f"order {order.client_order_id} {common_pb2.OrderStatus.Name(order.status)}")

        # Its executions: the instance's events (resumed from the last one after a reconnect).
        async for event in client.executions(instance_id):
            if event.fill.client_order_id == order.client_order_id:
                print(f"fill #{event.sequence} {event.fill.volume} at {event.fill.price}")
                break

        # A refused order: the exception carries the ErrorInfo's reason and field.
        try:
            await client.place_order(instance_id, "EURUSD", common_pb2.SIDE_BUY, 0.015)
        except errors.InvalidArgument as e:
            print(f"refused {e.code.name} reason={e.reason} field={e.field}: {e.message}")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "demo"))
