"""Which deals of its terminal an MT5 instance has reported: ``<instance_dir>/reported_deals.json``.

The terminal keeps making deals while no worker is attached to it (an SL/TP, a stop-out while
the worker or the server was down). A worker that took every deal in the history at its start
for the past would never report those, and the engine (and the copier: a master's closing deal
closes its copies) would never hear of them. So the worker keeps, in its instance directory,
what it reads the history from (``floor``, a deal time in seconds) and the deals at or after it
that it has reported (``seen``: ticket → time), written atomically (``files.atomic_write``) after
each frame write that carried deals. At its next start it picks up from there: the deals made
since are reported, as new ones, before its first positions report.

The file names the account (login and server as configured): another account (new
credentials), or no file at all (the instance's very first start, or a file left unreadable),
starts afresh: the deals already in the history belong to the past and none is reported, as
before this file existed. The write follows the frame's, so a worker killed in between reports
those deals again at its next start (the engine's history stores a deal once, by its ticket;
the copier's orders are idempotent); a deal the worker wrote to a server killed before it read
it is not reported again.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from mt5exec.files import atomic_write

log = logging.getLogger(__name__)

STATE_FILE = "reported_deals.json"
VERSION = 1


@dataclass
class DealMark:
    """Where the history is read from and the deals at or after it already reported."""

    login: int | None
    server: str | None
    floor: int = 0
    seen: dict[int, int] = field(default_factory=dict)


def load(path: Path, login: int | None, server: str | None) -> DealMark | None:
    """The mark saved for this account; None when there is none (a first start), when it is
    another account's, or when it cannot be read (logged)."""
    try:
        raw = json.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        log.warning("%s unreadable (%s): deals made before this start are not reported", path, e)
        return None
    try:
        if raw["version"] != VERSION or raw["login"] != login or raw["server"] != server:
            return None
        seen = {int(t): int(when) for t, when in raw["seen"].items()}
        return DealMark(login, server, int(raw["floor"]), seen)
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        log.warning("%s malformed (%s): deals made before this start are not reported", path, e)
        return None


def save(path: Path, mark: DealMark) -> bool:
    """Writes ``mark`` (only the deals at or after its floor: those the history is read for);
    False when the write failed (logged: it is tried again with the next deals)."""
    body = {
        "version": VERSION,
        "login": mark.login,
        "server": mark.server,
        "floor": mark.floor,
        "seen": {str(t): when for t, when in sorted(mark.seen.items()) if when >= mark.floor},
    }
    try:
        # Written after every answer that carried deals, so not synced: after a power cut the
        # record may be an older one, and the next start reports again deals reported since
        # (StreamExecutions shows them twice; the history and the copier keep each deal once).
        atomic_write(path, json.dumps(body).encode(), durable=False)
    except OSError as e:
        log.warning("could not write %s: %s", path, e)
        return False
    return True
