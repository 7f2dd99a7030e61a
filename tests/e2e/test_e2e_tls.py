"""Transport security end to end: TLS and mTLS on the real server, what it refuses to listen
on, and the /metrics token. Certificates are made here with ``cryptography``; nothing is sent
to an address other than loopback."""

from __future__ import annotations

import asyncio
import datetime
import http.client
import ipaddress
import os
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from grpc_health.v1 import health_pb2, health_pb2_grpc

from mt5exec.auth import mtls
from mt5exec.auth.principal import Principal, Role
from mt5exec.config import CertificateIdentity, ServerSection
from mt5exec.server import transport
from mt5exec.testing import ClientTLS, ServerProcess
from mt5exec.v1 import auth_pb2, auth_pb2_grpc

NOW = datetime.datetime.now(datetime.UTC)
TOKEN = "metrics-token-5b1f0c7e"


@dataclass(frozen=True)
class Pair:
    """A certificate and its key, as PEM."""

    cert: bytes
    key: bytes


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


class Authority:
    """A CA that signs server and client certificates."""

    def __init__(self, name: str) -> None:
        self.key = _key()
        self.name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        self.cert = (
            self._builder(self.name, self.key, NOW - datetime.timedelta(days=1), 30)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(self.key, hashes.SHA256())
        )
        self.pem = self.cert.public_bytes(serialization.Encoding.PEM)

    def _builder(
        self,
        subject: x509.Name,
        key: ec.EllipticCurvePrivateKey,
        start: datetime.datetime,
        days: float,
    ) -> x509.CertificateBuilder:
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + datetime.timedelta(days=days))
        )

    def server(self, *, expired: bool = False) -> Pair:
        key = _key()
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
        start = NOW - datetime.timedelta(days=10 if expired else 1)
        cert = (
            self._builder(subject, key, start, 5 if expired else 30)
            .add_extension(
                x509.SubjectAlternativeName(
                    [
                        x509.DNSName("localhost"),
                        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    ]
                ),
                critical=False,
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
            .sign(self.key, hashes.SHA256())
        )
        return Pair(cert.public_bytes(serialization.Encoding.PEM), _pem_key(key))

    def client(self, common_name: str, organization: str = "Acme") -> Pair:
        key = _key()
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
                x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            ]
        )
        cert = (
            self._builder(subject, key, NOW - datetime.timedelta(days=1), 30)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False)
            .sign(self.key, hashes.SHA256())
        )
        return Pair(cert.public_bytes(serialization.Encoding.PEM), _pem_key(key))


@dataclass(frozen=True)
class Pki:
    dir: Path
    ca: Authority
    other_ca: Authority
    server: Pair
    expired_server: Pair
    alice: Pair  # CN=alice,O=Acme: mapped by her full subject
    bob: Pair  # CN=bob: mapped by common name
    mallory: Pair  # CN=mallory: signed by the CA, mapped to nothing
    stranger: Pair  # CN=alice, signed by the other CA

    def write(self, name: str, data: bytes) -> Path:
        path = self.dir / name
        path.write_bytes(data)
        path.chmod(0o600)
        return path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    ca, other = Authority("mt5exec test CA"), Authority("another CA")
    pki = Pki(
        dir=tmp_path_factory.mktemp("pki"),
        ca=ca,
        other_ca=other,
        server=ca.server(),
        expired_server=ca.server(expired=True),
        alice=ca.client("alice"),
        bob=ca.client("bob", organization="Elsewhere"),
        mallory=ca.client("mallory"),
        stranger=other.client("alice"),
    )
    pki.write("ca.pem", ca.pem)
    pki.write("server.pem", pki.server.cert)
    pki.write("server.key", pki.server.key)
    pki.write("expired.pem", pki.expired_server.cert)
    pki.write("expired.key", pki.expired_server.key)
    pki.write("token", f"{TOKEN}\n".encode())
    return pki


def tls_config(pki: Pki, *, cert: str = "server", mutual: bool = False) -> str:
    text = (
        "[server]\n"
        f'tls_cert = "{pki.dir / f"{cert}.pem"}"\n'
        f'tls_key = "{pki.dir / f"{cert}.key"}"\n'
        f'metrics_token_file = "{pki.dir / "token"}"\n'
    )
    if mutual:
        text += (
            f'tls_client_ca = "{pki.dir / "ca.pem"}"\n'
            "[auth.mtls]\n"
            '"CN=alice,O=Acme" = { role = "trader", owner = "acme" }\n'
            'bob = { role = "viewer", owner = "bobco" }\n'
        )
    return text


def start(
    tmp: Path,
    config: str,
    tls: ClientTLS | None,
    *,
    metrics_token: str | None = None,
    extra_args: list[str] | None = None,
) -> ServerProcess:
    (tmp / "mt5exec.toml").write_text(config)
    return ServerProcess(
        tmp / "data",
        config=tmp / "mt5exec.toml",
        tls=tls,
        metrics_token=metrics_token,
        extra_args=extra_args,
    ).start()


@pytest.fixture(scope="module")
def tls_server(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = start(
        tmp_path_factory.mktemp("tls"), tls_config(pki), ClientTLS(pki.ca.pem), metrics_token=TOKEN
    )
    try:
        yield server
        assert server.terminate() == 0
    finally:
        server.kill()


@pytest.fixture(scope="module")
def mtls_server(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    alice = ClientTLS(pki.ca.pem, pki.alice.cert, pki.alice.key)
    server = start(tmp_path_factory.mktemp("mtls"), tls_config(pki, mutual=True), alice)
    try:
        yield server
        assert server.terminate() == 0
    finally:
        server.kill()


def check(channel: grpc.Channel) -> int:
    """The server's health status (a call every client may make, token or not)."""
    response = health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(), timeout=10
    )
    status: int = response.status
    return status


SERVING = health_pb2.HealthCheckResponse.SERVING


def refused(channel: grpc.Channel) -> grpc.StatusCode:
    """The code a call on ``channel`` fails with (fails the test if it succeeds)."""
    with channel, pytest.raises(grpc.RpcError) as info:
        check(channel)
    assert isinstance(info.value, grpc.Call)
    code: grpc.StatusCode = info.value.code()
    return code


def secure(server: ServerProcess, tls: ClientTLS) -> grpc.Channel:
    return grpc.secure_channel(server.address, tls.credentials())


# --- TLS --------------------------------------------------------------------------------------


def test_tls_client_is_served(tls_server: ServerProcess) -> None:
    assert tls_server.channel is not None
    assert check(tls_server.channel) == SERVING


def test_plaintext_client_to_tls_server_is_refused(tls_server: ServerProcess) -> None:
    assert refused(grpc.insecure_channel(tls_server.address)) == grpc.StatusCode.UNAVAILABLE
    # The server is unharmed.
    assert tls_server.channel is not None
    assert check(tls_server.channel) == SERVING


def test_server_certificate_from_another_ca_is_refused(pki: Pki, tls_server: ServerProcess) -> None:
    channel = secure(tls_server, ClientTLS(pki.other_ca.pem))
    assert refused(channel) == grpc.StatusCode.UNAVAILABLE


def test_expired_server_certificate_is_refused(pki: Pki, tmp_path: Path) -> None:
    server = start(tmp_path, tls_config(pki, cert="expired"), ClientTLS(pki.ca.pem))
    try:
        assert server.channel is not None
        assert refused(server.channel) == grpc.StatusCode.UNAVAILABLE
        assert server.terminate() == 0
    finally:
        server.kill()
    log = (tmp_path / "data" / "server.log").read_text()
    assert "server.tls_cert" in log
    assert "expired" in log


def test_tls_key_that_is_not_the_certificates_is_refused_at_start(pki: Pki, tmp_path: Path) -> None:
    config = tls_config(pki).replace("server.key", "expired.key")
    (tmp_path / "mt5exec.toml").write_text(config)
    out = serve(tmp_path, "--config", str(tmp_path / "mt5exec.toml"))
    assert out.returncode == 2
    assert "server.tls_key" in out.stderr
    assert "not the key of server.tls_cert" in out.stderr
    assert "Traceback" not in out.stderr


# --- mTLS -------------------------------------------------------------------------------------


def test_mtls_with_a_good_client_certificate_is_served(mtls_server: ServerProcess) -> None:
    assert mtls_server.channel is not None
    assert check(mtls_server.channel) == SERVING


def test_mtls_without_a_client_certificate_is_refused(pki: Pki, mtls_server: ServerProcess) -> None:
    channel = secure(mtls_server, ClientTLS(pki.ca.pem))
    assert refused(channel) == grpc.StatusCode.UNAVAILABLE


def test_mtls_with_a_client_certificate_from_another_ca_is_refused(
    pki: Pki, mtls_server: ServerProcess
) -> None:
    stranger = ClientTLS(pki.ca.pem, pki.stranger.cert, pki.stranger.key)
    assert refused(secure(mtls_server, stranger)) == grpc.StatusCode.UNAVAILABLE


def who_am_i(channel: grpc.Channel) -> auth_pb2.WhoAmIResponse:
    with channel:
        response: auth_pb2.WhoAmIResponse = auth_pb2_grpc.AuthServiceStub(channel).WhoAmI(
            auth_pb2.WhoAmIRequest(), timeout=10
        )
    return response


def test_mtls_client_certificate_is_the_principal_of_a_call_without_token(
    pki: Pki, mtls_server: ServerProcess
) -> None:
    me = who_am_i(mtls_server.connect(None))
    assert (me.subject, me.role, me.owner) == ("CN=alice,O=Acme", auth_pb2.ROLE_TRADER, "acme")
    bob = ClientTLS(pki.ca.pem, pki.bob.cert, pki.bob.key)
    me = who_am_i(secure(mtls_server, bob))
    assert (me.subject, me.role, me.owner) == ("CN=bob,O=Elsewhere", auth_pb2.ROLE_VIEWER, "bobco")
    # A bearer token speaks for the call whatever the certificate.
    assert mtls_server.token is not None
    me = who_am_i(mtls_server.connect(mtls_server.token))
    assert me.role == auth_pb2.ROLE_ADMIN


def test_mtls_certificate_the_map_does_not_name_needs_a_token(
    pki: Pki, mtls_server: ServerProcess
) -> None:
    mallory = ClientTLS(pki.ca.pem, pki.mallory.cert, pki.mallory.key)
    with pytest.raises(grpc.RpcError) as info:
        who_am_i(secure(mtls_server, mallory))
    assert isinstance(info.value, grpc.Call)
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def _principals(pki: Pki, clients: list[Pair]) -> list[Principal | None]:
    """What principal_from_context makes of each client on a real grpc.aio mTLS server built
    by the server's own transport code with the mapping of tls_config(mutual=True)."""
    section = ServerSection(
        listen="127.0.0.1:0",
        tls_cert=pki.dir / "server.pem",
        tls_key=pki.dir / "server.key",
        tls_client_ca=pki.dir / "ca.pem",
    )
    tls = transport.load_tls(section)
    assert tls is not None and tls.mutual
    mtls.configure(
        {
            "CN=alice, O=Acme": CertificateIdentity("trader", "acme"),
            "bob": CertificateIdentity("viewer", "bobco"),
            "CN=mallory,O=Elsewhere": CertificateIdentity("admin"),
        }
    )
    seen: list[Principal | None] = []

    async def who(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        seen.append(mtls.principal_from_context(context))
        return b""

    server = grpc.aio.server()
    server.add_generic_rpc_handlers(
        [
            grpc.method_handlers_generic_handler(
                "t.T", {"Who": grpc.unary_unary_rpc_method_handler(who)}
            )
        ]
    )
    port = transport.bind(server, section, tls)
    await server.start()
    try:
        for client in clients:
            credentials = ClientTLS(pki.ca.pem, client.cert, client.key).credentials()
            async with grpc.aio.secure_channel(f"127.0.0.1:{port}", credentials) as channel:
                await channel.unary_unary("/t.T/Who")(b"", timeout=10)
    finally:
        await server.stop(0)
        mtls.configure(None)
    return seen


def test_client_certificate_maps_to_the_configured_principal(pki: Pki) -> None:
    alice, bob, mallory = asyncio.run(_principals(pki, [pki.alice, pki.bob, pki.mallory]))
    # By full subject (the config's spacing does not matter).
    assert alice == Principal("CN=alice,O=Acme", Role.TRADER, "acme", "mtls")
    # By common name, whatever else the subject says.
    assert bob == Principal("CN=bob,O=Elsewhere", Role.VIEWER, "bobco", "mtls")
    # CN=mallory,O=Acme is not CN=mallory,O=Elsewhere: a verified certificate the map does not
    # name is no principal.
    assert mallory is None


def test_certificates_are_no_principals_without_mtls(pki: Pki) -> None:
    class Context:
        def auth_context(self) -> dict[str, list[bytes]]:
            return {"transport_security_type": [b"ssl"], "x509_pem_cert": [pki.alice.cert]}

    mtls.configure(None)
    assert mtls.principal_from_context(Context()) is None


# --- what the server listens on ---------------------------------------------------------------


def serve(
    cwd: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``mt5exec serve`` expected to refuse to start (a timeout fails the test)."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MT5EXEC_")}
    return subprocess.run(
        [sys.executable, "-m", "mt5exec", "serve", "--data-dir", str(cwd / "data"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env={**environ, **(env or {})},
    )


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (["--listen", "0.0.0.0:0"], {}),
        (["--listen", "[::]:0"], {}),
        ([], {"MT5EXEC_LISTEN": "0.0.0.0:0"}),
        ([], {"MT5EXEC_SERVER_LISTEN": "0.0.0.0:0"}),
    ],
)
def test_plaintext_on_a_network_address_is_refused_at_start(
    tmp_path: Path, args: list[str], env: dict[str, str]
) -> None:
    out = serve(tmp_path, *args, env=env)
    assert out.returncode == 2, out.stderr
    assert "is not a loopback address and TLS is off" in out.stderr
    assert "server.allow_plaintext" in out.stderr
    assert "server.tls_cert" in out.stderr
    assert "listening" not in out.stdout


def health(port: int, tls: ClientTLS | None = None) -> int:
    """The health status through loopback (the server may listen on every address)."""
    target = f"127.0.0.1:{port}"
    if tls is None:
        with grpc.insecure_channel(target) as channel:
            return check(channel)
    with grpc.secure_channel(target, tls.credentials()) as channel:
        return check(channel)


def test_allow_plaintext_serves_on_a_network_address_with_a_warning(tmp_path: Path) -> None:
    server = ServerProcess(
        tmp_path,
        extra_args=["--listen", "0.0.0.0:0"],
        env={"MT5EXEC_SERVER_ALLOW_PLAINTEXT": "true"},
    ).start()
    try:
        assert server.address.startswith("0.0.0.0:")
        assert health(int(server.address.rpartition(":")[2])) == SERVING
        assert server.terminate() == 0
    finally:
        server.kill()
    warnings = [
        line for line in (tmp_path / "server.log").read_text().splitlines() if "WARNING" in line
    ]
    assert any("PLAINTEXT on 0.0.0.0:0" in line for line in warnings), warnings


def test_tls_serves_on_a_network_address(pki: Pki, tmp_path: Path) -> None:
    tls = ClientTLS(pki.ca.pem)
    server = start(tmp_path, tls_config(pki), tls, extra_args=["--listen", "0.0.0.0:0"])
    try:
        port = int(server.address.rpartition(":")[2])
        assert health(port, tls) == SERVING
        assert server.terminate() == 0
    finally:
        server.kill()
    assert "PLAINTEXT" not in (tmp_path / "data" / "server.log").read_text()


# --- /metrics ---------------------------------------------------------------------------------


def get(url: str, token: str | None, context: ssl.SSLContext | None) -> int:
    request = urllib.request.Request(url)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as response:
            status: int = response.status
            return status
    except urllib.error.HTTPError as e:
        return e.code


def test_metrics_token_is_required(pki: Pki, tls_server: ServerProcess) -> None:
    assert "mt5exec_instances" in tls_server.metrics()
    url = f"https://{tls_server.metrics_address}/metrics"
    context = ssl.create_default_context(cadata=pki.ca.pem.decode())
    assert get(url, None, context) == 401
    assert get(url, "wrong", context) == 401
    assert get(url, TOKEN, context) == 200
    # With TLS configured /metrics is HTTPS only (a reset or a bad status line).
    with pytest.raises((OSError, http.client.HTTPException)):
        get(f"http://{tls_server.metrics_address}/metrics", TOKEN, None)


def test_metrics_on_a_network_address_without_token_is_refused_at_start(
    tmp_path: Path,
) -> None:
    out = serve(tmp_path, env={"MT5EXEC_SERVER_METRICS_LISTEN": "0.0.0.0:0"})
    assert out.returncode == 2, out.stderr
    assert "server.metrics_listen" in out.stderr
    assert "server.metrics_token_file" in out.stderr
