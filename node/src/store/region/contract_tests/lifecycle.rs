//! Erasure orders, deaths and the lifecycle sweep.

use super::*;
use crate::domain::LiveKeys;

pub(super) async fn an_erasure_order_deletes_the_named_signals_or_none(store: &impl Subject) {
    let (s1, _) = created(store, new_signal("gp", 1, &[])).await;
    let (s2, _) = created(store, registered_at(new_signal("school", 1, &[]), 1)).await;
    let (s3, _) = created(store, registered_at(new_signal("care", 2, &[]), 2)).await;
    let before = store.row_counts().await;
    assert_eq!(before, counts(3, 0, 2, 2, 3));

    // Every named signal must be the youth's, or nothing is erased.
    for only in [vec![s3.signal_id], vec![s1.signal_id, s3.signal_id]] {
        let error = store
            .erase(
                &LiveKeys::one(youth(1)),
                &only,
                &officer(),
                "order-1",
                at(3),
            )
            .await
            .unwrap_err();
        assert!(matches!(error, StoreError::NotFound), "{error:?}");
        assert_eq!(store.row_counts().await, before);
    }

    assert_eq!(
        store
            .erase(
                &LiveKeys::one(youth(1)),
                &[s1.signal_id],
                &officer(),
                "order-2",
                at(4)
            )
            .await
            .unwrap(),
        [s1.signal_id]
    );
    assert_eq!(store.signal(s1.signal_id).await.unwrap(), None);
    assert!(matches_of(store, "school").await.is_empty());
    assert_eq!(store.row_counts().await, counts(2, 0, 0, 0, 3));
    assert_eq!(
        events_of(store, s1.signal_id).await,
        [deleted_event(s1.signal_id, 2)]
    );

    // No signal named: all of the youth's.
    assert_eq!(
        store
            .erase(&LiveKeys::one(youth(1)), &[], &officer(), "order-3", at(5))
            .await
            .unwrap(),
        [s2.signal_id]
    );
    assert_eq!(
        events_of(store, s2.signal_id).await,
        [deleted_event(s2.signal_id, 2)]
    );
    let page = SignalPage {
        after: None,
        limit: 10,
    };
    assert!(
        store
            .signals_of_subject(&LiveKeys::one(youth(1)), page)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.signal(s3.signal_id).await.unwrap(), Some(s3));
    assert_eq!(
        store
            .erase(&LiveKeys::one(youth(1)), &[], &officer(), "order-4", at(6))
            .await
            .unwrap(),
        Vec::<SignalId>::new()
    );
}

pub(super) async fn a_death_deletes_every_signal_and_refuses_new_ones(store: &impl Subject) {
    let first = new_signal("gp", 1, &[7]);
    let (s1, _) = created(store, first.clone()).await;
    let (s2, _) = created(store, registered_at(new_signal("school", 1, &[7]), 1)).await;
    store
        .withdraw(&acting("gp"), s1.signal_id, WithdrawReason::RiskGone, at(2))
        .await
        .unwrap();
    // A sibling's party: a history notice about the GP's archive, a match with the school.
    let (s3, notices) = created(store, registered_at(new_signal("care", 2, &[7]), 3)).await;
    assert_eq!(notices, 3);

    assert_eq!(
        store
            .record_death(&LiveKeys::one(youth(1)), at(4))
            .await
            .unwrap(),
        2
    );
    assert_eq!(store.signal(s1.signal_id).await.unwrap(), None);
    assert_eq!(store.signal(s2.signal_id).await.unwrap(), None);
    assert!(matches_of(store, "care").await.is_empty());
    assert_eq!(store.row_counts().await, counts(1, 1, 0, 0, 3));
    assert_eq!(
        events_of(store, s1.signal_id).await,
        [deleted_event(s1.signal_id, 3)]
    );
    assert_eq!(
        events_of(store, s2.signal_id).await,
        [deleted_event(s2.signal_id, 2)]
    );

    // No new signal on the youth, and no replay brings one back.
    let before = store.row_counts().await;
    for new in [registered_at(new_signal("youthcare", 1, &[7]), 5), first] {
        let error = store.register(new).await.unwrap_err();
        assert!(matches!(error, StoreError::Deceased), "{error:?}");
    }
    assert_eq!(store.row_counts().await, before);
    assert_eq!(
        store
            .record_death(&LiveKeys::one(youth(1)), at(6))
            .await
            .unwrap(),
        0
    );
    assert_eq!(store.signal(s3.signal_id).await.unwrap(), Some(s3));
}

pub(super) async fn the_sweep_expires_purges_and_ends_at_23(store: &impl Subject) {
    let mut first = new_signal("gp", 1, &[]);
    first.planned_removal_date = date(2027, 6, 1);
    let (s1, _) = created(store, first).await;
    let (s2, _) = created(store, registered_at(new_signal("school", 2, &[]), 1)).await;
    // Two youths of 22 who turn 23 on 10 March 2027.
    let born = date(2004, 3, 10);
    let (s3, _) = created(
        store,
        born_on(registered_at(new_signal("care", 3, &[]), 2), born),
    )
    .await;
    let (s4, _) = created(
        store,
        born_on(registered_at(new_signal("care", 4, &[]), 3), born),
    )
    .await;
    let nothing = SweepReport::default();
    let expired = |n| SweepReport {
        expired: n,
        deleted: 0,
    };
    let deleted = |n| SweepReport {
        expired: 0,
        deleted: n,
    };

    assert_eq!(store.sweep(TODAY, 100).await.unwrap(), nothing);
    assert_eq!(store.sweep(date(2027, 3, 9), 100).await.unwrap(), nothing);
    // The 23rd birthday, two due, one per call.
    assert_eq!(store.sweep(date(2027, 3, 10), 1).await.unwrap(), deleted(1));
    assert_eq!(signals_on(store, &[3, 4]).await, 1);
    assert_eq!(store.sweep(date(2027, 3, 10), 1).await.unwrap(), deleted(1));
    assert_eq!(store.sweep(date(2027, 3, 10), 1).await.unwrap(), nothing);
    assert_eq!(store.signal(s3.signal_id).await.unwrap(), None);
    assert_eq!(store.signal(s4.signal_id).await.unwrap(), None);

    // R: inactive since R, from 00:00 on R.
    assert_eq!(store.sweep(date(2027, 5, 31), 100).await.unwrap(), nothing);
    assert_eq!(
        store.sweep(date(2027, 6, 1), 100).await.unwrap(),
        expired(1)
    );
    let archived = StoredSignal {
        revision: Revision::new(2).unwrap(),
        state: SignalState::Inactive,
        inactive_since: Some(date(2027, 6, 1)),
        ..s1.clone()
    };
    assert_eq!(
        store.signal(s1.signal_id).await.unwrap(),
        Some(archived.clone())
    );
    assert_eq!(
        events_of(store, s1.signal_id).await.last(),
        Some(&OutboxEvent::upsert(&archived))
    );
    assert_eq!(store.sweep(date(2027, 6, 1), 100).await.unwrap(), nothing);

    // Changes of different kinds due on one day share the limit: two youths turn 23 on 10
    // March 2028 and a signal's R is that day; at most two changes per call.
    let born = date(2005, 3, 10);
    for (org, n, minutes) in [("care", 5, 4), ("care", 6, 5)] {
        created(
            store,
            born_on(registered_at(new_signal(org, n, &[]), minutes), born),
        )
        .await;
    }
    let mut ending = registered_at(new_signal("district", 7, &[]), 6);
    ending.planned_removal_date = date(2028, 3, 10);
    let (s7, _) = created(store, ending).await;
    let mut total = SweepReport::default();
    for expected_changes in [2, 1, 0] {
        let report = store.sweep(date(2028, 3, 10), 2).await.unwrap();
        assert_eq!(
            report.expired + report.deleted,
            expected_changes,
            "{report:?}"
        );
        total.expired += report.expired;
        total.deleted += report.deleted;
    }
    assert_eq!(
        total,
        SweepReport {
            expired: 1,
            deleted: 2
        }
    );
    assert_eq!(signals_on(store, &[5, 6]).await, 0);
    assert_eq!(
        store
            .signal(s7.signal_id)
            .await
            .unwrap()
            .map(|s| s.inactive_since),
        Some(Some(date(2028, 3, 10)))
    );

    assert_eq!(
        store.sweep(date(2028, 11, 25), 100).await.unwrap(),
        expired(1)
    );
    assert_eq!(
        store
            .signal(s2.signal_id)
            .await
            .unwrap()
            .map(|s| s.inactive_since),
        Some(Some(R_MAX))
    );

    // Five years of archive.
    assert_eq!(store.sweep(date(2032, 5, 31), 100).await.unwrap(), nothing);
    assert_eq!(
        store.sweep(date(2032, 6, 1), 100).await.unwrap(),
        deleted(1)
    );
    assert_eq!(store.signal(s1.signal_id).await.unwrap(), None);
    assert_eq!(
        events_of(store, s1.signal_id).await,
        [deleted_event(s1.signal_id, 3)]
    );
    assert_eq!(
        store.sweep(date(2033, 3, 10), 100).await.unwrap(),
        deleted(1)
    );
    assert_eq!(
        store.sweep(date(2033, 11, 25), 100).await.unwrap(),
        deleted(1)
    );
    assert_eq!(store.row_counts().await["signals"], 0);
}

/// How many signals the store holds on the youths `youths`.
pub(super) async fn signals_on(store: &impl Subject, youths: &[u8]) -> usize {
    let mut count = 0;
    for n in youths {
        let page = SignalPage {
            after: None,
            limit: 100,
        };
        count += store
            .signals_of_subject(&LiveKeys::one(youth(*n)), page)
            .await
            .unwrap()
            .len();
    }
    count
}
