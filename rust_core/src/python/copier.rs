//! Copy trading on the `Engine` class (relations, signals, their metrics), and the copier's
//! volume arithmetic alone (`copy_volume`): the property test compares it with a
//! plain-Python reference (`mt5exec.copier_reference`).

use pyo3::prelude::*;
use pyo3::types::PyBytes;

use super::engine::PyEngine;
use crate::copier::volume::{follower_volume, Bounds, Inputs, Sizing};
use crate::pb::v1::CopyVolumeMode;

/// A copy's volume: `(volume, "")`, or `(0.0, skip reason)`. `mode` is a `CopyVolumeMode`.
#[pyfunction]
#[allow(clippy::too_many_arguments)]
#[pyo3(signature = (
    mode, *, multiplier = 0.0, fixed_volume = 0.0, risk_percent = 0.0, min_volume = 0.0,
    max_volume = 0.0, raise_to_minimum = false, master_volume = 0.0, master_balance = 0.0,
    master_equity = 0.0, follower_balance = 0.0, follower_equity = 0.0, stop_distance = 0.0,
    tick_value = 0.0, tick_size = 0.0, volume_min = 0.0, volume_max = 0.0, volume_step = 0.0,
))]
pub fn copy_volume(
    mode: i32,
    multiplier: f64,
    fixed_volume: f64,
    risk_percent: f64,
    min_volume: f64,
    max_volume: f64,
    raise_to_minimum: bool,
    master_volume: f64,
    master_balance: f64,
    master_equity: f64,
    follower_balance: f64,
    follower_equity: f64,
    stop_distance: f64,
    tick_value: f64,
    tick_size: f64,
    volume_min: f64,
    volume_max: f64,
    volume_step: f64,
) -> (f64, &'static str) {
    let sizing = Sizing {
        mode: CopyVolumeMode::try_from(mode).unwrap_or(CopyVolumeMode::Unspecified),
        multiplier,
        fixed_volume,
        risk_percent,
        min_volume,
        max_volume,
        raise_to_minimum,
    };
    let inputs = Inputs {
        master_volume,
        master_balance,
        master_equity,
        follower_balance,
        follower_equity,
        stop_distance,
        tick_value,
        tick_size,
    };
    let bounds = Bounds {
        min: volume_min,
        max: volume_max,
        step: volume_step,
    };
    match follower_volume(&sizing, &inputs, &bounds) {
        Ok(v) => (v, ""),
        Err(reason) => (0.0, reason),
    }
}

#[pymethods]
impl PyEngine {
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
}
