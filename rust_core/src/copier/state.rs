//! What a relation keeps across restarts (saved by the server in `copy_stats.json`): its
//! statistics (not the latency samples) and the master positions whose copy was refused for
//! good (the follower's risk gate, a filter, no volume), and the master's pending orders
//! whose copy was, so that the recovery at the next start does not try, and count, them
//! again; and the closes it owes (a removed relation's too: kept until they are made).

use std::sync::atomic::Ordering;

use super::links::OwedClose;
use super::Relation;
use crate::reason;

/// A relation's saved state (in Python `CopyState`).
#[derive(Debug, Clone, Default, PartialEq)]
#[cfg_attr(
    feature = "python",
    pyo3::pyclass(frozen, get_all, name = "CopyState", module = "mt5exec._core")
)]
pub struct Saved {
    /// The relation's owner.
    pub owner: String,
    /// The relation.
    pub relation_id: String,
    /// Its created_time seconds (a relation made again under the id starts afresh).
    pub incarnation: i64,
    /// Follower orders sent.
    pub copies: u64,
    /// Copies not made, by reason.
    pub skipped: Vec<(String, u64)>,
    /// Follower fills measured against the master's price.
    pub fills: u64,
    /// Their slippage in points, summed.
    pub slippage_sum: f64,
    /// The worst of them.
    pub slippage_max: f64,
    /// Master positions whose copy was refused for good.
    pub refused: Vec<u64>,
    /// The master's pending orders whose copy was refused for good.
    pub refused_pending: Vec<u64>,
    /// Closes owed (the follower was not ready, or refused them).
    pub owed: Vec<OwedClose>,
}

/// A refusal worth trying again later (the follower was away, or just back without a
/// price yet), not a decision.
pub(super) fn passing(reason: &str) -> bool {
    matches!(
        reason,
        reason::INSTANCE_NOT_READY
            | reason::WORKER_UNAVAILABLE
            | reason::FOLLOWER_NOT_FOUND
            | reason::NO_PRICE
            | reason::STALE_TICK
    )
}

impl Relation {
    /// The opening copy of master position `position` was refused for `reason`: unless the
    /// follower was only away, the recovery leaves the position alone from now on.
    pub fn refused(&self, position: u64, reason: &str) {
        if position != 0 && !passing(reason) {
            self.refused_positions.lock().insert(position);
        }
    }

    /// Whether the copy of `position` was refused for good.
    pub fn was_refused(&self, position: u64) -> bool {
        self.refused_positions.lock().contains(&position)
    }

    /// The copy of the master's pending order `ticket` was refused for `reason`: unless the
    /// follower was only away, it is not placed again (at the next start either).
    pub fn refused_pending(&self, ticket: u64, reason: &str) {
        if ticket != 0 && !passing(reason) {
            self.refused_pending.lock().insert(ticket);
        }
    }

    /// Whether the copy of pending order `ticket` was refused for good.
    pub fn was_refused_pending(&self, ticket: u64) -> bool {
        self.refused_pending.lock().contains(&ticket)
    }

    /// Forgets the refusals of master pending orders no longer placed (`placed`: the
    /// master's pending orders; empty, perhaps not reported yet: none forgotten).
    pub fn keep_refused_pending(&self, placed: &[u64]) {
        if !placed.is_empty() {
            self.refused_pending.lock().retain(|t| placed.contains(t));
        }
    }

    /// Forgets the refusal of a master pending order gone (filled, cancelled, expired).
    pub fn forget_refused_pending(&self, ticket: u64) {
        self.refused_pending.lock().remove(&ticket);
    }

    /// Forgets the refusals of master positions no longer open.
    pub fn keep_refused(&self, open: &[u64]) {
        self.refused_positions.lock().retain(|p| open.contains(p));
    }

    /// What to save.
    pub fn saved(&self) -> Saved {
        let s = &self.stats;
        let (fills, slippage_sum, slippage_max) = *s.slippage.lock();
        Saved {
            owner: self.spec.owner.clone(),
            relation_id: self.spec.relation_id.clone(),
            incarnation: self.spec.created_time.as_ref().map_or(0, |t| t.seconds),
            copies: s.copies.load(Ordering::Relaxed),
            skipped: s.skipped_counts(),
            fills,
            slippage_sum,
            slippage_max,
            refused: self.refused_positions.lock().iter().copied().collect(),
            refused_pending: self.refused_pending.lock().iter().copied().collect(),
            owed: self.links.lock().owed(),
        }
    }

    /// Continues from a saved state (a relation restored at start).
    pub fn restore(&self, saved: &Saved) {
        let s = &self.stats;
        s.copies.fetch_add(saved.copies, Ordering::Relaxed);
        {
            let mut skipped = s.skipped.lock();
            for (reason, n) in &saved.skipped {
                *skipped.entry(reason.clone()).or_default() += n;
            }
        }
        *s.slippage.lock() = (saved.fills, saved.slippage_sum, saved.slippage_max);
        self.refused_positions
            .lock()
            .extend(saved.refused.iter().copied());
        self.refused_pending
            .lock()
            .extend(saved.refused_pending.iter().copied());
        self.links.lock().saved_owed.extend(
            saved
                .owed
                .iter()
                .map(|(p, v, d, a)| (*p, (*v, (*d, a.clone())))),
        );
    }
}
