//! Copy trading on the `Engine` class (relations, signals, their metrics), and the copier's
//! volume arithmetic alone (`copy_volume`): the property test compares it with a
//! plain-Python reference (`mt5exec.copier_reference`).

use pyo3::prelude::*;
use pyo3::types::PyBytes;

use super::engine::PyEngine;
use crate::copier::state::Saved;
use crate::copier::volume::{follower_volume, Bounds, Inputs, Sizing};
use crate::copier::Defaults;
use crate::pb::v1::CopyVolumeMode;

/// A follower's order defaults applied to its copies (its execution.json; the deviation
/// already capped by instance.json's slippage_limit). 0: none.
#[pyclass(frozen, get_all, name = "CopyDefaults", module = "mt5exec._core")]
#[derive(Clone, Copy)]
pub struct PyCopyDefaults {
    /// Lots of a signal naming none (multiplier and ratio relations).
    pub lot_size: f64,
    /// Percent of a `RISK_PERCENT` relation whose own is 0.
    pub risk_percent: f64,
    /// Stops of a copy without them (signals; relations with `default_stops`), in points.
    pub stop_loss_points: f64,
    /// As `stop_loss_points`.
    pub take_profit_points: f64,
    /// Deviation of a copy's market order when the relation sets none.
    pub deviation_points: u32,
}

#[pymethods]
impl PyCopyDefaults {
    #[new]
    #[pyo3(signature = (
        *, lot_size = 0.0, risk_percent = 0.0, stop_loss_points = 0.0,
        take_profit_points = 0.0, deviation_points = 0,
    ))]
    fn py_new(
        lot_size: f64,
        risk_percent: f64,
        stop_loss_points: f64,
        take_profit_points: f64,
        deviation_points: u32,
    ) -> PyResult<Self> {
        for (name, v) in [
            ("lot_size", lot_size),
            ("risk_percent", risk_percent),
            ("stop_loss_points", stop_loss_points),
            ("take_profit_points", take_profit_points),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(pyo3::exceptions::PyValueError::new_err(format!(
                    "{name}: {v} is not a finite number >= 0"
                )));
            }
        }
        Ok(Self {
            lot_size,
            risk_percent,
            stop_loss_points,
            take_profit_points,
            deviation_points,
        })
    }
}

impl From<&PyCopyDefaults> for Defaults {
    fn from(d: &PyCopyDefaults) -> Self {
        Self {
            lot_size: d.lot_size,
            risk_percent: d.risk_percent,
            stop_loss_points: d.stop_loss_points,
            take_profit_points: d.take_profit_points,
            deviation_points: d.deviation_points,
        }
    }
}

/// What a relation keeps across restarts (`copy_stats.json`): `CopyState` is the copier's
/// [`Saved`], built here from Python.
pub type PyCopyState = Saved;

#[pymethods]
impl Saved {
    #[new]
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (
        *, owner, relation_id, incarnation, copies = 0, skipped = Vec::new(), fills = 0,
        slippage_sum = 0.0, slippage_max = 0.0, refused = Vec::new(),
        refused_pending = Vec::new(), owed = Vec::new(),
    ))]
    fn py_new(
        owner: String,
        relation_id: String,
        incarnation: i64,
        copies: u64,
        skipped: Vec<(String, u64)>,
        fills: u64,
        slippage_sum: f64,
        slippage_max: f64,
        refused: Vec<u64>,
        refused_pending: Vec<u64>,
        owed: Vec<(u64, f64, u64, String)>,
    ) -> Self {
        Self {
            owner,
            relation_id,
            incarnation,
            copies,
            skipped,
            fills,
            slippage_sum,
            slippage_max,
            refused,
            refused_pending,
            owed,
        }
    }
}

/// What one relation did since the start, for /metrics.
#[pyclass(frozen, get_all, name = "CopyMetrics", module = "mt5exec._core")]
pub struct PyCopyMetrics {
    /// The relation.
    pub relation_id: String,
    /// Its owner (relation ids are the owner's own).
    pub owner: String,
    /// Follower orders sent.
    pub copies: u64,
    /// Copies not made: (reason, count).
    pub skipped: Vec<(String, u64)>,
    /// Latency: cumulative counts per bound of `LATENCY_BOUNDS_S` (None before a first copy).
    pub latency_cumulative: Option<Vec<u64>>,
    /// Copies measured.
    pub latency_count: u64,
    /// Their seconds, summed.
    pub latency_sum_s: f64,
    /// Follower fills measured against the master's price.
    pub fills: u64,
    /// Their slippage in points, summed.
    pub slippage_sum: f64,
    /// The worst of them.
    pub slippage_max: f64,
}

/// One follower's result of a signal: the copy's client_order_id and the token its answer
/// completes, or (token 0) the refusal: `code` (a gRPC status), `reason`, `message`, `field`.
#[pyclass(frozen, get_all, name = "SignalCopyResult", module = "mt5exec._core")]
pub struct PySignalCopyResult {
    /// The follower.
    pub follower_instance_id: String,
    /// The copy's client_order_id.
    pub client_order_id: String,
    /// The token its answer completes (0: refused).
    pub token: u64,
    /// 0, or the refusal's status code.
    pub code: i32,
    /// The refusal's `ErrorInfo.reason`.
    pub reason: String,
    /// The refusal's message.
    pub message: String,
    /// The field the refusal names.
    pub field: String,
    /// A throttle's retry hint (ms).
    pub retry_after_ms: u32,
}

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
    /// Adds a copy relation (encoded `CopyRelation`) with its follower's defaults and, when
    /// restored, the state it saved; returns it encoded. `created`: made by a client now
    /// (symbols checked; the late join is `copy_late_join`, once saved), not restored.
    #[pyo3(signature = (raw, created, defaults, state = None))]
    fn add_copy_relation(
        &self,
        py: Python<'_>,
        raw: &[u8],
        created: bool,
        defaults: &PyCopyDefaults,
        state: Option<&PyCopyState>,
    ) -> PyResult<Py<PyBytes>> {
        let encoded =
            self.inner
                .add_copy_relation(raw, created, Defaults::from(defaults), state)?;
        Ok(PyBytes::new(py, &encoded).unbind())
    }

    /// Every relation's state to save (`copy_stats.json`).
    fn copy_states(&self) -> Vec<PyCopyState> {
        self.inner.copy_states()
    }

    /// Every removed relation still owing closes: (encoded `CopyRelation`, its state).
    fn removed_copy_states(&self, py: Python<'_>) -> Vec<(Py<PyBytes>, PyCopyState)> {
        self.inner
            .removed_copy_states()
            .into_iter()
            .map(|(raw, s)| (PyBytes::new(py, &raw).unbind(), s))
            .collect()
    }

    /// A removed relation that owed closes when the server stopped: they are made when its
    /// follower is ready, and only those.
    fn restore_removed_copy_relation(
        &self,
        raw: &[u8],
        defaults: &PyCopyDefaults,
        state: &PyCopyState,
    ) -> PyResult<()> {
        self.inner
            .restore_removed_copy_relation(raw, Defaults::from(defaults), state)?;
        Ok(())
    }

    /// Removes an owner's copy relation (closing its copies when `close`); returns it
    /// encoded.
    fn remove_copy_relation(
        &self,
        py: Python<'_>,
        owner: &str,
        relation_id: &str,
        close: bool,
    ) -> PyResult<Py<PyBytes>> {
        let encoded = self.inner.remove_copy_relation(owner, relation_id, close)?;
        Ok(PyBytes::new(py, &encoded).unbind())
    }

    /// A relation just made and saved: its late join (the master's open positions and
    /// pending orders copied) when it asks for one.
    fn copy_late_join(&self, owner: &str, relation_id: &str) -> PyResult<()> {
        self.inner.copy_late_join(owner, relation_id)?;
        Ok(())
    }

    /// A deleted instance: the relations naming it removed (copies left open), nothing owed
    /// to it as a follower kept. Whether any relation was let go.
    fn copy_instance_deleted(&self, instance_id: &str) -> bool {
        self.inner.copy_instance_deleted(instance_id)
    }

    /// Every copy relation, encoded, by id.
    fn copy_relations(&self, py: Python<'_>) -> Vec<Py<PyBytes>> {
        self.inner
            .copy_relations()
            .iter()
            .map(|r| PyBytes::new(py, r).unbind())
            .collect()
    }

    /// An owner's relation, as an encoded `GetCopyRelationResponse`.
    fn get_copy_relation(
        &self,
        py: Python<'_>,
        owner: &str,
        relation_id: &str,
    ) -> PyResult<Py<PyBytes>> {
        let encoded = self.inner.get_copy_relation(owner, relation_id)?;
        Ok(PyBytes::new(py, &encoded).unbind())
    }

    /// What every relation did since the start.
    fn copy_metrics(&self) -> Vec<PyCopyMetrics> {
        self.inner
            .copy_metrics()
            .into_iter()
            .map(|m| {
                let (latency_cumulative, latency_count, latency_sum_s) = match m.latency {
                    Some(s) => (Some(s.cumulative), s.count, s.sum_s),
                    None => (None, 0, 0.0),
                };
                PyCopyMetrics {
                    relation_id: m.relation_id,
                    owner: m.owner,
                    copies: m.copies,
                    skipped: m.skipped,
                    latency_cumulative,
                    latency_count,
                    latency_sum_s,
                    fills: m.fills,
                    slippage_sum: m.slippage_sum,
                    slippage_max: m.slippage_max,
                }
            })
            .collect()
    }

    /// A signal copied by every relation following `source`: one result per relation.
    #[allow(clippy::too_many_arguments)]
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
    ) -> Vec<PySignalCopyResult> {
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
            .map(
                |(follower_instance_id, client_order_id, result)| match result {
                    Ok(token) => PySignalCopyResult {
                        follower_instance_id,
                        client_order_id,
                        token,
                        code: 0,
                        reason: String::new(),
                        message: String::new(),
                        field: String::new(),
                        retry_after_ms: 0,
                    },
                    Err(e) => PySignalCopyResult {
                        follower_instance_id,
                        client_order_id,
                        token: 0,
                        code: e.code as i32,
                        reason: e.reason.to_owned(),
                        message: e.message,
                        field: e.field.to_owned(),
                        retry_after_ms: e.retry_after_ms,
                    },
                },
            )
            .collect()
    }
}
