"""The command line: bad configuration is refused with a message naming the field."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


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
