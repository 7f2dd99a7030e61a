//! The hub: every subscription by topic, publishing a piece to those that follow it, closing
//! and ending streams, and the figures the metrics read.

use bytes::Bytes;
use parking_lot::RwLock;
use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::subscription::{Subscription, RUN_MAX_BYTES};
use super::topic::{conflation_key, Topic, TOPICS};
use crate::error::{Code, EngineError};
use crate::notify::Notifier;

/// All subscriptions, by topic.
#[derive(Debug)]
pub struct Hub {
    pub(super) topics: [RwLock<Vec<Arc<Subscription>>>; TOPICS],
    pub(super) next_id: AtomicU64,
    /// Pieces dropped (conflated) by subscriptions that have ended, per topic.
    pub(super) retired_dropped: [AtomicU64; TOPICS],
    /// What a tick, account or instance-event subscriber may have queued ([`cost`]).
    pub(super) queue_max_bytes: usize,
    /// Subscribers cut off for reading too slowly.
    pub(super) cutoffs: AtomicU64,
}

impl Default for Hub {
    fn default() -> Self {
        Self::new(DEFAULT_QUEUE_MAX_BYTES)
    }
}

/// What a tick, account or instance-event subscriber may have queued unread, unless
/// configured: a few seconds of every tick of a busy instance.
pub const DEFAULT_QUEUE_MAX_BYTES: usize = 4 << 20;

/// A topic's subscriptions at one moment (the metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicStats {
    /// The topic.
    pub topic: Topic,
    /// Subscriptions now.
    pub subscribers: usize,
    /// Messages queued for them now.
    pub queued: usize,
    /// Messages dropped or conflated away since the engine started.
    pub dropped: u64,
}

impl Hub {
    /// A hub whose tick, account and instance-event subscribers are cut off past
    /// `queue_max_bytes` queued (executions are bounded by their count, and resumed).
    pub fn new(queue_max_bytes: usize) -> Self {
        Self {
            topics: Default::default(),
            next_id: AtomicU64::new(0),
            retired_dropped: Default::default(),
            queue_max_bytes,
            cutoffs: AtomicU64::new(0),
        }
    }

    /// A fresh id from the subscriptions' sequence (sessions share it, so that ready ids
    /// never collide).
    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Adds a subscription.
    pub fn subscribe(
        &self,
        topic: Topic,
        instances: HashSet<String>,
        symbols: HashSet<String>,
        limit: usize,
        conflate: bool,
    ) -> Arc<Subscription> {
        let max_bytes = if topic.drops_oldest() {
            self.queue_max_bytes
        } else {
            usize::MAX
        };
        let sub = Arc::new(Subscription::new(
            self.next_id(),
            topic,
            instances,
            symbols,
            limit.max(1),
            max_bytes,
            conflate,
        ));
        self.topics[topic as usize].write().push(Arc::clone(&sub));
        sub
    }

    /// Removes a subscription.
    pub fn unsubscribe(&self, topic: Topic, id: u64) {
        let mut subs = self.topics[topic as usize].write();
        if let Some(at) = subs.iter().position(|s| s.id == id) {
            let sub = subs.swap_remove(at);
            self.retire(topic, &sub);
        }
    }

    /// Counts what a subscription that leaves the hub dropped, and frees its queue (its
    /// stream may hold it a while longer).
    pub(super) fn retire(&self, topic: Topic, sub: &Subscription) {
        let mut q = sub.queue.lock();
        self.retired_dropped[topic as usize].fetch_add(q.dropped, Ordering::Relaxed);
        q.dropped = 0;
        if q.closed.is_none() {
            q.closed = Some(EngineError::new(
                Code::Cancelled,
                "UNSUBSCRIBED",
                "unsubscribed",
            ));
        }
        q.pieces = VecDeque::new();
        q.bytes = 0;
    }

    /// Removes the subscribers of a topic that were cut off, counting them.
    pub(super) fn remove_cut(&self, topic: Topic) {
        let mut subs = self.topics[topic as usize].write();
        let mut at = 0;
        while at < subs.len() {
            if subs[at].is_cut_off() {
                let sub = subs.swap_remove(at);
                self.retire(topic, &sub);
                self.cutoffs.fetch_add(1, Ordering::Relaxed);
            } else {
                at += 1;
            }
        }
    }

    /// Subscribers cut off for reading too slowly since the engine started.
    pub fn cutoffs(&self) -> u64 {
        self.cutoffs.load(Ordering::Relaxed)
    }

    /// Subscribers, queued and dropped messages per topic.
    pub fn stats(&self) -> Vec<TopicStats> {
        Topic::ALL
            .into_iter()
            .map(|topic| {
                let subs = self.topics[topic as usize].read();
                let (mut queued, mut dropped) = (0, 0);
                for sub in subs.iter() {
                    let q = sub.queue.lock();
                    queued += q.pieces.len();
                    dropped += q.dropped;
                }
                TopicStats {
                    topic,
                    subscribers: subs.len(),
                    queued,
                    dropped: dropped + self.retired_dropped[topic as usize].load(Ordering::Relaxed),
                }
            })
            .collect()
    }

    /// Number of subscriptions on a topic.
    pub fn count(&self, topic: Topic) -> usize {
        self.topics[topic as usize].read().len()
    }

    /// Queues `(symbol, piece)` items of one instance for every matching subscriber.
    pub fn publish(
        &self,
        topic: Topic,
        instance_id: &str,
        items: &[(&str, Bytes)],
        notifier: &Notifier,
    ) {
        let mut ready = Vec::new();
        let keys: Vec<u64> = items
            .iter()
            .map(|(symbol, _)| conflation_key(instance_id, symbol))
            .collect();
        let mut run = None;
        let run_fits = !topic.whole()
            && items.len() > 1
            && items.iter().map(|(_, p)| p.len()).sum::<usize>() <= RUN_MAX_BYTES;
        let mut cut = false;
        for sub in self.topics[topic as usize].read().iter() {
            if !sub.follows(instance_id) {
                continue;
            }
            let every_symbol =
                sub.symbols.is_empty() || items.iter().all(|(symbol, _)| sub.wants(symbol));
            let announce = if run_fits && every_symbol {
                sub.push_all(items, &keys, &mut run)
            } else {
                let mut announce = false;
                for ((symbol, piece), key) in items.iter().zip(&keys) {
                    if every_symbol || sub.wants(symbol) {
                        announce |= sub.push(*key, piece);
                    }
                }
                announce
            };
            if announce {
                ready.push(sub.id);
            }
            cut |= sub.is_cut_off();
        }
        if cut {
            self.remove_cut(topic);
        }
        notifier.ready(&ready);
    }

    /// Ends the streams of subscribers that follow `instance_id` (or all when empty).
    pub fn close_matching(&self, instance_id: &str, error: &EngineError, notifier: &Notifier) {
        let mut ready = Vec::new();
        for topic in Topic::ALL {
            for sub in self.topics[topic as usize].read().iter() {
                let follows = instance_id.is_empty()
                    || (sub.instances.len() == 1 && sub.instances.contains(instance_id));
                if follows && sub.close(error.clone()) {
                    ready.push(sub.id);
                }
            }
        }
        notifier.ready(&ready);
    }

    /// Ends the streams of a topic's subscribers that follow `instance_id` alone, once they
    /// have read what is queued for them.
    pub fn close_topic(
        &self,
        topic: Topic,
        instance_id: &str,
        error: &EngineError,
        notifier: &Notifier,
    ) {
        let mut ready = Vec::new();
        for sub in self.topics[topic as usize].read().iter() {
            let follows = sub.instances.len() == 1 && sub.instances.contains(instance_id);
            if follows && sub.close(error.clone()) {
                ready.push(sub.id);
            }
        }
        notifier.ready(&ready);
    }

    /// Ends at once, with `error`, every subscription that names `instance_id` among its
    /// instances (one that names it with others too: it is ended, not narrowed), and
    /// removes them: what they had queued is dropped. For an instance that is gone, whose
    /// id may come back for another owner. Subscriptions to every instance stay.
    pub fn end_naming(&self, instance_id: &str, error: &EngineError, notifier: &Notifier) {
        let mut ready = Vec::new();
        for topic in Topic::ALL {
            let mut subs = self.topics[topic as usize].write();
            let mut at = 0;
            while at < subs.len() {
                if !subs[at].instances.contains(instance_id) {
                    at += 1;
                    continue;
                }
                let sub = subs.swap_remove(at);
                {
                    let mut q = sub.queue.lock();
                    q.pieces = VecDeque::new();
                    q.bytes = 0;
                    q.closed = Some(error.clone());
                    if !std::mem::replace(&mut q.notified, true) {
                        ready.push(sub.id);
                    }
                }
                self.retire(topic, &sub);
            }
        }
        notifier.ready(&ready);
    }
}
