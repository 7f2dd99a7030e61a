"""The committed protobuf code matches what scripts/gen_protos.py writes from proto/."""

from __future__ import annotations

import filecmp
import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _generator():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("gen_protos", ROOT / "scripts" / "gen_protos.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _generated(root: Path) -> dict[str, Path]:
    return {
        str(p.relative_to(root)): p
        for package in ("mt5exec/v1", "mt5exec/terminal/v1")
        for p in (root / package).glob("*")
        if p.is_file() and p.suffix in (".py", ".pyi")
    }


def test_generated_code_is_fresh(tmp_path: Path) -> None:
    _generator().generate(tmp_path)
    fresh = _generated(tmp_path)
    committed = _generated(ROOT / "python")
    assert sorted(fresh) == sorted(committed), "run: python scripts/gen_protos.py"
    stale = [name for name, path in fresh.items() if not filecmp.cmp(path, committed[name], False)]
    assert stale == [], f"stale generated code {stale}: run python scripts/gen_protos.py"
