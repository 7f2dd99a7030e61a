//! Engine-level unit tests.

use super::*;
use crate::validate::OrderIntent;

#[test]
fn unknown_instances_are_not_found() {
    let engine = Engine::new(EngineConfig::default()).expect("engine");
    let e = engine
        .place_order("nope", OrderIntent::default())
        .expect_err("unknown");
    assert_eq!((e.code, e.reason), (Code::NotFound, "INSTANCE_NOT_FOUND"));
    assert!(engine.get_account("nope").is_err());
    let e = engine
        .subscribe(Topic::Ticks, vec!["nope".into()], vec![], false)
        .expect_err("unknown");
    assert_eq!(e.field, "instance_id");
    assert!(engine.list_instances().is_empty());
}
