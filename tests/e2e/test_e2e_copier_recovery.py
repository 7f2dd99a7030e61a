"""The copier's exactly-once copies across crashes (real server, real sim workers): a copy
replayed by three kill -9 restarts stays one order; kill -9 of the server and of a follower's
worker in the middle of a 30-follower copy leaves every follower with exactly one copy after
recovery, while the one its risk gate refuses gets none and the others copy."""

from __future__ import annotations

import os
import signal
from concurrent.futures import Future
from pathlib import Path

from tests.copier_support import BUY, orders_of, place, positions, relate, stats
from tests.support import create_sim, wait_for_price, wait_ready, wait_until

from mt5exec.testing import ServerProcess
from mt5exec.v1 import common_pb2, instance_pb2, order_pb2

# 31 workers starting together on a busy two-core box need more than the default start timeout.
ENV = {"MT5EXEC_SERVER_MAX_INSTANCES": "40", "MT5EXEC_ENGINE_WORKER_START_TIMEOUT_S": "120"}


def restart(server: ServerProcess, instance_ids: list[str]) -> None:
    server.kill()  # SIGKILL: the workers go with it; the brokers keep their state
    server.start()
    for instance_id in instance_ids:
        wait_ready(server, instance_id, timeout=180)
    for instance_id in instance_ids:
        wait_for_price(server, instance_id, "EURUSD")


def wait_recovered(server: ServerProcess, relation_ids: list[str]) -> None:
    for relation_id in relation_ids:
        wait_until(
            f"relation {relation_id} recovered",
            lambda r=relation_id: stats(server, r).recovered,  # type: ignore[misc]
            timeout=180,
        )


def open_copies(server: ServerProcess, instance_id: str, relation_id: str) -> list[float]:
    return [p.volume for p in positions(server, instance_id) if p.comment.startswith(relation_id)]


def test_a_copy_replayed_by_three_crashes_is_one_order(tmp_path: Path) -> None:
    with ServerProcess(tmp_path / "server", env=ENV, start_timeout=60) as server:
        ids = ["xm", "xf1", "xf2"]
        for instance_id in ids:
            create_sim(server, instance_id, tick_rate=2)
        relate(server, "x1", "xm", "xf1")
        relate(server, "x2", "xm", "xf2", multiplier=2.0)
        place(server, "xm", "xm-1", BUY, 0.02)
        wait_until("copied", lambda: open_copies(server, "xf2", "x2.") == [0.04])
        for _ in range(3):
            restart(server, ids)
            wait_recovered(server, ["x1", "x2"])
            assert len(orders_of(server, "xf1", "x1.")) == 1
            assert len(orders_of(server, "xf2", "x2.")) == 1
            assert open_copies(server, "xf1", "x1.") == [0.02]
            assert open_copies(server, "xf2", "x2.") == [0.04]


def test_kill9_in_the_middle_of_a_30_follower_copy(tmp_path: Path) -> None:
    followers = [f"k{i:02d}" for i in range(30)]
    refused = followers[0]
    with ServerProcess(tmp_path / "server", env=ENV, start_timeout=60) as server:
        create_sim(server, "km", tick_rate=1)
        # Its risk gate refuses the copy's volume.
        strict = common_pb2.RiskLimits(max_order_volume=0.01, min_order_volume=0.01)
        for start in range(0, len(followers), 6):
            pending = [
                server.instances.CreateInstance.future(
                    instance_pb2.CreateInstanceRequest(
                        instance_id=name,
                        config=common_pb2.InstanceConfig(
                            symbols=["EURUSD"],
                            tick_rate=1,
                            risk=strict if name == refused else None,
                        ),
                    ),
                    timeout=240,
                )
                for name in followers[start : start + 6]
            ]
            for future in pending:
                future.result()
        for name in ["km", *followers]:
            wait_for_price(server, name, "EURUSD")
        for name in followers:
            relate(server, f"r{name}", "km", name)
        # One follower's worker is killed as the copy goes out, and the server right after.
        victim = server.instances.GetInstance(
            instance_pb2.GetInstanceRequest(instance_id=followers[7]), timeout=10
        ).instance.worker_pid
        request = order_pb2.PlaceOrderRequest(
            instance_id="km",
            client_order_id="km-crash",
            symbol="EURUSD",
            side=BUY,
            type=common_pb2.ORDER_TYPE_MARKET,
            volume=0.02,
        )
        os.kill(victim, signal.SIGKILL)
        sent: Future[order_pb2.PlaceOrderResponse] = server.orders.PlaceOrder.future(
            request, timeout=60
        )
        server.kill()
        del sent
        restart(server, ["km", *followers])
        # The master's order, if lost before it reached the terminal, is placed again under
        # its id (the journal answers it once it is known).
        master = server.orders.PlaceOrder(request, timeout=60).order
        assert master.status == common_pb2.ORDER_STATUS_FILLED
        relations = [f"r{name}" for name in followers]
        wait_recovered(server, relations)
        for name in followers[1:]:
            wait_until(
                f"{name} holds one copy",
                lambda n=name: open_copies(server, n, f"r{n}.") == [0.02],  # type: ignore[misc]
                timeout=120,
            )
            opened = [
                o
                for o in orders_of(server, name, f"r{name}.")
                if o.status == common_pb2.ORDER_STATUS_FILLED
            ]
            assert len(opened) == 1, (name, opened)
        # The refused one: no copy, its refusal counted by its relation.
        assert open_copies(server, refused, f"r{refused}.") == []
        skipped = stats(server, f"r{refused}").skipped
        assert skipped["VOLUME_ABOVE_LIMIT"] >= 1, skipped
