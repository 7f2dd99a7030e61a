import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from mt5exec.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Timeframe(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TIMEFRAME_UNSPECIFIED: _ClassVar[Timeframe]
    TIMEFRAME_M1: _ClassVar[Timeframe]
    TIMEFRAME_M2: _ClassVar[Timeframe]
    TIMEFRAME_M3: _ClassVar[Timeframe]
    TIMEFRAME_M4: _ClassVar[Timeframe]
    TIMEFRAME_M5: _ClassVar[Timeframe]
    TIMEFRAME_M6: _ClassVar[Timeframe]
    TIMEFRAME_M10: _ClassVar[Timeframe]
    TIMEFRAME_M12: _ClassVar[Timeframe]
    TIMEFRAME_M15: _ClassVar[Timeframe]
    TIMEFRAME_M20: _ClassVar[Timeframe]
    TIMEFRAME_M30: _ClassVar[Timeframe]
    TIMEFRAME_H1: _ClassVar[Timeframe]
    TIMEFRAME_H2: _ClassVar[Timeframe]
    TIMEFRAME_H3: _ClassVar[Timeframe]
    TIMEFRAME_H4: _ClassVar[Timeframe]
    TIMEFRAME_H6: _ClassVar[Timeframe]
    TIMEFRAME_H8: _ClassVar[Timeframe]
    TIMEFRAME_H12: _ClassVar[Timeframe]
    TIMEFRAME_D1: _ClassVar[Timeframe]
    TIMEFRAME_W1: _ClassVar[Timeframe]
    TIMEFRAME_MN1: _ClassVar[Timeframe]

class CopyTicks(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    COPY_TICKS_UNSPECIFIED: _ClassVar[CopyTicks]
    COPY_TICKS_INFO: _ClassVar[CopyTicks]
    COPY_TICKS_TRADE: _ClassVar[CopyTicks]
    COPY_TICKS_ALL: _ClassVar[CopyTicks]
TIMEFRAME_UNSPECIFIED: Timeframe
TIMEFRAME_M1: Timeframe
TIMEFRAME_M2: Timeframe
TIMEFRAME_M3: Timeframe
TIMEFRAME_M4: Timeframe
TIMEFRAME_M5: Timeframe
TIMEFRAME_M6: Timeframe
TIMEFRAME_M10: Timeframe
TIMEFRAME_M12: Timeframe
TIMEFRAME_M15: Timeframe
TIMEFRAME_M20: Timeframe
TIMEFRAME_M30: Timeframe
TIMEFRAME_H1: Timeframe
TIMEFRAME_H2: Timeframe
TIMEFRAME_H3: Timeframe
TIMEFRAME_H4: Timeframe
TIMEFRAME_H6: Timeframe
TIMEFRAME_H8: Timeframe
TIMEFRAME_H12: Timeframe
TIMEFRAME_D1: Timeframe
TIMEFRAME_W1: Timeframe
TIMEFRAME_MN1: Timeframe
COPY_TICKS_UNSPECIFIED: CopyTicks
COPY_TICKS_INFO: CopyTicks
COPY_TICKS_TRADE: CopyTicks
COPY_TICKS_ALL: CopyTicks

class TradingSession(_message.Message):
    __slots__ = ("start_second", "end_second")
    START_SECOND_FIELD_NUMBER: _ClassVar[int]
    END_SECOND_FIELD_NUMBER: _ClassVar[int]
    start_second: int
    end_second: int
    def __init__(self, start_second: _Optional[int] = ..., end_second: _Optional[int] = ...) -> None: ...

class Symbol(_message.Message):
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
    trade_sessions: _containers.RepeatedCompositeFieldContainer[TradingSession]
    order_mode: int
    expiration_mode: int
    select: bool
    def __init__(self, name: _Optional[str] = ..., digits: _Optional[int] = ..., point: _Optional[float] = ..., contract_size: _Optional[float] = ..., volume_min: _Optional[float] = ..., volume_max: _Optional[float] = ..., volume_step: _Optional[float] = ..., stops_level: _Optional[int] = ..., freeze_level: _Optional[int] = ..., filling_mode: _Optional[int] = ..., trade_mode: _Optional[int] = ..., currency_base: _Optional[str] = ..., currency_profit: _Optional[str] = ..., currency_margin: _Optional[str] = ..., tick_value: _Optional[float] = ..., tick_size: _Optional[float] = ..., description: _Optional[str] = ..., path: _Optional[str] = ..., trade_execution_mode: _Optional[int] = ..., trade_calc_mode: _Optional[int] = ..., swap_mode: _Optional[int] = ..., swap_long: _Optional[float] = ..., swap_short: _Optional[float] = ..., swap_rollover3days: _Optional[int] = ..., margin_initial: _Optional[float] = ..., margin_maintenance: _Optional[float] = ..., margin_hedged: _Optional[float] = ..., spread: _Optional[int] = ..., spread_float: _Optional[bool] = ..., bid: _Optional[float] = ..., ask: _Optional[float] = ..., time_msc: _Optional[int] = ..., trade_sessions: _Optional[_Iterable[_Union[TradingSession, _Mapping]]] = ..., order_mode: _Optional[int] = ..., expiration_mode: _Optional[int] = ..., select: _Optional[bool] = ...) -> None: ...

class ListSymbolsRequest(_message.Message):
    __slots__ = ("instance_id", "group")
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    GROUP_FIELD_NUMBER: _ClassVar[int]
    instance_id: str
    group: str
    def __init__(self, instance_id: _Optional[str] = ..., group: _Optional[str] = ...) -> None: ...

class ListSymbolsResponse(_message.Message):
    __slots__ = ("symbols",)
    SYMBOLS_FIELD_NUMBER: _ClassVar[int]
    symbols: _containers.RepeatedCompositeFieldContainer[Symbol]
    def __init__(self, symbols: _Optional[_Iterable[_Union[Symbol, _Mapping]]] = ...) -> None: ...

class GetSymbolRequest(_message.Message):
    __slots__ = ("instance_id", "symbol")
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    instance_id: str
    symbol: str
    def __init__(self, instance_id: _Optional[str] = ..., symbol: _Optional[str] = ...) -> None: ...

class GetSymbolResponse(_message.Message):
    __slots__ = ("symbol",)
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    symbol: Symbol
    def __init__(self, symbol: _Optional[_Union[Symbol, _Mapping]] = ...) -> None: ...

class CalcMarginRequest(_message.Message):
    __slots__ = ("instance_id", "symbol", "side", "volume", "price")
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    SIDE_FIELD_NUMBER: _ClassVar[int]
    VOLUME_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    instance_id: str
    symbol: str
    side: _common_pb2.Side
    volume: float
    price: float
    def __init__(self, instance_id: _Optional[str] = ..., symbol: _Optional[str] = ..., side: _Optional[_Union[_common_pb2.Side, str]] = ..., volume: _Optional[float] = ..., price: _Optional[float] = ...) -> None: ...

class CalcMarginResponse(_message.Message):
    __slots__ = ("margin", "currency")
    MARGIN_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    margin: float
    currency: str
    def __init__(self, margin: _Optional[float] = ..., currency: _Optional[str] = ...) -> None: ...

class CalcProfitRequest(_message.Message):
    __slots__ = ("instance_id", "symbol", "side", "volume", "price_open", "price_close")
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    SIDE_FIELD_NUMBER: _ClassVar[int]
    VOLUME_FIELD_NUMBER: _ClassVar[int]
    PRICE_OPEN_FIELD_NUMBER: _ClassVar[int]
    PRICE_CLOSE_FIELD_NUMBER: _ClassVar[int]
    instance_id: str
    symbol: str
    side: _common_pb2.Side
    volume: float
    price_open: float
    price_close: float
    def __init__(self, instance_id: _Optional[str] = ..., symbol: _Optional[str] = ..., side: _Optional[_Union[_common_pb2.Side, str]] = ..., volume: _Optional[float] = ..., price_open: _Optional[float] = ..., price_close: _Optional[float] = ...) -> None: ...

class CalcProfitResponse(_message.Message):
    __slots__ = ("profit", "currency")
    PROFIT_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    profit: float
    currency: str
    def __init__(self, profit: _Optional[float] = ..., currency: _Optional[str] = ...) -> None: ...

class GetTerminalInfoRequest(_message.Message):
    __slots__ = ("instance_id",)
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    instance_id: str
    def __init__(self, instance_id: _Optional[str] = ...) -> None: ...

class TerminalInfo(_message.Message):
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

class GetTerminalInfoResponse(_message.Message):
    __slots__ = ("terminal",)
    TERMINAL_FIELD_NUMBER: _ClassVar[int]
    terminal: TerminalInfo
    def __init__(self, terminal: _Optional[_Union[TerminalInfo, _Mapping]] = ...) -> None: ...

class GetRatesRequest(_message.Message):
    __slots__ = ("instance_id", "symbol", "timeframe", "date_from", "date_to", "start_pos", "count")
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    TIMEFRAME_FIELD_NUMBER: _ClassVar[int]
    DATE_FROM_FIELD_NUMBER: _ClassVar[int]
    DATE_TO_FIELD_NUMBER: _ClassVar[int]
    START_POS_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    instance_id: str
    symbol: str
    timeframe: Timeframe
    date_from: _timestamp_pb2.Timestamp
    date_to: _timestamp_pb2.Timestamp
    start_pos: int
    count: int
    def __init__(self, instance_id: _Optional[str] = ..., symbol: _Optional[str] = ..., timeframe: _Optional[_Union[Timeframe, str]] = ..., date_from: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., date_to: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., start_pos: _Optional[int] = ..., count: _Optional[int] = ...) -> None: ...

class Rate(_message.Message):
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

class GetRatesResponse(_message.Message):
    __slots__ = ("rates",)
    RATES_FIELD_NUMBER: _ClassVar[int]
    rates: _containers.RepeatedCompositeFieldContainer[Rate]
    def __init__(self, rates: _Optional[_Iterable[_Union[Rate, _Mapping]]] = ...) -> None: ...

class GetTicksRequest(_message.Message):
    __slots__ = ("instance_id", "symbol", "date_from", "date_to", "count", "flags")
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    DATE_FROM_FIELD_NUMBER: _ClassVar[int]
    DATE_TO_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    FLAGS_FIELD_NUMBER: _ClassVar[int]
    instance_id: str
    symbol: str
    date_from: _timestamp_pb2.Timestamp
    date_to: _timestamp_pb2.Timestamp
    count: int
    flags: CopyTicks
    def __init__(self, instance_id: _Optional[str] = ..., symbol: _Optional[str] = ..., date_from: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., date_to: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., count: _Optional[int] = ..., flags: _Optional[_Union[CopyTicks, str]] = ...) -> None: ...

class HistoryTick(_message.Message):
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

class GetTicksResponse(_message.Message):
    __slots__ = ("ticks",)
    TICKS_FIELD_NUMBER: _ClassVar[int]
    ticks: _containers.RepeatedCompositeFieldContainer[HistoryTick]
    def __init__(self, ticks: _Optional[_Iterable[_Union[HistoryTick, _Mapping]]] = ...) -> None: ...

class StreamBookRequest(_message.Message):
    __slots__ = ("instance_id", "symbol", "conflate")
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    CONFLATE_FIELD_NUMBER: _ClassVar[int]
    instance_id: str
    symbol: str
    conflate: bool
    def __init__(self, instance_id: _Optional[str] = ..., symbol: _Optional[str] = ..., conflate: _Optional[bool] = ...) -> None: ...

class BookLevel(_message.Message):
    __slots__ = ("type", "price", "volume")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    VOLUME_FIELD_NUMBER: _ClassVar[int]
    type: int
    price: float
    volume: float
    def __init__(self, type: _Optional[int] = ..., price: _Optional[float] = ..., volume: _Optional[float] = ...) -> None: ...

class StreamBookResponse(_message.Message):
    __slots__ = ("instance_id", "symbol", "levels", "time", "sequence", "dropped")
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    LEVELS_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    DROPPED_FIELD_NUMBER: _ClassVar[int]
    instance_id: str
    symbol: str
    levels: _containers.RepeatedCompositeFieldContainer[BookLevel]
    time: _timestamp_pb2.Timestamp
    sequence: int
    dropped: int
    def __init__(self, instance_id: _Optional[str] = ..., symbol: _Optional[str] = ..., levels: _Optional[_Iterable[_Union[BookLevel, _Mapping]]] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., sequence: _Optional[int] = ..., dropped: _Optional[int] = ...) -> None: ...
