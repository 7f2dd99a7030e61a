"""Server configuration: defaults, source precedence and the errors operators see."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from mt5exec.config import (
    CertificateIdentity,
    ConfigError,
    EngineConfig,
    HistoryConfig,
    ServerConfig,
    ServerSection,
    is_loopback,
    load_config,
    parse_listen,
)


def write(tmp_path: Path, text: str, name: str = "mt5exec.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(autouse=True)
def _cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Relative paths resolve against the working directory; keep them inside tmp_path.
    monkeypatch.chdir(tmp_path)


def test_defaults(tmp_path: Path) -> None:
    cfg = load_config(env={})
    assert cfg.server == dataclasses.replace(ServerSection(), data_dir=tmp_path / "mt5exec-data")
    assert cfg.server.listen == "127.0.0.1:50051"
    assert (cfg.server.host, cfg.server.port) == ("127.0.0.1", 50051)
    assert cfg.server.log_level == "INFO"
    assert cfg.server.grace_period_s == 5.0
    assert cfg.server.max_instances == 30
    assert cfg.engine == EngineConfig(
        worker_start_timeout_s=10.0,
        order_timeout_s=10.0,
        stop_grace_s=2.0,
        kill_grace_s=1.0,
        tick_queue_limit=2000,
        slow_consumer_timeout_s=10.0,
        journal_fsync="interval:100",
    )
    assert cfg.history == HistoryConfig(
        enabled=True, path=None, flush_interval_ms=1000, batch_size=10_000
    )
    # Per-instance defaults (symbols, seed, account) live in the instance templates, not here.
    assert list(cfg.as_dict()) == [
        "server",
        "engine",
        "history",
        "mt5",
        "risk",
        "auth",
        "vault",
        "signals",
        "redis",
    ]
    assert cfg.data_dir.is_absolute()
    assert cfg.instances_dir == tmp_path / "mt5exec-data" / "instances"
    assert cfg.history_path == tmp_path / "mt5exec-data" / "history.duckdb"


def test_toml_file_values(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [server]
        listen = "0.0.0.0:6000"
        allow_plaintext = true
        data_dir = "state"
        log_level = "debug"
        grace_period_s = 0
        max_instances = 5

        [engine]
        worker_start_timeout_s = 3
        order_timeout_s = 2.5
        stop_grace_s = 0.5
        kill_grace_s = 0.25
        tick_queue_limit = 64

        [history]
        enabled = false
        path = "db/h.duckdb"
        flush_interval_ms = 50
        batch_size = 10
        """,
    )
    cfg = load_config(path, env={})
    assert cfg.server == ServerSection(
        listen="0.0.0.0:6000",
        allow_plaintext=True,
        data_dir=tmp_path / "state",
        log_level="DEBUG",
        grace_period_s=0.0,
        max_instances=5,
    )
    assert cfg.engine == EngineConfig(3.0, 2.5, 0.5, 0.25, 64, 10.0, "interval:100")
    assert cfg.history == HistoryConfig(False, tmp_path / "db" / "h.duckdb", 50, 10)
    assert cfg.history_path == tmp_path / "db" / "h.duckdb"
    # Integers in the file become floats where the field is a float.
    assert isinstance(cfg.engine.worker_start_timeout_s, float)


def test_env_beats_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[server]\nlisten = "127.0.0.1:1"\nmax_instances = 2\n[history]\nbatch_size = 3\n',
    )
    env = {
        "MT5EXEC_SERVER_LISTEN": "127.0.0.1:2",
        "MT5EXEC_SERVER_DATA_DIR": str(tmp_path / "envdata"),
        "MT5EXEC_ENGINE_ORDER_TIMEOUT_S": "1.5",
        "MT5EXEC_HISTORY_ENABLED": "off",
        "MT5EXEC_UNRELATED_SECRET": "ignored: other components own other variables",
        # The removed [sim] section's variables are unknown now, so ignored like any other.
        "MT5EXEC_SIM_SYMBOLS": "GBPUSD, USDJPY",
        "MT5EXEC_SIM_MARGIN_MODE": "cross",
    }
    cfg = load_config(path, env=env)
    assert cfg.server.listen == "127.0.0.1:2"
    assert cfg.server.max_instances == 2  # from the file, untouched by env
    assert cfg.data_dir == tmp_path / "envdata"
    assert cfg.engine.order_timeout_s == 1.5
    assert cfg.history.enabled is False
    assert cfg.history.batch_size == 3  # from the file, untouched by env


def test_env_short_aliases(tmp_path: Path) -> None:
    cfg = load_config(env={"MT5EXEC_LISTEN": "[::1]:0", "MT5EXEC_DATA_DIR": "d"})
    assert (cfg.server.host, cfg.server.port) == ("[::1]", 0)
    assert cfg.data_dir == tmp_path / "d"
    # The long, more specific name wins over the alias.
    both = {"MT5EXEC_LISTEN": "127.0.0.1:1", "MT5EXEC_SERVER_LISTEN": "127.0.0.1:2"}
    assert load_config(env=both).server.listen == "127.0.0.1:2"


def test_overrides_beat_env(tmp_path: Path) -> None:
    path = write(tmp_path, '[server]\nlisten = "127.0.0.1:1"\n')
    env = {"MT5EXEC_SERVER_LISTEN": "127.0.0.1:2", "MT5EXEC_SERVER_LOG_LEVEL": "ERROR"}
    cfg = load_config(
        path,
        env=env,
        overrides={
            "server.listen": "127.0.0.1:3",
            "server.log_level": None,  # an unset CLI flag must not mask env
            "engine.tick_queue_limit": 5,
            "engine.order_timeout_s": "2.5",  # strings are parsed like environment values
        },
    )
    assert cfg.server.listen == "127.0.0.1:3"
    assert cfg.server.log_level == "ERROR"
    assert cfg.engine.tick_queue_limit == 5
    assert cfg.engine.order_timeout_s == 2.5


def test_config_path_from_env(tmp_path: Path) -> None:
    path = write(tmp_path, "[server]\nmax_instances = 3\n", name="other.toml")
    assert load_config(env={"MT5EXEC_CONFIG": str(path)}).server.max_instances == 3
    # An explicit path wins over the variable.
    explicit = write(tmp_path, "[server]\nmax_instances = 4\n")
    assert load_config(explicit, env={"MT5EXEC_CONFIG": str(path)}).server.max_instances == 4


def test_config_is_frozen() -> None:
    cfg = load_config(env={})
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.server.listen = "x:1"  # type: ignore[misc]


def test_as_dict_round_trips_through_overrides(tmp_path: Path) -> None:
    path = write(tmp_path, '[server]\nmax_instances = 7\n[history]\npath = "h.duckdb"\n')
    cfg = load_config(path, env={})
    flat = {f"{s}.{k}": v for s, values in cfg.as_dict().items() for k, v in values.items()}
    assert load_config(env={}, overrides=flat) == cfg
    assert isinstance(ServerConfig().history_path, Path)


@pytest.mark.parametrize(
    ("toml", "field", "fragment"),
    [
        ('[server]\nlisten = "abc"', "server.listen", "expected HOST:PORT, got 'abc'"),
        ('[server]\nlisten = "localhost:70000"', "server.listen", "port must be in 0-65535"),
        ('[server]\nlisten = "localhost:http"', "server.listen", "port must be a number"),
        ('[server]\nlisten = ":50051"', "server.listen", "expected HOST:PORT"),
        ('[server]\nlisten = "::1:50051"', "server.listen", "bracket IPv6"),
        ('[server]\nlisten = "[zz]:1"', "server.listen", "valid [IPv6] host"),
        ("[engine]\norder_timeout_s = -1", "engine.order_timeout_s", "must be > 0"),
        ('[engine]\njournal_fsync = "sometimes"', "engine.journal_fsync", "interval:<ms>"),
        ('[engine]\njournal_fsync = "interval:0"', "engine.journal_fsync", "interval:<ms>"),
        ("[mt5]\npoll_interval_ms = 0", "mt5.poll_interval_ms", "must be > 0"),
        ("[engine]\nkill_grace_s = -0.5", "engine.kill_grace_s", "must be >= 0"),
        ("[engine]\nmax_orders_per_instance = 0", "engine.max_orders_per_instance", ">= 1"),
        ("[engine]\nfinal_order_retention_s = 0", "engine.final_order_retention_s", "> 0"),
        ("[engine]\njournal_compact_mb = -1", "engine.journal_compact_mb", "must be > 0"),
        ("[engine]\nexecution_log_max_mb = 0", "engine.execution_log_max_mb", "must be > 0"),
        ("[engine]\nworker_start_timeout_s = 0", "engine.worker_start_timeout_s", "must be > 0"),
        ("[server]\nlisten_addr = 1", "server.listen_addr", "unknown key in [server]"),
        ("[servr]\nlisten = 1", "servr", "unknown section"),
        ("listen = 1", "listen", "unknown key"),
        ("server = 1", "server", "expected a [server] table"),
        ('[server]\nmax_instances = "30"', "server.max_instances", "expected an integer"),
        ("[server]\nmax_instances = 1.5", "server.max_instances", "expected an integer"),
        ("[server]\nmax_instances = true", "server.max_instances", "got bool True"),
        ("[server]\nmax_instances = 0", "server.max_instances", "must be >= 1"),
        ('[history]\nenabled = "yes"', "history.enabled", "expected a boolean"),
        ('[history]\npath = ""', "history.path", "expected a path"),
        ('[server]\nlog_level = "LOUD"', "server.log_level", "expected one of DEBUG, INFO"),
        ("[engine]\norder_timeout_s = nan", "engine.order_timeout_s", "finite"),
    ],
)
def test_bad_file_value_names_file_and_field(
    tmp_path: Path, toml: str, field: str, fragment: str
) -> None:
    path = write(tmp_path, toml)
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    message = str(info.value)
    assert message.startswith(f"{path}: {field}: "), message
    assert fragment in message


def test_sim_section_is_unknown(tmp_path: Path) -> None:
    # Per-instance defaults moved to the instance templates; a leftover [sim] table must fail
    # loudly rather than be silently ignored.
    path = write(tmp_path, '[server]\nmax_instances = 3\n\n[sim]\nsymbols = ["EURUSD"]\n')
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    sections = "server, engine, history, mt5, risk, auth, vault, signals, redis"
    assert str(info.value) == f"{path}: sim: unknown section (sections: {sections})"


def test_invalid_toml_and_missing_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[server\nlisten=")
    with pytest.raises(ConfigError, match=r"mt5exec\.toml: invalid TOML"):
        load_config(path, env={})
    with pytest.raises(ConfigError, match=r"nope\.toml: config file not found"):
        load_config(tmp_path / "nope.toml", env={})


@pytest.mark.parametrize(
    ("var", "value", "field", "fragment"),
    [
        ("MT5EXEC_SERVER_LISTEN", "abc", "server.listen", "expected HOST:PORT, got 'abc'"),
        ("MT5EXEC_LISTEN", "host:-1", "server.listen", "port must be a number"),
        ("MT5EXEC_SERVER_MAX_INSTANCES", "many", "server.max_instances", "expected an integer"),
        ("MT5EXEC_ENGINE_STOP_GRACE_S", "-2", "engine.stop_grace_s", "must be >= 0"),
        ("MT5EXEC_ENGINE_ORDER_TIMEOUT_S", "soon", "engine.order_timeout_s", "expected a number"),
        ("MT5EXEC_HISTORY_ENABLED", "maybe", "history.enabled", "expected a boolean"),
        ("MT5EXEC_SERVER_LOG_LEVEL", "chatty", "server.log_level", "expected one of"),
        ("MT5EXEC_ENGINE_KILL_GRACE_S", "inf", "engine.kill_grace_s", "finite"),
    ],
)
def test_bad_env_value_names_variable_and_field(
    var: str, value: str, field: str, fragment: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(env={var: value})
    message = str(info.value)
    assert message.startswith(f"{var}: {field}: "), message
    assert fragment in message


def test_bad_override() -> None:
    with pytest.raises(ConfigError, match=r"^override: server\.port: unknown key in \[server\]"):
        load_config(env={}, overrides={"server.port": 1})
    with pytest.raises(ConfigError, match=r"^override: listen: unknown setting"):
        load_config(env={}, overrides={"listen": "x:1"})
    with pytest.raises(ConfigError, match=r"^override: sim\.seed: unknown setting"):
        load_config(env={}, overrides={"sim.seed": 1})
    with pytest.raises(ConfigError, match=r"^override: engine\.order_timeout_s: must be > 0"):
        load_config(env={}, overrides={"engine.order_timeout_s": 0})


def test_parse_listen() -> None:
    assert parse_listen("localhost:0") == ("localhost", 0)
    assert parse_listen("[::]:50051") == ("[::]", 50051)
    with pytest.raises(ValueError, match="HOST:PORT"):
        parse_listen("50051")
    # "²" is a digit to str.isdigit(), not to int(): a clear error, not a traceback.
    with pytest.raises(ValueError, match="port must be a number"):
        parse_listen("localhost:\u00b2")


@pytest.mark.parametrize(
    ("listen", "loopback"),
    [
        ("127.0.0.1:1", True),
        ("127.3.2.1:1", True),
        ("[::1]:1", True),
        ("localhost:1", True),
        ("LOCALHOST:1", True),
        ("0.0.0.0:1", False),
        ("[::]:1", False),
        ("192.168.1.5:1", False),
        ("[::ffff:127.0.0.1]:1", False),
        ("myhost:1", False),
    ],
)
def test_is_loopback(listen: str, loopback: bool) -> None:
    assert is_loopback(listen) is loopback


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({"MT5EXEC_SERVER_TLS_CERT": "c.pem"}, "server.tls_key: required with server.tls_cert"),
        ({"MT5EXEC_SERVER_TLS_KEY": "k.pem"}, "server.tls_cert: required with server.tls_key"),
        ({"MT5EXEC_SERVER_TLS_CLIENT_CA": "ca.pem"}, "server.tls_client_ca: requires"),
        ({"MT5EXEC_LISTEN": "[::]:1"}, "server.allow_plaintext = true"),
        ({"MT5EXEC_SERVER_METRICS_LISTEN": "0.0.0.0:1"}, "set server.metrics_token_file"),
        (
            {
                "MT5EXEC_SERVER_METRICS_LISTEN": "10.0.0.1:1",
                "MT5EXEC_SERVER_METRICS_TOKEN_FILE": "t",
            },
            "token in the clear",
        ),
        (
            {"MT5EXEC_AUTH_MTLS": '{"x": {"role": "admin"}}'},
            "auth.mtls: requires server.tls_client_ca",
        ),
        ({"MT5EXEC_AUTH_MTLS": '{"x": {"role": "trader"}}'}, "a trader needs an owner"),
        ({"MT5EXEC_AUTH_MTLS": '{"x": {"role": "admin", "owner": "o"}}'}, "drop owner"),
        ({"MT5EXEC_AUTH_MTLS": '{"x": {"role": "root", "owner": "o"}}'}, "role must be one of"),
        ({"MT5EXEC_AUTH_MTLS": '{"x": {"role": "viewer", "owner": ""}}'}, "owner must be"),
        ({"MT5EXEC_AUTH_MTLS": '{"x": {"role": "viewer", "team": "o"}}'}, "expected { role"),
        ({"MT5EXEC_AUTH_MTLS": "x"}, "expected a JSON object"),
    ],
)
def test_transport_settings_that_would_expose_the_server_are_refused(
    env: dict[str, str], fragment: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(env=env)
    assert fragment in str(info.value)


def test_tls_settings_and_certificate_map(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [server]
        listen = "0.0.0.0:50051"
        tls_cert = "pki/server.pem"
        tls_key = "pki/server.key"
        tls_client_ca = "pki/ca.pem"
        metrics_listen = "[::]:9464"
        metrics_token_file = "pki/token"

        [auth.mtls]
        "CN=ops,O=Acme" = { role = "admin" }
        desk = { role = "trader", owner = "acme" }
        """,
    )
    cfg = load_config(path, env={})
    assert cfg.server.tls_cert == tmp_path / "pki" / "server.pem"
    assert cfg.server.tls_client_ca == tmp_path / "pki" / "ca.pem"
    assert cfg.server.metrics_token_file == tmp_path / "pki" / "token"
    assert dict(cfg.auth.mtls) == {
        "CN=ops,O=Acme": CertificateIdentity("admin"),
        "desk": CertificateIdentity("trader", "acme"),
    }
    assert cfg.as_dict()["auth"]["mtls"] == {
        "CN=ops,O=Acme": {"role": "admin"},
        "desk": {"role": "trader", "owner": "acme"},
    }


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://host/0?password=s3cr3t", "redis://host/0?password=***"),
        ("unix:///r.sock?password=s3cr3t", "unix:///r.sock?password=***"),
        ("redis://:p@s3cr3t@host", "redis://:***@host"),
        ("rediss://user:s3cr3t@host:6380/1", "rediss://user:***@host:6380/1"),
        ("redis://s3cr3t@host", "redis://***@host"),
        ("redis://h/0?db=1&Password=s3cr3t&x=2", "redis://h/0?db=1&Password=***&x=2"),
        ("redis://h:6379/0", "redis://h:6379/0"),
    ],
)
def test_a_redis_password_is_never_shown(url: str, shown: str) -> None:
    config = load_config(env={"MT5EXEC_REDIS_URL": url})
    assert config.redis.display_url == shown
    assert config.as_dict()["redis"]["url"] == shown
    # Refused (not a Redis scheme): the error message masks it too.
    with pytest.raises(ConfigError) as caught:
        load_config(env={"MT5EXEC_REDIS_URL": "http:" + url.partition(":")[2]})
    assert "redis.url" in str(caught.value)
    assert "s3cr3t" not in str(caught.value) and "p@" not in str(caught.value)
