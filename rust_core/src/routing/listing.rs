//! `ListOrders`: one page of an instance's orders, newest first, filtered and cut here so that
//! a page costs the size of the page, not of the whole book.
//!
//! The page token is the position of the last order of the page — its creation time in
//! nanoseconds and its client_order_id, `<nanos>.<client_order_id>` — and the next page starts
//! right after it, so orders placed while a client pages through the history neither repeat
//! nor push orders off the pages it has not read yet.

use crate::reason;
use prost::Message;

use crate::convert::timestamp_nanos;
use crate::error::{Code, EngineError, Result};
use crate::orders::OrderBook;
use crate::pb::v1;
use crate::supervisor::Instance;

/// Orders in a page unless asked otherwise, and at most.
pub const DEFAULT_PAGE_SIZE: usize = 100;
/// The largest page.
pub const MAX_PAGE_SIZE: usize = 1000;

/// What `ListOrders` asks for.
#[derive(Debug, Clone, Default)]
pub struct OrderQuery {
    /// Finished orders (true) or working ones.
    pub history: bool,
    /// Only this symbol (empty: all).
    pub symbol: String,
    /// Created at or after this (nanoseconds since the epoch).
    pub from_nanos: Option<i64>,
    /// Created before this.
    pub to_nanos: Option<i64>,
    /// Orders per page (0: the default; capped at [`MAX_PAGE_SIZE`]).
    pub page_size: usize,
    /// Where the previous page ended (empty: the first page).
    pub page_token: String,
}

/// An order's place in the listing: newest first, then by client_order_id.
type Position<'a> = (i64, &'a str);

fn position(order: &v1::Order) -> Position<'_> {
    (
        timestamp_nanos(order.created_time.as_ref()),
        order.client_order_id.as_str(),
    )
}

fn token(at: Position<'_>) -> String {
    format!("{}.{}", at.0, at.1)
}

fn parse_token(token: &str) -> Result<Option<(i64, String)>> {
    if token.is_empty() {
        return Ok(None);
    }
    token
        .split_once('.')
        .and_then(|(nanos, cid)| Some((nanos.parse::<i64>().ok()?, cid.to_owned())))
        .map(Some)
        .ok_or_else(|| {
            EngineError::new(
                Code::InvalidArgument,
                reason::PAGE_TOKEN_INVALID,
                "page_token: not from us",
            )
            .field("page_token")
        })
}

/// One page: the encoded `ListOrdersResponse`.
///
/// # Errors
/// `INVALID_ARGUMENT` for a page token this listing did not make.
pub fn list_page(instance: &Instance, query: &OrderQuery) -> Result<Vec<u8>> {
    let after = parse_token(&query.page_token)?;
    let size = match query.page_size {
        0 => DEFAULT_PAGE_SIZE,
        n => n.min(MAX_PAGE_SIZE),
    };
    let live = instance.live.lock();
    let (orders, more) = page(&live.book, query, after, size);
    let next_page_token = match orders.last() {
        Some(last) if more => token(position(last)),
        _ => String::new(),
    };
    Ok(v1::ListOrdersResponse {
        orders: orders.into_iter().cloned().collect(),
        next_page_token,
    }
    .encode_to_vec())
}

/// The orders of a page (newest first) and whether more follow: a walk over the book's
/// creation-time index from where the page starts towards older orders until it is full,
/// so a page costs its own size plus the orders the filters pass over (other symbols,
/// working orders when listing the history and the other way round).
fn page<'a>(
    book: &'a OrderBook,
    query: &OrderQuery,
    after: Option<(i64, String)>,
    size: usize,
) -> (Vec<&'a v1::Order>, bool) {
    // The page starts before the token's order, or the window's end, whichever is first.
    let mut end: Option<(i64, String)> = query.to_nanos.map(|high| (high, String::new()));
    if let Some(at) = after {
        if end.as_ref().is_none_or(|e| at < *e) {
            end = Some(at);
        }
    }
    let start = (query.from_nanos.unwrap_or(i64::MIN), String::new());
    // Working orders from the index of those that may be: not past every final one.
    let index = if query.history {
        book.by_created()
    } else {
        book.maybe_open()
    };
    let window = match end {
        Some(end) if end <= start => None,
        Some(end) => Some(index.range(start..end)),
        None => Some(index.range(start..)),
    };
    let mut orders: Vec<&v1::Order> = Vec::with_capacity(size + 1);
    for (_, cid) in window.into_iter().flatten().rev() {
        let Some(entry) = book.by_client_id.get(cid) else {
            continue;
        };
        let o = &entry.order;
        if (query.symbol.is_empty() || o.symbol == query.symbol)
            && entry.is_final() == query.history
        {
            orders.push(o);
            if orders.len() > size {
                break;
            }
        }
    }
    let more = orders.len() > size;
    orders.truncate(size);
    (orders, more)
}

#[cfg(test)]
mod tests {
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
}
