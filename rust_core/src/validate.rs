//! Checks of an order's own fields against the symbol, before any risk limit.
//!
//! These run in the engine so that no order, whoever sends it, reaches a
//! terminal with a malformed field. Each failure names the field.

use crate::error::{num, quote, Code, EngineError, Result};
use crate::pb::terminal::{SymbolInfo, Tick};
use crate::pb::v1::{FillingMode, OrderType, Side, TimeInForce};
use crate::reason;

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
    /// The limit price a stop-limit order becomes once its stop price is hit.
    pub stop_limit_price: f64,
    /// Stop loss (0: none).
    pub stop_loss: f64,
    /// Take profit (0: none).
    pub take_profit: f64,
    /// Maximum deviation from the price, in points.
    pub deviation_points: u32,
    /// `mt5exec.v1.TimeInForce`.
    pub time_in_force: i32,
    /// Expiration for `TIME_IN_FORCE_SPECIFIED`, milliseconds since the epoch (0: none).
    pub expiration_msc: i64,
    /// `mt5exec.v1.FillingMode` (0: chosen from the symbol).
    pub filling: i32,
    /// Free text for the terminal.
    pub comment: String,
    /// Expert id for the terminal.
    pub magic: u64,
    /// The position this order closes (0: opens or adds).
    pub position_id: u64,
}

impl OrderIntent {
    /// The hash of everything that makes two submissions "the same order".
    pub fn payload_hash(&self) -> u64 {
        crate::orders::PayloadHasher::default()
            .bytes(self.symbol.as_bytes())
            .i64(i64::from(self.side))
            .i64(i64::from(self.order_type))
            .f64(self.volume)
            .f64(self.price)
            .f64(self.stop_limit_price)
            .f64(self.stop_loss)
            .f64(self.take_profit)
            .i64(i64::from(self.deviation_points))
            .i64(i64::from(self.time_in_force))
            .i64(self.expiration_msc)
            .i64(i64::from(self.filling))
            .bytes(self.comment.as_bytes())
            .i64(i64::try_from(self.magic).unwrap_or(i64::MAX))
            .i64(i64::try_from(self.position_id).unwrap_or(i64::MAX))
            .finish()
    }
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
            reason::VOLUME_INVALID,
            format!(
                "volume: must be a positive number of lots, got {}",
                num(volume)
            ),
        ));
    }
    if volume < spec.volume_min - spec.volume_min * STEP_EPSILON {
        return Err(EngineError::invalid(
            "volume",
            reason::VOLUME_BELOW_MIN,
            format!(
                "volume: {} is below the {} minimum of {}",
                num(volume),
                spec.name,
                num(spec.volume_min)
            ),
        ));
    }
    if volume > spec.volume_max + spec.volume_max * STEP_EPSILON {
        return Err(EngineError::invalid(
            "volume",
            reason::VOLUME_ABOVE_MAX,
            format!(
                "volume: {} is above the {} maximum of {}",
                num(volume),
                spec.name,
                num(spec.volume_max)
            ),
        ));
    }
    if spec.volume_step > 0.0 {
        let steps = volume / spec.volume_step;
        if (steps - steps.round()).abs() > STEP_EPSILON * steps.max(1.0) {
            return Err(EngineError::invalid(
                "volume",
                reason::VOLUME_OFF_STEP,
                format!(
                    "volume: {} is not a multiple of the {} volume step {}",
                    num(volume),
                    spec.name,
                    num(spec.volume_step)
                ),
            ));
        }
    }
    Ok(())
}

/// Checks a price field: finite and >= 0 (0 means none, or keep for a modification).
///
/// # Errors
/// `INVALID_ARGUMENT` naming the field.
pub fn check_price(field: &'static str, value: f64) -> Result<()> {
    if value.is_finite() && value >= 0.0 {
        Ok(())
    } else {
        Err(EngineError::invalid(
            field,
            reason::PRICE_INVALID,
            format!(
                "{field}: must be a finite price >= 0 (0 = none), got {}",
                num(value)
            ),
        ))
    }
}

fn wrong_side(field: &'static str, what: &str, value: f64, rule: &str) -> EngineError {
    let reason = match field {
        "stop_loss" => reason::STOP_LOSS_WRONG_SIDE,
        "take_profit" => reason::TAKE_PROFIT_WRONG_SIDE,
        "stop_limit_price" => reason::STOP_LIMIT_PRICE_WRONG_SIDE,
        _ => reason::PRICE_WRONG_SIDE,
    };
    EngineError::invalid(
        field,
        reason,
        format!("{field}: {} must be {rule} ({what})", num(value)),
    )
}

/// Refuses a field the order's type does not use (a client that sets it expects an effect
/// it would not get): a stop-limit price but for stop-limit orders, a time in force other
/// than good-till-cancelled for market orders (filled or refused at once; see `filling`).
///
/// # Errors
/// `INVALID_ARGUMENT` (`FIELD_NOT_APPLICABLE`) naming the field.
fn check_applies(order: &OrderIntent, order_type: OrderType, tif: TimeInForce) -> Result<()> {
    let type_name = order_type.as_str_name();
    if order.stop_limit_price != 0.0 && order_type != OrderType::StopLimit {
        return Err(EngineError::invalid(
            "stop_limit_price",
            reason::FIELD_NOT_APPLICABLE,
            format!("stop_limit_price: only for ORDER_TYPE_STOP_LIMIT, not {type_name}"),
        ));
    }
    if order_type == OrderType::Market
        && !matches!(tif, TimeInForce::Unspecified | TimeInForce::Gtc)
    {
        return Err(EngineError::invalid(
            "time_in_force",
            reason::FIELD_NOT_APPLICABLE,
            format!(
                "time_in_force: {} does not apply to ORDER_TYPE_MARKET (filled or refused at \
                 once; see filling)",
                tif.as_str_name()
            ),
        ));
    }
    Ok(())
}

/// Checks an order's fields against its symbol, the last tick and the clock.
///
/// # Errors
/// `INVALID_ARGUMENT` for a malformed field, `FAILED_PRECONDITION` when there is no price
/// to trade at.
pub fn check_order(
    order: &OrderIntent,
    spec: Option<&SymbolInfo>,
    last: Option<&Tick>,
    now_msc: i64,
) -> Result<()> {
    let side = Side::try_from(order.side).unwrap_or(Side::Unspecified);
    if side == Side::Unspecified {
        return Err(EngineError::invalid(
            "side",
            reason::SIDE_INVALID,
            format!("side: must be SIDE_BUY or SIDE_SELL, got {}", order.side),
        ));
    }
    let order_type = OrderType::try_from(order.order_type).unwrap_or(OrderType::Unspecified);
    if order_type == OrderType::Unspecified {
        return Err(EngineError::invalid(
            "type",
            reason::ORDER_TYPE_INVALID,
            format!("type: unknown order type {}", order.order_type),
        ));
    }
    let Some(spec) = spec else {
        return Err(EngineError::invalid(
            "symbol",
            reason::SYMBOL_UNKNOWN,
            format!(
                "symbol: {} is not traded by this instance",
                quote(&order.symbol)
            ),
        ));
    };
    check_volume(order.volume, spec)?;
    check_price("price", order.price)?;
    check_price("stop_limit_price", order.stop_limit_price)?;
    check_price("stop_loss", order.stop_loss)?;
    check_price("take_profit", order.take_profit)?;
    let Ok(tif) = TimeInForce::try_from(order.time_in_force) else {
        return Err(EngineError::invalid(
            "time_in_force",
            reason::TIME_IN_FORCE_INVALID,
            format!("time_in_force: unknown value {}", order.time_in_force),
        ));
    };
    check_applies(order, order_type, tif)?;
    if tif == TimeInForce::Specified {
        if order.expiration_msc <= now_msc {
            return Err(EngineError::invalid(
                "expiration",
                reason::EXPIRATION_INVALID,
                "expiration: must be in the future for TIME_IN_FORCE_SPECIFIED",
            ));
        }
    } else if order.expiration_msc != 0 {
        return Err(EngineError::invalid(
            "expiration",
            reason::EXPIRATION_INVALID,
            "expiration: only with TIME_IN_FORCE_SPECIFIED",
        ));
    }
    if FillingMode::try_from(order.filling).is_err() {
        return Err(EngineError::invalid(
            "filling",
            reason::FILLING_INVALID,
            format!("filling: unknown value {}", order.filling),
        ));
    }
    let Some(tick) = last else {
        return Err(EngineError::new(
            Code::FailedPrecondition,
            reason::NO_PRICE,
            format!("symbol: no price received for {} yet", quote(&order.symbol)),
        )
        .field("symbol"));
    };
    let buy = side == Side::Buy;
    // Where the position would be entered: the market, or the order's own price.
    let entry = match order_type {
        OrderType::Market => None,
        OrderType::Limit | OrderType::Stop => Some(order.price),
        OrderType::StopLimit => Some(order.stop_limit_price),
        OrderType::Unspecified => None,
    };
    if order_type != OrderType::Market {
        if order.price <= 0.0 {
            return Err(EngineError::invalid(
                "price",
                reason::PRICE_REQUIRED,
                format!("price: required for {} orders", order_type.as_str_name()),
            ));
        }
        // Limits rest below the ask (buy) / above the bid (sell); stops the other way.
        let below_market = matches!(
            (order_type, buy),
            (OrderType::Limit, true) | (OrderType::Stop | OrderType::StopLimit, false)
        );
        let (market, name) = if buy {
            (tick.ask, "ask")
        } else {
            (tick.bid, "bid")
        };
        let ok = if below_market {
            order.price < market
        } else {
            order.price > market
        };
        if !ok {
            let rule = format!(
                "{} the current {name} {} for a {} {}",
                if below_market { "below" } else { "above" },
                num(market),
                if buy { "buy" } else { "sell" },
                order_type.as_str_name()
            );
            return Err(wrong_side(
                "price",
                "pending order price",
                order.price,
                &rule,
            ));
        }
    }
    if order_type == OrderType::StopLimit {
        if order.stop_limit_price <= 0.0 {
            return Err(EngineError::invalid(
                "stop_limit_price",
                reason::PRICE_REQUIRED,
                "stop_limit_price: required for ORDER_TYPE_STOP_LIMIT",
            ));
        }
        // The limit that follows a buy stop rests below its stop price, a sell's above.
        let ok = if buy {
            order.stop_limit_price < order.price
        } else {
            order.stop_limit_price > order.price
        };
        if !ok {
            let rule = if buy {
                "below the stop price"
            } else {
                "above the stop price"
            };
            return Err(wrong_side(
                "stop_limit_price",
                "stop-limit order",
                order.stop_limit_price,
                rule,
            ));
        }
    }
    // A buy closes at the bid and a sell at the ask: stops sit on the far side of the entry.
    let (reference, what) = match entry {
        Some(price) => (price, "the order's entry price"),
        None if buy => (tick.bid, "the current bid"),
        None => (tick.ask, "the current ask"),
    };
    if order.stop_loss > 0.0 && (order.stop_loss >= reference) == buy {
        let side = if buy { "below" } else { "above" };
        let rule = format!("{side} {what} {}", num(reference));
        return Err(wrong_side("stop_loss", "stop loss", order.stop_loss, &rule));
    }
    if order.take_profit > 0.0 && (order.take_profit <= reference) == buy {
        let side = if buy { "above" } else { "below" };
        let rule = format!("{side} {what} {}", num(reference));
        return Err(wrong_side(
            "take_profit",
            "take profit",
            order.take_profit,
            &rule,
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
