"""The built-in simulated broker (backend "sim"): symbol specs, prices, account and execution.

A deterministic library; its only I/O is the durable account (``mt5exec.sim.state``: a journal
and snapshots in the instance directory), so that the account survives worker restarts like a
real broker's. ``mt5exec.workers.sim`` serves it over the worker protocol.
"""

from mt5exec.sim.broker import FaultState, SendOutcome, SimBroker, SimConfig
from mt5exec.sim.symbols import DEFAULT_SYMBOLS, SymbolSpec, get_symbol, symbol_info

__all__ = [
    "DEFAULT_SYMBOLS",
    "FaultState",
    "SendOutcome",
    "SimBroker",
    "SimConfig",
    "SymbolSpec",
    "get_symbol",
    "symbol_info",
]
