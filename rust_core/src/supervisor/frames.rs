//! Frames from a worker: ticks, heartbeats, deals, snapshots, order results, events.

use bytes::Bytes;
use prost::Message;
use std::time::Instant;

use super::{set_state, Instance, PendingOrder};
use crate::convert;
use crate::engine::Shared;
use crate::error::{Code, EngineError};
use crate::fanout::{piece, Topic};
use crate::notify::Completion;
use crate::pb::terminal as t;
use crate::pb::terminal::worker_frame::Body;
use crate::pb::v1;
use crate::pb::v1::InstanceState as S;
use crate::retcode;

/// Worker events that degrade an instance, and the events that end that.
const DEGRADING_EVENTS: &[&str] = &["LOGIN_FAILED", "BROKER_DISCONNECTED", "MARKET_CLOSED"];
const RECOVERING_EVENTS: &[&str] = &["BROKER_CONNECTED", "MARKET_OPEN"];

/// Applies one frame from the worker.
pub fn handle(shared: &Shared, instance: &Instance, frame: t::WorkerFrame) {
    let id = instance.spec.instance_id.as_str();
    instance.live.lock().last_seen = Some(Instant::now());
    match frame.body {
        Some(Body::Ticks(batch)) => {
            let received = convert::now();
            let mut items: Vec<(String, Bytes)> = Vec::with_capacity(batch.ticks.len());
            {
                let mut live = instance.live.lock();
                for tick in batch.ticks {
                    items.push((
                        tick.symbol.clone(),
                        piece(&convert::tick(id, &tick, received)),
                    ));
                    if let Some(last) = live.last_ticks.get_mut(&tick.symbol) {
                        *last = tick;
                    } else {
                        live.last_ticks.insert(tick.symbol.clone(), tick);
                    }
                }
            }
            let refs: Vec<(&str, Bytes)> =
                items.iter().map(|(s, b)| (s.as_str(), b.clone())).collect();
            shared
                .hub
                .publish(Topic::Ticks, id, &refs, &shared.notifier);
        }
        Some(Body::Heartbeat(_)) => {
            let mut live = instance.live.lock();
            if live.state == S::Degraded && live.reason == "HEARTBEAT_LATE" {
                set_state(shared, instance, &mut live, S::Ready, "HEARTBEAT_RESUMED");
            }
        }
        Some(Body::Deal(deal)) => {
            let live = instance.live.lock();
            let (client_order_id, reference, point) = live
                .pending
                .get(&deal.request_id)
                .map(|p| (p.order.client_order_id.clone(), p.reference_price, p.point))
                .unwrap_or_default();
            let fill = convert::fill(id, &deal, &client_order_id, reference, point);
            publish_execution(shared, instance, v1::execution_event::Event::Fill(fill));
            drop(live);
        }
        Some(Body::Account(account)) => {
            let update = v1::Account {
                ..convert::account(id, &account)
            };
            instance.live.lock().account = Some(account);
            shared.hub.publish(
                Topic::Accounts,
                id,
                &[("", piece(&update))],
                &shared.notifier,
            );
        }
        Some(Body::Positions(snapshot)) => {
            instance.live.lock().positions = snapshot.positions;
        }
        Some(Body::OrderResult(result)) => {
            let pending = instance.live.lock().pending.remove(&result.request_id);
            if let Some(pending) = pending {
                finish_order(shared, instance, pending, &result);
            }
        }
        Some(Body::Event(event)) => {
            let mut live = instance.live.lock();
            let kind = event.kind.as_str();
            if DEGRADING_EVENTS.contains(&kind) && live.state == S::Ready {
                set_state(shared, instance, &mut live, S::Degraded, kind);
            } else if RECOVERING_EVENTS.contains(&kind) && live.state == S::Degraded {
                set_state(shared, instance, &mut live, S::Ready, kind);
            }
        }
        Some(Body::Orders(snapshot)) => {
            instance.live.lock().open_orders = snapshot.orders;
        }
        // Pending-order updates and reconciliation arrive with the order surface (issue #4).
        Some(Body::OrderUpdate(_) | Body::ReconcileResult(_) | Body::Hello(_)) | None => {}
    }
}

fn publish_execution(shared: &Shared, instance: &Instance, event: v1::execution_event::Event) {
    let event = v1::ExecutionEvent {
        instance_id: instance.spec.instance_id.clone(),
        sequence: instance.next_sequence(),
        time: Some(convert::now()),
        event: Some(event),
    };
    shared.hub.publish(
        Topic::Executions,
        &instance.spec.instance_id,
        &[("", piece(&event))],
        &shared.notifier,
    );
}

fn finish_order(
    shared: &Shared,
    instance: &Instance,
    pending: PendingOrder,
    result: &t::OrderResult,
) {
    let rc = retcode::lookup(result.retcode);
    let mut order = pending.order;
    order.status = rc.status as i32;
    order.order_id = result.order;
    order.retcode = result.retcode;
    order.status_message = result.comment.clone();
    order.position_id = result.position;
    order.updated_time = Some(convert::ts_msc(result.time_msc));
    if matches!(
        rc.status,
        v1::OrderStatus::Filled | v1::OrderStatus::PartiallyFilled
    ) {
        order.filled_volume = result.volume;
        order.average_fill_price = result.price;
    }
    publish_execution(
        shared,
        instance,
        v1::execution_event::Event::OrderUpdate(order.clone()),
    );
    let token = result.request_id;
    let payload = v1::PlaceOrderResponse { order: Some(order) }.encode_to_vec();
    let completion = if rc.code == Code::Ok {
        Completion::ok(token, payload)
    } else {
        let error = EngineError::new(
            rc.code,
            rc.name,
            format!(
                "the terminal answered TRADE_RETCODE_{} ({}){}",
                rc.name,
                result.retcode,
                if result.comment.is_empty() {
                    String::new()
                } else {
                    format!(": {}", result.comment)
                }
            ),
        );
        Completion::err(token, &error, payload)
    };
    shared.notifier.complete(completion);
}
