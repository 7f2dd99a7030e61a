"""Durable state of the server outside the engine's memory.

Submodules are imported on their own (``mt5exec.storage.history`` for the DuckDB history) so
that a process needing one store does not pay for the client libraries of the others.
"""
