//! Order routing: API requests become terminal requests, terminal answers become order
//! states, execution events and answers to the callers.
//!
//! Every state change of an order is journaled (before the request leaves for the terminal
//! for a new order) and published as an execution event with the instance's next sequence.

use crate::reason;
use prost::Message;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use crate::convert;
use crate::error::{Code, EngineError, Result};
use crate::frame;
use crate::journal::{FsyncPolicy, Journal, JournalRecord};
use crate::notify::Completion;
use crate::orders::{is_final, OrderEntry};
use crate::pb::terminal as t;
use crate::pb::v1;
use crate::pb::v1::OrderStatus as S;
use crate::retcode;
use crate::risk;
use crate::shared::Shared;
use crate::supervisor::{Instance, Live, Outbox};
use crate::validate::{self, OrderIntent};

mod changes;
pub use changes::{cancel, get, modify, modify_position};

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

impl RequestKind {
    /// Every kind, in the order of [`RequestKind::index`].
    pub const ALL: [Self; 5] = [
        Self::Place,
        Self::Cancel,
        Self::Modify,
        Self::Sltp,
        Self::Check,
    ];

    /// Its place in [`RequestKind::ALL`] (and in an instance's latency histograms): its
    /// discriminant, as the variants are declared in that order.
    #[must_use]
    pub const fn index(self) -> usize {
        self as usize
    }

    /// Its name in metrics.
    #[must_use]
    pub const fn label(self) -> &'static str {
        match self {
            Self::Place => "place",
            Self::Cancel => "cancel",
            Self::Modify => "modify",
            Self::Sltp => "sltp",
            Self::Check => "check",
        }
    }
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
    /// When its frame went to the worker (the latest send after a requote).
    pub sent: Instant,
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
            sent: Instant::now(),
        }
    }
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

mod answers;
mod listing;
mod mt5;
mod recovery;

use answers::answer;
pub use answers::{on_deal, on_order_update, on_result};
pub use listing::{list_page, OrderQuery};
pub use mt5::{comment_key, safe_retry_price};
use mt5::{filling_v1, mt5_filling, mt5_order_type, mt5_type_time, order_type_of, status_of_state};
pub use recovery::{on_reconcile, on_worker_lost, reconcile_unknown, restore};

fn not_ready(instance: &Instance, live: &Live) -> Option<EngineError> {
    if let Some(refusal) = crate::broker::refusal(&instance.spec.instance_id, live) {
        return Some(refusal);
    }
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
                    reason::INSTANCE_NOT_READY,
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
            ticket_floor: entry.ticket_floor,
            instance_deleted: false,
        })
        .map_err(|e| {
            EngineError::new(
                Code::Unavailable,
                reason::JOURNAL_UNAVAILABLE,
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

/// Sends a request to the worker.
///
/// # Errors
/// `UNAVAILABLE` when the instance has no connected worker.
pub(crate) fn send(live: &Live, request: t::OrderRequest) -> Result<()> {
    let (tx, bytes) = outgoing(live, request)?;
    tx.send(bytes).map_err(|_| gone())
}

fn gone() -> EngineError {
    EngineError::new(
        Code::Unavailable,
        reason::WORKER_UNAVAILABLE,
        "the instance's worker is gone",
    )
}

/// The worker's channel and the encoded frame of `request`.
fn outgoing(live: &Live, request: t::OrderRequest) -> Result<(Arc<Outbox>, Vec<u8>)> {
    let Some(tx) = live.tx.clone() else {
        return Err(EngineError::new(
            Code::Unavailable,
            reason::WORKER_UNAVAILABLE,
            "the instance has no connected worker",
        ));
    };
    let bytes = frame::encode(&t::EngineFrame {
        body: Some(t::engine_frame::Body::Order(request)),
    });
    Ok((tx, bytes))
}

/// Sends a new order once its journal record is durable as the fsync policy says: at once,
/// or (`always`) after an fsync on a blocking thread, held in the worker's outbox meanwhile
/// with every frame sent after it (so no later request overtakes it). An order whose fsync
/// fails is never sent: it is answered REJECTED (retcode ERROR) instead of waiting for an
/// answer that will not come.
fn send_journaled(
    shared: &Arc<Shared>,
    instance: &Instance,
    live: &Live,
    request: t::OrderRequest,
    position: u64,
) -> Result<()> {
    let journal = match &shared.journal {
        Some(journal) if position > 0 && journal.policy() == FsyncPolicy::Always => {
            Arc::clone(journal)
        }
        _ => return send(live, request),
    };
    let token = request.request_id;
    let (tx, bytes) = outgoing(live, request)?;
    let first = tx
        .send_durable(bytes, position, token)
        .map_err(|_| gone())?;
    if first {
        let (shared, instance_id) = (Arc::clone(shared), instance.spec.instance_id.clone());
        let runtime = shared.runtime.clone();
        runtime.spawn_blocking(move || sync_held(&shared, &instance_id, &journal, &tx));
    }
    Ok(())
}

/// Syncs the journal and releases the outbox's held frames until none is left; on a failed
/// sync the held orders are answered REJECTED.
fn sync_held(shared: &Arc<Shared>, instance_id: &str, journal: &Journal, outbox: &Outbox) {
    while let Some(target) = outbox.held_target() {
        match journal.sync_to(target) {
            Ok(()) => {
                if !outbox.release(target) {
                    return;
                }
            }
            Err(e) => {
                let refused = outbox.fail_held();
                let Ok(instance) = shared.instance(instance_id) else {
                    return;
                };
                for token in refused {
                    let result = t::OrderResult {
                        request_id: token,
                        retcode: TRADE_RETCODE_ERROR,
                        comment: format!("the order journal could not be synced ({e}); not sent"),
                        ..Default::default()
                    };
                    answers::on_result(shared, &instance, &result);
                }
                return;
            }
        }
    }
}

/// MT5's "request processing error": how an order the engine could not send is answered.
const TRADE_RETCODE_ERROR: u32 = 10011;

/// `TRADE_ACTION_DEAL` (market) and `TRADE_ACTION_PENDING`.
const TRADE_ACTION_DEAL: u32 = 1;
const TRADE_ACTION_PENDING: u32 = 5;

/// The symbol's spec and last tick (validated to exist before the caller gets here).
fn market_of<'a>(live: &'a Live, symbol: &str) -> Result<(&'a t::SymbolInfo, &'a t::Tick)> {
    match (live.symbols.get(symbol), live.last_ticks.get(symbol)) {
        (Some(spec), Some(last)) => Ok((spec, last)),
        _ => Err(EngineError::new(
            Code::Internal,
            reason::INTERNAL,
            "symbol vanished",
        )),
    }
}

/// The terminal request of a new order (or its dry run): a market order without a price goes
/// at the current ask (buy) or bid (sell); the filling is chosen from the symbol when not
/// given.
fn order_request(
    intent: &OrderIntent,
    spec: &t::SymbolInfo,
    last: &t::Tick,
    token: u64,
) -> t::OrderRequest {
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
    t::OrderRequest {
        request_id: token,
        action: if market {
            TRADE_ACTION_DEAL
        } else {
            TRADE_ACTION_PENDING
        },
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
        ..Default::default()
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

/// Answers `token` with an order already known by its client_order_id: now when it has its
/// answer, else when that comes.
pub fn answer_known(shared: &Shared, entry: &mut OrderEntry, token: u64) {
    let status = S::try_from(entry.order.status).unwrap_or(S::Unspecified);
    if entry.answer.is_some() || (is_final(status) && entry.waiters.is_empty()) {
        let completion = entry.completion(token, order_payload(&entry.order));
        shared.complete(completion);
    } else {
        entry.waiters.push(token);
    }
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
                reason::CLIENT_ORDER_ID_REUSED,
                format!(
                    "client_order_id: '{}' was used for a different order",
                    intent.client_order_id
                ),
            )
            .field("client_order_id"));
        }
        answer_known(shared, entry, token);
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
            reason::POSITION_NOT_FOUND,
            format!("position_id: no open position {}", intent.position_id),
        )
        .field("position_id"));
    }
    if gate == Gate::Check {
        risk::live::check_new(shared, instance, &mut live, &intent, now_msc, true)?;
    }
    let (spec, last) = market_of(&live, &intent.symbol)?;
    let mut request = order_request(&intent, spec, last, token);
    request.client_order_id.clone_from(&intent.client_order_id);
    request.magic = intent.magic;
    request.comment = comment_key(&intent.client_order_id);
    let (reference_price, filling, point) = (request.price, request.type_filling, spec.point);
    let market = request.action == TRADE_ACTION_DEAL;
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
        ticket_floor: live.book.max_ticket,
    };
    let retry = (market && intent.deviation_points > 0).then(|| Box::new(request.clone()));
    // The idempotency record is durable (at least against a crash of this process)
    // before the order leaves.
    let position = journal(shared, &entry)?;
    send_journaled(shared, instance, &live, request, position)?;
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
            sent: Instant::now(),
        },
    );
    live.book.insert(entry);
    let (retention, now) = (
        &shared.config.retention,
        convert::timestamp_nanos(Some(&now)),
    );
    if live.book.retire_due(retention, now) {
        let live = &mut *live;
        let in_use: HashSet<&str> = live
            .pending
            .values()
            .map(|p| p.client_order_id.as_str())
            .collect();
        live.book.retire(retention, now, &in_use);
    }
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
    let (spec, last) = market_of(&live, &intent.symbol)?;
    let token = shared.token();
    let request = t::OrderRequest {
        check_only: true,
        ..order_request(intent, spec, last, token)
    };
    let price = request.price;
    let point = spec.point;
    send(&live, request)?;
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
            sent: Instant::now(),
        },
    );
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::RequestKind;

    #[test]
    fn every_kind_sits_at_its_index() {
        for (i, kind) in RequestKind::ALL.into_iter().enumerate() {
            assert_eq!(kind.index(), i, "{kind:?}");
        }
    }
}
