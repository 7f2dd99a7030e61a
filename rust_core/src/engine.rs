//! The Trade Engine: instances, order routing and queries, on its own tokio runtime.
//!
//! Every public method is synchronous and quick: it checks, queues work and
//! returns a token when the answer comes later. Answers arrive through the
//! [`Notifier`](crate::notify::Notifier); nothing here waits with the GIL held
//! or calls into Python.

use parking_lot::RwLock;
use prost::Message;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::convert;
use crate::error::{Code, EngineError, Result};
use crate::events::{LogLimits, StreamStart};
use crate::fanout::{Hub, Subscription, Topic};
use crate::frame;
use crate::journal::{FsyncPolicy, Journal, JournalRecord, DEFAULT_COMPACT_BYTES};
use crate::killswitch;
use crate::latency;
use crate::notify::{Completion, Notifier};
use crate::orders::Retention;
use crate::pb::v1;
use crate::pb::v1::order_session_request::Request as OsRequest;
use crate::risk::refusals::Refusals;
use crate::risk::{self, DayState, Gate, OwnerPolicy};
use crate::routing::{self, OrderChanges, OrderRef, RequestKind};
use crate::session::{self, Session};
use crate::supervisor::{self, stats, Instance, InstanceSpec, Secret};
use crate::validate::OrderIntent;

/// Tunables, set once at start.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Shutdown frame → SIGTERM.
    pub stop_grace: Duration,
    /// SIGTERM → SIGKILL.
    pub kill_grace: Duration,
    /// Per-subscriber queue bound for ticks, accounts and instance events.
    pub tick_queue_limit: usize,
    /// Per-subscriber queue bound for executions.
    pub execution_queue_limit: usize,
    /// What a tick, account or instance-event subscriber may have queued unread (bytes)
    /// before it is cut off.
    pub stream_queue_max_bytes: usize,
    /// Engine runtime threads.
    pub worker_threads: usize,
    /// The order journal (None: orders are not journaled, e.g. in unit tests).
    pub journal_path: Option<PathBuf>,
    /// When the journal is fsynced.
    pub journal_policy: FsyncPolicy,
    /// Which orders are remembered (in memory and in the journal).
    pub retention: Retention,
    /// The journal is compacted while running when it has grown past this many bytes (and
    /// twice its size after the last compaction).
    pub journal_compact_bytes: u64,
    /// How much of each instance's execution event log is kept.
    pub execution_log: LogLimits,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            stop_grace: Duration::from_secs(2),
            kill_grace: Duration::from_secs(1),
            tick_queue_limit: 2_000,
            execution_queue_limit: 100_000,
            stream_queue_max_bytes: crate::fanout::DEFAULT_QUEUE_MAX_BYTES,
            worker_threads: 1,
            journal_path: None,
            journal_policy: FsyncPolicy::Interval(Duration::from_millis(100)),
            retention: Retention::default(),
            journal_compact_bytes: DEFAULT_COMPACT_BYTES,
            execution_log: LogLimits::default(),
        }
    }
}

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
    next_token: AtomicU64,
    /// The order journal.
    pub journal: Option<Arc<Journal>>,
    /// Journal records replayed at start, waiting for their instance.
    replayed: parking_lot::Mutex<HashMap<String, Vec<JournalRecord>>>,
    /// The engine's runtime, for blocking work (fsync) off the async threads.
    pub runtime: tokio::runtime::Handle,
    /// Order tokens whose answers go to an order session.
    pub routes: session::Routes,
    started_nanos: u64,
    epoch: std::time::Instant,
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

/// The engine.
#[derive(Debug)]
pub struct Engine {
    rt: tokio::runtime::Runtime,
    shared: Arc<Shared>,
}

impl Engine {
    /// Asks the instance's terminal a market data question (an encoded `MarketRequest`);
    /// returns the token completed with the encoded `MarketAnswer` (see `market::query`).
    ///
    /// # Errors
    /// `NOT_FOUND`, `INVALID_ARGUMENT`, `FAILED_PRECONDITION`.
    pub fn market_query(&self, instance_id: &str, request: &[u8]) -> Result<u64> {
        crate::market::query(&self.shared, instance_id, request)
    }

    /// The caller of `market_query` stopped waiting for `token` (a timeout or a cancel): the
    /// question is forgotten (see `market::forget`). Whether it was still waiting; false for
    /// an instance gone meanwhile.
    pub fn market_forget(&self, instance_id: &str, token: u64) -> bool {
        self.shared
            .instance(instance_id)
            .is_ok_and(|instance| crate::market::forget(&instance, token))
    }

    /// Starts the engine's runtime.
    ///
    /// # Errors
    /// When the runtime or the wake-up socket cannot be created.
    pub fn new(config: EngineConfig) -> std::io::Result<Self> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(config.worker_threads.max(1))
            .thread_name("mt5exec-engine")
            .enable_all()
            .build()?;
        let (journal, replayed) = match &config.journal_path {
            Some(path) => {
                let (journal, records) = Journal::open(
                    path,
                    config.journal_policy,
                    config.retention,
                    config.journal_compact_bytes,
                )?;
                let mut by_instance: HashMap<String, Vec<JournalRecord>> = HashMap::new();
                for ((instance_id, _), record) in records {
                    by_instance.entry(instance_id).or_default().push(record);
                }
                (Some(journal), by_instance)
            }
            None => (None, HashMap::new()),
        };
        if let (Some(journal), FsyncPolicy::Interval(every)) = (&journal, config.journal_policy) {
            let journal = Arc::clone(journal);
            rt.spawn(async move {
                let mut tick = tokio::time::interval(every);
                loop {
                    tick.tick().await;
                    let j = Arc::clone(&journal);
                    let _ = tokio::task::spawn_blocking(move || j.sync_if_dirty()).await;
                }
            });
        }
        let shared = Arc::new(Shared {
            notifier: Notifier::new()?,
            hub: Hub::new(config.stream_queue_max_bytes),
            config,
            instances: RwLock::new(HashMap::new()),
            next_token: AtomicU64::new(0),
            journal,
            replayed: parking_lot::Mutex::new(replayed),
            runtime: rt.handle().clone(),
            routes: session::Routes::default(),
            started_nanos: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)),
            epoch: std::time::Instant::now(),
            risk: Gate::default(),
            refusals: Refusals::default(),
            copier: crate::copier::Copier::default(),
        });
        rt.spawn({
            let shared = Arc::clone(&shared);
            async move {
                let now = || shared.mono_ns();
                let publish = |closed| risk::live::publish_refusals(&shared, closed);
                shared.refusals.run(now, publish).await;
            }
        });
        Ok(Self { rt, shared })
    }

    /// Shared state (for bindings and tests).
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Registers an instance and, when `start`, spawns its worker. The token completes
    /// with the encoded `Instance` once it is READY (or STOPPED when not started), or
    /// with the reason it failed.
    ///
    /// # Errors
    /// `ALREADY_EXISTS` for a known id.
    pub fn create_instance(&self, spec: InstanceSpec, start: bool) -> Result<u64> {
        let mut instances = self.shared.instances.write();
        if instances.contains_key(&spec.instance_id) {
            return Err(EngineError::new(
                Code::AlreadyExists,
                "INSTANCE_EXISTS",
                format!("instance_id: '{}' already exists", spec.instance_id),
            )
            .field("instance_id"));
        }
        let instance = Arc::new(Instance::new(
            spec,
            self.shared.mono_ns(),
            self.shared.config.execution_log,
        )?);
        instances.insert(instance.spec.instance_id.clone(), Arc::clone(&instance));
        drop(instances);
        let replayed = self
            .shared
            .replayed
            .lock()
            .remove(&instance.spec.instance_id);
        if let Some(records) = replayed {
            routing::restore(&self.shared, &instance, records);
        }
        if start {
            return self.start(&instance);
        }
        let token = self.shared.token();
        let mut live = instance.live.lock();
        supervisor::set_state(
            &self.shared,
            &instance,
            &mut live,
            v1::InstanceState::Stopped,
            "STOPPED",
        );
        let payload = instance.to_pb(&live).encode_to_vec();
        self.shared
            .notifier
            .complete(Completion::ok(token, payload));
        Ok(token)
    }

    fn start(&self, instance: &Arc<Instance>) -> Result<u64> {
        let token = self.shared.token();
        let mut live = instance.live.lock();
        live.desired_running = true;
        if live.supervised {
            if matches!(
                live.state,
                v1::InstanceState::Ready | v1::InstanceState::Degraded
            ) {
                let payload = instance.to_pb(&live).encode_to_vec();
                self.shared
                    .notifier
                    .complete(Completion::ok(token, payload));
            } else {
                live.ready_waiters.push(token);
                instance.wake.notify_one();
            }
            return Ok(token);
        }
        live.supervised = true;
        live.stopping = false;
        live.consecutive_failures = 0;
        live.ready_waiters.push(token);
        drop(live);
        self.rt.spawn(supervisor::supervise(
            Arc::clone(&self.shared),
            Arc::clone(instance),
        ));
        Ok(token)
    }

    /// Starts a STOPPED or FAILED instance (a no-op for a running one); the token
    /// completes like `create_instance`'s.
    ///
    /// # Errors
    /// `NOT_FOUND`.
    pub fn start_instance(&self, instance_id: &str) -> Result<u64> {
        let instance = self.shared.instance(instance_id)?;
        self.start(&instance)
    }

    /// Replaces the worker of a running instance (graceful shutdown, then a new
    /// worker at once) or starts a stopped one; the token completes when READY.
    ///
    /// # Errors
    /// `NOT_FOUND`.
    pub fn restart_instance(&self, instance_id: &str) -> Result<u64> {
        let instance = self.shared.instance(instance_id)?;
        let mut live = instance.live.lock();
        if !live.running {
            drop(live);
            return self.start(&instance);
        }
        let token = self.shared.token();
        live.ready_waiters.push(token);
        if !live.restart_requested {
            live.restart_requested = true;
            supervisor::set_state(
                &self.shared,
                &instance,
                &mut live,
                v1::InstanceState::Stopping,
                "RESTART_REQUESTED",
            );
            if let Some(tx) = &live.tx {
                let _ = tx.send(frame::encode(&supervisor::shutdown_frame(
                    "restart requested",
                )));
            }
            self.rt.spawn(supervisor::escalate_stop(
                Arc::clone(&self.shared),
                Arc::clone(&instance),
                self.shared.config.stop_grace,
            ));
        }
        Ok(token)
    }

    /// Health seen from outside the worker (an Expert Advisor's heartbeat): an unhealthy
    /// READY instance becomes DEGRADED with `reason`; healthy again, it returns to READY if
    /// that reason was the cause.
    ///
    /// # Errors
    /// `NOT_FOUND`.
    pub fn report_health(&self, instance_id: &str, healthy: bool, reason: &str) -> Result<()> {
        let instance = self.shared.instance(instance_id)?;
        let mut live = instance.live.lock();
        let state = if !healthy && live.state == v1::InstanceState::Ready {
            v1::InstanceState::Degraded
        } else if healthy && live.state == v1::InstanceState::Degraded && live.reason == reason {
            v1::InstanceState::Ready
        } else {
            return Ok(());
        };
        let why = if healthy { "RECOVERED" } else { reason };
        supervisor::set_state(&self.shared, &instance, &mut live, state, why);
        Ok(())
    }

    /// Forgets a stopped instance, and its orders: the journal voids their records, so an
    /// instance created under the same id later (also after a restart) starts with none.
    ///
    /// # Errors
    /// `NOT_FOUND`, `FAILED_PRECONDITION` while its worker is supervised, `UNAVAILABLE`
    /// when the journal cannot be written or, under `always`, synced (the instance stays).
    /// Blocks on the fsync: call it without the GIL.
    pub fn remove_instance(&self, instance_id: &str) -> Result<()> {
        let mut instances = self.shared.instances.write();
        let instance = instances
            .get(instance_id)
            .ok_or_else(|| EngineError::instance_not_found(instance_id))?;
        if instance.live.lock().supervised {
            return Err(EngineError::new(
                Code::FailedPrecondition,
                "INSTANCE_RUNNING",
                format!("instance '{instance_id}' must be stopped first"),
            ));
        }
        if let Some(journal) = &self.shared.journal {
            let unavailable = |e: std::io::Error| {
                EngineError::new(
                    Code::Unavailable,
                    "JOURNAL_UNAVAILABLE",
                    format!("the order journal cannot be written ({e}); nothing was deleted"),
                )
            };
            let position = journal
                .append(&JournalRecord::instance_deleted(instance_id))
                .map_err(unavailable)?;
            // Under `always` a deletion is as durable as an order before it is done: lost in
            // a power cut, an instance created again under the id would get these orders.
            if journal.policy() == FsyncPolicy::Always {
                journal.sync_to(position).map_err(unavailable)?;
            }
        }
        instances.remove(instance_id);
        // Its streams end here, not at the next instance of the id (perhaps another owner's,
        // which the hub, matching ids, would stream to them). Under the lock: a subscription
        // either is in the hub now or finds the instance gone (`subscribe`).
        let gone = EngineError::new(
            Code::NotFound,
            "INSTANCE_NOT_FOUND",
            format!("instance '{instance_id}' was deleted"),
        );
        self.shared
            .hub
            .end_naming(instance_id, &gone, &self.shared.notifier);
        drop(instances);
        Ok(())
    }

    /// Replaces the files written before each start of the instance's worker (new
    /// credentials): the next start writes these.
    ///
    /// # Errors
    /// `NOT_FOUND`.
    pub fn set_secret_files(&self, instance_id: &str, files: Vec<(PathBuf, Secret)>) -> Result<()> {
        let instance = self.shared.instance(instance_id)?;
        *instance.secret_files.lock() = files;
        Ok(())
    }

    /// An encoded `InstanceStats`.
    ///
    /// # Errors
    /// `NOT_FOUND`.
    pub fn instance_stats(&self, instance_id: &str) -> Result<Vec<u8>> {
        let instance = self.shared.instance(instance_id)?;
        let mut live = instance.live.lock();
        let uptime = live.ready_at.map(|t| t.elapsed()).unwrap_or_default();
        let (cpu, sample) = if live.pid != 0 {
            stats::cpu_percent(live.pid, live.cpu_sample, uptime.as_secs_f64())
        } else {
            (0.0, None)
        };
        live.cpu_sample = sample;
        let duration = |d: Duration| prost_types::Duration {
            seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
        };
        let last_tick = live.last_ticks.values().map(|t| t.time_msc).max();
        Ok(v1::InstanceStats {
            instance_id: instance_id.to_owned(),
            state: live.state as i32,
            worker_pid: live.pid,
            rss_bytes: if live.pid != 0 {
                stats::rss_bytes(live.pid)
            } else {
                0
            },
            cpu_percent: (cpu * 10.0).round() / 10.0,
            uptime: Some(duration(uptime)),
            restarts: live.restarts,
            heartbeat_age: live
                .last_seen
                .filter(|_| live.running)
                .map(|t| duration(t.elapsed())),
            last_tick_time: last_tick.map(convert::ts_msc),
        }
        .encode_to_vec())
    }

    /// Stops an instance's worker: shutdown frame, then SIGTERM, then SIGKILL of
    /// its process group. The token completes with the encoded `Instance` once the
    /// worker is gone.
    ///
    /// # Errors
    /// `NOT_FOUND` for an unknown id.
    pub fn stop_instance(&self, instance_id: &str, grace: Option<Duration>) -> Result<u64> {
        let instance = self.shared.instance(instance_id)?;
        let token = self.shared.token();
        let mut live = instance.live.lock();
        live.desired_running = false;
        if !live.supervised {
            let payload = instance.to_pb(&live).encode_to_vec();
            drop(live);
            self.shared
                .notifier
                .complete(Completion::ok(token, payload));
            return Ok(token);
        }
        live.stop_waiters.push(token);
        if !live.running {
            // Waiting to restart: wake the loop, it sees the stop.
            instance.wake.notify_one();
            return Ok(token);
        }
        if !live.stopping {
            live.stopping = true;
            supervisor::set_state(
                &self.shared,
                &instance,
                &mut live,
                v1::InstanceState::Stopping,
                "STOP_REQUESTED",
            );
            if let Some(tx) = &live.tx {
                let _ = tx.send(frame::encode(&supervisor::shutdown_frame("stop requested")));
            }
            let grace = grace.unwrap_or(self.shared.config.stop_grace);
            self.rt.spawn(supervisor::escalate_stop(
                Arc::clone(&self.shared),
                Arc::clone(&instance),
                grace,
            ));
        }
        Ok(token)
    }

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
            EngineError::invalid("request", "REQUEST_INVALID", format!("request: {e}"))
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
                "FIELD_REQUIRED",
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
                        "VALUE_OUT_OF_RANGE",
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

    /// Instances a kill switch scope covers: one instance, an owner's, or all (ordered by id).
    ///
    /// # Errors
    /// `NOT_FOUND` for an unknown instance.
    fn scope(&self, instance_id: Option<&str>, owner: Option<&str>) -> Result<Vec<Arc<Instance>>> {
        if let Some(id) = instance_id {
            return Ok(vec![self.shared.instance(id)?]);
        }
        let mut all: Vec<Arc<Instance>> = self
            .shared
            .instances
            .read()
            .values()
            .filter(|i| owner.is_none_or(|o| i.spec.owner == o))
            .cloned()
            .collect();
        all.sort_by(|a, b| a.spec.instance_id.cmp(&b.spec.instance_id));
        Ok(all)
    }

    /// Engages the kill switch for one instance, an owner's instances or all of them (both
    /// `None`); the token completes with an encoded `EngageKillSwitchResponse` once every
    /// pending order's cancel (and each close, with `close_positions`) is answered.
    ///
    /// # Errors
    /// `NOT_FOUND` for an unknown instance.
    pub fn engage_kill_switch(
        &self,
        instance_id: Option<&str>,
        owner: Option<&str>,
        close_positions: bool,
    ) -> Result<u64> {
        let instances = self.scope(instance_id, owner)?;
        let token = self.shared.token();
        killswitch::engage(&self.shared, &instances, close_positions, token);
        Ok(token)
    }

    /// Releases the kill switch of a scope; returns the instance ids released.
    ///
    /// # Errors
    /// `NOT_FOUND` for an unknown instance.
    pub fn release_kill_switch(
        &self,
        instance_id: Option<&str>,
        owner: Option<&str>,
    ) -> Result<Vec<String>> {
        let instances = self.scope(instance_id, owner)?;
        killswitch::release(&self.shared, &instances);
        Ok(instances
            .iter()
            .map(|i| i.spec.instance_id.clone())
            .collect())
    }

    /// Replaces an instance's risk limits (encoded `RiskLimits`) and sets their version;
    /// returns the encoded `Instance`.
    ///
    /// # Errors
    /// `NOT_FOUND`, `INVALID_ARGUMENT` for unusable limits (nothing changes then).
    pub fn set_risk_limits(
        &self,
        instance_id: &str,
        limits: &[u8],
        version: u64,
    ) -> Result<Vec<u8>> {
        let limits = v1::RiskLimits::decode(limits).map_err(|e| {
            EngineError::invalid(
                "config.risk",
                "REQUEST_INVALID",
                format!("config.risk: {e}"),
            )
        })?;
        let instance = self.shared.instance(instance_id)?;
        let mut live = instance.live.lock();
        live.risk
            .set_limits(limits, version, self.shared.mono_ns())?;
        Ok(instance.to_pb(&live).encode_to_vec())
    }

    /// Sets an instance's trading state; returns the encoded `Instance`.
    ///
    /// # Errors
    /// `NOT_FOUND`, `INVALID_ARGUMENT` for UNSPECIFIED or unknown states.
    pub fn set_trading_state(&self, instance_id: &str, state: i32) -> Result<Vec<u8>> {
        let state = match v1::TradingState::try_from(state) {
            Ok(v1::TradingState::Unspecified) | Err(_) => {
                return Err(EngineError::invalid(
                    "trading_state",
                    "TRADING_STATE_INVALID",
                    format!("trading_state: expected ACTIVE, REDUCE_ONLY or HALTED, got {state}"),
                ))
            }
            Ok(state) => state,
        };
        let instance = self.shared.instance(instance_id)?;
        let mut live = instance.live.lock();
        if live.risk.state != state {
            live.risk.state = state;
            let reason = format!(
                "TRADING_STATE_{}",
                state.as_str_name().trim_start_matches("TRADING_STATE_")
            );
            supervisor::announce(&self.shared, &instance, &live, &reason);
        }
        Ok(instance.to_pb(&live).encode_to_vec())
    }

    /// Sets the server-wide and per-owner throttles and the owners' whitelists.
    pub fn configure_risk(
        &self,
        global_orders_per_second: f64,
        owner_orders_per_second: f64,
        owners: HashMap<String, OwnerPolicy>,
    ) {
        self.shared.risk.configure(
            global_orders_per_second,
            owner_orders_per_second,
            owners,
            self.shared.mono_ns(),
        );
    }

    /// An instance's daily risk counters (to save).
    ///
    /// # Errors
    /// `NOT_FOUND`.
    pub fn risk_day_state(&self, instance_id: &str) -> Result<DayState> {
        Ok(self
            .shared
            .instance(instance_id)?
            .live
            .lock()
            .risk
            .day_state())
    }

    /// Gives an instance back its saved daily risk counters.
    ///
    /// # Errors
    /// `NOT_FOUND`.
    pub fn restore_risk_day_state(&self, instance_id: &str, saved: DayState) -> Result<()> {
        let instance = self.shared.instance(instance_id)?;
        instance
            .live
            .lock()
            .risk
            .restore_day(saved, convert::now_msc());
        Ok(())
    }

    /// Risk rejections so far: (instance id, reason, count).
    pub fn risk_rejections(&self) -> Vec<(String, &'static str, u64)> {
        self.shared.risk.rejections()
    }

    /// Publishes the throttle refusals gathered so far without waiting for their second to
    /// end (before the server stops).
    pub fn flush_refusals(&self) {
        for closed in self.shared.refusals.due(u64::MAX) {
            risk::live::publish_refusals(&self.shared, closed);
        }
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

    /// The journal's cost so far: (records, bytes, fsyncs, write ns, fsync ns, compactions
    /// while running).
    pub fn journal_stats(&self) -> (u64, u64, u64, u64, u64, u64) {
        self.shared
            .journal
            .as_ref()
            .map_or((0, 0, 0, 0, 0, 0), |j| {
                let s = &j.stats;
                let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
                (
                    get(&s.records),
                    get(&s.bytes),
                    get(&s.fsyncs),
                    get(&s.write_nanos),
                    get(&s.fsync_nanos),
                    get(&s.compactions),
                )
            })
    }

    /// The encoded `Instance`.
    ///
    /// # Errors
    /// `NOT_FOUND`.
    pub fn get_instance(&self, instance_id: &str) -> Result<Vec<u8>> {
        let instance = self.shared.instance(instance_id)?;
        let live = instance.live.lock();
        Ok(instance.to_pb(&live).encode_to_vec())
    }

    /// Every instance, encoded, ordered by id.
    pub fn list_instances(&self) -> Vec<Vec<u8>> {
        let mut all: Vec<Arc<Instance>> = self.shared.instances.read().values().cloned().collect();
        all.sort_by(|a, b| a.spec.instance_id.cmp(&b.spec.instance_id));
        all.iter()
            .map(|i| i.to_pb(&i.live.lock()).encode_to_vec())
            .collect()
    }

    /// How long workers took to answer requests: (instance id, request kind, histogram) of
    /// every kind an instance's worker answered at least once.
    pub fn worker_latency(&self) -> Vec<(String, &'static str, latency::Snapshot)> {
        let instances: Vec<Arc<Instance>> =
            self.shared.instances.read().values().cloned().collect();
        let mut all = Vec::new();
        for instance in instances {
            for kind in RequestKind::ALL {
                if let Some(snapshot) = instance.worker_latency[kind.index()].snapshot() {
                    all.push((instance.spec.instance_id.clone(), kind.label(), snapshot));
                }
            }
        }
        all.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        all
    }

    /// An encoded `GetAccountResponse`.
    ///
    /// # Errors
    /// `NOT_FOUND`, or `FAILED_PRECONDITION` (`INSTANCE_NOT_READY`) before the worker
    /// reported an account.
    pub fn get_account(&self, instance_id: &str) -> Result<Vec<u8>> {
        let instance = self.shared.instance(instance_id)?;
        let live = instance.live.lock();
        let account = live
            .account
            .as_ref()
            .ok_or_else(|| not_reported(instance_id, "account"))?;
        Ok(v1::GetAccountResponse {
            account: Some(convert::account(instance_id, account)),
        }
        .encode_to_vec())
    }

    /// An encoded `ListPositionsResponse`, optionally for one symbol.
    ///
    /// # Errors
    /// `NOT_FOUND`, or `FAILED_PRECONDITION` (`INSTANCE_NOT_READY`) before the worker
    /// reported its positions: none known is not none open.
    pub fn list_positions(&self, instance_id: &str, symbol: &str) -> Result<Vec<u8>> {
        let instance = self.shared.instance(instance_id)?;
        let live = instance.live.lock();
        if !live.positions_reported {
            return Err(not_reported(instance_id, "positions"));
        }
        let positions = live
            .positions
            .iter()
            .filter(|p| symbol.is_empty() || p.symbol == symbol)
            .map(|p| convert::position(instance_id, p))
            .collect();
        Ok(v1::ListPositionsResponse { positions }.encode_to_vec())
    }

    /// Subscribes to a stream, checking that the instances exist.
    ///
    /// # Errors
    /// `NOT_FOUND` naming the first unknown instance.
    pub fn subscribe(
        &self,
        topic: Topic,
        instance_ids: Vec<String>,
        symbols: Vec<String>,
        conflate: bool,
    ) -> Result<Arc<Subscription>> {
        // Held until the subscription is in the hub: an instance removed meanwhile ends it.
        let instances = self.shared.instances.read();
        if let Some(unknown) = instance_ids.iter().find(|id| !instances.contains_key(*id)) {
            return Err(EngineError::instance_not_found(unknown));
        }
        let limit = match topic {
            Topic::Executions => self.shared.config.execution_queue_limit,
            _ => self.shared.config.tick_queue_limit,
        };
        let ids: HashSet<String> = instance_ids.into_iter().collect();
        let symbols: HashSet<String> = symbols.into_iter().collect();
        let sub = self
            .shared
            .hub
            .subscribe(topic, ids, symbols, limit, conflate);
        drop(instances);
        Ok(sub)
    }

    /// Subscribes to one instance's execution events from `start` (after a sequence, 0 being
    /// before the oldest one kept, or live): what was missed first, then live events, without
    /// gap or duplicate. Also gives the sequence the stream starts after.
    ///
    /// # Errors
    /// `NOT_FOUND`; `INVALID_ARGUMENT` for a sequence beyond the last event;
    /// `FAILED_PRECONDITION` when the events after it are no longer kept.
    pub fn subscribe_executions(
        &self,
        instance_id: &str,
        start: StreamStart,
    ) -> Result<(Arc<Subscription>, u64)> {
        let instance = self.shared.instance(instance_id)?;
        let (sub, after) = instance.events.subscribe(
            &self.shared,
            instance_id,
            start,
            self.shared.config.execution_queue_limit,
        )?;
        // Removed (perhaps made again) while its log was read: the removal may have ended
        // the hub's subscriptions before this one was in it.
        let same = self
            .shared
            .instances
            .read()
            .get(instance_id)
            .is_some_and(|now| Arc::ptr_eq(now, &instance));
        if !same {
            self.shared.hub.unsubscribe(Topic::Executions, sub.id);
            return Err(EngineError::instance_not_found(instance_id));
        }
        Ok((sub, after))
    }

    /// The last execution event sequence of an instance.
    ///
    /// # Errors
    /// `NOT_FOUND`.
    pub fn last_sequence(&self, instance_id: &str) -> Result<u64> {
        Ok(self.shared.instance(instance_id)?.events.last())
    }

    /// Ends a subscription.
    pub fn unsubscribe(&self, topic: Topic, id: u64) {
        self.shared.hub.unsubscribe(topic, id);
    }

    /// The worker process ids of running instances.
    pub fn worker_pids(&self) -> Vec<u32> {
        self.shared
            .instances
            .read()
            .values()
            .filter_map(|i| {
                let live = i.live.lock();
                (live.running && live.pid != 0).then_some(live.pid)
            })
            .collect()
    }

    /// Ids of instances whose worker is supervised (running or about to be).
    pub fn running_instances(&self) -> Vec<String> {
        self.shared
            .instances
            .read()
            .values()
            .filter(|i| i.live.lock().supervised)
            .map(|i| i.spec.instance_id.clone())
            .collect()
    }

    /// The instance directory, as given at creation.
    ///
    /// # Errors
    /// `NOT_FOUND`.
    pub fn instance_dir(&self, instance_id: &str) -> Result<PathBuf> {
        Ok(self.shared.instance(instance_id)?.spec.dir.clone())
    }
}

use convert::now_msc;

/// A read of what only the terminal knows (account, positions) before the instance's worker
/// reported it since the server started: an error, never an empty answer.
fn not_reported(instance_id: &str, what: &str) -> EngineError {
    EngineError::new(
        Code::FailedPrecondition,
        "INSTANCE_NOT_READY",
        format!("instance '{instance_id}' has not reported its {what} yet"),
    )
    .field("instance_id")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_instances_are_not_found() {
        let engine = Engine::new(EngineConfig::default()).expect("engine");
        let e = engine
            .place_order("nope", OrderIntent::default())
            .expect_err("unknown");
        assert_eq!((e.code, e.reason), (Code::NotFound, "INSTANCE_NOT_FOUND"));
        assert!(engine.get_account("nope").is_err());
        let e = engine
            .subscribe(Topic::Ticks, vec!["nope".into()], vec![], false)
            .expect_err("unknown");
        assert_eq!(e.field, "instance_id");
        assert!(engine.list_instances().is_empty());
    }
}
