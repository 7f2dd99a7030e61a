"""The floor of an order round trip through a worker process: a bare grpc.aio server whose
PlaceOrder does nothing but pass the request to an echo process and back.

mt5exec runs one worker process per trading account (the brief), so every order crosses to
another process and back. This server pays exactly that and nothing else: the null RPC
(health ``Check``, grpc's own servicer, as in mt5exec), and a PlaceOrder that decodes the
request, writes it to a Unix socket, waits for the echo process to write it back and answers
FILLED (market) or ACCEPTED (anything else). No validation, no journal, no broker. Its order
vs null RPC ratio is the least any design with a worker process can reach on this machine.

Run as ``python benchmarks/_hop_floor.py``: prints ``port N`` once it serves, in a session of
its own like ``ServerProcess`` (the scheduler groups processes by session).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import socket
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_LENGTH = struct.Struct(">I")

# The worker: reads what comes and writes it back, nothing else.
_ECHO = """
import socket, sys
sock = socket.socket(fileno=int(sys.argv[1]))
while data := sock.recv(65536):
    sock.sendall(data)
"""


async def _serve(ours: socket.socket) -> None:
    import grpc
    from grpc_health.v1 import health, health_pb2_grpc

    from mt5exec.v1 import common_pb2, order_pb2

    ours.setblocking(False)
    loop = asyncio.get_running_loop()
    waiting: collections.deque[asyncio.Future[None]] = collections.deque()
    received = bytearray()

    def on_readable() -> None:
        # Answers come back in the order the requests went out.
        received.extend(ours.recv(65536))
        while len(received) >= _LENGTH.size:
            (size,) = _LENGTH.unpack_from(received)
            if len(received) < _LENGTH.size + size:
                break
            del received[: _LENGTH.size + size]
            future = waiting.popleft()
            if not future.done():
                future.set_result(None)

    loop.add_reader(ours.fileno(), on_readable)

    def answer(status: int) -> bytes:
        order = common_pb2.Order(status=status, order_id=1, average_fill_price=1.1)
        return order_pb2.PlaceOrderResponse(order=order).SerializeToString()

    filled = answer(common_pb2.ORDER_STATUS_FILLED)
    accepted = answer(common_pb2.ORDER_STATUS_ACCEPTED)

    async def place(request: bytes, context: Any) -> bytes:
        order = order_pb2.PlaceOrderRequest.FromString(request)
        future = loop.create_future()
        waiting.append(future)
        ours.sendall(_LENGTH.pack(len(request)) + request)
        await future
        return filled if order.type == common_pb2.ORDER_TYPE_MARKET else accepted

    async def cancel(request: bytes, context: Any) -> bytes:
        return b""

    server = grpc.aio.server()
    methods = {
        "PlaceOrder": grpc.unary_unary_rpc_method_handler(place),
        "CancelOrder": grpc.unary_unary_rpc_method_handler(cancel),
    }
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("mt5exec.v1.OrderService", methods),)
    )
    health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(f"port {port}", flush=True)
    await server.wait_for_termination()


@contextlib.contextmanager
def floor_server() -> Iterator[str]:
    """Runs the floor server in a session of its own; yields its address."""
    with subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve())],
        stdout=subprocess.PIPE,
        start_new_session=True,
    ) as process:
        try:
            assert process.stdout is not None
            line = process.stdout.readline().split()
            if len(line) != 2 or line[0] != b"port":
                raise RuntimeError(f"the floor server did not start: {line!r}")
            yield f"127.0.0.1:{line[1].decode()}"
        finally:
            # The whole session: the server and its echo process.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, 9)


def main() -> None:
    import uvloop

    ours, theirs = socket.socketpair()
    echo = subprocess.Popen(
        [sys.executable, "-c", _ECHO, str(theirs.fileno())], pass_fds=[theirs.fileno()]
    )
    theirs.close()
    try:
        uvloop.run(_serve(ours))
    finally:
        echo.kill()


if __name__ == "__main__":
    main()
