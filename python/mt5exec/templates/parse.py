"""Parsing and validation of templates, overrides and runtime configs: strict JSON (no
duplicate keys, no NaN), unknown and credential keys refused, each value checked against its
spec, and the sections checked against each other; every error names the source and field.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from mt5exec.templates.sections import (
    _FIELDS,
    BrokerSection,
    ExecutionSection,
    HealthCheckSection,
    InstanceSection,
    RiskSection,
    TradePair,
)
from mt5exec.templates.values import (
    _CREDENTIAL_KEYS,
    _ID,
    _T,
    TemplateError,
    _Invalid,
    _show,
    _Spec,
)


@dataclass(frozen=True, slots=True)
class _Where:
    """Where values come from: ``label`` is the file (or "override"), ``prefix`` the path to
    the section inside it ("" for a template file, "risk." for an override)."""

    label: str
    prefix: str = ""

    def error(self, path: str, message: str) -> TemplateError:
        full = _join(self.prefix, path)
        return TemplateError(
            f"{self.label}: {full}: {message}" if full else f"{self.label}: {message}"
        )


def _join(prefix: str, path: str) -> str:
    if not path:
        return prefix.rstrip(".")
    if path.startswith("["):
        return prefix.rstrip(".") + path
    if not prefix or prefix.endswith("."):
        return prefix + path
    return f"{prefix}.{path}"


class _DuplicateKey(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            # json keeps the last silently; two values for one limit is an editing mistake.
            raise _DuplicateKey(key)
        out[key] = value
    return out


def _reject_constant(name: str) -> object:
    # json accepts NaN and Infinity by default; JSON does not, and no limit may be NaN.
    raise _Invalid(f"{name} is not a valid JSON value")


def _loads(text: str, source: str) -> object:
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise TemplateError(
            f"{source}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        ) from None
    except _DuplicateKey as exc:
        raise TemplateError(f"{source}: {exc.args[0]}: duplicate key") from None
    except _Invalid as exc:
        raise TemplateError(f"{source}: invalid JSON: {exc}") from None


def _read_json(path: Path | resources.abc.Traversable, source: str) -> object:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise TemplateError(f"{source}: file not found") from None
    except OSError as exc:
        raise TemplateError(f"{source}: cannot read: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise TemplateError(f"{source}: not UTF-8 text (byte {exc.start})") from None
    return _loads(text, source)


def _reject_credentials(raw: Mapping[str, object], where: _Where, path: str) -> None:
    for key in raw:
        lowered = str(key).lower()
        if "password" in lowered or lowered in _CREDENTIAL_KEYS:
            raise where.error(
                _join(path, key),
                "credentials do not belong in configs; they live in the credential vault",
            )


def _reject_unknown(
    raw: Mapping[str, object], known: Sequence[str], where: _Where, path: str
) -> None:
    _reject_credentials(raw, where, path)
    unknown = [str(k) for k in raw if k not in known]
    if unknown:
        names = ", ".join(unknown)
        plural = "s" if len(unknown) > 1 else ""
        raise where.error(_join(path, names), f"unknown key{plural} (known: {', '.join(known)})")


def _parse_object(
    cls: type[_T],
    raw: object,
    where: _Where,
    path: str,
    *,
    base: _T | None,
    complete: bool,
) -> _T:
    """Check ``raw`` (a JSON object) against ``cls`` and build it on top of ``base``.

    Keys absent from ``raw`` keep the value of ``base`` (or the field default); with
    ``complete`` every field must be present, as in a packaged default or a generated file.
    """
    if not isinstance(raw, Mapping):
        raise where.error(path, f"expected a JSON object, got {_show(raw)}")
    fields = _FIELDS[cls]
    _reject_unknown(raw, list(fields), where, path)
    missing = [
        name
        for name, f in fields.items()
        if name not in raw and (complete or (base is None and f.default is dataclasses.MISSING))
    ]
    if missing:
        raise where.error(_join(path, ", ".join(missing)), "missing")
    values: dict[str, Any] = {}
    for name, value in raw.items():
        spec: _Spec = fields[name].metadata["spec"]
        try:
            values[name] = spec.check(value)
        except _Invalid as exc:
            raise where.error(_join(path, name), str(exc)) from None
    if base is not None:
        return dataclasses.replace(base, **values)  # type: ignore[type-var]
    return cls(**values)


def _parse_pairs(raw: object, where: _Where, *, complete: bool) -> tuple[TradePair, ...]:
    if not isinstance(raw, list):
        raise where.error("", f"expected a JSON array of trade pairs, got {_show(raw)}")
    pairs = tuple(
        _parse_object(TradePair, item, where, f"[{i}]", base=None, complete=complete)
        for i, item in enumerate(raw)
    )
    seen: dict[str, int] = {}
    for i, pair in enumerate(pairs):
        if pair.trade_pair in seen:
            raise where.error(
                f"[{i}].trade_pair",
                f"duplicate {_show(pair.trade_pair)} (also at [{seen[pair.trade_pair]}])",
            )
        seen[pair.trade_pair] = i
    return pairs


def _check_id(value: object, where: _Where, name: str) -> str:
    try:
        checked = _ID.check(value)
    except _Invalid as exc:
        raise where.error(name, str(exc)) from None
    assert isinstance(checked, str)
    return checked


# (section, field path, message, other sections the check depends on)
_Problem = tuple[str, str, str, tuple[str, ...]]


def _consistency(sections: Mapping[str, Any], *, pairs_by_symbol: bool = False) -> list[_Problem]:
    """Rules that span fields or sections; each problem names the field to fix.

    Trade pairs are named by index (``[1].lot_size``, as in a file) or, for overrides, which
    key them by symbol, by symbol (``EURUSD.lot_size``).
    """
    broker: BrokerSection = sections["broker"]
    instance: InstanceSection = sections["instance"]
    execution: ExecutionSection = sections["execution"]
    risk: RiskSection = sections["risk"]
    health: HealthCheckSection = sections["health_check"]
    pairs: tuple[TradePair, ...] = sections["trade_pairs"]
    problems: list[_Problem] = []

    def lots(section: str, path: str, value: float) -> None:
        if not broker.min_lot_size <= value <= broker.max_lot_size:
            problems.append(
                (
                    section,
                    path,
                    f"{value:g} is outside broker min_lot_size..max_lot_size "
                    f"({broker.min_lot_size:g}..{broker.max_lot_size:g})",
                    ("broker",),
                )
            )

    if broker.min_lot_size > broker.max_lot_size:
        problems.append(
            ("broker", "min_lot_size", f"must be <= max_lot_size ({broker.max_lot_size:g})", ())
        )
    if instance.broker_id != broker.broker_id:
        problems.append(
            (
                "instance",
                "broker_id",
                f"{_show(instance.broker_id)} does not match broker.broker_id "
                f"{_show(broker.broker_id)}",
                ("broker",),
            )
        )
    known = {p.trade_pair for p in pairs}
    for symbol in instance.trade_pairs:
        if symbol not in known:
            problems.append(
                (
                    "instance",
                    "trade_pairs",
                    f"{_show(symbol)} is not in the trade pair catalogue (trade_pairs.json)",
                    ("trade_pairs",),
                )
            )
            break
    lots("execution", "lot_size", execution.lot_size)
    if risk.min_order_volume > risk.max_order_volume:
        problems.append(
            (
                "risk",
                "min_order_volume",
                f"must be <= max_order_volume ({risk.max_order_volume:g})",
                (),
            )
        )
    if health.missed_heartbeats_restart <= health.missed_heartbeats_degraded:
        problems.append(
            (
                "health_check",
                "missed_heartbeats_restart",
                "must be > missed_heartbeats_degraded "
                f"({health.missed_heartbeats_degraded}), or the instance is never DEGRADED",
                (),
            )
        )
    if health.restart_backoff_initial_ms > health.restart_backoff_max_ms:
        problems.append(
            (
                "health_check",
                "restart_backoff_initial_ms",
                f"must be <= restart_backoff_max_ms ({health.restart_backoff_max_ms})",
                (),
            )
        )
    for i, pair in enumerate(pairs):
        at = f"{pair.trade_pair}." if pairs_by_symbol else f"[{i}]."
        lots("trade_pairs", f"{at}lot_size", pair.lot_size)
        if pair.max_volume is not None:
            if pair.max_volume < pair.lot_size:
                problems.append(
                    (
                        "trade_pairs",
                        f"{at}max_volume",
                        f"must be >= lot_size ({pair.lot_size:g})",
                        (),
                    )
                )
            lots("trade_pairs", f"{at}max_volume", pair.max_volume)
    return problems


def _cross_check(
    sections: Mapping[str, Any],
    where: Mapping[str, _Where],
    pick: Callable[[str, tuple[str, ...]], _Where] | None = None,
    *,
    pairs_by_symbol: bool = False,
) -> None:
    problems = _consistency(sections, pairs_by_symbol=pairs_by_symbol)
    if problems:
        section, path, message, others = problems[0]
        w = pick(section, others) if pick is not None else where[section]
        raise w.error(path, message)
