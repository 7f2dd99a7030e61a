"""The README's grpcurl tour, followed top to bottom as a newcomer would: every command of its
``sh`` block, then the bad order, then the stop, against a fresh server with the real grpcurl.

The commands are read from README.md itself, so the tour cannot drift from what works."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest
from tests.e2e.test_grpcurl import _grpcurl
from tests.support import wait_for_price

from mt5exec.testing import ServerProcess

README = Path(__file__).resolve().parents[2] / "README.md"


def _tour() -> tuple[list[str], str, str]:
    """The tour's grpcurl lines, the bad order's command and the stop command."""
    text = README.read_text()
    section = text[text.index("## Try it with grpcurl") :]
    block = section[section.index("```sh\n") + 6 :]
    block = block[: block.index("```")]
    lines = [line for line in block.splitlines() if line.startswith("$G ")]
    bad = re.search(r"^\$ (\$G .*)$", section, re.MULTILINE)
    stop = re.search(r"`(\$G [^`]*StopInstance)`", section)
    assert bad and stop, "the README lost its bad-order or stop example"
    return lines, bad.group(1), stop.group(1)


def _argv(line: str, server: ServerProcess) -> list[str]:
    words = shlex.split(line, comments=True)
    out: list[str] = []
    for word in words:
        if word == "$G":
            out += [_grpcurl(), "-plaintext"]
        elif word == "$A":
            out.append(server.address)
        elif word == "$H":
            out.append(f"authorization: Bearer {server.token}")
        else:
            out.append(word)
    return out


def _run(argv: list[str], stream: bool) -> subprocess.CompletedProcess[str]:
    if stream:
        # A stream runs until Ctrl-C in the tour; here until grpcurl's own deadline.
        argv = [argv[0], "-max-time", "3", *argv[1:]]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120)


def test_the_readme_tour_works_top_to_bottom(tmp_path: Path) -> None:
    lines, bad, stop = _tour()
    assert any("CreateInstance" in line for line in lines)
    with ServerProcess(tmp_path) as server:
        for line in lines:
            argv = _argv(line, server)
            if "PlaceOrder" in line:
                # What a person's typing speed gives: the instance has its first price.
                wait_for_price(server, "demo", "EURUSD")
            stream = "StreamService/" in line
            out = _run(argv, stream)
            if stream:
                assert "DeadlineExceeded" in out.stderr or out.returncode == 0, out.stderr
                assert "PermissionDenied" not in out.stderr
                continue
            assert out.returncode == 0, f"{line}\n{out.stderr}"
        out = _run(_argv(bad, server), stream=False)
        assert out.returncode != 0
        assert "InvalidArgument" in out.stderr and "VOLUME_OFF_STEP" in out.stderr, out.stderr
        out = _run(_argv(stop, server), stream=False)
        assert out.returncode == 0, out.stderr


@pytest.mark.parametrize("name", ["CreateInstance", "PlaceOrder", "EngageKillSwitch"])
def test_the_tour_names_the_calls_a_newcomer_needs(name: str) -> None:
    lines, _, _ = _tour()
    assert any(name in line for line in lines)
