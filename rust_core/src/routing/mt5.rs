//! MT5 numbers and rules: order types, fillings, time in force, states, the comment key
//! and when a requoted order may be sent again.

use crate::pb::terminal as t;
use crate::pb::v1;
use crate::pb::v1::OrderStatus as S;

/// The price to re-send a requoted market order at, when that is safe: the terminal's new
/// price is within the client's deviation of the price the order was first sent at (so the
/// client gets no worse than it asked for), and the order allowed a deviation at all.
pub fn safe_retry_price(
    buy: bool,
    result: &t::OrderResult,
    reference_price: f64,
    deviation_points: u64,
    point: f64,
) -> Option<f64> {
    let requoted = matches!(result.retcode, 10004 | 10020 | 10021); // REQUOTE, PRICE_CHANGED, PRICE_OFF
    let price = if buy { result.ask } else { result.bid };
    let allowed = deviation_points as f64 * point;
    (requoted
        && price > 0.0
        && allowed > 0.0
        && (price - reference_price).abs() <= allowed + point * 1e-6)
        .then_some(price)
}

/// MT5 comments hold 31 characters: longer client order ids travel as a hash.
pub fn comment_key(client_order_id: &str) -> String {
    if client_order_id.len() <= 31 {
        return client_order_id.to_owned();
    }
    // FNV-1a: stable across builds and languages, so reconciliation can recompute it.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in client_order_id.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("#{hash:016x}")
}

pub(super) fn mt5_order_type(side: v1::Side, order_type: v1::OrderType) -> u32 {
    let sell = u32::from(side == v1::Side::Sell);
    match order_type {
        v1::OrderType::Limit => 2 + sell,
        v1::OrderType::Stop => 4 + sell,
        v1::OrderType::StopLimit => 6 + sell,
        _ => sell,
    }
}

pub(super) fn order_type_of(mt5_type: u32) -> (v1::Side, v1::OrderType) {
    let side = if mt5_type % 2 == 0 {
        v1::Side::Buy
    } else {
        v1::Side::Sell
    };
    let kind = match mt5_type {
        2 | 3 => v1::OrderType::Limit,
        4 | 5 => v1::OrderType::Stop,
        6 | 7 => v1::OrderType::StopLimit,
        _ => v1::OrderType::Market,
    };
    (side, kind)
}

pub(super) fn mt5_type_time(tif: i32) -> u32 {
    match v1::TimeInForce::try_from(tif) {
        Ok(v1::TimeInForce::Day) => 1,
        Ok(v1::TimeInForce::Specified) => 2,
        _ => 0,
    }
}

pub(super) fn mt5_filling(requested: i32, spec: &t::SymbolInfo) -> u32 {
    match v1::FillingMode::try_from(requested) {
        Ok(v1::FillingMode::Fok) => 0,
        Ok(v1::FillingMode::Ioc) => 1,
        Ok(v1::FillingMode::Return) => 2,
        // Chosen from what the symbol allows: FOK, then IOC, then RETURN.
        _ if spec.filling_mode & 1 != 0 => 0,
        _ if spec.filling_mode & 2 != 0 => 1,
        _ => 2,
    }
}

pub(super) fn filling_v1(mt5_filling: u32) -> v1::FillingMode {
    match mt5_filling {
        0 => v1::FillingMode::Fok,
        1 => v1::FillingMode::Ioc,
        _ => v1::FillingMode::Return,
    }
}

/// Order status for an MT5 `ORDER_STATE_*`.
pub(super) fn status_of_state(state: u32) -> S {
    match state {
        1 => S::Accepted,
        2 => S::Canceled,
        3 => S::PartiallyFilled,
        4 => S::Filled,
        5 => S::Rejected,
        6 => S::Expired,
        _ => S::Submitted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requotes_are_retried_only_within_the_deviation() {
        let requote = |bid: f64, ask: f64| t::OrderResult {
            retcode: 10004,
            bid,
            ask,
            ..Default::default()
        };
        let point = 0.00001;
        // Bought at 1.08510 with 5 points of deviation: 1.08514 is fine, 1.08516 is not.
        assert_eq!(
            safe_retry_price(true, &requote(1.08504, 1.08514), 1.08510, 5, point),
            Some(1.08514)
        );
        assert_eq!(
            safe_retry_price(true, &requote(1.08506, 1.08516), 1.08510, 5, point),
            None
        );
        assert_eq!(
            safe_retry_price(false, &requote(1.08506, 1.08516), 1.08510, 5, point),
            Some(1.08506)
        );
        assert_eq!(
            safe_retry_price(true, &requote(1.0851, 1.0851), 1.0851, 0, point),
            None,
            "no deviation, no retry"
        );
        let rejected = t::OrderResult {
            retcode: 10006,
            ask: 1.0851,
            ..Default::default()
        };
        assert_eq!(
            safe_retry_price(true, &rejected, 1.0851, 5, point),
            None,
            "only requotes"
        );
    }

    #[test]
    fn comments_fit_mt5() {
        assert_eq!(comment_key("abc"), "abc");
        let long = "x".repeat(64);
        let c = comment_key(&long);
        assert_eq!(c.len(), 17);
        assert_eq!(c, comment_key(&long), "stable");
        assert_ne!(c, comment_key(&"y".repeat(64)));
    }

    #[test]
    fn order_types_round_trip_through_mt5_numbers() {
        for side in [v1::Side::Buy, v1::Side::Sell] {
            for kind in [
                v1::OrderType::Market,
                v1::OrderType::Limit,
                v1::OrderType::Stop,
                v1::OrderType::StopLimit,
            ] {
                assert_eq!(order_type_of(mt5_order_type(side, kind)), (side, kind));
            }
        }
    }

    #[test]
    fn filling_follows_the_symbol_when_not_given() {
        let fok_ioc = t::SymbolInfo {
            filling_mode: 3,
            ..Default::default()
        };
        let ioc = t::SymbolInfo {
            filling_mode: 2,
            ..Default::default()
        };
        assert_eq!(mt5_filling(0, &fok_ioc), 0);
        assert_eq!(mt5_filling(0, &ioc), 1);
        assert_eq!(mt5_filling(0, &t::SymbolInfo::default()), 2);
        assert_eq!(mt5_filling(v1::FillingMode::Return as i32, &fok_ioc), 2);
    }
}
