"""The master's or the follower's worker killed (kill -9) and restarted between a partial close
and the rest: no master deal is copied twice (one follower order per deal) and the last close
still closes the copy (real server, real sim workers). Before, the instance ready again rebuilt
the links over the live ones and took the partial close off a second time: the copy's link was
gone and the master's last close left the follower holding 0.02."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pytest
from tests.copier_support import BUY, close, orders_of, place, relate, sim, wait_net
from tests.support import wait_for_price, wait_until

from mt5exec.testing import ServerProcess
from mt5exec.v1 import common_pb2, instance_pb2


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with ServerProcess(tmp_path_factory.mktemp("copier-replay")) as proc:
        yield proc


def _instance(server: ServerProcess, instance_id: str) -> common_pb2.Instance:
    request = instance_pb2.GetInstanceRequest(instance_id=instance_id)
    return server.instances.GetInstance(request, timeout=10).instance


def _restart_worker(server: ServerProcess, instance_id: str) -> None:
    """kill -9 of the instance's worker; until the supervisor's new one is READY with prices."""
    old = _instance(server, instance_id).worker_pid
    assert old
    os.kill(old, signal.SIGKILL)
    wait_until(
        f"{instance_id} READY with a new worker",
        lambda: (
            (i := _instance(server, instance_id)).state == common_pb2.INSTANCE_STATE_READY
            and i.worker_pid not in (0, old)
        ),
        timeout=120,
    )
    wait_for_price(server, instance_id, "EURUSD")


def test_a_master_worker_restart_copies_no_deal_twice(server: ServerProcess) -> None:
    sim(server, "rm")
    sim(server, "rf")
    relate(server, "replay", "rm", "rf")
    opened = place(server, "rm", "rm-1", BUY, 0.04)
    wait_net(server, "rf", 0.04)
    close(server, "rm", opened.position_id, 0.02)
    wait_net(server, "rf", 0.02)
    _restart_worker(server, "rm")
    _restart_worker(server, "rf")
    close(server, "rm", opened.position_id)
    wait_net(server, "rf", 0.0)
    copies = orders_of(server, "rf", "replay.")
    # The open, the partial close and the last close: one order each.
    assert sorted(o.client_order_id.rsplit(":", 1)[1] for o in copies) == ["c0", "c0", "o"]
    assert {o.status for o in copies} == {common_pb2.ORDER_STATUS_FILLED}
