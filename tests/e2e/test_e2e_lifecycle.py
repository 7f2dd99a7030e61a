"""Instance lifecycle end to end: real server, real worker processes, real signals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest
from tests.support import create_sim, error_info

from mt5exec.testing import ServerProcess, process_gone, wait_gone
from mt5exec.v1 import common_pb2, instance_pb2, order_pb2, stream_pb2

READY = common_pb2.INSTANCE_STATE_READY
# Fast heartbeats so that a frozen worker is caught in two seconds; a live worker on a loaded
# machine may be a few hundred ms late without leaving READY.
FAST_HEALTH = {
    "heartbeat_interval_ms": 100,
    "missed_heartbeats_degraded": 5,
    "missed_heartbeats_restart": 20,
    "stable_after_sec": 0.5,
    # An EA's heartbeat is stale after 3 intervals.
    "health_check_interval_sec": 1,
}
STANDINS = Path(__file__).parents[1] / "standins"


def fast_server(data: Path, env: dict[str, str] | None = None) -> ServerProcess:
    templates = data / "templates"
    templates.mkdir(parents=True, exist_ok=True)
    (templates / "health_check.json").write_text(json.dumps(FAST_HEALTH))
    return ServerProcess(data, env=env).start()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = fast_server(tmp_path_factory.mktemp("lifecycle"))
    try:
        yield proc
        pids = [
            i.worker_pid
            for i in proc.instances.ListInstances(instance_pb2.ListInstancesRequest()).instances
            if i.worker_pid
        ]
        assert proc.terminate() == 0
        assert wait_gone(pids) == []
    finally:
        proc.kill()


def get(server: ServerProcess, instance_id: str) -> common_pb2.Instance:
    request = instance_pb2.GetInstanceRequest(instance_id=instance_id)
    return server.instances.GetInstance(request, timeout=5).instance


def until(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    """Polls ``condition`` until it holds; the deadline is only reached by a failing test."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.02)


def wait_ready(
    server: ServerProcess, instance_id: str, timeout: float = 60.0, not_pid: int = 0
) -> common_pb2.Instance:
    deadline = time.monotonic() + timeout
    while True:
        instance = get(server, instance_id)
        if instance.state == READY and instance.worker_pid not in (0, not_pid):
            return instance
        if time.monotonic() > deadline:
            raise AssertionError(f"{instance_id} not READY in {timeout}s: {instance}")
        time.sleep(0.01)


class EventLog:
    """Collects StreamInstanceEvents in a thread."""

    def __init__(self, server: ServerProcess, instance_ids: list[str] | None = None) -> None:
        self.call = server.streams.StreamInstanceEvents(
            stream_pb2.StreamInstanceEventsRequest(instance_ids=instance_ids or []), timeout=60
        )
        self.call.initial_metadata()
        self.events: list[common_pb2.InstanceEvent] = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            for message in self.call:
                self.events.extend(message.events)
        except grpc.RpcError:
            pass

    def of(self, instance_id: str) -> list[tuple[str, str]]:
        return [
            (common_pb2.InstanceState.Name(e.state), e.reason)
            for e in self.events
            if e.instance_id == instance_id
        ]

    def close(self) -> None:
        self.call.cancel()
        self.thread.join(5)

    def states(self, instance_id: str) -> list[str]:
        return [s for s, _ in self.of(instance_id)]

    def wait_ready(self, instance_id: str) -> list[str]:
        """The states ``instance_id`` went through, once the last one seen is READY."""
        until(
            lambda: self.states(instance_id)[-1:] == ["INSTANCE_STATE_READY"],
            f"the event of {instance_id} READY again",
        )
        return self.states(instance_id)


def test_kill9_worker_is_replaced_and_others_untouched(server: ServerProcess) -> None:
    # How fast (the target is 2 s) is benchmarks/instance_lifecycle.py's kill9_to_ready.
    a = create_sim(server, "crash-a", ["EURUSD"], tick_rate=5)
    b = create_sim(server, "crash-b", ["EURUSD"], tick_rate=5)
    events = EventLog(server)
    try:
        os.kill(a.worker_pid, signal.SIGKILL)
        again = wait_ready(server, "crash-a", not_pid=a.worker_pid)
        assert again.restarts == 1
        assert wait_gone([a.worker_pid]) == []
        states = events.wait_ready("crash-a")
        assert states[0] == "INSTANCE_STATE_STARTING"
        assert states[-1] == "INSTANCE_STATE_READY"
        assert events.of("crash-b") == [], "the other instance never left READY"
        still = get(server, "crash-b")
        assert (still.state, still.worker_pid, still.restarts) == (READY, b.worker_pid, 0)
    finally:
        events.close()


def test_positions_survive_a_worker_crash(server: ServerProcess) -> None:
    a = create_sim(server, "keeps", ["EURUSD"], tick_rate=20)
    order = server.orders.PlaceOrder(
        order_pb2.PlaceOrderRequest(
            instance_id="keeps",
            client_order_id="keep-1",
            symbol="EURUSD",
            side=common_pb2.SIDE_BUY,
            type=common_pb2.ORDER_TYPE_MARKET,
            volume=0.2,
        ),
        timeout=10,
    ).order
    os.kill(a.worker_pid, signal.SIGKILL)
    wait_ready(server, "keeps", not_pid=a.worker_pid)
    positions = server.orders.ListPositions(
        order_pb2.ListPositionsRequest(instance_id="keeps"), timeout=5
    ).positions
    assert [(p.position_id, p.volume, p.price_open) for p in positions] == [
        (order.position_id, pytest.approx(0.2), order.average_fill_price)
    ]


def test_frozen_worker_is_detected_and_replaced(server: ServerProcess) -> None:
    c = create_sim(server, "frozen", ["EURUSD"], tick_rate=5)
    events = EventLog(server, ["frozen"])
    try:
        os.kill(c.worker_pid, signal.SIGSTOP)
        again = wait_ready(server, "frozen", not_pid=c.worker_pid)
        assert again.restarts == 1
        assert wait_gone([c.worker_pid]) == [], "the frozen worker was killed"
        events.wait_ready("frozen")
        history = events.of("frozen")
        assert ("INSTANCE_STATE_DEGRADED", "HEARTBEAT_LATE") in history
        restarting = [r for s, r in history if s == "INSTANCE_STATE_STARTING"]
        assert restarting[0].startswith("RESTARTING: HEARTBEAT_LOST")
    finally:
        events.close()


def test_restart_stop_start(server: ServerProcess) -> None:
    first = create_sim(server, "cycle", ["GBPUSD"], tick_rate=5)
    restarted = server.instances.RestartInstance(
        instance_pb2.RestartInstanceRequest(instance_id="cycle"), timeout=30
    ).instance
    assert restarted.state == READY
    assert restarted.worker_pid != first.worker_pid
    assert wait_gone([first.worker_pid]) == []
    stopped = server.instances.StopInstance(
        instance_pb2.StopInstanceRequest(instance_id="cycle"), timeout=30
    ).instance
    assert stopped.state == common_pb2.INSTANCE_STATE_STOPPED
    assert wait_gone([restarted.worker_pid]) == []
    started = server.instances.StartInstance(
        instance_pb2.StartInstanceRequest(instance_id="cycle"), timeout=30
    ).instance
    assert started.state == READY
    assert not process_gone(started.worker_pid)


def test_stats(server: ServerProcess) -> None:
    instance = create_sim(server, "stats", ["EURUSD"], tick_rate=50)
    time.sleep(0.5)  # the uptime's lower bound below
    request = instance_pb2.GetInstanceStatsRequest(instance_id="stats")
    read: list[instance_pb2.InstanceStats] = []

    def fresh_heartbeat() -> bool:
        read.append(server.instances.GetInstanceStats(request, timeout=5).stats)
        return read[-1].heartbeat_age.ToTimedelta().total_seconds() < 0.5

    # The age starts again at each heartbeat (every 100 ms): a read soon sees a young one,
    # unless the age is not kept (it would only grow).
    until(fresh_heartbeat, "a heartbeat younger than 0.5 s")
    stats = read[-1]
    assert stats.worker_pid == instance.worker_pid
    assert stats.state == READY
    assert 5 * 2**20 < stats.rss_bytes < 200 * 2**20
    assert 0 <= stats.cpu_percent < 100
    assert stats.uptime.ToTimedelta().total_seconds() > 0.3
    assert stats.last_tick_time.seconds > 0
    system = server.instances.GetSystemStats(instance_pb2.GetSystemStatsRequest(), timeout=5)
    assert system.instances >= 1
    assert system.instances_ready >= 1
    assert system.users >= 1
    assert system.server_rss_bytes > 10 * 2**20


def test_owner_isolation(server: ServerProcess) -> None:
    for owner, instance_id in (("alice", "own-1"), ("bob", "own-2")):
        server.instances.CreateInstance(
            instance_pb2.CreateInstanceRequest(
                instance_id=instance_id,
                owner=owner,
                config=common_pb2.InstanceConfig(symbols=["EURUSD"], tick_rate=1),
            ),
            timeout=30,
        )
    root = server.data_dir / "instances"
    alice, bob = root / "alice" / "own-1", root / "bob" / "own-2"
    assert (alice / "instance.json").is_file()
    assert (bob / "instance.json").is_file()
    assert not set(alice.rglob("*")) & set(bob.rglob("*"))
    with pytest.raises(grpc.RpcError) as caught:
        server.instances.CreateInstance(
            instance_pb2.CreateInstanceRequest(instance_id="own-1", owner="bob"), timeout=30
        )
    assert caught.value.code() == grpc.StatusCode.ALREADY_EXISTS
    with pytest.raises(grpc.RpcError) as caught:
        server.instances.CreateInstance(
            instance_pb2.CreateInstanceRequest(instance_id="own-3", owner="../x"), timeout=30
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(caught.value).metadata["field"] == "owner"


def test_delete_removes_the_directory_and_keeps_logs(server: ServerProcess) -> None:
    instance = create_sim(server, "gone", ["EURUSD"], tick_rate=5)
    directory = server.data_dir / "instances" / "default" / "gone"
    logs = server.data_dir / "logs" / "default" / "gone"
    assert directory.is_dir()
    server.instances.DeleteInstance(
        instance_pb2.DeleteInstanceRequest(instance_id="gone"), timeout=30
    )
    assert wait_gone([instance.worker_pid]) == []
    assert not directory.exists()
    assert (logs / "worker.log").is_file()
    with pytest.raises(grpc.RpcError) as caught:
        get(server, "gone")
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


def test_deploy_expert_confirmation(server: ServerProcess) -> None:
    create_sim(server, "ea-host", ["EURUSD"], tick_rate=1)
    files = server.data_dir / "instances" / "default" / "ea-host" / "terminal" / "MQL5" / "Files"
    result: list[instance_pb2.DeployExpertResponse] = []

    def deploy(name: str, timeout_s: int) -> None:
        request = instance_pb2.DeployExpertRequest(
            instance_id="ea-host", expert_name=name, expert_file=b"MQL5 ex5 bytes"
        )
        request.timeout.FromSeconds(timeout_s)
        result.append(server.instances.DeployExpert(request, timeout=timeout_s + 30))

    thread = threading.Thread(target=deploy, args=("Signals1", 60))
    thread.start()
    # The EA starts once the deployment has cleared old signals and written the expert: a
    # READY written before that would be cleared with them.
    experts = files.parent / "Experts" / "mt5exec" / "Signals1.ex5"
    until(experts.exists, "the expert written")
    ea = subprocess.Popen(
        [
            sys.executable,
            str(STANDINS / "ea_signals.py"),
            "--files-dir",
            str(files),
            "--name",
            "Signals1",
            "--ready",
            "--heartbeat",
            "--beats",
            "20",
        ]
    )
    try:
        thread.join(120)
    finally:
        ea.kill()
        ea.wait()
    assert result[0].status == instance_pb2.DEPLOYMENT_STATUS_SUCCESS, result[0].details
    assert result[0].ready_seen and result[0].heartbeat_seen
    assert experts.read_bytes() == b"MQL5 ex5 bytes"

    deploy("Silent", 1)
    assert result[1].status == instance_pb2.DEPLOYMENT_STATUS_FAILED
    assert not result[1].ready_seen
    system = server.instances.GetSystemStats(instance_pb2.GetSystemStatsRequest(), timeout=5)
    assert system.experts_deployed >= 2

    evil = instance_pb2.DeployExpertRequest(
        instance_id="ea-host", expert_name="../evil", expert_file=b"x"
    )
    with pytest.raises(grpc.RpcError) as caught:
        server.instances.DeployExpert(evil, timeout=5)
    assert error_info(caught.value).metadata["field"] == "expert_name"


def ea_process(files: Path, name: str, *flags: str) -> subprocess.Popen[bytes]:
    script = str(STANDINS / "ea_signals.py")
    return subprocess.Popen(
        [sys.executable, script, "--files-dir", str(files), "--name", name, *flags]
    )


def wait_state(
    server: ServerProcess, instance_id: str, state: int, reason: str, timeout: float = 60.0
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        instance = get(server, instance_id)
        if instance.state == state and instance.state_reason == reason:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"not {state}/{reason} in {timeout}s: {instance}")
        time.sleep(0.05)


def test_a_stale_expert_degrades_its_instance(server: ServerProcess) -> None:
    create_sim(server, "ea-watch", ["EURUSD"], tick_rate=1)
    files = server.data_dir / "instances" / "default" / "ea-watch" / "terminal" / "MQL5" / "Files"
    request = instance_pb2.DeployExpertRequest(
        instance_id="ea-watch", expert_name="Beater", expert_file=b"ex5"
    )
    request.timeout.FromSeconds(60)
    replies: list[instance_pb2.DeployExpertResponse] = []
    thread = threading.Thread(
        target=lambda: replies.append(server.instances.DeployExpert(request, timeout=90))
    )
    thread.start()
    # Started once the deployment has cleared old signals (it would clear the EA's READY).
    until((files.parent / "Experts" / "mt5exec" / "Beater.ex5").exists, "the expert written")
    ea = ea_process(files, "Beater", "--ready", "--heartbeat", "--interval", "0.2", "--beats", "5")
    try:
        thread.join(120)
        assert replies[0].status == instance_pb2.DEPLOYMENT_STATUS_SUCCESS, replies[0].details
    finally:
        ea.wait(60)
    degraded = common_pb2.INSTANCE_STATE_DEGRADED
    wait_state(server, "ea-watch", degraded, "EA_HEARTBEAT_STALE: Beater")
    ea = ea_process(files, "Beater", "--heartbeat", "--interval", "0.2")
    try:
        wait_state(server, "ea-watch", READY, "RECOVERED")
    finally:
        ea.kill()
        ea.wait()


def test_worker_that_exits_at_start_fails_after_three_attempts(tmp_path: Path) -> None:
    server = fast_server(tmp_path / "data", env={"MT5EXEC_SIM_EXIT_AT_START": "1"})
    try:
        events = EventLog(server)
        with pytest.raises(grpc.RpcError) as caught:
            create_sim(server, "doomed")
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        assert error_info(caught.value).reason == "WORKER_FAILED"
        instance = get(server, "doomed")
        assert instance.state == common_pb2.INSTANCE_STATE_FAILED
        assert instance.state_reason.startswith("RESTART_LIMIT_REACHED")
        until(lambda: "INSTANCE_STATE_FAILED" in events.states("doomed"), "the FAILED event")
        history = events.of("doomed")
        events.close()
        spawns = [r for _, r in history if r == "SPAWNING"]
        assert len(spawns) == 3
        delays = [r.split(" in ")[1] for s, r in history if r.startswith("RESTARTING")]
        assert delays == ["100 ms)", "200 ms)"]
        assert history[-1][0] == "INSTANCE_STATE_FAILED", "the alert event"
    finally:
        server.kill()


def test_thirty_instances_at_once_and_no_process_left(tmp_path: Path) -> None:
    # Thirty interpreters start at once: on a loaded machine each may take longer than the
    # default 10 s (how fast is benchmarks/instance_lifecycle.py's thirty_concurrent_ready_s).
    env = {"MT5EXEC_ENGINE_WORKER_START_TIMEOUT_S": "120"}
    with ServerProcess(tmp_path / "data", env=env) as server:
        with ThreadPoolExecutor(30) as pool:
            created = list(
                pool.map(
                    lambda n: create_sim(server, f"many-{n}", tick_rate=2, timeout=180), range(30)
                )
            )
        assert all(i.state == READY for i in created)
        pids = [i.worker_pid for i in created]
        assert len(set(pids)) == 30
        with pytest.raises(grpc.RpcError) as caught:
            create_sim(server, "one-too-many")
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        with ThreadPoolExecutor(30) as pool:
            stopped = list(
                pool.map(
                    lambda n: (
                        server.instances.StopInstance(
                            instance_pb2.StopInstanceRequest(instance_id=f"many-{n}"), timeout=120
                        ).instance
                    ),
                    range(30),
                )
            )
        assert all(i.state == common_pb2.INSTANCE_STATE_STOPPED for i in stopped)
        assert wait_gone(pids) == []


@pytest.mark.parametrize("how", ["SIGTERM", "SIGKILL"])
def test_instances_come_back_after_a_server_restart(tmp_path: Path, how: str) -> None:
    data = tmp_path / "data"
    server = fast_server(data)
    try:
        up = create_sim(server, "survivor", ["EURUSD"], tick_rate=20)
        create_sim(server, "sleeper", ["EURUSD"], tick_rate=20)
        server.instances.StopInstance(
            instance_pb2.StopInstanceRequest(instance_id="sleeper"), timeout=30
        )
        order = server.orders.PlaceOrder(
            order_pb2.PlaceOrderRequest(
                instance_id="survivor",
                client_order_id="before-restart",
                symbol="EURUSD",
                side=common_pb2.SIDE_SELL,
                type=common_pb2.ORDER_TYPE_MARKET,
                volume=0.3,
            ),
            timeout=10,
        ).order
        if how == "SIGTERM":
            assert server.terminate() == 0
        else:
            server.kill()
        assert wait_gone([up.worker_pid]) == [], "no orphan keeps trading"
    finally:
        server.kill()

    server = fast_server(data)
    try:
        back = wait_ready(server, "survivor")
        assert back.created_time == up.created_time
        assert get(server, "sleeper").state == common_pb2.INSTANCE_STATE_STOPPED
        positions = server.orders.ListPositions(
            order_pb2.ListPositionsRequest(instance_id="survivor"), timeout=5
        ).positions
        assert [p.position_id for p in positions] == [order.position_id]
    finally:
        server.terminate()
        server.kill()


def test_frozen_orphan_is_killed_when_the_server_comes_back(tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = fast_server(data)
    try:
        frozen = create_sim(server, "ice", ["EURUSD"], tick_rate=5)
        os.kill(frozen.worker_pid, signal.SIGSTOP)
        server.kill()
        time.sleep(0.2)
        assert not process_gone(frozen.worker_pid), "a stopped process cannot see the EOF"
    finally:
        server.kill()
    server = fast_server(data)
    try:
        assert wait_gone([frozen.worker_pid]) == []
        wait_ready(server, "ice", not_pid=frozen.worker_pid)
    finally:
        server.terminate()
        server.kill()
        if not process_gone(frozen.worker_pid):
            os.killpg(frozen.worker_pid, signal.SIGKILL)


def test_corrupt_runtime_config_is_regenerated_and_old_logs_pruned(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with ServerProcess(data) as server:
        create_sim(server, "fixme", ["XAUUSD"], tick_rate=5)
    config = data / "instances" / "default" / "fixme" / "config" / "runtime.json"
    config.write_text('{"broken": ')
    old_log = data / "logs" / "default" / "long-gone" / "worker.log"
    old_log.parent.mkdir(parents=True)
    old_log.write_text("old\n")
    month_ago = time.time() - 40 * 86_400
    os.utime(old_log, (month_ago, month_ago))
    with ServerProcess(data) as server:
        back = wait_ready(server, "fixme")
        assert [s.name for s in back.symbols] == ["XAUUSD"]
        assert json.loads(config.read_text())["instance"]["trade_pairs"] == ["XAUUSD"]
        assert config.with_name("runtime.json.corrupt").is_file()
        until(lambda: not old_log.exists(), "the old log pruned")
