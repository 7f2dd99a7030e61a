"""Terminal worker processes: one per instance, speaking the worker protocol to the engine.

``protocol`` frames messages on the socket; ``base`` holds the lifecycle every worker shares
(connecting, the Hello/Welcome handshake, heartbeats, faults, signals, exit codes); ``sim``
serves the built-in simulated broker and ``mt5`` a MetaTrader 5 terminal (the MetaTrader5
package, or a module with its API such as ``mt5exec.mt5.simterminal``).
"""
