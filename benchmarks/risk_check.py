"""The risk check's cost, and the kill switch's latency.

1. One pre-trade check (every rule, all limits set, the order passes — the longest path) on
   the same scenarios three ways in the same run: inside Rust (a loop in the extension), called
   from Python (``RiskChecker.check``), and the pure-Python reference
   (``mt5exec.risk_reference``). Targets: ≤ 200 ns in Rust, ≤ 1 µs from Python, reference
   ≥ 20x slower than the Python call.
2. The kill switch over 30 instances with 10 pending orders each: EngageKillSwitch through gRPC
   until every cancel is answered, beside a null RPC (health Check) of the same server. Target
   ≤ 100 ms.

Usage: python benchmarks/risk_check.py [--rounds 3]
Writes benchmarks/results/risk_check.json.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from grpc_health.v1 import health_pb2, health_pb2_grpc

from _common import summary, write
from mt5exec import _core
from mt5exec import risk_reference as ref
from mt5exec.terminal.v1 import worker_pb2
from mt5exec.testing import ServerProcess
from mt5exec.v1 import common_pb2, instance_pb2, order_pb2

LIMITS = common_pb2.RiskLimits(
    max_order_volume=10.0,
    min_order_volume=0.01,
    max_order_notional=5_000_000.0,
    max_symbol_exposure=10_000_000.0,
    max_open_positions=20,
    max_pending_orders=100,
    max_trades_per_day=50,
    max_daily_loss=1_000.0,
    max_loss_per_trade=1_000.0,
    max_drawdown_percent=10.0,
    max_deviation_points=50,
    price_collar_percent=10.0,
    stale_tick_ms=1_000,
)
SCENARIO = ref.Scenario(
    limits=LIMITS,
    symbol=ref.Symbol(),
    bid=1.1,
    ask=1.10002,
    tick_age_ms=20,
    hedging=True,
    equity=10_000.0,
    free_margin=9_000.0,
    leverage=100.0,
    net_volume=0.5,
    open_positions=3,
    pending_orders=2,
    trades_today=10,
    day_start_equity=10_100.0,
    equity_high=10_200.0,
)
ORDERS = [
    ref.Order(True, ref.MARKET, 0.5, stop_loss=1.099, take_profit=1.102, deviation_points=10),
    ref.Order(False, ref.LIMIT, 1.0, price=1.101, stop_loss=1.102, deviation_points=5),
    ref.Order(True, ref.STOP_LIMIT, 0.2, price=1.102, stop_limit_price=1.1015),
]


def checker() -> _core.RiskChecker:
    spec = worker_pb2.SymbolInfo(
        name="EURUSD", contract_size=100_000.0, tick_value=1.0, tick_size=0.00001, trade_mode=4
    )
    s = SCENARIO
    return _core.RiskChecker(
        LIMITS.SerializeToString(),
        spec.SerializeToString(),
        s.bid,
        s.ask,
        tick_age_ms=s.tick_age_ms,
        hedging=s.hedging,
        equity=s.equity,
        free_margin=s.free_margin,
        leverage=s.leverage,
        net_volume=s.net_volume,
        open_positions=s.open_positions,
        pending_orders=s.pending_orders,
        trades_today=s.trades_today,
        day_start_equity=s.day_start_equity,
        equity_high=s.equity_high,
    )


def per_call_ns(fn: object, n: int) -> float:
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter_ns()
        fn(n)  # type: ignore[operator]
        best = min(best, (time.perf_counter_ns() - start) / n)
    return best


def check_costs() -> dict[str, float]:
    rust = checker()
    for order in ORDERS:
        assert ref.check(order, SCENARIO) is None
        assert rust.check(*order.args()) is None, rust.check(*order.args())
    market = ORDERS[0]
    calls = [o.args() for o in ORDERS]
    check = rust.check

    def from_python(n: int) -> None:
        for i in range(n):
            check(*calls[i % 3])

    def empty_loop(n: int) -> None:
        for i in range(n):
            calls[i % 3]

    def reference(n: int) -> None:
        for i in range(n):
            ref.check(ORDERS[i % 3], SCENARIO)

    n = 200_000
    in_rust = min(
        rust.time_check(market.buy, market.order_type, market.volume, 2_000_000) for _ in range(5)
    )
    python_call = per_call_ns(from_python, n)
    loop = per_call_ns(empty_loop, n)
    pure = per_call_ns(reference, n // 4)
    return {
        "rust_ns": round(in_rust, 1),
        "python_call_ns": round(python_call, 1),
        "python_loop_overhead_ns": round(loop, 1),
        "reference_ns": round(pure, 1),
        "reference_over_python_call": round(pure / python_call, 1),
        "reference_over_rust": round(pure / in_rust, 1),
    }


def kill_switch(rounds: int) -> dict[str, object]:
    bulk = common_pb2.RiskLimits(max_order_volume=10.0, min_order_volume=0.01)
    ids = [f"k{n:02d}" for n in range(30)]
    with tempfile.TemporaryDirectory() as tmp, ServerProcess(Path(tmp) / "server") as server:

        def create(instance_id: str) -> None:
            server.instances.CreateInstance(
                instance_pb2.CreateInstanceRequest(
                    instance_id=instance_id,
                    config=common_pb2.InstanceConfig(symbols=["EURUSD"], tick_rate=5, risk=bulk),
                ),
                timeout=60,
            )

        with ThreadPoolExecutor(30) as pool:
            list(pool.map(create, ids))
        probe = order_pb2.PlaceOrderRequest(
            instance_id=ids[0],
            symbol="EURUSD",
            side=common_pb2.SIDE_BUY,
            type=common_pb2.ORDER_TYPE_MARKET,
            volume=0.01,
        )
        price = round(
            server.orders.PlaceOrder(probe, timeout=10).order.average_fill_price * 0.98, 5
        )
        scope = instance_pb2.KillSwitchScope(**{"global": True})
        health = health_pb2_grpc.HealthStub(server.channel)
        null = []
        for _ in range(200):
            start = time.perf_counter()
            health.Check(health_pb2.HealthCheckRequest(), timeout=5)
            null.append(time.perf_counter() - start)
        latencies, cancelled = [], []
        for r in range(rounds):

            def ten(instance_id: str, r: int = r) -> None:
                for n in range(10):
                    request = order_pb2.PlaceOrderRequest(
                        instance_id=instance_id,
                        client_order_id=f"{instance_id}-{r}-{n}",
                        symbol="EURUSD",
                        side=common_pb2.SIDE_BUY,
                        type=common_pb2.ORDER_TYPE_LIMIT,
                        volume=0.01,
                        price=price,
                    )
                    server.orders.PlaceOrder(request, timeout=10)

            with ThreadPoolExecutor(30) as pool:
                list(pool.map(ten, ids))
            start = time.perf_counter()
            response = server.instances.EngageKillSwitch(
                instance_pb2.EngageKillSwitchRequest(scope=scope), timeout=30
            )
            latencies.append(time.perf_counter() - start)
            cancelled.append(response.orders_cancelled)
            server.instances.ReleaseKillSwitch(
                instance_pb2.ReleaseKillSwitchRequest(scope=scope), timeout=10
            )
        return {
            "instances": 30,
            "pending_orders": 300,
            "orders_cancelled": cancelled,
            "engage_ms": [round(x * 1000, 1) for x in latencies],
            "engage_ms_median": round(statistics.median(latencies) * 1000, 1),
            "null_rpc": summary(null),
        }


def main() -> int:
    if not hasattr(_core, "RiskChecker"):
        sys.exit("_core.RiskChecker is built only with the test-bindings feature: run `make build`")
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    costs = check_costs()
    kill = kill_switch(args.rounds)
    targets = {
        "rust_le_200ns": costs["rust_ns"] <= 200,
        "python_call_le_1us": costs["python_call_ns"] <= 1000,
        "reference_ge_20x": costs["reference_over_python_call"] >= 20,
        "kill_switch_le_100ms": float(kill["engage_ms_median"]) <= 100,  # type: ignore[arg-type]
    }
    path = write("risk_check", {"check": costs, "kill_switch": kill, "targets_met": targets})
    print(
        f"risk check: Rust {costs['rust_ns']} ns, from Python {costs['python_call_ns']} ns "
        f"(loop {costs['python_loop_overhead_ns']} ns), reference {costs['reference_ns']} ns "
        f"= {costs['reference_over_python_call']}x the Python call"
    )
    print(
        f"kill switch, 30 instances x 10 pending: {kill['engage_ms']} ms "
        f"(null RPC p50 {kill['null_rpc']['p50_us']} us)"  # type: ignore[index]
    )
    print(f"targets: {targets}\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
