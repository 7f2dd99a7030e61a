"""MT5 instances on a real server, their terminal the simulated one (mt5exec.mt5.simterminal):
what the e2e tests of MT5 instances share."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mt5exec.mt5 import constants as c
from mt5exec.mt5 import simterminal
from mt5exec.testing import ServerProcess
from mt5exec.v1 import common_pb2, instance_pb2

LOGIN, SERVER, PASSWORD = 5012345, "Sim-Demo", "s3cret-Pa55"


def terminal_dir(server: ServerProcess, instance_id: str) -> Path:
    return server.data_dir / "instances" / "default" / instance_id / "terminal"


def write_terminal(server: ServerProcess, instance_id: str, password: str = PASSWORD) -> Path:
    """The simulated terminal of an instance (before the instance is created): its directory."""
    directory = terminal_dir(server, instance_id)
    simterminal.write_terminal_config(
        directory,
        login=LOGIN,
        password=password,
        server=SERVER,
        symbols=["EURUSD"],
        tick_rate=20,
        margin_mode="hedging",
    )
    return directory


def reported_deals_file(server: ServerProcess, instance_id: str) -> Path:
    """Where an MT5 instance's worker keeps the deals it has reported (workers.mt5_deals)."""
    return terminal_dir(server, instance_id).parent / "reported_deals.json"


def trade_in_terminal(terminal: Path, request: dict[str, Any]) -> Any:
    """A market deal made at the terminal itself, no worker attached to it (as its SL/TP, a
    stop-out or a trader at the terminal would): the trade's result (TRADE_RETCODE_DONE)."""
    assert simterminal.initialize(terminal, login=LOGIN, password=PASSWORD, server=SERVER)
    try:
        symbol = request.get("symbol", "EURUSD")
        result = None
        for _ in range(20):  # until the terminal has a price
            result = simterminal.order_send(
                {
                    "action": c.TRADE_ACTION_DEAL,
                    "symbol": symbol,
                    "type_filling": c.ORDER_FILLING_FOK,
                    "deviation": 100,
                    **request,
                }
            )
            if result is not None and result.retcode == c.TRADE_RETCODE_DONE:
                return result
        raise AssertionError(f"the terminal did not trade {request}: {result}")
    finally:
        simterminal.shutdown()


def create_mt5(
    server: ServerProcess,
    instance_id: str,
    password: str = PASSWORD,
    request_password: str | None = None,
    *,
    terminal_written: bool = False,
) -> common_pb2.Instance:
    """An MT5 instance whose terminal knows ``password`` (what the broker gives it: a real
    install brings it with its servers.dat), created with ``request_password`` (the same
    unless given). ``terminal_written``: its terminal is there already (``write_terminal``)."""
    if not terminal_written:
        write_terminal(server, instance_id, password)
    request = instance_pb2.CreateInstanceRequest(
        instance_id=instance_id,
        backend=common_pb2.BACKEND_MT5,
        config=common_pb2.InstanceConfig(symbols=["EURUSD"], login=LOGIN, server=SERVER),
        password=password if request_password is None else request_password,
    )
    instance: common_pb2.Instance = server.instances.CreateInstance(request, timeout=60).instance
    return instance
