"""mt5exec: a self-hosted gRPC execution server for MetaTrader 5."""

__version__ = "0.1.0"
