"""A terminal that answers every order at once: the order round trip without a broker.

The worker speaks the worker protocol (Hello with the sim's symbols and account, heartbeats,
one price) and answers each OrderRequest with its OrderResult and nothing else (market:
filled; pending: placed; remove: done): no deal reports, no snapshots, no journal.
``order_roundtrip.py`` runs the real server with it beside the sim worker: the least the
server and the engine cost per order with any terminal (with a terminal that also reports
deals, order updates and snapshots, as the sim and MT5 do, the engine does more for each).
A measuring instrument only: the product's workers are ``mt5exec.workers.sim`` and
``mt5exec.workers.mt5``.

``python benchmarks/_instant_terminal.py --socket PATH``: the worker (started by the engine).
``python benchmarks/_instant_terminal.py serve ...``: ``mt5exec serve`` whose sim instances
run this worker instead of the sim's.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import selectors
import sys
import time
from typing import Any

from mt5exec.sim.broker import SimBroker, SimConfig
from mt5exec.terminal.v1 import worker_pb2 as pb
from mt5exec.workers.base import PROTOCOL_VERSION, batch_scheduling, connect, handshake
from mt5exec.workers.protocol import FrameReader, encode_frame

DONE, PLACED = 10009, 10008  # TRADE_RETCODE_*
PENDING, REMOVE = 5, 8  # TRADE_ACTION_*


def serve() -> int:
    """``mt5exec serve`` with every sim instance's worker replaced by this one."""
    from mt5exec import cli
    from mt5exec.services.instance import InstanceService

    spec = InstanceService._spec

    def instant_spec(self: InstanceService, *args: Any, **kwargs: Any) -> Any:
        made = spec(self, *args, **kwargs)
        argv = [made.argv[0], os.path.abspath(__file__), *made.argv[made.argv.index("--config") :]]
        return dataclasses.replace(made, argv=argv)

    InstanceService._spec = instant_spec  # type: ignore[method-assign]
    return cli.main(sys.argv[1:])


def main() -> None:
    if sys.argv[1:2] == ["serve"]:
        sys.exit(serve())
    parser = argparse.ArgumentParser()
    parser.add_argument("--socket", required=True)
    parser.add_argument("--config")
    parser.add_argument("--instance-id", default="direct")
    args = parser.parse_args()
    batch_scheduling()  # as the real workers run (docs/architecture.md#scheduling)
    broker = SimBroker(SimConfig(symbols=["EURUSD"], margin_mode="netting"))
    quote = broker.tick("EURUSD")
    bid, ask = quote.bid, quote.ask
    sock = connect(args.socket)
    hello = pb.Hello(
        protocol_version=PROTOCOL_VERSION,
        backend="sim",
        instance_id=args.instance_id,
        capabilities=["ticks", "orders"],
        pid=os.getpid(),
        symbols=broker.symbol_infos(),
        account=broker.account_snapshot(),
    )
    heartbeat_s = handshake(sock, pb.WorkerFrame(hello=hello), 10.0)
    now_msc = int(time.time() * 1000)
    # No positions (the engine is READY once it knows that), then a price.
    sock.sendall(
        encode_frame(pb.WorkerFrame(positions=pb.PositionSnapshot()))
        + encode_frame(pb.WorkerFrame(ticks=pb.TickBatch(ticks=[quote])))
    )
    sel = selectors.DefaultSelector()
    sel.register(sock, selectors.EVENT_READ)
    reader = FrameReader()
    ticket = 0
    beat = 0
    next_beat = time.monotonic() + heartbeat_s
    while True:
        if sel.select(max(0.0, next_beat - time.monotonic())):
            out = []
            for payload in reader.recv_from(sock):
                frame = pb.EngineFrame.FromString(payload)
                if frame.WhichOneof("body") != "order":
                    continue
                order = frame.order
                ticket += 1
                result = pb.OrderResult(
                    request_id=order.request_id, bid=bid, ask=ask, time_msc=now_msc
                )
                if order.action == REMOVE:
                    result.retcode, result.order = DONE, order.order
                elif order.action == PENDING:
                    result.retcode, result.order = PLACED, ticket
                    result.volume, result.price = order.volume, order.price
                else:
                    result.retcode = DONE
                    result.deal = result.order = result.position = ticket
                    result.volume = order.volume
                    result.price = ask if order.type == 0 else bid
                result.comment = order.comment
                out.append(encode_frame(pb.WorkerFrame(order_result=result)))
            if out:
                sock.sendall(b"".join(out))
        if time.monotonic() >= next_beat:
            beat += 1
            sock.sendall(encode_frame(pb.WorkerFrame(heartbeat=pb.Heartbeat(sequence=beat))))
            next_beat += heartbeat_s


if __name__ == "__main__":
    main()
