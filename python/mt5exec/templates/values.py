"""Template values: ``TemplateError``, the checks of the id, symbol, currency and time
alphabets, and the value specs each section field is checked against (a spec converts a JSON
value to the stored value or raises ``_Invalid``; the caller adds the source and the field
path to the message).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final, TypeVar

from mt5exec.workers.sim import TICK_BATCH_MS_RANGE

SPREAD_TYPES: Final = ("floating", "fixed")
MARGIN_MODES: Final = ("hedging", "netting")
FILLING_MODES: Final = ("auto", "fok", "ioc", "return")
TRADE_ROUTINGS: Final = ("direct",)

# The alphabet of instance, owner and broker ids: they become path components and MT5 comments
# (the same rule as mt5exec.services.validation).
_ID_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
# Broker symbol names vary ("EURUSD.m", "US30#", "XAUUSD-ECN"); only whitespace is never valid.
_SYMBOL_RE: Final = re.compile(r"\S{1,64}")
_CURRENCY_RE: Final = re.compile(r"[A-Z]{3}")
_HHMM_RE: Final = re.compile(r"(?:[01][0-9]|2[0-3]):[0-5][0-9]|")
# Besides any key containing "password": the seed's broker config carries the account login
# next to its password, and both belong to the vault.
_CREDENTIAL_KEYS: Final = frozenset({"login_number", "passwd", "secret"})


class TemplateError(ValueError):
    """A template, override or generated config is unusable.

    The message starts with the source (a file path, ``override`` or ``argument``) followed by
    the field path, so an operator can fix it without reading code.
    """


# --------------------------------------------------------------------------------------------
# Value specs. A spec converts a JSON value to the stored value or raises _Invalid; the caller
# adds the source and the field path to the message.


class _Invalid(ValueError):
    pass


class _Mismatch(Exception):
    """Raised by a converter when the value does not fit the spec's description."""


def _show(value: object) -> str:
    # Values are shown as JSON, as the operator wrote them (true, null, "abc"), cut short.
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=True)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


@dataclass(frozen=True, slots=True)
class _Spec:
    desc: str
    convert: Callable[[object], object]

    def check(self, value: object) -> object:
        try:
            return self.convert(value)
        except _Mismatch:
            raise _Invalid(f"expected {self.desc}, got {_show(value)}") from None


def _integer(minimum: int, maximum: int | None = None, desc: str | None = None) -> _Spec:
    if desc is None:
        desc = {0: "a non-negative integer", 1: "a positive integer"}.get(
            minimum, f"an integer >= {minimum}"
        )

    def convert(value: object) -> object:
        # bool is an int subclass; a JSON `true` is never a count.
        if isinstance(value, bool) or not isinstance(value, int):
            raise _Mismatch
        if value < minimum or (maximum is not None and value > maximum):
            raise _Mismatch
        return value

    return _Spec(desc, convert)


def _number(
    minimum: float = 0.0, *, exclusive: bool = False, maximum: float | None = None
) -> _Spec:
    if maximum is not None:
        desc = f"a number in {minimum:g}..{maximum:g}"
    elif minimum == 0.0:
        desc = "a positive number" if exclusive else "a non-negative number"
    else:
        desc = f"a number {'>' if exclusive else '>='} {minimum:g}"

    def convert(value: object) -> object:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _Mismatch
        number = float(value)
        if not math.isfinite(number):
            raise _Mismatch
        if number < minimum or (exclusive and number == minimum):
            raise _Mismatch
        if maximum is not None and number > maximum:
            raise _Mismatch
        return number

    return _Spec(desc, convert)


def _text(pattern: re.Pattern[str] | None, desc: str) -> _Spec:
    def convert(value: object) -> object:
        if not isinstance(value, str) or not value.strip():
            raise _Mismatch
        if pattern is not None and not pattern.fullmatch(value):
            raise _Mismatch
        if value in (".", ".."):
            raise _Mismatch
        return value

    return _Spec(desc, convert)


def _enum(choices: Sequence[str]) -> _Spec:
    desc = "one of " + ", ".join(f'"{c}"' for c in choices)

    def convert(value: object) -> object:
        # Case is forgiven (as in mt5exec.toml); anything else is a typo worth an error.
        if not isinstance(value, str) or value.lower() not in choices:
            raise _Mismatch
        return value.lower()

    return _Spec(desc, convert)


def _currency_convert(value: object) -> object:
    if not isinstance(value, str) or not _CURRENCY_RE.fullmatch(value.upper()):
        raise _Mismatch
    return value.upper()


def _symbols_convert(value: object) -> object:
    if not value:
        raise _Mismatch
    return _symbol_list_convert(value)


def _symbol_list_convert(value: object) -> object:
    if not isinstance(value, list | tuple):
        raise _Mismatch
    seen: set[str] = set()
    for symbol in value:
        if not isinstance(symbol, str) or not _SYMBOL_RE.fullmatch(symbol):
            raise _Invalid(f"invalid symbol name {_show(symbol)}")
        if symbol in seen:
            raise _Invalid(f"duplicate symbol {_show(symbol)}")
        seen.add(symbol)
    return tuple(value)


def _optional(spec: _Spec) -> _Spec:
    def convert(value: object) -> object:
        return None if value is None else spec.convert(value)

    return _Spec(f"{spec.desc} or null", convert)


def _hhmm_convert(value: object) -> object:
    if not isinstance(value, str) or not _HHMM_RE.fullmatch(value):
        raise _Mismatch
    return value


def _str_convert(value: object) -> object:
    if not isinstance(value, str):
        raise _Mismatch
    return value


_STR: Final = _Spec("a string", _str_convert)
_ID: Final = _text(
    _ID_RE, "an id of 1-64 letters, digits, '_', '.', '-' starting with a letter or digit"
)
_NAME: Final = _text(None, "a non-empty string")
_SYMBOL: Final = _text(_SYMBOL_RE, "a symbol name without whitespace (at most 64 characters)")
_CURRENCY: Final = _Spec("a 3-letter ISO currency code", _currency_convert)
_SYMBOLS: Final = _Spec("a non-empty list of symbol names", _symbols_convert)
_SYMBOL_LIST: Final = _Spec("a list of symbol names", _symbol_list_convert)
_HHMM: Final = _Spec('"HH:MM" (UTC) or ""', _hhmm_convert)
_UINT64: Final = _integer(0, 2**64 - 1, "an integer in 0..2^64-1")
_NON_NEG_INT: Final = _integer(0)
_POS_INT: Final = _integer(1)
_NON_NEG: Final = _number()
_POS: Final = _number(exclusive=True)
_PERCENT: Final = _number(0.0, maximum=100.0)
_TICK_BATCH_MS: Final = _number(TICK_BATCH_MS_RANGE[0], maximum=TICK_BATCH_MS_RANGE[1])

_T = TypeVar("_T")


def _f(default: _T, spec: _Spec) -> _T:
    """A dataclass field with a default and the spec its JSON value is checked against."""
    return field(default=default, metadata={"spec": spec})
