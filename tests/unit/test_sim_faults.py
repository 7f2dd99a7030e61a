"""Fault injection of the simulated broker (``mt5exec.sim.faults``): the faults a test sets in
the worker's environment and the broker outage file. The faults of a ``FaultInjection`` frame
are tested with the broker (test_sim_broker.py) and the worker (test_sim_worker*.py)."""

from __future__ import annotations

from pathlib import Path

from mt5exec.sim.faults import OUTAGE_FILE, StartFaults, take_outage_file


def test_start_faults_come_from_the_environment() -> None:
    faults = StartFaults.from_env(
        {
            "MT5EXEC_SIM_EXIT_AT_START": "1",
            "MT5EXEC_SIM_KILL_AFTER_TRIGGER": "yes",
            "MT5EXEC_SIM_ORDER_DELAY_MS": "300",
        }
    )
    assert faults == StartFaults(exit_at_start=True, kill_after_trigger=True, order_delay_ms=300)
    assert StartFaults.from_env({}) == StartFaults()


def test_an_empty_flag_or_a_delay_that_is_no_whole_number_is_no_fault() -> None:
    for delay in ("", "1.5", "-3", "²", "300ms"):  # '²' is a digit to str.isdigit, not to int
        env = {"MT5EXEC_SIM_EXIT_AT_START": "", "MT5EXEC_SIM_ORDER_DELAY_MS": delay}
        assert StartFaults.from_env(env) == StartFaults(), delay


def test_the_outage_file_is_taken_once(tmp_path: Path) -> None:
    assert take_outage_file(tmp_path) is None
    (tmp_path / OUTAGE_FILE).write_text("600000\n")
    assert take_outage_file(tmp_path) == 600_000
    assert not (tmp_path / OUTAGE_FILE).exists()
    assert take_outage_file(tmp_path) is None
    (tmp_path / OUTAGE_FILE).write_text("")  # empty: the broker is back now
    assert take_outage_file(tmp_path) == 0


def test_an_outage_file_without_a_number_is_removed_and_ignored(tmp_path: Path) -> None:
    (tmp_path / OUTAGE_FILE).write_text("soon")
    assert take_outage_file(tmp_path) is None
    assert not (tmp_path / OUTAGE_FILE).exists()
