//! Recovery of a relation restored at start (after a stop or a kill -9 in the middle of a
//! copy): every master position opened since the relation was made that has no copy among
//! the follower's orders (restored from the journal) is copied now, once both are up.
//!
//! A copy submitted before the crash is in the follower's orders (journaled before it was
//! sent), so it is never made twice; one never submitted is made under the id of a late
//! join (`<relation>:<position>:0:j`), the same at every recovery.

use crate::reason;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::close;
use super::dispatch::{self, MasterTrade};
use super::spec::base36;
use super::Relation;
use crate::error::Code;
use crate::pb::v1;
use crate::shared::Shared;

/// How often a restored relation tries to catch up, and for how long.
const EVERY: Duration = Duration::from_millis(500);
const GIVE_UP: Duration = Duration::from_secs(600);

/// Catches a restored relation up on its own task (until done, or given up).
pub fn spawn(shared: &Arc<Shared>, relation: &Arc<Relation>) {
    let (shared, relation) = (Arc::clone(shared), Arc::clone(relation));
    let runtime = shared.runtime.clone();
    runtime.spawn(async move {
        let started = Instant::now();
        while started.elapsed() < GIVE_UP {
            // Deleted meanwhile: nothing to do.
            if !shared.copier.current(&relation) {
                return;
            }
            if catch_up(&shared, &relation) {
                relation.stats.recovered.store(true, Ordering::Relaxed);
                return;
            }
            tokio::time::sleep(EVERY).await;
        }
    });
}

/// A copy the terminal refused or never saw: nothing filled, and final.
fn failed(order: &v1::Order) -> bool {
    use v1::OrderStatus as S;
    order.filled_volume <= 0.0
        && matches!(
            S::try_from(order.status).unwrap_or(S::Unspecified),
            S::Rejected | S::Canceled | S::Expired
        )
}

/// A copy whose outcome is not known yet.
fn in_flight(order: &v1::Order) -> bool {
    use v1::OrderStatus as S;
    matches!(
        S::try_from(order.status).unwrap_or(S::Unspecified),
        S::Unknown | S::New | S::Submitted
    )
}

fn ready(state: v1::InstanceState) -> bool {
    matches!(
        state,
        v1::InstanceState::Ready | v1::InstanceState::Degraded
    )
}

/// An instance became ready: the closes its relations owe are made (a master close the
/// follower was not ready for, or refused), and copies whose master position is gone while
/// the server was down are closed (`<relation>:<position>:0:c<i>`, the same at every pass).
/// Relations deleted while they owed closes make those (and only those).
pub fn on_ready(shared: &Arc<Shared>, instance_id: &str) {
    for relation in shared.copier.naming(instance_id) {
        close_owed(shared, &relation, false);
    }
    let Ok(instance) = shared.instance(instance_id) else {
        return;
    };
    for relation in shared.copier.draining(instance_id, &instance.spec.owner) {
        close_owed(shared, &relation, true);
    }
}

/// How long closes the follower refused for now (no price yet, just after it became ready)
/// are tried again.
const OWED_GIVE_UP: Duration = Duration::from_secs(60);

/// See [`on_ready`]; `owed_only`: not the copies of master positions gone meanwhile (a
/// deleted relation's). Closes still owed after it (the follower refused them for now) are
/// tried again every [`EVERY`] on a task of their own, for [`OWED_GIVE_UP`] (then at the next
/// ready): each under the ids its master close gave it, so never made twice. A refusal is
/// counted and told once per owed close and reason (a retry refused alike is quiet: the gate
/// is asked first as a dry run); a close still refused at the end is told given up, once.
pub fn close_owed(shared: &Arc<Shared>, relation: &Arc<Relation>, owed_only: bool) {
    close_owed_once(shared, relation, owed_only);
    if !relation.links.lock().owes() || relation.retrying_owed.swap(true, Ordering::AcqRel) {
        return;
    }
    let (shared, relation) = (Arc::clone(shared), Arc::clone(relation));
    let runtime = shared.runtime.clone();
    runtime.spawn(async move {
        let started = Instant::now();
        while started.elapsed() < OWED_GIVE_UP && relation.links.lock().owes() {
            tokio::time::sleep(EVERY).await;
            close_owed_once(&shared, &relation, true);
        }
        give_up(&shared, &relation);
        relation.retrying_owed.store(false, Ordering::Release);
    });
}

/// The retries of the closes owed ended: each still refused (by the follower's gate or its
/// validation, not for being away) is told given up, with its last reason (not counted
/// again: its first refusal was).
fn give_up(shared: &Shared, relation: &Relation) {
    let refused: Vec<(String, crate::validate::OrderIntent)> = relation
        .links
        .lock()
        .by_position
        .values()
        .filter(|l| l.owed > 0.0)
        .filter_map(|l| l.refusal.clone())
        .filter(|(reason, _)| !super::state::passing(reason))
        .collect();
    let Ok(follower) = shared.instance(&relation.spec.follower_instance_id) else {
        return;
    };
    for (reason, intent) in refused {
        let message = format!(
            "the close owed was refused ({reason}) at every try for {} s: given up until the \
             follower is ready again",
            OWED_GIVE_UP.as_secs()
        );
        dispatch::tell(
            shared,
            relation,
            &follower,
            Some(&intent),
            &reason,
            &message,
        );
    }
}

fn close_owed_once(shared: &Arc<Shared>, relation: &Arc<Relation>, owed_only: bool) {
    let r = &relation.spec;
    let Ok(follower) = shared.instance(&r.follower_instance_id) else {
        return;
    };
    {
        let live = follower.live.lock();
        if !live.positions_reported || !ready(live.state) {
            return;
        }
        let mut links = relation.links.lock();
        if !links.rebuilt {
            links.rebuild(&relation.prefix, &live.book);
        }
    }
    // The master's open positions, when it reported them since it (and the server) started.
    let open: Option<Vec<u64>> = shared.instance(&r.master_instance_id).ok().and_then(|m| {
        let live = m.live.lock();
        (live.positions_reported && ready(live.state))
            .then(|| live.positions.iter().map(|p| p.ticket).collect())
    });
    let owed: Vec<(u64, f64)> = relation
        .links
        .lock()
        .by_position
        .iter()
        .filter_map(|(position, link)| {
            if link.owed > 0.0 {
                Some((*position, 0.0))
            } else if !owed_only
                && link.rebuilt
                && open.as_ref().is_some_and(|o| !o.contains(position))
            {
                Some((*position, link.master_volume))
            } else {
                None
            }
        })
        .collect();
    let started = Instant::now();
    let _hold = shared.notifier.hold();
    for (position, volume) in owed {
        for job in close::close_jobs(shared, relation, position, 0, volume, "c") {
            let _ = dispatch::submit(shared, job, started, true);
        }
    }
}

/// One attempt: true when every position is copied (or refused for good).
pub fn catch_up(shared: &Arc<Shared>, relation: &Arc<Relation>) -> bool {
    let r = &relation.spec;
    let (Ok(master), Ok(follower)) = (
        shared.instance(&r.master_instance_id),
        shared.instance(&r.follower_instance_id),
    ) else {
        return false;
    };
    let since_msc = r
        .created_time
        .as_ref()
        .map_or(0, |t| t.seconds * 1000 + i64::from(t.nanos) / 1_000_000);
    // Copies older than the follower remembers its orders for cannot be told apart from
    // none: positions opened before then are left alone.
    let remembered = crate::convert::now_msc() - shared.config.retention.keep_nanos() / 1_000_000;
    let since_msc = since_msc.max(remembered);
    let all = r.late_join == v1::CopyLateJoin::OpenPositions as i32;
    let trades: Vec<MasterTrade> = {
        let live = master.live.lock();
        if !live.positions_reported || !ready(live.state) {
            return false;
        }
        let open: Vec<u64> = live.positions.iter().map(|p| p.ticket).collect();
        relation.keep_refused(&open);
        let (balance, equity) = live
            .account
            .as_ref()
            .map_or((0.0, 0.0), |a| (a.balance, a.equity));
        live.positions
            .iter()
            .filter(|p| p.time_msc >= if all { remembered } else { since_msc })
            // Refused for good before the restart: not tried (nor counted) again.
            .filter(|p| !relation.was_refused(p.ticket))
            .map(|p| MasterTrade {
                position: p.ticket,
                deal: 0,
                action: "j".to_owned(),
                symbol: p.symbol.clone(),
                side: if p.r#type == 0 {
                    v1::Side::Buy
                } else {
                    v1::Side::Sell
                },
                order_type: v1::OrderType::Market,
                volume: p.volume,
                price: p.price_open,
                stop_loss: p.sl,
                take_profit: p.tp,
                magic: p.magic,
                balance,
                equity,
                risk_percent: 0.0,
                signal_id: None,
            })
            .collect()
    };
    let mut waiting = false;
    let missing: Vec<MasterTrade> = {
        let live = follower.live.lock();
        if !live.positions_reported || !ready(live.state) {
            return false;
        }
        relation.links.lock().rebuild(&relation.prefix, &live.book);
        let mut missing = Vec::new();
        for mut trade in trades {
            let prefix = format!("{}:{}:", relation.prefix, base36(trade.position));
            let copies: Vec<&v1::Order> = live
                .book
                .by_client_id
                .iter()
                .filter(|(cid, _)| cid.starts_with(&prefix))
                .map(|(_, e)| &e.order)
                .collect();
            let failed = copies.iter().filter(|o| failed(o)).count();
            if copies.iter().any(|o| in_flight(o)) {
                waiting = true; // its outcome decides (reconciliation after a crash)
            } else if failed == copies.len() {
                // None, or each refused by the terminal (e.g. sent to a worker that died):
                // one more, under an id of its own (the same at every recovery).
                trade.action = if failed == 0 {
                    "j".to_owned()
                } else {
                    format!("j{failed}")
                };
                missing.push(trade);
            }
        }
        missing
    };
    super::pending::copy_open(shared, relation, if all { remembered } else { since_msc });
    let started = Instant::now();
    let mut done = !waiting;
    for trade in &missing {
        if let Err(e) = dispatch::open_now(shared, relation, trade, started) {
            if matches!(e.code, Code::Unavailable | Code::FailedPrecondition)
                && matches!(
                    e.reason,
                    reason::INSTANCE_NOT_READY | reason::WORKER_UNAVAILABLE
                )
            {
                done = false;
            }
        }
    }
    done
}
