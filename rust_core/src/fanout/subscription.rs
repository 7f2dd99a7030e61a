//! One subscriber: its filter and its bounded queue of shared pieces (conflated, dropped or
//! cut off by its topic's rules), and what it takes from it as one response.

use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};

use super::topic::{concat, Topic, TRAILER_MAX};
use crate::error::{Code, EngineError};
use crate::reason;

/// What a subscriber takes from its queue.
#[derive(Debug, Default)]
pub struct Taken<B = Vec<u8>> {
    /// One encoded response, if anything was queued.
    pub data: Option<B>,
    /// Set when the stream has ended and nothing is left to deliver.
    pub closed: Option<EngineError>,
}

#[derive(Debug)]
pub(super) struct Queued {
    /// The number of the piece's first entry in this subscription (numbered topics).
    pub(super) seq: u64,
    /// Instance and symbol, for conflation ([`RUN_KEY`] for a run of several).
    pub(super) key: u64,
    /// Entries in the piece: 1, or the length of a run.
    pub(super) count: u64,
    pub(super) piece: Bytes,
}

/// The key of a run: several entries of one publish shared as one piece, which conflation
/// never replaces (it only drops it whole, oldest first, when the subscriber is behind).
pub(super) const RUN_KEY: u64 = u64::MAX;

/// Publishes larger than this are queued entry by entry (a run is never split across
/// responses, which stay near the size a subscriber takes at once).
pub(super) const RUN_MAX_BYTES: usize = 64 * 1024;

/// What one queued piece costs its subscriber: its bytes and its entry.
pub(super) fn cost(piece: &Bytes) -> usize {
    piece.len() + std::mem::size_of::<Queued>()
}

#[derive(Debug)]
pub(super) struct Queue {
    pub(super) pieces: VecDeque<Queued>,
    /// What the pieces cost ([`cost`]).
    pub(super) bytes: usize,
    /// Number of the next piece.
    pub(super) next_seq: u64,
    pub(super) dropped: u64,
    pub(super) notified: bool,
    pub(super) closed: Option<EngineError>,
}

/// One subscriber's filter and queue.
#[derive(Debug)]
pub struct Subscription {
    /// Id announced through [`Notifier::ready`].
    pub id: u64,
    pub(super) topic: Topic,
    pub(super) instances: HashSet<String>,
    pub(super) symbols: HashSet<String>,
    pub(super) limit: usize,
    /// What the queue may cost ([`cost`]) before the subscriber is cut off.
    pub(super) max_bytes: usize,
    /// Keep only the latest piece per instance and symbol whenever behind (as asked).
    pub(super) conflate: bool,
    pub(super) queue: Mutex<Queue>,
    /// Cut off for reading too slowly: to be removed from the hub.
    pub(super) cut: AtomicBool,
}

impl Subscription {
    /// A subscription with an empty queue, numbering from 1.
    pub(super) fn new(
        id: u64,
        topic: Topic,
        instances: HashSet<String>,
        symbols: HashSet<String>,
        limit: usize,
        max_bytes: usize,
        conflate: bool,
    ) -> Self {
        Self {
            id,
            topic,
            instances,
            symbols,
            limit,
            max_bytes,
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
        }
    }

    pub(super) fn follows(&self, instance_id: &str) -> bool {
        self.instances.is_empty() || self.instances.contains(instance_id)
    }

    pub(super) fn wants(&self, symbol: &str) -> bool {
        self.symbols.is_empty() || symbol.is_empty() || self.symbols.contains(symbol)
    }

    /// Queues a piece; true when the subscriber must be announced as ready.
    ///
    /// A tick subscriber that asked for conflation keeps only the latest tick per instance
    /// and symbol while it is behind; one that did not is conflated the same way once it is
    /// `limit` messages behind, so that its memory stays bounded and it still sees the
    /// latest prices. Either way `dropped` counts what it did not get.
    pub(super) fn push(&self, key: u64, piece: &Bytes) -> bool {
        let mut q = self.queue.lock();
        self.push_locked(&mut q, key, piece)
    }

    /// Queues every entry of one publish, all matching this subscriber, under one lock: as
    /// one shared piece (`run`, made on first use) while the subscriber keeps up and did not
    /// ask for conflation (one reference count per subscriber and publish instead of one per
    /// entry), entry by entry otherwise. True when the subscriber must be announced.
    pub(super) fn push_all(
        &self,
        items: &[(&str, Bytes)],
        keys: &[u64],
        run: &mut Option<Bytes>,
    ) -> bool {
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
    pub(super) fn bound(&self, q: &mut Queue) {
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

    pub(super) fn cut_off(&self, q: &mut Queue, message: String) {
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

    pub(super) fn push_locked(&self, q: &mut Queue, key: u64, piece: &Bytes) -> bool {
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
    pub(super) fn close(&self, error: EngineError) -> bool {
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
