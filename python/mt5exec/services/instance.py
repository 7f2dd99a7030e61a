"""InstanceService: create, inspect, start, stop, restart and delete terminal instances.

An instance lives in ``<data_dir>/instances/<owner>/<instance_id>/`` (its runtime config,
the simulated broker's state, a terminal's files), its logs in
``<data_dir>/logs/<owner>/<instance_id>/`` (kept after deletion), and its desired state in
``instance.json`` there, so that it comes back after a server restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import dataclasses
import logging
import re
import shutil
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path

import grpc

from mt5exec import registry, templates
from mt5exec.auth import principal as auth
from mt5exec.engine import InstanceSpec, validate_risk_limits
from mt5exec.errors import MT5ExecError, instance_not_found, invalid
from mt5exec.mt5 import experts
from mt5exec.reasons import Reason
from mt5exec.registry import InstanceRecord
from mt5exec.server.handlers import Context
from mt5exec.server.state import AppState
from mt5exec.services import (
    config_update,
    instance_input,
    instance_launch,
    risk_control,
    validation,
)
from mt5exec.storage.history_process import HistoryUnavailable
from mt5exec.v1 import common_pb2, instance_pb2
from mt5exec.vault import Credential, CredentialUnreadable, VaultError

log = logging.getLogger("mt5exec.instances")

# Methods the later issues build; they answer UNIMPLEMENTED naming the issue.
PLANNED: dict[str, int | str] = {}

_MAX_EXPERT_BYTES = 16 * 1024 * 1024
_STARTED = time.time()


# ListInstances' page tokens: the offset of the page (ASCII digits: str.isdigit takes "²").
_PAGE_TOKEN = re.compile(r"[0-9]{1,9}")


class InstanceService(risk_control.RiskControls):
    def __init__(self, state: AppState) -> None:
        self._state = state
        self._engine = state.engine
        self._creating: set[str] = set()
        # Ids whose instance is deleted but whose files are still being removed.
        self._deleting: set[str] = set()
        self._removals: set[asyncio.Future[None]] = set()
        self._records: dict[str, InstanceRecord] = {}
        # Seconds without an EA heartbeat before its instance is DEGRADED, per instance.
        self._ea_max_age: dict[str, float] = {}
        self._kill_scopes = risk_control.KillScopes.load(state.config.kill_switch_path)
        self._vault = state.vault
        # MT5 instances whose stored credential could not be read at start, and why: they
        # stay STOPPED until UpdateCredentials gives them a new one.
        self._no_credential: dict[str, str] = {}
        # The control-plane changes of records and of kill_switch.json, one at a time in the
        # order they came, each with its write (in a thread: the event loop never waits for
        # an fsync); what restricts is in force before its turn (risk_control).
        self._control = asyncio.Lock()
        # Instances whose record a control-plane change is writing: their daily counters wait
        # (a copy of the record taken then would lack the change, and land after it).
        self._writing: set[str] = set()
        # State in force that could not be saved (a full disk): saved again until it is.
        self._pending = registry.PendingSaves(self._saved_late, self._control)
        # Every write of a record goes through it, in order (each from a thread).
        self._record_writer = registry.RecordWriter()
        self._init_risk_controls()

    # -- paths and records --------------------------------------------------------------

    def _directory(self, owner: str, instance_id: str) -> Path:
        return self._state.config.instances_dir / owner / instance_id

    def _log_directory(self, owner: str, instance_id: str) -> Path:
        return self._state.config.logs_dir / owner / instance_id

    def _record_file(self, record: InstanceRecord) -> str:
        """The record's file, relative to the data dir (also its key among pending saves)."""
        return f"instances/{record.owner}/{record.instance_id}/{registry.RECORD_NAME}"

    async def _write(self, record: InstanceRecord) -> None:
        """Writes ``record`` as it is now, in a thread (raises OSError); a pending save of it
        is moot then. Control-plane changes call it under ``_control``."""
        instance_id = record.instance_id
        directory = self._directory(record.owner, instance_id)
        snapshot = self._record_writer.snapshot(directory, record)
        self._writing.add(instance_id)
        try:
            await registry.in_thread(lambda: self._record_writer.write(snapshot))
        finally:
            self._writing.discard(instance_id)
        self._pending.done(self._record_file(record))

    async def _commit(self, record: InstanceRecord, what: str, **changes: object) -> None:
        """Saves ``record`` with ``changes``, and makes them only once saved: when it cannot
        be written, UNAVAILABLE (``STATE_NOT_PERSISTED``) and nothing changed."""

        async def commit() -> None:
            async with self._control:
                candidate = copy.deepcopy(record)
                for name, value in changes.items():
                    setattr(candidate, name, value)
                try:
                    await self._write(candidate)
                except OSError as e:
                    raise registry.unsaved(what, self._record_file(record), e) from None
                for name, value in changes.items():
                    setattr(record, name, value)

        await self._settle(commit())

    async def _persist(
        self,
        file: str,
        take: registry.Take,
        instance_ids: Iterable[str],
        failed: OSError | None = None,
    ) -> OSError | None:
        """Saves state already in force (``failed``: the save just failed, do not try again
        now), under ``_control``. When that fails, returns the error: the save is retried in
        the background until it succeeds, and an instance event (reason
        ``STATE_NOT_PERSISTED: <file>``) tells the instances concerned."""
        try:
            if failed is not None:
                raise failed
            await registry.in_thread(take())
        except OSError as e:
            log.error("%s not saved (%s): in force all the same, saving is retried", file, e)
            ids = list(instance_ids)
            self._pending.add(file, take, ids)
            for instance_id in ids:
                with contextlib.suppress(MT5ExecError):
                    self._engine.announce(instance_id, f"STATE_NOT_PERSISTED: {file}")
            return e
        self._pending.done(file)
        return None

    async def _persist_record(
        self, record: InstanceRecord, failed: OSError | None = None
    ) -> OSError | None:
        """``_persist`` of an instance's record (as it is in memory when the write is taken:
        at once, and at each retry)."""
        instance_id = record.instance_id
        directory = self._directory(record.owner, instance_id)

        def take() -> Callable[[], object]:
            current = self._records.get(instance_id)
            if current is None:  # deleted since: nothing to save
                return lambda: None
            snapshot = self._record_writer.snapshot(directory, current)
            return lambda: self._record_writer.write(snapshot)

        return await self._persist(self._record_file(record), take, [instance_id], failed)

    async def _persist_record_now(self, record: InstanceRecord) -> None:
        async with self._control:
            await self._persist_record(record)

    def _saved_late(self, file: str, instance_ids: list[str]) -> None:
        for instance_id in instance_ids:
            with contextlib.suppress(MT5ExecError):
                self._engine.announce(instance_id, f"STATE_PERSISTED: {file}")

    def _record(self, instance_id: str) -> InstanceRecord:
        record = self._records.get(instance_id)
        if record is None:
            raise instance_not_found(instance_id)
        return record

    def owner_of(self, instance_id: str) -> str | None:
        """The owner of an instance, None when there is none of that id (auth's scoping)."""
        record = self._records.get(instance_id)
        return None if record is None else record.owner

    def instance_ids_of(self, owner: str) -> list[str]:
        """The ids of ``owner``'s instances."""
        return [i for i, r in self._records.items() if r.owner == owner]

    def _history(self, instance: common_pb2.Instance) -> None:
        if self._state.history is not None:
            self._state.history.record_instance(instance.SerializeToString())

    def _write_configs(
        self, record: InstanceRecord, *, regenerate_ok: bool
    ) -> tuple[templates.RuntimeConfig, Path, str]:
        directory = self._directory(record.owner, record.instance_id)
        return instance_launch.write_configs(
            self._state, record, directory, regenerate_ok=regenerate_ok
        )

    def _spec(
        self,
        record: InstanceRecord,
        *,
        regenerate_ok: bool,
        sequence_floors: dict[str, int],
        password: str = "",
    ) -> InstanceSpec:
        """Writes the instance's configs and builds its engine spec (``instance_launch``)."""
        runtime, worker_config, module = self._write_configs(record, regenerate_ok=regenerate_ok)
        hc = runtime.health_check
        self._ea_max_age[record.instance_id] = 3.0 * hc.health_check_interval_sec
        return instance_launch.engine_spec(
            record,
            hc,
            self._state.config.engine,
            (worker_config, module),
            directory=self._directory(record.owner, record.instance_id),
            log_directory=self._log_directory(record.owner, record.instance_id),
            password=password,
            kill_switch=record.kill_switch or self._kill_scopes.covers(record.owner),
            first_sequence_after=sequence_floors.get(record.instance_id, 0),
        )

    def _secret_files(self, record: InstanceRecord, password: str) -> tuple[tuple[str, str], ...]:
        directory = self._directory(record.owner, record.instance_id)
        return instance_launch.secret_files(record, directory, password)

    def restore(self) -> Awaitable[None]:
        """Registers every instance recorded on disk at once, starting those that were
        running; the result waits until they are up (or have given up)."""
        waits = []
        floors = registry.read_sequence_floors(self._state.config.instances_dir)
        records = list(registry.read_records(self._state.config.instances_dir))
        self._prune_credentials({record.instance_id for _, record in records})
        for directory, record in records:
            # Whatever one record holds, the others come up and the server starts.
            try:
                waits.append(self._restore(record, floors))
            except Exception as e:
                self._ea_max_age.pop(record.instance_id, None)
                self._no_credential.pop(record.instance_id, None)
                reason = e.message if isinstance(e, MT5ExecError) else repr(e)
                log.error(
                    "cannot restore instance %s (%s is left as it is): %s",
                    record.instance_id,
                    directory,
                    reason,
                )
        log.info("restoring %d instances", len(waits))
        for instance_id, reason in self._no_credential.items():
            with contextlib.suppress(MT5ExecError):
                self._engine.announce(instance_id, reason)
        return self._await_restored(waits)

    def _restore(
        self, record: InstanceRecord, floors: dict[str, int]
    ) -> Awaitable[common_pb2.Instance]:
        """Registers one recorded instance, started when it was running; raises when it
        cannot be (then it is not registered)."""
        password = self._stored_password(record)
        # An MT5 instance whose password cannot be read waits, STOPPED.
        start = record.desired_running and record.instance_id not in self._no_credential
        spec = self._spec(record, regenerate_ok=True, sequence_floors=floors, password=password)
        ready = self._engine.create_instance(spec, start=start)
        # Registered: from here on it is seen and can be deleted, whatever happens next.
        self._records[record.instance_id] = record
        if record.risk_day is not None:
            try:
                self._engine.restore_risk_day_state(record.instance_id, record.risk_day)
            except Exception as e:  # the record's counters were checked when it was read
                log.error(
                    "instance %s: its daily risk counters not restored: %s", record.instance_id, e
                )
                with contextlib.suppress(MT5ExecError):
                    self._engine.announce(record.instance_id, "RISK_DAY_NOT_RESTORED")
        return ready

    def _prune_credentials(self, instance_ids: set[str]) -> None:
        """Drops vault records of instances that no longer exist (a crash between storing a
        credential and recording its instance, or after deleting it)."""
        try:
            gone = self._vault.prune(instance_ids)
        except VaultError as e:
            log.error("credential vault: cannot look for credentials left over: %s", e)
            return
        if gone:
            log.info("credential vault: dropped the credentials of %s", ", ".join(gone))

    def _stored_password(self, record: InstanceRecord) -> str:
        """An MT5 instance's password from the vault at start ("" when there is none: the
        instance is then in ``_no_credential``); its login and server come along."""
        if record.backend != common_pb2.BACKEND_MT5:
            return ""
        try:
            credential = self._vault.get(record.owner, record.instance_id)
        except CredentialUnreadable as e:
            credential, reason = None, f"CREDENTIAL_UNREADABLE: {e}"
        except VaultError as e:
            credential, reason = None, f"CREDENTIAL_UNAVAILABLE: {e}"
        else:
            reason = "CREDENTIAL_MISSING: no password in the credential vault"
        if credential is None:
            self._no_credential[record.instance_id] = reason
            log.error(
                "instance %s stays STOPPED: %s (UpdateCredentials gives it a new password)",
                record.instance_id,
                reason,
            )
            return ""
        # The vault is written first: after a crash in between it has the newer values.
        record.config.login = credential.login
        record.config.server = credential.server
        return credential.password

    async def _await_restored(self, waits: list[Awaitable[common_pb2.Instance]]) -> None:
        for result in await asyncio.gather(*waits, return_exceptions=True):
            if isinstance(result, common_pb2.Instance):
                self._history(result)
            elif isinstance(result, MT5ExecError):
                log.error("a restored instance did not start: %s", result.message)

    async def watch_experts(self, period: float = 1.0) -> None:
        """The watchdog's EA check (seed 004): an instance whose deployed, once-READY expert
        stops its heartbeat is DEGRADED (reason EA_HEARTBEAT_STALE) until it beats again."""
        while True:
            await asyncio.sleep(period)
            checks = [
                (record, name)
                for record in list(self._records.values())
                if record.desired_running
                for name in record.experts
            ]
            if not checks:
                continue
            verdicts = await asyncio.to_thread(self._expert_verdicts, checks)
            for instance_id, healthy, reason in verdicts:
                with contextlib.suppress(MT5ExecError):
                    self._engine.report_health(instance_id, healthy, reason)

    def _expert_verdicts(
        self, checks: list[tuple[InstanceRecord, str]]
    ) -> list[tuple[str, bool, str]]:
        verdicts = []
        for record, name in checks:
            terminal_dir = self._directory(record.owner, record.instance_id) / "terminal"
            status = experts.expert_status(terminal_dir, name)
            if not status.ready:
                continue  # never confirmed (or removed): nothing to watch
            max_age = self._ea_max_age.get(record.instance_id, 30.0)
            reason = f"EA_HEARTBEAT_STALE: {name}"
            verdicts.append((record.instance_id, status.alive(max_age=max_age), reason))
        return verdicts

    # -- RPCs -----------------------------------------------------------------------------

    async def CreateInstance(
        self, request: instance_pb2.CreateInstanceRequest, context: Context
    ) -> instance_pb2.CreateInstanceResponse:
        instance_id = validation.instance_id(request.instance_id, generate=True)
        owner = validation.owner(request.owner)
        backend = request.backend or common_pb2.BACKEND_SIM
        if backend == common_pb2.BACKEND_MT5:
            if not request.config.login:
                raise invalid(
                    "config.login", Reason.FIELD_REQUIRED, "config.login: required for MT5"
                )
            if not request.config.server:
                raise invalid(
                    "config.server", Reason.FIELD_REQUIRED, "config.server: required for MT5"
                )
            instance_input.password("password", request.password)
        elif backend == common_pb2.BACKEND_SIM:
            instance_input.check_symbols(list(request.config.symbols))
        else:
            raise invalid("backend", Reason.BACKEND_INVALID, f"backend: unknown value {backend}")
        if instance_id in self._records or instance_id in self._creating:
            raise MT5ExecError(
                grpc.StatusCode.ALREADY_EXISTS,
                Reason.INSTANCE_EXISTS,
                f"instance_id: '{instance_id}' already exists",
                "instance_id",
            )
        if instance_id in self._deleting:
            raise MT5ExecError(
                grpc.StatusCode.ABORTED,
                Reason.INSTANCE_BEING_DELETED,
                f"instance_id: '{instance_id}' is being deleted; create it again once "
                "DeleteInstance has answered",
                "instance_id",
            )
        limit = self._state.config.server.max_instances
        if len(self._records) + len(self._creating) >= limit:
            raise MT5ExecError(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                Reason.MAX_INSTANCES,
                f"this node holds at most {limit} instances (server.max_instances)",
            )
        if request.config.HasField("risk"):
            validate_risk_limits(request.config.risk)
        if request.config.trading_state:
            config_update.trading_state("config.trading_state", request.config.trading_state)
        config = common_pb2.InstanceConfig()
        config.CopyFrom(request.config)
        record = InstanceRecord(
            instance_id=instance_id,
            owner=owner,
            backend=backend,
            config=config,
            desired_running=True,
            created_unix_ns=time.time_ns(),
        )
        ready = await self._register(record, request.password)
        # A worker that does not become READY answers its error (e.g. UNAVAILABLE
        # WORKER_FAILED), and the instance stays, FAILED, for the client to see and delete.
        instance = await ready
        self._history(instance)
        return instance_pb2.CreateInstanceResponse(instance=instance)

    async def _register(
        self, record: InstanceRecord, password: str
    ) -> Awaitable[common_pb2.Instance]:
        """Writes a new instance's credential (MT5), files and record and registers it with
        the engine, all or nothing: when any step fails, what the earlier ones made is
        removed (no credential, no record, no directory, no engine instance) and the id is
        free again."""
        instance_id = record.instance_id
        directory = self._directory(record.owner, instance_id)
        existed = directory.exists()
        self._creating.add(instance_id)
        stored = False
        try:
            if record.backend == common_pb2.BACKEND_MT5:
                credential = Credential(record.config.login, password, record.config.server)
                try:
                    stored = True  # also when the put fails: it may have been written
                    await asyncio.to_thread(self._vault.put, record.owner, instance_id, credential)
                except VaultError as e:
                    raise instance_input.vault_unavailable(
                        f"the new instance {instance_id}", e
                    ) from None
            spec = self._spec(
                record,
                regenerate_ok=False,
                sequence_floors=registry.read_sequence_floors(self._state.config.instances_dir),
                password=password,
            )
            await self._write(record)
            # The kill switches as they are now, not before the write: one engaged meanwhile
            # reached only the instances registered then (and one released meanwhile
            # released those), and nothing awaits from here to the registration.
            spec = dataclasses.replace(
                spec, kill_switch=record.kill_switch or self._kill_scopes.covers(record.owner)
            )
            # Registers at once (or raises, registering nothing); awaiting waits for READY.
            ready = self._engine.create_instance(spec)
            self._records[instance_id] = record
            return ready
        except BaseException as e:
            self._ea_max_age.pop(instance_id, None)
            if stored:
                try:
                    self._vault.delete(instance_id)
                except VaultError as error:  # dropped at the next start (not recorded)
                    log.error(
                        "%s: cannot remove the credential of a failed creation: %s",
                        instance_id,
                        error,
                    )
            if existed:
                # Not ours (left for an operator): only the record goes, so that nothing
                # comes back at the next start.
                (directory / registry.RECORD_NAME).unlink(missing_ok=True)
            else:
                shutil.rmtree(directory, ignore_errors=True)
            if (directory / registry.RECORD_NAME).exists():
                log.error("%s: cannot remove the record of a failed creation", directory)
            if isinstance(e, OSError):
                raise registry.unsaved(
                    f"the new instance {instance_id}", f"instances/{record.owner}/{instance_id}", e
                ) from None
            raise
        finally:
            self._creating.discard(instance_id)

    async def GetInstance(
        self, request: instance_pb2.GetInstanceRequest, context: Context
    ) -> instance_pb2.GetInstanceResponse:
        instance_id = validation.instance_id(request.instance_id)
        return instance_pb2.GetInstanceResponse(instance=self._engine.get_instance(instance_id))

    async def ListInstances(
        self, request: instance_pb2.ListInstancesRequest, context: Context
    ) -> instance_pb2.ListInstancesResponse:
        # A principal other than an admin lists its owner's instances only.
        visible = auth.current().owner
        instances = [
            i
            for i in self._engine.list_instances()
            if (not request.owner or i.owner == request.owner)
            and (visible is None or i.owner == visible)
            and (not request.states or i.state in request.states)
        ]
        start = 0
        if request.page_token:
            if not _PAGE_TOKEN.fullmatch(request.page_token):
                raise invalid("page_token", Reason.PAGE_TOKEN_INVALID, "page_token: not from us")
            start = int(request.page_token)
        size = request.page_size or 100
        page = instances[start : start + size]
        more = start + size < len(instances)
        return instance_pb2.ListInstancesResponse(
            instances=page, next_page_token=str(start + size) if more else ""
        )

    async def StopInstance(
        self, request: instance_pb2.StopInstanceRequest, context: Context
    ) -> instance_pb2.StopInstanceResponse:
        instance_id = validation.instance_id(request.instance_id)
        record = self._record(instance_id)
        grace = None
        if request.HasField("grace"):
            grace = validation.seconds("grace", request.grace, maximum=600.0)
        await self._commit(record, "the stop", desired_running=False)
        instance = await self._engine.stop_instance(instance_id, grace)
        self._history(instance)
        return instance_pb2.StopInstanceResponse(instance=instance)

    async def _run(self, instance_id: str, restart: bool) -> common_pb2.Instance:
        """Marks the instance wanted up, then starts (or restarts) its worker."""
        instance_id = validation.instance_id(instance_id)
        record = self._record(instance_id)
        reason = self._no_credential.get(instance_id)
        if reason is not None:
            code, _, message = reason.partition(": ")
            raise MT5ExecError(
                grpc.StatusCode.FAILED_PRECONDITION,
                code,
                f"instance {instance_id}: {message}; UpdateCredentials gives it a password",
                "instance_id",
            )
        await self._commit(record, "the start", desired_running=True)
        if restart:
            instance = await self._engine.restart_instance(instance_id)
        else:
            instance = await self._engine.start_instance(instance_id)
        self._history(instance)
        return instance

    async def StartInstance(
        self, request: instance_pb2.StartInstanceRequest, context: Context
    ) -> instance_pb2.StartInstanceResponse:
        instance = await self._run(request.instance_id, restart=False)
        return instance_pb2.StartInstanceResponse(instance=instance)

    async def RestartInstance(
        self, request: instance_pb2.RestartInstanceRequest, context: Context
    ) -> instance_pb2.RestartInstanceResponse:
        instance = await self._run(request.instance_id, restart=True)
        return instance_pb2.RestartInstanceResponse(instance=instance)

    async def DeleteInstance(
        self, request: instance_pb2.DeleteInstanceRequest, context: Context
    ) -> instance_pb2.DeleteInstanceResponse:
        instance_id = validation.instance_id(request.instance_id)
        record = self._record(instance_id)
        await self._commit(record, "the deletion", desired_running=False)
        instance = await self._engine.stop_instance(instance_id)
        self._history(instance)
        await self._history_caught_up(instance_id)
        # An instance created again under this id numbers its events after these.
        try:
            registry.write_sequence_floor(
                self._state.config.instances_dir,
                instance_id,
                self._engine.last_sequence(instance_id),
            )
        except OSError as e:
            # Stopped, not deleted: DeleteInstance again once the disk takes it.
            raise registry.unsaved(
                f"the deletion of {instance_id} (it is stopped)",
                f"instances/{registry.SEQUENCES_NAME}",
                e,
            ) from None
        self._engine.remove_instance(instance_id)
        if self._state.copy_relations is not None:
            await self._state.copy_relations.instance_deleted(instance_id)
        # The id stays taken until its credential and files are gone (a CreateInstance of it
        # meanwhile would have them removed under it), also when this call is cancelled.
        self._deleting.add(instance_id)
        self._record_writer.retire(self._directory(record.owner, instance_id))  # no waiting
        del self._records[instance_id]
        self._no_credential.pop(instance_id, None)
        self._ea_max_age.pop(instance_id, None)
        removal = asyncio.ensure_future(self._remove(record))
        self._removals.add(removal)
        removal.add_done_callback(self._removals.discard)
        await asyncio.shield(removal)
        return instance_pb2.DeleteInstanceResponse()

    async def _remove(self, record: InstanceRecord) -> None:
        """Removes a deleted instance's credential (best effort: the next start drops one
        left over) and directory, then frees its id."""
        instance_id = record.instance_id
        try:
            if record.backend == common_pb2.BACKEND_MT5:
                try:
                    await asyncio.to_thread(self._vault.delete, instance_id)
                except VaultError as e:
                    log.error(
                        "%s: deleted, but not its credential in the vault (dropped at the "
                        "next start): %s",
                        instance_id,
                        e,
                    )
            directory = self._directory(record.owner, instance_id)
            # A write of its record under way (the daily counters') ends first.
            await asyncio.to_thread(self._record_writer.settle, directory)
            await asyncio.to_thread(_remove_directory, directory)
        finally:
            self._deleting.discard(instance_id)
        log.info(
            "deleted instance %s (logs kept in %s)",
            instance_id,
            self._log_directory(record.owner, instance_id),
        )

    async def _history_caught_up(self, instance_id: str) -> None:
        """Waits until the history has written everything in the (stopped) instance's
        execution log, which goes with its directory. When it cannot (its disk is full, its
        process is gone), UNAVAILABLE (``HISTORY_NOT_WRITTEN``): the instance stays, stopped,
        with its log, which the history reads on (also after a restart)."""
        if self._state.history is None:
            return
        try:
            await self._state.history.flush()
        except HistoryUnavailable as e:
            raise MT5ExecError(
                grpc.StatusCode.UNAVAILABLE,
                Reason.HISTORY_NOT_WRITTEN,
                f"instance {instance_id} is stopped, not deleted: the history has not written "
                f"all its executions yet ({e}); DeleteInstance again once it has",
            ) from None

    async def UpdateCredentials(
        self, request: instance_pb2.UpdateCredentialsRequest, context: Context
    ) -> instance_pb2.UpdateCredentialsResponse:
        """Stores the new credential in the vault (that is the change, and what the next
        server start uses), then the worker's config a new login or server, then the engine
        the password for the worker's next start and the record the login and server. When
        the worker's config cannot be written, UNAVAILABLE (``STATE_NOT_PERSISTED``): until
        it is, the worker starts with the login, server and password it had."""
        instance_id = validation.instance_id(request.instance_id)
        record = self._record(instance_id)
        if record.backend != common_pb2.BACKEND_MT5:
            raise MT5ExecError(
                grpc.StatusCode.FAILED_PRECONDITION,
                Reason.BACKEND_NOT_MT5,
                f"instance {instance_id}: only MT5 instances have credentials",
                "instance_id",
            )
        password = instance_input.password("password", request.password)
        login = record.config.login
        if request.HasField("login"):
            login = validation.integer("login", request.login, minimum=1, maximum=2**63 - 1)
        server = record.config.server
        if request.HasField("server"):
            server = validation.text(
                "server", request.server, max_length=128, pattern=instance_input.MT5_SERVER
            )
        credential = Credential(login, password, server)
        try:
            await asyncio.to_thread(self._vault.put, record.owner, instance_id, credential)
        except VaultError as e:
            raise instance_input.vault_unavailable(f"instance {instance_id}", e) from None
        if (login, server) != (record.config.login, record.config.server):
            candidate = copy.deepcopy(record)
            candidate.config.login = login
            candidate.config.server = server
            try:
                self._write_configs(candidate, regenerate_ok=True)
            except OSError as e:
                raise registry.unsaved(
                    "its new login and server: until it is, the worker starts with its "
                    "previous login, server and password (UpdateCredentials again)",
                    f"instances/{record.owner}/{instance_id}/config/worker.json",
                    e,
                    changed=f"the credential vault has the new credential of {instance_id} "
                    "(the next server start uses it)",
                ) from None
            record.config.login = login
            record.config.server = server
            # The vault has them already (and wins at the next start): saved later if need be.
            await self._settle(self._persist_record_now(record))
        self._no_credential.pop(instance_id, None)
        self._engine.set_secret_files(instance_id, self._secret_files(record, password))
        log.info(
            "instance %s: credentials updated (login %d, server %s)", instance_id, login, server
        )
        return instance_pb2.UpdateCredentialsResponse(
            instance=self._engine.get_instance(instance_id)
        )

    async def GetInstanceStats(
        self, request: instance_pb2.GetInstanceStatsRequest, context: Context
    ) -> instance_pb2.GetInstanceStatsResponse:
        instance_id = validation.instance_id(request.instance_id)
        stats = self._engine.instance_stats(instance_id)
        return instance_pb2.GetInstanceStatsResponse(
            stats=instance_pb2.InstanceStats.FromString(stats)
        )

    async def GetSystemStats(
        self, request: instance_pb2.GetSystemStatsRequest, context: Context
    ) -> instance_pb2.GetSystemStatsResponse:
        instances = self._engine.list_instances()
        response = instance_pb2.GetSystemStatsResponse(
            users=len({i.owner for i in instances}),
            instances=len(instances),
            instances_ready=sum(i.state == common_pb2.INSTANCE_STATE_READY for i in instances),
            experts_deployed=sum(len(r.experts) for r in self._records.values()),
            server_rss_bytes=_own_rss(),
        )
        response.uptime.FromSeconds(int(time.time() - _STARTED))
        return response

    async def DeployExpert(
        self, request: instance_pb2.DeployExpertRequest, context: Context
    ) -> instance_pb2.DeployExpertResponse:
        instance_id = validation.instance_id(request.instance_id)
        record = self._record(instance_id)
        try:
            name = experts.validate_expert_name(request.expert_name)
        except experts.ExpertNameError as e:
            raise invalid("expert_name", Reason.EXPERT_NAME_INVALID, f"expert_name: {e}") from None
        if not request.expert_file:
            raise invalid(
                "expert_file", Reason.FIELD_REQUIRED, "expert_file: the compiled EA (.ex5)"
            )
        if len(request.expert_file) > _MAX_EXPERT_BYTES:
            raise invalid("expert_file", Reason.EXPERT_TOO_LARGE, "expert_file: at most 16 MiB")
        timeout = 60.0
        if request.HasField("timeout"):
            timeout = validation.seconds("timeout", request.timeout, maximum=600.0)
        # A sim instance has no terminal; its directory still takes the terminal's layout so
        # that an EA's signals are found in the same place for every backend.
        terminal_dir = self._directory(record.owner, instance_id) / "terminal"
        since = time.time()
        try:
            terminal_dir.mkdir(exist_ok=True)
            await asyncio.to_thread(experts.deploy_expert, terminal_dir, name, request.expert_file)
        except OSError as e:
            raise registry.unsaved(
                f"the expert {name}", f"instances/{record.owner}/{instance_id}/terminal", e
            ) from None
        if name not in record.experts:
            await self._commit(record, "the deployment", experts=[*record.experts, name])
        result = await experts.wait_for_signals(terminal_dir, name, timeout=timeout, since=since)
        status = {
            "SUCCESS": instance_pb2.DEPLOYMENT_STATUS_SUCCESS,
            "PARTIAL": instance_pb2.DEPLOYMENT_STATUS_PARTIAL,
            "FAILED": instance_pb2.DEPLOYMENT_STATUS_FAILED,
        }[result.status]
        return instance_pb2.DeployExpertResponse(
            status=status,
            ready_seen=result.ready_seen,
            heartbeat_seen=result.heartbeat_seen,
            details=result.details,
        )


def _remove_directory(directory: Path) -> None:
    """A deleted instance's directory, its record first: a crash midway leaves nothing that
    comes back at the next start."""
    with contextlib.suppress(OSError):
        (directory / registry.RECORD_NAME).unlink()
    shutil.rmtree(directory, ignore_errors=True)


def _own_rss() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0
