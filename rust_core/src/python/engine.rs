//! The `Engine` class: its construction, the completions it hands over (`drain`), and
//! the instances' lifecycle and state. The other concerns add their methods to it from
//! the sibling modules (`#[pymethods]` blocks of their own).

use pyo3::exceptions::{PyException, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use super::config::PyEngineConfig;
use super::records::PyCompletion;
use super::seconds;
use crate::config::EngineConfig;
use crate::engine::Engine;
use crate::pb::v1;
use crate::supervisor::{InstanceSpec, Secret, Supervision};

/// Watchdog and restart policy of one instance, from a dict with these keys.
#[derive(FromPyObject)]
#[pyo3(from_item_all)]
pub(super) struct SupervisionArgs {
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

/// Everything the engine needs to run an instance's worker, checked when made.
#[pyclass(frozen, name = "InstanceSpec", module = "mt5exec._core")]
pub struct PyInstanceSpec {
    spec: InstanceSpec,
}

#[pymethods]
impl PyInstanceSpec {
    /// `config` is an encoded `InstanceConfig`; `supervision` a dict of `SupervisionArgs`.
    #[new]
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (
        *, instance_id, owner, backend, directory, log_directory, argv, env, config,
        supervision, created_unix_ns = None, secret_files = Vec::new(), config_version = 1,
        kill_switch = false, first_sequence_after = 0,
    ))]
    fn py_new(
        instance_id: String,
        owner: String,
        backend: i32,
        directory: PathBuf,
        log_directory: PathBuf,
        argv: Vec<String>,
        env: Vec<(String, String)>,
        config: &[u8],
        supervision: SupervisionArgs,
        created_unix_ns: Option<i64>,
        secret_files: Vec<(PathBuf, String)>,
        config_version: u64,
        kill_switch: bool,
        first_sequence_after: u64,
    ) -> PyResult<Self> {
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
        Ok(Self { spec })
    }

    #[getter]
    fn instance_id(&self) -> &str {
        &self.spec.instance_id
    }
}

/// The Trade Engine.
#[pyclass(frozen, name = "Engine", module = "mt5exec._core")]
pub struct PyEngine {
    pub(super) inner: Engine,
    /// Many subscribers: each waits between its messages (see `PySubscription::ready`).
    pub(super) coalescing: Arc<AtomicBool>,
}

#[pymethods]
impl PyEngine {
    /// The engine, configured by `config` (None: the defaults).
    #[new]
    #[pyo3(signature = (config = None))]
    fn py_new(config: Option<PyRef<'_, PyEngineConfig>>) -> PyResult<Self> {
        let config = match config {
            Some(config) => config.engine_config()?,
            None => EngineConfig::default(),
        };
        let inner = Engine::new(config)
            .map_err(|e| PyException::new_err(format!("cannot start the engine: {e}")))?;
        Ok(Self {
            inner,
            coalescing: Arc::default(),
        })
    }

    /// The descriptor to watch for readability; then call `drain`.
    fn notify_fd(&self) -> i32 {
        self.inner.shared().notifier.fd()
    }

    /// `(completions, ready_subscription_ids)`: the answers queued since the last call, and
    /// the subscriptions that have something to take.
    fn drain(&self, py: Python<'_>) -> (Vec<PyCompletion>, Vec<u64>) {
        let drained = self.inner.shared().notifier.drain();
        let completions = drained
            .completions
            .into_iter()
            .map(|c| PyCompletion {
                token: c.token,
                code: c.code,
                reason: c.reason,
                message: c.message,
                payload: PyBytes::new(py, &c.payload).unbind(),
            })
            .collect();
        (completions, drained.ready)
    }

    /// Registers an instance; starts its worker when `start`. Returns a token.
    #[pyo3(signature = (spec, start = true))]
    fn create_instance(&self, spec: &PyInstanceSpec, start: bool) -> PyResult<u64> {
        Ok(self.inner.create_instance(spec.spec.clone(), start)?)
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

    fn worker_pids(&self) -> Vec<u32> {
        self.inner.worker_pids()
    }

    fn running_instances(&self) -> Vec<String> {
        self.inner.running_instances()
    }
}
