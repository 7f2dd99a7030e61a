use super::*;

const ALL: [S; 10] = [
    S::Unspecified,
    S::New,
    S::Submitted,
    S::Accepted,
    S::PartiallyFilled,
    S::Filled,
    S::Canceled,
    S::Rejected,
    S::Expired,
    S::Unknown,
];

fn entry(status: S) -> OrderEntry {
    OrderEntry {
        order: v1::Order {
            status: status as i32,
            ..Default::default()
        },
        payload_hash: 0,
        waiters: Vec::new(),
        answer: None,
        ticket_floor: 0,
    }
}

fn booked(cid: &str, status: S, created_s: i64, updated_s: i64) -> OrderEntry {
    let mut e = entry(status);
    e.order.client_order_id = cid.into();
    e.order.order_id = cid.len() as u64 * 1000 + u64::from(cid.as_bytes()[cid.len() - 1]);
    e.order.created_time = Some(prost_types::Timestamp {
        seconds: created_s,
        nanos: 0,
    });
    e.order.updated_time = Some(prost_types::Timestamp {
        seconds: updated_s,
        nanos: 0,
    });
    e
}

fn left(book: &OrderBook) -> Vec<&str> {
    let mut cids: Vec<&str> = book.by_client_id.keys().map(String::as_str).collect();
    cids.sort_unstable();
    cids
}

#[test]
fn retire_forgets_old_final_orders_then_the_oldest_beyond_the_cap_never_busy_ones() {
    let retention = Retention {
        keep_final: Duration::from_secs(100),
        max_orders: 3,
    };
    let now = 1_000_000_000_000i64; // 1000 s
    let none = HashSet::new();
    let mut book = OrderBook::default();
    book.insert(booked("working", S::Accepted, 0, 0));
    book.insert(booked("old", S::Filled, 1, 0));
    book.insert(booked("recent", S::Canceled, 2, 990));
    // Within the cap: only the final order past its time goes; the working one is older
    // still but stays.
    assert_eq!(book.retire(&retention, now, &none), 1);
    assert_eq!(left(&book), ["recent", "working"]);
    assert!(!book.by_ticket.values().any(|c| c == "old"));
    assert!(!book.by_comment.values().any(|c| c == "old"));
    // Over the cap: the oldest created final order goes, whatever its age.
    book.insert(booked("r2", S::Rejected, 3, 995));
    book.insert(booked("r3", S::Filled, 4, 996));
    assert_eq!(book.retire(&retention, now, &none), 1);
    assert_eq!(left(&book), ["r2", "r3", "working"]);
    // Final orders someone waits for, or that a request in flight refers to, stay even
    // when older: the others go instead.
    let mut waited = booked("waited", S::Filled, -1, 999);
    waited.waiters.push(9);
    book.insert(waited);
    book.insert(booked("busy", S::Filled, -2, 999));
    let in_use: HashSet<&str> = ["busy"].into_iter().collect();
    assert_eq!(book.retire(&retention, now, &in_use), 2);
    assert_eq!(left(&book), ["busy", "waited", "working"]);
}

#[test]
fn a_pass_is_due_just_past_the_cap_after_a_cut_short_pass_or_a_tenth_of_the_keep_time() {
    let retention = Retention {
        keep_final: Duration::from_secs(100),
        max_orders: 20,
    };
    let mut book = OrderBook::default();
    let now = 1_000_000_000_000i64;
    book.retire(&retention, now, &HashSet::new());
    for n in 0..20 {
        book.insert(booked(&format!("o{n}"), S::Filled, n, 999));
    }
    assert!(!book.retire_due(&retention, now + 1), "20 of 20");
    book.insert(booked("o20", S::Filled, 20, 999));
    assert!(book.retire_due(&retention, now + 1), "21 of 20");
    let mut small = OrderBook::default();
    small.retire(&retention, now, &HashSet::new());
    assert!(!small.retire_due(&retention, now + 9_000_000_000));
    assert!(
        small.retire_due(&retention, now + 10_000_000_000),
        "10 s is a tenth of 100"
    );
}

/// The rule as a whole pass over the book states it (what the journal's compaction
/// applies): expired idle final orders, then the oldest created idle final ones beyond
/// the cap.
fn whole_pass(
    book: &OrderBook,
    retention: &Retention,
    now: i64,
    in_use: &HashSet<&str>,
) -> Vec<String> {
    let idle =
        |cid: &str, e: &OrderEntry| e.is_final() && e.waiters.is_empty() && !in_use.contains(cid);
    let mut gone = Vec::new();
    let mut finals = Vec::new();
    for (cid, e) in &book.by_client_id {
        let updated = timestamp_nanos(e.order.updated_time.as_ref());
        if !idle(cid, e) {
            continue;
        }
        if retention.expired(e.status(), updated, now) {
            gone.push(cid.clone());
        } else {
            finals.push((timestamp_nanos(e.order.created_time.as_ref()), cid.as_str()));
        }
    }
    let remembered = book.by_client_id.len() - gone.len();
    gone.extend(
        retention
            .beyond_cap(remembered, finals)
            .into_iter()
            .map(str::to_owned),
    );
    gone.sort_unstable();
    gone
}

/// Random books (statuses, creation and change times, waiters, requests in flight, caps):
/// the walk from the oldest order forgets exactly what a whole pass would.
#[test]
fn retiring_from_the_oldest_forgets_what_a_whole_pass_would() {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    for _ in 0..400 {
        let retention = Retention {
            keep_final: Duration::from_secs(100),
            max_orders: 1 + next(40) as usize,
        };
        let now = 1_000_000_000_000i64;
        let mut book = OrderBook::default();
        for n in 0..next(60) {
            let created = 800 + next(200) as i64; // 100 s either side of the horizon
            let status = ALL[next(ALL.len() as u64) as usize];
            let mut e = booked(&format!("c{n}"), status, created, created + next(60) as i64);
            if next(10) == 0 {
                e.waiters.push(1);
            }
            book.insert(e);
        }
        let cids: Vec<String> = book.by_client_id.keys().cloned().collect();
        let in_use: HashSet<&str> = cids
            .iter()
            .filter(|_| next(8) == 0)
            .map(String::as_str)
            .collect();
        let expected = whole_pass(&book, &retention, now, &in_use);
        let before: HashSet<String> = book.by_client_id.keys().cloned().collect();
        assert_eq!(book.retire(&retention, now, &in_use), expected.len());
        let mut gone: Vec<String> = before
            .into_iter()
            .filter(|c| !book.by_client_id.contains_key(c))
            .collect();
        gone.sort_unstable();
        assert_eq!(gone, expected);
        assert_eq!(book.by_created().len(), book.by_client_id.len());
    }
}

#[test]
fn a_backlog_is_forgotten_in_steps_and_the_index_follows_replacements() {
    let retention = Retention {
        keep_final: Duration::from_secs(100),
        max_orders: 10,
    };
    let now = 1_000_000_000_000i64;
    let mut book = OrderBook::default();
    let total = RETIRE_STEP + 500;
    for n in 0..total {
        book.insert(booked(&format!("o{n}"), S::Filled, 990, 995));
    }
    // Replacing an entry keeps one index row for it.
    book.insert(booked("o0", S::Filled, 991, 995));
    assert_eq!(book.by_created().len(), total);
    let none = HashSet::new();
    assert!(book.retire_due(&retention, now));
    assert_eq!(book.retire(&retention, now, &none), RETIRE_STEP);
    assert!(book.retire_due(&retention, now), "cut short: more is due");
    assert_eq!(
        book.retire(&retention, now, &none),
        total - RETIRE_STEP - 10
    );
    assert_eq!(book.by_client_id.len(), 10);
    assert_eq!(book.by_created().len(), 10);
    assert!(!book.retire_due(&retention, now + 1));
    // The newest stay: the cap forgets the oldest created.
    assert!(book.by_created().iter().all(|(created, _)| *created >= 990));
    assert!(book.by_client_id.contains_key("o0"), "created last (991)");
}

#[test]
fn the_index_of_working_orders_shrinks_to_them_as_orders_settle() {
    let mut book = OrderBook::default();
    let mut working = Vec::new();
    for n in 0..5_000i64 {
        let cid = format!("o{n}");
        book.insert(booked(&cid, S::Submitted, n, n));
        // Most orders settle at once; one in a hundred rests as a working order.
        let status = if n % 100 == 7 { S::Accepted } else { S::Filled };
        if let Some(e) = book.by_client_id.get_mut(&cid) {
            assert!(e.transition(status));
        }
        if status == S::Accepted {
            working.push((n * 1_000_000_000, cid));
        }
    }
    let open = book.maybe_open();
    assert!(
        working.iter().all(|w| open.contains(w)),
        "every working order is in it"
    );
    assert!(
        open.len() < working.len() + 10,
        "{} entries for {} working orders",
        open.len(),
        working.len()
    );
    let not_final: Vec<&str> = book
        .not_final()
        .map(|e| e.order.client_order_id.as_str())
        .collect();
    assert_eq!(
        not_final,
        working.iter().map(|(_, c)| c.as_str()).collect::<Vec<_>>()
    );
    // A forgotten or replaced order leaves no entry behind.
    book.insert(booked("o7", S::Filled, 7, 9));
    assert!(!book.maybe_open().iter().any(|(_, cid)| cid == "o7"));
}

#[test]
fn final_states_are_absorbing() {
    for from in ALL.into_iter().filter(|s| is_final(*s)) {
        for to in ALL {
            assert!(!legal(from, to), "{from:?} -> {to:?}");
        }
    }
}

#[test]
fn unknown_resolves_but_never_restarts() {
    assert!(legal(S::Unknown, S::Filled));
    assert!(legal(S::Unknown, S::Rejected));
    assert!(!legal(S::Unknown, S::Submitted));
    assert!(!legal(S::Unknown, S::New));
}

/// Random walks over all statuses: an entry only ever takes legal steps, and once final
/// it never changes again.
#[test]
fn random_walks_only_take_legal_steps() {
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..20_000 {
        let mut e = entry(S::Unspecified);
        let mut finished = None;
        for _ in 0..12 {
            let to = ALL[(next() % ALL.len() as u64) as usize];
            let from = S::try_from(e.order.status).unwrap_or(S::Unspecified);
            let moved = e.transition(to);
            let now = S::try_from(e.order.status).unwrap_or(S::Unspecified);
            if moved && from != to {
                assert!(legal(from, to), "{from:?} -> {to:?}");
            }
            if !moved {
                assert_eq!(now, from, "a refused step changes nothing");
            }
            if let Some(done) = finished {
                assert_eq!(now, done, "final states are final");
            }
            if is_final(now) {
                finished = Some(now);
            }
        }
    }
}

#[test]
fn payload_hash_separates_fields_and_ignores_signed_zero() {
    let a = PayloadHasher::default().bytes(b"ab").bytes(b"c").finish();
    let b = PayloadHasher::default().bytes(b"a").bytes(b"bc").finish();
    assert_ne!(a, b);
    let z1 = PayloadHasher::default().f64(0.0).finish();
    let z2 = PayloadHasher::default().f64(-0.0).finish();
    assert_eq!(z1, z2);
    assert_ne!(
        PayloadHasher::default().f64(0.1).finish(),
        PayloadHasher::default().f64(0.2).finish()
    );
}

#[test]
fn duplicates_get_the_stored_answer() {
    let mut e = entry(S::Rejected);
    e.answer = Some((9, "NO_MONEY".into(), "no".into()));
    let c = e.completion(5, vec![1]);
    assert_eq!((c.token, c.code, c.reason.as_str()), (5, 9, "NO_MONEY"));
}
