//! The state the engine's API and its tasks share ([`Shared`]): below every module that
//! works on it (supervisor, routing, risk, journal, events, killswitch, copier...), so that
//! they depend on it and `engine.rs`, the façade on top, depends on them; no arrow runs
//! back up.

use parking_lot::RwLock;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::config::EngineConfig;
use crate::error::{EngineError, Result};
use crate::fanout::Hub;
use crate::journal::{Journal, JournalRecord};
use crate::notify::{Completion, Notifier};
use crate::risk::refusals::Refusals;
use crate::risk::Gate;
use crate::session;
use crate::supervisor::Instance;

/// State shared by the engine's API and its tasks.
#[derive(Debug)]
pub struct Shared {
    /// Tunables.
    pub config: EngineConfig,
    /// Wakes Python.
    pub notifier: Notifier,
    /// Stream subscribers.
    pub hub: Hub,
    pub(crate) instances: RwLock<HashMap<String, Arc<Instance>>>,
    pub(crate) next_token: AtomicU64,
    /// The order journal.
    pub journal: Option<Arc<Journal>>,
    /// Journal records replayed at start, waiting for their instance.
    pub(crate) replayed: parking_lot::Mutex<HashMap<String, Vec<JournalRecord>>>,
    /// The engine's runtime, for blocking work (fsync) off the async threads.
    pub runtime: tokio::runtime::Handle,
    /// Order tokens whose answers go to an order session.
    pub routes: session::Routes,
    /// When the engine started (Unix nanoseconds): generated client order ids begin with it.
    pub(crate) started_nanos: u64,
    pub(crate) epoch: std::time::Instant,
    /// Owner and global throttles, owner whitelists, rejection counts.
    pub risk: Gate,
    /// Throttle refusals waiting to be published, one event per instance, reason and second.
    pub refusals: Refusals,
    /// Copy relations.
    pub copier: crate::copier::Copier,
}

impl Shared {
    /// Delivers an order's answer: to its order session, or to Python.
    pub fn complete(&self, completion: Completion) {
        match self.routes.take(completion.token) {
            Some((session, client_order_id)) => {
                session.answer(&client_order_id, &completion, &self.notifier);
            }
            None => self.notifier.complete(completion),
        }
    }

    /// Monotonic nanoseconds since the engine started (throttles).
    pub fn mono_ns(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// A new token for a call answered later.
    pub fn token(&self) -> u64 {
        self.next_token.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// The instance of that id.
    ///
    /// # Errors
    /// `NOT_FOUND`.
    pub fn instance(&self, instance_id: &str) -> Result<Arc<Instance>> {
        self.instances
            .read()
            .get(instance_id)
            .cloned()
            .ok_or_else(|| EngineError::instance_not_found(instance_id))
    }

    /// The instance of that id, for a caller who may use only `owner`'s instances (None:
    /// every owner's): another owner's is `NOT_FOUND` exactly as one that does not exist.
    ///
    /// # Errors
    /// `NOT_FOUND`.
    pub fn instance_of(&self, instance_id: &str, owner: Option<&str>) -> Result<Arc<Instance>> {
        let instance = self.instance(instance_id)?;
        match owner {
            Some(owner) if instance.spec.owner != owner => {
                Err(EngineError::instance_not_found(instance_id))
            }
            _ => Ok(instance),
        }
    }
}
