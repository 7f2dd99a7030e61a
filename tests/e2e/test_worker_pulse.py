"""A large market answer does not silence a worker: while it makes the first 100,000 M1 bars
(a backfill of seconds on a loaded machine; with a real terminal, a history download) it keeps
sending its heartbeats, so the engine's watchdog (HEARTBEAT_LOST after a few missed ones) never
replaces it mid-answer.

Deterministic: heartbeats are due every millisecond and two questions are written together, a
terminal one then the largest rates one; the worker's loop sends its own heartbeat only after
both are answered, so a heartbeat between the two answers was sent while the bars were made."""

from __future__ import annotations

from pathlib import Path

from tests import mt5_worker_support as mt5_test
from tests.e2e.test_sim_worker import Engine

from mt5exec.sim.bars import MAX_BARS
from mt5exec.terminal.v1 import worker_pb2 as pb
from mt5exec.workers.protocol import encode_frame

TERMINAL = pb.MarketRequest(request_id=1, terminal=pb.TerminalQuery())
RATES = pb.MarketRequest(
    request_id=2, rates=pb.RatesQuery(symbol="EURUSD", timeframe=1, from_pos=True, count=MAX_BARS)
)


def heartbeats_while_answering(engine: Engine | mt5_test.Engine) -> list[str]:
    """The kinds of the frames sent between the answers to TERMINAL and to RATES."""
    assert engine.conn is not None
    engine.conn.sendall(
        encode_frame(pb.EngineFrame(market_request=TERMINAL))
        + encode_frame(pb.EngineFrame(market_request=RATES))
    )
    frames = engine.read_until("market_answer")
    assert frames[-1].market_answer.request_id == 1
    between = engine.read_until("market_answer")
    answer = between.pop().market_answer
    assert answer.request_id == 2
    assert sum(len(pb.RatesPage.FromString(p).rates) for p in answer.rates.pages) == MAX_BARS
    return [f.WhichOneof("body") or "" for f in between]


def test_heartbeats_go_on_while_the_largest_rates_answer_is_made(tmp_path: Path) -> None:
    engine = Engine(tmp_path, {"symbols": ["EURUSD"], "tick_rate": 0.0})
    try:
        # A heartbeat is due every millisecond: any work longer than that must let one out.
        engine.handshake(heartbeat_ms=1)
        engine.read_until("heartbeat")
        kinds = heartbeats_while_answering(engine)
        assert "heartbeat" in kinds, kinds
        engine.send(shutdown=pb.Shutdown(reason="test"))
        assert engine.wait() == 0
    finally:
        engine.close()


def test_the_mt5_worker_too(tmp_path: Path) -> None:
    """The same through the MT5 worker, whose terminal (here mt5exec.mt5.simterminal) makes
    the bars inside one copy_rates_from_pos call."""
    engine = mt5_test.Engine(tmp_path, {"symbols": ["EURUSD"]}, terminal={"tick_rate": 0})
    try:
        engine.handshake(heartbeat_ms=1)
        engine.start_state()
        kinds = heartbeats_while_answering(engine)
        assert "heartbeat" in kinds, kinds
        engine.send(shutdown=pb.Shutdown(reason="test"))
        assert engine.wait() == 0
    finally:
        engine.close()
