"""Type stub of the Rust extension; see rust_core/src/python/.

``RiskChecker`` exists only in a build with the ``test-bindings`` feature (``make build``).
"""

from pathlib import Path
from typing import Self, final

__all__ = [
    "LATENCY_BOUNDS_S",
    "PROTOCOL_VERSION",
    "SLIPPAGE_BOUNDS_POINTS",
    "Completion",
    "CopyDefaults",
    "CopyMetrics",
    "CopyState",
    "CoreError",
    "Engine",
    "EngineConfig",
    "ExecutionCounts",
    "FillCounts",
    "InstanceGauges",
    "InstanceSpec",
    "JournalStats",
    "LabelCount",
    "OrderSession",
    "RiskChecker",
    "RiskDayState",
    "SignalCopyResult",
    "Subscription",
    "WorkerLatency",
    "copy_volume",
    "validate_risk_limits",
]

PROTOCOL_VERSION: int
LATENCY_BOUNDS_S: list[float]
SLIPPAGE_BOUNDS_POINTS: list[float]

class CoreError(Exception):
    """args: (grpc_code, reason, message, field)."""

@final
class Subscription:
    @property
    def id(self) -> int: ...
    @property
    def yielded(self) -> bool: ...
    def end(self) -> None: ...
    def ready(self, max_bytes: int = 65536) -> bytes | None: ...
    def take(self, max_bytes: int = 65536) -> bytes | None:
        """Raises CoreError once the stream has ended with nothing left."""
    def queued(self) -> int: ...
    @property
    def cut_off(self) -> bool: ...

@final
class OrderSession:
    @property
    def id(self) -> int: ...
    def outstanding(self) -> int: ...
    def take(self) -> list[bytes]: ...

@final
class EngineConfig:
    """The engine's tunables; an argument left out is the engine's default."""

    def __new__(
        cls,
        *,
        journal_path: Path | str | None = None,
        journal_fsync: str | None = None,
        stop_grace_s: float | None = None,
        kill_grace_s: float | None = None,
        tick_queue_limit: int | None = None,
        execution_queue_limit: int | None = None,
        stream_queue_max_bytes: int | None = None,
        worker_threads: int | None = None,
        final_order_retention_s: float | None = None,
        max_orders_per_instance: int | None = None,
        journal_compact_bytes: int | None = None,
        execution_log_bytes: int | None = None,
        stream_coalesce_max_s: float | None = None,
    ) -> Self: ...
    @property
    def journal_path(self) -> Path | None: ...
    @property
    def journal_fsync(self) -> str: ...
    @property
    def stop_grace_s(self) -> float: ...
    @property
    def kill_grace_s(self) -> float: ...
    @property
    def tick_queue_limit(self) -> int: ...
    @property
    def execution_queue_limit(self) -> int: ...
    @property
    def stream_queue_max_bytes(self) -> int: ...
    @property
    def worker_threads(self) -> int: ...
    @property
    def final_order_retention_s(self) -> float: ...
    @property
    def max_orders_per_instance(self) -> int: ...
    @property
    def journal_compact_bytes(self) -> int: ...
    @property
    def execution_log_bytes(self) -> int: ...
    @property
    def stream_coalesce_max_s(self) -> float: ...

@final
class InstanceSpec:
    def __new__(
        cls,
        *,
        instance_id: str,
        owner: str,
        backend: int,
        directory: Path | str,
        log_directory: Path | str,
        argv: list[str],
        env: list[tuple[str, str]],
        config: bytes,
        supervision: dict[str, float],
        created_unix_ns: int | None = None,
        secret_files: list[tuple[str, str]] = ...,
        config_version: int = 1,
        kill_switch: bool = False,
        first_sequence_after: int = 0,
    ) -> Self: ...
    @property
    def instance_id(self) -> str: ...

@final
class Completion:
    """The answer to a call made earlier: code 0 and the encoded answer, or an error."""

    @property
    def token(self) -> int: ...
    @property
    def code(self) -> int: ...
    @property
    def reason(self) -> str: ...
    @property
    def message(self) -> str: ...
    @property
    def payload(self) -> bytes: ...

@final
class JournalStats:
    @property
    def records(self) -> int: ...
    @property
    def bytes(self) -> int: ...
    @property
    def fsyncs(self) -> int: ...
    @property
    def write_ns(self) -> int: ...
    @property
    def fsync_ns(self) -> int: ...
    @property
    def compactions(self) -> int: ...

@final
class CopyDefaults:
    """A follower's order defaults applied to its copies (docs/copier.md). 0: none."""

    def __new__(
        cls,
        *,
        lot_size: float = 0.0,
        risk_percent: float = 0.0,
        stop_loss_points: float = 0.0,
        take_profit_points: float = 0.0,
        deviation_points: int = 0,
    ) -> Self: ...
    @property
    def lot_size(self) -> float: ...
    @property
    def risk_percent(self) -> float: ...
    @property
    def stop_loss_points(self) -> float: ...
    @property
    def take_profit_points(self) -> float: ...
    @property
    def deviation_points(self) -> int: ...

@final
class CopyMetrics:
    """What one relation did since the start."""

    @property
    def relation_id(self) -> str: ...
    @property
    def owner(self) -> str: ...
    @property
    def copies(self) -> int: ...
    @property
    def skipped(self) -> list[tuple[str, int]]: ...
    @property
    def latency_cumulative(self) -> list[int] | None: ...
    @property
    def latency_count(self) -> int: ...
    @property
    def latency_sum_s(self) -> float: ...
    @property
    def fills(self) -> int: ...
    @property
    def slippage_sum(self) -> float: ...
    @property
    def slippage_max(self) -> float: ...

@final
class CopyState:
    """What a relation keeps across restarts (copy_stats.json)."""

    def __new__(
        cls,
        *,
        owner: str,
        relation_id: str,
        incarnation: int,
        copies: int = 0,
        skipped: list[tuple[str, int]] = ...,
        fills: int = 0,
        slippage_sum: float = 0.0,
        slippage_max: float = 0.0,
        refused: list[int] = ...,
    ) -> Self: ...
    @property
    def owner(self) -> str: ...
    @property
    def relation_id(self) -> str: ...
    @property
    def incarnation(self) -> int: ...
    @property
    def copies(self) -> int: ...
    @property
    def skipped(self) -> list[tuple[str, int]]: ...
    @property
    def fills(self) -> int: ...
    @property
    def slippage_sum(self) -> float: ...
    @property
    def slippage_max(self) -> float: ...
    @property
    def refused(self) -> list[int]: ...

@final
class SignalCopyResult:
    """One follower's result of a signal: a token to wait on, or (token 0) the refusal."""

    @property
    def follower_instance_id(self) -> str: ...
    @property
    def client_order_id(self) -> str: ...
    @property
    def token(self) -> int: ...
    @property
    def code(self) -> int: ...
    @property
    def reason(self) -> str: ...
    @property
    def message(self) -> str: ...
    @property
    def field(self) -> str: ...
    @property
    def retry_after_ms(self) -> int: ...

@final
class WorkerLatency:
    @property
    def instance_id(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def cumulative(self) -> list[int]: ...
    @property
    def count(self) -> int: ...
    @property
    def sum_s(self) -> float: ...

@final
class FillCounts:
    @property
    def instance_id(self) -> str: ...
    @property
    def symbol(self) -> str: ...
    @property
    def fills(self) -> int: ...
    @property
    def volume(self) -> float: ...
    @property
    def commission(self) -> float: ...
    @property
    def slippage_cumulative(self) -> list[int]: ...
    @property
    def slippage_count(self) -> int: ...
    @property
    def slippage_sum(self) -> float: ...

@final
class LabelCount:
    @property
    def instance_id(self) -> str: ...
    @property
    def label(self) -> str: ...
    @property
    def count(self) -> int: ...

@final
class ExecutionCounts:
    @property
    def fills(self) -> list[FillCounts]: ...
    @property
    def rejections(self) -> list[LabelCount]: ...
    @property
    def updates(self) -> list[LabelCount]: ...

@final
class InstanceGauges:
    @property
    def instance_id(self) -> str: ...
    @property
    def balance(self) -> float | None: ...
    @property
    def equity(self) -> float | None: ...
    @property
    def margin_level(self) -> float | None: ...
    @property
    def leverage(self) -> int | None: ...
    @property
    def spreads(self) -> dict[str, float]: ...
    @property
    def worker_resident_bytes(self) -> int | None: ...
    @property
    def worker_cpu_seconds(self) -> float | None: ...

@final
class RiskDayState:
    def __new__(
        cls, day: int, trades_today: int, day_start_equity: float, equity_high: float
    ) -> RiskDayState: ...
    @property
    def day(self) -> int: ...
    @property
    def trades_today(self) -> int: ...
    @property
    def day_start_equity(self) -> float: ...
    @property
    def equity_high(self) -> float: ...
    def __copy__(self) -> RiskDayState: ...
    def __deepcopy__(self, memo: object, /) -> RiskDayState: ...

@final
class Engine:
    def __new__(cls, config: EngineConfig | None = None) -> Self: ...
    def set_coalescing(self, on: bool) -> None: ...
    def notify_fd(self) -> int: ...
    def drain(self) -> tuple[list[Completion], list[int]]: ...
    def create_instance(self, spec: InstanceSpec, start: bool = True) -> int: ...
    def last_sequence(self, instance_id: str) -> int: ...
    def start_instance(self, instance_id: str) -> int: ...
    def restart_instance(self, instance_id: str) -> int: ...
    def announce(self, instance_id: str, reason: str) -> None: ...
    def set_secret_files(self, instance_id: str, secret_files: list[tuple[str, str]]) -> None: ...
    def remove_instance(self, instance_id: str) -> None: ...
    def report_health(self, instance_id: str, healthy: bool, reason: str) -> None: ...
    def instance_stats(self, instance_id: str) -> bytes: ...
    def market_query(self, instance_id: str, request: bytes) -> int: ...
    def market_forget(self, instance_id: str, token: int) -> bool: ...
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
        stop_limit_price: float = 0.0,
        stop_loss: float = 0.0,
        take_profit: float = 0.0,
        deviation_points: int = 0,
        time_in_force: int = 0,
        expiration_msc: int = 0,
        filling: int = 0,
        comment: str = ...,
        magic: int = 0,
        position_id: int = 0,
    ) -> int: ...
    def place_order_raw(
        self, raw: bytes, check_only: bool = False, owner: str | None = None
    ) -> tuple[int, str]: ...
    def cancel_order(
        self, instance_id: str, order_id: int = 0, client_order_id: str = ...
    ) -> int: ...
    def modify_order(
        self,
        instance_id: str,
        order_id: int = 0,
        client_order_id: str = ...,
        price: float = 0.0,
        stop_limit_price: float = 0.0,
        stop_loss: float = 0.0,
        take_profit: float = 0.0,
        time_in_force: int = 0,
        expiration_msc: int = 0,
    ) -> int: ...
    def modify_position(
        self, instance_id: str, position_id: int, stop_loss: float, take_profit: float
    ) -> int: ...
    def get_order(
        self, instance_id: str, order_id: int = 0, client_order_id: str = ...
    ) -> bytes: ...
    def list_orders(
        self,
        instance_id: str,
        history: bool = False,
        symbol: str = ...,
        from_nanos: int | None = None,
        to_nanos: int | None = None,
        page_size: int = 0,
        page_token: str = ...,
    ) -> bytes: ...
    def journal_stats(self) -> JournalStats: ...
    def engage_kill_switch(
        self,
        instance_id: str | None = None,
        owner: str | None = None,
        close_positions: bool = False,
    ) -> int: ...
    def release_kill_switch(
        self, instance_id: str | None = None, owner: str | None = None
    ) -> list[str]: ...
    def set_risk_limits(self, instance_id: str, limits: bytes, version: int) -> bytes: ...
    def set_trading_state(self, instance_id: str, state: int) -> bytes: ...
    def configure_risk(
        self,
        global_orders_per_second: float,
        owner_orders_per_second: float,
        owners: dict[str, tuple[list[str], float]],
    ) -> None: ...
    def add_copy_relation(
        self,
        raw: bytes,
        created: bool,
        defaults: CopyDefaults,
        state: CopyState | None = None,
    ) -> bytes: ...
    def copy_states(self) -> list[CopyState]: ...
    def remove_copy_relation(self, owner: str, relation_id: str, close: bool) -> bytes: ...
    def copy_relations(self) -> list[bytes]: ...
    def get_copy_relation(self, owner: str, relation_id: str) -> bytes: ...
    def copy_metrics(self) -> list[CopyMetrics]: ...
    def copy_signal(
        self,
        source: str,
        signal_id: str,
        symbol: str,
        side: int,
        volume: float,
        risk_percent: float = 0.0,
        price: float = 0.0,
        stop_loss: float = 0.0,
        take_profit: float = 0.0,
    ) -> list[SignalCopyResult]: ...
    def risk_rejections(self) -> list[tuple[str, str, int]]: ...
    def worker_latency(self) -> list[WorkerLatency]: ...
    def execution_counts(self) -> ExecutionCounts: ...
    def journal_health(self) -> tuple[bool, int] | None: ...
    def instance_gauges(self) -> list[InstanceGauges]: ...
    def stream_stats(self) -> list[tuple[str, int, int, int]]: ...
    def stream_cutoffs(self) -> int: ...
    def flush_refusals(self) -> None: ...
    def risk_day_state(self, instance_id: str) -> RiskDayState: ...
    def restore_risk_day_state(self, instance_id: str, state: RiskDayState) -> None: ...
    def open_session(self, owner: str | None = None) -> OrderSession: ...
    def session_submit(self, session: OrderSession, raw: bytes) -> None: ...
    def get_account(self, instance_id: str) -> bytes: ...
    def list_positions(self, instance_id: str, symbol: str = ...) -> bytes: ...
    def subscribe(
        self,
        topic: int,
        instance_ids: list[str] = ...,
        symbols: list[str] = ...,
        conflate: bool = False,
    ) -> Subscription: ...
    def subscribe_executions(
        self, instance_id: str, from_sequence: int, live: bool = False
    ) -> tuple[Subscription, int]: ...
    def unsubscribe(self, subscription: Subscription) -> None: ...
    def worker_pids(self) -> list[int]: ...
    def running_instances(self) -> list[str]: ...

@final
class RiskChecker:
    """The risk rules alone, on one scenario (tests and benchmarks)."""

    def __new__(
        cls,
        limits: bytes,
        spec: bytes,
        bid: float,
        ask: float,
        *,
        tick_age_ms: int = 0,
        hedging: bool = True,
        equity: float = 0.0,
        free_margin: float = ...,
        leverage: float = 100.0,
        net_volume: float = 0.0,
        open_positions: int = 0,
        pending_orders: int = 0,
        trades_today: int = 0,
        day_start_equity: float = 0.0,
        equity_high: float = 0.0,
        trading_state: int = 1,
        kill_switch: bool = False,
        symbol_allowed: bool = True,
        in_session: bool = True,
        duplicate: bool = False,
    ) -> Self: ...
    def check(
        self,
        buy: bool,
        order_type: int,
        volume: float,
        price: float = 0.0,
        stop_limit_price: float = 0.0,
        stop_loss: float = 0.0,
        take_profit: float = 0.0,
        deviation_points: int = 0,
        closes_position: bool = False,
    ) -> str | None: ...
    def time_check(self, buy: bool, order_type: int, volume: float, n: int) -> float: ...

def validate_risk_limits(limits: bytes) -> None: ...
def copy_volume(
    mode: int,
    *,
    multiplier: float = 0.0,
    fixed_volume: float = 0.0,
    risk_percent: float = 0.0,
    min_volume: float = 0.0,
    max_volume: float = 0.0,
    raise_to_minimum: bool = False,
    master_volume: float = 0.0,
    master_balance: float = 0.0,
    master_equity: float = 0.0,
    follower_balance: float = 0.0,
    follower_equity: float = 0.0,
    stop_distance: float = 0.0,
    tick_value: float = 0.0,
    tick_size: float = 0.0,
    volume_min: float = 0.0,
    volume_max: float = 0.0,
    volume_step: float = 0.0,
) -> tuple[float, str]: ...
