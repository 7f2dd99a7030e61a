//! The journal's unit tests: replay, retention, compaction, torn tails.

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
        ..Default::default()
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

/// Opens with nothing forgotten and no compaction while running.
fn open(path: &Path, policy: FsyncPolicy) -> std::io::Result<(Arc<Journal>, Replayed)> {
    let forever = Retention {
        keep_final: Duration::MAX,
        max_orders: usize::MAX,
    };
    Journal::open(path, policy, forever, u64::MAX)
}

fn order_record(cid: &str, status: v1::OrderStatus, created: i64, updated: i64) -> JournalRecord {
    let mut r = record(cid, status, updated);
    if let Some(o) = r.order.as_mut() {
        o.created_time = Some(prost_types::Timestamp {
            seconds: created,
            nanos: 0,
        });
    }
    r
}

fn status_of(replayed: &Replayed, cid: &str) -> Option<i32> {
    replayed
        .get(&("a".to_owned(), cid.to_owned()))
        .and_then(|r| r.order.as_ref())
        .map(|o| o.status)
}

#[test]
fn retention_forgets_old_final_orders_and_the_oldest_beyond_the_cap() {
    let path = dir().join("orders.journal");
    let now = now_nanos() / 1_000_000_000;
    {
        let (j, _) = open(&path, FsyncPolicy::Never).expect("open");
        let old = now - 2 * 3600;
        j.append(&order_record("expired", S::Filled, old, old))
            .expect("append");
        j.append(&order_record("working", S::Accepted, old, old))
            .expect("append");
        j.append(&order_record("unknown", S::Unknown, old, old))
            .expect("append");
        for (i, cid) in ["f1", "f2", "f3", "f4"].into_iter().enumerate() {
            let t = now - 60 + i as i64;
            j.append(&order_record(cid, S::Canceled, t, t))
                .expect("append");
        }
    }
    let retention = Retention {
        keep_final: Duration::from_secs(3600),
        max_orders: 4,
    };
    let (_, replayed) =
        Journal::open(&path, FsyncPolicy::Never, retention, u64::MAX).expect("reopen");
    // Final orders older than an hour are gone; working and unknown ones stay whatever
    // their age; of the recent final ones the oldest go until 4 orders are left.
    assert_eq!(status_of(&replayed, "expired"), None);
    assert_eq!(status_of(&replayed, "working"), Some(S::Accepted as i32));
    assert_eq!(status_of(&replayed, "unknown"), Some(S::Unknown as i32));
    assert_eq!(status_of(&replayed, "f1"), None);
    assert_eq!(status_of(&replayed, "f2"), None);
    assert_eq!(status_of(&replayed, "f3"), Some(S::Canceled as i32));
    assert_eq!(status_of(&replayed, "f4"), Some(S::Canceled as i32));
    assert_eq!(
        read_records(&path).expect("read").len(),
        4,
        "the file holds the same"
    );
}

/// The highest terminal ticket an instance's orders had outlives the orders: a reused id's
/// ticket floor must stay above the forgotten order's ticket after restarts.
#[test]
fn the_ticket_watermark_outlives_forgotten_orders() {
    let path = dir().join("orders.journal");
    let old = now_nanos() / 1_000_000_000 - 3 * 24 * 3600;
    {
        let (j, _) = open(&path, FsyncPolicy::Never).expect("open");
        let mut filled = order_record("A", S::Filled, old, old);
        if let Some(o) = filled.order.as_mut() {
            o.order_id = 1000;
        }
        j.append(&filled).expect("append");
    }
    for _ in 0..2 {
        let (_, replayed) =
            Journal::open(&path, FsyncPolicy::Never, Retention::default(), u64::MAX)
                .expect("reopen");
        assert_eq!(status_of(&replayed, "A"), None, "forgotten after 24 h");
        let mark = &replayed[&("a".to_owned(), String::new())];
        assert_eq!(mark.ticket_floor, 1000);
    }
}

#[test]
fn a_deleted_instances_records_are_void_before_its_deletion_only() {
    let path = dir().join("orders.journal");
    let now = now_nanos() / 1_000_000_000;
    let (j, _) = open(&path, FsyncPolicy::Never).expect("open");
    let mut working = order_record("old", S::Accepted, now, now);
    if let Some(o) = working.order.as_mut() {
        o.order_id = 500;
    }
    j.append(&working).expect("append");
    let mut other = record("kept", S::Filled, now);
    if let Some(o) = other.order.as_mut() {
        o.instance_id = "b".into();
    }
    j.append(&other).expect("append");
    j.append(&JournalRecord::instance_deleted("a"))
        .expect("append");
    j.append(&order_record("new", S::Filled, now, now))
        .expect("append");
    // Read as appended, compacted while running (the deletion in the compacted part),
    // and after that compaction.
    for compact in [false, true, false] {
        if compact {
            j.compact_now();
        }
        let (_, replayed) = open(&path, FsyncPolicy::Never).expect("reopen");
        assert_eq!(status_of(&replayed, "old"), None, "voided by the deletion");
        assert_eq!(
            status_of(&replayed, "new"),
            Some(S::Filled as i32),
            "after it"
        );
        assert!(replayed.contains_key(&("b".to_owned(), "kept".to_owned())));
        assert!(
            !replayed.contains_key(&("a".to_owned(), String::new())),
            "no ticket watermark from the deleted account"
        );
    }
}

#[test]
fn compaction_while_running_keeps_every_last_state_and_what_was_appended_meanwhile() {
    let path = dir().join("orders.journal");
    let now = now_nanos() / 1_000_000_000;
    let (j, _) =
        Journal::open(&path, FsyncPolicy::Never, Retention::default(), 4096).expect("open");
    // Five orders changing over and over from two threads: the log passes 4 KB many
    // times while records keep coming.
    let changes = move |j: &Journal, prefix: &str| {
        for i in 0..2_000i64 {
            let cid = format!("{prefix}{}", i % 5);
            j.append(&order_record(&cid, S::Accepted, now, now + i))
                .expect("append");
        }
    };
    let writer = {
        let j = Arc::clone(&j);
        std::thread::spawn(move || changes(&j, "t"))
    };
    changes(&j, "m");
    writer.join().expect("writer");
    for i in 0..5 {
        j.append(&order_record(&format!("m{i}"), S::Filled, now, now + 5_000))
            .expect("append");
    }
    // What the compactions did, not the log's size when the writers stopped (that depends
    // on how far the last compaction got meanwhile: timing).
    let deadline = Instant::now() + Duration::from_secs(120);
    while j.compaction.lock().running {
        assert!(Instant::now() < deadline, "a compaction never finished");
        std::thread::sleep(Duration::from_millis(5));
    }
    let s = &j.stats;
    let compactions = s.compactions.load(Ordering::Relaxed);
    assert!(compactions >= 1, "compacted while running");
    let (from, to) = (
        s.compacted_from.load(Ordering::Relaxed),
        s.compacted_to.load(Ordering::Relaxed),
    );
    assert!(to <= 10 * compactions, "one record per order: {to} written");
    assert!(from > to, "compactions left records out: {from} -> {to}");
    // Nothing lost or doubled: the log is what was appended, less what compactions
    // replaced, plus what they wrote instead.
    let appended = s.records.load(Ordering::Relaxed);
    assert_eq!(appended, 2 * 2_000 + 5);
    let in_log = read_records(&path).expect("read").len() as u64;
    assert_eq!(in_log, appended + to - from);
    j.compact_now();
    assert_eq!(
        read_records(&path).expect("read").len(),
        10,
        "one record per order"
    );
    drop(j);
    let (_, replayed) = open(&path, FsyncPolicy::Never).expect("reopen");
    assert_eq!(replayed.len(), 10);
    for i in 0..5 {
        assert_eq!(
            status_of(&replayed, &format!("m{i}")),
            Some(S::Filled as i32)
        );
        let last = replayed[&("a".to_owned(), format!("t{i}"))]
            .order
            .as_ref()
            .and_then(|o| o.updated_time)
            .map(|t| t.seconds);
        // t{i} was last written at i = 1995 + i.
        assert_eq!(last, Some(now + 1_995 + i), "t{i}'s last record");
    }
}

#[test]
fn crc_matches_the_standard() {
    assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
}

#[test]
fn replay_keeps_the_last_state_and_compacts() {
    let path = dir().join("orders.journal");
    {
        let (j, replayed) = open(&path, FsyncPolicy::Never).expect("open");
        assert!(replayed.is_empty());
        j.append(&record("c1", v1::OrderStatus::Submitted, 1))
            .expect("append");
        j.append(&record("c2", v1::OrderStatus::Submitted, 2))
            .expect("append");
        j.append(&record("c1", v1::OrderStatus::Filled, 3))
            .expect("append");
    }
    let (_, replayed) = open(&path, FsyncPolicy::Never).expect("reopen");
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
        let (j, _) = open(&path, FsyncPolicy::Always).expect("open");
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
    let (_, replayed) = open(&path, FsyncPolicy::Never).expect("reopen");
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
