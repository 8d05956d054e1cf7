//! The hub's notice log, coordination, dead letters and the audit chain.

use super::*;
use crate::domain::LiveKeys;

pub(super) async fn hub_notices_are_stored_once_and_retracted(store: &impl Subject) {
    let (a, _) = created(store, new_signal("gp", 1, &[])).await;
    assert_eq!(cursor(store).await, 0);
    let school = remote("school", SignalState::Active);
    let first = hub_notice(5, "hub-1", a.signal_id, "gp", school.clone());
    assert_eq!(
        store
            .store_hub_log(vec![notice_entry(first.clone())], at(1))
            .await
            .unwrap(),
        [HubLogApplied::Notice(NoticeDelivery::Stored {
            emailed: true
        })]
    );
    assert_eq!(cursor(store).await, 5);
    assert_eq!(
        matches_of(store, "gp").await,
        [MatchView {
            notice_id: "hub-1".to_owned(),
            match_type: MatchType::Youth,
            kind: NoticeKind::Match,
            signal_id: a.signal_id,
            found_at: at(-30),
            counterpart: school.clone(),
            coordination: CoordinationView::default(),
        }]
    );
    assert_eq!(store.row_counts().await, counts(1, 0, 1, 1, 1));

    // Sent again after a reconnect: stored once, e-mailed once.
    assert_eq!(
        store
            .store_hub_log(vec![notice_entry(first.clone())], at(2))
            .await
            .unwrap(),
        [HubLogApplied::Notice(NoticeDelivery::Duplicate)]
    );
    assert_eq!(store.row_counts().await, counts(1, 0, 1, 1, 1));

    // To a signal this node never had: dropped, but the cursor moves past it.
    let unknown = hub_notice(6, "hub-2", SignalId::generate(), "gp", school.clone());
    assert_eq!(
        store
            .store_hub_log(vec![notice_entry(unknown)], at(3))
            .await
            .unwrap(),
        [HubLogApplied::Notice(NoticeDelivery::Dropped)]
    );
    assert_eq!(cursor(store).await, 6);

    // A run of the log, applied in order: a notice naming the GP's signal for another
    // organisation, one to a signal deleted here, then the retraction of the first notice.
    let (b, _) = created(store, registered_at(new_signal("care", 2, &[]), 4)).await;
    store
        .withdraw(
            &acting("care"),
            b.signal_id,
            WithdrawReason::Unjustified,
            at(5),
        )
        .await
        .unwrap();
    let run = vec![
        notice_entry(hub_notice(7, "hub-3", a.signal_id, "care", school.clone())),
        notice_entry(hub_notice(8, "hub-4", b.signal_id, "care", school.clone())),
        LogEntry::Retraction {
            cursor: 9,
            notice_id: "hub-1".to_owned(),
        },
    ];
    assert_eq!(
        store.store_hub_log(run, at(6)).await.unwrap(),
        [
            HubLogApplied::Notice(NoticeDelivery::Dropped),
            HubLogApplied::Notice(NoticeDelivery::Dropped),
            HubLogApplied::Retraction { held: true },
        ]
    );
    assert_eq!(cursor(store).await, 9);
    assert!(matches_of(store, "gp").await.is_empty());
    assert!(matches_of(store, "care").await.is_empty());
    // The unsent e-mail job went with the notice.
    let after = store.row_counts().await;
    assert_eq!((after["notices"], after["email_jobs"]), (0, 0));
    assert_eq!(
        store
            .store_hub_log(
                vec![LogEntry::Retraction {
                    cursor: 10,
                    notice_id: "hub-1".to_owned(),
                }],
                at(7)
            )
            .await
            .unwrap(),
        [HubLogApplied::Retraction { held: false }]
    );
    assert_eq!(cursor(store).await, 10);

    // To an inactive signal: kept, and no e-mail (DOMAIN.md section 5, Delivery).
    let (c, _) = created(store, registered_at(new_signal("youthcare", 3, &[]), 8)).await;
    store
        .withdraw(
            &acting("youthcare"),
            c.signal_id,
            WithdrawReason::RiskGone,
            at(9),
        )
        .await
        .unwrap();
    let to_inactive = hub_notice(11, "hub-5", c.signal_id, "youthcare", school.clone());
    assert_eq!(
        store.store_hub_notice(to_inactive, at(10)).await.unwrap(),
        NoticeDelivery::Stored { emailed: false }
    );
    assert_eq!(matches_of(store, "youthcare").await.len(), 1);

    // Also when the signal's R is today and today's sweep has not reached it yet.
    let mut expiring = registered_at(new_signal("district", 4, &[]), 11);
    expiring.planned_removal_date = date(2026, 11, 26);
    let (d, _) = created(store, expiring).await;
    let to_expiring = hub_notice(12, "hub-6", d.signal_id, "district", school.clone());
    assert_eq!(
        store
            .store_hub_notice(to_expiring, noon(date(2026, 11, 26)))
            .await
            .unwrap(),
        NoticeDelivery::Stored { emailed: false }
    );
    assert_eq!(store.row_counts().await["email_jobs"], 0);
    assert_eq!(matches_of(store, "district").await.len(), 1);

    // The cursor never moves back.
    let late = hub_notice(3, "hub-7", SignalId::generate(), "gp", school);
    assert_eq!(
        store.store_hub_notice(late, at(12)).await.unwrap(),
        NoticeDelivery::Dropped
    );
    assert_eq!(cursor(store).await, 12);
}

pub(super) async fn coordination_on_a_local_match_and_a_cross_region_one(store: &impl Subject) {
    let coordination = |regievoerder, afgestemd_own, afgestemd_counterpart| CoordinationView {
        regievoerder,
        afgestemd_own,
        afgestemd_counterpart,
    };
    let (_, _) = created(store, new_signal("gp", 1, &[])).await;
    let (_, _) = created(store, registered_at(new_signal("school", 1, &[]), 1)).await;
    let to_gp = matches_of(store, "gp").await.remove(0);
    let to_school = matches_of(store, "school").await.remove(0);

    // A local match: one coordination state, seen from each side.
    let view = store
        .coordinate(
            &acting("gp"),
            &to_gp.notice_id,
            CoordinationAction::NameRegievoerder(Party::Own),
            at(2),
        )
        .await
        .unwrap();
    assert_eq!(
        view,
        MatchView {
            coordination: coordination(Some(Party::Own), false, false),
            ..to_gp.clone()
        }
    );
    assert_eq!(
        matches_of(store, "school").await[0].coordination,
        coordination(Some(Party::Counterpart), false, false)
    );
    // Another organisation's notice is answered as one that does not exist.
    for notice_id in [to_school.notice_id.as_str(), "no-such-notice"] {
        let error = store
            .coordinate(
                &acting("gp"),
                notice_id,
                CoordinationAction::MarkAfgestemd,
                at(3),
            )
            .await
            .unwrap_err();
        assert!(matches!(error, StoreError::NoSuchMatch), "{error:?}");
    }
    let view = store
        .coordinate(
            &acting("school"),
            &to_school.notice_id,
            CoordinationAction::MarkAfgestemd,
            at(4),
        )
        .await
        .unwrap();
    assert_eq!(
        view.coordination,
        coordination(Some(Party::Counterpart), true, false)
    );
    assert_eq!(
        matches_of(store, "gp").await[0].coordination,
        coordination(Some(Party::Own), false, true)
    );
    assert!(
        store
            .coordination_outbox_batch(10)
            .await
            .unwrap()
            .is_empty()
    );

    // A cross-region match: the change is queued for the hub.
    let (c, _) = created(store, registered_at(new_signal("care", 2, &[]), 5)).await;
    let vt = remote("vt", SignalState::Active);
    store
        .store_hub_log(
            vec![notice_entry(hub_notice(
                1,
                "hub-c",
                c.signal_id,
                "care",
                vt.clone(),
            ))],
            at(6),
        )
        .await
        .unwrap();
    let view = store
        .coordinate(
            &acting("care"),
            "hub-c",
            CoordinationAction::NameRegievoerder(Party::Counterpart),
            at(7),
        )
        .await
        .unwrap();
    assert_eq!(
        view.coordination,
        coordination(Some(Party::Counterpart), false, false)
    );
    let queued = store.coordination_outbox_batch(10).await.unwrap();
    assert_eq!(queued.len(), 1);
    let (seq, change) = &queued[0];
    assert_eq!(
        (
            change.by_signal,
            change.other_signal,
            change.at,
            change.kind
        ),
        (
            c.signal_id,
            vt.signal_id,
            at(7),
            ChangeKind::Regievoerder(vt.signal_id)
        )
    );
    store.coordination_outbox_remove(vec![*seq]).await.unwrap();
    assert!(
        store
            .coordination_outbox_batch(10)
            .await
            .unwrap()
            .is_empty()
    );

    // The other region's party marks afgestemd, then names the care worker: merged, the latest
    // naming wins.
    let theirs = |minutes, kind| CoordinationChange {
        change_id: uuid::Uuid::new_v4(),
        by_signal: vt.signal_id,
        other_signal: c.signal_id,
        at: at(minutes),
        kind,
    };
    assert_eq!(
        store
            .store_hub_log(
                vec![
                    LogEntry::Coordination {
                        cursor: 2,
                        change: theirs(8, ChangeKind::Afgestemd),
                    },
                    LogEntry::Coordination {
                        cursor: 3,
                        change: theirs(9, ChangeKind::Regievoerder(c.signal_id)),
                    },
                ],
                at(10)
            )
            .await
            .unwrap(),
        [
            HubLogApplied::Coordination { held: true },
            HubLogApplied::Coordination { held: true },
        ]
    );
    assert_eq!(
        matches_of(store, "care").await[0].coordination,
        coordination(Some(Party::Own), false, true)
    );
    // A change about a match this node does not hold changes nothing but the cursor.
    let stranger = CoordinationChange {
        by_signal: SignalId::generate(),
        ..theirs(11, ChangeKind::Afgestemd)
    };
    assert_eq!(
        store
            .store_hub_log(
                vec![LogEntry::Coordination {
                    cursor: 4,
                    change: stranger,
                }],
                at(11)
            )
            .await
            .unwrap(),
        [HubLogApplied::Coordination { held: false }]
    );
    assert_eq!(cursor(store).await, 4);
    assert_eq!(
        matches_of(store, "care").await[0].coordination,
        coordination(Some(Party::Own), false, true)
    );
    assert!(
        store
            .coordination_outbox_batch(10)
            .await
            .unwrap()
            .is_empty()
    );
}

pub(super) async fn dead_letters_hold_back_a_signals_later_events_until_retried(
    store: &impl Subject,
) {
    let (s1, _) = created(store, new_signal("gp", 1, &[])).await;
    let (s2, _) = created(store, registered_at(new_signal("school", 2, &[]), 1)).await;
    let s1b = store
        .update(
            &acting("gp"),
            s1.signal_id,
            SignalUpdate {
                contact: Some(contact("gp", "p2")),
                ..SignalUpdate::default()
            },
            at(2),
        )
        .await
        .unwrap();
    let queue = store.outbox_batch(10).await.unwrap();
    assert_eq!(
        queue.iter().map(|e| e.event.clone()).collect::<Vec<_>>(),
        [
            Some(OutboxEvent::upsert(&s1)),
            Some(OutboxEvent::upsert(&s2)),
            Some(OutboxEvent::upsert(&s1b)),
        ]
    );
    let (e1, e2) = (queue[0].seq, queue[1].seq);
    assert!(e1 < e2 && e2 < queue[2].seq);

    // The hub refuses S1's first event for good: S1's later event waits behind it.
    assert!(
        store
            .quarantine_outbox(e1, "refused by the hub".to_owned(), at(3))
            .await
            .unwrap()
    );
    assert!(
        !store
            .quarantine_outbox(e1, "refused by the hub".to_owned(), at(3))
            .await
            .unwrap()
    );
    assert_eq!(store.outbox_batch(10).await.unwrap(), [queue[1].clone()]);
    assert_eq!(store.outbox_len().await.unwrap(), 2);
    assert_eq!(store.dead_letter_count().await.unwrap(), 1);
    let letters = store.dead_letters(0, 10).await.unwrap();
    assert_eq!(letters.len(), 1);
    let letter = &letters[0];
    assert_eq!(
        (
            letter.source,
            letter.position,
            letter.signal_id.clone(),
            letter.revision,
            letter.reason.as_str(),
            letter.quarantined_at,
        ),
        (
            DeadLetterSource::Outbox,
            e1,
            Some(s1.signal_id.to_string()),
            Some(1),
            "refused by the hub",
            at(3),
        )
    );
    assert!(store.dead_letters(letter.id, 10).await.unwrap().is_empty());

    // Retried: back at its old place, before S1's later event.
    assert_eq!(
        store.retry_dead_letter(letter.id).await.unwrap(),
        Retried::Requeued
    );
    assert_eq!(store.dead_letter_count().await.unwrap(), 0);
    assert_eq!(store.outbox_batch(10).await.unwrap(), queue);
    assert_eq!(
        store.retry_dead_letter(letter.id).await.unwrap(),
        Retried::Unknown
    );

    // A notice-log entry this node cannot read: kept once, and the cursor moves past it.
    let payload = vec![0xff, 0x00, 0x17];
    for _ in 0..2 {
        store
            .quarantine_hub_entry(12, payload.clone(), "unreadable".to_owned(), at(4))
            .await
            .unwrap();
    }
    assert_eq!(cursor(store).await, 12);
    assert_eq!(store.dead_letter_count().await.unwrap(), 1);
    let letters = store.dead_letters(0, 10).await.unwrap();
    assert_eq!(letters.len(), 1);
    let expected = DeadLetter {
        id: letters[0].id,
        source: DeadLetterSource::NoticeLog,
        position: 12,
        signal_id: None,
        revision: None,
        payload,
        reason: "unreadable".to_owned(),
        quarantined_at: at(4),
    };
    assert_eq!(letters, std::slice::from_ref(&expected));
    // Its retry hands it back to be read again; the caller removes it once applied.
    assert_eq!(
        store.retry_dead_letter(expected.id).await.unwrap(),
        Retried::Reread(expected.clone())
    );
    assert_eq!(store.dead_letter_count().await.unwrap(), 1);
    store.remove_dead_letter(expected.id).await.unwrap();
    assert_eq!(store.dead_letter_count().await.unwrap(), 0);

    // A coordination change the hub refuses: aside, and back at its place on retry.
    let vt = remote("vt", SignalState::Active);
    store
        .store_hub_notice(hub_notice(13, "hub-1", s2.signal_id, "school", vt), at(5))
        .await
        .unwrap();
    store
        .coordinate(
            &acting("school"),
            "hub-1",
            CoordinationAction::MarkAfgestemd,
            at(6),
        )
        .await
        .unwrap();
    let changes = store.coordination_outbox_batch(10).await.unwrap();
    assert_eq!(changes.len(), 1);
    assert!(
        store
            .quarantine_coordination(changes[0].0, "refused".to_owned(), at(7))
            .await
            .unwrap()
    );
    assert!(
        store
            .coordination_outbox_batch(10)
            .await
            .unwrap()
            .is_empty()
    );
    let letters = store.dead_letters(0, 10).await.unwrap();
    assert_eq!(
        letters
            .iter()
            .map(|l| (l.source, l.position, l.signal_id.clone()))
            .collect::<Vec<_>>(),
        [(DeadLetterSource::Coordination, changes[0].0, None)]
    );
    assert_eq!(
        store.retry_dead_letter(letters[0].id).await.unwrap(),
        Retried::Requeued
    );
    assert_eq!(store.coordination_outbox_batch(10).await.unwrap(), changes);
    assert_eq!(store.dead_letter_count().await.unwrap(), 0);

    // A deletion does not wait behind a dead letter: it replaces the signal's events.
    assert!(
        store
            .quarantine_outbox(e1, "refused again".to_owned(), at(8))
            .await
            .unwrap()
    );
    store
        .withdraw(
            &acting("gp"),
            s1.signal_id,
            WithdrawReason::Unjustified,
            at(9),
        )
        .await
        .unwrap();
    assert_eq!(store.dead_letter_count().await.unwrap(), 0);
    let queue = store.outbox_batch(10).await.unwrap();
    assert_eq!(
        queue.iter().map(|e| e.event.clone()).collect::<Vec<_>>(),
        [
            Some(OutboxEvent::upsert(&s2)),
            Some(deleted_event(s1.signal_id, 3)),
        ]
    );
    store
        .outbox_remove(queue.iter().map(|e| e.seq).collect())
        .await
        .unwrap();
    assert_eq!(store.outbox_len().await.unwrap(), 0);
    assert_eq!(
        store.outbox_batch(10).await.unwrap(),
        Vec::<OutboxEntry>::new()
    );
}

pub(super) async fn every_write_is_audited_in_one_chain(store: &impl Subject) {
    assert_eq!(store.verify_audit().await.unwrap(), 0);
    let first = new_signal("gp", 1, &[]);
    let (a, _) = created(store, first.clone()).await; // 1
    let (b, _) = created(store, registered_at(new_signal("school", 1, &[]), 1)).await; // 2
    // A replay and a refused write are no writes.
    store.register(first).await.unwrap();
    let update = || SignalUpdate {
        contact: Some(contact("gp", "p2")),
        ..SignalUpdate::default()
    };
    store
        .update(&acting("school"), a.signal_id, update(), at(2))
        .await
        .unwrap_err();
    assert_eq!(store.verify_audit().await.unwrap(), 2);

    store
        .update(&acting("gp"), a.signal_id, update(), at(3))
        .await
        .unwrap(); // 3
    store
        .record_lookup(&acting("school"), vec![a.signal_id], at(4))
        .await
        .unwrap(); // 4
    let to_school = matches_of(store, "school").await.remove(0);
    store
        .coordinate(
            &acting("school"),
            &to_school.notice_id,
            CoordinationAction::MarkAfgestemd,
            at(5),
        )
        .await
        .unwrap(); // 5
    store
        .withdraw(
            &acting("school"),
            b.signal_id,
            WithdrawReason::RiskGone,
            at(6),
        )
        .await
        .unwrap(); // 6
    store
        .correct(
            &LiveKeys::one(youth(1)),
            a.signal_id,
            update(),
            &officer(),
            "ref-1",
            at(7),
        )
        .await
        .unwrap(); // 7
    store
        .erase(
            &LiveKeys::one(youth(1)),
            &[a.signal_id],
            &officer(),
            "order-1",
            at(8),
        )
        .await
        .unwrap(); // 8
    store
        .record_audit(AuditEntry {
            at: at(9),
            action: AuditAction::Export,
            actor: officer(),
            signal_ids: vec![b.signal_id],
            detail: Some("ref-2".to_owned()),
        })
        .await
        .unwrap(); // 9
    assert_eq!(
        store
            .record_death(&LiveKeys::one(youth(1)), at(10))
            .await
            .unwrap(),
        1
    ); // 10
    assert_eq!(
        store.sweep(TODAY, 100).await.unwrap(),
        SweepReport::default()
    );
    assert_eq!(store.verify_audit().await.unwrap(), 10);
}
