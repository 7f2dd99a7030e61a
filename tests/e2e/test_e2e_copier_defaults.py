"""A follower's execution.json (and instance.json's slippage_limit) applied to its copies and
signals (issue #20, docs/copier.md "Defaults"): a signal without volume takes the follower's
default lot, a signal without stops its default stops, every copy its deviation capped by the
slippage limit; a master trade's copy gets default stops only when its relation asks
(default_stops); a RISK_PERCENT relation without a percent takes the follower's. Real server,
real sim workers, the templates in the data directory."""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator

import pytest
from tests.copier_support import BUY, orders_of, place, positions, relate, sims, wait_net
from tests.support import BULK_RISK, create_sim, wait_until

from mt5exec.signals import canonical
from mt5exec.testing import ServerProcess
from mt5exec.v1 import common_pb2, order_pb2

SECRET = b"d" * 20 + os.urandom(16).hex().encode()
EXECUTION = {
    "lot_size": 0.03,
    "risk_percent": 0.5,
    "stop_loss": 40,
    "take_profit": 80,
    "deviation_points": 7,
}
SLIPPAGE_LIMIT = 5.0
POINT = 1e-5  # the sim's EURUSD
# The stops are placed from the follower's price when the copy is made; its fill may be a few
# ticks away.
NEAR = 30 * POINT


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data = tmp_path_factory.mktemp("copier-defaults")
    templates = data / "templates"
    templates.mkdir()
    (templates / "execution.json").write_text(json.dumps(EXECUTION))
    (templates / "instance.json").write_text(json.dumps({"slippage_limit": SLIPPAGE_LIMIT}))
    secrets = tmp_path_factory.mktemp("copier-defaults-secrets")
    secret_file = secrets / "desk.secret"
    secret_file.write_bytes(SECRET)
    secret_file.chmod(0o600)
    config = secrets / "mt5exec.toml"
    config.write_text(f'[signals.sources]\ndesk = "{secret_file}"\n')
    with ServerProcess(data, config=config) as proc:
        yield proc


def _signal(**fields: object) -> order_pb2.PublishSignalRequest:
    values: dict[str, object] = {
        "source": "desk",
        "symbol": "EURUSD",
        "side": common_pb2.SIDE_BUY,
        "nonce": uuid.uuid4().hex,
    }
    request = order_pb2.PublishSignalRequest(**(values | fields))  # type: ignore[arg-type]
    request.timestamp.FromNanoseconds(time.time_ns())
    canonical.sign(SECRET, request)
    return request


def _assert_default_stops(position: common_pb2.Position) -> None:
    fill = position.price_open
    assert fill > 0, position
    assert position.stop_loss == pytest.approx(fill - 40 * POINT, abs=NEAR), position
    assert position.take_profit == pytest.approx(fill + 80 * POINT, abs=NEAR), position


def test_a_signal_without_volume_or_stops_takes_the_followers_defaults(
    server: ServerProcess,
) -> None:
    create_sim(server, "sig-f", risk=BULK_RISK)
    relation = order_pb2.CopyRelation(
        signal_source="desk",
        follower_instance_id="sig-f",
        volume_mode=order_pb2.COPY_VOLUME_MODE_MULTIPLIER,
        multiplier=1.0,
    )
    server.orders.CreateCopyRelation(
        order_pb2.CreateCopyRelationRequest(relation=relation), timeout=30
    )
    (order,) = server.orders.PublishSignal(_signal(signal_id="bare"), timeout=60).orders
    assert order.status == common_pb2.ORDER_STATUS_FILLED, order
    assert order.volume == pytest.approx(EXECUTION["lot_size"])
    assert order.deviation_points == SLIPPAGE_LIMIT  # execution.json's 7, capped at 5
    (position,) = positions(server, "sig-f")
    _assert_default_stops(position)
    # Sent again (a new nonce): the order of the first, whatever the price did meanwhile (its
    # default stops would differ).
    (again,) = server.orders.PublishSignal(_signal(signal_id="bare"), timeout=60).orders
    assert again.order_id == order.order_id
    # A signal's own volume wins.
    (sized,) = server.orders.PublishSignal(
        _signal(signal_id="sized", volume=0.02), timeout=60
    ).orders
    assert sized.volume == pytest.approx(0.02)


def test_copies_get_the_deviation_and_default_stops_only_when_asked(
    server: ServerProcess,
) -> None:
    sims(server, "dm", "d-plain", "d-stops", "d-risk")
    relate(server, "plain", "dm", "d-plain")
    relate(server, "stops", "dm", "d-stops", default_stops=True)
    # No percent of its own: the follower's execution.json risk_percent (0.5).
    relate(
        server,
        "risk",
        "dm",
        "d-risk",
        volume_mode=order_pb2.COPY_VOLUME_MODE_RISK_PERCENT,
        symbols=["EURUSD"],
    )
    first = place(server, "dm", "dm-1", BUY, 0.01)
    wait_net(server, "d-plain", 0.01)
    wait_net(server, "d-stops", 0.01)
    (plain,) = orders_of(server, "d-plain", "plain.")
    assert plain.deviation_points == SLIPPAGE_LIMIT
    (stopped,) = orders_of(server, "d-stops", "stops.")
    assert stopped.deviation_points == SLIPPAGE_LIMIT
    (position,) = positions(server, "d-stops")
    _assert_default_stops(position)
    ((unstopped,),) = [positions(server, "d-plain")]
    assert (unstopped.stop_loss, unstopped.take_profit) == (0.0, 0.0)
    # A master stop 500 points away: 0.5 % of the follower's 10,000 is 50 at 1 per point per
    # lot, so about 0.1 lots.
    place(server, "dm", "dm-2", BUY, 0.01, stop_loss=round(first.average_fill_price - 0.005, 5))
    wait_until("the risk copy", lambda: len(orders_of(server, "d-risk", "risk.")) == 1)
    (risked,) = orders_of(server, "d-risk", "risk.")
    assert risked.volume == pytest.approx(0.1, abs=0.02), risked
