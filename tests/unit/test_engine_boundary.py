"""The boundary to the Rust engine (issue #23): one typed config whose defaults are the
engine's own, and named records instead of tuples."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from mt5exec import _core, config, engine


def test_the_server_defaults_are_the_engines() -> None:
    """``[engine]`` left empty gives the engine exactly its own defaults (written once, in
    rust_core/src/config.rs), through the section's units (MB, KB, ms)."""
    server = config.EngineConfig().core(None)
    core = engine.EngineConfig()
    for name in (
        "journal_fsync",
        "stop_grace_s",
        "kill_grace_s",
        "tick_queue_limit",
        "stream_queue_max_bytes",
        "final_order_retention_s",
        "max_orders_per_instance",
        "journal_compact_bytes",
        "execution_log_bytes",
        "stream_coalesce_max_s",
    ):
        assert getattr(server, name) == getattr(core, name), name


def test_a_section_value_reaches_the_engine() -> None:
    section = dataclasses.replace(
        config.EngineConfig(), max_orders_per_instance=7, journal_compact_mb=0.5
    )
    core = section.core(Path("/tmp/j"))
    assert (core.max_orders_per_instance, core.journal_compact_bytes) == (7, 1 << 19)
    assert core.journal_path == Path("/tmp/j")
    # What the section leaves to the engine keeps the engine's default.
    assert core.execution_queue_limit == engine.ENGINE_DEFAULTS.execution_queue_limit


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"max_orders_per_instance": 0}, "max_orders_per_instance"),
        ({"stop_grace_s": -1.0}, "stop_grace_s"),
        ({"final_order_retention_s": float("nan")}, "final_order_retention_s"),
        ({"journal_fsync": "sometimes"}, "journal fsync policy"),
    ],
)
def test_a_config_the_engine_cannot_use_is_refused_when_made(
    kwargs: dict[str, object], field: str
) -> None:
    with pytest.raises(ValueError, match=field):
        engine.EngineConfig(**kwargs)  # type: ignore[arg-type]


def test_the_config_takes_names_only() -> None:
    with pytest.raises(TypeError):
        engine.EngineConfig(None)  # type: ignore
    with pytest.raises(TypeError):
        _core.InstanceSpec("a", "owner")  # type: ignore


def test_journal_stats_are_named(tmp_path: Path) -> None:
    e = engine.Engine(engine.EngineConfig(journal_path=tmp_path / "orders.journal"))
    stats = e.journal_stats()
    assert isinstance(stats, engine.JournalStats)
    assert (stats.records, stats.fsyncs, stats.compactions) == (0, 0, 0)
    assert e.config.journal_path == tmp_path / "orders.journal"
