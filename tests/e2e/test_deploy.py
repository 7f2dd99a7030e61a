"""deploy/: the Grafana dashboard and the Prometheus alert rules name only metrics that a real
server that has traded a little serves, and promtool accepts the rules and passes their unit
tests (promtool: ``make setup`` installs it; with CI=true a missing one fails)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from tests.trading_workload import trade_a_little

from mt5exec.testing import ServerProcess

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
DASHBOARD = DEPLOY / "grafana" / "mt5exec.json"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
ALERTS_TEST = DEPLOY / "prometheus" / "alerts_test.yml"

# What a PromQL expression holds besides metric names.
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"')
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGES = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_VARIABLES = re.compile(r"\$\{?\w+\}?")
_OFFSETS = re.compile(r"\boffset\s+\S+")
# Not the tail of a number or a duration (1m, 1e3).
_IDENTIFIER = re.compile(r"(?<![\w.])[A-Za-z_:][A-Za-z0-9_:]*")
_KEYWORDS = {"and", "or", "unless", "bool", "by", "without", "inf", "nan"}


def metric_names(expr: str) -> set[str]:
    """The metric names an expression (PromQL, or Grafana's label_values()) reads."""
    label_values = re.fullmatch(r"\s*label_values\(\s*(\w+)\s*,\s*\w+\s*\)\s*", expr)
    if label_values:
        return {label_values.group(1)}
    text = _VARIABLES.sub(" ", _STRINGS.sub(" ", expr))
    text = _GROUPING.sub(" ", _RANGES.sub(" ", _MATCHERS.sub(" ", text)))
    text = _OFFSETS.sub(" ", text)
    names = set()
    for found in _IDENTIFIER.finditer(text):
        following = text[found.end() :].lstrip()[:1]
        if following != "(" and found.group() not in _KEYWORDS:
            names.add(found.group())
    return names


def dashboard_queries(dashboard: dict[str, Any]) -> Iterator[str]:
    def panels(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for panel in items:
            yield panel
            yield from panels(panel.get("panels", []))

    for panel in panels(dashboard["panels"]):
        for target in panel.get("targets", []):
            yield target["expr"]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            yield variable["definition"]


def alert_queries(rules: dict[str, Any]) -> Iterator[str]:
    for group in rules["groups"]:
        for rule in group["rules"]:
            yield rule["expr"]


class Served:
    """What a live /metrics holds: its families (by name, with their type) and samples."""

    # The sample suffixes of each type (the family's own name aside).
    SUFFIXES = {
        "counter": ("_total",),
        "histogram": ("_bucket", "_count", "_sum"),
        "summary": ("_count", "_sum"),
    }

    def __init__(self, text: str) -> None:
        self.types: dict[str, str] = {}
        self.samples: set[str] = set()
        for family in text_string_to_metric_families(text):
            self.types[family.name] = family.type
            self.samples.update(sample.name for sample in family.samples)

    def has(self, name: str) -> bool:
        """A query may name a sample, or a family that has none yet (a counter nothing
        counted, a histogram nothing observed): then by its type's suffix."""
        if name in self.samples or self.types.get(name) in ("gauge", "unknown"):
            return True
        for kind, suffixes in self.SUFFIXES.items():
            for suffix in suffixes:
                if name.endswith(suffix) and self.types.get(name.removesuffix(suffix)) == kind:
                    return True
        return False


@pytest.fixture(scope="module")
def served(server: ServerProcess) -> Served:
    trade_a_little(server)
    return Served(server.metrics())


def test_the_expression_parser_finds_metric_names() -> None:
    expr = (
        "histogram_quantile(0.99, sum by (instance_id, le) (rate(mt5exec_worker_request_seconds_"
        'bucket{kind="place",instance_id=~"$instance_id"}[$__rate_interval]))) > 1 '
        "or mt5exec_journal_usable == 0 and on (instance) increase(a_total[5m]) offset 1m"
    )
    assert metric_names(expr) == {
        "mt5exec_worker_request_seconds_bucket",
        "mt5exec_journal_usable",
        "a_total",
    }
    assert metric_names("label_values(mt5exec_instance_state, instance_id)") == {
        "mt5exec_instance_state"
    }


def test_served_tells_suffixes_by_the_familys_type() -> None:
    text = (
        "# TYPE c counter\n# TYPE h histogram\n# TYPE g gauge\n"
        'h_bucket{le="+Inf"} 0\nh_count 0\nh_sum 0\n'
    )
    served = Served(text)
    assert served.has("c_total") and served.has("h_bucket") and served.has("g")
    assert not served.has("c_bucket") and not served.has("g_total") and not served.has("x")


def test_the_dashboard_loads_and_names_only_served_metrics(served: Served) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "mt5exec"
    queries = list(dashboard_queries(dashboard))
    names = set().union(*(metric_names(q) for q in queries))
    # What the issue asks the dashboard to show.
    for wanted in (
        "mt5exec_fills_total",
        "mt5exec_order_rejections_total",
        "mt5exec_rpc_seconds_bucket",
        "mt5exec_slippage_points_bucket",
        "mt5exec_account_equity",
        "mt5exec_spread_points",
        "mt5exec_stream_subscribers",
        "mt5exec_instances",
        "mt5exec_journal_records_total",
        "mt5exec_auth_failures_total",
        "mt5exec_worker_resident_bytes",
        "mt5exec_worker_cpu_seconds_total",
    ):
        assert wanted in names, wanted
    missing = sorted(name for name in names if not served.has(name))
    assert missing == []


def test_the_alert_rules_name_only_served_metrics(served: Served) -> None:
    rules = yaml.safe_load(ALERTS.read_text())
    alerts = {rule["alert"] for group in rules["groups"] for rule in group["rules"]}
    assert alerts == {
        "MT5ExecInstanceFailed",
        "MT5ExecKillSwitchEngaged",
        "MT5ExecJournalUnavailable",
        "MT5ExecSlowConsumerCutoffs",
        "MT5ExecWorkerSlowAnswers",
        "MT5ExecAuthFailures",
    }
    names = set().union(*(metric_names(q) for q in alert_queries(rules)))
    missing = sorted(name for name in names if not served.has(name))
    assert missing == []


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("promtool is not installed (make setup installs Debian's prometheus)")
        pytest.skip("promtool is not installed (make setup installs Debian's prometheus)")
    return found


def test_promtool_checks_the_rules_and_runs_their_unit_tests() -> None:
    tool = promtool()
    for args in (["check", "rules", str(ALERTS)], ["test", "rules", str(ALERTS_TEST)]):
        done = subprocess.run([tool, *args], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
