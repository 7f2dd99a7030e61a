"""Instance configuration templates and the runtime config generated from them.

This module owns the six JSON configs of an instance, in the shapes of the configuration design
(seed 002) with the fields the product adds:

    broker.json        the broker an instance trades with (never its credentials)
    instance.json      what one instance trades and, for the simulated broker, its account
    execution.json     defaults applied to the orders an instance sends
    risk.json          the pre-trade limits of the risk engine (proto ``RiskLimits``)
    health_check.json  health probes and the supervisor's heartbeat / restart policy
    trade_pairs.json   the catalogue of tradable symbols (a JSON array of objects)

Templates are the packaged defaults (``mt5exec/template_defaults/*.json``), each overridden file by
file by an operator's directory; a file there may give only some keys, the rest come from the
default. ``trade_pairs.json`` is the exception: a list cannot be merged key by key without a way to
remove an entry, so an operator's catalogue replaces the packaged one.

An instance's runtime config is generated once from the templates plus per-instance overrides and
written to ``<instance_dir>/config/runtime.json`` with a version and a checksum. From then on that
file is the instance's truth (later template edits do not change existing instances); when it is
missing, unreadable, corrupt or invalid it is regenerated from the templates (seed 000: "Corrupt
Config File: regenerate from base template").

Every value is validated where it enters, and an error names the source and the field, e.g.
``templates/risk.json: max_trades_per_day: expected a non-negative integer, got -3``. Unknown keys
are errors (a typo must not fall back to a default on a trading server), and so is any password
key: credentials live in the credential vault, never in templates.
"""

from __future__ import annotations

from mt5exec.templates.runtime import (
    CONFIG_DIR,
    RUNTIME_FILE,
    RUNTIME_VERSION,
    SECTION_NAMES,
    RuntimeConfig,
    Templates,
    build_runtime_config,
    load_runtime_config,
    load_templates,
    runtime_config_path,
    write_runtime_config,
)
from mt5exec.templates.runtime import (
    _checksum as _checksum,
)
from mt5exec.templates.sections import (
    DEFAULT_TRADE_PAIRS,
    BrokerSection,
    ExecutionSection,
    HealthCheckSection,
    InstanceSection,
    RiskSection,
    TradePair,
)
from mt5exec.templates.values import TemplateError

__all__ = [
    "CONFIG_DIR",
    "DEFAULT_TRADE_PAIRS",
    "RUNTIME_FILE",
    "RUNTIME_VERSION",
    "SECTION_NAMES",
    "BrokerSection",
    "ExecutionSection",
    "HealthCheckSection",
    "InstanceSection",
    "RiskSection",
    "RuntimeConfig",
    "TemplateError",
    "Templates",
    "TradePair",
    "build_runtime_config",
    "load_runtime_config",
    "load_templates",
    "runtime_config_path",
    "write_runtime_config",
]
