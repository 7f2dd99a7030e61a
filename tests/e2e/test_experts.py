"""Expert Advisor deployment and its READY/heartbeat confirmation.

The EA is tests/standins/ea_signals.py, a separate process that writes the signal files the
way mql5/Include/mt5exec/Signals.mqh does.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mt5exec.mt5 import experts
from mt5exec.mt5.bootstrap import write_startup_ini
from mt5exec.mt5.experts import (
    DeploymentResult,
    ExpertNameError,
    deploy_expert,
    expert_status,
    parse_heartbeat,
    parse_ready,
    signal_paths,
    startup_for,
    wait_for_signals,
)

ROOT = Path(__file__).resolve().parents[2]
EA = Path(__file__).resolve().parents[1] / "standins" / "ea_signals.py"
SIGNALS_MQH = ROOT / "mql5" / "Include" / "mt5exec" / "Signals.mqh"
EXAMPLE_EA = ROOT / "mql5" / "Experts" / "mt5exec" / "ExampleSignals.mq5"
NAME = "MyEA"
EX5 = b"EX5\0compiled expert"


@pytest.fixture
def terminal(tmp_path: Path) -> Path:
    path = tmp_path / "terminal"
    path.mkdir()
    return path


@pytest.fixture
def run_ea(terminal: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    """The stand-in EA processes a test starts (appends); all are killed at the end."""
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for proc in procs:
        proc.kill()
        proc.wait()


def ea(terminal: Path, *args: str) -> subprocess.Popen[bytes]:
    files = str(terminal / "MQL5" / "Files")
    return subprocess.Popen([sys.executable, str(EA), "--files-dir", files, "--name", NAME, *args])


def written(terminal: Path, *, ready: bool = False, heartbeat: bool = False) -> None:
    """Until the EA has written the signals named (however slowly its interpreter starts), so
    that a short wait after it has something to see."""
    deadline = time.monotonic() + 60
    while True:
        status = expert_status(terminal, NAME)
        if (status.ready or not ready) and (status.last_heartbeat is not None or not heartbeat):
            return
        assert time.monotonic() < deadline, f"the EA wrote no signals in 60 s: {status}"
        time.sleep(0.02)


def wait(
    terminal: Path,
    since: float,
    timeout: float,
    *,
    poll_interval: float = 0.1,
    heartbeat_fresh: float = 30.0,
    expected_login: int | None = None,
) -> DeploymentResult:
    return asyncio.run(
        wait_for_signals(
            terminal,
            NAME,
            timeout=timeout,
            since=since,
            poll_interval=poll_interval,
            heartbeat_fresh=heartbeat_fresh,
            expected_login=expected_login,
        )
    )


# -------------------------------------------------------------------------------------- deploy


def test_deploy_writes_the_expert_and_clears_stale_signals(terminal: Path) -> None:
    ready, heartbeat = signal_paths(terminal, NAME)
    ready.parent.mkdir(parents=True)
    ready.write_text("READY 1 2 EURUSD\r\n")
    heartbeat.write_text("HEARTBEAT 1 1\r\n")
    other = ready.parent / "Other.ready"
    other.write_text("READY 1 2 EURUSD\r\n")

    path = deploy_expert(terminal, NAME, EX5)

    assert path == terminal / "MQL5" / "Experts" / "mt5exec" / "MyEA.ex5"
    assert path.read_bytes() == EX5
    assert not ready.exists() and not heartbeat.exists()
    assert other.exists(), "another expert's signals were cleared"
    assert [p.name for p in path.parent.iterdir()] == ["MyEA.ex5"], "temporary file left"

    deploy_expert(terminal, NAME, b"version 2")
    assert path.read_bytes() == b"version 2"


@pytest.mark.parametrize(
    "name",
    [
        "",
        ".",
        "..",
        "../evil",
        "a/b",
        "a\\b",
        "x" * 65,
        "my ea",
        "ea\n",
        "trailing.",
        "MyEA.ex5",
        "CON",
        "nul.x",
        "C:evil",
    ],
)
def test_bad_expert_names_are_rejected(terminal: Path, name: str) -> None:
    with pytest.raises(ExpertNameError):
        deploy_expert(terminal, name, EX5)
    assert not (terminal / "MQL5").exists()


def test_good_expert_names(terminal: Path) -> None:
    for name in ("a", "x" * 64, "Robot_123", "my.ea-v2"):
        assert deploy_expert(terminal, name, EX5).name == f"{name}.ex5"


def test_deploy_needs_a_terminal_and_bytes(tmp_path: Path, terminal: Path) -> None:
    with pytest.raises(FileNotFoundError):
        deploy_expert(tmp_path / "missing", NAME, EX5)
    with pytest.raises(ValueError, match="empty"):
        deploy_expert(terminal, NAME, b"")


def test_startup_entry_for_a_deployed_expert(terminal: Path) -> None:
    ini = write_startup_ini(
        terminal, login=1, server="S", password=None, expert=startup_for(NAME, "EURUSD", "M5")
    )
    text = ini.read_bytes()[2:].decode("utf-16-le")
    assert "Expert=mt5exec\\MyEA\r\n" in text
    assert "Symbol=EURUSD\r\nPeriod=M5\r\n" in text


# ------------------------------------------------------------------------------------- confirm


def test_ready_and_heartbeat_confirm_success(
    terminal: Path, run_ea: list[subprocess.Popen[bytes]]
) -> None:
    since = time.time()
    deploy_expert(terminal, NAME, EX5)
    run_ea.append(
        ea(terminal, "--ready", "--heartbeat", "--login", "5551234", "--symbol", "XAUUSD")
    )

    started = time.monotonic()
    result = wait(terminal, since, timeout=120, expected_login=5551234)

    assert result.status == "SUCCESS", result.details
    assert time.monotonic() - started < 60, "did not return as soon as both were seen"
    assert result.ready_seen and result.heartbeat_seen
    assert result.account_login == 5551234 and result.symbol == "XAUUSD"
    assert result.ready_time is not None and result.ready_time >= int(since)
    assert result.last_heartbeat is not None and result.last_heartbeat >= int(since)
    assert result.heartbeat_seq is not None and result.heartbeat_seq >= 1
    assert "READY" in result.details and "XAUUSD" in result.details


def test_ready_without_heartbeat_is_partial(
    terminal: Path, run_ea: list[subprocess.Popen[bytes]]
) -> None:
    since = time.time()
    deploy_expert(terminal, NAME, EX5)
    run_ea.append(ea(terminal, "--ready"))
    assert run_ea[-1].wait(60) == 0  # READY written, and no heartbeat ever

    result = wait(terminal, since, timeout=0.5)

    assert result.status == "PARTIAL", result.details
    assert result.ready_seen and not result.heartbeat_seen
    assert result.last_heartbeat is None
    assert "no heartbeat" in result.details and "OnTimer" in result.details


def test_heartbeat_without_ready_is_partial(
    terminal: Path, run_ea: list[subprocess.Popen[bytes]]
) -> None:
    since = time.time()
    deploy_expert(terminal, NAME, EX5)
    run_ea.append(ea(terminal, "--heartbeat"))
    written(terminal, heartbeat=True)

    result = wait(terminal, since, timeout=0.5)

    assert result.status == "PARTIAL", result.details
    assert result.heartbeat_seen and not result.ready_seen
    assert "no READY" in result.details


def test_nothing_fails_within_the_timeout(terminal: Path) -> None:
    since = time.time()
    deploy_expert(terminal, NAME, EX5)

    started = time.monotonic()
    result = wait(terminal, since, timeout=0.5, poll_interval=0.05)

    elapsed = time.monotonic() - started
    assert result.status == "FAILED"
    assert not result.ready_seen and not result.heartbeat_seen
    assert 0.45 <= elapsed < 30, "it waited its timeout, and not much more"
    assert "no READY" in result.details and "no heartbeat" in result.details
    assert "0.5s" in result.details


def test_signals_from_before_since_do_not_count(
    terminal: Path, run_ea: list[subprocess.Popen[bytes]]
) -> None:
    # A previous run of the EA left its signals (not removed: no deploy_expert in between).
    stale = ea(terminal, "--ready", "--heartbeat", "--beats", "1", "--clock-offset", "-5")
    assert stale.wait(60) == 0
    since = time.time()

    result = wait(terminal, since, timeout=0.5)

    assert result.status == "FAILED", result.details
    assert "predates the deployment" in result.details

    # The new copy starts: now it counts.
    run_ea.append(ea(terminal, "--ready", "--heartbeat"))
    assert wait(terminal, since, timeout=60).status == "SUCCESS"


def test_an_old_heartbeat_is_not_fresh(terminal: Path) -> None:
    # The EA started after `since`, but its timer died 60 s ago.
    since = time.time() - 120
    frozen = ea(terminal, "--ready", "--heartbeat", "--beats", "1", "--clock-offset", "-60")
    assert frozen.wait(60) == 0

    result = wait(terminal, since, timeout=0.3, heartbeat_fresh=30)

    assert result.status == "PARTIAL", result.details
    assert result.ready_seen and not result.heartbeat_seen
    assert "older than 30s" in result.details


def test_a_ready_from_another_account_does_not_count(
    terminal: Path, run_ea: list[subprocess.Popen[bytes]]
) -> None:
    since = time.time()
    run_ea.append(ea(terminal, "--ready", "--heartbeat", "--login", "999"))
    written(terminal, ready=True, heartbeat=True)

    result = wait(terminal, since, timeout=0.5, expected_login=1000)

    assert result.status == "PARTIAL", result.details
    assert "account 999, expected 1000" in result.details


def test_waiting_does_not_block_the_event_loop(terminal: Path) -> None:
    # Another task of the same loop writes the signals after 20 turns of its own: the wait
    # only sees them if it lets the loop run that task meanwhile.
    since = time.time()
    ready, heartbeat = signal_paths(terminal, NAME)
    ready.parent.mkdir(parents=True)

    async def scenario() -> DeploymentResult:
        async def signals_later() -> None:
            for _ in range(20):
                await asyncio.sleep(0.01)
            ready.write_text(experts.format_ready(int(time.time()), 1, "EURUSD"), newline="")
            heartbeat.write_text(experts.format_heartbeat(int(time.time()), 1), newline="")

        task = asyncio.create_task(signals_later())
        result = await wait_for_signals(terminal, NAME, timeout=60, since=since)
        await task
        return result

    result = asyncio.run(scenario())

    # A wait that blocked the loop would have seen nothing until its timeout.
    assert result.status == "SUCCESS", result.details


# ------------------------------------------------------------------------------------ watchdog


def test_expert_status_for_a_watchdog(
    terminal: Path, run_ea: list[subprocess.Popen[bytes]]
) -> None:
    status = expert_status(terminal, NAME)
    assert not status.ready and status.heartbeat_age is None and not status.alive()

    run_ea.append(ea(terminal, "--ready", "--heartbeat", "--login", "42"))
    deadline = time.monotonic() + 60
    while not (status := expert_status(terminal, NAME)).alive(max_age=5):
        assert time.monotonic() < deadline, "EA never looked alive"
        time.sleep(0.05)
    assert status.ready and status.account_login == 42
    assert status.heartbeat_age is not None and status.heartbeat_age < 5

    run_ea[0].kill()
    run_ea[0].wait()
    later = expert_status(terminal, NAME, now=time.time() + 60)
    assert later.ready and later.heartbeat_age is not None and later.heartbeat_age > 50
    assert not later.alive(max_age=30)


# -------------------------------------------------------------------------------------- format


def test_partial_lines_are_not_signals() -> None:
    assert parse_ready("READY 1700000000 42 EURUSD\r\n") == experts.ReadySignal(
        1700000000, 42, "EURUSD"
    )
    assert parse_ready("READY 1700000000 42 US 30 Cash\r\n") == experts.ReadySignal(
        1700000000, 42, "US 30 Cash"
    )
    assert parse_heartbeat("HEARTBEAT 1700000000 7\r\n") == experts.HeartbeatSignal(1700000000, 7)
    for partial in ("", "READY 17000", "READY 1700000000 42 EURUSD", "READY 1700000000 42\r\n"):
        assert parse_ready(partial) is None, partial
    for partial in ("HEARTBEAT 1700000000 7", "HEARTBEAT 1700000000\r\n", "HEARTBEAT x 1\r\n"):
        assert parse_heartbeat(partial) is None, partial
    assert parse_ready(experts.format_ready(5, 6, "EURUSD")) == experts.ReadySignal(5, 6, "EURUSD")
    assert parse_heartbeat(experts.format_heartbeat(5, 6)) == experts.HeartbeatSignal(5, 6)


def test_signals_mqh_defines_the_same_format() -> None:
    source = SIGNALS_MQH.read_text()
    defines = dict(re.findall(r'#define\s+MT5EXEC_(\w+)\s+"([^"]*)"', source))
    # The C-style escapes of the .mqh, as the MQL5 compiler reads them.
    defines = {k: v.replace("\\r", "\r").replace("\\n", "\n") for k, v in defines.items()}
    assert defines == {
        "SIGNALS_DIR": experts.SIGNALS_DIR,
        "READY_SUFFIX": experts.READY_SUFFIX,
        "HEARTBEAT_SUFFIX": experts.HEARTBEAT_SUFFIX,
        "READY_TAG": experts.READY_TAG,
        "HEARTBEAT_TAG": experts.HEARTBEAT_TAG,
        "LINE_END": experts.LINE_END,
    }
    for function in (
        "bool Mt5execSignalReady()",
        "bool Mt5execHeartbeat()",
        "bool Mt5execSignalsInit(const int heartbeat_seconds)",
        "void Mt5execSignalsDeinit()",
    ):
        assert function in source
    assert "FILE_WRITE | FILE_TXT | FILE_ANSI" in source and "CP_UTF8" in source
    assert "TimeGMT()" in source and "TimeCurrent()" not in source.split("#ifndef")[1]

    example = EXAMPLE_EA.read_text()
    assert "#include <mt5exec\\Signals.mqh>" in example
    for call in ("Mt5execSignalsInit(", "Mt5execSignalReady()", "Mt5execHeartbeat()"):
        assert call in example
    assert re.search(r"void OnTimer\(\)\s*\{\s*Mt5execHeartbeat\(\);", example)
