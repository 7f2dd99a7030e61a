//! Signals → follower orders: a source's signal becomes a copy on every relation following
//! the source, through the same jobs as a master's trade ([`super::dispatch`]).

use std::sync::Arc;
use std::time::Instant;

use super::dispatch::{open_job, skip, submit, MasterTrade};
use super::spec::signal_copy_id;
use crate::error::{Code, EngineError};
use crate::pb::v1;
use crate::routing;
use crate::shared::Shared;
use crate::supervisor::Instance;

/// A signal sent again whose copy exists, made then with other default stops or sizing (the
/// price has moved since): answered with that copy (its token), as the journal answers a
/// repeated order.
fn existing_copy(shared: &Shared, follower: &Instance, client_order_id: &str) -> Option<u64> {
    let mut live = follower.live.lock();
    let entry = live.book.by_client_id.get_mut(client_order_id)?;
    let token = shared.token();
    routing::answer_known(shared, entry, token);
    Some(token)
}

/// One follower's result of a signal: its id, the copy's client_order_id, and the token its
/// answer completes or the error that refused it.
pub type SignalCopy = (String, String, Result<u64, EngineError>);

/// A signal of `source`: a copy on every relation following it (sized by each relation,
/// or from `risk_percent` of each follower's equity when > 0).
#[allow(clippy::too_many_arguments)]
pub fn copy_signal(
    shared: &Arc<Shared>,
    source: &str,
    signal_id: &str,
    symbol: &str,
    side: v1::Side,
    volume: f64,
    risk_percent: f64,
    price: f64,
    stop_loss: f64,
    take_profit: f64,
) -> Vec<SignalCopy> {
    let started = Instant::now();
    let trade = MasterTrade {
        position: 0,
        deal: 0,
        action: "o".to_owned(),
        symbol: symbol.to_owned(),
        side,
        order_type: v1::OrderType::Market,
        volume,
        price,
        stop_loss,
        take_profit,
        magic: 0,
        balance: 0.0,
        equity: 0.0,
        risk_percent,
        signal_id: Some(signal_id.to_owned()),
    };
    let mut out = Vec::new();
    let _hold = shared.notifier.hold();
    for relation in shared.copier.of_source(source) {
        let follower_id = relation.spec.follower_instance_id.clone();
        let cid = signal_copy_id(&relation.prefix, signal_id);
        match open_job(shared, &relation, &trade) {
            Ok(job) => {
                let cid = job.intent.client_order_id.clone();
                let follower = Arc::clone(&job.follower);
                let result = match submit(shared, job, started, false) {
                    Err(e) if e.reason == crate::reason::CLIENT_ORDER_ID_REUSED => {
                        existing_copy(shared, &follower, &cid).ok_or(e)
                    }
                    sent => sent,
                };
                out.push((follower_id, cid, result));
            }
            Err(refused) => {
                let (follower, intent, reason, message) = *refused;
                skip(
                    shared,
                    &relation,
                    follower.as_deref(),
                    intent.as_ref(),
                    reason,
                    &message,
                );
                let code = if reason == crate::reason::FOLLOWER_NOT_FOUND {
                    Code::NotFound
                } else {
                    Code::FailedPrecondition
                };
                out.push((
                    follower_id,
                    cid,
                    Err(EngineError::new(code, reason, message)),
                ));
            }
        }
    }
    out
}
