//! One supervised worker process per instance.
//!
//! Workers are started with exec (never a fork of the server) in their own
//! process group and directory, and connect back to a Unix socket the engine
//! listens on in that directory. The connection is the lifeline: when it
//! closes the worker exits, so a worker never trades unsupervised.
//!
//! State machine: PENDING → STARTING → CONNECTING → READY ⇄ DEGRADED →
//! STOPPING → STOPPED, and FAILED. A worker that dies or stops answering is
//! replaced with exponential backoff; after `max_consecutive_failures` failures
//! in a row the instance is FAILED (with an alert event) until it is started
//! again explicitly.

mod frames;
mod lifecycle;
pub mod outbox;
pub mod stats;

pub use lifecycle::{escalate_stop, shutdown_frame, signal_group, supervise};
pub use outbox::Outbox;

use parking_lot::Mutex;
use prost::Message;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;

use crate::convert;
use crate::events::{EventLog, LogLimits};
use crate::fanout::{piece, Topic};
use crate::latency::Histogram;
use crate::notify::Completion;
use crate::orders::OrderBook;
use crate::pb::terminal as t;
use crate::pb::v1;
use crate::risk::InstanceRisk;
use crate::routing::{PendingRequest, RequestKind};
use crate::shared::Shared;

/// Highest protocol version this engine speaks.
pub const PROTOCOL_VERSION: u32 = 1;

/// How an instance's worker is watched and replaced.
#[derive(Debug, Clone, PartialEq)]
pub struct Supervision {
    /// Interval the worker is told to send heartbeats at.
    pub heartbeat_interval: Duration,
    /// Heartbeats missed before the instance is DEGRADED.
    pub missed_degraded: u32,
    /// Heartbeats missed before the worker is killed and replaced.
    pub missed_restart: u32,
    /// Failures in a row before the instance is FAILED.
    pub max_consecutive_failures: u32,
    /// First restart delay; doubled per consecutive failure.
    pub backoff_initial: Duration,
    /// Largest restart delay.
    pub backoff_max: Duration,
    /// A worker READY this long resets the failure count.
    pub stable_after: Duration,
    /// How long a worker may take from spawn to its Hello.
    pub start_timeout: Duration,
}

impl Default for Supervision {
    fn default() -> Self {
        Self {
            heartbeat_interval: Duration::from_secs(1),
            missed_degraded: 2,
            missed_restart: 5,
            max_consecutive_failures: 3,
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(30),
            stable_after: Duration::from_secs(10),
            start_timeout: Duration::from_secs(10),
        }
    }
}

impl Supervision {
    /// Delay before the restart that follows `failures` consecutive failures.
    pub fn backoff(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(20);
        self.backoff_initial
            .saturating_mul(1u32 << doublings)
            .min(self.backoff_max)
    }
}

/// A secret that never shows in debug output or logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// What an instance is created from.
#[derive(Debug, Clone)]
pub struct InstanceSpec {
    /// Unique id (validated by the API layer: safe as a path component).
    pub instance_id: String,
    /// Owner (user or tenant).
    pub owner: String,
    /// Worker backend.
    pub backend: v1::Backend,
    /// The instance's own directory (the worker's working directory).
    pub dir: PathBuf,
    /// Where the worker's output goes (kept after the instance is deleted).
    pub log_dir: PathBuf,
    /// Worker command line; the engine appends `--socket PATH`.
    pub argv: Vec<String>,
    /// Extra environment for the worker.
    pub env: Vec<(String, String)>,
    /// The configuration the instance was created with.
    pub config: v1::InstanceConfig,
    /// Watchdog and restart policy.
    pub supervision: Supervision,
    /// Files written (mode 0600) before every start of the worker, which reads and deletes
    /// them: how a terminal password reaches a worker without a command line, an environment
    /// variable or a file that outlives the start. Held in the engine's memory only; moved
    /// into [`Instance::secret_files`] when the instance is made.
    pub secret_files: Vec<(PathBuf, Secret)>,
    /// Creation time (kept across server restarts).
    pub created: Option<prost_types::Timestamp>,
    /// Version of `config` (its risk limits change at runtime).
    pub config_version: u64,
    /// The kill switch was engaged when the instance was last saved.
    pub kill_switch: bool,
    /// Event sequences continue after this one when the instance has no log yet: the last
    /// sequence of an earlier instance of the same id, deleted since (its clients and the
    /// history know those numbers).
    pub first_sequence_after: u64,
}

/// Mutable state of an instance.
#[derive(Debug)]
pub struct Live {
    /// Lifecycle state.
    pub state: v1::InstanceState,
    /// Why.
    pub reason: String,
    /// Worker pid (0 when none).
    pub pid: u32,
    /// A worker process exists.
    pub running: bool,
    /// The supervision loop is active (running, starting or waiting to restart).
    pub supervised: bool,
    /// The operator wants the worker up.
    pub desired_running: bool,
    /// A stop was requested and is in progress.
    pub stopping: bool,
    /// Replace the worker once it exits, without counting a failure.
    pub restart_requested: bool,
    /// Workers replaced since the instance was started.
    pub restarts: u32,
    /// Failures since the worker last ran stably.
    pub consecutive_failures: u32,
    /// When the current worker became READY.
    pub ready_at: Option<Instant>,
    /// The same, as a timestamp.
    pub started: Option<prost_types::Timestamp>,
    /// Symbols the worker trades, by name.
    pub symbols: HashMap<String, t::SymbolInfo>,
    /// Symbol names in the worker's order.
    pub symbol_order: Vec<String>,
    /// Latest tick per symbol.
    pub last_ticks: HashMap<String, t::Tick>,
    /// When the engine received each symbol's latest tick (ms since the epoch).
    pub tick_received_msc: HashMap<String, i64>,
    /// Limits, trading state, kill switch and the risk engine's counters.
    pub risk: InstanceRisk,
    /// Latest account snapshot.
    pub account: Option<t::AccountSnapshot>,
    /// Open positions.
    pub positions: Vec<t::Position>,
    /// The worker has reported the open positions since the instance was registered (until
    /// then `positions` is not known, only empty).
    pub positions_reported: bool,
    /// A kill switch asked to close positions before they were reported: they are closed
    /// when they are (see `killswitch::take_deferred_closes`).
    pub close_when_reported: bool,
    /// The current worker has reported the open positions (not only one before it).
    pub positions_fresh: bool,
    /// Pending orders.
    pub open_orders: Vec<t::OrderInfo>,
    /// Frames to the worker.
    pub tx: Option<Arc<Outbox>>,
    /// Requests in flight, by request id (= token).
    pub pending: HashMap<u64, PendingRequest>,
    /// Market data questions in flight (tokens; see `market`).
    pub market_pending: std::collections::HashSet<u64>,
    /// Orders by client id (the idempotency book).
    pub book: OrderBook,
    /// Tokens completed when READY (or when the instance gives up).
    pub ready_waiters: Vec<u64>,
    /// Tokens completed when the worker is gone.
    pub stop_waiters: Vec<u64>,
    /// Last frame from the worker.
    pub last_seen: Option<Instant>,
    /// Previous CPU sample (when, CPU seconds) for the CPU percentage.
    pub cpu_sample: Option<(Instant, f64)>,
}

/// An instance: its spec and its live state.
#[derive(Debug)]
pub struct Instance {
    /// How it was created.
    pub spec: InstanceSpec,
    /// Creation time.
    pub created: prost_types::Timestamp,
    /// Live state.
    pub live: Mutex<Live>,
    /// Wakes the supervision loop out of a restart delay (stop/start requests).
    pub wake: Notify,
    /// Execution events: numbering, ring, log.
    pub events: EventLog,
    /// How long the worker took to answer each kind of request (index:
    /// [`crate::routing::RequestKind::index`]), from the frame sent to its answer read.
    pub worker_latency: [Histogram; RequestKind::ALL.len()],
    /// The spec's secret files, replaced when the credentials change (the next start of the
    /// worker writes the new ones).
    pub secret_files: Mutex<Vec<(PathBuf, Secret)>>,
}

impl Instance {
    /// A new, not yet started instance.
    ///
    /// # Errors
    /// `INVALID_ARGUMENT` for risk limits the engine cannot use.
    pub fn new(mut spec: InstanceSpec, now_ns: u64, log: LogLimits) -> crate::error::Result<Self> {
        let secret_files = Mutex::new(std::mem::take(&mut spec.secret_files));
        let risk = InstanceRisk::new(
            spec.config.risk.clone().unwrap_or_default(),
            spec.config_version,
            v1::TradingState::try_from(spec.config.trading_state)
                .unwrap_or(v1::TradingState::Active),
            spec.kill_switch,
            now_ns,
        )?;
        let created = spec.created.unwrap_or_else(convert::now);
        let events = EventLog::open(
            (!spec.dir.as_os_str().is_empty()).then_some(spec.dir.as_path()),
            log,
        );
        events.continue_after(spec.first_sequence_after);
        Ok(Self {
            spec,
            created,
            live: Mutex::new(Live {
                state: v1::InstanceState::Pending,
                reason: String::new(),
                pid: 0,
                running: false,
                supervised: false,
                desired_running: false,
                stopping: false,
                restart_requested: false,
                restarts: 0,
                consecutive_failures: 0,
                ready_at: None,
                started: None,
                symbols: HashMap::new(),
                symbol_order: Vec::new(),
                last_ticks: HashMap::new(),
                tick_received_msc: HashMap::new(),
                risk,
                account: None,
                positions: Vec::new(),
                positions_reported: false,
                close_when_reported: false,
                positions_fresh: false,
                open_orders: Vec::new(),
                tx: None,
                pending: HashMap::new(),
                market_pending: std::collections::HashSet::new(),
                book: OrderBook::default(),
                ready_waiters: Vec::new(),
                stop_waiters: Vec::new(),
                last_seen: None,
                cpu_sample: None,
            }),
            wake: Notify::new(),
            events,
            worker_latency: Default::default(),
            secret_files,
        })
    }

    /// The public view.
    pub fn to_pb(&self, live: &Live) -> v1::Instance {
        v1::Instance {
            instance_id: self.spec.instance_id.clone(),
            owner: self.spec.owner.clone(),
            backend: self.spec.backend as i32,
            state: live.state as i32,
            state_reason: live.reason.clone(),
            config: Some(v1::InstanceConfig {
                risk: Some(live.risk.limits.clone()),
                trading_state: live.risk.state as i32,
                ..self.spec.config.clone()
            }),
            worker_pid: live.pid,
            restarts: live.restarts,
            created_time: Some(self.created),
            started_time: live.started,
            symbols: live
                .symbol_order
                .iter()
                .filter_map(|s| live.symbols.get(s))
                .map(convert::symbol)
                .collect(),
            trading_state: live.risk.state as i32,
            config_version: live.risk.version,
            kill_switch: live.risk.kill_switch,
        }
    }

    /// Completes every READY waiter: with the instance when it is READY, else with `error`.
    pub fn answer_ready_waiters(
        &self,
        shared: &Shared,
        live: &mut Live,
        error: Option<&crate::error::EngineError>,
    ) {
        if live.ready_waiters.is_empty() {
            return;
        }
        let payload = self.to_pb(live).encode_to_vec();
        for token in live.ready_waiters.drain(..) {
            let completion = match error {
                None => Completion::ok(token, payload.clone()),
                Some(e) => Completion::err(token, e, payload.clone()),
            };
            shared.notifier.complete(completion);
        }
    }
}

/// Publishes an instance event about the instance's trading (trading state, kill switch)
/// without changing its lifecycle state or reason.
pub fn announce(shared: &Shared, instance: &Instance, live: &Live, reason: &str) {
    let event = v1::InstanceEvent {
        instance_id: instance.spec.instance_id.clone(),
        state: live.state as i32,
        previous_state: live.state as i32,
        reason: reason.to_owned(),
        time: Some(convert::now()),
    };
    shared.hub.publish(
        Topic::InstanceEvents,
        &instance.spec.instance_id,
        &[("", piece(&event))],
        &shared.notifier,
    );
}

/// Changes the state and publishes an instance event (also when only the reason changes).
pub fn set_state(
    shared: &Shared,
    instance: &Instance,
    live: &mut Live,
    state: v1::InstanceState,
    reason: &str,
) {
    let previous = live.state;
    if previous == state && live.reason == reason {
        return;
    }
    live.state = state;
    reason.clone_into(&mut live.reason);
    let event = v1::InstanceEvent {
        instance_id: instance.spec.instance_id.clone(),
        state: state as i32,
        previous_state: previous as i32,
        reason: reason.to_owned(),
        time: Some(convert::now()),
    };
    shared.hub.publish(
        Topic::InstanceEvents,
        &instance.spec.instance_id,
        &[("", piece(&event))],
        &shared.notifier,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let s = Supervision {
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_millis(1000),
            ..Supervision::default()
        };
        let delays: Vec<u128> = (1..=6).map(|n| s.backoff(n).as_millis()).collect();
        assert_eq!(delays, vec![100, 200, 400, 800, 1000, 1000]);
        assert_eq!(s.backoff(0).as_millis(), 100);
        assert_eq!(s.backoff(u32::MAX).as_millis(), 1000);
    }
}
