"""The templates as loaded and an instance's runtime config: ``Templates`` (the packaged
defaults overridden file by file), ``RuntimeConfig`` (generated once, then read from
``<instance_dir>/config/runtime.json`` with its version and checksum).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Final

from mt5exec.files import atomic_write
from mt5exec.sim.state import Retention
from mt5exec.templates.parse import (
    _check_id,
    _cross_check,
    _loads,
    _parse_object,
    _parse_pairs,
    _read_json,
    _reject_unknown,
    _Where,
)
from mt5exec.templates.sections import (
    _SECTION_CLASSES,
    DEFAULT_TRADE_PAIRS,
    BrokerSection,
    ExecutionSection,
    HealthCheckSection,
    InstanceSection,
    RiskSection,
    TradePair,
)
from mt5exec.templates.values import (
    _SYMBOL,
    TemplateError,
    _Invalid,
    _show,
)

log = logging.getLogger("mt5exec.templates")

SECTION_NAMES: Final = ("broker", "instance", "execution", "risk", "health_check", "trade_pairs")
# Sub-directory of an instance directory that holds its generated config.
CONFIG_DIR: Final = "config"
RUNTIME_FILE: Final = "runtime.json"
# Bumped when the layout of runtime.json changes incompatibly; an unknown version regenerates.
RUNTIME_VERSION: Final = 1
_DEFAULTS_PACKAGE: Final = "mt5exec.template_defaults"


@dataclass(frozen=True, slots=True)
class Templates:
    """The six templates every instance's runtime config is generated from."""

    broker: BrokerSection = field(default_factory=BrokerSection)
    instance: InstanceSection = field(default_factory=InstanceSection)
    execution: ExecutionSection = field(default_factory=ExecutionSection)
    risk: RiskSection = field(default_factory=RiskSection)
    health_check: HealthCheckSection = field(default_factory=HealthCheckSection)
    # The catalogue of tradable symbols.
    trade_pairs: tuple[TradePair, ...] = DEFAULT_TRADE_PAIRS
    # Section name -> file it came from, for error messages.
    sources: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    def trade_pair(self, symbol: str) -> TradePair | None:
        return next((p for p in self.trade_pairs if p.trade_pair == symbol), None)


@dataclass(frozen=True, slots=True)
class RuntimeConfig:
    """The generated config of one instance: the six sections with overrides applied.

    ``trade_pairs`` holds the catalogue entries of the instance's symbols, in the order of
    ``instance.trade_pairs``. Build it with :func:`build_runtime_config`.
    """

    owner: str
    broker: BrokerSection
    instance: InstanceSection
    execution: ExecutionSection
    risk: RiskSection
    health_check: HealthCheckSection
    trade_pairs: tuple[TradePair, ...]

    @property
    def instance_id(self) -> str:
        return self.instance.instance_id

    def to_dict(self) -> dict[str, Any]:
        """The sections as plain JSON values (without version and checksum)."""
        out: dict[str, Any] = {"owner": self.owner}
        for name in _SECTION_CLASSES:
            out[name] = _as_json(getattr(self, name))
        out["trade_pairs"] = [_as_json(p) for p in self.trade_pairs]
        return out

    def checksum(self) -> str:
        return _checksum({"version": RUNTIME_VERSION, **self.to_dict()})

    def to_json(self) -> str:
        """The content of ``runtime.json``: version, checksum, owner and the six sections."""
        body = {"version": RUNTIME_VERSION, **self.to_dict()}
        return json.dumps({"checksum": _checksum(body), **body}, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str, source: str = RUNTIME_FILE) -> RuntimeConfig:
        """Parse and validate ``runtime.json`` content.

        Raises:
            TemplateError: naming ``source`` and the field, when the text is not JSON, has
                another version, fails its checksum or holds an invalid or missing value.
        """
        data = _loads(text, source)
        if not isinstance(data, dict):
            raise TemplateError(f"{source}: expected a JSON object, got {_show(data)}")
        version = data.get("version")
        if version != RUNTIME_VERSION:
            raise TemplateError(
                f"{source}: version: expected {RUNTIME_VERSION}, got {_show(version)}"
            )
        expected = ["checksum", "version", "owner", *SECTION_NAMES]
        _reject_unknown(data, expected, _Where(source), "")
        missing = [key for key in expected if key not in data]
        if missing:
            raise TemplateError(f"{source}: {', '.join(missing)}: missing")
        stated = data.pop("checksum")
        # The checksum is checked before the values: a file whose bytes changed is corrupt
        # even when what it now says happens to be valid.
        if stated != _checksum(data):
            raise TemplateError(f"{source}: checksum: does not match the content (corrupt file)")
        owner = _check_id(data["owner"], _Where(source), "owner")
        sections: dict[str, Any] = {}
        for name, section_cls in _SECTION_CLASSES.items():
            sections[name] = _parse_object(
                section_cls, data[name], _Where(source, f"{name}."), "", base=None, complete=True
            )
        pairs = _parse_pairs(data["trade_pairs"], _Where(source, "trade_pairs"), complete=True)
        runtime = cls(owner=owner, trade_pairs=pairs, **sections)
        instance_id = runtime.instance.instance_id
        _check_id(instance_id, _Where(source, "instance."), "instance_id")
        where = {name: _Where(source, f"{name}.") for name in SECTION_NAMES}
        where["trade_pairs"] = _Where(source, "trade_pairs")
        _cross_check(_sections(runtime), where)
        if (
            runtime.instance.health_check_interval_sec
            != runtime.health_check.health_check_interval_sec
        ):
            raise TemplateError(
                f"{source}: instance.health_check_interval_sec: differs from "
                "health_check.health_check_interval_sec"
            )
        return runtime

    def worker_config(self, retention: Retention) -> dict[str, Any]:
        """The flat config the sim worker reads (``mt5exec.workers.sim.load_config``);
        ``retention``: the order history its journal keeps (at least the engine's)."""
        return {
            "instance_id": self.instance.instance_id,
            "symbols": list(self.instance.trade_pairs),
            "seed": self.instance.seed,
            "tick_rate": self.instance.tick_rate,
            "tick_batch_ms": self.instance.tick_batch_ms,
            "initial_balance": self.instance.initial_balance,
            "leverage": self.broker.leverage,
            "currency": self.broker.currency,
            "margin_mode": self.broker.margin_mode,
            "retention_s": retention.keep_s,
            "retention_orders": retention.keep_orders,
            "broker_relogin_after_ms": self.health_check.broker_relogin_after_ms,
        }


def _sections(runtime: RuntimeConfig | Templates) -> dict[str, Any]:
    """Section name -> section value (``trade_pairs`` is a tuple of :class:`TradePair`)."""
    return {name: getattr(runtime, name) for name in SECTION_NAMES}


def _as_json(section: object) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in dataclasses.fields(section):  # type: ignore[arg-type]
        value = getattr(section, f.name)
        out[f.name] = list(value) if isinstance(value, tuple) else value
    return out


def _checksum(body: Mapping[str, Any]) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def _default_source(name: str) -> tuple[resources.abc.Traversable, str]:
    traversable = resources.files(_DEFAULTS_PACKAGE) / f"{name}.json"
    return traversable, str(traversable)


def load_templates(directory: Path | None = None) -> Templates:
    """Load the packaged default templates, each overridden by ``<directory>/<name>.json``.

    A file in ``directory`` may give only some keys of its section; the others keep the
    default. ``trade_pairs.json`` replaces the whole catalogue. Other ``*.json`` files in
    ``directory`` are errors (a misspelt file name must not be ignored).

    Raises:
        TemplateError: naming the file and the field of the first bad value.
    """
    if directory is not None:
        directory = Path(directory)
        if not directory.is_dir():
            raise TemplateError(f"{directory}: templates directory not found")
        known = {f"{name}.json" for name in SECTION_NAMES}
        for entry in sorted(directory.glob("*.json")):
            if entry.name not in known:
                raise TemplateError(
                    f"{entry}: unknown template file (known: {', '.join(sorted(known))})"
                )

    sections: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for name in SECTION_NAMES:
        default_path, default_source = _default_source(name)
        default_raw = _read_json(default_path, default_source)
        user_path = directory / f"{name}.json" if directory is not None else None
        user_raw = (
            _read_json(user_path, str(user_path))
            if user_path is not None and user_path.exists()
            else None
        )
        source = str(user_path) if user_raw is not None else default_source
        if name == "trade_pairs":
            sections[name] = (
                _parse_pairs(user_raw, _Where(source), complete=False)
                if user_raw is not None
                else _parse_pairs(default_raw, _Where(default_source), complete=True)
            )
        else:
            cls = _SECTION_CLASSES[name]
            value = _parse_object(
                cls, default_raw, _Where(default_source), "", base=None, complete=True
            )
            if user_raw is not None:
                value = _parse_object(cls, user_raw, _Where(source), "", base=value, complete=False)
            sections[name] = value
        sources[name] = source
    _cross_check(sections, {name: _Where(src) for name, src in sources.items()})
    return Templates(**sections, sources=sources)


def build_runtime_config(
    templates: Templates,
    instance_id: str,
    owner: str,
    overrides: Mapping[str, Mapping[str, object]] | None = None,
) -> RuntimeConfig:
    """Generate an instance's runtime config from ``templates`` plus ``overrides``.

    ``overrides`` maps a section name to the keys it replaces, e.g.
    ``{"instance": {"trade_pairs": ["EURUSD"], "tick_rate": 50}, "risk": {...}}``. For
    ``trade_pairs`` it maps a symbol to the keys of its catalogue entry (a new symbol gets a new
    entry). ``instance.instance_id`` is always ``instance_id``.

    Raises:
        TemplateError: a bad id (source ``argument``) or override (source ``override``), or
            templates that do not fit the overrides.
    """
    instance_id = _check_id(instance_id, _Where("argument"), "instance_id")
    owner = _check_id(owner, _Where("argument"), "owner")
    sections = _sections(templates)
    touched: set[str] = set()
    for section, values in (overrides or {}).items():
        if section not in SECTION_NAMES:
            raise TemplateError(
                f"override: {section}: unknown section (known: {', '.join(SECTION_NAMES)})"
            )
        where = _Where("override", f"{section}.")
        if not isinstance(values, Mapping):
            raise where.error("", f"expected a mapping of keys to values, got {_show(values)}")
        touched.add(section)
        if section == "trade_pairs":
            sections[section] = _override_pairs(sections[section], values)
            continue
        if (
            section == "instance"
            and "instance_id" in values
            and values["instance_id"] != instance_id
        ):
            raise where.error(
                "instance_id",
                f"is the instance's id {_show(instance_id)}, got {_show(values['instance_id'])}",
            )
        sections[section] = _parse_object(
            _SECTION_CLASSES[section], values, where, "", base=sections[section], complete=False
        )

    instance: InstanceSection = sections["instance"]
    health: HealthCheckSection = sections["health_check"]
    interval = instance.health_check_interval_sec or health.health_check_interval_sec
    sections["instance"] = dataclasses.replace(
        instance, instance_id=instance_id, health_check_interval_sec=interval
    )
    sections["health_check"] = dataclasses.replace(health, health_check_interval_sec=interval)

    template_where = {
        name: _Where(templates.sources.get(name, f"<default {name}>")) for name in SECTION_NAMES
    }

    def pick(section: str, others: tuple[str, ...]) -> _Where:
        # Blame the override when it took part; otherwise the template file is to fix.
        if touched & {section, *others}:
            return _Where("override", f"{section}.")
        return template_where[section]

    catalogue = {p.trade_pair: p for p in sections["trade_pairs"]}
    unknown = [s for s in sections["instance"].trade_pairs if s not in catalogue]
    if unknown:
        raise pick("instance", ("trade_pairs",)).error(
            "trade_pairs",
            f"{_show(unknown[0])} is not in the trade pair catalogue (trade_pairs.json)",
        )
    # Only the pairs the instance trades are checked (and kept): a catalogue entry that does
    # not fit this instance's broker override is no reason to refuse the instance.
    sections["trade_pairs"] = tuple(catalogue[s] for s in sections["instance"].trade_pairs)
    _cross_check(sections, template_where, pick, pairs_by_symbol=bool(touched))
    return RuntimeConfig(owner=owner, **sections)


def _override_pairs(
    pairs: tuple[TradePair, ...], overrides: Mapping[str, object]
) -> tuple[TradePair, ...]:
    where = _Where("override", "trade_pairs.")
    out = {p.trade_pair: p for p in pairs}
    for symbol, values in overrides.items():
        try:
            _SYMBOL.check(symbol)
        except _Invalid as exc:
            raise where.error(str(symbol), str(exc)) from None
        if not isinstance(values, Mapping):
            raise where.error(symbol, f"expected a mapping of keys to values, got {_show(values)}")
        if values.get("trade_pair", symbol) != symbol:
            raise where.error(f"{symbol}.trade_pair", f"must be {_show(symbol)}")
        base = out.get(symbol)
        # A symbol not in the catalogue yet gets a new entry with the entry defaults.
        raw = values if base is not None else {"trade_pair": symbol, **values}
        out[symbol] = _parse_object(TradePair, raw, where, symbol, base=base, complete=False)
    return tuple(out.values())


def runtime_config_path(instance_dir: Path) -> Path:
    return Path(instance_dir) / CONFIG_DIR / RUNTIME_FILE


def write_runtime_config(instance_dir: Path, runtime: RuntimeConfig) -> Path:
    """Write ``<instance_dir>/config/runtime.json`` atomically with mode 0600; return its path.

    Only the one file is written: per-section copies would be a second truth to drift.
    """
    path = runtime_config_path(instance_dir)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    atomic_write(path, runtime.to_json().encode())
    return path


def load_runtime_config(
    instance_dir: Path,
    templates: Templates,
    instance_id: str,
    owner: str,
    overrides: Mapping[str, Mapping[str, object]] | None = None,
) -> tuple[RuntimeConfig, bool]:
    """Read an instance's runtime config, regenerating it when it is missing or corrupt.

    The file, when valid, wins over ``templates`` and ``overrides``: they are used only to
    regenerate it. A corrupt file is kept as ``runtime.json.corrupt`` for inspection.

    Returns:
        The config and whether it was regenerated.

    Raises:
        TemplateError: when regenerating fails (bad id, templates or overrides).
        OSError: when the regenerated file cannot be written.
    """
    path = runtime_config_path(instance_dir)
    problem: str
    exists = True
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        problem, exists = f"{path}: missing", False
    except OSError as exc:
        problem = f"{path}: unreadable ({exc.strerror or exc})"
    except UnicodeDecodeError as exc:
        problem = f"{path}: not UTF-8 text (byte {exc.start})"
    else:
        try:
            runtime = RuntimeConfig.from_json(text, str(path))
        except TemplateError as exc:
            problem = str(exc)
        else:
            if runtime.instance_id == instance_id and runtime.owner == owner:
                return runtime, False
            problem = (
                f"{path}: belongs to instance {runtime.instance_id!r} of owner "
                f"{runtime.owner!r}, not {instance_id!r} of {owner!r}"
            )
    # Build first: a bad template or override must leave the old file where it is.
    runtime = build_runtime_config(templates, instance_id, owner, overrides)
    log.warning("%s; regenerating the runtime config from the templates", problem)
    if exists:
        # Kept for a post-mortem of whatever damaged it; only the latest one.
        with contextlib.suppress(OSError):
            os.replace(path, path.with_name(path.name + ".corrupt"))
    write_runtime_config(instance_dir, runtime)
    return runtime, True
