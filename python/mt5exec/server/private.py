"""The server's files are its user's alone: the data dir is 0700, and what the server, its
workers and its history process create is 0600, whatever the umask they were started with.

The journal, the execution logs, the history database, the worker logs and the instances'
configs hold every order and account of the node. The process umask is what makes Python's,
DuckDB's and the workers' own files private (children inherit it); the engine creates its
files 0600 itself as well (``rust_core/src/private.rs``).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

UMASK = 0o077


def restrict(data_dir: Path) -> None:
    """Sets the process umask, and makes ``data_dir`` (created if missing) its owner's only.
    Call before anything is created."""
    os.umask(UMASK)
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    mode = stat.S_IMODE(data_dir.stat().st_mode)
    if mode & UMASK:
        os.chmod(data_dir, mode & ~UMASK)
