//! `EngineConfig`: the engine's tunables as Python gives them (seconds, bytes, a policy's
//! text). An argument left out takes the engine's own default (`config::EngineConfig`'s
//! `Default`, the one place defaults are written); Python reads them back from here.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use std::path::PathBuf;

use super::seconds;
use crate::config::EngineConfig;
use crate::events::LogLimits;
use crate::journal::parse_policy;
use crate::orders::Retention;

/// The engine's tunables, checked when made.
#[pyclass(frozen, get_all, name = "EngineConfig", module = "mt5exec._core")]
#[derive(Debug, Clone)]
pub struct PyEngineConfig {
    /// The order journal; None: orders are not journaled.
    pub journal_path: Option<PathBuf>,
    /// When the journal is fsynced: `always`, `never` or `interval:<ms>`.
    pub journal_fsync: String,
    /// Shutdown frame → SIGTERM, seconds.
    pub stop_grace_s: f64,
    /// SIGTERM → SIGKILL, seconds.
    pub kill_grace_s: f64,
    /// Messages queued per tick, account or instance-event subscriber.
    pub tick_queue_limit: usize,
    /// Messages queued per execution subscriber.
    pub execution_queue_limit: usize,
    /// Bytes a subscriber may leave unread before it is cut off.
    pub stream_queue_max_bytes: usize,
    /// Engine runtime threads.
    pub worker_threads: usize,
    /// Seconds a final order is remembered after its last change.
    pub final_order_retention_s: f64,
    /// Orders remembered per instance.
    pub max_orders_per_instance: usize,
    /// The journal is compacted while running past this size.
    pub journal_compact_bytes: u64,
    /// Bytes of each instance's execution event log kept.
    pub execution_log_bytes: u64,
    /// With many stream subscribers, the longest each waits between its messages; 0: never.
    pub stream_coalesce_max_s: f64,
}

#[pymethods]
impl PyEngineConfig {
    #[new]
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (
        *, journal_path = None, journal_fsync = None, stop_grace_s = None, kill_grace_s = None,
        tick_queue_limit = None, execution_queue_limit = None, stream_queue_max_bytes = None,
        worker_threads = None, final_order_retention_s = None, max_orders_per_instance = None,
        journal_compact_bytes = None, execution_log_bytes = None, stream_coalesce_max_s = None,
    ))]
    fn py_new(
        journal_path: Option<PathBuf>,
        journal_fsync: Option<String>,
        stop_grace_s: Option<f64>,
        kill_grace_s: Option<f64>,
        tick_queue_limit: Option<usize>,
        execution_queue_limit: Option<usize>,
        stream_queue_max_bytes: Option<usize>,
        worker_threads: Option<usize>,
        final_order_retention_s: Option<f64>,
        max_orders_per_instance: Option<usize>,
        journal_compact_bytes: Option<u64>,
        execution_log_bytes: Option<u64>,
        stream_coalesce_max_s: Option<f64>,
    ) -> PyResult<Self> {
        let d = EngineConfig::default();
        let config = Self {
            journal_path: journal_path.or(d.journal_path),
            journal_fsync: journal_fsync.unwrap_or_else(|| d.journal_policy.to_string()),
            stop_grace_s: stop_grace_s.unwrap_or(d.stop_grace.as_secs_f64()),
            kill_grace_s: kill_grace_s.unwrap_or(d.kill_grace.as_secs_f64()),
            tick_queue_limit: tick_queue_limit.unwrap_or(d.tick_queue_limit),
            execution_queue_limit: execution_queue_limit.unwrap_or(d.execution_queue_limit),
            stream_queue_max_bytes: stream_queue_max_bytes.unwrap_or(d.stream_queue_max_bytes),
            worker_threads: worker_threads.unwrap_or(d.worker_threads),
            final_order_retention_s: final_order_retention_s
                .unwrap_or(d.retention.keep_final.as_secs_f64()),
            max_orders_per_instance: max_orders_per_instance.unwrap_or(d.retention.max_orders),
            journal_compact_bytes: journal_compact_bytes.unwrap_or(d.journal_compact_bytes),
            execution_log_bytes: execution_log_bytes.unwrap_or(d.execution_log.keep_bytes),
            stream_coalesce_max_s: stream_coalesce_max_s
                .unwrap_or(d.stream_coalesce_max.as_secs_f64()),
        };
        config.engine_config()?;
        Ok(config)
    }

    fn __repr__(&self) -> String {
        format!("{self:?}").replacen("PyEngineConfig", "EngineConfig", 1)
    }
}

impl PyEngineConfig {
    /// The engine's own config.
    ///
    /// # Errors
    /// `ValueError` naming the field for a value the engine cannot use.
    pub fn engine_config(&self) -> PyResult<EngineConfig> {
        if self.max_orders_per_instance == 0 {
            return Err(PyValueError::new_err(
                "max_orders_per_instance: must be at least 1",
            ));
        }
        let keep_final = seconds(self.final_order_retention_s, "final_order_retention_s")?;
        Ok(EngineConfig {
            stop_grace: seconds(self.stop_grace_s, "stop_grace_s")?,
            kill_grace: seconds(self.kill_grace_s, "kill_grace_s")?,
            tick_queue_limit: self.tick_queue_limit,
            execution_queue_limit: self.execution_queue_limit,
            stream_queue_max_bytes: self.stream_queue_max_bytes,
            worker_threads: self.worker_threads,
            journal_path: self.journal_path.clone(),
            journal_policy: parse_policy(&self.journal_fsync).map_err(PyValueError::new_err)?,
            retention: Retention {
                keep_final,
                max_orders: self.max_orders_per_instance,
            },
            journal_compact_bytes: self.journal_compact_bytes,
            execution_log: LogLimits::of(self.execution_log_bytes, keep_final),
            stream_coalesce_max: seconds(self.stream_coalesce_max_s, "stream_coalesce_max_s")?,
        })
    }
}
