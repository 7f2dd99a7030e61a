//! Order routing: API requests become terminal requests, terminal answers become order
//! states, execution events and answers to the callers.
//!
//! Every state change of an order is journaled (before the request leaves for the terminal
//! for a new order) and published as an execution event with the instance's next sequence.

use prost::Message;
use std::sync::Arc;

use crate::convert;
use crate::engine::Shared;
use crate::error::{Code, EngineError, Result};
use crate::frame;
use crate::journal::{FsyncPolicy, JournalRecord};
use crate::killswitch;
use crate::notify::Completion;
use crate::orders::{is_final, OrderEntry};
use crate::pb::terminal as t;
use crate::pb::v1;
use crate::pb::v1::OrderStatus as S;
use crate::retcode;
use crate::risk;
use crate::supervisor::{Instance, Live};
use crate::validate::{self, OrderIntent};

/// What a request in flight was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    /// A new order (also a position close).
    Place,
    /// Cancel a pending order.
    Cancel,
    /// Change a pending order.
    Modify,
    /// Change a position's SL/TP.
    Sltp,
    /// A dry run (order_check).
    Check,
}

/// A request sent to a worker and not answered yet.
#[derive(Debug, Clone)]
pub struct PendingRequest {
    /// What it was for.
    pub kind: RequestKind,
    /// The order it concerns (empty for SL/TP changes and checks).
    pub client_order_id: String,
    /// Price the slippage is measured against.
    pub reference_price: f64,
    /// The symbol's point.
    pub point: f64,
    /// The position (SL/TP changes), or the order ticket (cancels).
    pub position_id: u64,
    /// A market order's request, kept for a safe re-send after a requote.
    pub retry: Option<Box<t::OrderRequest>>,
    /// Sends of this order so far.
    pub attempts: u32,
    /// A new pending (limit/stop) order: counts against `max_pending_orders` until answered.
    pub pending_order: bool,
    /// A dry run's risk verdict when the gate refused it.
    pub verdict: Option<Box<EngineError>>,
}

impl PendingRequest {
    /// A request that needs no price bookkeeping (checks, cancels, modifications, SL/TP).
    pub(crate) fn plain(kind: RequestKind, client_order_id: String, position_id: u64) -> Self {
        Self {
            kind,
            client_order_id,
            reference_price: 0.0,
            point: 0.0,
            position_id,
            retry: None,
            attempts: 1,
            pending_order: false,
            verdict: None,
        }
    }
}

/// Re-sends of one order after requotes, at most.
const MAX_REQUOTE_RETRIES: u32 = 3;

/// The price to re-send a requoted market order at, when that is safe: the terminal's new
/// price is within the client's deviation of the price the order was first sent at (so the
/// client gets no worse than it asked for), and the order allowed a deviation at all.
pub fn safe_retry_price(
    buy: bool,
    result: &t::OrderResult,
    reference_price: f64,
    deviation_points: u64,
    point: f64,
) -> Option<f64> {
    let requoted = matches!(result.retcode, 10004 | 10020 | 10021); // REQUOTE, PRICE_CHANGED, PRICE_OFF
    let price = if buy { result.ask } else { result.bid };
    let allowed = deviation_points as f64 * point;
    (requoted
        && price > 0.0
        && allowed > 0.0
        && (price - reference_price).abs() <= allowed + point * 1e-6)
        .then_some(price)
}

/// Selects an existing order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderRef {
    /// By terminal ticket.
    Ticket(u64),
    /// By client_order_id.
    ClientId(String),
}

/// Changes to a pending order (0: keep).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OrderChanges {
    /// New price.
    pub price: f64,
    /// New stop-limit price.
    pub stop_limit_price: f64,
    /// New stop loss.
    pub stop_loss: f64,
    /// New take profit.
    pub take_profit: f64,
    /// New time in force (0: keep).
    pub time_in_force: i32,
    /// New expiration (ms since the epoch; 0: keep).
    pub expiration_msc: i64,
}

/// MT5 comments hold 31 characters: longer client order ids travel as a hash.
pub fn comment_key(client_order_id: &str) -> String {
    if client_order_id.len() <= 31 {
        return client_order_id.to_owned();
    }
    // FNV-1a: stable across builds and languages, so reconciliation can recompute it.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in client_order_id.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("#{hash:016x}")
}

fn mt5_order_type(side: v1::Side, order_type: v1::OrderType) -> u32 {
    let sell = u32::from(side == v1::Side::Sell);
    match order_type {
        v1::OrderType::Limit => 2 + sell,
        v1::OrderType::Stop => 4 + sell,
        v1::OrderType::StopLimit => 6 + sell,
        _ => sell,
    }
}

fn order_type_of(mt5_type: u32) -> (v1::Side, v1::OrderType) {
    let side = if mt5_type % 2 == 0 {
        v1::Side::Buy
    } else {
        v1::Side::Sell
    };
    let kind = match mt5_type {
        2 | 3 => v1::OrderType::Limit,
        4 | 5 => v1::OrderType::Stop,
        6 | 7 => v1::OrderType::StopLimit,
        _ => v1::OrderType::Market,
    };
    (side, kind)
}

fn mt5_type_time(tif: i32) -> u32 {
    match v1::TimeInForce::try_from(tif) {
        Ok(v1::TimeInForce::Day) => 1,
        Ok(v1::TimeInForce::Specified) => 2,
        _ => 0,
    }
}

fn mt5_filling(requested: i32, spec: &t::SymbolInfo) -> u32 {
    match v1::FillingMode::try_from(requested) {
        Ok(v1::FillingMode::Fok) => 0,
        Ok(v1::FillingMode::Ioc) => 1,
        Ok(v1::FillingMode::Return) => 2,
        // Chosen from what the symbol allows: FOK, then IOC, then RETURN.
        _ if spec.filling_mode & 1 != 0 => 0,
        _ if spec.filling_mode & 2 != 0 => 1,
        _ => 2,
    }
}

fn filling_v1(mt5_filling: u32) -> v1::FillingMode {
    match mt5_filling {
        0 => v1::FillingMode::Fok,
        1 => v1::FillingMode::Ioc,
        _ => v1::FillingMode::Return,
    }
}

/// Order status for an MT5 `ORDER_STATE_*`.
fn status_of_state(state: u32) -> S {
    match state {
        1 => S::Accepted,
        2 => S::Canceled,
        3 => S::PartiallyFilled,
        4 => S::Filled,
        5 => S::Rejected,
        6 => S::Expired,
        _ => S::Submitted,
    }
}

fn not_ready(instance: &Instance, live: &Live) -> Option<EngineError> {
    matches!(
        live.state,
        v1::InstanceState::Ready | v1::InstanceState::Degraded
    )
    .then_some(())
    .map_or_else(
        || {
            Some(
                EngineError::new(
                    Code::FailedPrecondition,
                    "INSTANCE_NOT_READY",
                    format!(
                        "instance '{}' is {}, not READY",
                        instance.spec.instance_id,
                        live.state.as_str_name()
                    ),
                )
                .field("instance_id"),
            )
        },
        |()| None,
    )
}

/// Journals an order's state; false when the journal refused it.
fn journal(shared: &Shared, entry: &OrderEntry) -> std::result::Result<u64, EngineError> {
    let Some(journal) = &shared.journal else {
        return Ok(0);
    };
    journal
        .append(&JournalRecord {
            payload_hash: entry.payload_hash,
            order: Some(entry.order.clone()),
        })
        .map_err(|e| {
            EngineError::new(
                Code::Unavailable,
                "JOURNAL_UNAVAILABLE",
                format!("the order journal cannot be written ({e}); nothing was sent"),
            )
        })
}

fn publish(shared: &Shared, instance: &Instance, event: v1::execution_event::Event) {
    instance
        .events
        .publish(shared, &instance.spec.instance_id, event);
}

/// Journals and publishes an entry's new state.
fn record(shared: &Shared, instance: &Instance, entry: &OrderEntry) {
    // A journal failure after the fact cannot be undone; the event still tells clients.
    let _ = journal(shared, entry);
    publish(
        shared,
        instance,
        v1::execution_event::Event::OrderUpdate(entry.order.clone()),
    );
}

fn order_payload(order: &v1::Order) -> Vec<u8> {
    v1::PlaceOrderResponse {
        order: Some(order.clone()),
    }
    .encode_to_vec()
}

/// Sends a request to the worker, after the journal is durable when the policy says so.
pub(crate) fn send(
    shared: &Shared,
    live: &Live,
    request: t::OrderRequest,
    journal_position: u64,
) -> Result<()> {
    let Some(tx) = live.tx.clone() else {
        return Err(EngineError::new(
            Code::Unavailable,
            "WORKER_UNAVAILABLE",
            "the instance has no connected worker",
        ));
    };
    let bytes = frame::encode(&t::EngineFrame {
        body: Some(t::engine_frame::Body::Order(request)),
    });
    match (&shared.journal, journal_position) {
        (Some(journal), position) if position > 0 && journal.policy() == FsyncPolicy::Always => {
            let journal = Arc::clone(journal);
            shared.runtime.spawn_blocking(move || {
                if journal.sync_to(position).is_ok() {
                    let _ = tx.send(bytes);
                }
            });
            Ok(())
        }
        _ => tx.send(bytes).map_err(|_| {
            EngineError::new(
                Code::Unavailable,
                "WORKER_UNAVAILABLE",
                "the instance's worker is gone",
            )
        }),
    }
}

/// Whether an order passes the risk gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// It must (every order of a client, a session or the copier).
    Check,
    /// It is the engine's own (the kill switch's closes).
    Bypass,
}

/// Places an order (or closes a position when `intent.position_id` is set).
///
/// # Errors
/// Validation, idempotency (`ALREADY_EXISTS`), readiness, risk and journal errors; nothing
/// reaches the terminal then.
pub fn place(
    shared: &Arc<Shared>,
    instance: &Instance,
    intent: OrderIntent,
    now_msc: i64,
    token: u64,
) -> Result<u64> {
    place_gated(shared, instance, intent, now_msc, token, Gate::Check)
}

/// [`place`], saying whether the risk gate applies.
///
/// # Errors
/// As [`place`].
pub fn place_gated(
    shared: &Arc<Shared>,
    instance: &Instance,
    intent: OrderIntent,
    now_msc: i64,
    token: u64,
    gate: Gate,
) -> Result<u64> {
    let mut live = instance.live.lock();
    let hash = intent.payload_hash();
    if let Some(entry) = live.book.by_client_id.get_mut(&intent.client_order_id) {
        if entry.payload_hash != hash {
            return Err(EngineError::new(
                Code::AlreadyExists,
                "CLIENT_ORDER_ID_REUSED",
                format!(
                    "client_order_id: '{}' was used for a different order",
                    intent.client_order_id
                ),
            )
            .field("client_order_id"));
        }
        let status = S::try_from(entry.order.status).unwrap_or(S::Unspecified);
        if entry.answer.is_some() || (is_final(status) && entry.waiters.is_empty()) {
            let completion = entry.completion(token, order_payload(&entry.order));
            shared.complete(completion);
        } else {
            entry.waiters.push(token);
        }
        return Ok(token);
    }
    if let Some(error) = not_ready(instance, &live) {
        return Err(error);
    }
    let spec = live.symbols.get(&intent.symbol);
    let last = live.last_ticks.get(&intent.symbol);
    validate::check_order(&intent, spec, last, now_msc)?;
    if intent.position_id != 0
        && !live
            .positions
            .iter()
            .any(|p| p.ticket == intent.position_id)
    {
        return Err(EngineError::new(
            Code::NotFound,
            "POSITION_NOT_FOUND",
            format!("position_id: no open position {}", intent.position_id),
        )
        .field("position_id"));
    }
    if gate == Gate::Check {
        risk::live::check_new(shared, instance, &mut live, &intent, now_msc, true)?;
    }
    let Some(spec) = live.symbols.get(&intent.symbol) else {
        return Err(EngineError::new(
            Code::Internal,
            "INTERNAL",
            "symbol vanished",
        ));
    };
    let Some(last) = live.last_ticks.get(&intent.symbol) else {
        return Err(EngineError::new(
            Code::Internal,
            "INTERNAL",
            "tick vanished",
        ));
    };
    let side = v1::Side::try_from(intent.side).unwrap_or(v1::Side::Buy);
    let order_type = v1::OrderType::try_from(intent.order_type).unwrap_or(v1::OrderType::Market);
    let market = order_type == v1::OrderType::Market;
    let reference_price = if !market || intent.price > 0.0 {
        intent.price
    } else if side == v1::Side::Buy {
        last.ask
    } else {
        last.bid
    };
    let filling = mt5_filling(intent.filling, spec);
    let point = spec.point;
    let request = t::OrderRequest {
        request_id: token,
        client_order_id: intent.client_order_id.clone(),
        action: if market { 1 } else { 5 }, // TRADE_ACTION_DEAL / TRADE_ACTION_PENDING
        symbol: intent.symbol.clone(),
        volume: intent.volume,
        r#type: mt5_order_type(side, order_type),
        price: reference_price,
        stoplimit: intent.stop_limit_price,
        sl: intent.stop_loss,
        tp: intent.take_profit,
        deviation: u64::from(intent.deviation_points),
        type_filling: filling,
        type_time: mt5_type_time(intent.time_in_force),
        expiration: intent.expiration_msc / 1000,
        position: intent.position_id,
        magic: intent.magic,
        comment: comment_key(&intent.client_order_id),
        ..Default::default()
    };
    let now = convert::now();
    let entry = OrderEntry {
        order: v1::Order {
            instance_id: instance.spec.instance_id.clone(),
            client_order_id: intent.client_order_id.clone(),
            symbol: intent.symbol.clone(),
            side: intent.side,
            r#type: intent.order_type,
            volume: intent.volume,
            price: reference_price,
            stop_limit_price: intent.stop_limit_price,
            stop_loss: intent.stop_loss,
            take_profit: intent.take_profit,
            deviation_points: intent.deviation_points,
            time_in_force: intent.time_in_force,
            expiration: (intent.expiration_msc != 0)
                .then(|| convert::ts_msc(intent.expiration_msc)),
            filling: filling_v1(filling) as i32,
            status: S::Submitted as i32,
            position_id: intent.position_id,
            created_time: Some(now),
            updated_time: Some(now),
            comment: intent.comment.clone(),
            ..Default::default()
        },
        payload_hash: hash,
        waiters: vec![token],
        answer: None,
    };
    let retry = (market && intent.deviation_points > 0).then(|| Box::new(request.clone()));
    // The idempotency record is durable (at least against a crash of this process)
    // before the order leaves.
    let position = journal(shared, &entry)?;
    send(shared, &live, request, position)?;
    publish(
        shared,
        instance,
        v1::execution_event::Event::OrderUpdate(entry.order.clone()),
    );
    live.pending.insert(
        token,
        PendingRequest {
            kind: RequestKind::Place,
            client_order_id: intent.client_order_id.clone(),
            reference_price,
            point,
            position_id: intent.position_id,
            retry,
            attempts: 1,
            pending_order: !market,
            verdict: None,
        },
    );
    live.book
        .insert(entry, comment_key(&intent.client_order_id));
    Ok(token)
}

/// A dry run: the terminal's order_check; the token completes with a `CheckOrderResponse`.
///
/// # Errors
/// Validation and readiness errors.
pub fn check(
    shared: &Arc<Shared>,
    instance: &Instance,
    intent: &OrderIntent,
    now_msc: i64,
) -> Result<u64> {
    let mut live = instance.live.lock();
    if let Some(error) = not_ready(instance, &live) {
        return Err(error);
    }
    let spec = live.symbols.get(&intent.symbol);
    let last = live.last_ticks.get(&intent.symbol);
    validate::check_order(intent, spec, last, now_msc)?;
    let verdict = match risk::live::check_new(shared, instance, &mut live, intent, now_msc, false) {
        Ok(()) => None,
        Err(e) if e.code == Code::InvalidArgument => return Err(e),
        Err(e) => Some(Box::new(e)),
    };
    let (Some(spec), Some(last)) = (
        live.symbols.get(&intent.symbol),
        live.last_ticks.get(&intent.symbol),
    ) else {
        return Err(EngineError::new(
            Code::Internal,
            "INTERNAL",
            "symbol vanished",
        ));
    };
    let side = v1::Side::try_from(intent.side).unwrap_or(v1::Side::Buy);
    let order_type = v1::OrderType::try_from(intent.order_type).unwrap_or(v1::OrderType::Market);
    let market = order_type == v1::OrderType::Market;
    let price = if !market || intent.price > 0.0 {
        intent.price
    } else if side == v1::Side::Buy {
        last.ask
    } else {
        last.bid
    };
    let token = shared.token();
    let request = t::OrderRequest {
        request_id: token,
        action: if market { 1 } else { 5 },
        symbol: intent.symbol.clone(),
        volume: intent.volume,
        r#type: mt5_order_type(side, order_type),
        price,
        stoplimit: intent.stop_limit_price,
        sl: intent.stop_loss,
        tp: intent.take_profit,
        deviation: u64::from(intent.deviation_points),
        type_filling: mt5_filling(intent.filling, spec),
        type_time: mt5_type_time(intent.time_in_force),
        expiration: intent.expiration_msc / 1000,
        position: intent.position_id,
        check_only: true,
        ..Default::default()
    };
    let point = spec.point;
    send(shared, &live, request, 0)?;
    live.pending.insert(
        token,
        PendingRequest {
            kind: RequestKind::Check,
            client_order_id: String::new(),
            reference_price: price,
            point,
            position_id: 0,
            retry: None,
            attempts: 1,
            pending_order: false,
            verdict,
        },
    );
    Ok(token)
}

fn find<'a>(live: &'a mut Live, which: &OrderRef) -> Result<&'a mut OrderEntry> {
    let found = match which {
        OrderRef::Ticket(ticket) => live.book.by_ticket_mut(*ticket),
        OrderRef::ClientId(cid) => live.book.by_client_id.get_mut(cid),
    };
    found.ok_or_else(|| {
        let (field, what) = match which {
            OrderRef::Ticket(t) => ("order_id", t.to_string()),
            OrderRef::ClientId(c) => ("client_order_id", c.clone()),
        };
        EngineError::new(
            Code::NotFound,
            "ORDER_NOT_FOUND",
            format!("{field}: no order {what}"),
        )
        .field(field)
    })
}

/// The encoded order (`mt5exec.v1.Order`).
///
/// # Errors
/// `NOT_FOUND`.
pub fn get(instance: &Instance, which: &OrderRef) -> Result<Vec<u8>> {
    let mut live = instance.live.lock();
    Ok(find(&mut live, which)?.order.encode_to_vec())
}

/// Encoded orders: open ones (pending at the terminal) or finished ones, newest first.
pub fn list(instance: &Instance, history: bool, symbol: &str) -> Vec<Vec<u8>> {
    let live = instance.live.lock();
    let mut orders: Vec<&v1::Order> = live
        .book
        .by_client_id
        .values()
        .map(|e| &e.order)
        .filter(|o| symbol.is_empty() || o.symbol == symbol)
        .filter(|o| is_final(S::try_from(o.status).unwrap_or(S::Unspecified)) == history)
        .collect();
    orders.sort_by_key(|o| std::cmp::Reverse(o.created_time.map(|t| (t.seconds, t.nanos))));
    orders.into_iter().map(Message::encode_to_vec).collect()
}

fn pending_order<'a>(live: &'a mut Live, which: &OrderRef) -> Result<&'a mut OrderEntry> {
    let entry = find(live, which)?;
    let status = S::try_from(entry.order.status).unwrap_or(S::Unspecified);
    if !matches!(status, S::Accepted | S::PartiallyFilled) || entry.order.order_id == 0 {
        return Err(EngineError::new(
            Code::FailedPrecondition,
            "ORDER_NOT_PENDING",
            format!(
                "order '{}' is {}, not a pending order at the terminal",
                entry.order.client_order_id,
                status.as_str_name()
            ),
        ));
    }
    Ok(entry)
}

/// Cancels a pending order; the token completes with a `CancelOrderResponse`.
///
/// # Errors
/// `NOT_FOUND`, `FAILED_PRECONDITION` when it is not pending, readiness errors.
pub fn cancel(
    shared: &Arc<Shared>,
    instance: &Instance,
    which: &OrderRef,
    token: u64,
) -> Result<u64> {
    let mut live = instance.live.lock();
    if let Some(error) = not_ready(instance, &live) {
        return Err(error);
    }
    pending_order(&mut live, which)?;
    risk::live::check_change(shared, instance, &mut live, true)?;
    let entry = pending_order(&mut live, which)?;
    let cid = entry.order.client_order_id.clone();
    let request = t::OrderRequest {
        request_id: token,
        action: 8, // TRADE_ACTION_REMOVE
        order: entry.order.order_id,
        symbol: entry.order.symbol.clone(),
        comment: comment_key(&cid),
        ..Default::default()
    };
    let ticket = request.order;
    send(shared, &live, request, 0)?;
    live.pending.insert(
        token,
        PendingRequest::plain(RequestKind::Cancel, cid, ticket),
    );
    Ok(token)
}

/// Changes a pending order; the token completes with a `ModifyOrderResponse`.
///
/// # Errors
/// `NOT_FOUND`, `FAILED_PRECONDITION`, `INVALID_ARGUMENT` for bad prices.
pub fn modify(
    shared: &Arc<Shared>,
    instance: &Instance,
    which: &OrderRef,
    changes: &OrderChanges,
) -> Result<u64> {
    validate::check_price("price", changes.price)?;
    validate::check_price("stop_limit_price", changes.stop_limit_price)?;
    validate::check_price("stop_loss", changes.stop_loss)?;
    validate::check_price("take_profit", changes.take_profit)?;
    let mut live = instance.live.lock();
    if let Some(error) = not_ready(instance, &live) {
        return Err(error);
    }
    let entry = pending_order(&mut live, which)?;
    let order = &entry.order;
    let pick = |new: f64, old: f64| if new > 0.0 { new } else { old };
    let cid = order.client_order_id.clone();
    let tif = if changes.time_in_force != 0 {
        changes.time_in_force
    } else {
        order.time_in_force
    };
    let expiration = if changes.expiration_msc != 0 {
        changes.expiration_msc
    } else {
        order.expiration.map_or(0, |t| t.seconds * 1000)
    };
    let token = shared.token();
    let request = t::OrderRequest {
        request_id: token,
        action: 7, // TRADE_ACTION_MODIFY
        order: order.order_id,
        symbol: order.symbol.clone(),
        price: pick(changes.price, order.price),
        stoplimit: pick(changes.stop_limit_price, order.stop_limit_price),
        sl: pick(changes.stop_loss, order.stop_loss),
        tp: pick(changes.take_profit, order.take_profit),
        type_time: mt5_type_time(tif),
        expiration: expiration / 1000,
        comment: comment_key(&cid),
        ..Default::default()
    };
    risk::live::check_prices(shared, instance, &live, &request)?;
    risk::live::check_change(shared, instance, &mut live, false)?;
    send(shared, &live, request, 0)?;
    live.pending
        .insert(token, PendingRequest::plain(RequestKind::Modify, cid, 0));
    Ok(token)
}

/// Changes a position's SL/TP; the token completes with a `ModifyPositionResponse`.
///
/// # Errors
/// `NOT_FOUND` for an unknown position, `INVALID_ARGUMENT` for bad prices.
pub fn modify_position(
    shared: &Arc<Shared>,
    instance: &Instance,
    position_id: u64,
    stop_loss: f64,
    take_profit: f64,
) -> Result<u64> {
    validate::check_price("stop_loss", stop_loss)?;
    validate::check_price("take_profit", take_profit)?;
    let mut live = instance.live.lock();
    if let Some(error) = not_ready(instance, &live) {
        return Err(error);
    }
    if !live.positions.iter().any(|p| p.ticket == position_id) {
        return Err(EngineError::new(
            Code::NotFound,
            "POSITION_NOT_FOUND",
            format!("position_id: no open position {position_id}"),
        )
        .field("position_id"));
    }
    risk::live::check_change(shared, instance, &mut live, false)?;
    let Some(position) = live.positions.iter().find(|p| p.ticket == position_id) else {
        return Err(EngineError::new(
            Code::Internal,
            "INTERNAL",
            "position vanished",
        ));
    };
    let buy = position.r#type == 0;
    let close = position.price_current;
    if stop_loss > 0.0 && close > 0.0 && (stop_loss >= close) == buy {
        return Err(EngineError::invalid(
            "stop_loss",
            "STOP_LOSS_WRONG_SIDE",
            format!(
                "stop_loss: {stop_loss} must be {} the current price {close}",
                if buy { "below" } else { "above" }
            ),
        ));
    }
    if take_profit > 0.0 && close > 0.0 && (take_profit <= close) == buy {
        return Err(EngineError::invalid(
            "take_profit",
            "TAKE_PROFIT_WRONG_SIDE",
            format!(
                "take_profit: {take_profit} must be {} the current price {close}",
                if buy { "above" } else { "below" }
            ),
        ));
    }
    let token = shared.token();
    let request = t::OrderRequest {
        request_id: token,
        action: 6, // TRADE_ACTION_SLTP
        symbol: position.symbol.clone(),
        position: position_id,
        sl: stop_loss,
        tp: take_profit,
        ..Default::default()
    };
    send(shared, &live, request, 0)?;
    live.pending.insert(
        token,
        PendingRequest::plain(RequestKind::Sltp, String::new(), position_id),
    );
    Ok(token)
}

fn retcode_error(result: &t::OrderResult) -> (retcode::Retcode, Option<EngineError>) {
    let rc = retcode::lookup(result.retcode);
    if rc.code == Code::Ok {
        return (rc, None);
    }
    let message = format!(
        "the terminal answered TRADE_RETCODE_{} ({}){}",
        rc.name,
        result.retcode,
        if result.comment.is_empty() {
            String::new()
        } else {
            format!(": {}", result.comment)
        }
    );
    (rc, Some(EngineError::new(rc.code, rc.name, message)))
}

fn answer(shared: &Shared, entry: &mut OrderEntry, error: Option<&EngineError>) {
    if let Some(e) = error {
        entry.answer = Some((e.code as i32, e.reason.to_owned(), e.message.clone()));
    } else {
        entry.answer = Some((0, String::new(), String::new()));
    }
    let payload = order_payload(&entry.order);
    for token in entry.waiters.drain(..) {
        shared.complete(entry_completion(token, error, payload.clone()));
    }
}

fn entry_completion(token: u64, error: Option<&EngineError>, payload: Vec<u8>) -> Completion {
    match error {
        Some(e) => Completion::err(token, e, payload),
        None => Completion::ok(token, payload),
    }
}

/// The terminal answered a request.
pub fn on_result(shared: &Shared, instance: &Instance, result: &t::OrderResult) {
    let mut live = instance.live.lock();
    let Some(pending) = live.pending.remove(&result.request_id) else {
        return;
    };
    let (rc, error) = retcode_error(result);
    let token = result.request_id;
    match pending.kind {
        RequestKind::Check => {
            // order_check answers 0 when the order would pass.
            let error = pending
                .verdict
                .map(|v| *v)
                .or(error.filter(|_| result.retcode != 0));
            let accepted = error.is_none();
            let response = v1::CheckOrderResponse {
                accepted,
                reason: error
                    .as_ref()
                    .map(|e| e.reason.to_owned())
                    .unwrap_or_default(),
                message: error
                    .as_ref()
                    .map(|e| e.message.clone())
                    .unwrap_or_default(),
                margin_required: result.margin,
                free_margin_after: result.margin_free,
            };
            shared.complete(Completion::ok(token, response.encode_to_vec()));
        }
        RequestKind::Sltp => {
            let position = live
                .positions
                .iter()
                .find(|p| p.ticket == pending.position_id)
                .map(|p| convert::position(&instance.spec.instance_id, p));
            let payload = v1::ModifyPositionResponse { position }.encode_to_vec();
            shared.complete(entry_completion(token, error.as_ref(), payload));
        }
        RequestKind::Cancel | RequestKind::Modify => {
            let Some(entry) = live.book.by_client_id.get_mut(&pending.client_order_id) else {
                // An order this engine did not place (the kill switch cancels those too).
                shared.complete(entry_completion(token, error.as_ref(), Vec::new()));
                return;
            };
            if error.is_none() {
                let before = entry.order.clone();
                if pending.kind == RequestKind::Cancel {
                    entry.transition(S::Canceled);
                }
                entry.order.updated_time = Some(convert::now());
                if entry.order != before {
                    record(shared, instance, entry);
                }
            }
            let payload = order_payload(&entry.order);
            shared.complete(entry_completion(token, error.as_ref(), payload));
        }
        RequestKind::Place => {
            if let Some(request) = &pending.retry {
                let buy = request.r#type % 2 == 0;
                let price = safe_retry_price(
                    buy,
                    result,
                    pending.reference_price,
                    request.deviation,
                    pending.point,
                );
                if let (Some(price), Some(tx)) = (price, &live.tx) {
                    if pending.attempts <= MAX_REQUOTE_RETRIES {
                        // Same client_order_id and comment: still one order for reconciliation.
                        let token = shared.token();
                        let mut again = (**request).clone();
                        again.request_id = token;
                        again.price = price;
                        let frame = frame::encode(&t::EngineFrame {
                            body: Some(t::engine_frame::Body::Order(again)),
                        });
                        if tx.send(frame).is_ok() {
                            let mut next = pending.clone();
                            next.attempts += 1;
                            live.pending.insert(token, next);
                            return;
                        }
                    }
                }
            }
            let Some(entry) = live.book.by_client_id.get_mut(&pending.client_order_id) else {
                return;
            };
            let order = &mut entry.order;
            order.retcode = result.retcode;
            order.status_message.clone_from(&result.comment);
            if result.order != 0 {
                order.order_id = result.order;
            }
            if result.position != 0 {
                order.position_id = result.position;
            }
            order.updated_time = Some(convert::now());
            if matches!(rc.status, S::Filled | S::PartiallyFilled) {
                order.filled_volume = result.volume;
                order.average_fill_price = result.price;
            }
            entry.transition(rc.status);
            let ticket = entry.order.order_id;
            let resting = entry.order.status == S::Accepted as i32 && pending.pending_order;
            let symbol = entry.order.symbol.clone();
            record(shared, instance, entry);
            answer(shared, entry, error.as_ref());
            if ticket != 0 {
                live.book
                    .by_ticket
                    .insert(ticket, pending.client_order_id.clone());
            }
            if resting && live.risk.kill_switch {
                // Sent before the kill switch and accepted after its sweep: cancel it too.
                let cid = pending.client_order_id;
                killswitch::cancel(shared, &mut live, ticket, cid, symbol);
            }
        }
    }
}

/// A deal (fill) the terminal recorded.
pub fn on_deal(shared: &Shared, instance: &Instance, deal: &t::DealReport) {
    let mut live = instance.live.lock();
    let id = instance.spec.instance_id.as_str();
    let from_request = live.pending.get(&deal.request_id).cloned();
    let cid = match &from_request {
        Some(p) => Some(p.client_order_id.clone()),
        None => live
            .book
            .by_ticket
            .get(&deal.order)
            .or_else(|| live.book.by_comment.get(&deal.comment))
            .cloned(),
    };
    let (reference, point) = match &from_request {
        Some(p) => (p.reference_price, p.point),
        None => {
            let point = live.symbols.get(&deal.symbol).map_or(0.0, |s| s.point);
            let reference = cid
                .as_ref()
                .and_then(|c| live.book.by_client_id.get(c))
                .map_or(0.0, |e| e.order.price);
            (reference, point)
        }
    };
    let fill = convert::fill(id, deal, cid.as_deref().unwrap_or(""), reference, point);
    publish(shared, instance, v1::execution_event::Event::Fill(fill));
    // Fills the terminal makes on its own (a triggered pending order) build up the order;
    // fills answering a request are summed up by the result that follows.
    if from_request.is_none() && deal.entry == 0 {
        if let Some(entry) = cid.and_then(|c| live.book.by_client_id.get_mut(&c)) {
            let o = &mut entry.order;
            let total = o.filled_volume + deal.volume;
            if total > 0.0 {
                o.average_fill_price =
                    (o.average_fill_price * o.filled_volume + deal.price * deal.volume) / total;
            }
            o.filled_volume = total;
            o.position_id = deal.position_id;
        }
    }
}

/// An order changed at the terminal (placed, triggered, filled, cancelled, expired).
pub fn on_order_update(shared: &Shared, instance: &Instance, update: &t::OrderUpdate) {
    let Some(info) = &update.order else {
        return;
    };
    let mut live = instance.live.lock();
    let cid = match live.pending.get(&update.request_id) {
        Some(p) if !p.client_order_id.is_empty() => Some(p.client_order_id.clone()),
        _ => live
            .book
            .by_ticket
            .get(&info.ticket)
            .or_else(|| live.book.by_comment.get(&info.comment))
            .cloned(),
    };
    let Some(cid) = cid else {
        return; // an order placed outside mt5exec (e.g. by hand in the terminal)
    };
    live.book.by_ticket.insert(info.ticket, cid.clone());
    let answered_later = live.pending.contains_key(&update.request_id);
    let Some(entry) = live.book.by_client_id.get_mut(&cid) else {
        return;
    };
    let before = entry.order.clone();
    let (side, kind) = order_type_of(info.r#type);
    let order = &mut entry.order;
    order.order_id = info.ticket;
    order.side = side as i32;
    order.r#type = kind as i32;
    if info.price_open > 0.0 {
        order.price = info.price_open;
    }
    order.stop_limit_price = info.price_stoplimit;
    order.stop_loss = info.sl;
    order.take_profit = info.tp;
    if info.position_id != 0 {
        order.position_id = info.position_id;
    }
    if info.time_done_msc > 0 {
        order.updated_time = Some(convert::now());
    }
    let status = status_of_state(info.state);
    if matches!(status, S::Filled | S::PartiallyFilled) && !answered_later {
        order.filled_volume = (info.volume_initial - info.volume_current).max(order.filled_volume);
    }
    entry.transition(status);
    // An update answering a request in flight is reported once, with the request's result.
    if entry.order != before && !answered_later {
        record(shared, instance, entry);
    }
}

/// The worker is gone: requests in flight have an unknown outcome.
pub fn on_worker_lost(shared: &Shared, instance: &Instance, live: &mut Live) {
    let lost = EngineError::new(
        Code::Unavailable,
        "WORKER_LOST",
        "the worker stopped before answering; the order's outcome is UNKNOWN until reconciled",
    );
    for (token, pending) in live.pending.drain() {
        let entry = (pending.kind == RequestKind::Place)
            .then(|| live.book.by_client_id.get_mut(&pending.client_order_id))
            .flatten();
        match entry {
            Some(entry) => {
                entry.transition(S::Unknown);
                record(shared, instance, entry);
                let payload = order_payload(&entry.order);
                for waiter in entry.waiters.drain(..) {
                    shared.complete(Completion::err(waiter, &lost, payload.clone()));
                }
            }
            None => shared.complete(Completion::err(token, &lost, Vec::new())),
        }
    }
}

/// Asks the terminal about every order whose outcome is unknown (after a worker or server
/// restart). Called when the worker is READY.
pub fn reconcile_unknown(shared: &Shared, live: &mut Live) {
    let comments: Vec<String> = live
        .book
        .by_client_id
        .values()
        .filter(|e| e.order.status == S::Unknown as i32)
        .map(|e| comment_key(&e.order.client_order_id))
        .collect();
    let Some(tx) = &live.tx else {
        return;
    };
    if comments.is_empty() {
        return;
    }
    let request = t::EngineFrame {
        body: Some(t::engine_frame::Body::Reconcile(t::ReconcileRequest {
            request_id: shared.token(),
            comments,
            from_time_msc: 0,
        })),
    };
    let _ = tx.send(frame::encode(&request));
}

/// What the terminal knows of orders whose outcome was unknown.
pub fn on_reconcile(shared: &Shared, instance: &Instance, result: &t::ReconcileResult) {
    let mut live = instance.live.lock();
    let unknown: Vec<String> = live
        .book
        .by_client_id
        .values()
        .filter(|e| e.order.status == S::Unknown as i32)
        .map(|e| e.order.client_order_id.clone())
        .collect();
    for cid in unknown {
        let key = comment_key(&cid);
        let found = result
            .orders
            .iter()
            .filter(|o| o.comment == key)
            .max_by_key(|o| (o.time_done_msc, o.time_setup_msc));
        let filled: f64 = result
            .deals
            .iter()
            .filter(|d| d.comment == key && d.entry == 0)
            .map(|d| d.volume)
            .sum();
        let Some(entry) = live.book.by_client_id.get_mut(&cid) else {
            continue;
        };
        let status = match found {
            Some(info) => {
                entry.order.order_id = info.ticket;
                if info.position_id != 0 {
                    entry.order.position_id = info.position_id;
                }
                status_of_state(info.state)
            }
            None if filled > 0.0 => S::Filled,
            // The terminal never saw it: the request was lost before it arrived.
            None => S::Rejected,
        };
        if filled > 0.0 {
            entry.order.filled_volume = filled;
        }
        entry.order.status_message = if found.is_some() || filled > 0.0 {
            "reconciled with the terminal".to_owned()
        } else {
            "not found at the terminal: it never arrived there".to_owned()
        };
        entry.order.updated_time = Some(convert::now());
        if entry.transition(status) {
            record(shared, instance, entry);
            let ok = matches!(status, S::Filled | S::PartiallyFilled | S::Accepted);
            let error = (!ok).then(|| {
                EngineError::new(
                    Code::FailedPrecondition,
                    "ORDER_NOT_EXECUTED",
                    entry.order.status_message.clone(),
                )
            });
            answer(shared, entry, error.as_ref());
        }
        let ticket = entry.order.order_id;
        if ticket != 0 {
            live.book.by_ticket.insert(ticket, cid.clone());
        }
    }
}

/// Rebuilds an instance's book from the journal: orders without a known outcome become
/// UNKNOWN until reconciled.
pub fn restore(shared: &Shared, instance: &Instance, records: Vec<JournalRecord>) {
    let mut live = instance.live.lock();
    for record_ in records {
        let Some(order) = record_.order else { continue };
        let cid = order.client_order_id.clone();
        let mut entry = OrderEntry {
            order,
            payload_hash: record_.payload_hash,
            waiters: Vec::new(),
            answer: None,
        };
        let status = S::try_from(entry.order.status).unwrap_or(S::Unspecified);
        if matches!(status, S::New | S::Submitted) {
            entry.transition(S::Unknown);
            let _ = journal(shared, &entry);
        } else if is_final(status) {
            let ok = matches!(status, S::Filled);
            entry.answer = Some(if ok {
                (0, String::new(), String::new())
            } else {
                let rc = retcode::lookup(entry.order.retcode);
                (
                    rc.code as i32,
                    rc.name.to_owned(),
                    entry.order.status_message.clone(),
                )
            });
        }
        live.book.insert(entry, comment_key(&cid));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requotes_are_retried_only_within_the_deviation() {
        let requote = |bid: f64, ask: f64| t::OrderResult {
            retcode: 10004,
            bid,
            ask,
            ..Default::default()
        };
        let point = 0.00001;
        // Bought at 1.08510 with 5 points of deviation: 1.08514 is fine, 1.08516 is not.
        assert_eq!(
            safe_retry_price(true, &requote(1.08504, 1.08514), 1.08510, 5, point),
            Some(1.08514)
        );
        assert_eq!(
            safe_retry_price(true, &requote(1.08506, 1.08516), 1.08510, 5, point),
            None
        );
        assert_eq!(
            safe_retry_price(false, &requote(1.08506, 1.08516), 1.08510, 5, point),
            Some(1.08506)
        );
        assert_eq!(
            safe_retry_price(true, &requote(1.0851, 1.0851), 1.0851, 0, point),
            None,
            "no deviation, no retry"
        );
        let rejected = t::OrderResult {
            retcode: 10006,
            ask: 1.0851,
            ..Default::default()
        };
        assert_eq!(
            safe_retry_price(true, &rejected, 1.0851, 5, point),
            None,
            "only requotes"
        );
    }

    #[test]
    fn comments_fit_mt5() {
        assert_eq!(comment_key("abc"), "abc");
        let long = "x".repeat(64);
        let c = comment_key(&long);
        assert_eq!(c.len(), 17);
        assert_eq!(c, comment_key(&long), "stable");
        assert_ne!(c, comment_key(&"y".repeat(64)));
    }

    #[test]
    fn order_types_round_trip_through_mt5_numbers() {
        for side in [v1::Side::Buy, v1::Side::Sell] {
            for kind in [
                v1::OrderType::Market,
                v1::OrderType::Limit,
                v1::OrderType::Stop,
                v1::OrderType::StopLimit,
            ] {
                assert_eq!(order_type_of(mt5_order_type(side, kind)), (side, kind));
            }
        }
    }

    #[test]
    fn filling_follows_the_symbol_when_not_given() {
        let fok_ioc = t::SymbolInfo {
            filling_mode: 3,
            ..Default::default()
        };
        let ioc = t::SymbolInfo {
            filling_mode: 2,
            ..Default::default()
        };
        assert_eq!(mt5_filling(0, &fok_ioc), 0);
        assert_eq!(mt5_filling(0, &ioc), 1);
        assert_eq!(mt5_filling(0, &t::SymbolInfo::default()), 2);
        assert_eq!(mt5_filling(v1::FillingMode::Return as i32, &fok_ioc), 2);
    }
}
