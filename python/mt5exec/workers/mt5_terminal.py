"""The MT5 worker's link to its terminal: the MetaTrader5 module attached (initialize with
retries, login, re-attach), and the terminal process when the worker starts it itself.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mt5exec.mt5 import bootstrap
from mt5exec.mt5 import constants as c
from mt5exec.workers.mt5_config import WorkerConfig

log = logging.getLogger("mt5exec.workers.mt5")


class Terminal:
    """The MetaTrader5 module, attached to its terminal: initialize with retries, re-attach.

    With ``terminal_base`` it also owns the terminal process (prepared, launched, relaunched
    when it died, its startup ini scrubbed once a login succeeded).
    """

    def __init__(self, mt5: Any, cfg: WorkerConfig, password: str | None) -> None:
        self.mt5 = mt5
        self.cfg = cfg
        self._password = password
        self.process: bootstrap.TerminalProcess | None = None
        self._terminal_dir: Path | None = None
        self.path: str | None = cfg.terminal_path
        # A call that never returned holds the terminal: shutdown() would wait for it too.
        self.hung = False

    def _ensure_process(self) -> None:
        cfg = self.cfg
        if cfg.terminal_base is None:
            return
        if self.process is not None and self.process.running:
            return
        if self.process is not None:
            log.warning("MT5 terminal exited with %s: starting it again", self.process.returncode)
        instance_dir = cfg.instance_dir or Path.cwd()
        terminal_dir = bootstrap.prepare_terminal(cfg.terminal_base, instance_dir)
        assert cfg.login is not None and cfg.server is not None  # checked by load_config
        ini = bootstrap.write_startup_ini(
            terminal_dir, login=cfg.login, server=cfg.server, password=self._password
        )
        self.process = bootstrap.launch_terminal(
            terminal_dir, ini, wine=cfg.wine, scrub_after=cfg.scrub_after_s
        )
        self._terminal_dir = terminal_dir
        if self.path is None:
            self.path = str(terminal_dir)

    def _terminal_path(self) -> str | None:
        """What ``initialize`` gets: the real package wants terminal64.exe, not its folder."""
        path = self.path
        if path is not None and Path(path).is_dir():
            exe = Path(path) / bootstrap.TERMINAL_EXE
            if exe.is_file():
                return str(exe)
        return path

    def initialize(self) -> bool:
        """One ``initialize`` call; False with the reason in ``last_error()``."""
        try:
            self._ensure_process()
        except (bootstrap.BootstrapError, OSError, ValueError) as e:
            log.error("cannot start the MT5 terminal: %s", e)
            return False
        kwargs: dict[str, Any] = {"timeout": self.cfg.init_timeout_ms, "portable": True}
        if self.cfg.login is not None:
            kwargs["login"] = self.cfg.login
        if self._password is not None:
            kwargs["password"] = self._password
        if self.cfg.server is not None:
            kwargs["server"] = self.cfg.server
        path = self._terminal_path()
        args = (path,) if path is not None else ()
        try:
            ok = bool(self.mt5.initialize(*args, **kwargs))
        except Exception as e:  # a module bug must not end the worker, nor show the arguments
            log.error("initialize raised %s", type(e).__name__)
            return False
        if ok and self.process is not None:
            # Logged in: the password has no business in the ini any more.
            self.process.scrub()
        return ok

    def login(self) -> bool:
        """Log the attached terminal in again (``mt5.login``) with the account's credentials."""
        if self.cfg.login is None:
            return False
        kwargs: dict[str, Any] = {}
        if self._password is not None:
            kwargs["password"] = self._password
        if self.cfg.server is not None:
            kwargs["server"] = self.cfg.server
        try:
            return bool(self.mt5.login(self.cfg.login, **kwargs))
        except Exception as e:  # never show the arguments
            log.error("login raised %s", type(e).__name__)
            return False

    def last_error(self) -> tuple[int, str]:
        try:
            code, message = self.mt5.last_error()
            return int(code), str(message)
        except Exception as e:
            return c.RES_E_FAIL, f"last_error raised {type(e).__name__}"

    def attach(self, attempts: int, sleep: Callable[[float], None] = time.sleep) -> bool:
        """``initialize`` with exponential backoff, at most ``attempts`` times."""
        delay = self.cfg.broker_retry_initial_ms / 1000.0
        for attempt in range(1, attempts + 1):
            if self.initialize():
                return True
            code, message = self.last_error()
            log.warning(
                "initialize failed (attempt %d of %d): %d %s", attempt, attempts, code, message
            )
            if attempt < attempts:
                sleep(delay)
                delay = min(delay * 2.0, self.cfg.broker_retry_max_ms / 1000.0)
        return False

    def detach(self) -> None:
        with contextlib.suppress(Exception):
            self.mt5.shutdown()

    def stop(self) -> None:
        if not self.hung:
            self.detach()
        if self.process is not None:
            self.process.terminate(grace=5.0)
