//! From the worker protocol (MT5 numbering) to the public API types.

use prost_types::Timestamp;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::pb::terminal as t;
use crate::pb::v1;

/// A timestamp from milliseconds since the epoch.
pub fn ts_msc(msc: i64) -> Timestamp {
    Timestamp {
        seconds: msc.div_euclid(1000),
        nanos: i32::try_from(msc.rem_euclid(1000) * 1_000_000).unwrap_or(0),
    }
}

/// The current time.
pub fn now() -> Timestamp {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
    }
}

/// Nanoseconds since the epoch of a timestamp (0 when unset).
pub fn timestamp_nanos(t: Option<&Timestamp>) -> i64 {
    t.map_or(0, |t| {
        t.seconds
            .saturating_mul(1_000_000_000)
            .saturating_add(i64::from(t.nanos))
    })
}

/// Now, nanoseconds since the epoch.
pub fn now_nanos() -> i64 {
    timestamp_nanos(Some(&now()))
}

/// Now, milliseconds since the epoch.
pub fn now_msc() -> i64 {
    let now = now();
    now.seconds * 1000 + i64::from(now.nanos / 1_000_000)
}

/// MT5 `ORDER_TYPE_BUY`/`SELL` (and `DEAL_TYPE_*`, `POSITION_TYPE_*`) from a side.
pub fn mt5_side(side: v1::Side) -> u32 {
    match side {
        v1::Side::Sell => 1,
        _ => 0,
    }
}

/// A side from MT5's buy (0) / sell (1) numbering.
pub fn side_of(mt5_type: u32) -> v1::Side {
    match mt5_type {
        0 => v1::Side::Buy,
        1 => v1::Side::Sell,
        _ => v1::Side::Unspecified,
    }
}

/// The public tick.
pub fn tick(instance_id: &str, tick: &t::Tick, received: Timestamp) -> v1::Tick {
    v1::Tick {
        instance_id: instance_id.to_owned(),
        symbol: tick.symbol.clone(),
        bid: tick.bid,
        ask: tick.ask,
        last: tick.last,
        volume: tick.volume,
        time: Some(ts_msc(tick.time_msc)),
        received_time: Some(received),
    }
}

/// MT5 `ACCOUNT_MARGIN_MODE_*` to the public enum.
pub fn margin_mode(mode: u32) -> v1::AccountMarginMode {
    match mode {
        2 => v1::AccountMarginMode::Hedging,
        _ => v1::AccountMarginMode::Netting,
    }
}

/// The public account.
pub fn account(instance_id: &str, a: &t::AccountSnapshot) -> v1::Account {
    v1::Account {
        instance_id: instance_id.to_owned(),
        login: a.login,
        currency: a.currency.clone(),
        balance: a.balance,
        equity: a.equity,
        margin: a.margin,
        free_margin: a.margin_free,
        margin_level: a.margin_level,
        leverage: a.leverage,
        profit: a.profit,
        margin_mode: margin_mode(a.margin_mode) as i32,
        server: a.server.clone(),
        update_time: Some(ts_msc(a.time_msc)),
    }
}

/// The public position.
pub fn position(instance_id: &str, p: &t::Position) -> v1::Position {
    v1::Position {
        instance_id: instance_id.to_owned(),
        position_id: p.ticket,
        symbol: p.symbol.clone(),
        side: side_of(p.r#type) as i32,
        volume: p.volume,
        price_open: p.price_open,
        price_current: p.price_current,
        stop_loss: p.sl,
        take_profit: p.tp,
        profit: p.profit,
        swap: p.swap,
        open_time: Some(ts_msc(p.time_msc)),
        comment: p.comment.clone(),
    }
}

/// The public symbol specification.
pub fn symbol(s: &t::SymbolInfo) -> v1::SymbolSpec {
    let mut filling = Vec::new();
    if s.filling_mode & 1 != 0 {
        filling.push(v1::FillingMode::Fok as i32);
    }
    if s.filling_mode & 2 != 0 {
        filling.push(v1::FillingMode::Ioc as i32);
    }
    filling.push(v1::FillingMode::Return as i32);
    v1::SymbolSpec {
        name: s.name.clone(),
        digits: s.digits,
        point: s.point,
        contract_size: s.contract_size,
        volume_min: s.volume_min,
        volume_max: s.volume_max,
        volume_step: s.volume_step,
        stops_level: s.stops_level,
        freeze_level: s.freeze_level,
        filling_modes: filling,
        currency_base: s.currency_base.clone(),
        currency_profit: s.currency_profit.clone(),
        currency_margin: s.currency_margin.clone(),
        tick_value: s.tick_value,
        tick_size: s.tick_size,
    }
}

/// MT5 `DEAL_ENTRY_*` to the public enum.
pub fn fill_entry(entry: u32) -> v1::FillEntry {
    match entry {
        0 => v1::FillEntry::In,
        1 => v1::FillEntry::Out,
        2 => v1::FillEntry::Inout,
        3 => v1::FillEntry::OutBy,
        _ => v1::FillEntry::Unspecified,
    }
}

/// MT5 `DEAL_REASON_*` to the public enum.
pub fn fill_reason(reason: u32) -> v1::FillReason {
    match reason {
        0..=2 => v1::FillReason::Client,
        3 => v1::FillReason::Expert,
        4 => v1::FillReason::StopLoss,
        5 => v1::FillReason::TakeProfit,
        6 => v1::FillReason::StopOut,
        _ => v1::FillReason::Broker,
    }
}

/// The public fill; `reference_price` (0: none) gives the slippage in points.
pub fn fill(
    instance_id: &str,
    d: &t::DealReport,
    client_order_id: &str,
    reference_price: f64,
    point: f64,
) -> v1::Fill {
    let side = side_of(d.r#type);
    let slippage_points = if reference_price > 0.0 && point > 0.0 {
        let worse = match side {
            v1::Side::Sell => reference_price - d.price,
            _ => d.price - reference_price,
        };
        (worse / point * 10.0).round() / 10.0
    } else {
        0.0
    };
    v1::Fill {
        instance_id: instance_id.to_owned(),
        deal_id: d.ticket,
        order_id: d.order,
        position_id: d.position_id,
        client_order_id: client_order_id.to_owned(),
        symbol: d.symbol.clone(),
        side: side as i32,
        entry: fill_entry(d.entry) as i32,
        volume: d.volume,
        price: d.price,
        slippage_points,
        profit: d.profit,
        commission: d.commission,
        swap: d.swap,
        time: Some(ts_msc(d.time_msc)),
        reason: fill_reason(d.reason) as i32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_from_milliseconds() {
        assert_eq!(
            ts_msc(1_500),
            Timestamp {
                seconds: 1,
                nanos: 500_000_000
            }
        );
        assert_eq!(
            ts_msc(-1),
            Timestamp {
                seconds: -1,
                nanos: 999_000_000
            }
        );
    }

    #[test]
    fn slippage_is_positive_when_worse() {
        let deal = t::DealReport {
            r#type: 0,
            price: 1.08512,
            ..Default::default()
        };
        let f = fill("a", &deal, "c", 1.08510, 0.00001);
        assert!((f.slippage_points - 2.0).abs() < 1e-9);
        let deal = t::DealReport {
            r#type: 1,
            price: 1.08512,
            ..Default::default()
        };
        let f = fill("a", &deal, "c", 1.08510, 0.00001);
        assert!(
            (f.slippage_points + 2.0).abs() < 1e-9,
            "a better sell price is negative"
        );
    }

    #[test]
    fn sides_and_filling() {
        assert_eq!(side_of(mt5_side(v1::Side::Sell)), v1::Side::Sell);
        assert_eq!(side_of(mt5_side(v1::Side::Buy)), v1::Side::Buy);
        let s = symbol(&t::SymbolInfo {
            filling_mode: 3,
            ..Default::default()
        });
        assert_eq!(s.filling_modes.len(), 3);
    }
}
