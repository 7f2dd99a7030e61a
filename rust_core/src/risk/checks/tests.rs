use super::*;

fn spec() -> SymbolInfo {
    SymbolInfo {
        name: "EURUSD".into(),
        digits: 5,
        point: 0.000_01,
        contract_size: 100_000.0,
        volume_min: 0.01,
        volume_max: 100.0,
        volume_step: 0.01,
        trade_mode: 4,
        tick_value: 1.0,
        tick_size: 0.000_01,
        ..Default::default()
    }
}

fn order() -> Order {
    Order {
        buy: true,
        kind: Kind::Market,
        volume: 1.0,
        price: 0.0,
        stop_limit_price: 0.0,
        stop_loss: 0.0,
        take_profit: 0.0,
        deviation_points: 10,
        closes_position: false,
    }
}

fn book() -> Book {
    Book {
        hedging: true,
        equity: 10_000.0,
        free_margin: 10_000.0,
        leverage: 100.0,
        day_start_equity: 10_000.0,
        equity_high: 10_000.0,
        ..Default::default()
    }
}

fn run(order: &Order, book: &Book, limits: &RiskLimits) -> Result<(), &'static str> {
    let spec = spec();
    let market = Market {
        spec: &spec,
        bid: 1.1,
        ask: 1.1001,
        tick_received_msc: 1_000,
        now_msc: 1_000,
    };
    let controls = Controls {
        limits,
        state: TradingState::Active,
        kill_switch: false,
        symbol_allowed: true,
        in_session: true,
        duplicate: false,
    };
    check(order, &market, book, &controls).map_err(|r| r.reason)
}

#[test]
fn insufficient_margin_names_the_margin() {
    // 100 lots at 1.1001 and 1:100: 110,010 of margin against 10,000 free.
    let o = Order {
        volume: 100.0,
        ..order()
    };
    let spec = spec();
    let market = Market {
        spec: &spec,
        bid: 1.1,
        ask: 1.1001,
        tick_received_msc: 1_000,
        now_msc: 1_000,
    };
    let controls = Controls {
        limits: &RiskLimits::default(),
        state: TradingState::Active,
        kill_switch: false,
        symbol_allowed: true,
        in_session: true,
        duplicate: false,
    };
    let e = check(&o, &market, &book(), &controls)
        .expect_err("margin")
        .into_error();
    assert_eq!((e.reason, e.field), ("INSUFFICIENT_MARGIN", "volume"));
    assert!(
        e.message.contains("needs a margin of 110010") && e.message.ends_with("is 10000"),
        "{}",
        e.message
    );
}

#[test]
fn volume_limit_boundary() {
    let limits = RiskLimits {
        max_order_volume: 2.0,
        ..Default::default()
    };
    let mut o = order();
    o.volume = 2.0;
    assert_eq!(run(&o, &book(), &limits), Ok(()));
    o.volume = 2.01;
    assert_eq!(run(&o, &book(), &limits), Err("VOLUME_ABOVE_LIMIT"));
}

#[test]
fn closes_skip_exposure_limits() {
    let limits = RiskLimits {
        max_open_positions: 1,
        max_trades_per_day: 1,
        ..Default::default()
    };
    let full = Book {
        open_positions: 1,
        trades_today: 1,
        ..book()
    };
    assert_eq!(run(&order(), &full, &limits), Err("MAX_OPEN_POSITIONS"));
    let close = Order {
        closes_position: true,
        buy: false,
        ..order()
    };
    assert_eq!(run(&close, &full, &limits), Ok(()));
}

#[test]
fn netting_opposite_order_reduces() {
    let b = Book {
        hedging: false,
        net_volume: 2.0,
        ..book()
    };
    let sell = Order {
        buy: false,
        ..order()
    };
    assert!(reduces(&sell, &b));
    assert!(!reduces(
        &Order {
            volume: 3.0,
            ..sell
        },
        &b
    ));
    assert!(!reduces(&order(), &b));
}

#[test]
fn nan_and_subnormal_never_pass() {
    let limits = RiskLimits::default();
    for v in [f64::NAN, f64::INFINITY, -1.0, 0.0, f64::MIN_POSITIVE / 2.0] {
        let o = Order {
            volume: v,
            ..order()
        };
        assert_eq!(run(&o, &book(), &limits), Err("VOLUME_INVALID"));
        let o = Order {
            stop_loss: v,
            ..order()
        };
        if v != 0.0 {
            assert_eq!(run(&o, &book(), &limits), Err("PRICE_INVALID"));
        }
    }
    let nan_book = Book {
        equity: f64::NAN,
        ..book()
    };
    let limits = RiskLimits {
        max_daily_loss: 100.0,
        ..Default::default()
    };
    assert_eq!(run(&order(), &nan_book, &limits), Err("DAILY_LOSS_LIMIT"));
}

#[test]
fn margin_and_loss_per_trade() {
    let limits = RiskLimits {
        max_loss_per_trade: 100.0,
        ..Default::default()
    };
    // 1 lot, SL 100 points away: 100 points × 1.0 per point = 100, at the limit.
    let o = Order {
        stop_loss: 1.1001 - 0.001,
        ..order()
    };
    assert_eq!(run(&o, &book(), &limits), Ok(()));
    let o = Order {
        stop_loss: 1.1001 - 0.00101,
        ..order()
    };
    assert_eq!(run(&o, &book(), &limits), Err("TRADE_LOSS_LIMIT"));
    // 100 lots at 1:100 need ~110k of margin.
    let o = Order {
        volume: 100.0,
        ..order()
    };
    assert_eq!(
        run(&o, &book(), &RiskLimits::default()),
        Err("INSUFFICIENT_MARGIN")
    );
}
