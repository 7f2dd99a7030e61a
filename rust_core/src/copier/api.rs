//! The engine's copier calls: relations added (checked against the follower's symbols,
//! copying the master's open positions on a late join), removed (closing their copies or
//! not), listed, their statistics, and signals.

use crate::reason;
use prost::Message;
use std::sync::Arc;
use std::time::Instant;

use super::close;
use super::dispatch::{self, MasterTrade};
use super::signal::{self, SignalCopy};
use super::state::Saved;
use super::{mapping, spec, Defaults, Relation};
use crate::engine::Engine;
use crate::error::{EngineError, Result};
use crate::latency;
use crate::pb::v1;

fn decode(raw: &[u8]) -> Result<v1::CopyRelation> {
    v1::CopyRelation::decode(raw).map_err(|e| {
        EngineError::invalid(
            "relation",
            reason::REQUEST_INVALID,
            format!("relation: {e}"),
        )
    })
}

/// What one relation did, for /metrics.
#[derive(Debug)]
pub struct RelationMetrics {
    /// The relation.
    pub relation_id: String,
    /// Its owner (ids are the owner's own).
    pub owner: String,
    /// Follower orders sent.
    pub copies: u64,
    /// Copies not made, by reason.
    pub skipped: Vec<(String, u64)>,
    /// Master deal in → follower order out (None before a first copy).
    pub latency: Option<latency::Snapshot>,
    /// Follower fills measured against the master's price.
    pub fills: u64,
    /// Their slippage, in points, summed.
    pub slippage_sum: f64,
    /// The worst of them.
    pub slippage_max: f64,
}

impl Engine {
    /// Adds a relation (an encoded `CopyRelation`, owner and times set by the caller) with
    /// its follower's defaults (and, restored, the state it saved); returns it encoded.
    /// `created`: made now by a client (its symbols are checked against the follower's; the
    /// late join is [`Engine::copy_late_join`], once saved), not restored.
    ///
    /// # Errors
    /// `INVALID_ARGUMENT` naming the field, `NOT_FOUND` for an unknown instance (when
    /// created), `ALREADY_EXISTS` (the owner has the id).
    pub fn add_copy_relation(
        &self,
        raw: &[u8],
        created: bool,
        defaults: Defaults,
        saved: Option<&Saved>,
    ) -> Result<Vec<u8>> {
        let relation = decode(raw)?;
        spec::validate(&relation)?;
        let shared = self.shared();
        if created {
            let follower = shared.instance(&relation.follower_instance_id)?;
            let master_symbols: Vec<String> = if relation.master_instance_id.is_empty() {
                Vec::new()
            } else {
                let master = shared.instance(&relation.master_instance_id)?;
                let live = master.live.lock();
                live.symbols.keys().cloned().collect()
            };
            check_symbols(&relation, &follower.live.lock().symbols, &master_symbols)?;
        }
        let added = shared.copier.add(relation, defaults)?;
        if let Some(saved) = saved {
            added.restore(saved);
        }
        if !created && !added.spec.master_instance_id.is_empty() {
            super::recovery::spawn(shared, &added);
        }
        Ok(added.spec.encode_to_vec())
    }

    /// A relation just made (and saved): with `COPY_LATE_JOIN_OPEN_POSITIONS`, the master's
    /// open positions (and, `copy_pending`, its pending orders) are copied now. Apart from
    /// [`Engine::add_copy_relation`] so that no copy is made for a relation not saved.
    ///
    /// # Errors
    /// `NOT_FOUND`.
    pub fn copy_late_join(&self, owner: &str, relation_id: &str) -> Result<()> {
        let relation = self
            .shared()
            .copier
            .get(owner, relation_id)
            .ok_or_else(|| relation_not_found(relation_id))?;
        if relation.spec.late_join == v1::CopyLateJoin::OpenPositions as i32
            && !relation.spec.master_instance_id.is_empty()
        {
            late_join(self, &relation);
        }
        Ok(())
    }

    /// Removes an owner's relation, closing its copies still open when `close`; returns it
    /// encoded. The closes it still owes (the follower was not ready, or refused them) are
    /// made when the follower is ready.
    ///
    /// # Errors
    /// `NOT_FOUND`.
    pub fn remove_copy_relation(
        &self,
        owner: &str,
        relation_id: &str,
        close: bool,
    ) -> Result<Vec<u8>> {
        let shared = self.shared();
        let relation = shared
            .copier
            .remove(owner, relation_id)
            .ok_or_else(|| relation_not_found(relation_id))?;
        if close {
            let started = Instant::now();
            let _hold = shared.notifier.hold();
            for job in close::close_all_jobs(shared, &relation) {
                let _ = dispatch::submit(shared, job, started, true);
            }
        }
        let encoded = relation.spec.encode_to_vec();
        shared.copier.drain(relation);
        Ok(encoded)
    }

    /// Instance `instance_id` was deleted: every relation naming it (master or follower) is
    /// removed, its copies left open, and nothing owed to it as a follower is kept (an
    /// instance made again under the id, perhaps by another owner, is another account); a
    /// relation whose master it was still makes the closes it owed its follower. Returns
    /// whether any relation (current or removed and owing) was let go.
    pub fn copy_instance_deleted(&self, instance_id: &str) -> bool {
        let copier = &self.shared().copier;
        let mut changed = false;
        for relation in copier.naming(instance_id) {
            let Some(removed) = copier.remove(&relation.spec.owner, &relation.spec.relation_id)
            else {
                continue;
            };
            changed = true;
            if removed.spec.follower_instance_id != instance_id {
                copier.drain(removed);
            }
        }
        copier.forget_follower(instance_id) || changed
    }

    /// Every relation, encoded, by id.
    pub fn copy_relations(&self) -> Vec<Vec<u8>> {
        self.shared()
            .copier
            .all()
            .iter()
            .map(|r| r.spec.encode_to_vec())
            .collect()
    }

    /// An owner's relation, as an encoded `GetCopyRelationResponse`.
    ///
    /// # Errors
    /// `NOT_FOUND`.
    pub fn get_copy_relation(&self, owner: &str, relation_id: &str) -> Result<Vec<u8>> {
        let relation = self
            .shared()
            .copier
            .get(owner, relation_id)
            .ok_or_else(|| relation_not_found(relation_id))?;
        Ok(v1::GetCopyRelationResponse {
            relation: Some(relation.spec.clone()),
            stats: Some(relation.stats.to_pb()),
        }
        .encode_to_vec())
    }

    /// Every relation's state to save.
    pub fn copy_states(&self) -> Vec<Saved> {
        self.shared()
            .copier
            .all()
            .iter()
            .map(|r| r.saved())
            .collect()
    }

    /// Every removed relation still owing closes: encoded, with its state to save.
    pub fn removed_copy_states(&self) -> Vec<(Vec<u8>, Saved)> {
        self.shared()
            .copier
            .removed_owing()
            .iter()
            .map(|r| (r.spec.encode_to_vec(), r.saved()))
            .collect()
    }

    /// A removed relation that owed closes when the server stopped (encoded, with its
    /// follower's defaults and the state it saved): its closes are made when the follower is
    /// ready, and only those.
    ///
    /// # Errors
    /// `INVALID_ARGUMENT` for a relation that does not decode.
    pub fn restore_removed_copy_relation(
        &self,
        raw: &[u8],
        defaults: Defaults,
        saved: &Saved,
    ) -> Result<()> {
        let relation = decode(raw)?;
        let shared = self.shared();
        let removed = shared.copier.restore_removed(relation, defaults);
        removed.restore(saved);
        // The follower ready already: made now (else when it is).
        super::recovery::close_owed(shared, &removed, super::recovery::Gone::No);
        Ok(())
    }

    /// What every relation did, for /metrics.
    pub fn copy_metrics(&self) -> Vec<RelationMetrics> {
        self.shared()
            .copier
            .all()
            .iter()
            .map(|r| {
                let s = &r.stats;
                let (fills, slippage_sum, slippage_max) = *s.slippage.lock();
                RelationMetrics {
                    relation_id: r.spec.relation_id.clone(),
                    owner: r.spec.owner.clone(),
                    copies: s.copies.load(std::sync::atomic::Ordering::Relaxed),
                    skipped: s.skipped_counts(),
                    latency: s.latency.snapshot(),
                    fills,
                    slippage_sum,
                    slippage_max,
                }
            })
            .collect()
    }

    /// A signal of `source` copied by every relation following it: per relation, the
    /// follower, the copy's client_order_id and its order's token (or the refusal).
    #[allow(clippy::too_many_arguments)]
    pub fn copy_signal(
        &self,
        source: &str,
        signal_id: &str,
        symbol: &str,
        side: i32,
        volume: f64,
        risk_percent: f64,
        price: f64,
        stop_loss: f64,
        take_profit: f64,
    ) -> Vec<SignalCopy> {
        let side = match v1::Side::try_from(side) {
            Ok(v1::Side::Sell) => v1::Side::Sell,
            _ => v1::Side::Buy,
        };
        signal::copy_signal(
            self.shared(),
            source,
            signal_id,
            symbol,
            side,
            volume,
            risk_percent,
            price,
            stop_loss,
            take_profit,
        )
    }
}

fn relation_not_found(relation_id: &str) -> EngineError {
    EngineError::new(
        crate::error::Code::NotFound,
        reason::RELATION_NOT_FOUND,
        format!("relation_id: no copy relation '{relation_id}'"),
    )
    .field("relation_id")
}

/// Every follower symbol the relation would use exists on the follower (once it reported
/// its symbols).
fn check_symbols(
    r: &v1::CopyRelation,
    follower: &std::collections::HashMap<String, crate::pb::terminal::SymbolInfo>,
    master_symbols: &[String],
) -> Result<()> {
    if follower.is_empty() {
        return Ok(());
    }
    let missing = |name: &String| !follower.contains_key(name);
    if let Some(name) = r.symbol_map.values().find(|n| missing(n)) {
        return Err(EngineError::invalid(
            "relation.symbol_map",
            reason::SYMBOL_NOT_ON_FOLLOWER,
            format!("relation.symbol_map: the follower has no symbol '{name}'"),
        ));
    }
    if let Some(name) = mapping::named_symbols(r).iter().find(|n| missing(n)) {
        return Err(EngineError::invalid(
            "relation.symbols",
            reason::SYMBOL_NOT_ON_FOLLOWER,
            format!("relation.symbols: the follower has no symbol '{name}'"),
        ));
    }
    if (!r.symbol_prefix.is_empty() || !r.symbol_suffix.is_empty()) && r.symbols.is_empty() {
        let mapped: Vec<String> = master_symbols
            .iter()
            .filter(|s| !r.symbol_map.contains_key(*s) && !r.exclude_symbols.contains(s))
            .map(|s| mapping::follower_symbol(r, s))
            .collect();
        if let Some(name) = mapped.iter().find(|n| missing(n)) {
            return Err(EngineError::invalid(
                "relation.symbol_suffix",
                reason::SYMBOL_NOT_ON_FOLLOWER,
                format!("relation.symbol_suffix: the follower has no symbol '{name}'"),
            ));
        }
    }
    Ok(())
}

/// Copies the master's open positions at market (a relation created with
/// `COPY_LATE_JOIN_OPEN_POSITIONS`).
fn late_join(engine: &Engine, relation: &Arc<Relation>) {
    let shared = engine.shared();
    let Ok(master) = shared.instance(&relation.spec.master_instance_id) else {
        return;
    };
    let trades: Vec<MasterTrade> = {
        let live = master.live.lock();
        let (balance, equity) = live
            .account
            .as_ref()
            .map_or((0.0, 0.0), |a| (a.balance, a.equity));
        live.positions
            .iter()
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
                price: p.price_current,
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
    let started = Instant::now();
    for trade in trades {
        dispatch::open(shared, relation, &trade, started);
    }
    super::pending::copy_open(shared, relation, i64::MIN);
}
