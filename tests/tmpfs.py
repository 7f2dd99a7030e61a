"""A small real filesystem for disk-full tests: a tmpfs the test mounts. Tests and CI run as
root; where mounting is not permitted the test is skipped, except under CI (``CI`` set), where
a disk-full test that cannot run is a failure, not a silent skip."""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


def mount_tmpfs(path: Path, size: str) -> None:
    """Mounts a tmpfs of ``size`` at ``path``; skips the test only when not allowed to."""
    path.mkdir(parents=True, exist_ok=True)
    try:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)],
            capture_output=True,
            text=True,
        )
    except FileNotFoundError:
        _cannot("no mount command")
        return
    if done.returncode != 0:
        message = done.stderr.lower()
        if any(s in message for s in ("permission denied", "only root", "not permitted")):
            _cannot(done.stderr.strip())
        raise AssertionError(f"mount -t tmpfs failed: {done.stderr.strip()}")


def _cannot(why: str) -> None:
    if os.environ.get("CI"):
        raise AssertionError(f"CI must be able to mount a tmpfs for disk-full tests: {why}")
    pytest.skip(f"cannot mount a tmpfs here: {why}")


def unmount(path: Path) -> None:
    if subprocess.run(["umount", str(path)], check=False).returncode != 0:
        subprocess.run(["umount", "-l", str(path)], check=False)


class Disk:
    """A mounted tmpfs that a test fills and frees."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.filler = path / "filler"

    def fill(self) -> Path:
        """Writes to the filler file until the filesystem says ENOSPC (again, when something
        freed a little since); returns the filler."""
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            for size in (1 << 20, 4096, 1):
                block = b"\0" * size
                while True:
                    try:
                        os.write(fd, block)
                    except OSError as e:
                        if e.errno != errno.ENOSPC:
                            raise
                        break
        finally:
            os.close(fd)
        return self.filler

    def free(self) -> None:
        self.filler.unlink()


@contextmanager
def tmpfs(path: Path, size: str = "64m") -> Iterator[Disk]:
    """A tmpfs of ``size`` mounted at ``path`` for the block, unmounted after."""
    mount_tmpfs(path, size)
    try:
        yield Disk(path)
    finally:
        unmount(path)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MB tmpfs, unmounted at the end."""
    with tmpfs(tmp_path / "small", "16m") as disk:
        yield disk.path


def fill(disk: Path) -> Path:
    """Fills ``disk`` to the last byte with one file; returns it (unlink it to free)."""
    return Disk(disk).fill()
