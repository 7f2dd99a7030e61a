"""Shared fixtures: a real server process per module, and helpers to read errors."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests import profiles

from mt5exec.testing import ServerProcess, wait_gone
from mt5exec.v1 import instance_pb2


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    profiles.mark(items)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One real server for the tests of a module; checks no worker outlives it."""
    data = tmp_path_factory.mktemp("server")
    proc = ServerProcess(data).start()
    try:
        yield proc
        pids = [
            i.worker_pid
            for i in proc.instances.ListInstances(instance_pb2.ListInstancesRequest()).instances
            if i.worker_pid
        ]
        assert proc.terminate() == 0
        assert wait_gone(pids) == [], "workers outlived the server"
    finally:
        proc.kill()
