//! What operators watch per instance, read when Prometheus scrapes: the executions counted
//! where their events are published ([`Counts`], under the event log's lock that publishing
//! holds anyway), and gauges read from the live state then ([`gauges`]: account, spread per
//! symbol, the worker's memory and CPU).

use std::collections::HashMap;
use std::sync::Arc;

use crate::pb::v1;
use crate::retcode;
use crate::shared::Shared;
use crate::supervisor::{stats, Instance};

/// Upper bounds of the slippage buckets, in points (positive is worse than requested): the
/// first counts fills at the price asked or better (a histogram with negative bounds would
/// have no sum nor count in Prometheus' format; the sum keeps improvements, negative).
pub const SLIPPAGE_BOUNDS: [f64; 9] = [0.0, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0];

/// Statuses an order update can carry (`mt5exec.v1.OrderStatus` values 0 to 9).
const STATUSES: usize = 10;

/// Fills of one symbol.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct SymbolCounts {
    /// Fills (deals).
    pub fills: u64,
    /// Their volume in lots.
    pub volume: f64,
    /// Commission charged, in the account's currency (its absolute value).
    pub commission: f64,
    /// Client fills with a requested price, by slippage bucket (the last: above every bound).
    pub slippage: [u64; SLIPPAGE_BOUNDS.len() + 1],
    /// The sum of their slippage in points.
    pub slippage_sum: f64,
}

/// One instance's executions since the server started.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Counts {
    /// Fills by symbol.
    pub symbols: HashMap<String, SymbolCounts>,
    /// Rejected orders by reason: a risk check's, or the terminal's retcode name.
    pub rejections: HashMap<String, u64>,
    /// Order updates published, by status.
    pub statuses: [u64; STATUSES],
}

impl Counts {
    /// Counts an event that stands for `refusals` refused orders (0: one event).
    pub fn count(&mut self, event: &v1::execution_event::Event, refusals: u64) {
        match event {
            v1::execution_event::Event::Fill(fill) => self.fill(fill),
            v1::execution_event::Event::OrderUpdate(order) => {
                let times = refusals.max(1);
                if let Some(n) = usize::try_from(order.status)
                    .ok()
                    .and_then(|s| self.statuses.get_mut(s))
                {
                    *n += times;
                }
                if order.status == v1::OrderStatus::Rejected as i32 {
                    // A risk check's reason; else the terminal's retcode (none: an order the
                    // terminal rejected on its own, e.g. a triggered one the account could
                    // not afford).
                    let reason = if !order.reject_reason.is_empty() {
                        order.reject_reason.as_str()
                    } else if order.retcode == 0 {
                        "NO_RETCODE"
                    } else {
                        retcode::lookup(order.retcode).name
                    };
                    match self.rejections.get_mut(reason) {
                        Some(n) => *n += times,
                        None => {
                            self.rejections.insert(reason.to_owned(), times);
                        }
                    }
                }
            }
        }
    }

    fn fill(&mut self, fill: &v1::Fill) {
        let counts = match self.symbols.get_mut(&fill.symbol) {
            Some(counts) => counts,
            None => self.symbols.entry(fill.symbol.clone()).or_default(),
        };
        counts.fills += 1;
        counts.volume += fill.volume;
        counts.commission += fill.commission.abs();
        // Slippage means something for an order's own fill, against the price it asked for.
        let client = matches!(
            v1::FillReason::try_from(fill.reason),
            Ok(v1::FillReason::Client | v1::FillReason::Expert)
        );
        if client && !fill.client_order_id.is_empty() && fill.slippage_points.is_finite() {
            let bucket = SLIPPAGE_BOUNDS.partition_point(|&b| b < fill.slippage_points);
            counts.slippage[bucket] += 1;
            counts.slippage_sum += fill.slippage_points;
        }
    }
}

/// The names of the order statuses counted, by value.
pub fn status_name(status: usize) -> &'static str {
    i32::try_from(status)
        .ok()
        .and_then(|s| v1::OrderStatus::try_from(s).ok())
        .map_or("ORDER_STATUS_UNSPECIFIED", |s| s.as_str_name())
}

/// One instance's gauges.
#[derive(Debug, Clone, PartialEq)]
pub struct Gauges {
    /// The instance.
    pub instance_id: String,
    /// (balance, equity, margin level in percent, leverage) once the worker reported them.
    pub account: Option<(f64, f64, f64, u32)>,
    /// (symbol, spread of its last tick in points).
    pub spreads: Vec<(String, f64)>,
    /// The worker's (resident bytes, CPU seconds) while it runs.
    pub worker: Option<(u64, f64)>,
}

fn instances(shared: &Shared) -> Vec<Arc<Instance>> {
    let mut all: Vec<Arc<Instance>> = shared.instances.read().values().cloned().collect();
    all.sort_by(|a, b| a.spec.instance_id.cmp(&b.spec.instance_id));
    all
}

/// The order journal's (usable, failed appends and fsyncs); None without a journal.
pub fn journal_health(shared: &Shared) -> Option<(bool, u64)> {
    shared.journal.as_ref().map(|j| {
        let failures = j.stats.failures.load(std::sync::atomic::Ordering::Relaxed);
        (!j.is_broken(), failures)
    })
}

/// Every instance's counts, by id.
pub fn counts(shared: &Shared) -> Vec<(String, Counts)> {
    instances(shared)
        .into_iter()
        .map(|i| (i.spec.instance_id.clone(), i.events.counts()))
        .collect()
}

/// Every instance's gauges (the worker's figures read from `/proc` now, outside any lock).
pub fn gauges(shared: &Shared) -> Vec<Gauges> {
    instances(shared)
        .into_iter()
        .map(|instance| {
            let (account, mut spreads, pid) = {
                let live = instance.live.lock();
                let account = live
                    .account
                    .as_ref()
                    .map(|a| (a.balance, a.equity, a.margin_level, a.leverage));
                let spreads: Vec<(String, f64)> = live
                    .last_ticks
                    .iter()
                    .filter_map(|(symbol, tick)| {
                        let point = live.symbols.get(symbol)?.point;
                        (point > 0.0 && tick.ask > 0.0 && tick.bid > 0.0).then(|| {
                            let points = ((tick.ask - tick.bid) / point * 10.0).round() / 10.0;
                            (symbol.clone(), points)
                        })
                    })
                    .collect();
                (
                    account,
                    spreads,
                    (live.running && live.pid != 0).then_some(live.pid),
                )
            };
            spreads.sort_by(|a, b| a.0.cmp(&b.0));
            let worker = pid.and_then(|pid| {
                let cpu = stats::cpu_seconds(pid)?;
                Some((stats::rss_bytes(pid), cpu))
            });
            Gauges {
                instance_id: instance.spec.instance_id.clone(),
                account,
                spreads,
                worker,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fill(symbol: &str, slippage: f64, reason: v1::FillReason) -> v1::execution_event::Event {
        v1::execution_event::Event::Fill(v1::Fill {
            symbol: symbol.into(),
            client_order_id: "c".into(),
            volume: 0.5,
            commission: -1.25,
            slippage_points: slippage,
            reason: reason as i32,
            ..Default::default()
        })
    }

    fn order(status: v1::OrderStatus, retcode: u32, reason: &str) -> v1::execution_event::Event {
        v1::execution_event::Event::OrderUpdate(v1::Order {
            status: status as i32,
            retcode,
            reject_reason: reason.into(),
            ..Default::default()
        })
    }

    #[test]
    fn fills_are_counted_by_symbol_with_their_slippage_and_commission() {
        let mut c = Counts::default();
        c.count(&fill("EURUSD", 0.0, v1::FillReason::Client), 0);
        c.count(&fill("EURUSD", 3.0, v1::FillReason::Expert), 0);
        c.count(&fill("EURUSD", 500.0, v1::FillReason::StopLoss), 0);
        c.count(&fill("XAUUSD", -30.0, v1::FillReason::Client), 0);
        let eur = &c.symbols["EURUSD"];
        assert_eq!(eur.fills, 3);
        assert!((eur.volume - 1.5).abs() < 1e-9);
        assert!((eur.commission - 3.75).abs() < 1e-9);
        // 0 in the bucket bounded by 0, 3 in the one bounded by 5; the stop loss not at all.
        assert_eq!(eur.slippage.iter().sum::<u64>(), 2);
        assert_eq!(eur.slippage[0], 1);
        assert_eq!(eur.slippage[4], 1);
        assert!((eur.slippage_sum - 3.0).abs() < 1e-9);
        // A better price than asked: the first bucket, and a negative sum.
        let xau = &c.symbols["XAUUSD"];
        assert_eq!(xau.slippage[0], 1);
        assert!((xau.slippage_sum + 30.0).abs() < 1e-9);
    }

    #[test]
    fn rejections_are_counted_by_risk_reason_or_retcode_name() {
        let mut c = Counts::default();
        c.count(&order(v1::OrderStatus::Rejected, 10019, ""), 0);
        c.count(
            &order(v1::OrderStatus::Rejected, 0, "MAX_OPEN_POSITIONS"),
            0,
        );
        c.count(&order(v1::OrderStatus::Rejected, 0, "RATE_LIMITED"), 7);
        c.count(&order(v1::OrderStatus::Rejected, 4, ""), 0);
        c.count(&order(v1::OrderStatus::Rejected, 0, ""), 0);
        c.count(&order(v1::OrderStatus::PartiallyFilled, 10010, ""), 0);
        assert_eq!(c.rejections["NO_MONEY"], 1);
        assert_eq!(c.rejections["MAX_OPEN_POSITIONS"], 1);
        assert_eq!(c.rejections["RATE_LIMITED"], 7);
        assert_eq!(c.rejections["UNKNOWN_RETCODE"], 1);
        assert_eq!(c.rejections["NO_RETCODE"], 1);
        assert_eq!(c.statuses[v1::OrderStatus::Rejected as usize], 11);
        assert_eq!(c.statuses[v1::OrderStatus::PartiallyFilled as usize], 1);
        assert_eq!(status_name(4), "ORDER_STATUS_PARTIALLY_FILLED");
    }
}
