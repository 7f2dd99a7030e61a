"""A large market answer does not silence the sim worker: while it makes the first 100,000 M1
bars (a backfill of seconds on a loaded machine) it keeps sending its heartbeats, so the
engine's watchdog (HEARTBEAT_LOST after a few missed ones) never replaces it mid-answer."""

from __future__ import annotations

from pathlib import Path

from tests.test_sim_worker import Engine

from mt5exec.sim.bars import MAX_BARS
from mt5exec.terminal.v1 import worker_pb2 as pb
from mt5exec.workers.protocol import encode_frame


def test_heartbeats_go_on_while_the_largest_rates_answer_is_made(tmp_path: Path) -> None:
    engine = Engine(tmp_path, {"symbols": ["EURUSD"], "tick_rate": 0.0})
    try:
        # A heartbeat is due every millisecond: any work longer than that must let one out.
        engine.handshake(heartbeat_ms=1)
        engine.read_until("heartbeat")
        terminal = pb.MarketRequest(request_id=1, terminal=pb.TerminalQuery())
        rates = pb.MarketRequest(
            request_id=2,
            rates=pb.RatesQuery(symbol="EURUSD", timeframe=1, from_pos=True, count=MAX_BARS),
        )
        # Both in one write, read by the worker together: the worker's loop sends its own
        # heartbeat only after both are answered, so a heartbeat between the two answers was
        # sent while the bars were being made.
        assert engine.conn is not None
        engine.conn.sendall(
            encode_frame(pb.EngineFrame(market_request=terminal))
            + encode_frame(pb.EngineFrame(market_request=rates))
        )
        frames = engine.read_until("market_answer")
        assert frames[-1].market_answer.request_id == 1
        between = engine.read_until("market_answer")
        answer = between.pop().market_answer
        assert answer.request_id == 2
        bars = sum(len(pb.RatesPage.FromString(p).rates) for p in answer.rates.pages)
        assert bars == MAX_BARS
        kinds = [f.WhichOneof("body") for f in between]
        assert "heartbeat" in kinds, kinds
        beats = [f.heartbeat.sequence for f in between if f.WhichOneof("body") == "heartbeat"]
        assert beats == sorted(beats)
        engine.send(shutdown=pb.Shutdown(reason="test"))
        assert engine.wait() == 0
    finally:
        engine.close()
