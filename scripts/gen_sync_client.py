"""Writes python/mt5exec/client/_sync/ from python/mt5exec/client/_async/ with unasync
(async/await dropped, Async* names made sync), then ruff-formats it. A test checks that the
committed files are what this writes: edit _async/ and run this, never edit _sync/.

    .venv/bin/python scripts/gen_sync_client.py [ROOT]
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import unasync

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "python" / "mt5exec" / "client"
NAMES = {
    "_async": "_sync",
    "_aio_io": "_sync_io",
    "AsyncClient": "Client",
    "AsyncBase": "SyncBase",
    "aclose": "close",
}

HEADER = "# Generated from ../_async by scripts/gen_sync_client.py: edit that, not this.\n"


def generate(package: Path) -> None:
    """(Re)writes ``package/_sync`` from ``package/_async``."""
    target = package / "_sync"
    shutil.rmtree(target, ignore_errors=True)
    sources = sorted(str(p) for p in (package / "_async").glob("*.py"))
    rule = unasync.Rule(fromdir="/_async/", todir="/_sync/", additional_replacements=NAMES)
    unasync.unasync_files(sources, [rule])
    for path in target.glob("*.py"):
        path.write_text(HEADER + path.read_text())
    ruff = Path(sys.executable).parent / "ruff"
    files = sorted(str(p) for p in target.glob("*.py"))
    config = ["--config", str(ROOT / "pyproject.toml")]
    fix = ["check", "-q", "--fix", "--select", "I,F401", *config]
    subprocess.run([str(ruff), *fix, *files], check=True)
    subprocess.run([str(ruff), "format", "-q", *config, *files], check=True)


if __name__ == "__main__":
    generate(Path(sys.argv[1]) if len(sys.argv) > 1 else PACKAGE)
