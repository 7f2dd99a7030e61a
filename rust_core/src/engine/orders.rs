//! The engine's orders: placed one by one or through an order session, cancelled,
//! modified, and read back.

use crate::reason;
use prost::Message;
use std::sync::Arc;

use super::Engine;
use crate::convert::now_msc;
use crate::error::{EngineError, Result};
use crate::pb::v1;
use crate::pb::v1::order_session_request::Request as OsRequest;
use crate::routing::{self, OrderChanges, OrderRef};
use crate::session::{self, Session};
use crate::supervisor::Instance;
use crate::validate::OrderIntent;

impl Engine {
    /// Places an order (idempotent on its client_order_id); the token completes with an
    /// encoded `PlaceOrderResponse`.
    ///
    /// # Errors
    /// `NOT_FOUND`, `INVALID_ARGUMENT`, `ALREADY_EXISTS`, `FAILED_PRECONDITION` or
    /// `UNAVAILABLE`, naming the field at fault; nothing reaches the worker then.
    pub fn place_order(&self, instance_id: &str, intent: OrderIntent) -> Result<u64> {
        let instance = self.shared.instance(instance_id)?;
        routing::place(
            &self.shared,
            &instance,
            intent,
            now_msc(),
            self.shared.token(),
        )
    }

    /// Opens an order session.
    pub fn open_session(&self) -> Arc<Session> {
        self.open_session_for(None)
    }

    /// Opens an order session whose orders and cancels may name only `owner`'s instances
    /// (None: every owner's); another owner's is refused as `NOT_FOUND`, as one that does
    /// not exist.
    pub fn open_session_for(&self, owner: Option<String>) -> Arc<Session> {
        Arc::new(Session::new(self.shared.hub.next_id()).for_owner(owner))
    }

    /// Submits one encoded `OrderSessionRequest`; its answer (also a refusal) is queued on
    /// the session as an encoded `OrderSessionResponse`. A batch is handled request by request,
    /// in order, and turns the session's answers into packed messages.
    pub fn session_submit(&self, session: &Arc<Session>, raw: &[u8]) {
        match session::decode(raw) {
            Ok(OsRequest::Batch(batch)) => {
                session.pack();
                if batch.requests.len() > session::MAX_BATCH {
                    self.session_request(session, Err(session::batch_too_large()));
                    return;
                }
                for inner in batch.requests {
                    // A batch inside this one is refused there.
                    self.session_request(session, inner.request.ok_or_else(session::empty));
                }
            }
            decoded => self.session_request(session, decoded),
        }
    }

    /// One place or cancel of a session (or its refusal), answered on the session.
    fn session_request(&self, session: &Arc<Session>, request: Result<OsRequest>) {
        session.submitted();
        let shared = &self.shared;
        let (cid, result) = match request {
            Err(e) => (String::new(), Err(e)),
            Ok(OsRequest::Place(p)) => {
                let cid = if p.client_order_id.is_empty() {
                    session::generate_client_order_id(shared.started_nanos, shared.token())
                } else {
                    p.client_order_id.clone()
                };
                let token = shared.token();
                let result = self.session_place(session, token, cid.clone(), p);
                (cid, result)
            }
            Ok(OsRequest::Cancel(c)) => {
                let cid = c.client_order_id.clone();
                let result = session::check_instance_id("instance_id", &c.instance_id)
                    .and_then(|()| shared.instance_of(&c.instance_id, session.owner()))
                    .and_then(|instance| {
                        let which = if c.order_id != 0 {
                            OrderRef::Ticket(c.order_id)
                        } else {
                            OrderRef::ClientId(c.client_order_id.clone())
                        };
                        let token = shared.token();
                        shared.routes.add(token, session.clone(), cid.clone());
                        if let Err(e) = routing::cancel(shared, &instance, &which, token) {
                            shared.routes.take(token);
                            return Err(e);
                        }
                        Ok(())
                    });
                (cid, result)
            }
            Ok(OsRequest::Batch(_)) => (String::new(), Err(session::nested_batch())),
        };
        if let Err(e) = result {
            session.refuse(&cid, &e, &shared.notifier);
        }
    }

    fn session_place(
        &self,
        session: &Arc<Session>,
        token: u64,
        cid: String,
        p: v1::PlaceOrderRequest,
    ) -> Result<()> {
        let shared = &self.shared;
        let (instance, intent) = self.intent_of(cid.clone(), p, session.owner())?;
        // Routed before placing: a duplicate's stored answer is delivered at once.
        shared.routes.add(token, session.clone(), cid);
        if let Err(e) = routing::place(shared, &instance, intent, now_msc(), token) {
            shared.routes.take(token);
            return Err(e);
        }
        Ok(())
    }

    /// Places an order from an encoded `PlaceOrderRequest` (what gRPC received); returns the
    /// token and the client_order_id (generated when the request had none).
    ///
    /// # Errors
    /// As `place_order`, plus `INVALID_ARGUMENT` for bytes that do not decode.
    /// With `check_only` it is the terminal's `order_check` instead (a `CheckOrderResponse`).
    pub fn place_order_raw(&self, raw: &[u8], check_only: bool) -> Result<(u64, String)> {
        self.place_order_raw_for(raw, check_only, None)
    }

    /// `place_order_raw` for a caller who may use only `owner`'s instances (None: every
    /// owner's): another owner's instance is `NOT_FOUND` exactly as one that does not exist.
    ///
    /// # Errors
    /// As `place_order_raw`.
    pub fn place_order_raw_for(
        &self,
        raw: &[u8],
        check_only: bool,
        owner: Option<&str>,
    ) -> Result<(u64, String)> {
        let p = v1::PlaceOrderRequest::decode(raw).map_err(|e| {
            EngineError::invalid("request", reason::REQUEST_INVALID, format!("request: {e}"))
        })?;
        crate::wire::check_known("mt5exec.v1.PlaceOrderRequest", raw)?;
        let shared = &self.shared;
        let cid = if p.client_order_id.is_empty() {
            session::generate_client_order_id(shared.started_nanos, shared.token())
        } else {
            p.client_order_id.clone()
        };
        let (instance, intent) = self.intent_of(cid.clone(), p, owner)?;
        let token = if check_only {
            routing::check(shared, &instance, &intent, now_msc())?
        } else {
            routing::place(shared, &instance, intent, now_msc(), shared.token())?
        };
        Ok((token, cid))
    }

    fn intent_of(
        &self,
        cid: String,
        p: v1::PlaceOrderRequest,
        owner: Option<&str>,
    ) -> Result<(Arc<Instance>, OrderIntent)> {
        session::check_instance_id("instance_id", &p.instance_id)?;
        session::check_client_order_id(&cid)?;
        if p.symbol.is_empty() {
            return Err(EngineError::invalid(
                "symbol",
                reason::FIELD_REQUIRED,
                "symbol: required",
            ));
        }
        if p.comment.len() > 64 {
            return Err(session::too_long("comment", 64));
        }
        let instance = self.shared.instance_of(&p.instance_id, owner)?;
        let expiration_msc = match p.expiration {
            None => 0,
            Some(t) => t
                .seconds
                .checked_mul(1000)
                .and_then(|ms| ms.checked_add(i64::from(t.nanos / 1_000_000)))
                .filter(|_| (0..1_000_000_000).contains(&t.nanos))
                .ok_or_else(|| {
                    EngineError::invalid(
                        "expiration",
                        reason::VALUE_OUT_OF_RANGE,
                        "expiration: not a representable time",
                    )
                })?,
        };
        let intent = OrderIntent {
            client_order_id: cid,
            symbol: p.symbol,
            side: p.side,
            order_type: p.r#type,
            volume: p.volume,
            price: p.price,
            stop_limit_price: p.stop_limit_price,
            stop_loss: p.stop_loss,
            take_profit: p.take_profit,
            deviation_points: p.deviation_points,
            time_in_force: p.time_in_force,
            expiration_msc,
            filling: p.filling,
            comment: p.comment,
            magic: p.magic,
            position_id: 0,
        };
        Ok((instance, intent))
    }

    /// Cancels a pending order.
    ///
    /// # Errors
    /// `NOT_FOUND`, `FAILED_PRECONDITION`.
    pub fn cancel_order(&self, instance_id: &str, which: &OrderRef) -> Result<u64> {
        let instance = self.shared.instance(instance_id)?;
        routing::cancel(&self.shared, &instance, which, self.shared.token())
    }

    /// Changes a pending order.
    ///
    /// # Errors
    /// `NOT_FOUND`, `FAILED_PRECONDITION`, `INVALID_ARGUMENT`.
    pub fn modify_order(
        &self,
        instance_id: &str,
        which: &OrderRef,
        changes: &OrderChanges,
    ) -> Result<u64> {
        let instance = self.shared.instance(instance_id)?;
        routing::modify(&self.shared, &instance, which, changes)
    }

    /// Changes a position's SL/TP.
    ///
    /// # Errors
    /// `NOT_FOUND`, `INVALID_ARGUMENT`.
    pub fn modify_position(
        &self,
        instance_id: &str,
        position_id: u64,
        stop_loss: f64,
        take_profit: f64,
    ) -> Result<u64> {
        let instance = self.shared.instance(instance_id)?;
        routing::modify_position(&self.shared, &instance, position_id, stop_loss, take_profit)
    }

    /// An encoded order.
    ///
    /// # Errors
    /// `NOT_FOUND`.
    pub fn get_order(&self, instance_id: &str, which: &OrderRef) -> Result<Vec<u8>> {
        routing::get(&*self.shared.instance(instance_id)?, which)
    }

    /// One page of an instance's orders, newest first: the encoded `ListOrdersResponse`.
    ///
    /// # Errors
    /// `NOT_FOUND`; `INVALID_ARGUMENT` for a bad page token.
    pub fn list_orders(&self, instance_id: &str, query: &routing::OrderQuery) -> Result<Vec<u8>> {
        routing::list_page(&*self.shared.instance(instance_id)?, query)
    }
}
