//! Working orders after they are placed: found by ticket or client id, read, cancelled,
//! modified; and a position's stops changed.

use crate::reason;
use prost::Message;
use std::sync::Arc;

use super::{
    comment_key, mt5_type_time, not_ready, send, OrderChanges, OrderRef, PendingRequest,
    RequestKind,
};
use crate::error::{num, Code, EngineError, Result};
use crate::orders::OrderEntry;
use crate::pb::terminal as t;
use crate::pb::v1::OrderStatus as S;
use crate::risk;
use crate::shared::Shared;
use crate::supervisor::{Instance, Live};
use crate::validate;

fn find<'a>(live: &'a mut Live, which: &OrderRef) -> Result<&'a mut OrderEntry> {
    let found = match which {
        OrderRef::Ticket(ticket) => live.book.by_ticket_mut(*ticket),
        OrderRef::ClientId(cid) => live.book.by_client_id.get_mut(cid),
    };
    found.ok_or_else(|| {
        let (field, what) = match which {
            OrderRef::Ticket(t) => ("order_id", t.to_string()),
            OrderRef::ClientId(c) => ("client_order_id", c.clone()),
        };
        EngineError::new(
            Code::NotFound,
            reason::ORDER_NOT_FOUND,
            format!("{field}: no order {what}"),
        )
        .field(field)
    })
}

/// The encoded order (`mt5exec.v1.Order`).
///
/// # Errors
/// `NOT_FOUND`.
pub fn get(instance: &Instance, which: &OrderRef) -> Result<Vec<u8>> {
    let mut live = instance.live.lock();
    Ok(find(&mut live, which)?.order.encode_to_vec())
}

fn pending_order<'a>(live: &'a mut Live, which: &OrderRef) -> Result<&'a mut OrderEntry> {
    let entry = find(live, which)?;
    let status = S::try_from(entry.order.status).unwrap_or(S::Unspecified);
    if !matches!(status, S::Accepted | S::PartiallyFilled) || entry.order.order_id == 0 {
        return Err(EngineError::new(
            Code::FailedPrecondition,
            reason::ORDER_NOT_PENDING,
            format!(
                "order '{}' is {}, not a pending order at the terminal",
                entry.order.client_order_id,
                status.as_str_name()
            ),
        ));
    }
    Ok(entry)
}

/// Cancels a pending order; the token completes with a `CancelOrderResponse`.
///
/// # Errors
/// `NOT_FOUND`, `FAILED_PRECONDITION` when it is not pending, readiness errors.
pub fn cancel(
    shared: &Arc<Shared>,
    instance: &Instance,
    which: &OrderRef,
    token: u64,
) -> Result<u64> {
    let mut live = instance.live.lock();
    if let Some(error) = not_ready(instance, &live) {
        return Err(error);
    }
    pending_order(&mut live, which)?;
    risk::live::check_change(shared, instance, &mut live, true)?;
    let entry = pending_order(&mut live, which)?;
    let cid = entry.order.client_order_id.clone();
    let request = t::OrderRequest {
        request_id: token,
        action: 8, // TRADE_ACTION_REMOVE
        order: entry.order.order_id,
        symbol: entry.order.symbol.clone(),
        comment: comment_key(&cid),
        ..Default::default()
    };
    let ticket = request.order;
    send(&live, request)?;
    live.pending.insert(
        token,
        PendingRequest::plain(RequestKind::Cancel, cid, ticket),
    );
    Ok(token)
}

/// Changes a pending order; the token completes with a `ModifyOrderResponse`.
///
/// # Errors
/// `NOT_FOUND`, `FAILED_PRECONDITION`, `INVALID_ARGUMENT` for bad prices.
pub fn modify(
    shared: &Arc<Shared>,
    instance: &Instance,
    which: &OrderRef,
    changes: &OrderChanges,
) -> Result<u64> {
    validate::check_price("price", changes.price)?;
    validate::check_price("stop_limit_price", changes.stop_limit_price)?;
    validate::check_price("stop_loss", changes.stop_loss)?;
    validate::check_price("take_profit", changes.take_profit)?;
    let mut live = instance.live.lock();
    if let Some(error) = not_ready(instance, &live) {
        return Err(error);
    }
    let entry = pending_order(&mut live, which)?;
    let order = &entry.order;
    let pick = |new: f64, old: f64| if new > 0.0 { new } else { old };
    let cid = order.client_order_id.clone();
    let tif = if changes.time_in_force != 0 {
        changes.time_in_force
    } else {
        order.time_in_force
    };
    let expiration = if changes.expiration_msc != 0 {
        changes.expiration_msc
    } else {
        order.expiration.map_or(0, |t| t.seconds * 1000)
    };
    let token = shared.token();
    let request = t::OrderRequest {
        request_id: token,
        action: 7, // TRADE_ACTION_MODIFY
        order: order.order_id,
        symbol: order.symbol.clone(),
        price: pick(changes.price, order.price),
        stoplimit: pick(changes.stop_limit_price, order.stop_limit_price),
        sl: pick(changes.stop_loss, order.stop_loss),
        tp: pick(changes.take_profit, order.take_profit),
        type_time: mt5_type_time(tif),
        expiration: expiration / 1000,
        comment: comment_key(&cid),
        ..Default::default()
    };
    risk::live::check_prices(shared, instance, &live, &request)?;
    risk::live::check_change(shared, instance, &mut live, false)?;
    send(&live, request)?;
    live.pending
        .insert(token, PendingRequest::plain(RequestKind::Modify, cid, 0));
    Ok(token)
}

/// Changes a position's SL/TP; the token completes with a `ModifyPositionResponse`.
///
/// # Errors
/// `NOT_FOUND` for an unknown position, `INVALID_ARGUMENT` for bad prices.
pub fn modify_position(
    shared: &Arc<Shared>,
    instance: &Instance,
    position_id: u64,
    stop_loss: f64,
    take_profit: f64,
) -> Result<u64> {
    validate::check_price("stop_loss", stop_loss)?;
    validate::check_price("take_profit", take_profit)?;
    let mut live = instance.live.lock();
    if let Some(error) = not_ready(instance, &live) {
        return Err(error);
    }
    if !live.positions.iter().any(|p| p.ticket == position_id) {
        return Err(EngineError::new(
            Code::NotFound,
            reason::POSITION_NOT_FOUND,
            format!("position_id: no open position {position_id}"),
        )
        .field("position_id"));
    }
    risk::live::check_change(shared, instance, &mut live, false)?;
    let Some(position) = live.positions.iter().find(|p| p.ticket == position_id) else {
        return Err(EngineError::new(
            Code::Internal,
            reason::INTERNAL,
            "position vanished",
        ));
    };
    let buy = position.r#type == 0;
    let close = position.price_current;
    if stop_loss > 0.0 && close > 0.0 && (stop_loss >= close) == buy {
        return Err(EngineError::invalid(
            "stop_loss",
            reason::STOP_LOSS_WRONG_SIDE,
            format!(
                "stop_loss: {} must be {} the current price {}",
                num(stop_loss),
                if buy { "below" } else { "above" },
                num(close)
            ),
        ));
    }
    if take_profit > 0.0 && close > 0.0 && (take_profit <= close) == buy {
        return Err(EngineError::invalid(
            "take_profit",
            reason::TAKE_PROFIT_WRONG_SIDE,
            format!(
                "take_profit: {} must be {} the current price {}",
                num(take_profit),
                if buy { "above" } else { "below" },
                num(close)
            ),
        ));
    }
    let token = shared.token();
    let request = t::OrderRequest {
        request_id: token,
        action: 6, // TRADE_ACTION_SLTP
        symbol: position.symbol.clone(),
        position: position_id,
        sl: stop_loss,
        tp: take_profit,
        ..Default::default()
    };
    send(&live, request)?;
    live.pending.insert(
        token,
        PendingRequest::plain(RequestKind::Sltp, String::new(), position_id),
    );
    Ok(token)
}
