"""``ConfigError``: the one error for unusable configuration, whoever reads it (the server's
``mt5exec.config``, a worker's config file, ``simterminal.json``). A module of its own so that
workers raise it without importing the server's configuration."""

from __future__ import annotations


class ConfigError(ValueError):
    """A configuration value is missing, malformed or out of range.

    The message starts with the source (file path, environment variable or ``override``) and
    the dotted field name, so an operator can fix it without reading code.
    """
