"""A real redis-server of the tests' own: on a free loopback port, its files in a temporary
directory, every write appended and fsynced (so that what it acknowledged survives a SIGKILL,
as on a production Redis with ``appendfsync always``). Without redis-server the tests that need
it are skipped, except under CI (``CI`` set), where they fail: ``make setup`` installs it."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """``start``, ``kill`` (SIGKILL) and ``start`` again: the same port and files."""

    def __init__(
        self,
        binary: str,
        root: Path,
        password: str = "",
        tls: tuple[bytes, bytes, bytes] | None = None,
    ) -> None:
        """``tls``: the server's certificate, its key and the CA's certificate (PEM): then it
        serves TLS only (``rediss://``)."""
        self.binary = binary
        self.password = password
        self.tls = tls
        self.root = root
        self.port = _free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        scheme = "rediss" if self.tls else "redis"
        return f"{scheme}://127.0.0.1:{self.port}/0"

    @property
    def ca_file(self) -> Path:
        return self.root / "ca.pem"

    def client(self) -> redis.Redis:
        tls: dict[str, object] = {}
        if self.tls:
            tls = {"ssl": True, "ssl_ca_certs": str(self.ca_file)}
        return redis.Redis(
            port=self.port,
            password=self.password or None,
            decode_responses=True,
            socket_timeout=30,
            **tls,  # type: ignore[arg-type]
        )

    def start(self) -> None:
        args = [self.binary, "--bind", "127.0.0.1"]
        if self.tls:
            cert, key, ca = self.tls
            for name, pem in (("server.pem", cert), ("server.key", key), ("ca.pem", ca)):
                (self.root / name).write_bytes(pem)
            args += ["--port", "0", "--tls-port", str(self.port), "--tls-auth-clients", "no"]
            args += ["--tls-cert-file", str(self.root / "server.pem")]
            args += ["--tls-key-file", str(self.root / "server.key")]
            args += ["--tls-ca-cert-file", str(self.ca_file)]
        else:
            args += ["--port", str(self.port)]
        args += ["--dir", str(self.root), "--save", "", "--appendonly", "yes"]
        args += ["--appendfsync", "always", "--protected-mode", "no", "--daemonize", "no"]
        if self.password:
            args += ["--requirepass", self.password]
        with open(self.root / "redis.log", "ab") as log:
            self.process = subprocess.Popen(args, stdout=log, stderr=log, start_new_session=True)
        deadline = time.monotonic() + 60
        while True:
            try:
                if self.client().ping():
                    return
            except redis.ConnectionError:
                pass
            except redis.BusyLoadingError:
                pass
            assert self.process.poll() is None, f"redis-server exited; see {self.root}/redis.log"
            assert time.monotonic() < deadline, "redis-server did not answer within 60 s"
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL, and waits until it is gone."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)


@contextlib.contextmanager
def redis_server(
    password: str = "", tls: tuple[bytes, bytes, bytes] | None = None
) -> Iterator[RedisServer]:
    binary = shutil.which("redis-server")
    if binary is None:
        message = "redis-server is not installed (make setup installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    root = Path(tempfile.mkdtemp(prefix="mt5exec-redis-"))
    server = RedisServer(binary, root, password, tls)
    try:
        server.start()
        yield server
    finally:
        server.kill()
        shutil.rmtree(root, ignore_errors=True)
