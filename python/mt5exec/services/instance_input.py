"""What CreateInstance and UpdateCredentials take: the request's config as template overrides
(each value checked, naming its field), a terminal's password and server, the sim's symbols.
"""

from __future__ import annotations

import re

import grpc

from mt5exec.errors import MT5ExecError, invalid, quote
from mt5exec.reasons import Reason
from mt5exec.services import validation
from mt5exec.sim.symbols import DEFAULT_SYMBOLS
from mt5exec.v1 import common_pb2
from mt5exec.vault import VaultError
from mt5exec.workers.sim import TICK_BATCH_MS_RANGE

_MARGIN_MODES = {
    common_pb2.ACCOUNT_MARGIN_MODE_HEDGING: "hedging",
    common_pb2.ACCOUNT_MARGIN_MODE_NETTING: "netting",
}
# Simulated broker: what a starting balance, leverage and currency may be.
_INITIAL_BALANCE = (0.01, 1e12)
_LEVERAGE = (1, 10_000)
_CURRENCY = re.compile(r"[A-Za-z]{3}")
# A terminal password: printable (the worker reads it from a file line), bounded.
_PASSWORD = re.compile(r"[^\x00-\x1f\x7f]{1,256}")
MT5_SERVER = re.compile(r"[^\x00-\x1f\x7f]{1,128}")


def overrides(config: common_pb2.InstanceConfig) -> dict[str, dict[str, object]]:
    """The request's config as template overrides (proto3 zero = not given)."""
    instance: dict[str, object] = {}
    broker: dict[str, object] = {}
    if config.symbols:
        for symbol in config.symbols:
            validation.text("config.symbols", symbol, max_length=64, pattern=validation.SYMBOL)
        instance["trade_pairs"] = list(config.symbols)
    if config.seed:
        instance["seed"] = config.seed
    if config.tick_rate:
        validation.finite("config.tick_rate", config.tick_rate, maximum=100_000.0)
        instance["tick_rate"] = config.tick_rate
    if config.tick_batch_ms:
        low, high = TICK_BATCH_MS_RANGE
        validation.finite("config.tick_batch_ms", config.tick_batch_ms, minimum=low, maximum=high)
        instance["tick_batch_ms"] = config.tick_batch_ms
    if config.initial_balance:
        low, high = _INITIAL_BALANCE
        validation.finite(
            "config.initial_balance", config.initial_balance, minimum=low, maximum=high
        )
        instance["initial_balance"] = config.initial_balance
    if config.leverage:
        broker["leverage"] = validation.integer(
            "config.leverage", config.leverage, minimum=_LEVERAGE[0], maximum=_LEVERAGE[1]
        )
    if config.currency:
        broker["currency"] = validation.text(
            "config.currency", config.currency, max_length=3, pattern=_CURRENCY
        )
    if config.margin_mode:
        validation.enum(
            "config.margin_mode", config.margin_mode, common_pb2.AccountMarginMode.DESCRIPTOR
        )
        broker["margin_mode"] = _MARGIN_MODES[config.margin_mode]
    return {"instance": instance, "broker": broker}


def password(field: str, value: str) -> str:
    if not value:
        raise invalid(field, Reason.FIELD_REQUIRED, f"{field}: required for MT5")
    if not _PASSWORD.fullmatch(value):
        # The value itself is never echoed.
        raise invalid(
            field, Reason.PASSWORD_INVALID, f"{field}: 1 to 256 characters, no control characters"
        )
    return value


def vault_unavailable(what: str, e: VaultError) -> MT5ExecError:
    return MT5ExecError(
        grpc.StatusCode.UNAVAILABLE, Reason.VAULT_UNAVAILABLE, f"{what}: the credential vault: {e}"
    )


def check_symbols(symbols: list[str]) -> None:
    for symbol in symbols:
        if symbol not in DEFAULT_SYMBOLS:
            raise invalid(
                "config.symbols",
                Reason.SYMBOL_UNKNOWN,
                f"config.symbols: the simulated broker has no {quote(symbol)} "
                f"(it has {', '.join(DEFAULT_SYMBOLS)})",
            )
    if len(set(symbols)) != len(symbols):
        raise invalid("config.symbols", Reason.SYMBOL_DUPLICATE, "config.symbols: duplicates")
