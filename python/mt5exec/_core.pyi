"""Type stub of the Rust extension; see rust_core/src/python.rs."""

from pathlib import Path

PROTOCOL_VERSION: int

class CoreError(Exception):
    """args: (grpc_code, reason, message, field)."""

class Subscription:
    @property
    def id(self) -> int: ...
    def take(self, max_bytes: int = 65536) -> tuple[bytes | None, tuple[int, str, str] | None]: ...
    def queued(self) -> int: ...

class Engine:
    def __init__(
        self,
        heartbeat_interval_ms: int = 1000,
        start_timeout_s: float = 10.0,
        stop_grace_s: float = 2.0,
        kill_grace_s: float = 1.0,
        tick_queue_limit: int = 10000,
        execution_queue_limit: int = 100000,
        worker_threads: int = 1,
    ) -> None: ...
    def notify_fd(self) -> int: ...
    def drain(self) -> tuple[list[tuple[int, int, str, str, bytes]], list[int]]: ...
    def create_instance(
        self,
        instance_id: str,
        owner: str,
        backend: int,
        directory: Path | str,
        argv: list[str],
        env: list[tuple[str, str]],
        config: bytes,
    ) -> int: ...
    def stop_instance(self, instance_id: str, grace_s: float | None = None) -> int: ...
    def get_instance(self, instance_id: str) -> bytes: ...
    def list_instances(self) -> list[bytes]: ...
    def place_order(
        self,
        instance_id: str,
        client_order_id: str,
        symbol: str,
        side: int,
        order_type: int,
        volume: float,
        price: float = 0.0,
        stop_loss: float = 0.0,
        take_profit: float = 0.0,
        deviation_points: int = 0,
        comment: str = "",
        magic: int = 0,
    ) -> int: ...
    def get_account(self, instance_id: str) -> bytes: ...
    def list_positions(self, instance_id: str, symbol: str = "") -> bytes: ...
    def subscribe(
        self, topic: int, instance_ids: list[str] = ..., symbols: list[str] = ...
    ) -> Subscription: ...
    def unsubscribe(self, subscription: Subscription) -> None: ...
    def worker_pids(self) -> list[int]: ...
    def running_instances(self) -> list[str]: ...
