"""An MT5 master's positions report proves no close (issue #20): a terminal just logged in can
report an empty or partial list before it has synced with the trade server, so a linked
position missing from its new worker's first report leaves its copies open, and the follower
is told (COPIES_LEFT_OPEN). Real server, the real MT5 worker on the simulated terminal
(``mt5exec.mt5.simterminal``), a sim follower."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.copier_support import BUY, net, orders_of, place, positions, relate, wait_net
from tests.mt5_server_support import LOGIN, PASSWORD, SERVER, create_mt5, terminal_dir
from tests.support import create_sim, subscribers, wait_for_price, wait_ready, wait_until

from mt5exec.mt5 import constants as c
from mt5exec.mt5 import simterminal
from mt5exec.testing import ServerProcess
from mt5exec.v1 import instance_pb2, stream_pb2


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    config = tmp_path / "mt5exec.toml"
    config.write_text('[mt5]\nmodule = "mt5exec.mt5.simterminal"\npoll_interval_ms = 20\n')
    with ServerProcess(tmp_path / "data", config=config) as proc:
        yield proc


def _close_in_terminal(terminal: Path, position_id: int) -> None:
    """Closes the position at the terminal itself, its worker stopped (as its SL/TP would
    while no worker was there): what the master's next worker will not hold."""
    assert simterminal.initialize(terminal, login=LOGIN, password=PASSWORD, server=SERVER)
    try:
        (position,) = simterminal.positions_get(ticket=position_id) or ()
        for _ in range(20):
            result = simterminal.order_send(
                {
                    "action": c.TRADE_ACTION_DEAL,
                    "symbol": position.symbol,
                    "volume": position.volume,
                    "type": c.ORDER_TYPE_SELL,
                    "position": position_id,
                    "type_filling": c.ORDER_FILLING_FOK,
                    "deviation": 100,
                }
            )
            if result is not None and result.retcode == c.TRADE_RETCODE_DONE:
                break
        assert simterminal.positions_get(ticket=position_id) == (), "not closed"
    finally:
        simterminal.shutdown()


def test_an_mt5_masters_position_missing_from_its_new_workers_report_closes_no_copy(
    server: ServerProcess,
) -> None:
    create_mt5(server, "xm")
    create_sim(server, "xf")
    relate(server, "mt5", "xm", "xf")
    wait_for_price(server, "xm", "EURUSD")
    opened = place(server, "xm", "xm-1", BUY, 0.01)
    wait_net(server, "xf", 0.01)
    server.instances.StopInstance(instance_pb2.StopInstanceRequest(instance_id="xm"), timeout=60)
    _close_in_terminal(terminal_dir(server, "xm"), opened.position_id)

    request = stream_pb2.StreamInstanceEventsRequest(instance_ids=["xf"])
    events = server.streams.StreamInstanceEvents(request, timeout=120)
    try:
        wait_until(
            "the instance event stream live", lambda: subscribers(server, "instance_events") > 0
        )
        server.instances.StartInstance(
            instance_pb2.StartInstanceRequest(instance_id="xm"), timeout=120
        )
        wait_ready(server, "xm")
        wait_until("the master without its position", lambda: positions(server, "xm") == [])
        told = next(
            e.reason
            for response in events
            for e in response.events
            if e.reason.startswith("COPIES_LEFT_OPEN")
        )
    finally:
        events.cancel()
    assert "relation 'mt5'" in told and str(opened.position_id) in told, told
    # The copy stays open: no close was made.
    assert net(server, "xf") == 0.01
    assert [o for o in orders_of(server, "xf", "mt5.") if ":c" in o.client_order_id] == []
