//! Recovery of a relation restored at start (after a stop or a kill -9 in the middle of a
//! copy): every master position opened since the relation was made that has no copy among
//! the follower's orders (restored from the journal) is copied now, once both are up.
//!
//! A copy submitted before the crash is in the follower's orders (journaled before it was
//! sent), so it is never made twice; one never submitted is made under the id of a late
//! join (`<relation>:<position>:0:j`), the same at every recovery.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::close;
use super::dispatch::{self, MasterTrade};
use super::links::Links;
use super::spec::base36;
use super::Relation;
use crate::error::Code;
use crate::pb::v1;
use crate::shared::Shared;
use crate::supervisor::Instance;

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

/// Which copies of master positions gone are closed, besides the closes owed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gone {
    /// None: only the closes owed (a deleted relation's, the retries).
    No,
    /// Those rebuilt from the follower's journal (their master position closed while the
    /// server was down).
    Rebuilt,
    /// Every one: the master has just reported its positions after its worker (re)started,
    /// before any deal of the new worker, so a linked position not among them closed while
    /// its worker was away (an SL/TP or stop-out whose deal never reached the engine), when
    /// its report proves it ([`report_proves_closes`]: the sim's; an MT5 terminal's does not).
    All,
}

/// An instance became ready: as a follower, the master's positions (and, `copy_pending`,
/// pending orders) it missed while away are copied ([`catch_up`]); the closes its relations
/// owe are made (a master close the follower was not ready for, or refused), and copies
/// whose master position is gone are
/// closed (`<relation>:<position>:0:c<i>`, the same at every pass): as the master, every
/// copy of a position it no longer holds (closed while its worker was away; owed when the
/// follower is not ready), as the follower, the copies rebuilt from its journal (closed while
/// the server was down); only when the master's report proves the position closed (a sim
/// master's: [`report_proves_closes`]; an MT5 master's copies are left open and told, see
/// [`plan`]). Relations deleted while they owed closes make those (and only those).
pub fn on_ready(shared: &Arc<Shared>, instance_id: &str) {
    let Ok(instance) = shared.instance(instance_id) else {
        return;
    };
    // Its positions known since its worker started (at the server's start: else the ones of
    // the worker before stand until the new worker reports, see [`on_master_reported`]).
    let reported = fresh(&instance).is_some_and(|at| shared.copier.first_check(instance_id, at));
    for relation in shared.copier.naming(instance_id) {
        let gone = if reported && relation.spec.master_instance_id == instance_id {
            Gone::All
        } else {
            Gone::Rebuilt
        };
        close_owed(shared, &relation, gone);
        // Back, a follower gets the copies of what its master opened while it was away
        // (skipped then, INSTANCE_NOT_READY): each once, as at a restart's recovery.
        if relation.spec.follower_instance_id == instance_id
            && !relation.spec.master_instance_id.is_empty()
        {
            spawn(shared, &relation);
        }
    }
    for relation in shared.copier.draining(instance_id, &instance.spec.owner) {
        close_owed(shared, &relation, Gone::No);
    }
}

/// When the instance's worker became ready, if it is ready and has reported its positions
/// since.
fn fresh(instance: &Instance) -> Option<Instant> {
    let live = instance.live.lock();
    (live.positions_fresh && ready(live.state))
        .then_some(live.ready_at)
        .flatten()
}

/// A master's positions reported: the first report of a worker that became ready before it
/// (a restarted worker: READY at once, on the positions its predecessor reported) closes the
/// copies of every position gone meanwhile ([`Gone::All`]): closed on its SL/TP or a stop-out
/// while no worker was there to report the deal (a sim master; an MT5 master's report proves
/// nothing, its copies are left open: [`report_proves_closes`]).
pub fn on_master_reported(shared: &Arc<Shared>, master: &Instance, relations: &[Arc<Relation>]) {
    let Some(at) = fresh(master) else { return };
    if !shared.copier.first_check(&master.spec.instance_id, at) {
        return;
    }
    for relation in relations {
        close_owed(shared, relation, Gone::All);
    }
}

/// How long closes the follower refused for now (no price yet, just after it became ready)
/// are tried again.
const OWED_GIVE_UP: Duration = Duration::from_secs(60);

/// See [`on_ready`]; `gone`: which copies of master positions gone are closed too. Closes still owed after it (the follower refused them for now) are
/// tried again every [`EVERY`] on a task of their own, for [`OWED_GIVE_UP`] (then at the next
/// ready): each under the ids its master close gave it, so never made twice. A refusal is
/// counted and told once per owed close and reason (a retry refused alike is quiet: the gate
/// is asked first as a dry run); a close still refused at the end is told given up, once.
pub fn close_owed(shared: &Arc<Shared>, relation: &Arc<Relation>, gone: Gone) {
    close_owed_once(shared, relation, gone);
    if !relation.links.lock().owes() || relation.retrying_owed.swap(true, Ordering::AcqRel) {
        return;
    }
    let (shared, relation) = (Arc::clone(shared), Arc::clone(relation));
    let runtime = shared.runtime.clone();
    runtime.spawn(async move {
        let started = Instant::now();
        while started.elapsed() < OWED_GIVE_UP && relation.links.lock().owes() {
            tokio::time::sleep(EVERY).await;
            close_owed_once(&shared, &relation, Gone::No);
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

/// Whether a master's positions report proves that a linked position missing from it was
/// closed. The sim's does: its state is its own journal, read whole before its worker's first
/// report. An MT5 terminal's does not: just after its login, before it has synced with the
/// trade server, it can report an empty or partial list, and closing copies on that would
/// close real trades for nothing, for good. Its copies are left open ([`tell_left_open`]).
#[must_use]
pub fn report_proves_closes(backend: v1::Backend) -> bool {
    backend == v1::Backend::Sim
}

/// One pass over a relation's links: the closes to make (master position, master volume: 0
/// for the close owed, whole) and the linked positions missing from the master's report
/// (`open`: None when its current worker has not reported yet) whose copies are left open,
/// the report being no proof that they closed (`proves`, [`report_proves_closes`]).
#[must_use]
pub fn plan(
    links: &Links,
    gone: Gone,
    open: Option<&[u64]>,
    proves: bool,
    follower_ready: bool,
) -> (Vec<(u64, f64)>, Vec<u64>) {
    let mut closes = Vec::new();
    let mut left_open = Vec::new();
    for (position, link) in &links.by_position {
        let missing = match gone {
            Gone::No => false,
            Gone::Rebuilt => link.rebuilt,
            Gone::All => true,
        } && open.is_some_and(|o| !o.contains(position));
        // A close owed in full (the master's closing deal came while the follower was away)
        // is made when the follower is ready: nothing is left open.
        let owed_whole = link.owed >= link.master_volume - 1e-9;
        if missing && !proves && !owed_whole {
            left_open.push(*position);
        }
        if missing && proves {
            // All of it: the rest of what is owed already (0: the close owed, whole).
            let rest = (link.master_volume - link.owed).max(0.0);
            if follower_ready || rest > 1e-9 {
                closes.push((*position, rest));
            }
        } else if follower_ready && link.owed > 0.0 {
            closes.push((*position, 0.0));
        }
    }
    closes.sort_by_key(|c| c.0);
    left_open.sort_unstable();
    (closes, left_open)
}

/// Copies left open on a master's report that proves nothing: an instance event on the
/// follower (`COPIES_LEFT_OPEN`, naming the relation and the master positions).
fn tell_left_open(shared: &Shared, relation: &Relation, follower: &Instance, positions: &[u64]) {
    let list: Vec<String> = positions.iter().map(u64::to_string).collect();
    let reason = format!(
        "COPIES_LEFT_OPEN: relation '{}': master position(s) {} of instance '{}' missing from \
         its terminal's positions report, which does not prove them closed (an MT5 terminal \
         can report a partial list before it has synced): their copies are left open",
        relation.spec.relation_id,
        list.join(", "),
        relation.spec.master_instance_id
    );
    let live = follower.live.lock();
    crate::supervisor::announce(shared, follower, &live, &reason);
}

fn close_owed_once(shared: &Arc<Shared>, relation: &Arc<Relation>, gone: Gone) {
    let r = &relation.spec;
    let Ok(follower) = shared.instance(&r.follower_instance_id) else {
        return;
    };
    let follower_ready = {
        let live = follower.live.lock();
        let up = live.positions_reported && ready(live.state);
        if up {
            let mut links = relation.links.lock();
            if !links.rebuilt {
                links.rebuild(&relation.prefix, &live.book);
            }
        }
        up
    };
    // The follower away, only a master's positions gone are worth a look: their closes are
    // owed (and made when it is ready).
    if !follower_ready && gone != Gone::All {
        return;
    }
    // The master's open positions, when its worker reported them since it started, and
    // whether a position missing there is known closed (its backend's report is evidence).
    let (open, proves): (Option<Vec<u64>>, bool) = shared
        .instance(&r.master_instance_id)
        .ok()
        .map_or((None, false), |m| {
            let live = m.live.lock();
            let open = (live.positions_fresh && ready(live.state))
                .then(|| live.positions.iter().map(|p| p.ticket).collect());
            (open, report_proves_closes(m.spec.backend))
        });
    let (owed, left_open) = plan(
        &relation.links.lock(),
        gone,
        open.as_deref(),
        proves,
        follower_ready,
    );
    if !left_open.is_empty() {
        tell_left_open(shared, relation, &follower, &left_open);
    }
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
        // No price yet (the server just started): its copies would be refused NO_PRICE.
        if !live.positions_reported || !ready(live.state) || live.last_ticks.is_empty() {
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
                && super::state::passing(e.reason)
            {
                done = false;
            }
        }
    }
    done
}
