use super::*;
use crate::journal::read_frames;

/// An empty directory for a log (named after the test) and an engine to publish through.
fn scratch(name: &str) -> (PathBuf, crate::engine::Engine) {
    let dir = std::env::temp_dir().join(format!("mt5exec-events-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let engine =
        crate::engine::Engine::new(crate::config::EngineConfig::default()).expect("engine");
    (dir, engine)
}

#[test]
fn numbering_survives_a_reopen_and_replays_from_the_log() {
    let (dir, engine) = scratch("log");
    let shared = engine.shared();
    let log = EventLog::open(Some(&dir), LogLimits::default());
    for n in 0..5 {
        let fill = v1::Fill {
            deal_id: n,
            ..Default::default()
        };
        log.publish(shared, "a", v1::execution_event::Event::Fill(fill));
    }
    drop(log);
    let log = EventLog::open(Some(&dir), LogLimits::default());
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

/// Publishes `count` fills to instance "a".
fn publish_fills(log: &EventLog, shared: &Shared, count: u64) {
    for n in 0..count {
        let fill = v1::Fill {
            deal_id: n,
            ..Default::default()
        };
        log.publish(shared, "a", v1::execution_event::Event::Fill(fill));
    }
}

/// Every replayed sequence of a subscription, in order.
fn replayed(sub: &Subscription) -> Vec<u64> {
    let mut seqs = Vec::new();
    while let Some(data) = sub.take(1 << 20).data {
        let resp = v1::StreamExecutionsResponse::decode(&data[..]).expect("decode");
        seqs.extend(resp.events.iter().map(|e| e.sequence));
    }
    seqs
}

/// Past a segment's size the log is closed and a new one begun; the oldest segments go
/// beyond the size kept; a start reads only the newest events; resumes read across
/// segments, and one from before the oldest event kept is refused.
#[test]
fn segments_rotate_are_pruned_and_resume_across_them() {
    let (dir, engine) = scratch("seg");
    let shared = engine.shared();
    let limits = LogLimits {
        segment_bytes: 32 << 10,
        keep_bytes: 512 << 10,
        keep_for: Duration::from_secs(3600),
    };
    let total = 3 * RING as u64;
    let log = EventLog::open(Some(&dir), limits);
    publish_fills(&log, shared, total);
    log.settle();
    let closed = segments(&dir);
    assert!(closed.len() > 4, "{} segments", closed.len());
    let on_disk: u64 = closed
        .iter()
        .map(|(_, p)| std::fs::metadata(p).expect("size").len())
        .sum::<u64>()
        + std::fs::metadata(dir.join(ACTIVE)).expect("size").len();
    assert!(on_disk <= limits.keep_bytes, "{on_disk} bytes kept");
    let oldest = closed[0].0;
    assert!(oldest > 1, "the oldest events were deleted");
    drop(log);

    let log = EventLog::open(Some(&dir), limits);
    assert_eq!(log.last(), total);
    assert_eq!(log.inner.lock().ring.len(), RING, "the ring is full again");
    // Older than the ring: read from the segments and the active file, without a gap.
    let from = oldest + 10;
    assert!(from + 1 < total - RING as u64);
    let sub = log
        .subscribe_from(shared, "a", from, usize::MAX)
        .expect("resume");
    assert_eq!(replayed(&sub), ((from + 1)..=total).collect::<Vec<u64>>());
    // From before the oldest kept: refused, naming where to resume from.
    let err = log
        .subscribe_from(shared, "a", oldest - 5, usize::MAX)
        .expect_err("expired");

    assert_eq!(
        (err.code, err.reason),
        (Code::FailedPrecondition, "SEQUENCE_EXPIRED")
    );
    assert!(
        err.message.contains(&format!("resume from {}", oldest - 1)),
        "{}",
        err.message
    );
    // Right before the oldest kept is fine, and 0 replays everything kept.
    let sub = log
        .subscribe_from(shared, "a", oldest - 1, usize::MAX)
        .expect("edge");
    assert_eq!(replayed(&sub).first(), Some(&oldest));
    let sub = log.subscribe_from(shared, "a", 0, usize::MAX).expect("all");
    assert_eq!(replayed(&sub), (oldest..=total).collect::<Vec<u64>>());
    // More than the subscriber's queue holds is not replayed either.
    let behind = log
        .subscribe_from(shared, "a", total - 100, 50)
        .expect_err("too far behind");
    assert!(
        behind
            .message
            .contains(&format!("resume from {}", total - 50)),
        "{}",
        behind.message
    );
    let sub = log
        .subscribe_from(shared, "a", 0, 50)
        .expect("the newest 50");
    assert_eq!(replayed(&sub), ((total - 49)..=total).collect::<Vec<u64>>());
    let _ = std::fs::remove_dir_all(&dir);
}

/// After a restart the events older than the ring are still served from the log, also
/// when it has never been split into segments (a log written before segments existed).
#[test]
fn after_a_reopen_resumes_older_than_the_ring_read_the_active_log() {
    let (dir, engine) = scratch("one");
    let shared = engine.shared();
    let total = 2 * RING as u64 + 5;
    let log = EventLog::open(Some(&dir), LogLimits::default());
    publish_fills(&log, shared, total);
    drop(log);
    let log = EventLog::open(Some(&dir), LogLimits::default());
    assert!(segments(&dir).is_empty());
    let sub = log
        .subscribe_from(shared, "a", 5, usize::MAX)
        .expect("resume");
    assert_eq!(replayed(&sub), (6..=total).collect::<Vec<u64>>());
    let _ = std::fs::remove_dir_all(&dir);
}

/// A record torn by a crash in the middle of a write is cut off at the next open: the
/// events published after it stay readable from the log.
/// A live start replays nothing and says the last sequence; the next event is the one
/// after it, and a resume from that sequence gets the same events.
#[test]
fn a_live_start_replays_nothing_and_names_the_last_sequence() {
    let (dir, engine) = scratch("live");
    let shared = engine.shared();
    let log = EventLog::open(Some(&dir), LogLimits::default());
    publish_fills(&log, shared, 5);
    let (live, after) = log
        .subscribe(shared, "a", StreamStart::Live, 100)
        .expect("live");
    assert_eq!(after, 5);
    assert!(replayed(&live).is_empty());
    publish_fills(&log, shared, 2);
    assert_eq!(replayed(&live), vec![6, 7]);
    let (resumed, from) = log
        .subscribe(shared, "a", StreamStart::After(after), 100)
        .expect("resume");
    assert_eq!((from, replayed(&resumed)), (5, vec![6, 7]));
    let (_, oldest) = log
        .subscribe(shared, "a", StreamStart::After(0), 100)
        .expect("all");
    assert_eq!(oldest, 0);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_torn_tail_is_cut_off_before_appending() {
    let (dir, engine) = scratch("torn");
    let shared = engine.shared();
    let fill = |n| {
        v1::execution_event::Event::Fill(v1::Fill {
            deal_id: n,
            ..Default::default()
        })
    };
    let log = EventLog::open(Some(&dir), LogLimits::default());
    for n in 0..3 {
        log.publish(shared, "a", fill(n));
    }
    drop(log);
    let path = dir.join("executions.log");
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .expect("open");
    file.write_all(&[0, 0, 0, 40, 1, 2]).expect("torn record");
    drop(file);
    let log = EventLog::open(Some(&dir), LogLimits::default());
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
