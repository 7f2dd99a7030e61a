"""MT5 instances on a real server, their terminal the simulated one (mt5exec.mt5.simterminal):
what the e2e tests of MT5 instances share."""

from __future__ import annotations

from pathlib import Path

from mt5exec.mt5 import simterminal
from mt5exec.testing import ServerProcess
from mt5exec.v1 import common_pb2, instance_pb2

LOGIN, SERVER, PASSWORD = 5012345, "Sim-Demo", "s3cret-Pa55"


def terminal_dir(server: ServerProcess, instance_id: str) -> Path:
    return server.data_dir / "instances" / "default" / instance_id / "terminal"


def create_mt5(
    server: ServerProcess,
    instance_id: str,
    password: str = PASSWORD,
    request_password: str | None = None,
) -> common_pb2.Instance:
    """An MT5 instance whose terminal knows ``password`` (what the broker gives it: a real
    install brings it with its servers.dat), created with ``request_password`` (the same
    unless given)."""
    simterminal.write_terminal_config(
        terminal_dir(server, instance_id),
        login=LOGIN,
        password=password,
        server=SERVER,
        symbols=["EURUSD"],
        tick_rate=20,
        margin_mode="hedging",
    )
    request = instance_pb2.CreateInstanceRequest(
        instance_id=instance_id,
        backend=common_pb2.BACKEND_MT5,
        config=common_pb2.InstanceConfig(symbols=["EURUSD"], login=LOGIN, server=SERVER),
        password=password if request_password is None else request_password,
    )
    instance: common_pb2.Instance = server.instances.CreateInstance(request, timeout=60).instance
    return instance
