use super::*;

fn eurusd() -> SymbolInfo {
    SymbolInfo {
        name: "EURUSD".into(),
        digits: 5,
        point: 0.00001,
        volume_min: 0.01,
        volume_max: 100.0,
        volume_step: 0.01,
        ..Default::default()
    }
}

fn tick() -> Tick {
    Tick {
        symbol: "EURUSD".into(),
        bid: 1.08500,
        ask: 1.08510,
        ..Default::default()
    }
}

fn buy(volume: f64) -> OrderIntent {
    OrderIntent {
        symbol: "EURUSD".into(),
        side: Side::Buy as i32,
        order_type: OrderType::Market as i32,
        volume,
        ..Default::default()
    }
}

fn reason(o: &OrderIntent) -> &'static str {
    match check_order(o, Some(&eurusd()), Some(&tick()), 0) {
        Ok(()) => "OK",
        Err(e) => e.reason,
    }
}

#[test]
fn volumes() {
    assert_eq!(reason(&buy(0.1)), "OK");
    assert_eq!(reason(&buy(0.01)), "OK");
    assert_eq!(reason(&buy(100.0)), "OK");
    assert_eq!(
        reason(&buy(0.29)),
        "OK",
        "0.29 / 0.01 is not exact in binary"
    );
    for bad in [
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        0.0,
        -0.1,
        f64::MIN_POSITIVE / 2.0,
    ] {
        let r = reason(&buy(bad));
        assert!(r.starts_with("VOLUME_"), "{bad}: {r}");
    }
    assert_eq!(reason(&buy(0.009)), "VOLUME_BELOW_MIN");
    assert_eq!(reason(&buy(100.01)), "VOLUME_ABOVE_MAX");
    assert_eq!(reason(&buy(0.015)), "VOLUME_OFF_STEP");
}

#[test]
fn fields_are_named() {
    let mut o = buy(0.1);
    o.side = 0;
    let e = check_order(&o, Some(&eurusd()), Some(&tick()), 0).expect_err("side");
    assert_eq!((e.field, e.code), ("side", Code::InvalidArgument));
    let e = check_order(&buy(0.1), None, None, 0).expect_err("symbol");
    assert_eq!((e.field, e.reason), ("symbol", "SYMBOL_UNKNOWN"));
    let e = check_order(&buy(0.1), Some(&eurusd()), None, 0).expect_err("no price");
    assert_eq!(e.code, Code::FailedPrecondition);
    let mut o = buy(0.1);
    o.order_type = OrderType::Limit as i32;
    assert_eq!(reason(&o), "PRICE_REQUIRED");
    o.time_in_force = TimeInForce::Specified as i32;
    o.price = 1.08;
    assert_eq!(reason(&o), "EXPIRATION_INVALID");
    o.expiration_msc = 1;
    assert_eq!(reason(&o), "OK");
}

#[test]
fn pending_prices_rest_on_their_side_of_the_market() {
    let pending = |order_type: OrderType, side: Side, price: f64, stop_limit: f64| {
        let mut o = buy(0.1);
        o.order_type = order_type as i32;
        o.side = side as i32;
        o.price = price;
        o.stop_limit_price = stop_limit;
        reason(&o)
    };
    // bid 1.08500, ask 1.08510
    assert_eq!(pending(OrderType::Limit, Side::Buy, 1.0840, 0.0), "OK");
    assert_eq!(
        pending(OrderType::Limit, Side::Buy, 1.0860, 0.0),
        "PRICE_WRONG_SIDE"
    );
    assert_eq!(pending(OrderType::Limit, Side::Sell, 1.0860, 0.0), "OK");
    assert_eq!(pending(OrderType::Stop, Side::Buy, 1.0860, 0.0), "OK");
    assert_eq!(
        pending(OrderType::Stop, Side::Sell, 1.0860, 0.0),
        "PRICE_WRONG_SIDE"
    );
    assert_eq!(
        pending(OrderType::StopLimit, Side::Buy, 1.0870, 1.0865),
        "OK"
    );
    assert_eq!(
        pending(OrderType::StopLimit, Side::Buy, 1.0870, 1.0875),
        "STOP_LIMIT_PRICE_WRONG_SIDE"
    );
    assert_eq!(
        pending(OrderType::StopLimit, Side::Sell, 1.0840, 0.0),
        "PRICE_REQUIRED"
    );
    let mut o = buy(0.1);
    o.order_type = OrderType::Limit as i32;
    o.price = 1.0800;
    o.stop_loss = 1.0820; // above the entry of a buy
    assert_eq!(reason(&o), "STOP_LOSS_WRONG_SIDE");
}

#[test]
fn unknown_time_in_force_and_fields_of_other_types_are_refused() {
    for tif in [99, -1, 4] {
        let mut o = buy(0.1);
        o.time_in_force = tif;
        assert_eq!(reason(&o), "TIME_IN_FORCE_INVALID", "{tif}");
    }
    let mut o = buy(0.1);
    o.stop_limit_price = 1.0850;
    let e = check_order(&o, Some(&eurusd()), Some(&tick()), 0).expect_err("market");
    assert_eq!(
        (e.field, e.reason),
        ("stop_limit_price", "FIELD_NOT_APPLICABLE")
    );
    o.order_type = OrderType::Limit as i32;
    o.price = 1.0840;
    assert_eq!(reason(&o), "FIELD_NOT_APPLICABLE");
    let mut o = buy(0.1);
    o.time_in_force = TimeInForce::Day as i32;
    assert_eq!(reason(&o), "FIELD_NOT_APPLICABLE");
    o.time_in_force = TimeInForce::Gtc as i32;
    assert_eq!(reason(&o), "OK");
    o.order_type = OrderType::Limit as i32;
    o.price = 1.0840;
    o.time_in_force = TimeInForce::Day as i32;
    assert_eq!(reason(&o), "OK");
}

#[test]
fn messages_quote_input_short() {
    let mut o = buy(1e308);
    let e = check_order(&o, Some(&eurusd()), Some(&tick()), 0).expect_err("volume");
    assert!(e.message.contains("1e308"), "{}", e.message);
    o.volume = 0.1;
    o.symbol = "X".repeat(100_000);
    let e = check_order(&o, None, None, 0).expect_err("symbol");
    assert!(e.message.len() < 200, "{}", e.message);
}

#[test]
fn same_payload_same_hash() {
    let a = buy(0.1);
    let mut b = buy(0.1);
    assert_eq!(a.payload_hash(), b.payload_hash());
    b.volume = 0.2;
    assert_ne!(a.payload_hash(), b.payload_hash());
}

#[test]
fn stops_must_sit_on_the_right_side() {
    let mut o = buy(0.1);
    o.stop_loss = 1.0860;
    assert_eq!(reason(&o), "STOP_LOSS_WRONG_SIDE");
    o.stop_loss = 1.0800;
    o.take_profit = 1.0800;
    assert_eq!(reason(&o), "TAKE_PROFIT_WRONG_SIDE");
    o.take_profit = 1.0900;
    assert_eq!(reason(&o), "OK");
    o.side = Side::Sell as i32;
    assert_eq!(reason(&o), "STOP_LOSS_WRONG_SIDE");
    o.stop_loss = f64::NAN;
    assert_eq!(reason(&o), "PRICE_INVALID");
}
