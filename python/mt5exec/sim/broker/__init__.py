"""The simulated broker: an MT5 trade server with its prices, account, positions and orders.

A plain, deterministic library: the sim worker process (``mt5exec.workers.sim``) drives it and
moves its messages over the socket, tests drive it directly. Trade fields and result codes use
MetaTrader 5's numbering (``mt5exec.mt5.constants``, by way of ``mt5exec.sim.constants``;
both re-exported here) so that the engine cannot tell it from a real terminal. What it does is
specified in docs/simulated-broker.md; fault injection (``mt5exec.sim.faults``) is described
there too.

The package, along the seams of a trade server (as nautilus_trader splits its matching engine):

- ``facade``: ``SimBroker``, which composes the parts below;
- ``config``: ``SimConfig`` and fixed numbers; ``outcomes``: what requests and ticks produce;
- ``prices``: one symbol's market (price walk, exposure, liquidity, triggers), currency rates;
- ``checks``: the checks of a request (volume, trade mode, filling, stops, prices, expiry);
- ``records``: working orders and open positions in memory;
- ``core``: the state the trade logic shares, journaling a change before it takes effect;
- ``fills``: fill planning and market orders; ``positions``: stops, close by, stop-out;
  ``pending``: pending orders and what ticks set off;
- ``snapshots``: account, order and position snapshots; ``persistence``: the durable account
  and its history (``mt5exec.sim.state`` holds the files).
"""

from mt5exec.sim.broker.config import CHECKPOINT_EVERY as CHECKPOINT_EVERY
from mt5exec.sim.broker.config import COMMENT_MAX as COMMENT_MAX
from mt5exec.sim.broker.config import SERVER_NAME as SERVER_NAME
from mt5exec.sim.broker.config import SimConfig as SimConfig
from mt5exec.sim.broker.facade import SimBroker as SimBroker
from mt5exec.sim.broker.outcomes import Activity as Activity
from mt5exec.sim.broker.outcomes import SendOutcome as SendOutcome
from mt5exec.sim.constants import *  # noqa: F403 - the MT5 numbering is part of this API
from mt5exec.sim.faults import FaultState as FaultState
