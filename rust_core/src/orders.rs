//! The engine's orders: the state machine, and the book that makes submission idempotent.
//!
//! Every order is known by its `client_order_id`. The same id with the same payload gets the
//! original result (or joins the wait for it) and never a second terminal order; the same id
//! with another payload is refused. The book is rebuilt from the journal on start.
//!
//! What is remembered is bounded ([`Retention`]): a final order (filled, cancelled, rejected,
//! expired) is forgotten a while after its last change, and sooner when the instance holds
//! more orders than its cap — oldest first. Working and unknown orders are never forgotten.
//! The journal's compaction applies the same rule, so a restart remembers what was remembered
//! before it.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Duration;

use crate::convert::timestamp_nanos;
use crate::notify::Completion;
use crate::pb::v1;
use crate::pb::v1::OrderStatus as S;

/// Whether an order may go from `from` to `to`.
pub fn legal(from: S, to: S) -> bool {
    use S::{
        Accepted, Canceled, Expired, Filled, New, PartiallyFilled, Rejected, Submitted, Unknown,
        Unspecified,
    };
    match from {
        Unspecified => to == New || to == Submitted,
        New => matches!(to, Submitted | Rejected),
        Submitted => matches!(
            to,
            Accepted | PartiallyFilled | Filled | Canceled | Rejected | Expired | Unknown
        ),
        Accepted => matches!(
            to,
            Accepted | PartiallyFilled | Filled | Canceled | Expired | Unknown
        ),
        PartiallyFilled => matches!(to, PartiallyFilled | Filled | Canceled | Expired | Unknown),
        Unknown => matches!(
            to,
            Accepted | PartiallyFilled | Filled | Canceled | Rejected | Expired
        ),
        Filled | Canceled | Rejected | Expired => false,
    }
}

/// Whether nothing can happen to an order in this state any more.
pub fn is_final(status: S) -> bool {
    matches!(status, S::Filled | S::Canceled | S::Rejected | S::Expired)
}

/// An order and who waits for it.
#[derive(Debug, Clone)]
pub struct OrderEntry {
    /// The order as reported.
    pub order: v1::Order,
    /// Hash of the request that created it.
    pub payload_hash: u64,
    /// Tokens waiting for the terminal's answer.
    pub waiters: Vec<u64>,
    /// The answer once known, replayed to duplicates: (code, reason, message).
    pub answer: Option<(i32, String, String)>,
    /// The highest terminal order ticket the instance had seen when this order was placed:
    /// its own ticket is higher (a trade server numbers orders as they come), which tells it
    /// apart at reconciliation from an older, forgotten order with the same client_order_id.
    pub ticket_floor: u64,
}

impl OrderEntry {
    /// The order's status.
    pub fn status(&self) -> S {
        S::try_from(self.order.status).unwrap_or(S::Unspecified)
    }

    /// Whether nothing can happen to the order any more.
    pub fn is_final(&self) -> bool {
        is_final(self.status())
    }

    /// Moves to `to` when legal; false (and no change) otherwise.
    pub fn transition(&mut self, to: S) -> bool {
        let from = self.status();
        if from == to && !matches!(to, S::Accepted | S::PartiallyFilled) {
            return true;
        }
        if !legal(from, to) {
            return false;
        }
        self.order.status = to as i32;
        true
    }

    /// The completion a (duplicate) request for this order gets now.
    pub fn completion(&self, token: u64, payload: Vec<u8>) -> Completion {
        match &self.answer {
            Some((code, reason, message)) => Completion {
                token,
                code: *code,
                reason: reason.clone(),
                message: message.clone(),
                payload,
            },
            None => Completion::ok(token, payload),
        }
    }
}

/// How long final orders are remembered (their `client_order_id` stays taken, `GetOrder` and
/// `ListOrders` find them), and how many orders one instance remembers at most.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// A final order is forgotten this long after its last change.
    pub keep_final: Duration,
    /// Orders per instance; beyond it the oldest final ones are forgotten, whatever their age.
    pub max_orders: usize,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            keep_final: Duration::from_secs(24 * 3600),
            max_orders: 100_000,
        }
    }
}

impl Retention {
    /// Of `finals` — (created, client_order_id) of an instance's final orders that may go —
    /// those the cap forgets when the instance holds `orders` in all: the oldest created.
    pub fn beyond_cap<'a>(&self, orders: usize, mut finals: Vec<(i64, &'a str)>) -> Vec<&'a str> {
        let excess = orders.saturating_sub(self.max_orders);
        if excess < finals.len() {
            finals.select_nth_unstable(excess);
            finals.truncate(excess);
        }
        finals.into_iter().map(|(_, cid)| cid).collect()
    }

    /// How long final orders are kept, in nanoseconds.
    pub fn keep_nanos(&self) -> i64 {
        i64::try_from(self.keep_final.as_nanos()).unwrap_or(i64::MAX)
    }

    /// Whether an order in `status`, last changed at `updated_nanos`, is past the time it is
    /// remembered for at `now_nanos` (the cap aside).
    pub fn expired(&self, status: S, updated_nanos: i64, now_nanos: i64) -> bool {
        is_final(status) && updated_nanos < now_nanos.saturating_sub(self.keep_nanos())
    }
}

/// An instance's orders by client id, and client ids by terminal ticket.
#[derive(Debug, Default)]
pub struct OrderBook {
    /// Orders by client_order_id.
    pub by_client_id: HashMap<String, OrderEntry>,
    /// client_order_id by terminal order ticket.
    pub by_ticket: HashMap<u64, String>,
    /// client_order_id by MT5 comment key (for orders the terminal reports on its own).
    pub by_comment: HashMap<String, String>,
    /// Every order's (creation time in nanoseconds, client_order_id), oldest first: what
    /// retirement walks from the old end and `ListOrders` pages through from the new one.
    /// Kept by [`OrderBook::insert`] and `forget` (an order's creation time never changes).
    by_created: BTreeSet<(i64, String)>,
    /// The same for the orders that may still be working: every order that was not final
    /// when it was booked, less those found final since (a few are looked at per order
    /// booked, from a cursor that goes round), so that listing the working orders does not
    /// walk past every final one.
    maybe_open: BTreeSet<(i64, String)>,
    /// Where the next look for final orders in `maybe_open` starts.
    open_cursor: Option<(i64, String)>,
    /// When [`OrderBook::retire`] last looked for orders past their time.
    swept_at: i64,
    /// The last pass stopped at its limit: more is due at once.
    unfinished: bool,
    /// The highest terminal order ticket seen.
    pub max_ticket: u64,
}

/// Orders one [`OrderBook::retire`] call forgets at most: a pass holds the instance's lock,
/// so a backlog (a lowered cap, a long pause) is worked off in steps between orders.
pub const RETIRE_STEP: usize = 4096;

/// Orders of `maybe_open` looked at per order booked: more than one, so that it shrinks to
/// the working orders while orders come and settle.
const OPEN_LOOKS_PER_INSERT: usize = 2;

impl OrderBook {
    /// Adds (or replaces) an entry and indexes it.
    pub fn insert(&mut self, entry: OrderEntry) {
        let cid = entry.order.client_order_id.clone();
        let created = timestamp_nanos(entry.order.created_time.as_ref());
        if entry.order.order_id != 0 {
            self.index_ticket(entry.order.order_id, &cid);
        }
        self.by_comment
            .insert(crate::routing::comment_key(&cid), cid.clone());
        let working = !entry.is_final();
        if let Some(old) = self.by_client_id.insert(cid.clone(), entry) {
            let was = (
                timestamp_nanos(old.order.created_time.as_ref()),
                cid.clone(),
            );
            self.by_created.remove(&was);
            self.maybe_open.remove(&was);
        }
        if working {
            self.maybe_open.insert((created, cid.clone()));
        }
        self.by_created.insert((created, cid));
        self.drop_settled(OPEN_LOOKS_PER_INSERT);
    }

    /// Looks at up to `looks` orders of `maybe_open` from the cursor on, dropping those that
    /// are final (or gone).
    fn drop_settled(&mut self, looks: usize) {
        let from = self.open_cursor.take().unwrap_or((i64::MIN, String::new()));
        let seen: Vec<(i64, String)> = self
            .maybe_open
            .range(from.clone()..)
            .chain(self.maybe_open.range(..from))
            .take(looks)
            .cloned()
            .collect();
        for key in &seen {
            let settled = self
                .by_client_id
                .get(&key.1)
                .is_none_or(OrderEntry::is_final);
            if settled {
                self.maybe_open.remove(key);
            }
        }
        // Right after the last one looked at: the next look goes on from there.
        self.open_cursor = seen
            .last()
            .map(|(created, cid)| (*created, format!("{cid}\0")));
    }

    /// Orders by creation time, oldest first, as (created nanoseconds, client_order_id).
    pub fn by_created(&self) -> &BTreeSet<(i64, String)> {
        &self.by_created
    }

    /// Orders that may still be working (all that are, and some that were), by creation
    /// time like [`OrderBook::by_created`].
    pub fn maybe_open(&self) -> &BTreeSet<(i64, String)> {
        &self.maybe_open
    }

    /// The orders that are not final (working and unknown ones), oldest first, without a
    /// walk past the final ones.
    pub fn not_final(&self) -> impl Iterator<Item = &OrderEntry> {
        self.maybe_open
            .iter()
            .filter_map(|(_, cid)| self.by_client_id.get(cid))
            .filter(|e| !e.is_final())
    }

    /// Whether [`OrderBook::retire`] has work: the instance holds more than its cap (by a
    /// thousandth, so that each pass forgets a batch, not one order), the last pass stopped
    /// at its limit, or a tenth of the time final orders are kept (0.1 s to 10 min) has
    /// passed since orders were last looked at for their age.
    pub fn retire_due(&self, retention: &Retention, now_nanos: i64) -> bool {
        let slack = (retention.max_orders / 1000).clamp(1, 256);
        let every = (retention.keep_nanos() / 10).clamp(100_000_000, 600_000_000_000);
        self.unfinished
            || self.by_client_id.len() >= retention.max_orders.saturating_add(slack)
            || now_nanos.saturating_sub(self.swept_at) >= every
    }

    /// Forgets the final orders `retention` no longer keeps — those last changed longer ago
    /// than it keeps them, then, beyond the cap, the oldest created: the rule the journal's
    /// compaction applies, so a restart remembers what was remembered. Orders someone waits
    /// for, or that a request in flight (`in_use`) refers to, stay. Walks the book from its
    /// oldest order, only as far as orders can go (an order is changed after it is created,
    /// so only those created longer ago than the keep time can be past it; after the wall
    /// clock stepped back between the two, an order stays until its creation is that old
    /// too: at most the size of the step longer than the journal keeps it), and forgets at
    /// most [`RETIRE_STEP`] orders. The number forgotten.
    pub fn retire(
        &mut self,
        retention: &Retention,
        now_nanos: i64,
        in_use: &HashSet<&str>,
    ) -> usize {
        let horizon = now_nanos.saturating_sub(retention.keep_nanos());
        let idle = |cid: &str, e: &OrderEntry| {
            e.is_final() && e.waiters.is_empty() && (in_use.is_empty() || !in_use.contains(cid))
        };
        let mut expired: Vec<(i64, String)> = Vec::new();
        for (created, cid) in self.by_created.range(..(horizon, String::new())) {
            if expired.len() == RETIRE_STEP {
                break;
            }
            let Some(e) = self.by_client_id.get(cid) else {
                continue;
            };
            let updated = timestamp_nanos(e.order.updated_time.as_ref());
            if idle(cid, e) && retention.expired(e.status(), updated, now_nanos) {
                expired.push((*created, cid.clone()));
            }
        }
        let mut excess = (self.by_client_id.len() - expired.len())
            .saturating_sub(retention.max_orders)
            .min(RETIRE_STEP - expired.len());
        let mut crowded: Vec<(i64, String)> = Vec::new();
        if excess > 0 {
            let mut gone = expired.iter().peekable();
            for (created, cid) in &self.by_created {
                if excess == 0 {
                    break;
                }
                if gone.peek().is_some_and(|(c, id)| c == created && id == cid) {
                    gone.next();
                    continue;
                }
                let Some(e) = self.by_client_id.get(cid) else {
                    continue;
                };
                if idle(cid, e) {
                    crowded.push((*created, cid.clone()));
                    excess -= 1;
                }
            }
        }
        let forgotten = expired.len() + crowded.len();
        self.unfinished = forgotten == RETIRE_STEP;
        if !self.unfinished {
            self.swept_at = now_nanos;
        }
        for (created, cid) in expired.iter().chain(&crowded) {
            self.forget(*created, cid);
        }
        forgotten
    }

    fn forget(&mut self, created: i64, cid: &str) {
        let Some(entry) = self.by_client_id.remove(cid) else {
            return;
        };
        let key = (created, cid.to_owned());
        self.by_created.remove(&key);
        self.maybe_open.remove(&key);
        let ticket = entry.order.order_id;
        if self.by_ticket.get(&ticket).is_some_and(|c| c == cid) {
            self.by_ticket.remove(&ticket);
        }
        let key = crate::routing::comment_key(cid);
        if self.by_comment.get(&key).is_some_and(|c| c == cid) {
            self.by_comment.remove(&key);
        }
    }

    /// Indexes an order's terminal ticket.
    pub fn index_ticket(&mut self, ticket: u64, cid: &str) {
        self.saw_ticket(ticket);
        self.by_ticket.insert(ticket, cid.to_owned());
    }

    /// The client_order_id whose MT5 comment key is `comment`, when terminal order `ticket`
    /// can be its order: numbered after it was placed (an older order with the same comment
    /// belonged to a forgotten order of the same id).
    pub fn by_comment_for(&self, comment: &str, ticket: u64) -> Option<&String> {
        let cid = self.by_comment.get(comment)?;
        let entry = self.by_client_id.get(cid)?;
        (ticket > entry.ticket_floor).then_some(cid)
    }

    /// Notes a terminal order ticket, whoever's order it is (see `OrderEntry::ticket_floor`).
    pub fn saw_ticket(&mut self, ticket: u64) {
        self.max_ticket = self.max_ticket.max(ticket);
    }

    /// The entry of a terminal ticket.
    pub fn by_ticket_mut(&mut self, ticket: u64) -> Option<&mut OrderEntry> {
        let cid = self.by_ticket.get(&ticket)?;
        self.by_client_id.get_mut(cid)
    }
}

/// FNV-1a 64 over the canonical fields of a request: same payload, same hash.
#[derive(Debug, Clone, Copy)]
pub struct PayloadHasher(u64);

impl Default for PayloadHasher {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl PayloadHasher {
    /// Mixes bytes in.
    pub fn bytes(mut self, data: &[u8]) -> Self {
        for &b in data {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
        // A separator, so that ("ab","c") and ("a","bc") differ.
        self.0 ^= 0xff;
        self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        self
    }

    /// Mixes a float in (bit pattern; -0.0 and 0.0 are the same payload).
    pub fn f64(self, value: f64) -> Self {
        let v = if value == 0.0 { 0.0f64 } else { value };
        self.bytes(&v.to_bits().to_le_bytes())
    }

    /// Mixes an integer in.
    pub fn i64(self, value: i64) -> Self {
        self.bytes(&value.to_le_bytes())
    }

    /// The hash.
    pub fn finish(self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests;
