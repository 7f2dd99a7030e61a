"""Snapshots: what the account reports (balance, equity, margin; its working orders; its open
positions), with the cache that keeps the position snapshot cheap as positions pile up."""

from __future__ import annotations

from collections.abc import Iterable

from mt5exec.sim.broker.config import SERVER_NAME
from mt5exec.sim.broker.core import BrokerCore
from mt5exec.sim.broker.prices import Market
from mt5exec.sim.broker.records import POSITION_TAIL, PRICE_CURRENT_TAG, PROFIT_TAG, Position
from mt5exec.sim.constants import (
    ACCOUNT_MARGIN_MODE_RETAIL_HEDGING,
    ACCOUNT_MARGIN_MODE_RETAIL_NETTING,
    POSITION_TYPE_BUY,
)
from mt5exec.terminal.v1 import worker_pb2 as pb

# Snapshot entries are cached in blocks of 2**_BLOCK_BITS consecutive tickets (see PositionCache).
_BLOCK_BITS = 6


class Block:
    """Snapshot entries of the open positions whose tickets share ``ticket >> _BLOCK_BITS``."""

    __slots__ = ("blob", "entries")

    def __init__(self) -> None:
        self.entries: dict[int, bytes] = {}
        self.blob: bytes | None = None

    def joined(self) -> bytes:
        blob = self.blob
        if blob is None:
            blob = self.blob = b"".join(self.entries.values())
        return blob


class PositionCache:
    """The serialized ``PositionSnapshot``, cached in pieces.

    Each open position's serialized entry lives in the block of its ticket (b"" = render it
    with its market), each block caches the join of its entries, and ``blob`` the join of the
    blocks while nothing changed. A fill then encodes one entry and joins one block plus the
    block blobs: the per-fill cost stays nearly flat as positions pile up (the protocol still
    sends them all after each fill). Blocks are created in ticket order, so the snapshot lists
    positions in ticket order.
    """

    __slots__ = ("blob", "blocks")

    def __init__(self) -> None:
        self.blocks: dict[int, Block] = {}
        self.blob: bytes | None = None

    def snapshot_bytes(self, markets: Iterable[Market]) -> bytes:
        """The serialized ``PositionSnapshot`` of all open positions (the worker's fast path).

        Cached: entries are encoded again only for markets whose prices moved and for positions
        a fill changed, so repeated snapshots cost O(symbols) plus one join of the entries.
        """
        blob = self.blob
        for m in markets:
            if m.positions:
                key = (m.bid_pts, m.ask_pts, m.rate())
                if key != m.snap_key:
                    self.render(m, key)
                    blob = None
        if blob is None:
            blob = self.blob = b"".join([b.joined() for b in self.blocks.values()])
        return blob

    def set_entry(self, ticket: int, entry: bytes) -> None:
        block = self.blocks.get(ticket >> _BLOCK_BITS)
        if block is None:
            block = self.blocks[ticket >> _BLOCK_BITS] = Block()
        block.entries[ticket] = entry
        block.blob = None

    def drop_entry(self, ticket: int) -> None:
        block = self.blocks[ticket >> _BLOCK_BITS]
        del block.entries[ticket]
        if block.entries:
            block.blob = None
        else:
            del self.blocks[ticket >> _BLOCK_BITS]

    def render(self, m: Market, key: tuple[int, int, float]) -> None:
        """Encode the snapshot entries of all positions on ``m`` at the prices of ``key``."""
        blocks = self.blocks
        pack = POSITION_TAIL.pack
        bid, ask = m.bid, m.ask
        contract = m.contract
        rate = key[2]
        for p in m.positions.values():
            if p.side == POSITION_TYPE_BUY:
                price = bid
                diff = price - p.price_open
            else:
                price = ask
                diff = p.price_open - price
            profit = round(diff * p.volume * contract * rate * 100.0) / 100.0
            block = blocks[p.ticket >> _BLOCK_BITS]
            block.entries[p.ticket] = (p._static or p.head()) + pack(
                PRICE_CURRENT_TAG, price, PROFIT_TAG, profit
            )
            block.blob = None
        m.snap_key = key

    def entry(self, p: Position) -> bytes:
        """The snapshot entry of one changed position, or b"" when its market needs a render."""
        m = p.market
        key = m.snap_key
        if key is None or key != (m.bid_pts, m.ask_pts, m.rate()):
            # The market's other entries are stale as well: render them all at the next snapshot.
            m.snap_key = None
            return b""
        if p.side == POSITION_TYPE_BUY:
            price = m.bid
            diff = price - p.price_open
        else:
            price = m.ask
            diff = p.price_open - price
        profit = round(diff * p.volume * m.contract * key[2] * 100.0) / 100.0
        return p.head() + POSITION_TAIL.pack(PRICE_CURRENT_TAG, price, PROFIT_TAG, profit)


class SnapshotsMixin(BrokerCore):
    """What the account reports: its figures and the snapshots of its orders and positions."""

    @property
    def has_positions(self) -> bool:
        return bool(self._positions)

    @property
    def position_count(self) -> int:
        return len(self._positions)

    @property
    def order_count(self) -> int:
        """Working (pending) orders."""
        return len(self._orders)

    def equity(self) -> float:
        profit, _ = self._floating_and_margin()
        return round(self.balance + profit, 2)

    def margin_level(self) -> float:
        """Equity / margin in %, 0 without margin (MT5's ACCOUNT_MARGIN_LEVEL)."""
        profit, margin = self._floating_and_margin()
        return (self.balance + profit) / margin * 100.0 if margin > 0 else 0.0

    def margin_at(self, symbol: str, volume: float, price: float = 0.0) -> float:
        """Margin of ``volume`` lots of ``symbol`` in the account currency, by the rule the
        fills use (at ``price``; 0: at the mid); KeyError when the symbol is unknown."""
        m = self._markets[symbol]
        if not price:
            return m.margin_of(volume, self.config.leverage)
        return volume * m.contract * price / self.config.leverage * m.rate()

    def profit_of(
        self, symbol: str, buy: bool, volume: float, price_open: float, price_close: float
    ) -> float:
        """Profit of a position from ``price_open`` to ``price_close`` in the account currency,
        rounded as a closing deal's is; KeyError when the symbol is unknown."""
        m = self._markets[symbol]
        diff = price_close - price_open if buy else price_open - price_close
        return round(diff * volume * m.contract * m.rate() * 100.0) / 100.0

    def account_snapshot(self) -> pb.AccountSnapshot:
        profit, margin = self._floating_and_margin()
        profit = round(profit, 2)
        margin = round(margin, 2)
        equity = round(self.balance + profit, 2)
        return pb.AccountSnapshot(
            login=self.config.login,
            currency=self.config.currency,
            balance=self.balance,
            equity=equity,
            margin=margin,
            margin_free=round(equity - margin, 2),
            margin_level=round(equity / margin * 100.0, 2) if margin > 0 else 0.0,
            leverage=self._leverage,
            profit=profit,
            margin_mode=(
                ACCOUNT_MARGIN_MODE_RETAIL_HEDGING
                if self._hedging
                else ACCOUNT_MARGIN_MODE_RETAIL_NETTING
            ),
            server=SERVER_NAME,
            time_msc=self._now_msc(),
        )

    def orders_snapshot(self) -> pb.OrderSnapshot:
        """All working orders, in ticket order."""
        return pb.OrderSnapshot(orders=[o.info() for o in self._orders.values()])

    def positions_snapshot_bytes(self) -> bytes:
        """The serialized ``PositionSnapshot`` of all open positions (the worker's fast path).

        Cached: entries are encoded again only for markets whose prices moved and for positions
        a fill changed, so repeated snapshots cost O(symbols) plus one join of the entries.
        """
        return self._cache.snapshot_bytes(self._markets.values())

    def positions_snapshot(self) -> pb.PositionSnapshot:
        """All open positions, priced at the latest ticks."""
        return pb.PositionSnapshot.FromString(self.positions_snapshot_bytes())
