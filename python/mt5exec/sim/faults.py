"""Fault injection: the simulated broker's faults, a documented feature (docs/simulated-broker.md).

``FaultState`` holds the faults a ``FaultInjection`` request asked for (delay, rejections,
counters of freezes, disconnects and crashes); the broker takes the rejections, the worker
(``mt5exec.workers.sim``) enacts delays, freezes, disconnects and crashes. Faults are not saved:
they belong to the test that injects them.
"""

from __future__ import annotations

from dataclasses import dataclass

from mt5exec.terminal.v1 import worker_pb2 as pb


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
