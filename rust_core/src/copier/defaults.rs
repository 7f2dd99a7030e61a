//! The follower's order defaults (its `execution.json`, and `instance.json`'s
//! `slippage_limit`) as applied to its copies and signals (docs/copier.md, "The follower's
//! defaults").

use super::dispatch::MasterTrade;
use super::spec::sizing;
use super::volume;
use super::Relation;
use crate::pb::terminal as t;
use crate::pb::v1;

/// A follower's order defaults applied to its copies (docs/copier.md): its `execution.json`
/// (and `instance.json`'s `slippage_limit`, already folded into `deviation_points`). 0: none.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Defaults {
    /// Lots of a signal that names no volume (a multiplier or ratio relation).
    pub lot_size: f64,
    /// Percent of a `RISK_PERCENT` relation whose own `risk_percent` is 0.
    pub risk_percent: f64,
    /// Stops of a signal without them (a copy: when the relation asks, `default_stops`), in
    /// the follower symbol's points from its price.
    pub stop_loss_points: f64,
    /// As `stop_loss_points`.
    pub take_profit_points: f64,
    /// Deviation of a copy's market order when the relation sets no `max_deviation_points`.
    pub deviation_points: u32,
}

/// A copy's market order deviation: the relation's `max_deviation_points`, else the
/// follower's default (execution.json `deviation_points` capped by `slippage_limit`).
pub fn deviation(relation: &Relation) -> u32 {
    match relation.spec.max_deviation_points {
        0 => relation.defaults.deviation_points,
        n => n,
    }
}

/// How a trade is sized on a relation: the relation's sizing; a signal's own risk percent;
/// a signal without volume on a multiplier or ratio relation, the follower's default lot; a
/// `RISK_PERCENT` relation without a percent, the follower's default percent.
pub fn sizing_of(relation: &Relation, trade: &MasterTrade) -> volume::Sizing {
    use v1::CopyVolumeMode as Mode;
    let mut sizing = sizing(&relation.spec);
    let defaults = &relation.defaults;
    if trade.risk_percent > 0.0 {
        sizing.mode = Mode::RiskPercent;
        sizing.risk_percent = trade.risk_percent;
    } else if trade.signal_id.is_some()
        && trade.volume <= 0.0
        && defaults.lot_size > 0.0
        && matches!(
            sizing.mode,
            Mode::Multiplier | Mode::EquityRatio | Mode::BalanceRatio
        )
    {
        sizing.mode = Mode::Fixed;
        sizing.fixed_volume = defaults.lot_size;
    }
    if sizing.mode == Mode::RiskPercent && sizing.risk_percent <= 0.0 {
        sizing.risk_percent = defaults.risk_percent;
    }
    sizing
}

/// Whether a copy without stops gets the follower's default ones: a signal's always, a
/// master trade's when its relation asks (`default_stops`); market orders only.
pub fn default_stops_apply(relation: &Relation, trade: &MasterTrade) -> bool {
    trade.order_type == v1::OrderType::Market
        && (trade.signal_id.is_some() || relation.spec.default_stops)
}

/// The follower's default (stop loss, take profit) for a market order of `side` at its
/// current price, rounded to the symbol's digits (0: none, or no price yet).
pub fn default_stops(
    defaults: &Defaults,
    side: v1::Side,
    last: Option<&t::Tick>,
    spec: &t::SymbolInfo,
) -> (f64, f64) {
    let Some(tick) = last.filter(|t| t.ask > 0.0 && t.bid > 0.0) else {
        return (0.0, 0.0);
    };
    let scale = 10f64.powi(i32::try_from(spec.digits.min(12)).unwrap_or(5));
    let round = |x: f64| (x * scale).round() / scale;
    let (price, sign) = if side == v1::Side::Buy {
        (tick.ask, 1.0)
    } else {
        (tick.bid, -1.0)
    };
    let at = |points: f64, direction: f64| {
        if points > 0.0 {
            round(direction.mul_add(points * spec.point, price))
        } else {
            0.0
        }
    };
    (
        at(defaults.stop_loss_points, -sign),
        at(defaults.take_profit_points, sign),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eurusd() -> t::SymbolInfo {
        t::SymbolInfo {
            digits: 5,
            point: 0.000_01,
            ..Default::default()
        }
    }

    fn tick() -> t::Tick {
        t::Tick {
            bid: 1.084_94,
            ask: 1.085_04,
            ..Default::default()
        }
    }

    #[test]
    fn default_stops_are_points_from_the_followers_price() {
        let d = Defaults {
            stop_loss_points: 40.0,
            take_profit_points: 80.0,
            ..Default::default()
        };
        let (sl, tp) = default_stops(&d, v1::Side::Buy, Some(&tick()), &eurusd());
        assert!(
            (sl - 1.084_64).abs() < 1e-9 && (tp - 1.085_84).abs() < 1e-9,
            "{sl} {tp}"
        );
        let (sl, tp) = default_stops(&d, v1::Side::Sell, Some(&tick()), &eurusd());
        assert!(
            (sl - 1.085_34).abs() < 1e-9 && (tp - 1.084_14).abs() < 1e-9,
            "{sl} {tp}"
        );
        let none = Defaults::default();
        assert_eq!(
            default_stops(&none, v1::Side::Buy, Some(&tick()), &eurusd()),
            (0.0, 0.0)
        );
        assert_eq!(
            default_stops(&d, v1::Side::Buy, None, &eurusd()),
            (0.0, 0.0)
        );
    }
}
