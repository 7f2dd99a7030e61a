from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ProtocolVersion(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PROTOCOL_VERSION_UNSPECIFIED: _ClassVar[ProtocolVersion]
    PROTOCOL_VERSION_CURRENT: _ClassVar[ProtocolVersion]
PROTOCOL_VERSION_UNSPECIFIED: ProtocolVersion
PROTOCOL_VERSION_CURRENT: ProtocolVersion

class WorkerFrame(_message.Message):
    __slots__ = ("hello", "heartbeat", "ticks", "order_result", "deal", "account", "positions", "event", "order_update", "orders", "reconcile_result")
    HELLO_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    TICKS_FIELD_NUMBER: _ClassVar[int]
    ORDER_RESULT_FIELD_NUMBER: _ClassVar[int]
    DEAL_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    POSITIONS_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    ORDER_UPDATE_FIELD_NUMBER: _ClassVar[int]
    ORDERS_FIELD_NUMBER: _ClassVar[int]
    RECONCILE_RESULT_FIELD_NUMBER: _ClassVar[int]
    hello: Hello
    heartbeat: Heartbeat
    ticks: TickBatch
    order_result: OrderResult
    deal: DealReport
    account: AccountSnapshot
    positions: PositionSnapshot
    event: WorkerEvent
    order_update: OrderUpdate
    orders: OrderSnapshot
    reconcile_result: ReconcileResult
    def __init__(self, hello: _Optional[_Union[Hello, _Mapping]] = ..., heartbeat: _Optional[_Union[Heartbeat, _Mapping]] = ..., ticks: _Optional[_Union[TickBatch, _Mapping]] = ..., order_result: _Optional[_Union[OrderResult, _Mapping]] = ..., deal: _Optional[_Union[DealReport, _Mapping]] = ..., account: _Optional[_Union[AccountSnapshot, _Mapping]] = ..., positions: _Optional[_Union[PositionSnapshot, _Mapping]] = ..., event: _Optional[_Union[WorkerEvent, _Mapping]] = ..., order_update: _Optional[_Union[OrderUpdate, _Mapping]] = ..., orders: _Optional[_Union[OrderSnapshot, _Mapping]] = ..., reconcile_result: _Optional[_Union[ReconcileResult, _Mapping]] = ...) -> None: ...

class EngineFrame(_message.Message):
    __slots__ = ("welcome", "order", "shutdown", "fault", "snapshot_request", "reconcile")
    WELCOME_FIELD_NUMBER: _ClassVar[int]
    ORDER_FIELD_NUMBER: _ClassVar[int]
    SHUTDOWN_FIELD_NUMBER: _ClassVar[int]
    FAULT_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_REQUEST_FIELD_NUMBER: _ClassVar[int]
    RECONCILE_FIELD_NUMBER: _ClassVar[int]
    welcome: Welcome
    order: OrderRequest
    shutdown: Shutdown
    fault: FaultInjection
    snapshot_request: SnapshotRequest
    reconcile: ReconcileRequest
    def __init__(self, welcome: _Optional[_Union[Welcome, _Mapping]] = ..., order: _Optional[_Union[OrderRequest, _Mapping]] = ..., shutdown: _Optional[_Union[Shutdown, _Mapping]] = ..., fault: _Optional[_Union[FaultInjection, _Mapping]] = ..., snapshot_request: _Optional[_Union[SnapshotRequest, _Mapping]] = ..., reconcile: _Optional[_Union[ReconcileRequest, _Mapping]] = ...) -> None: ...

class Hello(_message.Message):
    __slots__ = ("protocol_version", "backend", "instance_id", "capabilities", "pid", "symbols", "account")
    PROTOCOL_VERSION_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    CAPABILITIES_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    SYMBOLS_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    protocol_version: int
    backend: str
    instance_id: str
    capabilities: _containers.RepeatedScalarFieldContainer[str]
    pid: int
    symbols: _containers.RepeatedCompositeFieldContainer[SymbolInfo]
    account: AccountSnapshot
    def __init__(self, protocol_version: _Optional[int] = ..., backend: _Optional[str] = ..., instance_id: _Optional[str] = ..., capabilities: _Optional[_Iterable[str]] = ..., pid: _Optional[int] = ..., symbols: _Optional[_Iterable[_Union[SymbolInfo, _Mapping]]] = ..., account: _Optional[_Union[AccountSnapshot, _Mapping]] = ...) -> None: ...

class SymbolInfo(_message.Message):
    __slots__ = ("name", "digits", "point", "contract_size", "volume_min", "volume_max", "volume_step", "stops_level", "freeze_level", "filling_mode", "trade_mode", "currency_base", "currency_profit", "currency_margin", "tick_value", "tick_size")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DIGITS_FIELD_NUMBER: _ClassVar[int]
    POINT_FIELD_NUMBER: _ClassVar[int]
    CONTRACT_SIZE_FIELD_NUMBER: _ClassVar[int]
    VOLUME_MIN_FIELD_NUMBER: _ClassVar[int]
    VOLUME_MAX_FIELD_NUMBER: _ClassVar[int]
    VOLUME_STEP_FIELD_NUMBER: _ClassVar[int]
    STOPS_LEVEL_FIELD_NUMBER: _ClassVar[int]
    FREEZE_LEVEL_FIELD_NUMBER: _ClassVar[int]
    FILLING_MODE_FIELD_NUMBER: _ClassVar[int]
    TRADE_MODE_FIELD_NUMBER: _ClassVar[int]
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
    filling_mode: int
    trade_mode: int
    currency_base: str
    currency_profit: str
    currency_margin: str
    tick_value: float
    tick_size: float
    def __init__(self, name: _Optional[str] = ..., digits: _Optional[int] = ..., point: _Optional[float] = ..., contract_size: _Optional[float] = ..., volume_min: _Optional[float] = ..., volume_max: _Optional[float] = ..., volume_step: _Optional[float] = ..., stops_level: _Optional[int] = ..., freeze_level: _Optional[int] = ..., filling_mode: _Optional[int] = ..., trade_mode: _Optional[int] = ..., currency_base: _Optional[str] = ..., currency_profit: _Optional[str] = ..., currency_margin: _Optional[str] = ..., tick_value: _Optional[float] = ..., tick_size: _Optional[float] = ...) -> None: ...

class Welcome(_message.Message):
    __slots__ = ("protocol_version", "heartbeat_interval_ms")
    PROTOCOL_VERSION_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_INTERVAL_MS_FIELD_NUMBER: _ClassVar[int]
    protocol_version: int
    heartbeat_interval_ms: int
    def __init__(self, protocol_version: _Optional[int] = ..., heartbeat_interval_ms: _Optional[int] = ...) -> None: ...

class Heartbeat(_message.Message):
    __slots__ = ("sequence", "time_msc")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    TIME_MSC_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    time_msc: int
    def __init__(self, sequence: _Optional[int] = ..., time_msc: _Optional[int] = ...) -> None: ...

class Tick(_message.Message):
    __slots__ = ("symbol", "bid", "ask", "last", "volume", "time_msc")
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    BID_FIELD_NUMBER: _ClassVar[int]
    ASK_FIELD_NUMBER: _ClassVar[int]
    LAST_FIELD_NUMBER: _ClassVar[int]
    VOLUME_FIELD_NUMBER: _ClassVar[int]
    TIME_MSC_FIELD_NUMBER: _ClassVar[int]
    symbol: str
    bid: float
    ask: float
    last: float
    volume: float
    time_msc: int
    def __init__(self, symbol: _Optional[str] = ..., bid: _Optional[float] = ..., ask: _Optional[float] = ..., last: _Optional[float] = ..., volume: _Optional[float] = ..., time_msc: _Optional[int] = ...) -> None: ...

class TickBatch(_message.Message):
    __slots__ = ("ticks",)
    TICKS_FIELD_NUMBER: _ClassVar[int]
    ticks: _containers.RepeatedCompositeFieldContainer[Tick]
    def __init__(self, ticks: _Optional[_Iterable[_Union[Tick, _Mapping]]] = ...) -> None: ...

class OrderRequest(_message.Message):
    __slots__ = ("request_id", "client_order_id", "action", "symbol", "volume", "type", "price", "stoplimit", "sl", "tp", "deviation", "type_filling", "type_time", "expiration", "position", "position_by", "order", "magic", "comment", "check_only")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    VOLUME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    STOPLIMIT_FIELD_NUMBER: _ClassVar[int]
    SL_FIELD_NUMBER: _ClassVar[int]
    TP_FIELD_NUMBER: _ClassVar[int]
    DEVIATION_FIELD_NUMBER: _ClassVar[int]
    TYPE_FILLING_FIELD_NUMBER: _ClassVar[int]
    TYPE_TIME_FIELD_NUMBER: _ClassVar[int]
    EXPIRATION_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    POSITION_BY_FIELD_NUMBER: _ClassVar[int]
    ORDER_FIELD_NUMBER: _ClassVar[int]
    MAGIC_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    CHECK_ONLY_FIELD_NUMBER: _ClassVar[int]
    request_id: int
    client_order_id: str
    action: int
    symbol: str
    volume: float
    type: int
    price: float
    stoplimit: float
    sl: float
    tp: float
    deviation: int
    type_filling: int
    type_time: int
    expiration: int
    position: int
    position_by: int
    order: int
    magic: int
    comment: str
    check_only: bool
    def __init__(self, request_id: _Optional[int] = ..., client_order_id: _Optional[str] = ..., action: _Optional[int] = ..., symbol: _Optional[str] = ..., volume: _Optional[float] = ..., type: _Optional[int] = ..., price: _Optional[float] = ..., stoplimit: _Optional[float] = ..., sl: _Optional[float] = ..., tp: _Optional[float] = ..., deviation: _Optional[int] = ..., type_filling: _Optional[int] = ..., type_time: _Optional[int] = ..., expiration: _Optional[int] = ..., position: _Optional[int] = ..., position_by: _Optional[int] = ..., order: _Optional[int] = ..., magic: _Optional[int] = ..., comment: _Optional[str] = ..., check_only: _Optional[bool] = ...) -> None: ...

class OrderResult(_message.Message):
    __slots__ = ("request_id", "retcode", "deal", "order", "volume", "price", "bid", "ask", "comment", "time_msc", "position", "balance", "equity", "margin", "margin_free", "margin_level")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    RETCODE_FIELD_NUMBER: _ClassVar[int]
    DEAL_FIELD_NUMBER: _ClassVar[int]
    ORDER_FIELD_NUMBER: _ClassVar[int]
    VOLUME_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    BID_FIELD_NUMBER: _ClassVar[int]
    ASK_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    TIME_MSC_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    BALANCE_FIELD_NUMBER: _ClassVar[int]
    EQUITY_FIELD_NUMBER: _ClassVar[int]
    MARGIN_FIELD_NUMBER: _ClassVar[int]
    MARGIN_FREE_FIELD_NUMBER: _ClassVar[int]
    MARGIN_LEVEL_FIELD_NUMBER: _ClassVar[int]
    request_id: int
    retcode: int
    deal: int
    order: int
    volume: float
    price: float
    bid: float
    ask: float
    comment: str
    time_msc: int
    position: int
    balance: float
    equity: float
    margin: float
    margin_free: float
    margin_level: float
    def __init__(self, request_id: _Optional[int] = ..., retcode: _Optional[int] = ..., deal: _Optional[int] = ..., order: _Optional[int] = ..., volume: _Optional[float] = ..., price: _Optional[float] = ..., bid: _Optional[float] = ..., ask: _Optional[float] = ..., comment: _Optional[str] = ..., time_msc: _Optional[int] = ..., position: _Optional[int] = ..., balance: _Optional[float] = ..., equity: _Optional[float] = ..., margin: _Optional[float] = ..., margin_free: _Optional[float] = ..., margin_level: _Optional[float] = ...) -> None: ...

class DealReport(_message.Message):
    __slots__ = ("ticket", "order", "position_id", "symbol", "type", "entry", "volume", "price", "profit", "commission", "swap", "magic", "comment", "time_msc", "request_id", "reason")
    TICKET_FIELD_NUMBER: _ClassVar[int]
    ORDER_FIELD_NUMBER: _ClassVar[int]
    POSITION_ID_FIELD_NUMBER: _ClassVar[int]
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    ENTRY_FIELD_NUMBER: _ClassVar[int]
    VOLUME_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    PROFIT_FIELD_NUMBER: _ClassVar[int]
    COMMISSION_FIELD_NUMBER: _ClassVar[int]
    SWAP_FIELD_NUMBER: _ClassVar[int]
    MAGIC_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    TIME_MSC_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    ticket: int
    order: int
    position_id: int
    symbol: str
    type: int
    entry: int
    volume: float
    price: float
    profit: float
    commission: float
    swap: float
    magic: int
    comment: str
    time_msc: int
    request_id: int
    reason: int
    def __init__(self, ticket: _Optional[int] = ..., order: _Optional[int] = ..., position_id: _Optional[int] = ..., symbol: _Optional[str] = ..., type: _Optional[int] = ..., entry: _Optional[int] = ..., volume: _Optional[float] = ..., price: _Optional[float] = ..., profit: _Optional[float] = ..., commission: _Optional[float] = ..., swap: _Optional[float] = ..., magic: _Optional[int] = ..., comment: _Optional[str] = ..., time_msc: _Optional[int] = ..., request_id: _Optional[int] = ..., reason: _Optional[int] = ...) -> None: ...

class AccountSnapshot(_message.Message):
    __slots__ = ("login", "currency", "balance", "equity", "margin", "margin_free", "margin_level", "leverage", "profit", "margin_mode", "server", "time_msc")
    LOGIN_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    BALANCE_FIELD_NUMBER: _ClassVar[int]
    EQUITY_FIELD_NUMBER: _ClassVar[int]
    MARGIN_FIELD_NUMBER: _ClassVar[int]
    MARGIN_FREE_FIELD_NUMBER: _ClassVar[int]
    MARGIN_LEVEL_FIELD_NUMBER: _ClassVar[int]
    LEVERAGE_FIELD_NUMBER: _ClassVar[int]
    PROFIT_FIELD_NUMBER: _ClassVar[int]
    MARGIN_MODE_FIELD_NUMBER: _ClassVar[int]
    SERVER_FIELD_NUMBER: _ClassVar[int]
    TIME_MSC_FIELD_NUMBER: _ClassVar[int]
    login: int
    currency: str
    balance: float
    equity: float
    margin: float
    margin_free: float
    margin_level: float
    leverage: int
    profit: float
    margin_mode: int
    server: str
    time_msc: int
    def __init__(self, login: _Optional[int] = ..., currency: _Optional[str] = ..., balance: _Optional[float] = ..., equity: _Optional[float] = ..., margin: _Optional[float] = ..., margin_free: _Optional[float] = ..., margin_level: _Optional[float] = ..., leverage: _Optional[int] = ..., profit: _Optional[float] = ..., margin_mode: _Optional[int] = ..., server: _Optional[str] = ..., time_msc: _Optional[int] = ...) -> None: ...

class Position(_message.Message):
    __slots__ = ("ticket", "symbol", "type", "volume", "price_open", "price_current", "sl", "tp", "profit", "swap", "time_msc", "magic", "comment")
    TICKET_FIELD_NUMBER: _ClassVar[int]
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    VOLUME_FIELD_NUMBER: _ClassVar[int]
    PRICE_OPEN_FIELD_NUMBER: _ClassVar[int]
    PRICE_CURRENT_FIELD_NUMBER: _ClassVar[int]
    SL_FIELD_NUMBER: _ClassVar[int]
    TP_FIELD_NUMBER: _ClassVar[int]
    PROFIT_FIELD_NUMBER: _ClassVar[int]
    SWAP_FIELD_NUMBER: _ClassVar[int]
    TIME_MSC_FIELD_NUMBER: _ClassVar[int]
    MAGIC_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    ticket: int
    symbol: str
    type: int
    volume: float
    price_open: float
    price_current: float
    sl: float
    tp: float
    profit: float
    swap: float
    time_msc: int
    magic: int
    comment: str
    def __init__(self, ticket: _Optional[int] = ..., symbol: _Optional[str] = ..., type: _Optional[int] = ..., volume: _Optional[float] = ..., price_open: _Optional[float] = ..., price_current: _Optional[float] = ..., sl: _Optional[float] = ..., tp: _Optional[float] = ..., profit: _Optional[float] = ..., swap: _Optional[float] = ..., time_msc: _Optional[int] = ..., magic: _Optional[int] = ..., comment: _Optional[str] = ...) -> None: ...

class PositionSnapshot(_message.Message):
    __slots__ = ("positions",)
    POSITIONS_FIELD_NUMBER: _ClassVar[int]
    positions: _containers.RepeatedCompositeFieldContainer[Position]
    def __init__(self, positions: _Optional[_Iterable[_Union[Position, _Mapping]]] = ...) -> None: ...

class OrderInfo(_message.Message):
    __slots__ = ("ticket", "symbol", "type", "state", "volume_initial", "volume_current", "price_open", "price_stoplimit", "sl", "tp", "price_current", "type_time", "time_expiration", "type_filling", "magic", "comment", "time_setup_msc", "time_done_msc", "position_id")
    TICKET_FIELD_NUMBER: _ClassVar[int]
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    VOLUME_INITIAL_FIELD_NUMBER: _ClassVar[int]
    VOLUME_CURRENT_FIELD_NUMBER: _ClassVar[int]
    PRICE_OPEN_FIELD_NUMBER: _ClassVar[int]
    PRICE_STOPLIMIT_FIELD_NUMBER: _ClassVar[int]
    SL_FIELD_NUMBER: _ClassVar[int]
    TP_FIELD_NUMBER: _ClassVar[int]
    PRICE_CURRENT_FIELD_NUMBER: _ClassVar[int]
    TYPE_TIME_FIELD_NUMBER: _ClassVar[int]
    TIME_EXPIRATION_FIELD_NUMBER: _ClassVar[int]
    TYPE_FILLING_FIELD_NUMBER: _ClassVar[int]
    MAGIC_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    TIME_SETUP_MSC_FIELD_NUMBER: _ClassVar[int]
    TIME_DONE_MSC_FIELD_NUMBER: _ClassVar[int]
    POSITION_ID_FIELD_NUMBER: _ClassVar[int]
    ticket: int
    symbol: str
    type: int
    state: int
    volume_initial: float
    volume_current: float
    price_open: float
    price_stoplimit: float
    sl: float
    tp: float
    price_current: float
    type_time: int
    time_expiration: int
    type_filling: int
    magic: int
    comment: str
    time_setup_msc: int
    time_done_msc: int
    position_id: int
    def __init__(self, ticket: _Optional[int] = ..., symbol: _Optional[str] = ..., type: _Optional[int] = ..., state: _Optional[int] = ..., volume_initial: _Optional[float] = ..., volume_current: _Optional[float] = ..., price_open: _Optional[float] = ..., price_stoplimit: _Optional[float] = ..., sl: _Optional[float] = ..., tp: _Optional[float] = ..., price_current: _Optional[float] = ..., type_time: _Optional[int] = ..., time_expiration: _Optional[int] = ..., type_filling: _Optional[int] = ..., magic: _Optional[int] = ..., comment: _Optional[str] = ..., time_setup_msc: _Optional[int] = ..., time_done_msc: _Optional[int] = ..., position_id: _Optional[int] = ...) -> None: ...

class OrderUpdate(_message.Message):
    __slots__ = ("order", "request_id")
    ORDER_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    order: OrderInfo
    request_id: int
    def __init__(self, order: _Optional[_Union[OrderInfo, _Mapping]] = ..., request_id: _Optional[int] = ...) -> None: ...

class OrderSnapshot(_message.Message):
    __slots__ = ("orders",)
    ORDERS_FIELD_NUMBER: _ClassVar[int]
    orders: _containers.RepeatedCompositeFieldContainer[OrderInfo]
    def __init__(self, orders: _Optional[_Iterable[_Union[OrderInfo, _Mapping]]] = ...) -> None: ...

class ReconcileRequest(_message.Message):
    __slots__ = ("request_id", "comments", "from_time_msc")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    COMMENTS_FIELD_NUMBER: _ClassVar[int]
    FROM_TIME_MSC_FIELD_NUMBER: _ClassVar[int]
    request_id: int
    comments: _containers.RepeatedScalarFieldContainer[str]
    from_time_msc: int
    def __init__(self, request_id: _Optional[int] = ..., comments: _Optional[_Iterable[str]] = ..., from_time_msc: _Optional[int] = ...) -> None: ...

class ReconcileResult(_message.Message):
    __slots__ = ("request_id", "orders", "deals")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    ORDERS_FIELD_NUMBER: _ClassVar[int]
    DEALS_FIELD_NUMBER: _ClassVar[int]
    request_id: int
    orders: _containers.RepeatedCompositeFieldContainer[OrderInfo]
    deals: _containers.RepeatedCompositeFieldContainer[DealReport]
    def __init__(self, request_id: _Optional[int] = ..., orders: _Optional[_Iterable[_Union[OrderInfo, _Mapping]]] = ..., deals: _Optional[_Iterable[_Union[DealReport, _Mapping]]] = ...) -> None: ...

class WorkerEvent(_message.Message):
    __slots__ = ("kind", "message")
    KIND_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    kind: str
    message: str
    def __init__(self, kind: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class Shutdown(_message.Message):
    __slots__ = ("reason",)
    REASON_FIELD_NUMBER: _ClassVar[int]
    reason: str
    def __init__(self, reason: _Optional[str] = ...) -> None: ...

class FaultInjection(_message.Message):
    __slots__ = ("delay_ms", "reject_next", "disconnect", "freeze_ms", "crash")
    DELAY_MS_FIELD_NUMBER: _ClassVar[int]
    REJECT_NEXT_FIELD_NUMBER: _ClassVar[int]
    DISCONNECT_FIELD_NUMBER: _ClassVar[int]
    FREEZE_MS_FIELD_NUMBER: _ClassVar[int]
    CRASH_FIELD_NUMBER: _ClassVar[int]
    delay_ms: int
    reject_next: int
    disconnect: bool
    freeze_ms: int
    crash: bool
    def __init__(self, delay_ms: _Optional[int] = ..., reject_next: _Optional[int] = ..., disconnect: _Optional[bool] = ..., freeze_ms: _Optional[int] = ..., crash: _Optional[bool] = ...) -> None: ...

class SnapshotRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
