import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from mt5exec.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DeploymentStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DEPLOYMENT_STATUS_UNSPECIFIED: _ClassVar[DeploymentStatus]
    DEPLOYMENT_STATUS_SUCCESS: _ClassVar[DeploymentStatus]
    DEPLOYMENT_STATUS_PARTIAL: _ClassVar[DeploymentStatus]
    DEPLOYMENT_STATUS_FAILED: _ClassVar[DeploymentStatus]
DEPLOYMENT_STATUS_UNSPECIFIED: DeploymentStatus
DEPLOYMENT_STATUS_SUCCESS: DeploymentStatus
DEPLOYMENT_STATUS_PARTIAL: DeploymentStatus
DEPLOYMENT_STATUS_FAILED: DeploymentStatus

class CreateInstanceRequest(_message.Message):
    __slots__ = ("instance_id", "owner", "backend", "config", "password")
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_FIELD_NUMBER: _ClassVar[int]
    instance_id: str
    owner: str
    backend: _common_pb2.Backend
    config: _common_pb2.InstanceConfig
    password: str
    def __init__(self, instance_id: _Optional[str] = ..., owner: _Optional[str] = ..., backend: _Optional[_Union[_common_pb2.Backend, str]] = ..., config: _Optional[_Union[_common_pb2.InstanceConfig, _Mapping]] = ..., password: _Optional[str] = ...) -> None: ...

class CreateInstanceResponse(_message.Message):
    __slots__ = ("instance",)
    INSTANCE_FIELD_NUMBER: _ClassVar[int]
    instance: _common_pb2.Instance
    def __init__(self, instance: _Optional[_Union[_common_pb2.Instance, _Mapping]] = ...) -> None: ...

class GetInstanceRequest(_message.Message):
    __slots__ = ("instance_id",)
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    instance_id: str
    def __init__(self, instance_id: _Optional[str] = ...) -> None: ...

class GetInstanceResponse(_message.Message):
    __slots__ = ("instance",)
    INSTANCE_FIELD_NUMBER: _ClassVar[int]
    instance: _common_pb2.Instance
    def __init__(self, instance: _Optional[_Union[_common_pb2.Instance, _Mapping]] = ...) -> None: ...

class ListInstancesRequest(_message.Message):
    __slots__ = ("owner", "states", "page_size", "page_token")
    OWNER_FIELD_NUMBER: _ClassVar[int]
    STATES_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    owner: str
    states: _containers.RepeatedScalarFieldContainer[_common_pb2.InstanceState]
    page_size: int
    page_token: str
    def __init__(self, owner: _Optional[str] = ..., states: _Optional[_Iterable[_Union[_common_pb2.InstanceState, str]]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListInstancesResponse(_message.Message):
    __slots__ = ("instances", "next_page_token")
    INSTANCES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    instances: _containers.RepeatedCompositeFieldContainer[_common_pb2.Instance]
    next_page_token: str
    def __init__(self, instances: _Optional[_Iterable[_Union[_common_pb2.Instance, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class StopInstanceRequest(_message.Message):
    __slots__ = ("instance_id", "grace")
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    GRACE_FIELD_NUMBER: _ClassVar[int]
    instance_id: str
    grace: _duration_pb2.Duration
    def __init__(self, instance_id: _Optional[str] = ..., grace: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class StopInstanceResponse(_message.Message):
    __slots__ = ("instance",)
    INSTANCE_FIELD_NUMBER: _ClassVar[int]
    instance: _common_pb2.Instance
    def __init__(self, instance: _Optional[_Union[_common_pb2.Instance, _Mapping]] = ...) -> None: ...

class StartInstanceRequest(_message.Message):
    __slots__ = ("instance_id",)
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    instance_id: str
    def __init__(self, instance_id: _Optional[str] = ...) -> None: ...

class StartInstanceResponse(_message.Message):
    __slots__ = ("instance",)
    INSTANCE_FIELD_NUMBER: _ClassVar[int]
    instance: _common_pb2.Instance
    def __init__(self, instance: _Optional[_Union[_common_pb2.Instance, _Mapping]] = ...) -> None: ...

class RestartInstanceRequest(_message.Message):
    __slots__ = ("instance_id",)
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    instance_id: str
    def __init__(self, instance_id: _Optional[str] = ...) -> None: ...

class RestartInstanceResponse(_message.Message):
    __slots__ = ("instance",)
    INSTANCE_FIELD_NUMBER: _ClassVar[int]
    instance: _common_pb2.Instance
    def __init__(self, instance: _Optional[_Union[_common_pb2.Instance, _Mapping]] = ...) -> None: ...

class DeleteInstanceRequest(_message.Message):
    __slots__ = ("instance_id",)
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    instance_id: str
    def __init__(self, instance_id: _Optional[str] = ...) -> None: ...

class DeleteInstanceResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class UpdateCredentialsRequest(_message.Message):
    __slots__ = ("instance_id", "password", "login", "server")
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_FIELD_NUMBER: _ClassVar[int]
    LOGIN_FIELD_NUMBER: _ClassVar[int]
    SERVER_FIELD_NUMBER: _ClassVar[int]
    instance_id: str
    password: str
    login: int
    server: str
    def __init__(self, instance_id: _Optional[str] = ..., password: _Optional[str] = ..., login: _Optional[int] = ..., server: _Optional[str] = ...) -> None: ...

class UpdateCredentialsResponse(_message.Message):
    __slots__ = ("instance",)
    INSTANCE_FIELD_NUMBER: _ClassVar[int]
    instance: _common_pb2.Instance
    def __init__(self, instance: _Optional[_Union[_common_pb2.Instance, _Mapping]] = ...) -> None: ...

class UpdateInstanceConfigRequest(_message.Message):
    __slots__ = ("instance_id", "config", "expected_version", "update_mask")
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    instance_id: str
    config: _common_pb2.InstanceConfig
    expected_version: int
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, instance_id: _Optional[str] = ..., config: _Optional[_Union[_common_pb2.InstanceConfig, _Mapping]] = ..., expected_version: _Optional[int] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class UpdateInstanceConfigResponse(_message.Message):
    __slots__ = ("instance", "version")
    INSTANCE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    instance: _common_pb2.Instance
    version: int
    def __init__(self, instance: _Optional[_Union[_common_pb2.Instance, _Mapping]] = ..., version: _Optional[int] = ...) -> None: ...

class SetTradingStateRequest(_message.Message):
    __slots__ = ("instance_id", "trading_state", "reason")
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    TRADING_STATE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    instance_id: str
    trading_state: _common_pb2.TradingState
    reason: str
    def __init__(self, instance_id: _Optional[str] = ..., trading_state: _Optional[_Union[_common_pb2.TradingState, str]] = ..., reason: _Optional[str] = ...) -> None: ...

class SetTradingStateResponse(_message.Message):
    __slots__ = ("instance",)
    INSTANCE_FIELD_NUMBER: _ClassVar[int]
    instance: _common_pb2.Instance
    def __init__(self, instance: _Optional[_Union[_common_pb2.Instance, _Mapping]] = ...) -> None: ...

class KillSwitchScope(_message.Message):
    __slots__ = ("instance_id", "owner")
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    GLOBAL_FIELD_NUMBER: _ClassVar[int]
    instance_id: str
    owner: str
    def __init__(self, instance_id: _Optional[str] = ..., owner: _Optional[str] = ..., **kwargs) -> None: ...

class EngageKillSwitchRequest(_message.Message):
    __slots__ = ("scope", "close_positions", "reason")
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    CLOSE_POSITIONS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    scope: KillSwitchScope
    close_positions: bool
    reason: str
    def __init__(self, scope: _Optional[_Union[KillSwitchScope, _Mapping]] = ..., close_positions: _Optional[bool] = ..., reason: _Optional[str] = ...) -> None: ...

class EngageKillSwitchResponse(_message.Message):
    __slots__ = ("instance_ids", "orders_cancelled", "positions_closed")
    INSTANCE_IDS_FIELD_NUMBER: _ClassVar[int]
    ORDERS_CANCELLED_FIELD_NUMBER: _ClassVar[int]
    POSITIONS_CLOSED_FIELD_NUMBER: _ClassVar[int]
    instance_ids: _containers.RepeatedScalarFieldContainer[str]
    orders_cancelled: int
    positions_closed: int
    def __init__(self, instance_ids: _Optional[_Iterable[str]] = ..., orders_cancelled: _Optional[int] = ..., positions_closed: _Optional[int] = ...) -> None: ...

class ReleaseKillSwitchRequest(_message.Message):
    __slots__ = ("scope",)
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    scope: KillSwitchScope
    def __init__(self, scope: _Optional[_Union[KillSwitchScope, _Mapping]] = ...) -> None: ...

class ReleaseKillSwitchResponse(_message.Message):
    __slots__ = ("instance_ids",)
    INSTANCE_IDS_FIELD_NUMBER: _ClassVar[int]
    instance_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, instance_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class DeployExpertRequest(_message.Message):
    __slots__ = ("instance_id", "expert_name", "expert_file", "symbol", "period", "timeout")
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    EXPERT_NAME_FIELD_NUMBER: _ClassVar[int]
    EXPERT_FILE_FIELD_NUMBER: _ClassVar[int]
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    instance_id: str
    expert_name: str
    expert_file: bytes
    symbol: str
    period: str
    timeout: _duration_pb2.Duration
    def __init__(self, instance_id: _Optional[str] = ..., expert_name: _Optional[str] = ..., expert_file: _Optional[bytes] = ..., symbol: _Optional[str] = ..., period: _Optional[str] = ..., timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class DeployExpertResponse(_message.Message):
    __slots__ = ("status", "ready_seen", "heartbeat_seen", "details")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    READY_SEEN_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_SEEN_FIELD_NUMBER: _ClassVar[int]
    DETAILS_FIELD_NUMBER: _ClassVar[int]
    status: DeploymentStatus
    ready_seen: bool
    heartbeat_seen: bool
    details: str
    def __init__(self, status: _Optional[_Union[DeploymentStatus, str]] = ..., ready_seen: _Optional[bool] = ..., heartbeat_seen: _Optional[bool] = ..., details: _Optional[str] = ...) -> None: ...

class InstanceStats(_message.Message):
    __slots__ = ("instance_id", "state", "worker_pid", "rss_bytes", "cpu_percent", "uptime", "restarts", "heartbeat_age", "last_tick_time")
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    WORKER_PID_FIELD_NUMBER: _ClassVar[int]
    RSS_BYTES_FIELD_NUMBER: _ClassVar[int]
    CPU_PERCENT_FIELD_NUMBER: _ClassVar[int]
    UPTIME_FIELD_NUMBER: _ClassVar[int]
    RESTARTS_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_AGE_FIELD_NUMBER: _ClassVar[int]
    LAST_TICK_TIME_FIELD_NUMBER: _ClassVar[int]
    instance_id: str
    state: _common_pb2.InstanceState
    worker_pid: int
    rss_bytes: int
    cpu_percent: float
    uptime: _duration_pb2.Duration
    restarts: int
    heartbeat_age: _duration_pb2.Duration
    last_tick_time: _timestamp_pb2.Timestamp
    def __init__(self, instance_id: _Optional[str] = ..., state: _Optional[_Union[_common_pb2.InstanceState, str]] = ..., worker_pid: _Optional[int] = ..., rss_bytes: _Optional[int] = ..., cpu_percent: _Optional[float] = ..., uptime: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., restarts: _Optional[int] = ..., heartbeat_age: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., last_tick_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetInstanceStatsRequest(_message.Message):
    __slots__ = ("instance_id",)
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    instance_id: str
    def __init__(self, instance_id: _Optional[str] = ...) -> None: ...

class GetInstanceStatsResponse(_message.Message):
    __slots__ = ("stats",)
    STATS_FIELD_NUMBER: _ClassVar[int]
    stats: InstanceStats
    def __init__(self, stats: _Optional[_Union[InstanceStats, _Mapping]] = ...) -> None: ...

class GetSystemStatsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetSystemStatsResponse(_message.Message):
    __slots__ = ("users", "instances", "instances_ready", "experts_deployed", "server_rss_bytes", "uptime")
    USERS_FIELD_NUMBER: _ClassVar[int]
    INSTANCES_FIELD_NUMBER: _ClassVar[int]
    INSTANCES_READY_FIELD_NUMBER: _ClassVar[int]
    EXPERTS_DEPLOYED_FIELD_NUMBER: _ClassVar[int]
    SERVER_RSS_BYTES_FIELD_NUMBER: _ClassVar[int]
    UPTIME_FIELD_NUMBER: _ClassVar[int]
    users: int
    instances: int
    instances_ready: int
    experts_deployed: int
    server_rss_bytes: int
    uptime: _duration_pb2.Duration
    def __init__(self, users: _Optional[int] = ..., instances: _Optional[int] = ..., instances_ready: _Optional[int] = ..., experts_deployed: _Optional[int] = ..., server_rss_bytes: _Optional[int] = ..., uptime: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...
