"""The Python client of mt5exec: ``Client`` (blocking) and ``AsyncClient`` (asyncio), with the
same typed methods (docs/client.md).

    from mt5exec.client import Client, errors
    with Client("127.0.0.1:50051", token=...) as client:
        order = client.place_order("demo", "EURUSD", SIDE_BUY, 0.01)
"""

from mt5exec.client import errors
from mt5exec.client._async.client import AsyncClient
from mt5exec.client._sync.client import Client
from mt5exec.client.errors import Error
from mt5exec.client.retry import RECONNECT, RetryPolicy
from mt5exec.client.settings import Settings, SettingsError

__all__ = [
    "RECONNECT",
    "AsyncClient",
    "Client",
    "Error",
    "RetryPolicy",
    "Settings",
    "SettingsError",
    "errors",
]
