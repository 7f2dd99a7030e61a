//! `ListOrders`: one page of an instance's orders, newest first, filtered and cut here so that
//! a page costs the size of the page, not of the whole book.
//!
//! The page token is the position of the last order of the page — its creation time in
//! nanoseconds and its client_order_id, `<nanos>.<client_order_id>` — and the next page starts
//! right after it, so orders placed while a client pages through the history neither repeat
//! nor push orders off the pages it has not read yet.

use prost::Message;

use crate::convert::timestamp_nanos;
use crate::error::{Code, EngineError, Result};
use crate::orders::is_final;
use crate::pb::v1;
use crate::pb::v1::OrderStatus as S;
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
                "PAGE_TOKEN_INVALID",
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
    let mut orders: Vec<&v1::Order> = live
        .book
        .by_client_id
        .values()
        .map(|e| &e.order)
        .filter(|o| query.symbol.is_empty() || o.symbol == query.symbol)
        .filter(|o| is_final(S::try_from(o.status).unwrap_or(S::Unspecified)) == query.history)
        .filter(|o| {
            let created = timestamp_nanos(o.created_time.as_ref());
            query.from_nanos.is_none_or(|low| created >= low)
                && query.to_nanos.is_none_or(|high| created < high)
        })
        .filter(|o| {
            after
                .as_ref()
                .is_none_or(|(nanos, cid)| position(o) < (*nanos, cid.as_str()))
        })
        .collect();
    let newest_first = |a: &&v1::Order, b: &&v1::Order| position(b).cmp(&position(a));
    // Only the page (and one more, to know whether there is a next page) is sorted.
    if orders.len() > size + 1 {
        orders.select_nth_unstable_by(size, newest_first);
        orders.truncate(size + 1);
    }
    orders.sort_unstable_by(newest_first);
    let more = orders.len() > size;
    orders.truncate(size);
    let next_page_token = if more {
        orders
            .last()
            .map(|o| token(position(o)))
            .unwrap_or_default()
    } else {
        String::new()
    };
    Ok(v1::ListOrdersResponse {
        orders: orders.into_iter().cloned().collect(),
        next_page_token,
    }
    .encode_to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
