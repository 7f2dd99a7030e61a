//! Python binding of the copier's volume arithmetic alone: the property test compares it
//! with a plain-Python reference (`mt5exec.copier_reference`).

use pyo3::prelude::*;

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
