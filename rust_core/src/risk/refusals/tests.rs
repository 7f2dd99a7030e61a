use super::*;

const SECOND: u64 = 1_000_000_000;

fn order(cid: &str) -> v1::Order {
    v1::Order {
        client_order_id: cid.into(),
        reject_reason: "RATE_LIMITED".into(),
        ..Default::default()
    }
}

#[test]
fn refusals_within_a_second_are_one_event_with_their_count() {
    let r = Refusals::default();
    for n in 0..500u64 {
        let at = n * (SECOND / 1000); // 500 within half a second
        assert_eq!(
            r.add("a", "RATE_LIMITED", at, || order(&format!("c{n}"))),
            None
        );
    }
    assert!(r.due(SECOND - 1).is_empty(), "still open");
    let closed = r.due(SECOND);
    assert_eq!(closed.len(), 1);
    assert_eq!(
        (closed[0].count, closed[0].order.client_order_id.as_str()),
        (500, "c0")
    );
    assert!(r.due(10 * SECOND).is_empty(), "published once");
}

#[test]
fn across_seconds_there_is_one_event_per_second_per_instance_and_reason() {
    let r = Refusals::default();
    let mut events = Vec::new();
    // Five refusals every 100 ms for 3 s, on two instances, and one other reason.
    for tick in 0..30u64 {
        let now = tick * SECOND / 10;
        events.extend(r.due(now));
        for n in 0..5 {
            for instance in ["a", "b"] {
                let cid = format!("{instance}{tick}-{n}");
                events.extend(r.add(instance, "RATE_LIMITED", now, || order(&cid)));
            }
        }
        events.extend(r.add("a", "TOO_MANY_IN_FLIGHT", now, || order("f")));
    }
    events.extend(r.due(100 * SECOND));
    let of = |instance: &str, reason: &str| -> Vec<u64> {
        events
            .iter()
            .filter(|c| c.instance_id == instance)
            .filter(|c| (c.order.client_order_id == "f") == (reason == "TOO_MANY_IN_FLIGHT"))
            .map(|c| c.count)
            .collect()
    };
    assert_eq!(of("a", "RATE_LIMITED"), vec![50, 50, 50]);
    assert_eq!(of("b", "RATE_LIMITED"), vec![50, 50, 50]);
    assert_eq!(of("a", "TOO_MANY_IN_FLIGHT"), vec![10, 10, 10]);
    assert_eq!(events.iter().map(|c| c.count).sum::<u64>(), 30 * 11);
}

#[test]
fn a_refusal_after_a_window_closed_returns_it_if_not_yet_published() {
    let r = Refusals::default();
    r.add("a", "RATE_LIMITED", 0, || order("first"));
    r.add("a", "RATE_LIMITED", SECOND / 2, || order("second"));
    let closed = r.add("a", "RATE_LIMITED", 2 * SECOND, || order("third"));
    let closed = closed.expect("the first window");
    assert_eq!(
        (closed.order.client_order_id.as_str(), closed.count),
        ("first", 2)
    );
    let next = r.due(3 * SECOND);
    assert_eq!(next.len(), 1);
    assert_eq!(
        (next[0].order.client_order_id.as_str(), next[0].count),
        ("third", 1)
    );
}

#[tokio::test(start_paused = true)]
async fn a_window_is_published_when_it_closes() {
    let r = std::sync::Arc::new(Refusals::default());
    let started = tokio::time::Instant::now();
    let now = move || u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let runner = tokio::spawn({
        let r = std::sync::Arc::clone(&r);
        async move { r.run(now, move |c| drop(tx.send(c))).await }
    });
    r.add("a", "RATE_LIMITED", now(), || order("x"));
    r.add("a", "RATE_LIMITED", now(), || order("y"));
    // The paused clock advances to the window's end only once nothing else can run.
    let closed = rx.recv().await.expect("published");
    assert!(started.elapsed() >= WINDOW);
    assert_eq!(
        (closed.order.client_order_id.as_str(), closed.count),
        ("x", 2)
    );
    runner.abort();
}
