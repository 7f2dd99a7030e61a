"""The simulated broker: prices, account, positions and market-order execution.

A plain, deterministic library: the sim worker process (``mt5exec.workers.sim``) drives it and
moves its messages over the socket, tests drive it directly. Trade fields and result codes use
MetaTrader 5's numbering so that the engine cannot tell it from a real terminal. Fault-injection
*state* lives here (delay, reject-next, counters); the worker is the one that enacts delays,
freezes, disconnects and crashes.

Durability: the broker plays the broker's trade server, so its account outlives the worker.
``SimBroker.open`` restores it from ``mt5exec.sim.state`` files and attaches a journal; every
trade is then appended to the journal *before* ``send`` returns (a trade the journal cannot take
is rejected with ``TRADE_RETCODE_ERROR`` and changes nothing). The only I/O is that journal.

Determinism: a symbol's random walk draws its n-th step from a generator seeded from
``(seed, symbol, n // 1024)``, so a symbol's price path depends only on the seed and on how many
times it ticked: not on how the ticks of different symbols interleave, and not on restarts. A
restored market (saved price and tick count) continues on exactly the path an uninterrupted one
would have followed from that tick. Faults are not saved: they belong to the test that injects
them.
"""

from __future__ import annotations

import math
import os
import random
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from mt5exec.sim.state import (
    AccountState,
    Loaded,
    MarketState,
    PositionState,
    StateError,
    StateStore,
)
from mt5exec.sim.symbols import (
    DEFAULT_SYMBOLS,
    SYMBOL_FILLING_FOK,
    SYMBOL_FILLING_IOC,
    SYMBOL_TRADE_MODE_CLOSEONLY,
    SYMBOL_TRADE_MODE_DISABLED,
    SYMBOL_TRADE_MODE_LONGONLY,
    SYMBOL_TRADE_MODE_SHORTONLY,
    SymbolSpec,
)
from mt5exec.terminal.v1 import worker_pb2 as pb
from mt5exec.workers.protocol import varint

# MT5 constants (same values as the MetaTrader5 package).
TRADE_ACTION_DEAL = 1
TRADE_ACTION_PENDING = 5
TRADE_ACTION_SLTP = 6
TRADE_ACTION_MODIFY = 7
TRADE_ACTION_REMOVE = 8
TRADE_ACTION_CLOSE_BY = 10

ORDER_TYPE_BUY = 0
ORDER_TYPE_SELL = 1

ORDER_FILLING_FOK = 0
ORDER_FILLING_IOC = 1
ORDER_FILLING_RETURN = 2
ORDER_FILLING_BOC = 3

POSITION_TYPE_BUY = 0
POSITION_TYPE_SELL = 1

DEAL_TYPE_BUY = 0
DEAL_TYPE_SELL = 1
DEAL_ENTRY_IN = 0
DEAL_ENTRY_OUT = 1
DEAL_ENTRY_INOUT = 2

ACCOUNT_MARGIN_MODE_RETAIL_NETTING = 0
ACCOUNT_MARGIN_MODE_RETAIL_HEDGING = 2

TRADE_RETCODE_REJECT = 10006
TRADE_RETCODE_DONE = 10009
TRADE_RETCODE_ERROR = 10011
TRADE_RETCODE_INVALID = 10013
TRADE_RETCODE_INVALID_VOLUME = 10014
TRADE_RETCODE_TRADE_DISABLED = 10017
TRADE_RETCODE_NO_MONEY = 10019
TRADE_RETCODE_INVALID_FILL = 10030
TRADE_RETCODE_INVALID_CLOSE_VOLUME = 10038
TRADE_RETCODE_LONG_ONLY = 10042
TRADE_RETCODE_SHORT_ONLY = 10043
TRADE_RETCODE_CLOSE_ONLY = 10044

SERVER_NAME = "mt5exec-sim"
COMMENT_MAX = 31  # MT5 truncates trade comments to 31 characters.

# The worker writes a snapshot after this many journal records, which bounds the replay at start.
CHECKPOINT_EVERY = 10_000

# A symbol's walk takes a new generator every 2**_RNG_BLOCK_BITS ticks, so a restored market
# finds its place in the sequence with a seed and at most 1023 draws.
_RNG_BLOCK_BITS = 10
_RNG_MASK = (1 << _RNG_BLOCK_BITS) - 1

# Snapshot entries are cached in blocks of 2**_BLOCK_BITS consecutive tickets (see SimBroker).
_BLOCK_BITS = 6

# Volumes are multiples of 0.01-ish steps; anything closer than this to a multiple is on-step,
# and two volumes closer than this are equal (binary floats cannot hold 0.1 exactly).
_VOLUME_EPS = 1e-8


@dataclass(slots=True)
class SimConfig:
    """What a sim instance trades and with which account."""

    symbols: list[str]
    seed: int = 1
    # Ticks per second per symbol; 0 disables ticks (prices then stay at their start values).
    tick_rate: float = 10.0
    initial_balance: float = 10_000.0
    leverage: int = 100
    currency: str = "USD"
    margin_mode: Literal["hedging", "netting"] = "hedging"
    login: int = 10_000_001


@dataclass(slots=True)
class FaultState:
    """Injected faults still pending, and how many of each were requested so far."""

    delay_ms: int = 0
    reject_next: int = 0
    rejected: int = 0
    freezes: int = 0
    disconnects: int = 0
    crashes: int = 0


@dataclass(slots=True)
class SendOutcome:
    """Everything one ``SimBroker.send`` produced, in the order the engine must see it."""

    result: pb.OrderResult
    deals: list[pb.DealReport] = field(default_factory=list)
    positions_changed: bool = False
    account_changed: bool = False


class _Market:
    """Price and exposure state of one symbol.

    Prices are kept as integer points so that bid/ask are always exactly ``digits`` decimals and
    the spread never drifts. Exposure sums let the account be valued in O(symbols), not
    O(positions): floating profit of all buys is ``bid * buy_volume - buy_cost`` times the contract
    size, and symmetrically for sells.
    """

    __slots__ = (
        "ask",
        "ask_pts",
        "bid",
        "bid_pts",
        "buy_cost",
        "buy_volume",
        "contract",
        "mid",
        "positions",
        "rate",
        "rng",
        "scale",
        "seed",
        "sell_cost",
        "sell_volume",
        "snap_key",
        "spec",
        "spread",
        "step",
        "ticks",
        "time_msc",
    )

    def __init__(self, spec: SymbolSpec, seed: int, time_msc: int) -> None:
        self.spec = spec
        self.seed = seed
        self.ticks = 0
        self.rng = _walk_rng(seed, spec.name, 0)
        self.scale: int = 10**spec.digits
        self.spread = max(1, spec.spread_points)
        self.step = max(0, spec.step_points)
        self.contract = spec.contract_size
        self.bid_pts: int = 0
        self.ask_pts: int = 0
        self.bid: float = 0.0
        self.ask: float = 0.0
        self.mid: float = 0.0
        self._set_bid(round(spec.start_price * self.scale) - self.spread // 2)
        self.time_msc: int = time_msc
        self.buy_volume: float = 0.0
        self.buy_cost: float = 0.0
        self.sell_volume: float = 0.0
        self.sell_cost: float = 0.0
        # Open positions on this symbol, in ticket order.
        self.positions: dict[int, _Position] = {}
        # (bid_pts, ask_pts, rate) at which the cached snapshot entries of ``positions`` were
        # rendered; None when some entry must be rendered again.
        self.snap_key: tuple[int, int, float] | None = None
        # Profit currency -> account currency; replaced by the broker once all markets exist.
        self.rate: Callable[[], float] = _one

    def _set_bid(self, bid_pts: int) -> None:
        self.bid_pts = bid_pts
        self.ask_pts = bid_pts + self.spread
        # Dividing an integer by an exact power of ten gives the double nearest to the decimal
        # price, i.e. the same value as round(x, digits).
        self.bid = bid_pts / self.scale
        self.ask = self.ask_pts / self.scale
        self.mid = (self.bid + self.ask) / 2.0

    def advance(self) -> None:
        step = self.step
        bid_pts = self.bid_pts + int(self.rng.random() * (2 * step + 1)) - step
        # Reflect off a floor so that a long walk can never reach zero or negative prices.
        floor = self.spread + step
        if bid_pts < floor:
            bid_pts = 2 * floor - bid_pts
        # _set_bid inlined: this runs for every tick of every symbol.
        self.bid_pts = bid_pts
        self.ask_pts = bid_pts + self.spread
        self.bid = bid_pts / self.scale
        self.ask = self.ask_pts / self.scale
        self.mid = (self.bid + self.ask) / 2.0
        ticks = self.ticks + 1
        self.ticks = ticks
        if not ticks & _RNG_MASK:
            self.rng = _walk_rng(self.seed, self.spec.name, ticks >> _RNG_BLOCK_BITS)

    def restore(self, bid_pts: int, ticks: int, time_msc: int) -> None:
        """Put the market at a saved price and tick count; the walk continues from there."""
        self._set_bid(bid_pts)
        self.ticks = ticks
        self.time_msc = time_msc
        rng = _walk_rng(self.seed, self.spec.name, ticks >> _RNG_BLOCK_BITS)
        draw = rng.random
        for _ in range(ticks & _RNG_MASK):
            draw()
        self.rng = rng
        self.snap_key = None

    def floating(self) -> float:
        """Unrounded floating profit of all open positions on this symbol, account currency."""
        gross = (self.bid * self.buy_volume - self.buy_cost) + (
            self.sell_cost - self.ask * self.sell_volume
        )
        return gross * self.contract * self.rate()

    def margin(self, leverage: int) -> float:
        volume = self.buy_volume + self.sell_volume
        return volume * self.contract * self.mid / leverage * self.rate()


def _walk_rng(seed: int, symbol: str, block: int) -> random.Random:
    return random.Random(f"{seed}:{symbol}:{block}")


def _shift(exposure: list[float], side: int, volume: float, price: float) -> None:
    """Add ``volume`` at ``price`` to one side of ``[buy_vol, buy_cost, sell_vol, sell_cost]``.

    A negative ``volume`` removes exposure; the sums come out bit-identical to subtracting.
    """
    i = 0 if side == POSITION_TYPE_BUY else 2
    exposure[i] += volume
    exposure[i + 1] += volume * price


def _one() -> float:
    return 1.0


def _live_rate(m: _Market, *, invert: bool) -> Callable[[], float]:
    if invert:
        return lambda: 1.0 / m.mid
    return lambda: m.mid


# Hand-encoded tail of a serialized ``Position``: price_current (field 6) and profit (field 9),
# both doubles (wire type 1). Protobuf parsers accept fields in any order, so the tail can follow
# the cached bytes of the fields that only change when the position itself does.
_POSITION_TAIL = struct.Struct("<BdBd")
_PRICE_CURRENT_TAG = 6 << 3 | 1
_PROFIT_TAG = 9 << 3 | 1
_POSITIONS_TAG = b"\x0a"  # PositionSnapshot.positions: field 1, length-delimited


class _Position:
    __slots__ = (
        "_static",
        "comment",
        "magic",
        "market",
        "price_open",
        "side",
        "sl",
        "ticket",
        "time_msc",
        "tp",
        "volume",
    )

    def __init__(
        self,
        ticket: int,
        market: _Market,
        side: int,
        volume: float,
        price_open: float,
        time_msc: int,
        magic: int,
        comment: str,
        sl: float,
        tp: float,
    ) -> None:
        self.ticket = ticket
        self.market = market
        self.side = side
        self.volume = volume
        self.price_open = price_open
        self.time_msc = time_msc
        self.magic = magic
        self.comment = comment
        self.sl = sl
        self.tp = tp
        self._static: bytes | None = None

    def changed(self) -> None:
        """Call after changing side, volume or open price, to drop the cached encoding."""
        self._static = None

    def head(self) -> bytes:
        """Tag, length and the fields that change only with the position itself, serialized.

        A ``PositionSnapshot.positions`` entry is ``head()`` followed by the fixed-size
        ``_POSITION_TAIL`` (price_current, profit): only the tail is encoded when prices move.
        """
        head = self._static
        if head is None:
            static = pb.Position(
                ticket=self.ticket,
                symbol=self.market.spec.name,
                type=self.side,
                volume=self.volume,
                price_open=self.price_open,
                sl=self.sl,
                tp=self.tp,
                time_msc=self.time_msc,
                magic=self.magic,
                comment=self.comment,
            ).SerializeToString()
            head = self._static = (
                _POSITIONS_TAG + varint(len(static) + _POSITION_TAIL.size) + static
            )
        return head

    def price_current(self) -> float:
        # A buy is closed by selling at the bid, a sell by buying at the ask.
        m = self.market
        return m.bid if self.side == POSITION_TYPE_BUY else m.ask

    def profit_at(self, price: float, volume: float) -> float:
        diff = (
            price - self.price_open if self.side == POSITION_TYPE_BUY else self.price_open - price
        )
        # round(x * 100) / 100 rather than round(x, 2): same cents, several times faster, and
        # SimBroker._render must use the very same formula.
        return round(diff * volume * self.market.contract * self.market.rate() * 100.0) / 100.0


class _Block:
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


class SimBroker:
    """A simulated MT5 account on a simulated market.

    ``clock`` returns seconds since the epoch (``time.time`` by default); it stamps ticks, deals,
    positions and results. Tests inject a fixed clock to make every output reproducible.
    """

    def __init__(
        self,
        config: SimConfig,
        clock: Callable[[], float] = time.time,
        *,
        state: AccountState | None = None,
    ) -> None:
        """A fresh account from ``config``, or the saved account ``state`` when it is given.

        A saved account keeps its balance, positions, ticket counters and prices; from ``config``
        only the symbols, seed, tick rate and leverage apply (``ValueError`` if its login,
        currency or margin mode differ, or if it holds positions on symbols not configured).
        """
        if not config.symbols:
            raise ValueError("SimConfig.symbols: at least one symbol is needed")
        unknown = [s for s in config.symbols if s not in DEFAULT_SYMBOLS]
        if unknown:
            known = ", ".join(DEFAULT_SYMBOLS)
            raise ValueError(f"SimConfig.symbols: unknown symbol {unknown[0]!r} (known: {known})")
        if config.margin_mode not in ("hedging", "netting"):
            raise ValueError(
                f"SimConfig.margin_mode: {config.margin_mode!r} is not 'hedging' or 'netting'"
            )
        if config.leverage <= 0:
            raise ValueError(f"SimConfig.leverage: must be positive, got {config.leverage}")
        if not math.isfinite(config.initial_balance):
            raise ValueError("SimConfig.initial_balance: must be finite")
        self.config = config
        self._clock = clock
        now = self._now_msc()
        # dict.fromkeys keeps the configured order and drops duplicates.
        self._markets: dict[str, _Market] = {
            name: _Market(DEFAULT_SYMBOLS[name], config.seed, now)
            for name in dict.fromkeys(config.symbols)
        }
        for m in self._markets.values():
            m.rate = self._rate_to_account(m.spec.currency_profit)
        self._hedging = config.margin_mode == "hedging"
        self._leverage = config.leverage
        self.balance: float = round(config.initial_balance, 2)
        self.faults = FaultState()
        self._positions: dict[int, _Position] = {}
        # Netting accounts hold at most one position per symbol.
        self._netting: dict[str, _Position] = {}
        self._next_order = 100_000_001
        self._next_deal = 500_000_001
        # The PositionSnapshot, cached in pieces: each open position's serialized entry lives in
        # the block of its ticket (b"" = render it with its market), each block caches the join
        # of its entries, and _blob the join of the blocks while nothing changed. A fill then
        # encodes one entry and joins one block plus the block blobs: the per-fill cost stays
        # nearly flat as positions pile up (the protocol still sends them all after each fill).
        # Blocks are created in ticket order, so the snapshot lists positions in ticket order.
        self._blocks: dict[int, _Block] = {}
        self._blob: bytes | None = None
        # Where every trade is appended before it takes effect; see SimBroker.open.
        self.journal: StateStore | None = None
        # What SimBroker.open recovered, for the worker to report.
        self.restored: Loaded | None = None
        # True from a trade's journal write until it took effect in memory: a snapshot taken
        # then (an exception or signal cut the trade short) would claim a record it lacks.
        self._in_trade = False
        if state is not None:
            self._restore(state)

    @classmethod
    def open(
        cls,
        config: SimConfig,
        path: str | os.PathLike[str],
        clock: Callable[[], float] = time.time,
    ) -> SimBroker:
        """The account saved at ``path`` (a fresh one if there is none), journaled from now on.

        Damaged files are repaired or set aside (see ``mt5exec.sim.state``); ``StateError`` only
        when the files cannot be used at all. ``close`` writes the final snapshot.
        """
        store, loaded = StateStore.open(
            path,
            login=config.login,
            currency=config.currency,
            margin_mode=config.margin_mode,
            symbols=config.symbols,
        )
        try:
            broker = cls(config, clock, state=loaded.account)
            for name, saved in loaded.markets.items():
                m = broker._markets.get(name)
                if m is not None and saved.ticks >= m.ticks:
                    m.restore(saved.bid_pts, saved.ticks, saved.time_msc)
            broker._next_order = max(broker._next_order, loaded.next_order) + loaded.skip_tickets
            broker._next_deal = max(broker._next_deal, loaded.next_deal) + loaded.skip_tickets
            store.begin(broker.export_state())
        except OSError as e:
            store.close()
            raise StateError(f"{path}: cannot write the state files: {e}") from e
        except BaseException:
            store.close()
            raise
        broker.journal = store
        broker.restored = loaded
        return broker

    def _restore(self, state: AccountState) -> None:
        config = self.config
        if (state.login, state.currency, state.margin_mode) != (
            config.login,
            config.currency,
            config.margin_mode,
        ):
            raise ValueError(
                f"saved account {state.login} ({state.currency}, {state.margin_mode}) is not the "
                f"configured {config.login} ({config.currency}, {config.margin_mode})"
            )
        self.balance = state.balance
        self._next_order = max(self._next_order, state.next_order)
        self._next_deal = max(self._next_deal, state.next_deal)
        for name, saved in state.markets.items():
            m = self._markets.get(name)
            if m is not None:
                m.restore(saved.bid_pts, saved.ticks, saved.time_msc)
                m.buy_volume, m.buy_cost = saved.buy_volume, saved.buy_cost
                m.sell_volume, m.sell_cost = saved.sell_volume, saved.sell_cost
        for p in state.positions.values():
            m = self._markets.get(p.symbol)
            if m is None:
                raise ValueError(f"saved position {p.ticket} is on unconfigured {p.symbol}")
            pos = _Position(
                p.ticket,
                m,
                p.side,
                p.volume,
                p.price_open,
                p.time_msc,
                p.magic,
                p.comment,
                p.sl,
                p.tp,
            )
            self._positions[p.ticket] = pos
            m.positions[p.ticket] = pos
            self._set_entry(p.ticket, b"")
            if not self._hedging:
                self._netting[p.symbol] = pos
            self._next_order = max(self._next_order, p.ticket + 1)
            if p.symbol not in state.markets:
                # No saved sums (not written by this module): rebuild them from the positions.
                exposure = [m.buy_volume, m.buy_cost, m.sell_volume, m.sell_cost]
                _shift(exposure, p.side, p.volume, p.price_open)
                m.buy_volume, m.buy_cost, m.sell_volume, m.sell_cost = exposure

    def export_state(self) -> AccountState:
        """The account as ``mt5exec.sim.state`` saves it (everything but the deal history)."""
        config = self.config
        return AccountState(
            login=config.login,
            currency=config.currency,
            margin_mode=config.margin_mode,
            balance=self.balance,
            next_order=self._next_order,
            next_deal=self._next_deal,
            markets={
                name: MarketState(
                    m.bid_pts,
                    m.ticks,
                    m.time_msc,
                    m.buy_volume,
                    m.buy_cost,
                    m.sell_volume,
                    m.sell_cost,
                )
                for name, m in self._markets.items()
            },
            positions={
                t: PositionState(
                    t,
                    p.market.spec.name,
                    p.side,
                    p.volume,
                    p.price_open,
                    p.time_msc,
                    p.sl,
                    p.tp,
                    p.magic,
                    p.comment,
                )
                for t, p in self._positions.items()
            },
        )

    # -- persistence ------------------------------------------------------------------------

    def checkpoint(self) -> bool:
        """Write a snapshot now (the journal alone already holds every trade); True if it did."""
        if self.journal is None or self._in_trade:
            return False
        self.journal.snapshot(self.export_state())
        return True

    def maybe_checkpoint(self, every: int = CHECKPOINT_EVERY) -> bool:
        """Snapshot once ``every`` trades were journaled since the last one; True if it did."""
        journal = self.journal
        if journal is None or journal.records_since_snapshot < every:
            return False
        return self.checkpoint()

    def save_prices(self) -> None:
        """Save the latest prices, so that a crash does not send the walk back to the last trade."""
        if self.journal is not None:
            self.journal.save_prices(
                (name, m.bid_pts, m.ticks, m.time_msc) for name, m in self._markets.items()
            )

    def close(self, *, snapshot: bool = True) -> None:
        """Detach the journal, writing a final snapshot first unless ``snapshot`` is False."""
        journal = self.journal
        if journal is None:
            return
        self.journal = None
        try:
            if snapshot and not self._in_trade:
                journal.snapshot(self.export_state())
        finally:
            journal.close()

    # -- clock and symbols ------------------------------------------------------------------

    def _now_msc(self) -> int:
        return int(self._clock() * 1000.0)

    @property
    def symbols(self) -> list[str]:
        return list(self._markets)

    def symbol_specs(self) -> list[SymbolSpec]:
        return [m.spec for m in self._markets.values()]

    def symbol_infos(self) -> list[pb.SymbolInfo]:
        return [m.spec.to_proto() for m in self._markets.values()]

    def _rate_to_account(self, currency: str) -> Callable[[], float]:
        """How to turn an amount in ``currency`` into the account currency, at current prices.

        Approximate on purpose: a direct pair among the configured symbols is used live, a
        default symbol's start price otherwise, and 1.0 when no pair links the two currencies.
        """
        account = self.config.currency
        if currency == account:
            return _one
        for m in self._markets.values():
            if m.spec.currency_base == currency and m.spec.currency_profit == account:
                return _live_rate(m, invert=False)
            if m.spec.currency_base == account and m.spec.currency_profit == currency:
                return _live_rate(m, invert=True)
        for spec in DEFAULT_SYMBOLS.values():
            if spec.currency_base == currency and spec.currency_profit == account:
                rate = spec.start_price
                return lambda: rate
            if spec.currency_base == account and spec.currency_profit == currency:
                rate = 1.0 / spec.start_price
                return lambda: rate
        return _one

    # -- prices -----------------------------------------------------------------------------

    def advance(self, symbol: str, time_msc: int | None = None) -> tuple[float, float]:
        """Move ``symbol`` one tick along its random walk; returns the new ``(bid, ask)``.

        The cheap form for the worker's tick loop, which stamps a whole batch with one time.
        """
        m = self._markets[symbol]
        m.advance()
        m.time_msc = self._now_msc() if time_msc is None else time_msc
        return m.bid, m.ask

    def tick(self, symbol: str, time_msc: int | None = None) -> pb.Tick:
        """Move ``symbol`` one tick and return it as a protocol ``Tick``."""
        bid, ask = self.advance(symbol, time_msc)
        return pb.Tick(symbol=symbol, bid=bid, ask=ask, time_msc=self._markets[symbol].time_msc)

    def quote(self, symbol: str) -> tuple[float, float, int]:
        """The latest ``(bid, ask, time_msc)`` of ``symbol``, without moving it."""
        m = self._markets[symbol]
        return m.bid, m.ask, m.time_msc

    # -- account and positions --------------------------------------------------------------

    @property
    def has_positions(self) -> bool:
        return bool(self._positions)

    @property
    def position_count(self) -> int:
        return len(self._positions)

    def _floating_and_margin(self) -> tuple[float, float]:
        profit = 0.0
        margin = 0.0
        lev = self._leverage
        for m in self._markets.values():
            if m.positions:
                profit += m.floating()
                margin += m.margin(lev)
        return profit, margin

    def equity(self) -> float:
        profit, _ = self._floating_and_margin()
        return round(self.balance + profit, 2)

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

    def positions_snapshot_bytes(self) -> bytes:
        """The serialized ``PositionSnapshot`` of all open positions (the worker's fast path).

        Cached: entries are encoded again only for markets whose prices moved and for positions
        a fill changed, so repeated snapshots cost O(symbols) plus one join of the entries.
        """
        blob = self._blob
        for m in self._markets.values():
            if m.positions:
                key = (m.bid_pts, m.ask_pts, m.rate())
                if key != m.snap_key:
                    self._render(m, key)
                    blob = None
        if blob is None:
            blob = self._blob = b"".join([b.joined() for b in self._blocks.values()])
        return blob

    def _set_entry(self, ticket: int, entry: bytes) -> None:
        block = self._blocks.get(ticket >> _BLOCK_BITS)
        if block is None:
            block = self._blocks[ticket >> _BLOCK_BITS] = _Block()
        block.entries[ticket] = entry
        block.blob = None

    def _drop_entry(self, ticket: int) -> None:
        block = self._blocks[ticket >> _BLOCK_BITS]
        del block.entries[ticket]
        if block.entries:
            block.blob = None
        else:
            del self._blocks[ticket >> _BLOCK_BITS]

    def _render(self, m: _Market, key: tuple[int, int, float]) -> None:
        """Encode the snapshot entries of all positions on ``m`` at the prices of ``key``."""
        blocks = self._blocks
        pack = _POSITION_TAIL.pack
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
                _PRICE_CURRENT_TAG, price, _PROFIT_TAG, profit
            )
            block.blob = None
        m.snap_key = key

    def _entry(self, p: _Position) -> bytes:
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
        return p.head() + _POSITION_TAIL.pack(_PRICE_CURRENT_TAG, price, _PROFIT_TAG, profit)

    def positions_snapshot(self) -> pb.PositionSnapshot:
        """All open positions, priced at the latest ticks."""
        return pb.PositionSnapshot.FromString(self.positions_snapshot_bytes())

    # -- faults -----------------------------------------------------------------------------

    def apply_fault(self, fault: pb.FaultInjection) -> None:
        """Record an injected fault.

        A non-zero ``delay_ms`` replaces the current delay and ``reject_next`` adds to the
        pending rejections; an empty ``FaultInjection`` clears both (proto3 cannot tell "set to
        0" from "not set", so this is the one way to turn the delay off).
        """
        f = self.faults
        if fault.ByteSize() == 0:
            f.delay_ms = 0
            f.reject_next = 0
            return
        if fault.delay_ms:
            f.delay_ms = fault.delay_ms
        f.reject_next += fault.reject_next
        if fault.freeze_ms:
            f.freezes += 1
        if fault.disconnect:
            f.disconnects += 1
        if fault.crash:
            f.crashes += 1

    # -- orders -----------------------------------------------------------------------------

    def _fail(
        self, req: pb.OrderRequest, retcode: int, comment: str, m: _Market | None
    ) -> SendOutcome:
        result = pb.OrderResult(
            request_id=req.request_id,
            retcode=retcode,
            comment=comment,
            time_msc=self._now_msc(),
        )
        if m is not None:
            result.bid = m.bid
            result.ask = m.ask
        return SendOutcome(result)

    def send(self, req: pb.OrderRequest) -> SendOutcome:
        """Execute one trade request, as ``order_send`` would on an MT5 terminal."""
        if req.action != TRADE_ACTION_DEAL:
            return self._fail(
                req, TRADE_RETCODE_INVALID, f"unsupported trade action {req.action}", None
            )
        m = self._markets.get(req.symbol)
        if m is None:
            return self._fail(req, TRADE_RETCODE_INVALID, f"unknown symbol {req.symbol!r}", None)
        side = req.type
        if side != ORDER_TYPE_BUY and side != ORDER_TYPE_SELL:
            return self._fail(
                req, TRADE_RETCODE_INVALID, f"unsupported order type {req.type} for a deal", m
            )
        spec = m.spec
        volume = req.volume
        # `not (volume > 0)` also catches NaN.
        if not (volume > 0.0) or math.isinf(volume):
            return self._fail(req, TRADE_RETCODE_INVALID_VOLUME, f"invalid volume {volume}", m)
        if volume < spec.volume_min - _VOLUME_EPS or volume > spec.volume_max + _VOLUME_EPS:
            return self._fail(
                req,
                TRADE_RETCODE_INVALID_VOLUME,
                f"volume {volume} outside [{spec.volume_min}, {spec.volume_max}]",
                m,
            )
        steps = volume / spec.volume_step
        whole = round(steps)
        if abs(steps - whole) > 1e-6:
            return self._fail(
                req,
                TRADE_RETCODE_INVALID_VOLUME,
                f"volume {volume} is not a multiple of {spec.volume_step}",
                m,
            )
        volume = round(whole * spec.volume_step, 8)
        filling = req.type_filling
        if (
            (filling == ORDER_FILLING_FOK and not spec.filling_mode & SYMBOL_FILLING_FOK)
            or (filling == ORDER_FILLING_IOC and not spec.filling_mode & SYMBOL_FILLING_IOC)
            or filling > ORDER_FILLING_RETURN
        ):
            return self._fail(
                req, TRADE_RETCODE_INVALID_FILL, f"filling type {filling} not allowed", m
            )

        # Which position does this deal touch, and does it open exposure?
        target: _Position | None = None
        if req.position:
            target = self._positions.get(req.position)
            if target is None:
                return self._fail(
                    req, TRADE_RETCODE_INVALID, f"position {req.position} not found", m
                )
            if target.market is not m:
                return self._fail(
                    req,
                    TRADE_RETCODE_INVALID,
                    f"position {req.position} is on {target.market.spec.name}",
                    m,
                )
            if target.side == side:
                return self._fail(
                    req,
                    TRADE_RETCODE_INVALID,
                    f"closing position {req.position} needs the opposite order type",
                    m,
                )
            if volume > target.volume + _VOLUME_EPS:
                return self._fail(
                    req,
                    TRADE_RETCODE_INVALID_CLOSE_VOLUME,
                    f"volume {volume} exceeds position volume {target.volume}",
                    m,
                )
        elif not self._hedging:
            target = self._netting.get(spec.name)

        # Exposure this deal adds (0 when it only reduces).
        if target is None or target.side == side:
            added = volume
        else:
            added = max(0.0, volume - target.volume)

        trade_mode = spec.trade_mode
        if trade_mode == SYMBOL_TRADE_MODE_DISABLED:
            return self._fail(req, TRADE_RETCODE_TRADE_DISABLED, "trading is disabled", m)
        if added > 0.0:
            if trade_mode == SYMBOL_TRADE_MODE_CLOSEONLY:
                return self._fail(req, TRADE_RETCODE_CLOSE_ONLY, "only closing is allowed", m)
            if trade_mode == SYMBOL_TRADE_MODE_LONGONLY and side == ORDER_TYPE_SELL:
                return self._fail(req, TRADE_RETCODE_LONG_ONLY, "only buying is allowed", m)
            if trade_mode == SYMBOL_TRADE_MODE_SHORTONLY and side == ORDER_TYPE_BUY:
                return self._fail(req, TRADE_RETCODE_SHORT_ONLY, "only selling is allowed", m)

        # A server-side rejection comes after the terminal's own checks, as on a real account.
        faults = self.faults
        if faults.reject_next > 0:
            faults.reject_next -= 1
            faults.rejected += 1
            return self._fail(req, TRADE_RETCODE_REJECT, "rejected (fault injection)", m)

        if added > 0.0:
            profit, margin = self._floating_and_margin()
            free = self.balance + profit - margin
            required = added * m.contract * m.mid / self._leverage * m.rate()
            if required > free:
                return self._fail(
                    req,
                    TRADE_RETCODE_NO_MONEY,
                    f"no money: margin {required:.2f} needed, {free:.2f} free",
                    m,
                )

        return self._execute(req, m, side, volume, target)

    def _execute(
        self,
        req: pb.OrderRequest,
        m: _Market,
        side: int,
        volume: float,
        target: _Position | None,
    ) -> SendOutcome:
        now = self._now_msc()
        price = m.ask if side == ORDER_TYPE_BUY else m.bid
        order = self._next_order
        deal_ticket = self._next_deal
        comment = req.comment[:COMMENT_MAX]
        balance = self.balance
        profit = 0.0
        closing = False
        exposure = [m.buy_volume, m.buy_cost, m.sell_volume, m.sell_cost]

        # First work out the position, balance and exposure after the deal without changing
        # anything: the journal must have the trade before it takes effect, and a trade the
        # journal cannot take must leave the account as it was.
        if target is None:
            ticket, new_side, new_volume, new_open = order, side, volume, price
            _shift(exposure, side, volume, price)
            entry = DEAL_ENTRY_IN
        elif target.side == side:
            # Netting: adding to the position moves its open price to the volume-weighted mean.
            ticket, new_side = target.ticket, side
            new_volume = round(target.volume + volume, 8)
            new_open = (target.price_open * target.volume + price * volume) / new_volume
            _shift(exposure, side, volume, price)
            entry = DEAL_ENTRY_IN
        else:
            ticket = target.ticket
            closed = min(volume, target.volume)
            profit = target.profit_at(price, closed)
            balance = round(balance + profit, 2)
            remaining = round(target.volume - volume, 8)
            _shift(exposure, target.side, -closed, target.price_open)
            if remaining > _VOLUME_EPS:
                new_side, new_volume, new_open = target.side, remaining, target.price_open
                entry = DEAL_ENTRY_OUT
            elif remaining < -_VOLUME_EPS:
                # Netting reversal: the position keeps its ticket and flips side (MT5 keeps
                # the position identifier across a reversal).
                new_side, new_volume, new_open = side, -remaining, price
                _shift(exposure, side, new_volume, price)
                entry = DEAL_ENTRY_INOUT
            else:
                new_side, new_volume, new_open = target.side, 0.0, target.price_open
                closing = True
                entry = DEAL_ENTRY_OUT
                if len(m.positions) == 1:
                    # Flat: drop accumulated rounding error instead of carrying it forever.
                    exposure = [0.0, 0.0, 0.0, 0.0]
        deal_type = DEAL_TYPE_BUY if side == ORDER_TYPE_BUY else DEAL_TYPE_SELL

        journal = self.journal
        if journal is not None:
            self._in_trade = True
            try:
                journal.fill(
                    m.spec.name,
                    deal_ticket,
                    order,
                    ticket,
                    req.request_id,
                    req.magic,
                    now,
                    deal_type,
                    entry,
                    volume,
                    price,
                    profit,
                    balance,
                    m.bid_pts,
                    m.ticks,
                    m.time_msc,
                    exposure[0],
                    exposure[1],
                    exposure[2],
                    exposure[3],
                    new_side,
                    new_volume,
                    new_open,
                    req.sl,
                    req.tp,
                    comment,
                )
            except OSError as e:
                self._in_trade = False
                return self._fail(
                    req, TRADE_RETCODE_ERROR, f"trade not saved: {e.strerror or e}", m
                )

        self._next_order = order + 1
        self._next_deal = deal_ticket + 1
        self.balance = balance
        m.buy_volume, m.buy_cost, m.sell_volume, m.sell_cost = exposure
        if target is None:
            pos = _Position(order, m, side, volume, price, now, req.magic, comment, req.sl, req.tp)
            self._positions[order] = pos
            m.positions[order] = pos
            if not self._hedging:
                self._netting[m.spec.name] = pos
            self._set_entry(order, self._entry(pos))
        elif closing:
            del self._positions[ticket]
            del m.positions[ticket]
            self._drop_entry(ticket)
            if self._netting.get(m.spec.name) is target:
                del self._netting[m.spec.name]
        else:
            target.side = new_side
            target.volume = new_volume
            target.price_open = new_open
            target.changed()
            self._set_entry(ticket, self._entry(target))
        self._blob = None
        self._in_trade = False

        deal = pb.DealReport(
            ticket=deal_ticket,
            order=order,
            position_id=ticket,
            symbol=m.spec.name,
            type=deal_type,
            entry=entry,
            volume=volume,
            price=price,
            profit=profit,
            magic=req.magic,
            comment=comment,
            time_msc=now,
            request_id=req.request_id,
        )
        result = pb.OrderResult(
            request_id=req.request_id,
            retcode=TRADE_RETCODE_DONE,
            deal=deal_ticket,
            order=order,
            volume=volume,
            price=price,
            bid=m.bid,
            ask=m.ask,
            comment="Request executed",
            time_msc=now,
            position=ticket,
        )
        return SendOutcome(result, [deal], positions_changed=True, account_changed=True)
