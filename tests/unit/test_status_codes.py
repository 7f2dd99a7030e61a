"""mt5exec.status_codes: the numbers the workers answer with are grpc.StatusCode's."""

from __future__ import annotations

import grpc

from mt5exec import status_codes


def test_the_numbers_are_grpcs() -> None:
    names = [n for n in vars(status_codes) if n.isupper()]
    assert names == ["INVALID_ARGUMENT", "NOT_FOUND", "UNAVAILABLE"]
    for name in names:
        assert getattr(status_codes, name) == grpc.StatusCode[name].value[0], name
