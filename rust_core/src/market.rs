//! Market data questions (MarketDataService) passed through to the worker: the engine
//! numbers each `MarketRequest`, remembers it, and completes the caller's token with the
//! worker's encoded `MarketAnswer` (whose code says how it went). Books the worker was
//! asked to add (`BookQuery`) come back as `BookUpdate` frames, fanned out whole.

use crate::reason;
use bytes::Bytes;
use prost::Message;
use std::sync::Arc;

use crate::convert;
use crate::error::{Code, EngineError, Result};
use crate::fanout::Topic;
use crate::frame;
use crate::notify::Completion;
use crate::pb::terminal as t;
use crate::pb::v1;
use crate::pb::v1::InstanceState as S;
use crate::shared::Shared;
use crate::supervisor::{Instance, Live};

/// Sends an encoded `MarketRequest` (its request_id is replaced) to the instance's worker;
/// returns the token completed with the encoded `MarketAnswer`.
///
/// # Errors
/// `NOT_FOUND` (instance), `INVALID_ARGUMENT` (undecodable request),
/// `FAILED_PRECONDITION` when the instance has no running worker.
pub fn query(shared: &Arc<Shared>, instance_id: &str, request: &[u8]) -> Result<u64> {
    let instance = shared.instance(instance_id)?;
    let mut request = t::MarketRequest::decode(request).map_err(|e| {
        EngineError::new(
            Code::InvalidArgument,
            reason::MALFORMED_REQUEST,
            format!("not a MarketRequest: {e}"),
        )
    })?;
    let token = shared.token();
    request.request_id = token;
    let frame = frame::encode(&t::EngineFrame {
        body: Some(t::engine_frame::Body::MarketRequest(request)),
    });
    let mut live = instance.live.lock();
    let ready = matches!(live.state, S::Ready | S::Degraded);
    let sent = match (&live.tx, ready) {
        (Some(tx), true) => tx.send(frame).is_ok(),
        _ => false,
    };
    if !sent {
        return Err(EngineError::new(
            Code::FailedPrecondition,
            reason::INSTANCE_NOT_READY,
            format!(
                "instance '{}' is {}: no terminal to ask",
                instance.spec.instance_id,
                live.state.as_str_name()
            ),
        )
        .field("instance_id"));
    }
    live.market_pending.insert(token);
    Ok(token)
}

/// The worker's answer: completes the token it answers (an unknown request id is dropped).
pub fn on_answer(shared: &Shared, instance: &Instance, answer: &t::MarketAnswer) {
    if instance
        .live
        .lock()
        .market_pending
        .remove(&answer.request_id)
    {
        shared.complete(Completion::ok(answer.request_id, answer.encode_to_vec()));
    }
}

/// A book from the worker: published, as one whole `StreamBookResponse`, to the book
/// subscribers of the instance's symbol.
pub fn on_book(shared: &Shared, instance: &Instance, update: t::BookUpdate) {
    let id = instance.spec.instance_id.as_str();
    let book = v1::StreamBookResponse {
        instance_id: id.to_owned(),
        time: Some(convert::ts_msc(update.time_msc)),
        levels: update
            .levels
            .into_iter()
            .map(|l| v1::BookLevel {
                r#type: l.r#type,
                price: l.price,
                volume: l.volume,
            })
            .collect(),
        symbol: update.symbol,
        ..Default::default()
    };
    let piece = Bytes::from(book.encode_to_vec());
    shared
        .hub
        .publish(Topic::Book, id, &[(&book.symbol, piece)], &shared.notifier);
}

/// The caller stopped waiting for `token` (its deadline passed, or it was cancelled): the
/// question is forgotten, so that one the worker never answers does not stay until the
/// worker is lost (an answer coming later is dropped as an unknown one). Whether it was
/// still waiting.
pub fn forget(instance: &Instance, token: u64) -> bool {
    instance.live.lock().market_pending.remove(&token)
}

/// The worker is gone: the questions it did not answer fail, and the instance's book
/// streams end (the terminal's books went with it) once what they have queued is read.
pub fn on_worker_lost(shared: &Shared, instance: &Instance, live: &mut Live) {
    let lost = EngineError::new(
        Code::Unavailable,
        reason::WORKER_LOST,
        "the worker stopped before answering",
    );
    for token in live.market_pending.drain() {
        shared.complete(Completion::err(token, &lost, Vec::new()));
    }
    let books_gone = EngineError::new(
        Code::Unavailable,
        reason::WORKER_LOST,
        "the instance's worker stopped, and its terminal's book with it: subscribe again",
    );
    shared.hub.close_topic(
        Topic::Book,
        &instance.spec.instance_id,
        &books_gone,
        &shared.notifier,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::LogLimits;
    use crate::pb::v1;
    use crate::supervisor::{InstanceSpec, Supervision};
    use std::path::PathBuf;

    fn instance() -> Instance {
        let spec = InstanceSpec {
            instance_id: "m1".into(),
            owner: String::new(),
            backend: v1::Backend::Sim,
            dir: PathBuf::new(),
            log_dir: PathBuf::new(),
            argv: Vec::new(),
            env: Vec::new(),
            config: v1::InstanceConfig::default(),
            supervision: Supervision::default(),
            secret_files: Vec::new(),
            created: None,
            config_version: 0,
            kill_switch: false,
            first_sequence_after: 0,
        };
        Instance::new(spec, 0, LogLimits::default()).expect("instance")
    }

    #[test]
    fn a_forgotten_question_is_no_longer_pending() {
        let instance = instance();
        instance.live.lock().market_pending.extend([7, 8]);
        assert!(forget(&instance, 7));
        assert!(!forget(&instance, 7), "forgotten once");
        assert!(!forget(&instance, 9), "never asked");
        let pending: Vec<u64> = instance
            .live
            .lock()
            .market_pending
            .iter()
            .copied()
            .collect();
        assert_eq!(pending, vec![8]);
    }
}
