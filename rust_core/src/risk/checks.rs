//! The pre-trade checks: one pure function of the order, the market, the account and the
//! limits. No allocation on the accepting path; a rejection is a small `Copy` value that
//! becomes an error message only when it is reported.
//!
//! The order of the checks is part of the contract (the first failing check names the
//! reason), and `mt5exec.risk_reference` implements the same rules in plain Python as the
//! oracle of the differential tests.

use crate::error::{num, Code, EngineError};
use crate::pb::terminal::SymbolInfo;
use crate::pb::v1::{RiskLimits, TradingState};
use crate::reason;

/// What kind of order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Filled at the market.
    Market,
    /// Limit order.
    Limit,
    /// Stop order.
    Stop,
    /// Stop-limit order.
    StopLimit,
}

/// The order under test.
#[derive(Debug, Clone, Copy)]
pub struct Order {
    /// Buy (true) or sell.
    pub buy: bool,
    /// Kind.
    pub kind: Kind,
    /// Lots.
    pub volume: f64,
    /// Pending price, or a market order's reference price (0: the current price).
    pub price: f64,
    /// Stop-limit price (0: none).
    pub stop_limit_price: f64,
    /// Stop loss (0: none).
    pub stop_loss: f64,
    /// Take profit (0: none).
    pub take_profit: f64,
    /// Allowed deviation in points.
    pub deviation_points: u32,
    /// It closes a position by ticket.
    pub closes_position: bool,
}

/// The symbol and its market.
#[derive(Debug, Clone, Copy)]
pub struct Market<'a> {
    /// The symbol's spec.
    pub spec: &'a SymbolInfo,
    /// Last bid.
    pub bid: f64,
    /// Last ask.
    pub ask: f64,
    /// When the engine received the last tick (ms since the epoch).
    pub tick_received_msc: i64,
    /// Now (ms since the epoch).
    pub now_msc: i64,
}

/// The account and the instance's book, as far as the checks need them.
#[derive(Debug, Clone, Copy, Default)]
pub struct Book {
    /// A hedging account (else netting).
    pub hedging: bool,
    /// Equity.
    pub equity: f64,
    /// Free margin.
    pub free_margin: f64,
    /// Leverage (1:N).
    pub leverage: f64,
    /// Net open volume of the order's symbol in lots (buy positive).
    pub net_volume: f64,
    /// Open positions.
    pub open_positions: u32,
    /// Pending orders.
    pub pending_orders: u32,
    /// New (not closing) orders sent today.
    pub trades_today: u32,
    /// Equity at the start of the day (0: not known yet).
    pub day_start_equity: f64,
    /// Highest equity seen (0: not known yet).
    pub equity_high: f64,
}

/// The controls around the limits.
#[derive(Debug, Clone, Copy)]
pub struct Controls<'a> {
    /// The limits (0 disables one).
    pub limits: &'a RiskLimits,
    /// ACTIVE, REDUCE_ONLY or HALTED.
    pub state: TradingState,
    /// The kill switch is engaged.
    pub kill_switch: bool,
    /// The symbol is on the instance's and the owner's whitelists.
    pub symbol_allowed: bool,
    /// Now is inside the configured trading window.
    pub in_session: bool,
    /// An identical order was sent within the duplicate window.
    pub duplicate: bool,
}

/// Why an order was refused: a stable reason, the field or limit at fault and the values
/// compared.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rejection {
    /// Stable UPPER_SNAKE reason.
    pub reason: &'static str,
    /// The request field or limit concerned.
    pub field: &'static str,
    /// The value found.
    pub value: f64,
    /// The limit it broke.
    pub limit: f64,
}

impl Rejection {
    const fn new(reason: &'static str, field: &'static str, value: f64, limit: f64) -> Self {
        Self {
            reason,
            field,
            value,
            limit,
        }
    }

    /// The error the API reports.
    pub fn into_error(self) -> EngineError {
        let Self {
            reason,
            field,
            value,
            limit,
        } = self;
        let (code, message) = match reason {
            reason::VOLUME_INVALID | reason::PRICE_INVALID => (
                Code::InvalidArgument,
                format!("{field}: {} is not a valid value", num(value)),
            ),
            reason::KILL_SWITCH => (
                Code::FailedPrecondition,
                "the kill switch is engaged: only cancels until it is released".to_owned(),
            ),
            reason::TRADING_HALTED => (
                Code::FailedPrecondition,
                "trading is HALTED: only cancels are accepted".to_owned(),
            ),
            reason::REDUCE_ONLY => (
                Code::FailedPrecondition,
                "trading is REDUCE_ONLY: only orders that reduce exposure are accepted".to_owned(),
            ),
            reason::SYMBOL_NOT_ALLOWED => (
                Code::FailedPrecondition,
                "symbol: not on the whitelist of this instance or its owner".to_owned(),
            ),
            reason::MARKET_CLOSED => (
                Code::FailedPrecondition,
                "symbol: trading is disabled for this symbol".to_owned(),
            ),
            reason::CLOSE_ONLY | reason::LONG_ONLY | reason::SHORT_ONLY => (
                Code::FailedPrecondition,
                format!("symbol: the symbol's trade mode is {reason}"),
            ),
            reason::OUTSIDE_SESSION => (
                Code::FailedPrecondition,
                "risk.session_start: now is outside the instance's trading window".to_owned(),
            ),
            reason::DUPLICATE_ORDER => (
                Code::FailedPrecondition,
                format!(
                    "an identical order (symbol, side, type, volume, price) was sent within \
                     duplicate_window_ms ({limit} ms)"
                ),
            ),
            reason::STALE_TICK => (
                Code::FailedPrecondition,
                format!(
                    "symbol: the last tick is {} ms old (stale_tick_ms {})",
                    num(value),
                    num(limit)
                ),
            ),
            reason::INSUFFICIENT_MARGIN => (
                Code::FailedPrecondition,
                format!(
                    "{field}: the order needs a margin of {}, the free margin is {}",
                    money(value),
                    money(limit)
                ),
            ),
            _ => (
                Code::FailedPrecondition,
                format!(
                    "{field}: {} breaks the limit {} ({reason})",
                    num(value),
                    num(limit)
                ),
            ),
        };
        EngineError::new(code, reason, message).field(field)
    }
}

/// An amount of money for a message: to the cent.
fn money(value: f64) -> String {
    if value.abs() < 1e15 {
        num((value * 100.0).round() / 100.0)
    } else {
        num(value)
    }
}

/// Relative tolerance of volume and price comparisons against limits.
const EPSILON: f64 = 1e-9;

/// `value <= limit` with a relative tolerance; false for NaN.
fn within(value: f64, limit: f64) -> bool {
    value <= limit + limit.abs() * EPSILON
}

/// Whether the order reduces the exposure of its symbol: a close by ticket, or on a netting
/// account a market order against the net position no larger than it.
pub fn reduces(order: &Order, book: &Book) -> bool {
    order.closes_position
        || (!book.hedging
            && order.kind == Kind::Market
            && ((order.buy && book.net_volume < 0.0) || (!order.buy && book.net_volume > 0.0))
            && within(order.volume, book.net_volume.abs()))
}

/// Account currency per lot per 1.0 of price: tick value over tick size, or the contract
/// size when the terminal gave no tick value.
pub fn value_per_price(spec: &SymbolInfo) -> f64 {
    if spec.tick_size > 0.0 && spec.tick_value > 0.0 {
        spec.tick_value / spec.tick_size
    } else {
        spec.contract_size
    }
}

/// The price the order would open at.
pub fn entry_price(order: &Order, market: &Market<'_>) -> f64 {
    match order.kind {
        Kind::Market if order.price > 0.0 => order.price,
        Kind::Market if order.buy => market.ask,
        Kind::Market => market.bid,
        Kind::StopLimit if order.stop_limit_price > 0.0 => order.stop_limit_price,
        _ => order.price,
    }
}

/// Margin the order needs, in account currency: its notional over the leverage.
pub fn margin_estimate(order: &Order, market: &Market<'_>, book: &Book) -> f64 {
    let notional = order.volume * entry_price(order, market) * value_per_price(market.spec);
    notional / book.leverage.max(1.0)
}

fn valid_price(value: f64) -> bool {
    value == 0.0 || (value.is_normal() && value > 0.0)
}

/// The kill switch, then HALTED: what also stops modifications.
///
/// # Errors
/// KILL_SWITCH or TRADING_HALTED.
pub fn trading_allowed(kill_switch: bool, state: TradingState) -> Result<(), Rejection> {
    if kill_switch {
        return Err(Rejection::new(reason::KILL_SWITCH, "instance_id", 0.0, 0.0));
    }
    if state == TradingState::Halted {
        return Err(Rejection::new(
            reason::TRADING_HALTED,
            "instance_id",
            0.0,
            0.0,
        ));
    }
    Ok(())
}

/// Runs every check in order; the first that fails is the answer.
///
/// # Errors
/// The first failing check.
pub fn check(
    order: &Order,
    market: &Market<'_>,
    book: &Book,
    controls: &Controls<'_>,
) -> Result<(), Rejection> {
    let limits = controls.limits;
    if !(order.volume.is_normal() && order.volume > 0.0) {
        return Err(Rejection::new(
            reason::VOLUME_INVALID,
            "volume",
            order.volume,
            0.0,
        ));
    }
    for (field, value) in [
        ("price", order.price),
        ("stop_limit_price", order.stop_limit_price),
        ("stop_loss", order.stop_loss),
        ("take_profit", order.take_profit),
    ] {
        if !valid_price(value) {
            return Err(Rejection::new(reason::PRICE_INVALID, field, value, 0.0));
        }
    }
    trading_allowed(controls.kill_switch, controls.state)?;
    let reducing = reduces(order, book);
    if controls.state == TradingState::ReduceOnly && !reducing {
        return Err(Rejection::new(reason::REDUCE_ONLY, "instance_id", 0.0, 0.0));
    }
    // SYMBOL_TRADE_MODE_*: 0 disabled, 1 long only, 2 short only, 3 close only, 4 full.
    if market.spec.trade_mode == 0 {
        return Err(Rejection::new(reason::MARKET_CLOSED, "symbol", 0.0, 0.0));
    }
    if reducing {
        return common_checks(order, market, limits);
    }
    if !controls.symbol_allowed {
        return Err(Rejection::new(
            reason::SYMBOL_NOT_ALLOWED,
            "symbol",
            0.0,
            0.0,
        ));
    }
    match market.spec.trade_mode {
        3 => return Err(Rejection::new(reason::CLOSE_ONLY, "symbol", 0.0, 0.0)),
        1 if !order.buy => return Err(Rejection::new(reason::LONG_ONLY, "side", 0.0, 0.0)),
        2 if order.buy => return Err(Rejection::new(reason::SHORT_ONLY, "side", 0.0, 0.0)),
        _ => {}
    }
    if !controls.in_session {
        return Err(Rejection::new(reason::OUTSIDE_SESSION, "symbol", 0.0, 0.0));
    }
    if limits.min_order_volume > 0.0 && order.volume < limits.min_order_volume * (1.0 - EPSILON) {
        return Err(Rejection::new(
            reason::VOLUME_BELOW_LIMIT,
            "volume",
            order.volume,
            limits.min_order_volume,
        ));
    }
    if limits.max_order_volume > 0.0 && !within(order.volume, limits.max_order_volume) {
        return Err(Rejection::new(
            reason::VOLUME_ABOVE_LIMIT,
            "volume",
            order.volume,
            limits.max_order_volume,
        ));
    }
    common_checks(order, market, limits)?;
    if limits.stale_tick_ms > 0 && order.kind == Kind::Market {
        let age = market.now_msc.saturating_sub(market.tick_received_msc);
        if age > i64::from(limits.stale_tick_ms) {
            return Err(Rejection::new(
                reason::STALE_TICK,
                "symbol",
                age as f64,
                f64::from(limits.stale_tick_ms),
            ));
        }
    }
    if controls.duplicate {
        return Err(Rejection::new(
            reason::DUPLICATE_ORDER,
            "client_order_id",
            0.0,
            f64::from(limits.duplicate_window_ms),
        ));
    }
    exposure_checks(order, market, book, limits)
}

/// Checks every order meets, also one that reduces exposure: deviation and price collar.
fn common_checks(order: &Order, market: &Market<'_>, limits: &RiskLimits) -> Result<(), Rejection> {
    if limits.max_deviation_points > 0 && order.deviation_points > limits.max_deviation_points {
        return Err(Rejection::new(
            reason::DEVIATION_LIMIT,
            "deviation_points",
            f64::from(order.deviation_points),
            f64::from(limits.max_deviation_points),
        ));
    }
    collar(order, market, limits)
}

/// Prices further than `price_collar_percent` from the middle of the last tick.
pub fn collar(order: &Order, market: &Market<'_>, limits: &RiskLimits) -> Result<(), Rejection> {
    let mid = (market.bid + market.ask) / 2.0;
    if limits.price_collar_percent <= 0.0 || mid.is_nan() || mid <= 0.0 {
        return Ok(());
    }
    let pending_price = if order.kind == Kind::Market {
        0.0
    } else {
        order.price
    };
    for (field, value) in [
        ("price", pending_price),
        ("stop_limit_price", order.stop_limit_price),
        ("stop_loss", order.stop_loss),
        ("take_profit", order.take_profit),
    ] {
        if value > 0.0 {
            let distance = (value - mid).abs() / mid * 100.0;
            if !within(distance, limits.price_collar_percent) {
                return Err(Rejection::new(
                    reason::PRICE_COLLAR,
                    field,
                    value,
                    limits.price_collar_percent,
                ));
            }
        }
    }
    Ok(())
}

/// Counts, losses, value and margin: the checks of an order that adds exposure.
fn exposure_checks(
    order: &Order,
    market: &Market<'_>,
    book: &Book,
    limits: &RiskLimits,
) -> Result<(), Rejection> {
    let market_order = order.kind == Kind::Market;
    if !market_order
        && limits.max_pending_orders > 0
        && book.pending_orders >= limits.max_pending_orders
    {
        return Err(Rejection::new(
            reason::MAX_PENDING_ORDERS,
            "risk.max_pending_orders",
            f64::from(book.pending_orders),
            f64::from(limits.max_pending_orders),
        ));
    }
    // A market order opens a position on a hedging account, or on a netting one when the
    // symbol has none (or flips it).
    if market_order
        && limits.max_open_positions > 0
        && book.open_positions >= limits.max_open_positions
        && (book.hedging || book.net_volume == 0.0)
    {
        return Err(Rejection::new(
            reason::MAX_OPEN_POSITIONS,
            "risk.max_open_positions",
            f64::from(book.open_positions),
            f64::from(limits.max_open_positions),
        ));
    }
    if limits.max_trades_per_day > 0 && book.trades_today >= limits.max_trades_per_day {
        return Err(Rejection::new(
            reason::MAX_TRADES_PER_DAY,
            "risk.max_trades_per_day",
            f64::from(book.trades_today),
            f64::from(limits.max_trades_per_day),
        ));
    }
    if limits.max_daily_loss > 0.0 && book.day_start_equity > 0.0 {
        let loss = book.day_start_equity - book.equity;
        if !within(loss, limits.max_daily_loss) {
            return Err(Rejection::new(
                reason::DAILY_LOSS_LIMIT,
                "risk.max_daily_loss",
                loss,
                limits.max_daily_loss,
            ));
        }
    }
    if limits.max_drawdown_percent > 0.0 && book.equity_high > 0.0 {
        let drawdown = (book.equity_high - book.equity) / book.equity_high * 100.0;
        if !within(drawdown, limits.max_drawdown_percent) {
            return Err(Rejection::new(
                reason::DRAWDOWN_LIMIT,
                "risk.max_drawdown_percent",
                drawdown,
                limits.max_drawdown_percent,
            ));
        }
    }
    let entry = entry_price(order, market);
    let per_price = value_per_price(market.spec);
    if limits.max_loss_per_trade > 0.0 && order.stop_loss > 0.0 {
        let loss = (entry - order.stop_loss).abs() * per_price * order.volume;
        if !within(loss, limits.max_loss_per_trade) {
            return Err(Rejection::new(
                reason::TRADE_LOSS_LIMIT,
                "stop_loss",
                loss,
                limits.max_loss_per_trade,
            ));
        }
    }
    let notional = order.volume * entry * per_price;
    if limits.max_order_notional > 0.0 && !within(notional, limits.max_order_notional) {
        return Err(Rejection::new(
            reason::NOTIONAL_LIMIT,
            "volume",
            notional,
            limits.max_order_notional,
        ));
    }
    if limits.max_symbol_exposure > 0.0 {
        let signed = if order.buy {
            order.volume
        } else {
            -order.volume
        };
        let exposure = (book.net_volume + signed).abs() * entry * per_price;
        if !within(exposure, limits.max_symbol_exposure) {
            return Err(Rejection::new(
                reason::EXPOSURE_LIMIT,
                "volume",
                exposure,
                limits.max_symbol_exposure,
            ));
        }
    }
    if market_order {
        let margin = notional / book.leverage.max(1.0);
        let after = book.free_margin - margin;
        if after.is_nan() || after < 0.0 {
            return Err(Rejection::new(
                reason::INSUFFICIENT_MARGIN,
                "volume",
                margin,
                book.free_margin,
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
