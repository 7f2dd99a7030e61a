//! Fan-out of encoded stream messages to subscribers.
//!
//! A message is encoded once, as one `repeated` field-1 entry of the stream's
//! response message (`StreamTicksResponse.ticks`, `StreamExecutionsResponse.events`,
//! ...). Protobuf lets such entries be concatenated, so a subscriber that fell
//! behind gets everything queued as one response by concatenating the shared
//! pieces, with its own sequence number appended: nothing is re-encoded per
//! subscriber. Each subscriber has a bounded queue; what happens when it is
//! full depends on the topic (drop the oldest ticks, or end the stream). What a
//! tick, account or instance-event subscriber has queued unread is bounded in
//! bytes too: past that it is cut off at once (its queue freed, its stream ended
//! with `SLOW_CONSUMER`, itself removed from the hub), whether or not the server
//! still runs the stream that would notice.
//!
//! Books (`StreamBookResponse`) are whole messages, not entries of a repeated field:
//! a piece is one response, taken one at a time, with the same sequence, dropped,
//! conflation and cut-off rules as ticks (its key is the instance and symbol).

use crate::reason;
use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use prost::Message;
use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use crate::error::{Code, EngineError};
use crate::notify::Notifier;

/// The streams the hub serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topic {
    /// Market data; a full queue drops its oldest ticks (counted, and visible as a sequence gap).
    Ticks = 0,
    /// Order and fill events; a full queue ends the stream (the client resumes by sequence).
    Executions = 1,
    /// Account updates.
    Accounts = 2,
    /// Instance state changes.
    InstanceEvents = 3,
    /// Depth of market: each piece a whole `StreamBookResponse` (one book), numbered and
    /// conflated like ticks (a full queue keeps the latest book), taken one per response.
    Book = 4,
}

impl Topic {
    const ALL: [Topic; TOPICS] = [
        Topic::Ticks,
        Topic::Executions,
        Topic::Accounts,
        Topic::InstanceEvents,
        Topic::Book,
    ];

    /// Maps the Python-side number.
    pub fn from_i32(value: i32) -> Option<Self> {
        Self::ALL.into_iter().find(|t| *t as i32 == value)
    }

    /// The topic's name in metrics.
    pub fn name(self) -> &'static str {
        match self {
            Topic::Ticks => "ticks",
            Topic::Executions => "executions",
            Topic::Accounts => "accounts",
            Topic::InstanceEvents => "instance_events",
            Topic::Book => "book",
        }
    }

    fn drops_oldest(self) -> bool {
        !matches!(self, Topic::Executions)
    }

    /// The response's sequence and dropped field numbers, for a numbered topic.
    fn numbering(self) -> Option<(u32, u32)> {
        match self {
            Topic::Ticks => Some((2, 3)),
            Topic::Book => Some((5, 6)),
            _ => None,
        }
    }

    /// Whether a piece is a whole response (one per take) rather than a field-1 entry of one.
    fn whole(self) -> bool {
        matches!(self, Topic::Book)
    }
}

/// The number of topics.
const TOPICS: usize = 5;

/// Encodes `msg` as field 1 of a stream response: the shareable piece.
pub fn piece<M: Message>(msg: &M) -> Bytes {
    let mut buf = Vec::with_capacity(msg.encoded_len() + 6);
    prost::encoding::message::encode(1, msg, &mut buf);
    Bytes::from(buf)
}

/// The pieces of `items` as one.
fn concat(items: &[(&str, Bytes)]) -> Bytes {
    let mut out = Vec::with_capacity(items.iter().map(|(_, p)| p.len()).sum());
    for (_, piece) in items {
        out.extend_from_slice(piece);
    }
    Bytes::from(out)
}

/// The most a response's sequence and dropped fields take: two one-byte keys, two varints.
const TRAILER_MAX: usize = 2 * (1 + 10);

/// What a subscriber takes from its queue.
#[derive(Debug, Default)]
pub struct Taken<B = Vec<u8>> {
    /// One encoded response, if anything was queued.
    pub data: Option<B>,
    /// Set when the stream has ended and nothing is left to deliver.
    pub closed: Option<EngineError>,
}

#[derive(Debug)]
struct Queued {
    /// The number of the piece's first entry in this subscription (numbered topics).
    seq: u64,
    /// Instance and symbol, for conflation ([`RUN_KEY`] for a run of several).
    key: u64,
    /// Entries in the piece: 1, or the length of a run.
    count: u64,
    piece: Bytes,
}

/// The key of a run: several entries of one publish shared as one piece, which conflation
/// never replaces (it only drops it whole, oldest first, when the subscriber is behind).
const RUN_KEY: u64 = u64::MAX;

/// Publishes larger than this are queued entry by entry (a run is never split across
/// responses, which stay near the size a subscriber takes at once).
const RUN_MAX_BYTES: usize = 64 * 1024;

/// What one queued piece costs its subscriber: its bytes and its entry.
fn cost(piece: &Bytes) -> usize {
    piece.len() + std::mem::size_of::<Queued>()
}

#[derive(Debug)]
struct Queue {
    pieces: VecDeque<Queued>,
    /// What the pieces cost ([`cost`]).
    bytes: usize,
    /// Number of the next piece.
    next_seq: u64,
    dropped: u64,
    notified: bool,
    closed: Option<EngineError>,
}

/// The conflation key of an instance's symbol (FNV-1a).
pub fn conflation_key(instance_id: &str, symbol: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in instance_id.bytes().chain([0xff]).chain(symbol.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// One subscriber's filter and queue.
#[derive(Debug)]
pub struct Subscription {
    /// Id announced through [`Notifier::ready`].
    pub id: u64,
    topic: Topic,
    instances: HashSet<String>,
    symbols: HashSet<String>,
    limit: usize,
    /// What the queue may cost ([`cost`]) before the subscriber is cut off.
    max_bytes: usize,
    /// Keep only the latest piece per instance and symbol whenever behind (as asked).
    conflate: bool,
    queue: Mutex<Queue>,
    /// Cut off for reading too slowly: to be removed from the hub.
    cut: AtomicBool,
}

impl Subscription {
    fn follows(&self, instance_id: &str) -> bool {
        self.instances.is_empty() || self.instances.contains(instance_id)
    }

    fn wants(&self, symbol: &str) -> bool {
        self.symbols.is_empty() || symbol.is_empty() || self.symbols.contains(symbol)
    }

    /// Queues a piece; true when the subscriber must be announced as ready.
    ///
    /// A tick subscriber that asked for conflation keeps only the latest tick per instance
    /// and symbol while it is behind; one that did not is conflated the same way once it is
    /// `limit` messages behind, so that its memory stays bounded and it still sees the
    /// latest prices. Either way `dropped` counts what it did not get.
    fn push(&self, key: u64, piece: &Bytes) -> bool {
        let mut q = self.queue.lock();
        self.push_locked(&mut q, key, piece)
    }

    /// Queues every entry of one publish, all matching this subscriber, under one lock: as
    /// one shared piece (`run`, made on first use) while the subscriber keeps up and did not
    /// ask for conflation (one reference count per subscriber and publish instead of one per
    /// entry), entry by entry otherwise. True when the subscriber must be announced.
    fn push_all(&self, items: &[(&str, Bytes)], keys: &[u64], run: &mut Option<Bytes>) -> bool {
        let mut q = self.queue.lock();
        if q.closed.is_some() {
            return false;
        }
        if self.conflate || q.pieces.len() >= self.limit {
            let mut announce = false;
            for ((_, piece), key) in items.iter().zip(keys) {
                announce |= self.push_locked(&mut q, *key, piece);
            }
            return announce;
        }
        let piece = run.get_or_insert_with(|| concat(items)).clone();
        let count = items.len() as u64;
        let seq = q.next_seq;
        q.next_seq += count;
        q.bytes += cost(&piece);
        q.pieces.push_back(Queued {
            seq,
            key: RUN_KEY,
            count,
            piece,
        });
        self.bound(&mut q);
        !std::mem::replace(&mut q.notified, true)
    }

    /// Cuts the subscriber off when its queue costs more than its bound: the queue freed at
    /// once, the stream ended with `SLOW_CONSUMER` (once its handler looks), the subscriber
    /// marked for removal from the hub.
    fn bound(&self, q: &mut Queue) {
        if q.bytes <= self.max_bytes {
            return;
        }
        let kb = self.max_bytes / 1024;
        self.cut_off(
            q,
            format!(
                "the subscriber left more than {kb} KB of messages unread; reconnect (ticks: \
                 ask for conflation to get only the latest prices while behind)"
            ),
        );
    }

    fn cut_off(&self, q: &mut Queue, message: String) {
        // Replaced, not cleared: clear() would keep the queue's capacity allocated.
        q.pieces = VecDeque::new();
        q.bytes = 0;
        q.closed = Some(EngineError::new(
            Code::ResourceExhausted,
            reason::SLOW_CONSUMER,
            message,
        ));
        self.cut.store(true, Ordering::Release);
    }

    fn push_locked(&self, q: &mut Queue, key: u64, piece: &Bytes) -> bool {
        if q.closed.is_some() {
            return false;
        }
        let seq = q.next_seq;
        q.next_seq += 1;
        let behind = q.pieces.len() >= self.limit;
        if self.topic.drops_oldest() && (self.conflate || behind) {
            // The newest piece of the same key: replacing it keeps each key's ticks in order.
            if let Some(same) = q.pieces.iter_mut().rev().find(|p| p.key == key) {
                let replaced = cost(&same.piece);
                same.piece = piece.clone();
                same.seq = seq;
                q.bytes = q.bytes - replaced + cost(piece);
                q.dropped += 1;
                self.bound(q);
                return !std::mem::replace(&mut q.notified, true);
            }
            if behind {
                if let Some(oldest) = q.pieces.pop_front() {
                    q.dropped += oldest.count;
                    q.bytes -= cost(&oldest.piece);
                }
            }
        } else if behind {
            let message = format!(
                "the subscriber fell {} messages behind; resume from the last sequence seen",
                self.limit
            );
            self.cut_off(q, message);
            return !std::mem::replace(&mut q.notified, true);
        }
        q.bytes += cost(piece);
        q.pieces.push_back(Queued {
            seq,
            key,
            count: 1,
            piece: piece.clone(),
        });
        self.bound(q);
        !std::mem::replace(&mut q.notified, true)
    }

    /// Queues pieces ahead of anything live (a resuming subscriber's replay); true when the
    /// subscriber must be announced.
    pub fn preload(&self, pieces: &[Bytes]) -> bool {
        if pieces.is_empty() {
            return false;
        }
        let mut q = self.queue.lock();
        for piece in pieces {
            let seq = q.next_seq;
            q.next_seq += 1;
            q.bytes += cost(piece);
            q.pieces.push_back(Queued {
                seq,
                key: 0,
                count: 1,
                piece: piece.clone(),
            });
        }
        !std::mem::replace(&mut q.notified, true)
    }

    /// Ends the stream once the queue is drained; true when it must be announced.
    fn close(&self, error: EngineError) -> bool {
        let mut q = self.queue.lock();
        if q.closed.is_none() {
            q.closed = Some(error);
        }
        !std::mem::replace(&mut q.notified, true)
    }

    /// Takes up to about `max_bytes` of queued pieces as one encoded response, in a `Vec`:
    /// the plain form of `take_with` for tests (the engine's callers make their own buffer).
    #[cfg(test)]
    pub fn take(&self, max_bytes: usize) -> Taken {
        let made = self.take_with(max_bytes, |size, fill| {
            let mut out = vec![0; size];
            fill(&mut out);
            Ok::<_, std::convert::Infallible>(out)
        });
        match made {
            Ok(taken) => taken,
            Err(never) => match never {},
        }
    }

    /// `take`, writing the response into the buffer `make` allocates: `make` gets the
    /// response's exact size and a function that fills a buffer of that size. A caller that
    /// hands the bytes on (a Python `bytes`) makes them once, with one copy of the pieces.
    /// When `make` fails (no memory), its error comes back and the queue keeps the pieces.
    ///
    /// # Errors
    /// The error of `make`.
    pub fn take_with<B, E>(
        &self,
        max_bytes: usize,
        make: impl FnOnce(usize, &mut dyn FnMut(&mut [u8])) -> Result<B, E>,
    ) -> Result<Taken<B>, E> {
        let mut q = self.queue.lock();
        if q.pieces.is_empty() {
            q.notified = false;
            return Ok(Taken {
                data: None,
                closed: q.closed.clone(),
            });
        }
        let (mut count, mut size) = (0usize, 0usize);
        for p in q.pieces.iter() {
            if count > 0 && (self.topic.whole() || size + p.piece.len() > max_bytes) {
                break;
            }
            size += p.piece.len();
            count += 1;
        }
        // The sequence and dropped fields after the pieces.
        let mut trailer = [0u8; TRAILER_MAX];
        let mut rest = &mut trailer[..];
        if let Some((seq_field, dropped_field)) = self.topic.numbering() {
            let first_seq = q.pieces.front().map_or(0, |p| p.seq);
            prost::encoding::uint64::encode(seq_field, &first_seq, &mut rest);
            if q.dropped > 0 {
                prost::encoding::uint64::encode(dropped_field, &q.dropped, &mut rest);
            }
        }
        let tail = TRAILER_MAX - rest.len();
        let data = make(size + tail, &mut |out: &mut [u8]| {
            let mut at = 0;
            for p in q.pieces.iter().take(count) {
                out[at..at + p.piece.len()].copy_from_slice(&p.piece);
                at += p.piece.len();
            }
            out[at..].copy_from_slice(&trailer[..tail]);
        })?;
        let taken: usize = q.pieces.drain(..count).map(|p| cost(&p.piece)).sum();
        q.bytes -= taken;
        // `notified` stays set: the subscriber comes back for more after writing this, and
        // only a take that finds nothing (it is about to wait) makes the next push announce
        // it. One announcement per wait instead of one per message taken.
        Ok(Taken {
            data: Some(data),
            closed: None,
        })
    }

    /// Messages waiting in the queue.
    pub fn queued(&self) -> usize {
        self.queue.lock().pieces.len()
    }

    /// What the queue costs now, in bytes ([`cost`]).
    pub fn queued_bytes(&self) -> usize {
        self.queue.lock().bytes
    }

    /// Whether the hub cut it off for reading too slowly.
    pub fn is_cut_off(&self) -> bool {
        self.cut.load(Ordering::Acquire)
    }
}

/// All subscriptions, by topic.
#[derive(Debug)]
pub struct Hub {
    topics: [RwLock<Vec<Arc<Subscription>>>; TOPICS],
    next_id: AtomicU64,
    /// Pieces dropped (conflated) by subscriptions that have ended, per topic.
    retired_dropped: [AtomicU64; TOPICS],
    /// What a tick, account or instance-event subscriber may have queued ([`cost`]).
    queue_max_bytes: usize,
    /// Subscribers cut off for reading too slowly.
    cutoffs: AtomicU64,
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
        let sub = Arc::new(Subscription {
            id: self.next_id(),
            topic,
            instances,
            symbols,
            limit: limit.max(1),
            max_bytes: if topic.drops_oldest() {
                self.queue_max_bytes
            } else {
                usize::MAX
            },
            conflate,
            queue: Mutex::new(Queue {
                pieces: VecDeque::new(),
                bytes: 0,
                next_seq: 1,
                dropped: 0,
                notified: false,
                closed: None,
            }),
            cut: AtomicBool::new(false),
        });
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
    fn retire(&self, topic: Topic, sub: &Subscription) {
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
    fn remove_cut(&self, topic: Topic) {
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

#[cfg(test)]
mod tests;
