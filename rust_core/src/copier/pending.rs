//! A master's pending orders (relations with `copy_pending`): placed on each follower as
//! pending orders of their own, their price and stops changes applied, their cancels and
//! expiries too. When the master's order fills, its position is linked to the follower's
//! pending copy (which fills at its own trigger) instead of being copied at market.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use super::dispatch::{self, MasterTrade};
use super::links::Link;
use super::spec::copy_id;
use super::Relation;
use crate::pb::terminal as t;
use crate::pb::v1;
use crate::routing::{self, OrderChanges, OrderRef};
use crate::shared::Shared;

/// `ORDER_STATE_*`.
const PLACED: u32 = 1;
const CANCELED: u32 = 2;
const EXPIRED: u32 = 6;

/// A master pending order as last copied: (price, stop-limit price, SL, TP).
pub type Copied = HashMap<u64, (f64, f64, f64, f64)>;

/// The id of a pending order's copy.
#[must_use]
pub fn pending_id(prefix: &str, ticket: u64) -> String {
    copy_id(prefix, ticket, 0, "p")
}

/// Whether a master deal fills a pending order a relation copied (then the copy is linked,
/// not made at market).
pub fn fills_copied(shared: &Shared, relation: &Relation, deal: &t::DealReport) -> bool {
    if !relation.spec.copy_pending {
        return false;
    }
    let known = relation.pending.lock().remove(&deal.order).is_some();
    let cid = pending_id(&relation.prefix, deal.order);
    // Also a copy made before a restart (the follower's journaled orders have it).
    let copied = shared
        .instance(&relation.spec.follower_instance_id)
        .ok()
        .and_then(|f| {
            f.live
                .lock()
                .book
                .by_client_id
                .get(&cid)
                .map(|e| e.order.volume)
        });
    if !known && copied.is_none() {
        return false;
    }
    let follower_volume = copied.unwrap_or(0.0);
    let mut links = relation.links.lock();
    let link = links
        .by_position
        .entry(deal.position_id)
        .or_insert_with(|| Link {
            symbol: super::mapping::follower_symbol(&relation.spec, &deal.symbol),
            side: super::mapping::follower_side(
                &relation.spec,
                if deal.r#type == 0 {
                    v1::Side::Buy
                } else {
                    v1::Side::Sell
                },
            ),
            master_volume: 0.0,
            follower_volume: 0.0,
            open_ids: Vec::new(),
            stops: (0.0, 0.0),
            ..Default::default()
        });
    if !link.open_ids.contains(&cid) {
        link.master_volume += deal.volume;
        link.follower_volume += follower_volume;
        link.open_ids.push(cid);
    }
    true
}

/// A master order update: pending copies placed, changed or cancelled.
pub fn on_master_order(shared: &Arc<Shared>, master_id: &str, update: &t::OrderUpdate) {
    let Some(info) = &update.order else { return };
    if !(2..=7).contains(&info.r#type) {
        return;
    }
    let relations: Vec<Arc<Relation>> = shared
        .copier
        .of_master(master_id)
        .into_iter()
        .filter(|r| r.spec.copy_pending)
        .collect();
    if relations.is_empty() {
        return;
    }
    // A copy is never copied again.
    let copy = shared.instance(master_id).is_ok_and(|m| {
        dispatch::is_copy(shared, &m, update.request_id, info.ticket, &info.comment)
    });
    if copy {
        return;
    }
    for relation in relations {
        apply(shared, &relation, info);
    }
}

/// The master's pending orders set up since `since_msc` that have no copy on the follower
/// (a late join; after a restart, those placed before the copier saw them): copied now.
pub fn copy_open(shared: &Arc<Shared>, relation: &Arc<Relation>, since_msc: i64) {
    if !relation.spec.copy_pending {
        return;
    }
    let (Ok(master), Ok(follower)) = (
        shared.instance(&relation.spec.master_instance_id),
        shared.instance(&relation.spec.follower_instance_id),
    ) else {
        return;
    };
    let placed: Vec<t::OrderInfo> = master
        .live
        .lock()
        .open_orders
        .iter()
        .filter(|o| (2..=7).contains(&o.r#type) && o.state == PLACED)
        .cloned()
        .collect();
    relation.keep_refused_pending(&placed.iter().map(|o| o.ticket).collect::<Vec<u64>>());
    let orders = placed
        .into_iter()
        .filter(|o| o.time_setup_msc >= since_msc)
        // Refused for good before (the follower's risk gate, a filter, the sizing): not
        // tried (nor counted) again.
        .filter(|o| !relation.was_refused_pending(o.ticket));
    for info in orders {
        let cid = pending_id(&relation.prefix, info.ticket);
        let copied = follower.live.lock().book.by_client_id.contains_key(&cid);
        if copied || dispatch::is_copy(shared, &master, 0, info.ticket, &info.comment) {
            continue;
        }
        apply(shared, relation, &info);
    }
}

fn apply(shared: &Arc<Shared>, relation: &Arc<Relation>, info: &t::OrderInfo) {
    // Gone: cancelled, filled, rejected, expired.
    if matches!(info.state, 2 | 4..=6) {
        relation.forget_refused_pending(info.ticket);
    }
    let r = &relation.spec;
    let cid = pending_id(&relation.prefix, info.ticket);
    let now = (info.price_open, info.price_stoplimit, info.sl, info.tp);
    let before = relation.pending.lock().get(&info.ticket).copied();
    let Ok(follower) = shared.instance(&r.follower_instance_id) else {
        return;
    };
    // Copied before a restart: changes and cancels still apply to it (its values unknown:
    // NaN, so that any change is applied again).
    let before = before.or_else(|| {
        follower
            .live
            .lock()
            .book
            .by_client_id
            .contains_key(&cid)
            .then_some((f64::NAN, 0.0, 0.0, 0.0))
    });
    match (info.state, before) {
        (PLACED, None) if relation.was_refused_pending(info.ticket) => {}
        (PLACED, None) => {
            let (side, kind) = if info.r#type % 2 == 0 {
                (v1::Side::Buy, info.r#type)
            } else {
                (v1::Side::Sell, info.r#type)
            };
            let order_type = match kind {
                2 | 3 => v1::OrderType::Limit,
                4 | 5 => v1::OrderType::Stop,
                _ => v1::OrderType::StopLimit,
            };
            let trade = MasterTrade {
                position: info.ticket,
                deal: 0,
                action: "p".to_owned(),
                symbol: info.symbol.clone(),
                side,
                order_type,
                volume: info.volume_initial,
                price: info.price_open,
                stop_loss: info.sl,
                take_profit: info.tp,
                magic: info.magic,
                balance: 0.0,
                equity: 0.0,
                risk_percent: 0.0,
                signal_id: None,
            };
            relation.pending.lock().insert(info.ticket, now);
            dispatch::open_pending(
                shared,
                relation,
                &trade,
                info.price_stoplimit,
                Instant::now(),
            );
        }
        (PLACED, Some(old)) if old != now => {
            relation.pending.lock().insert(info.ticket, now);
            let (stop_loss, take_profit) = super::mapping::follower_stops(r, info.sl, info.tp);
            let changes = OrderChanges {
                price: info.price_open,
                stop_limit_price: info.price_stoplimit,
                stop_loss,
                take_profit,
                ..Default::default()
            };
            if let Err(e) = routing::modify(shared, &follower, &OrderRef::ClientId(cid), &changes) {
                dispatch::skip(
                    shared,
                    relation,
                    Some(&follower),
                    None,
                    e.reason,
                    &e.message,
                );
            }
        }
        (CANCELED | EXPIRED, Some(_)) => {
            relation.pending.lock().remove(&info.ticket);
            let token = shared.token();
            if let Err(e) = routing::cancel(shared, &follower, &OrderRef::ClientId(cid), token) {
                dispatch::skip(
                    shared,
                    relation,
                    Some(&follower),
                    None,
                    e.reason,
                    &e.message,
                );
            }
        }
        _ => {}
    }
}
