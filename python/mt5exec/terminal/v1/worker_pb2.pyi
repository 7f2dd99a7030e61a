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
    __slots__ = ("hello", "heartbeat", "ticks", "order_result", "deal", "account", "positions", "event", "order_update", "orders", "reconcile_result", "market_answer", "book")
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
    MARKET_ANSWER_FIELD_NUMBER: _ClassVar[int]
    BOOK_FIELD_NUMBER: _ClassVar[int]
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
    market_answer: MarketAnswer
    book: BookUpdate
    def __init__(self, hello: _Optional[_Union[Hello, _Mapping]] = ..., heartbeat: _Optional[_Union[Heartbeat, _Mapping]] = ..., ticks: _Optional[_Union[TickBatch, _Mapping]] = ..., order_result: _Optional[_Union[OrderResult, _Mapping]] = ..., deal: _Optional[_Union[DealReport, _Mapping]] = ..., account: _Optional[_Union[AccountSnapshot, _Mapping]] = ..., positions: _Optional[_Union[PositionSnapshot, _Mapping]] = ..., event: _Optional[_Union[WorkerEvent, _Mapping]] = ..., order_update: _Optional[_Union[OrderUpdate, _Mapping]] = ..., orders: _Optional[_Union[OrderSnapshot, _Mapping]] = ..., reconcile_result: _Optional[_Union[ReconcileResult, _Mapping]] = ..., market_answer: _Optional[_Union[MarketAnswer, _Mapping]] = ..., book: _Optional[_Union[BookUpdate, _Mapping]] = ...) -> None: ...

class EngineFrame(_message.Message):
    __slots__ = ("welcome", "order", "shutdown", "fault", "snapshot_request", "reconcile", "market_request")
    WELCOME_FIELD_NUMBER: _ClassVar[int]
    ORDER_FIELD_NUMBER: _ClassVar[int]
    SHUTDOWN_FIELD_NUMBER: _ClassVar[int]
    FAULT_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_REQUEST_FIELD_NUMBER: _ClassVar[int]
    RECONCILE_FIELD_NUMBER: _ClassVar[int]
    MARKET_REQUEST_FIELD_NUMBER: _ClassVar[int]
    welcome: Welcome
    order: OrderRequest
    shutdown: Shutdown
    fault: FaultInjection
    snapshot_request: SnapshotRequest
    reconcile: ReconcileRequest
    market_request: MarketRequest
    def __init__(self, welcome: _Optional[_Union[Welcome, _Mapping]] = ..., order: _Optional[_Union[OrderRequest, _Mapping]] = ..., shutdown: _Optional[_Union[Shutdown, _Mapping]] = ..., fault: _Optional[_Union[FaultInjection, _Mapping]] = ..., snapshot_request: _Optional[_Union[SnapshotRequest, _Mapping]] = ..., reconcile: _Optional[_Union[ReconcileRequest, _Mapping]] = ..., market_request: _Optional[_Union[MarketRequest, _Mapping]] = ...) -> None: ...

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
    __slots__ = ("name", "digits", "point", "contract_size", "volume_min", "volume_max", "volume_step", "stops_level", "freeze_level", "filling_mode", "trade_mode", "currency_base", "currency_profit", "currency_margin", "tick_value", "tick_size", "description", "path", "trade_execution_mode", "trade_calc_mode", "swap_mode", "swap_long", "swap_short", "swap_rollover3days", "margin_initial", "margin_maintenance", "margin_hedged", "spread", "spread_float", "bid", "ask", "time_msc", "trade_sessions", "order_mode", "expiration_mode", "select")
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
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    TRADE_EXECUTION_MODE_FIELD_NUMBER: _ClassVar[int]
    TRADE_CALC_MODE_FIELD_NUMBER: _ClassVar[int]
    SWAP_MODE_FIELD_NUMBER: _ClassVar[int]
    SWAP_LONG_FIELD_NUMBER: _ClassVar[int]
    SWAP_SHORT_FIELD_NUMBER: _ClassVar[int]
    SWAP_ROLLOVER3DAYS_FIELD_NUMBER: _ClassVar[int]
    MARGIN_INITIAL_FIELD_NUMBER: _ClassVar[int]
    MARGIN_MAINTENANCE_FIELD_NUMBER: _ClassVar[int]
    MARGIN_HEDGED_FIELD_NUMBER: _ClassVar[int]
    SPREAD_FIELD_NUMBER: _ClassVar[int]
    SPREAD_FLOAT_FIELD_NUMBER: _ClassVar[int]
    BID_FIELD_NUMBER: _ClassVar[int]
    ASK_FIELD_NUMBER: _ClassVar[int]
    TIME_MSC_FIELD_NUMBER: _ClassVar[int]
    TRADE_SESSIONS_FIELD_NUMBER: _ClassVar[int]
    ORDER_MODE_FIELD_NUMBER: _ClassVar[int]
    EXPIRATION_MODE_FIELD_NUMBER: _ClassVar[int]
    SELECT_FIELD_NUMBER: _ClassVar[int]
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
    description: str
    path: str
    trade_execution_mode: int
    trade_calc_mode: int
    swap_mode: int
    swap_long: float
    swap_short: float
    swap_rollover3days: int
    margin_initial: float
    margin_maintenance: float
    margin_hedged: float
    spread: int
    spread_float: bool
    bid: float
    ask: float
    time_msc: int
    trade_sessions: _containers.RepeatedCompositeFieldContainer[SymbolSession]
    order_mode: int
    expiration_mode: int
    select: bool
    def __init__(self, name: _Optional[str] = ..., digits: _Optional[int] = ..., point: _Optional[float] = ..., contract_size: _Optional[float] = ..., volume_min: _Optional[float] = ..., volume_max: _Optional[float] = ..., volume_step: _Optional[float] = ..., stops_level: _Optional[int] = ..., freeze_level: _Optional[int] = ..., filling_mode: _Optional[int] = ..., trade_mode: _Optional[int] = ..., currency_base: _Optional[str] = ..., currency_profit: _Optional[str] = ..., currency_margin: _Optional[str] = ..., tick_value: _Optional[float] = ..., tick_size: _Optional[float] = ..., description: _Optional[str] = ..., path: _Optional[str] = ..., trade_execution_mode: _Optional[int] = ..., trade_calc_mode: _Optional[int] = ..., swap_mode: _Optional[int] = ..., swap_long: _Optional[float] = ..., swap_short: _Optional[float] = ..., swap_rollover3days: _Optional[int] = ..., margin_initial: _Optional[float] = ..., margin_maintenance: _Optional[float] = ..., margin_hedged: _Optional[float] = ..., spread: _Optional[int] = ..., spread_float: _Optional[bool] = ..., bid: _Optional[float] = ..., ask: _Optional[float] = ..., time_msc: _Optional[int] = ..., trade_sessions: _Optional[_Iterable[_Union[SymbolSession, _Mapping]]] = ..., order_mode: _Optional[int] = ..., expiration_mode: _Optional[int] = ..., select: _Optional[bool] = ...) -> None: ...

class SymbolSession(_message.Message):
    __slots__ = ("start_second", "end_second")
    START_SECOND_FIELD_NUMBER: _ClassVar[int]
    END_SECOND_FIELD_NUMBER: _ClassVar[int]
    start_second: int
    end_second: int
    def __init__(self, start_second: _Optional[int] = ..., end_second: _Optional[int] = ...) -> None: ...

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
    __slots__ = ("delay_ms", "reject_next", "disconnect", "freeze_ms", "crash", "broker_outage_ms")
    DELAY_MS_FIELD_NUMBER: _ClassVar[int]
    REJECT_NEXT_FIELD_NUMBER: _ClassVar[int]
    DISCONNECT_FIELD_NUMBER: _ClassVar[int]
    FREEZE_MS_FIELD_NUMBER: _ClassVar[int]
    CRASH_FIELD_NUMBER: _ClassVar[int]
    BROKER_OUTAGE_MS_FIELD_NUMBER: _ClassVar[int]
    delay_ms: int
    reject_next: int
    disconnect: bool
    freeze_ms: int
    crash: bool
    broker_outage_ms: int
    def __init__(self, delay_ms: _Optional[int] = ..., reject_next: _Optional[int] = ..., disconnect: _Optional[bool] = ..., freeze_ms: _Optional[int] = ..., crash: _Optional[bool] = ..., broker_outage_ms: _Optional[int] = ...) -> None: ...

class SnapshotRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class MarketRequest(_message.Message):
    __slots__ = ("request_id", "symbols", "calc", "terminal", "rates", "ticks", "book")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SYMBOLS_FIELD_NUMBER: _ClassVar[int]
    CALC_FIELD_NUMBER: _ClassVar[int]
    TERMINAL_FIELD_NUMBER: _ClassVar[int]
    RATES_FIELD_NUMBER: _ClassVar[int]
    TICKS_FIELD_NUMBER: _ClassVar[int]
    BOOK_FIELD_NUMBER: _ClassVar[int]
    request_id: int
    symbols: SymbolsQuery
    calc: CalcQuery
    terminal: TerminalQuery
    rates: RatesQuery
    ticks: TicksQuery
    book: BookQuery
    def __init__(self, request_id: _Optional[int] = ..., symbols: _Optional[_Union[SymbolsQuery, _Mapping]] = ..., calc: _Optional[_Union[CalcQuery, _Mapping]] = ..., terminal: _Optional[_Union[TerminalQuery, _Mapping]] = ..., rates: _Optional[_Union[RatesQuery, _Mapping]] = ..., ticks: _Optional[_Union[TicksQuery, _Mapping]] = ..., book: _Optional[_Union[BookQuery, _Mapping]] = ...) -> None: ...

class BookQuery(_message.Message):
    __slots__ = ("symbol", "release")
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    RELEASE_FIELD_NUMBER: _ClassVar[int]
    symbol: str
    release: bool
    def __init__(self, symbol: _Optional[str] = ..., release: _Optional[bool] = ...) -> None: ...

class BookEntry(_message.Message):
    __slots__ = ("type", "price", "volume")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    VOLUME_FIELD_NUMBER: _ClassVar[int]
    type: int
    price: float
    volume: float
    def __init__(self, type: _Optional[int] = ..., price: _Optional[float] = ..., volume: _Optional[float] = ...) -> None: ...

class BookUpdate(_message.Message):
    __slots__ = ("symbol", "levels", "time_msc")
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    LEVELS_FIELD_NUMBER: _ClassVar[int]
    TIME_MSC_FIELD_NUMBER: _ClassVar[int]
    symbol: str
    levels: _containers.RepeatedCompositeFieldContainer[BookEntry]
    time_msc: int
    def __init__(self, symbol: _Optional[str] = ..., levels: _Optional[_Iterable[_Union[BookEntry, _Mapping]]] = ..., time_msc: _Optional[int] = ...) -> None: ...

class TicksQuery(_message.Message):
    __slots__ = ("symbol", "from_msc", "to_msc", "range", "count", "flags")
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    FROM_MSC_FIELD_NUMBER: _ClassVar[int]
    TO_MSC_FIELD_NUMBER: _ClassVar[int]
    RANGE_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    FLAGS_FIELD_NUMBER: _ClassVar[int]
    symbol: str
    from_msc: int
    to_msc: int
    range: bool
    count: int
    flags: int
    def __init__(self, symbol: _Optional[str] = ..., from_msc: _Optional[int] = ..., to_msc: _Optional[int] = ..., range: _Optional[bool] = ..., count: _Optional[int] = ..., flags: _Optional[int] = ...) -> None: ...

class TickRow(_message.Message):
    __slots__ = ("time_msc", "bid", "ask", "last", "volume", "flags")
    TIME_MSC_FIELD_NUMBER: _ClassVar[int]
    BID_FIELD_NUMBER: _ClassVar[int]
    ASK_FIELD_NUMBER: _ClassVar[int]
    LAST_FIELD_NUMBER: _ClassVar[int]
    VOLUME_FIELD_NUMBER: _ClassVar[int]
    FLAGS_FIELD_NUMBER: _ClassVar[int]
    time_msc: int
    bid: float
    ask: float
    last: float
    volume: int
    flags: int
    def __init__(self, time_msc: _Optional[int] = ..., bid: _Optional[float] = ..., ask: _Optional[float] = ..., last: _Optional[float] = ..., volume: _Optional[int] = ..., flags: _Optional[int] = ...) -> None: ...

class TicksPage(_message.Message):
    __slots__ = ("ticks",)
    TICKS_FIELD_NUMBER: _ClassVar[int]
    ticks: _containers.RepeatedCompositeFieldContainer[TickRow]
    def __init__(self, ticks: _Optional[_Iterable[_Union[TickRow, _Mapping]]] = ...) -> None: ...

class TicksChunks(_message.Message):
    __slots__ = ("pages",)
    PAGES_FIELD_NUMBER: _ClassVar[int]
    pages: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, pages: _Optional[_Iterable[bytes]] = ...) -> None: ...

class RatesQuery(_message.Message):
    __slots__ = ("symbol", "timeframe", "date_from", "date_to", "from_pos", "start_pos", "count")
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    TIMEFRAME_FIELD_NUMBER: _ClassVar[int]
    DATE_FROM_FIELD_NUMBER: _ClassVar[int]
    DATE_TO_FIELD_NUMBER: _ClassVar[int]
    FROM_POS_FIELD_NUMBER: _ClassVar[int]
    START_POS_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    symbol: str
    timeframe: int
    date_from: int
    date_to: int
    from_pos: bool
    start_pos: int
    count: int
    def __init__(self, symbol: _Optional[str] = ..., timeframe: _Optional[int] = ..., date_from: _Optional[int] = ..., date_to: _Optional[int] = ..., from_pos: _Optional[bool] = ..., start_pos: _Optional[int] = ..., count: _Optional[int] = ...) -> None: ...

class RateBar(_message.Message):
    __slots__ = ("time", "open", "high", "low", "close", "tick_volume", "spread", "real_volume")
    TIME_FIELD_NUMBER: _ClassVar[int]
    OPEN_FIELD_NUMBER: _ClassVar[int]
    HIGH_FIELD_NUMBER: _ClassVar[int]
    LOW_FIELD_NUMBER: _ClassVar[int]
    CLOSE_FIELD_NUMBER: _ClassVar[int]
    TICK_VOLUME_FIELD_NUMBER: _ClassVar[int]
    SPREAD_FIELD_NUMBER: _ClassVar[int]
    REAL_VOLUME_FIELD_NUMBER: _ClassVar[int]
    time: int
    open: float
    high: float
    low: float
    close: float
    tick_volume: int
    spread: int
    real_volume: int
    def __init__(self, time: _Optional[int] = ..., open: _Optional[float] = ..., high: _Optional[float] = ..., low: _Optional[float] = ..., close: _Optional[float] = ..., tick_volume: _Optional[int] = ..., spread: _Optional[int] = ..., real_volume: _Optional[int] = ...) -> None: ...

class RatesPage(_message.Message):
    __slots__ = ("rates",)
    RATES_FIELD_NUMBER: _ClassVar[int]
    rates: _containers.RepeatedCompositeFieldContainer[RateBar]
    def __init__(self, rates: _Optional[_Iterable[_Union[RateBar, _Mapping]]] = ...) -> None: ...

class RatesChunks(_message.Message):
    __slots__ = ("pages",)
    PAGES_FIELD_NUMBER: _ClassVar[int]
    pages: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, pages: _Optional[_Iterable[bytes]] = ...) -> None: ...

class SymbolsQuery(_message.Message):
    __slots__ = ("group", "name")
    GROUP_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    group: str
    name: str
    def __init__(self, group: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class CalcQuery(_message.Message):
    __slots__ = ("symbol", "action", "volume", "price_open", "price_close", "profit")
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    VOLUME_FIELD_NUMBER: _ClassVar[int]
    PRICE_OPEN_FIELD_NUMBER: _ClassVar[int]
    PRICE_CLOSE_FIELD_NUMBER: _ClassVar[int]
    PROFIT_FIELD_NUMBER: _ClassVar[int]
    symbol: str
    action: int
    volume: float
    price_open: float
    price_close: float
    profit: bool
    def __init__(self, symbol: _Optional[str] = ..., action: _Optional[int] = ..., volume: _Optional[float] = ..., price_open: _Optional[float] = ..., price_close: _Optional[float] = ..., profit: _Optional[bool] = ...) -> None: ...

class TerminalQuery(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SymbolList(_message.Message):
    __slots__ = ("symbols",)
    SYMBOLS_FIELD_NUMBER: _ClassVar[int]
    symbols: _containers.RepeatedCompositeFieldContainer[SymbolInfo]
    def __init__(self, symbols: _Optional[_Iterable[_Union[SymbolInfo, _Mapping]]] = ...) -> None: ...

class CalcResult(_message.Message):
    __slots__ = ("value", "currency")
    VALUE_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    value: float
    currency: str
    def __init__(self, value: _Optional[float] = ..., currency: _Optional[str] = ...) -> None: ...

class TerminalState(_message.Message):
    __slots__ = ("build", "connected", "trade_allowed", "tradeapi_disabled", "ping_last", "community_account", "community_connection", "company", "name", "language", "max_bars", "dlls_allowed", "data_folder", "backend", "login", "server", "relogins", "books")
    BUILD_FIELD_NUMBER: _ClassVar[int]
    CONNECTED_FIELD_NUMBER: _ClassVar[int]
    TRADE_ALLOWED_FIELD_NUMBER: _ClassVar[int]
    TRADEAPI_DISABLED_FIELD_NUMBER: _ClassVar[int]
    PING_LAST_FIELD_NUMBER: _ClassVar[int]
    COMMUNITY_ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    COMMUNITY_CONNECTION_FIELD_NUMBER: _ClassVar[int]
    COMPANY_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    MAX_BARS_FIELD_NUMBER: _ClassVar[int]
    DLLS_ALLOWED_FIELD_NUMBER: _ClassVar[int]
    DATA_FOLDER_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    LOGIN_FIELD_NUMBER: _ClassVar[int]
    SERVER_FIELD_NUMBER: _ClassVar[int]
    RELOGINS_FIELD_NUMBER: _ClassVar[int]
    BOOKS_FIELD_NUMBER: _ClassVar[int]
    build: int
    connected: bool
    trade_allowed: bool
    tradeapi_disabled: bool
    ping_last: int
    community_account: bool
    community_connection: bool
    company: str
    name: str
    language: str
    max_bars: int
    dlls_allowed: bool
    data_folder: str
    backend: str
    login: int
    server: str
    relogins: int
    books: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, build: _Optional[int] = ..., connected: _Optional[bool] = ..., trade_allowed: _Optional[bool] = ..., tradeapi_disabled: _Optional[bool] = ..., ping_last: _Optional[int] = ..., community_account: _Optional[bool] = ..., community_connection: _Optional[bool] = ..., company: _Optional[str] = ..., name: _Optional[str] = ..., language: _Optional[str] = ..., max_bars: _Optional[int] = ..., dlls_allowed: _Optional[bool] = ..., data_folder: _Optional[str] = ..., backend: _Optional[str] = ..., login: _Optional[int] = ..., server: _Optional[str] = ..., relogins: _Optional[int] = ..., books: _Optional[_Iterable[str]] = ...) -> None: ...

class MarketAnswer(_message.Message):
    __slots__ = ("request_id", "code", "reason", "message", "field", "symbols", "calc", "terminal", "rates", "ticks")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    FIELD_FIELD_NUMBER: _ClassVar[int]
    SYMBOLS_FIELD_NUMBER: _ClassVar[int]
    CALC_FIELD_NUMBER: _ClassVar[int]
    TERMINAL_FIELD_NUMBER: _ClassVar[int]
    RATES_FIELD_NUMBER: _ClassVar[int]
    TICKS_FIELD_NUMBER: _ClassVar[int]
    request_id: int
    code: int
    reason: str
    message: str
    field: str
    symbols: SymbolList
    calc: CalcResult
    terminal: TerminalState
    rates: RatesChunks
    ticks: TicksChunks
    def __init__(self, request_id: _Optional[int] = ..., code: _Optional[int] = ..., reason: _Optional[str] = ..., message: _Optional[str] = ..., field: _Optional[str] = ..., symbols: _Optional[_Union[SymbolList, _Mapping]] = ..., calc: _Optional[_Union[CalcResult, _Mapping]] = ..., terminal: _Optional[_Union[TerminalState, _Mapping]] = ..., rates: _Optional[_Union[RatesChunks, _Mapping]] = ..., ticks: _Optional[_Union[TicksChunks, _Mapping]] = ...) -> None: ...
