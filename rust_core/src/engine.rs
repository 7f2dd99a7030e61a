//! The Trade Engine: instances, order routing and queries, on its own tokio runtime.
//!
//! Every public method is synchronous and quick: it checks, queues work and
//! returns a token when the answer comes later. Answers arrive through the
//! [`Notifier`](crate::notify::Notifier); nothing here waits with the GIL held
//! or calls into Python.

use crate::reason;
use parking_lot::RwLock;
use prost::Message;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use crate::config::EngineConfig;
use crate::convert;
use crate::error::{Code, EngineError, Result};
use crate::events::StreamStart;
use crate::fanout::{Hub, Subscription, Topic};
use crate::frame;
use crate::journal::{FsyncPolicy, Journal, JournalRecord, JournalTotals};
use crate::latency;
use crate::notify::{Completion, Notifier};
use crate::pb::v1;
use crate::risk::refusals::Refusals;
use crate::risk::{self, Gate};
use crate::routing::{self, RequestKind};
use crate::session;
use crate::shared::Shared;
use crate::supervisor::{self, stats, Instance, InstanceSpec, Secret};

mod controls;
mod orders;

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
                reason::INSTANCE_EXISTS,
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
                reason::INSTANCE_RUNNING,
                format!("instance '{instance_id}' must be stopped first"),
            ));
        }
        if let Some(journal) = &self.shared.journal {
            let unavailable = |e: std::io::Error| {
                EngineError::new(
                    Code::Unavailable,
                    reason::JOURNAL_UNAVAILABLE,
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
            reason::INSTANCE_NOT_FOUND,
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

    /// The journal's cost so far (all 0 without a journal).
    pub fn journal_stats(&self) -> JournalTotals {
        self.shared
            .journal
            .as_ref()
            .map_or_else(JournalTotals::default, |j| j.stats.totals())
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

/// A read of what only the terminal knows (account, positions) before the instance's worker
/// reported it since the server started: an error, never an empty answer.
fn not_reported(instance_id: &str, what: &str) -> EngineError {
    EngineError::new(
        Code::FailedPrecondition,
        reason::INSTANCE_NOT_READY,
        format!("instance '{instance_id}' has not reported its {what} yet"),
    )
    .field("instance_id")
}

#[cfg(test)]
mod tests;
