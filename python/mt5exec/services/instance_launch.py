"""How an instance's worker is launched: its runtime config and worker config written in its
directory, and the engine's spec (argv, environment, supervision from the health-check
template, the password file the engine writes before each start).
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import sys
from pathlib import Path

from google.protobuf import json_format

import mt5exec
from mt5exec import templates
from mt5exec.config import EngineConfig
from mt5exec.engine import InstanceSpec, Supervision
from mt5exec.errors import invalid
from mt5exec.files import atomic_write
from mt5exec.reasons import Reason
from mt5exec.registry import InstanceRecord
from mt5exec.server.state import AppState
from mt5exec.services import instance_input
from mt5exec.sim.state import Retention
from mt5exec.v1 import common_pb2

log = logging.getLogger("mt5exec.instances")

PACKAGE_ROOT = str(Path(mt5exec.__file__).resolve().parent.parent)
# Where the engine writes an MT5 terminal's password for its worker (in the instance's dir).
PASSWORD_FILE = ".terminal-password"


def write_configs(
    state: AppState, record: InstanceRecord, directory: Path, *, regenerate_ok: bool
) -> tuple[templates.RuntimeConfig, Path, str]:
    """Writes the runtime config of the instance in ``directory`` (regenerated from the
    templates when missing or corrupt) and its worker's config (raises OSError); returns the
    runtime config, the worker config's path and the worker's module."""
    overrides = instance_input.overrides(record.config)
    try:
        if regenerate_ok:
            runtime, regenerated = templates.load_runtime_config(
                directory, state.templates, record.instance_id, record.owner, overrides
            )
            if regenerated:
                log.warning("%s: runtime config regenerated from templates", directory)
        else:
            runtime = templates.build_runtime_config(
                state.templates, record.instance_id, record.owner, overrides
            )
            templates.write_runtime_config(directory, runtime)
    except templates.TemplateError as e:
        raise invalid("config", Reason.CONFIG_INVALID, f"config: {e}") from None
    if not record.config.HasField("risk"):
        # The limits live in the record from now on (versioned, changed at runtime).
        try:
            json_format.ParseDict(runtime.risk.risk_limits(), record.config.risk)
        except json_format.ParseError as e:
            raise invalid("config", Reason.CONFIG_INVALID, f"config: risk template: {e}") from None
    worker_config = templates.runtime_config_path(directory).with_name("worker.json")
    hc = runtime.health_check
    if record.backend == common_pb2.BACKEND_MT5:
        mt5 = state.config.mt5
        worker: dict[str, object] = {
            "instance_id": record.instance_id,
            "module": mt5.module,
            "terminal_path": str(directory / "terminal"),
            "login": record.config.login,
            "server": record.config.server,
            "password_file": str(directory / PASSWORD_FILE),
            "delete_password_file": True,
            "symbols": list(runtime.instance.trade_pairs),
            "poll_interval_ms": mt5.poll_interval_ms,
            "broker_retry_attempts": hc.broker_retry_attempts,
            "broker_retry_initial_ms": hc.broker_retry_initial_ms,
            "broker_relogin_after_ms": hc.broker_relogin_after_ms,
        }
        if mt5.terminal_base is not None:
            worker["terminal_base"] = str(mt5.terminal_base)
            worker["instance_dir"] = str(directory)
            worker["wine"] = shlex.split(mt5.wine)
        module = "mt5exec.workers.mt5"
    else:
        # The sim's journal keeps the history of every order the engine remembers.
        retention = Retention(
            keep_s=state.config.engine.final_order_retention_s,
            keep_orders=state.config.engine.max_orders_per_instance,
        )
        worker = runtime.worker_config(retention)
        module = "mt5exec.workers.sim"
    atomic_write(worker_config, json.dumps(worker, indent=2).encode())
    return runtime, worker_config, module


def engine_spec(
    record: InstanceRecord,
    hc: templates.HealthCheckSection,
    engine: EngineConfig,
    worker: tuple[Path, str],
    *,
    directory: Path,
    log_directory: Path,
    password: str,
    kill_switch: bool,
    first_sequence_after: int,
) -> InstanceSpec:
    """The engine's spec of an instance whose configs are written (``write_configs``: the
    worker config's path and module). A terminal's password (from the request or the vault)
    goes to the engine, which writes it (0600) for the worker before each start; the worker
    reads and deletes it. It is in no config file, log or record: only the vault keeps it,
    encrypted."""
    worker_config, module = worker
    return InstanceSpec(
        instance_id=record.instance_id,
        owner=record.owner,
        backend=record.backend,
        directory=directory,
        log_directory=log_directory,
        argv=[sys.executable, "-m", module, "--config", str(worker_config)],
        env={
            "PYTHONPATH": os.pathsep.join(
                filter(None, [PACKAGE_ROOT, os.environ.get("PYTHONPATH")])
            )
        },
        config=record.config,
        supervision=Supervision(
            heartbeat_interval_ms=hc.heartbeat_interval_ms,
            missed_heartbeats_degraded=hc.missed_heartbeats_degraded,
            missed_heartbeats_restart=hc.missed_heartbeats_restart,
            max_consecutive_failures=hc.max_consecutive_failures,
            restart_backoff_initial_ms=hc.restart_backoff_initial_ms,
            restart_backoff_max_ms=hc.restart_backoff_max_ms,
            stable_after_s=hc.stable_after_sec,
            start_timeout_s=engine.worker_start_timeout_s + login_budget_s(record, hc),
        ),
        created_unix_ns=record.created_unix_ns,
        secret_files=secret_files(record, directory, password),
        config_version=record.config_version,
        kill_switch=kill_switch,
        first_sequence_after=first_sequence_after,
    )


def secret_files(
    record: InstanceRecord, directory: Path, password: str
) -> tuple[tuple[str, str], ...]:
    """The files the engine writes (0600) before each start of the instance's worker: an
    MT5 terminal's password, which the worker reads and deletes."""
    if record.backend != common_pb2.BACKEND_MT5 or not password:
        return ()
    return ((str(directory / PASSWORD_FILE), password),)


def login_budget_s(record: InstanceRecord, hc: templates.HealthCheckSection) -> float:
    """How long an MT5 worker may spend logging in (its retries with backoff) before its
    Hello: added to the start timeout, so that the engine does not kill it while it retries."""
    if record.backend != common_pb2.BACKEND_MT5:
        return 0.0
    delays: int = sum(
        min(hc.broker_retry_initial_ms * 2**n, 30_000) for n in range(hc.broker_retry_attempts)
    )
    return delays / 1000.0
