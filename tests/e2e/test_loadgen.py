"""The Go load generator of the benchmarks drives a real server and reads what it sends.

It encodes requests and decodes replies field by field (no generated Go code), so a change to
the protos or the server that breaks it shows here rather than in a benchmark run.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest
from benchmarks._common import TOKEN_ENV, loadgen
from tests.support import BULK_RISK, wait_for_price

from mt5exec.testing import ServerProcess
from mt5exec.v1 import common_pb2, instance_pb2

pytestmark = pytest.mark.skipif(shutil.which("go") is None, reason="Go is not installed")


@pytest.fixture(scope="module")
def bench(server: ServerProcess) -> Iterator[ServerProcess]:
    # As the benchmarks have it: netting (alternating sides keep one small position), and only
    # volume limits in the risk gate.
    config = common_pb2.InstanceConfig(
        symbols=["EURUSD"],
        tick_rate=200,
        margin_mode=common_pb2.ACCOUNT_MARGIN_MODE_NETTING,
        risk=BULK_RISK,
    )
    server.instances.CreateInstance(
        instance_pb2.CreateInstanceRequest(instance_id="bench", config=config), timeout=30
    )
    wait_for_price(server, "bench", "EURUSD")
    # The Go client sends the server's admin key ($MT5EXEC_TOKEN, as the benchmarks set it).
    with pytest.MonkeyPatch.context() as env:
        env.setenv(TOKEN_ENV, server.token or "")
        yield server


def run(*args: str) -> dict:
    out = loadgen(*args)
    assert out is not None
    return out


def test_unary_orders_fill_and_null_rpcs_count(bench: ServerProcess) -> None:
    out = run("unary", "-addr", bench.address, "-seconds", "1", "-warmup", "0.2",
              "-concurrency", "4", "-prefix", "t-unary-")  # fmt: skip
    assert out["null_rpc_per_s"] > 0
    assert out["orders"] > 0
    assert out["filled"] == out["orders"]
    # Alternating rounds; the ratio reported is the median of theirs.
    rounds = out["rounds"]
    assert len(rounds) == len(out["round_ratios"]) == 5
    assert all(r["null_rpc_per_s"] > 0 and r["place_order_per_s"] > 0 for r in rounds)
    assert sorted(r["place_order_per_s"] / r["null_rpc_per_s"] for r in rounds) == pytest.approx(
        out["round_ratios"]
    )
    assert out["median_ratio"] == out["round_ratios"][2]


def test_latency_rounds_fill_and_rest(bench: ServerProcess) -> None:
    out = run("latency", "-addr", bench.address, "-orders", "20", "-warmup-orders", "2",
              "-prefix", "t-lat-")  # fmt: skip
    for kind in ("null_rpc", "place_order", "pending_order"):
        assert out[kind]["n"] == 20
        assert 0 < out[kind]["p50_us"] <= out[kind]["p99_us"]


def test_session_answers_every_order(bench: ServerProcess) -> None:
    out = run("session", "-addr", bench.address, "-orders", "300", "-prefix", "t-session-")
    assert out["ok"] == out["filled"] == 300


def test_batched_session_reads_packed_answers(bench: ServerProcess) -> None:
    out = run("session", "-addr", bench.address, "-orders", "250", "-batch", "100",
              "-prefix", "t-batch-")  # fmt: skip
    assert out["ok"] == out["filled"] == 250
    assert out["response_messages"] < 250, "answers arrive packed"


def test_a_paced_session_keeps_its_rate_and_times_every_batch(bench: ServerProcess) -> None:
    out = run("session", "-addr", bench.address, "-orders", "250", "-batch", "50",
              "-rate", "500", "-prefix", "t-paced-")  # fmt: skip
    assert out["ok"] == out["filled"] == 250
    # 250 orders at 500/s: the last batch leaves 0.4 s after the first.
    assert out["seconds"] >= 0.4
    answers = out["answer_ms"]
    assert answers["n"] == 5
    assert 0 < answers["p50_ms"] <= answers["max_ms"] < out["seconds"] * 1000


def test_tick_streams_are_gap_free(bench: ServerProcess) -> None:
    out = run("streams", "-addr", bench.address, "-instance", "bench", "-n", "3",
              "-seconds", "1", "-warmup", "0.3")  # fmt: skip
    subs = out["subs"]
    assert len(subs) == 3
    for sub in subs:
        assert sub["ticks"] > 0  # (how many a second is the benchmark's to say)
        assert sub["lost_gaps"] == 0
        assert sub["dropped"] == 0
    assert out["latency"]["n"] == sum(s["ticks"] for s in subs)


def test_session_counts_refusals_apart(bench: ServerProcess) -> None:
    out = run("session", "-addr", bench.address, "-orders", "5", "-instance", "nope")
    assert out["ok"] == out["filled"] == 0


def test_unknown_instance_fails_with_the_server_error(bench: ServerProcess) -> None:
    with pytest.raises(RuntimeError, match="NotFound"):
        loadgen("latency", "-addr", bench.address, "-orders", "1", "-instance", "nope")
