"""The MT5 worker against the simulated MetaTrader5 module: failures, its config and pieces, and a
terminal the worker starts itself. The handshake, ticks and orders: test_mt5_worker.py."""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from tests.mt5_worker_support import (
    LOGIN,
    PASSWORD,
    SERVER,
    STANDINS,
    Engine,
    by_kind,
    engine,
    kinds,
    make_engine,
    market,
)

from mt5exec.mt5 import constants as c
from mt5exec.mt5 import simterminal
from mt5exec.sim.state import read_deals
from mt5exec.terminal.v1 import worker_pb2 as pb
from mt5exec.workers.base import ConfigError
from mt5exec.workers.mt5 import (
    MARKET_CALL_HUNG_S,
    MT5Worker,
    Terminal,
    WorkerConfig,
    load_config,
)

__all__ = ["engine", "make_engine"]  # the fixtures


# -- failures --------------------------------------------------------------------------------------


def test_ipc_failure_order_answered_unknown_then_recovered_never_sent_twice(
    engine: Engine,
) -> None:
    inject = {"n": 1, "code": c.RES_E_INTERNAL_FAIL_TIMEOUT, "functions": ["order_send"]}
    simterminal.write_hook_file(
        engine.terminal_dir,
        {**inject, "executed": True},
    )
    frames = engine.order(**market(11, comment="lost-11"))
    assert kinds(frames) == ["order_result"]
    res = frames[0].order_result
    assert res.retcode == c.TRADE_RETCODE_TIMEOUT
    assert "-10005" in res.comment

    frames = engine.read_until(
        lambda f: f.WhichOneof("body") == "positions" and len(f.positions.positions) == 1, 10.0
    )
    events = [f.event.kind for f in by_kind(frames, "event")]
    assert events == ["BROKER_DISCONNECTED", "BROKER_CONNECTED"]
    (deal,) = by_kind(frames, "deal")
    assert (deal.deal.comment, deal.deal.request_id) == ("lost-11", 11)
    assert not by_kind(frames, "order_result")

    # Working again, and the lost order was not sent a second time.
    after = engine.order(**market(12, comment="next-12"))[-1].order_result
    assert after.retcode == c.TRADE_RETCODE_DONE
    comments = [d.comment for d in read_deals(engine.terminal_dir / simterminal.STATE_NAME)]
    assert comments == ["lost-11", "next-12"]
    snapshot = by_kind(engine.order(**market(13, volume=0.01)), "positions")[-1]
    assert len(snapshot.positions.positions) == 3


def test_ipc_failure_before_the_send_answers_connection(engine: Engine) -> None:
    simterminal.write_hook_file(
        engine.terminal_dir,
        {"n": 1, "code": c.RES_E_INTERNAL_FAIL_CONNECT, "functions": ["order_check"]},
    )
    frames = engine.order(**market(21))
    # The engine hears of the lost link first, then gets the answer: not sent.
    assert kinds(frames) == ["event", "order_result"]
    assert frames[0].event.kind == "BROKER_DISCONNECTED"
    assert frames[1].order_result.retcode == c.TRADE_RETCODE_CONNECTION
    frames = engine.read_until("event")
    assert frames[-1].event.kind == "BROKER_CONNECTED"
    assert engine.order(**market(22))[-1].order_result.retcode == c.TRADE_RETCODE_DONE
    assert [d.comment for d in read_deals(engine.terminal_dir / simterminal.STATE_NAME)] == [
        "cid-22"
    ]


def test_terminal_lost_for_good_exits_6(make_engine: Callable[..., Engine]) -> None:
    # Attempts at 0, 0.3 s and 0.9 s: time enough for an order to arrive in between.
    engine = make_engine(config={"broker_retry_initial_ms": 300})
    engine.handshake()
    engine.start_state()
    # Every later initialize fails too: the worker gives up after broker_retry_attempts.
    simterminal.write_hook_file(
        engine.terminal_dir,
        [
            {"n": 1, "code": c.RES_E_INTERNAL_FAIL_TIMEOUT, "functions": ["account_info"]},
            {"n": 10, "code": c.RES_E_INTERNAL_FAIL_INIT, "functions": ["initialize"]},
        ],
    )
    frames = engine.read_until("event", 10.0)
    assert frames[-1].event.kind == "BROKER_DISCONNECTED"
    res = engine.order(**market(31))[-1].order_result
    assert res.retcode == c.TRADE_RETCODE_CONNECTION
    assert engine.wait() == 6
    assert engine.stderr.count("attaching again failed") == 2
    assert "terminal lost: 3 attempts to attach again failed" in engine.stderr


def test_wrong_password_login_failed_after_retries(make_engine: Callable[..., Engine]) -> None:
    eng = make_engine(password="not-the-password", config={"broker_retry_initial_ms": 200})
    assert eng.proc is not None
    deadline = time.monotonic() + 60
    while "attempt 1 of 3" not in eng.stderr and time.monotonic() < deadline:
        time.sleep(0.01)
    # Retrying: the password is in the worker's memory, not on its command line.
    cmdline = Path(f"/proc/{eng.proc.pid}/cmdline").read_bytes()
    assert b"not-the-password" not in cmdline
    eng.accept()
    # Said instead of Hello: the engine fails the instance at once.
    event = eng.read().event
    assert event.kind == "LOGIN_FAILED"
    assert "Authorization failed" in event.message
    assert eng.wait() == 5
    stderr = eng.stderr
    assert stderr.count("initialize failed (attempt") == 3
    assert "not-the-password" not in stderr
    assert not eng.password_file.exists()


def test_the_password_stays_out_of_cmdline_environ_and_logs(
    make_engine: Callable[..., Engine],
) -> None:
    eng = make_engine()
    eng.handshake()
    eng.start_state()
    assert eng.proc is not None
    for what in ("cmdline", "environ"):
        assert PASSWORD.encode() not in Path(f"/proc/{eng.proc.pid}/{what}").read_bytes()
    assert not eng.password_file.exists()  # delete_password_file
    eng.order(**market(1))
    eng.send(shutdown=pb.Shutdown(reason="test"))
    assert eng.wait() == 0
    assert PASSWORD not in eng.stderr
    assert "mt5 worker started" in eng.stderr


def test_faults(engine: Engine) -> None:
    engine.send(fault=pb.FaultInjection(reject_next=1))
    assert engine.order(**market(1))[-1].order_result.retcode == c.TRADE_RETCODE_REJECT
    assert engine.order(**market(2))[-1].order_result.retcode == c.TRADE_RETCODE_DONE
    engine.send(fault=pb.FaultInjection(crash=True))
    assert engine.wait() == 70


# -- config and pieces -----------------------------------------------------------------------------


def test_config_errors(tmp_path: Path) -> None:
    path = tmp_path / "w.json"
    for bad in (
        {"poll_interval_ms": 0},
        {"symbols": "EURUSD"},
        {"tick_source": "bars"},
        {"login": "123"},
        {"login": -1},
        {"wine": [""]},
        {"module": ""},
        {"terminal_base": "/opt/mt5"},
    ):
        path.write_text(json.dumps(bad))
        with pytest.raises(ConfigError, match=str(path)):
            load_config(path)
    path.write_text(json.dumps({"instance_id": "x", "extra": 1, "symbols": ["A", "A", "B"]}))
    cfg = load_config(path, "y")
    assert (cfg.instance_id, cfg.symbols, cfg.module) == ("y", ["A", "B"], "MetaTrader5")
    # What the engine writes for an account without login/server, or a terminal without Wine.
    path.write_text(json.dumps({"login": 0, "server": "", "terminal_path": "", "wine": []}))
    cfg = load_config(path)
    assert (cfg.login, cfg.server, cfg.terminal_path, cfg.wine) == (None, None, None, None)


def test_missing_password_file_attaches_with_saved_credentials(
    make_engine: Callable[..., Engine],
) -> None:
    eng = make_engine(start=False)
    eng.password_file.unlink()
    eng.start()
    hello = eng.handshake()
    assert hello.account.login == LOGIN
    eng.send(shutdown=pb.Shutdown(reason="test"))
    assert eng.wait() == 0
    assert "does not exist: attaching without a password" in eng.stderr


def test_bad_config_exits_2(make_engine: Callable[..., Engine]) -> None:
    eng = make_engine(config={"module": "no.such.module"})
    assert eng.wait() == 2
    assert "no.such.module" in eng.stderr


def test_filling_falls_back_to_what_the_symbol_allows(tmp_path: Path) -> None:
    a, b = socket.socketpair()
    with a, b:
        worker = MT5Worker(a, Terminal(simterminal, WorkerConfig(), None), WorkerConfig())
        worker.infos["IOC"] = pb.SymbolInfo(name="IOC", filling_mode=2)
        worker.infos["NONE"] = pb.SymbolInfo(name="NONE", filling_mode=0)
        worker.infos["ALL"] = pb.SymbolInfo(name="ALL", filling_mode=7)

        def fill(symbol: str, filling: int, action: int = c.TRADE_ACTION_DEAL) -> int:
            return worker._filling(
                pb.OrderRequest(action=action, symbol=symbol, type_filling=filling)
            )

        assert fill("IOC", c.ORDER_FILLING_FOK) == c.ORDER_FILLING_IOC
        assert fill("IOC", c.ORDER_FILLING_IOC) == c.ORDER_FILLING_IOC
        assert fill("NONE", c.ORDER_FILLING_FOK) == c.ORDER_FILLING_RETURN
        assert fill("NONE", c.ORDER_FILLING_BOC) == c.ORDER_FILLING_BOC
        assert fill("ALL", c.ORDER_FILLING_FOK) == c.ORDER_FILLING_FOK
        assert fill("IOC", c.ORDER_FILLING_RETURN) == c.ORDER_FILLING_RETURN
        assert fill("IOC", c.ORDER_FILLING_FOK, c.TRADE_ACTION_SLTP) == c.ORDER_FILLING_FOK


def test_refused_filling_types_are_retried_but_never_boc() -> None:
    """A terminal whose symbol flags lie: order_check decides (a stand-in for the external
    MetaTrader5 package that refuses every filling type but RETURN)."""

    class Fussy:
        def __init__(self) -> None:
            self.checked: list[int] = []

        def order_check(self, request: dict[str, Any]) -> Any:
            self.checked.append(request["type_filling"])
            ok = request["type_filling"] == c.ORDER_FILLING_RETURN
            return SimpleNamespace(retcode=0 if ok else c.TRADE_RETCODE_INVALID_FILL, comment="")

        def last_error(self) -> tuple[int, str]:
            return (c.RES_S_OK, "Success")

    fussy = Fussy()
    a, b = socket.socketpair()
    with a, b:
        worker = MT5Worker(a, Terminal(fussy, WorkerConfig(), None), WorkerConfig())
        req = pb.OrderRequest(action=c.TRADE_ACTION_DEAL, symbol="X", type_filling=0)
        request = {"type_filling": c.ORDER_FILLING_FOK}
        assert worker._check(req, request).retcode == 0
        assert fussy.checked == [c.ORDER_FILLING_FOK, c.ORDER_FILLING_IOC, c.ORDER_FILLING_RETURN]
        assert request["type_filling"] == c.ORDER_FILLING_RETURN
        fussy.checked.clear()
        boc = pb.OrderRequest(action=c.TRADE_ACTION_DEAL, symbol="X", type_filling=3)
        check = worker._check(boc, {"type_filling": c.ORDER_FILLING_BOC})
        assert check.retcode == c.TRADE_RETCODE_INVALID_FILL
        assert fussy.checked == [c.ORDER_FILLING_BOC]


def test_filling_detected_end_to_end(make_engine: Callable[..., Engine]) -> None:
    # EURUSD allows IOC only; GBPUSD is on exchange execution (RETURN for market orders) but
    # claims no flags at all: the terminal's answer to order_check decides.
    eng = make_engine(
        terminal={
            "symbol_settings": {
                "EURUSD": {"filling_mode": 2},
                "GBPUSD": {"filling_mode": 0, "execution": "exchange"},
            }
        }
    )
    hello = eng.handshake()
    assert [s.filling_mode for s in hello.symbols] == [2, 0]
    eng.start_state()
    res = eng.order(**market(1, type_filling=c.ORDER_FILLING_FOK))[-1].order_result
    assert res.retcode == c.TRADE_RETCODE_DONE, res.comment
    res = eng.order(**market(2, symbol="GBPUSD"))[-1].order_result
    assert res.retcode == c.TRADE_RETCODE_DONE, res.comment
    # BOC is never swapped for another type: refused.
    res = eng.order(**market(3, type_filling=c.ORDER_FILLING_BOC))[-1].order_result
    assert res.retcode == c.TRADE_RETCODE_INVALID_FILL
    eng.send(
        reconcile=pb.ReconcileRequest(request_id=9, comments=["cid-1", "cid-2"], from_time_msc=0)
    )
    orders = eng.read_until("reconcile_result")[-1].reconcile_result.orders
    assert [(o.comment, o.type_filling) for o in orders] == [
        ("cid-1", c.ORDER_FILLING_IOC),
        ("cid-2", c.ORDER_FILLING_RETURN),
    ]


# -- a terminal the worker starts itself -----------------------------------------------------------


def install_fake_terminal(base: Path) -> None:
    base.mkdir(parents=True)
    exe = base / "terminal64.exe"
    exe.write_text(
        f"#!{sys.executable}\n"
        "import runpy, sys\n"
        "sys.argv[0] = 'terminal64.exe'\n"
        f"runpy.run_path({str(STANDINS / 'fake_terminal.py')!r}, run_name='__main__')\n"
    )
    exe.chmod(0o755)


def test_bootstrap_launches_the_terminal_and_scrubs_the_password(
    tmp_path: Path, make_engine: Callable[..., Engine]
) -> None:
    base = tmp_path / "base"
    install_fake_terminal(base)
    instance = tmp_path / "instance"
    record = tmp_path / "terminal-record.json"
    wine_record = tmp_path / "wine-record.json"
    # The simulated terminal lives where the worker will put the real one.
    simterminal.write_terminal_config(
        instance / "terminal",
        login=LOGIN,
        password=PASSWORD,
        server=SERVER,
        symbols=["EURUSD"],
    )
    eng = make_engine(
        config={
            # As the server writes it: the terminal's folder, inside the instance directory.
            "terminal_path": str(instance / "terminal"),
            "terminal_base": str(base),
            "instance_dir": str(instance),
            "wine": [sys.executable, str(STANDINS / "fake_wine.py")],
            "symbols": ["EURUSD"],
        },
        env={"FAKE_TERMINAL_RECORD": str(record), "FAKE_WINE_RECORD": str(wine_record)},
        start=False,
    )
    (eng.tmp / "terminal").rename(eng.tmp / "unused-terminal")  # not the one in use
    eng.start()
    hello = eng.handshake()
    assert [s.name for s in hello.symbols] == ["EURUSD"]
    eng.start_state()
    deadline = time.monotonic() + 60
    while not record.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    launched = json.loads(record.read_text())
    assert "/portable" in launched["argv"]
    assert any(a.startswith("/config:Z:") for a in launched["argv"])
    # (Whether the stand-in read the ini before the scrub is a race with the simulated login,
    # which does not wait for the terminal as a real one does: not asserted.)
    assert f"Login={LOGIN}" in launched["ini"]
    assert Path(launched["cwd"]) == instance / "terminal"
    assert os.getpgid(launched["pid"]) == eng.proc.pid  # type: ignore[union-attr]
    ini = (instance / "terminal" / "mt5exec-start.ini").read_bytes().decode("utf-16")
    assert f"Login={LOGIN}" in ini
    assert "Password" not in ini  # scrubbed once the login succeeded
    assert PASSWORD not in json.loads(wine_record.read_text())

    eng.send(shutdown=pb.Shutdown(reason="test"))
    assert eng.wait() == 0
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            os.kill(launched["pid"], 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        pytest.fail("the terminal outlived the worker")
    assert PASSWORD not in eng.stderr


def _book_request(engine: Engine, request_id: int, symbol: str = "EURUSD") -> pb.MarketAnswer:
    engine.send(
        market_request=pb.MarketRequest(request_id=request_id, book=pb.BookQuery(symbol=symbol))
    )
    frames = engine.read_until(
        lambda f: (
            f.WhichOneof("body") == "market_answer" and f.market_answer.request_id == request_id
        )
    )
    return frames[-1].market_answer


def _is_book(frame: pb.WorkerFrame) -> bool:
    return frame.WhichOneof("body") == "book" and frame.book.symbol == "EURUSD"


def test_books_added_again_after_the_terminal_is_attached_again(engine: Engine) -> None:
    assert _book_request(engine, 41).code == 0
    engine.read_until(_is_book)
    simterminal.write_hook_file(
        engine.terminal_dir,
        {"n": 1, "code": c.RES_E_INTERNAL_FAIL_CONNECT, "functions": ["order_check"]},
    )
    assert engine.order(**market(42))[-1].order_result.retcode == c.TRADE_RETCODE_CONNECTION
    engine.read_until(
        lambda f: f.WhichOneof("body") == "event" and f.event.kind == "BROKER_CONNECTED"
    )
    # The books went with the old session: the worker adds them again and sends them again.
    engine.read_until(_is_book)
    assert "keeps failing for a book" not in engine.stderr


def test_a_book_asked_while_disconnected_is_unavailable(make_engine: Callable[..., Engine]) -> None:
    # The first attempt to attach again fails; the next is a minute away.
    engine = make_engine(
        config={
            "broker_retry_initial_ms": 60_000,
            "broker_retry_max_ms": 60_000,
            "broker_retry_attempts": 5,
        }
    )
    engine.handshake()
    engine.start_state()
    simterminal.write_hook_file(
        engine.terminal_dir,
        [
            {"n": 1, "code": c.RES_E_INTERNAL_FAIL_CONNECT, "functions": ["order_check"]},
            {"n": 10, "code": c.RES_E_INTERNAL_FAIL_INIT, "functions": ["initialize"]},
        ],
    )
    assert engine.order(**market(51))[-1].order_result.retcode == c.TRADE_RETCODE_CONNECTION
    answer = _book_request(engine, 52)
    # A known symbol: not NOT_FOUND from a stale last_error, but the link that is down.
    assert (answer.code, answer.reason) == (14, "BROKER_DISCONNECTED")  # UNAVAILABLE


def test_a_hung_terminal_call_makes_the_worker_exit(engine: Engine) -> None:
    # copy_rates_from_pos never returns: the worker heartbeats while it waits, but not for
    # ever (MARKET_CALL_HUNG_S), then exits for the engine to replace it.
    simterminal.write_hook_file(
        engine.terminal_dir, {"hang": True, "functions": ["copy_rates_from_pos"]}
    )
    rates = pb.RatesQuery(symbol="EURUSD", timeframe=1, from_pos=True, count=10)
    engine.send(market_request=pb.MarketRequest(request_id=61, rates=rates))
    assert engine.wait(timeout=MARKET_CALL_HUNG_S + 120) == 6
    assert "terminal call hung: rates answer still running" in engine.stderr
