"""The blocking client is what scripts/gen_sync_client.py writes from the asyncio one."""

from __future__ import annotations

import shutil
from pathlib import Path

from scripts.gen_sync_client import PACKAGE, generate


def test_the_sync_client_is_generated_from_the_async_one(tmp_path: Path) -> None:
    copy = tmp_path / "client"
    shutil.copytree(PACKAGE / "_async", copy / "_async")
    generate(copy)
    committed = sorted(p.name for p in (PACKAGE / "_sync").glob("*.py"))
    assert sorted(p.name for p in (copy / "_sync").glob("*.py")) == committed
    for name in committed:
        assert (copy / "_sync" / name).read_text() == (PACKAGE / "_sync" / name).read_text(), (
            f"_sync/{name} is stale: run scripts/gen_sync_client.py"
        )
