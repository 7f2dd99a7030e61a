"""What the asyncio client does its own way (``_sync_io`` is the blocking twin)."""

from __future__ import annotations

from asyncio import sleep

from grpc import aio

from mt5exec.client.settings import Settings

Channel = aio.Channel

__all__ = ["Channel", "open_channel", "sleep"]


def open_channel(settings: Settings) -> aio.Channel:
    if settings.tls:
        return aio.secure_channel(
            settings.target, settings.credentials(), settings.channel_options()
        )
    return aio.insecure_channel(settings.target, settings.channel_options())
