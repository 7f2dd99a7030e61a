//! A copy relation's settings: validation, and the client_order_ids of its copies.

use crate::error::{num, EngineError, Result};
use crate::pb::v1;
use crate::pb::v1::CopyVolumeMode as Mode;
use crate::reason;

use super::volume::Sizing;

/// Relation ids: short enough that a copy's client_order_id stays within 64 characters.
pub const MAX_RELATION_ID: usize = 24;

fn bad(field: &str, reason: &'static str, message: String) -> EngineError {
    EngineError::invalid(full_field(field), reason, message)
}

/// The request's name of a relation field.
fn full_field(field: &str) -> &'static str {
    match field {
        "relation_id" => "relation.relation_id",
        "master_instance_id" => "relation.master_instance_id",
        "follower_instance_id" => "relation.follower_instance_id",
        "volume_mode" => "relation.volume_mode",
        "multiplier" => "relation.multiplier",
        "fixed_volume" => "relation.fixed_volume",
        "risk_percent" => "relation.risk_percent",
        "min_volume" => "relation.min_volume",
        "max_volume" => "relation.max_volume",
        "symbol_map" => "relation.symbol_map",
        "symbol_suffix" => "relation.symbol_suffix",
        "symbols" => "relation.symbols",
        "sides" => "relation.sides",
        "late_join" => "relation.late_join",
        "on_delete" => "relation.on_delete",
        "order_types" => "relation.order_types",
        "signal_source" => "relation.signal_source",
        _ => "relation",
    }
}

fn id_ok(id: &str, max: usize) -> bool {
    !id.is_empty()
        && id.len() <= max
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn volume_ok(field: &str, v: f64) -> Result<()> {
    if v.is_finite() && v >= 0.0 {
        Ok(())
    } else {
        Err(bad(
            field,
            reason::VOLUME_INVALID,
            format!("relation.{field}: {} is not a volume", num(v)),
        ))
    }
}

/// Checks a relation's settings (not its instances: the caller knows them).
///
/// # Errors
/// `INVALID_ARGUMENT` naming the field.
pub fn validate(r: &v1::CopyRelation) -> Result<()> {
    if !id_ok(&r.relation_id, MAX_RELATION_ID) {
        return Err(bad(
            "relation_id",
            reason::RELATION_ID_INVALID,
            format!(
                "relation.relation_id: '{}' is not [A-Za-z0-9_-]{{1,{MAX_RELATION_ID}}}",
                r.relation_id
            ),
        ));
    }
    if r.master_instance_id.is_empty() == r.signal_source.is_empty() {
        return Err(bad(
            "master_instance_id",
            reason::FIELD_REQUIRED,
            "relation.master_instance_id or relation.signal_source: exactly one is required"
                .to_owned(),
        ));
    }
    if r.follower_instance_id.is_empty() {
        return Err(bad(
            "follower_instance_id",
            reason::FIELD_REQUIRED,
            "relation.follower_instance_id: required".to_owned(),
        ));
    }
    if r.follower_instance_id == r.master_instance_id {
        return Err(bad(
            "follower_instance_id",
            reason::FOLLOWER_IS_MASTER,
            "relation.follower_instance_id: an instance cannot copy itself".to_owned(),
        ));
    }
    let mode = Mode::try_from(r.volume_mode).unwrap_or(Mode::Unspecified);
    for (field, v) in [
        ("multiplier", r.multiplier),
        ("fixed_volume", r.fixed_volume),
        ("min_volume", r.min_volume),
        ("max_volume", r.max_volume),
    ] {
        volume_ok(field, v)?;
    }
    let required = |field: &str, v: f64| {
        if v > 0.0 {
            Ok(())
        } else {
            Err(bad(
                field,
                reason::FIELD_REQUIRED,
                format!("relation.{field}: required (> 0) by the volume mode"),
            ))
        }
    };
    match mode {
        Mode::Unspecified => {
            return Err(bad(
                "volume_mode",
                reason::VOLUME_MODE_INVALID,
                format!(
                    "relation.volume_mode: {} is not a volume mode",
                    r.volume_mode
                ),
            ))
        }
        Mode::Multiplier => required("multiplier", r.multiplier)?,
        Mode::Fixed => required("fixed_volume", r.fixed_volume)?,
        Mode::RiskPercent => {
            // 0: the follower's execution.json risk_percent.
            if !(r.risk_percent >= 0.0 && r.risk_percent <= 100.0) {
                return Err(bad(
                    "risk_percent",
                    reason::RISK_PERCENT_INVALID,
                    format!(
                        "relation.risk_percent: {} is not in [0, 100]",
                        num(r.risk_percent)
                    ),
                ));
            }
        }
        Mode::EquityRatio | Mode::BalanceRatio => {}
    }
    if r.max_volume > 0.0 && r.min_volume > r.max_volume {
        return Err(bad(
            "min_volume",
            reason::VOLUME_INVALID,
            "relation.min_volume: above max_volume".to_owned(),
        ));
    }
    let enums = [
        ("sides", v1::CopySides::try_from(r.sides).is_ok()),
        ("late_join", v1::CopyLateJoin::try_from(r.late_join).is_ok()),
        ("on_delete", v1::CopyOnDelete::try_from(r.on_delete).is_ok()),
        (
            "order_types",
            r.order_types.iter().all(|t| {
                v1::OrderType::try_from(*t).is_ok_and(|t| t != v1::OrderType::Unspecified)
            }),
        ),
    ];
    if let Some((field, _)) = enums.iter().find(|(_, ok)| !ok) {
        return Err(bad(
            field,
            reason::ENUM_INVALID,
            format!("relation.{field}: not a known value"),
        ));
    }
    let names = r
        .symbols
        .iter()
        .chain(&r.exclude_symbols)
        .chain(r.symbol_map.keys())
        .chain(r.symbol_map.values());
    for name in names {
        if name.is_empty() || name.len() > 64 {
            return Err(bad(
                "symbol_map",
                reason::SYMBOL_INVALID,
                format!("relation.symbol_map: '{name}' is not a symbol name"),
            ));
        }
    }
    if r.symbol_prefix.len() > 16 || r.symbol_suffix.len() > 16 {
        return Err(bad(
            "symbol_suffix",
            reason::SYMBOL_INVALID,
            "relation.symbol_prefix, symbol_suffix: at most 16 characters".to_owned(),
        ));
    }
    if !r.signal_source.is_empty() && !id_ok(&r.signal_source, 64) {
        return Err(bad(
            "signal_source",
            reason::SIGNAL_SOURCE_INVALID,
            format!(
                "relation.signal_source: '{}' is not [A-Za-z0-9_-]{{1,64}}",
                r.signal_source
            ),
        ));
    }
    Ok(())
}

/// The relation's sizing.
#[must_use]
pub fn sizing(r: &v1::CopyRelation) -> Sizing {
    Sizing {
        mode: Mode::try_from(r.volume_mode).unwrap_or(Mode::Unspecified),
        multiplier: r.multiplier,
        fixed_volume: r.fixed_volume,
        risk_percent: r.risk_percent,
        min_volume: r.min_volume,
        max_volume: r.max_volume,
        raise_to_minimum: r.raise_to_minimum,
    }
}

/// `n` in base 36 (at most 13 characters for a u64).
#[must_use]
pub fn base36(mut n: u64) -> String {
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[usize::try_from(n % 36).unwrap_or(0)]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

/// The start of a relation's copies' ids: its id and its incarnation (its created_time
/// seconds in base 36), `<relation>.<incarnation>`: a relation deleted and made again under
/// the same id does not meet its predecessor's copies in the follower's journal.
#[must_use]
pub fn id_prefix(r: &v1::CopyRelation) -> String {
    let seconds = r.created_time.as_ref().map_or(0, |t| t.seconds);
    format!(
        "{}.{}",
        r.relation_id,
        base36(u64::try_from(seconds).unwrap_or(0))
    )
}

/// The client_order_id of a copy: the relation's prefix ([`id_prefix`]), the master's
/// position and deal, and the action (`o` open, `c0`, `c1`... closes, `p` pending, `j` late
/// join): at most 24 + 1 + 7 (until year 4400) + 2 × 13 + 3 + 3 = 64 characters of
/// `[A-Za-z0-9_.:-]`. The same master event always gives the same id, so a replay is
/// answered by the journal's first result instead of a second order.
#[must_use]
pub fn copy_id(prefix: &str, position: u64, deal: u64, action: &str) -> String {
    format!("{prefix}:{}:{}:{action}", base36(position), base36(deal))
}

/// Whether a client_order_id is one the copier makes (a copy's or a signal copy's): such an
/// order is never copied again (a relation chain a→b→c copies a's trades to b only).
#[must_use]
pub fn is_copy_id(client_order_id: &str) -> bool {
    let parts: Vec<&str> = client_order_id.split(':').collect();
    let base36_ok = |s: &str| {
        !s.is_empty()
            && s.len() <= 13
            && s.bytes()
                .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
    };
    let numbered = |s: &str, head: char| {
        s.strip_prefix(head)
            .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
    };
    let prefix_ok = parts[0]
        .split_once('.')
        .is_some_and(|(relation, incarnation)| {
            id_ok(relation, MAX_RELATION_ID) && base36_ok(incarnation)
        });
    if parts.len() < 3 || !prefix_ok {
        return false;
    }
    if parts[1] == "s" {
        return !parts[2].is_empty();
    }
    parts.len() == 4
        && base36_ok(parts[1])
        && base36_ok(parts[2])
        && (matches!(parts[3], "o" | "p")
            || numbered(parts[3], 'j')
            || (parts[3].len() > 1 && (numbered(parts[3], 'c') || numbered(parts[3], 'd'))))
}

/// The `<relation>.<incarnation>` a copy's client_order_id starts with (None: not a copy's
/// id).
#[must_use]
pub fn copy_prefix(client_order_id: &str) -> Option<&str> {
    if is_copy_id(client_order_id) {
        client_order_id.split(':').next()
    } else {
        None
    }
}

/// The client_order_id of a signal's copy: the relation and the signal id (hashed when the
/// two would not fit in 64 characters).
#[must_use]
pub fn signal_copy_id(prefix: &str, signal_id: &str) -> String {
    let plain = format!("{prefix}:s:{signal_id}");
    if plain.len() <= 64 {
        return plain;
    }
    // FNV-1a: stable across runs and builds (the id must be the same after a restart).
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in signal_id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{prefix}:s:h{}", base36(h))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_ids_fit_the_client_order_id_rules() {
        let r = v1::CopyRelation {
            relation_id: "r".repeat(MAX_RELATION_ID),
            created_time: Some(prost_types::Timestamp {
                seconds: 36_i64.pow(7) - 1, // year 4400
                nanos: 0,
            }),
            ..Default::default()
        };
        let prefix = id_prefix(&r);
        let id = copy_id(&prefix, u64::MAX, u64::MAX, "c12");
        assert!(id.len() <= 64, "{id}");
        assert!(crate::session::check_client_order_id(&id).is_ok());
        let s = signal_copy_id(&prefix, &"x".repeat(64));
        assert!(
            s.len() <= 64 && crate::session::check_client_order_id(&s).is_ok(),
            "{s}"
        );
        assert_eq!(s, signal_copy_id(&prefix, &"x".repeat(64)));
        assert_eq!(signal_copy_id("r1.a", "sig-1"), "r1.a:s:sig-1");
    }

    #[test]
    fn copy_ids_are_told_apart() {
        for id in [
            copy_id("r1.abc", 77, 99, "o"),
            copy_id("r1.abc", 77, 0, "j"),
            copy_id("r1.abc", 77, 0, "j2"),
            copy_id("r-1.abc", 77, 99, "c0"),
            copy_id("r_1.0", 77, 0, "d3"),
            copy_id("r1.abc", 77, 0, "p"),
            signal_copy_id("r1.abc", "sig-1"),
        ] {
            assert!(is_copy_id(&id), "{id}");
        }
        let not = [
            "order-1",
            "a:b",
            "r1:7:9:o",
            "r1.a:77:99:x",
            "r1.a:7Z:99:o",
            "r 1.a:7:9:o",
            "r1.a:7:9:c",
        ];
        for id in not {
            assert!(!is_copy_id(id), "{id}");
        }
    }

    #[test]
    fn relations_are_validated() {
        let ok = v1::CopyRelation {
            relation_id: "r1".into(),
            master_instance_id: "m".into(),
            follower_instance_id: "f".into(),
            volume_mode: Mode::Multiplier as i32,
            multiplier: 1.0,
            ..Default::default()
        };
        assert!(validate(&ok).is_ok());
        let cases = [
            (
                v1::CopyRelation {
                    relation_id: "a b".into(),
                    ..ok.clone()
                },
                "relation.relation_id",
            ),
            (
                v1::CopyRelation {
                    multiplier: 0.0,
                    ..ok.clone()
                },
                "relation.multiplier",
            ),
            (
                v1::CopyRelation {
                    follower_instance_id: "m".into(),
                    ..ok.clone()
                },
                "relation.follower_instance_id",
            ),
            (
                v1::CopyRelation {
                    signal_source: "s".into(),
                    ..ok.clone()
                },
                "relation.master_instance_id",
            ),
            (
                v1::CopyRelation {
                    volume_mode: 9,
                    ..ok.clone()
                },
                "relation.volume_mode",
            ),
            (
                v1::CopyRelation {
                    volume_mode: Mode::RiskPercent as i32,
                    risk_percent: 150.0,
                    ..ok.clone()
                },
                "relation.risk_percent",
            ),
        ];
        for (r, field) in cases {
            assert_eq!(validate(&r).expect_err(field).field, field);
        }
    }
}
