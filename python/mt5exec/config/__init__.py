"""Server configuration: the typed settings every other module reads, and how they are loaded.

This module owns the schema of ``mt5exec.toml`` (sections ``[server]``, ``[engine]``,
``[history]``, ``[mt5]``, ``[risk]``, ``[redis]``, ...), its defaults, and the precedence of the
sources that can set a field:

    defaults < TOML file < environment (``MT5EXEC_<SECTION>_<KEY>``) < overrides (CLI flags)

Every value is converted and validated where it enters, so a bad value is reported with the
source that supplied it and the field it was meant for, e.g.
``mt5exec.toml: server.listen: expected HOST:PORT, got 'abc'``. Unknown sections and keys in
the file are errors: a typo must not silently fall back to a default on a trading server.

Relative paths (``server.data_dir``, ``server.templates_dir``, ``history.path``,
``history.export_dir``) are resolved against the current working directory, as any path given
on a command line would be.

Per-instance settings (symbols, seed, tick rate, balance, leverage, currency, margin mode) are
not server settings: they come from the instance config templates (``mt5exec.templates``), so
there is no ``[sim]`` section; one in a file is an unknown section like any other.
"""

from __future__ import annotations

from mt5exec.config.exposure import check_auth, check_transport
from mt5exec.config.load import ENV_PREFIX, load_config
from mt5exec.config.sections import (
    AuthConfig,
    CertificateIdentity,
    EngineConfig,
    HistoryConfig,
    RedisConfig,
    RiskConfig,
    ServerConfig,
    ServerSection,
    SignalsConfig,
    VaultConfig,
)
from mt5exec.config.values import is_loopback, parse_listen
from mt5exec.config_error import ConfigError

__all__ = [
    "ENV_PREFIX",
    "AuthConfig",
    "CertificateIdentity",
    "ConfigError",
    "EngineConfig",
    "HistoryConfig",
    "RedisConfig",
    "RiskConfig",
    "ServerConfig",
    "ServerSection",
    "SignalsConfig",
    "VaultConfig",
    "check_auth",
    "check_transport",
    "is_loopback",
    "load_config",
    "parse_listen",
]
