//! Rights in scope (issue 9, item 6): a municipality acts only for the youths the person
//! registry lists in it. An officer of another municipality, even one this region serves, is
//! refused before anything is read or changed: no audit entry claims a read, no signal changes.

use tonic::Code;
use vix_node::domain::SignalId;
use vix_node::store::SignalStore;
use vix_protocol::region::v1 as pb;
use vix_tests::spawn_region;

/// Lives in Hellevoetsluis (0530).
const YOUTH: &str = "999991383";
/// Both served by north; YOUTH lives in the second.
const GRONINGEN: &str = "0014";
const HELLEVOETSLUIS: &str = "0530";
/// A valid BSN the person registry does not know.
const UNKNOWN_BSN: &str = "123456782";

fn export(bsn: &str) -> pb::ExportYouthRequest {
    pb::ExportYouthRequest {
        youth: Some(pb::export_youth_request::Youth::Bsn(bsn.into())),
        officer_id: "officer-1".into(),
        ..Default::default()
    }
}

fn correct(bsn: &str, signal_id: &str) -> pb::CorrectSignalRequest {
    pb::CorrectSignalRequest {
        youth: Some(pb::correct_signal_request::Youth::Bsn(bsn.into())),
        signal_id: signal_id.into(),
        planned_removal_date: "2027-02-01".into(),
        officer_id: "officer-1".into(),
        reference: "COR-1".into(),
        ..Default::default()
    }
}

fn erase(bsn: &str) -> pb::OrderErasureRequest {
    pb::OrderErasureRequest {
        youth: Some(pb::order_erasure_request::Youth::Bsn(bsn.into())),
        signal_ids: vec![],
        officer_id: "officer-1".into(),
        reference: "EO-1".into(),
    }
}

#[tokio::test]
async fn an_officer_of_another_municipality_reads_and_changes_nothing() {
    let north = spawn_region("north").await;
    let signal = north.register_bsn("jgz-north", YOUTH, "r1").await;
    let before = (north.row_counts().await, north.audit_entries().await);

    let mut groningen = north.rights(GRONINGEN);
    let refusals = [
        groningen.export_youth(export(YOUTH)).await.map(|_| ()),
        groningen
            .correct_signal(correct(YOUTH, &signal.signal_id))
            .await
            .map(|_| ()),
        groningen.order_erasure(erase(YOUTH)).await.map(|_| ()),
    ];
    let mut messages = Vec::new();
    for refusal in refusals {
        let status = refusal.expect_err("refused");
        assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
        messages.push(status.message().to_owned());
    }
    // A BSN the registry does not know is refused alike: the answer does not tell whether a
    // person exists or where they live.
    let unknown = groningen
        .export_youth(export(UNKNOWN_BSN))
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::PermissionDenied);
    messages.push(unknown.message().to_owned());
    messages.dedup();
    assert_eq!(messages.len(), 1, "{messages:?}");

    // No audit entry claims a read, nothing changed, and the signal is as it was.
    assert_eq!(
        (north.row_counts().await, north.audit_entries().await),
        before
    );
    let stored = north
        .context
        .store
        .signal(SignalId::parse(&signal.signal_id).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.revision.get(), signal.revision);
    assert_eq!(
        stored.planned_removal_date.to_string(),
        signal.planned_removal_date
    );

    // The municipality where the youth lives may.
    let mut hellevoetsluis = north.rights(HELLEVOETSLUIS);
    let exported = hellevoetsluis
        .export_youth(export(YOUTH))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(exported.signals.len(), 1);
    let corrected = hellevoetsluis
        .correct_signal(correct(YOUTH, &signal.signal_id))
        .await
        .unwrap()
        .into_inner()
        .signal
        .unwrap();
    assert_eq!(corrected.planned_removal_date, "2027-02-01");
}

#[tokio::test]
async fn a_correction_names_the_youth_and_the_signal_must_be_theirs() {
    let north = spawn_region("north").await;
    let signal = north.register_bsn("jgz-north", YOUTH, "r1").await;
    let mut rights = north.rights(HELLEVOETSLUIS);

    let mut nameless = correct(YOUTH, &signal.signal_id);
    nameless.youth = None;
    let status = rights.correct_signal(nameless).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("youth"), "{}", status.message());

    // Another youth of the same municipality: the signal is not theirs.
    let status = rights
        .correct_signal(correct("999995923", &signal.signal_id))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    let stored = north
        .context
        .store
        .signal(SignalId::parse(&signal.signal_id).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.revision.get(), signal.revision);
}
