//! Order sessions: a bidirectional stream of orders in and results out, handled in Rust.
//!
//! Python hands over each `OrderSessionRequest` as the bytes gRPC received and writes each
//! queued `OrderSessionResponse` as the bytes built here: per order it only moves bytes.
//! Every order takes exactly the path of `PlaceOrder` (validation, idempotency, journal).

use crate::reason;
use parking_lot::Mutex;
use prost::Message;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use crate::error::{Code, EngineError};
use crate::notify::{Completion, Notifier};
use crate::pb::v1;

/// One session's queue of encoded responses.
#[derive(Debug)]
pub struct Session {
    /// Id announced through [`Notifier::ready`] (shared with stream subscriptions).
    pub id: u64,
    queue: Mutex<(VecDeque<Vec<u8>>, bool)>,
    outstanding: AtomicUsize,
    /// The client sent a batch: answers leave packed (`OrderSessionResponse.batch`).
    packed: AtomicBool,
    /// The only owner whose instances the session may name (None: every owner's).
    owner: Option<String>,
}

/// Requests one batch may carry.
pub const MAX_BATCH: usize = 1000;

/// A packed response carries about this much at most (gRPC clients refuse messages over
/// 4 MB by default).
const MAX_PACKED_BYTES: usize = 1 << 20;

/// `OrderSessionResponse.batch` (field 6, length-delimited).
const BATCH_KEY: u8 = 6 << 3 | 2;

impl Session {
    /// A new session.
    pub fn new(id: u64) -> Self {
        Self {
            id,
            queue: Mutex::new((VecDeque::new(), false)),
            outstanding: AtomicUsize::new(0),
            packed: AtomicBool::new(false),
            owner: None,
        }
    }

    /// The session, limited to `owner`'s instances (None: every owner's).
    #[must_use]
    pub fn for_owner(mut self, owner: Option<String>) -> Self {
        self.owner = owner;
        self
    }

    /// The only owner whose instances the session may name (None: every owner's).
    pub fn owner(&self) -> Option<&str> {
        self.owner.as_deref()
    }

    /// Answers leave packed from now on.
    pub fn pack(&self) {
        self.packed.store(true, Ordering::Release);
    }

    /// Orders submitted and not answered yet.
    pub fn outstanding(&self) -> usize {
        self.outstanding.load(Ordering::Acquire)
    }

    /// Counts a submission.
    pub fn submitted(&self) {
        self.outstanding.fetch_add(1, Ordering::AcqRel);
    }

    /// Queues the answer to one order.
    pub fn answer(&self, client_order_id: &str, completion: &Completion, notifier: &Notifier) {
        let head = v1::OrderSessionResponse {
            client_order_id: client_order_id.to_owned(),
            code: completion.code,
            reason: completion.reason.clone(),
            message: completion.message.clone(),
            order: None,
            batch: Vec::new(),
        };
        let mut bytes = head.encode_to_vec();
        // The payload is a PlaceOrderResponse whose field 1 is the order: re-tag it as the
        // response's field 5 and keep its bytes as they are.
        if completion.payload.first() == Some(&0x0A) {
            bytes.push(0x2A);
            bytes.extend_from_slice(&completion.payload[1..]);
        }
        let announce = {
            // Counted out under the queue's lock: a `take` that returns this answer sees the
            // window it frees (Python reopens the window after every non-empty take).
            let mut q = self.queue.lock();
            self.outstanding.fetch_sub(1, Ordering::AcqRel);
            q.0.push_back(bytes);
            !std::mem::replace(&mut q.1, true)
        };
        if announce {
            notifier.ready(&[self.id]);
        }
    }

    /// Answers a request refused before it became an order.
    pub fn refuse(&self, client_order_id: &str, error: &EngineError, notifier: &Notifier) {
        self.answer(
            client_order_id,
            &Completion::err(0, error, Vec::new()),
            notifier,
        );
    }

    /// Takes every queued response.
    pub fn take(&self) -> Vec<Vec<u8>> {
        let answers: Vec<Vec<u8>> = {
            let mut q = self.queue.lock();
            q.1 = false;
            q.0.drain(..).collect()
        };
        if !self.packed.load(Ordering::Acquire) || answers.is_empty() {
            return answers;
        }
        // Each answer as one `batch` entry: protobuf lets entries be concatenated.
        let mut out = Vec::new();
        let mut message = Vec::new();
        for answer in answers {
            if !message.is_empty() && message.len() + answer.len() > MAX_PACKED_BYTES {
                out.push(std::mem::take(&mut message));
            }
            message.push(BATCH_KEY);
            prost::encoding::encode_varint(answer.len() as u64, &mut message);
            message.extend_from_slice(&answer);
        }
        out.push(message);
        out
    }
}

/// Where answers routed by token go instead of Python: an order session, or a batch of the
/// engine's own requests (the kill switch).
pub trait Sink: Send + Sync + std::fmt::Debug {
    /// Takes the answer to the request `key` stood for.
    fn answer(&self, key: &str, completion: &Completion, notifier: &Notifier);
}

impl Sink for Session {
    fn answer(&self, key: &str, completion: &Completion, notifier: &Notifier) {
        Session::answer(self, key, completion, notifier);
    }
}

/// A routed answer's destination and the key it is answered under.
pub type Route = (Arc<dyn Sink>, String);

/// Which session waits for which order token.
#[derive(Debug, Default)]
pub struct Routes {
    by_token: Mutex<std::collections::HashMap<u64, Route>>,
    active: AtomicUsize,
}

impl Routes {
    /// Sends the completion of `token` to `session`.
    pub fn add(&self, token: u64, session: Arc<dyn Sink>, client_order_id: String) {
        self.by_token
            .lock()
            .insert(token, (session, client_order_id));
        self.active.fetch_add(1, Ordering::AcqRel);
    }

    /// Takes the route of a token, if any.
    pub fn take(&self, token: u64) -> Option<Route> {
        if self.active.load(Ordering::Acquire) == 0 {
            return None;
        }
        let route = self.by_token.lock().remove(&token);
        if route.is_some() {
            self.active.fetch_sub(1, Ordering::AcqRel);
        }
        route
    }
}

/// Decodes a request; errors name what is wrong.
///
/// # Errors
/// `INVALID_ARGUMENT` for bytes that are not an `OrderSessionRequest` or carry nothing.
pub fn decode(raw: &[u8]) -> Result<v1::order_session_request::Request, EngineError> {
    let request = v1::OrderSessionRequest::decode(raw).map_err(|e| {
        EngineError::invalid(
            "request",
            reason::REQUEST_INVALID,
            format!("request: not decodable: {e}"),
        )
    })?;
    crate::wire::check_known("mt5exec.v1.OrderSessionRequest", raw)?;
    request.request.ok_or_else(empty)
}

/// Refusal of a batch of more than [`MAX_BATCH`] requests.
pub fn batch_too_large() -> EngineError {
    EngineError::invalid(
        "batch",
        reason::BATCH_TOO_LARGE,
        format!("batch: at most {MAX_BATCH} requests"),
    )
}

/// Refusal of a batch inside a batch.
pub fn nested_batch() -> EngineError {
    EngineError::invalid(
        "batch",
        reason::BATCH_NESTED,
        "batch: each request is a place or a cancel",
    )
}

/// Refusal of a request with neither a place nor a cancel.
pub fn empty() -> EngineError {
    EngineError::invalid(
        "request",
        reason::FIELD_REQUIRED,
        "request: place, cancel or batch",
    )
}

/// Checks an id the way the API layer does: `[A-Za-z0-9][A-Za-z0-9_.-]{0,63}`.
///
/// # Errors
/// `INVALID_ARGUMENT` naming `field`.
pub fn check_instance_id(field: &'static str, value: &str) -> Result<(), EngineError> {
    let ok = !value.is_empty()
        && value.len() <= 64
        && value.as_bytes()[0].is_ascii_alphanumeric()
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(EngineError::invalid(
            field,
            if value.is_empty() {
                reason::FIELD_REQUIRED
            } else {
                reason::ID_INVALID
            },
            format!("{field}: must match [A-Za-z0-9][A-Za-z0-9_.-]{{0,63}}"),
        ))
    }
}

/// Checks a client order id: `[A-Za-z0-9_.:-]{1,64}`.
///
/// # Errors
/// `INVALID_ARGUMENT` naming `client_order_id`.
pub fn check_client_order_id(value: &str) -> Result<(), EngineError> {
    let ok = !value.is_empty()
        && value.len() <= 64
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.:-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(EngineError::invalid(
            "client_order_id",
            reason::CLIENT_ORDER_ID_INVALID,
            "client_order_id: must match [A-Za-z0-9_.:-]{1,64}",
        ))
    }
}

/// A fresh client order id: 24 hex digits, unique across restarts (start time and token).
pub fn generate_client_order_id(start_nanos: u64, token: u64) -> String {
    let mixed = start_nanos.rotate_left(17) ^ token.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    format!("{:08x}{mixed:016x}", (start_nanos >> 24) as u32)
}

/// Why a length went wrong, for messages.
pub fn too_long(field: &'static str, max: usize) -> EngineError {
    EngineError::new(
        Code::InvalidArgument,
        reason::VALUE_TOO_LONG,
        format!("{field}: at most {max} characters"),
    )
    .field(field)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_checked_like_the_api_layer() {
        assert!(check_instance_id("instance_id", "a-1.b_c").is_ok());
        for bad in ["", ".x", "../x", "a/b", &"x".repeat(65)] {
            assert!(check_instance_id("instance_id", bad).is_err(), "{bad}");
        }
        assert!(check_client_order_id("a:b-c.d_e").is_ok());
        assert!(check_client_order_id("has space").is_err());
        assert!(check_client_order_id("").is_err());
        let id = generate_client_order_id(1_700_000_000_000_000_000, 5);
        assert_eq!(id.len(), 24);
        assert!(check_client_order_id(&id).is_ok());
        assert_ne!(id, generate_client_order_id(1_700_000_000_000_000_000, 6));
    }

    #[test]
    fn answers_queue_once_announced() {
        let notifier = Notifier::new().expect("notifier");
        let session = Session::new(42);
        session.submitted();
        session.submitted();
        let order = v1::Order {
            client_order_id: "c".into(),
            order_id: 9,
            ..Default::default()
        };
        let payload = v1::PlaceOrderResponse {
            order: Some(order.clone()),
        }
        .encode_to_vec();
        session.answer("c", &Completion::ok(1, payload), &notifier);
        session.refuse(
            "d",
            &EngineError::invalid("volume", "VOLUME_INVALID", "no"),
            &notifier,
        );
        assert_eq!(notifier.drain().ready, vec![42]);
        assert_eq!(session.outstanding(), 0);
        let taken = session.take();
        let first = v1::OrderSessionResponse::decode(&taken[0][..]).expect("decode");
        assert_eq!(first.order, Some(order));
        let second = v1::OrderSessionResponse::decode(&taken[1][..]).expect("decode");
        assert_eq!((second.code, second.reason.as_str()), (3, "VOLUME_INVALID"));
    }

    #[test]
    fn a_packed_session_answers_in_one_message() {
        let notifier = Notifier::new().expect("notifier");
        let session = Session::new(7);
        session.pack();
        for n in 0..3 {
            session.submitted();
            session.refuse(
                &format!("c{n}"),
                &EngineError::invalid("volume", "VOLUME_INVALID", "no"),
                &notifier,
            );
        }
        let taken = session.take();
        assert_eq!(taken.len(), 1);
        let packed = v1::OrderSessionResponse::decode(&taken[0][..]).expect("decode");
        let ids: Vec<&str> = packed
            .batch
            .iter()
            .map(|r| r.client_order_id.as_str())
            .collect();
        assert_eq!(ids, ["c0", "c1", "c2"]);
        assert!(packed.batch.iter().all(|r| r.reason == "VOLUME_INVALID"));
        assert!(packed.client_order_id.is_empty());
        assert!(session.take().is_empty());
    }
}
