"""The copier's volume modes, symbol mapping, filters, reverse copying and SL/TP sync, end to
end (real server, real sim workers)."""

from __future__ import annotations

import math
from collections.abc import Iterator

import grpc
import pytest
from tests.copier_support import (
    BUY,
    SELL,
    close,
    net,
    place,
    positions,
    refused_copy,
    relate,
    sim,
    stats,
    wait_net,
)
from tests.support import error_info, wait_until

from mt5exec.testing import ServerProcess
from mt5exec.v1 import instance_pb2, order_pb2, stream_pb2


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with ServerProcess(tmp_path_factory.mktemp("copier-modes")) as proc:
        yield proc


def test_every_volume_mode(server: ServerProcess) -> None:
    sim(server, "vm", initial_balance=10_000)
    sim(server, "v-balance", initial_balance=5_000)
    sim(server, "v-equity", initial_balance=15_500)
    sim(server, "v-risk", initial_balance=10_000)
    sim(server, "v-clamp")
    sim(server, "v-small")
    sim(server, "v-raise")
    modes = order_pb2
    relate(server, "balance", "vm", "v-balance", volume_mode=modes.COPY_VOLUME_MODE_BALANCE_RATIO)
    relate(server, "equity", "vm", "v-equity", volume_mode=modes.COPY_VOLUME_MODE_EQUITY_RATIO)
    relate(
        server,
        "risk",
        "vm",
        "v-risk",
        volume_mode=modes.COPY_VOLUME_MODE_RISK_PERCENT,
        risk_percent=1.0,
        copy_stops=True,
    )
    relate(server, "clamp", "vm", "v-clamp", multiplier=10.0, max_volume=0.3)
    relate(server, "small", "vm", "v-small", multiplier=0.05)
    relate(server, "raise", "vm", "v-raise", multiplier=0.05, raise_to_minimum=True)
    spec = next(
        s
        for s in server.instances.GetInstance(
            instance_pb2.GetInstanceRequest(instance_id="v-risk"), timeout=10
        ).instance.symbols
        if s.name == "EURUSD"
    )
    # A buy 0.1 with its stop loss 300 points below the price.
    stop = round(_price(server, "vm") - 0.003, 5)
    opened = place(server, "vm", "vm-1", BUY, 0.1, stop_loss=stop)
    wait_net(server, "v-balance", 0.05)  # 5,000 / 10,000
    wait_net(server, "v-equity", 0.15)  # 15,500 / ~10,000, down to the step
    wait_net(server, "v-clamp", 0.3)  # 1.0 clamped to max_volume
    wait_net(server, "v-raise", 0.01)  # 0.005 raised to the minimum
    # 1 % of 10,000 lost at the stop: 100 / (distance / tick size x tick value) lots.
    per_lot = abs(opened.average_fill_price - stop) / spec.tick_size * spec.tick_value
    expected = math.floor(100 / per_lot / spec.volume_step + 1e-9) * spec.volume_step
    wait_net(server, "v-risk", round(expected, 2))
    (risk_copy,) = positions(server, "v-risk")
    assert risk_copy.stop_loss == stop
    # 0.005 is below the minimum: skipped, counted and told on the follower.
    refused = refused_copy(server, "v-small", "VOLUME_BELOW_MINIMUM")
    assert refused.client_order_id.startswith("small.")
    assert stats(server, "small").skipped["VOLUME_BELOW_MINIMUM"] == 1
    assert net(server, "v-small") == 0.0


def _price(server: ServerProcess, instance_id: str) -> float:
    """The instance's current ask of EURUSD (a dry run's reference price)."""
    request = stream_pb2.StreamTicksRequest(instance_ids=[instance_id], symbols=["EURUSD"])
    stream = server.streams.StreamTicks(request, timeout=30)
    try:
        return float(next(iter(stream)).ticks[0].ask)
    finally:
        stream.cancel()


def test_mapping_filters_reverse_and_stops(server: ServerProcess) -> None:
    sim(server, "mm")
    sim(server, "m-map", symbols=["EURUSD", "GBPUSD"])
    sim(server, "m-rev")
    sim(server, "m-filter")
    with pytest.raises(grpc.RpcError) as suffix:
        relate(server, "suffix", "mm", "m-map", symbol_suffix=".m")
    assert error_info(suffix.value).metadata["field"] == "relation.symbol_suffix"
    relate(server, "map", "mm", "m-map", symbol_map={"EURUSD": "GBPUSD"})
    relate(server, "rev", "mm", "m-rev", reverse=True, copy_stops=True)
    relate(
        server,
        "filter",
        "mm",
        "m-filter",
        sides=order_pb2.COPY_SIDES_LONG_ONLY,
        magics=[7],
    )
    price = _price(server, "mm")
    sl, tp = round(price - 0.005, 5), round(price + 0.005, 5)
    opened = place(server, "mm", "mm-1", BUY, 0.02, magic=7, stop_loss=sl, take_profit=tp)
    wait_until("the mapped copy", lambda: len(positions(server, "m-map", "GBPUSD")) == 1)
    assert positions(server, "m-map", "EURUSD") == []
    wait_net(server, "m-rev", -0.02)
    (reversed_copy,) = positions(server, "m-rev")
    assert (reversed_copy.stop_loss, reversed_copy.take_profit) == (tp, sl)
    wait_net(server, "m-filter", 0.02)
    place(server, "mm", "mm-sell", SELL, 0.01, magic=7)
    place(server, "mm", "mm-magic", BUY, 0.01, magic=8)
    wait_until(
        "both filtered",
        lambda: (
            stats(server, "filter").skipped["SIDE_FILTERED"] == 1
            and stats(server, "filter").skipped["MAGIC_FILTERED"] == 1
        ),
    )
    assert net(server, "m-filter") == 0.02
    # The master's new stops reach the reversed copy (swapped).
    sl2, tp2 = round(sl - 0.001, 5), round(tp + 0.001, 5)
    server.orders.ModifyPosition(
        order_pb2.ModifyPositionRequest(
            instance_id="mm", position_id=opened.position_id, stop_loss=sl2, take_profit=tp2
        ),
        timeout=30,
    )
    copy_of = f":{_base36(opened.position_id)}:"

    def copy_stops() -> list[tuple[float, float]]:
        return [
            (p.stop_loss, p.take_profit)
            for p in positions(server, "m-rev")
            if p.comment.startswith("rev.") and copy_of in p.comment
        ]

    wait_until("the copy's stops follow", lambda: copy_stops() == [(tp2, sl2)])
    close(server, "mm", opened.position_id)
    wait_until("the reversed copy closed", lambda: copy_stops() == [])
    wait_until(
        "the mapped copy closed",
        lambda: (
            not any(
                p.comment.startswith("map.") and copy_of in p.comment
                for p in positions(server, "m-map")
            )
        ),
    )


def _base36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if n == 0:
            return out
