//! The kill switch: instances refuse every new order at once (reason KILL_SWITCH), their
//! pending orders are cancelled and, when asked, their positions closed; the call is answered
//! when every terminal has answered.

use prost::Message;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;

use crate::notify::{Completion, Notifier};
use crate::pb::terminal as t;
use crate::pb::v1;
use crate::routing::{self, comment_key, Gate, PendingRequest, RequestKind};
use crate::session::Sink;
use crate::shared::Shared;
use crate::supervisor::{Instance, Live};
use crate::validate::OrderIntent;

/// Deviation allowed to the kill switch's closes, in points.
const CLOSE_DEVIATION_POINTS: u32 = 1_000;

/// The answers one engagement waits for.
#[derive(Debug)]
struct Batch {
    token: u64,
    instance_ids: Vec<String>,
    // Requests not answered yet, plus one held until every request is sent.
    remaining: AtomicUsize,
    cancelled: AtomicU32,
    closed: AtomicU32,
}

impl Batch {
    fn expect(&self) {
        self.remaining.fetch_add(1, Ordering::AcqRel);
    }

    fn done(&self, notifier: &Notifier) {
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            let response = v1::EngageKillSwitchResponse {
                instance_ids: self.instance_ids.clone(),
                orders_cancelled: self.cancelled.load(Ordering::Acquire),
                positions_closed: self.closed.load(Ordering::Acquire),
            };
            notifier.complete(Completion::ok(self.token, response.encode_to_vec()));
        }
    }
}

impl Sink for Batch {
    fn answer(&self, key: &str, completion: &Completion, notifier: &Notifier) {
        if completion.code == 0 {
            let counter = if key == "close" {
                &self.closed
            } else {
                &self.cancelled
            };
            counter.fetch_add(1, Ordering::AcqRel);
        }
        self.done(notifier);
    }
}

/// Sends a cancel of the order `ticket` (`cid`: its client order id when it is ours); false
/// when the worker is not there to take it.
fn send_cancel(live: &mut Live, token: u64, ticket: u64, cid: String, symbol: String) -> bool {
    let request = t::OrderRequest {
        request_id: token,
        action: 8, // TRADE_ACTION_REMOVE
        order: ticket,
        symbol,
        comment: if cid.is_empty() {
            String::new()
        } else {
            comment_key(&cid)
        },
        ..Default::default()
    };
    if routing::send(live, request).is_err() {
        return false;
    }
    live.pending.insert(
        token,
        PendingRequest::plain(RequestKind::Cancel, cid, ticket),
    );
    true
}

/// A killed instance's terminal reported its pending orders: cancel every one that no cancel
/// is on its way for. Workers report their orders whenever they change (before the order's
/// result), so this also catches orders that were in flight when the switch was engaged and
/// what a terminal still holds after a worker restart.
pub fn sweep(shared: &Shared, live: &mut Live) {
    let targets: Vec<(u64, String, String)> = live
        .open_orders
        .iter()
        .filter(|o| {
            !live
                .pending
                .values()
                .any(|p| p.kind == RequestKind::Cancel && p.position_id == o.ticket)
        })
        .map(|o| {
            // The order's own key: by ticket, or by comment while its result is on its way.
            let cid = live
                .book
                .by_ticket
                .get(&o.ticket)
                .or_else(|| live.book.by_comment.get(&o.comment))
                .cloned()
                .unwrap_or_default();
            (o.ticket, cid, o.symbol.clone())
        })
        .collect();
    for (ticket, cid, symbol) in targets {
        send_cancel(live, shared.token(), ticket, cid, symbol);
    }
}

/// Sends the cancels of an instance's pending orders (those the terminal reported and those
/// of this engine it accepted since) and returns its positions to close.
fn halt(
    shared: &Arc<Shared>,
    instance: &Instance,
    batch: &Arc<Batch>,
    close: bool,
) -> Vec<t::Position> {
    let mut live = instance.live.lock();
    if !live.risk.kill_switch {
        live.risk.kill_switch = true;
        crate::supervisor::announce(shared, instance, &live, "KILL_SWITCH_ENGAGED");
    }
    let mut targets: Vec<(u64, String, String)> = live
        .open_orders
        .iter()
        .map(|o| (o.ticket, String::new(), o.symbol.clone()))
        .collect();
    for entry in live.book.not_final() {
        let status = v1::OrderStatus::try_from(entry.order.status);
        let pending = matches!(
            status,
            Ok(v1::OrderStatus::Accepted | v1::OrderStatus::PartiallyFilled)
        ) && entry.order.order_id != 0
            && entry.order.r#type != v1::OrderType::Market as i32;
        if !pending {
            continue;
        }
        let cid = entry.order.client_order_id.clone();
        match targets.iter_mut().find(|t| t.0 == entry.order.order_id) {
            Some(target) => target.1 = cid,
            None => targets.push((entry.order.order_id, cid, entry.order.symbol.clone())),
        }
    }
    for (ticket, cid, symbol) in targets {
        let token = shared.token();
        batch.expect();
        shared.routes.add(token, batch.clone(), "cancel".to_owned());
        if !send_cancel(&mut live, token, ticket, cid, symbol) {
            shared.routes.take(token);
            batch.done(&shared.notifier);
        }
    }
    if !close {
        return Vec::new();
    }
    if !live.positions_fresh || live.tx.is_none() {
        // Not known yet (the worker has not reported since the server started), or no worker
        // to take the closes (stopped, restarting): closed when a worker reports them, as
        // long as the switch is engaged then.
        live.close_when_reported = true;
        crate::supervisor::announce(shared, instance, &live, "KILL_SWITCH_CLOSES_DEFERRED");
        return Vec::new();
    }
    live.positions.clone()
}

/// Engages the kill switch of `instances`; `token` completes with an encoded
/// `EngageKillSwitchResponse` once every cancel (and close) is answered.
pub fn engage(shared: &Arc<Shared>, instances: &[Arc<Instance>], close: bool, token: u64) {
    let batch = Arc::new(Batch {
        token,
        instance_ids: instances
            .iter()
            .map(|i| i.spec.instance_id.clone())
            .collect(),
        remaining: AtomicUsize::new(1),
        cancelled: AtomicU32::new(0),
        closed: AtomicU32::new(0),
    });
    for instance in instances {
        let positions = halt(shared, instance, &batch, close);
        close_positions(shared, instance, positions, Some(&batch));
    }
    batch.done(&shared.notifier);
}

/// Answers to closes nobody waits for: those sent when positions reported after the kill
/// switch was engaged (the engagement has answered by then).
#[derive(Debug)]
struct Unawaited;

impl Sink for Unawaited {
    fn answer(&self, _key: &str, _completion: &Completion, _notifier: &Notifier) {}
}

/// The positions a kill switch engaged while they were not known (or no worker could take
/// closes) wants closed, once the current worker has reported them and the instance takes
/// orders; none when nothing waits, or the switch was released meanwhile.
pub fn take_deferred_closes(live: &mut Live) -> Vec<t::Position> {
    if !live.close_when_reported {
        return Vec::new();
    }
    if !live.risk.kill_switch {
        live.close_when_reported = false;
        return Vec::new();
    }
    let takes_orders = matches!(
        live.state,
        v1::InstanceState::Ready | v1::InstanceState::Degraded
    );
    if !(live.positions_fresh && takes_orders) {
        return Vec::new();
    }
    live.close_when_reported = false;
    live.positions.clone()
}

/// Closes the positions a kill switch engaged before they were reported wants closed (see
/// `take_deferred_closes`); nobody waits for the answers.
pub fn close_deferred(shared: &Arc<Shared>, instance: &Instance, positions: Vec<t::Position>) {
    close_positions(shared, instance, positions, None);
}

/// Sends a market close of each position (past the risk gate); `batch` counts the answers.
fn close_positions(
    shared: &Arc<Shared>,
    instance: &Instance,
    positions: Vec<t::Position>,
    batch: Option<&Arc<Batch>>,
) {
    for position in positions {
        let token = shared.token();
        let intent = OrderIntent {
            client_order_id: format!("kill-{}-{token}", position.ticket),
            symbol: position.symbol.clone(),
            side: if position.r#type == 0 {
                v1::Side::Sell as i32
            } else {
                v1::Side::Buy as i32
            },
            order_type: v1::OrderType::Market as i32,
            volume: position.volume,
            deviation_points: CLOSE_DEVIATION_POINTS,
            comment: "kill switch".to_owned(),
            position_id: position.ticket,
            ..Default::default()
        };
        let sink: Arc<dyn Sink> = match batch {
            Some(batch) => {
                batch.expect();
                batch.clone()
            }
            None => Arc::new(Unawaited),
        };
        shared.routes.add(token, sink, "close".to_owned());
        let now = crate::convert::now_msc();
        if routing::place_gated(shared, instance, intent, now, token, Gate::Bypass).is_err() {
            shared.routes.take(token);
            if let Some(batch) = batch {
                batch.done(&shared.notifier);
            }
        }
    }
}

/// Releases the kill switch of `instances`.
pub fn release(shared: &Shared, instances: &[Arc<Instance>]) {
    for instance in instances {
        let mut live = instance.live.lock();
        live.close_when_reported = false;
        if live.risk.kill_switch {
            live.risk.kill_switch = false;
            crate::supervisor::announce(shared, instance, &live, "KILL_SWITCH_RELEASED");
        }
    }
}
