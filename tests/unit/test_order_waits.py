"""The engine's waits for order answers (``Engine._order``): each expires at its own deadline
(DEADLINE_EXCEEDED, ORDER_OUTCOME_UNKNOWN), under the one timer they share, and a cancelled
call forgets its wait at once."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest
import uvloop

from mt5exec.engine import Engine, EngineConfig
from mt5exec.errors import MT5ExecError
from mt5exec.reasons import Reason

# Tokens no call of the engine hands out: nothing ever answers them.
UNANSWERED = 1 << 60


async def _deadlines(tmp: Path) -> tuple[MT5ExecError, bool, int, MT5ExecError, int]:
    engine = Engine(EngineConfig(journal_path=tmp / "orders.journal"))
    engine.attach(asyncio.get_running_loop())
    try:
        slow = engine._order(UNANSWERED, 600.0, "slow")
        # Placed after the slow one, due long before it: it must not wait for the slow one's.
        fast = engine._order(UNANSWERED + 1, 0.2, "fast")
        late = engine._order(UNANSWERED + 2, 0.4, "")
        async with asyncio.timeout(60):
            with pytest.raises(MT5ExecError) as expired:
                await fast
            with pytest.raises(MT5ExecError) as expired_late:
                await late
        slow_waits = not slow.done()
        waiting = len(engine._orders)
        slow.cancel()  # its client went
        await asyncio.sleep(0)
        return expired.value, slow_waits, waiting, expired_late.value, len(engine._orders)
    finally:
        engine.detach()


def test_each_wait_expires_at_its_own_deadline_and_a_cancelled_one_is_forgotten(
    tmp_path: Path,
) -> None:
    expired, slow_waits, waiting, expired_late, left = uvloop.run(_deadlines(tmp_path))
    assert expired.code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert expired.reason == Reason.ORDER_OUTCOME_UNKNOWN
    assert expired.metadata == {"client_order_id": "fast"}
    assert "within 0.2 s" in expired.message
    assert expired_late.reason == Reason.ORDER_OUTCOME_UNKNOWN
    assert "within 0.4 s" in expired_late.message
    assert slow_waits and waiting == 1
    assert left == 0


async def _timer_runs(tmp: Path) -> int:
    engine = Engine(EngineConfig(journal_path=tmp / "orders.journal"))
    engine.attach(asyncio.get_running_loop())
    runs = 0
    due = engine._orders_due

    def counted() -> None:
        nonlocal runs
        runs += 1
        due()

    engine._orders_due = counted  # type: ignore[method-assign]
    try:
        # Deadlines between two ticks of uvloop's clock (it counts in ms).
        waits = [engine._order(UNANSWERED + i, 0.2004 + i * 0.0003, "") for i in range(5)]
        async with asyncio.timeout(60):
            for wait in waits:
                with pytest.raises(MT5ExecError):
                    await wait
        return runs
    finally:
        engine.detach()


def test_the_shared_timer_does_not_spin_on_a_deadline_between_clock_ticks(tmp_path: Path) -> None:
    # Before: a deadline a fraction of a ms past the timer's tick set the timer again for
    # less than a tick (run at once) until the clock moved on: hundreds of runs.
    assert uvloop.run(_timer_runs(tmp_path)) <= 10
