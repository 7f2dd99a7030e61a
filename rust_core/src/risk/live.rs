//! The gate applied to an instance's live state: what routing calls for every new order.

use crate::convert;
use crate::error::{Code, EngineError, Result};
use crate::pb::v1;
use crate::reason;
use crate::routing::RequestKind;
use crate::shared::Shared;
use crate::supervisor::{Instance, Live};
use crate::validate::OrderIntent;

use super::checks::{Book, Kind, Market, Order};
use super::{refusals, Request};

fn order_of(intent: &OrderIntent) -> Order {
    Order {
        buy: intent.side != v1::Side::Sell as i32,
        kind: match v1::OrderType::try_from(intent.order_type) {
            Ok(v1::OrderType::Limit) => Kind::Limit,
            Ok(v1::OrderType::Stop) => Kind::Stop,
            Ok(v1::OrderType::StopLimit) => Kind::StopLimit,
            _ => Kind::Market,
        },
        volume: intent.volume,
        price: intent.price,
        stop_limit_price: intent.stop_limit_price,
        stop_loss: intent.stop_loss,
        take_profit: intent.take_profit,
        deviation_points: intent.deviation_points,
        closes_position: intent.position_id != 0,
    }
}

/// Runs the risk gate for a new order against the instance's live state (`commit`: count
/// it when it passes; else a dry run).
///
/// # Errors
/// The first failing check; the order must not be sent then.
pub fn check_new(
    shared: &Shared,
    instance: &Instance,
    live: &mut Live,
    intent: &OrderIntent,
    now_msc: i64,
    commit: bool,
) -> Result<()> {
    let Live {
        risk,
        symbols,
        last_ticks,
        tick_received_msc,
        account,
        positions,
        open_orders,
        pending,
        ..
    } = live;
    let (Some(spec), Some(last)) = (symbols.get(&intent.symbol), last_ticks.get(&intent.symbol))
    else {
        return Err(EngineError::new(
            Code::FailedPrecondition,
            reason::SYMBOL_NOT_ALLOWED,
            format!(
                "symbol: the instance has no market for {}",
                crate::error::quote(&intent.symbol)
            ),
        )
        .field("symbol"));
    };
    let (hedging, equity, free_margin, leverage) =
        account
            .as_ref()
            .map_or((true, 0.0, f64::INFINITY, 1.0), |a| {
                (
                    a.margin_mode == 2,
                    a.equity,
                    a.margin_free,
                    f64::from(a.leverage),
                )
            });
    let net_volume = positions
        .iter()
        .filter(|p| p.symbol == intent.symbol)
        .map(|p| if p.r#type == 0 { p.volume } else { -p.volume })
        .sum();
    // Counted only when a limit needs them (the cap keeps the map short when it does).
    let (mut in_flight, mut pending_in_flight) = (0u32, 0u32);
    if risk.limits.max_in_flight_orders > 0 || risk.limits.max_pending_orders > 0 {
        for request in pending.values() {
            if request.kind == RequestKind::Place {
                in_flight += 1;
                pending_in_flight += u32::from(request.pending_order);
            }
        }
    }
    let request = Request {
        order: order_of(intent),
        symbol: &intent.symbol,
        market: Market {
            spec,
            bid: last.bid,
            ask: last.ask,
            tick_received_msc: tick_received_msc.get(&intent.symbol).copied().unwrap_or(0),
            now_msc,
        },
        book: Book {
            hedging,
            equity,
            free_margin,
            leverage,
            net_volume,
            open_positions: u32::try_from(positions.len()).unwrap_or(u32::MAX),
            pending_orders: u32::try_from(open_orders.len())
                .unwrap_or(u32::MAX)
                .saturating_add(pending_in_flight),
            ..Book::default()
        },
        in_flight,
        now_ns: shared.mono_ns(),
    };
    let result = shared
        .risk
        .check_order(risk, &instance.spec.owner, &request, commit);
    if let (Err(error), true) = (&result, commit) {
        rejected(shared, instance, intent, error);
    }
    result
}

/// Counts a refusal and publishes it as an execution event: the order, REJECTED, with the
/// reason. It is not journaled or kept: the same client_order_id may be sent again. A
/// throttle's refusals are published once per instance, reason and second (see
/// [`super::refusals`]).
pub fn rejected(shared: &Shared, instance: &Instance, intent: &OrderIntent, error: &EngineError) {
    let id = &instance.spec.instance_id;
    shared.risk.count_rejection(id, error.reason);
    let order = || refused_order(id, intent, error);
    if refusals::coalesced(error.reason) {
        let closed = shared
            .refusals
            .add(id, error.reason, shared.mono_ns(), order);
        if let Some(closed) = closed {
            publish_refusals(shared, closed);
        }
        return;
    }
    instance
        .events
        .publish(shared, id, v1::execution_event::Event::OrderUpdate(order()));
}

/// The execution event of a closed window of throttle refusals.
pub fn publish_refusals(shared: &Shared, closed: refusals::Closed) {
    // An instance deleted meanwhile has no log to write to.
    if let Ok(instance) = shared.instance(&closed.instance_id) {
        instance.events.publish_refusals(
            shared,
            &closed.instance_id,
            v1::execution_event::Event::OrderUpdate(closed.order),
            closed.count,
        );
    }
}

fn refused_order(id: &str, intent: &OrderIntent, error: &EngineError) -> v1::Order {
    let now = convert::now();
    v1::Order {
        instance_id: id.to_owned(),
        client_order_id: intent.client_order_id.clone(),
        symbol: intent.symbol.clone(),
        side: intent.side,
        r#type: intent.order_type,
        volume: intent.volume,
        price: intent.price,
        stop_limit_price: intent.stop_limit_price,
        stop_loss: intent.stop_loss,
        take_profit: intent.take_profit,
        deviation_points: intent.deviation_points,
        time_in_force: intent.time_in_force,
        status: v1::OrderStatus::Rejected as i32,
        position_id: intent.position_id,
        status_message: error.message.clone(),
        reject_reason: error.reason.to_owned(),
        created_time: Some(now),
        updated_time: Some(now),
        comment: intent.comment.clone(),
        ..Default::default()
    }
}

/// The gate for a change to an order or position (`cancel`: a cancel, allowed also when
/// HALTED or killed): trading state and throttles; refusals are counted.
///
/// # Errors
/// KILL_SWITCH, TRADING_HALTED, RATE_LIMITED.
pub fn check_change(
    shared: &Shared,
    instance: &Instance,
    live: &mut Live,
    cancel: bool,
) -> Result<()> {
    let result = shared.risk.check_change(
        &mut live.risk,
        &instance.spec.owner,
        cancel,
        shared.mono_ns(),
    );
    if let Err(error) = &result {
        shared
            .risk
            .count_rejection(&instance.spec.instance_id, error.reason);
    }
    result
}

/// The price collar for a modification's new prices (`request` is the terminal request).
///
/// # Errors
/// PRICE_COLLAR naming the field.
pub fn check_prices(
    shared: &Shared,
    instance: &Instance,
    live: &Live,
    request: &crate::pb::terminal::OrderRequest,
) -> Result<()> {
    let (Some(spec), Some(last)) = (
        live.symbols.get(&request.symbol),
        live.last_ticks.get(&request.symbol),
    ) else {
        return Ok(());
    };
    let order = Order {
        buy: request.r#type % 2 == 0,
        kind: Kind::Limit,
        volume: request.volume,
        price: request.price,
        stop_limit_price: request.stoplimit,
        stop_loss: request.sl,
        take_profit: request.tp,
        deviation_points: 0,
        closes_position: false,
    };
    let market = Market {
        spec,
        bid: last.bid,
        ask: last.ask,
        tick_received_msc: 0,
        now_msc: 0,
    };
    let result = super::checks::collar(&order, &market, &live.risk.limits)
        .map_err(super::checks::Rejection::into_error);
    if let Err(error) = &result {
        shared
            .risk
            .count_rejection(&instance.spec.instance_id, error.reason);
    }
    result
}
