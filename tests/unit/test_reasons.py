"""The ``ErrorInfo.reason`` catalogue has one home per language and one page of docs: the
engine's list (rust_core/src/reason.rs), the Python ``Reason`` class and docs/errors.md agree."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest
from google.protobuf.descriptor import Descriptor, EnumDescriptor

import mt5exec.v1
from mt5exec.errors import MT5ExecError
from mt5exec.reasons import ALL, Reason
from mt5exec.services import validation

ROOT = Path(__file__).resolve().parents[2]


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
    assert [n for n in names if n not in ALL] == []


def test_reasons_are_spelled_as_named() -> None:
    names = {name: value for name, value in vars(Reason).items() if name.isupper()}
    assert [name for name, value in names.items() if value != name] == []
    assert set(names.values()) == ALL


def test_the_docs_list_every_reason_with_its_meaning() -> None:
    docs = documented()
    assert sorted(docs) == sorted(ALL)
    assert [name for name, meaning in docs.items() if len(meaning.strip()) < 10] == []


# Strings that are spelled as a reason but are not one.
NOT_REASONS = {("config/values.py", "ERROR")}  # a log level


def test_python_names_reasons_only_through_reason() -> None:
    """No string literal of the package spells a reason (outside reasons.py): a reason is
    ``Reason.X``, so a typo is an AttributeError, not a new public reason."""
    package = ROOT / "python/mt5exec"
    found = []
    for path in sorted(package.rglob("*.py")):
        name = path.relative_to(package).as_posix()
        if name == "reasons.py" or name.startswith("v1/"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and node.value in ALL
                and (name, node.value) not in NOT_REASONS
            ):
                found.append(f"{name}:{node.lineno}: {node.value}")
    assert found == []


def test_every_enum_of_the_api_has_its_reason() -> None:
    """An enum field holding an unknown value is refused with ``<ENUM>_INVALID`` (or the
    enum's own reason): each of those is in the catalogue."""
    modules = [
        importlib.import_module(f"mt5exec.v1.{m.name}")
        for m in pkgutil.iter_modules(mt5exec.v1.__path__)
        if m.name.endswith("_pb2")
    ]

    def enums(messages: Iterable[Descriptor]) -> Iterator[EnumDescriptor]:
        for message in messages:
            yield from message.enum_types
            yield from enums(message.nested_types)

    reasons = set()
    for module in modules:
        file = module.DESCRIPTOR
        for descriptor in [
            *file.enum_types_by_name.values(),
            *enums(file.message_types_by_name.values()),
        ]:
            with pytest.raises(MT5ExecError) as refused:
                validation.enum("field", 1 << 20, descriptor)
            assert refused.value.reason in ALL, descriptor.full_name
            reasons.add(refused.value.reason)
    assert {Reason.SIDE_INVALID, Reason.ORDER_TYPE_INVALID} <= reasons


def test_the_engine_names_reasons_only_through_its_catalogue() -> None:
    """Outside reason.rs and the tests, no Rust string literal spells a reason: the code says
    ``reason::X``."""
    names = set(rust_reasons())
    source = ROOT / "rust_core/src"
    found = []
    for path in sorted(source.rglob("*.rs")):
        name = path.relative_to(source).as_posix()
        if name == "reason.rs" or path.name == "tests.rs":
            continue
        code = re.split(r"^#\[cfg\(test\)\]", path.read_text(), maxsplit=1, flags=re.M)[0]
        for number, line in enumerate(code.splitlines(), 1):
            if not line.lstrip().startswith("//"):
                found += [
                    f"{name}:{number}: {literal}"
                    for literal in re.findall(r'"([A-Z][A-Z0-9_]*)"', line)
                    if literal in names
                ]
    assert found == []
