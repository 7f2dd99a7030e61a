//! Recovery: a lost worker, reconciliation of unknown outcomes, and the order book
//! restored from the journal.

use super::*;
use crate::reason;

/// The worker is gone: requests in flight have an unknown outcome.
pub fn on_worker_lost(shared: &Shared, instance: &Instance, live: &mut Live) {
    let lost = EngineError::new(
        Code::Unavailable,
        reason::WORKER_LOST,
        "the worker stopped before answering; the order's outcome is UNKNOWN until reconciled",
    );
    for (token, pending) in live.pending.drain() {
        let entry = (pending.kind == RequestKind::Place)
            .then(|| live.book.by_client_id.get_mut(&pending.client_order_id))
            .flatten();
        match entry {
            Some(entry) => {
                entry.transition(S::Unknown);
                record(shared, instance, entry);
                let payload = order_payload(&entry.order);
                for waiter in entry.waiters.drain(..) {
                    shared.complete(Completion::err(waiter, &lost, payload.clone()));
                }
            }
            None => shared.complete(Completion::err(token, &lost, Vec::new())),
        }
    }
}

/// Asks the terminal about every order whose outcome is unknown (after a worker or server
/// restart). Called when the worker is READY.
pub fn reconcile_unknown(shared: &Shared, live: &mut Live) {
    let comments: Vec<String> = live
        .book
        .not_final()
        .filter(|e| e.order.status == S::Unknown as i32)
        .map(|e| comment_key(&e.order.client_order_id))
        .collect();
    let Some(tx) = &live.tx else {
        return;
    };
    if comments.is_empty() {
        return;
    }
    let request = t::EngineFrame {
        body: Some(t::engine_frame::Body::Reconcile(t::ReconcileRequest {
            request_id: shared.token(),
            comments,
            from_time_msc: 0,
        })),
    };
    let _ = tx.send(frame::encode(&request));
}

/// What the terminal knows of orders whose outcome was unknown.
pub fn on_reconcile(shared: &Shared, instance: &Instance, result: &t::ReconcileResult) {
    let mut live = instance.live.lock();
    let unknown: Vec<String> = live
        .book
        .not_final()
        .filter(|e| e.order.status == S::Unknown as i32)
        .map(|e| e.order.client_order_id.clone())
        .collect();
    for cid in unknown {
        let key = comment_key(&cid);
        let Some(entry) = live.book.by_client_id.get_mut(&cid) else {
            continue;
        };
        // Orders numbered before this one was placed are not it: an older order with the
        // same id (forgotten, then the id used again) carries the same comment.
        let floor = entry.ticket_floor;
        let found = result
            .orders
            .iter()
            .filter(|o| o.comment == key && o.ticket > floor)
            .max_by_key(|o| (o.time_done_msc, o.time_setup_msc));
        let filled: f64 = result
            .deals
            .iter()
            .filter(|d| d.comment == key && d.entry == 0 && d.order > floor)
            .map(|d| d.volume)
            .sum();
        let status = match found {
            Some(info) => {
                entry.order.order_id = info.ticket;
                if info.position_id != 0 {
                    entry.order.position_id = info.position_id;
                }
                status_of_state(info.state)
            }
            None if filled > 0.0 => S::Filled,
            // The terminal never saw it: the request was lost before it arrived.
            None => S::Rejected,
        };
        if filled > 0.0 {
            entry.order.filled_volume = filled;
        }
        entry.order.status_message = if found.is_some() || filled > 0.0 {
            "reconciled with the terminal".to_owned()
        } else {
            "not found at the terminal: it never arrived there".to_owned()
        };
        entry.order.updated_time = Some(convert::now());
        if entry.transition(status) {
            record(shared, instance, entry);
            let ok = matches!(status, S::Filled | S::PartiallyFilled | S::Accepted);
            let error = (!ok).then(|| {
                EngineError::new(
                    Code::FailedPrecondition,
                    reason::ORDER_NOT_EXECUTED,
                    entry.order.status_message.clone(),
                )
            });
            answer(shared, entry, error.as_ref());
        }
        let ticket = entry.order.order_id;
        if ticket != 0 {
            live.book.index_ticket(ticket, &cid);
        }
    }
}

/// Rebuilds an instance's book from the journal: orders without a known outcome become
/// UNKNOWN until reconciled.
pub fn restore(shared: &Shared, instance: &Instance, records: Vec<JournalRecord>) {
    let mut live = instance.live.lock();
    for record_ in records {
        live.book.saw_ticket(record_.ticket_floor);
        let Some(order) = record_.order else { continue };
        if order.client_order_id.is_empty() {
            continue; // the instance's ticket watermark (see `journal::watermark`)
        }
        let mut entry = OrderEntry {
            order,
            payload_hash: record_.payload_hash,
            waiters: Vec::new(),
            answer: None,
            ticket_floor: record_.ticket_floor,
        };
        let status = S::try_from(entry.order.status).unwrap_or(S::Unspecified);
        if matches!(status, S::New | S::Submitted) {
            entry.transition(S::Unknown);
            let _ = journal(shared, &entry);
        } else if matches!(status, S::Accepted | S::PartiallyFilled) {
            // The terminal took it before the restart: a duplicate gets the order at once
            // (without this it waited for an answer that had already come, until its deadline).
            entry.answer = Some((0, String::new(), String::new()));
        } else if is_final(status) {
            let ok = matches!(status, S::Filled);
            entry.answer = Some(if ok {
                (0, String::new(), String::new())
            } else {
                let rc = retcode::lookup(entry.order.retcode);
                (
                    rc.code as i32,
                    rc.name.to_owned(),
                    entry.order.status_message.clone(),
                )
            });
        }
        live.book.insert(entry);
    }
}
