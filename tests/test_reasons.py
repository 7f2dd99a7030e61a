"""The ``ErrorInfo.reason`` catalogue has one home per language and one page of docs: the
engine's list (rust_core/src/reason.rs), the Python ``Reason`` enum and docs/errors.md agree."""

from __future__ import annotations

import re
from pathlib import Path

from mt5exec.reasons import Reason

ROOT = Path(__file__).resolve().parent.parent


def rust_reasons() -> list[str]:
    """The names in ``reasons! { ... }`` of rust_core/src/reason.rs (what ``reason::ALL`` holds)."""
    source = (ROOT / "rust_core/src/reason.rs").read_text()
    block = re.search(r"^reasons! \{\n(.*?)^\}", source, re.MULTILINE | re.DOTALL)
    assert block, "no reasons! { ... } in reason.rs"
    return re.findall(r"^\s+([A-Z][A-Z0-9_]*),", block.group(1), re.MULTILINE)


def documented() -> dict[str, str]:
    """reason -> meaning, from the tables of docs/errors.md."""
    text = (ROOT / "docs/errors.md").read_text()
    return dict(re.findall(r"^\| `([A-Z][A-Z0-9_]*)` \| (.*) \|$", text, re.MULTILINE))


def test_every_engine_reason_is_a_python_reason() -> None:
    names = rust_reasons()
    assert len(names) > 100, names
    assert len(set(names)) == len(names)
    assert [n for n in names if n not in Reason.__members__] == []


def test_reasons_are_spelled_as_named() -> None:
    assert [r.name for r in Reason if r.value != r.name] == []


def test_the_docs_list_every_reason_with_its_meaning() -> None:
    docs = documented()
    assert sorted(docs) == sorted(Reason.__members__)
    assert [name for name, meaning in docs.items() if len(meaning.strip()) < 10] == []
