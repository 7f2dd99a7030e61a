//! Terminal answers: order results (with safe requote retries), deals and order updates
//! become order states, fills and answers to the callers.

use prost::Message;

use super::*;

/// Re-sends of one order after requotes, at most.
const MAX_REQUOTE_RETRIES: u32 = 3;

pub(super) fn retcode_error(result: &t::OrderResult) -> (retcode::Retcode, Option<EngineError>) {
    let rc = retcode::lookup(result.retcode);
    if rc.code == Code::Ok {
        return (rc, None);
    }
    let message = format!(
        "the terminal answered TRADE_RETCODE_{} ({}){}",
        rc.name,
        result.retcode,
        if result.comment.is_empty() {
            String::new()
        } else {
            format!(": {}", result.comment)
        }
    );
    (rc, Some(EngineError::new(rc.code, rc.name, message)))
}

pub(super) fn answer(shared: &Shared, entry: &mut OrderEntry, error: Option<&EngineError>) {
    if let Some(e) = error {
        entry.answer = Some((e.code as i32, e.reason.to_owned(), e.message.clone()));
    } else {
        entry.answer = Some((0, String::new(), String::new()));
    }
    let payload = order_payload(&entry.order);
    for token in entry.waiters.drain(..) {
        shared.complete(entry_completion(token, error, payload.clone()));
    }
}

pub(super) fn entry_completion(
    token: u64,
    error: Option<&EngineError>,
    payload: Vec<u8>,
) -> Completion {
    match error {
        Some(e) => Completion::err(token, e, payload),
        None => Completion::ok(token, payload),
    }
}

/// The terminal answered a request.
pub fn on_result(shared: &Shared, instance: &Instance, result: &t::OrderResult) {
    let mut live = instance.live.lock();
    let Some(pending) = live.pending.remove(&result.request_id) else {
        return;
    };
    instance.worker_latency[pending.kind.index()].record(pending.sent.elapsed());
    let (rc, error) = retcode_error(result);
    let token = result.request_id;
    match pending.kind {
        RequestKind::Check => {
            // order_check answers 0 when the order would pass.
            let error = pending
                .verdict
                .map(|v| *v)
                .or(error.filter(|_| result.retcode != 0));
            let accepted = error.is_none();
            let response = v1::CheckOrderResponse {
                accepted,
                reason: error
                    .as_ref()
                    .map(|e| e.reason.to_owned())
                    .unwrap_or_default(),
                message: error
                    .as_ref()
                    .map(|e| e.message.clone())
                    .unwrap_or_default(),
                margin_required: result.margin,
                free_margin_after: result.margin_free,
            };
            shared.complete(Completion::ok(token, response.encode_to_vec()));
        }
        RequestKind::Sltp => {
            let position = live
                .positions
                .iter()
                .find(|p| p.ticket == pending.position_id)
                .map(|p| convert::position(&instance.spec.instance_id, p));
            let payload = v1::ModifyPositionResponse { position }.encode_to_vec();
            shared.complete(entry_completion(token, error.as_ref(), payload));
        }
        RequestKind::Cancel | RequestKind::Modify => {
            let Some(entry) = live.book.by_client_id.get_mut(&pending.client_order_id) else {
                // An order this engine did not place (the kill switch cancels those too).
                shared.complete(entry_completion(token, error.as_ref(), Vec::new()));
                return;
            };
            if error.is_none() {
                let before = entry.order.clone();
                if pending.kind == RequestKind::Cancel {
                    entry.transition(S::Canceled);
                }
                entry.order.updated_time = Some(convert::now());
                if entry.order != before {
                    record(shared, instance, entry);
                }
            }
            let payload = order_payload(&entry.order);
            shared.complete(entry_completion(token, error.as_ref(), payload));
        }
        RequestKind::Place => {
            if let Some(request) = &pending.retry {
                let buy = request.r#type % 2 == 0;
                let price = safe_retry_price(
                    buy,
                    result,
                    pending.reference_price,
                    request.deviation,
                    pending.point,
                );
                if let (Some(price), Some(tx)) = (price, &live.tx) {
                    if pending.attempts <= MAX_REQUOTE_RETRIES {
                        // Same client_order_id and comment: still one order for reconciliation.
                        let token = shared.token();
                        let mut again = (**request).clone();
                        again.request_id = token;
                        again.price = price;
                        let frame = frame::encode(&t::EngineFrame {
                            body: Some(t::engine_frame::Body::Order(again)),
                        });
                        if tx.send(frame).is_ok() {
                            let mut next = pending.clone();
                            next.attempts += 1;
                            next.sent = std::time::Instant::now();
                            live.pending.insert(token, next);
                            return;
                        }
                    }
                }
            }
            let Some(entry) = live.book.by_client_id.get_mut(&pending.client_order_id) else {
                return;
            };
            let order = &mut entry.order;
            order.retcode = result.retcode;
            order.status_message.clone_from(&result.comment);
            if result.order != 0 {
                order.order_id = result.order;
            }
            if result.position != 0 {
                order.position_id = result.position;
            }
            order.updated_time = Some(convert::now());
            if matches!(rc.status, S::Filled | S::PartiallyFilled) {
                order.filled_volume = result.volume;
                order.average_fill_price = result.price;
                if !pending.pending_order && result.price > 0.0 {
                    // A market order's price is the one it was filled at (what the terminal's
                    // own record of the order says; a worker sends no OrderUpdate for an
                    // order filled at once, its result says it all).
                    order.price = result.price;
                }
            }
            entry.transition(rc.status);
            let ticket = entry.order.order_id;
            record(shared, instance, entry);
            answer(shared, entry, error.as_ref());
            if ticket != 0 {
                live.book.index_ticket(ticket, &pending.client_order_id);
            }
        }
    }
}

/// A deal (fill) the terminal recorded.
pub fn on_deal(shared: &Shared, instance: &Instance, deal: &t::DealReport) {
    let mut live = instance.live.lock();
    live.book.saw_ticket(deal.order);
    let id = instance.spec.instance_id.as_str();
    let from_request = live.pending.get(&deal.request_id).cloned();
    let cid = match &from_request {
        Some(p) => Some(p.client_order_id.clone()),
        None => live
            .book
            .by_ticket
            .get(&deal.order)
            .or_else(|| live.book.by_comment_for(&deal.comment, deal.order))
            .cloned(),
    };
    let (reference, point) = match &from_request {
        Some(p) => (p.reference_price, p.point),
        None => {
            let point = live.symbols.get(&deal.symbol).map_or(0.0, |s| s.point);
            let reference = cid
                .as_ref()
                .and_then(|c| live.book.by_client_id.get(c))
                .map_or(0.0, |e| e.order.price);
            (reference, point)
        }
    };
    let fill = convert::fill(id, deal, cid.as_deref().unwrap_or(""), reference, point);
    publish(shared, instance, v1::execution_event::Event::Fill(fill));
    // Fills the terminal makes on its own (a triggered pending order) build up the order;
    // fills answering a request are summed up by the result that follows.
    if from_request.is_none() && deal.entry == 0 {
        if let Some(entry) = cid.and_then(|c| live.book.by_client_id.get_mut(&c)) {
            let o = &mut entry.order;
            let total = o.filled_volume + deal.volume;
            if total > 0.0 {
                o.average_fill_price =
                    (o.average_fill_price * o.filled_volume + deal.price * deal.volume) / total;
            }
            o.filled_volume = total;
            o.position_id = deal.position_id;
        }
    }
}

/// An order changed at the terminal (placed, triggered, filled, cancelled, expired).
pub fn on_order_update(shared: &Shared, instance: &Instance, update: &t::OrderUpdate) {
    let Some(info) = &update.order else {
        return;
    };
    let mut live = instance.live.lock();
    live.book.saw_ticket(info.ticket);
    let cid = match live.pending.get(&update.request_id) {
        Some(p) if !p.client_order_id.is_empty() => Some(p.client_order_id.clone()),
        _ => live
            .book
            .by_ticket
            .get(&info.ticket)
            .or_else(|| live.book.by_comment_for(&info.comment, info.ticket))
            .cloned(),
    };
    let Some(cid) = cid else {
        return; // an order placed outside mt5exec (e.g. by hand in the terminal)
    };
    if !live.book.by_client_id.contains_key(&cid) {
        return; // forgotten (see `OrderBook::retire`)
    }
    live.book.index_ticket(info.ticket, &cid);
    let answered_later = live.pending.contains_key(&update.request_id);
    let Some(entry) = live.book.by_client_id.get_mut(&cid) else {
        return;
    };
    let before = entry.order.clone();
    let (side, kind) = order_type_of(info.r#type);
    let order = &mut entry.order;
    order.order_id = info.ticket;
    order.side = side as i32;
    order.r#type = kind as i32;
    if info.price_open > 0.0 {
        order.price = info.price_open;
    }
    order.stop_limit_price = info.price_stoplimit;
    order.stop_loss = info.sl;
    order.take_profit = info.tp;
    if info.position_id != 0 {
        order.position_id = info.position_id;
    }
    if info.time_done_msc > 0 {
        order.updated_time = Some(convert::now());
    }
    let status = status_of_state(info.state);
    if matches!(status, S::Filled | S::PartiallyFilled) && !answered_later {
        order.filled_volume = (info.volume_initial - info.volume_current).max(order.filled_volume);
    }
    entry.transition(status);
    // An update answering a request in flight is reported once, with the request's result.
    if entry.order != before && !answered_later {
        record(shared, instance, entry);
    }
}
