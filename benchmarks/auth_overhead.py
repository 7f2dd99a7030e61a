"""What authentication costs a call: a null RPC and PlaceOrder with auth off, with an API key
and with a JWT (HS256), in alternating rounds of the same run.

Two servers run side by side, each with a sim instance: one with ``[auth] enabled = false``
(allowed on loopback; every call a local admin) and one with auth on and an HS256 JWT secret.
The null RPC is ``AuthService/WhoAmI``, the cheapest call that passes the gate (health
``Check``, the null RPC of ``order_roundtrip.py``, needs no token and shows nothing of auth).
Each round times ``--calls`` pairs (WhoAmI, then a market PlaceOrder) per mode, the modes in a
rotating order, so that the machine's drift hits them alike. Both servers audit PlaceOrder and
apply the rate limits (auth off, every call is the principal ``local``): the ratios are what
checking the token adds. What the audit and the limits cost the event loop per call is measured
in this process (``in_process_us``).

Target: auth adds at most 5 % to the p50 of each call (ratio ≤ 1.05 against auth off).

Usage: python benchmarks/auth_overhead.py [--rounds 10] [--calls 200] [--warmup 100]
       [--output PATH]
Writes benchmarks/results/auth_overhead.json (or PATH).
"""

from __future__ import annotations

import argparse
import json
import secrets
import tempfile
import time
import timeit
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import grpc
import jwt
import uvloop

from _common import summary, write
from mt5exec.auth.audit import Auditor
from mt5exec.auth.limits import Limits
from mt5exec.auth.principal import Principal, Role
from mt5exec.config import AuthConfig
from mt5exec.testing import ServerProcess
from mt5exec.v1 import auth_pb2, auth_pb2_grpc, common_pb2, instance_pb2, order_pb2, order_pb2_grpc

MODES = ("off", "api_key", "jwt")
TARGET = 1.05

CONFIG = common_pb2.InstanceConfig(
    symbols=["EURUSD"],
    tick_rate=2,
    margin_mode=common_pb2.ACCOUNT_MARGIN_MODE_NETTING,
    risk=common_pb2.RiskLimits(max_order_volume=10.0, min_order_volume=0.01),
)


def order(mode: str, i: int) -> order_pb2.PlaceOrderRequest:
    # Alternating sides keep the netting position small, so the fill cost stays flat.
    return order_pb2.PlaceOrderRequest(
        instance_id="bench",
        client_order_id=f"{mode}-{i}",
        symbol="EURUSD",
        side=common_pb2.SIDE_BUY if i % 2 == 0 else common_pb2.SIDE_SELL,
        type=common_pb2.ORDER_TYPE_MARKET,
        volume=0.01,
    )


@contextmanager
def servers(root: Path) -> Iterator[dict[str, tuple[str, str | None]]]:
    """The address and token of each mode."""
    secret = secrets.token_hex(32)
    (root / "jwt.secret").write_text(secret)
    (root / "off.toml").write_text("[auth]\nenabled = false\n")
    (root / "on.toml").write_text(f'[auth]\njwt_secret_file = "{root / "jwt.secret"}"\n')
    token = jwt.encode(
        {"sub": "bench", "role": "admin", "exp": int(time.time()) + 86_400},
        secret,
        algorithm="HS256",
    )
    with ExitStack() as stack:
        off = stack.enter_context(ServerProcess(root / "off", config=root / "off.toml"))
        on = stack.enter_context(ServerProcess(root / "on", config=root / "on.toml"))
        for server in (off, on):
            server.instances.CreateInstance(
                instance_pb2.CreateInstanceRequest(instance_id="bench", config=CONFIG), timeout=30
            )
        time.sleep(1.0)  # a first price
        yield {
            "off": (off.address, None),
            "api_key": (on.address, on.token),
            "jwt": (on.address, token),
        }


async def measure(
    targets: dict[str, tuple[str, str | None]], rounds: int, calls: int, warmup: int
) -> dict[str, dict[str, list[float]]]:
    samples: dict[str, dict[str, list[float]]] = {
        m: {"null_rpc": [], "place_order": []} for m in MODES
    }
    channels = {m: grpc.aio.insecure_channel(address) for m, (address, _) in targets.items()}
    try:
        stubs = {
            m: (
                auth_pb2_grpc.AuthServiceStub(channels[m]),
                order_pb2_grpc.OrderServiceStub(channels[m]),
                None if token is None else (("authorization", f"Bearer {token}"),),
            )
            for m, (_, token) in targets.items()
        }
        who = auth_pb2.WhoAmIRequest()
        counter = 0

        async def pairs(mode: str, n: int, keep: bool) -> None:
            nonlocal counter
            auth, orders, metadata = stubs[mode]
            null, placed = samples[mode]["null_rpc"], samples[mode]["place_order"]
            for _ in range(n):
                counter += 1
                t0 = time.perf_counter()
                await auth.WhoAmI(who, metadata=metadata)
                t1 = time.perf_counter()
                reply = await orders.PlaceOrder(order(mode, counter), metadata=metadata)
                t2 = time.perf_counter()
                assert reply.order.status == common_pb2.ORDER_STATUS_FILLED, reply
                if keep:
                    null.append(t1 - t0)
                    placed.append(t2 - t1)

        for mode in MODES:
            await pairs(mode, warmup, keep=False)
        for r in range(rounds):
            for mode in MODES[r % 3 :] + MODES[: r % 3]:
                await pairs(mode, calls, keep=True)
    finally:
        for channel in channels.values():
            await channel.close()
    return samples


def in_process(repeat: int = 20_000) -> dict[str, float]:
    """µs of the event loop per call: an audit record of a PlaceOrder (packed and queued, its
    sink a list), and the rate limit's bucket."""
    sent: list[bytes] = []

    def sink(payload: bytes) -> bool:
        sent.append(payload)
        return True

    method = order_pb2.DESCRIPTOR.services_by_name["OrderService"].methods_by_name["PlaceOrder"]
    audit = Auditor(sink).method(method)
    assert audit is not None
    principal = Principal("k1", Role.TRADER, "alice", "api_key")
    raw = order("x", 1).SerializeToString()

    class Context:
        def peer(self) -> str:
            return "ipv4:127.0.0.1:50000"

    context = Context()
    # A bucket that never runs dry: what a call under the limit costs.
    limits = Limits(AuthConfig(rpc_per_second=1e12, rpc_burst=10**9))
    record = min(
        timeit.repeat(
            lambda: audit.record(principal, context, raw, grpc.StatusCode.OK),
            number=repeat,
            repeat=5,
        )
    )
    sent.clear()
    admit = min(timeit.repeat(lambda: limits.admit(principal), number=repeat, repeat=5))
    return {
        "audit_record_place_order": round(record / repeat * 1e6, 2),
        "rate_limit_admit": round(admit / repeat * 1e6, 2),
    }


def run(rounds: int, calls: int, warmup: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="mt5exec-bench-") as tmp, servers(Path(tmp)) as targets:
        samples = uvloop.run(measure(targets, rounds, calls, warmup))
    result: dict[str, Any] = {
        "rounds": rounds,
        "calls_per_round": calls,
        "null_rpc": "AuthService/WhoAmI",
        "modes": {m: {k: summary(v) for k, v in samples[m].items()} for m in MODES},
    }
    ratios: dict[str, dict[str, float]] = {}
    for mode in ("api_key", "jwt"):
        ratios[mode] = {
            f"{call}_{p}": round(
                result["modes"][mode][call][f"{p}_us"] / result["modes"]["off"][call][f"{p}_us"], 3
            )
            for call in ("null_rpc", "place_order")
            for p in ("p50", "p99")
        }
    result["ratios_vs_off"] = ratios
    result["target_p50_ratio"] = TARGET
    result["met"] = {
        mode: all(ratios[mode][f"{call}_p50"] <= TARGET for call in ("null_rpc", "place_order"))
        for mode in ratios
    }
    result["in_process_us"] = in_process()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--calls", type=int, default=200, help="pairs per mode and round")
    parser.add_argument("--warmup", type=int, default=100, help="pairs per mode, not timed")
    parser.add_argument("--output", type=Path, help="write the JSON here instead")
    args = parser.parse_args()
    result = run(args.rounds, args.calls, args.warmup)
    if args.output is not None:
        args.output.write_text(
            json.dumps({"benchmark": "auth_overhead", **result}, indent=2) + "\n"
        )
        path = args.output
    else:
        path = write("auth_overhead", result)
    for mode in MODES:
        m = result["modes"][mode]
        null, placed = m["null_rpc"], m["place_order"]
        print(
            f"{mode:8s} WhoAmI p50 {null['p50_us']:7.1f} p99 {null['p99_us']:8.1f} µs | "
            f"PlaceOrder p50 {placed['p50_us']:7.1f} p99 {placed['p99_us']:8.1f} µs"
        )
    for mode, r in result["ratios_vs_off"].items():
        print(f"{mode:8s} vs off: " + ", ".join(f"{k} {v:.3f}x" for k, v in r.items()))
    print(f"target p50 ≤ {TARGET}x: {result['met']}")
    print(f"in process (µs per call): {result['in_process_us']}")
    print(f"written to {path}")


if __name__ == "__main__":
    main()
