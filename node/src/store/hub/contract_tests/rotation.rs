//! The hub's part of a key rotation: a new signal finds with its older keys what other regions
//! still hold under them, and a signal its region re-keyed keeps its party's told pairs.

use super::*;

/// `signal` with its youth's and parents' keys under version 2, as a region re-keyed it.
fn under_v2(mut signal: HubSignal, youth: u8, parents: &[u8]) -> HubSignal {
    let v2 = KeyVersion::new(2).unwrap();
    signal.subject_key = SubjectKey::new(v2, [youth; 32]);
    signal.family_keys = parents
        .iter()
        .map(|p| FamilyKey::new(v2, [*p; 32]))
        .collect();
    signal
}

/// A new signal's version-1 keys, to find with.
fn previous(youth: u8, parents: &[u8]) -> crate::domain::matching::PreviousKeys {
    let v1 = KeyVersion::new(1).unwrap();
    crate::domain::matching::PreviousKeys {
        subject: vec![SubjectKey::new(v1, [youth; 32])],
        family: parents
            .iter()
            .map(|p| FamilyKey::new(v1, [*p; 32]))
            .collect(),
    }
}

pub(super) async fn during_a_key_rotation_old_keys_find_and_rekeyed_signals_keep_their_told_pairs(
    store: &impl Subject,
) {
    let (north, south) = (region("north"), region("south"));
    let active = SignalState::Active;
    let (a, b, c, d) = (
        SignalId::generate(),
        SignalId::generate(),
        SignalId::generate(),
        SignalId::generate(),
    );
    // Version 1: a (north) on youth 1, b (south) on its sibling 2; one family.
    let a_v1 = signal("a", 1, &[9], active);
    store
        .submit(&north, vec![upsert(a, 1, a_v1.clone())], now())
        .await
        .unwrap();
    let outcome = store
        .submit(
            &south,
            vec![upsert(b, 1, signal("b", 2, &[9], active))],
            now(),
        )
        .await
        .unwrap();
    assert_eq!(outcome.notices, 2);

    // c (south) on youth 1 under version 2 finds a (youth) through its version-1 keys; b is
    // south's own, left to the node.
    let c_v2 = under_v2(signal("c", 1, &[9], active), 1, &[9]);
    let without = store
        .submit(&south, vec![upsert(c, 1, c_v2.clone())], now())
        .await
        .unwrap();
    assert_eq!(without.notices, 0, "versions never match by themselves");
    let c2 = SignalId::generate();
    let with = store
        .submit(
            &south,
            vec![SignalEvent {
                previous_keys: previous(1, &[9]),
                ..upsert(c2, 1, under_v2(signal("c2", 1, &[9], active), 1, &[9]))
            }],
            now(),
        )
        .await
        .unwrap();
    assert_eq!(with.notices, 2, "c2 and a, each told once");

    // North re-keys a (revision 2) and, in the same batch, a registers anew on the youth (d,
    // with its version-1 keys): a was told about b and c2 already, under version 1, and the
    // hub moved those pairs with a's keys, so nobody is told again.
    let outcome = store
        .submit(
            &north,
            vec![
                upsert(a, 2, under_v2(a_v1.clone(), 1, &[9])),
                SignalEvent {
                    previous_keys: previous(1, &[9]),
                    ..upsert(d, 1, under_v2(signal("a", 1, &[9], active), 1, &[9]))
                },
            ],
            now(),
        )
        .await
        .unwrap();
    assert_eq!(
        outcome,
        BatchOutcome {
            applied: 2,
            ignored: 0,
            notices: 2,
        },
        "only c, never told about a before, and a: d is a's party"
    );
    let to_north = notices_after(store, &north, 0).await;
    let about: Vec<_> = to_north
        .iter()
        .map(|notice| notice.counterpart.organisation_id.to_string())
        .collect();
    assert_eq!(about, ["b", "c2", "c"], "{to_north:#?}");
    // Left under version 1: b's subject key and family key. Under version 2: a, c, c2, d.
    assert_eq!(store.key_versions().await.unwrap(), [(1, 2), (2, 8)]);
}
