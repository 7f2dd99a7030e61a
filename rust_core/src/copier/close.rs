//! Closing copies: a master's close (full or partial, by deal) or a relation deleted with its
//! copies closed becomes follower orders closing the copies, proportionally; a close the
//! follower cannot make now is owed on its link ([`super::recovery::close_owed`]).

use std::sync::Arc;

use super::defaults::deviation;
use super::dispatch::{skip, Job, Owed};
use super::links;
use super::spec::copy_id;
use super::volume;
use super::Relation;
use crate::pb::v1;
use crate::shared::Shared;
use crate::validate::OrderIntent;

/// The follower orders closing `closed` lots of master position `position` (by deal `deal`),
/// with any close still owed on it. When the follower is not ready, none: the close is owed
/// (made when it is ready again, see [`super::recovery::close_owed`]).
pub fn close_jobs(
    shared: &Shared,
    relation: &Arc<Relation>,
    position: u64,
    deal: u64,
    closed: f64,
    action: &str,
) -> Vec<Job> {
    let r = &relation.spec;
    let Ok(follower) = shared.instance(&r.follower_instance_id) else {
        return Vec::new();
    };
    let live = follower.live.lock();
    let mut links = relation.links.lock();
    if !links.by_position.contains_key(&position) && !links.rebuilt {
        links.rebuild(&relation.prefix, &live.book);
    }
    let Some(link) = links.by_position.get_mut(&position) else {
        return Vec::new();
    };
    let ready = live.positions_reported
        && matches!(
            live.state,
            v1::InstanceState::Ready | v1::InstanceState::Degraded
        );
    let (deal, action) = if closed <= 0.0 {
        link.owed_by.clone()
    } else {
        (deal, action.to_owned())
    };
    if !ready {
        // A retry of the close owed (nothing more closed) was counted when it was owed.
        let counted = closed <= 0.0;
        link.owed += closed;
        link.owed_by = (deal, action);
        drop(links);
        drop(live);
        if counted {
            return Vec::new();
        }
        skip(
            shared,
            relation,
            Some(&follower),
            None,
            crate::reason::INSTANCE_NOT_READY,
            "the follower is not ready: its copies are closed when it is",
        );
        return Vec::new();
    }
    let closed = (closed + std::mem::take(&mut link.owed)).min(link.master_volume);
    let template = link.clone();
    let step = live
        .symbols
        .get(&link.symbol)
        .map_or(0.0, |s| s.volume_step);
    let volume = volume::close_volume(link.follower_volume, link.master_volume, closed, step);
    let full = closed >= link.master_volume - 1e-9;
    let close_side = match link.side {
        v1::Side::Buy => v1::Side::Sell,
        _ => v1::Side::Buy,
    };
    let netting = live.account.as_ref().is_some_and(|a| a.margin_mode != 2);
    let base = OrderIntent {
        symbol: link.symbol.clone(),
        side: close_side as i32,
        order_type: v1::OrderType::Market as i32,
        deviation_points: deviation(relation),
        comment: links::comment(closed.min(link.master_volume)),
        ..Default::default()
    };
    let mut jobs = Vec::new();
    let mut left = volume;
    if netting {
        if volume > 0.0 {
            jobs.push(OrderIntent {
                client_order_id: copy_id(&relation.prefix, position, deal, &format!("{action}0")),
                volume,
                ..base.clone()
            });
        }
    } else {
        for (i, open_id) in link.open_ids.iter().enumerate() {
            if left <= 1e-9 {
                break;
            }
            let Some(ticket) = live
                .book
                .by_client_id
                .get(open_id)
                .map(|e| e.order.position_id)
                .filter(|p| *p != 0)
            else {
                continue;
            };
            let Some(open) = live.positions.iter().find(|p| p.ticket == ticket) else {
                continue;
            };
            let take = if full {
                open.volume
            } else {
                left.min(open.volume)
            };
            left -= take;
            jobs.push(OrderIntent {
                client_order_id: copy_id(&relation.prefix, position, deal, &format!("{action}{i}")),
                volume: take,
                position_id: ticket,
                ..base.clone()
            });
        }
    }
    link.master_volume -= closed;
    link.follower_volume -= volume;
    link.closed_ids
        .extend(jobs.iter().map(|j| j.client_order_id.clone()));
    if full || link.master_volume <= 1e-9 {
        links.by_position.remove(&position);
    }
    drop(links);
    drop(live);
    let total: f64 = jobs.iter().map(|j| j.volume).sum();
    jobs.into_iter()
        .map(|intent| {
            #[allow(clippy::float_cmp)]
            let share = if total > 0.0 {
                intent.volume / total
            } else {
                1.0
            };
            Job {
                relation: Arc::clone(relation),
                follower: Arc::clone(&follower),
                closes: Some(Owed {
                    position,
                    link: template.clone(),
                    master: closed * share,
                    follower: intent.volume,
                    by: (deal, action.clone()),
                }),
                intent,
                master_price: 0.0,
                point: 0.0,
                opens: None,
            }
        })
        .collect()
}

/// Orders closing every copy a relation still has open (a relation deleted with
/// `COPY_ON_DELETE_CLOSE`).
pub fn close_all_jobs(shared: &Shared, relation: &Arc<Relation>) -> Vec<Job> {
    if let Ok(follower) = shared.instance(&relation.spec.follower_instance_id) {
        let live = follower.live.lock();
        let mut links = relation.links.lock();
        if !links.rebuilt {
            links.rebuild(&relation.prefix, &live.book);
        }
    }
    let open: Vec<(u64, f64)> = relation
        .links
        .lock()
        .by_position
        .iter()
        .map(|(p, l)| (*p, l.master_volume))
        .collect();
    open.into_iter()
        .flat_map(|(position, volume)| close_jobs(shared, relation, position, 0, volume, "d"))
        .collect()
}
