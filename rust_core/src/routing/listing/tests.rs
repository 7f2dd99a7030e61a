use super::*;
use crate::orders::OrderEntry;
use crate::pb::v1::OrderStatus as S;

#[test]
fn tokens_round_trip_and_refuse_what_we_did_not_make() {
    let at = (1_700_000_000_123_456_789, "a.b:c");
    assert_eq!(
        parse_token(&token(at)).expect("ours"),
        Some((at.0, at.1.to_owned()))
    );
    assert_eq!(parse_token("").expect("first page"), None);
    for bad in ["x", "12", "x.y", ".cid"] {
        let e = parse_token(bad).expect_err(bad);
        assert_eq!(
            (e.code, e.reason),
            (Code::InvalidArgument, "PAGE_TOKEN_INVALID")
        );
    }
}

fn booked(cid: &str, symbol: &str, status: S, created_s: i64) -> OrderEntry {
    OrderEntry {
        order: v1::Order {
            client_order_id: cid.into(),
            symbol: symbol.into(),
            status: status as i32,
            created_time: Some(prost_types::Timestamp {
                seconds: created_s,
                nanos: 0,
            }),
            ..Default::default()
        },
        payload_hash: 0,
        waiters: Vec::new(),
        answer: None,
        ticket_floor: 0,
    }
}

fn cids(orders: &[&v1::Order]) -> Vec<String> {
    orders.iter().map(|o| o.client_order_id.clone()).collect()
}

/// Every page of a query, following the tokens.
fn all_pages(book: &OrderBook, query: &OrderQuery, size: usize) -> Vec<Vec<String>> {
    let mut pages = Vec::new();
    let mut after = None;
    loop {
        let (orders, more) = page(book, query, after, size);
        pages.push(cids(&orders));
        match orders.last() {
            Some(last) if more => {
                let (nanos, cid) = position(last);
                after = Some((nanos, cid.to_owned()));
            }
            _ => return pages,
        }
    }
}

#[test]
fn pages_walk_newest_first_through_filters_windows_and_ties() {
    let mut book = OrderBook::default();
    for (cid, symbol, status, created) in [
        ("a", "EURUSD", S::Filled, 10),
        ("b", "EURUSD", S::Canceled, 20),
        ("c", "GBPUSD", S::Filled, 20),
        ("d", "EURUSD", S::Accepted, 30),
        ("e", "EURUSD", S::Rejected, 40),
        ("f", "EURUSD", S::Filled, 40),
    ] {
        book.insert(booked(cid, symbol, status, created));
    }
    let history = OrderQuery {
        history: true,
        ..Default::default()
    };
    // Ties in time go by client_order_id, newest (largest) first.
    assert_eq!(
        all_pages(&book, &history, 2),
        [vec!["f", "e"], vec!["c", "b"], vec!["a"]]
    );
    let eurusd = OrderQuery {
        symbol: "EURUSD".into(),
        ..history.clone()
    };
    assert_eq!(
        all_pages(&book, &eurusd, 3),
        [vec!["f", "e", "b"], vec!["a"]]
    );
    let open = OrderQuery::default();
    assert_eq!(all_pages(&book, &open, 5), [vec!["d"]]);
    // [20 s, 40 s): from inclusive, to exclusive.
    let window = OrderQuery {
        from_nanos: Some(20_000_000_000),
        to_nanos: Some(40_000_000_000),
        ..history.clone()
    };
    assert_eq!(all_pages(&book, &window, 1), [vec!["c"], vec!["b"]]);
    let empty = OrderQuery {
        from_nanos: Some(40_000_000_000),
        to_nanos: Some(20_000_000_000),
        ..history.clone()
    };
    assert_eq!(all_pages(&book, &empty, 10), [Vec::<String>::new()]);
    // A token past the window's end: the window's end wins, and the other way round.
    let (orders, _) = page(&book, &window, Some((50_000_000_000, "z".into())), 10);
    assert_eq!(cids(&orders), ["c", "b"]);
    let (orders, _) = page(&book, &window, Some((20_000_000_000, "c".into())), 10);
    assert_eq!(cids(&orders), ["b"]);
    // An order placed while paging lands before the first page, not on later ones.
    let (first, _) = page(&book, &history, None, 2);
    let (nanos, cid) = position(first[1]);
    let after = Some((nanos, cid.to_owned()));
    book.insert(booked("g", "EURUSD", S::Filled, 50));
    let (second, _) = page(&book, &history, after, 2);
    assert_eq!(cids(&second), ["c", "b"]);
}
