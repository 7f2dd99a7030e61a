"""How the MT5 worker executes the engine's orders and answers its reconciliations: the
``OrderExecution`` part of ``MT5Worker``.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from mt5exec.mt5 import constants as c
from mt5exec.terminal.v1 import worker_pb2 as pb
from mt5exec.workers.mt5_convert import deal_proto, now_msc, order_proto, worker_frame
from mt5exec.workers.mt5_market import symbol_proto

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from mt5exec.workers.mt5_terminal import Terminal


log = logging.getLogger("mt5exec.workers.mt5")


# Deals are looked up in [newest seen - slack, now + ahead]: terminal times are the trade
# server's clock (often UTC+2/+3, never far from it), and a deal may reach the terminal's history
# a little after younger ones.
DEAL_SLACK_S = 300
DEAL_AHEAD_S = 3 * 86400
DEAL_LOOKBACK_S = 86400
# After order_send, how long to wait for its deal to show up in the terminal's history before
# reporting it from the result alone.
DEAL_SYNC_WAIT_S = 0.1

# An unknown-outcome request is matched to later deals by its comment for this long.
UNKNOWN_TTL_S = 3600.0

_OK_RESULTS = frozenset(
    {c.TRADE_RETCODE_DONE, c.TRADE_RETCODE_PLACED, c.TRADE_RETCODE_DONE_PARTIAL}
)
# order_check answers 0 ("Done") when the request would pass; some builds answer DONE.
_CHECK_OK = frozenset({0, c.TRADE_RETCODE_DONE})
# SYMBOL_FILLING_* bits (MQL5 constants the Python package does not export).
_FILL_BITS = {c.ORDER_FILLING_FOK: 1, c.ORDER_FILLING_IOC: 2, c.ORDER_FILLING_BOC: 4}
# The filling types tried, in this order, when the terminal refuses the one a request has.
_FILL_ORDER = (c.ORDER_FILLING_FOK, c.ORDER_FILLING_IOC, c.ORDER_FILLING_RETURN)


def _unpriced_fill(req: pb.OrderRequest, result: Any) -> bool:
    """Whether a market order's result says it filled but not at which price."""
    return (
        req.action == c.TRADE_ACTION_DEAL
        and result.retcode in (c.TRADE_RETCODE_DONE, c.TRADE_RETCODE_DONE_PARTIAL)
        and not result.price
    )


def _fill_of(result: Any, deals: list[Any]) -> tuple[int, float, float]:
    """(deal, volume, price) of a fill from its order's deals (the volume-weighted price when
    it took several), or the result's own figures when none of them showed up."""
    mine = [
        d
        for d in deals
        if (result.order and d.order == result.order) or (result.deal and d.ticket == result.deal)
    ]
    lots = sum(d.volume for d in mine)
    if not mine or lots <= 0:
        return result.deal, result.volume, result.price
    price = mine[0].price if len(mine) == 1 else sum(d.price * d.volume for d in mine) / lots
    return result.deal or mine[-1].ticket, result.volume or lots, price


class OrderExecution:
    """The MT5 worker's orders: the MT5 request made from an OrderRequest, order_check with
    the filling types tried in turn, order_send and its answer (deals, order updates, state,
    then the result), an unknown outcome after an IPC error, and reconciliation by comment.
    A part of ``MT5Worker``: what it uses of the worker is declared here."""

    if TYPE_CHECKING:
        mt5: Any
        term: Terminal
        infos: dict[str, pb.SymbolInfo]
        _connected: bool
        _out: list[bytes]
        _last_tick: dict[str, tuple[float, float, float, int]]
        _seen_deals: dict[int, int]
        _unknown: dict[str, tuple[int, float]]
        _reject_next: int
        _pending_reconciles: list[pb.ReconcileRequest]

        def _call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any: ...
        def _many(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any: ...
        def _lost(self, why: str) -> None: ...
        def _new_deals(self) -> list[Any] | None: ...
        def _result(self, req: pb.OrderRequest, retcode: int, comment: str) -> None: ...
        def _send_state(
            self, *, force: bool = False, reported: int = 0, fresh: bool = False
        ) -> None: ...
        def _report_deals(
            self, deals: Iterable[Any], order: int = 0, request_id: int = 0
        ) -> None: ...

    # -- orders -------------------------------------------------------------------------------

    def _filling(self, req: pb.OrderRequest) -> int:
        """The request's filling type, or one the symbol allows when it does not allow that."""
        wanted = req.type_filling
        if req.action not in (c.TRADE_ACTION_DEAL, c.TRADE_ACTION_PENDING):
            return wanted
        info = self.infos.get(req.symbol)
        if info is None:
            raw = self._call("symbol_info", self.mt5.symbol_info, req.symbol)
            if raw is None:
                return wanted
            info = self.infos[req.symbol] = symbol_proto(raw)
        bits = info.filling_mode
        # RETURN is always allowed; BOC (post-only) changes what the order means: keep both.
        if wanted in (c.ORDER_FILLING_RETURN, c.ORDER_FILLING_BOC) or bits & _FILL_BITS[wanted]:
            return wanted
        for mode in (c.ORDER_FILLING_FOK, c.ORDER_FILLING_IOC):
            if bits & _FILL_BITS[mode]:
                return mode
        return c.ORDER_FILLING_RETURN

    def request_dict(self, req: pb.OrderRequest) -> dict[str, Any]:
        """The MT5 request (MqlTradeRequest as a dict) for an OrderRequest."""
        price = req.price
        if req.action == c.TRADE_ACTION_DEAL and not price:
            # Instant-execution symbols need a price; the latest tick's is the one to take.
            tick = self._last_tick.get(req.symbol)
            if tick is None:
                t = self._call("symbol_info_tick", self.mt5.symbol_info_tick, req.symbol)
                if t is not None:
                    tick = (t.bid, t.ask, t.last, t.time_msc)
            if tick is not None:
                price = tick[1] if req.type == c.ORDER_TYPE_BUY else tick[0]
        request: dict[str, Any] = {
            "action": req.action,
            "symbol": req.symbol,
            "volume": req.volume,
            "type": req.type,
            "price": price,
            "sl": req.sl,
            "tp": req.tp,
            "deviation": req.deviation,
            "type_filling": self._filling(req),
            "type_time": req.type_time,
            "magic": req.magic,
            "comment": req.comment,
        }
        if not req.symbol:
            del request["symbol"]
        for key in ("stoplimit", "expiration", "position", "position_by", "order"):
            value = getattr(req, key)
            if value:
                request[key] = value
        return request

    def _execute(self, req: pb.OrderRequest) -> None:
        if self._reject_next > 0:
            self._reject_next -= 1
            self._result(req, c.TRADE_RETCODE_REJECT, "rejected (fault injection)")
            return
        if not self._connected:
            # Nothing reached the terminal: the outcome is known, the order was not placed.
            self._result(req, c.TRADE_RETCODE_CONNECTION, "no connection to the terminal")
            return
        request = self.request_dict(req)
        if not self._connected:
            self._result(req, c.TRADE_RETCODE_CONNECTION, "no connection to the terminal")
            return
        check = self._check(req, request)
        if check is None:
            return
        if req.check_only:
            self._answer_check(req, check)
            return
        if check.retcode not in _CHECK_OK:
            self._result(req, check.retcode, check.comment)
            return
        try:
            result = self.mt5.order_send(request)
        except Exception as e:
            # What the terminal made of it cannot be known: as for an IPC error.
            log.error("order_send raised %s: %s", type(e).__name__, e)
            result, error = None, (c.RES_E_INTERNAL_FAIL, f"order_send raised {type(e).__name__}")
        else:
            error = self.term.last_error() if result is None else (c.RES_S_OK, "")
        if result is None:
            self._send_failed(req, *error)
            return
        self._answer(req, result)

    def _check(self, req: pb.OrderRequest, request: dict[str, Any]) -> Any:
        """order_check, trying the other filling types when the terminal refuses the one taken
        (a symbol's filling flags do not tell the whole story: execution mode, broker rules);
        None when the request was answered already."""
        check = self._call("order_check", self.mt5.order_check, request)
        tried = {request["type_filling"]}
        # BOC (post-only) changes what the order means: never swapped for another type.
        while (
            check is not None
            and check.retcode == c.TRADE_RETCODE_INVALID_FILL
            and req.type_filling != c.ORDER_FILLING_BOC
        ):
            untried = [m for m in _FILL_ORDER if m not in tried]
            if not untried:
                break
            request["type_filling"] = untried[0]
            tried.add(untried[0])
            check = self._call("order_check", self.mt5.order_check, request)
        if check is None:
            code, message = self.term.last_error()
            if not self._connected:
                self._result(req, c.TRADE_RETCODE_CONNECTION, f"not sent: {message} ({code})")
            else:
                self._result(req, c.TRADE_RETCODE_ERROR, f"order_check failed: {message} ({code})")
            return None
        return check

    def _answer_check(self, req: pb.OrderRequest, check: Any) -> None:
        result = pb.OrderResult(
            request_id=req.request_id,
            retcode=check.retcode,
            comment=check.comment,
            time_msc=now_msc(),
            balance=check.balance,
            equity=check.equity,
            margin=check.margin,
            margin_free=check.margin_free,
            margin_level=check.margin_level,
        )
        tick = self._last_tick.get(req.symbol)
        if tick is not None:
            result.bid, result.ask = tick[0], tick[1]
        self._out.append(worker_frame(order_result=result))

    def _send_failed(self, req: pb.OrderRequest, code: int, message: str) -> None:
        if code in c.IPC_ERRORS:
            # The request may have reached the server: never send it again, let the engine
            # reconcile (by comment), and attribute the deal to it if one shows up.
            now = time.monotonic()
            for comment in [k for k, (_, until) in self._unknown.items() if until < now]:
                del self._unknown[comment]
            if req.comment:
                self._unknown[req.comment] = (req.request_id, now + UNKNOWN_TTL_S)
            log.warning("request %d: outcome unknown after %s (%d)", req.request_id, message, code)
            self._result(req, c.TRADE_RETCODE_TIMEOUT, f"outcome unknown: {message} ({code})")
            self._lost(f"order_send: {message} ({code})")
        else:
            self._result(req, c.TRADE_RETCODE_ERROR, f"order_send failed: {message} ({code})")

    def _answer(self, req: pb.OrderRequest, result: Any) -> None:
        ok = result.retcode in _OK_RESULTS
        position = req.position
        deal, volume, price = result.deal, result.volume, result.price
        if ok:
            unpriced = _unpriced_fill(req, result)
            deals = self._deals_of(req, result, unpriced)
            if unpriced:
                # Some brokers (and exchange execution) answer DONE with price 0, and sometimes
                # deal 0: the fill is in the terminal's history, the order's deals say it.
                deal, volume, price = _fill_of(result, deals)
            for d in deals:
                if d.ticket == deal and d.position_id:
                    position = d.position_id
            self._report_deals(deals, result.order, req.request_id)
            filled_at_once = (
                req.action == c.TRADE_ACTION_DEAL and result.retcode == c.TRADE_RETCODE_DONE
            )
            if result.order and not (filled_at_once and price):
                # A market order filled at once needs no OrderUpdate (nor the terminal calls
                # that read it): its result tells the engine all of it; unless the result has
                # no price and no deal of the order showed up: then the order read back says it.
                for o in self._update_of(req, result.order):
                    if not price and o.ticket == result.order:
                        price = o.price_open or o.price_current
                        volume = volume or o.volume_initial - o.volume_current
                        position = position or o.position_id
            if self._connected:
                self._send_state(reported=result.order, fresh=True)
        self._out.append(
            worker_frame(
                order_result=pb.OrderResult(
                    request_id=req.request_id,
                    retcode=result.retcode,
                    deal=deal,
                    order=result.order,
                    volume=volume,
                    price=price,
                    bid=result.bid,
                    ask=result.ask,
                    comment=result.comment,
                    time_msc=now_msc(),
                    position=position,
                )
            )
        )

    def _deals_of(self, req: pb.OrderRequest, result: Any, by_order: bool = False) -> list[Any]:
        """New deals after a result, waiting a little for the result's own deal if needed
        (``by_order``: for a deal of the result's order, when the result names no deal)."""
        deadline = time.monotonic() + DEAL_SYNC_WAIT_S
        by_order = by_order and not result.deal and bool(result.order)
        found: list[Any] = []
        while True:
            new = self._new_deals()
            if new is None:
                break
            found.extend(new)
            if by_order:
                if any(d.order == result.order for d in found):
                    return found
            elif not result.deal or any(d.ticket == result.deal for d in found):
                return found
            if (result.deal and result.deal in self._seen_deals) or time.monotonic() >= deadline:
                break
            # The terminal's history can lag its trade result by a few milliseconds.
            time.sleep(0.005)
        if result.deal and result.deal not in self._seen_deals:
            found.append(self._deal_from_result(req, result))
            self._seen_deals[result.deal] = int(time.time())
        return found

    def _deal_from_result(self, req: pb.OrderRequest, result: Any) -> Any:
        log.warning(
            "deal %d not in the terminal's history yet: reported from the result", result.deal
        )
        t_msc = now_msc()
        return _DealFromResult(
            ticket=result.deal,
            order=result.order,
            position_id=req.position,
            symbol=req.symbol,
            type=c.DEAL_TYPE_BUY if req.type == c.ORDER_TYPE_BUY else c.DEAL_TYPE_SELL,
            entry=c.DEAL_ENTRY_OUT if req.position else c.DEAL_ENTRY_IN,
            volume=result.volume,
            price=result.price,
            magic=req.magic,
            comment=req.comment,
            time=t_msc // 1000,
            time_msc=t_msc,
        )

    def _update_of(self, req: pb.OrderRequest, ticket: int) -> list[Any]:
        """The order read back from the terminal, sent as an OrderUpdate; what was read."""
        found = self._many("orders_get", self.mt5.orders_get, ticket=ticket)
        if not found:
            found = self._many("history_orders_get", self.mt5.history_orders_get, ticket=ticket)
        orders = list(found or ())
        for o in orders:
            self._out.append(
                worker_frame(
                    order_update=pb.OrderUpdate(order=order_proto(o), request_id=req.request_id)
                )
            )
        return orders

    # -- reconciliation -----------------------------------------------------------------------

    def _reconcile(self, rq: pb.ReconcileRequest) -> None:
        if not self._connected:
            self._pending_reconciles.append(rq)
            return
        comments = set(rq.comments)
        now = int(time.time())
        start = rq.from_time_msc // 1000 - DEAL_LOOKBACK_S if rq.from_time_msc else 0
        start = max(0, start)
        mt5 = self.mt5
        history = self._many(
            "history_orders_get", mt5.history_orders_get, start, now + DEAL_AHEAD_S
        )
        open_orders = self._many("orders_get", mt5.orders_get) if history is not None else None
        deals = (
            self._many("history_deals_get", mt5.history_deals_get, start, now + DEAL_AHEAD_S)
            if open_orders is not None
            else None
        )
        if history is None or open_orders is None or deals is None:
            # Answered once the terminal is back.
            self._pending_reconciles.append(rq)
            return
        orders = [o for o in [*open_orders, *history] if o.comment in comments]
        tickets = {o.ticket for o in orders}
        matched = [d for d in deals if d.order in tickets or d.comment in comments]
        self._out.append(
            worker_frame(
                reconcile_result=pb.ReconcileResult(
                    request_id=rq.request_id,
                    orders=[order_proto(o) for o in orders],
                    deals=[deal_proto(d) for d in matched],
                )
            )
        )


class _DealFromResult:
    """A deal known only from an OrderSendResult (the terminal's history had not caught up)."""

    def __init__(self, **fields: Any) -> None:
        self.reason = c.DEAL_REASON_EXPERT
        self.profit = 0.0
        self.commission = 0.0
        self.swap = 0.0
        for key, value in fields.items():
            setattr(self, key, value)
