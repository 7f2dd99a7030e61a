"""The simulated terminal's connection to its broker, as the worker watches it.

An outage (the ``broker_outage_ms`` fault, or the ``broker_outage`` file a test drops in the
worker's directory) takes the broker away for a while. The worker checks the link at each
heartbeat: lost, it reports ``BROKER_DISCONNECTED`` (the engine makes the instance DEGRADED
and refuses orders), stops ticking, and tries to log in again every ``relogin_after_s``; the
first login that finds the broker back reports ``BROKER_CONNECTED`` and counts a re-login.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from mt5exec.reasons import Reason
from mt5exec.sim.faults import take_outage_file
from mt5exec.terminal.v1 import worker_pb2 as pb

log = logging.getLogger("mt5exec.sim.link")

DEFAULT_RELOGIN_AFTER_S = 5.0


@dataclass(slots=True)
class BrokerLink:
    relogin_after_s: float = DEFAULT_RELOGIN_AFTER_S
    # The worker's view: logged in and connected.
    connected: bool = True
    # The broker is away until then (monotonic seconds).
    down_until: float = 0.0
    next_login: float = 0.0
    relogins: int = 0

    def outage(self, now: float, ms: int) -> None:
        """The broker away for ``ms`` more (an outage is only lengthened); 0 ends it now."""
        self.down_until = (
            max(self.down_until, now + ms / 1000.0) if ms else min(self.down_until, now)
        )

    def poll_file(self, now: float, directory: Path = Path()) -> None:
        """An outage asked for with the ``broker_outage`` file (``mt5exec.sim.faults``)."""
        ms = take_outage_file(directory)
        if ms is not None:
            self.outage(now, ms)

    def watch(self, now: float) -> pb.WorkerEvent | None:
        """The event to report after checking the link at ``now``, if any."""
        up = now >= self.down_until
        if self.connected and not up:
            self.connected = False
            self.next_login = now + self.relogin_after_s
            return pb.WorkerEvent(
                kind=Reason.BROKER_DISCONNECTED, message="the terminal lost its broker connection"
            )
        if not self.connected and now >= self.next_login:
            if not up:
                self.next_login = now + self.relogin_after_s
                log.warning("re-login failed: the broker is still away")
                return None
            self.connected = True
            self.relogins += 1
            return pb.WorkerEvent(
                kind="BROKER_CONNECTED", message=f"logged in again (re-login {self.relogins})"
            )
        return None
