"""Terminal worker processes: one per instance, speaking the worker protocol to the engine.

``protocol`` frames messages on the socket; ``sim`` serves the built-in simulated broker.
"""
