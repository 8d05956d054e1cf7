//! No probing (issue 9, item 7): a signal id (or notice id) that exists but is not the caller's
//! is answered exactly as one that does not exist, by every RPC that takes one, so no caller
//! can learn that an id exists. Nothing is audited as read for such a request.

use tonic::{Code, Status};
use vix_node::domain::SignalId;
use vix_node::store::SignalStore;
use vix_protocol::region::v1 as pb;
use vix_tests::spawn_region;

const YOUTH: &str = "999991383";
/// Also lives in Hellevoetsluis (0530), like YOUTH: the municipality may act for both.
const OTHER_YOUTH: &str = "999995261";
/// A well-formed signal id that no node ever issued.
const UNKNOWN: &str = "0b4c1c1e-5d7a-4a53-9d55-0a4b3f0e9c11";

/// Code and message of a refusal: what a caller can tell two answers apart by.
fn answer<T: std::fmt::Debug>(result: Result<tonic::Response<T>, Status>) -> (Code, String) {
    let status = result.expect_err("refused");
    (status.code(), status.message().to_owned())
}

#[tokio::test]
async fn another_organisations_signal_is_answered_as_a_missing_one() {
    let north = spawn_region("north").await;
    let theirs = north.register_bsn("school-north", YOUTH, "r1").await;
    north.register_bsn("jgz-north", YOUTH, "r2").await;
    let mut jgz = north.client("jgz-north");
    let before = (north.row_counts().await, north.audit_entries().await);

    for (what, id) in [
        ("another organisation's", &theirs.signal_id),
        ("a missing", &UNKNOWN.to_owned()),
    ] {
        let get = answer(
            jgz.get_signal(pb::GetSignalRequest {
                signal_id: id.clone(),
                acting_professional_id: "p".into(),
            })
            .await,
        );
        assert_eq!(
            get,
            (Code::NotFound, "no such signal".into()),
            "GetSignal, {what}"
        );
        let list = answer(
            jgz.list_matches(pb::ListMatchesRequest {
                signal_id: id.clone(),
                acting_professional_id: "p".into(),
                ..Default::default()
            })
            .await,
        );
        assert_eq!(list, get, "ListMatches, {what}");
        let withdraw = answer(
            jgz.withdraw_signal(pb::WithdrawSignalRequest {
                signal_id: id.clone(),
                reason: pb::WithdrawReason::RiskGone as i32,
                acting_professional_id: "p".into(),
            })
            .await,
        );
        assert_eq!(withdraw, get, "WithdrawSignal, {what}");
        let update = answer(
            jgz.update_signal(pb::UpdateSignalRequest {
                signal_id: id.clone(),
                planned_removal_date: "2027-01-01".into(),
                acting_professional_id: "p".into(),
                ..Default::default()
            })
            .await,
        );
        assert_eq!(update, get, "UpdateSignal, {what}");
    }
    // Nothing was read, changed or audited.
    assert_eq!(
        (north.row_counts().await, north.audit_entries().await),
        before
    );
}

#[tokio::test]
async fn another_organisations_match_is_answered_as_a_missing_one() {
    let north = spawn_region("north").await;
    north.register_bsn("school-north", YOUTH, "r1").await;
    north.register_bsn("jgz-north", YOUTH, "r2").await;
    let theirs = north.matches("school-north").await;
    assert_eq!(theirs.len(), 1);
    let before = north.audit_entries().await;
    let mut jgz = north.client("jgz-north");
    let coordinate = |notice_id: &str| pb::CoordinateRequest {
        notice_id: notice_id.into(),
        acting_professional_id: "p".into(),
        action: Some(pb::coordinate_request::Action::MarkAfgestemd(true)),
    };
    let of_another = answer(jgz.coordinate(coordinate(&theirs[0].notice_id)).await);
    let missing = answer(jgz.coordinate(coordinate(UNKNOWN)).await);
    assert_eq!(of_another, (Code::NotFound, "no such match".into()));
    assert_eq!(of_another, missing);
    assert_eq!(north.audit_entries().await, before);
}

#[tokio::test]
async fn a_rights_call_naming_another_youths_signal_is_answered_as_a_missing_one() {
    let north = spawn_region("north").await;
    let of_other_youth = north.register_bsn("school-north", OTHER_YOUTH, "r1").await;
    north.register_bsn("jgz-north", YOUTH, "r2").await;
    let mut rights = north.rights("0530");
    let before = (north.row_counts().await, north.audit_entries().await);
    let correct = |signal_id: &str| pb::CorrectSignalRequest {
        youth: Some(pb::correct_signal_request::Youth::Bsn(YOUTH.into())),
        signal_id: signal_id.into(),
        professional: Some(vix_tests::professional("school-north")),
        officer_id: "officer-1".into(),
        reference: "COR-1".into(),
        ..Default::default()
    };
    let erase = |signal_id: &str| pb::OrderErasureRequest {
        youth: Some(pb::order_erasure_request::Youth::Bsn(YOUTH.into())),
        signal_ids: vec![signal_id.into()],
        officer_id: "officer-1".into(),
        reference: "EO-1".into(),
    };
    let corrected = answer(
        rights
            .correct_signal(correct(&of_other_youth.signal_id))
            .await,
    );
    assert_eq!(corrected, (Code::NotFound, "no such signal".into()));
    assert_eq!(
        answer(rights.correct_signal(correct(UNKNOWN)).await),
        corrected
    );
    let erased = answer(rights.order_erasure(erase(&of_other_youth.signal_id)).await);
    assert_eq!(erased, corrected);
    assert_eq!(
        answer(rights.order_erasure(erase(UNKNOWN)).await),
        corrected
    );
    assert_eq!(
        (north.row_counts().await, north.audit_entries().await),
        before
    );
    // The other youth's signal is as it was.
    let unchanged = north
        .context
        .store
        .signal(SignalId::parse(&of_other_youth.signal_id).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(unchanged.revision.get(), of_other_youth.revision);
}
