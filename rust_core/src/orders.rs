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

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

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
}

impl OrderEntry {
    /// Moves to `to` when legal; false (and no change) otherwise.
    pub fn transition(&mut self, to: S) -> bool {
        let from = S::try_from(self.order.status).unwrap_or(S::Unspecified);
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
    /// Whether an order in `status`, last changed at `updated_nanos`, is past the time it is
    /// remembered for at `now_nanos` (the cap aside).
    pub fn expired(&self, status: S, updated_nanos: i64, now_nanos: i64) -> bool {
        let keep = i64::try_from(self.keep_final.as_nanos()).unwrap_or(i64::MAX);
        is_final(status) && updated_nanos < now_nanos.saturating_sub(keep)
    }
}

/// Nanoseconds since the epoch of an order's timestamp (0 when unset).
pub fn timestamp_nanos(t: Option<&prost_types::Timestamp>) -> i64 {
    t.map_or(0, |t| {
        t.seconds
            .saturating_mul(1_000_000_000)
            .saturating_add(i64::from(t.nanos))
    })
}

/// Entries a [`OrderBook::retire`] call looks at, at most: inserting one order retires up to
/// this many, so the book shrinks faster than it grows once over its bounds.
const RETIRE_STEPS: usize = 4;

/// An instance's orders by client id, and client ids by terminal ticket.
#[derive(Debug, Default)]
pub struct OrderBook {
    /// Orders by client_order_id.
    pub by_client_id: HashMap<String, OrderEntry>,
    /// client_order_id by terminal order ticket.
    pub by_ticket: HashMap<u64, String>,
    /// client_order_id by MT5 comment key (for orders the terminal reports on its own).
    pub by_comment: HashMap<String, String>,
    /// client_order_ids in the order they came (working ones go round again): who is
    /// forgotten first.
    arrivals: VecDeque<String>,
}

impl OrderBook {
    /// Adds (or replaces) an entry and indexes it.
    pub fn insert(&mut self, entry: OrderEntry) {
        let cid = entry.order.client_order_id.clone();
        if entry.order.order_id != 0 {
            self.by_ticket.insert(entry.order.order_id, cid.clone());
        }
        self.by_comment
            .insert(crate::routing::comment_key(&cid), cid.clone());
        if self.by_client_id.insert(cid.clone(), entry).is_none() {
            self.arrivals.push_back(cid);
        }
    }

    /// Forgets final orders past `retention` (by age, or the oldest beyond the cap), looking
    /// at [`RETIRE_STEPS`] entries at most; the number forgotten.
    pub fn retire(&mut self, retention: &Retention, now_nanos: i64) -> usize {
        let mut retired = 0;
        for _ in 0..RETIRE_STEPS {
            let Some(cid) = self.arrivals.pop_front() else {
                break;
            };
            let Some(entry) = self.by_client_id.get(&cid) else {
                continue; // already gone
            };
            let status = S::try_from(entry.order.status).unwrap_or(S::Unspecified);
            if !is_final(status) || !entry.waiters.is_empty() {
                // Working orders are always remembered: looked at again after the rest.
                self.arrivals.push_back(cid);
                continue;
            }
            let updated = timestamp_nanos(entry.order.updated_time.as_ref());
            let crowded = self.by_client_id.len() > retention.max_orders;
            if !crowded && !retention.expired(status, updated, now_nanos) {
                self.arrivals.push_front(cid);
                break; // the oldest final order is still remembered, so are those after it
            }
            self.forget(&cid);
            retired += 1;
        }
        retired
    }

    fn forget(&mut self, cid: &str) {
        let Some(entry) = self.by_client_id.remove(cid) else {
            return;
        };
        let ticket = entry.order.order_id;
        if self.by_ticket.get(&ticket).is_some_and(|c| c == cid) {
            self.by_ticket.remove(&ticket);
        }
        let key = crate::routing::comment_key(cid);
        if self.by_comment.get(&key).is_some_and(|c| c == cid) {
            self.by_comment.remove(&key);
        }
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
mod tests {
    use super::*;

    const ALL: [S; 10] = [
        S::Unspecified,
        S::New,
        S::Submitted,
        S::Accepted,
        S::PartiallyFilled,
        S::Filled,
        S::Canceled,
        S::Rejected,
        S::Expired,
        S::Unknown,
    ];

    fn entry(status: S) -> OrderEntry {
        OrderEntry {
            order: v1::Order {
                status: status as i32,
                ..Default::default()
            },
            payload_hash: 0,
            waiters: Vec::new(),
            answer: None,
        }
    }

    fn booked(cid: &str, status: S, updated_s: i64) -> OrderEntry {
        let mut e = entry(status);
        e.order.client_order_id = cid.into();
        e.order.order_id = cid.len() as u64 * 1000 + u64::from(cid.as_bytes()[cid.len() - 1]);
        e.order.updated_time = Some(prost_types::Timestamp {
            seconds: updated_s,
            nanos: 0,
        });
        e
    }

    #[test]
    fn retire_forgets_old_final_orders_and_the_oldest_beyond_the_cap_never_working_ones() {
        let retention = Retention {
            keep_final: Duration::from_secs(100),
            max_orders: 3,
        };
        let now = 1_000_000_000_000i64; // 1000 s
        let mut book = OrderBook::default();
        book.insert(booked("working", S::Accepted, 0));
        book.insert(booked("old", S::Filled, 0));
        book.insert(booked("recent", S::Canceled, 990));
        // Within the cap: only the final order past the window goes; the working one is
        // older still but stays.
        assert_eq!(book.retire(&retention, now), 1);
        assert!(book.by_client_id.contains_key("working"));
        assert!(!book.by_client_id.contains_key("old"));
        assert!(!book.by_ticket.values().any(|c| c == "old"));
        assert!(!book.by_comment.values().any(|c| c == "old"));
        assert_eq!(book.retire(&retention, now), 0, "nothing else is due");
        // Over the cap: the oldest final order goes whatever its age.
        book.insert(booked("r2", S::Rejected, 995));
        book.insert(booked("r3", S::Filled, 996));
        book.retire(&retention, now);
        let mut left: Vec<&str> = book.by_client_id.keys().map(String::as_str).collect();
        left.sort_unstable();
        assert_eq!(left, ["r2", "r3", "working"]);
        // A final order someone still waits for is not forgotten.
        let mut waited = booked("waited", S::Filled, 0);
        waited.waiters.push(9);
        book.insert(waited);
        for _ in 0..4 {
            book.retire(&retention, now);
        }
        assert!(book.by_client_id.contains_key("waited"));
        assert!(book.by_client_id.contains_key("working"));
        assert_eq!(
            book.by_client_id.len(),
            3,
            "r2 went for waited: {:?}",
            book.by_client_id.keys()
        );
    }

    #[test]
    fn final_states_are_absorbing() {
        for from in ALL.into_iter().filter(|s| is_final(*s)) {
            for to in ALL {
                assert!(!legal(from, to), "{from:?} -> {to:?}");
            }
        }
    }

    #[test]
    fn unknown_resolves_but_never_restarts() {
        assert!(legal(S::Unknown, S::Filled));
        assert!(legal(S::Unknown, S::Rejected));
        assert!(!legal(S::Unknown, S::Submitted));
        assert!(!legal(S::Unknown, S::New));
    }

    /// Random walks over all statuses: an entry only ever takes legal steps, and once final
    /// it never changes again.
    #[test]
    fn random_walks_only_take_legal_steps() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..20_000 {
            let mut e = entry(S::Unspecified);
            let mut finished = None;
            for _ in 0..12 {
                let to = ALL[(next() % ALL.len() as u64) as usize];
                let from = S::try_from(e.order.status).unwrap_or(S::Unspecified);
                let moved = e.transition(to);
                let now = S::try_from(e.order.status).unwrap_or(S::Unspecified);
                if moved && from != to {
                    assert!(legal(from, to), "{from:?} -> {to:?}");
                }
                if !moved {
                    assert_eq!(now, from, "a refused step changes nothing");
                }
                if let Some(done) = finished {
                    assert_eq!(now, done, "final states are final");
                }
                if is_final(now) {
                    finished = Some(now);
                }
            }
        }
    }

    #[test]
    fn payload_hash_separates_fields_and_ignores_signed_zero() {
        let a = PayloadHasher::default().bytes(b"ab").bytes(b"c").finish();
        let b = PayloadHasher::default().bytes(b"a").bytes(b"bc").finish();
        assert_ne!(a, b);
        let z1 = PayloadHasher::default().f64(0.0).finish();
        let z2 = PayloadHasher::default().f64(-0.0).finish();
        assert_eq!(z1, z2);
        assert_ne!(
            PayloadHasher::default().f64(0.1).finish(),
            PayloadHasher::default().f64(0.2).finish()
        );
    }

    #[test]
    fn duplicates_get_the_stored_answer() {
        let mut e = entry(S::Rejected);
        e.answer = Some((9, "NO_MONEY".into(), "no".into()));
        let c = e.completion(5, vec![1]);
        assert_eq!((c.token, c.code, c.reason.as_str()), (5, 9, "NO_MONEY"));
    }
}
