//! The copier's volume arithmetic: pure functions of numbers (a plain-Python reference,
//! `mt5exec.copier_reference`, is checked against them by a property test).

use crate::pb::v1::CopyVolumeMode as Mode;
use crate::reason;

/// How a relation sizes its copies.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sizing {
    /// The volume mode.
    pub mode: Mode,
    /// `MULTIPLIER`: follower = master × this.
    pub multiplier: f64,
    /// `FIXED`: this volume.
    pub fixed_volume: f64,
    /// `RISK_PERCENT`: percent of the follower's equity lost at the stop loss.
    pub risk_percent: f64,
    /// Clamp of the computed volume (0: none).
    pub min_volume: f64,
    /// Clamp of the computed volume (0: none).
    pub max_volume: f64,
    /// A volume below the symbol's minimum is raised to it (else skipped).
    pub raise_to_minimum: bool,
}

/// What a copy is sized from.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Inputs {
    /// The master's deal volume (a signal's volume).
    pub master_volume: f64,
    /// The master's account (0: unknown).
    pub master_balance: f64,
    /// The master's account (0: unknown).
    pub master_equity: f64,
    /// The follower's account (0: unknown).
    pub follower_balance: f64,
    /// The follower's account (0: unknown).
    pub follower_equity: f64,
    /// |entry price − stop loss| in price units (0: no stop loss).
    pub stop_distance: f64,
    /// The follower symbol's value of one tick for one lot, in the account currency.
    pub tick_value: f64,
    /// The follower symbol's tick size.
    pub tick_size: f64,
}

/// The follower symbol's volume bounds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bounds {
    /// `volume_min`.
    pub min: f64,
    /// `volume_max` (0: none).
    pub max: f64,
    /// `volume_step` (0: none).
    pub step: f64,
}

/// Why a copy was not sized.
pub type Skip = &'static str;

/// The volume before clamping and rounding.
///
/// # Errors
/// `ACCOUNT_UNKNOWN` (a ratio mode without both accounts), `NO_STOP_LOSS` and
/// `TICK_VALUE_UNKNOWN` (risk percent), `VOLUME_MODE_INVALID`.
pub fn raw(sizing: &Sizing, inputs: &Inputs) -> Result<f64, Skip> {
    let ratio = |follower: f64, master: f64| {
        if follower > 0.0 && master > 0.0 {
            Ok(inputs.master_volume * follower / master)
        } else {
            Err(reason::ACCOUNT_UNKNOWN)
        }
    };
    match sizing.mode {
        Mode::Multiplier => Ok(inputs.master_volume * sizing.multiplier),
        Mode::Fixed => Ok(sizing.fixed_volume),
        Mode::EquityRatio => ratio(inputs.follower_equity, inputs.master_equity),
        Mode::BalanceRatio => ratio(inputs.follower_balance, inputs.master_balance),
        Mode::RiskPercent => {
            if inputs.stop_distance <= 0.0 {
                return Err(reason::NO_STOP_LOSS);
            }
            if inputs.tick_value <= 0.0 || inputs.tick_size <= 0.0 || inputs.follower_equity <= 0.0
            {
                return Err(reason::TICK_VALUE_UNKNOWN);
            }
            let loss_per_lot = inputs.stop_distance / inputs.tick_size * inputs.tick_value;
            Ok(inputs.follower_equity * sizing.risk_percent / 100.0 / loss_per_lot)
        }
        Mode::Unspecified => Err(reason::VOLUME_MODE_INVALID),
    }
}

/// `volume` down to a multiple of `step` (a hair of tolerance for binary fractions), with the
/// step's decimals only.
#[must_use]
pub fn floor_to_step(volume: f64, step: f64) -> f64 {
    if step <= 0.0 {
        return volume;
    }
    let steps = (volume / step + 1e-9).floor();
    clean(steps * step)
}

/// `volume` to the nearest multiple of `step`.
#[must_use]
pub fn round_to_step(volume: f64, step: f64) -> f64 {
    if step <= 0.0 {
        return volume;
    }
    clean((volume / step).round() * step)
}

/// Rounded to 8 decimals (0.07 × 3 is 0.21, not 0.21000000000000002).
fn clean(v: f64) -> f64 {
    (v * 1e8).round() / 1e8
}

/// The copy's volume: clamped to the relation's bounds, down to the symbol's step, and within
/// the symbol's bounds (below its minimum: raised or skipped, per relation).
///
/// # Errors
/// As [`raw`], and `VOLUME_BELOW_MINIMUM`.
pub fn follower_volume(sizing: &Sizing, inputs: &Inputs, bounds: &Bounds) -> Result<f64, Skip> {
    let mut v = raw(sizing, inputs)?;
    if !v.is_finite() || v < 0.0 {
        return Err(reason::VOLUME_INVALID);
    }
    if sizing.max_volume > 0.0 {
        v = v.min(sizing.max_volume);
    }
    if sizing.min_volume > 0.0 {
        v = v.max(sizing.min_volume);
    }
    v = floor_to_step(v, bounds.step);
    if bounds.max > 0.0 {
        v = v.min(floor_to_step(bounds.max, bounds.step));
    }
    if v < bounds.min - 1e-12 || v <= 0.0 {
        if sizing.raise_to_minimum && bounds.min > 0.0 {
            return Ok(bounds.min);
        }
        return Err(reason::VOLUME_BELOW_MINIMUM);
    }
    Ok(v)
}

/// The part of a follower's copy a master's partial close of `closed` out of `master_open`
/// closes: proportional, to the step (nearest); all of it when the master closed all.
#[must_use]
pub fn close_volume(follower_open: f64, master_open: f64, closed: f64, step: f64) -> f64 {
    if master_open <= 0.0 || closed >= master_open - 1e-9 {
        return follower_open;
    }
    round_to_step(follower_open * closed / master_open, step).min(follower_open)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sizing(mode: Mode) -> Sizing {
        Sizing {
            mode,
            multiplier: 1.0,
            fixed_volume: 0.0,
            risk_percent: 0.0,
            min_volume: 0.0,
            max_volume: 0.0,
            raise_to_minimum: false,
        }
    }
    const LOTS: Bounds = Bounds {
        min: 0.01,
        max: 100.0,
        step: 0.01,
    };

    fn inputs(master_volume: f64) -> Inputs {
        Inputs {
            master_volume,
            ..Inputs::default()
        }
    }

    #[test]
    fn multiplier_rounds_down_to_the_step() {
        let s = Sizing {
            multiplier: 1.5,
            ..sizing(Mode::Multiplier)
        };
        assert_eq!(follower_volume(&s, &inputs(0.07), &LOTS), Ok(0.1));
        assert_eq!(follower_volume(&s, &inputs(0.14), &LOTS), Ok(0.21));
    }

    #[test]
    fn fixed_ignores_the_master() {
        let s = Sizing {
            fixed_volume: 0.03,
            ..sizing(Mode::Fixed)
        };
        assert_eq!(follower_volume(&s, &inputs(5.0), &LOTS), Ok(0.03));
    }

    #[test]
    fn ratios_scale_by_the_accounts() {
        let i = Inputs {
            master_volume: 1.0,
            master_balance: 10_000.0,
            follower_balance: 2_500.0,
            master_equity: 10_000.0,
            follower_equity: 5_000.0,
            ..Inputs::default()
        };
        assert_eq!(
            follower_volume(&sizing(Mode::BalanceRatio), &i, &LOTS),
            Ok(0.25)
        );
        assert_eq!(
            follower_volume(&sizing(Mode::EquityRatio), &i, &LOTS),
            Ok(0.5)
        );
        let unknown = Inputs {
            master_equity: 0.0,
            ..i
        };
        assert_eq!(
            follower_volume(&sizing(Mode::EquityRatio), &unknown, &LOTS),
            Err("ACCOUNT_UNKNOWN")
        );
    }

    #[test]
    fn risk_percent_sizes_from_the_stop_distance() {
        // 1 % of 10,000 = 100 at risk; 50 points of 0.00001 at 1.0 per tick per lot = 50 per lot.
        let s = Sizing {
            risk_percent: 1.0,
            ..sizing(Mode::RiskPercent)
        };
        let i = Inputs {
            follower_equity: 10_000.0,
            stop_distance: 0.0005,
            tick_value: 1.0,
            tick_size: 0.00001,
            ..Inputs::default()
        };
        assert_eq!(follower_volume(&s, &i, &LOTS), Ok(2.0));
        let none = Inputs {
            stop_distance: 0.0,
            ..i
        };
        assert_eq!(follower_volume(&s, &none, &LOTS), Err("NO_STOP_LOSS"));
    }

    #[test]
    fn below_the_minimum_is_skipped_or_raised() {
        let s = Sizing {
            multiplier: 0.1,
            ..sizing(Mode::Multiplier)
        };
        assert_eq!(
            follower_volume(&s, &inputs(0.05), &LOTS),
            Err("VOLUME_BELOW_MINIMUM")
        );
        let raise = Sizing {
            raise_to_minimum: true,
            ..s
        };
        assert_eq!(follower_volume(&raise, &inputs(0.05), &LOTS), Ok(0.01));
    }

    #[test]
    fn the_relations_clamp_and_the_symbols_maximum_apply() {
        let s = Sizing {
            multiplier: 10.0,
            max_volume: 0.5,
            ..sizing(Mode::Multiplier)
        };
        assert_eq!(follower_volume(&s, &inputs(1.0), &LOTS), Ok(0.5));
        let low = Sizing {
            multiplier: 0.01,
            min_volume: 0.02,
            ..sizing(Mode::Multiplier)
        };
        assert_eq!(follower_volume(&low, &inputs(1.0), &LOTS), Ok(0.02));
        let big = Sizing {
            multiplier: 1000.0,
            ..sizing(Mode::Multiplier)
        };
        assert_eq!(follower_volume(&big, &inputs(1.0), &LOTS), Ok(100.0));
    }

    #[test]
    fn partial_closes_are_proportional() {
        assert!((close_volume(0.3, 1.0, 0.5, 0.01) - 0.15).abs() < 1e-12);
        assert!((close_volume(0.3, 1.0, 1.0, 0.01) - 0.3).abs() < 1e-12);
        assert!((close_volume(0.2, 0.3, 0.1, 0.01) - 0.07).abs() < 1e-12);
    }
}
