"""Fault injection of ``mt5exec.mt5.simterminal``: broken IPC links, price moves, broker outages.

A simulated terminal is a test and demo tool, and breaking it on purpose is part of the job:

- ``inject_ipc_failures(n, code)`` makes the next ``n`` calls fail with ``code`` (e.g.
  ``RES_E_INTERNAL_FAIL_TIMEOUT``); with ``executed=True`` a trade call still reaches the broker
  and only its answer is lost, which is what makes an order's outcome unknown. After an injected
  failure the link stays down (``RES_E_INTERNAL_FAIL_CONNECT``) until ``initialize`` is called
  again, as with a real terminal whose pipe broke.
- ``set_price`` (in ``simterminal``, it needs the attached terminal) makes the market tick at a
  price.
- A hang (``{"hang": true, "functions": [...]}`` in the hook file) makes the next call of those
  functions never return, holding the terminal as a hung pipe does.
- A broker outage logs the terminal out: ``terminal_info().connected`` is false and ``login``
  fails until it is over.
- ``blank_fill_results(n, deal=...)``: the next ``n`` fills that ``order_send`` answers come with
  ``price`` 0 (and ``deal`` 0 with ``deal=True``), as some brokers and exchange execution
  answer ``TRADE_RETCODE_DONE``: the fill is in the history, not in the result.

Another process (a test driving a worker) asks for the same by writing ``simterminal.inject.json``
into the terminal directory (``write_hook_file``); the next API call reads and removes it.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mt5exec.files import atomic_write
from mt5exec.mt5 import constants as c

INJECT_FILE = "simterminal.inject.json"

# One lock for every call of the simulated terminal (and of these hooks): the real package
# serialises calls over its one pipe as well.
LOCK = threading.RLock()


@dataclass(slots=True)
class Injection:
    remaining: int
    code: int
    functions: frozenset[str] | None
    executed: bool
    disconnect: bool


@dataclass(slots=True)
class Faults:
    """What the hooks asked for and the terminal has not played yet. Guarded by ``LOCK``."""

    injections: deque[Injection] = field(default_factory=deque)
    # Set while a call runs whose answer an injected failure will swallow (executed=True).
    lost_reply: Injection | None = None
    # Price moves asked for through the hook file, applied by the next call with a session
    # (or the next call of the function named with the move: (symbol, bid, function or None)).
    pending_prices: list[tuple[str, float, str | None]] = field(default_factory=list)
    # The broker is away until broker_down_until (time.time()), and the terminal logged out
    # until a login() after that.
    broker_down_until: float = 0.0
    logged_out: bool = False
    # The functions whose next call hangs (None: any).
    hangs: list[frozenset[str] | None] = field(default_factory=list)
    # Fills whose order_send result comes without its price: one entry per fill, True when
    # the result's deal is blanked too.
    blank_fills: deque[bool] = field(default_factory=deque)

    def take_hang(self, name: str) -> bool:
        """Whether the call ``name`` hangs (one use of the hang asked for)."""
        for n, names in enumerate(self.hangs):
            if names is None or name in names:
                del self.hangs[n]
                return True
        return False

    def take_blank_fill(self) -> bool | None:
        """Whether a fill's result is to come without its price (one use): ``None`` if not,
        else whether without its deal too."""
        return self.blank_fills.popleft() if self.blank_fills else None

    def broker_down(self) -> bool:
        return time.time() < self.broker_down_until

    def take_prices(self, name: str) -> list[tuple[str, float]]:
        """The price moves that the call ``name`` plays, in the order they were asked for."""
        due = [(s, bid) for s, bid, at in self.pending_prices if at is None or at == name]
        self.pending_prices = [m for m in self.pending_prices if m[2] not in (None, name)]
        return due

    def take_injection(self, name: str) -> Injection | None:
        """The injected failure that the call ``name`` meets, if any (one use of it)."""
        for inj in self.injections:
            if inj.functions is None or name in inj.functions:
                inj.remaining -= 1
                if inj.remaining <= 0:
                    self.injections.remove(inj)
                return inj
        return None

    def read_file(self, directory: Path) -> None:
        """Take the hook file of the terminal in ``directory``, if one was written."""
        path = directory / INJECT_FILE
        claimed = directory / f".{INJECT_FILE}.{os.getpid()}"
        try:
            # Renamed first so that a test writing the next file cannot have it half read.
            os.rename(path, claimed)
        except FileNotFoundError:
            return
        try:
            raw = json.loads(claimed.read_text())
        except (OSError, ValueError):
            return
        finally:
            with contextlib.suppress(FileNotFoundError):
                claimed.unlink()
        for item in raw if isinstance(raw, list) else [raw]:
            if not isinstance(item, dict):
                continue
            outage = item.get("broker_outage_ms")
            if isinstance(outage, int):
                if outage == 0:  # the outage ends: the next login() finds the broker
                    self.broker_down_until = min(self.broker_down_until, time.time())
                    continue
                self.broker_down_until = max(self.broker_down_until, time.time() + outage / 1000.0)
                self.logged_out = True
                continue
            prices = item.get("set_price")
            if isinstance(prices, dict):
                at = item.get("at")
                when = str(at) if at is not None else None
                self.pending_prices.extend((str(k), float(v), when) for k, v in prices.items())
                continue
            blank = item.get("blank_fill_results")
            if isinstance(blank, int) and not isinstance(blank, bool):
                self.blank_fills.extend([item.get("deal") is True] * blank)
                continue
            funcs = item.get("functions")
            if item.get("hang") is True:
                self.hangs.append(
                    frozenset(str(f) for f in funcs) if isinstance(funcs, list) else None
                )
                continue
            inject_ipc_failures(
                int(item.get("n", 1)),
                int(item.get("code", c.RES_E_INTERNAL_FAIL_TIMEOUT)),
                functions=[str(f) for f in funcs] if isinstance(funcs, list) else None,
                executed=bool(item.get("executed", False)),
                disconnect=bool(item.get("disconnect", True)),
            )


FAULTS = Faults()


def inject_ipc_failures(
    n: int,
    code: int = c.RES_E_INTERNAL_FAIL_TIMEOUT,
    *,
    functions: Iterable[str] | None = None,
    executed: bool = False,
    disconnect: bool = True,
) -> None:
    """Test hook: make the next ``n`` calls (of ``functions``, default any) fail with ``code``.

    ``executed``: the call still does its work (an ``order_send`` reaches the broker) and only
    the answer is lost. ``disconnect``: after the failure every call fails with
    ``RES_E_INTERNAL_FAIL_CONNECT`` until ``initialize`` succeeds again. The same can be asked
    from another process by writing ``simterminal.inject.json`` into the terminal directory: an
    object (or a list of objects) with the keys ``n``, ``code``, ``functions``, ``executed`` and
    ``disconnect``.
    """
    if n <= 0:
        return
    names = frozenset(functions) if functions is not None else None
    with LOCK:
        FAULTS.injections.append(Injection(n, code, names, executed, disconnect))


def blank_fill_results(n: int = 1, *, deal: bool = False) -> None:
    """Test hook: the next ``n`` fills that ``order_send`` answers (``TRADE_RETCODE_DONE`` or
    ``DONE_PARTIAL``) come with ``price`` 0, and ``deal`` 0 too with ``deal``, as some brokers
    (and exchange execution) answer: the fill is in ``history_deals_get``, not in the result.
    From another process: ``{"blank_fill_results": n, "deal": true}`` in the hook file.
    """
    with LOCK:
        FAULTS.blank_fills.extend([deal] * max(0, n))


def clear_injected_failures() -> None:
    """Drop every pending injected failure, price move and blanked fill (test hook)."""
    with LOCK:
        FAULTS.injections.clear()
        FAULTS.pending_prices.clear()
        FAULTS.hangs.clear()
        FAULTS.blank_fills.clear()


def write_hook_file(directory: str | os.PathLike[str], commands: Any) -> Path:
    """Write ``simterminal.inject.json`` for the terminal in ``directory`` (test hook).

    ``commands``: one object or a list of them, each an IPC failure (the keys of
    ``inject_ipc_failures``: ``n``, ``code``, ``functions``, ``executed``, ``disconnect``) or a
    price move (``{"set_price": {"EURUSD": 1.08}}``, played by the next call; with ``"at":
    "positions_get"`` by the next call of that function, as a fill the trade server makes
    between two calls of a client) or a broker outage
    (``{"broker_outage_ms": 5000}``: logged out, ``terminal_info().connected`` false, ``login``
    failing until it is over; ``0`` ends it) or fills answered without their price
    (``{"blank_fill_results": 1, "deal": true}``: see ``blank_fill_results``). The file is
    replaced atomically: the terminal may read it at any moment, and half a file would be lost.
    """
    d = Path(directory)
    target = d / INJECT_FILE
    atomic_write(target, json.dumps(commands).encode())
    return target
