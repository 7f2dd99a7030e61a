"""The command line: bad configuration is refused with a message naming the field; the
version; a quiet Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tomllib
from pathlib import Path

from tests.support import create_sim

from mt5exec.testing import ServerProcess


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mt5exec", *args],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=cwd,
    )


def test_bad_listen_flag(tmp_path: Path) -> None:
    out = run("serve", "--listen", "nowhere", "--data-dir", str(tmp_path), cwd=tmp_path)
    assert out.returncode == 2
    assert "server.listen" in out.stderr


def test_bad_config_file_names_file_and_field(tmp_path: Path) -> None:
    config = tmp_path / "mt5exec.toml"
    config.write_text("[engine]\norder_timeout_s = -1\n")
    out = run("serve", "--config", str(config), cwd=tmp_path)
    assert out.returncode == 2
    assert "mt5exec.toml" in out.stderr and "engine.order_timeout_s" in out.stderr


def test_unknown_key_is_not_ignored(tmp_path: Path) -> None:
    config = tmp_path / "mt5exec.toml"
    config.write_text('[server]\nlisten_adress = "127.0.0.1:1"\n')
    out = run("serve", "--config", str(config), cwd=tmp_path)
    assert out.returncode == 2
    assert "listen_adress" in out.stderr


def test_version() -> None:
    out = run("--version", cwd=Path.cwd())
    assert out.returncode == 0, out.stderr
    with open(Path(__file__).parents[2] / "pyproject.toml", "rb") as f:
        version = tomllib.load(f)["project"]["version"]
    assert out.stdout.strip() == f"mt5exec {version}"


def test_ctrl_c_stops_quietly(tmp_path: Path) -> None:
    """Ctrl-C in a terminal sends SIGINT to the whole foreground process group: the server,
    and any child in its group. An orderly stop logs no traceback and no ERROR."""
    server = ServerProcess(tmp_path).start()
    try:
        create_sim(server, "ctrl-c", ["EURUSD"])
        os.killpg(server.pid, signal.SIGINT)
        assert server.process is not None
        assert server.process.wait(60) == 0
    finally:
        server.kill()
    log = (tmp_path / "server.log").read_text()
    assert "mt5exec stopped" in log
    assert "Traceback" not in log and "KeyboardInterrupt" not in log, log
    assert " ERROR " not in log, log
