//! The e-mail outbox: notice e-mails claimed for sending, sent once, audited, put off, dropped.

use std::time::Duration;

use super::*;

/// How long a claim holds: five of the test's minutes (`at` counts minutes).
const LEASE: Duration = Duration::from_secs(300);

pub(super) async fn notice_emails_are_claimed_once_sent_once_and_audited(store: &impl Subject) {
    let (gp, _) = created(store, new_signal("gp", 1, &[])).await;
    let (school, notices) = created(store, registered_at(new_signal("school", 1, &[]), 1)).await;
    assert_eq!(notices, 2);
    assert_eq!(store.emails_pending().await.unwrap(), 2);
    let audited = store.verify_audit().await.unwrap();

    let mut claimed = store.claim_emails(at(2), LEASE, 10).await.unwrap();
    claimed.sort_by_key(|job| job.recipient_organisation_id.as_str().to_owned());
    let recipients: Vec<_> = claimed
        .iter()
        .map(|job| {
            (
                job.recipient_organisation_id.as_str(),
                job.recipient_signal_id,
                job.attempts,
            )
        })
        .collect();
    assert_eq!(
        recipients,
        [("gp", gp.signal_id, 0), ("school", school.signal_id, 0)]
    );
    // Claimed: nobody else takes them until the claim runs out.
    assert_eq!(store.claim_emails(at(3), LEASE, 10).await.unwrap(), []);

    // Sent once: a second report changes nothing and audits nothing.
    let (to_gp, to_school) = (&claimed[0], &claimed[1]);
    let ids = vec![gp.signal_id, school.signal_id];
    assert!(
        store
            .email_sent(&to_gp.notice_id, &acting("gp"), ids.clone(), at(3))
            .await
            .unwrap()
    );
    assert!(
        !store
            .email_sent(&to_gp.notice_id, &acting("gp"), ids, at(4))
            .await
            .unwrap()
    );
    assert_eq!(store.verify_audit().await.unwrap(), audited + 1);
    assert_eq!(store.emails_pending().await.unwrap(), 1);

    // Put off: due again at the time given, tried once more.
    store
        .email_retry(&to_school.notice_id, at(10))
        .await
        .unwrap();
    assert_eq!(store.claim_emails(at(9), LEASE, 10).await.unwrap(), []);
    let again = store.claim_emails(at(10), LEASE, 10).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(
        (again[0].notice_id.as_str(), again[0].attempts),
        (to_school.notice_id.as_str(), 1)
    );
    // A claim that ran out (its sender died) is taken again; a sent mail never is.
    assert_eq!(store.claim_emails(at(14), LEASE, 10).await.unwrap(), []);
    let after_lease = store.claim_emails(at(15), LEASE, 10).await.unwrap();
    assert_eq!(after_lease.len(), 1);
    assert_eq!(after_lease[0].attempts, 2);

    // Dropped: nobody to mail.
    store.email_dropped(&to_school.notice_id).await.unwrap();
    assert_eq!(store.emails_pending().await.unwrap(), 0);
    assert_eq!(store.claim_emails(at(600), LEASE, 10).await.unwrap(), []);
    // The sent job stays with its notice (one e-mail job per notice), the dropped one is gone.
    assert_eq!(store.row_counts().await["email_jobs"], 1);
}
