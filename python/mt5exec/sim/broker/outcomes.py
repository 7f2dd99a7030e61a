"""What the broker answers: a request's ``SendOutcome``, the ``Activity`` it made on its own, and
the ``Reject`` a failed check raises."""

from __future__ import annotations

from dataclasses import dataclass, field

from mt5exec.terminal.v1 import worker_pb2 as pb


@dataclass(slots=True)
class SendOutcome:
    """Everything one ``SimBroker.send`` produced, in the order the engine must see it."""

    result: pb.OrderResult
    deals: list[pb.DealReport] = field(default_factory=list)
    order_updates: list[pb.OrderUpdate] = field(default_factory=list)
    positions_changed: bool = False
    orders_changed: bool = False
    account_changed: bool = False


@dataclass(slots=True)
class Activity:
    """Changes the broker made on its own (ticks, timers), in the order they happened."""

    deals: list[pb.DealReport] = field(default_factory=list)
    order_updates: list[pb.OrderUpdate] = field(default_factory=list)
    positions_changed: bool = False
    orders_changed: bool = False
    account_changed: bool = False
    events: list[pb.WorkerEvent] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(
            self.deals
            or self.order_updates
            or self.positions_changed
            or self.orders_changed
            or self.account_changed
            or self.events
        )


class Reject(Exception):
    """A request fails with ``retcode``; raised by the checks, answered by ``SimBroker.send``."""

    def __init__(self, retcode: int, comment: str, bid: float = 0.0, ask: float = 0.0) -> None:
        super().__init__(comment)
        self.retcode = retcode
        self.comment = comment
        # A requote carries the prices it offers instead of the market's.
        self.bid = bid
        self.ask = ask
