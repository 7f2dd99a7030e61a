"""What every service needs: the configuration, the engine, the history writer and the
credential vault."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from mt5exec.config import ServerConfig
from mt5exec.engine import Engine
from mt5exec.storage.history_process import HistoryProcess
from mt5exec.templates import Templates
from mt5exec.vault import Vault

if TYPE_CHECKING:
    from mt5exec.services.copier import CopyRelations


@dataclass
class AppState:
    config: ServerConfig
    engine: Engine
    history: HistoryProcess | None
    templates: Templates
    vault: Vault
    # Set by OrderService (which owns them): the copy relations.
    copy_relations: CopyRelations | None = None
