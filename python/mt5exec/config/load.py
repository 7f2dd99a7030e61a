"""Loading the server config: defaults < TOML file < environment (``MT5EXEC_<SECTION>_<KEY>``)
< overrides, each value converted and checked where it enters.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from mt5exec.config.convert import (
    _FIELDS,
    _convert,
)
from mt5exec.config.exposure import check_auth, check_transport
from mt5exec.config.sections import (
    _SECTIONS,
    AuthConfig,
    HistoryConfig,
    Mt5Config,
    RedisConfig,
    RiskConfig,
    ServerConfig,
    ServerSection,
    VaultConfig,
)
from mt5exec.config.values import (
    _Invalid,
)
from mt5exec.config_error import ConfigError

ENV_PREFIX: Final = "MT5EXEC_"
# Names a config file when load_config() gets no path; an explicit path always wins.
CONFIG_PATH_ENV: Final = "MT5EXEC_CONFIG"
# Short spellings kept for the two settings operators set most (e.g. in a container spec).
# The long form wins when both are set, being the more specific of the two.
ENV_ALIASES: Final[Mapping[str, str]] = {
    "MT5EXEC_LISTEN": "server.listen",
    "MT5EXEC_DATA_DIR": "server.data_dir",
}


# section -> field -> value, accumulated source by source so the last source wins.
_Values = dict[str, dict[str, Any]]


def _set(values: _Values, source: str, dotted: str, raw: Any, *, text: bool) -> None:
    section, _, key = dotted.partition(".")
    cls = _SECTIONS.get(section)
    if cls is None or not key:
        raise ConfigError(f"{source}: {dotted}: unknown setting (sections: {', '.join(_SECTIONS)})")
    if key not in _FIELDS[cls]:
        known = ", ".join(_FIELDS[cls])
        raise ConfigError(f"{source}: {dotted}: unknown key in [{section}] (known: {known})")
    try:
        values.setdefault(section, {})[key] = _convert(cls, key, raw, text=text)
    except _Invalid as exc:
        raise ConfigError(f"{source}: {dotted}: {exc}") from None


def _read_file(path: Path, values: _Values) -> None:
    source = str(path)
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{source}: config file not found") from None
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read config file: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: invalid TOML: {exc}") from None
    for section, table in data.items():
        if section not in _SECTIONS:
            where = "key" if not isinstance(table, dict) else "section"
            raise ConfigError(
                f"{source}: {section}: unknown {where} (sections: {', '.join(_SECTIONS)})"
            )
        if not isinstance(table, dict):
            raise ConfigError(f"{source}: {section}: expected a [{section}] table")
        for key, raw in table.items():
            _set(values, source, f"{section}.{key}", raw, text=False)


def _env_key(section: str, key: str) -> str:
    return f"{ENV_PREFIX}{section.upper()}_{key.upper()}"


def _read_env(env: Mapping[str, str], values: _Values) -> None:
    # Aliases first so the long, more specific spelling overwrites them when both are set.
    for var, dotted in ENV_ALIASES.items():
        if var in env:
            _set(values, var, dotted, env[var], text=True)
    # Unknown MT5EXEC_* variables are not errors: other components (e.g. the credential
    # vault's key) read their own variables with the same prefix.
    for section, cls in _SECTIONS.items():
        for key in _FIELDS[cls]:
            var = _env_key(section, key)
            if var in env:
                _set(values, var, f"{section}.{key}", env[var], text=True)


def _read_overrides(overrides: Mapping[str, object], values: _Values) -> None:
    for dotted, raw in overrides.items():
        # argparse leaves unset flags as None; they must not mask lower sources.
        if raw is None:
            continue
        _set(values, "override", dotted, raw, text=isinstance(raw, str))


def _resolve(path: Path) -> Path:
    return path.expanduser().resolve()


def _resolve_opt(path: Path | None) -> Path | None:
    return None if path is None else _resolve(path)


def load_config(
    path: Path | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, object] | None = None,
) -> ServerConfig:
    """Build the server configuration from defaults, a TOML file, the environment and overrides.

    Args:
        path: TOML file to read. When None, ``$MT5EXEC_CONFIG`` names the file if set,
            otherwise no file is read.
        env: Environment to read ``MT5EXEC_*`` variables from; ``os.environ`` when None.
        overrides: Highest-priority values keyed ``"section.key"`` (from CLI flags). String
            values are parsed like environment values; None values are ignored.

    Raises:
        ConfigError: naming the source and the field of the first bad value.
    """
    environ: Mapping[str, str] = os.environ if env is None else env
    values: _Values = {}
    if path is None and environ.get(CONFIG_PATH_ENV):
        path = Path(environ[CONFIG_PATH_ENV])
    if path is not None:
        _read_file(Path(path), values)
    _read_env(environ, values)
    if overrides:
        _read_overrides(overrides, values)

    sections: dict[str, Any] = {}
    for name, cls in _SECTIONS.items():
        sections[name] = cls(**values.get(name, {}))
    server: ServerSection = sections["server"]
    sections["server"] = dataclasses.replace(
        server,
        data_dir=_resolve(server.data_dir),
        templates_dir=_resolve_opt(server.templates_dir),
        metrics_token_file=_resolve_opt(server.metrics_token_file),
        tls_cert=_resolve_opt(server.tls_cert),
        tls_key=_resolve_opt(server.tls_key),
        tls_client_ca=_resolve_opt(server.tls_client_ca),
    )
    mt5: Mt5Config = sections["mt5"]
    if mt5.terminal_base is not None:
        sections["mt5"] = dataclasses.replace(mt5, terminal_base=_resolve(mt5.terminal_base))
    history: HistoryConfig = sections["history"]
    sections["history"] = dataclasses.replace(
        history, path=_resolve_opt(history.path), export_dir=_resolve_opt(history.export_dir)
    )
    risk: RiskConfig = sections["risk"]
    if risk.owners_file is not None:
        sections["risk"] = dataclasses.replace(risk, owners_file=_resolve(risk.owners_file))
    vault: VaultConfig = sections["vault"]
    sections["vault"] = dataclasses.replace(vault, key_file=_resolve_opt(vault.key_file))
    redis: RedisConfig = sections["redis"]
    sections["redis"] = dataclasses.replace(
        redis,
        password_file=_resolve_opt(redis.password_file),
        tls_ca_file=_resolve_opt(redis.tls_ca_file),
    )
    auth: AuthConfig = sections["auth"]
    sections["auth"] = dataclasses.replace(
        auth,
        jwt_secret_file=_resolve_opt(auth.jwt_secret_file),
        jwt_public_key_file=_resolve_opt(auth.jwt_public_key_file),
        jwt_jwks_file=_resolve_opt(auth.jwt_jwks_file),
    )
    config = ServerConfig(**sections)
    check_transport(config)
    check_auth(config)
    logging.getLogger("mt5exec.config").debug(
        "configuration loaded from %s", path if path is not None else "defaults"
    )
    return config
