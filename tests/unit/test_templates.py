"""Instance templates and the generated runtime config (mt5exec.templates), on real files."""

from __future__ import annotations

import dataclasses
import json
import logging
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from mt5exec import templates as tpl
from mt5exec.sim.state import Retention
from mt5exec.templates import (
    RuntimeConfig,
    TemplateError,
    Templates,
    TradePair,
    build_runtime_config,
    load_runtime_config,
    load_templates,
    runtime_config_path,
    write_runtime_config,
)
from mt5exec.v1 import common_pb2
from mt5exec.workers import sim as sim_worker

OVERRIDES: Mapping[str, Mapping[str, object]] = {
    "instance": {
        "trade_pairs": ["EURUSD", "XAUUSD"],
        "tick_rate": 50,
        "seed": 7,
        "tick_batch_ms": 5,
    },
    "risk": {"max_trades_per_day": 5},
}


def write(directory: Path, name: str, content: object) -> Path:
    path = directory / f"{name}.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


@pytest.fixture
def templates() -> Templates:
    return load_templates()


# --------------------------------------------------------------------------------------------
# Templates


def test_packaged_defaults_load_and_equal_the_dataclass_defaults() -> None:
    loaded = load_templates()
    assert loaded == Templates()
    assert set(loaded.sources) == set(tpl.SECTION_NAMES)
    assert all(Path(src).is_file() for src in loaded.sources.values())


def test_packaged_defaults_are_complete_files() -> None:
    # Each packaged file states every key, so an operator copying one sees them all.
    for name, src in load_templates().sources.items():
        data = json.loads(Path(src).read_text())
        if name == "trade_pairs":
            for entry in data:
                assert set(entry) == {f.name for f in dataclasses.fields(TradePair)}
        else:
            cls = type(getattr(Templates(), name))
            assert list(data) == [f.name for f in dataclasses.fields(cls)], name


def test_seed_002_shapes_are_accepted(tmp_path: Path) -> None:
    # The examples of seed 002, minus its credentials and per-row ids.
    write(
        tmp_path,
        "broker",
        {
            "broker_id": "ABC123",
            "broker_name": "BrokerX",
            "server": "brokerx.server.com",
            "leverage": 100,
            "min_lot_size": 0.01,
            "max_lot_size": 100,
            "spread_type": "floating",
            "currency": "USD",
        },
    )
    write(
        tmp_path,
        "instance",
        {
            "instance_id": "ABC123-001",
            "broker_id": "ABC123",
            "trade_pairs": ["EURUSD", "GBPUSD"],
            "max_trades": 10,
            "slippage_limit": 2.0,
            "trade_routing": "direct",
            "health_check_interval_sec": 10,
        },
    )
    write(
        tmp_path,
        "execution",
        {
            "stop_loss": 50.0,
            "take_profit": 100.0,
            "lot_size": 0.01,
            "risk_percent": 1.0,
            "trade_timeout_sec": 5,
        },
    )
    write(
        tmp_path,
        "risk",
        {
            "max_loss_per_day": 1000.0,
            "max_loss_per_trade": 100.0,
            "max_trades_per_day": 50,
            "max_open_positions": 20,
        },
    )
    write(
        tmp_path,
        "health_check",
        {"health_check_interval_sec": 5, "max_response_time_ms": 300, "socket_timeout_sec": 2},
    )
    write(
        tmp_path,
        "trade_pairs",
        [
            {"trade_pair": "EURUSD", "spread_type": "floating", "lot_size": 0.01},
            {"trade_pair": "GBPUSD", "spread_type": "floating", "lot_size": 0.01},
        ],
    )
    loaded = load_templates(tmp_path)
    assert loaded.broker.broker_name == "BrokerX"
    assert loaded.broker.max_lot_size == 100.0
    assert isinstance(loaded.broker.max_lot_size, float)
    assert loaded.instance.trade_pairs == ("EURUSD", "GBPUSD")
    assert loaded.health_check.socket_timeout_sec == 2.0
    assert [p.trade_pair for p in loaded.trade_pairs] == ["EURUSD", "GBPUSD"]
    runtime = build_runtime_config(loaded, "ABC123-001", "alice", {})
    # The instance's interval replaces the health check default for this instance.
    assert runtime.instance.health_check_interval_sec == 10
    assert runtime.health_check.health_check_interval_sec == 10


def test_partial_user_template_overrides_only_its_keys(tmp_path: Path) -> None:
    write(tmp_path, "risk", {"max_trades_per_day": 7, "orders_per_second": 500})
    loaded = load_templates(tmp_path)
    assert loaded.risk == dataclasses.replace(
        Templates().risk, max_trades_per_day=7, orders_per_second=500.0
    )
    assert loaded.broker == Templates().broker
    assert loaded.sources["risk"] == str(tmp_path / "risk.json")
    assert loaded.sources["broker"].endswith("template_defaults/broker.json")


def test_user_trade_pairs_replace_the_catalogue(tmp_path: Path) -> None:
    write(tmp_path, "trade_pairs", [{"trade_pair": "EURUSD"}, {"trade_pair": "USDJPY"}])
    write(tmp_path, "instance", {"trade_pairs": ["USDJPY"]})
    loaded = load_templates(tmp_path)
    # Entry keys left out take the entry defaults.
    assert loaded.trade_pairs == (TradePair("EURUSD"), TradePair("USDJPY"))
    assert loaded.trade_pair("XAUUSD") is None


def test_enums_and_currency_are_case_insensitive(tmp_path: Path) -> None:
    write(tmp_path, "broker", {"spread_type": "FIXED", "margin_mode": "Netting", "currency": "eur"})
    broker = load_templates(tmp_path).broker
    assert (broker.spread_type, broker.margin_mode, broker.currency) == ("fixed", "netting", "EUR")


BAD_TEMPLATES: list[tuple[str, object, str]] = [
    # wrong type
    ("risk", {"max_trades_per_day": "50"}, "max_trades_per_day: expected a non-negative integer"),
    ("risk", {"max_trades_per_day": 5.0}, "max_trades_per_day: expected a non-negative integer"),
    ("risk", {"max_open_positions": True}, "max_open_positions: expected a non-negative integer"),
    ("broker", {"leverage": None}, "leverage: expected a positive integer, got null"),
    ("execution", {"lot_size": "0.1"}, 'lot_size: expected a positive number, got "0.1"'),
    ("instance", {"trade_pairs": "EURUSD"}, "trade_pairs: expected a non-empty list of symbol"),
    ("broker", {"currency": "US Dollar"}, "currency: expected a 3-letter ISO currency code"),
    # out of range
    ("risk", {"max_trades_per_day": -3}, "max_trades_per_day: expected a non-negative integer"),
    ("risk", {"max_loss_per_day": -1}, "max_loss_per_day: expected a non-negative number, got -1"),
    ("execution", {"lot_size": 0}, "lot_size: expected a positive number, got 0"),
    ("execution", {"risk_percent": 150}, "risk_percent: expected a number in 0..100, got 150"),
    ("execution", {"trade_timeout_sec": 0}, "trade_timeout_sec: expected a positive integer"),
    ("instance", {"seed": -1}, "seed: expected an integer in 0..2^64-1, got -1"),
    ("instance", {"seed": 2**64}, "seed: expected an integer in 0..2^64-1"),
    ("instance", '{"tick_rate": 1e400}', "tick_rate: expected a non-negative number"),
    ("health_check", {"heartbeat_interval_ms": 0}, "heartbeat_interval_ms: expected a positive"),
    # unknown keys
    ("risk", {"max_trade_per_day": 5}, "max_trade_per_day: unknown key (known: max_loss_per_day"),
    ("broker", {"a": 1, "b": 2}, "a, b: unknown keys (known: broker_id"),
    # bad enums
    ("broker", {"spread_type": "variable"}, 'spread_type: expected one of "floating", "fixed"'),
    ("broker", {"margin_mode": "exchange"}, 'margin_mode: expected one of "hedging", "netting"'),
    ("execution", {"filling": "gtc"}, 'filling: expected one of "auto", "fok", "ioc", "return"'),
    ("instance", {"trade_routing": "copy"}, 'trade_routing: expected one of "direct"'),
    # credentials
    ("broker", {"password": "********"}, "password: credentials do not belong in configs"),
    ("broker", {"Investor_Password": "x"}, "Investor_Password: credentials do not belong"),
    ("broker", {"login_number": "123456"}, "login_number: credentials do not belong"),
    ("trade_pairs", [{"trade_pair": "EURUSD", "password": "x"}], "[0].password: credentials"),
    # bad ids and symbols
    ("broker", {"broker_id": "a b"}, "broker_id: expected an id of 1-64 letters"),
    ("instance", {"trade_pairs": ["EURUSD", "EURUSD"]}, 'trade_pairs: duplicate symbol "EURUSD"'),
    ("instance", {"trade_pairs": []}, "trade_pairs: expected a non-empty list of symbol names"),
    ("instance", {"trade_pairs": ["EUR USD"]}, 'trade_pairs: invalid symbol name "EUR USD"'),
    # shapes
    ("risk", [1, 2], "risk.json: expected a JSON object, got [1, 2]"),
    ("trade_pairs", {"trade_pair": "EURUSD"}, "trade_pairs.json: expected a JSON array"),
    ("trade_pairs", [{"spread_type": "fixed"}], "trade_pairs.json: [0].trade_pair: missing"),
    ("trade_pairs", ["EURUSD"], 'trade_pairs.json: [0]: expected a JSON object, got "EURUSD"'),
    ("trade_pairs", [{"trade_pair": "EURUSD", "lot_size": -1}], "[0].lot_size: expected a pos"),
    (
        "trade_pairs",
        [{"trade_pair": "EURUSD"}, {"trade_pair": "EURUSD"}],
        '[1].trade_pair: duplicate "EURUSD" (also at [0])',
    ),
    # broken JSON
    ("risk", '{\n  "max_trades_per_day": 5,\n}', "risk.json: invalid JSON at line 3, column 1"),
    ("risk", "", "risk.json: invalid JSON at line 1, column 1"),
    ("risk", '{"max_trades_per_day": 5, "max_trades_per_day": 6}', "max_trades_per_day: duplicate"),
    ("risk", '{"max_loss_per_day": NaN}', "risk.json: invalid JSON: NaN is not a valid JSON value"),
    # rules across fields and files
    ("broker", {"min_lot_size": 5, "max_lot_size": 1}, "min_lot_size: must be <= max_lot_size"),
    ("risk", {"min_order_volume": 20}, "min_order_volume: must be <= max_order_volume (10)"),
    ("health_check", {"missed_heartbeats_restart": 2}, "missed_heartbeats_restart: must be >"),
    (
        "health_check",
        {"restart_backoff_initial_ms": 60000},
        "restart_backoff_initial_ms: must be <= restart_backoff_max_ms (30000)",
    ),
    ("instance", {"broker_id": "other"}, 'broker_id: "other" does not match broker.broker_id'),
    ("instance", {"trade_pairs": ["BTCUSD"]}, '"BTCUSD" is not in the trade pair catalogue'),
    ("execution", {"lot_size": 500}, "lot_size: 500 is outside broker min_lot_size..max_lot_size"),
    (
        "trade_pairs",
        [
            {"trade_pair": "EURUSD", "lot_size": 1, "max_volume": 0.5},
            *({"trade_pair": s} for s in ("GBPUSD", "USDJPY", "XAUUSD")),
        ],
        "[0].max_volume: must be >= lot_size (1)",
    ),
]


@pytest.mark.parametrize(("name", "content", "expected"), BAD_TEMPLATES)
def test_bad_template_names_file_and_field(
    tmp_path: Path, name: str, content: object, expected: str
) -> None:
    path = write(tmp_path, name, content)
    with pytest.raises(TemplateError) as info:
        load_templates(tmp_path)
    message = str(info.value)
    assert message.startswith(f"{path}: "), message
    assert expected in message, message


def test_error_message_format(tmp_path: Path) -> None:
    write(tmp_path, "risk", {"max_trades_per_day": -3})
    with pytest.raises(TemplateError, match=r"^.*risk\.json: max_trades_per_day: ") as info:
        load_templates(tmp_path)
    assert str(info.value) == (
        f"{tmp_path / 'risk.json'}: max_trades_per_day: expected a non-negative integer, got -3"
    )
    assert isinstance(info.value, ValueError)


def test_cross_file_error_names_the_file_of_the_field(tmp_path: Path) -> None:
    # The catalogue is the user's, the instance template the default: the instance file is named.
    write(tmp_path, "trade_pairs", [{"trade_pair": "EURUSD"}])
    with pytest.raises(TemplateError) as info:
        load_templates(tmp_path)
    assert "template_defaults/instance.json: trade_pairs: " in str(info.value)
    assert '"GBPUSD" is not in the trade pair catalogue' in str(info.value)


def test_not_utf8_template(tmp_path: Path) -> None:
    (tmp_path / "risk.json").write_bytes(b'{"max_trades_per_day": "\xff"}')
    with pytest.raises(TemplateError, match=r"risk\.json: not UTF-8 text"):
        load_templates(tmp_path)


def test_unknown_template_file_is_an_error(tmp_path: Path) -> None:
    write(tmp_path, "brokers", {})
    (tmp_path / "README.txt").write_text("not a template")
    with pytest.raises(TemplateError, match=r"brokers\.json: unknown template file"):
        load_templates(tmp_path)


def test_missing_templates_directory(tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match="templates directory not found"):
        load_templates(tmp_path / "nope")


# --------------------------------------------------------------------------------------------
# Building the runtime config


def test_overrides_beat_templates(tmp_path: Path) -> None:
    write(tmp_path, "risk", {"max_trades_per_day": 40, "max_open_positions": 3})
    write(tmp_path, "instance", {"tick_rate": 5})
    templates = load_templates(tmp_path)
    runtime = build_runtime_config(templates, "acct-1", "alice", OVERRIDES)
    assert runtime.instance_id == "acct-1"
    assert runtime.owner == "alice"
    assert runtime.instance.trade_pairs == ("EURUSD", "XAUUSD")
    assert runtime.instance.tick_rate == 50.0
    assert runtime.instance.seed == 7
    assert runtime.risk.max_trades_per_day == 5  # override
    assert runtime.risk.max_open_positions == 3  # user template
    assert runtime.risk.max_loss_per_day == 1000.0  # packaged default
    # Only the catalogue entries of the instance's symbols, in its order.
    assert [p.trade_pair for p in runtime.trade_pairs] == ["EURUSD", "XAUUSD"]
    assert runtime.trade_pairs[1].max_volume == 50.0


def test_no_overrides_gives_the_templates(templates: Templates) -> None:
    runtime = build_runtime_config(templates, "i1", "default")
    assert runtime.broker == templates.broker
    assert runtime.risk == templates.risk
    assert runtime.instance == dataclasses.replace(
        templates.instance, instance_id="i1", health_check_interval_sec=5
    )
    assert runtime.trade_pairs == templates.trade_pairs


def test_trade_pair_overrides(templates: Templates) -> None:
    runtime = build_runtime_config(
        templates,
        "i1",
        "bob",
        {
            "trade_pairs": {"EURUSD": {"lot_size": 0.1}, "EURUSD.m": {"spread_type": "fixed"}},
            "instance": {"trade_pairs": ["EURUSD", "EURUSD.m"]},
        },
    )
    assert runtime.trade_pairs == (
        TradePair("EURUSD", lot_size=0.1),
        TradePair("EURUSD.m", spread_type="fixed"),
    )


def test_instance_interval_overrides_health_check_interval(templates: Templates) -> None:
    runtime = build_runtime_config(
        templates, "i1", "bob", {"instance": {"health_check_interval_sec": 30}}
    )
    assert runtime.health_check.health_check_interval_sec == 30
    assert runtime.instance.health_check_interval_sec == 30


def test_only_the_traded_pairs_must_fit_an_overridden_broker(templates: Templates) -> None:
    # XAUUSD allows 50 lots, above this broker's cap; the instance does not trade it.
    overrides: dict[str, dict[str, object]] = {
        "broker": {"max_lot_size": 20},
        "instance": {"trade_pairs": ["EURUSD"]},
    }
    assert build_runtime_config(templates, "i1", "bob", overrides).broker.max_lot_size == 20.0
    with pytest.raises(TemplateError, match=r"^override: trade_pairs\.XAUUSD\.max_volume: 50 is"):
        build_runtime_config(templates, "i1", "bob", {"broker": {"max_lot_size": 20}})


BAD_OVERRIDES: list[tuple[dict[str, Any], str]] = [
    ({"risk": {"max_trades_per_day": -3}}, "override: risk.max_trades_per_day: expected a non-neg"),
    ({"risk": {"max_trade_per_day": 1}}, "override: risk.max_trade_per_day: unknown key"),
    ({"broker": {"margin_mode": "both"}}, 'override: broker.margin_mode: expected one of "hedg'),
    ({"broker": {"password": "x"}}, "override: broker.password: credentials do not belong"),
    ({"instance": {"tick_rate": "fast"}}, "override: instance.tick_rate: expected a non-negative"),
    ({"instance": {"trade_pairs": ["NOPE"]}}, 'override: instance.trade_pairs: "NOPE" is not in'),
    ({"instance": {"instance_id": "other"}}, "override: instance.instance_id: is the instance"),
    ({"brokers": {"leverage": 1}}, "override: brokers: unknown section (known: broker, instance"),
    ({"risk": 5}, "override: risk: expected a mapping of keys to values, got 5"),
    ({"broker": {"max_lot_size": 0.001}}, "override: broker.min_lot_size: must be <= max_lot"),
    ({"execution": {"lot_size": 1000}}, "override: execution.lot_size: 1000 is outside broker"),
    ({"trade_pairs": {"EURUSD": {"lot_size": "x"}}}, "override: trade_pairs.EURUSD.lot_size: exp"),
    ({"trade_pairs": {"EURUSD": 1}}, "override: trade_pairs.EURUSD: expected a mapping"),
    ({"trade_pairs": {"EUR USD": {}}}, "override: trade_pairs.EUR USD: expected a symbol name"),
    (
        {"trade_pairs": {"EURUSD": {"trade_pair": "GBPUSD"}}},
        'override: trade_pairs.EURUSD.trade_pair: must be "EURUSD"',
    ),
]


@pytest.mark.parametrize(("overrides", "expected"), BAD_OVERRIDES)
def test_bad_override_names_override_and_field(
    templates: Templates, overrides: dict[str, Any], expected: str
) -> None:
    with pytest.raises(TemplateError) as info:
        build_runtime_config(templates, "i1", "bob", overrides)
    assert str(info.value).startswith(expected), str(info.value)


@pytest.mark.parametrize(
    ("instance_id", "owner", "expected"),
    [
        ("", "bob", "argument: instance_id: expected an id"),
        ("../x", "bob", "argument: instance_id: expected an id"),
        ("i1", "a b", "argument: owner: expected an id"),
    ],
)
def test_bad_ids(templates: Templates, instance_id: str, owner: str, expected: str) -> None:
    with pytest.raises(TemplateError, match=f"^{expected}"):
        build_runtime_config(templates, instance_id, owner)


def test_worker_config_is_what_the_sim_worker_reads(templates: Templates, tmp_path: Path) -> None:
    runtime = build_runtime_config(
        templates,
        "i1",
        "bob",
        {**OVERRIDES, "broker": {"leverage": 30, "currency": "EUR", "margin_mode": "netting"}},
    )
    # An operator's retention above the engine's defaults reaches the sim's journal.
    retention = Retention(keep_s=172_800.0, keep_orders=250_000)
    assert retention != Retention()
    flat = runtime.worker_config(retention)
    assert flat == {
        "instance_id": "i1",
        "symbols": ["EURUSD", "XAUUSD"],
        "seed": 7,
        "tick_rate": 50.0,
        "tick_batch_ms": 5.0,
        "initial_balance": 10000.0,
        "leverage": 30,
        "currency": "EUR",
        "margin_mode": "netting",
        "retention_s": 172_800.0,
        "retention_orders": 250_000,
        "broker_relogin_after_ms": 5000,
    }
    path = tmp_path / "worker.json"
    path.write_text(json.dumps(flat))
    loaded = sim_worker.load_config(path)
    assert loaded.instance_id == "i1"
    assert loaded.sim.symbols == ["EURUSD", "XAUUSD"]
    assert (loaded.sim.seed, loaded.sim.tick_rate, loaded.sim.leverage) == (7, 50.0, 30)
    assert (loaded.sim.currency, loaded.sim.margin_mode) == ("EUR", "netting")
    assert loaded.batch_interval_s == 0.005
    assert loaded.retention == retention
    assert loaded.relogin_after_s == 5.0


def test_risk_limits_use_the_proto_field_names(templates: Templates) -> None:
    limits = templates.risk.risk_limits()
    assert set(limits) == set(common_pb2.RiskLimits.DESCRIPTOR.fields_by_name)
    fields: dict[str, Any] = dict(limits)
    common_pb2.RiskLimits(**fields)  # every value fits its proto field
    assert limits["max_daily_loss"] == templates.risk.max_loss_per_day


# --------------------------------------------------------------------------------------------
# Writing and loading the runtime config


def test_write_then_load_round_trip(templates: Templates, tmp_path: Path) -> None:
    runtime = build_runtime_config(templates, "i1", "bob", OVERRIDES)
    path = write_runtime_config(tmp_path / "i1", runtime)
    assert (
        path == tmp_path / "i1" / "config" / "runtime.json" == runtime_config_path(tmp_path / "i1")
    )
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    # Only the file itself: no temporary file left behind.
    assert sorted(p.name for p in path.parent.iterdir()) == ["runtime.json"]
    data = json.loads(path.read_text())
    assert data["version"] == 1
    assert data["checksum"] == runtime.checksum()
    assert data["checksum"].startswith("sha256:")

    # Later template changes do not touch an existing instance.
    changed = dataclasses.replace(
        templates, risk=dataclasses.replace(templates.risk, stale_tick_ms=9)
    )
    loaded, regenerated = load_runtime_config(tmp_path / "i1", changed, "i1", "bob", {})
    assert not regenerated
    assert loaded == runtime


def test_rewrite_keeps_mode_and_replaces_content(templates: Templates, tmp_path: Path) -> None:
    first = build_runtime_config(templates, "i1", "bob")
    second = build_runtime_config(templates, "i1", "bob", OVERRIDES)
    path = write_runtime_config(tmp_path, first)
    path.chmod(0o644)
    write_runtime_config(tmp_path, second)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert RuntimeConfig.from_json(path.read_text()) == second


def test_to_json_from_json(templates: Templates) -> None:
    runtime = build_runtime_config(templates, "i1", "bob", OVERRIDES)
    text = runtime.to_json()
    assert RuntimeConfig.from_json(text) == runtime
    assert runtime.to_json() == text  # deterministic
    assert json.loads(text)["trade_pairs"] == [
        {"trade_pair": "EURUSD", "spread_type": "floating", "lot_size": 0.01, "max_volume": None},
        {"trade_pair": "XAUUSD", "spread_type": "floating", "lot_size": 0.01, "max_volume": 50.0},
    ]


def _resign(data: dict[str, Any]) -> str:
    """Re-compute the checksum, as a buggy writer would, so only validation can catch it."""
    body = {k: v for k, v in data.items() if k != "checksum"}
    return json.dumps({"checksum": tpl._checksum(body), **body})


def _edit(text: str, section: str, key: str, value: object) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(text)
    data[section][key] = value
    return data


CORRUPTIONS: dict[str, Any] = {
    "truncated": lambda text: text[: len(text) // 2],
    "empty": lambda text: "",
    "garbage": lambda text: "\x00\x13garbage{{{",
    "checksum mismatch": lambda text: text.replace(
        '"max_trades_per_day": 5', '"max_trades_per_day": 6'
    ),
    "checksum missing": lambda text: json.dumps(
        {k: v for k, v in json.loads(text).items() if k != "checksum"}
    ),
    "invalid field": lambda text: _resign(_edit(text, "risk", "max_trades_per_day", -3)),
    "unknown field": lambda text: _resign(_edit(text, "risk", "surprise", 1)),
    "missing field": lambda text: _resign({**json.loads(text), "risk": {"max_trades_per_day": 5}}),
    "password field": lambda text: _resign(_edit(text, "broker", "password", "hunter2")),
    "inconsistent": lambda text: _resign(_edit(text, "instance", "broker_id", "zzz")),
    "other version": lambda text: _resign({**json.loads(text), "version": 2}),
    "other instance": lambda text: _resign(_edit(text, "instance", "instance_id", "i2")),
    "other owner": lambda text: _resign({**json.loads(text), "owner": "mallory"}),
    "not an object": lambda text: "[]",
}


@pytest.mark.parametrize("kind", sorted(CORRUPTIONS))
def test_corrupt_runtime_config_is_regenerated(
    templates: Templates, tmp_path: Path, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    fresh = build_runtime_config(templates, "i1", "bob", OVERRIDES)
    stale = build_runtime_config(templates, "i1", "bob")  # what the damaged file held
    path = write_runtime_config(tmp_path, stale)
    damaged = CORRUPTIONS[kind](path.read_text())
    path.write_text(damaged)

    with caplog.at_level(logging.WARNING, logger="mt5exec.templates"):
        runtime, regenerated = load_runtime_config(tmp_path, templates, "i1", "bob", OVERRIDES)
    assert regenerated
    assert runtime == fresh
    assert RuntimeConfig.from_json(path.read_text()) == fresh
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    # The damaged file is kept for a post-mortem.
    assert path.with_name("runtime.json.corrupt").read_text() == damaged
    assert any("regenerating" in r.getMessage() for r in caplog.records)
    assert all("hunter2" not in r.getMessage() for r in caplog.records)
    # Once regenerated, the next start reads it as it is.
    assert load_runtime_config(tmp_path, templates, "i1", "bob", {}) == (fresh, False)


def test_not_utf8_runtime_config_is_regenerated(templates: Templates, tmp_path: Path) -> None:
    path = write_runtime_config(tmp_path, build_runtime_config(templates, "i1", "bob"))
    path.write_bytes(b"\xff\xfe" + path.read_bytes())
    runtime, regenerated = load_runtime_config(tmp_path, templates, "i1", "bob", OVERRIDES)
    assert regenerated
    assert runtime == build_runtime_config(templates, "i1", "bob", OVERRIDES)


def test_missing_runtime_config_is_generated(templates: Templates, tmp_path: Path) -> None:
    instance_dir = tmp_path / "instances" / "i1"
    runtime, regenerated = load_runtime_config(instance_dir, templates, "i1", "bob", OVERRIDES)
    assert regenerated
    assert runtime == build_runtime_config(templates, "i1", "bob", OVERRIDES)
    path = runtime_config_path(instance_dir)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not path.with_name("runtime.json.corrupt").exists()


def test_deleted_runtime_config_is_regenerated(templates: Templates, tmp_path: Path) -> None:
    path = write_runtime_config(tmp_path, build_runtime_config(templates, "i1", "bob", OVERRIDES))
    path.unlink()
    runtime, regenerated = load_runtime_config(tmp_path, templates, "i1", "bob", OVERRIDES)
    assert regenerated
    assert runtime == build_runtime_config(templates, "i1", "bob", OVERRIDES)
    assert path.is_file()


def test_bad_overrides_leave_a_corrupt_file_in_place(templates: Templates, tmp_path: Path) -> None:
    path = write_runtime_config(tmp_path, build_runtime_config(templates, "i1", "bob"))
    path.write_text("garbage")
    with pytest.raises(TemplateError, match=r"override: risk\.max_trades_per_day"):
        load_runtime_config(tmp_path, templates, "i1", "bob", {"risk": {"max_trades_per_day": -1}})
    assert path.read_text() == "garbage"


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("truncated", "invalid JSON at line"),
        ("checksum mismatch", "checksum: does not match the content"),
        ("invalid field", "risk.max_trades_per_day: expected a non-negative integer, got -3"),
        ("missing field", "risk.max_loss_per_day"),
        ("inconsistent", 'instance.broker_id: "zzz" does not match'),
        ("other version", "version: expected 1, got 2"),
        ("checksum missing", "checksum: missing"),
    ],
)
def test_from_json_errors_name_the_field(templates: Templates, kind: str, expected: str) -> None:
    text = build_runtime_config(templates, "i1", "bob", OVERRIDES).to_json()
    with pytest.raises(TemplateError) as info:
        RuntimeConfig.from_json(CORRUPTIONS[kind](text), "x/runtime.json")
    assert str(info.value).startswith("x/runtime.json: ")
    assert expected in str(info.value)


def test_runtime_config_is_frozen(templates: Templates) -> None:
    runtime = build_runtime_config(templates, "i1", "bob")
    with pytest.raises(dataclasses.FrozenInstanceError):
        runtime.risk.max_trades_per_day = 1  # type: ignore[misc]
