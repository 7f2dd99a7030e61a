//! Python bindings: the only code that knows about Python.
//!
//! Mirrored by `python/mt5exec/engine.py`, the only importer of `mt5exec._core`.

use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::engine::{Engine, EngineConfig};
use crate::error::EngineError;
use crate::events::{LogLimits, StreamStart};
use crate::fanout::{Subscription, Topic};
use crate::journal::{parse_policy, DEFAULT_COMPACT_BYTES};
use crate::orders::Retention;
use crate::pb::v1;
use crate::routing::{OrderChanges, OrderQuery, OrderRef};
use crate::session::Session;
use crate::supervisor::{InstanceSpec, Secret, Supervision};
use crate::validate::OrderIntent;

create_exception!(
    _core,
    CoreError,
    PyException,
    "An engine error: args are (grpc_code, reason, message, field, retry_after_ms)."
);

impl From<EngineError> for PyErr {
    fn from(e: EngineError) -> Self {
        CoreError::new_err((
            e.code as i32,
            e.reason,
            e.message,
            e.field,
            e.retry_after_ms,
        ))
    }
}

fn seconds(value: f64, name: &str) -> PyResult<Duration> {
    Duration::try_from_secs_f64(value)
        .map_err(|_| PyValueError::new_err(format!("{name}: expected seconds >= 0, got {value}")))
}

/// Watchdog and restart policy of one instance, from a dict with these keys.
#[derive(FromPyObject)]
#[pyo3(from_item_all)]
struct SupervisionArgs {
    heartbeat_interval_ms: u64,
    missed_heartbeats_degraded: u32,
    missed_heartbeats_restart: u32,
    max_consecutive_failures: u32,
    restart_backoff_initial_ms: u64,
    restart_backoff_max_ms: u64,
    stable_after_s: f64,
    start_timeout_s: f64,
}

impl SupervisionArgs {
    fn into_supervision(self) -> PyResult<Supervision> {
        if self.heartbeat_interval_ms == 0 || self.max_consecutive_failures == 0 {
            return Err(PyValueError::new_err(
                "supervision: heartbeat_interval_ms and max_consecutive_failures must be > 0",
            ));
        }
        Ok(Supervision {
            heartbeat_interval: Duration::from_millis(self.heartbeat_interval_ms),
            missed_degraded: self.missed_heartbeats_degraded,
            missed_restart: self.missed_heartbeats_restart,
            max_consecutive_failures: self.max_consecutive_failures,
            backoff_initial: Duration::from_millis(self.restart_backoff_initial_ms),
            backoff_max: Duration::from_millis(self.restart_backoff_max_ms),
            stable_after: seconds(self.stable_after_s, "stable_after_s")?,
            start_timeout: seconds(self.start_timeout_s, "start_timeout_s")?,
        })
    }
}

fn order_ref(order_id: u64, client_order_id: String) -> OrderRef {
    if order_id != 0 {
        OrderRef::Ticket(order_id)
    } else {
        OrderRef::ClientId(client_order_id)
    }
}

/// The Trade Engine.
#[pyclass(frozen, name = "Engine", module = "mt5exec._core")]
struct PyEngine {
    inner: Engine,
    /// Many subscribers: each waits between its messages (see `PySubscription::ready`).
    coalescing: Arc<AtomicBool>,
}

#[pymethods]
impl PyEngine {
    #[new]
    #[pyo3(signature = (
        journal_path = None,
        journal_fsync = "interval:100",
        stop_grace_s = 2.0,
        kill_grace_s = 1.0,
        tick_queue_limit = 2_000,
        execution_queue_limit = 100_000,
        stream_queue_max_bytes = crate::fanout::DEFAULT_QUEUE_MAX_BYTES,
        worker_threads = 1,
        final_order_retention_s = 86_400.0,
        max_orders_per_instance = 100_000,
        journal_compact_bytes = DEFAULT_COMPACT_BYTES,
        execution_log_bytes = 512 << 20,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn py_new(
        journal_path: Option<PathBuf>,
        journal_fsync: &str,
        stop_grace_s: f64,
        kill_grace_s: f64,
        tick_queue_limit: usize,
        execution_queue_limit: usize,
        stream_queue_max_bytes: usize,
        worker_threads: usize,
        final_order_retention_s: f64,
        max_orders_per_instance: usize,
        journal_compact_bytes: u64,
        execution_log_bytes: u64,
    ) -> PyResult<Self> {
        if max_orders_per_instance == 0 {
            return Err(PyValueError::new_err(
                "max_orders_per_instance: must be at least 1",
            ));
        }
        let keep_final = seconds(final_order_retention_s, "final_order_retention_s")?;
        let config = EngineConfig {
            stop_grace: seconds(stop_grace_s, "stop_grace_s")?,
            kill_grace: seconds(kill_grace_s, "kill_grace_s")?,
            tick_queue_limit,
            execution_queue_limit,
            stream_queue_max_bytes,
            worker_threads,
            journal_path,
            journal_policy: parse_policy(journal_fsync).map_err(PyValueError::new_err)?,
            retention: Retention {
                keep_final,
                max_orders: max_orders_per_instance,
            },
            journal_compact_bytes,
            execution_log: LogLimits::of(execution_log_bytes, keep_final),
        };
        let inner = Engine::new(config)
            .map_err(|e| PyException::new_err(format!("cannot start the engine: {e}")))?;
        Ok(Self {
            inner,
            coalescing: Arc::default(),
        })
    }

    /// Whether stream subscribers wait between messages (Python decides from their number):
    /// then `Subscription.ready` gives a subscriber nothing after its first message.
    fn set_coalescing(&self, on: bool) {
        self.coalescing.store(on, Ordering::Relaxed);
    }

    /// The descriptor to watch for readability; then call `drain`.
    fn notify_fd(&self) -> i32 {
        self.inner.shared().notifier.fd()
    }

    /// `(completions, ready_subscription_ids)`; each completion is
    /// `(token, grpc_code, reason, message, payload)`.
    #[allow(clippy::type_complexity)]
    fn drain<'py>(
        &self,
        py: Python<'py>,
    ) -> (
        Vec<(u64, i32, String, String, Bound<'py, PyBytes>)>,
        Vec<u64>,
    ) {
        let drained = self.inner.shared().notifier.drain();
        let completions = drained
            .completions
            .into_iter()
            .map(|c| {
                (
                    c.token,
                    c.code,
                    c.reason,
                    c.message,
                    PyBytes::new(py, &c.payload),
                )
            })
            .collect();
        (completions, drained.ready)
    }

    /// Registers an instance; starts its worker when `start`. Returns a token.
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (
        instance_id, owner, backend, directory, log_directory, argv, env, config,
        supervision, start = true, created_unix_ns = None, secret_files = Vec::new(),
        config_version = 1, kill_switch = false, first_sequence_after = 0,
    ))]
    fn create_instance(
        &self,
        instance_id: String,
        owner: String,
        backend: i32,
        directory: PathBuf,
        log_directory: PathBuf,
        argv: Vec<String>,
        env: Vec<(String, String)>,
        config: &[u8],
        supervision: SupervisionArgs,
        start: bool,
        created_unix_ns: Option<i64>,
        secret_files: Vec<(PathBuf, String)>,
        config_version: u64,
        kill_switch: bool,
        first_sequence_after: u64,
    ) -> PyResult<u64> {
        use prost::Message;
        let config = v1::InstanceConfig::decode(config)
            .map_err(|e| PyValueError::new_err(format!("config: not an InstanceConfig: {e}")))?;
        let spec = InstanceSpec {
            instance_id,
            owner,
            backend: v1::Backend::try_from(backend).unwrap_or(v1::Backend::Sim),
            dir: directory,
            log_dir: log_directory,
            argv,
            env,
            config,
            supervision: supervision.into_supervision()?,
            secret_files: secret_files
                .into_iter()
                .map(|(path, content)| (path, Secret(content)))
                .collect(),
            created: created_unix_ns.map(|ns| prost_types::Timestamp {
                seconds: ns.div_euclid(1_000_000_000),
                nanos: i32::try_from(ns.rem_euclid(1_000_000_000)).unwrap_or(0),
            }),
            config_version,
            kill_switch,
            first_sequence_after,
        };
        Ok(self.inner.create_instance(spec, start)?)
    }

    fn start_instance(&self, instance_id: &str) -> PyResult<u64> {
        Ok(self.inner.start_instance(instance_id)?)
    }

    fn restart_instance(&self, instance_id: &str) -> PyResult<u64> {
        Ok(self.inner.restart_instance(instance_id)?)
    }

    fn report_health(&self, instance_id: &str, healthy: bool, reason: &str) -> PyResult<()> {
        Ok(self.inner.report_health(instance_id, healthy, reason)?)
    }

    /// Publishes an instance event with `reason`; the lifecycle state is unchanged.
    fn announce(&self, instance_id: &str, reason: &str) -> PyResult<()> {
        let shared = self.inner.shared();
        let instance = shared.instance(instance_id)?;
        let live = instance.live.lock();
        crate::supervisor::announce(shared, &instance, &live, reason);
        Ok(())
    }

    /// Replaces the files written before each start of the instance's worker.
    fn set_secret_files(
        &self,
        instance_id: &str,
        secret_files: Vec<(PathBuf, String)>,
    ) -> PyResult<()> {
        let files = secret_files
            .into_iter()
            .map(|(path, content)| (path, Secret(content)))
            .collect();
        Ok(self.inner.set_secret_files(instance_id, files)?)
    }

    fn remove_instance(&self, py: Python<'_>, instance_id: &str) -> PyResult<()> {
        Ok(py.detach(|| self.inner.remove_instance(instance_id))?)
    }

    fn instance_stats<'py>(
        &self,
        py: Python<'py>,
        instance_id: &str,
    ) -> PyResult<Bound<'py, PyBytes>> {
        Ok(PyBytes::new(py, &self.inner.instance_stats(instance_id)?))
    }

    /// Asks the terminal a market data question; the token completes with a MarketAnswer.
    fn market_query(&self, instance_id: &str, request: &[u8]) -> PyResult<u64> {
        Ok(self.inner.market_query(instance_id, request)?)
    }

    /// The caller stopped waiting for a market question's token: it is forgotten.
    fn market_forget(&self, instance_id: &str, token: u64) -> bool {
        self.inner.market_forget(instance_id, token)
    }

    #[pyo3(signature = (instance_id, grace_s = None))]
    fn stop_instance(&self, instance_id: &str, grace_s: Option<f64>) -> PyResult<u64> {
        let grace = grace_s.map(|g| seconds(g, "grace")).transpose()?;
        Ok(self.inner.stop_instance(instance_id, grace)?)
    }

    fn get_instance<'py>(
        &self,
        py: Python<'py>,
        instance_id: &str,
    ) -> PyResult<Bound<'py, PyBytes>> {
        Ok(PyBytes::new(py, &self.inner.get_instance(instance_id)?))
    }

    fn list_instances<'py>(&self, py: Python<'py>) -> Vec<Bound<'py, PyBytes>> {
        self.inner
            .list_instances()
            .iter()
            .map(|b| PyBytes::new(py, b))
            .collect()
    }

    /// Places an order; returns a token answered with an encoded PlaceOrderResponse.
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (
        instance_id, client_order_id, symbol, side, order_type, volume,
        price = 0.0, stop_limit_price = 0.0, stop_loss = 0.0, take_profit = 0.0,
        deviation_points = 0, time_in_force = 0, expiration_msc = 0, filling = 0,
        comment = String::new(), magic = 0, position_id = 0,
    ))]
    fn place_order(
        &self,
        instance_id: &str,
        client_order_id: String,
        symbol: String,
        side: i32,
        order_type: i32,
        volume: f64,
        price: f64,
        stop_limit_price: f64,
        stop_loss: f64,
        take_profit: f64,
        deviation_points: u32,
        time_in_force: i32,
        expiration_msc: i64,
        filling: i32,
        comment: String,
        magic: u64,
        position_id: u64,
    ) -> PyResult<u64> {
        let intent = OrderIntent {
            client_order_id,
            symbol,
            side,
            order_type,
            volume,
            price,
            stop_limit_price,
            stop_loss,
            take_profit,
            deviation_points,
            time_in_force,
            expiration_msc,
            filling,
            comment,
            magic,
            position_id,
        };
        Ok(self.inner.place_order(instance_id, intent)?)
    }

    /// Places (or with `check_only` checks) an order from an encoded PlaceOrderRequest;
    /// returns (token, client_order_id). With `owner`, an instance of another owner is
    /// NOT_FOUND exactly as one that does not exist.
    #[pyo3(signature = (raw, check_only = false, owner = None))]
    fn place_order_raw(
        &self,
        raw: &[u8],
        check_only: bool,
        owner: Option<&str>,
    ) -> PyResult<(u64, String)> {
        Ok(self.inner.place_order_raw_for(raw, check_only, owner)?)
    }

    /// Cancels a pending order by ticket (order_id) or client_order_id.
    #[pyo3(signature = (instance_id, order_id = 0, client_order_id = String::new()))]
    fn cancel_order(
        &self,
        instance_id: &str,
        order_id: u64,
        client_order_id: String,
    ) -> PyResult<u64> {
        Ok(self
            .inner
            .cancel_order(instance_id, &order_ref(order_id, client_order_id))?)
    }

    /// Changes a pending order (0 keeps a field).
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (
        instance_id, order_id = 0, client_order_id = String::new(), price = 0.0,
        stop_limit_price = 0.0, stop_loss = 0.0, take_profit = 0.0, time_in_force = 0,
        expiration_msc = 0,
    ))]
    fn modify_order(
        &self,
        instance_id: &str,
        order_id: u64,
        client_order_id: String,
        price: f64,
        stop_limit_price: f64,
        stop_loss: f64,
        take_profit: f64,
        time_in_force: i32,
        expiration_msc: i64,
    ) -> PyResult<u64> {
        let changes = OrderChanges {
            price,
            stop_limit_price,
            stop_loss,
            take_profit,
            time_in_force,
            expiration_msc,
        };
        Ok(self
            .inner
            .modify_order(instance_id, &order_ref(order_id, client_order_id), &changes)?)
    }

    fn modify_position(
        &self,
        instance_id: &str,
        position_id: u64,
        stop_loss: f64,
        take_profit: f64,
    ) -> PyResult<u64> {
        Ok(self
            .inner
            .modify_position(instance_id, position_id, stop_loss, take_profit)?)
    }

    #[pyo3(signature = (instance_id, order_id = 0, client_order_id = String::new()))]
    fn get_order<'py>(
        &self,
        py: Python<'py>,
        instance_id: &str,
        order_id: u64,
        client_order_id: String,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let order = self
            .inner
            .get_order(instance_id, &order_ref(order_id, client_order_id))?;
        Ok(PyBytes::new(py, &order))
    }

    /// One page of orders, newest first: the encoded `ListOrdersResponse`.
    #[pyo3(signature = (
        instance_id,
        history = false,
        symbol = String::new(),
        from_nanos = None,
        to_nanos = None,
        page_size = 0,
        page_token = String::new(),
    ))]
    #[allow(clippy::too_many_arguments)]
    fn list_orders<'py>(
        &self,
        py: Python<'py>,
        instance_id: &str,
        history: bool,
        symbol: String,
        from_nanos: Option<i64>,
        to_nanos: Option<i64>,
        page_size: usize,
        page_token: String,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let query = OrderQuery {
            history,
            symbol,
            from_nanos,
            to_nanos,
            page_size,
            page_token,
        };
        Ok(PyBytes::new(
            py,
            &self.inner.list_orders(instance_id, &query)?,
        ))
    }

    /// Opens an order session (see `mt5exec.engine.OrderSession`); with `owner`, its orders
    /// and cancels may name only that owner's instances (another's is NOT_FOUND).
    #[pyo3(signature = (owner = None))]
    fn open_session(&self, owner: Option<String>) -> PyOrderSession {
        PyOrderSession {
            session: self.inner.open_session_for(owner),
        }
    }

    /// Submits one encoded OrderSessionRequest; never raises for a bad order (the refusal
    /// is queued as a response).
    fn session_submit(&self, session: &PyOrderSession, raw: &[u8]) {
        self.inner.session_submit(&session.session, raw);
    }

    /// Engages the kill switch (one instance, an owner's, or all when both are None);
    /// returns a token completed with an encoded `EngageKillSwitchResponse`.
    #[pyo3(signature = (instance_id = None, owner = None, close_positions = false))]
    fn engage_kill_switch(
        &self,
        instance_id: Option<&str>,
        owner: Option<&str>,
        close_positions: bool,
    ) -> PyResult<u64> {
        Ok(self
            .inner
            .engage_kill_switch(instance_id, owner, close_positions)?)
    }

    /// Releases the kill switch of a scope; returns the instance ids.
    #[pyo3(signature = (instance_id = None, owner = None))]
    fn release_kill_switch(
        &self,
        instance_id: Option<&str>,
        owner: Option<&str>,
    ) -> PyResult<Vec<String>> {
        Ok(self.inner.release_kill_switch(instance_id, owner)?)
    }

    /// Replaces an instance's risk limits; returns the encoded `Instance`.
    fn set_risk_limits<'py>(
        &self,
        py: Python<'py>,
        instance_id: &str,
        limits: &[u8],
        version: u64,
    ) -> PyResult<Bound<'py, PyBytes>> {
        Ok(PyBytes::new(
            py,
            &self.inner.set_risk_limits(instance_id, limits, version)?,
        ))
    }

    /// Sets an instance's trading state; returns the encoded `Instance`.
    fn set_trading_state<'py>(
        &self,
        py: Python<'py>,
        instance_id: &str,
        state: i32,
    ) -> PyResult<Bound<'py, PyBytes>> {
        Ok(PyBytes::new(
            py,
            &self.inner.set_trading_state(instance_id, state)?,
        ))
    }

    /// Server-wide and per-owner order rates; owners: name -> (allowed symbols, rate).
    fn configure_risk(
        &self,
        global_orders_per_second: f64,
        owner_orders_per_second: f64,
        owners: std::collections::HashMap<String, (Vec<String>, f64)>,
    ) {
        let owners = owners
            .into_iter()
            .map(|(name, (allowed_symbols, orders_per_second))| {
                (
                    name,
                    crate::risk::OwnerPolicy {
                        allowed_symbols,
                        orders_per_second,
                    },
                )
            })
            .collect();
        self.inner
            .configure_risk(global_orders_per_second, owner_orders_per_second, owners);
    }

    /// Per topic: (name, subscribers, queued messages, dropped or conflated messages).
    fn stream_stats(&self) -> Vec<(&'static str, usize, usize, u64)> {
        self.inner
            .shared()
            .hub
            .stats()
            .into_iter()
            .map(|s| (s.topic.name(), s.subscribers, s.queued, s.dropped))
            .collect()
    }

    /// Publishes the throttle refusals gathered so far (before the server stops).
    fn flush_refusals(&self) {
        self.inner.flush_refusals();
    }

    /// Stream subscribers the engine cut off for reading too slowly (more queued than its
    /// bound; those a stream's write timeout ends are counted by the server).
    fn stream_cutoffs(&self) -> u64 {
        self.inner.shared().hub.cutoffs()
    }

    /// (day, trades today, the day's starting equity, highest equity) of an instance.
    fn risk_day_state(&self, instance_id: &str) -> PyResult<(i64, u32, f64, f64)> {
        let s = self.inner.risk_day_state(instance_id)?;
        Ok((s.day, s.trades_today, s.day_start_equity, s.equity_high))
    }

    /// Gives an instance back saved daily risk counters.
    fn restore_risk_day_state(
        &self,
        instance_id: &str,
        state: (i64, u32, f64, f64),
    ) -> PyResult<()> {
        let (day, trades_today, day_start_equity, equity_high) = state;
        let saved = crate::risk::DayState {
            day,
            trades_today,
            day_start_equity,
            equity_high,
        };
        Ok(self.inner.restore_risk_day_state(instance_id, saved)?)
    }

    /// Adds a copy relation (encoded `CopyRelation`); returns it encoded. `created`: made
    /// by a client now (symbols checked, late join applied), not restored.
    fn add_copy_relation(
        &self,
        py: Python<'_>,
        raw: &[u8],
        created: bool,
    ) -> PyResult<Py<PyBytes>> {
        let encoded = self.inner.add_copy_relation(raw, created)?;
        Ok(PyBytes::new(py, &encoded).unbind())
    }

    /// Removes a copy relation (closing its copies when `close`); returns it encoded.
    fn remove_copy_relation(
        &self,
        py: Python<'_>,
        relation_id: &str,
        close: bool,
    ) -> PyResult<Py<PyBytes>> {
        let encoded = self.inner.remove_copy_relation(relation_id, close)?;
        Ok(PyBytes::new(py, &encoded).unbind())
    }

    /// Every copy relation, encoded, by id.
    fn copy_relations(&self, py: Python<'_>) -> Vec<Py<PyBytes>> {
        self.inner
            .copy_relations()
            .iter()
            .map(|r| PyBytes::new(py, r).unbind())
            .collect()
    }

    /// An encoded `GetCopyRelationResponse`.
    fn get_copy_relation(&self, py: Python<'_>, relation_id: &str) -> PyResult<Py<PyBytes>> {
        let encoded = self.inner.get_copy_relation(relation_id)?;
        Ok(PyBytes::new(py, &encoded).unbind())
    }

    /// Per relation: (id, copies, [(skip reason, count)], latency (cumulative counts per
    /// bound of `LATENCY_BOUNDS_S`, count, sum in seconds) or None, (fills, slippage points
    /// sum, worst)).
    #[allow(clippy::type_complexity)]
    fn copy_metrics(
        &self,
    ) -> Vec<(
        String,
        u64,
        Vec<(String, u64)>,
        Option<(Vec<u64>, u64, f64)>,
        (u64, f64, f64),
    )> {
        self.inner
            .copy_metrics()
            .into_iter()
            .map(|(id, copies, skipped, latency, slippage)| {
                let latency = latency.map(|s| (s.cumulative, s.count, s.sum_s));
                (id, copies, skipped, latency, slippage)
            })
            .collect()
    }

    /// A signal copied by every relation following `source`: [(follower id,
    /// client_order_id, token (0 when refused), error args (code, reason, message, field,
    /// retry_after_ms) or None)].
    #[allow(clippy::too_many_arguments, clippy::type_complexity)]
    #[pyo3(signature = (
        source, signal_id, symbol, side, volume, risk_percent = 0.0, price = 0.0,
        stop_loss = 0.0, take_profit = 0.0,
    ))]
    fn copy_signal(
        &self,
        source: &str,
        signal_id: &str,
        symbol: &str,
        side: i32,
        volume: f64,
        risk_percent: f64,
        price: f64,
        stop_loss: f64,
        take_profit: f64,
    ) -> Vec<(
        String,
        String,
        u64,
        Option<(i32, &'static str, String, &'static str, u32)>,
    )> {
        self.inner
            .copy_signal(
                source,
                signal_id,
                symbol,
                side,
                volume,
                risk_percent,
                price,
                stop_loss,
                take_profit,
            )
            .into_iter()
            .map(|(follower, cid, result)| match result {
                Ok(token) => (follower, cid, token, None),
                Err(e) => (
                    follower,
                    cid,
                    0,
                    Some((
                        e.code as i32,
                        e.reason,
                        e.message,
                        e.field,
                        e.retry_after_ms,
                    )),
                ),
            })
            .collect()
    }

    /// Risk rejections so far: [(instance id, reason, count)].
    fn risk_rejections(&self) -> Vec<(String, &'static str, u64)> {
        self.inner.risk_rejections()
    }

    /// How long workers took to answer requests: [(instance id, kind, cumulative counts per
    /// bound of `LATENCY_BOUNDS_S`, count, sum in seconds)].
    #[allow(clippy::type_complexity)]
    fn worker_latency(&self) -> Vec<(String, &'static str, Vec<u64>, u64, f64)> {
        self.inner
            .worker_latency()
            .into_iter()
            .map(|(id, kind, s)| (id, kind, s.cumulative, s.count, s.sum_s))
            .collect()
    }

    /// Executions counted per instance since the start: ([(instance id, symbol, fills,
    /// volume, commission, cumulative slippage counts per bound of `SLIPPAGE_BOUNDS_POINTS`,
    /// slippage count, slippage sum)], [(instance id, reason, rejected orders)],
    /// [(instance id, order status name, order updates)]).
    #[allow(clippy::type_complexity)]
    fn execution_counts(
        &self,
    ) -> (
        Vec<(String, String, u64, f64, f64, Vec<u64>, u64, f64)>,
        Vec<(String, String, u64)>,
        Vec<(String, &'static str, u64)>,
    ) {
        let (mut fills, mut rejections, mut statuses) = (Vec::new(), Vec::new(), Vec::new());
        for (id, counts) in crate::counters::counts(self.inner.shared()) {
            for (symbol, c) in counts.symbols {
                let mut cumulative: Vec<u64> = c
                    .slippage
                    .iter()
                    .scan(0, |sum, n| {
                        *sum += n;
                        Some(*sum)
                    })
                    .collect();
                let count = cumulative.pop().unwrap_or(0);
                fills.push((
                    id.clone(),
                    symbol,
                    c.fills,
                    c.volume,
                    c.commission,
                    cumulative,
                    count,
                    c.slippage_sum,
                ));
            }
            rejections.extend(
                counts
                    .rejections
                    .into_iter()
                    .map(|(r, n)| (id.clone(), r, n)),
            );
            for (status, n) in counts.statuses.iter().enumerate() {
                if *n > 0 {
                    statuses.push((id.clone(), crate::counters::status_name(status), *n));
                }
            }
        }
        fills.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        rejections.sort();
        (fills, rejections, statuses)
    }

    /// The order journal's (usable, failed appends and fsyncs); None without a journal.
    fn journal_health(&self) -> Option<(bool, u64)> {
        crate::counters::journal_health(self.inner.shared())
    }

    /// Per instance: (id, (balance, equity, margin level, leverage) or None, [(symbol,
    /// spread in points)], (worker resident bytes, worker CPU seconds) or None).
    #[allow(clippy::type_complexity)]
    fn instance_gauges(
        &self,
    ) -> Vec<(
        String,
        Option<(f64, f64, f64, u32)>,
        Vec<(String, f64)>,
        Option<(u64, f64)>,
    )> {
        crate::counters::gauges(self.inner.shared())
            .into_iter()
            .map(|g| (g.instance_id, g.account, g.spreads, g.worker))
            .collect()
    }

    /// (records, bytes, fsyncs, write ns, fsync ns) of the order journal.
    fn journal_stats(&self) -> (u64, u64, u64, u64, u64, u64) {
        self.inner.journal_stats()
    }

    fn get_account<'py>(
        &self,
        py: Python<'py>,
        instance_id: &str,
    ) -> PyResult<Bound<'py, PyBytes>> {
        Ok(PyBytes::new(py, &self.inner.get_account(instance_id)?))
    }

    #[pyo3(signature = (instance_id, symbol = ""))]
    fn list_positions<'py>(
        &self,
        py: Python<'py>,
        instance_id: &str,
        symbol: &str,
    ) -> PyResult<Bound<'py, PyBytes>> {
        Ok(PyBytes::new(
            py,
            &self.inner.list_positions(instance_id, symbol)?,
        ))
    }

    /// Subscribes to topic 0 ticks, 1 executions, 2 accounts, 3 instance events.
    #[pyo3(signature = (topic, instance_ids = Vec::new(), symbols = Vec::new(), conflate = false))]
    fn subscribe(
        &self,
        topic: i32,
        instance_ids: Vec<String>,
        symbols: Vec<String>,
        conflate: bool,
    ) -> PyResult<PySubscription> {
        let topic = Topic::from_i32(topic)
            .ok_or_else(|| PyValueError::new_err(format!("topic: unknown topic {topic}")))?;
        let sub = self
            .inner
            .subscribe(topic, instance_ids, symbols, conflate)?;
        Ok(PySubscription::new(topic, sub, &self.coalescing))
    }

    /// The last execution event sequence an instance gave.
    fn last_sequence(&self, instance_id: &str) -> PyResult<u64> {
        Ok(self.inner.last_sequence(instance_id)?)
    }

    /// Subscribes to one instance's executions after `from_sequence` (replay, then live).
    /// A replay older than the ring reads the instance's log: without the GIL.
    /// The subscription and the sequence it starts after; `live`: after the last event
    /// (`from_sequence` is not used then).
    #[pyo3(signature = (instance_id, from_sequence, live = false))]
    fn subscribe_executions(
        &self,
        py: Python<'_>,
        instance_id: &str,
        from_sequence: u64,
        live: bool,
    ) -> PyResult<(PySubscription, u64)> {
        let start = if live {
            StreamStart::Live
        } else {
            StreamStart::After(from_sequence)
        };
        let (sub, after) = py.detach(|| self.inner.subscribe_executions(instance_id, start))?;
        Ok((
            PySubscription::new(Topic::Executions, sub, &self.coalescing),
            after,
        ))
    }

    fn unsubscribe(&self, subscription: &PySubscription) {
        self.inner
            .unsubscribe(subscription.topic, subscription.sub.id);
    }

    fn worker_pids(&self) -> Vec<u32> {
        self.inner.worker_pids()
    }

    fn running_instances(&self) -> Vec<String> {
        self.inner.running_instances()
    }
}

/// One order session's queue of encoded responses.
#[pyclass(frozen, name = "OrderSession", module = "mt5exec._core")]
struct PyOrderSession {
    session: Arc<Session>,
}

#[pymethods]
impl PyOrderSession {
    #[getter]
    fn id(&self) -> u64 {
        self.session.id
    }

    /// Orders submitted and not answered yet.
    fn outstanding(&self) -> usize {
        self.session.outstanding()
    }

    /// Every queued encoded OrderSessionResponse.
    fn take<'py>(&self, py: Python<'py>) -> Vec<Bound<'py, PyBytes>> {
        self.session
            .take()
            .iter()
            .map(|b| PyBytes::new(py, b))
            .collect()
    }
}

/// One stream subscriber's queue.
#[pyclass(frozen, name = "Subscription", module = "mt5exec._core")]
struct PySubscription {
    topic: Topic,
    sub: Arc<Subscription>,
    /// Ended by the server (shutdown): `ready` gives nothing more.
    ended: AtomicBool,
    /// A message was taken.
    yielded: AtomicBool,
    /// The engine's flag: many subscribers, each waits between its messages.
    coalescing: Arc<AtomicBool>,
}

impl PySubscription {
    fn new(topic: Topic, sub: Arc<Subscription>, coalescing: &Arc<AtomicBool>) -> Self {
        Self {
            topic,
            sub,
            ended: AtomicBool::new(false),
            yielded: AtomicBool::new(false),
            coalescing: Arc::clone(coalescing),
        }
    }

    /// One encoded response as a Python `bytes`, made once (no intermediate buffer); a
    /// `MemoryError` leaves it queued.
    fn take_bytes<'py>(
        &self,
        py: Python<'py>,
        max_bytes: usize,
    ) -> PyResult<(Option<Bound<'py, PyBytes>>, Option<EngineError>)> {
        let taken = self.sub.take_with(max_bytes, |size, fill| {
            PyBytes::new_with(py, size, |buf| {
                fill(buf);
                Ok(())
            })
        })?;
        if taken.data.is_some() {
            self.yielded.store(true, Ordering::Relaxed);
        }
        Ok((taken.data, taken.closed))
    }
}

#[pymethods]
impl PySubscription {
    #[getter]
    fn id(&self) -> u64 {
        self.sub.id
    }

    /// Whether a message was taken.
    #[getter]
    fn yielded(&self) -> bool {
        self.yielded.load(Ordering::Relaxed)
    }

    /// Ends the stream from the server side: `ready` gives nothing from now on.
    fn end(&self) {
        self.ended.store(true, Ordering::Relaxed);
    }

    /// The next encoded response if one is queued and may go now, else None (then wait
    /// with `take`): nothing once ended, nor after the first message while the engine
    /// coalesces. The call a stream makes for each message it writes.
    #[pyo3(signature = (max_bytes = 65536))]
    fn ready<'py>(
        &self,
        py: Python<'py>,
        max_bytes: usize,
    ) -> PyResult<Option<Bound<'py, PyBytes>>> {
        if self.ended.load(Ordering::Relaxed)
            || (self.yielded.load(Ordering::Relaxed) && self.coalescing.load(Ordering::Relaxed))
        {
            return Ok(None);
        }
        Ok(self.take_bytes(py, max_bytes)?.0)
    }

    /// `(data, closed)`: one encoded response (or None), and when the stream has
    /// ended with nothing left, `(grpc_code, reason, message)`.
    #[allow(clippy::type_complexity)]
    #[pyo3(signature = (max_bytes = 65536))]
    fn take<'py>(
        &self,
        py: Python<'py>,
        max_bytes: usize,
    ) -> PyResult<(Option<Bound<'py, PyBytes>>, Option<(i32, String, String)>)> {
        let (data, closed) = self.take_bytes(py, max_bytes)?;
        Ok((
            data,
            closed.map(|e| (e.code as i32, e.reason.to_owned(), e.message)),
        ))
    }

    fn queued(&self) -> usize {
        self.sub.queued()
    }

    /// Whether the engine cut it off for leaving too much unread (its queue is freed).
    #[getter]
    fn cut_off(&self) -> bool {
        self.sub.is_cut_off()
    }
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyEngine>()?;
    m.add_class::<PySubscription>()?;
    m.add_class::<PyOrderSession>()?;
    m.add_class::<crate::python_risk::PyRiskChecker>()?;
    m.add_function(wrap_pyfunction!(
        crate::python_risk::validate_risk_limits,
        m
    )?)?;
    m.add_function(wrap_pyfunction!(crate::python_copier::copy_volume, m)?)?;
    m.add("CoreError", m.py().get_type::<CoreError>())?;
    m.add("PROTOCOL_VERSION", crate::supervisor::PROTOCOL_VERSION)?;
    m.add("LATENCY_BOUNDS_S", crate::latency::BOUNDS_S.to_vec())?;
    m.add(
        "SLIPPAGE_BOUNDS_POINTS",
        crate::counters::SLIPPAGE_BOUNDS.to_vec(),
    )?;
    Ok(())
}
