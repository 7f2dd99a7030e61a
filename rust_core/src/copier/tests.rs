//! The relation table: ids scoped to their owner, and which orders are the copier's own.

use super::*;

fn relation(owner: &str, id: &str, follower: &str, seconds: i64) -> v1::CopyRelation {
    v1::CopyRelation {
        relation_id: id.into(),
        owner: owner.into(),
        master_instance_id: format!("{follower}-master"),
        follower_instance_id: follower.into(),
        created_time: Some(prost_types::Timestamp { seconds, nanos: 0 }),
        ..Default::default()
    }
}

#[test]
fn relation_ids_are_their_owners_own() {
    let copier = Copier::default();
    copier
        .add(relation("ann", "r1", "af", 100), Defaults::default())
        .expect("ann's");
    copier
        .add(relation("bob", "r1", "bf", 100), Defaults::default())
        .expect("bob's, under the same id");
    let again = copier
        .add(relation("bob", "r1", "bf", 101), Defaults::default())
        .expect_err("bob's own id again");
    assert_eq!(again.code, crate::error::Code::AlreadyExists);
    assert_eq!(
        copier
            .get("ann", "r1")
            .map(|r| r.spec.follower_instance_id.clone()),
        Some("af".to_owned())
    );
    assert!(copier.get("eve", "r1").is_none());
    assert!(copier.remove("bob", "r1").is_some());
    assert!(copier.get("ann", "r1").is_some());
    assert!(copier.get("bob", "r1").is_none());
}

#[test]
fn only_a_relations_own_copies_are_copies() {
    let copier = Copier::default();
    let r = copier
        .add(relation("ann", "r1", "af", 100), Defaults::default())
        .expect("added");
    let own = spec::copy_id(&r.prefix, 7, 9, "o");
    assert!(copier.made_copy("af", "ann", &own));
    assert!(copier.made_copy("af", "ann", &spec::signal_copy_id(&r.prefix, "s1")));
    // The same shape: another incarnation, another follower, another owner, no relation.
    assert!(!copier.made_copy("af", "ann", &spec::copy_id("r1.zz", 7, 9, "o")));
    assert!(!copier.made_copy("other", "ann", &own));
    assert!(!copier.made_copy("af", "bob", &own));
    assert!(!copier.made_copy("af", "ann", "zz.abc:1:2:o"));
    // Removed: its copies are still told apart (the last incarnation of the id).
    copier.remove("ann", "r1");
    assert!(copier.made_copy("af", "ann", &own));
}

#[test]
fn a_removed_relation_restored_owes_its_saved_closes_and_its_copies_are_its_own() {
    let copier = Copier::default();
    let r = copier.restore_removed(relation("ann", "r1", "af", 100), Defaults::default());
    r.restore(&state::Saved {
        owed: vec![(7, 0.02, 9, "c".to_owned())],
        refused_pending: vec![11],
        ..Default::default()
    });
    // Owing (until the links are rebuilt from the follower's journal): kept, and saved again.
    assert_eq!(copier.removed_owing().len(), 1);
    assert_eq!(copier.draining("af", "ann").len(), 1);
    // Follower af made again by another owner: not the relation's.
    assert!(copier.draining("af", "bob").is_empty());
    assert!(!copier.made_copy("af", "bob", &spec::copy_id(&r.prefix, 7, 9, "o")));
    assert_eq!(r.saved().owed, vec![(7, 0.02, 9, "c".to_owned())]);
    assert!(r.was_refused_pending(11));
    assert!(copier.made_copy("af", "ann", &spec::copy_id(&r.prefix, 7, 9, "o")));
    // Made again under the id: a later incarnation, its own copies.
    let again = copier
        .add(relation("ann", "r1", "af", 100), Defaults::default())
        .expect("made again");
    assert_ne!(again.prefix, r.prefix);
    // Rebuilt from a journal without the copy: nothing is owed any more, it is let go.
    r.links
        .lock()
        .rebuild(&r.prefix, &crate::orders::OrderBook::default());
    assert!(copier.removed_owing().is_empty());
    assert!(r.saved().owed.is_empty());
}

#[test]
fn a_deleted_followers_removed_relations_are_let_go() {
    let copier = Copier::default();
    let r = copier.restore_removed(relation("ann", "r1", "af", 100), Defaults::default());
    r.restore(&state::Saved {
        owed: vec![(7, 0.02, 9, "c".to_owned())],
        ..Default::default()
    });
    assert!(!copier.forget_follower("other"));
    assert!(copier.forget_follower("af"));
    assert!(copier.draining("af", "ann").is_empty());
    assert!(copier.removed_owing().is_empty());
}

#[test]
fn every_removed_incarnation_keeps_its_copies_on_its_own_follower() {
    let copier = Copier::default();
    let first = copier
        .add(relation("ann", "r1", "af", 100), Defaults::default())
        .expect("first");
    let first_copy = spec::copy_id(&first.prefix, 7, 9, "o");
    copier.remove("ann", "r1");
    // Made again under the id with another follower, then removed too.
    let second = copier
        .add(relation("ann", "r1", "bf", 100), Defaults::default())
        .expect("second");
    assert_ne!(second.prefix, first.prefix);
    let second_copy = spec::copy_id(&second.prefix, 7, 9, "o");
    // The first incarnation's id on the second follower is a user's own order there.
    assert!(!copier.made_copy("bf", "ann", &first_copy));
    assert!(copier.made_copy("bf", "ann", &second_copy));
    copier.remove("ann", "r1");
    // Both incarnations' copies are still told apart, each on its own follower only.
    assert!(copier.made_copy("af", "ann", &first_copy));
    assert!(copier.made_copy("bf", "ann", &second_copy));
    assert!(!copier.made_copy("bf", "ann", &first_copy));
    assert!(!copier.made_copy("af", "ann", &second_copy));
    // A third incarnation is later than every one removed.
    let third = copier
        .add(relation("ann", "r1", "af", 100), Defaults::default())
        .expect("third");
    assert!(third
        .spec
        .created_time
        .as_ref()
        .is_some_and(|t| t.seconds == 102));
    // The follower deleted: an instance made again under its id is another account.
    copier.forget_follower("af");
    assert!(!copier.made_copy("af", "ann", &first_copy));
    assert!(copier.made_copy("bf", "ann", &second_copy));
}

/// Links of master positions 7 (rebuilt from the follower's journal) and 8 (made live), 8 owing
/// 0.25 of its 0.75 already (binary fractions: exact).
fn two_links() -> links::Links {
    let mut links = links::Links::default();
    let link = |master_volume: f64, owed: f64, rebuilt: bool| links::Link {
        master_volume,
        owed,
        rebuilt,
        ..Default::default()
    };
    links.by_position.insert(7, link(0.5, 0.0, true));
    links.by_position.insert(8, link(0.75, 0.25, false));
    links
}

#[test]
fn a_sim_masters_first_report_without_a_position_closes_its_copies() {
    use recovery::{plan, report_proves_closes, Gone};
    assert!(report_proves_closes(v1::Backend::Sim));
    let links = two_links();
    // Its new worker reports neither: both closed, 8 for the rest of what it did not owe yet.
    let (closes, left) = plan(&links, Gone::All, Some(&[]), true, true);
    assert_eq!(closes, vec![(7, 0.5), (8, 0.5)]);
    assert!(left.is_empty());
    // The follower away: owed (nothing to add for one owed whole already).
    let (closes, _) = plan(&links, Gone::All, Some(&[7]), true, false);
    assert_eq!(closes, vec![(8, 0.5)]);
    // At the follower's ready: only the copies rebuilt from its journal, besides what is owed.
    let (closes, _) = plan(&links, Gone::Rebuilt, Some(&[7]), true, true);
    assert_eq!(closes, vec![(8, 0.0)]);
    let (closes, _) = plan(&links, Gone::Rebuilt, Some(&[]), true, true);
    assert_eq!(closes, vec![(7, 0.5), (8, 0.0)]);
    // Its worker has not reported yet: nothing is known gone.
    let (closes, left) = plan(&links, Gone::All, None, true, true);
    assert_eq!(closes, vec![(8, 0.0)]);
    assert!(left.is_empty());
}

#[test]
fn an_mt5_masters_first_report_without_a_position_closes_no_copy() {
    use recovery::{plan, report_proves_closes, Gone};
    // A terminal just logged in can report an empty or partial list before it has synced.
    assert!(!report_proves_closes(v1::Backend::Mt5));
    assert!(!report_proves_closes(v1::Backend::Unspecified));
    let links = two_links();
    let proves = report_proves_closes(v1::Backend::Mt5);
    for gone in [Gone::All, Gone::Rebuilt] {
        // Only the close owed by a master close the engine saw (a deal) is made.
        let (closes, left) = plan(&links, gone, Some(&[]), proves, true);
        assert_eq!(closes, vec![(8, 0.0)], "{gone:?}");
        let expected: Vec<u64> = if gone == Gone::All {
            vec![7, 8]
        } else {
            vec![7]
        };
        assert_eq!(left, expected, "{gone:?}: told left open");
    }
    // The follower away: nothing owed on it.
    let (closes, left) = plan(&links, Gone::All, Some(&[8]), proves, false);
    assert!(closes.is_empty());
    assert_eq!(left, vec![7]);
    // A position whose closing deal was seen while the follower was away (its close owed
    // whole): no copy left open, the close made when the follower is ready.
    let mut owed = links::Links::default();
    owed.by_position.insert(
        9,
        links::Link {
            master_volume: 0.5,
            owed: 0.5,
            ..Default::default()
        },
    );
    for ready in [false, true] {
        let (closes, left) = plan(&owed, Gone::All, Some(&[]), proves, ready);
        assert!(left.is_empty(), "ready {ready}");
        let expected = if ready { vec![(9, 0.0)] } else { vec![] };
        assert_eq!(closes, expected, "ready {ready}");
    }
}
