"""What /metrics shows of a little trading on a real server (simulated broker): fills,
rejections by reason (a broker retcode too), slippage, account, spread, the worker's memory
and CPU, instance state and kill switch, the journal, and per-RPC latency and errors."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from tests.support import wait_until
from tests.trading_workload import INSTANCE, trade_a_little

from mt5exec.testing import ServerProcess
from mt5exec.v1 import instance_pb2


@pytest.fixture(scope="module")
def traded(server: ServerProcess) -> ServerProcess:
    trade_a_little(server)
    return server


def samples(server: ServerProcess) -> list[Sample]:
    return [s for f in text_string_to_metric_families(server.metrics()) for s in f.samples]


def value(server: ServerProcess, name: str, **labels: str) -> float | None:
    """The value of the one sample of ``name`` with these labels (others ignored)."""
    found = [
        s.value
        for s in samples(server)
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    ]
    assert len(found) <= 1, (name, labels, found)
    return found[0] if found else None


def test_fills_slippage_and_commission_are_counted_by_instance_and_symbol(
    traded: ServerProcess,
) -> None:
    where = {"instance_id": INSTANCE, "symbol": "EURUSD"}
    assert value(traded, "mt5exec_fills_total", **where) == 1
    assert value(traded, "mt5exec_fill_volume_lots_total", **where) == pytest.approx(0.01)
    assert value(traded, "mt5exec_commission_total", **where) is not None
    # The market order's own fill, against the price it was checked at.
    assert value(traded, "mt5exec_slippage_points_count", **where) == 1
    assert value(traded, "mt5exec_slippage_points_bucket", le="+Inf", **where) == 1


def test_rejections_are_counted_by_reason_including_the_brokers_retcode(
    traded: ServerProcess,
) -> None:
    rejected = {
        s.labels["reason"]: s.value
        for s in samples(traded)
        if s.name == "mt5exec_order_rejections_total" and s.labels["instance_id"] == INSTANCE
    }
    assert rejected == {"INSUFFICIENT_MARGIN": 1, "INVALID_FILL": 1}
    status = {
        s.labels["status"]: s.value
        for s in samples(traded)
        if s.name == "mt5exec_order_updates_total" and s.labels["instance_id"] == INSTANCE
    }
    assert status["ORDER_STATUS_CANCELED"] >= 1
    assert status["ORDER_STATUS_FILLED"] >= 1
    assert status["ORDER_STATUS_REJECTED"] == 2


def test_account_spread_and_worker_gauges_are_read_when_scraped(traded: ServerProcess) -> None:
    one = {"instance_id": INSTANCE}
    balance = value(traded, "mt5exec_account_balance", **one)
    assert balance is not None and balance > 0
    assert value(traded, "mt5exec_account_leverage", **one) == 100
    equity = value(traded, "mt5exec_account_equity", **one)
    assert equity is not None and equity > 0
    assert value(traded, "mt5exec_account_margin_level_percent", **one) is not None
    spread = value(traded, "mt5exec_spread_points", symbol="EURUSD", **one)
    assert spread is not None and spread > 0
    rss = value(traded, "mt5exec_worker_resident_bytes", **one)
    assert rss is not None and rss > 1_000_000
    cpu = value(traded, "mt5exec_worker_cpu_seconds_total", **one)
    assert cpu is not None and cpu > 0
    assert value(traded, "mt5exec_instance_state", state="INSTANCE_STATE_READY", **one) == 1
    assert value(traded, "mt5exec_instance_kill_switch", **one) == 0
    assert value(traded, "mt5exec_journal_usable") == 1
    assert value(traded, "mt5exec_journal_failures_total") == 0


def test_the_kill_switch_shows_while_engaged(traded: ServerProcess) -> None:
    scope = instance_pb2.KillSwitchScope(instance_id=INSTANCE)
    traded.instances.EngageKillSwitch(instance_pb2.EngageKillSwitchRequest(scope=scope), timeout=60)
    try:
        assert value(traded, "mt5exec_instance_kill_switch", instance_id=INSTANCE) == 1
    finally:
        traded.instances.ReleaseKillSwitch(
            instance_pb2.ReleaseKillSwitchRequest(scope=scope), timeout=60
        )
    assert value(traded, "mt5exec_instance_kill_switch", instance_id=INSTANCE) == 0


def test_every_rpc_is_timed_and_its_errors_counted_by_code(traded: ServerProcess) -> None:
    place = {"method": "OrderService/PlaceOrder"}
    # The fill, two refusals, the limit order and the call on a missing instance (and the
    # dry runs that waited for the first price went to CheckOrder).
    assert value(traded, "mt5exec_rpc_seconds_count", **place) == 5
    assert value(traded, "mt5exec_rpc_seconds_bucket", le="+Inf", **place) == 5
    errors = {
        s.labels["code"]: s.value
        for s in samples(traded)
        if s.name == "mt5exec_rpc_errors_total" and s.labels["method"] == place["method"]
    }
    assert errors == {"FAILED_PRECONDITION": 1, "INVALID_ARGUMENT": 1, "NOT_FOUND": 1}
    assert value(traded, "mt5exec_rpc_seconds_count", method="OrderService/CancelOrder") == 1
    assert value(traded, "mt5exec_rpc_seconds_count", method="OrderService/ModifyOrder") == 1
    executions = "StreamService/StreamExecutions"
    assert value(traded, "mt5exec_rpc_streams_total", method=executions) == 1
    # The stream the client cancelled ends CANCELLED (once the server noticed).
    wait_until(
        "the cancelled stream counted",
        lambda: value(traded, "mt5exec_rpc_errors_total", method=executions, code="CANCELLED") == 1,
    )
    # Streams are not timed, nor are methods never called.
    assert value(traded, "mt5exec_rpc_seconds_count", method=executions) is None
    assert value(traded, "mt5exec_rpc_seconds_count", method="OrderService/CloseAll") is None
