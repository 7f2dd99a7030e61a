"""A stand-in for terminal64.exe: records how it was started, then runs until SIGTERM.

Installed by the tests as ``terminal64.exe`` in a fake base install (a shim with a
``#!<python>`` line that runs this file). It reads the ``/config:`` ini the way MT5 does (a
Windows path through Wine's ``Z:`` drive, or a native path), records its argv, working directory
and the ini's text as JSON to ``$FAKE_TERMINAL_RECORD`` (a path outside the instance directory,
so that the record itself never leaves a password inside it), and writes a journal line to
``logs/`` in its working directory as a real terminal would (without the password).

``FAKE_TERMINAL_IGNORE_TERM=1`` makes it ignore SIGTERM (to test the SIGKILL escalation).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path


def unix_path(config: str) -> Path:
    if config[:2].upper() == "Z:":  # Wine's mapping of the Unix root
        return Path(config[2:].replace("\\", "/"))
    return Path(config)


def main(argv: list[str]) -> int:
    config = next(a[len("/config:") :] for a in argv[1:] if a.startswith("/config:"))
    data = unix_path(config).read_bytes()
    text = data[2:].decode("utf-16-le") if data.startswith(b"\xff\xfe") else data.decode()
    login = next(
        (line.split("=", 1)[1] for line in text.splitlines() if line.startswith("Login=")), ""
    )
    logs = Path.cwd() / "logs"
    logs.mkdir(exist_ok=True)
    with open(logs / "journal.log", "a") as journal:
        journal.write(f"terminal started, portable={'/portable' in argv}, login {login}\n")
    # Before the record: a test signals the terminal once the record is there.
    if os.environ.get("FAKE_TERMINAL_IGNORE_TERM") == "1":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    else:
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    record = {"argv": argv, "cwd": os.getcwd(), "ini": text, "pid": os.getpid()}
    target = Path(os.environ["FAKE_TERMINAL_RECORD"])
    tmp = target.with_suffix(".tmp")
    tmp.write_text(json.dumps(record))
    tmp.replace(target)  # the test polls for the file: it must appear complete

    while True:
        time.sleep(1)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
