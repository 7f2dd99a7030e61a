"""Who may call each RPC, and how its instances are scoped: one row per method of every
mt5exec.v1 service. A method without a row makes the server refuse to start (and the auth
matrix test fail): a new RPC cannot be left open by accident.

Roles: admin may do everything; trader may trade (orders, positions, risk settings,
trading state, an instance's kill switch) on its owner's instances; viewer may read and stream
them. A principal other than an admin sees only its owner's instances: another owner's is
NOT_FOUND exactly as one that does not exist.

Scopes (how a request names instances):

- ``NONE``: none (the method is admin-only, or about the caller itself).
- ``INSTANCE``: ``field`` (a dotted path) is an instance id; the guard checks it is visible
  before the servicer runs. An empty one is left to the servicer (it is required, or, for
  StreamExecutions, means every instance the principal sees).
- ``INSTANCES``: ``field`` is a list of instance ids, each checked; an empty list is every
  instance the principal sees (the servicer narrows it: StreamService).
- ``OWNER``: the servicer lists only the principal's owner's instances (ListInstances).
- ``ENGINE``: the request is raw bytes the engine decodes: the servicer passes the principal's
  owner to the engine, which answers NOT_FOUND for another owner's instance (PlaceOrder,
  OrderSession).
- ``KILL_SWITCH``: ``scope.instance_id`` is checked as INSTANCE; the owner and global scopes
  need an admin.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from mt5exec.auth.principal import Role


class Scope(enum.Enum):
    NONE = "none"
    INSTANCE = "instance"
    INSTANCES = "instances"
    OWNER = "owner"
    ENGINE = "engine"
    KILL_SWITCH = "kill_switch"


@dataclass(frozen=True)
class Rule:
    """The least role that may call a method, and how its request is scoped."""

    role: Role
    scope: Scope = Scope.NONE
    field: str = ""


def _admin() -> Rule:
    return Rule(Role.ADMIN)


def _read(field: str = "instance_id") -> Rule:
    return Rule(Role.VIEWER, Scope.INSTANCE, field)


def _trade(field: str = "instance_id") -> Rule:
    return Rule(Role.TRADER, Scope.INSTANCE, field)


_INSTANCE = "mt5exec.v1.InstanceService/"
_ORDER = "mt5exec.v1.OrderService/"
_STREAM = "mt5exec.v1.StreamService/"
_AUTH = "mt5exec.v1.AuthService/"
_MARKET = "mt5exec.v1.MarketDataService/"

RULES: dict[str, Rule] = {
    # Instance lifecycle and the node: admin.
    _INSTANCE + "CreateInstance": _admin(),
    _INSTANCE + "StopInstance": Rule(Role.ADMIN, Scope.INSTANCE, "instance_id"),
    _INSTANCE + "StartInstance": Rule(Role.ADMIN, Scope.INSTANCE, "instance_id"),
    _INSTANCE + "RestartInstance": Rule(Role.ADMIN, Scope.INSTANCE, "instance_id"),
    _INSTANCE + "DeleteInstance": Rule(Role.ADMIN, Scope.INSTANCE, "instance_id"),
    _INSTANCE + "DeployExpert": Rule(Role.ADMIN, Scope.INSTANCE, "instance_id"),
    _INSTANCE + "GetSystemStats": _admin(),
    # Reads.
    _INSTANCE + "GetInstance": _read(),
    _INSTANCE + "ListInstances": Rule(Role.VIEWER, Scope.OWNER),
    _INSTANCE + "GetInstanceStats": _read(),
    # Risk settings, trading state, an instance's kill switch: trader.
    _INSTANCE + "UpdateInstanceConfig": _trade(),
    _INSTANCE + "SetTradingState": _trade(),
    _INSTANCE + "UpdateCredentials": _trade(),
    _INSTANCE + "EngageKillSwitch": Rule(Role.TRADER, Scope.KILL_SWITCH, "scope.instance_id"),
    _INSTANCE + "ReleaseKillSwitch": Rule(Role.TRADER, Scope.KILL_SWITCH, "scope.instance_id"),
    # Orders and positions.
    _ORDER + "PlaceOrder": Rule(Role.TRADER, Scope.ENGINE),
    _ORDER + "OrderSession": Rule(Role.TRADER, Scope.ENGINE),
    _ORDER + "ModifyOrder": _trade(),
    _ORDER + "CancelOrder": _trade(),
    _ORDER + "ModifyPosition": _trade(),
    _ORDER + "ClosePosition": _trade(),
    _ORDER + "CloseAll": _trade(),
    _ORDER + "CheckOrder": _trade("order.instance_id"),
    _ORDER + "GetOrder": _read(),
    _ORDER + "ListOrders": _read(),
    _ORDER + "ListPositions": _read(),
    _ORDER + "GetAccount": _read(),
    # History reads (the DuckDB history): the instance's viewers.
    _ORDER + "ListDeals": _read(),
    _ORDER + "ListTicks": _read(),
    # Writes files on the server's host: admin.
    _ORDER + "ExportHistory": _admin(),
    # The copier: a trader links its owner's instances (the servicer checks the follower and
    # scopes the relations: another owner's is NOT_FOUND).
    _ORDER + "CreateCopyRelation": _trade("relation.master_instance_id"),
    _ORDER + "ListCopyRelations": _read("master_instance_id"),
    _ORDER + "GetCopyRelation": Rule(Role.VIEWER),
    _ORDER + "DeleteCopyRelation": Rule(Role.TRADER),
    # A signal's credential is its source's HMAC (docs/signals.md); the caller must still be
    # a trader (its token passes the gate); the followers are the source's relations.
    _ORDER + "PublishSignal": Rule(Role.TRADER),
    # Streams.
    _STREAM + "StreamTicks": Rule(Role.VIEWER, Scope.INSTANCES, "instance_ids"),
    _STREAM + "StreamExecutions": _read(),
    _STREAM + "StreamAccount": _read(),
    _STREAM + "StreamInstanceEvents": Rule(Role.VIEWER, Scope.INSTANCES, "instance_ids"),
    # Keys: admin; WhoAmI: anyone authenticated.
    _AUTH + "CreateApiKey": _admin(),
    _AUTH + "ListApiKeys": _admin(),
    _AUTH + "RevokeApiKey": _admin(),
    _AUTH + "WhoAmI": Rule(Role.VIEWER),
    _AUTH + "ListAuditRecords": _admin(),
    _MARKET + "ListSymbols": _read(),
    _MARKET + "GetSymbol": _read(),
    _MARKET + "CalcMargin": _read(),
    _MARKET + "CalcProfit": _read(),
    _MARKET + "GetTerminalInfo": _read(),
    _MARKET + "GetRates": _read(),
    _MARKET + "GetTicks": _read(),
    _MARKET + "StreamBook": _read(),
}


def rule(full_name: str) -> Rule:
    """The rule of ``package.Service/Method``; KeyError when it has none."""
    try:
        return RULES[full_name]
    except KeyError:
        raise KeyError(f"{full_name} has no rule in mt5exec.auth.rules.RULES") from None
