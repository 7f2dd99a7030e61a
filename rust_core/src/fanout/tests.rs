use bytes::Bytes;
use prost::Message;
use std::collections::HashSet;

use super::subscription::Queued;
use super::*;
use crate::error::{Code, EngineError};
use crate::notify::Notifier;
use crate::pb::v1::{BookLevel, StreamBookResponse, StreamTicksResponse, Tick};

fn tick(symbol: &str, bid: f64) -> Bytes {
    piece(&Tick {
        instance_id: "a".into(),
        symbol: symbol.into(),
        bid,
        ask: bid + 0.0001,
        ..Default::default()
    })
}

fn set(items: &[&str]) -> HashSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn batch_decodes_as_one_response_with_sequence() {
    let n = Notifier::new().expect("notifier");
    let hub = Hub::default();
    let sub = hub.subscribe(Topic::Ticks, set(&[]), set(&["EURUSD"]), 100, false);
    let items = [
        ("EURUSD", tick("EURUSD", 1.1)),
        ("GBPUSD", tick("GBPUSD", 1.2)),
        ("EURUSD", tick("EURUSD", 1.3)),
    ];
    hub.publish(Topic::Ticks, "a", &items, &n);
    assert_eq!(n.drain().ready, vec![sub.id]);
    let data = sub.take(1 << 20).data.expect("data");
    let resp = StreamTicksResponse::decode(&data[..]).expect("decode");
    assert_eq!(resp.sequence, 1);
    assert_eq!(resp.dropped, 0);
    let bids: Vec<f64> = resp.ticks.iter().map(|t| t.bid).collect();
    assert_eq!(bids, vec![1.1, 1.3], "GBPUSD filtered out");
    assert!(sub.take(1 << 20).data.is_none());
    hub.publish(Topic::Ticks, "a", &items[..1], &n);
    let resp =
        StreamTicksResponse::decode(&sub.take(1 << 20).data.expect("data")[..]).expect("decode");
    assert_eq!(resp.sequence, 3, "numbering continues per subscription");
}

#[test]
fn a_full_tick_queue_is_conflated_and_reports_what_it_dropped() {
    let n = Notifier::new().expect("notifier");
    let hub = Hub::default();
    let sub = hub.subscribe(Topic::Ticks, set(&[]), set(&[]), 2, false);
    for i in 0..5 {
        hub.publish(
            Topic::Ticks,
            "a",
            &[("EURUSD", tick("EURUSD", f64::from(i)))],
            &n,
        );
    }
    let resp =
        StreamTicksResponse::decode(&sub.take(1 << 20).data.expect("data")[..]).expect("decode");
    assert_eq!(resp.sequence, 1);
    assert_eq!(resp.dropped, 3);
    let bids: Vec<f64> = resp.ticks.iter().map(|t| t.bid).collect();
    assert_eq!(bids, vec![0.0, 4.0], "the first tick, then the latest");
}

#[test]
fn conflation_keeps_the_latest_tick_per_symbol() {
    let n = Notifier::new().expect("notifier");
    let hub = Hub::default();
    let sub = hub.subscribe(Topic::Ticks, set(&[]), set(&[]), 100, true);
    for i in 0..10 {
        let items = [
            ("EURUSD", tick("EURUSD", f64::from(i))),
            ("GBPUSD", tick("GBPUSD", 100.0 + f64::from(i))),
        ];
        hub.publish(Topic::Ticks, "a", &items, &n);
    }
    let resp =
        StreamTicksResponse::decode(&sub.take(1 << 20).data.expect("data")[..]).expect("decode");
    let latest: Vec<(String, f64)> = resp
        .ticks
        .iter()
        .map(|t| (t.symbol.clone(), t.bid))
        .collect();
    assert_eq!(
        latest,
        vec![("EURUSD".into(), 9.0), ("GBPUSD".into(), 109.0)]
    );
    assert_eq!(resp.dropped, 18);
    assert_eq!(sub.queued(), 0);
}

fn book(symbol: &str, bid: f64) -> Bytes {
    Bytes::from(
        StreamBookResponse {
            instance_id: "a".into(),
            symbol: symbol.into(),
            levels: vec![
                BookLevel {
                    r#type: 1,
                    price: bid + 0.0002,
                    volume: 1.0,
                },
                BookLevel {
                    r#type: 2,
                    price: bid,
                    volume: 2.0,
                },
            ],
            ..Default::default()
        }
        .encode_to_vec(),
    )
}

fn take_book(sub: &Subscription) -> Option<StreamBookResponse> {
    let data = sub.take(1 << 20).data?;
    Some(StreamBookResponse::decode(&data[..]).expect("one whole book"))
}

#[test]
fn books_are_taken_one_per_response_numbered_and_conflated_when_behind() {
    let n = Notifier::new().expect("notifier");
    let hub = Hub::default();
    let keeper = hub.subscribe(Topic::Book, set(&["a"]), set(&["EURUSD"]), 3, false);
    let conflated = hub.subscribe(Topic::Book, set(&["a"]), set(&["EURUSD"]), 3, true);
    let other = hub.subscribe(Topic::Book, set(&["a"]), set(&["GBPUSD"]), 3, false);
    for i in 0..3 {
        hub.publish(
            Topic::Book,
            "a",
            &[("EURUSD", book("EURUSD", f64::from(i)))],
            &n,
        );
    }
    // Within its limit: every book, one per response, each whole (not merged).
    for i in 0..3u32 {
        let resp = take_book(&keeper).expect("a book");
        assert_eq!((resp.sequence, resp.dropped), (u64::from(i) + 1, 0));
        assert_eq!(resp.levels.len(), 2, "one book's levels");
        assert_eq!(resp.levels[1].price, f64::from(i));
    }
    assert!(take_book(&keeper).is_none());
    // Conflating: only the latest, the others counted.
    let resp = take_book(&conflated).expect("the latest");
    assert_eq!((resp.sequence, resp.dropped), (3, 2));
    assert_eq!(resp.levels[1].price, 2.0);
    assert!(take_book(&conflated).is_none());
    assert!(take_book(&other).is_none(), "another symbol's book");
    // Behind (3 queued, its limit): the latest book replaces the queued one.
    for i in 3..10 {
        hub.publish(
            Topic::Book,
            "a",
            &[("EURUSD", book("EURUSD", f64::from(i)))],
            &n,
        );
    }
    let prices: Vec<(u64, f64)> = std::iter::from_fn(|| take_book(&keeper))
        .map(|r| (r.sequence, r.levels[1].price))
        .collect();
    assert_eq!(prices, [(4, 3.0), (5, 4.0), (10, 9.0)]);
    // The keeper lost 5 to 8 to the latest; the conflated one all but two of ten.
    assert_eq!(hub.stats()[Topic::Book as usize].dropped, 4 + 8);
}

#[test]
fn a_book_subscriber_past_its_byte_bound_is_cut_off() {
    let n = Notifier::new().expect("notifier");
    let hub = Hub::new(4 << 10);
    let stalled = hub.subscribe(Topic::Book, set(&["a"]), set(&[]), 10_000, false);
    let mut publishes = 0;
    while !stalled.is_cut_off() {
        hub.publish(
            Topic::Book,
            "a",
            &[("EURUSD", book("EURUSD", f64::from(publishes)))],
            &n,
        );
        publishes += 1;
        assert!(publishes < 10_000, "never cut off");
    }
    assert_eq!(hub.count(Topic::Book), 0);
    let closed = stalled.take(1 << 20).closed.expect("ended");
    assert_eq!(closed.reason, "SLOW_CONSUMER");
}

#[test]
fn closing_a_topic_ends_only_its_subscribers_of_the_instance() {
    let n = Notifier::new().expect("notifier");
    let hub = Hub::default();
    let books = hub.subscribe(Topic::Book, set(&["a"]), set(&["EURUSD"]), 10, false);
    let ticks = hub.subscribe(Topic::Ticks, set(&["a"]), set(&[]), 10, false);
    let other = hub.subscribe(Topic::Book, set(&["b"]), set(&["EURUSD"]), 10, false);
    hub.publish(Topic::Book, "a", &[("EURUSD", book("EURUSD", 1.0))], &n);
    let lost = EngineError::new(Code::Unavailable, "WORKER_LOST", "gone");
    hub.close_topic(Topic::Book, "a", &lost, &n);
    assert!(take_book(&books).is_some(), "what was queued is read first");
    assert_eq!(
        books.take(1024).closed.expect("ended").reason,
        "WORKER_LOST"
    );
    assert!(ticks.take(1024).closed.is_none());
    assert!(other.take(1024).closed.is_none());
}

#[test]
fn full_execution_queue_ends_the_stream() {
    let n = Notifier::new().expect("notifier");
    let hub = Hub::default();
    let sub = hub.subscribe(Topic::Executions, set(&["a"]), set(&[]), 2, false);
    for i in 0..3 {
        hub.publish(Topic::Executions, "a", &[("", tick("X", f64::from(i)))], &n);
    }
    let taken = sub.take(1 << 20);
    assert!(taken.data.is_none());
    assert_eq!(taken.closed.expect("closed").reason, "SLOW_CONSUMER");
}

#[test]
fn take_respects_the_byte_budget_and_stays_ready() {
    let n = Notifier::new().expect("notifier");
    let hub = Hub::default();
    let sub = hub.subscribe(Topic::Ticks, set(&[]), set(&[]), 100, false);
    let one = tick("EURUSD", 1.0);
    let items: Vec<(&str, Bytes)> = (0..10).map(|_| ("EURUSD", one.clone())).collect();
    for item in &items {
        hub.publish(Topic::Ticks, "a", std::slice::from_ref(item), &n);
    }
    let first = sub.take(one.len() * 4).data.expect("data");
    let resp = StreamTicksResponse::decode(&first[..]).expect("decode");
    assert_eq!(resp.ticks.len(), 4);
    assert_eq!(sub.queued(), 6);
    hub.publish(Topic::Ticks, "a", &items[..1], &n);
    assert!(
        n.drain().ready.len() <= 1,
        "not announced again while notified"
    );
}

#[test]
fn take_with_fills_a_buffer_of_the_exact_size_or_keeps_the_pieces() {
    let n = Notifier::new().expect("notifier");
    let hub = Hub::default();
    // Conflating: 300 ticks of 3 symbols leave the latest of each.
    let sub = hub.subscribe(Topic::Ticks, set(&[]), set(&[]), 100, true);
    for i in 0..300u32 {
        let symbol = ["EURUSD", "GBPUSD", "USDJPY"][i as usize % 3];
        let items = [(symbol, tick(symbol, f64::from(i)))];
        hub.publish(Topic::Ticks, "a", &items, &n);
    }
    let mut sizes = Vec::new();
    // A buffer that cannot be made leaves the queue as it was.
    let failed = sub.take_with(usize::MAX, |_, _| Err::<Vec<u8>, _>("no memory"));
    assert_eq!(failed.err(), Some("no memory"));
    assert_eq!(sub.queued(), 3);
    let taken = sub
        .take_with(usize::MAX, |size, fill| {
            sizes.push(size);
            let mut out = vec![0xAA; size];
            fill(&mut out);
            Ok::<_, ()>(out)
        })
        .expect("made");
    let data = taken.data.expect("data");
    assert_eq!(sizes, vec![data.len()]);
    let resp = StreamTicksResponse::decode(&data[..]).expect("every byte written");
    let bids: Vec<f64> = resp.ticks.iter().map(|t| t.bid).collect();
    assert_eq!(bids, vec![297.0, 298.0, 299.0]);
    // Numbered from 1: the first tick left is the 298th.
    assert_eq!((resp.sequence, resp.dropped), (298, 297));
    assert!(sub.take(usize::MAX).data.is_none());
}

#[test]
fn a_subscriber_is_announced_only_once_it_found_its_queue_empty() {
    let n = Notifier::new().expect("notifier");
    let hub = Hub::default();
    let sub = hub.subscribe(Topic::Ticks, set(&["a"]), set(&[]), 100, false);
    let items = [("EURUSD", tick("EURUSD", 1.0))];
    hub.publish(Topic::Ticks, "a", &items, &n);
    assert_eq!(n.drain().ready, vec![sub.id]);
    // It took everything and writes it: what comes meanwhile waits for its next take.
    assert!(sub.take(65536).data.is_some());
    hub.publish(Topic::Ticks, "a", &items, &n);
    assert!(n.drain().ready.is_empty(), "busy subscriber announced");
    assert!(sub.take(65536).data.is_some());
    // Nothing left: it is about to wait, so the next publish announces it.
    assert!(sub.take(65536).data.is_none());
    hub.publish(Topic::Ticks, "b", &items, &n);
    assert!(
        n.drain().ready.is_empty(),
        "another instance's tick announced"
    );
    hub.publish(Topic::Ticks, "a", &items, &n);
    assert_eq!(n.drain().ready, vec![sub.id]);
}

#[test]
fn a_publish_is_one_shared_run_for_subscribers_that_keep_up() {
    let n = Notifier::new().expect("notifier");
    let hub = Hub::default();
    let all = hub.subscribe(Topic::Ticks, set(&[]), set(&[]), 2, false);
    let gbp = hub.subscribe(Topic::Ticks, set(&[]), set(&["GBPUSD"]), 100, false);
    let items: Vec<(&str, Bytes)> = (0..5)
        .map(|i| {
            let symbol = if i % 2 == 0 { "EURUSD" } else { "GBPUSD" };
            (symbol, tick(symbol, f64::from(i)))
        })
        .collect();
    hub.publish(Topic::Ticks, "a", &items, &n);
    assert_eq!(all.queued(), 1, "one piece for the whole publish");
    assert_eq!(
        gbp.queued(),
        2,
        "a filtered subscriber gets its entries one by one"
    );
    hub.publish(Topic::Ticks, "a", &items, &n);
    let resp =
        StreamTicksResponse::decode(&all.take(1 << 20).data.expect("data")[..]).expect("decode");
    let bids: Vec<f64> = resp.ticks.iter().map(|t| t.bid).collect();
    assert_eq!(bids, [0.0, 1.0, 2.0, 3.0, 4.0, 0.0, 1.0, 2.0, 3.0, 4.0]);
    assert_eq!((resp.sequence, resp.dropped), (1, 0));
    // Behind (2 pieces queued, the limit): runs go whole, oldest first, counted per
    // entry, and the latest tick per symbol is kept.
    for _ in 0..3 {
        hub.publish(Topic::Ticks, "a", &items, &n);
    }
    let resp =
        StreamTicksResponse::decode(&all.take(1 << 20).data.expect("data")[..]).expect("decode");
    assert_eq!(resp.dropped, 5 + 5 + 3);
    let latest: Vec<(&str, f64)> = resp
        .ticks
        .iter()
        .map(|t| (t.symbol.as_str(), t.bid))
        .collect();
    assert_eq!(latest, [("EURUSD", 4.0), ("GBPUSD", 3.0)]);
}

#[test]
fn a_subscriber_past_its_byte_bound_is_cut_off_freed_and_removed_at_once() {
    let n = Notifier::new().expect("notifier");
    let hub = Hub::new(16 << 10);
    let stalled = hub.subscribe(Topic::Ticks, set(&[]), set(&[]), 10_000, false);
    let reader = hub.subscribe(Topic::Ticks, set(&[]), set(&[]), 10_000, false);
    let items = [
        ("EURUSD", tick("EURUSD", 1.0)),
        ("GBPUSD", tick("GBPUSD", 2.0)),
    ];
    let mut publishes = 0;
    while !stalled.is_cut_off() {
        hub.publish(Topic::Ticks, "a", &items, &n);
        assert!(reader.take(1 << 20).data.is_some(), "the reader keeps up");
        publishes += 1;
        assert!(publishes < 10_000, "never cut off");
    }
    // Cut off as soon as it passed the bound (each publish one shared run: its bytes and
    // an entry): its queue is gone, and so is it from the hub.
    let each = items.iter().map(|(_, p)| p.len()).sum::<usize>() + size_of::<Queued>();
    assert!((publishes - 1) * each <= 16 << 10 && publishes * each > 16 << 10);
    assert_eq!((stalled.queued(), stalled.queued_bytes()), (0, 0));
    assert_eq!(hub.count(Topic::Ticks), 1, "only the reader is left");
    assert_eq!(hub.cutoffs(), 1);
    let taken = stalled.take(1 << 20);
    assert!(taken.data.is_none());
    let closed = taken.closed.expect("ended");
    assert_eq!(
        (closed.code, closed.reason),
        (Code::ResourceExhausted, "SLOW_CONSUMER")
    );
    // What comes after reaches only the reader; the bound held for it.
    hub.publish(Topic::Ticks, "a", &items, &n);
    assert_eq!(stalled.queued(), 0);
    assert!(reader.take(1 << 20).data.is_some());
    assert!(!reader.is_cut_off());
}

#[test]
fn conflation_keeps_a_slow_subscriber_under_its_byte_bound() {
    let n = Notifier::new().expect("notifier");
    let hub = Hub::new(16 << 10);
    let conflated = hub.subscribe(Topic::Ticks, set(&[]), set(&[]), 10_000, true);
    for i in 0..10_000 {
        let items = [
            ("EURUSD", tick("EURUSD", f64::from(i))),
            ("GBPUSD", tick("GBPUSD", f64::from(i))),
        ];
        hub.publish(Topic::Ticks, "a", &items, &n);
    }
    assert!(!conflated.is_cut_off());
    assert_eq!(conflated.queued(), 2, "the latest per symbol");
}

#[test]
fn executions_are_bounded_by_count_and_a_full_queue_is_freed_and_removed() {
    let n = Notifier::new().expect("notifier");
    // A byte bound far below what is queued: executions are not cut off by it.
    let hub = Hub::new(1024);
    let sub = hub.subscribe(Topic::Executions, set(&["a"]), set(&[]), 100, false);
    for i in 0..100 {
        hub.publish(Topic::Executions, "a", &[("", tick("X", f64::from(i)))], &n);
    }
    assert_eq!(sub.queued(), 100);
    assert!(sub.queued_bytes() > 1024);
    assert_eq!(hub.count(Topic::Executions), 1);
    hub.publish(Topic::Executions, "a", &[("", tick("X", 0.0))], &n);
    assert_eq!((sub.queued(), sub.queued_bytes()), (0, 0));
    assert_eq!(hub.count(Topic::Executions), 0);
    assert_eq!(hub.cutoffs(), 1);
    assert_eq!(
        sub.take(1024).closed.expect("ended").reason,
        "SLOW_CONSUMER"
    );
}

#[test]
fn unsubscribing_frees_the_queue() {
    let n = Notifier::new().expect("notifier");
    let hub = Hub::default();
    let sub = hub.subscribe(Topic::Ticks, set(&[]), set(&[]), 100, false);
    hub.publish(Topic::Ticks, "a", &[("EURUSD", tick("EURUSD", 1.0))], &n);
    assert_eq!(sub.queued(), 1);
    hub.unsubscribe(Topic::Ticks, sub.id);
    assert_eq!((sub.queued(), sub.queued_bytes()), (0, 0));
    assert_eq!(hub.cutoffs(), 0, "not a cut-off");
}

#[test]
fn ending_an_instances_subscriptions_drops_them_at_once() {
    let n = Notifier::new().expect("notifier");
    let hub = Hub::default();
    let only = hub.subscribe(Topic::Ticks, set(&["a"]), set(&[]), 10, false);
    let both = hub.subscribe(Topic::Executions, set(&["a", "b"]), set(&[]), 10, false);
    let other = hub.subscribe(Topic::Ticks, set(&["b"]), set(&[]), 10, false);
    let every = hub.subscribe(Topic::Accounts, set(&[]), set(&[]), 10, false);
    hub.publish(Topic::Ticks, "a", &[("EURUSD", tick("EURUSD", 1.0))], &n);
    assert_eq!(n.drain().ready, vec![only.id]);
    let gone = EngineError::instance_not_found("a");
    hub.end_naming("a", &gone, &n);
    // `only` was announced for its tick and has not looked since: it will.
    assert_eq!(n.drain().ready, vec![both.id]);
    for sub in [&only, &both] {
        let taken = sub.take(1024);
        assert!(taken.data.is_none(), "what was queued is dropped");
        let closed = taken.closed.expect("ended");
        assert_eq!(
            (closed.code, closed.reason),
            (Code::NotFound, "INSTANCE_NOT_FOUND")
        );
    }
    assert_eq!(hub.count(Topic::Ticks), 1);
    assert_eq!(hub.count(Topic::Executions), 0);
    assert_eq!(hub.count(Topic::Accounts), 1, "every instance's stays");
    assert_eq!(hub.cutoffs(), 0, "not a slow consumer");
    // The id back: nothing reaches the ended subscription.
    hub.publish(Topic::Ticks, "a", &[("EURUSD", tick("EURUSD", 2.0))], &n);
    assert_eq!(only.queued(), 0);
    assert!(other.take(1024).data.is_none());
    assert!(every.take(1024).closed.is_none());
}

#[test]
fn instance_filter_and_close() {
    let n = Notifier::new().expect("notifier");
    let hub = Hub::default();
    let sub = hub.subscribe(Topic::Ticks, set(&["b"]), set(&[]), 10, false);
    hub.publish(Topic::Ticks, "a", &[("EURUSD", tick("EURUSD", 1.0))], &n);
    assert!(sub.take(1024).data.is_none());
    hub.close_matching("b", &EngineError::new(Code::Unavailable, "GONE", "x"), &n);
    assert_eq!(sub.take(1024).closed.expect("closed").reason, "GONE");
    hub.unsubscribe(Topic::Ticks, sub.id);
    assert_eq!(hub.count(Topic::Ticks), 0);
}
