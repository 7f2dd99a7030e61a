//! An instance's execution events: numbered, kept (a ring in memory, a log on disk), and
//! replayed to a client that resumes from the last sequence it saw.
//!
//! The log is `<instance dir>/executions.log`, records framed like the order journal (length,
//! CRC-32, an encoded `mt5exec.v1.ExecutionEvent`). Sequence numbers continue across worker
//! and server restarts. Numbering, keeping and publishing happen under one lock, and a resuming
//! subscriber is registered under the same lock after its replay was queued: no gap, no
//! duplicate.

use bytes::Bytes;
use parking_lot::Mutex;
use prost::Message;
use std::collections::{HashSet, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::convert;
use crate::engine::Shared;
use crate::error::{Code, EngineError, Result};
use crate::fanout::{piece, Subscription, Topic};
use crate::journal::{frame_payload, read_frames, read_frames_and_length};
use crate::pb::v1;

/// Events kept in memory per instance for resuming clients.
const RING: usize = 10_000;

#[derive(Debug)]
struct Inner {
    last: u64,
    ring: VecDeque<(u64, Bytes)>,
    file: Option<File>,
    /// Bytes of whole records in the file.
    length: u64,
}

/// One instance's event numbering, ring and log.
#[derive(Debug)]
pub struct EventLog {
    path: Option<PathBuf>,
    inner: Mutex<Inner>,
}

impl EventLog {
    /// Opens (creating) the log in `dir`, restoring the numbering and the ring; `None` keeps
    /// events in memory only.
    pub fn open(dir: Option<&Path>) -> Self {
        let path = dir.map(|d| d.join("executions.log"));
        let mut inner = Inner {
            last: 0,
            ring: VecDeque::new(),
            file: None,
            length: 0,
        };
        if let Some(path) = &path {
            // A log that cannot be read is not cut (nor appended to): its events stay on
            // disk for a later start, and this run keeps its events in the ring only.
            let read = read_frames_and_length(path);
            let readable = read.is_ok();
            let (frames, intact) = read.unwrap_or_default();
            for payload in frames {
                if let Ok(event) = v1::ExecutionEvent::decode(&payload[..]) {
                    inner.last = inner.last.max(event.sequence);
                    inner.ring.push_back((event.sequence, piece(&event)));
                    if inner.ring.len() > RING {
                        inner.ring.pop_front();
                    }
                }
            }
            let _ = std::fs::create_dir_all(path.parent().unwrap_or(Path::new(".")));
            if readable {
                inner.file = OpenOptions::new().create(true).append(true).open(path).ok();
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
        }
        Self {
            path,
            inner: Mutex::new(inner),
        }
    }

    /// The last sequence number given.
    pub fn last(&self) -> u64 {
        self.inner.lock().last
    }

    /// Numbers the next events after `sequence` at least.
    pub fn continue_after(&self, sequence: u64) {
        let mut inner = self.inner.lock();
        inner.last = inner.last.max(sequence);
    }

    /// Numbers, keeps and publishes an event.
    pub fn publish(&self, shared: &Shared, instance_id: &str, event: v1::execution_event::Event) {
        let mut inner = self.inner.lock();
        inner.last += 1;
        let event = v1::ExecutionEvent {
            instance_id: instance_id.to_owned(),
            sequence: inner.last,
            time: Some(convert::now()),
            event: Some(event),
        };
        let record = frame_payload(&event.encode_to_vec());
        let inner_ref = &mut *inner;
        if let Some(file) = inner_ref.file.as_mut() {
            // One write: written before any subscriber can see the event.
            if file.write_all(&record).is_ok() {
                inner_ref.length += record.len() as u64;
            } else if file.set_len(inner_ref.length).is_err() {
                // A torn record that cannot be cut off would hide every later one: stop
                // logging (the ring still serves resumes) rather than write behind it.
                inner_ref.file = None;
            }
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

    /// Subscribes to this instance's events after `from_sequence`: everything missed first
    /// (from the ring, or the log when it is older), then live ones.
    ///
    /// # Errors
    /// `INVALID_ARGUMENT` for a sequence beyond the last one given.
    pub fn subscribe_from(
        &self,
        shared: &Shared,
        instance_id: &str,
        from_sequence: u64,
        limit: usize,
    ) -> Result<Arc<Subscription>> {
        // The log can be large: it is read without the lock (publishing goes on meanwhile),
        // and only what the ring no longer holds is taken from it.
        let ahead = |last: u64| {
            EngineError::new(
                Code::InvalidArgument,
                "SEQUENCE_AHEAD",
                format!(
                    "from_sequence: {from_sequence} is after the last event {last} of '{instance_id}'"
                ),
            )
            .field("from_sequence")
        };
        let needs_log = {
            let inner = self.inner.lock();
            if from_sequence > inner.last {
                return Err(ahead(inner.last));
            }
            from_sequence + 1 < oldest_in_ring(&inner)
        };
        let mut logged = if needs_log {
            self.logged_after(from_sequence)
        } else {
            Vec::new()
        };
        let inner = self.inner.lock();
        let oldest = oldest_in_ring(&inner);
        let read_up_to = logged.last().map_or(from_sequence, |(seq, _)| *seq);
        if from_sequence + 1 < oldest && read_up_to + 1 < oldest {
            // More events than the ring holds were published while the log was read: read
            // it again, under the lock this time (rare).
            logged = self.logged_after(from_sequence);
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
                .filter(|(seq, _)| *seq > from_sequence)
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
        Ok(sub)
    }
}

impl EventLog {
    /// The logged events after `from_sequence`, in order, encoded as stream pieces.
    fn logged_after(&self, from_sequence: u64) -> Vec<(u64, Bytes)> {
        let Some(path) = &self.path else {
            return Vec::new();
        };
        read_frames(path)
            .unwrap_or_default()
            .iter()
            .filter_map(|payload| v1::ExecutionEvent::decode(&payload[..]).ok())
            .filter(|event| event.sequence > from_sequence)
            .map(|event| (event.sequence, piece(&event)))
            .collect()
    }
}

fn oldest_in_ring(inner: &Inner) -> u64 {
    inner.ring.front().map_or(inner.last + 1, |(seq, _)| *seq)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbering_survives_a_reopen_and_replays_from_the_log() {
        let dir = std::env::temp_dir().join(format!("mt5exec-events-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let shared =
            crate::engine::Engine::new(crate::engine::EngineConfig::default()).expect("engine");
        let shared = shared.shared();
        let log = EventLog::open(Some(&dir));
        for n in 0..5 {
            let fill = v1::Fill {
                deal_id: n,
                ..Default::default()
            };
            log.publish(shared, "a", v1::execution_event::Event::Fill(fill));
        }
        drop(log);
        let log = EventLog::open(Some(&dir));
        assert_eq!(log.last(), 5);
        let sub = log.subscribe_from(shared, "a", 2, 100).expect("subscribe");
        let data = sub.take(1 << 20).data.expect("replay");
        let resp = v1::StreamExecutionsResponse::decode(&data[..]).expect("decode");
        let seqs: Vec<u64> = resp.events.iter().map(|e| e.sequence).collect();
        assert_eq!(seqs, vec![3, 4, 5]);
        let err = log.subscribe_from(shared, "a", 9, 100).expect_err("ahead");
        assert_eq!(err.reason, "SEQUENCE_AHEAD");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A record torn by a crash in the middle of a write is cut off at the next open: the
    /// events published after it stay readable from the log.
    #[test]
    fn a_torn_tail_is_cut_off_before_appending() {
        let dir = std::env::temp_dir().join(format!("mt5exec-events-torn-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let shared =
            crate::engine::Engine::new(crate::engine::EngineConfig::default()).expect("engine");
        let shared = shared.shared();
        let fill = |n| {
            v1::execution_event::Event::Fill(v1::Fill {
                deal_id: n,
                ..Default::default()
            })
        };
        let log = EventLog::open(Some(&dir));
        for n in 0..3 {
            log.publish(shared, "a", fill(n));
        }
        drop(log);
        let path = dir.join("executions.log");
        let mut file = OpenOptions::new().append(true).open(&path).expect("open");
        file.write_all(&[0, 0, 0, 40, 1, 2]).expect("torn record");
        drop(file);
        let log = EventLog::open(Some(&dir));
        assert_eq!(log.last(), 3);
        for n in 3..5 {
            log.publish(shared, "a", fill(n));
        }
        drop(log);
        let sequences: Vec<u64> = read_frames(&path)
            .expect("read")
            .iter()
            .map(|p| v1::ExecutionEvent::decode(&p[..]).expect("decode").sequence)
            .collect();
        assert_eq!(sequences, vec![1, 2, 3, 4, 5]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
