"""Durable state of the simulated broker: the files that let its account outlive the worker.

The simulated broker plays the broker's trade server, so its account must survive a crash of
the worker process the way a real account survives a terminal crash. This package owns those
files, their format and their recovery; the broker (``mt5exec.sim.broker``) owns what the
numbers mean and commits every change to a ``Journal`` before it takes effect; the worker
decides when to checkpoint.

Modules: ``records`` the values (account, positions, orders, ``DealEntry``), ``codec`` the byte
format, ``history`` reading the order and deal history, ``compaction`` bounding the journal,
``store`` the journals (``StateStore`` on disk, ``MemoryJournal``) and recovery.

Files, for ``path`` = ``sim_state`` (the worker's default, in its instance directory):

``sim_state.log``
    The journal: a *base* (the whole account when the journal was begun), then one TX record per
    account change, each appended with a single ``os.write`` on an ``O_APPEND`` descriptor
    before anything about the change leaves the process. A TX holds the entries of one atomic
    change: DEAL (a fill, with the position, balance and exposure after it), ORDER (an order's
    whole state after a change: placed, modified, triggered, part filled, filled, cancelled,
    expired, rejected) and SLTP (a position's new stops). A triggered fill is one TX with its
    DEAL and its ORDER, so a crash can never keep one without the other. The journal is also
    the account's order and deal history (``read_history``, ``read_deals``), which is what
    reconciliation searches; compaction (below) bounds it.
``sim_state``
    The snapshot: the whole account (open positions and working orders included) as of journal
    record ``seq`` plus the journal offset right after that record, so that a start replays only
    the tail. Written to a temporary file and moved into place, so it is always the old or the
    new one, never a mix.
``sim_state.prices``
    The latest prices, overwritten in place about once a second: after a crash the price path
    continues from there even when nothing was traded for a while.
``sim_state.lock``
    ``flock``-ed by the one process that owns the files; a second one waits, then gives up.

Compaction: once the journal has grown past ``Retention.compact_bytes`` and twice its size
after the last compaction, it is written anew as ``sim_state.log.compact`` and renamed over
the journal: a new base (the whole account now, at record ``N``), then the *archive*, the
records up to ``N`` still kept as history (those from the first one that is neither older
than ``Retention.keep_s`` before the newest nor of an order ticket more than
``Retention.keep_orders`` behind the next one; the engine forgets final orders past the same
bounds, and the orders it asks about are its latest), then the records after ``N``. The base's
journal offset field says where the archive ends; a start replays from there, history reads
the archive too. Each journal has a random id in its base, and a snapshot names the journal
its offset belongs to, so a snapshot of the journal before a compaction is ignored (the start
replays from the new base). The new file is fsynced before the rename and the directory
after it; a ``.compact`` file left by a crash is removed at the next start. The copying runs on
a thread; the broker's thread only appends what was journaled meanwhile and renames.

Record framing: payload length (u32 LE), CRC-32 of the payload (u32 LE), payload; the payload's
first byte is the record type. Floats are stored as raw doubles, so a restored account is the
same to the last bit. Formats 1 (before pending orders: FILL records, no orders in the base)
and 2 (no journal id) are still read; what is written is format 3.

Recovery: a record cut short at the end of the journal (a crash in the middle of a write) is
dropped and the journal truncated before it. Anything else unreadable is corruption: an error
is logged, the file is renamed aside as ``<name>.corrupt-<UTC time>`` and the account is rebuilt
from what is still readable (a bad snapshot: the whole journal; a bad journal: the snapshot and
the journal up to the damage); ticket counters then skip every ticket the unreadable part could
have used, so no ticket is ever reused. A state that belongs to another account (login,
currency, margin mode, or positions on symbols no longer configured) is set aside the same way
as ``<name>.mismatch-<time>``. Nothing here makes a start fail except an unusable directory or a
lock held by a live process, so a bad file can never cause a crash loop.

No fsync of records: a killed process loses nothing, its writes are already in the OS page
cache. Surviving power loss or a kernel crash is out of scope, except that a compaction never
replaces the journal with a file whose data is not on disk yet.
"""

from mt5exec.sim.state.codec import (
    FORMAT_VERSION,
    MAX_RECORD,
    MIN_FILL_RECORD,
    _parse_state,
    _scan,
    encode_deal,
    encode_order,
    encode_sltp,
)
from mt5exec.sim.state.history import HistoryIndex, history, read_deals, read_history
from mt5exec.sim.state.records import (
    AccountState,
    DealEntry,
    Loaded,
    MarketState,
    OrderState,
    PositionState,
    Retention,
    StateError,
)
from mt5exec.sim.state.store import LOCK_TIMEOUT_S, Journal, MemoryJournal, StateStore

__all__ = [
    "FORMAT_VERSION",
    "LOCK_TIMEOUT_S",
    "MAX_RECORD",
    "MIN_FILL_RECORD",
    "AccountState",
    "DealEntry",
    "HistoryIndex",
    "Journal",
    "Loaded",
    "MarketState",
    "MemoryJournal",
    "OrderState",
    "PositionState",
    "Retention",
    "StateError",
    "StateStore",
    "_parse_state",
    "_scan",
    "encode_deal",
    "encode_order",
    "encode_sltp",
    "history",
    "read_deals",
    "read_history",
]
