"""A real PostgreSQL server of the tests' own: ``initdb`` and ``pg_ctl`` in a temporary
directory, listening on a unix socket there only, trust authentication. As root it runs as the
``postgres`` user (initdb refuses root). Without PostgreSQL installed the tests that need it are
skipped, except under CI (``CI`` set), where they fail: ``make setup`` installs it."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest


def _bin_dir() -> Path | None:
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _as_user() -> list[str]:
    """The command prefix that drops root (nothing when not root)."""
    if os.geteuid() != 0:
        return []
    return ["runuser", "-u", _user().pw_name, "--"]


def _user() -> pwd.struct_passwd:
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise RuntimeError("no unprivileged user to run PostgreSQL as")


class Postgres:
    """A running server; ``database()`` makes a fresh database and returns its DSN."""

    def __init__(self, bin_dir: Path, root: Path) -> None:
        self.bin_dir = bin_dir
        self.root = root
        self.data = root / "data"
        self._count = 0

    def dsn(self, dbname: str = "postgres") -> str:
        return f"host={self.root} port=5432 user=postgres dbname={dbname}"

    def run(self, *args: str) -> None:
        subprocess.run(
            [*_as_user(), *args], check=True, capture_output=True, timeout=120, cwd=self.root
        )

    def start(self) -> None:
        self.run(
            str(self.bin_dir / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust"
        )
        options = f"-c listen_addresses='' -k {self.root} -c fsync=off -p 5432"
        self.run(
            str(self.bin_dir / "pg_ctl"),
            "start",
            "-w",
            "-t",
            "60",
            "-D",
            str(self.data),
            "-l",
            str(self.root / "server.log"),
            "-o",
            options,
        )

    def stop(self) -> None:
        self.run(str(self.bin_dir / "pg_ctl"), "stop", "-m", "fast", "-w", "-D", str(self.data))

    def database(self) -> str:
        self._count += 1
        name = f"t{self._count}"
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.dsn(name)

    def checkpoint(self) -> None:
        """Everything written so far is in the data directory's files."""
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute("CHECKPOINT")


@contextlib.contextmanager
def postgres_server() -> Iterator[Postgres]:
    bin_dir = _bin_dir()
    if bin_dir is None:
        message = "PostgreSQL is not installed (make setup installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    root = Path(tempfile.mkdtemp(prefix="mt5exec-pg-"))
    if os.geteuid() == 0:
        user = _user()
        os.chown(root, user.pw_uid, user.pw_gid)
    server = Postgres(bin_dir, root)
    try:
        server.start()
        yield server
    finally:
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            server.stop()
        shutil.rmtree(root, ignore_errors=True)
