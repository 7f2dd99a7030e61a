"""mt5exec.client against a real server: typed calls (blocking and asyncio), errors as
exceptions with their ErrorInfo, the token and TLS settings."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from tests.support import subscribers, wait_for_price, wait_until

from mt5exec.client import AsyncClient, Client, Settings, errors
from mt5exec.testing import ServerProcess
from mt5exec.v1 import auth_pb2, common_pb2, order_pb2

BUY, LIMIT = common_pb2.SIDE_BUY, common_pb2.ORDER_TYPE_LIMIT
# A buy limit well below EURUSD, within the price collar: it stays pending.
FAR = 1.0


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> Iterator[Client]:
    with Client(server.address, token=server.token) as client:
        client.create_instance("c1", common_pb2.InstanceConfig(symbols=["EURUSD"], tick_rate=20))
        wait_for_price(server, "c1", "EURUSD")
        yield client


def test_typed_calls(client: Client) -> None:
    me = client.whoami()
    assert isinstance(me, auth_pb2.WhoAmIResponse)
    assert (me.role, me.kind) == (auth_pb2.ROLE_ADMIN, "api_key")
    assert "c1" in [i.instance_id for i in client.list_instances()]
    assert client.get_instance("c1").state == common_pb2.INSTANCE_STATE_READY

    order = client.place_order("c1", "EURUSD", BUY, 0.01, type=LIMIT, price=FAR)
    assert isinstance(order, common_pb2.Order)
    assert order.client_order_id.startswith("c-"), "the client makes the idempotency key"
    assert order.client_order_id in [o.client_order_id for o in client.list_orders("c1")]
    assert client.get_order("c1", client_order_id=order.client_order_id).order_id == (
        order.order_id
    )
    cancelled = client.cancel_order("c1", order_id=order.order_id)
    assert cancelled.status == common_pb2.ORDER_STATUS_CANCELED
    assert client.get_account("c1").balance > 0
    assert client.list_positions("c1") == []
    assert client.system_stats().instances >= 1


def test_a_bad_order_raises_its_error_info(client: Client) -> None:
    with pytest.raises(errors.InvalidArgument) as caught:
        client.place_order("c1", "EURUSD", BUY, -1.0)
    error = caught.value
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert (error.reason, error.field) == ("VOLUME_INVALID", "volume")
    assert error.metadata["field"] == "volume"
    assert "VOLUME_INVALID [volume]" in str(error)
    with pytest.raises(errors.NotFound) as missing:
        client.get_instance("nowhere")
    assert (missing.value.reason, missing.value.field) == ("INSTANCE_NOT_FOUND", "instance_id")
    # Not retried: a refusal is final (a retry of INVALID_ARGUMENT would say the same).
    assert isinstance(missing.value, errors.Error)


def test_the_asyncio_client(server: ServerProcess, client: Client) -> None:
    async def run() -> tuple[common_pb2.Order, list[common_pb2.ExecutionEvent]]:
        async with AsyncClient(server.address, token=server.token) as aio:
            order = await aio.place_order("c1", "EURUSD", BUY, 0.01, type=LIMIT, price=FAR)
            seen: list[common_pb2.ExecutionEvent] = []
            async for event in aio.executions("c1"):
                seen.append(event)
                if event.order_update.client_order_id == order.client_order_id:
                    break
            with pytest.raises(errors.InvalidArgument) as caught:
                await aio.place_order("c1", "EURUSD", BUY, -1.0)
            assert caught.value.field == "volume"
            return order, seen

    order, events = asyncio.run(run())
    assert order.status == common_pb2.ORDER_STATUS_ACCEPTED
    sequences = [e.sequence for e in events]
    assert sequences == list(range(sequences[0], sequences[0] + len(sequences)))


def test_the_token_from_the_environment_or_the_data_dir(server: ServerProcess) -> None:
    assert server.token is not None
    from_env = Settings.resolve(target=server.address, environ={"MT5EXEC_TOKEN": server.token})
    from_dir = Settings.resolve(target=server.address, data_dir=server.data_dir, environ={})
    assert from_env.token == from_dir.token == server.token
    for settings in (from_env, from_dir):
        with Client(settings=settings) as client:
            assert client.whoami().role == auth_pb2.ROLE_ADMIN
    anonymous = Client(settings=Settings.resolve(target=server.address, environ={}))
    with anonymous, pytest.raises(errors.Unauthenticated) as caught:
        anonymous.whoami()
    assert caught.value.reason == "TOKEN_MISSING"


def test_settings_refuse_a_certificate_without_its_key(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="go together"):
        Settings.resolve(cert_file=tmp_path / "c.pem", environ={})
    settings = Settings.resolve(
        target="example:1", ca_file=tmp_path / "ca.pem", server_name="srv", environ={}
    )
    assert settings.tls
    assert ("grpc.ssl_target_name_override", "srv") in settings.channel_options()


def test_check_order_is_a_dry_run(client: Client) -> None:
    check = client.check_order(
        order_pb2.PlaceOrderRequest(
            instance_id="c1", symbol="EURUSD", side=BUY, type=LIMIT, price=FAR, volume=0.01
        )
    )
    assert check.accepted


def test_instance_events_and_accounts_stream(server: ServerProcess, client: Client) -> None:
    account = next(client.accounts("c1", interval=0.05))
    assert (account.instance_id, account.balance > 0) == ("c1", True)
    events = client.instance_events(["c1"])
    states: list[int] = []

    def read() -> None:
        for event in events:
            states.append(event.state)
            if event.state == common_pb2.INSTANCE_STATE_STOPPED:
                return

    baseline = subscribers(server, "instance_events")
    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        wait_until("the stream is open", lambda: subscribers(server, "instance_events") > baseline)
        client.stop_instance("c1")
        reader.join(60)
        assert states[-1:] == [common_pb2.INSTANCE_STATE_STOPPED]
    finally:
        if not reader.is_alive():
            events.close()
        client.start_instance("c1")
        wait_for_price(server, "c1", "EURUSD")


def test_positions_trading_state_and_the_kill_switch(client: Client) -> None:
    filled = client.place_order("c1", "EURUSD", BUY, 0.01)
    assert filled.status == common_pb2.ORDER_STATUS_FILLED
    [position] = client.list_positions("c1")
    closing = client.close_position("c1", position.position_id)
    assert closing.status == common_pb2.ORDER_STATUS_FILLED
    assert client.list_positions("c1") == []
    assert client.close_all("c1") == []
    assert client.instance_stats("c1").state == common_pb2.INSTANCE_STATE_READY

    halted = client.set_trading_state("c1", common_pb2.TRADING_STATE_HALTED, "test")
    assert halted.trading_state == common_pb2.TRADING_STATE_HALTED
    with pytest.raises(errors.FailedPrecondition) as caught:
        client.place_order("c1", "EURUSD", BUY, 0.01)
    assert caught.value.reason
    client.set_trading_state("c1", common_pb2.TRADING_STATE_ACTIVE)

    pending = client.place_order("c1", "EURUSD", BUY, 0.01, type=LIMIT, price=FAR)
    engaged = client.engage_kill_switch(everything=True, reason="test")
    assert "c1" in engaged.instance_ids
    assert engaged.orders_cancelled >= 1
    assert client.get_order("c1", pending.order_id).status == common_pb2.ORDER_STATUS_CANCELED
    assert client.get_instance("c1").kill_switch
    assert "c1" in client.release_kill_switch(everything=True).instance_ids
    assert not client.get_instance("c1").kill_switch
