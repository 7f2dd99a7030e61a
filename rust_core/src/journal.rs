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
//! Size: the engine compacts the journal to one record per remembered order on start, and
//! while running once it has grown past a threshold (and twice its size after the last
//! compaction): a background thread rewrites what was there aside, then, holding appends for
//! a moment, adds what was appended meanwhile, fsyncs and renames it over the log. Orders the
//! retention forgets (see [`Retention`]) are left out.
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

use crate::convert::{now_nanos, timestamp_nanos};
use crate::orders::Retention;
use crate::pb::v1;
use crate::pb::v1::OrderStatus as S;
use crate::private;

/// The journal's size that starts a compaction while running, unless configured.
pub const DEFAULT_COMPACT_BYTES: u64 = 64 << 20;

/// A compaction holds appends only to copy at most about this much of what was appended
/// while it rewrote the log (the rest it copies beforehand, in at most `CATCH_UP_ROUNDS`).
const CATCH_UP_BYTES: u64 = 256 << 10;
const CATCH_UP_ROUNDS: usize = 32;

/// One journal record: an order's state after a change.
#[derive(Clone, PartialEq, Message)]
pub struct JournalRecord {
    /// Hash of the request payload, for the idempotency check.
    #[prost(uint64, tag = "1")]
    pub payload_hash: u64,
    /// The order.
    #[prost(message, optional, tag = "2")]
    pub order: Option<v1::Order>,
    /// See `OrderEntry::ticket_floor`.
    #[prost(uint64, tag = "3")]
    pub ticket_floor: u64,
    /// The instance `order.instance_id` was deleted: its records before this one are void (an
    /// instance created again under its id starts with no orders and no tickets seen).
    #[prost(bool, tag = "4")]
    pub instance_deleted: bool,
}

impl JournalRecord {
    /// The record that voids the records of a deleted instance before it.
    #[must_use]
    pub fn instance_deleted(instance_id: &str) -> Self {
        Self {
            order: Some(v1::Order {
                instance_id: instance_id.to_owned(),
                ..Default::default()
            }),
            instance_deleted: true,
            ..Default::default()
        }
    }
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
    /// Compactions done while running.
    pub compactions: AtomicU64,
    /// Records the compactions done while running replaced (what the log held when each began).
    pub compacted_from: AtomicU64,
    /// Records they wrote in their place (one per order kept, and tickets' watermarks).
    pub compacted_to: AtomicU64,
    /// Appends and fsyncs that failed (each refused what it carried: `JOURNAL_UNAVAILABLE`).
    pub failures: AtomicU64,
}

/// A reading of [`JournalStats`]' counters.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct JournalTotals {
    /// Records appended.
    pub records: u64,
    /// Bytes appended.
    pub bytes: u64,
    /// fsync calls.
    pub fsyncs: u64,
    /// Nanoseconds spent in write calls.
    pub write_ns: u64,
    /// Nanoseconds spent in fsync calls.
    pub fsync_ns: u64,
    /// Compactions done while running.
    pub compactions: u64,
}

impl JournalStats {
    /// The counters now.
    pub fn totals(&self) -> JournalTotals {
        let get = |a: &AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
        JournalTotals {
            records: get(&self.records),
            bytes: get(&self.bytes),
            fsyncs: get(&self.fsyncs),
            write_ns: get(&self.write_nanos),
            fsync_ns: get(&self.fsync_nanos),
            compactions: get(&self.compactions),
        }
    }
}

/// The open log and how many bytes of it are whole records.
#[derive(Debug)]
struct LogFile {
    file: File,
    len: u64,
}

/// When the next compaction is due.
#[derive(Debug)]
struct Compaction {
    /// Log length that starts one.
    at: u64,
    running: bool,
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
    file: Mutex<LogFile>,
    policy: FsyncPolicy,
    retention: Retention,
    compact_bytes: u64,
    compaction: Mutex<Compaction>,
    /// This journal, for the compaction thread it starts.
    this: std::sync::Weak<Journal>,
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

/// Every intact record, up to the first that does not decode.
#[cfg(test)]
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
    let mut frames = Vec::new();
    each_frame_of(path, |payload| {
        frames.push(payload);
        true
    })?;
    Ok(frames)
}

/// [`each_frame`] over a whole file; a missing file has no records.
///
/// # Errors
/// I/O errors other than a missing file.
pub fn each_frame_of(path: &Path, f: impl FnMut(Vec<u8>) -> bool) -> std::io::Result<u64> {
    match File::open(path) {
        Ok(file) => each_frame(file, u64::MAX, f),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(e),
    }
}

/// Hands `f` the payload of every record in the first `limit` bytes of `reader`, one at a
/// time (memory for one record, whatever the file's size), until a record is torn (a crash
/// in the middle of a write) or fails its CRC, or `f` returns false. Returns the length of
/// the intact records read: what follows is to be cut off before appending, or every record
/// appended after it would be unreadable too.
///
/// # Errors
/// I/O errors.
pub fn each_frame(
    reader: impl Read,
    limit: u64,
    mut f: impl FnMut(Vec<u8>) -> bool,
) -> std::io::Result<u64> {
    let mut reader = std::io::BufReader::with_capacity(1 << 20, reader.take(limit));
    let mut intact = 0u64;
    let mut header = [0u8; 8];
    loop {
        match reader.read_exact(&mut header) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e),
        }
        let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
        let crc = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
        // Allocated at its size (a corrupt length cannot make it allocate more than 1 MB
        // ahead of what the file holds).
        let mut payload = Vec::with_capacity((len as usize).min(1 << 20));
        let read = std::io::Read::by_ref(&mut reader)
            .take(u64::from(len))
            .read_to_end(&mut payload)?;
        if read < len as usize || crc32(&payload) != crc {
            break;
        }
        intact += 8 + u64::from(len);
        if !f(payload) {
            break;
        }
    }
    Ok(intact)
}

/// The replayed state: the last record of every order, by (instance, client_order_id).
pub type Replayed = HashMap<(String, String), JournalRecord>;

/// The last record of every order that `retention` keeps at `now_nanos`, oldest first.
/// The fields of a record that compaction looks at; decoding skips the rest unread.
#[derive(Clone, PartialEq, Message)]
struct RecordHead {
    #[prost(message, optional, tag = "2")]
    order: Option<OrderHead>,
    #[prost(uint64, tag = "3")]
    ticket_floor: u64,
    #[prost(bool, tag = "4")]
    instance_deleted: bool,
}

/// `mt5exec.v1.Order`'s key, status and times (same field numbers).
#[derive(Clone, PartialEq, Message)]
struct OrderHead {
    #[prost(string, tag = "1")]
    instance_id: String,
    #[prost(string, tag = "2")]
    client_order_id: String,
    #[prost(uint64, tag = "3")]
    order_id: u64,
    #[prost(int32, tag = "17")]
    status: i32,
    #[prost(message, optional, tag = "22")]
    created_time: Option<prost_types::Timestamp>,
    #[prost(message, optional, tag = "23")]
    updated_time: Option<prost_types::Timestamp>,
}

/// An order's last record, undecoded, with what retention needs of it.
#[derive(Debug)]
struct Kept {
    status: S,
    created: i64,
    updated: i64,
    payload: Vec<u8>,
}

/// The last record of every order, by (instance, client_order_id).
type Latest = HashMap<(String, String), Kept>;

/// The record that carries an instance's highest terminal ticket across compactions (an order
/// key no order has: client_order_ids are never empty). It outlives every order retention
/// forgets, so a reused id's ticket floor stays above the forgotten order's ticket.
fn watermark(instance_id: &str, ticket: u64) -> Kept {
    let record = JournalRecord {
        order: Some(v1::Order {
            instance_id: instance_id.to_owned(),
            ..Default::default()
        }),
        ticket_floor: ticket,
        ..Default::default()
    };
    Kept {
        status: S::Unspecified,
        created: 0,
        updated: 0,
        payload: record.encode_to_vec(),
    }
}

/// The last record of every order in the first `limit` bytes of `reader`, read a record at a
/// time (memory for one record per order, not per record), up to the first record that is
/// torn or does not decode. A deleted instance's records before its deletion are left out.
fn latest_records(reader: impl Read, limit: u64) -> std::io::Result<(Latest, u64)> {
    let mut latest = Latest::new();
    let mut tickets: HashMap<String, u64> = HashMap::new();
    let mut read = 0u64;
    each_frame(reader, limit, |payload| {
        read += 1;
        let Ok(head) = RecordHead::decode(&payload[..]) else {
            return false;
        };
        if let Some(order) = head.order {
            if head.instance_deleted {
                latest.retain(|(instance_id, _), _| *instance_id != order.instance_id);
                tickets.remove(&order.instance_id);
                return true;
            }
            let high = order.order_id.max(head.ticket_floor);
            if high > 0 {
                let seen = tickets.entry(order.instance_id.clone()).or_default();
                *seen = (*seen).max(high);
            }
            let kept = Kept {
                status: S::try_from(order.status).unwrap_or(S::Unspecified),
                created: timestamp_nanos(order.created_time.as_ref()),
                updated: timestamp_nanos(order.updated_time.as_ref()),
                payload,
            };
            latest.insert((order.instance_id, order.client_order_id), kept);
        }
        true
    })?;
    for (instance_id, ticket) in tickets {
        let kept = watermark(&instance_id, ticket);
        latest.insert((instance_id, String::new()), kept);
    }
    Ok((latest, read))
}

/// An instance's orders in all, and (created, client_order_id) of its final ones.
type InstanceOrders<'a> = (usize, Vec<(i64, &'a str)>);

/// What `retention` keeps of `latest` at `now_nanos`.
fn retained(mut latest: Latest, retention: &Retention, now_nanos: i64) -> Latest {
    latest.retain(|_, k| !retention.expired(k.status, k.updated, now_nanos));
    // The cap, per instance: its orders, and its final ones by creation.
    let mut by_instance: HashMap<&str, InstanceOrders> = HashMap::new();
    for ((instance_id, cid), k) in latest.iter().filter(|((_, cid), _)| !cid.is_empty()) {
        let (orders, finals) = by_instance.entry(instance_id).or_default();
        *orders += 1;
        if crate::orders::is_final(k.status) {
            finals.push((k.created, cid));
        }
    }
    let mut dropped: Vec<(String, String)> = Vec::new();
    for (instance_id, (orders, finals)) in by_instance {
        for cid in retention.beyond_cap(orders, finals) {
            dropped.push((instance_id.to_owned(), cid.to_owned()));
        }
    }
    for key in dropped {
        latest.remove(&key);
    }
    latest
}

/// Writes `records` to `file` in the order they were created.
fn write_framed(file: &File, records: &Latest) -> std::io::Result<()> {
    let mut ordered: Vec<&Kept> = records.values().collect();
    ordered.sort_by_key(|k| (k.created, k.updated));
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    for kept in ordered {
        out.write_all(&frame_payload(&kept.payload))?;
    }
    out.flush()
}

/// Appends bytes `from..to` of `file` to `out`.
fn copy_range(file: &mut File, from: u64, to: u64, out: &mut File) -> std::io::Result<()> {
    std::io::Seek::seek(file, std::io::SeekFrom::Start(from))?;
    let copied = std::io::copy(&mut file.take(to - from), out)?;
    if copied == to - from {
        Ok(())
    } else {
        Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "the journal is shorter than written",
        ))
    }
}

/// fsyncs a directory, so that a rename in it survives a crash of the machine.
fn sync_dir(path: &Path) -> std::io::Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => File::open(dir)?.sync_all(),
        _ => Ok(()),
    }
}

impl Journal {
    /// Opens (creating) the journal, replays it and compacts it to one record per order that
    /// `retention` keeps; compacts it again while running at `compact_bytes`.
    ///
    /// # Errors
    /// I/O errors on the journal's directory or file.
    pub fn open(
        path: &Path,
        policy: FsyncPolicy,
        retention: Retention,
        compact_bytes: u64,
    ) -> std::io::Result<(Arc<Self>, Replayed)> {
        if let Some(dir) = path.parent() {
            private::create_dir(dir)?;
        }
        let all = match File::open(path) {
            Ok(file) => latest_records(file, u64::MAX)?.0,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Latest::new(),
            Err(e) => return Err(e),
        };
        let latest = retained(all, &retention, now_nanos());
        // Compact: written aside then renamed over the old log.
        let tmp = path.with_extension("compacting");
        {
            let out = private::create(&tmp)?;
            write_framed(&out, &latest)?;
            out.sync_all()?;
        }
        std::fs::rename(&tmp, path)?;
        sync_dir(path)?;
        let file = private::append(path)?;
        let written = file.metadata()?.len();
        let journal = Arc::new_cyclic(|this| Self {
            path: path.to_path_buf(),
            file: Mutex::new(LogFile { file, len: written }),
            policy,
            retention,
            compact_bytes,
            compaction: Mutex::new(Compaction {
                at: compact_bytes.max(written.saturating_mul(2)),
                running: false,
            }),
            this: this.clone(),
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
        let replayed = latest
            .into_iter()
            .filter_map(|(key, kept)| {
                JournalRecord::decode(&kept.payload[..])
                    .ok()
                    .map(|r| (key, r))
            })
            .collect();
        Ok((journal, replayed))
    }

    /// Starts a compaction on its own thread when the log has grown past its threshold.
    fn maybe_compact(&self, len: u64) {
        if !self.claim_compaction(|at| len >= at) {
            return;
        }
        let this = self.this.clone();
        let started = std::thread::Builder::new()
            .name("mt5exec-journal".into())
            .spawn(move || {
                if let Some(journal) = this.upgrade() {
                    journal.compact();
                }
            });
        if started.is_err() {
            self.compaction.lock().running = false;
        }
    }

    /// Compacts the log now, unless a compaction is running already.
    pub fn compact_now(&self) {
        if self.claim_compaction(|_| true) {
            self.compact();
        }
    }

    /// Marks a compaction as running when none is and `due(threshold)` says one is due;
    /// whether it did.
    fn claim_compaction(&self, due: impl FnOnce(u64) -> bool) -> bool {
        let mut c = self.compaction.lock();
        if c.running || !due(c.at) {
            return false;
        }
        c.running = true;
        true
    }

    /// Compacts the log (`compaction.running` is set); the log stays as it was when that
    /// fails, and the next try waits until it has doubled.
    fn compact(&self) {
        let tmp = self.path.with_extension("compacting-live");
        let result = self.compact_into(&tmp);
        let len = self.file.lock().len;
        let mut c = self.compaction.lock();
        c.running = false;
        c.at = self.compact_bytes.max(len.saturating_mul(2));
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        } else {
            self.stats.compactions.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn compact_into(&self, tmp: &Path) -> std::io::Result<()> {
        let start = self.file.lock().len;
        let mut old = File::open(&self.path)?;
        let (latest, replaced) = latest_records(&mut old, start)?;
        let kept = retained(latest, &self.retention, now_nanos());
        // Opened for appending before it replaces the log, so that once renamed nothing can
        // fail between the rename and appends going to it.
        let out = private::create(tmp)?;
        write_framed(&out, &kept)?;
        let compacted = out.metadata()?.len();
        let mut out = {
            drop(out);
            OpenOptions::new().append(true).open(tmp)?
        };
        // What was appended meanwhile follows it, copied while appends go on, until little
        // is left (or appends keep outpacing the copy); then the bulk is made durable, still
        // without holding appends.
        let mut copied = start;
        for _ in 0..CATCH_UP_ROUNDS {
            let len = self.file.lock().len;
            if len - copied <= CATCH_UP_BYTES {
                break;
            }
            copy_range(&mut old, copied, len, &mut out)?;
            copied = len;
        }
        out.sync_data()?;
        // Appends wait from here until the compacted log is in place: the last few records.
        let previous = {
            let mut log = self.file.lock();
            if self.broken.load(Ordering::Acquire) {
                return Err(std::io::Error::other("the journal is broken"));
            }
            copy_range(&mut old, copied, log.len, &mut out)?;
            out.sync_data()?;
            std::fs::rename(tmp, &self.path)?;
            let len = compacted + (log.len - start);
            let previous = std::mem::replace(&mut *log, LogFile { file: out, len });
            // Before any append lands in the new file, the rename is made to survive a power
            // cut; if it cannot be, nothing written from here on is known durable.
            if let Err(e) = sync_dir(&self.path) {
                self.broken.store(true, Ordering::Release);
                return Err(e);
            }
            previous
        };
        let s = &self.stats;
        s.compacted_from.fetch_add(replaced, Ordering::Relaxed);
        s.compacted_to
            .fetch_add(kept.len() as u64, Ordering::Relaxed);
        // The old log's last handles close here, on this thread: freeing its blocks takes
        // ~16 ms per 64 MB on this kind of disk, which appends must not wait for.
        drop(previous);
        drop(old);
        Ok(())
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The policy.
    pub fn policy(&self) -> FsyncPolicy {
        self.policy
    }

    /// A failed write or fsync left the journal unusable: every order is refused
    /// (`JOURNAL_UNAVAILABLE`) until the server restarts.
    pub fn is_broken(&self) -> bool {
        self.broken.load(Ordering::Acquire)
    }

    /// Appends a record (one write call); returns the log position after it.
    ///
    /// # Errors
    /// The write failed: the caller must not act on the record.
    pub fn append(&self, record: &JournalRecord) -> std::io::Result<u64> {
        let bytes = frame(record);
        let started = Instant::now();
        let (position, len) = {
            let mut log = self.file.lock();
            if self.broken.load(Ordering::Acquire) {
                self.stats.failures.fetch_add(1, Ordering::Relaxed);
                return Err(std::io::Error::other(
                    "a failed write or fsync left the journal unusable until the server restarts",
                ));
            }
            if let Err(e) = log.file.write_all(&bytes) {
                self.stats.failures.fetch_add(1, Ordering::Relaxed);
                // A record cut short (a full disk) would hide every later one on replay: cut
                // it off, or refuse every further append if even that fails.
                if log.file.set_len(log.len).is_err() {
                    self.broken.store(true, Ordering::Release);
                }
                return Err(e);
            }
            log.len += bytes.len() as u64;
            let mut sync = self.sync.lock();
            sync.written += bytes.len() as u64;
            (sync.written, log.len)
        };
        self.maybe_compact(len);
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
            self.stats.failures.fetch_add(1, Ordering::Relaxed);
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
        let file = self.file.lock().file.try_clone()?;
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

impl std::fmt::Display for FsyncPolicy {
    /// The text `parse_policy` reads.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Always => f.write_str("always"),
            Self::Never => f.write_str("never"),
            Self::Interval(every) => write!(f, "interval:{}", every.as_millis()),
        }
    }
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
mod tests;
