//! Which master trades a relation copies (filters), and under which follower symbol.

use crate::pb::v1;
use crate::reason;

/// The follower's symbol for a master symbol: the map's entry, else prefix + symbol + suffix.
#[must_use]
pub fn follower_symbol(r: &v1::CopyRelation, master_symbol: &str) -> String {
    match r.symbol_map.get(master_symbol) {
        Some(mapped) => mapped.clone(),
        None => format!("{}{master_symbol}{}", r.symbol_prefix, r.symbol_suffix),
    }
}

/// Every follower symbol the relation names (its map and its copied symbols), to check
/// against the follower's symbols at creation.
#[must_use]
pub fn named_symbols(r: &v1::CopyRelation) -> Vec<String> {
    let mut all: Vec<String> = r.symbol_map.values().cloned().collect();
    all.extend(
        r.symbols
            .iter()
            .filter(|s| !r.symbol_map.contains_key(*s))
            .map(|s| follower_symbol(r, s)),
    );
    all.sort();
    all.dedup();
    all
}

/// What a master trade is, for the filters.
#[derive(Debug, Clone, Copy)]
pub struct Trade<'a> {
    /// The master's symbol.
    pub symbol: &'a str,
    /// The master's magic number.
    pub magic: u64,
    /// `v1::Side`.
    pub side: v1::Side,
    /// `v1::OrderType`.
    pub order_type: v1::OrderType,
}

/// Whether the relation copies a master trade; the reason when it does not.
///
/// # Errors
/// `SYMBOL_FILTERED`, `MAGIC_FILTERED`, `SIDE_FILTERED`, `ORDER_TYPE_FILTERED`.
pub fn admit(r: &v1::CopyRelation, trade: &Trade<'_>) -> Result<(), &'static str> {
    if (!r.symbols.is_empty() && !r.symbols.iter().any(|s| s == trade.symbol))
        || r.exclude_symbols.iter().any(|s| s == trade.symbol)
    {
        return Err(reason::SYMBOL_FILTERED);
    }
    if !r.magics.is_empty() && !r.magics.contains(&trade.magic) {
        return Err(reason::MAGIC_FILTERED);
    }
    let sides = v1::CopySides::try_from(r.sides).unwrap_or(v1::CopySides::Both);
    let side_ok = match sides {
        v1::CopySides::LongOnly => trade.side == v1::Side::Buy,
        v1::CopySides::ShortOnly => trade.side == v1::Side::Sell,
        v1::CopySides::Both | v1::CopySides::Unspecified => true,
    };
    if !side_ok {
        return Err(reason::SIDE_FILTERED);
    }
    if !r.order_types.is_empty() && !r.order_types.contains(&(trade.order_type as i32)) {
        return Err(reason::ORDER_TYPE_FILTERED);
    }
    Ok(())
}

/// The follower's side (reversed or not).
#[must_use]
pub fn follower_side(r: &v1::CopyRelation, master: v1::Side) -> v1::Side {
    match (r.reverse, master) {
        (true, v1::Side::Buy) => v1::Side::Sell,
        (true, v1::Side::Sell) => v1::Side::Buy,
        (_, side) => side,
    }
}

/// The follower's stop loss and take profit (none unless copied; swapped when reversed: the
/// master's take profit is on the reversed copy's losing side).
#[must_use]
pub fn follower_stops(r: &v1::CopyRelation, stop_loss: f64, take_profit: f64) -> (f64, f64) {
    match (r.copy_stops, r.reverse) {
        (false, _) => (0.0, 0.0),
        (true, false) => (stop_loss, take_profit),
        (true, true) => (take_profit, stop_loss),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trade(symbol: &str, side: v1::Side) -> Trade<'_> {
        Trade {
            symbol,
            magic: 7,
            side,
            order_type: v1::OrderType::Market,
        }
    }

    #[test]
    fn symbols_map_by_table_then_affixes() {
        let r = v1::CopyRelation {
            symbol_map: [("XAUUSD".to_owned(), "GOLD".to_owned())].into(),
            symbol_suffix: ".m".into(),
            ..Default::default()
        };
        assert_eq!(follower_symbol(&r, "XAUUSD"), "GOLD");
        assert_eq!(follower_symbol(&r, "EURUSD"), "EURUSD.m");
    }

    #[test]
    fn filters_refuse_with_a_reason() {
        let r = v1::CopyRelation {
            symbols: vec!["EURUSD".into()],
            magics: vec![7],
            sides: v1::CopySides::LongOnly as i32,
            order_types: vec![v1::OrderType::Market as i32],
            ..Default::default()
        };
        assert_eq!(admit(&r, &trade("EURUSD", v1::Side::Buy)), Ok(()));
        assert_eq!(
            admit(&r, &trade("GBPUSD", v1::Side::Buy)),
            Err("SYMBOL_FILTERED")
        );
        assert_eq!(
            admit(&r, &trade("EURUSD", v1::Side::Sell)),
            Err("SIDE_FILTERED")
        );
        let other = Trade {
            magic: 8,
            ..trade("EURUSD", v1::Side::Buy)
        };
        assert_eq!(admit(&r, &other), Err("MAGIC_FILTERED"));
        let limit = Trade {
            order_type: v1::OrderType::Limit,
            ..trade("EURUSD", v1::Side::Buy)
        };
        assert_eq!(admit(&r, &limit), Err("ORDER_TYPE_FILTERED"));
        let out = v1::CopyRelation {
            exclude_symbols: vec!["EURUSD".into()],
            ..Default::default()
        };
        assert_eq!(
            admit(&out, &trade("EURUSD", v1::Side::Buy)),
            Err("SYMBOL_FILTERED")
        );
    }

    #[test]
    fn reversed_copies_swap_side_and_stops() {
        let r = v1::CopyRelation {
            reverse: true,
            copy_stops: true,
            ..Default::default()
        };
        assert_eq!(follower_side(&r, v1::Side::Buy), v1::Side::Sell);
        assert_eq!(follower_stops(&r, 1.0, 2.0), (2.0, 1.0));
        let plain = v1::CopyRelation::default();
        assert_eq!(follower_stops(&plain, 1.0, 2.0), (0.0, 0.0));
    }
}
