//! The trade copier: a master's fill becomes follower orders on the engine's own path (the
//! follower's validation, risk gate and journal), exactly once per master event.
//!
//! - [`spec`]: a relation's settings, their validation and the copies' client_order_ids;
//! - [`volume`]: the volume arithmetic (pure);
//! - [`defaults`]: the follower's execution.json applied to its copies;
//! - [`mapping`]: symbol mapping and filters;
//! - [`links`]: which follower orders copy which master position (for closes and SL/TP);
//! - [`dispatch`]: master deals and positions → follower orders;
//! - [`close`]: the orders closing copies (a master's close, a relation deleted);
//! - [`signal`]: signals → follower orders, through the same jobs;
//! - [`recovery`]: a restored relation's copies made up after a restart;
//! - [`state`]: what a relation keeps across restarts.

pub mod api;
pub mod close;
pub mod defaults;
pub mod dispatch;
pub mod links;
pub mod mapping;
pub mod pending;
pub mod recovery;
pub mod signal;
pub mod spec;
pub mod state;
pub mod volume;

#[cfg(test)]
mod tests;

use crate::reason;
use parking_lot::{Mutex, RwLock};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::latency;
use crate::pb::v1;

/// Latencies kept for a relation's percentiles.
const LATENCY_SAMPLES: usize = 4096;

/// What a relation did since the server started.
#[derive(Debug, Default)]
pub struct Stats {
    /// Follower orders sent.
    pub copies: AtomicU64,
    /// Copies not made, by reason.
    pub skipped: Mutex<BTreeMap<String, u64>>,
    /// Master deal in → follower order frame out.
    pub latency: latency::Histogram,
    recent: Mutex<VecDeque<f64>>,
    /// (fills, sum of slippage points, worst slippage points).
    pub slippage: Mutex<(u64, f64, f64)>,
    /// Restored at start, its missing copies made (see [`recovery`]).
    pub recovered: std::sync::atomic::AtomicBool,
}

impl Stats {
    /// A copy sent `elapsed` after its master event came in.
    pub fn copied(&self, elapsed: Duration) {
        self.copies.fetch_add(1, Ordering::Relaxed);
        self.latency.record(elapsed);
        let mut recent = self.recent.lock();
        if recent.len() == LATENCY_SAMPLES {
            recent.pop_front();
        }
        recent.push_back(elapsed.as_secs_f64());
    }

    /// The copies not made so far, by reason.
    pub fn skipped_counts(&self) -> Vec<(String, u64)> {
        self.skipped
            .lock()
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect()
    }

    /// A copy not made.
    pub fn skip(&self, reason: &str) {
        *self.skipped.lock().entry(reason.to_owned()).or_default() += 1;
    }

    /// A follower fill `points` worse than the master's price.
    pub fn slipped(&self, points: f64) {
        let mut s = self.slippage.lock();
        s.0 += 1;
        s.1 += points;
        s.2 = if s.0 == 1 { points } else { s.2.max(points) };
    }

    /// The latency quantile `q` of the recent copies (0 when none).
    #[must_use]
    pub fn latency_quantile(&self, q: f64) -> f64 {
        let mut all: Vec<f64> = self.recent.lock().iter().copied().collect();
        if all.is_empty() {
            return 0.0;
        }
        all.sort_by(f64::total_cmp);
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        let i = ((all.len() as f64 * q).ceil() as usize).clamp(1, all.len()) - 1;
        all[i]
    }

    /// As the API answers it.
    #[must_use]
    pub fn to_pb(&self) -> v1::CopyRelationStats {
        let (fills, sum, worst) = *self.slippage.lock();
        #[allow(clippy::cast_precision_loss)]
        let mean = if fills > 0 { sum / fills as f64 } else { 0.0 };
        v1::CopyRelationStats {
            copies: self.copies.load(Ordering::Relaxed),
            skipped: self.skipped_counts().into_iter().collect(),
            latency_p50_seconds: self.latency_quantile(0.5),
            latency_p99_seconds: self.latency_quantile(0.99),
            fills,
            slippage_points_mean: mean,
            slippage_points_max: worst,
            recovered: self.recovered.load(Ordering::Relaxed),
        }
    }
}

pub use defaults::Defaults;

/// A relation's key: its owner and id (ids are the owner's own).
pub type Key = (String, String);

fn key_of(spec: &v1::CopyRelation) -> Key {
    (spec.owner.clone(), spec.relation_id.clone())
}

/// One relation: its settings, statistics and links.
#[derive(Debug)]
pub struct Relation {
    /// As created (with owner and created_time).
    pub spec: v1::CopyRelation,
    /// The follower's defaults, given with the relation.
    pub defaults: Defaults,
    /// Its copies' client_order_ids start with it: the id and this incarnation of it
    /// ([`spec::id_prefix`]).
    pub prefix: String,
    /// Since the server started.
    pub stats: Stats,
    /// Master position → its copies.
    pub links: Mutex<links::Links>,
    /// The master's pending orders copied (`copy_pending`).
    pub pending: Mutex<pending::Copied>,
    /// Master positions whose copy was refused for good ([`state`]).
    refused_positions: Mutex<BTreeSet<u64>>,
    /// The master's pending orders whose copy was refused for good ([`state`]).
    refused_pending: Mutex<BTreeSet<u64>>,
    /// A task tries the closes still owed again ([`recovery::close_owed`]).
    pub retrying_owed: std::sync::atomic::AtomicBool,
}

impl Relation {
    fn new(spec: v1::CopyRelation, defaults: Defaults) -> Self {
        Self {
            prefix: spec::id_prefix(&spec),
            spec,
            defaults,
            stats: Stats::default(),
            links: Mutex::new(links::Links::default()),
            pending: Mutex::new(pending::Copied::default()),
            refused_positions: Mutex::new(BTreeSet::new()),
            refused_pending: Mutex::new(BTreeSet::new()),
            retrying_owed: std::sync::atomic::AtomicBool::new(false),
        }
    }
}

/// Whether instance `to` receives copies of `from`'s trades through the relations (master →
/// follower edges), directly or by a chain.
fn reaches(all: &HashMap<Key, Arc<Relation>>, from: &str, to: &str) -> bool {
    if to.is_empty() {
        return false;
    }
    let mut seen = std::collections::HashSet::new();
    let mut next = vec![from.to_owned()];
    while let Some(at) = next.pop() {
        if at == to {
            return true;
        }
        if !seen.insert(at.clone()) {
            continue;
        }
        next.extend(
            all.values()
                .filter(|r| r.spec.master_instance_id == at)
                .map(|r| r.spec.follower_instance_id.clone()),
        );
    }
    false
}

/// The incarnations of a relation id removed (by key).
#[derive(Debug, Default)]
struct Retired {
    /// The latest created_time seconds removed: a relation made again under the id gets a
    /// later one (a prefix of its own).
    last: i64,
    /// Every incarnation removed whose copies are still told apart from a user's orders: its
    /// id prefix (`<relation>.<incarnation>`) and its follower (until that instance is
    /// deleted: one made again under the id is another account).
    copies_on: Vec<(String, String)>,
}

/// Every relation of the engine.
#[derive(Debug, Default)]
pub struct Copier {
    relations: RwLock<HashMap<Key, Arc<Relation>>>,
    /// The relations removed, by key.
    retired: Mutex<HashMap<Key, Retired>>,
    /// Relations removed while they still owed closes (their follower not ready, or
    /// refusing): the closes are made when it is ready, then the relation is let go.
    draining: Mutex<Vec<Arc<Relation>>>,
    /// By master instance: when its worker became ready, for the last worker whose first
    /// positions were checked for positions gone while it was away.
    masters_checked: Mutex<HashMap<String, std::time::Instant>>,
}

impl Copier {
    /// Adds a relation (replacing none).
    ///
    /// # Errors
    /// `ALREADY_EXISTS` for an id the owner has; `FAILED_PRECONDITION` (`COPY_CYCLE`) when
    /// the follower already reaches the master through other relations (copies would be
    /// copied back forever).
    pub fn add(
        &self,
        mut spec: v1::CopyRelation,
        defaults: Defaults,
    ) -> crate::error::Result<Arc<Relation>> {
        let mut all = self.relations.write();
        if all.contains_key(&key_of(&spec)) {
            return Err(crate::error::EngineError::new(
                crate::error::Code::AlreadyExists,
                reason::RELATION_EXISTS,
                format!(
                    "relation.relation_id: '{}' already exists",
                    spec.relation_id
                ),
            )
            .field("relation.relation_id"));
        }
        if reaches(&all, &spec.follower_instance_id, &spec.master_instance_id) {
            return Err(crate::error::EngineError::new(
                crate::error::Code::FailedPrecondition,
                reason::COPY_CYCLE,
                format!(
                    "relation.follower_instance_id: '{}' already copies to '{}' through other \
                     relations: this one would make a cycle",
                    spec.follower_instance_id, spec.master_instance_id
                ),
            )
            .field("relation.follower_instance_id"));
        }
        if let Some(before) = self.retired.lock().get(&key_of(&spec)) {
            let created = spec.created_time.get_or_insert_with(Default::default);
            if created.seconds <= before.last {
                created.seconds = before.last + 1;
                created.nanos = 0;
            }
        }
        let relation = Arc::new(Relation::new(spec, defaults));
        all.insert(key_of(&relation.spec), Arc::clone(&relation));
        Ok(relation)
    }

    /// Removes an owner's relation.
    pub fn remove(&self, owner: &str, relation_id: &str) -> Option<Arc<Relation>> {
        let key = (owner.to_owned(), relation_id.to_owned());
        let removed = self.relations.write().remove(&key)?;
        self.retire(&removed);
        Some(removed)
    }

    /// Remembers a removed relation's incarnation (its copies stay told apart).
    fn retire(&self, relation: &Relation) {
        let seconds = relation.spec.created_time.as_ref().map_or(0, |t| t.seconds);
        let mut retired = self.retired.lock();
        let entry = retired.entry(key_of(&relation.spec)).or_default();
        entry.last = entry.last.max(seconds);
        let incarnation = (
            relation.prefix.clone(),
            relation.spec.follower_instance_id.clone(),
        );
        if !entry.copies_on.contains(&incarnation) {
            entry.copies_on.push(incarnation);
        }
    }

    /// An owner's relation.
    pub fn get(&self, owner: &str, relation_id: &str) -> Option<Arc<Relation>> {
        self.relations
            .read()
            .get(&(owner.to_owned(), relation_id.to_owned()))
            .cloned()
    }

    /// Whether `relation` is still the one under its key (not removed, nor made again).
    pub fn current(&self, relation: &Arc<Relation>) -> bool {
        self.relations
            .read()
            .get(&key_of(&relation.spec))
            .is_some_and(|r| Arc::ptr_eq(r, relation))
    }

    /// Keeps a removed relation until the closes it owes are made ([`recovery::on_ready`]).
    pub fn drain(&self, relation: Arc<Relation>) {
        if relation.links.lock().owes() {
            self.draining.lock().push(relation);
        }
    }

    /// A removed relation that owed closes when the server stopped (saved in
    /// `copy_stats.json`): kept until they are made, its copies told apart from a user's
    /// orders meanwhile.
    pub fn restore_removed(&self, spec: v1::CopyRelation, defaults: Defaults) -> Arc<Relation> {
        let relation = Arc::new(Relation::new(spec, defaults));
        self.retire(&relation);
        self.draining.lock().push(Arc::clone(&relation));
        relation
    }

    /// Every removed relation still owing closes.
    pub fn removed_owing(&self) -> Vec<Arc<Relation>> {
        let mut draining = self.draining.lock();
        draining.retain(|r| r.links.lock().owes());
        draining.clone()
    }

    /// The removed relations naming `instance_id` (of `owner`) that still owe closes: as its
    /// master, or as its follower when the relation is the owner's (those that owe none any
    /// more are let go).
    pub fn draining(&self, instance_id: &str, owner: &str) -> Vec<Arc<Relation>> {
        let mut draining = self.draining.lock();
        draining.retain(|r| r.links.lock().owes());
        draining
            .iter()
            .filter(|r| {
                r.spec.master_instance_id == instance_id
                    || (r.spec.follower_instance_id == instance_id && r.spec.owner == owner)
            })
            .cloned()
            .collect()
    }

    /// Follower `instance_id` was deleted: the removed relations still owing it closes are
    /// let go (an instance made again under the id is another account), and the removed
    /// relations' copies on it are no longer told apart. Returns whether any relation still
    /// owed closes.
    pub fn forget_follower(&self, instance_id: &str) -> bool {
        for retired in self.retired.lock().values_mut() {
            retired
                .copies_on
                .retain(|(_, follower)| follower != instance_id);
        }
        let mut draining = self.draining.lock();
        let before = draining.len();
        draining.retain(|r| r.spec.follower_instance_id != instance_id);
        draining.len() != before
    }

    /// Whether `client_order_id` is one of the copies made for follower `instance_id` (by a
    /// relation of it: current, or any incarnation of the id removed while its follower was
    /// this instance): a user's own id of the same shape is not.
    pub fn made_copy(&self, instance_id: &str, owner: &str, client_order_id: &str) -> bool {
        let Some(prefix) = spec::copy_prefix(client_order_id) else {
            return false;
        };
        let Some((relation_id, _)) = prefix.split_once('.') else {
            return false;
        };
        let key = (owner.to_owned(), relation_id.to_owned());
        if let Some(r) = self.relations.read().get(&key) {
            if r.spec.follower_instance_id == instance_id && r.prefix == prefix {
                return true;
            }
        }
        if self.draining.lock().iter().any(|r| {
            r.spec.follower_instance_id == instance_id
                && r.spec.owner == owner
                && r.prefix == prefix
        }) {
            return true;
        }
        // Removed: an incarnation of the id whose follower this instance was.
        self.retired.lock().get(&key).is_some_and(|retired| {
            retired
                .copies_on
                .iter()
                .any(|(p, follower)| p == prefix && follower == instance_id)
        })
    }

    /// Whether master `instance_id`'s worker that became ready `at` has its first positions
    /// checked now (false: done already).
    pub fn first_check(&self, instance_id: &str, at: std::time::Instant) -> bool {
        self.masters_checked
            .lock()
            .insert(instance_id.to_owned(), at)
            != Some(at)
    }

    /// Every relation, by id (then owner).
    pub fn all(&self) -> Vec<Arc<Relation>> {
        let mut all: Vec<Arc<Relation>> = self.relations.read().values().cloned().collect();
        all.sort_by(|a, b| {
            (&a.spec.relation_id, &a.spec.owner).cmp(&(&b.spec.relation_id, &b.spec.owner))
        });
        all
    }

    /// The relations whose master is `instance_id` (none: quickly).
    pub fn of_master(&self, instance_id: &str) -> Vec<Arc<Relation>> {
        let all = self.relations.read();
        if all.is_empty() {
            return Vec::new();
        }
        let mut of: Vec<Arc<Relation>> = all
            .values()
            .filter(|r| r.spec.master_instance_id == instance_id)
            .cloned()
            .collect();
        of.sort_by(|a, b| a.spec.relation_id.cmp(&b.spec.relation_id));
        of
    }

    /// The relations naming `instance_id` as master or follower.
    pub fn naming(&self, instance_id: &str) -> Vec<Arc<Relation>> {
        let all = self.relations.read();
        let mut of: Vec<Arc<Relation>> = all
            .values()
            .filter(|r| {
                r.spec.master_instance_id == instance_id
                    || r.spec.follower_instance_id == instance_id
            })
            .cloned()
            .collect();
        of.sort_by(|a, b| a.spec.relation_id.cmp(&b.spec.relation_id));
        of
    }

    /// The relations following a signal source.
    pub fn of_source(&self, source: &str) -> Vec<Arc<Relation>> {
        let mut of: Vec<Arc<Relation>> = self
            .relations
            .read()
            .values()
            .filter(|r| !source.is_empty() && r.spec.signal_source == source)
            .cloned()
            .collect();
        of.sort_by(|a, b| a.spec.relation_id.cmp(&b.spec.relation_id));
        of
    }
}
