"""What authentication costs a call: a null RPC and PlaceOrder with auth off, with an API key
and with a JWT (HS256), in alternating rounds of the same run.

Five servers run side by side, each with a sim instance, one per mode: ``off``, ``[auth]
enabled = false`` (allowed on loopback; every call a local admin); ``off_control``, a second
such server (what two servers differ by anyway); ``off_header``, a third, sent an API key it
ignores (what carrying ``authorization`` costs the client and the transport: the Python
client's share is most of it); ``api_key``, auth on, called with its admin API key; ``jwt``,
auth on with an HS256 JWT secret, called with an admin JWT. One server per mode, so that every
call goes to another server than the call before it: on a loaded box a call that follows one
to the same server finds it awake and is faster (with two modes on one server, the mode that
followed the other read up to 15 % faster, whatever its token).

The null RPC is ``AuthService/WhoAmI``, the cheapest call that passes the gate (health
``Check``, the null RPC of ``order_roundtrip.py``, needs no token and shows nothing of auth).
Each round times ``--calls`` pairs (WhoAmI, then a market PlaceOrder) per mode, interleaved
pair by pair (off, off_control, off_header, api_key, jwt, off, ...; each round starts the
rotation with another mode) so that the machine's drift hits the modes alike;
``round_p50_ratios`` are the medians over the rounds of each round's p50 ratio, and
``server_cpu_us_per_pair`` what each server process spent (scheduling does not blur it). Every
server audits PlaceOrder and applies the rate limits (auth off, every call is the principal
``local``): the ratios are what the token adds. What its check, an audit record, the rate limit
and the history process's handling of a record cost per call is measured in this process
(``in_process_us``).

Target: auth adds at most 5 % to the p50 of each call (ratio ≤ 1.05 against auth off).

Usage: python benchmarks/auth_overhead.py [--rounds 10] [--calls 200] [--warmup 100]
       [--output PATH]
Writes benchmarks/results/auth_overhead.json (or PATH).
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
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

from _common import cpu_seconds, summary, write
from mt5exec.auth import audit_records
from mt5exec.auth.audit import Auditor
from mt5exec.auth.guard import Guard
from mt5exec.auth.jwt import JwtVerifier
from mt5exec.auth.keys import KeyStore
from mt5exec.auth.limits import Limits
from mt5exec.auth.principal import Principal, Role
from mt5exec.config import AuthConfig
from mt5exec.testing import ServerProcess
from mt5exec.v1 import auth_pb2, auth_pb2_grpc, common_pb2, instance_pb2, order_pb2, order_pb2_grpc

MODES = ("off", "off_control", "off_header", "api_key", "jwt")
# Compared with "off": a second auth-off server (what two servers differ by anyway), an
# auth-off server sent an API key it ignores (what carrying the header costs the client and
# the transport), and the two kinds of token.
COMPARED = ("off_control", "off_header", "api_key", "jwt")
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


Target = tuple[str, str | None, int]  # address, token (None: none sent), server pid


@contextmanager
def servers(root: Path) -> Iterator[dict[str, Target]]:
    """The address, token and server pid of each mode."""
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
        started = {
            mode: stack.enter_context(
                ServerProcess(
                    root / mode,
                    config=root / ("on.toml" if mode in ("api_key", "jwt") else "off.toml"),
                )
            )
            for mode in MODES
        }
        for server in started.values():
            server.instances.CreateInstance(
                instance_pb2.CreateInstanceRequest(instance_id="bench", config=CONFIG), timeout=30
            )
        time.sleep(1.0)  # a first price
        tokens = {"off_header": started["api_key"].token, "api_key": started["api_key"].token}
        tokens["jwt"] = token
        yield {m: (server.address, tokens.get(m), server.pid) for m, server in started.items()}


Rounds = dict[str, dict[str, list[list[float]]]]  # mode -> call -> each round's samples


async def measure(
    targets: dict[str, Target],
    rounds: int,
    calls: int,
    warmup: int,
    modes: tuple[str, ...] = MODES,
) -> tuple[Rounds, dict[str, float]]:
    """Each round's samples, and the CPU each server spent per timed pair (µs): WhoAmI then a
    market PlaceOrder to each mode's server in turn, each round starting with another mode."""
    samples: Rounds = {m: {"null_rpc": [], "place_order": []} for m in modes}
    channels = {m: grpc.aio.insecure_channel(address) for m, (address, _, _) in targets.items()}
    cpu: dict[str, float] = {}
    try:
        stubs = {
            m: (
                auth_pb2_grpc.AuthServiceStub(channels[m]),
                order_pb2_grpc.OrderServiceStub(channels[m]),
                None if token is None else (("authorization", f"Bearer {token}"),),
            )
            for m, (_, token, _) in targets.items()
        }
        who = auth_pb2.WhoAmIRequest()
        counter = 0

        async def pair(mode: str) -> tuple[float, float]:
            nonlocal counter
            auth, orders, metadata = stubs[mode]
            counter += 1
            t0 = time.perf_counter()
            await auth.WhoAmI(who, metadata=metadata)
            t1 = time.perf_counter()
            reply = await orders.PlaceOrder(order(mode, counter), metadata=metadata)
            t2 = time.perf_counter()
            assert reply.order.status == common_pb2.ORDER_STATUS_FILLED, reply
            return t1 - t0, t2 - t1

        for _ in range(warmup):
            for mode in modes:
                await pair(mode)
        cpu = {m: cpu_seconds(pid) for m, (_, _, pid) in targets.items()}
        for r in range(rounds):
            rotation = modes[r % len(modes) :] + modes[: r % len(modes)]
            this_round: dict[str, list[tuple[float, float]]] = {m: [] for m in modes}
            for _ in range(calls):
                for mode in rotation:
                    this_round[mode].append(await pair(mode))
            for mode, timed in this_round.items():
                samples[mode]["null_rpc"].append([null for null, _ in timed])
                samples[mode]["place_order"].append([placed for _, placed in timed])
        pairs = rounds * calls
        cpu = {
            m: round((cpu_seconds(pid) - cpu[m]) / pairs * 1e6, 1)
            for m, (_, _, pid) in targets.items()
        }
    finally:
        for channel in channels.values():
            await channel.close()
    return samples, cpu


class _Context:
    """What the guard, the limits and the audit read of a call."""

    def __init__(self, token: str | None) -> None:
        self._metadata = () if token is None else (("authorization", f"Bearer {token}"),)

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata

    def peer(self) -> str:
        return "ipv4:127.0.0.1:50000"


def _per_call_us(fn: Any, repeat: int) -> float:
    return round(min(timeit.repeat(fn, number=repeat, repeat=5)) / repeat * 1e6, 2)


def in_process(repeat: int = 20_000) -> dict[str, float]:
    """µs of the event loop per call: the token's check (auth off, an API key, a JWT seen
    before), an audit record of a PlaceOrder (packed and queued, its sink a list), and the
    rate limit's bucket."""
    with tempfile.TemporaryDirectory(prefix="mt5exec-bench-") as tmp:
        secret = secrets.token_hex(32)
        (Path(tmp) / "jwt.secret").write_text(secret)
        keys = KeyStore(Path(tmp))
        keys.open(create_admin=False)
        token, _ = keys.create(Role.ADMIN, None)
        jwts = JwtVerifier(AuthConfig(jwt_secret_file=Path(tmp) / "jwt.secret"))
        claims = {"sub": "bench", "role": "admin", "exp": int(time.time()) + 3600}
        guards = {
            enabled: Guard(enabled=enabled, keys=keys, jwts=jwts, owner_of=lambda _: None)
            for enabled in (False, True)
        }
        checks = {
            "authenticate_off": (guards[False], _Context(None)),
            "authenticate_api_key": (guards[True], _Context(token)),
            "authenticate_jwt": (
                guards[True],
                _Context(jwt.encode(claims, secret, algorithm="HS256")),
            ),
        }
        result = {
            name: _per_call_us(lambda g=guard, c=context: g.authenticate(c), repeat)
            for name, (guard, context) in checks.items()
        }
    sent: list[bytes] = []

    def sink(payload: bytes) -> bool:
        sent.append(payload)
        return True

    method = order_pb2.DESCRIPTOR.services_by_name["OrderService"].methods_by_name["PlaceOrder"]
    audit = Auditor(sink).method(method)
    assert audit is not None
    principal = Principal("k1", Role.TRADER, "alice", "api_key")
    raw = order("x", 1).SerializeToString()

    context = _Context(None)
    result["audit_record_place_order"] = _per_call_us(
        lambda: audit.record(principal, context, raw, grpc.StatusCode.OK), repeat
    )
    # What the history process then does with it, before its DuckDB insert: decode, redact,
    # the row and the JSON line (not logged here).
    record = sent[-1]
    result["history_describe_place_order"] = _per_call_us(
        lambda: audit_records.describe(record), repeat // 4
    )
    sent.clear()
    # A bucket that never runs dry: what a call under the limit costs.
    limits = Limits(AuthConfig(rpc_per_second=1e12, rpc_burst=10**9))
    result["rate_limit_admit"] = _per_call_us(lambda: limits.admit(principal), repeat)
    return result


def run(rounds: int, calls: int, warmup: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="mt5exec-bench-") as tmp, servers(Path(tmp)) as targets:
        samples, cpu = uvloop.run(measure(targets, rounds, calls, warmup))
    result: dict[str, Any] = {
        "rounds": rounds,
        "calls_per_round": calls,
        "null_rpc": "AuthService/WhoAmI",
        "modes": {
            m: {call: summary([t for r in runs for t in r]) for call, runs in samples[m].items()}
            for m in MODES
        },
    }
    ratios: dict[str, dict[str, float]] = {}
    for mode in COMPARED:
        ratios[mode] = {
            f"{call}_{p}": round(
                result["modes"][mode][call][f"{p}_us"] / result["modes"]["off"][call][f"{p}_us"], 3
            )
            for call in ("null_rpc", "place_order")
            for p in ("p50", "p99")
        }
    result["ratios_vs_off"] = ratios
    # The server process's CPU per timed pair (WhoAmI and PlaceOrder; the sim worker and the
    # history process are apart): what auth costs the server, whatever the scheduling.
    result["server_cpu_us_per_pair"] = cpu
    result["round_p50_ratios"] = {
        mode: {
            call: round(
                statistics.median(
                    summary(mine)["p50_us"] / summary(off)["p50_us"]
                    for mine, off in zip(samples[mode][call], samples["off"][call], strict=True)
                ),
                3,
            )
            for call in ("null_rpc", "place_order")
        }
        for mode in COMPARED
    }
    result["target_p50_ratio"] = TARGET
    result["met"] = {
        mode: all(ratios[mode][f"{call}_p50"] <= TARGET for call in ("null_rpc", "place_order"))
        for mode in ("api_key", "jwt")
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
        rounds = result["round_p50_ratios"][mode]
        print(f"{'':8s} median of the rounds' p50 ratios: {rounds}")
    print(f"server CPU per pair (µs): {result['server_cpu_us_per_pair']}")
    print(f"target p50 ≤ {TARGET}x: {result['met']}")
    print(f"in process (µs per call): {result['in_process_us']}")
    print(f"written to {path}")


if __name__ == "__main__":
    main()
