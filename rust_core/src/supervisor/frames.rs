//! Frames from a worker: ticks, heartbeats, deals, snapshots, order results, events.

use crate::reason;
use bytes::Bytes;
use std::sync::Arc;
use std::time::Instant;

use super::{set_state, Instance};
use crate::convert;
use crate::fanout::{piece, Topic};
use crate::pb::terminal as t;
use crate::pb::terminal::worker_frame::Body;
use crate::pb::v1;
use crate::pb::v1::InstanceState as S;
use crate::routing;
use crate::shared::Shared;

/// Worker events that degrade an instance, and the events that end that.
const DEGRADING_EVENTS: &[&str] = &[
    reason::LOGIN_FAILED,
    reason::BROKER_DISCONNECTED,
    reason::MARKET_CLOSED,
];
const RECOVERING_EVENTS: &[&str] = &["BROKER_CONNECTED", "MARKET_OPEN"];

/// Applies one frame from the worker.
pub fn handle(shared: &Arc<Shared>, instance: &Instance, frame: t::WorkerFrame) {
    let id = instance.spec.instance_id.as_str();
    instance.live.lock().last_seen = Some(Instant::now());
    match frame.body {
        Some(Body::Ticks(batch)) => {
            let received = convert::now();
            let mut items: Vec<(String, Bytes)> = Vec::with_capacity(batch.ticks.len());
            {
                let mut live = instance.live.lock();
                let received_msc = received.seconds * 1000 + i64::from(received.nanos / 1_000_000);
                for tick in batch.ticks {
                    if let Some(at) = live.tick_received_msc.get_mut(&tick.symbol) {
                        *at = received_msc;
                    } else {
                        live.tick_received_msc
                            .insert(tick.symbol.clone(), received_msc);
                    }
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
            routing::on_deal(shared, instance, &deal);
            crate::copier::dispatch::on_master_deal(shared, instance, &deal);
        }
        Some(Body::Account(account)) => {
            let update = v1::Account {
                ..convert::account(id, &account)
            };
            let mut live = instance.live.lock();
            live.risk.on_equity(account.equity, convert::now_msc());
            live.account = Some(account);
            drop(live);
            shared.hub.publish(
                Topic::Accounts,
                id,
                &[("", piece(&update))],
                &shared.notifier,
            );
        }
        Some(Body::Positions(snapshot)) => {
            let mut live = instance.live.lock();
            live.positions = snapshot.positions;
            live.positions_reported = true;
            live.positions_fresh = true;
            let close = crate::killswitch::take_deferred_closes(&mut live);
            drop(live);
            crate::killswitch::close_deferred(shared, instance, close);
            crate::copier::dispatch::on_master_positions(shared, instance);
        }
        Some(Body::OrderResult(result)) => routing::on_result(shared, instance, &result),
        Some(Body::OrderUpdate(update)) => {
            routing::on_order_update(shared, instance, &update);
            crate::copier::pending::on_master_order(shared, id, &update);
        }
        Some(Body::ReconcileResult(result)) => routing::on_reconcile(shared, instance, &result),
        Some(Body::MarketAnswer(answer)) => crate::market::on_answer(shared, instance, &answer),
        Some(Body::Book(update)) => crate::market::on_book(shared, instance, update),
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
            let mut live = instance.live.lock();
            live.open_orders = snapshot.orders;
            if live.risk.kill_switch && !live.open_orders.is_empty() {
                crate::killswitch::sweep(shared, &mut live);
            }
        }
        Some(Body::Hello(_)) | None => {}
    }
}
