"""The sim worker process as an MT5 trade server over a real socket: pending orders and their
triggers, frame order, kill -9 right after a triggered fill, reconciliation after a restart,
sessions, order_check, config keys and idle CPU."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from tests.e2e.test_sim_worker import Engine, _kill, _start

from mt5exec.sim.symbols import SymbolSettings
from mt5exec.terminal.v1 import worker_pb2 as pb
from mt5exec.workers.protocol import ConnectionClosed
from mt5exec.workers.sim_config import ConfigError, load_config

PT = 0.00001
# 2023-11-17 (a Friday) 22:00 UTC and 2023-11-19 (Sunday) 22:00 UTC: the fx week's edges.
FRIDAY_CLOSE = 1_700_258_400.0
SUNDAY_OPEN = 1_700_431_200.0


def kinds(frames: list[pb.WorkerFrame]) -> list[str]:
    return [f.WhichOneof("body") or "" for f in frames]


def trade_frames(frames: list[pb.WorkerFrame]) -> list[pb.WorkerFrame]:
    return [f for f in frames if f.WhichOneof("body") not in ("ticks", "heartbeat")]


def last_ask(eng: Engine) -> float:
    while True:
        frame = eng.read()
        if frame.WhichOneof("body") == "ticks":
            return [t.ask for t in frame.ticks.ticks if t.symbol == "EURUSD"][-1]


def buy_limit_near(eng: Engine, request_id: int, comment: str) -> pb.OrderResult:
    """A buy limit a few points under the ask (retried while the market runs away)."""
    for _ in range(20):
        ask = last_ask(eng)
        eng.send(
            order=pb.OrderRequest(
                request_id=request_id,
                action=5,
                symbol="EURUSD",
                type=2,
                volume=0.1,
                price=round(ask - 2 * PT, 5),
                comment=comment,
            )
        )
        frames = eng.read_until("order_result")
        result = frames[-1].order_result
        if result.retcode == 10008:
            assert kinds(trade_frames(frames)) == ["order_update", "orders", "order_result"]
            update = trade_frames(frames)[0].order_update
            assert (update.request_id, update.order.state) == (request_id, 1)
            return result
        assert result.retcode == 10015  # the ask moved under the price meanwhile
    raise AssertionError("could not place a buy limit")


def test_pending_order_is_placed_then_triggered_on_a_tick(tmp_path: Path) -> None:
    eng, _, _ = _start(tmp_path, {"symbols": ["EURUSD"], "tick_rate": 200}, "a.sock")
    try:
        placed = buy_limit_near(eng, 5, "near")
        # The fill comes on its own: deal, order update, snapshots, and no OrderResult.
        frames = eng.read_until("deal")
        tail = [frames[-1]]
        while True:
            frame = eng.read()
            if frame.WhichOneof("body") == "account":
                tail.append(frame)
                break
            if frame.WhichOneof("body") != "ticks":
                tail.append(frame)
        assert kinds(tail) == ["deal", "order_update", "positions", "orders", "account"]
        deal, update, positions, orders, _ = tail
        assert (deal.deal.request_id, deal.deal.order, deal.deal.comment) == (
            0,
            placed.order,
            "near",
        )
        assert (update.order_update.request_id, update.order_update.order.state) == (0, 4)
        assert [p.ticket for p in positions.positions.positions] == [placed.order]
        assert not orders.orders.orders
        eng.send(shutdown=pb.Shutdown(reason="test"))
        assert eng.wait() == 0
    finally:
        eng.close()


def test_frame_order_of_a_partly_filled_return_order(tmp_path: Path) -> None:
    config: dict[str, Any] = {
        "symbols": ["EURUSD"],
        "tick_rate": 0,
        "symbol_settings": {"EURUSD": {"liquidity": 0.3, "execution": "exchange"}},
    }
    eng, _, _ = _start(tmp_path, config, "a.sock")
    try:
        eng.send(
            order=pb.OrderRequest(
                request_id=1, action=1, symbol="EURUSD", type=0, volume=1.0, type_filling=2
            )
        )
        frames = trade_frames(eng.read_until("order_result"))
        assert kinds(frames) == [
            "deal",
            "order_update",
            "positions",
            "orders",
            "account",
            "order_result",
        ]
        assert frames[-1].order_result.retcode == 10010
        assert frames[-1].order_result.volume == 0.3
        assert frames[1].order_update.order.state == 3
        assert [o.volume_current for o in frames[3].orders.orders] == [pytest.approx(0.7)]
    finally:
        eng.close()


def test_kill_9_right_after_a_triggered_fill_loses_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config: dict[str, Any] = {"symbols": ["EURUSD"], "tick_rate": 200}
    monkeypatch.setenv("MT5EXEC_SIM_KILL_AFTER_TRIGGER", "1")
    eng, _, _ = _start(tmp_path, config, "a.sock")
    try:
        placed = buy_limit_near(eng, 1, "trig")
        # The worker kills itself once the fill is journaled, before any frame of it.
        assert eng.wait(timeout=30) == -signal.SIGKILL
        seen = []
        try:
            while True:
                seen.append(eng.read().WhichOneof("body"))
        except (OSError, ConnectionClosed):
            pass  # everything that was sent before the kill has been read: then EOF
        assert "deal" not in seen and "order_update" not in seen
    finally:
        eng.close()
    monkeypatch.delenv("MT5EXEC_SIM_KILL_AFTER_TRIGGER")

    eng2, hello, positions = _start(tmp_path, config, "b.sock")
    try:
        # The fill happened: the position is there, the order is not working any more...
        assert [p.ticket for p in positions.positions] == [placed.order]
        assert hello.account.margin > 0
        eng2.send(reconcile=pb.ReconcileRequest(request_id=4, comments=["trig"]))
        result = eng2.read_until("reconcile_result")[-1].reconcile_result
        assert [(o.ticket, o.state) for o in result.orders] == [(placed.order, 4)]
        assert [(d.order, d.request_id, d.comment) for d in result.deals] == [
            (placed.order, 0, "trig")
        ]
        # ...and it never fills twice.
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            assert eng2.read().WhichOneof("body") in ("ticks", "heartbeat", "account")
    finally:
        eng2.close()


def test_reconcile_after_a_restart(tmp_path: Path) -> None:
    config: dict[str, Any] = {"symbols": ["EURUSD"], "tick_rate": 0}
    eng, _, _ = _start(tmp_path, config, "a.sock")
    requests = [
        pb.OrderRequest(request_id=1, action=1, symbol="EURUSD", type=0, volume=0.1, comment="m"),
        pb.OrderRequest(
            request_id=2, action=5, symbol="EURUSD", type=2, volume=0.2, price=1.0, comment="p"
        ),
        pb.OrderRequest(
            request_id=3, action=5, symbol="EURUSD", type=3, volume=0.2, price=1.2, comment="c"
        ),
    ]
    results = []
    for req in requests:
        eng.send(order=req)
        results.append(eng.read_until("order_result")[-1].order_result)
    eng.send(order=pb.OrderRequest(request_id=4, action=8, order=results[2].order))
    assert eng.read_until("order_result")[-1].order_result.retcode == 10009
    _kill(eng)

    eng2, _, _ = _start(tmp_path, config, "b.sock")
    try:
        eng2.send(reconcile=pb.ReconcileRequest(request_id=9, comments=["m", "p", "c", "unknown"]))
        result = eng2.read_until("reconcile_result")[-1].reconcile_result
        assert result.request_id == 9
        assert {o.comment: (o.ticket, o.state) for o in result.orders} == {
            "m": (results[0].order, 4),
            "p": (results[1].order, 1),
            "c": (results[2].order, 2),
        }
        assert [(d.comment, d.order, d.request_id) for d in result.deals] == [
            ("m", results[0].order, 1)
        ]
    finally:
        eng2.close()


def test_working_orders_follow_the_positions_after_welcome(tmp_path: Path) -> None:
    config: dict[str, Any] = {"symbols": ["EURUSD"], "tick_rate": 0}
    eng, _, _ = _start(tmp_path, config, "a.sock")
    eng.send(
        order=pb.OrderRequest(request_id=1, action=5, symbol="EURUSD", type=2, volume=0.1, price=1)
    )
    placed = eng.read_until("order_result")[-1].order_result
    _kill(eng)
    eng2 = Engine(tmp_path, config, socket_name="b.sock")
    try:
        eng2.handshake()
        first, second = eng2.read(), eng2.read()
        assert (first.WhichOneof("body"), second.WhichOneof("body")) == ("positions", "orders")
        assert [o.ticket for o in second.orders.orders] == [placed.order]
    finally:
        eng2.close()


def test_check_only_answers_alone(tmp_path: Path) -> None:
    eng, hello, _ = _start(tmp_path, {"symbols": ["EURUSD"], "tick_rate": 0}, "a.sock")
    try:
        eng.send(
            order=pb.OrderRequest(
                request_id=3, action=1, symbol="EURUSD", type=0, volume=1.0, check_only=True
            )
        )
        frames = trade_frames(eng.read_until("order_result"))
        assert kinds(frames) == ["order_result"]
        res = frames[0].order_result
        assert (res.request_id, res.retcode, res.balance) == (3, 0, hello.account.balance)
        assert res.margin == pytest.approx(1085.0, abs=1.0)
        eng.send(snapshot_request=pb.SnapshotRequest())
        positions = eng.read_until("positions")[-1]
        assert not positions.positions.positions
    finally:
        eng.close()


def _server_time(t: float) -> int:
    """clock_offset_ms that makes the server's clock read ``t`` now."""
    return int((t - time.time()) * 1000)


def _started_before(tmp_path: Path, config: dict[str, Any], edge: float, side: str) -> Engine:
    """A worker whose clock reads a little before ``edge``, a session's end or start, once it
    started on the ``side`` of it expected: its first frame after the snapshots is ``side``
    ("ticks" while open, or the kind of an event). A start slower than the lead (a loaded
    machine) finds the edge crossed: the worker is started again further ahead of it."""
    lead = 0.6
    for attempt in range(4):
        directory = tmp_path / f"{side}-{attempt}"
        directory.mkdir()
        eng = Engine(directory, {**config, "clock_offset_ms": _server_time(edge - lead)})
        eng.handshake()
        first = [eng.read() for _ in range(3)]
        assert kinds(first)[:2] == ["positions", "orders"]
        if side in (kinds(first)[2], first[2].event.kind):
            return eng
        eng.close()
        lead *= 4
    raise AssertionError(f"the worker never started before {edge} by its clock")


def test_market_closes_and_opens_with_the_fx_sessions(tmp_path: Path) -> None:
    config: dict[str, Any] = {
        "symbols": ["EURUSD"],
        "tick_rate": 50,
        "symbol_settings": {"*": {"sessions": "fx"}},
    }
    eng = _started_before(tmp_path, config, FRIDAY_CLOSE, "ticks")
    try:
        frames = eng.read_until("event")
        event = frames[-1].event
        assert event.kind == "MARKET_CLOSED"
        # No ticks while closed; orders are refused.
        eng.send(order=pb.OrderRequest(request_id=1, action=1, symbol="EURUSD", volume=0.1))
        frames = eng.read_until("order_result")
        assert "ticks" not in kinds(frames)
        assert frames[-1].order_result.retcode == 10018
    finally:
        eng.close()

    eng2 = _started_before(tmp_path, config, SUNDAY_OPEN, "MARKET_CLOSED")
    try:
        frames = eng2.read_until("event")
        assert frames[-1].event.kind == "MARKET_OPEN"
        assert "ticks" not in kinds(frames)
        assert eng2.read_until("ticks")
    finally:
        eng2.close()


def test_idle_worker_with_working_orders_uses_little_cpu(tmp_path: Path) -> None:
    config: dict[str, Any] = {"symbols": ["EURUSD", "GBPUSD"], "tick_rate": 0}
    eng, _, _ = _start(tmp_path, config, "a.sock")
    try:
        for i, otype in enumerate((2, 3, 4, 5), start=1):
            price = 1.0 if otype in (2, 5) else 1.2
            eng.send(
                order=pb.OrderRequest(
                    request_id=i,
                    action=5,
                    symbol="EURUSD",
                    type=otype,
                    volume=0.1,
                    price=price,
                    type_time=1,  # DAY: a timer is pending
                )
            )
            assert eng.read_until("order_result")[-1].order_result.retcode == 10008

        def cpu() -> float:
            fields = Path(f"/proc/{eng.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

        before = cpu()
        time.sleep(2.0)
        assert cpu() - before < 0.1  # heartbeats only
    finally:
        eng.close()


# -- config --------------------------------------------------------------------------------------


def test_config_keys(tmp_path: Path) -> None:
    path = tmp_path / "c.json"

    def load(**raw: Any) -> Any:
        path.write_text(json.dumps({"symbols": ["EURUSD", "XAUUSD"], **raw}))
        return load_config(path)

    defaults = load()
    assert (defaults.sim.stop_out_level, defaults.sim.margin_call_level) == (50.0, 100.0)
    assert defaults.sim.symbol_settings == {}
    assert defaults.clock_offset_ms == 0
    assert defaults.batch_interval_s == 0.002
    assert load(tick_batch_ms=0.5).batch_interval_s == 0.0005
    cfg = load(
        stop_out_level=30,
        margin_call_level=80.5,
        clock_offset_ms=-5000,
        symbol_settings={
            "*": {"sessions": "fx", "slippage_points": 3},
            "XAUUSD": {
                "stops_level": 50,
                "freeze_level": 10,
                "filling_mode": 2,
                "execution": "instant",
                "liquidity": 2.5,
                "sessions": [["Mon 01:00", "Fri 21:00"]],
            },
        },
    )
    assert (cfg.sim.stop_out_level, cfg.sim.margin_call_level, cfg.clock_offset_ms) == (
        30.0,
        80.5,
        -5000,
    )
    assert cfg.sim.symbol_settings["*"] == SymbolSettings(sessions="fx", slippage_points=3)
    assert cfg.sim.symbol_settings["XAUUSD"].liquidity == 2.5
    for bad, match in (
        ({"stop_out_level": 120}, "stop_out_level"),
        ({"margin_call_level": "x"}, "margin_call_level"),
        ({"symbol_settings": {"GBPUSD": {}}}, "GBPUSD"),
        ({"symbol_settings": {"*": {"sessions": "weekends"}}}, "sessions"),
        ({"symbol_settings": {"*": {"sessions": [["Xyz 10:00", "Mon 11:00"]]}}}, "sessions"),
        ({"symbol_settings": {"*": {"execution": "request"}}}, "execution"),
        ({"symbol_settings": {"*": {"liquidity": 0}}}, "liquidity"),
        ({"symbol_settings": {"*": {"stops_level": -1}}}, "stops_level"),
        ({"symbol_settings": {"*": {"colour": "red"}}}, "colour"),
        ({"clock_offset_ms": 1.5}, "clock_offset_ms"),
        ({"tick_batch_ms": 0}, "tick_batch_ms"),
        ({"tick_batch_ms": 1001}, "tick_batch_ms"),
        ({"tick_batch_ms": "2"}, "tick_batch_ms"),
        ({"tick_batch_ms": float("nan")}, "tick_batch_ms"),
    ):
        with pytest.raises(ConfigError, match=match):
            load(**bad)


def test_bad_symbol_settings_exit_2(tmp_path: Path) -> None:
    eng = Engine(tmp_path, {"symbol_settings": {"EURUSD": {"liquidity": -1}}})
    try:
        assert eng.wait() == 2
        assert eng.proc.stderr is not None
        assert b"liquidity" in eng.proc.stderr.read()
    finally:
        eng.close()
