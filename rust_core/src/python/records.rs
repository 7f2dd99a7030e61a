//! Small frozen records the bindings hand to Python in place of tuples: fields with names,
//! so that `engine.py` reads `completion.token`, not `c[0]`.

use pyo3::prelude::*;
use pyo3::types::PyBytes;

/// The answer to one call made earlier, found by its token.
#[pyclass(frozen, name = "Completion", module = "mt5exec._core")]
pub struct PyCompletion {
    /// The token the call returned.
    #[pyo3(get)]
    pub token: u64,
    /// 0 (OK) or a gRPC status code.
    #[pyo3(get)]
    pub code: i32,
    /// `ErrorInfo.reason` when `code` is not 0.
    #[pyo3(get)]
    pub reason: String,
    /// The error's message when `code` is not 0.
    #[pyo3(get)]
    pub message: String,
    /// The encoded answer (or what an error carries).
    pub payload: Py<PyBytes>,
}

#[pymethods]
impl PyCompletion {
    #[getter]
    fn payload(&self, py: Python<'_>) -> Py<PyBytes> {
        self.payload.clone_ref(py)
    }
}

/// The order journal's counters since the start (all 0 without a journal).
#[pyclass(frozen, get_all, name = "JournalStats", module = "mt5exec._core")]
pub struct PyJournalStats {
    /// Records appended.
    pub records: u64,
    /// Bytes appended.
    pub bytes: u64,
    /// fsyncs made.
    pub fsyncs: u64,
    /// Nanoseconds spent writing.
    pub write_ns: u64,
    /// Nanoseconds spent in fsync.
    pub fsync_ns: u64,
    /// Compactions while running.
    pub compactions: u64,
}
