"""MT5 terminal bootstrap: per-instance copies, the startup ini, and launching with scrubbing.

Real files and real processes: the "terminal" is tests/standins/fake_terminal.py installed as
an executable terminal64.exe in a fake base install, and "wine" is tests/standins/fake_wine.py.
"""

from __future__ import annotations

import configparser
import json
import logging
import os
import signal
import stat
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mt5exec.mt5 import bootstrap
from mt5exec.mt5.bootstrap import (
    MARKER,
    STARTUP_INI,
    BootstrapError,
    ExpertStartup,
    TerminalProcess,
    launch_terminal,
    prepare_terminal,
    scrub_startup_ini,
    wine_path,
    write_startup_ini,
)

STANDINS = Path(__file__).resolve().parents[1] / "standins"
SECRET = "s3cr3t-Pa55word"


def make_base(root: Path) -> Path:
    """A fake MT5 install: what a terminal needs, and what it must not get."""
    base = root / "base"
    files = {
        "Config/servers.dat": b"servers",
        "Config/common.ini": b"common",
        "Config/accounts.dat": b"someone else's saved logins",
        "MQL5/Include/x.mqh": b"// include",
        "MQL5/Libraries/lib.ex5": b"lib",
        "MQL5/Experts/Examples/Sample.ex5": b"sample",
        "MQL5/Indicators/ind.ex5": b"ind",
        "MQL5/Scripts/s.ex5": b"script",
        "MQL5/Files/userfile": b"user data",
        "MQL5/Logs/20240101.log": b"mql log",
        "Bases/huge": b"\0" * 100_000,
        "logs/x.log": b"log",
        "Tester/cache.tst": b"tester",
        "Sounds/alert.wav": b"wav",
        "metaeditor64.exe": b"editor",
    }
    for rel, data in files.items():
        (base / rel).parent.mkdir(parents=True, exist_ok=True)
        (base / rel).write_bytes(data)
    install_fake_terminal(base)
    return base


def install_fake_terminal(base: Path) -> None:
    exe = base / "terminal64.exe"
    exe.write_text(
        f"#!{sys.executable}\n"
        "import runpy, sys\n"
        f"sys.argv[0] = {str(exe.name)!r}\n"
        f"runpy.run_path({str(STANDINS / 'fake_terminal.py')!r}, run_name='__main__')\n"
    )
    exe.chmod(0o755)


def files_under(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


EXPECTED = {
    "terminal64.exe",
    "Config/servers.dat",
    "Config/common.ini",
    "MQL5/Include/x.mqh",
    "MQL5/Libraries/lib.ex5",
    "MQL5/Experts/Examples/Sample.ex5",
    "MQL5/Indicators/ind.ex5",
    "MQL5/Scripts/s.ex5",
    MARKER,
}


# ---------------------------------------------------------------------------- prepare_terminal


def test_prepare_copies_only_what_a_terminal_needs(tmp_path: Path) -> None:
    base = make_base(tmp_path)
    terminal = prepare_terminal(base, tmp_path / "inst")

    assert terminal == tmp_path / "inst" / "terminal"
    assert files_under(terminal) == EXPECTED
    assert (terminal / "MQL5/Include/x.mqh").read_bytes() == b"// include"
    assert os.access(terminal / "terminal64.exe", os.X_OK)
    assert (terminal / "MQL5/Experts/mt5exec").is_dir()
    assert stat.S_IMODE(terminal.stat().st_mode) == 0o700
    marker = json.loads((terminal / MARKER).read_text())
    assert marker["source"] == str(base.resolve())
    assert len(marker["fingerprint"]) == 64


def test_prepare_is_idempotent_and_keeps_the_instances_data(tmp_path: Path) -> None:
    base = make_base(tmp_path)
    terminal = prepare_terminal(base, tmp_path / "inst")
    inodes = {rel: (terminal / rel).stat().st_ino for rel in EXPECTED}
    # What the terminal writes while it runs: its own settings, journal, files.
    (terminal / "Config/common.ini").write_bytes(b"the instance's own settings")
    (terminal / "logs").mkdir()
    (terminal / "logs/20250101.log").write_bytes(b"journal")
    (terminal / "MQL5/Files").mkdir()
    (terminal / "MQL5/Files/state.csv").write_bytes(b"ea state")
    (terminal / "Bases").mkdir()
    (terminal / "Bases/history.hcc").write_bytes(b"history")

    assert prepare_terminal(base, tmp_path / "inst") == terminal

    unchanged = EXPECTED - {"Config/common.ini"}
    assert {rel: (terminal / rel).stat().st_ino for rel in unchanged} == {
        rel: inodes[rel] for rel in unchanged
    }, "unchanged files were copied again"
    assert (terminal / "Config/common.ini").read_bytes() == b"the instance's own settings"
    assert (terminal / "logs/20250101.log").read_bytes() == b"journal"
    assert (terminal / "MQL5/Files/state.csv").read_bytes() == b"ea state"
    assert (terminal / "Bases/history.hcc").read_bytes() == b"history"


def test_prepare_repairs_a_changed_program_file(tmp_path: Path) -> None:
    base = make_base(tmp_path)
    terminal = prepare_terminal(base, tmp_path / "inst")
    (terminal / "MQL5/Include/x.mqh").write_bytes(b"corrupted")
    (terminal / "MQL5/Libraries/lib.ex5").unlink()

    prepare_terminal(base, tmp_path / "inst")

    assert (terminal / "MQL5/Include/x.mqh").read_bytes() == b"// include"
    assert (terminal / "MQL5/Libraries/lib.ex5").read_bytes() == b"lib"


def test_prepare_refreshes_from_a_changed_base(tmp_path: Path) -> None:
    base = make_base(tmp_path)
    terminal = prepare_terminal(base, tmp_path / "inst")
    before = json.loads((terminal / MARKER).read_text())["fingerprint"]
    (terminal / "Config/common.ini").write_bytes(b"the instance's own settings")

    (base / "MQL5/Include/x.mqh").write_bytes(b"// include, version 2")
    (base / "MQL5/Include/y.mqh").write_bytes(b"// new")
    (base / "Config/servers.dat").write_bytes(b"servers, version 2")
    (base / "MQL5/Scripts/s.ex5").unlink()
    prepare_terminal(base, tmp_path / "inst")

    assert (terminal / "MQL5/Include/x.mqh").read_bytes() == b"// include, version 2"
    assert (terminal / "MQL5/Include/y.mqh").read_bytes() == b"// new"
    assert (terminal / "Config/servers.dat").read_bytes() == b"servers, version 2"
    assert not (terminal / "MQL5/Scripts/s.ex5").exists(), "a file the base dropped remained"
    # common.ini did not change in the base: the instance's version stays.
    assert (terminal / "Config/common.ini").read_bytes() == b"the instance's own settings"
    assert json.loads((terminal / MARKER).read_text())["fingerprint"] != before


def test_prepare_refreshes_when_the_base_moves(tmp_path: Path) -> None:
    base = make_base(tmp_path)
    terminal = prepare_terminal(base, tmp_path / "inst")
    (terminal / "Config/servers.dat").write_bytes(b"stale")
    other = tmp_path / "other"
    base.rename(other)

    prepare_terminal(other, tmp_path / "inst")

    assert json.loads((terminal / MARKER).read_text())["source"] == str(other.resolve())
    assert (terminal / "Config/servers.dat").read_bytes() == b"servers"


def test_a_tampered_marker_never_deletes_outside_the_terminal(tmp_path: Path) -> None:
    base = make_base(tmp_path)
    terminal = prepare_terminal(base, tmp_path / "inst")
    victim = tmp_path / "inst" / "keep.txt"
    victim.write_text("not the terminal's")
    marker = json.loads((terminal / MARKER).read_text())
    marker["files"]["../keep.txt"] = [1, 1, "program"]
    (terminal / MARKER).write_text(json.dumps(marker))
    (terminal / "Config/servers.dat").write_bytes(b"stale")

    prepare_terminal(base, tmp_path / "inst")

    assert victim.read_text() == "not the terminal's"
    # A marker we cannot trust counts as none: everything is seeded again.
    assert (terminal / "Config/servers.dat").read_bytes() == b"servers"


def test_prepare_without_terminal64_exe_names_the_path(tmp_path: Path) -> None:
    base = make_base(tmp_path)
    (base / "terminal64.exe").unlink()
    with pytest.raises(BootstrapError, match=r"terminal64\.exe not found") as error:
        prepare_terminal(base, tmp_path / "inst")
    assert str(base / "terminal64.exe") in str(error.value)
    assert not (tmp_path / "inst").exists(), "a failed prepare left a half instance"
    with pytest.raises(BootstrapError, match="not a directory"):
        prepare_terminal(tmp_path / "missing", tmp_path / "inst")


def test_prepare_refuses_symlinks_out_of_the_base(tmp_path: Path) -> None:
    base = make_base(tmp_path)
    outside = tmp_path / "secret.txt"
    outside.write_text("not part of MT5")
    (base / "MQL5/Include/evil.mqh").symlink_to(outside)
    with pytest.raises(BootstrapError, match="points outside the base install"):
        prepare_terminal(base, tmp_path / "inst")

    (base / "MQL5/Include/evil.mqh").unlink()
    (base / "MQL5/Include/Shared").symlink_to(tmp_path, target_is_directory=True)
    with pytest.raises(BootstrapError, match="points outside the base install"):
        prepare_terminal(base, tmp_path / "inst")


def test_prepare_copies_the_target_of_symlinks_inside_the_base(tmp_path: Path) -> None:
    base = make_base(tmp_path)
    (base / "MQL5/Include/alias.mqh").symlink_to(base / "MQL5/Include/x.mqh")
    (base / "MQL5/Include/loop").symlink_to(base / "MQL5/Include", target_is_directory=True)

    terminal = prepare_terminal(base, tmp_path / "inst")

    alias = terminal / "MQL5/Include/alias.mqh"
    assert not alias.is_symlink() and alias.read_bytes() == b"// include"


def test_two_instances_share_no_file(tmp_path: Path) -> None:
    base = make_base(tmp_path)
    one = prepare_terminal(base, tmp_path / "one")
    two = prepare_terminal(base, tmp_path / "two")

    for rel in EXPECTED - {MARKER}:
        a, b = (one / rel).stat(), (two / rel).stat()
        assert (a.st_dev, a.st_ino) != (b.st_dev, b.st_ino), rel
        assert (base / rel).stat().st_ino not in (a.st_ino, b.st_ino), rel
    (one / "Config/servers.dat").write_bytes(b"changed by instance one")
    assert (two / "Config/servers.dat").read_bytes() == b"servers"
    assert (base / "Config/servers.dat").read_bytes() == b"servers"


def test_prepare_scrubs_a_password_a_crash_left_behind(tmp_path: Path) -> None:
    base = make_base(tmp_path)
    terminal = prepare_terminal(base, tmp_path / "inst")
    write_startup_ini(terminal, login=1, server="Broker-Demo", password=SECRET)
    (terminal / f".{STARTUP_INI}.crashed").write_text(f"Password={SECRET}")

    prepare_terminal(base, tmp_path / "inst")

    assert not any(SECRET.encode("utf-16-le") in p.read_bytes() for p in terminal.rglob("*.ini"))
    assert not (terminal / f".{STARTUP_INI}.crashed").exists()
    assert "Login=1" in read_ini_text(terminal / STARTUP_INI)
    assert scrub_startup_ini(terminal) is False


# --------------------------------------------------------------------------- write_startup_ini


def read_ini_text(path: Path) -> str:
    data = path.read_bytes()
    assert data[:2] == b"\xff\xfe", "no UTF-16 LE BOM"
    return data[2:].decode("utf-16-le")


def parse_ini(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(read_ini_text(path))
    return parser


def test_startup_ini_content_encoding_and_mode(tmp_path: Path) -> None:
    terminal = tmp_path / "terminal"
    terminal.mkdir()
    ini = write_startup_ini(
        terminal,
        login=12345678,
        server="Broker-Demo Server",
        password=SECRET,
        expert=ExpertStartup("mt5exec/MyEA", "EURUSD", "M15", parameters="my.set"),
    )

    assert ini == terminal / STARTUP_INI
    assert stat.S_IMODE(ini.stat().st_mode) == 0o600
    text = read_ini_text(ini)
    assert "\r\n" in text and "\n" not in text.replace("\r\n", "")
    parser = parse_ini(ini)
    assert parser.sections() == ["Common", "Experts", "StartUp"]
    assert dict(parser["Common"]) == {
        "Login": "12345678",
        "Server": "Broker-Demo Server",
        "Password": SECRET,
        "ProxyEnable": "0",
        "CertInstall": "0",
        "NewsEnable": "0",
    }
    assert dict(parser["Experts"]) == {
        "AllowLiveTrading": "1",
        "AllowDllImport": "0",
        "Enabled": "1",
        "Account": "0",
        "Profile": "0",
    }
    assert dict(parser["StartUp"]) == {
        "Expert": "mt5exec\\MyEA",
        "ExpertParameters": "my.set",
        "Symbol": "EURUSD",
        "Period": "M15",
    }
    assert [p.name for p in terminal.iterdir()] == [STARTUP_INI], "temporary file left"


def test_startup_ini_without_password_or_expert(tmp_path: Path) -> None:
    ini = write_startup_ini(tmp_path, login=7, server="S", password=None)
    parser = parse_ini(ini)
    assert parser.sections() == ["Common", "Experts"]
    assert "Password" not in parser["Common"]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"login": 0}, "login"),
        ({"login": True}, "login"),
        ({"server": ""}, "server"),
        ({"server": "A\r\nPassword=x"}, "server"),
        ({"password": f"{SECRET}\n[Experts]"}, "password"),
        ({"password": f" {SECRET}"}, "password"),
        ({"expert": ExpertStartup("..\\..\\x", "EURUSD")}, "expert"),
        ({"expert": ExpertStartup("C:\\x", "EURUSD")}, "expert"),
        ({"expert": ExpertStartup("x", "EUR\nUSD")}, "symbol"),
        ({"expert": ExpertStartup("x", "EURUSD", "H5")}, "period"),
    ],
)
def test_startup_ini_refuses_values_that_break_it(
    tmp_path: Path, kwargs: dict[str, object], match: str
) -> None:
    args: dict[str, object] = {"login": 1, "server": "S", "password": SECRET, **kwargs}
    with pytest.raises(ValueError, match=match) as error:
        write_startup_ini(tmp_path, **args)  # type: ignore[arg-type]
    assert SECRET not in str(error.value)
    assert not (tmp_path / STARTUP_INI).exists()


# ----------------------------------------------------------------------------- launch_terminal


@pytest.fixture
def instance(tmp_path: Path) -> tuple[Path, Path]:
    """A prepared terminal dir with a startup ini holding SECRET; (instance dir, terminal)."""
    terminal = prepare_terminal(make_base(tmp_path), tmp_path / "inst")
    write_startup_ini(
        terminal,
        login=12345678,
        server="Broker-Demo",
        password=SECRET,
        expert=ExpertStartup("mt5exec\\ExampleSignals", "EURUSD"),
    )
    return tmp_path / "inst", terminal


@pytest.fixture
def launched() -> Iterator[list[TerminalProcess]]:
    """Terminals started by a test; any still running at the end are killed."""
    procs: list[TerminalProcess] = []
    yield procs
    for proc in procs:
        proc.terminate(grace=1)


def wait_until(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def password_in_files(root: Path) -> list[str]:
    needles = [SECRET.encode(enc) for enc in ("utf-8", "utf-16-le")]
    return [
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and any(n in p.read_bytes() for n in needles)
    ]


def test_launch_direct_reads_the_password_then_scrubs_it(
    tmp_path: Path,
    instance: tuple[Path, Path],
    launched: list[TerminalProcess],
    caplog: pytest.LogCaptureFixture,
) -> None:
    instance_dir, terminal = instance
    ini = terminal / STARTUP_INI
    record = tmp_path / "record.json"
    env = {**os.environ, "FAKE_TERMINAL_RECORD": str(record)}
    caplog.set_level(logging.DEBUG, logger="mt5exec")

    proc = launch_terminal(terminal, ini, env=env, scrub_after=60)
    launched.append(proc)
    wait_until(record.exists)
    seen = json.loads(record.read_text())

    assert seen["argv"][1:] == ["/portable", f"/config:{ini}"]
    assert seen["cwd"] == str(terminal)
    assert f"Password={SECRET}" in seen["ini"], "the terminal did not get the password"
    assert proc.running and proc.pid == seen["pid"]
    assert os.getpgid(proc.pid) == os.getpgrp(), "not in the caller's process group"
    assert SECRET.encode() not in Path(f"/proc/{proc.pid}/cmdline").read_bytes()
    assert SECRET.encode() not in Path(f"/proc/{proc.pid}/environ").read_bytes()
    assert password_in_files(instance_dir) == [f"terminal/{STARTUP_INI}"]

    assert proc.scrub() is True
    assert password_in_files(instance_dir) == []
    assert stat.S_IMODE(ini.stat().st_mode) == 0o600
    parser = parse_ini(ini)
    assert parser["Common"]["Login"] == "12345678"
    assert parser["StartUp"]["Expert"] == "mt5exec\\ExampleSignals"
    assert proc.scrub() is False

    assert proc.terminate(grace=60) == 0
    assert not proc.running
    assert str(ini) in caplog.text, "the command line was not logged"
    assert SECRET not in caplog.text


def test_scrub_happens_by_itself_after_scrub_after(
    tmp_path: Path, instance: tuple[Path, Path], launched: list[TerminalProcess]
) -> None:
    instance_dir, terminal = instance
    env = {**os.environ, "FAKE_TERMINAL_RECORD": str(tmp_path / "record.json")}
    started = time.monotonic()
    proc = launch_terminal(terminal, terminal / STARTUP_INI, env=env, scrub_after=0.5)
    launched.append(proc)

    wait_until(lambda: not password_in_files(instance_dir))

    assert time.monotonic() - started >= 0.4
    assert proc.running, "the scrub must not depend on the terminal exiting"


def test_scrub_happens_when_the_terminal_exits(
    tmp_path: Path, instance: tuple[Path, Path], launched: list[TerminalProcess]
) -> None:
    instance_dir, terminal = instance
    record = tmp_path / "record.json"
    env = {**os.environ, "FAKE_TERMINAL_RECORD": str(record)}
    proc = launch_terminal(terminal, terminal / STARTUP_INI, env=env, scrub_after=600)
    launched.append(proc)
    wait_until(record.exists)
    assert password_in_files(instance_dir)

    os.kill(proc.pid, signal.SIGTERM)  # the terminal exits on its own account

    wait_until(lambda: not password_in_files(instance_dir))
    assert proc.wait(60) == 0


def test_terminate_returns_with_the_ini_scrubbed_while_the_watcher_scrubs_it(
    tmp_path: Path, instance: tuple[Path, Path], launched: list[TerminalProcess]
) -> None:
    """The terminal exits, its watcher thread starts the scrub, and terminate() is called
    meanwhile: it returns only once the password is gone (it used to return at once, the
    watcher having marked the scrub as done before doing it)."""
    instance_dir, terminal = instance
    record = tmp_path / "record.json"
    env = {**os.environ, "FAKE_TERMINAL_RECORD": str(record)}
    proc = launch_terminal(terminal, terminal / STARTUP_INI, env=env, scrub_after=600)
    launched.append(proc)
    wait_until(record.exists)
    seen_after_terminate: list[list[str]] = []

    def stop() -> None:
        proc.terminate(grace=60)
        seen_after_terminate.append(password_in_files(instance_dir))

    with bootstrap._INI_LOCK:  # the watcher's scrub cannot write the ini yet
        os.kill(proc.pid, signal.SIGTERM)
        wait_until(lambda: not proc.running)
        wait_until(lambda: proc._scrub_lock.locked() or proc._scrubbed)  # the watcher is in
        stopper = threading.Thread(target=stop)
        stopper.start()
        stopper.join(5)  # fixed code: blocked until the lock is let go; old: returned
    stopper.join(60)
    assert seen_after_terminate == [[]]


def test_launch_through_wine_uses_z_drive_paths(
    tmp_path: Path, instance: tuple[Path, Path], launched: list[TerminalProcess]
) -> None:
    instance_dir, terminal = instance
    ini = terminal / STARTUP_INI
    env = {
        **os.environ,
        "FAKE_TERMINAL_RECORD": str(tmp_path / "record.json"),
        "FAKE_WINE_RECORD": str(tmp_path / "wine.json"),
    }
    wine = [sys.executable, str(STANDINS / "fake_wine.py")]

    proc = launch_terminal(terminal, ini, wine=wine, env=env, scrub_after=60)
    launched.append(proc)
    wait_until((tmp_path / "record.json").exists)

    windows_ini = "Z:" + str(ini).replace("/", "\\")
    assert wine_path(ini) == windows_ini
    wine_argv = json.loads((tmp_path / "wine.json").read_text())
    assert wine_argv[1:] == [
        str(terminal / "terminal64.exe"),
        "/portable",
        f"/config:{windows_ini}",
    ]
    seen = json.loads((tmp_path / "record.json").read_text())
    assert seen["argv"][1:] == ["/portable", f"/config:{windows_ini}"]
    assert f"Password={SECRET}" in seen["ini"]
    assert SECRET.encode() not in Path(f"/proc/{proc.pid}/cmdline").read_bytes()

    assert proc.terminate(grace=60) == 0
    assert password_in_files(instance_dir) == []


def test_terminate_kills_a_terminal_that_ignores_sigterm(
    tmp_path: Path, instance: tuple[Path, Path], launched: list[TerminalProcess]
) -> None:
    _, terminal = instance
    record = tmp_path / "record.json"
    env = {**os.environ, "FAKE_TERMINAL_RECORD": str(record), "FAKE_TERMINAL_IGNORE_TERM": "1"}
    proc = launch_terminal(terminal, terminal / STARTUP_INI, env=env)
    launched.append(proc)
    wait_until(record.exists)

    started = time.monotonic()
    assert proc.terminate(grace=0.3) == -signal.SIGKILL
    assert time.monotonic() - started >= 0.3, "SIGTERM had its grace first"
    assert proc.wait(0) == -signal.SIGKILL


def test_launch_refuses_a_password_in_the_environment(instance: tuple[Path, Path]) -> None:
    _, terminal = instance
    env = {**os.environ, "MT5_PASSWORD": SECRET}
    with pytest.raises(BootstrapError, match="environment") as error:
        launch_terminal(terminal, terminal / STARTUP_INI, env=env)
    assert SECRET not in str(error.value)


def test_launch_needs_an_executable_terminal(tmp_path: Path, instance: tuple[Path, Path]) -> None:
    _, terminal = instance
    with pytest.raises(BootstrapError, match="ini"):
        launch_terminal(terminal, tmp_path / "missing.ini")
    (terminal / "terminal64.exe").chmod(0o644)
    with pytest.raises(BootstrapError, match="not executable"):
        launch_terminal(terminal, terminal / STARTUP_INI)
    (terminal / "terminal64.exe").unlink()
    with pytest.raises(BootstrapError, match="prepare_terminal"):
        launch_terminal(terminal, terminal / STARTUP_INI)
