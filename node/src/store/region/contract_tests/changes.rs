//! Withdrawal, deletion with the standing signal, updates and corrections.

use super::*;
use crate::domain::LiveKeys;

pub(super) async fn an_unjustified_withdrawal_deletes_and_the_counterparts_notice_goes(
    store: &impl Subject,
) {
    let (a, _) = created(store, new_signal("gp", 1, &[7])).await;
    let (b, _) = created(store, registered_at(new_signal("school", 1, &[7]), 1)).await;

    let error = store
        .withdraw(
            &acting("school"),
            a.signal_id,
            WithdrawReason::Unjustified,
            at(2),
        )
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::NotOwner), "{error:?}");
    let error = store
        .withdraw(
            &acting("gp"),
            SignalId::generate(),
            WithdrawReason::Unjustified,
            at(2),
        )
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::NotFound), "{error:?}");
    assert_eq!(store.signal(a.signal_id).await.unwrap(), Some(a.clone()));
    assert_eq!(store.row_counts().await, counts(2, 2, 2, 2, 2));

    assert_eq!(
        store
            .withdraw(
                &acting("gp"),
                a.signal_id,
                WithdrawReason::Unjustified,
                at(3)
            )
            .await
            .unwrap(),
        Withdrawn::Deleted
    );
    assert_eq!(store.signal(a.signal_id).await.unwrap(), None);
    assert!(matches_of(store, "school").await.is_empty());
    assert!(matches_of(store, "gp").await.is_empty());
    // Nothing of the signal is left but its delete event, which replaces the events that carried
    // its contact (invariant 6).
    assert_eq!(store.row_counts().await, counts(1, 1, 0, 0, 2));
    assert_eq!(
        events_of(store, a.signal_id).await,
        [deleted_event(a.signal_id, 2)]
    );
    let batch = store.outbox_batch(10).await.unwrap();
    assert_eq!(
        batch.last().and_then(|entry| entry.event.clone()),
        Some(deleted_event(a.signal_id, 2))
    );
    // Withdrawn again: it is gone.
    let error = store
        .withdraw(
            &acting("gp"),
            a.signal_id,
            WithdrawReason::Unjustified,
            at(4),
        )
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::NotFound), "{error:?}");

    // Worked example 6: C then registers: C and B are told about each other, nothing about A.
    let (c, notices) = created(store, registered_at(new_signal("care", 1, &[]), 5)).await;
    assert_eq!(notices, 2);
    let to_c = matches_of(store, "care").await;
    assert_eq!(to_c.len(), 1);
    assert_eq!(
        to_c,
        [local_view(
            &to_c[0].notice_id,
            &c,
            &b,
            MatchType::Youth,
            NoticeKind::Match,
            at(5)
        )]
    );

    // The GP had no signal left on the youth: its party was gone, so a new GP signal is a new
    // party, told anew about both and both about it.
    let (_, notices) = created(store, registered_at(new_signal("gp", 1, &[7]), 6)).await;
    assert_eq!(notices, 4);
    assert_eq!(matches_of(store, "gp").await.len(), 2);
    assert_eq!(matches_of(store, "school").await.len(), 2);
}

pub(super) async fn withdrawal_when_the_risk_is_gone_archives(store: &impl Subject) {
    let (a, _) = created(store, new_signal("gp", 1, &[])).await;
    let withdrawn = store
        .withdraw(&acting("gp"), a.signal_id, WithdrawReason::RiskGone, at(60))
        .await
        .unwrap();
    let archived = StoredSignal {
        revision: Revision::new(2).unwrap(),
        state: SignalState::Inactive,
        inactive_since: Some(TODAY),
        ..a.clone()
    };
    assert_eq!(withdrawn, Withdrawn::Archived(Box::new(archived.clone())));
    assert_eq!(
        store.signal(a.signal_id).await.unwrap(),
        Some(archived.clone())
    );
    assert_eq!(
        events_of(store, a.signal_id).await,
        [OutboxEvent::upsert(&a), OutboxEvent::upsert(&archived)]
    );

    // Inactive never turns active again, and a professional changes only active signals.
    let update = SignalUpdate {
        contact: Some(contact("gp", "p2")),
        ..SignalUpdate::default()
    };
    let error = store
        .update(&acting("gp"), a.signal_id, update, at(61))
        .await
        .unwrap_err();
    assert!(
        matches!(error, StoreError::Lifecycle(LifecycleError::NotActive)),
        "{error:?}"
    );
    let error = store
        .withdraw(&acting("gp"), a.signal_id, WithdrawReason::RiskGone, at(62))
        .await
        .unwrap_err();
    assert!(
        matches!(error, StoreError::Lifecycle(LifecycleError::NotActive)),
        "{error:?}"
    );
    assert_eq!(
        store.signal(a.signal_id).await.unwrap(),
        Some(archived.clone())
    );
    assert_eq!(events_of(store, a.signal_id).await.len(), 2);

    // Worked example 5: a new party gets a history notice about the archive; its owner none.
    let (b, notices) = created(store, registered_at(new_signal("school", 1, &[]), 90)).await;
    assert_eq!(notices, 1);
    let to_b = matches_of(store, "school").await;
    assert_eq!(to_b.len(), 1);
    assert_eq!(
        to_b,
        [local_view(
            &to_b[0].notice_id,
            &b,
            &archived,
            MatchType::Youth,
            NoticeKind::History,
            at(90)
        )]
    );
    assert!(matches_of(store, "gp").await.is_empty());

    // An archived signal withdrawn as unjustified is deleted, and the history notice with it.
    assert_eq!(
        store
            .withdraw(
                &acting("gp"),
                a.signal_id,
                WithdrawReason::Unjustified,
                at(91)
            )
            .await
            .unwrap(),
        Withdrawn::Deleted
    );
    assert!(matches_of(store, "school").await.is_empty());
}

pub(super) async fn deleting_one_of_a_partys_signals_moves_its_notices_to_the_standing_signal(
    store: &impl Subject,
) {
    // The GP and the school are told about each other through S1 and S2; the GP archives S1
    // and registers S3 (a re-registration: nobody is told).
    let (s1, _) = created(store, new_signal("gp", 1, &[])).await;
    let (s2, notices) = created(store, registered_at(new_signal("school", 1, &[]), 1)).await;
    assert_eq!(notices, 2);
    store
        .withdraw(&acting("gp"), s1.signal_id, WithdrawReason::RiskGone, at(2))
        .await
        .unwrap();
    let (s3, notices) = created(store, registered_at(new_signal("gp", 1, &[]), 3)).await;
    assert_eq!(notices, 0);
    let to_gp = matches_of(store, "gp").await;
    let to_school = matches_of(store, "school").await;
    assert_eq!((to_gp.len(), to_school.len()), (1, 1));
    assert_eq!(to_gp[0].signal_id, s1.signal_id);
    assert_eq!(to_school[0].counterpart.signal_id, s1.signal_id);
    let before = store.row_counts().await;
    assert_eq!((before["notices"], before["email_jobs"]), (2, 2));

    // S1 was wrongly made. The GP's party goes on through S3, which now stands for it: both
    // notices move to S3, same notice ids, no new e-mail (invariant 2).
    assert_eq!(
        store
            .withdraw(
                &acting("gp"),
                s1.signal_id,
                WithdrawReason::Unjustified,
                at(4)
            )
            .await
            .unwrap(),
        Withdrawn::Deleted
    );
    assert_eq!(
        matches_of(store, "gp").await,
        [MatchView {
            signal_id: s3.signal_id,
            ..to_gp[0].clone()
        }]
    );
    assert_eq!(
        matches_of(store, "school").await,
        [MatchView {
            counterpart: counterpart(&s3),
            ..to_school[0].clone()
        }]
    );
    let after = store.row_counts().await;
    assert_eq!((after["notices"], after["email_jobs"]), (2, 2));
    // The pair still exists: a new school request stands on its active signal, and nobody is
    // told again when the GP's S3 is archived and the GP registers once more.
    store
        .withdraw(&acting("gp"), s3.signal_id, WithdrawReason::RiskGone, at(5))
        .await
        .unwrap();
    let (_, notices) = created(store, registered_at(new_signal("gp", 1, &[]), 6)).await;
    assert_eq!(notices, 0);
    assert_eq!(
        store
            .register(registered_at(new_signal("school", 1, &[]), 7))
            .await
            .unwrap(),
        Registered::AlreadyActive(s2)
    );
}

pub(super) async fn update_changes_contact_and_an_earlier_removal_date_only(store: &impl Subject) {
    let (a, _) = created(store, new_signal("gp", 1, &[])).await;
    let (_, _) = created(store, registered_at(new_signal("school", 1, &[]), 1)).await;

    let refused = [
        (
            SignalUpdate {
                planned_removal_date: Some(date(2028, 11, 26)),
                ..SignalUpdate::default()
            },
            "a later R",
        ),
        (
            SignalUpdate {
                planned_removal_date: Some(TODAY),
                ..SignalUpdate::default()
            },
            "R today",
        ),
        (
            SignalUpdate {
                informing: Some(InformingRecord::Informed {
                    parents: true,
                    youth: false,
                    informed_on: TODAY,
                }),
                ..SignalUpdate::default()
            },
            "the youth of 14 not informed",
        ),
    ];
    let mut errors = Vec::new();
    for (update, what) in refused {
        let error = store
            .update(&acting("gp"), a.signal_id, update, at(2))
            .await
            .unwrap_err();
        errors.push((what, error));
    }
    assert!(
        matches!(
            errors[0].1,
            StoreError::RemovalDate(RemovalDateError::Later)
        ),
        "{errors:?}"
    );
    assert!(
        matches!(
            errors[1].1,
            StoreError::RemovalDate(RemovalDateError::NotAfterToday)
        ),
        "{errors:?}"
    );
    assert!(
        matches!(
            errors[2].1,
            StoreError::Informing(InformingError::WrongAudience { age: 14, .. })
        ),
        "{errors:?}"
    );
    let error = store
        .update(
            &acting("school"),
            a.signal_id,
            SignalUpdate {
                contact: Some(contact("school", "p1")),
                ..SignalUpdate::default()
            },
            at(2),
        )
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::NotOwner), "{error:?}");
    assert_eq!(store.signal(a.signal_id).await.unwrap(), Some(a.clone()));
    assert_eq!(events_of(store, a.signal_id).await.len(), 1);

    // The contact, then R earlier: a revision and an event each.
    let new_contact = contact("gp", "p2");
    let updated = store
        .update(
            &acting("gp"),
            a.signal_id,
            SignalUpdate {
                contact: Some(new_contact.clone()),
                ..SignalUpdate::default()
            },
            at(3),
        )
        .await
        .unwrap();
    assert_eq!(
        updated,
        StoredSignal {
            revision: Revision::new(2).unwrap(),
            contact: new_contact.clone(),
            ..a.clone()
        }
    );
    let moved = store
        .update(
            &acting("gp"),
            a.signal_id,
            SignalUpdate {
                planned_removal_date: Some(date(2027, 6, 1)),
                ..SignalUpdate::default()
            },
            at(4),
        )
        .await
        .unwrap();
    assert_eq!(
        moved,
        StoredSignal {
            revision: Revision::new(3).unwrap(),
            planned_removal_date: date(2027, 6, 1),
            ..updated.clone()
        }
    );
    assert_eq!(
        store.signal(a.signal_id).await.unwrap(),
        Some(moved.clone())
    );
    assert_eq!(
        events_of(store, a.signal_id).await,
        [
            OutboxEvent::upsert(&a),
            OutboxEvent::upsert(&updated),
            OutboxEvent::upsert(&moved)
        ]
    );
    // An update matches no one, and the school sees the GP's contact as it stands now.
    let to_school = matches_of(store, "school").await;
    assert_eq!(to_school.len(), 1);
    assert_eq!(to_school[0].counterpart, counterpart(&moved));
    assert_eq!(store.row_counts().await["notices"], 2);
}

pub(super) async fn correction_of_another_youths_signal_is_not_found(store: &impl Subject) {
    let mut first = new_signal("gp", 1, &[]);
    first.planned_removal_date = date(2027, 6, 1);
    let (s1, _) = created(store, first).await;
    let (s2, _) = created(store, registered_at(new_signal("school", 2, &[]), 1)).await;
    let correction = || SignalUpdate {
        contact: Some(contact("gp", "p3")),
        planned_removal_date: Some(date(2028, 6, 1)),
        informing: None,
    };

    // s1 is not youth 2's signal; a signal that does not exist looks the same.
    for (subject, signal_id) in [(youth(2), s1.signal_id), (youth(1), SignalId::generate())] {
        let error = store
            .correct(
                &LiveKeys::one(subject),
                signal_id,
                correction(),
                &officer(),
                "ref-2026-1",
                at(2),
            )
            .await
            .unwrap_err();
        assert!(matches!(error, StoreError::NotFound), "{error:?}");
    }
    assert_eq!(store.signal(s1.signal_id).await.unwrap(), Some(s1.clone()));

    // A correction may move R later than the professional set it, but within the cap.
    let error = store
        .correct(
            &LiveKeys::one(youth(1)),
            s1.signal_id,
            SignalUpdate {
                planned_removal_date: Some(date(2028, 11, 26)),
                ..SignalUpdate::default()
            },
            &officer(),
            "ref-2026-1",
            at(2),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            StoreError::RemovalDate(RemovalDateError::BeyondTwoYears)
        ),
        "{error:?}"
    );
    let corrected = store
        .correct(
            &LiveKeys::one(youth(1)),
            s1.signal_id,
            correction(),
            &officer(),
            "ref-2026-1",
            at(3),
        )
        .await
        .unwrap();
    assert_eq!(
        corrected,
        StoredSignal {
            revision: Revision::new(2).unwrap(),
            contact: contact("gp", "p3"),
            planned_removal_date: date(2028, 6, 1),
            ..s1.clone()
        }
    );
    assert_eq!(
        store.signal(s1.signal_id).await.unwrap(),
        Some(corrected.clone())
    );
    assert_eq!(
        events_of(store, s1.signal_id).await,
        [OutboxEvent::upsert(&s1), OutboxEvent::upsert(&corrected)]
    );

    // An archived signal's contact can be corrected; its R is history.
    let Withdrawn::Archived(archived) = store
        .withdraw(
            &acting("school"),
            s2.signal_id,
            WithdrawReason::RiskGone,
            at(4),
        )
        .await
        .unwrap()
    else {
        panic!("archived expected");
    };
    let recontacted = store
        .correct(
            &LiveKeys::one(youth(2)),
            s2.signal_id,
            SignalUpdate {
                contact: Some(contact("school", "p4")),
                ..SignalUpdate::default()
            },
            &officer(),
            "ref-2026-2",
            at(5),
        )
        .await
        .unwrap();
    assert_eq!(
        recontacted,
        StoredSignal {
            revision: Revision::new(3).unwrap(),
            contact: contact("school", "p4"),
            ..*archived
        }
    );
    let error = store
        .correct(
            &LiveKeys::one(youth(2)),
            s2.signal_id,
            SignalUpdate {
                planned_removal_date: Some(date(2028, 6, 1)),
                ..SignalUpdate::default()
            },
            &officer(),
            "ref-2026-2",
            at(6),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(error, StoreError::Lifecycle(LifecycleError::NotActive)),
        "{error:?}"
    );
    assert_eq!(store.signal(s2.signal_id).await.unwrap(), Some(recontacted));
}
