"""The simulated broker's order-state rules, on MetaTrader 5's numbering.

MT5's own names and values live in ``mt5exec.mt5.constants`` (the official MetaTrader5
package's constants); this module re-exports the ones the simulated broker speaks (the worker
protocol passes them through unchanged, so the engine cannot tell the simulator from a real
terminal) and adds what is the simulator's own: the order-type and order-state sets, the legal
order state transitions and ``TRADE_RETCODE_CHECK_OK``. ``mt5exec.sim.broker`` re-exports all
of it (``__all__``).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from mt5exec.mt5.constants import (
    ACCOUNT_MARGIN_MODE_RETAIL_HEDGING,
    ACCOUNT_MARGIN_MODE_RETAIL_NETTING,
    DEAL_ENTRY_IN,
    DEAL_ENTRY_INOUT,
    DEAL_ENTRY_OUT,
    DEAL_ENTRY_OUT_BY,
    DEAL_REASON_CLIENT,
    DEAL_REASON_EXPERT,
    DEAL_REASON_SL,
    DEAL_REASON_SO,
    DEAL_REASON_TP,
    DEAL_TYPE_BUY,
    DEAL_TYPE_SELL,
    ORDER_FILLING_BOC,
    ORDER_FILLING_FOK,
    ORDER_FILLING_IOC,
    ORDER_FILLING_RETURN,
    ORDER_STATE_CANCELED,
    ORDER_STATE_EXPIRED,
    ORDER_STATE_FILLED,
    ORDER_STATE_PARTIAL,
    ORDER_STATE_PLACED,
    ORDER_STATE_REJECTED,
    ORDER_STATE_STARTED,
    ORDER_TIME_DAY,
    ORDER_TIME_GTC,
    ORDER_TIME_SPECIFIED,
    ORDER_TIME_SPECIFIED_DAY,
    ORDER_TYPE_BUY,
    ORDER_TYPE_BUY_LIMIT,
    ORDER_TYPE_BUY_STOP,
    ORDER_TYPE_BUY_STOP_LIMIT,
    ORDER_TYPE_CLOSE_BY,
    ORDER_TYPE_SELL,
    ORDER_TYPE_SELL_LIMIT,
    ORDER_TYPE_SELL_STOP,
    ORDER_TYPE_SELL_STOP_LIMIT,
    POSITION_TYPE_BUY,
    POSITION_TYPE_SELL,
    TRADE_ACTION_CLOSE_BY,
    TRADE_ACTION_DEAL,
    TRADE_ACTION_MODIFY,
    TRADE_ACTION_PENDING,
    TRADE_ACTION_REMOVE,
    TRADE_ACTION_SLTP,
    TRADE_RETCODE_CLOSE_ONLY,
    TRADE_RETCODE_CONNECTION,
    TRADE_RETCODE_DONE,
    TRADE_RETCODE_DONE_PARTIAL,
    TRADE_RETCODE_ERROR,
    TRADE_RETCODE_FROZEN,
    TRADE_RETCODE_INVALID,
    TRADE_RETCODE_INVALID_CLOSE_VOLUME,
    TRADE_RETCODE_INVALID_EXPIRATION,
    TRADE_RETCODE_INVALID_FILL,
    TRADE_RETCODE_INVALID_ORDER,
    TRADE_RETCODE_INVALID_PRICE,
    TRADE_RETCODE_INVALID_STOPS,
    TRADE_RETCODE_INVALID_VOLUME,
    TRADE_RETCODE_LONG_ONLY,
    TRADE_RETCODE_MARKET_CLOSED,
    TRADE_RETCODE_NO_CHANGES,
    TRADE_RETCODE_NO_MONEY,
    TRADE_RETCODE_PLACED,
    TRADE_RETCODE_POSITION_CLOSED,
    TRADE_RETCODE_REJECT,
    TRADE_RETCODE_REQUOTE,
    TRADE_RETCODE_SHORT_ONLY,
    TRADE_RETCODE_TRADE_DISABLED,
)

PENDING_TYPES = frozenset(range(ORDER_TYPE_BUY_LIMIT, ORDER_TYPE_SELL_STOP_LIMIT + 1))
# Buy-side order types; every other type up to SELL_STOP_LIMIT sells.
BUY_TYPES = frozenset(
    (ORDER_TYPE_BUY, ORDER_TYPE_BUY_LIMIT, ORDER_TYPE_BUY_STOP, ORDER_TYPE_BUY_STOP_LIMIT)
)

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

# order_check: the request would pass. The official package has no name for this retcode,
# so it lives here rather than in mt5.constants.
TRADE_RETCODE_CHECK_OK = 0

__all__ = [
    "ACCOUNT_MARGIN_MODE_RETAIL_HEDGING",
    "ACCOUNT_MARGIN_MODE_RETAIL_NETTING",
    "ACTIVE_STATES",
    "BUY_TYPES",
    "DEAL_ENTRY_IN",
    "DEAL_ENTRY_INOUT",
    "DEAL_ENTRY_OUT",
    "DEAL_ENTRY_OUT_BY",
    "DEAL_REASON_CLIENT",
    "DEAL_REASON_EXPERT",
    "DEAL_REASON_SL",
    "DEAL_REASON_SO",
    "DEAL_REASON_TP",
    "DEAL_TYPE_BUY",
    "DEAL_TYPE_SELL",
    "LEGAL_TRANSITIONS",
    "ORDER_FILLING_BOC",
    "ORDER_FILLING_FOK",
    "ORDER_FILLING_IOC",
    "ORDER_FILLING_RETURN",
    "ORDER_STATE_CANCELED",
    "ORDER_STATE_EXPIRED",
    "ORDER_STATE_FILLED",
    "ORDER_STATE_PARTIAL",
    "ORDER_STATE_PLACED",
    "ORDER_STATE_REJECTED",
    "ORDER_STATE_STARTED",
    "ORDER_TIME_DAY",
    "ORDER_TIME_GTC",
    "ORDER_TIME_SPECIFIED",
    "ORDER_TIME_SPECIFIED_DAY",
    "ORDER_TYPE_BUY",
    "ORDER_TYPE_BUY_LIMIT",
    "ORDER_TYPE_BUY_STOP",
    "ORDER_TYPE_BUY_STOP_LIMIT",
    "ORDER_TYPE_CLOSE_BY",
    "ORDER_TYPE_SELL",
    "ORDER_TYPE_SELL_LIMIT",
    "ORDER_TYPE_SELL_STOP",
    "ORDER_TYPE_SELL_STOP_LIMIT",
    "PENDING_TYPES",
    "POSITION_TYPE_BUY",
    "POSITION_TYPE_SELL",
    "TRADE_ACTION_CLOSE_BY",
    "TRADE_ACTION_DEAL",
    "TRADE_ACTION_MODIFY",
    "TRADE_ACTION_PENDING",
    "TRADE_ACTION_REMOVE",
    "TRADE_ACTION_SLTP",
    "TRADE_RETCODE_CHECK_OK",
    "TRADE_RETCODE_CLOSE_ONLY",
    "TRADE_RETCODE_CONNECTION",
    "TRADE_RETCODE_DONE",
    "TRADE_RETCODE_DONE_PARTIAL",
    "TRADE_RETCODE_ERROR",
    "TRADE_RETCODE_FROZEN",
    "TRADE_RETCODE_INVALID",
    "TRADE_RETCODE_INVALID_CLOSE_VOLUME",
    "TRADE_RETCODE_INVALID_EXPIRATION",
    "TRADE_RETCODE_INVALID_FILL",
    "TRADE_RETCODE_INVALID_ORDER",
    "TRADE_RETCODE_INVALID_PRICE",
    "TRADE_RETCODE_INVALID_STOPS",
    "TRADE_RETCODE_INVALID_VOLUME",
    "TRADE_RETCODE_LONG_ONLY",
    "TRADE_RETCODE_MARKET_CLOSED",
    "TRADE_RETCODE_NO_CHANGES",
    "TRADE_RETCODE_NO_MONEY",
    "TRADE_RETCODE_PLACED",
    "TRADE_RETCODE_POSITION_CLOSED",
    "TRADE_RETCODE_REJECT",
    "TRADE_RETCODE_REQUOTE",
    "TRADE_RETCODE_SHORT_ONLY",
    "TRADE_RETCODE_TRADE_DISABLED",
]
