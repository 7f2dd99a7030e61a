"""The sections of ``mt5exec.toml``, one frozen dataclass each, and ``ServerConfig`` that holds
them. Field comments are the reference documentation of the TOML keys.
"""

from __future__ import annotations

import dataclasses
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

from mt5exec.config.values import (
    _at_least_one,
    _fsync_policy,
    _Invalid,
    _listen,
    _listen_or_off,
    _log_level,
    _non_negative,
    _opt,
    _positive,
    parse_listen,
)
from mt5exec.engine import ENGINE_DEFAULTS as _ENGINE
from mt5exec.engine import EngineConfig as _CoreEngineConfig


@dataclass(frozen=True, slots=True)
class ServerSection:
    """``[server]``: the gRPC endpoint and process-wide settings."""

    # HOST:PORT to serve gRPC on; port 0 picks a free port (tests, benchmarks).
    listen: str = field(default="127.0.0.1:50051", metadata=_opt(_listen))
    # Root of all server state: instance directories, history database, journal.
    data_dir: Path = Path("./mt5exec-data")
    # Python logging level name.
    log_level: str = field(default="INFO", metadata=_opt(_log_level))
    # Seconds in-flight RPCs get to finish on shutdown before they are cancelled.
    grace_period_s: float = field(default=5.0, metadata=_opt(_non_negative))
    # Upper bound on concurrently existing instances (each is one worker process).
    max_instances: int = field(default=30, metadata=_opt(_at_least_one))
    # Days worker logs are kept after they were last written (also after DeleteInstance).
    log_retention_days: float = field(default=30.0, metadata=_opt(_positive))
    # Instance config templates (seed 002 shapes); unset means <data_dir>/templates.
    templates_dir: Path | None = None
    # HOST:PORT of the Prometheus endpoint (/metrics); "" turns it off, port 0 picks one.
    metrics_listen: str = field(default="", metadata=_opt(_listen_or_off))
    # File whose content is the token /metrics requires (``Authorization: Bearer <token>``,
    # else 401); required when metrics_listen is not a loopback address.
    metrics_token_file: Path | None = None
    # PEM certificate chain and private key: with both set, gRPC (and /metrics) is served over
    # TLS only. Read at start; a new certificate takes a restart.
    tls_cert: Path | None = None
    tls_key: Path | None = None
    # PEM CA certificates: with it every client must present a certificate one of them signed
    # (mTLS); [auth] mtls maps a certificate's subject to a principal.
    tls_client_ca: Path | None = None
    # Serve without TLS on a listen address that is not loopback (refused otherwise; a warning
    # at start). Loopback is 127.0.0.0/8, ::1 and localhost; 0.0.0.0 and [::] are not.
    allow_plaintext: bool = False

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None

    @property
    def host(self) -> str:
        return parse_listen(self.listen)[0]

    @property
    def port(self) -> int:
        return parse_listen(self.listen)[1]


_MB: Final = 1 << 20


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """``[engine]``: supervision of worker processes and the hot path."""

    # (Heartbeats, restart limits and backoff are per instance: the health_check template.)
    # Seconds a new worker has to connect and complete the handshake.
    worker_start_timeout_s: float = field(default=10.0, metadata=_opt(_positive))
    # Seconds to wait for a terminal's answer before an order becomes UNKNOWN.
    order_timeout_s: float = field(default=10.0, metadata=_opt(_positive))
    # Seconds between the shutdown frame and SIGTERM when stopping a worker.
    stop_grace_s: float = field(default=_ENGINE.stop_grace_s, metadata=_opt(_non_negative))
    # Seconds between SIGTERM and SIGKILL.
    kill_grace_s: float = field(default=_ENGINE.kill_grace_s, metadata=_opt(_non_negative))
    # Messages (a tick batch each, 2 ms apart by default) queued per tick subscriber; beyond it
    # the subscriber is conflated (the latest tick per symbol), which bounds its memory.
    tick_queue_limit: int = field(default=_ENGINE.tick_queue_limit, metadata=_opt(_at_least_one))
    # Seconds a stream may stay blocked on a client that reads nothing before it ends with
    # RESOURCE_EXHAUSTED (SLOW_CONSUMER); until then a tick subscriber is conflated.
    slow_consumer_timeout_s: float = field(default=10.0, metadata=_opt(_positive))
    # When the order journal is fsynced: "always" (before an order is sent; group commit),
    # "interval:<ms>" or "never". Every record is written before the order is sent either way,
    # so a crash of the server process loses nothing; this decides what a power cut loses.
    journal_fsync: str = field(default=_ENGINE.journal_fsync, metadata=_opt(_fsync_policy))
    # The journal is compacted while running once it has grown past this (and twice its size
    # after the last compaction); it is also compacted on every start.
    journal_compact_mb: float = field(
        default=_ENGINE.journal_compact_bytes / _MB, metadata=_opt(_positive)
    )
    # Seconds a final order (filled, cancelled, rejected, expired) is remembered after its last
    # change: its client_order_id stays taken and GetOrder/ListOrders find it. The history
    # database keeps every order for good.
    final_order_retention_s: float = field(
        default=_ENGINE.final_order_retention_s, metadata=_opt(_positive)
    )
    # Orders remembered per instance; beyond it the oldest final ones are forgotten sooner.
    # Working and unknown orders are always remembered.
    max_orders_per_instance: int = field(
        default=_ENGINE.max_orders_per_instance, metadata=_opt(_at_least_one)
    )
    # Megabytes of each instance's execution event log kept on disk (what a client resuming a
    # StreamExecutions from a sequence can be replayed), in segments of an eighth of it; events
    # older than final_order_retention_s go too.
    execution_log_max_mb: float = field(
        default=_ENGINE.execution_log_bytes / _MB, metadata=_opt(_positive)
    )
    # With more than 20 stream subscribers each waits up to this long between its messages,
    # so that busy ones get fewer, larger messages (latency traded for capacity); 0: never.
    stream_coalesce_max_ms: float = field(
        default=_ENGINE.stream_coalesce_max_s * 1000.0, metadata=_opt(_non_negative)
    )
    # Kilobytes a tick, account or instance-event subscriber may leave queued unread (what
    # it costs the server) before the engine cuts it off with SLOW_CONSUMER at once.
    stream_queue_max_kb: int = field(
        default=_ENGINE.stream_queue_max_bytes >> 10, metadata=_opt(_at_least_one)
    )

    def core(self, journal_path: Path | None) -> _CoreEngineConfig:
        """The engine's config: this section in the engine's units."""
        return _CoreEngineConfig(
            journal_path=journal_path,
            journal_fsync=self.journal_fsync,
            stop_grace_s=self.stop_grace_s,
            kill_grace_s=self.kill_grace_s,
            tick_queue_limit=self.tick_queue_limit,
            stream_queue_max_bytes=self.stream_queue_max_kb << 10,
            stream_coalesce_max_s=self.stream_coalesce_max_ms / 1000.0,
            final_order_retention_s=self.final_order_retention_s,
            max_orders_per_instance=self.max_orders_per_instance,
            journal_compact_bytes=max(1, int(self.journal_compact_mb * _MB)),
            execution_log_bytes=max(1, int(self.execution_log_max_mb * _MB)),
        )


@dataclass(frozen=True, slots=True)
class HistoryConfig:
    """``[history]``: the DuckDB history database (see ``mt5exec.storage.history``)."""

    # Write instances, orders and executions to DuckDB at all.
    enabled: bool = True
    # Database file; unset means <server.data_dir>/history.duckdb.
    path: Path | None = None
    # Longest time a recorded row waits in memory before it is written.
    flush_interval_ms: int = field(default=1000, metadata=_opt(_positive))
    # Queued rows that trigger a write before the interval is up. A write (a transaction)
    # costs the history process ~20 ms of CPU whatever its rows: orders streaming in at
    # 1,000/s (3 rows each) paid it 3 times a second at 1,000 rows, at 10,000 once.
    batch_size: int = field(default=10_000, metadata=_opt(_at_least_one))
    # Store every tick too (table `ticks`), written in batches off the fan-out path.
    ticks: bool = False
    # Days ticks are kept.
    tick_retention_days: float = field(default=30.0, metadata=_opt(_positive))
    # Where ExportHistory may write (its out_dir resolves inside it; a relative one is taken
    # relative to it); unset means <server.data_dir>/exports.
    export_dir: Path | None = None


@dataclass(frozen=True, slots=True)
class Mt5Config:
    """``[mt5]``: instances attached to a MetaTrader 5 terminal (backend MT5)."""

    # Module with the MetaTrader5 API: the official package, or "mt5exec.mt5.simterminal"
    # (the simulated broker behind the same API, for Linux tests and demos).
    module: str = "MetaTrader5"
    # A base MT5 installation copied into each instance's directory; unset: no terminal is
    # started by mt5exec (the module attaches to one it finds).
    terminal_base: Path | None = None
    # Command that runs Windows programs on Linux, e.g. "wine"; empty on Windows.
    wine: str = ""
    # How often the worker polls its terminal for ticks and fills, in milliseconds.
    poll_interval_ms: int = field(default=50, metadata=_opt(_positive))


@dataclass(frozen=True, slots=True)
class RiskConfig:
    """``[risk]``: the limits that span instances (per-instance limits are in the templates'
    ``risk.json`` and change at runtime through UpdateInstanceConfig)."""

    # Orders (and modifications, cancels) per second over the whole server; 0: unlimited.
    global_orders_per_second: float = field(default=0.0, metadata=_opt(_non_negative))
    # The same per owner, for owners the owners file does not name; 0: unlimited.
    owner_orders_per_second: float = field(default=0.0, metadata=_opt(_non_negative))
    # JSON {"<owner>": {"allowed_symbols": [...], "orders_per_second": N}}; unset means
    # <data_dir>/risk_owners.json when it exists.
    owners_file: Path | None = None


def _redis_url(value: Any) -> Any:
    text = str(value)
    if text and not text.startswith(("redis://", "rediss://", "unix://")):
        raise _Invalid(f"expected redis://, rediss:// (TLS) or unix:// URL, got {_masked(text)!r}")
    return text


def _masked(url: str) -> str:
    """``url`` for logs, the config dump and error messages: the password of its user part
    (all of a user part without ``:``, which some clients take for a password) and every
    query parameter naming a password (``?password=``) replaced by ``***``."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:  # e.g. an unbalanced '[' in the host: nothing of it is shown
        return "***"
    netloc = parts.netloc
    if "@" in netloc:
        user, _, host = netloc.rpartition("@")  # the last '@': a password may hold one
        name, colon, _ = user.partition(":")
        netloc = f"{name}:***@{host}" if colon else f"***@{host}"
    query = "&".join(
        f"{key}=***" if "password" in urllib.parse.unquote_plus(key).lower() else key + eq + value
        for key, eq, value in (item.partition("=") for item in parts.query.split("&"))
    )
    shown = f"{parts.scheme}:" if parts.scheme else ""
    if parts.netloc or url[len(shown) :].startswith("//"):
        shown += f"//{netloc}"
    shown += parts.path
    if parts.query:
        shown += f"?{query}"
    if parts.fragment:
        shown += "#***"
    return shown


def _redis_prefix(value: Any) -> Any:
    if any(c.isspace() for c in str(value)):
        raise _Invalid(f"must not contain whitespace, got {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class RedisConfig:
    """``[redis]``: the live mirror of instance, account, position and execution state in
    Redis (docs/redis.md). Off while ``url`` is empty; trading never waits for it."""

    # redis://[user:password@]host:port/db, rediss:// for TLS, unix:///path.sock; "" is off.
    url: str = field(default="", metadata=_opt(_redis_url))
    # A file whose content is the password (wins over one in the URL).
    password_file: Path | None = None
    # PEM CA certificates a rediss:// server's certificate is checked against (unset: the
    # system's).
    tls_ca_file: Path | None = None
    # Put before every key, stream and channel name.
    prefix: str = field(default="mt5exec:", metadata=_opt(_redis_prefix))
    # Entries a stream keeps (approximate MAXLEN: trimmed in whole nodes, at least this many).
    stream_maxlen: int = field(default=100_000, metadata=_opt(_at_least_one))
    # Publish every tick on the pub/sub channel <prefix>ticks:<instance_id>.
    ticks: bool = False
    # Seconds the keys of a finished execution (filled, cancelled, rejected) live; 0: forever.
    execution_ttl_s: float = field(default=86_400.0, metadata=_opt(_non_negative))
    # How often instance health, accounts and positions are written at least.
    refresh_interval_ms: int = field(default=1000, metadata=_opt(_positive))
    # The shortest time between two batches of the mirror's writes (everything that came
    # meanwhile goes in one pipeline): its lag behind the engine against its CPU per order.
    batch_interval_ms: int = field(default=25, metadata=_opt(_positive))

    @property
    def enabled(self) -> bool:
        return bool(self.url)

    @property
    def display_url(self) -> str:
        return _masked(self.url)


ROLES: Final = ("admin", "trader", "viewer")


def _leeway(value: Any) -> Any:
    if not 0 <= value <= 300:
        raise _Invalid(f"must be in [0, 300] seconds, got {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class CertificateIdentity:
    """The principal a client certificate is (a value of ``[auth.mtls]``)."""

    role: str
    # The owner whose instances it may see; None (only for admin) is every owner.
    owner: str | None = None


def _no_identities() -> Mapping[str, CertificateIdentity]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class AuthConfig:
    """``[auth]``: who may call and how they prove it (see docs/security.md)."""

    # Every call but health and reflection needs a bearer token (an API key or a JWT). false
    # is refused unless server.listen is a loopback address; every call is then an admin.
    enabled: bool = True
    # HS256 JWTs: a file holding the shared secret (at least 32 bytes).
    jwt_secret_file: Path | None = None
    # RS256 or EdDSA JWTs: a PEM public key (RSA or Ed25519).
    jwt_public_key_file: Path | None = None
    # RS256 or EdDSA JWTs: a JWKS file (RSA and Ed25519 keys; a token's "kid" picks one).
    jwt_jwks_file: Path | None = None
    # Seconds of clock skew allowed on a JWT's exp, nbf and iat (0 to 300).
    jwt_leeway_s: float = field(default=30.0, metadata=_opt(_leeway))
    # When set, a JWT's "iss" / "aud" must be this.
    jwt_issuer: str = ""
    jwt_audience: str = ""
    # [auth.mtls]: a verified client certificate -> the principal it is, e.g.
    #   "CN=ops,O=Acme" = { role = "admin" }
    #   "alice" = { role = "trader", owner = "acme" }
    # A key with "=" is the certificate's full RFC 4514 subject (`openssl x509 -noout -subject
    # -nameopt RFC2253`), any other its common name. Needs server.tls_client_ca.
    mtls: Mapping[str, CertificateIdentity] = field(default_factory=_no_identities)
    # Calls each principal may make per second, every RPC (a stream counts once, when it
    # opens), from a bucket of rpc_burst; over it: RESOURCE_EXHAUSTED (RATE_LIMITED) with
    # RetryInfo. 0: no limit. (Health and reflection are not counted.)
    rpc_per_second: float = field(default=10000.0, metadata=_opt(_non_negative))
    rpc_burst: int = field(default=20000, metadata=_opt(_at_least_one))
    # Failed authentications one peer address may make per peer_failures_window_s; past them
    # its failures are answered RESOURCE_EXHAUSTED (AUTH_THROTTLED) for peer_cooldown_s
    # (valid tokens from it still pass). 0: no throttle.
    peer_failures: int = field(default=20, metadata=_opt(_non_negative))
    peer_failures_window_s: float = field(default=60.0, metadata=_opt(_positive))
    peer_cooldown_s: float = field(default=60.0, metadata=_opt(_positive))


@dataclass(frozen=True, slots=True)
class VaultConfig:
    """``[vault]``: where MT5 credentials are kept, encrypted (see docs/security.md). The
    master key comes from the environment variable MT5EXEC_VAULT_KEY when it is set."""

    # The master key file (created 0600 on the first start); unset means <data_dir>/vault.key.
    key_file: Path | None = None
    # libpq connection string of a PostgreSQL database to keep the credentials in; empty: the
    # embedded SQLite file <data_dir>/vault.db.
    postgres_dsn: str = ""


def _window(value: Any) -> Any:
    if not 0 < value <= 3600:
        raise _Invalid(f"must be in (0, 3600] seconds, got {value!r}")
    return value


def _no_sources() -> Mapping[str, Path]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class SignalsConfig:
    """``[signals]``: the sources PublishSignal accepts signals of (see docs/signals.md)."""

    # Seconds a signal's timestamp may be off the server's clock, either way.
    window_s: float = field(default=30.0, metadata=_opt(_window))
    # [signals.sources]: source name -> file holding its HMAC-SHA256 secret (at least 32 bytes,
    # readable by the server's user only), e.g. tradingview = "/etc/mt5exec/tv.secret".
    sources: Mapping[str, Path] = field(default_factory=_no_sources)


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """The whole configuration; built by :func:`load_config`."""

    server: ServerSection = field(default_factory=ServerSection)
    engine: EngineConfig = field(default_factory=EngineConfig)
    history: HistoryConfig = field(default_factory=HistoryConfig)
    mt5: Mt5Config = field(default_factory=Mt5Config)
    risk: RiskConfig = field(default_factory=RiskConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    vault: VaultConfig = field(default_factory=VaultConfig)
    signals: SignalsConfig = field(default_factory=SignalsConfig)
    redis: RedisConfig = field(default_factory=RedisConfig)

    @property
    def data_dir(self) -> Path:
        return self.server.data_dir

    @property
    def instances_dir(self) -> Path:
        """Parent of the per-instance working directories."""
        return self.server.data_dir / "instances"

    @property
    def journal_path(self) -> Path:
        """The order journal (idempotency and recovery)."""
        return self.server.data_dir / "journal" / "orders.journal"

    @property
    def logs_dir(self) -> Path:
        """Parent of the per-instance log directories (kept after an instance is deleted)."""
        return self.server.data_dir / "logs"

    @property
    def templates_path(self) -> Path:
        """Where operators put template overrides."""
        if self.server.templates_dir is not None:
            return self.server.templates_dir
        return self.server.data_dir / "templates"

    @property
    def risk_owners_path(self) -> Path:
        """Owners' whitelists and order rates."""
        if self.risk.owners_file is not None:
            return self.risk.owners_file
        return self.server.data_dir / "risk_owners.json"

    @property
    def kill_switch_path(self) -> Path:
        """Engaged owner and global kill switches (instances keep theirs in instance.json)."""
        return self.server.data_dir / "kill_switch.json"

    @property
    def history_path(self) -> Path:
        """The DuckDB file, defaulting to ``<data_dir>/history.duckdb``."""
        if self.history.path is not None:
            return self.history.path
        return self.server.data_dir / "history.duckdb"

    @property
    def history_export_dir(self) -> Path:
        """Where ExportHistory writes, defaulting to ``<data_dir>/exports``."""
        if self.history.export_dir is not None:
            return self.history.export_dir
        return self.server.data_dir / "exports"

    @property
    def vault_key_path(self) -> Path:
        """The vault's master key file (when MT5EXEC_VAULT_KEY is not set)."""
        if self.vault.key_file is not None:
            return self.vault.key_file
        return self.server.data_dir / "vault.key"

    @property
    def vault_db_path(self) -> Path:
        """The embedded vault store."""
        return self.server.data_dir / "vault.db"

    def as_dict(self) -> dict[str, dict[str, Any]]:
        """Effective settings as plain TOML-compatible values (for ``config show`` and logs)."""
        out: dict[str, dict[str, Any]] = {}
        for name in _SECTIONS:
            section = getattr(self, name)
            values: dict[str, Any] = {}
            for f in dataclasses.fields(section):
                value = getattr(section, f.name)
                if isinstance(value, Path):
                    value = str(value)
                elif isinstance(value, tuple):
                    value = list(value)
                elif isinstance(value, Mapping):
                    value = {k: _plain_value(v) for k, v in value.items()}
                if section is self.redis and f.name == "url":
                    value = _masked(value)
                if value is not None:
                    values[f.name] = value
            out[name] = values
        return out


_SECTIONS: Final[Mapping[str, type[Any]]] = {
    "server": ServerSection,
    "engine": EngineConfig,
    "history": HistoryConfig,
    "mt5": Mt5Config,
    "risk": RiskConfig,
    "auth": AuthConfig,
    "vault": VaultConfig,
    "signals": SignalsConfig,
    "redis": RedisConfig,
}


def _plain_value(value: CertificateIdentity | Path) -> dict[str, str] | str:
    return str(value) if isinstance(value, Path) else _plain_identity(value)


def _plain_identity(identity: CertificateIdentity) -> dict[str, str]:
    plain = {"role": identity.role}
    if identity.owner is not None:
        plain["owner"] = identity.owner
    return plain


_IDENTITIES: Final = Mapping[str, CertificateIdentity]
_SOURCES: Final = Mapping[str, Path]
_SOURCE_NAME: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")


def _sources(value: Any) -> Mapping[str, Path]:
    if not isinstance(value, Mapping):
        raise _Invalid(f'expected a table of source = "secret file", got {value!r}')
    out: dict[str, Path] = {}
    for name, path in value.items():
        if not isinstance(name, str) or not _SOURCE_NAME.fullmatch(name):
            raise _Invalid(f"a source name is [A-Za-z0-9_-]{{1,64}}, got {name!r}")
        if not isinstance(path, str) or not path:
            raise _Invalid(f"{name!r}: expected the path of its secret file, got {path!r}")
        out[name] = Path(path).expanduser().resolve()
    return MappingProxyType(out)


def _identities(value: Any) -> Mapping[str, CertificateIdentity]:
    if not isinstance(value, Mapping):
        raise _Invalid(f"expected a table of subject = {{ role, owner }}, got {value!r}")
    out: dict[str, CertificateIdentity] = {}
    for subject, entry in value.items():
        if not isinstance(subject, str) or not subject.strip():
            raise _Invalid(f"expected a certificate subject or common name, got {subject!r}")
        if not isinstance(entry, Mapping) or set(entry) - {"role", "owner"}:
            raise _Invalid(f"{subject!r}: expected {{ role = ..., owner = ... }}, got {entry!r}")
        role, owner = entry.get("role"), entry.get("owner")
        if role not in ROLES:
            raise _Invalid(f"{subject!r}: role must be one of {', '.join(ROLES)}, got {role!r}")
        if owner is not None and (not isinstance(owner, str) or not owner):
            raise _Invalid(f"{subject!r}: owner must be a non-empty string, got {owner!r}")
        if role == "admin" and owner is not None:
            raise _Invalid(f"{subject!r}: an admin is every owner's; drop owner")
        if role != "admin" and owner is None:
            raise _Invalid(f"{subject!r}: a {role} needs an owner")
        out[subject] = CertificateIdentity(role, owner)
    return MappingProxyType(out)
