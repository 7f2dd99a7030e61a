"""CheckOrder's owner check below the auth guard: OrderService gives the engine the caller's
owner, as PlaceOrder does, so that the engine itself refuses another owner's instance (NOT_FOUND,
exactly as one that does not exist) whatever reaches it. The guard refuses such a call first
over gRPC (tests/e2e/test_e2e_auth_matrix.py); here the real service and engine, with a real sim
worker, are called as the guard would leave them."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import uvloop

from mt5exec.auth.principal import Principal, Role, set_current
from mt5exec.config import load_config
from mt5exec.engine import Engine, EngineConfig, InstanceSpec
from mt5exec.errors import MT5ExecError
from mt5exec.server.state import AppState
from mt5exec.services.order import OrderService
from mt5exec.templates import load_templates
from mt5exec.v1 import common_pb2, order_pb2
from mt5exec.vault import open_vault

CONFIG = common_pb2.InstanceConfig(
    symbols=["EURUSD"],
    tick_rate=20,
    margin_mode=common_pb2.ACCOUNT_MARGIN_MODE_HEDGING,
    risk=common_pb2.RiskLimits(max_order_volume=10.0, min_order_volume=0.01),
)


def sim_spec(tmp: Path, instance_id: str, owner: str) -> InstanceSpec:
    directory = tmp / instance_id
    directory.mkdir()
    (directory / "c.json").write_text(
        '{"symbols": ["EURUSD"], "margin_mode": "hedging", "state_path": "none", "tick_rate": 20}'
    )
    argv = [sys.executable, "-m", "mt5exec.workers.sim", "--config", str(directory / "c.json")]
    return InstanceSpec(instance_id, owner, 1, directory, directory / "logs", argv, {}, CONFIG)


def check(instance_id: str) -> order_pb2.CheckOrderRequest:
    return order_pb2.CheckOrderRequest(
        order=order_pb2.PlaceOrderRequest(
            instance_id=instance_id,
            client_order_id="check",
            symbol="EURUSD",
            side=common_pb2.SIDE_BUY,
            type=common_pb2.ORDER_TYPE_MARKET,
            volume=0.01,
        )
    )


async def _outcomes(tmp: Path) -> dict[str, Any]:
    config = load_config(env={}, overrides={"server.data_dir": str(tmp / "data")})
    engine = Engine(EngineConfig(journal_path=tmp / "orders.journal"))
    engine.attach(asyncio.get_running_loop())
    vault = open_vault(config, env={})
    state = AppState(config, engine, None, load_templates(None), vault)
    service = OrderService(state)
    context: Any = None  # CheckOrder does not use it

    async def as_(owner: str, instance_id: str) -> str:
        set_current(Principal(f"{owner}-key", Role.TRADER, owner, "api_key"))
        for _ in range(600):  # until the sim has a first price (at most ~60 s)
            try:
                order_pb2.CheckOrderResponse.FromString(
                    await service.CheckOrder(check(instance_id), context)
                )
                return "OK"
            except MT5ExecError as e:
                if e.reason != "NO_PRICE":
                    return f"{e.code.name} {e.reason}: {e.message.replace(instance_id, 'X')}"
            await asyncio.sleep(0.1)
        raise AssertionError(f"no price on {instance_id}")

    try:
        await engine.create_instance(sim_spec(tmp, "alices", "alice"))
        return {
            "alice": await as_("alice", "alices"),
            "bob": await as_("bob", "alices"),
            "nothing": await as_("bob", "zz-none"),
        }
    finally:
        await engine.stop_all()
        engine.detach()
        vault.close()


def test_check_order_of_another_owners_instance_is_not_found_in_the_engine(
    tmp_path: Path,
) -> None:
    got = uvloop.run(_outcomes(tmp_path))
    assert got["alice"] == "OK"
    assert got["bob"].startswith("NOT_FOUND INSTANCE_NOT_FOUND"), got
    assert got["bob"] == got["nothing"]
