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
mod tests;
