import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from mt5exec.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class StreamTicksRequest(_message.Message):
    __slots__ = ("instance_ids", "symbols", "conflate")
    INSTANCE_IDS_FIELD_NUMBER: _ClassVar[int]
    SYMBOLS_FIELD_NUMBER: _ClassVar[int]
    CONFLATE_FIELD_NUMBER: _ClassVar[int]
    instance_ids: _containers.RepeatedScalarFieldContainer[str]
    symbols: _containers.RepeatedScalarFieldContainer[str]
    conflate: bool
    def __init__(self, instance_ids: _Optional[_Iterable[str]] = ..., symbols: _Optional[_Iterable[str]] = ..., conflate: _Optional[bool] = ...) -> None: ...

class StreamTicksResponse(_message.Message):
    __slots__ = ("ticks", "sequence", "dropped")
    TICKS_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    DROPPED_FIELD_NUMBER: _ClassVar[int]
    ticks: _containers.RepeatedCompositeFieldContainer[_common_pb2.Tick]
    sequence: int
    dropped: int
    def __init__(self, ticks: _Optional[_Iterable[_Union[_common_pb2.Tick, _Mapping]]] = ..., sequence: _Optional[int] = ..., dropped: _Optional[int] = ...) -> None: ...

class StreamExecutionsRequest(_message.Message):
    __slots__ = ("instance_id", "from_sequence", "start")
    class Start(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        START_UNSPECIFIED: _ClassVar[StreamExecutionsRequest.Start]
        START_LIVE: _ClassVar[StreamExecutionsRequest.Start]
    START_UNSPECIFIED: StreamExecutionsRequest.Start
    START_LIVE: StreamExecutionsRequest.Start
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    FROM_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    instance_id: str
    from_sequence: int
    start: StreamExecutionsRequest.Start
    def __init__(self, instance_id: _Optional[str] = ..., from_sequence: _Optional[int] = ..., start: _Optional[_Union[StreamExecutionsRequest.Start, str]] = ...) -> None: ...

class StreamExecutionsResponse(_message.Message):
    __slots__ = ("events",)
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[_common_pb2.ExecutionEvent]
    def __init__(self, events: _Optional[_Iterable[_Union[_common_pb2.ExecutionEvent, _Mapping]]] = ...) -> None: ...

class StreamAccountRequest(_message.Message):
    __slots__ = ("instance_id", "interval")
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_FIELD_NUMBER: _ClassVar[int]
    instance_id: str
    interval: _duration_pb2.Duration
    def __init__(self, instance_id: _Optional[str] = ..., interval: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class StreamAccountResponse(_message.Message):
    __slots__ = ("accounts",)
    ACCOUNTS_FIELD_NUMBER: _ClassVar[int]
    accounts: _containers.RepeatedCompositeFieldContainer[_common_pb2.Account]
    def __init__(self, accounts: _Optional[_Iterable[_Union[_common_pb2.Account, _Mapping]]] = ...) -> None: ...

class StreamInstanceEventsRequest(_message.Message):
    __slots__ = ("instance_ids",)
    INSTANCE_IDS_FIELD_NUMBER: _ClassVar[int]
    instance_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, instance_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class StreamInstanceEventsResponse(_message.Message):
    __slots__ = ("events",)
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[_common_pb2.InstanceEvent]
    def __init__(self, events: _Optional[_Iterable[_Union[_common_pb2.InstanceEvent, _Mapping]]] = ...) -> None: ...
