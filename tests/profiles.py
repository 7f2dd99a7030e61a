"""Hypothesis profiles and pytest markers for the suite.

Profiles: ``dev`` (the default: a few examples per property, a quick local run) and ``ci``
(thorough: each property test runs the number of examples it asks for). ``HYPOTHESIS_PROFILE``
selects one; ``CI=true`` selects ``ci`` when it is not set.

Markers (registered in pyproject.toml): ``e2e`` for tests that start real processes (the
server, workers, redis-server, PostgreSQL, command-line tools), ``slow`` for the soak test and
the benchmarks' smoke tests. They are given at collection by what a test's module starts, so
``-m "not e2e"`` runs the unit tests.
"""

from __future__ import annotations

import functools
import inspect
import os
import re
import sys

import pytest
from hypothesis import settings

CI_EXAMPLES = 100
settings.register_profile("ci", max_examples=CI_EXAMPLES, deadline=None, print_blob=True)
settings.register_profile("dev", max_examples=5, deadline=None)
PROFILE = os.environ.get(
    "HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI", "").lower() == "true" else "dev"
)
settings.load_profile(PROFILE)


def examples(thorough: int) -> int:
    """``max_examples`` for a property test that asks for ``thorough`` examples under ``ci``:
    as many under ``ci``, scaled down with the profile otherwise (at least one)."""
    return max(1, thorough * settings.default.max_examples // CI_EXAMPLES)


# What the source of a test module says when its tests start processes (conftest's `server`
# fixture is seen by name); a module importing another test module, or a `*_support` module of
# helpers, starts what that one does.
_STARTS = re.compile(
    r"\b(ServerProcess|HistoryProcess|subprocess|multiprocessing|sys\.executable"
    r"|redis_server|postgres)\b"
)
_IMPORTS = re.compile(r"^from (tests\.(?:\w+\.)?(?:test_\w+|\w+_support)) import", re.MULTILINE)
_SLOW_MODULES = ("test_e2e_soak", "test_bench_")


@functools.cache
def _starts_processes(name: str) -> bool:
    module = sys.modules[name]
    if module.__name__.rsplit(".", 1)[-1].startswith("test_e2e_"):
        return True
    source = inspect.getsource(module)
    return bool(_STARTS.search(source)) or any(
        _starts_processes(other) for other in _IMPORTS.findall(source) if other in sys.modules
    )


def mark(items: list[pytest.Item]) -> None:
    for item in items:
        module = getattr(item, "module", None)
        if module is None:
            continue
        name = module.__name__.rsplit(".", 1)[-1]
        if _starts_processes(module.__name__) or "server" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.e2e)
        if name.startswith(_SLOW_MODULES):
            item.add_marker(pytest.mark.slow)
