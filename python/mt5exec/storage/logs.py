"""Worker logs: one directory per instance under ``<data_dir>/logs/<owner>/<instance>/``,
kept after the instance is deleted and pruned once older than the retention period."""

from __future__ import annotations

import logging
import time
from pathlib import Path

log = logging.getLogger("mt5exec.logs")


def prune_logs(logs_dir: Path, retention_days: float, now: float | None = None) -> int:
    """Deletes log files not written for ``retention_days`` and the directories left empty;
    returns how many files were deleted."""
    if not logs_dir.is_dir():
        return 0
    cutoff = (time.time() if now is None else now) - retention_days * 86_400
    deleted = 0
    for path in sorted(logs_dir.rglob("*"), reverse=True):
        try:
            if path.is_file() and path.stat().st_mtime < cutoff:
                path.unlink()
                deleted += 1
            elif path.is_dir() and not any(path.iterdir()):
                path.rmdir()
        except OSError as e:
            log.warning("cannot prune %s: %s", path, e)
    if deleted:
        log.info("pruned %d log files older than %g days", deleted, retention_days)
    return deleted
