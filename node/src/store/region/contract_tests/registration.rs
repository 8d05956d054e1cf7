//! Registration: replays, matching and telling once, paging a youth's signals.

use super::*;
use crate::domain::LiveKeys;

pub(super) async fn replay_returns_the_first_signal_and_a_changed_request_is_refused(
    store: &impl Subject,
) {
    let first = new_signal("gp", 1, &[8, 7]);
    let (signal, notices) = created(store, first.clone()).await;
    assert_eq!(notices, 0);
    assert_eq!(
        signal,
        StoredSignal {
            signal_id: first.signal_id,
            revision: Revision::FIRST,
            organisation_id: org_id("gp"),
            organisation_name: first.organisation_name.clone(),
            contact: contact("gp", "p1"),
            subject_key: youth(1),
            family_keys: vec![parent(7), parent(8)],
            birth_date: BORN,
            registered_at: now(),
            planned_removal_date: R_MAX,
            state: SignalState::Active,
            inactive_since: None,
            informing: first.informing,
        }
    );
    assert_eq!(
        store.signal(signal.signal_id).await.unwrap(),
        Some(signal.clone())
    );
    let before = store.row_counts().await;
    assert_eq!(before, counts(1, 2, 0, 0, 1));

    // The client retries the same request; the node gave the retry a fresh signal id.
    let mut retry = registered_at(first.clone(), 5);
    retry.signal_id = SignalId::generate();
    assert_eq!(
        store.register(retry).await.unwrap(),
        Registered::Replayed(signal.clone())
    );
    assert_eq!(store.row_counts().await, before);

    // The same request id for another request.
    let mut changed = first.clone();
    changed.signal_id = SignalId::generate();
    changed.request_fingerprint = "fingerprint-of-another-request".to_owned();
    let error = store.register(changed).await.unwrap_err();
    assert!(matches!(error, StoreError::RequestMismatch), "{error:?}");
    assert_eq!(store.row_counts().await, before);

    // A new request of the organisation (another professional) on the youth while its signal
    // is active: that signal stands, nothing is written.
    let mut again = registered_at(new_signal("gp", 1, &[7, 8]), 10);
    again.contact = contact("gp", "p2");
    assert_eq!(
        store.register(again).await.unwrap(),
        Registered::AlreadyActive(signal.clone())
    );
    assert_eq!(store.row_counts().await, before);
    assert_eq!(store.signal(signal.signal_id).await.unwrap(), Some(signal));
}

pub(super) async fn two_organisations_on_one_youth_are_told_once_each(store: &impl Subject) {
    let (a, _) = created(store, new_signal("gp", 1, &[])).await;
    let (b, notices) = created(store, registered_at(new_signal("school", 1, &[]), 1)).await;
    assert_eq!(notices, 2);

    let to_a = matches_of(store, "gp").await;
    assert_eq!(to_a.len(), 1);
    assert_eq!(
        to_a,
        [local_view(
            &to_a[0].notice_id,
            &a,
            &b,
            MatchType::Youth,
            NoticeKind::Match,
            at(1)
        )]
    );
    let to_b = matches_of(store, "school").await;
    assert_eq!(to_b.len(), 1);
    assert_eq!(
        to_b,
        [local_view(
            &to_b[0].notice_id,
            &b,
            &a,
            MatchType::Youth,
            NoticeKind::Match,
            at(1)
        )]
    );
    assert_ne!(to_a[0].notice_id, to_b[0].notice_id);
    // The filter by signal: the organisation's own signal only.
    assert_eq!(
        store
            .matches(&org_id("gp"), Some(a.signal_id), MatchPage::all())
            .await
            .unwrap(),
        to_a
    );
    assert!(
        store
            .matches(&org_id("gp"), Some(b.signal_id), MatchPage::all())
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.row_counts().await, counts(2, 0, 2, 2, 2));

    // The GP's signal is archived and the GP registers anew: a re-registration re-notifies no
    // one, both parties still exist (DOMAIN.md section 5, "Nobody is told twice").
    store
        .withdraw(&acting("gp"), a.signal_id, WithdrawReason::RiskGone, at(2))
        .await
        .unwrap();
    let (_, notices) = created(store, registered_at(new_signal("gp", 1, &[]), 3)).await;
    assert_eq!(notices, 0);
    // The school asks again while its signal is active: nothing new either.
    assert_eq!(
        store
            .register(registered_at(new_signal("school", 1, &[]), 4))
            .await
            .unwrap(),
        Registered::AlreadyActive(b.clone())
    );
    let ids = |views: Vec<MatchView>| views.into_iter().map(|v| v.notice_id).collect::<Vec<_>>();
    assert_eq!(ids(matches_of(store, "gp").await), ids(to_a));
    assert_eq!(ids(matches_of(store, "school").await), ids(to_b));
    let after = store.row_counts().await;
    assert_eq!((after["notices"], after["email_jobs"]), (2, 2));
}

pub(super) async fn siblings_match_through_a_family_key(store: &impl Subject) {
    // Youths 1 and 2 share both BRP parents: still one family match (DOMAIN.md section 5).
    let (a, _) = created(store, new_signal("gp", 1, &[7, 8])).await;
    let (b, notices) = created(store, registered_at(new_signal("school", 2, &[7, 8]), 1)).await;
    assert_eq!(notices, 2);
    let to_a = matches_of(store, "gp").await;
    assert_eq!(to_a.len(), 1);
    assert_eq!(
        to_a,
        [local_view(
            &to_a[0].notice_id,
            &a,
            &b,
            MatchType::Family,
            NoticeKind::Match,
            at(1)
        )]
    );
    let to_b = matches_of(store, "school").await;
    assert_eq!(to_b.len(), 1);
    assert_eq!(
        to_b,
        [local_view(
            &to_b[0].notice_id,
            &b,
            &a,
            MatchType::Family,
            NoticeKind::Match,
            at(1)
        )]
    );

    // A youth of another family: no match.
    let (_, notices) = created(store, registered_at(new_signal("care", 3, &[9]), 2)).await;
    assert_eq!(notices, 0);

    // The GP then signals youth 2 as well: a youth match with the school, nothing else (worked
    // example 4); the GP's own signal on youth 1 is not a party to it.
    let (a2, notices) = created(store, registered_at(new_signal("gp", 2, &[7, 8]), 3)).await;
    assert_eq!(notices, 2);
    let to_a = matches_of(store, "gp").await;
    assert_eq!(to_a.len(), 2);
    assert_eq!(
        to_a[1],
        local_view(
            &to_a[1].notice_id,
            &a2,
            &b,
            MatchType::Youth,
            NoticeKind::Match,
            at(3)
        )
    );
    let to_b = matches_of(store, "school").await;
    assert_eq!(to_b.len(), 2);
    assert_eq!(
        to_b[1],
        local_view(
            &to_b[1].notice_id,
            &b,
            &a2,
            MatchType::Youth,
            NoticeKind::Match,
            at(3)
        )
    );
    assert!(matches_of(store, "care").await.is_empty());
}

pub(super) async fn signals_of_subject_pages_in_registration_order(store: &impl Subject) {
    // Registered out of order; two at the same instant, ordered by signal id.
    let mut signals = Vec::new();
    for (org, minutes) in [
        ("o1", 3),
        ("o2", 1),
        ("o3", 4),
        ("o4", 0),
        ("o5", 2),
        ("o6", 2),
    ] {
        let (signal, _) = created(store, registered_at(new_signal(org, 1, &[]), minutes)).await;
        signals.push(signal);
    }
    let (_, _) = created(store, registered_at(new_signal("o7", 2, &[]), 1)).await;
    // Every state: o2's is archived.
    store
        .withdraw(
            &acting("o2"),
            signals[1].signal_id,
            WithdrawReason::RiskGone,
            at(5),
        )
        .await
        .unwrap();
    let (tied_low, tied_high) = if signals[4].signal_id < signals[5].signal_id {
        (signals[4].signal_id, signals[5].signal_id)
    } else {
        (signals[5].signal_id, signals[4].signal_id)
    };
    let expected = [
        signals[3].signal_id,
        signals[1].signal_id,
        tied_low,
        tied_high,
        signals[0].signal_id,
        signals[2].signal_id,
    ];

    let mut seen = Vec::new();
    let mut after = None;
    let mut pages = Vec::new();
    loop {
        let page = store
            .signals_of_subject(&LiveKeys::one(youth(1)), SignalPage { after, limit: 4 })
            .await
            .unwrap();
        pages.push(page.len());
        let Some(last) = page.last() else {
            break;
        };
        after = Some(SignalPosition {
            registered_at: last.registered_at,
            signal_id: last.signal_id,
        });
        seen.extend(page.iter().map(|s| s.signal_id));
    }
    assert_eq!(pages, [4, 2, 0]);
    assert_eq!(seen, expected);
    // Each signal as stored, archived one included.
    let all = store
        .signals_of_subject(
            &LiveKeys::one(youth(1)),
            SignalPage {
                after: None,
                limit: 10,
            },
        )
        .await
        .unwrap();
    assert_eq!(all[1].state, SignalState::Inactive);
    assert_eq!(
        all[1],
        store.signal(signals[1].signal_id).await.unwrap().unwrap()
    );
    // A page starting after the tie's first signal holds its second.
    let page = store
        .signals_of_subject(
            &LiveKeys::one(youth(1)),
            SignalPage {
                after: Some(SignalPosition {
                    registered_at: at(2),
                    signal_id: tied_low,
                }),
                limit: 1,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        page.iter().map(|s| s.signal_id).collect::<Vec<_>>(),
        [tied_high]
    );
}

/// A key rotation: a registration under version 2, with the youth's and the parent's version-1
/// keys, first moves what the node holds under those to version 2 (the youth's signal, the
/// sibling's family key, the told pairs), queues those signals for the hub at a new revision,
/// and then matches as if every signal had always been under version 2.
pub(super) async fn a_registration_under_a_new_version_rekeys_what_the_node_holds(
    store: &impl Subject,
) {
    let v2 = KeyVersion::new(2).unwrap();
    let (a, _) = created(store, new_signal("a", 1, &[9])).await;
    let (b, notices) = created(store, registered_at(new_signal("b", 2, &[9]), 1)).await;
    assert_eq!(notices, 2, "a and b: one family, told both ways");
    assert_eq!(
        store
            .record_death(&LiveKeys::one(youth(3)), at(2))
            .await
            .unwrap(),
        0
    );
    let before = store.outbox_batch(100).await.unwrap().len();

    let mut c = registered_at(new_signal("c", 1, &[]), 3);
    c.subject_key = SubjectKey::new(v2, [1; 32]);
    c.family_keys = vec![FamilyKey::new(v2, [9; 32])];
    c.rekeys = crate::domain::Rekeys {
        subject: vec![(youth(1), c.subject_key)],
        family: vec![(parent(9), FamilyKey::new(v2, [9; 32]))],
    };
    let (c, notices) = created(store, c).await;
    assert_eq!(
        notices, 4,
        "c and a (youth), c and b (family), each both ways"
    );

    let a = store.signal(a.signal_id).await.unwrap().unwrap();
    assert_eq!((a.subject_key, a.revision.get()), (c.subject_key, 2));
    assert_eq!(a.family_keys, vec![FamilyKey::new(v2, [9; 32])]);
    let b = store.signal(b.signal_id).await.unwrap().unwrap();
    assert_eq!((b.subject_key, b.revision.get()), (youth(2), 2));
    assert_eq!(b.family_keys, vec![FamilyKey::new(v2, [9; 32])]);
    // For the hub: a and b at revision 2 with their new keys, then c with its old keys.
    let outbox: Vec<OutboxEvent> = store
        .outbox_batch(100)
        .await
        .unwrap()
        .into_iter()
        .skip(before)
        .map(|entry| entry.event.unwrap())
        .collect();
    let upserts: Vec<_> = outbox
        .iter()
        .map(|event| match event {
            OutboxEvent::Upsert(snapshot) => (
                snapshot.signal_id.clone(),
                snapshot.revision,
                snapshot.subject_key.clone(),
                snapshot.previous_subject_keys.clone(),
            ),
            other => panic!("{other:?}"),
        })
        .collect();
    let mut rekeyed = upserts[..2].to_vec();
    rekeyed.sort();
    let mut expected = vec![
        (
            a.signal_id.to_string(),
            2,
            a.subject_key.to_stored(),
            vec![],
        ),
        (b.signal_id.to_string(), 2, youth(2).to_stored(), vec![]),
    ];
    expected.sort();
    assert_eq!(rekeyed, expected);
    assert_eq!(
        upserts[2],
        (
            c.signal_id.to_string(),
            1,
            c.subject_key.to_stored(),
            vec![youth(1).to_stored()]
        )
    );

    // a's told pairs moved with it: a registering again finds its active signal, and a new
    // party on the youth is told about a once.
    let again = NewSignal {
        subject_key: c.subject_key,
        family_keys: c.family_keys.clone(),
        ..registered_at(new_signal("a", 1, &[]), 4)
    };
    assert!(matches!(
        store.register(again).await.unwrap(),
        Registered::AlreadyActive(signal) if signal.signal_id == a.signal_id
    ));
    // A request sent before the rotation and retried after it is the same request.
    let first = registered_at(new_signal("e", 5, &[]), 5);
    let (first_signal, _) = created(store, first.clone()).await;
    let retried = NewSignal {
        subject_key: SubjectKey::new(v2, [5; 32]),
        request_fingerprint: "fingerprint under version 2".into(),
        previous_request_fingerprints: vec![first.request_fingerprint.clone()],
        rekeys: crate::domain::Rekeys {
            subject: vec![(youth(5), SubjectKey::new(v2, [5; 32]))],
            family: vec![],
        },
        ..first.clone()
    };
    assert!(matches!(
        store.register(retried).await.unwrap(),
        Registered::Replayed(signal) if signal.signal_id == first_signal.signal_id
    ));

    // The death recorded under version 1 refuses a registration under version 2.
    let mut dead = registered_at(new_signal("d", 3, &[]), 5);
    dead.subject_key = SubjectKey::new(v2, [3; 32]);
    dead.rekeys.subject = vec![(youth(3), dead.subject_key)];
    assert!(matches!(
        store.register(dead).await,
        Err(StoreError::Deceased)
    ));
}
