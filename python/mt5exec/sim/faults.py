"""Fault injection: the simulated broker's faults, a documented feature (docs/simulated-broker.md).

The one place that reads them: ``FaultState`` holds the faults ``FaultInjection`` frames asked
for (delay, rejections, counters of freezes, disconnects and crashes; the broker takes the
rejections, the worker ``mt5exec.workers.sim`` enacts the rest), ``StartFaults`` those of the
worker's environment, ``take_outage_file`` the broker outage file. Faults are not saved: they
belong to the test that injects them.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from mt5exec.terminal.v1 import worker_pb2 as pb

log = logging.getLogger("mt5exec.sim.faults")


@dataclass(slots=True)
class FaultState:
    """Injected faults still pending, and how many of each were requested so far."""

    delay_ms: int = 0
    reject_next: int = 0
    rejected: int = 0
    freezes: int = 0
    disconnects: int = 0
    crashes: int = 0

    def apply(self, fault: pb.FaultInjection) -> None:
        """Record an injected fault.

        A non-zero ``delay_ms`` replaces the current delay and ``reject_next`` adds to the
        pending rejections; an empty ``FaultInjection`` clears both (proto3 cannot tell "set to
        0" from "not set", so this is the one way to turn the delay off).
        """
        if fault.ByteSize() == 0:
            self.delay_ms = 0
            self.reject_next = 0
            return
        if fault.delay_ms:
            self.delay_ms = fault.delay_ms
        self.reject_next += fault.reject_next
        if fault.freeze_ms:
            self.freezes += 1
        if fault.disconnect:
            self.disconnects += 1
        if fault.crash:
            self.crashes += 1

    def take_reject(self) -> bool:
        """Whether the next request is to be rejected (one pending rejection is used up)."""
        if self.reject_next > 0:
            self.reject_next -= 1
            self.rejected += 1
            return True
        return False


# Faults a test sets in the environment of the server, which its sim workers inherit: they act
# from the worker's start, before any FaultInjection could reach it.
ENV_EXIT_AT_START = "MT5EXEC_SIM_EXIT_AT_START"
ENV_KILL_AFTER_TRIGGER = "MT5EXEC_SIM_KILL_AFTER_TRIGGER"
ENV_ORDER_DELAY_MS = "MT5EXEC_SIM_ORDER_DELAY_MS"
# The file a test writes in the worker's directory (milliseconds of outage) to take the broker
# away; 0 brings it back now. The worker looks for it at each heartbeat.
OUTAGE_FILE = "broker_outage"


@dataclass(frozen=True, slots=True)
class StartFaults:
    """The faults of the worker's environment (see docs/simulated-broker.md#fault-injection)."""

    # Exit with status 1 before doing anything (the supervisor's restart limit).
    exit_at_start: bool = False
    # SIGKILL right after the broker journaled a fill it made on its own (a triggered order, a
    # stop), before any frame about it left: nothing may be lost there.
    kill_after_trigger: bool = False
    # Every order's answer this much later (a slow trade server, for client deadlines).
    order_delay_ms: int = 0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> StartFaults:
        """The faults set in ``environ``: a flag is set when not empty, a delay is a whole
        number of milliseconds (anything else is no delay)."""
        delay = environ.get(ENV_ORDER_DELAY_MS, "")
        return cls(
            exit_at_start=bool(environ.get(ENV_EXIT_AT_START)),
            kill_after_trigger=bool(environ.get(ENV_KILL_AFTER_TRIGGER)),
            order_delay_ms=int(delay) if delay.isascii() and delay.isdigit() else 0,
        )


def take_outage_file(directory: Path = Path()) -> int | None:
    """The milliseconds of broker outage the ``broker_outage`` file in ``directory`` asks for
    (the file is removed), or None when there is no such file or it holds no number."""
    path = directory / OUTAGE_FILE
    try:
        text = path.read_text()
        path.unlink()
    except OSError:
        return None
    try:
        return int(text.strip() or "0")
    except ValueError:
        log.warning("%s: not a number of milliseconds: %r", path, text[:40])
        return None
