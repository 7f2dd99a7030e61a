"""Server lifecycle: build the grpc.aio server, run it, shut it down cleanly.

Shutdown order (SIGTERM/SIGINT): health NOT_SERVING, streams ended with
UNAVAILABLE, in-flight calls given the grace period, every worker stopped
(shutdown frame, SIGTERM, SIGKILL of its process group), history flushed.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
from grpc_health.v1 import health_pb2

from mt5exec.auth import audit_records, mtls
from mt5exec.auth.audit import Auditor
from mt5exec.auth.guard import Guard
from mt5exec.auth.jwt import JwtVerifier
from mt5exec.auth.keys import RELOAD_INTERVAL_S, KeyStore
from mt5exec.auth.limits import Limits
from mt5exec.config import ConfigError, ServerConfig, check_transport
from mt5exec.engine import Engine, Topic
from mt5exec.errors import MT5ExecError
from mt5exec.metrics import MetricsServer
from mt5exec.reasons import Reason
from mt5exec.server import memory, private, transport
from mt5exec.server.handlers import add_service
from mt5exec.server.lock import ServerLock
from mt5exec.server.standard import Health, add_standard_services
from mt5exec.server.state import AppState
from mt5exec.services import auth as auth_service
from mt5exec.services import instance as instance_service
from mt5exec.services import market as market_service
from mt5exec.services import order as order_service
from mt5exec.services import stream as stream_service
from mt5exec.services.risk_control import load_owner_policies
from mt5exec.storage.history_process import HistoryProcess
from mt5exec.storage.logs import prune_logs
from mt5exec.templates import load_templates
from mt5exec.v1 import auth_pb2, instance_pb2, market_pb2, order_pb2, stream_pb2
from mt5exec.vault import open_vault
from mt5exec.vault.keys import take_from_environ

if TYPE_CHECKING:
    from mt5exec.mirror.writer import Mirror

log = logging.getLogger("mt5exec.server")

SERVICES = (
    instance_pb2.DESCRIPTOR.services_by_name["InstanceService"],
    order_pb2.DESCRIPTOR.services_by_name["OrderService"],
    stream_pb2.DESCRIPTOR.services_by_name["StreamService"],
    auth_pb2.DESCRIPTOR.services_by_name["AuthService"],
    market_pb2.DESCRIPTOR.services_by_name["MarketDataService"],
)

_OPTIONS = [
    # Streams must survive idle periods behind NATs and proxies.
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.max_receive_message_length", 16 * 1024 * 1024),
]


async def _record_ticks(state: AppState) -> None:
    """Feeds every tick to the history's tick store (conflated if the store falls behind:
    history never slows the clients' streams)."""
    assert state.history is not None
    history = state.history
    while True:
        sub = state.engine.subscribe(Topic.TICKS, [])
        try:
            async for batch in sub.messages(1 << 20):
                history.record_ticks(batch)
        except MT5ExecError as e:
            if e.reason == Reason.SERVER_SHUTTING_DOWN:
                return
            log.warning("tick storage subscription ended (%s); resubscribing", e.reason)


async def _record_accounts(state: AppState) -> None:
    """Feeds the account events to the history's snapshots (conflated: the history keeps the
    latest of each instance, and never slows the clients' streams)."""
    assert state.history is not None
    history = state.history
    while True:
        sub = state.engine.subscribe(Topic.ACCOUNTS, [], conflate=True)
        try:
            async for batch in sub.messages(1 << 20):
                history.record_accounts(batch)
        except MT5ExecError as e:
            if e.reason == Reason.SERVER_SHUTTING_DOWN:
                return
            log.warning("account snapshot subscription ended (%s); resubscribing", e.reason)


class Server:
    """A running mt5exec server."""

    def __init__(self, config: ServerConfig, vault_env: Mapping[str, str] | None = None) -> None:
        """``vault_env``: where the vault's key variables are (None: the environment)."""
        self.config = config
        check_transport(config)
        self.tls = transport.load_tls(config.server)
        self.metrics_token = transport.read_metrics_token(config.server)
        # Client certificates are principals only when they are required and verified.
        mtls.configure(config.auth.mtls if self.tls is not None and self.tls.mutual else None)
        e = config.engine
        self.engine = Engine(e.core(config.journal_path))
        try:
            owners = load_owner_policies(config.risk_owners_path)
        except (OSError, ValueError) as e:
            raise ConfigError(f"risk owners file: {e}") from None
        self.engine.configure_risk(
            config.risk.global_orders_per_second, config.risk.owner_orders_per_second, owners
        )
        history = None
        if config.history.enabled:
            history = HistoryProcess(
                config.history_path,
                flush_interval_ms=config.history.flush_interval_ms,
                batch_size=config.history.batch_size,
                tick_retention_days=(
                    config.history.tick_retention_days if config.history.ticks else 0.0
                ),
                instances_dir=config.instances_dir,
            )
        self.state = AppState(
            config=config,
            engine=self.engine,
            history=history,
            templates=load_templates(_templates_dir(config)),
            vault=open_vault(config, vault_env),
        )
        self.instances = instance_service.InstanceService(self.state)
        self.guard = Guard(
            enabled=config.auth.enabled,
            keys=KeyStore(config.server.data_dir),
            jwts=JwtVerifier(config.auth),
            owner_of=self.instances.owner_of,
        )
        self.limits = Limits(config.auth)
        self.auditor = Auditor(None if history is None else history.record_audit)
        if history is not None:
            history.unsent_audits = self.auditor.log_records
        self.grpc = grpc.aio.server(options=_OPTIONS)
        self.health = Health()
        self.port = 0
        self._background: list[asyncio.Task[None]] = []
        self.metrics: MetricsServer | None = None
        # The Redis mirror ([redis]); its module (and redis) is imported only when it is on.
        self.mirror: Mirror | None = None

    async def start(self) -> str:
        """Starts serving; returns the address actually bound."""
        config = self.config
        config.server.data_dir.mkdir(parents=True, exist_ok=True)
        config.instances_dir.mkdir(parents=True, exist_ok=True)
        # First: a key store that cannot be used stops the start before anything runs.
        self._open_keys()
        self.engine.attach(asyncio.get_running_loop())
        if config.server.metrics_listen:
            self.metrics = MetricsServer(
                self.engine,
                config.server.metrics_listen,
                token=self.metrics_token,
                tls=transport.metrics_ssl_context(self.tls, config.server),
            )
        if self.state.history is not None:
            await self.state.history.start()
            self._background.append(asyncio.create_task(_record_accounts(self.state)))
            if config.history.ticks:
                self._background.append(asyncio.create_task(_record_ticks(self.state)))
        servicers = (
            (self.instances, instance_service.PLANNED),
            (order_service.OrderService(self.state), order_service.PLANNED),
            (
                stream_service.StreamService(self.state, self.instances.instance_ids_of),
                stream_service.PLANNED,
            ),
            (auth_service.AuthService(self.guard, self.state.history), auth_service.PLANNED),
            (market_service.MarketDataService(self.state), market_service.PLANNED),
        )
        audit_records.configure_log()
        for service, (servicer, planned) in zip(SERVICES, servicers, strict=True):
            add_service(
                self.grpc,
                service,
                servicer,
                planned,
                config.engine.slow_consumer_timeout_s,
                self.guard.gate,
                self.limits,
                self.auditor.method,
                None if self.metrics is None else self.metrics.rpc,
            )
        add_standard_services(self.grpc, list(SERVICES), self.health)
        names = [s.full_name for s in SERVICES]
        if config.redis.enabled:
            from mt5exec.mirror.writer import Mirror

            # Before the restore: the restored instances' events are the mirror's too. It
            # runs on its own tasks (no RPC waits on it).
            self.mirror = Mirror(config.redis, self.engine)
            self.mirror.start()
        restored = self.instances.restore()
        host = config.server.listen.rpartition(":")[0]
        self.port = transport.bind(self.grpc, config.server, self.tls)
        # What the server is made of (modules, descriptors, servicers: ~36,000 objects) lives
        # as long as it does. Frozen, a full collection no longer walks it: one took 14-25 ms
        # in the middle of an order, a few seconds after the start. Before serving, so that
        # this collection delays no request either.
        gc.collect()
        gc.freeze()
        await self.grpc.start()
        for name in ["", *names]:
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        self._background += [
            asyncio.ensure_future(restored),
            asyncio.create_task(self._prune_logs_daily()),
            asyncio.create_task(self.instances.watch_experts()),
            asyncio.create_task(self.instances.keep_risk_counters()),
            asyncio.create_task(memory.trim_after_streams()),
            asyncio.create_task(self._watch_keys()),
        ]
        return f"{host}:{self.port}"

    def _open_keys(self) -> None:
        """The API key store; on an empty data dir it is made with a first admin key."""
        keys = self.guard.keys
        try:
            created = keys.open()
        except (OSError, ValueError) as e:
            raise ConfigError(f"auth: the API key store: {e}") from None
        if created is not None:
            log.warning(
                "first start: an admin API key was written to %s (readable by this user "
                "only); pass it as 'authorization: Bearer <key>'",
                keys.admin_key_path,
            )
        if not self.config.auth.enabled:
            log.warning(
                "AUTHENTICATION IS OFF (auth.enabled = false): every call to %s is served "
                "as an admin, without a token",
                self.config.server.listen,
            )
        elif self.guard.jwts.configured:
            log.info("JWTs accepted: %s", ", ".join(self.guard.jwts.algorithms))

    async def _watch_keys(self) -> None:
        """Reads the key store again when ``mt5exec keys`` changed it: a key it revoked is
        refused, and its streams end, within a second. Off the event loop (a stat, and a
        read when it changed); nothing it meets ends the watching."""
        while True:
            await asyncio.sleep(RELOAD_INTERVAL_S)
            try:
                await asyncio.to_thread(self.guard.keys.refresh)
            except Exception:
                log.exception("API key store: not read again (the keys read last stay)")

    async def _prune_logs_daily(self) -> None:
        config = self.config
        while True:
            await asyncio.to_thread(prune_logs, config.logs_dir, config.server.log_retention_days)
            await asyncio.sleep(86_400)

    async def stop(self) -> None:
        grace = self.config.server.grace_period_s
        if self.metrics is not None:
            await asyncio.to_thread(self.metrics.close)
        await self.health.enter_graceful_shutdown()
        for task in self._background:
            task.cancel()
        self.engine.end_streams(
            MT5ExecError(
                grpc.StatusCode.UNAVAILABLE, Reason.SERVER_SHUTTING_DOWN, "the server is stopping"
            )
        )
        await self.grpc.stop(grace)
        # The changes of calls cancelled or cut by the stop run on: written if they can be.
        await self.instances.finish_changes(grace)
        self.instances.save_before_stop()
        stopped = await self.engine.stop_all()
        if self.state.copy_relations is not None:
            await self.state.copy_relations.close()
        if self.mirror is not None:
            await self.mirror.close()
        if self.state.history is not None:
            for instance in stopped:
                self.state.history.record_instance(instance.SerializeToString())
        if self.state.history is not None:
            await self.state.history.close()
        self.auditor.close()
        self.state.vault.close()
        self.engine.detach()


def _templates_dir(config: ServerConfig) -> Path | None:
    """The operator's templates; the default directory may simply not exist."""
    path = config.templates_path
    if config.server.templates_dir is None and not path.is_dir():
        return None
    return path


async def serve(config: ServerConfig, lock: ServerLock | None = None) -> None:
    """Runs until SIGTERM or SIGINT; ``lock``, the data directory's (``server.lock``), is
    told the address."""
    private.restrict(config.server.data_dir)
    # Out of the environment before a thread or a child could read it (the configuration,
    # with the DSN, is already loaded).
    server = Server(config, vault_env=take_from_environ())
    address = await server.start()
    if lock is not None:
        lock.announce(address)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if server.metrics is not None:
        print(f"mt5exec metrics on {server.metrics.address}", flush=True)
    print(f"mt5exec listening on {address}", flush=True)
    log.info("serving on %s, data in %s", address, config.server.data_dir)
    try:
        await stop.wait()
    finally:
        log.info("shutting down")
        await server.stop()
        print("mt5exec stopped", file=sys.stderr, flush=True)
