"""The server freezes what it is made of once started, so that Python's full collections
(14-25 ms each before, in the middle of orders) no longer walk it."""

from __future__ import annotations

import asyncio
import gc
from pathlib import Path

from mt5exec.config import load_config
from mt5exec.server.app import Server


def test_a_started_server_has_frozen_its_startup_objects(tmp_path: Path) -> None:
    config = load_config(
        env={},
        overrides={
            "server.data_dir": str(tmp_path),
            "server.listen": "127.0.0.1:0",
            "history.enabled": "false",
        },
    )

    async def start_and_stop() -> int:
        server = Server(config)
        await server.start()
        try:
            return gc.get_freeze_count()
        finally:
            await server.stop()

    gc.unfreeze()
    try:
        frozen = asyncio.run(start_and_stop())
    finally:
        gc.unfreeze()
    # Everything alive at the start: the modules, descriptors and servicers at least.
    assert frozen > 10_000
