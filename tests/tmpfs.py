"""A small real filesystem for disk-full tests: a tmpfs the test mounts (we run as root in
CI; the test is skipped only where mounting is not permitted)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


def mount_tmpfs(path: Path, size: str) -> None:
    """Mounts a tmpfs of ``size`` at ``path``; skips the test only when not allowed to."""
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        message = done.stderr.lower()
        if any(s in message for s in ("permission denied", "only root", "not permitted")):
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
        raise AssertionError(f"mount -t tmpfs failed: {done.stderr.strip()}")


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MB tmpfs, unmounted at the end."""
    mnt = tmp_path / "small"
    mount_tmpfs(mnt, "16m")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(disk: Path) -> Path:
    """Fills ``disk`` to the last byte with one file; returns it (unlink it to free)."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        block = b"\0" * 65536
        while True:
            try:
                os.write(fd, block)
            except OSError:
                if len(block) == 1:
                    break
                block = block[: len(block) // 2]
    finally:
        os.close(fd)
    return filler
