"""Instance configuration templates and the runtime config generated from them.

This module owns the six JSON configs of an instance, in the shapes of the configuration design
(seed 002) with the fields the product adds:

    broker.json        the broker an instance trades with (never its credentials)
    instance.json      what one instance trades and, for the simulated broker, its account
    execution.json     defaults applied to the orders an instance sends
    risk.json          the pre-trade limits of the risk engine (proto ``RiskLimits``)
    health_check.json  health probes and the supervisor's heartbeat / restart policy
    trade_pairs.json   the catalogue of tradable symbols (a JSON array of objects)

Templates are the packaged defaults (``mt5exec/template_defaults/*.json``), each overridden file by
file by an operator's directory; a file there may give only some keys, the rest come from the
default. ``trade_pairs.json`` is the exception: a list cannot be merged key by key without a way to
remove an entry, so an operator's catalogue replaces the packaged one.

An instance's runtime config is generated once from the templates plus per-instance overrides and
written to ``<instance_dir>/config/runtime.json`` with a version and a checksum. From then on that
file is the instance's truth (later template edits do not change existing instances); when it is
missing, unreadable, corrupt or invalid it is regenerated from the templates (seed 000: "Corrupt
Config File: regenerate from base template").

Every value is validated where it enters, and an error names the source and the field, e.g.
``templates/risk.json: max_trades_per_day: expected a non-negative integer, got -3``. Unknown keys
are errors (a typo must not fall back to a default on a trading server), and so is any password
key: credentials live in the credential vault, never in templates.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Final, Literal, TypeVar

from mt5exec.files import atomic_write
from mt5exec.sim.state import Retention
from mt5exec.workers.sim import TICK_BATCH_MS_RANGE

__all__ = [
    "CONFIG_DIR",
    "DEFAULT_TRADE_PAIRS",
    "RUNTIME_FILE",
    "RUNTIME_VERSION",
    "SECTION_NAMES",
    "BrokerSection",
    "ExecutionSection",
    "HealthCheckSection",
    "InstanceSection",
    "RiskSection",
    "RuntimeConfig",
    "TemplateError",
    "Templates",
    "TradePair",
    "build_runtime_config",
    "load_runtime_config",
    "load_templates",
    "runtime_config_path",
    "write_runtime_config",
]

log = logging.getLogger(__name__)

SECTION_NAMES: Final = ("broker", "instance", "execution", "risk", "health_check", "trade_pairs")
# Sub-directory of an instance directory that holds its generated config.
CONFIG_DIR: Final = "config"
RUNTIME_FILE: Final = "runtime.json"
# Bumped when the layout of runtime.json changes incompatibly; an unknown version regenerates.
RUNTIME_VERSION: Final = 1
_DEFAULTS_PACKAGE: Final = "mt5exec.template_defaults"

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


# --------------------------------------------------------------------------------------------
# Sections. The field defaults are the packaged defaults (template_defaults/*.json must hold the
# same values; a test keeps them equal). Field comments are the reference of the JSON keys.


@dataclass(frozen=True, slots=True)
class BrokerSection:
    """``broker.json``: the broker an instance trades with. Credentials live in the vault."""

    # Stable id of the broker; instance.broker_id must name it.
    broker_id: str = _f("sim", _ID)
    broker_name: str = _f("mt5exec simulated broker", _NAME)
    # MT5 trade server name (e.g. "BrokerX-Demo"); "sim" for the simulated broker.
    server: str = _f("sim", _NAME)
    # Account leverage, 1:N.
    leverage: int = _f(100, _POS_INT)
    # Smallest and largest volume (lots) the broker accepts in one order.
    min_lot_size: float = _f(0.01, _POS)
    max_lot_size: float = _f(100.0, _POS)
    spread_type: Literal["floating", "fixed"] = _f("floating", _enum(SPREAD_TYPES))
    # Account currency.
    currency: str = _f("USD", _CURRENCY)
    # "hedging" (several positions per symbol) or "netting" (one net position per symbol).
    margin_mode: Literal["hedging", "netting"] = _f("hedging", _enum(MARGIN_MODES))


@dataclass(frozen=True, slots=True)
class InstanceSection:
    """``instance.json``: one instance; the sim fields set up the simulated broker's account."""

    # Set from the instance being configured; a template's value is ignored.
    instance_id: str = _f("", _STR)
    broker_id: str = _f("sim", _ID)
    # Symbols the instance trades; each must be in the trade pair catalogue.
    trade_pairs: tuple[str, ...] = _f(("EURUSD", "GBPUSD", "USDJPY", "XAUUSD"), _SYMBOLS)
    # Open trades the instance may hold at once; 0 = no limit.
    max_trades: int = _f(10, _NON_NEG_INT)
    # Largest accepted slippage in points between requested and filled price.
    slippage_limit: float = _f(2.0, _NON_NEG)
    trade_routing: Literal["direct"] = _f("direct", _enum(TRADE_ROUTINGS))
    # Replaces health_check.health_check_interval_sec for this instance; null keeps it. In a
    # runtime config both always hold the effective value.
    health_check_interval_sec: int | None = _f(None, _optional(_POS_INT))
    # Simulated broker: seed of the price process (the same seed replays the same prices).
    seed: int = _f(1, _UINT64)
    # Simulated broker: ticks per second per symbol; 0 stops prices at their start values.
    tick_rate: float = _f(10.0, _NON_NEG)
    # Simulated broker: the shortest time between two tick batches in milliseconds; ticks due
    # in between go out together (shorter: sooner; longer: fewer, larger batches).
    tick_batch_ms: float = _f(2.0, _TICK_BATCH_MS)
    # Simulated broker: starting balance in the account currency.
    initial_balance: float = _f(10000.0, _POS)


@dataclass(frozen=True, slots=True)
class ExecutionSection:
    """``execution.json``: defaults applied to the orders an instance sends."""

    # Stop loss and take profit distance in points from the entry price; 0 = none.
    stop_loss: float = _f(50.0, _NON_NEG)
    take_profit: float = _f(100.0, _NON_NEG)
    # Volume (lots) of an order that names none.
    lot_size: float = _f(0.01, _POS)
    # Share of the balance risked per trade when sizing by risk, in percent.
    risk_percent: float = _f(1.0, _PERCENT)
    # Seconds to wait for the terminal's answer before the order's outcome is UNKNOWN.
    trade_timeout_sec: int = _f(5, _POS_INT)
    # Accepted deviation from the requested price in points for market orders.
    deviation_points: int = _f(10, _NON_NEG_INT)
    # Order filling policy; "auto" picks one the symbol supports.
    filling: Literal["auto", "fok", "ioc", "return"] = _f("auto", _enum(FILLING_MODES))


@dataclass(frozen=True, slots=True)
class RiskSection:
    """``risk.json``: pre-trade limits (proto ``RiskLimits``). 0 disables a limit."""

    # Seed 002 fields (max_loss_per_day is RiskLimits.max_daily_loss), in account currency.
    max_loss_per_day: float = _f(1000.0, _NON_NEG)
    max_loss_per_trade: float = _f(100.0, _NON_NEG)
    max_trades_per_day: int = _f(50, _NON_NEG_INT)
    max_open_positions: int = _f(20, _NON_NEG_INT)
    # Volume bounds of one order, in lots (never 0: a zero-volume order is always invalid).
    max_order_volume: float = _f(10.0, _POS)
    min_order_volume: float = _f(0.01, _POS)
    # Notional of one order and net exposure per symbol, in account currency.
    max_order_notional: float = _f(0.0, _NON_NEG)
    max_symbol_exposure: float = _f(0.0, _NON_NEG)
    max_pending_orders: int = _f(100, _NON_NEG_INT)
    # Drawdown of equity from its high, in percent.
    max_drawdown_percent: float = _f(0.0, _PERCENT)
    max_deviation_points: int = _f(0, _NON_NEG_INT)
    # Pending order prices further than this from the market are rejected as fat fingers.
    price_collar_percent: float = _f(10.0, _NON_NEG)
    # Orders are rejected when the symbol's last tick is older than this.
    stale_tick_ms: int = _f(0, _NON_NEG_INT)
    orders_per_second: float = _f(100.0, _NON_NEG)
    max_in_flight_orders: int = _f(10, _NON_NEG_INT)
    # Identical orders (same symbol, side, volume, price) within this window are duplicates.
    duplicate_window_ms: int = _f(0, _NON_NEG_INT)
    # Instrument whitelist; empty: every symbol of the instance.
    allowed_symbols: tuple[str, ...] = _f((), _SYMBOL_LIST)
    # Daily trading window in UTC ("HH:MM"); both empty: always. Closing is always allowed.
    session_start: str = _f("", _HHMM)
    session_end: str = _f("", _HHMM)

    def risk_limits(self) -> dict[str, object]:
        """The limits keyed by the field names of proto ``mt5exec.v1.RiskLimits``."""
        out: dict[str, object] = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["max_daily_loss"] = out.pop("max_loss_per_day")
        out["allowed_symbols"] = list(self.allowed_symbols)
        return out


@dataclass(frozen=True, slots=True)
class HealthCheckSection:
    """``health_check.json``: health probes and the supervisor's heartbeat and restart policy."""

    # Seed 002: interval of the server's active health probe, its deadline, socket timeout.
    health_check_interval_sec: int = _f(5, _POS_INT)
    max_response_time_ms: int = _f(300, _POS_INT)
    socket_timeout_sec: float = _f(2.0, _POS)
    # How often the worker sends a heartbeat.
    heartbeat_interval_ms: int = _f(1000, _POS_INT)
    # Missed heartbeats after which the instance is DEGRADED, and after which it is restarted.
    missed_heartbeats_degraded: int = _f(2, _POS_INT)
    missed_heartbeats_restart: int = _f(5, _POS_INT)
    # Consecutive worker failures after which the supervisor stops restarting (FAILED).
    max_consecutive_failures: int = _f(3, _POS_INT)
    # Exponential restart backoff: first delay and cap.
    restart_backoff_initial_ms: int = _f(100, _NON_NEG_INT)
    restart_backoff_max_ms: int = _f(30000, _NON_NEG_INT)
    # A worker up this long counts as stable and resets the failure count.
    stable_after_sec: float = _f(10.0, _NON_NEG)
    # Broker connection retries (seed 000: exponential backoff, 5 attempts).
    broker_retry_attempts: int = _f(5, _NON_NEG_INT)
    broker_retry_initial_ms: int = _f(1000, _NON_NEG_INT)
    # After the terminal lost its broker connection, the worker logs in again this often.
    broker_relogin_after_ms: int = _f(5000, _NON_NEG_INT)


@dataclass(frozen=True, slots=True)
class TradePair:
    """One entry of ``trade_pairs.json``."""

    trade_pair: str = field(metadata={"spec": _SYMBOL})
    spread_type: Literal["floating", "fixed"] = _f("floating", _enum(SPREAD_TYPES))
    # Default volume (lots) of an order in this symbol.
    lot_size: float = _f(0.01, _POS)
    # Largest volume of one order in this symbol; null = broker.max_lot_size.
    max_volume: float | None = _f(None, _optional(_POS))


DEFAULT_TRADE_PAIRS: Final = (
    TradePair("EURUSD"),
    TradePair("GBPUSD"),
    TradePair("USDJPY"),
    # The sim's XAUUSD spec caps one order at 50 lots.
    TradePair("XAUUSD", max_volume=50.0),
)

_SectionClass = type[
    BrokerSection | InstanceSection | ExecutionSection | RiskSection | HealthCheckSection
]
_SECTION_CLASSES: Final[Mapping[str, _SectionClass]] = {
    "broker": BrokerSection,
    "instance": InstanceSection,
    "execution": ExecutionSection,
    "risk": RiskSection,
    "health_check": HealthCheckSection,
}
_FIELDS: Final[Mapping[type[Any], Mapping[str, dataclasses.Field[Any]]]] = {
    cls: {f.name: f for f in dataclasses.fields(cls)}
    for cls in (*_SECTION_CLASSES.values(), TradePair)
}


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


# --------------------------------------------------------------------------------------------
# Parsing and validation.


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


# --------------------------------------------------------------------------------------------
# Templates.


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


# --------------------------------------------------------------------------------------------
# Runtime config.


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
