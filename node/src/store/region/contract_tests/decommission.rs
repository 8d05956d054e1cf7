//! A region leaving the federation: its signals read as handover records, deleted once handed
//! over, and adopted (here by the same store, so both halves run on each backend) as they were.

use std::time::Duration;

use super::*;
use crate::store::HandoverRecord;

pub(super) async fn signals_handed_over_and_adopted_are_as_they_were(store: &impl Subject) {
    // A local youth match, a family match, a cross-region notice, coordination, one e-mail sent.
    let (gp, _) = created(store, new_signal("gp", 1, &[9])).await;
    let (school, _) = created(store, registered_at(new_signal("school", 1, &[]), 1)).await;
    let (care, _) = created(store, registered_at(new_signal("care", 2, &[9]), 2)).await;
    let notice_id = uuid::Uuid::new_v4().to_string();
    store
        .store_hub_log(
            vec![notice_entry(hub_notice(
                7,
                &notice_id,
                gp.signal_id,
                "gp",
                remote("vt", SignalState::Active),
            ))],
            at(3),
        )
        .await
        .unwrap();
    let to_gp = matches_of(store, "gp").await;
    let local = to_gp
        .iter()
        .find(|m| m.counterpart.signal_id == school.signal_id)
        .unwrap();
    store
        .coordinate(
            &acting("gp"),
            &local.notice_id,
            CoordinationAction::NameRegievoerder(Party::Own),
            at(4),
        )
        .await
        .unwrap();
    let claimed = store
        .claim_emails(at(5), Duration::from_secs(60), 1)
        .await
        .unwrap();
    assert!(
        store
            .email_sent(
                &claimed[0].notice_id,
                &acting(claimed[0].recipient_organisation_id.as_str()),
                vec![claimed[0].recipient_signal_id],
                at(5),
            )
            .await
            .unwrap()
    );
    let orgs = ["gp", "school", "care"];
    let mut before = Vec::new();
    for org in orgs {
        before.push(matches_of(store, org).await);
    }
    let signals = [gp, school, care];
    let pending = store.emails_pending().await.unwrap();
    let mut rows = store.all_row_counts().await;
    assert!(
        rows["told_pairs"] > 0 && rows["coordination"] == 1,
        "{rows:?}"
    );

    // Read as records, at the log cursor they were read at; a page at a time.
    let first = store.handover_page(None, 2).await.unwrap();
    assert_eq!(first.log_cursor, 7);
    assert_eq!(first.records.len(), 2);
    let rest = store
        .handover_page(Some(first.records[1].0), 2)
        .await
        .unwrap();
    assert_eq!(rest.records.len(), 1);
    let records: Vec<_> = first.records.into_iter().chain(rest.records).collect();
    let ids: Vec<SignalId> = records.iter().map(|(id, _, _)| *id).collect();

    // Handed over: nothing of them stays.
    let south = RegionId::parse("south").unwrap();
    store.handed_over(ids.clone(), south, at(6)).await.unwrap();
    let emptied = store.all_row_counts().await;
    for table in [
        "signals",
        "signal_family_keys",
        "notices",
        "email_jobs",
        "outbox",
    ] {
        assert_eq!(emptied[table], 0, "{table}: {emptied:?}");
    }
    assert_eq!((emptied["told_pairs"], emptied["coordination"]), (0, 0));

    // Adopted (through their JSON, as sealed): as they were, once.
    for (signal_id, revision, record) in records {
        let json = serde_json::to_vec(&record).unwrap();
        let record: HandoverRecord = serde_json::from_slice(&json).unwrap();
        let adoption = record
            .check(north(), signal_id, revision, Vec::new())
            .unwrap();
        assert!(store.adopt(9, adoption.clone(), at(7)).await.unwrap());
        assert!(!store.adopt(9, adoption, at(8)).await.unwrap());
    }
    for (org, seen) in orgs.iter().zip(&before) {
        assert_eq!(&matches_of(store, org).await, seen, "{org}");
    }
    for signal in &signals {
        assert_eq!(
            store.signal(signal.signal_id).await.unwrap().as_ref(),
            Some(signal)
        );
    }
    assert_eq!(store.emails_pending().await.unwrap(), pending);
    assert_eq!(cursor(store).await, 9);
    // The same rows, but no event for the hub (it holds these revisions already) and no job
    // for the e-mail sent before (nothing is left to send).
    rows.insert("outbox", 0);
    rows.insert("email_jobs", rows["email_jobs"] - 1);
    assert_eq!(store.all_row_counts().await, rows);

    // A record that is not the signal handed over is refused.
    let page = store.handover_page(None, 1).await.unwrap();
    let (signal_id, revision, record) = page.records.into_iter().next().unwrap();
    assert!(
        record
            .clone()
            .check(north(), SignalId::generate(), revision, Vec::new())
            .is_err()
    );
    let mut tampered = record;
    tampered.notices.push(crate::store::NoticeRecord {
        notice_id: "not-a-uuid".into(),
        ..tampered.notices[0].clone()
    });
    assert!(
        tampered
            .check(north(), signal_id, revision, Vec::new())
            .is_err()
    );
}
