"""What the blocking client does its own way (``_aio_io`` is the asyncio twin)."""

from __future__ import annotations

from time import sleep

import grpc

from mt5exec.client.settings import Settings

Channel = grpc.Channel

__all__ = ["Channel", "open_channel", "sleep"]


def open_channel(settings: Settings) -> grpc.Channel:
    if settings.tls:
        return grpc.secure_channel(
            settings.target, settings.credentials(), settings.channel_options()
        )
    return grpc.insecure_channel(settings.target, settings.channel_options())
