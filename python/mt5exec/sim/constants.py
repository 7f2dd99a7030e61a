"""MetaTrader 5's trade constants, with the values of the official MetaTrader5 package.

Owns the numbering the simulated broker speaks (the worker protocol passes these through
unchanged, so the engine cannot tell the simulator from a real terminal) and the legal order
state transitions of the simulator. ``mt5exec.sim.broker`` re-exports all of it.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

TRADE_ACTION_DEAL = 1
TRADE_ACTION_PENDING = 5
TRADE_ACTION_SLTP = 6
TRADE_ACTION_MODIFY = 7
TRADE_ACTION_REMOVE = 8
TRADE_ACTION_CLOSE_BY = 10

ORDER_TYPE_BUY = 0
ORDER_TYPE_SELL = 1
ORDER_TYPE_BUY_LIMIT = 2
ORDER_TYPE_SELL_LIMIT = 3
ORDER_TYPE_BUY_STOP = 4
ORDER_TYPE_SELL_STOP = 5
ORDER_TYPE_BUY_STOP_LIMIT = 6
ORDER_TYPE_SELL_STOP_LIMIT = 7
ORDER_TYPE_CLOSE_BY = 8
PENDING_TYPES = frozenset(range(ORDER_TYPE_BUY_LIMIT, ORDER_TYPE_SELL_STOP_LIMIT + 1))
# Buy-side order types; every other type up to SELL_STOP_LIMIT sells.
BUY_TYPES = frozenset(
    (ORDER_TYPE_BUY, ORDER_TYPE_BUY_LIMIT, ORDER_TYPE_BUY_STOP, ORDER_TYPE_BUY_STOP_LIMIT)
)

ORDER_STATE_STARTED = 0
ORDER_STATE_PLACED = 1
ORDER_STATE_CANCELED = 2
ORDER_STATE_PARTIAL = 3
ORDER_STATE_FILLED = 4
ORDER_STATE_REJECTED = 5
ORDER_STATE_EXPIRED = 6
ACTIVE_STATES = frozenset((ORDER_STATE_PLACED, ORDER_STATE_PARTIAL))

# The transitions the simulator makes (None: an order that did not exist yet). An order is
# created PLACED (pending, or a RETURN market order nothing of which could fill yet), PARTIAL
# (part filled, the rest still working), FILLED, or CANCELED (an IOC order whose unfilled rest
# was cancelled). PLACED -> PLACED is a modification or a stop-limit turning into a limit order.
# REJECTED: a triggered order the account could not afford. Final states never change.
LEGAL_TRANSITIONS: Mapping[int | None, frozenset[int]] = MappingProxyType(
    {
        None: frozenset(
            (ORDER_STATE_PLACED, ORDER_STATE_PARTIAL, ORDER_STATE_FILLED, ORDER_STATE_CANCELED)
        ),
        ORDER_STATE_PLACED: frozenset(
            (
                ORDER_STATE_PLACED,
                ORDER_STATE_PARTIAL,
                ORDER_STATE_FILLED,
                ORDER_STATE_CANCELED,
                ORDER_STATE_EXPIRED,
                ORDER_STATE_REJECTED,
            )
        ),
        ORDER_STATE_PARTIAL: frozenset(
            (
                ORDER_STATE_PARTIAL,
                ORDER_STATE_FILLED,
                ORDER_STATE_CANCELED,
                ORDER_STATE_EXPIRED,
                ORDER_STATE_REJECTED,
            )
        ),
        ORDER_STATE_FILLED: frozenset(),
        ORDER_STATE_CANCELED: frozenset(),
        ORDER_STATE_EXPIRED: frozenset(),
        ORDER_STATE_REJECTED: frozenset(),
    }
)

ORDER_FILLING_FOK = 0
ORDER_FILLING_IOC = 1
ORDER_FILLING_RETURN = 2
ORDER_FILLING_BOC = 3

ORDER_TIME_GTC = 0
ORDER_TIME_DAY = 1
ORDER_TIME_SPECIFIED = 2
ORDER_TIME_SPECIFIED_DAY = 3

POSITION_TYPE_BUY = 0
POSITION_TYPE_SELL = 1

DEAL_TYPE_BUY = 0
DEAL_TYPE_SELL = 1
DEAL_ENTRY_IN = 0
DEAL_ENTRY_OUT = 1
DEAL_ENTRY_INOUT = 2
DEAL_ENTRY_OUT_BY = 3

DEAL_REASON_CLIENT = 0
DEAL_REASON_EXPERT = 3
DEAL_REASON_SL = 4
DEAL_REASON_TP = 5
DEAL_REASON_SO = 6

ACCOUNT_MARGIN_MODE_RETAIL_NETTING = 0
ACCOUNT_MARGIN_MODE_RETAIL_HEDGING = 2

TRADE_RETCODE_CHECK_OK = 0  # order_check: the request would pass
TRADE_RETCODE_REQUOTE = 10004
TRADE_RETCODE_REJECT = 10006
TRADE_RETCODE_PLACED = 10008
TRADE_RETCODE_DONE = 10009
TRADE_RETCODE_DONE_PARTIAL = 10010
TRADE_RETCODE_ERROR = 10011
TRADE_RETCODE_INVALID = 10013
TRADE_RETCODE_INVALID_VOLUME = 10014
TRADE_RETCODE_INVALID_PRICE = 10015
TRADE_RETCODE_INVALID_STOPS = 10016
TRADE_RETCODE_TRADE_DISABLED = 10017
TRADE_RETCODE_MARKET_CLOSED = 10018
TRADE_RETCODE_NO_MONEY = 10019
TRADE_RETCODE_INVALID_EXPIRATION = 10022
TRADE_RETCODE_NO_CHANGES = 10025
TRADE_RETCODE_FROZEN = 10029
TRADE_RETCODE_INVALID_FILL = 10030
TRADE_RETCODE_INVALID_ORDER = 10035
TRADE_RETCODE_POSITION_CLOSED = 10036
TRADE_RETCODE_INVALID_CLOSE_VOLUME = 10038
TRADE_RETCODE_LONG_ONLY = 10042
TRADE_RETCODE_SHORT_ONLY = 10043
TRADE_RETCODE_CLOSE_ONLY = 10044
