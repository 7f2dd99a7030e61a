"""Facts with one home (issue #23): each is defined once and every user gets that one."""

from __future__ import annotations

from mt5exec import config
from mt5exec.mt5 import simterminal, simterminal_config
from mt5exec.workers import base, mt5, sim


def test_config_error_is_one_class() -> None:
    """The server's configuration, a worker's config file and ``simterminal.json`` raise the
    same ``ConfigError``: one ``except`` catches them all."""
    assert config.ConfigError.__module__ == "mt5exec.config_error"
    for module in (base, sim, mt5, simterminal, simterminal_config):
        assert module.ConfigError is config.ConfigError, module.__name__
