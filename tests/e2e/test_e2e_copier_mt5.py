"""An MT5 master's position closed while no worker watched its terminal (issue #20): its SL/TP
or a stop-out while the worker or the server was down. The master's next worker reports the
deals made since the last ones it reported (workers.mt5_deals), so the closing deal reaches the
history, the execution stream and the copier, which closes the copy (once). Its positions
report alone proves no close (a terminal just logged in can report an empty or partial list
before it has synced with the trade server): without the deal, the copy is left open and the
follower is told (COPIES_LEFT_OPEN). Real server, the real MT5 worker on the simulated terminal
(``mt5exec.mt5.simterminal``), a sim follower."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.copier_support import BUY, net, orders_of, place, positions, relate, wait_net
from tests.mt5_server_support import (
    create_mt5,
    reported_deals_file,
    terminal_dir,
    trade_in_terminal,
)
from tests.support import (
    create_sim,
    execution_events,
    subscribers,
    wait_for_price,
    wait_ready,
    wait_until,
)

from mt5exec.mt5 import constants as c
from mt5exec.testing import ServerProcess
from mt5exec.v1 import common_pb2, instance_pb2, order_pb2, stream_pb2


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    config = tmp_path / "mt5exec.toml"
    config.write_text('[mt5]\nmodule = "mt5exec.mt5.simterminal"\npoll_interval_ms = 20\n')
    with ServerProcess(tmp_path / "data", config=config) as proc:
        yield proc


def _copied(server: ServerProcess) -> int:
    """A master position held by the follower's copy: its position id."""
    create_mt5(server, "xm")
    create_sim(server, "xf")
    relate(server, "mt5", "xm", "xf")
    wait_for_price(server, "xm", "EURUSD")
    opened = place(server, "xm", "xm-1", BUY, 0.01)
    wait_net(server, "xf", 0.01)
    return opened.position_id


def _close_while_stopped(server: ServerProcess, position_id: int) -> int:
    """The master stopped, its position closed at the terminal itself (as its SL/TP would
    while no worker was there): the closing deal's ticket."""
    server.instances.StopInstance(instance_pb2.StopInstanceRequest(instance_id="xm"), timeout=60)
    result = trade_in_terminal(
        terminal_dir(server, "xm"),
        {"volume": 0.01, "type": c.ORDER_TYPE_SELL, "position": position_id},
    )
    deal: int = result.deal
    return deal


def _start_master(server: ServerProcess) -> None:
    server.instances.StartInstance(instance_pb2.StartInstanceRequest(instance_id="xm"), timeout=120)
    wait_ready(server, "xm", timeout=180)


def _closes(server: ServerProcess) -> list[common_pb2.Order]:
    return [o for o in orders_of(server, "xf", "mt5.") if ":c" in o.client_order_id]


def _fills_until_marker(server: ServerProcess, cid: str) -> list[common_pb2.Fill]:
    """The master's fills on its execution stream, up to its new order ``cid``'s (placed now):
    every deal reported before it is there."""
    marker = place(server, "xm", cid, BUY, 0.01)
    events = execution_events(
        server,
        "xm",
        lambda e: e.HasField("fill") and e.fill.order_id == marker.order_id,
        timeout=120,
    )
    return [e.fill for e in events if e.HasField("fill")]


def _stored(server: ServerProcess, deal: int) -> int:
    request = order_pb2.ListDealsRequest(instance_id="xm", page_size=1000)
    deals = server.orders.ListDeals(request, timeout=30).deals
    return sum(1 for d in deals if d.deal_id == deal)


def test_an_mt5_masters_position_closed_while_its_worker_was_stopped_closes_the_copy_once(
    server: ServerProcess,
) -> None:
    position = _copied(server)
    deal = _close_while_stopped(server, position)
    _start_master(server)

    events = execution_events(
        server, "xm", lambda e: e.HasField("fill") and e.fill.deal_id == deal, timeout=120
    )
    (fill,) = [e.fill for e in events if e.HasField("fill") and e.fill.deal_id == deal]
    assert fill.position_id == position and fill.entry == common_pb2.FILL_ENTRY_OUT
    wait_net(server, "xf", 0.0)
    assert len(_closes(server)) == 1
    wait_until("the closing deal in the history", lambda: _stored(server, deal) == 1)

    # The master's worker started again: the deal is not reported again, no second close.
    server.instances.StopInstance(instance_pb2.StopInstanceRequest(instance_id="xm"), timeout=60)
    _start_master(server)
    fills = _fills_until_marker(server, "xm-2")
    assert [f.deal_id for f in fills].count(deal) == 1, fills
    wait_net(server, "xf", 0.01)  # the marker's copy

    # A server killed -9 and started again: still once.
    server.kill()
    server.start()
    wait_ready(server, "xm", timeout=180)
    wait_ready(server, "xf", timeout=180)
    wait_for_price(server, "xm", "EURUSD")
    fills = _fills_until_marker(server, "xm-3")  # the stream's replay of the history too
    assert [f.deal_id for f in fills].count(deal) == 1, fills
    wait_net(server, "xf", 0.02)
    assert len(_closes(server)) == 1
    assert _stored(server, deal) == 1


def test_an_mt5_masters_position_missing_without_its_closing_deal_leaves_the_copy_open(
    server: ServerProcess,
) -> None:
    """The evidence missing: the worker's record of the deals it reported is lost (its next
    start is a first start: the deals in the history belong to the past), so nothing says the
    position closed but its absence from the positions report, which proves nothing."""
    position = _copied(server)
    _close_while_stopped(server, position)
    reported_deals_file(server, "xm").unlink()

    request = stream_pb2.StreamInstanceEventsRequest(instance_ids=["xf"])
    events = server.streams.StreamInstanceEvents(request, timeout=120)
    try:
        wait_until(
            "the instance event stream live", lambda: subscribers(server, "instance_events") > 0
        )
        _start_master(server)
        wait_until("the master without its position", lambda: positions(server, "xm") == [])
        told = next(
            e.reason
            for response in events
            for e in response.events
            if e.reason.startswith("COPIES_LEFT_OPEN")
        )
    finally:
        events.cancel()
    assert "relation 'mt5'" in told and str(position) in told, told
    # The copy stays open: no close was made.
    assert net(server, "xf") == 0.01
    assert _closes(server) == []


def test_an_mt5_masters_close_reported_while_its_follower_is_stopped_is_made_when_it_is_back(
    server: ServerProcess,
) -> None:
    position = _copied(server)
    server.instances.StopInstance(instance_pb2.StopInstanceRequest(instance_id="xf"), timeout=60)
    deal = _close_while_stopped(server, position)
    _start_master(server)
    execution_events(
        server, "xm", lambda e: e.HasField("fill") and e.fill.deal_id == deal, timeout=120
    )
    wait_until("the master without its position", lambda: positions(server, "xm") == [])
    server.instances.StartInstance(instance_pb2.StartInstanceRequest(instance_id="xf"), timeout=120)
    wait_ready(server, "xf", timeout=180)
    wait_net(server, "xf", 0.0)
    assert len(_closes(server)) == 1
