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

class CopyVolumeMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    COPY_VOLUME_MODE_UNSPECIFIED: _ClassVar[CopyVolumeMode]
    COPY_VOLUME_MODE_MULTIPLIER: _ClassVar[CopyVolumeMode]
    COPY_VOLUME_MODE_EQUITY_RATIO: _ClassVar[CopyVolumeMode]
    COPY_VOLUME_MODE_FIXED: _ClassVar[CopyVolumeMode]
    COPY_VOLUME_MODE_BALANCE_RATIO: _ClassVar[CopyVolumeMode]
    COPY_VOLUME_MODE_RISK_PERCENT: _ClassVar[CopyVolumeMode]

class CopySides(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    COPY_SIDES_UNSPECIFIED: _ClassVar[CopySides]
    COPY_SIDES_BOTH: _ClassVar[CopySides]
    COPY_SIDES_LONG_ONLY: _ClassVar[CopySides]
    COPY_SIDES_SHORT_ONLY: _ClassVar[CopySides]

class CopyLateJoin(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    COPY_LATE_JOIN_UNSPECIFIED: _ClassVar[CopyLateJoin]
    COPY_LATE_JOIN_NEW_ONLY: _ClassVar[CopyLateJoin]
    COPY_LATE_JOIN_OPEN_POSITIONS: _ClassVar[CopyLateJoin]

class CopyOnDelete(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    COPY_ON_DELETE_UNSPECIFIED: _ClassVar[CopyOnDelete]
    COPY_ON_DELETE_LEAVE_OPEN: _ClassVar[CopyOnDelete]
    COPY_ON_DELETE_CLOSE: _ClassVar[CopyOnDelete]
COPY_VOLUME_MODE_UNSPECIFIED: CopyVolumeMode
COPY_VOLUME_MODE_MULTIPLIER: CopyVolumeMode
COPY_VOLUME_MODE_EQUITY_RATIO: CopyVolumeMode
COPY_VOLUME_MODE_FIXED: CopyVolumeMode
COPY_VOLUME_MODE_BALANCE_RATIO: CopyVolumeMode
COPY_VOLUME_MODE_RISK_PERCENT: CopyVolumeMode
COPY_SIDES_UNSPECIFIED: CopySides
COPY_SIDES_BOTH: CopySides
COPY_SIDES_LONG_ONLY: CopySides
COPY_SIDES_SHORT_ONLY: CopySides
COPY_LATE_JOIN_UNSPECIFIED: CopyLateJoin
COPY_LATE_JOIN_NEW_ONLY: CopyLateJoin
COPY_LATE_JOIN_OPEN_POSITIONS: CopyLateJoin
COPY_ON_DELETE_UNSPECIFIED: CopyOnDelete
COPY_ON_DELETE_LEAVE_OPEN: CopyOnDelete
COPY_ON_DELETE_CLOSE: CopyOnDelete

class PlaceOrderRequest(_message.Message):
    __slots__ = ("instance_id", "client_order_id", "symbol", "side", "type", "volume", "price", "stop_limit_price", "stop_loss", "take_profit", "deviation_points", "time_in_force", "expiration", "filling", "comment", "magic")
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    SIDE_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    VOLUME_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    STOP_LIMIT_PRICE_FIELD_NUMBER: _ClassVar[int]
    STOP_LOSS_FIELD_NUMBER: _ClassVar[int]
    TAKE_PROFIT_FIELD_NUMBER: _ClassVar[int]
    DEVIATION_POINTS_FIELD_NUMBER: _ClassVar[int]
    TIME_IN_FORCE_FIELD_NUMBER: _ClassVar[int]
    EXPIRATION_FIELD_NUMBER: _ClassVar[int]
    FILLING_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    MAGIC_FIELD_NUMBER: _ClassVar[int]
    instance_id: str
    client_order_id: str
    symbol: str
    side: _common_pb2.Side
    type: _common_pb2.OrderType
    volume: float
    price: float
    stop_limit_price: float
    stop_loss: float
    take_profit: float
    deviation_points: int
    time_in_force: _common_pb2.TimeInForce
    expiration: _timestamp_pb2.Timestamp
    filling: _common_pb2.FillingMode
    comment: str
    magic: int
    def __init__(self, instance_id: _Optional[str] = ..., client_order_id: _Optional[str] = ..., symbol: _Optional[str] = ..., side: _Optional[_Union[_common_pb2.Side, str]] = ..., type: _Optional[_Union[_common_pb2.OrderType, str]] = ..., volume: _Optional[float] = ..., price: _Optional[float] = ..., stop_limit_price: _Optional[float] = ..., stop_loss: _Optional[float] = ..., take_profit: _Optional[float] = ..., deviation_points: _Optional[int] = ..., time_in_force: _Optional[_Union[_common_pb2.TimeInForce, str]] = ..., expiration: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., filling: _Optional[_Union[_common_pb2.FillingMode, str]] = ..., comment: _Optional[str] = ..., magic: _Optional[int] = ...) -> None: ...

class PlaceOrderResponse(_message.Message):
    __slots__ = ("order",)
    ORDER_FIELD_NUMBER: _ClassVar[int]
    order: _common_pb2.Order
    def __init__(self, order: _Optional[_Union[_common_pb2.Order, _Mapping]] = ...) -> None: ...

class ModifyOrderRequest(_message.Message):
    __slots__ = ("instance_id", "order_id", "client_order_id", "price", "stop_limit_price", "stop_loss", "take_profit", "time_in_force", "expiration")
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    STOP_LIMIT_PRICE_FIELD_NUMBER: _ClassVar[int]
    STOP_LOSS_FIELD_NUMBER: _ClassVar[int]
    TAKE_PROFIT_FIELD_NUMBER: _ClassVar[int]
    TIME_IN_FORCE_FIELD_NUMBER: _ClassVar[int]
    EXPIRATION_FIELD_NUMBER: _ClassVar[int]
    instance_id: str
    order_id: int
    client_order_id: str
    price: float
    stop_limit_price: float
    stop_loss: float
    take_profit: float
    time_in_force: _common_pb2.TimeInForce
    expiration: _timestamp_pb2.Timestamp
    def __init__(self, instance_id: _Optional[str] = ..., order_id: _Optional[int] = ..., client_order_id: _Optional[str] = ..., price: _Optional[float] = ..., stop_limit_price: _Optional[float] = ..., stop_loss: _Optional[float] = ..., take_profit: _Optional[float] = ..., time_in_force: _Optional[_Union[_common_pb2.TimeInForce, str]] = ..., expiration: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ModifyOrderResponse(_message.Message):
    __slots__ = ("order",)
    ORDER_FIELD_NUMBER: _ClassVar[int]
    order: _common_pb2.Order
    def __init__(self, order: _Optional[_Union[_common_pb2.Order, _Mapping]] = ...) -> None: ...

class CancelOrderRequest(_message.Message):
    __slots__ = ("instance_id", "order_id", "client_order_id")
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    instance_id: str
    order_id: int
    client_order_id: str
    def __init__(self, instance_id: _Optional[str] = ..., order_id: _Optional[int] = ..., client_order_id: _Optional[str] = ...) -> None: ...

class CancelOrderResponse(_message.Message):
    __slots__ = ("order",)
    ORDER_FIELD_NUMBER: _ClassVar[int]
    order: _common_pb2.Order
    def __init__(self, order: _Optional[_Union[_common_pb2.Order, _Mapping]] = ...) -> None: ...

class ModifyPositionRequest(_message.Message):
    __slots__ = ("instance_id", "position_id", "stop_loss", "take_profit")
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    POSITION_ID_FIELD_NUMBER: _ClassVar[int]
    STOP_LOSS_FIELD_NUMBER: _ClassVar[int]
    TAKE_PROFIT_FIELD_NUMBER: _ClassVar[int]
    instance_id: str
    position_id: int
    stop_loss: float
    take_profit: float
    def __init__(self, instance_id: _Optional[str] = ..., position_id: _Optional[int] = ..., stop_loss: _Optional[float] = ..., take_profit: _Optional[float] = ...) -> None: ...

class ModifyPositionResponse(_message.Message):
    __slots__ = ("position",)
    POSITION_FIELD_NUMBER: _ClassVar[int]
    position: _common_pb2.Position
    def __init__(self, position: _Optional[_Union[_common_pb2.Position, _Mapping]] = ...) -> None: ...

class ClosePositionRequest(_message.Message):
    __slots__ = ("instance_id", "position_id", "volume", "client_order_id", "deviation_points")
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    POSITION_ID_FIELD_NUMBER: _ClassVar[int]
    VOLUME_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    DEVIATION_POINTS_FIELD_NUMBER: _ClassVar[int]
    instance_id: str
    position_id: int
    volume: float
    client_order_id: str
    deviation_points: int
    def __init__(self, instance_id: _Optional[str] = ..., position_id: _Optional[int] = ..., volume: _Optional[float] = ..., client_order_id: _Optional[str] = ..., deviation_points: _Optional[int] = ...) -> None: ...

class ClosePositionResponse(_message.Message):
    __slots__ = ("order",)
    ORDER_FIELD_NUMBER: _ClassVar[int]
    order: _common_pb2.Order
    def __init__(self, order: _Optional[_Union[_common_pb2.Order, _Mapping]] = ...) -> None: ...

class CloseAllRequest(_message.Message):
    __slots__ = ("instance_id", "symbol")
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    instance_id: str
    symbol: str
    def __init__(self, instance_id: _Optional[str] = ..., symbol: _Optional[str] = ...) -> None: ...

class CloseAllResponse(_message.Message):
    __slots__ = ("orders",)
    ORDERS_FIELD_NUMBER: _ClassVar[int]
    orders: _containers.RepeatedCompositeFieldContainer[_common_pb2.Order]
    def __init__(self, orders: _Optional[_Iterable[_Union[_common_pb2.Order, _Mapping]]] = ...) -> None: ...

class GetOrderRequest(_message.Message):
    __slots__ = ("instance_id", "order_id", "client_order_id")
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    instance_id: str
    order_id: int
    client_order_id: str
    def __init__(self, instance_id: _Optional[str] = ..., order_id: _Optional[int] = ..., client_order_id: _Optional[str] = ...) -> None: ...

class GetOrderResponse(_message.Message):
    __slots__ = ("order",)
    ORDER_FIELD_NUMBER: _ClassVar[int]
    order: _common_pb2.Order
    def __init__(self, order: _Optional[_Union[_common_pb2.Order, _Mapping]] = ...) -> None: ...

class ListOrdersRequest(_message.Message):
    __slots__ = ("instance_id", "history", "symbol", "from_time", "to_time", "page_size", "page_token")
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    FROM_TIME_FIELD_NUMBER: _ClassVar[int]
    TO_TIME_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    instance_id: str
    history: bool
    symbol: str
    from_time: _timestamp_pb2.Timestamp
    to_time: _timestamp_pb2.Timestamp
    page_size: int
    page_token: str
    def __init__(self, instance_id: _Optional[str] = ..., history: _Optional[bool] = ..., symbol: _Optional[str] = ..., from_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., to_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListOrdersResponse(_message.Message):
    __slots__ = ("orders", "next_page_token")
    ORDERS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    orders: _containers.RepeatedCompositeFieldContainer[_common_pb2.Order]
    next_page_token: str
    def __init__(self, orders: _Optional[_Iterable[_Union[_common_pb2.Order, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ListPositionsRequest(_message.Message):
    __slots__ = ("instance_id", "symbol")
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    instance_id: str
    symbol: str
    def __init__(self, instance_id: _Optional[str] = ..., symbol: _Optional[str] = ...) -> None: ...

class ListPositionsResponse(_message.Message):
    __slots__ = ("positions",)
    POSITIONS_FIELD_NUMBER: _ClassVar[int]
    positions: _containers.RepeatedCompositeFieldContainer[_common_pb2.Position]
    def __init__(self, positions: _Optional[_Iterable[_Union[_common_pb2.Position, _Mapping]]] = ...) -> None: ...

class GetAccountRequest(_message.Message):
    __slots__ = ("instance_id",)
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    instance_id: str
    def __init__(self, instance_id: _Optional[str] = ...) -> None: ...

class GetAccountResponse(_message.Message):
    __slots__ = ("account",)
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    account: _common_pb2.Account
    def __init__(self, account: _Optional[_Union[_common_pb2.Account, _Mapping]] = ...) -> None: ...

class CheckOrderRequest(_message.Message):
    __slots__ = ("order",)
    ORDER_FIELD_NUMBER: _ClassVar[int]
    order: PlaceOrderRequest
    def __init__(self, order: _Optional[_Union[PlaceOrderRequest, _Mapping]] = ...) -> None: ...

class CheckOrderResponse(_message.Message):
    __slots__ = ("accepted", "reason", "message", "margin_required", "free_margin_after")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    MARGIN_REQUIRED_FIELD_NUMBER: _ClassVar[int]
    FREE_MARGIN_AFTER_FIELD_NUMBER: _ClassVar[int]
    accepted: bool
    reason: str
    message: str
    margin_required: float
    free_margin_after: float
    def __init__(self, accepted: _Optional[bool] = ..., reason: _Optional[str] = ..., message: _Optional[str] = ..., margin_required: _Optional[float] = ..., free_margin_after: _Optional[float] = ...) -> None: ...

class OrderSessionRequest(_message.Message):
    __slots__ = ("place", "cancel", "batch")
    PLACE_FIELD_NUMBER: _ClassVar[int]
    CANCEL_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    place: PlaceOrderRequest
    cancel: CancelOrderRequest
    batch: OrderSessionBatch
    def __init__(self, place: _Optional[_Union[PlaceOrderRequest, _Mapping]] = ..., cancel: _Optional[_Union[CancelOrderRequest, _Mapping]] = ..., batch: _Optional[_Union[OrderSessionBatch, _Mapping]] = ...) -> None: ...

class OrderSessionBatch(_message.Message):
    __slots__ = ("requests",)
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    requests: _containers.RepeatedCompositeFieldContainer[OrderSessionRequest]
    def __init__(self, requests: _Optional[_Iterable[_Union[OrderSessionRequest, _Mapping]]] = ...) -> None: ...

class OrderSessionResponse(_message.Message):
    __slots__ = ("client_order_id", "code", "reason", "message", "order", "batch")
    CLIENT_ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    ORDER_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    client_order_id: str
    code: int
    reason: str
    message: str
    order: _common_pb2.Order
    batch: _containers.RepeatedCompositeFieldContainer[OrderSessionResponse]
    def __init__(self, client_order_id: _Optional[str] = ..., code: _Optional[int] = ..., reason: _Optional[str] = ..., message: _Optional[str] = ..., order: _Optional[_Union[_common_pb2.Order, _Mapping]] = ..., batch: _Optional[_Iterable[_Union[OrderSessionResponse, _Mapping]]] = ...) -> None: ...

class CopyRelation(_message.Message):
    __slots__ = ("relation_id", "master_instance_id", "follower_instance_id", "volume_mode", "multiplier", "fixed_volume", "symbols", "reverse", "copy_stops", "risk_percent", "min_volume", "max_volume", "raise_to_minimum", "symbol_map", "symbol_prefix", "symbol_suffix", "exclude_symbols", "magics", "sides", "order_types", "copy_pending", "max_deviation_points", "late_join", "on_delete", "signal_source", "owner", "created_time", "default_stops")
    class SymbolMapEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    RELATION_ID_FIELD_NUMBER: _ClassVar[int]
    MASTER_INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    FOLLOWER_INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    VOLUME_MODE_FIELD_NUMBER: _ClassVar[int]
    MULTIPLIER_FIELD_NUMBER: _ClassVar[int]
    FIXED_VOLUME_FIELD_NUMBER: _ClassVar[int]
    SYMBOLS_FIELD_NUMBER: _ClassVar[int]
    REVERSE_FIELD_NUMBER: _ClassVar[int]
    COPY_STOPS_FIELD_NUMBER: _ClassVar[int]
    RISK_PERCENT_FIELD_NUMBER: _ClassVar[int]
    MIN_VOLUME_FIELD_NUMBER: _ClassVar[int]
    MAX_VOLUME_FIELD_NUMBER: _ClassVar[int]
    RAISE_TO_MINIMUM_FIELD_NUMBER: _ClassVar[int]
    SYMBOL_MAP_FIELD_NUMBER: _ClassVar[int]
    SYMBOL_PREFIX_FIELD_NUMBER: _ClassVar[int]
    SYMBOL_SUFFIX_FIELD_NUMBER: _ClassVar[int]
    EXCLUDE_SYMBOLS_FIELD_NUMBER: _ClassVar[int]
    MAGICS_FIELD_NUMBER: _ClassVar[int]
    SIDES_FIELD_NUMBER: _ClassVar[int]
    ORDER_TYPES_FIELD_NUMBER: _ClassVar[int]
    COPY_PENDING_FIELD_NUMBER: _ClassVar[int]
    MAX_DEVIATION_POINTS_FIELD_NUMBER: _ClassVar[int]
    LATE_JOIN_FIELD_NUMBER: _ClassVar[int]
    ON_DELETE_FIELD_NUMBER: _ClassVar[int]
    SIGNAL_SOURCE_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    CREATED_TIME_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_STOPS_FIELD_NUMBER: _ClassVar[int]
    relation_id: str
    master_instance_id: str
    follower_instance_id: str
    volume_mode: CopyVolumeMode
    multiplier: float
    fixed_volume: float
    symbols: _containers.RepeatedScalarFieldContainer[str]
    reverse: bool
    copy_stops: bool
    risk_percent: float
    min_volume: float
    max_volume: float
    raise_to_minimum: bool
    symbol_map: _containers.ScalarMap[str, str]
    symbol_prefix: str
    symbol_suffix: str
    exclude_symbols: _containers.RepeatedScalarFieldContainer[str]
    magics: _containers.RepeatedScalarFieldContainer[int]
    sides: CopySides
    order_types: _containers.RepeatedScalarFieldContainer[_common_pb2.OrderType]
    copy_pending: bool
    max_deviation_points: int
    late_join: CopyLateJoin
    on_delete: CopyOnDelete
    signal_source: str
    owner: str
    created_time: _timestamp_pb2.Timestamp
    default_stops: bool
    def __init__(self, relation_id: _Optional[str] = ..., master_instance_id: _Optional[str] = ..., follower_instance_id: _Optional[str] = ..., volume_mode: _Optional[_Union[CopyVolumeMode, str]] = ..., multiplier: _Optional[float] = ..., fixed_volume: _Optional[float] = ..., symbols: _Optional[_Iterable[str]] = ..., reverse: _Optional[bool] = ..., copy_stops: _Optional[bool] = ..., risk_percent: _Optional[float] = ..., min_volume: _Optional[float] = ..., max_volume: _Optional[float] = ..., raise_to_minimum: _Optional[bool] = ..., symbol_map: _Optional[_Mapping[str, str]] = ..., symbol_prefix: _Optional[str] = ..., symbol_suffix: _Optional[str] = ..., exclude_symbols: _Optional[_Iterable[str]] = ..., magics: _Optional[_Iterable[int]] = ..., sides: _Optional[_Union[CopySides, str]] = ..., order_types: _Optional[_Iterable[_Union[_common_pb2.OrderType, str]]] = ..., copy_pending: _Optional[bool] = ..., max_deviation_points: _Optional[int] = ..., late_join: _Optional[_Union[CopyLateJoin, str]] = ..., on_delete: _Optional[_Union[CopyOnDelete, str]] = ..., signal_source: _Optional[str] = ..., owner: _Optional[str] = ..., created_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., default_stops: _Optional[bool] = ...) -> None: ...

class CopyRelationStats(_message.Message):
    __slots__ = ("copies", "skipped", "latency_p50_seconds", "latency_p99_seconds", "fills", "slippage_points_mean", "slippage_points_max", "recovered")
    class SkippedEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    COPIES_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_FIELD_NUMBER: _ClassVar[int]
    LATENCY_P50_SECONDS_FIELD_NUMBER: _ClassVar[int]
    LATENCY_P99_SECONDS_FIELD_NUMBER: _ClassVar[int]
    FILLS_FIELD_NUMBER: _ClassVar[int]
    SLIPPAGE_POINTS_MEAN_FIELD_NUMBER: _ClassVar[int]
    SLIPPAGE_POINTS_MAX_FIELD_NUMBER: _ClassVar[int]
    RECOVERED_FIELD_NUMBER: _ClassVar[int]
    copies: int
    skipped: _containers.ScalarMap[str, int]
    latency_p50_seconds: float
    latency_p99_seconds: float
    fills: int
    slippage_points_mean: float
    slippage_points_max: float
    recovered: bool
    def __init__(self, copies: _Optional[int] = ..., skipped: _Optional[_Mapping[str, int]] = ..., latency_p50_seconds: _Optional[float] = ..., latency_p99_seconds: _Optional[float] = ..., fills: _Optional[int] = ..., slippage_points_mean: _Optional[float] = ..., slippage_points_max: _Optional[float] = ..., recovered: _Optional[bool] = ...) -> None: ...

class GetCopyRelationRequest(_message.Message):
    __slots__ = ("relation_id", "owner")
    RELATION_ID_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    relation_id: str
    owner: str
    def __init__(self, relation_id: _Optional[str] = ..., owner: _Optional[str] = ...) -> None: ...

class GetCopyRelationResponse(_message.Message):
    __slots__ = ("relation", "stats")
    RELATION_FIELD_NUMBER: _ClassVar[int]
    STATS_FIELD_NUMBER: _ClassVar[int]
    relation: CopyRelation
    stats: CopyRelationStats
    def __init__(self, relation: _Optional[_Union[CopyRelation, _Mapping]] = ..., stats: _Optional[_Union[CopyRelationStats, _Mapping]] = ...) -> None: ...

class CreateCopyRelationRequest(_message.Message):
    __slots__ = ("relation",)
    RELATION_FIELD_NUMBER: _ClassVar[int]
    relation: CopyRelation
    def __init__(self, relation: _Optional[_Union[CopyRelation, _Mapping]] = ...) -> None: ...

class CreateCopyRelationResponse(_message.Message):
    __slots__ = ("relation",)
    RELATION_FIELD_NUMBER: _ClassVar[int]
    relation: CopyRelation
    def __init__(self, relation: _Optional[_Union[CopyRelation, _Mapping]] = ...) -> None: ...

class ListCopyRelationsRequest(_message.Message):
    __slots__ = ("master_instance_id",)
    MASTER_INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    master_instance_id: str
    def __init__(self, master_instance_id: _Optional[str] = ...) -> None: ...

class ListCopyRelationsResponse(_message.Message):
    __slots__ = ("relations",)
    RELATIONS_FIELD_NUMBER: _ClassVar[int]
    relations: _containers.RepeatedCompositeFieldContainer[CopyRelation]
    def __init__(self, relations: _Optional[_Iterable[_Union[CopyRelation, _Mapping]]] = ...) -> None: ...

class DeleteCopyRelationRequest(_message.Message):
    __slots__ = ("relation_id", "owner")
    RELATION_ID_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    relation_id: str
    owner: str
    def __init__(self, relation_id: _Optional[str] = ..., owner: _Optional[str] = ...) -> None: ...

class DeleteCopyRelationResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class PublishSignalRequest(_message.Message):
    __slots__ = ("source", "symbol", "side", "volume", "stop_loss", "take_profit", "timestamp", "nonce", "signature", "risk_percent", "signal_id")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    SIDE_FIELD_NUMBER: _ClassVar[int]
    VOLUME_FIELD_NUMBER: _ClassVar[int]
    STOP_LOSS_FIELD_NUMBER: _ClassVar[int]
    TAKE_PROFIT_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    NONCE_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    RISK_PERCENT_FIELD_NUMBER: _ClassVar[int]
    SIGNAL_ID_FIELD_NUMBER: _ClassVar[int]
    source: str
    symbol: str
    side: _common_pb2.Side
    volume: float
    stop_loss: float
    take_profit: float
    timestamp: _timestamp_pb2.Timestamp
    nonce: str
    signature: str
    risk_percent: float
    signal_id: str
    def __init__(self, source: _Optional[str] = ..., symbol: _Optional[str] = ..., side: _Optional[_Union[_common_pb2.Side, str]] = ..., volume: _Optional[float] = ..., stop_loss: _Optional[float] = ..., take_profit: _Optional[float] = ..., timestamp: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., nonce: _Optional[str] = ..., signature: _Optional[str] = ..., risk_percent: _Optional[float] = ..., signal_id: _Optional[str] = ...) -> None: ...

class PublishSignalResponse(_message.Message):
    __slots__ = ("orders",)
    ORDERS_FIELD_NUMBER: _ClassVar[int]
    orders: _containers.RepeatedCompositeFieldContainer[_common_pb2.Order]
    def __init__(self, orders: _Optional[_Iterable[_Union[_common_pb2.Order, _Mapping]]] = ...) -> None: ...

class ListDealsRequest(_message.Message):
    __slots__ = ("instance_id", "symbol", "from_time", "to_time", "page_size", "page_token")
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    FROM_TIME_FIELD_NUMBER: _ClassVar[int]
    TO_TIME_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    instance_id: str
    symbol: str
    from_time: _timestamp_pb2.Timestamp
    to_time: _timestamp_pb2.Timestamp
    page_size: int
    page_token: str
    def __init__(self, instance_id: _Optional[str] = ..., symbol: _Optional[str] = ..., from_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., to_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListDealsResponse(_message.Message):
    __slots__ = ("deals", "next_page_token")
    DEALS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    deals: _containers.RepeatedCompositeFieldContainer[_common_pb2.Fill]
    next_page_token: str
    def __init__(self, deals: _Optional[_Iterable[_Union[_common_pb2.Fill, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ListTicksRequest(_message.Message):
    __slots__ = ("instance_id", "symbol", "count", "from_time", "to_time", "page_size", "page_token")
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    FROM_TIME_FIELD_NUMBER: _ClassVar[int]
    TO_TIME_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    instance_id: str
    symbol: str
    count: int
    from_time: _timestamp_pb2.Timestamp
    to_time: _timestamp_pb2.Timestamp
    page_size: int
    page_token: str
    def __init__(self, instance_id: _Optional[str] = ..., symbol: _Optional[str] = ..., count: _Optional[int] = ..., from_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., to_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListTicksResponse(_message.Message):
    __slots__ = ("ticks", "next_page_token")
    TICKS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    ticks: _containers.RepeatedCompositeFieldContainer[_common_pb2.Tick]
    next_page_token: str
    def __init__(self, ticks: _Optional[_Iterable[_Union[_common_pb2.Tick, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ExportHistoryRequest(_message.Message):
    __slots__ = ("out_dir", "format", "since", "until")
    OUT_DIR_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    out_dir: str
    format: str
    since: _timestamp_pb2.Timestamp
    until: _timestamp_pb2.Timestamp
    def __init__(self, out_dir: _Optional[str] = ..., format: _Optional[str] = ..., since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ExportedTable(_message.Message):
    __slots__ = ("table", "path", "rows")
    TABLE_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    table: str
    path: str
    rows: int
    def __init__(self, table: _Optional[str] = ..., path: _Optional[str] = ..., rows: _Optional[int] = ...) -> None: ...

class ExportHistoryResponse(_message.Message):
    __slots__ = ("tables",)
    TABLES_FIELD_NUMBER: _ClassVar[int]
    tables: _containers.RepeatedCompositeFieldContainer[ExportedTable]
    def __init__(self, tables: _Optional[_Iterable[_Union[ExportedTable, _Mapping]]] = ...) -> None: ...
