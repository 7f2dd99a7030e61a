//! The pre-trade gate's controls on the `Engine` class: kill switch, risk limits, trading
//! state, order rates and the daily counters; and `validate_risk_limits`.

use prost::Message;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use super::engine::PyEngine;
use crate::pb::v1::RiskLimits;
use crate::risk::DayState;

/// An instance's daily risk counters, which the server saves so that a restart does not
/// reset them.
#[pyclass(frozen, eq, name = "RiskDayState", module = "mt5exec._core")]
#[derive(PartialEq)]
pub struct PyRiskDayState(DayState);

#[pymethods]
impl PyRiskDayState {
    #[new]
    fn new(day: i64, trades_today: u32, day_start_equity: f64, equity_high: f64) -> Self {
        Self(DayState {
            day,
            trades_today,
            day_start_equity,
            equity_high,
        })
    }

    /// Days since the epoch (UTC).
    #[getter]
    fn day(&self) -> i64 {
        self.0.day
    }

    /// New orders sent that day.
    #[getter]
    fn trades_today(&self) -> u32 {
        self.0.trades_today
    }

    /// Equity when the day started (0: not seen yet).
    #[getter]
    fn day_start_equity(&self) -> f64 {
        self.0.day_start_equity
    }

    /// Highest equity seen.
    #[getter]
    fn equity_high(&self) -> f64 {
        self.0.equity_high
    }

    /// Immutable: a copy is itself (records holding one are deep-copied).
    fn __copy__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __deepcopy__(slf: Py<Self>, _memo: &Bound<'_, PyAny>) -> Py<Self> {
        slf
    }

    fn __repr__(&self) -> String {
        let s = &self.0;
        format!(
            "RiskDayState(day={}, trades_today={}, day_start_equity={}, equity_high={})",
            s.day, s.trades_today, s.day_start_equity, s.equity_high
        )
    }
}

#[pymethods]
impl PyEngine {
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

    /// Publishes the throttle refusals gathered so far (before the server stops).
    fn flush_refusals(&self) {
        self.inner.flush_refusals();
    }

    /// An instance's daily risk counters.
    fn risk_day_state(&self, instance_id: &str) -> PyResult<PyRiskDayState> {
        Ok(PyRiskDayState(self.inner.risk_day_state(instance_id)?))
    }

    /// Gives an instance back saved daily risk counters.
    fn restore_risk_day_state(&self, instance_id: &str, state: &PyRiskDayState) -> PyResult<()> {
        Ok(self.inner.restore_risk_day_state(instance_id, state.0)?)
    }

    /// Risk rejections so far: [(instance id, reason, count)].
    fn risk_rejections(&self) -> Vec<(String, &'static str, u64)> {
        self.inner.risk_rejections()
    }
}

/// Raises `CoreError` (INVALID_ARGUMENT naming the field) for limits the engine cannot use.
#[pyfunction]
pub fn validate_risk_limits(limits: &[u8]) -> PyResult<()> {
    let limits =
        RiskLimits::decode(limits).map_err(|e| PyValueError::new_err(format!("limits: {e}")))?;
    crate::risk::validate_limits(&limits)?;
    Ok(())
}
