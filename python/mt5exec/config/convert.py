"""Conversion of config values to their fields' types: TOML values arrive typed, environment
values arrive as strings.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import types
import typing
from pathlib import Path
from typing import Any, Final

from mt5exec.config.sections import (
    _IDENTITIES,
    _SECTIONS,
    _SOURCES,
    _identities,
    _sources,
)
from mt5exec.config.values import (
    Check,
    _Invalid,
)

_TRUE: Final = frozenset({"1", "true", "yes", "on"})
_FALSE: Final = frozenset({"0", "false", "no", "off"})


def _type_name(tp: Any) -> str:
    names = {
        int: "an integer",
        float: "a number",
        bool: "a boolean",
        str: "a string",
        Path: "a path",
        tuple[str, ...]: "a list of strings",
        _IDENTITIES: "a table",
        _SOURCES: "a table",
    }
    return names.get(tp, str(tp))


def _field_type(section_cls: type[Any], name: str) -> Any:
    tp = _HINTS[section_cls][name]
    # Path | None: None is only ever the default, sources always name a path.
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


def _from_typed(value: Any, tp: Any) -> Any:
    """Check a TOML (or override) value against the field type; no string parsing."""
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        # bool is an int subclass; `max_instances = true` is a mistake, not 1.
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            number = float(value)
            if not math.isfinite(number):
                raise _Invalid(f"expected a finite number, got {value!r}")
            return number
    elif tp is str:
        if isinstance(value, str):
            return value
    elif tp is Path:
        if isinstance(value, str | os.PathLike):
            if not str(value):
                raise _Invalid("expected a path, got an empty string")
            return Path(value)
    elif tp == tuple[str, ...]:
        if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
            return tuple(value)
    elif tp == _IDENTITIES:
        return _identities(value)
    elif tp == _SOURCES:
        return _sources(value)
    else:  # pragma: no cover - a new field type without a converter is a programming error
        raise TypeError(f"unsupported config field type {tp!r}")
    raise _Invalid(f"expected {_type_name(tp)}, got {type(value).__name__} {value!r}")


def _from_text(text: str, tp: Any) -> Any:
    """Parse an environment (or string override) value into the field type."""
    stripped = text.strip()
    if tp is bool:
        lowered = stripped.lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise _Invalid(f"expected a boolean (true/false/1/0/yes/no/on/off), got {text!r}")
    if tp is int:
        try:
            return int(stripped, 10)
        except ValueError:
            raise _Invalid(f"expected an integer, got {text!r}") from None
    if tp is float:
        try:
            number = float(stripped)
        except ValueError:
            raise _Invalid(f"expected a number, got {text!r}") from None
        if not math.isfinite(number):
            raise _Invalid(f"expected a finite number, got {text!r}")
        return number
    if tp in (_IDENTITIES, _SOURCES):
        # One environment variable holds the whole table, as JSON.
        try:
            table = json.loads(text)
        except json.JSONDecodeError:
            raise _Invalid(f"expected a JSON object, got {text!r}") from None
        return _identities(table) if tp == _IDENTITIES else _sources(table)
    if tp == tuple[str, ...]:
        # Comma-separated, the usual way to pass a list through one environment variable.
        return tuple(part.strip() for part in stripped.split(",")) if stripped else ()
    return _from_typed(text, tp)


def _convert(section_cls: type[Any], name: str, value: Any, *, text: bool) -> Any:
    tp = _field_type(section_cls, name)
    converted = _from_text(value, tp) if text else _from_typed(value, tp)
    check: Check | None = _FIELDS[section_cls][name].metadata.get("check")
    return check(converted) if check is not None else converted


_HINTS: Final[dict[type[Any], dict[str, Any]]] = {
    cls: typing.get_type_hints(cls) for cls in _SECTIONS.values()
}
_FIELDS: Final[dict[type[Any], dict[str, dataclasses.Field[Any]]]] = {
    cls: {f.name: f for f in dataclasses.fields(cls)} for cls in _SECTIONS.values()
}
