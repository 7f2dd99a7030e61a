"""The built-in simulated broker (backend "sim"): an MT5 trade server on a simulated market.

``broker`` owns prices, the account, orders and their execution (a package along the seams of a
trade server, docs/simulated-broker.md); ``faults`` fault injection; ``constants`` MT5's
numbering; ``symbols`` the contract specs and per-symbol settings; ``sessions`` trading hours;
``state`` the durable account (journal, snapshots, order and deal history). A deterministic
library; its only I/O is the durable account in the instance directory, so that the account and
its history survive worker restarts like a real broker's. ``mt5exec.workers.sim`` serves it over
the worker protocol.
"""

from mt5exec.sim.broker import Activity, SendOutcome, SimBroker, SimConfig
from mt5exec.sim.faults import FaultState
from mt5exec.sim.symbols import (
    DEFAULT_SYMBOLS,
    SymbolSettings,
    SymbolSpec,
    get_symbol,
    symbol_info,
)

__all__ = [
    "DEFAULT_SYMBOLS",
    "Activity",
    "FaultState",
    "SendOutcome",
    "SimBroker",
    "SimConfig",
    "SymbolSettings",
    "SymbolSpec",
    "get_symbol",
    "symbol_info",
]
