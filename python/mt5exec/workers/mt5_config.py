"""The MT5 worker's config file (JSON): ``WorkerConfig``, its loading and checks, and the
password read once from ``password_file``.

Config (JSON): ``instance_id``; ``module`` (default ``MetaTrader5``); ``terminal_path`` (given
to ``initialize``; a folder holding ``terminal64.exe`` becomes the path of that file, which is
what the real package wants); ``login``, ``server`` (0 / empty: unset); ``password_file`` (read
once, deleted when ``delete_password_file`` is true; missing: attach without a password, as a
terminal with saved credentials does); ``symbols``; ``poll_interval_ms`` (50);
``broker_retry_attempts`` (5), ``broker_retry_initial_ms`` (1000), ``broker_retry_max_ms``
(30000); ``init_timeout_ms`` (60000, ``initialize``'s timeout); ``account_interval_ms`` (250);
``tick_source`` (``"info"``: ``symbol_info_tick``, or ``"copy"``: ``copy_ticks_from``);
and for a terminal this worker starts itself: ``terminal_base`` (a base MT5 install),
``instance_dir`` (default: the working directory), ``wine`` (command list), ``scrub_after_s``.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from mt5exec.workers.base import ConfigError

log = logging.getLogger("mt5exec.workers.mt5")


@dataclass(slots=True)
class WorkerConfig:
    instance_id: str = "mt5"
    module: str = "MetaTrader5"
    terminal_path: str | None = None
    login: int | None = None
    server: str | None = None
    password_file: Path | None = None
    delete_password_file: bool = False
    symbols: list[str] = field(default_factory=list)
    poll_interval_ms: int = 50
    broker_retry_attempts: int = 5
    broker_retry_initial_ms: int = 1000
    broker_retry_max_ms: int = 30_000
    # terminal_info() says the broker connection is lost: log in again this often.
    broker_relogin_after_ms: int = 5000
    init_timeout_ms: int = 60_000
    account_interval_ms: int = 250
    tick_source: Literal["info", "copy"] = "info"
    terminal_base: Path | None = None
    instance_dir: Path | None = None
    wine: list[str] | None = None
    scrub_after_s: float = 60.0


_INT_KEYS = {
    "login": 0,
    "poll_interval_ms": 1,
    "broker_retry_attempts": 1,
    "broker_retry_initial_ms": 0,
    "broker_retry_max_ms": 0,
    "broker_relogin_after_ms": 0,
    "init_timeout_ms": 1,
    "account_interval_ms": 0,
}
_STR_KEYS = ("instance_id", "module")
# Optional strings: empty means unset, as the engine writes them for an account without them.
_OPTIONAL_STR_KEYS = ("terminal_path", "server")
_PATH_KEYS = ("password_file", "terminal_base", "instance_dir")


def load_config(path: Path, instance_id: str | None = None) -> WorkerConfig:
    """Read the worker's JSON config; missing keys take their defaults, unknown ones are ignored."""
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ConfigError(f"{path}: cannot read config: {e}") from e
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a JSON object")
    cfg = WorkerConfig()
    known = {f for f in WorkerConfig.__dataclass_fields__}
    extra = sorted(set(raw) - known)
    if extra:
        # Tolerated so that the engine may keep its own bookkeeping keys in the same file.
        log.warning("%s: ignoring unknown config keys: %s", path, ", ".join(extra))

    def bad(key: str, what: str) -> ConfigError:
        return ConfigError(f"{path}: {key}: expected {what}, got {raw[key]!r}")

    for key, minimum in _INT_KEYS.items():
        if raw.get(key) is not None:
            v = raw[key]
            if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
                raise bad(key, f"an integer >= {minimum}")
            setattr(cfg, key, v)
    if cfg.login == 0:
        cfg.login = None  # 0: no account given, the terminal's own
    for key in _STR_KEYS:
        if raw.get(key) is not None:
            if not isinstance(raw[key], str) or not raw[key].strip():
                raise bad(key, "a non-empty string")
            setattr(cfg, key, raw[key])
    for key in _OPTIONAL_STR_KEYS:
        if raw.get(key) is not None:
            if not isinstance(raw[key], str):
                raise bad(key, "a string")
            setattr(cfg, key, raw[key] or None)
    for key in _PATH_KEYS:
        if raw.get(key) is not None:
            if not isinstance(raw[key], str) or not raw[key].strip():
                raise bad(key, "a path")
            setattr(cfg, key, Path(raw[key]))
    if "delete_password_file" in raw:
        if not isinstance(raw["delete_password_file"], bool):
            raise bad("delete_password_file", "true or false")
        cfg.delete_password_file = raw["delete_password_file"]
    if "symbols" in raw:
        symbols = raw["symbols"]
        if not isinstance(symbols, list) or not all(isinstance(s, str) and s for s in symbols):
            raise bad("symbols", "a list of symbol names")
        cfg.symbols = list(dict.fromkeys(symbols))
    if "tick_source" in raw:
        if raw["tick_source"] not in ("info", "copy"):
            raise bad("tick_source", "'info' or 'copy'")
        cfg.tick_source = raw["tick_source"]
    if raw.get("wine") is not None:
        wine = raw["wine"]
        if not isinstance(wine, list) or not all(isinstance(w, str) and w for w in wine):
            raise bad("wine", 'a command as a list, e.g. ["wine"]')
        # []: no Wine, the terminal runs natively (Windows).
        cfg.wine = list(wine) or None
    if "scrub_after_s" in raw:
        v = raw["scrub_after_s"]
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v <= 0:
            raise bad("scrub_after_s", "a positive number of seconds")
        cfg.scrub_after_s = float(v)
    if cfg.terminal_base is not None and cfg.login is None:
        raise ConfigError(f"{path}: login: needed to start a terminal from terminal_base")
    if cfg.terminal_base is not None and cfg.server is None:
        raise ConfigError(f"{path}: server: needed to start a terminal from terminal_base")
    if instance_id:
        cfg.instance_id = instance_id
    return cfg


def read_password(cfg: WorkerConfig) -> str | None:
    """The password from ``password_file`` (deleted afterwards if configured); None if unset."""
    if cfg.password_file is None:
        return None
    try:
        text = cfg.password_file.read_text()
    except FileNotFoundError:
        # No password for this start: the terminal logs in with what it has saved, if anything.
        log.warning(
            "password_file %s does not exist: attaching without a password", cfg.password_file
        )
        return None
    except OSError as e:
        # The error names the file, never its content.
        raise ConfigError(f"password_file {cfg.password_file}: {e.strerror or e}") from None
    if cfg.delete_password_file:
        try:
            cfg.password_file.unlink()
        except OSError as e:
            log.warning("cannot delete password_file %s: %s", cfg.password_file, e.strerror)
    password = text.rstrip("\r\n")
    if not password:
        raise ConfigError(f"password_file {cfg.password_file}: empty")
    return password
