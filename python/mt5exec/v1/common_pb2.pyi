import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Backend(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    BACKEND_UNSPECIFIED: _ClassVar[Backend]
    BACKEND_SIM: _ClassVar[Backend]
    BACKEND_MT5: _ClassVar[Backend]

class InstanceState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INSTANCE_STATE_UNSPECIFIED: _ClassVar[InstanceState]
    INSTANCE_STATE_PENDING: _ClassVar[InstanceState]
    INSTANCE_STATE_STARTING: _ClassVar[InstanceState]
    INSTANCE_STATE_CONNECTING: _ClassVar[InstanceState]
    INSTANCE_STATE_READY: _ClassVar[InstanceState]
    INSTANCE_STATE_DEGRADED: _ClassVar[InstanceState]
    INSTANCE_STATE_STOPPING: _ClassVar[InstanceState]
    INSTANCE_STATE_STOPPED: _ClassVar[InstanceState]
    INSTANCE_STATE_FAILED: _ClassVar[InstanceState]

class TradingState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TRADING_STATE_UNSPECIFIED: _ClassVar[TradingState]
    TRADING_STATE_ACTIVE: _ClassVar[TradingState]
    TRADING_STATE_REDUCE_ONLY: _ClassVar[TradingState]
    TRADING_STATE_HALTED: _ClassVar[TradingState]

class AccountMarginMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ACCOUNT_MARGIN_MODE_UNSPECIFIED: _ClassVar[AccountMarginMode]
    ACCOUNT_MARGIN_MODE_NETTING: _ClassVar[AccountMarginMode]
    ACCOUNT_MARGIN_MODE_HEDGING: _ClassVar[AccountMarginMode]

class Side(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SIDE_UNSPECIFIED: _ClassVar[Side]
    SIDE_BUY: _ClassVar[Side]
    SIDE_SELL: _ClassVar[Side]

class OrderType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ORDER_TYPE_UNSPECIFIED: _ClassVar[OrderType]
    ORDER_TYPE_MARKET: _ClassVar[OrderType]
    ORDER_TYPE_LIMIT: _ClassVar[OrderType]
    ORDER_TYPE_STOP: _ClassVar[OrderType]
    ORDER_TYPE_STOP_LIMIT: _ClassVar[OrderType]

class TimeInForce(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TIME_IN_FORCE_UNSPECIFIED: _ClassVar[TimeInForce]
    TIME_IN_FORCE_GTC: _ClassVar[TimeInForce]
    TIME_IN_FORCE_DAY: _ClassVar[TimeInForce]
    TIME_IN_FORCE_SPECIFIED: _ClassVar[TimeInForce]

class FillingMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FILLING_MODE_UNSPECIFIED: _ClassVar[FillingMode]
    FILLING_MODE_FOK: _ClassVar[FillingMode]
    FILLING_MODE_IOC: _ClassVar[FillingMode]
    FILLING_MODE_RETURN: _ClassVar[FillingMode]

class OrderStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ORDER_STATUS_UNSPECIFIED: _ClassVar[OrderStatus]
    ORDER_STATUS_NEW: _ClassVar[OrderStatus]
    ORDER_STATUS_SUBMITTED: _ClassVar[OrderStatus]
    ORDER_STATUS_ACCEPTED: _ClassVar[OrderStatus]
    ORDER_STATUS_PARTIALLY_FILLED: _ClassVar[OrderStatus]
    ORDER_STATUS_FILLED: _ClassVar[OrderStatus]
    ORDER_STATUS_CANCELED: _ClassVar[OrderStatus]
    ORDER_STATUS_REJECTED: _ClassVar[OrderStatus]
    ORDER_STATUS_EXPIRED: _ClassVar[OrderStatus]
    ORDER_STATUS_UNKNOWN: _ClassVar[OrderStatus]

class FillEntry(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FILL_ENTRY_UNSPECIFIED: _ClassVar[FillEntry]
    FILL_ENTRY_IN: _ClassVar[FillEntry]
    FILL_ENTRY_OUT: _ClassVar[FillEntry]
    FILL_ENTRY_INOUT: _ClassVar[FillEntry]
    FILL_ENTRY_OUT_BY: _ClassVar[FillEntry]

class FillReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FILL_REASON_UNSPECIFIED: _ClassVar[FillReason]
    FILL_REASON_CLIENT: _ClassVar[FillReason]
    FILL_REASON_EXPERT: _ClassVar[FillReason]
    FILL_REASON_STOP_LOSS: _ClassVar[FillReason]
    FILL_REASON_TAKE_PROFIT: _ClassVar[FillReason]
    FILL_REASON_STOP_OUT: _ClassVar[FillReason]
    FILL_REASON_BROKER: _ClassVar[FillReason]
BACKEND_UNSPECIFIED: Backend
BACKEND_SIM: Backend
BACKEND_MT5: Backend
INSTANCE_STATE_UNSPECIFIED: InstanceState
INSTANCE_STATE_PENDING: InstanceState
INSTANCE_STATE_STARTING: InstanceState
INSTANCE_STATE_CONNECTING: InstanceState
INSTANCE_STATE_READY: InstanceState
INSTANCE_STATE_DEGRADED: InstanceState
INSTANCE_STATE_STOPPING: InstanceState
INSTANCE_STATE_STOPPED: InstanceState
INSTANCE_STATE_FAILED: InstanceState
TRADING_STATE_UNSPECIFIED: TradingState
TRADING_STATE_ACTIVE: TradingState
TRADING_STATE_REDUCE_ONLY: TradingState
TRADING_STATE_HALTED: TradingState
ACCOUNT_MARGIN_MODE_UNSPECIFIED: AccountMarginMode
ACCOUNT_MARGIN_MODE_NETTING: AccountMarginMode
ACCOUNT_MARGIN_MODE_HEDGING: AccountMarginMode
SIDE_UNSPECIFIED: Side
SIDE_BUY: Side
SIDE_SELL: Side
ORDER_TYPE_UNSPECIFIED: OrderType
ORDER_TYPE_MARKET: OrderType
ORDER_TYPE_LIMIT: OrderType
ORDER_TYPE_STOP: OrderType
ORDER_TYPE_STOP_LIMIT: OrderType
TIME_IN_FORCE_UNSPECIFIED: TimeInForce
TIME_IN_FORCE_GTC: TimeInForce
TIME_IN_FORCE_DAY: TimeInForce
TIME_IN_FORCE_SPECIFIED: TimeInForce
FILLING_MODE_UNSPECIFIED: FillingMode
FILLING_MODE_FOK: FillingMode
FILLING_MODE_IOC: FillingMode
FILLING_MODE_RETURN: FillingMode
ORDER_STATUS_UNSPECIFIED: OrderStatus
ORDER_STATUS_NEW: OrderStatus
ORDER_STATUS_SUBMITTED: OrderStatus
ORDER_STATUS_ACCEPTED: OrderStatus
ORDER_STATUS_PARTIALLY_FILLED: OrderStatus
ORDER_STATUS_FILLED: OrderStatus
ORDER_STATUS_CANCELED: OrderStatus
ORDER_STATUS_REJECTED: OrderStatus
ORDER_STATUS_EXPIRED: OrderStatus
ORDER_STATUS_UNKNOWN: OrderStatus
FILL_ENTRY_UNSPECIFIED: FillEntry
FILL_ENTRY_IN: FillEntry
FILL_ENTRY_OUT: FillEntry
FILL_ENTRY_INOUT: FillEntry
FILL_ENTRY_OUT_BY: FillEntry
FILL_REASON_UNSPECIFIED: FillReason
FILL_REASON_CLIENT: FillReason
FILL_REASON_EXPERT: FillReason
FILL_REASON_STOP_LOSS: FillReason
FILL_REASON_TAKE_PROFIT: FillReason
FILL_REASON_STOP_OUT: FillReason
FILL_REASON_BROKER: FillReason

class SymbolSpec(_message.Message):
    __slots__ = ("name", "digits", "point", "contract_size", "volume_min", "volume_max", "volume_step", "stops_level", "freeze_level", "filling_modes", "currency_base", "currency_profit", "currency_margin", "tick_value", "tick_size")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DIGITS_FIELD_NUMBER: _ClassVar[int]
    POINT_FIELD_NUMBER: _ClassVar[int]
    CONTRACT_SIZE_FIELD_NUMBER: _ClassVar[int]
    VOLUME_MIN_FIELD_NUMBER: _ClassVar[int]
    VOLUME_MAX_FIELD_NUMBER: _ClassVar[int]
    VOLUME_STEP_FIELD_NUMBER: _ClassVar[int]
    STOPS_LEVEL_FIELD_NUMBER: _ClassVar[int]
    FREEZE_LEVEL_FIELD_NUMBER: _ClassVar[int]
    FILLING_MODES_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_BASE_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_PROFIT_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_MARGIN_FIELD_NUMBER: _ClassVar[int]
    TICK_VALUE_FIELD_NUMBER: _ClassVar[int]
    TICK_SIZE_FIELD_NUMBER: _ClassVar[int]
    name: str
    digits: int
    point: float
    contract_size: float
    volume_min: float
    volume_max: float
    volume_step: float
    stops_level: int
    freeze_level: int
    filling_modes: _containers.RepeatedScalarFieldContainer[FillingMode]
    currency_base: str
    currency_profit: str
    currency_margin: str
    tick_value: float
    tick_size: float
    def __init__(self, name: _Optional[str] = ..., digits: _Optional[int] = ..., point: _Optional[float] = ..., contract_size: _Optional[float] = ..., volume_min: _Optional[float] = ..., volume_max: _Optional[float] = ..., volume_step: _Optional[float] = ..., stops_level: _Optional[int] = ..., freeze_level: _Optional[int] = ..., filling_modes: _Optional[_Iterable[_Union[FillingMode, str]]] = ..., currency_base: _Optional[str] = ..., currency_profit: _Optional[str] = ..., currency_margin: _Optional[str] = ..., tick_value: _Optional[float] = ..., tick_size: _Optional[float] = ...) -> None: ...

class Tick(_message.Message):
    __slots__ = ("instance_id", "symbol", "bid", "ask", "last", "volume", "time", "received_time")
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    BID_FIELD_NUMBER: _ClassVar[int]
    ASK_FIELD_NUMBER: _ClassVar[int]
    LAST_FIELD_NUMBER: _ClassVar[int]
    VOLUME_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_TIME_FIELD_NUMBER: _ClassVar[int]
    instance_id: str
    symbol: str
    bid: float
    ask: float
    last: float
    volume: float
    time: _timestamp_pb2.Timestamp
    received_time: _timestamp_pb2.Timestamp
    def __init__(self, instance_id: _Optional[str] = ..., symbol: _Optional[str] = ..., bid: _Optional[float] = ..., ask: _Optional[float] = ..., last: _Optional[float] = ..., volume: _Optional[float] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., received_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Order(_message.Message):
    __slots__ = ("instance_id", "client_order_id", "order_id", "symbol", "side", "type", "volume", "filled_volume", "price", "stop_limit_price", "stop_loss", "take_profit", "deviation_points", "time_in_force", "expiration", "filling", "status", "average_fill_price", "position_id", "retcode", "status_message", "created_time", "updated_time", "comment", "reject_reason")
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    SIDE_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    VOLUME_FIELD_NUMBER: _ClassVar[int]
    FILLED_VOLUME_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    STOP_LIMIT_PRICE_FIELD_NUMBER: _ClassVar[int]
    STOP_LOSS_FIELD_NUMBER: _ClassVar[int]
    TAKE_PROFIT_FIELD_NUMBER: _ClassVar[int]
    DEVIATION_POINTS_FIELD_NUMBER: _ClassVar[int]
    TIME_IN_FORCE_FIELD_NUMBER: _ClassVar[int]
    EXPIRATION_FIELD_NUMBER: _ClassVar[int]
    FILLING_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    AVERAGE_FILL_PRICE_FIELD_NUMBER: _ClassVar[int]
    POSITION_ID_FIELD_NUMBER: _ClassVar[int]
    RETCODE_FIELD_NUMBER: _ClassVar[int]
    STATUS_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    CREATED_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATED_TIME_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    REJECT_REASON_FIELD_NUMBER: _ClassVar[int]
    instance_id: str
    client_order_id: str
    order_id: int
    symbol: str
    side: Side
    type: OrderType
    volume: float
    filled_volume: float
    price: float
    stop_limit_price: float
    stop_loss: float
    take_profit: float
    deviation_points: int
    time_in_force: TimeInForce
    expiration: _timestamp_pb2.Timestamp
    filling: FillingMode
    status: OrderStatus
    average_fill_price: float
    position_id: int
    retcode: int
    status_message: str
    created_time: _timestamp_pb2.Timestamp
    updated_time: _timestamp_pb2.Timestamp
    comment: str
    reject_reason: str
    def __init__(self, instance_id: _Optional[str] = ..., client_order_id: _Optional[str] = ..., order_id: _Optional[int] = ..., symbol: _Optional[str] = ..., side: _Optional[_Union[Side, str]] = ..., type: _Optional[_Union[OrderType, str]] = ..., volume: _Optional[float] = ..., filled_volume: _Optional[float] = ..., price: _Optional[float] = ..., stop_limit_price: _Optional[float] = ..., stop_loss: _Optional[float] = ..., take_profit: _Optional[float] = ..., deviation_points: _Optional[int] = ..., time_in_force: _Optional[_Union[TimeInForce, str]] = ..., expiration: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., filling: _Optional[_Union[FillingMode, str]] = ..., status: _Optional[_Union[OrderStatus, str]] = ..., average_fill_price: _Optional[float] = ..., position_id: _Optional[int] = ..., retcode: _Optional[int] = ..., status_message: _Optional[str] = ..., created_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., comment: _Optional[str] = ..., reject_reason: _Optional[str] = ...) -> None: ...

class Fill(_message.Message):
    __slots__ = ("instance_id", "deal_id", "order_id", "position_id", "client_order_id", "symbol", "side", "entry", "volume", "price", "slippage_points", "profit", "commission", "swap", "time", "reason")
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    DEAL_ID_FIELD_NUMBER: _ClassVar[int]
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    POSITION_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    SIDE_FIELD_NUMBER: _ClassVar[int]
    ENTRY_FIELD_NUMBER: _ClassVar[int]
    VOLUME_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    SLIPPAGE_POINTS_FIELD_NUMBER: _ClassVar[int]
    PROFIT_FIELD_NUMBER: _ClassVar[int]
    COMMISSION_FIELD_NUMBER: _ClassVar[int]
    SWAP_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    instance_id: str
    deal_id: int
    order_id: int
    position_id: int
    client_order_id: str
    symbol: str
    side: Side
    entry: FillEntry
    volume: float
    price: float
    slippage_points: float
    profit: float
    commission: float
    swap: float
    time: _timestamp_pb2.Timestamp
    reason: FillReason
    def __init__(self, instance_id: _Optional[str] = ..., deal_id: _Optional[int] = ..., order_id: _Optional[int] = ..., position_id: _Optional[int] = ..., client_order_id: _Optional[str] = ..., symbol: _Optional[str] = ..., side: _Optional[_Union[Side, str]] = ..., entry: _Optional[_Union[FillEntry, str]] = ..., volume: _Optional[float] = ..., price: _Optional[float] = ..., slippage_points: _Optional[float] = ..., profit: _Optional[float] = ..., commission: _Optional[float] = ..., swap: _Optional[float] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., reason: _Optional[_Union[FillReason, str]] = ...) -> None: ...

class Position(_message.Message):
    __slots__ = ("instance_id", "position_id", "symbol", "side", "volume", "price_open", "price_current", "stop_loss", "take_profit", "profit", "swap", "open_time", "comment")
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    POSITION_ID_FIELD_NUMBER: _ClassVar[int]
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    SIDE_FIELD_NUMBER: _ClassVar[int]
    VOLUME_FIELD_NUMBER: _ClassVar[int]
    PRICE_OPEN_FIELD_NUMBER: _ClassVar[int]
    PRICE_CURRENT_FIELD_NUMBER: _ClassVar[int]
    STOP_LOSS_FIELD_NUMBER: _ClassVar[int]
    TAKE_PROFIT_FIELD_NUMBER: _ClassVar[int]
    PROFIT_FIELD_NUMBER: _ClassVar[int]
    SWAP_FIELD_NUMBER: _ClassVar[int]
    OPEN_TIME_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    instance_id: str
    position_id: int
    symbol: str
    side: Side
    volume: float
    price_open: float
    price_current: float
    stop_loss: float
    take_profit: float
    profit: float
    swap: float
    open_time: _timestamp_pb2.Timestamp
    comment: str
    def __init__(self, instance_id: _Optional[str] = ..., position_id: _Optional[int] = ..., symbol: _Optional[str] = ..., side: _Optional[_Union[Side, str]] = ..., volume: _Optional[float] = ..., price_open: _Optional[float] = ..., price_current: _Optional[float] = ..., stop_loss: _Optional[float] = ..., take_profit: _Optional[float] = ..., profit: _Optional[float] = ..., swap: _Optional[float] = ..., open_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., comment: _Optional[str] = ...) -> None: ...

class Account(_message.Message):
    __slots__ = ("instance_id", "login", "currency", "balance", "equity", "margin", "free_margin", "margin_level", "leverage", "profit", "margin_mode", "server", "update_time")
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    LOGIN_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    BALANCE_FIELD_NUMBER: _ClassVar[int]
    EQUITY_FIELD_NUMBER: _ClassVar[int]
    MARGIN_FIELD_NUMBER: _ClassVar[int]
    FREE_MARGIN_FIELD_NUMBER: _ClassVar[int]
    MARGIN_LEVEL_FIELD_NUMBER: _ClassVar[int]
    LEVERAGE_FIELD_NUMBER: _ClassVar[int]
    PROFIT_FIELD_NUMBER: _ClassVar[int]
    MARGIN_MODE_FIELD_NUMBER: _ClassVar[int]
    SERVER_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    instance_id: str
    login: int
    currency: str
    balance: float
    equity: float
    margin: float
    free_margin: float
    margin_level: float
    leverage: int
    profit: float
    margin_mode: AccountMarginMode
    server: str
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, instance_id: _Optional[str] = ..., login: _Optional[int] = ..., currency: _Optional[str] = ..., balance: _Optional[float] = ..., equity: _Optional[float] = ..., margin: _Optional[float] = ..., free_margin: _Optional[float] = ..., margin_level: _Optional[float] = ..., leverage: _Optional[int] = ..., profit: _Optional[float] = ..., margin_mode: _Optional[_Union[AccountMarginMode, str]] = ..., server: _Optional[str] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ExecutionEvent(_message.Message):
    __slots__ = ("instance_id", "sequence", "time", "order_update", "fill", "refusals")
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    ORDER_UPDATE_FIELD_NUMBER: _ClassVar[int]
    FILL_FIELD_NUMBER: _ClassVar[int]
    REFUSALS_FIELD_NUMBER: _ClassVar[int]
    instance_id: str
    sequence: int
    time: _timestamp_pb2.Timestamp
    order_update: Order
    fill: Fill
    refusals: int
    def __init__(self, instance_id: _Optional[str] = ..., sequence: _Optional[int] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., order_update: _Optional[_Union[Order, _Mapping]] = ..., fill: _Optional[_Union[Fill, _Mapping]] = ..., refusals: _Optional[int] = ...) -> None: ...

class RiskLimits(_message.Message):
    __slots__ = ("max_order_volume", "min_order_volume", "max_order_notional", "max_symbol_exposure", "max_open_positions", "max_pending_orders", "max_trades_per_day", "max_daily_loss", "max_loss_per_trade", "max_drawdown_percent", "max_deviation_points", "price_collar_percent", "stale_tick_ms", "orders_per_second", "max_in_flight_orders", "duplicate_window_ms", "allowed_symbols", "session_start", "session_end")
    MAX_ORDER_VOLUME_FIELD_NUMBER: _ClassVar[int]
    MIN_ORDER_VOLUME_FIELD_NUMBER: _ClassVar[int]
    MAX_ORDER_NOTIONAL_FIELD_NUMBER: _ClassVar[int]
    MAX_SYMBOL_EXPOSURE_FIELD_NUMBER: _ClassVar[int]
    MAX_OPEN_POSITIONS_FIELD_NUMBER: _ClassVar[int]
    MAX_PENDING_ORDERS_FIELD_NUMBER: _ClassVar[int]
    MAX_TRADES_PER_DAY_FIELD_NUMBER: _ClassVar[int]
    MAX_DAILY_LOSS_FIELD_NUMBER: _ClassVar[int]
    MAX_LOSS_PER_TRADE_FIELD_NUMBER: _ClassVar[int]
    MAX_DRAWDOWN_PERCENT_FIELD_NUMBER: _ClassVar[int]
    MAX_DEVIATION_POINTS_FIELD_NUMBER: _ClassVar[int]
    PRICE_COLLAR_PERCENT_FIELD_NUMBER: _ClassVar[int]
    STALE_TICK_MS_FIELD_NUMBER: _ClassVar[int]
    ORDERS_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    MAX_IN_FLIGHT_ORDERS_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_WINDOW_MS_FIELD_NUMBER: _ClassVar[int]
    ALLOWED_SYMBOLS_FIELD_NUMBER: _ClassVar[int]
    SESSION_START_FIELD_NUMBER: _ClassVar[int]
    SESSION_END_FIELD_NUMBER: _ClassVar[int]
    max_order_volume: float
    min_order_volume: float
    max_order_notional: float
    max_symbol_exposure: float
    max_open_positions: int
    max_pending_orders: int
    max_trades_per_day: int
    max_daily_loss: float
    max_loss_per_trade: float
    max_drawdown_percent: float
    max_deviation_points: int
    price_collar_percent: float
    stale_tick_ms: int
    orders_per_second: float
    max_in_flight_orders: int
    duplicate_window_ms: int
    allowed_symbols: _containers.RepeatedScalarFieldContainer[str]
    session_start: str
    session_end: str
    def __init__(self, max_order_volume: _Optional[float] = ..., min_order_volume: _Optional[float] = ..., max_order_notional: _Optional[float] = ..., max_symbol_exposure: _Optional[float] = ..., max_open_positions: _Optional[int] = ..., max_pending_orders: _Optional[int] = ..., max_trades_per_day: _Optional[int] = ..., max_daily_loss: _Optional[float] = ..., max_loss_per_trade: _Optional[float] = ..., max_drawdown_percent: _Optional[float] = ..., max_deviation_points: _Optional[int] = ..., price_collar_percent: _Optional[float] = ..., stale_tick_ms: _Optional[int] = ..., orders_per_second: _Optional[float] = ..., max_in_flight_orders: _Optional[int] = ..., duplicate_window_ms: _Optional[int] = ..., allowed_symbols: _Optional[_Iterable[str]] = ..., session_start: _Optional[str] = ..., session_end: _Optional[str] = ...) -> None: ...

class InstanceConfig(_message.Message):
    __slots__ = ("symbols", "margin_mode", "initial_balance", "leverage", "currency", "seed", "tick_rate", "risk", "trading_state", "login", "server", "tick_batch_ms")
    SYMBOLS_FIELD_NUMBER: _ClassVar[int]
    MARGIN_MODE_FIELD_NUMBER: _ClassVar[int]
    INITIAL_BALANCE_FIELD_NUMBER: _ClassVar[int]
    LEVERAGE_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    TICK_RATE_FIELD_NUMBER: _ClassVar[int]
    RISK_FIELD_NUMBER: _ClassVar[int]
    TRADING_STATE_FIELD_NUMBER: _ClassVar[int]
    LOGIN_FIELD_NUMBER: _ClassVar[int]
    SERVER_FIELD_NUMBER: _ClassVar[int]
    TICK_BATCH_MS_FIELD_NUMBER: _ClassVar[int]
    symbols: _containers.RepeatedScalarFieldContainer[str]
    margin_mode: AccountMarginMode
    initial_balance: float
    leverage: int
    currency: str
    seed: int
    tick_rate: float
    risk: RiskLimits
    trading_state: TradingState
    login: int
    server: str
    tick_batch_ms: float
    def __init__(self, symbols: _Optional[_Iterable[str]] = ..., margin_mode: _Optional[_Union[AccountMarginMode, str]] = ..., initial_balance: _Optional[float] = ..., leverage: _Optional[int] = ..., currency: _Optional[str] = ..., seed: _Optional[int] = ..., tick_rate: _Optional[float] = ..., risk: _Optional[_Union[RiskLimits, _Mapping]] = ..., trading_state: _Optional[_Union[TradingState, str]] = ..., login: _Optional[int] = ..., server: _Optional[str] = ..., tick_batch_ms: _Optional[float] = ...) -> None: ...

class Instance(_message.Message):
    __slots__ = ("instance_id", "owner", "backend", "state", "state_reason", "config", "worker_pid", "restarts", "created_time", "started_time", "symbols", "trading_state", "config_version", "kill_switch")
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    STATE_REASON_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    WORKER_PID_FIELD_NUMBER: _ClassVar[int]
    RESTARTS_FIELD_NUMBER: _ClassVar[int]
    CREATED_TIME_FIELD_NUMBER: _ClassVar[int]
    STARTED_TIME_FIELD_NUMBER: _ClassVar[int]
    SYMBOLS_FIELD_NUMBER: _ClassVar[int]
    TRADING_STATE_FIELD_NUMBER: _ClassVar[int]
    CONFIG_VERSION_FIELD_NUMBER: _ClassVar[int]
    KILL_SWITCH_FIELD_NUMBER: _ClassVar[int]
    instance_id: str
    owner: str
    backend: Backend
    state: InstanceState
    state_reason: str
    config: InstanceConfig
    worker_pid: int
    restarts: int
    created_time: _timestamp_pb2.Timestamp
    started_time: _timestamp_pb2.Timestamp
    symbols: _containers.RepeatedCompositeFieldContainer[SymbolSpec]
    trading_state: TradingState
    config_version: int
    kill_switch: bool
    def __init__(self, instance_id: _Optional[str] = ..., owner: _Optional[str] = ..., backend: _Optional[_Union[Backend, str]] = ..., state: _Optional[_Union[InstanceState, str]] = ..., state_reason: _Optional[str] = ..., config: _Optional[_Union[InstanceConfig, _Mapping]] = ..., worker_pid: _Optional[int] = ..., restarts: _Optional[int] = ..., created_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., started_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., symbols: _Optional[_Iterable[_Union[SymbolSpec, _Mapping]]] = ..., trading_state: _Optional[_Union[TradingState, str]] = ..., config_version: _Optional[int] = ..., kill_switch: _Optional[bool] = ...) -> None: ...

class InstanceEvent(_message.Message):
    __slots__ = ("instance_id", "state", "previous_state", "reason", "time")
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_STATE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    instance_id: str
    state: InstanceState
    previous_state: InstanceState
    reason: str
    time: _timestamp_pb2.Timestamp
    def __init__(self, instance_id: _Optional[str] = ..., state: _Optional[_Union[InstanceState, str]] = ..., previous_state: _Optional[_Union[InstanceState, str]] = ..., reason: _Optional[str] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
