"""mt5exec.client and the operator CLI over TLS and mTLS to a real server (certificates made
by tests/e2e/test_e2e_tls.py's authority)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import pytest
from tests.e2e.test_e2e_tls import Pki, pki, start, tls_config

from mt5exec.client import Client, Settings, errors
from mt5exec.testing import ClientTLS, ServerProcess
from mt5exec.v1 import auth_pb2

__all__ = ["pki"]  # the fixture, shared with the TLS tests


@pytest.fixture(scope="module")
def mtls(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    alice = ClientTLS(pki.ca.pem, pki.alice.cert, pki.alice.key)
    pki.write("alice.pem", pki.alice.cert)
    pki.write("alice.key", pki.alice.key)
    server = start(tmp_path_factory.mktemp("client-mtls"), tls_config(pki, mutual=True), alice)
    try:
        yield server
        assert server.terminate() == 0
    finally:
        server.kill()


def test_a_client_certificate_is_the_principal(pki: Pki, mtls: ServerProcess) -> None:
    settings = Settings.resolve(
        target=mtls.address,
        ca_file=pki.dir / "ca.pem",
        cert_file=pki.dir / "alice.pem",
        key_file=pki.dir / "alice.key",
        server_name="localhost",
        environ={},
    )
    with Client(settings=settings) as client:
        me = client.whoami()
    assert (me.kind, me.role, me.owner) == ("mtls", auth_pb2.ROLE_TRADER, "acme")


def test_a_server_name_the_certificate_lacks_is_refused(pki: Pki, mtls: ServerProcess) -> None:
    settings = Settings.resolve(
        target=mtls.address,
        ca_file=pki.dir / "ca.pem",
        cert_file=pki.dir / "alice.pem",
        key_file=pki.dir / "alice.key",
        server_name="elsewhere.example",
        timeout=60,  # a slow handshake is not the refusal (DeadlineExceeded)
        environ={},
    )
    with Client(settings=settings) as client, pytest.raises(errors.Unavailable):
        client.whoami()


def test_the_cli_over_mtls(pki: Pki, mtls: ServerProcess) -> None:
    flags = ["--ca", str(pki.dir / "ca.pem"), "--cert", str(pki.dir / "alice.pem")]
    flags += ["--key", str(pki.dir / "alice.key"), "--target", mtls.address, "--json"]
    done = subprocess.run(
        [sys.executable, "-m", "mt5exec", "instances", "list", *flags],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []
