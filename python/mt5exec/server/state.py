"""What every service needs: the configuration, the engine and the history writer."""

from __future__ import annotations

from dataclasses import dataclass

from mt5exec.config import ServerConfig
from mt5exec.engine import Engine
from mt5exec.storage.history_process import HistoryProcess
from mt5exec.templates import Templates


@dataclass
class AppState:
    config: ServerConfig
    engine: Engine
    history: HistoryProcess | None
    templates: Templates
