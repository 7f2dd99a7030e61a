//! An instance's execution events: numbered, kept (a ring in memory, a log on disk), and
//! replayed to a client that resumes from the last sequence it saw.
//!
//! The log is `<instance dir>/executions.log`, records framed like the order journal (length,
//! CRC-32, an encoded `mt5exec.v1.ExecutionEvent`). Sequence numbers continue across worker
//! and server restarts. Numbering, keeping and publishing happen under one lock, and a resuming
//! subscriber is registered under the same lock after its replay was queued: no gap, no
//! duplicate.
//!
//! The log is bounded ([`LogLimits`]): past a segment's size it is renamed
//! `executions-<first sequence>.log` and a new one begun; segments older than the retention,
//! and the oldest beyond the size kept, are deleted. A resume from before the oldest event
//! kept is refused (`SEQUENCE_EXPIRED`) rather than answered with a gap. A start reads only
//! the newest events (what the ring holds), whatever the log's size.

use crate::reason;
use bytes::Bytes;
use parking_lot::Mutex;
use prost::Message;
use std::collections::{HashSet, VecDeque};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::convert;
use crate::counters::Counts;
use crate::error::{Code, EngineError, Result};
use crate::fanout::{piece, Subscription, Topic};
use crate::journal::{each_frame_of, frame_payload};
use crate::pb::v1;
use crate::private;
use crate::shared::Shared;

/// Events kept in memory per instance for resuming clients.
const RING: usize = 10_000;

const ACTIVE: &str = "executions.log";

/// How much of an instance's event log is kept on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogLimits {
    /// A segment is closed (and a new one begun) past this size.
    pub segment_bytes: u64,
    /// Closed segments are deleted, oldest first, while all of the log is larger than this.
    pub keep_bytes: u64,
    /// Closed segments last written longer ago than this are deleted.
    pub keep_for: Duration,
}

impl Default for LogLimits {
    fn default() -> Self {
        Self::of(512 << 20, Duration::from_secs(24 * 3600))
    }
}

impl LogLimits {
    /// Limits keeping `keep_bytes` for `keep_for`, in segments of an eighth of it (64 KB to
    /// 64 MB).
    #[must_use]
    pub fn of(keep_bytes: u64, keep_for: Duration) -> Self {
        Self {
            segment_bytes: (keep_bytes / 8).clamp(64 << 10, 64 << 20),
            keep_bytes,
            keep_for,
        }
    }
}

#[derive(Debug)]
struct Inner {
    last: u64,
    ring: VecDeque<(u64, Bytes)>,
    file: Option<File>,
    /// Bytes of whole records in the active file.
    length: u64,
    /// The first sequence in the active file (the next one when it is empty).
    active_first: u64,
    /// The oldest sequence still on disk.
    oldest_kept: u64,
    /// What the events published since the start counted (`/metrics`).
    counts: Counts,
}

/// One instance's event numbering, ring and log.
#[derive(Debug)]
pub struct EventLog {
    dir: Option<PathBuf>,
    limits: LogLimits,
    inner: Mutex<Inner>,
    /// Threads deleting segments past the limits (see `EventLog::rotate`), and the segments
    /// they have yet to delete.
    pruners: Mutex<Vec<std::thread::JoinHandle<()>>>,
    deleting: Arc<Mutex<HashSet<PathBuf>>>,
}

/// A closed segment: the first sequence in it, and its path.
fn segments(dir: &Path) -> Vec<(u64, PathBuf)> {
    let mut found: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(std::result::Result::ok)
                .filter_map(|e| {
                    let name = e.file_name();
                    let first = name
                        .to_str()?
                        .strip_prefix("executions-")?
                        .strip_suffix(".log")?
                        .parse::<u64>()
                        .ok()?;
                    Some((first, e.path()))
                })
                .collect()
        })
        .unwrap_or_default();
    found.sort_unstable();
    found
}

fn segment_path(dir: &Path, first: u64) -> PathBuf {
    dir.join(format!("executions-{first:020}.log"))
}

/// What a read of a log file found.
struct Read {
    /// The events after `after`, in order, as (sequence, stream piece): the newest `keep`.
    events: VecDeque<(u64, Bytes)>,
    /// The file's first sequence.
    first: Option<u64>,
    /// The length of its intact records.
    intact: std::io::Result<u64>,
}

fn read_events(path: &Path, after: u64, keep: usize) -> Read {
    let mut out = VecDeque::new();
    let mut first = None;
    let intact = each_frame_of(path, |payload| {
        if let Ok(event) = v1::ExecutionEvent::decode(&payload[..]) {
            first.get_or_insert(event.sequence);
            if event.sequence > after {
                if out.len() == keep {
                    out.pop_front();
                }
                out.push_back((event.sequence, piece(&event)));
            }
        }
        true
    });
    Read {
        events: out,
        first,
        intact,
    }
}

impl EventLog {
    /// Opens (creating) the log in `dir`, restoring the numbering and the ring from its
    /// newest events; `None` keeps events in memory only.
    pub fn open(dir: Option<&Path>, limits: LogLimits) -> Self {
        let mut inner = Inner {
            last: 0,
            ring: VecDeque::new(),
            file: None,
            length: 0,
            active_first: 1,
            oldest_kept: 1,
            counts: Counts::default(),
        };
        if let Some(dir) = dir {
            let path = dir.join(ACTIVE);
            // A log that cannot be read is not cut (nor appended to): its events stay on
            // disk for a later start, and this run keeps its events in the ring only.
            let active = read_events(&path, 0, RING);
            let mut newest = active.events;
            let readable = active.intact.is_ok();
            let intact = active.intact.unwrap_or(0);
            let closed = segments(dir);
            // The ring: the newest events, from the closed segments too when the active one
            // holds fewer.
            for (_, segment) in closed.iter().rev() {
                if newest.len() >= RING {
                    break;
                }
                let older = read_events(segment, 0, RING - newest.len()).events;
                for event in older.into_iter().rev() {
                    newest.push_front(event);
                }
            }
            inner.last = newest.back().map_or(0, |(seq, _)| *seq);
            inner.ring = newest;
            // The active file's first event names the segment it becomes when closed.
            inner.active_first = active
                .first
                .filter(|_| intact > 0)
                .unwrap_or(inner.last + 1);
            let _ = private::create_dir(dir);
            if readable {
                inner.file = private::append(&path).ok();
            }
            // A record torn by a crash mid-write is cut off: appended after it, every later
            // event would be unreadable to a resume from the log.
            if let Some(file) = &inner.file {
                let torn = file.metadata().is_ok_and(|m| m.len() > intact);
                if torn && file.set_len(intact).is_err() {
                    inner.file = None;
                }
            }
            inner.length = intact;
            inner.oldest_kept = closed
                .first()
                .map_or(inner.active_first, |(first, _)| *first);
        }
        Self {
            dir: dir.map(Path::to_path_buf),
            limits,
            inner: Mutex::new(inner),
            pruners: Mutex::new(Vec::new()),
            deleting: Arc::default(),
        }
    }

    /// Closes the active segment and begins a new one, then deletes what is past the limits.
    fn rotate(&self, inner: &mut Inner) {
        let Some(dir) = &self.dir else { return };
        inner.file = None;
        let active = dir.join(ACTIVE);
        if std::fs::rename(&active, segment_path(dir, inner.active_first)).is_ok() {
            inner.length = 0;
            inner.active_first = inner.last + 1;
        }
        inner.file = private::append(&active).ok();
        let mut closed = segments(dir);
        {
            // Those an earlier rotation doomed are gone already, as far as the limits go.
            let deleting = self.deleting.lock();
            closed.retain(|(_, path)| !deleting.contains(path));
        }
        let size = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
        let mut total: u64 = closed.iter().map(|(_, p)| size(p)).sum::<u64>() + inner.length;
        let now = SystemTime::now();
        let mut doomed = Vec::new();
        while let Some((_, oldest)) = closed.first() {
            let age = std::fs::metadata(oldest)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| now.duration_since(t).ok())
                .unwrap_or_default();
            if total <= self.limits.keep_bytes && age <= self.limits.keep_for {
                break;
            }
            total = total.saturating_sub(size(oldest));
            doomed.push(closed.remove(0).1);
        }
        // Deleted on a thread of their own: freeing a 64 MB segment takes ~16 ms on this kind
        // of disk, which the next event (and the order answer it belongs to) must not wait
        // for. Readers already skip what is older than the oldest kept.
        if !doomed.is_empty() {
            self.deleting.lock().extend(doomed.iter().cloned());
            let deleting = Arc::clone(&self.deleting);
            let delete = move |doomed: Vec<PathBuf>| {
                for path in doomed {
                    let _ = std::fs::remove_file(&path);
                    deleting.lock().remove(&path);
                }
            };
            let mut pruners = self.pruners.lock();
            pruners.retain(|p| !p.is_finished());
            let spawned = std::thread::Builder::new()
                .name("mt5exec-events-prune".into())
                .spawn({
                    let (delete, doomed) = (delete.clone(), doomed.clone());
                    move || delete(doomed)
                });
            match spawned {
                Ok(pruner) => pruners.push(pruner),
                Err(_) => delete(doomed),
            }
        }
        let oldest = closed
            .first()
            .map_or(inner.active_first, |(first, _)| *first);
        inner.oldest_kept = inner.oldest_kept.max(oldest);
    }

    /// Waits until the segments past the limits are deleted.
    pub fn settle(&self) {
        let pruners = std::mem::take(&mut *self.pruners.lock());
        for pruner in pruners {
            let _ = pruner.join();
        }
    }

    /// What the events published since the start counted.
    pub fn counts(&self) -> Counts {
        self.inner.lock().counts.clone()
    }

    /// The last sequence number given.
    pub fn last(&self) -> u64 {
        self.inner.lock().last
    }

    /// Numbers the next events after `sequence` at least.
    pub fn continue_after(&self, sequence: u64) {
        let mut inner = self.inner.lock();
        inner.last = inner.last.max(sequence);
        if inner.length == 0 {
            inner.active_first = inner.last + 1;
        }
        if inner.ring.is_empty() {
            // Events up to here are nowhere to be replayed from.
            inner.oldest_kept = inner.oldest_kept.max(inner.last + 1);
        }
    }

    /// Numbers, keeps and publishes an event.
    pub fn publish(&self, shared: &Shared, instance_id: &str, event: v1::execution_event::Event) {
        self.publish_refusals(shared, instance_id, event, 0);
    }

    /// [`EventLog::publish`] of an event that stands for `refusals` refused orders (throttle
    /// refusals, coalesced: see [`crate::risk::refusals`]).
    pub fn publish_refusals(
        &self,
        shared: &Shared,
        instance_id: &str,
        event: v1::execution_event::Event,
        refusals: u64,
    ) {
        let mut inner = self.inner.lock();
        inner.counts.count(&event, refusals);
        inner.last += 1;
        let event = v1::ExecutionEvent {
            instance_id: instance_id.to_owned(),
            sequence: inner.last,
            time: Some(convert::now()),
            event: Some(event),
            refusals,
        };
        let record = frame_payload(&event.encode_to_vec());
        let inner_ref = &mut *inner;
        let mut full = false;
        if let Some(file) = inner_ref.file.as_mut() {
            // One write: written before any subscriber can see the event.
            if file.write_all(&record).is_ok() {
                inner_ref.length += record.len() as u64;
                full = inner_ref.length >= self.limits.segment_bytes;
            } else {
                // This event is not in the log: resumes from before it are served from the
                // ring only, not read from a log with a gap.
                inner_ref.oldest_kept = inner_ref.last + 1;
                if file.set_len(inner_ref.length).is_err() {
                    // A torn record that cannot be cut off would hide every later one: stop
                    // logging (the ring still serves resumes) rather than write behind it.
                    inner_ref.file = None;
                }
            }
        }
        if full {
            self.rotate(inner_ref);
        }
        let encoded = piece(&event);
        inner.ring.push_back((event.sequence, encoded.clone()));
        if inner.ring.len() > RING {
            inner.ring.pop_front();
        }
        shared.hub.publish(
            Topic::Executions,
            instance_id,
            &[("", encoded)],
            &shared.notifier,
        );
    }

    /// Subscribes to this instance's events from `start`: everything missed first (from the
    /// ring, or the log when it is older), then live ones. Also gives the sequence the stream
    /// starts after: its first event is the next one, and a resume from it misses nothing.
    ///
    /// # Errors
    /// `INVALID_ARGUMENT` for a sequence beyond the last one given; `FAILED_PRECONDITION`
    /// (`SEQUENCE_EXPIRED`) for one whose next events are no longer kept.
    pub fn subscribe(
        &self,
        shared: &Shared,
        instance_id: &str,
        start: StreamStart,
        limit: usize,
    ) -> Result<(Arc<Subscription>, u64)> {
        let from_sequence = match start {
            StreamStart::After(sequence) => sequence,
            StreamStart::Live => 0,
        };
        // The log can be large: it is read without the lock (publishing goes on meanwhile),
        // and only what the ring no longer holds is taken from it.
        let ahead = |last: u64| {
            EngineError::new(
                Code::InvalidArgument,
                reason::SEQUENCE_AHEAD,
                format!(
                    "from_sequence: {from_sequence} is after the last event {last} of '{instance_id}'"
                ),
            )
            .field("from_sequence")
        };
        let expired = |kept: u64| {
            EngineError::new(
                Code::FailedPrecondition,
                reason::SEQUENCE_EXPIRED,
                format!(
                    "from_sequence: the events of '{instance_id}' after {from_sequence} are no \
                     longer all kept, or more than a stream replays; resume from {} or later \
                     (0: the newest events still kept)",
                    kept - 1
                ),
            )
            .field("from_sequence")
        };
        // Replayed: the events after `after` (0: from the oldest kept), never more than the
        // subscriber's queue holds (`limit`): a resume further behind is refused.
        let (after, needs_log) = {
            let inner = self.inner.lock();
            if from_sequence > inner.last {
                return Err(ahead(inner.last));
            }
            let ring = oldest_in_ring(&inner);
            let on_disk = if self.dir.is_some() {
                inner.oldest_kept.min(ring)
            } else {
                ring
            };
            let replayable = inner
                .last
                .saturating_sub((limit as u64).saturating_sub(1))
                .max(1);
            let kept = on_disk.max(replayable);
            let after = match start {
                StreamStart::Live => inner.last,
                StreamStart::After(0) => kept - 1,
                StreamStart::After(sequence) => sequence,
            };
            if after + 1 < kept {
                return Err(expired(kept));
            }
            (after, after + 1 < ring)
        };
        let mut logged = if needs_log {
            self.logged_after(after)
        } else {
            Vec::new()
        };
        // Only the run without a gap counts: a segment closed or deleted while the log was
        // read can have left one.
        logged.truncate(gapless(&logged, after));
        let inner = self.inner.lock();
        let oldest = oldest_in_ring(&inner);
        if after + (logged.len() as u64) + 1 < oldest {
            // Short of the ring (it moved on while the log was read, or a segment was closed
            // meanwhile): the rest is read under the lock this time (rare).
            let read_up_to = after + logged.len() as u64;
            let mut more = self.logged_after(read_up_to);
            more.truncate(gapless(&more, read_up_to));
            logged.extend(more);
            if after + (logged.len() as u64) + 1 < oldest {
                return Err(expired(oldest));
            }
        }
        let mut missed: Vec<Bytes> = logged
            .into_iter()
            .filter(|(seq, _)| *seq < oldest)
            .map(|(_, piece)| piece)
            .collect();
        missed.extend(
            inner
                .ring
                .iter()
                .filter(|(seq, _)| *seq > after)
                .map(|(_, p)| p.clone()),
        );
        let instances: HashSet<String> = [instance_id.to_owned()].into_iter().collect();
        let limit = limit.max(missed.len() + 1);
        let sub = shared
            .hub
            .subscribe(Topic::Executions, instances, HashSet::new(), limit, false);
        let ready = sub.preload(&missed);
        drop(inner);
        if ready {
            shared.notifier.ready(&[sub.id]);
        }
        Ok((sub, after))
    }

    /// `subscribe` after `from_sequence`, for the tests.
    #[cfg(test)]
    fn subscribe_from(
        &self,
        shared: &Shared,
        instance_id: &str,
        from_sequence: u64,
        limit: usize,
    ) -> Result<Arc<Subscription>> {
        self.subscribe(
            shared,
            instance_id,
            StreamStart::After(from_sequence),
            limit,
        )
        .map(|(sub, _)| sub)
    }
}

/// Where an execution stream starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamStart {
    /// After this sequence (0: before the oldest event still kept).
    After(u64),
    /// After the last event: live events only.
    Live,
}

impl EventLog {
    /// The logged events after `from_sequence`, in order, encoded as stream pieces: from the
    /// closed segments that hold any, then the active one.
    fn logged_after(&self, from_sequence: u64) -> Vec<(u64, Bytes)> {
        let Some(dir) = &self.dir else {
            return Vec::new();
        };
        let closed = segments(dir);
        // The first segment to read: the last one starting at or before the next sequence.
        let start = closed
            .iter()
            .rposition(|(first, _)| *first <= from_sequence + 1)
            .unwrap_or(0);
        let mut out = Vec::new();
        for (_, path) in &closed[start..] {
            out.extend(read_events(path, from_sequence, usize::MAX).events);
        }
        out.extend(read_events(&dir.join(ACTIVE), from_sequence, usize::MAX).events);
        out
    }
}

/// How many of `events` follow `after` one by one, from the first.
fn gapless(events: &[(u64, Bytes)], after: u64) -> usize {
    events
        .iter()
        .zip(after + 1..)
        .take_while(|((seq, _), want)| seq == want)
        .count()
}

fn oldest_in_ring(inner: &Inner) -> u64 {
    inner.ring.front().map_or(inner.last + 1, |(seq, _)| *seq)
}

#[cfg(test)]
mod tests;
