//! Order sessions: the `OrderSession` class and the `Engine` methods that open and feed one.

use pyo3::prelude::*;
use pyo3::types::PyBytes;
use std::sync::Arc;

use super::engine::PyEngine;
use crate::session::Session;

/// One order session's queue of encoded responses.
#[pyclass(frozen, name = "OrderSession", module = "mt5exec._core")]
pub struct PyOrderSession {
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

#[pymethods]
impl PyEngine {
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
}
