//! Python bindings: the only code that knows about Python.
//!
//! Mirrored by `python/mt5exec/engine.py`, the only importer of `mt5exec._core`. One module
//! per concern; each adds its methods to the one `Engine` class with a `#[pymethods]` block
//! of its own (pyo3's `multiple-pymethods`), so a new binding is a new file here.

use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyValueError};
use pyo3::prelude::*;
use std::time::Duration;

use crate::error::EngineError;

mod config;
mod copier;
mod engine;
mod metrics;
mod orders;
mod records;
mod risk;
#[cfg(feature = "test-bindings")]
mod risk_checker;
mod session;
mod subscription;

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

/// A duration from seconds given from Python; `name` is the argument's, for the message.
fn seconds(value: f64, name: &str) -> PyResult<Duration> {
    Duration::try_from_secs_f64(value)
        .map_err(|_| PyValueError::new_err(format!("{name}: expected seconds >= 0, got {value}")))
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<engine::PyEngine>()?;
    m.add_class::<engine::PyInstanceSpec>()?;
    m.add_class::<config::PyEngineConfig>()?;
    m.add_class::<records::PyCompletion>()?;
    m.add_class::<records::PyJournalStats>()?;
    m.add_class::<copier::PyCopyDefaults>()?;
    m.add_class::<copier::PyCopyMetrics>()?;
    m.add_class::<copier::PyCopyState>()?;
    m.add_class::<copier::PySignalCopyResult>()?;
    m.add_class::<metrics::PyWorkerLatency>()?;
    m.add_class::<metrics::PyFillCounts>()?;
    m.add_class::<metrics::PyLabelCount>()?;
    m.add_class::<metrics::PyExecutionCounts>()?;
    m.add_class::<metrics::PyInstanceGauges>()?;
    m.add_class::<risk::PyRiskDayState>()?;
    m.add_class::<subscription::PySubscription>()?;
    m.add_class::<session::PyOrderSession>()?;
    #[cfg(feature = "test-bindings")]
    m.add_class::<risk_checker::PyRiskChecker>()?;
    m.add_function(wrap_pyfunction!(risk::validate_risk_limits, m)?)?;
    m.add_function(wrap_pyfunction!(copier::copy_volume, m)?)?;
    m.add("CoreError", m.py().get_type::<CoreError>())?;
    m.add("PROTOCOL_VERSION", crate::supervisor::PROTOCOL_VERSION)?;
    m.add("LATENCY_BOUNDS_S", crate::latency::BOUNDS_S.to_vec())?;
    m.add(
        "SLIPPAGE_BOUNDS_POINTS",
        crate::counters::SLIPPAGE_BOUNDS.to_vec(),
    )?;
    Ok(())
}
