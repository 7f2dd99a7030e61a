"""Everything that touches a real MetaTrader 5 terminal's files and process.

``mt5exec.mt5.bootstrap`` turns a base MT5 installation into a per-instance portable terminal
(copy, startup ini, launch through Wine or natively, password scrubbing);
``mt5exec.mt5.experts`` deploys Expert Advisors into such a terminal and confirms from the
READY/heartbeat files that ``mql5/Include/mt5exec/Signals.mqh`` makes them write.

Neither imports gRPC nor the engine: the MT5 worker process imports them on its own.
"""
