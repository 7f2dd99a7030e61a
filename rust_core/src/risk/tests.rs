use super::*;

#[test]
fn windows_parse_and_wrap() {
    assert_eq!(Window::parse("", ""), Ok(None));
    let day = Window::parse("08:00", "16:00").ok().flatten();
    let day = day.unwrap_or(Window { start: 0, end: 0 });
    let at = |h: i64, m: i64| (h * 60 + m) * 60_000 + 3 * DAY_MSC;
    assert!(day.contains(at(8, 0)));
    assert!(day.contains(at(15, 59)));
    assert!(!day.contains(at(16, 0)));
    assert!(!day.contains(at(7, 59)));
    let night = Window::parse("22:00", "02:00").ok().flatten();
    let night = night.unwrap_or(Window { start: 0, end: 0 });
    assert!(night.contains(at(23, 0)) && night.contains(at(1, 59)));
    assert!(!night.contains(at(2, 0)) && !night.contains(at(12, 0)));
    for bad in ["8:00", "24:00", "08:60", "0800", "ab:cd"] {
        assert!(Window::parse(bad, "16:00").is_err(), "{bad}");
    }
}

#[test]
fn duplicates_expire_exactly_at_the_window() {
    let limits = RiskLimits {
        duplicate_window_ms: 500,
        ..Default::default()
    };
    let mut risk = InstanceRisk::new(limits, 1, TradingState::Active, false, 0)
        .unwrap_or_else(|e| panic!("{e}"));
    let key = 42;
    risk.recent.push_back((1_000, key));
    assert!(risk.is_duplicate(key, 1_499));
    assert!(!risk.is_duplicate(key + 1, 1_499));
    assert!(!risk.is_duplicate(key, 1_500));
    assert!(risk.recent.is_empty(), "expired entries are dropped");
}

#[test]
fn limits_are_validated() {
    let bad = RiskLimits {
        max_daily_loss: f64::NAN,
        ..Default::default()
    };
    assert_eq!(
        validate_limits(&bad).map_err(|e| e.field),
        Err("risk.max_daily_loss")
    );
    let crossed = RiskLimits {
        min_order_volume: 2.0,
        max_order_volume: 1.0,
        ..Default::default()
    };
    assert!(validate_limits(&crossed).is_err());
    for symbols in [
        vec!["X".repeat(100_000)],
        vec![String::new()],
        vec!["EUR USD".to_owned()],
        vec!["EURUSD".to_owned(); MAX_ALLOWED_SYMBOLS + 1],
    ] {
        let whitelist = RiskLimits {
            allowed_symbols: symbols,
            ..Default::default()
        };
        let e = validate_limits(&whitelist).expect_err("whitelist");
        assert_eq!(e.field, "risk.allowed_symbols");
        assert!(e.message.len() < 200, "{}", e.message);
    }
    let fine = RiskLimits {
        allowed_symbols: vec!["EURUSD".to_owned(), "US500.cash".to_owned()],
        ..Default::default()
    };
    assert!(validate_limits(&fine).is_ok());
}

#[test]
fn the_day_rolls_over() {
    let mut risk = InstanceRisk::new(RiskLimits::default(), 1, TradingState::Active, false, 0)
        .unwrap_or_else(|e| panic!("{e}"));
    risk.on_equity(1_000.0, 10);
    risk.on_equity(900.0, 20);
    risk.on_equity(1_100.0, 30);
    assert_eq!(risk.day_start_equity, 1_000.0);
    assert_eq!(risk.equity_high, 1_100.0);
    risk.trades_today = 5;
    let saved = risk.day_state();
    risk.on_equity(1_050.0, DAY_MSC + 1);
    assert_eq!((risk.day_start_equity, risk.trades_today), (1_050.0, 0));
    assert_eq!(risk.equity_high, 1_100.0);
    let mut fresh = InstanceRisk::new(RiskLimits::default(), 1, TradingState::Active, false, 0)
        .unwrap_or_else(|e| panic!("{e}"));
    fresh.restore_day(saved, 40);
    assert_eq!(fresh.day_state(), saved);
    let mut next_day = InstanceRisk::new(RiskLimits::default(), 1, TradingState::Active, false, 0)
        .unwrap_or_else(|e| panic!("{e}"));
    next_day.restore_day(saved, DAY_MSC + 5);
    assert_eq!((next_day.trades_today, next_day.equity_high), (0, 1_100.0));
}
