"""Run a real mt5exec server in a child process: for tests, benchmarks and demos."""

from __future__ import annotations

import os
import select
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import grpc
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from mt5exec.v1 import auth_pb2_grpc, instance_pb2_grpc, order_pb2_grpc, stream_pb2_grpc


def bearer(token: str) -> tuple[tuple[str, str]]:
    """The call metadata that carries ``token`` (``metadata=`` of a call)."""
    return (("authorization", f"Bearer {token}"),)


class Bearer(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    """Adds ``authorization: Bearer <token>`` to every call of a channel."""

    def __init__(self, token: str) -> None:
        self._metadata = bearer(token)

    def _details(self, details: Any) -> Any:
        metadata = (*(details.metadata or ()), *self._metadata)
        return details._replace(metadata=metadata)

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)

    def intercept_stream_unary(self, continuation: Any, details: Any, requests: Any) -> Any:
        return continuation(self._details(details), requests)

    def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        return continuation(self._details(details), requests)


@dataclass(frozen=True, slots=True)
class ClientTLS:
    """How a client reaches a TLS server (PEM contents): the CA it trusts, and for mTLS the
    certificate and key it presents."""

    ca: bytes
    cert: bytes | None = None
    key: bytes | None = None

    def credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(self.ca, self.key, self.cert)


class ServerProcess:
    """``python -m mt5exec serve`` on a free loopback port, with stubs to call it.

    With ``tls`` the channel and /metrics use TLS (the server's config must set it up);
    ``metrics_token`` is sent to /metrics.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        config: Path | None = None,
        extra_args: list[str] | None = None,
        env: dict[str, str] | None = None,
        start_timeout: float = 30.0,
        tls: ClientTLS | None = None,
        metrics_token: str | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.args = [sys.executable, "-m", "mt5exec", "serve", "--listen", "127.0.0.1:0"]
        self.args += ["--data-dir", str(data_dir)]
        if config is not None:
            self.args += ["--config", str(config)]
        self.args += extra_args or []
        # The Prometheus endpoint on a free port (its address is printed before the gRPC one).
        self.env = {**os.environ, "MT5EXEC_SERVER_METRICS_LISTEN": "127.0.0.1:0", **(env or {})}
        self.start_timeout = start_timeout
        self.tls = tls
        self.metrics_token = metrics_token
        self.process: subprocess.Popen[bytes] | None = None
        self.token: str | None = None
        self.address = ""
        self.metrics_address = ""
        self.channel: grpc.Channel | None = None

    def start(self) -> Self:
        if self.process is not None and self.process.poll() is None:
            raise RuntimeError("this server is running already (a `with` block starts it)")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.data_dir / "server.log", "ab") as log:
            self.process = subprocess.Popen(
                self.args, stdout=subprocess.PIPE, stderr=log, env=self.env, start_new_session=True
            )
        assert self.process.stdout is not None
        deadline = time.monotonic() + self.start_timeout
        line = b""
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.process.stdout], [], [], 0.1)
            if ready:
                line = self.process.stdout.readline()
                if line.startswith(b"mt5exec metrics on "):
                    # The gRPC line follows at once (and may already sit in the buffer).
                    self.metrics_address = line.split()[-1].decode()
                    line = self.process.stdout.readline()
                if line.startswith(b"mt5exec listening on "):
                    self.address = line.split()[-1].decode()
                    break
                if not line:
                    break
        if not self.address:
            self.kill()
            raise RuntimeError(f"server did not start: {line!r}; see {self.data_dir}/server.log")
        # The admin key the server's first start wrote into its data dir (the last
        # --data-dir: extra_args may name another than data_dir).
        flags = self.args[:-1]
        served = [self.args[i + 1] for i, flag in enumerate(flags) if flag == "--data-dir"]
        admin_key = Path(served[-1]) / "admin.key"
        self.token = admin_key.read_text().strip() if admin_key.exists() else None
        self.channel = self.connect(self.token)
        return self

    def connect(
        self, token: str | None = None, options: list[tuple[str, Any]] | None = None
    ) -> grpc.Channel:
        """A new channel to the server whose calls carry ``token`` (none: no token)."""
        channel = (
            grpc.insecure_channel(self.address, options)
            if self.tls is None
            else grpc.secure_channel(self.address, self.tls.credentials(), options)
        )
        return channel if token is None else grpc.intercept_channel(channel, Bearer(token))

    def metrics(self) -> str:
        """The Prometheus exposition text of /metrics."""
        scheme, context = "http", None
        if self.tls is not None:
            scheme, context = "https", ssl.create_default_context(cadata=self.tls.ca.decode())
        request = urllib.request.Request(f"{scheme}://{self.metrics_address}/metrics")
        if self.metrics_token is not None:
            request.add_header("Authorization", f"Bearer {self.metrics_token}")
        with urllib.request.urlopen(request, timeout=5, context=context) as r:
            text: str = r.read().decode()
        return text

    def metric_samples(self, family: str) -> list[Sample]:
        """The samples of one metric family in /metrics (a histogram's buckets, count and
        sum; none when the family is absent)."""
        for found in text_string_to_metric_families(self.metrics()):
            if found.name == family:
                return list(found.samples)
        return []

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def instances(self) -> instance_pb2_grpc.InstanceServiceStub:
        assert self.channel is not None
        return instance_pb2_grpc.InstanceServiceStub(self.channel)

    @property
    def orders(self) -> order_pb2_grpc.OrderServiceStub:
        assert self.channel is not None
        return order_pb2_grpc.OrderServiceStub(self.channel)

    @property
    def streams(self) -> stream_pb2_grpc.StreamServiceStub:
        assert self.channel is not None
        return stream_pb2_grpc.StreamServiceStub(self.channel)

    @property
    def auth(self) -> auth_pb2_grpc.AuthServiceStub:
        assert self.channel is not None
        return auth_pb2_grpc.AuthServiceStub(self.channel)

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait; returns the exit code."""
        if self.channel is not None:
            self.channel.close()
            self.channel = None
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout)
        self._close_pipe()
        return code

    def _close_pipe(self) -> None:
        if self.process is not None and self.process.stdout is not None:
            self.process.stdout.close()

    def kill(self) -> None:
        if self.channel is not None:
            self.channel.close()
            self.channel = None
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self._close_pipe()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self.terminate()
        finally:
            self.kill()


def process_gone(pid: int) -> bool:
    """True when ``pid`` no longer exists (a zombie still counts as existing)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return not f.read()
    except FileNotFoundError:
        return True


def wait_gone(pids: list[int], timeout: float = 60.0) -> list[int]:
    """Waits for processes to disappear (``timeout`` is only reached when one does not);
    returns those still there."""
    deadline = time.monotonic() + timeout
    left = list(pids)
    while left and time.monotonic() < deadline:
        left = [p for p in left if not process_gone(p)]
        if left:
            time.sleep(0.02)
    return left
