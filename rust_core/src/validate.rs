//! Checks of an order's own fields against the symbol, before any risk limit.
//!
//! These run in the engine so that no order, whoever sends it, reaches a
//! terminal with a malformed field. Each failure names the field.

use crate::error::{Code, EngineError, Result};
use crate::pb::terminal::{SymbolInfo, Tick};
use crate::pb::v1::{OrderType, Side};

/// An order as the API gives it, before it becomes a terminal request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OrderIntent {
    /// Idempotency key (already validated and filled in by the API layer).
    pub client_order_id: String,
    /// Symbol name.
    pub symbol: String,
    /// `mt5exec.v1.Side`.
    pub side: i32,
    /// `mt5exec.v1.OrderType`.
    pub order_type: i32,
    /// Lots.
    pub volume: f64,
    /// Limit/stop price, or a market order's reference price (0: none).
    pub price: f64,
    /// Stop loss (0: none).
    pub stop_loss: f64,
    /// Take profit (0: none).
    pub take_profit: f64,
    /// Maximum deviation from the price, in points.
    pub deviation_points: u32,
    /// Free text for the terminal.
    pub comment: String,
    /// Expert id for the terminal.
    pub magic: u64,
}

/// Relative tolerance when comparing a volume with a multiple of the step.
const STEP_EPSILON: f64 = 1e-7;

/// Checks a volume against the symbol's min, max and step.
///
/// # Errors
/// `INVALID_ARGUMENT` naming `volume`.
pub fn check_volume(volume: f64, spec: &SymbolInfo) -> Result<()> {
    if !volume.is_finite() || volume <= 0.0 {
        return Err(EngineError::invalid(
            "volume",
            "VOLUME_INVALID",
            format!("volume: must be a positive number of lots, got {volume}"),
        ));
    }
    if volume < spec.volume_min - spec.volume_min * STEP_EPSILON {
        return Err(EngineError::invalid(
            "volume",
            "VOLUME_BELOW_MIN",
            format!(
                "volume: {volume} is below the {} minimum of {}",
                spec.name, spec.volume_min
            ),
        ));
    }
    if volume > spec.volume_max + spec.volume_max * STEP_EPSILON {
        return Err(EngineError::invalid(
            "volume",
            "VOLUME_ABOVE_MAX",
            format!(
                "volume: {volume} is above the {} maximum of {}",
                spec.name, spec.volume_max
            ),
        ));
    }
    if spec.volume_step > 0.0 {
        let steps = volume / spec.volume_step;
        if (steps - steps.round()).abs() > STEP_EPSILON * steps.max(1.0) {
            return Err(EngineError::invalid(
                "volume",
                "VOLUME_OFF_STEP",
                format!(
                    "volume: {volume} is not a multiple of the {} volume step {}",
                    spec.name, spec.volume_step
                ),
            ));
        }
    }
    Ok(())
}

fn check_price(field: &'static str, value: f64) -> Result<()> {
    if value.is_finite() && value >= 0.0 {
        Ok(())
    } else {
        Err(EngineError::invalid(
            field,
            "PRICE_INVALID",
            format!("{field}: must be a finite price >= 0 (0 = none), got {value}"),
        ))
    }
}

/// Checks an order's fields against its symbol and the last tick.
///
/// # Errors
/// `INVALID_ARGUMENT` for a malformed field, `UNIMPLEMENTED` for order types
/// not routed yet, `FAILED_PRECONDITION` when there is no price to trade at.
pub fn check_order(
    order: &OrderIntent,
    spec: Option<&SymbolInfo>,
    last: Option<&Tick>,
) -> Result<()> {
    let side = Side::try_from(order.side).unwrap_or(Side::Unspecified);
    if side == Side::Unspecified {
        return Err(EngineError::invalid(
            "side",
            "SIDE_INVALID",
            format!("side: must be SIDE_BUY or SIDE_SELL, got {}", order.side),
        ));
    }
    let order_type = OrderType::try_from(order.order_type).unwrap_or(OrderType::Unspecified);
    match order_type {
        OrderType::Market => {}
        OrderType::Unspecified => {
            return Err(EngineError::invalid(
                "type",
                "ORDER_TYPE_INVALID",
                format!("type: unknown order type {}", order.order_type),
            ))
        }
        other => {
            return Err(EngineError::new(
                Code::Unimplemented,
                "ORDER_TYPE_NOT_SUPPORTED",
                format!(
                    "type: {} orders are not routed yet (issue #4)",
                    other.as_str_name()
                ),
            )
            .field("type"))
        }
    }
    let Some(spec) = spec else {
        return Err(EngineError::invalid(
            "symbol",
            "SYMBOL_UNKNOWN",
            format!("symbol: '{}' is not traded by this instance", order.symbol),
        ));
    };
    check_volume(order.volume, spec)?;
    check_price("price", order.price)?;
    check_price("stop_loss", order.stop_loss)?;
    check_price("take_profit", order.take_profit)?;
    let Some(tick) = last else {
        return Err(EngineError::new(
            Code::FailedPrecondition,
            "NO_PRICE",
            format!("symbol: no price received for {} yet", order.symbol),
        )
        .field("symbol"));
    };
    // A buy closes at the bid and a sell at the ask: stops sit on the far side of those.
    let (close_price, buy) = match side {
        Side::Buy => (tick.bid, true),
        _ => (tick.ask, false),
    };
    if order.stop_loss > 0.0 && (order.stop_loss >= close_price) == buy {
        return Err(EngineError::invalid(
            "stop_loss",
            "STOP_LOSS_WRONG_SIDE",
            format!(
                "stop_loss: {} must be {} the current {} {close_price}",
                order.stop_loss,
                if buy { "below" } else { "above" },
                if buy { "bid" } else { "ask" }
            ),
        ));
    }
    if order.take_profit > 0.0 && (order.take_profit <= close_price) == buy {
        return Err(EngineError::invalid(
            "take_profit",
            "TAKE_PROFIT_WRONG_SIDE",
            format!(
                "take_profit: {} must be {} the current {} {close_price}",
                order.take_profit,
                if buy { "above" } else { "below" },
                if buy { "bid" } else { "ask" }
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eurusd() -> SymbolInfo {
        SymbolInfo {
            name: "EURUSD".into(),
            digits: 5,
            point: 0.00001,
            volume_min: 0.01,
            volume_max: 100.0,
            volume_step: 0.01,
            ..Default::default()
        }
    }

    fn tick() -> Tick {
        Tick {
            symbol: "EURUSD".into(),
            bid: 1.08500,
            ask: 1.08510,
            ..Default::default()
        }
    }

    fn buy(volume: f64) -> OrderIntent {
        OrderIntent {
            symbol: "EURUSD".into(),
            side: Side::Buy as i32,
            order_type: OrderType::Market as i32,
            volume,
            ..Default::default()
        }
    }

    fn reason(o: &OrderIntent) -> &'static str {
        match check_order(o, Some(&eurusd()), Some(&tick())) {
            Ok(()) => "OK",
            Err(e) => e.reason,
        }
    }

    #[test]
    fn volumes() {
        assert_eq!(reason(&buy(0.1)), "OK");
        assert_eq!(reason(&buy(0.01)), "OK");
        assert_eq!(reason(&buy(100.0)), "OK");
        assert_eq!(
            reason(&buy(0.29)),
            "OK",
            "0.29 / 0.01 is not exact in binary"
        );
        for bad in [
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            0.0,
            -0.1,
            f64::MIN_POSITIVE / 2.0,
        ] {
            let r = reason(&buy(bad));
            assert!(r.starts_with("VOLUME_"), "{bad}: {r}");
        }
        assert_eq!(reason(&buy(0.009)), "VOLUME_BELOW_MIN");
        assert_eq!(reason(&buy(100.01)), "VOLUME_ABOVE_MAX");
        assert_eq!(reason(&buy(0.015)), "VOLUME_OFF_STEP");
    }

    #[test]
    fn fields_are_named() {
        let mut o = buy(0.1);
        o.side = 0;
        let e = check_order(&o, Some(&eurusd()), Some(&tick())).expect_err("side");
        assert_eq!((e.field, e.code), ("side", Code::InvalidArgument));
        let e = check_order(&buy(0.1), None, None).expect_err("symbol");
        assert_eq!((e.field, e.reason), ("symbol", "SYMBOL_UNKNOWN"));
        let e = check_order(&buy(0.1), Some(&eurusd()), None).expect_err("no price");
        assert_eq!(e.code, Code::FailedPrecondition);
        let mut o = buy(0.1);
        o.order_type = OrderType::Limit as i32;
        assert_eq!(reason(&o), "ORDER_TYPE_NOT_SUPPORTED");
    }

    #[test]
    fn stops_must_sit_on_the_right_side() {
        let mut o = buy(0.1);
        o.stop_loss = 1.0860;
        assert_eq!(reason(&o), "STOP_LOSS_WRONG_SIDE");
        o.stop_loss = 1.0800;
        o.take_profit = 1.0800;
        assert_eq!(reason(&o), "TAKE_PROFIT_WRONG_SIDE");
        o.take_profit = 1.0900;
        assert_eq!(reason(&o), "OK");
        o.side = Side::Sell as i32;
        assert_eq!(reason(&o), "STOP_LOSS_WRONG_SIDE");
        o.stop_loss = f64::NAN;
        assert_eq!(reason(&o), "PRICE_INVALID");
    }
}
