//! Which follower orders copy which master position: what a master close (full or partial)
//! and an SL/TP change are applied to.
//!
//! Kept in memory and rebuilt from the follower's orders (restored from the journal) when
//! missing: each copy's client_order_id names its relation and master position, and its
//! comment the master volume it stood for.

use std::collections::HashMap;

use crate::orders::OrderBook;
use crate::pb::v1;
use crate::validate::OrderIntent;

/// A master position's copies on one follower.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Link {
    /// The follower's symbol.
    pub symbol: String,
    /// The follower's side of the copies.
    pub side: v1::Side,
    /// Master volume open that the copies stand for.
    pub master_volume: f64,
    /// Follower volume open.
    pub follower_volume: f64,
    /// The copies' client_order_ids (their positions close the master's closes).
    pub open_ids: Vec<String>,
    /// The master's SL/TP last applied.
    pub stops: (f64, f64),
    /// Master volume closed whose copies' close was not made (the follower not ready, or
    /// refusing it): closed with the next close, or when the follower is ready again.
    pub owed: f64,
    /// The master deal and action of the close owed (its copies' ids derive from them).
    pub owed_by: (u64, String),
    /// Rebuilt from the follower's journaled orders (made before this server started).
    pub rebuilt: bool,
    /// The closes already subtracted (their client_order_ids): a rebuild over a live link
    /// does not take them off again.
    pub closed_ids: Vec<String>,
    /// The close owed was refused for this reason (as this order), counted and told: tried
    /// again, a refusal for the same reason is neither counted nor told again.
    pub refusal: Option<(String, OrderIntent)>,
}

/// A relation's links, by master position.
#[derive(Debug, Default)]
pub struct Links {
    /// By master position ticket.
    pub by_position: HashMap<u64, Link>,
    /// Rebuilt from the follower's orders since the relation was added.
    pub rebuilt: bool,
    /// Closes owed before a restart (saved in `copy_stats.json`), by master position: the
    /// master volume and the (deal, action) their ids derive from. Put on the links at the
    /// first rebuild (a link no longer open there owes nothing).
    pub saved_owed: HashMap<u64, (f64, (u64, String))>,
}

/// A close owed: (master position, master volume, master deal, action).
pub type OwedClose = (u64, f64, u64, String);

/// The comment of a copy: the master volume it stands for (rebuilding links after a restart).
#[must_use]
pub fn comment(master_volume: f64) -> String {
    format!("copy m={master_volume}")
}

fn master_volume_of(comment: &str) -> Option<f64> {
    comment.strip_prefix("copy m=")?.parse().ok()
}

/// The master position a copy's client_order_id names, and whether it opened (`o`, `r`, `j`) or
/// closed (`c…`, `d…`).
fn parse_id(relation_id: &str, client_order_id: &str) -> Option<(u64, bool)> {
    let rest = client_order_id
        .strip_prefix(relation_id)?
        .strip_prefix(':')?;
    let mut parts = rest.split(':');
    let position = u64::from_str_radix(parts.next()?, 36).ok()?;
    let _deal = parts.next()?;
    let action = parts.next()?;
    Some((
        position,
        matches!(action, "o" | "r") || action.starts_with('j'),
    ))
}

impl Links {
    /// Rebuilds the links from a follower's orders: opens add, closes subtract (by what was
    /// filled).
    pub fn rebuild(&mut self, relation_id: &str, book: &OrderBook) {
        self.rebuilt = true;
        let mut entries: Vec<&v1::Order> = book
            .by_client_id
            .values()
            .map(|e| &e.order)
            .filter(|o| o.client_order_id.starts_with(relation_id))
            .collect();
        entries.sort_by_key(|o| o.created_time.as_ref().map(|t| (t.seconds, t.nanos)));
        for order in entries {
            let Some((position, open)) = parse_id(relation_id, &order.client_order_id) else {
                continue;
            };
            if open {
                let Some(master) = master_volume_of(&order.comment) else {
                    continue;
                };
                if order.filled_volume <= 0.0 {
                    continue;
                }
                let link = self.by_position.entry(position).or_insert_with(|| Link {
                    symbol: order.symbol.clone(),
                    side: v1::Side::try_from(order.side).unwrap_or(v1::Side::Buy),
                    master_volume: 0.0,
                    follower_volume: 0.0,
                    open_ids: Vec::new(),
                    stops: (order.stop_loss, order.take_profit),
                    rebuilt: true,
                    ..Default::default()
                });
                if !link.open_ids.contains(&order.client_order_id) {
                    link.master_volume += master;
                    link.follower_volume += order.filled_volume;
                    link.open_ids.push(order.client_order_id.clone());
                }
            } else if let Some(link) = self
                .by_position
                .get_mut(&position)
                .filter(|l| !l.closed_ids.contains(&order.client_order_id))
            {
                link.closed_ids.push(order.client_order_id.clone());
                let master = master_volume_of(&order.comment).unwrap_or(0.0);
                link.master_volume -= master;
                link.follower_volume -= order.filled_volume;
                if link.follower_volume <= 1e-9 || link.master_volume <= 1e-9 {
                    self.by_position.remove(&position);
                }
            }
        }
        for (position, (owed, by)) in std::mem::take(&mut self.saved_owed) {
            if let Some(link) = self.by_position.get_mut(&position) {
                if link.owed <= 0.0 {
                    link.owed = owed;
                    link.owed_by = by;
                }
            }
        }
    }

    /// Whether a close is owed (or saved as owed and not yet put on its link).
    #[must_use]
    pub fn owes(&self) -> bool {
        !self.saved_owed.is_empty() || self.by_position.values().any(|l| l.owed > 0.0)
    }

    /// The closes owed, to save.
    #[must_use]
    pub fn owed(&self) -> Vec<OwedClose> {
        let mut owed: Vec<OwedClose> = self
            .by_position
            .iter()
            .filter(|(_, l)| l.owed > 0.0)
            .map(|(p, l)| (*p, l.owed, l.owed_by.0, l.owed_by.1.clone()))
            .chain(
                self.saved_owed
                    .iter()
                    .filter(|(p, _)| !self.by_position.get(p).is_some_and(|l| l.owed > 0.0))
                    .map(|(p, (v, (d, a)))| (*p, *v, *d, a.clone())),
            )
            .collect();
        owed.sort_by_key(|o| o.0);
        owed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_ids_name_their_master_position() {
        let id = crate::copier::spec::copy_id("r1", 1234, 99, "o");
        assert_eq!(parse_id("r1", &id), Some((1234, true)));
        let close = crate::copier::spec::copy_id("r1", 1234, 100, "c0");
        assert_eq!(parse_id("r1", &close), Some((1234, false)));
        assert_eq!(parse_id("r2", &id), None);
        assert_eq!(master_volume_of(&comment(0.3)), Some(0.3));
    }
}
