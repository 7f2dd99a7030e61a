"""The signal pieces without a server: the signed bytes (a fixed vector, what docs/signals.md
shows), the [signals] config, the secrets' checks and the nonce log's bounds."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from pathlib import Path

import pytest

from mt5exec.config import ConfigError, load_config
from mt5exec.signals import canonical
from mt5exec.signals.nonces import NonceLog
from mt5exec.signals.sources import load_secrets
from mt5exec.v1 import common_pb2, order_pb2

# The example of docs/signals.md: its bytes and signature must stay these.
DOC_SECRET = b"0123456789abcdef0123456789abcdef"
DOC_BYTES = (
    b"mt5exec-signal-v1\n"
    b"tradingview\n"
    b"sig-42\n"
    b"EURUSD\n"
    b"1\n"
    b"0000000000000000\n"
    b"3ff0000000000000\n"
    b"3ff139c0ebedfa44\n"
    b"3ff2089a02752546\n"
    b"1765000000123000000\n"
    b"6f1c0e7d9b2a4c58"
)


def doc_signal() -> order_pb2.PublishSignalRequest:
    request = order_pb2.PublishSignalRequest(
        source="tradingview",
        signal_id="sig-42",
        symbol="EURUSD",
        side=common_pb2.SIDE_BUY,
        risk_percent=1.0,
        stop_loss=1.0766,
        take_profit=1.1271,
        nonce="6f1c0e7d9b2a4c58",
    )
    request.timestamp.FromNanoseconds(1_765_000_000_123_000_000)
    return request


def test_the_signed_bytes_are_the_documented_ones() -> None:
    request = doc_signal()
    assert canonical.canonical(request) == DOC_BYTES
    expected = hmac.new(DOC_SECRET, DOC_BYTES, hashlib.sha256).hexdigest()
    canonical.sign(DOC_SECRET, request)
    assert request.signature == expected
    assert canonical.verify(DOC_SECRET, request)
    docs = (Path(__file__).parents[2] / "docs" / "signals.md").read_text()
    assert expected in docs, "docs/signals.md shows another signature for its example"


def test_verify_refuses_any_other_signature() -> None:
    request = doc_signal()
    canonical.sign(DOC_SECRET, request)
    good = request.signature
    for bad in ("", good[:-1], good + "0", "é" * 64, good.replace(good[0], "x", 1)):
        request.signature = bad
        assert not canonical.verify(DOC_SECRET, request), bad
    request.signature = good.upper()  # hex is hex
    assert canonical.verify(DOC_SECRET, request)


def _secret(tmp_path: Path, name: str, data: bytes, mode: int = 0o600) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    path.chmod(mode)
    return path


def test_signals_config(tmp_path: Path) -> None:
    secret = _secret(tmp_path, "a.secret", DOC_SECRET + b"\n")
    toml = tmp_path / "c.toml"
    toml.write_text(f'[signals]\nwindow_s = 5\n[signals.sources]\nalpha = "{secret}"\n')
    config = load_config(toml, env={})
    assert config.signals.window_s == 5.0
    assert dict(config.signals.sources) == {"alpha": secret}
    assert load_secrets(config.signals) == {"alpha": DOC_SECRET}
    assert config.as_dict()["signals"]["sources"] == {"alpha": str(secret)}
    env = {"MT5EXEC_SIGNALS_SOURCES": f'{{"beta": "{secret}"}}'}
    assert dict(load_config(None, env=env).signals.sources) == {"beta": secret}
    assert load_config(None, env={}).signals.window_s == 30.0
    for bad in ("window_s = 0", "window_s = 4000", 'sources = { "a b" = "/x" }'):
        toml.write_text(f"[signals]\n{bad}\n")
        with pytest.raises(ConfigError, match="signals"):
            load_config(toml, env={})


@pytest.mark.parametrize(
    ("data", "mode", "message"),
    [
        (DOC_SECRET, 0o640, "readable by other users"),
        (b"short", 0o600, "at least 32 bytes"),
    ],
)
def test_a_bad_secret_file_is_a_config_error(
    tmp_path: Path, data: bytes, mode: int, message: str
) -> None:
    secret = _secret(tmp_path, "a.secret", data, mode)
    toml = tmp_path / "c.toml"
    toml.write_text(f'[signals.sources]\nalpha = "{secret}"\n')
    with pytest.raises(ConfigError, match=message):
        load_secrets(load_config(toml, env={}).signals)
    secret.unlink()
    with pytest.raises(ConfigError, match="cannot read"):
        load_secrets(load_config(toml, env={}).signals)


def test_the_nonce_log_keeps_what_the_window_needs_only(tmp_path: Path) -> None:
    path = tmp_path / "signals" / "nonces.log"
    # An hour: the "fresh" stamps stay fresh however slow the 3000 synced writes are.
    window = 3600 * 10**9
    nonces = NonceLog(path, window)
    nonces.load()
    now = time.time_ns()

    async def take_many() -> None:
        # Old signals (stamped three windows ago) and fresh ones.
        for i in range(3000):
            stamp = now - 3 * window if i % 2 else now
            assert await nonces.take("s", f"n{i:06d}", stamp)
        assert not await nonces.take("s", "n000000", now)

    asyncio.run(take_many())
    # Compacted on the way: the old half is forgotten, in memory and on disk.
    lines = path.read_text().splitlines()
    assert len(lines) < 3000
    assert len(nonces) < 3000
    assert nonces.seen("s", "n000000") and nonces.seen("s", "n002998")
    reloaded = NonceLog(path, window)
    with path.open("a") as f:
        f.write("1234 torn")  # a line cut by a crash
    reloaded.load()
    assert all(reloaded.seen("s", f"n{i:06d}") for i in range(0, 3000, 2))
    assert not any(reloaded.seen("s", f"n{i:06d}") for i in range(1, 3000, 2))
