//! The order journal: an append-only log of every order's state, written before the order
//! leaves for a terminal and at every change after that.
//!
//! It is what makes idempotency and recovery survive a crash of the server: on start the
//! engine replays it, so a retried `client_order_id` still finds its order, and an order whose
//! outcome was not known when the server died comes back UNKNOWN, to be reconciled with the
//! terminal — never sent again.
//!
//! Format: records of a 4-byte big-endian length, a 4-byte CRC-32 of the payload, and the
//! payload, a [`JournalRecord`] (the whole `mt5exec.v1.Order` after the change). The last record
//! of an order wins. A torn last record (a crash mid-write) is ignored and cut off.
//!
//! Durability: every record is written (one `write` on an `O_APPEND` file) before the call that
//! made it returns, so it survives a crash of the server process. The fsync policy decides what
//! survives a crash of the machine: `always` (fsync before the order is sent: group commit, the
//! orders queued while one fsync runs share the next), `interval` (fsync every interval, the
//! default) or `never`.

use parking_lot::{Condvar, Mutex};
use prost::Message;
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::pb::v1;

/// One journal record: an order's state after a change.
#[derive(Clone, PartialEq, Message)]
pub struct JournalRecord {
    /// Hash of the request payload, for the idempotency check.
    #[prost(uint64, tag = "1")]
    pub payload_hash: u64,
    /// The order.
    #[prost(message, optional, tag = "2")]
    pub order: Option<v1::Order>,
}

/// When the journal is fsynced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// Before an order is sent (group commit).
    Always,
    /// Every interval.
    Interval(Duration),
    /// Never (the OS decides).
    Never,
}

/// Counters of the journal's own cost.
#[derive(Debug, Default)]
pub struct JournalStats {
    /// Records appended.
    pub records: AtomicU64,
    /// Bytes appended.
    pub bytes: AtomicU64,
    /// fsync calls.
    pub fsyncs: AtomicU64,
    /// Nanoseconds spent in write calls.
    pub write_nanos: AtomicU64,
    /// Nanoseconds spent in fsync calls.
    pub fsync_nanos: AtomicU64,
}

#[derive(Debug)]
struct SyncState {
    /// Bytes written so far (a position in the log).
    written: u64,
    /// Bytes known durable.
    synced: u64,
    /// An fsync is running.
    syncing: bool,
}

/// The journal file.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: Mutex<File>,
    policy: FsyncPolicy,
    sync: Mutex<SyncState>,
    synced: Condvar,
    dirty: AtomicBool,
    /// A failed write could not be cut off, or an fsync failed: appends and syncs are refused.
    broken: AtomicBool,
    /// The journal's cost.
    pub stats: JournalStats,
}

/// CRC-32 (IEEE, zlib's) of `data`.
#[must_use]
pub fn crc32(data: &[u8]) -> u32 {
    crc32fast::hash(data)
}

/// A record of this file format: length, CRC-32, payload.
pub fn frame_payload(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 8);
    out.extend_from_slice(
        &u32::try_from(payload.len())
            .unwrap_or(u32::MAX)
            .to_be_bytes(),
    );
    out.extend_from_slice(&crc32(payload).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

fn frame(record: &JournalRecord) -> Vec<u8> {
    frame_payload(&record.encode_to_vec())
}

/// Reads every intact record; returns them and the length of the intact prefix.
/// Every intact record, up to the first that does not decode.
fn read_records(path: &Path) -> std::io::Result<Vec<JournalRecord>> {
    Ok(read_frames(path)?
        .iter()
        .map_while(|payload| JournalRecord::decode(&payload[..]).ok())
        .collect())
}

/// The payloads of every intact record of a file framed like the journal.
///
/// # Errors
/// I/O errors other than a missing file.
pub fn read_frames(path: &Path) -> std::io::Result<Vec<Vec<u8>>> {
    read_frames_and_length(path).map(|(frames, _)| frames)
}

/// [`read_frames`], and the length of the file's intact part: what follows it (a record torn
/// by a crash in the middle of a write) is to be cut off before appending, or every record
/// appended after it would be unreadable too.
///
/// # Errors
/// I/O errors other than a missing file.
pub fn read_frames_and_length(path: &Path) -> std::io::Result<(Vec<Vec<u8>>, u64)> {
    let mut data = Vec::new();
    match File::open(path) {
        Ok(mut f) => {
            f.read_to_end(&mut data)?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
        Err(e) => return Err(e),
    }
    let mut out = Vec::new();
    let mut at = 0usize;
    while at + 8 <= data.len() {
        let len = u32::from_be_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]]) as usize;
        let crc = u32::from_be_bytes([data[at + 4], data[at + 5], data[at + 6], data[at + 7]]);
        let Some(payload) = data.get(at + 8..at + 8 + len) else {
            break;
        };
        if crc32(payload) != crc {
            break;
        }
        out.push(payload.to_vec());
        at += 8 + len;
    }
    Ok((out, at as u64))
}

/// The replayed state: the last record of every order, by (instance, client_order_id).
pub type Replayed = HashMap<(String, String), JournalRecord>;

impl Journal {
    /// Opens (creating) the journal, replays it and compacts it to one record per order.
    ///
    /// # Errors
    /// I/O errors on the journal's directory or file.
    pub fn open(path: &Path, policy: FsyncPolicy) -> std::io::Result<(Arc<Self>, Replayed)> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let records = read_records(path)?;
        let mut latest: Replayed = HashMap::new();
        for record in records {
            if let Some(order) = &record.order {
                let key = (order.instance_id.clone(), order.client_order_id.clone());
                latest.insert(key, record);
            }
        }
        // Compact: one record per order, written aside then renamed over the old log.
        let tmp = path.with_extension("compacting");
        {
            let mut out = File::create(&tmp)?;
            let mut buf = Vec::new();
            let mut ordered: Vec<&JournalRecord> = latest.values().collect();
            ordered.sort_by_key(|r| {
                r.order
                    .as_ref()
                    .and_then(|o| o.updated_time)
                    .map(|t| (t.seconds, t.nanos))
            });
            for record in ordered {
                buf.extend_from_slice(&frame(record));
            }
            out.write_all(&buf)?;
            out.sync_all()?;
        }
        std::fs::rename(&tmp, path)?;
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let written = file.metadata()?.len();
        let journal = Arc::new(Self {
            path: path.to_path_buf(),
            file: Mutex::new(file),
            policy,
            sync: Mutex::new(SyncState {
                written,
                synced: written,
                syncing: false,
            }),
            synced: Condvar::new(),
            dirty: AtomicBool::new(false),
            broken: AtomicBool::new(false),
            stats: JournalStats::default(),
        });
        Ok((journal, latest))
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The policy.
    pub fn policy(&self) -> FsyncPolicy {
        self.policy
    }

    /// Appends a record (one write call); returns the log position after it.
    ///
    /// # Errors
    /// The write failed: the caller must not act on the record.
    pub fn append(&self, record: &JournalRecord) -> std::io::Result<u64> {
        let bytes = frame(record);
        let started = Instant::now();
        let position = {
            let mut file = self.file.lock();
            if self.broken.load(Ordering::Acquire) {
                return Err(std::io::Error::other(
                    "a failed write or fsync left the journal unusable until the server restarts",
                ));
            }
            if let Err(e) = file.write_all(&bytes) {
                // A record cut short (a full disk) would hide every later one on replay: cut
                // it off, or refuse every further append if even that fails.
                let intact = self.sync.lock().written;
                if file.set_len(intact).is_err() {
                    self.broken.store(true, Ordering::Release);
                }
                return Err(e);
            }
            let mut sync = self.sync.lock();
            sync.written += bytes.len() as u64;
            sync.written
        };
        self.dirty.store(true, Ordering::Release);
        let s = &self.stats;
        s.records.fetch_add(1, Ordering::Relaxed);
        s.bytes.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        s.write_nanos
            .fetch_add(nanos(started.elapsed()), Ordering::Relaxed);
        Ok(position)
    }

    /// Blocks until everything up to `position` is on disk, sharing fsyncs between callers
    /// (group commit). Called from engine threads, never with the GIL held.
    ///
    /// # Errors
    /// The fsync failed.
    pub fn sync_to(&self, position: u64) -> std::io::Result<()> {
        let mut sync = self.sync.lock();
        loop {
            if sync.synced >= position {
                return Ok(());
            }
            if !sync.syncing {
                break;
            }
            self.synced.wait(&mut sync);
        }
        sync.syncing = true;
        let target = sync.written;
        drop(sync);
        let result = if self.broken.load(Ordering::Acquire) {
            Err(std::io::Error::other(
                "an earlier fsync of the journal failed: nothing written since is known durable",
            ))
        } else {
            self.fsync()
        };
        let mut sync = self.sync.lock();
        sync.syncing = false;
        if result.is_ok() {
            sync.synced = sync.synced.max(target);
        } else {
            // Linux reports a writeback error once: a later fsync may succeed although pages
            // of both were dropped. Nothing is called durable from here on.
            self.broken.store(true, Ordering::Release);
        }
        self.synced.notify_all();
        result
    }

    /// fsyncs when something was written since the last one (the interval policy's tick).
    ///
    /// # Errors
    /// The fsync failed.
    pub fn sync_if_dirty(&self) -> std::io::Result<()> {
        if self.dirty.swap(false, Ordering::AcqRel) {
            let target = self.sync.lock().written;
            self.sync_to(target)?;
        }
        Ok(())
    }

    fn fsync(&self) -> std::io::Result<()> {
        let started = Instant::now();
        let file = self.file.lock().try_clone()?;
        file.sync_data()?;
        self.stats.fsyncs.fetch_add(1, Ordering::Relaxed);
        self.stats
            .fsync_nanos
            .fetch_add(nanos(started.elapsed()), Ordering::Relaxed);
        Ok(())
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Parses a policy name: `always`, `never`, or an interval in milliseconds (`interval:100`).
///
/// # Errors
/// A message naming the bad value.
pub fn parse_policy(text: &str) -> Result<FsyncPolicy, String> {
    match text {
        "always" => Ok(FsyncPolicy::Always),
        "never" => Ok(FsyncPolicy::Never),
        _ => text
            .strip_prefix("interval:")
            .and_then(|ms| ms.parse::<u64>().ok())
            .filter(|ms| *ms > 0)
            .map(|ms| FsyncPolicy::Interval(Duration::from_millis(ms)))
            .ok_or_else(|| {
                format!(
                    "journal fsync policy: expected always, never or interval:<ms>, got {text:?}"
                )
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(cid: &str, status: v1::OrderStatus, seconds: i64) -> JournalRecord {
        JournalRecord {
            payload_hash: 7,
            order: Some(v1::Order {
                instance_id: "a".into(),
                client_order_id: cid.into(),
                status: status as i32,
                updated_time: Some(prost_types::Timestamp { seconds, nanos: 0 }),
                ..Default::default()
            }),
        }
    }

    fn dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "mt5exec-journal-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        ));
        std::fs::create_dir_all(&d).expect("dir");
        d
    }

    #[test]
    fn crc_matches_the_standard() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn replay_keeps_the_last_state_and_compacts() {
        let path = dir().join("orders.journal");
        {
            let (j, replayed) = Journal::open(&path, FsyncPolicy::Never).expect("open");
            assert!(replayed.is_empty());
            j.append(&record("c1", v1::OrderStatus::Submitted, 1))
                .expect("append");
            j.append(&record("c2", v1::OrderStatus::Submitted, 2))
                .expect("append");
            j.append(&record("c1", v1::OrderStatus::Filled, 3))
                .expect("append");
        }
        let (_, replayed) = Journal::open(&path, FsyncPolicy::Never).expect("reopen");
        let status = |cid: &str| {
            replayed[&("a".to_owned(), cid.to_owned())]
                .order
                .as_ref()
                .map(|o| o.status)
        };
        assert_eq!(status("c1"), Some(v1::OrderStatus::Filled as i32));
        assert_eq!(status("c2"), Some(v1::OrderStatus::Submitted as i32));
        let records = read_records(&path).expect("read");
        assert_eq!(records.len(), 2, "compacted to one record per order");
    }

    #[test]
    fn a_torn_last_record_is_ignored() {
        let path = dir().join("orders.journal");
        {
            let (j, _) = Journal::open(&path, FsyncPolicy::Always).expect("open");
            let end = j
                .append(&record("c1", v1::OrderStatus::Filled, 1))
                .expect("append");
            j.sync_to(end).expect("sync");
            assert_eq!(j.stats.fsyncs.load(Ordering::Relaxed), 1);
            j.sync_to(end).expect("no second fsync needed");
            assert_eq!(j.stats.fsyncs.load(Ordering::Relaxed), 1);
        }
        let mut torn = frame(&record("c2", v1::OrderStatus::Filled, 2));
        torn.truncate(torn.len() - 3);
        OpenOptions::new()
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(&torn))
            .expect("tear");
        let (_, replayed) = Journal::open(&path, FsyncPolicy::Never).expect("reopen");
        assert_eq!(replayed.len(), 1);
    }

    #[test]
    fn policies_parse() {
        assert_eq!(parse_policy("always"), Ok(FsyncPolicy::Always));
        assert_eq!(
            parse_policy("interval:50"),
            Ok(FsyncPolicy::Interval(Duration::from_millis(50)))
        );
        assert!(parse_policy("interval:0").is_err());
        assert!(parse_policy("sometimes").is_err());
    }
}
