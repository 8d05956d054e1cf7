//! Coordination on a match: the parties name a regievoerder and mark themselves afgestemd; both
//! sides see one state, within a region and across regions through the hub.

use tonic::Code;
use vix_protocol::region::v1 as pb;
use vix_tests::{TestRegion, eventually, spawn_hub, spawn_linked_region, spawn_region};

const YOUTH: &str = "999991383";

async fn register(region: &TestRegion, org: &str) {
    region
        .client(org)
        .register_signal(pb::RegisterSignalRequest {
            request_id: "r1".into(),
            youth: Some(pb::register_signal_request::Youth::Bsn(YOUTH.into())),
            professional: Some(pb::ProfessionalContact {
                professional_id: format!("p-{org}"),
                name: format!("Professional of {org}"),
                email: format!("p@{org}.example.nl"),
                phone: String::new(),
            }),
            planned_removal_date: String::new(),
            informing: Some(vix_tests::informing_for(YOUTH, vix_tests::test_day())),
        })
        .await
        .unwrap();
}

async fn coordinate(
    region: &TestRegion,
    org: &str,
    notice_id: &str,
    action: Action,
) -> Result<pb::Coordination, tonic::Status> {
    region
        .client(org)
        .coordinate(pb::CoordinateRequest {
            notice_id: notice_id.into(),
            acting_professional_id: format!("p-{org}"),
            action: Some(action),
        })
        .await
        .map(|r| r.into_inner().r#match.unwrap().coordination.unwrap())
}

async fn coordination(region: &TestRegion, org: &str) -> pb::Coordination {
    region.matches(org).await[0].coordination.unwrap()
}

fn state(regievoerder: pb::Party, own: bool, counterpart: bool) -> pb::Coordination {
    pb::Coordination {
        regievoerder: regievoerder as i32,
        afgestemd_own: own,
        afgestemd_counterpart: counterpart,
    }
}

use pb::coordinate_request::Action;

#[tokio::test]
async fn both_parties_of_a_local_match_see_one_coordination_state() {
    let north = spawn_region("north").await;
    register(&north, "jgz-north").await;
    register(&north, "school-north").await;
    let notice = north.matches("jgz-north").await.remove(0).notice_id;
    assert_eq!(
        coordination(&north, "jgz-north").await,
        state(pb::Party::Unspecified, false, false)
    );

    // JGZ names the school's professional regievoerder.
    let seen = coordinate(
        &north,
        "jgz-north",
        &notice,
        Action::NameRegievoerder(pb::Party::Counterpart as i32),
    )
    .await
    .unwrap();
    assert_eq!(seen, state(pb::Party::Counterpart, false, false));
    assert_eq!(
        coordination(&north, "school-north").await,
        state(pb::Party::Own, false, false)
    );

    let school_notice = north.matches("school-north").await.remove(0).notice_id;
    coordinate(
        &north,
        "school-north",
        &school_notice,
        Action::MarkAfgestemd(true),
    )
    .await
    .unwrap();
    assert_eq!(
        coordination(&north, "jgz-north").await,
        state(pb::Party::Counterpart, false, true)
    );
    assert_eq!(
        coordination(&north, "school-north").await,
        state(pb::Party::Own, true, false)
    );
}

#[tokio::test]
async fn coordination_travels_through_the_hub_to_the_other_region() {
    let hub = spawn_hub().await;
    let north = spawn_linked_region("north", &hub).await;
    let south = spawn_linked_region("south", &hub).await;
    register(&north, "jgz-north").await;
    register(&south, "vt-south").await;
    let north_notice = eventually("north's notice", || async {
        north
            .matches("jgz-north")
            .await
            .first()
            .map(|m| m.notice_id.clone())
    })
    .await;
    let south_notice = eventually("south's notice", || async {
        south
            .matches("vt-south")
            .await
            .first()
            .map(|m| m.notice_id.clone())
    })
    .await;

    coordinate(
        &north,
        "jgz-north",
        &north_notice,
        Action::NameRegievoerder(pb::Party::Own as i32),
    )
    .await
    .unwrap();
    eventually("south sees the regievoerder", || async {
        (coordination(&south, "vt-south").await == state(pb::Party::Counterpart, false, false))
            .then_some(())
    })
    .await;

    coordinate(
        &south,
        "vt-south",
        &south_notice,
        Action::MarkAfgestemd(true),
    )
    .await
    .unwrap();
    eventually("north sees south afgestemd", || async {
        (coordination(&north, "jgz-north").await == state(pb::Party::Own, false, true))
            .then_some(())
    })
    .await;
    assert_eq!(
        coordination(&south, "vt-south").await,
        state(pb::Party::Counterpart, true, false)
    );
}

#[tokio::test]
async fn only_the_notices_owner_coordinates_and_bad_actions_are_refused() {
    let north = spawn_region("north").await;
    register(&north, "jgz-north").await;
    register(&north, "school-north").await;
    let notice = north.matches("jgz-north").await.remove(0).notice_id;
    let status = coordinate(&north, "school-north", &notice, Action::MarkAfgestemd(true))
        .await
        .unwrap_err();
    // As if it did not exist: no probing of notice ids.
    assert_eq!(status.code(), Code::NotFound);
    for (notice_id, action, code) in [
        (
            "not-a-notice",
            Action::MarkAfgestemd(true),
            Code::InvalidArgument,
        ),
        (
            notice.as_str(),
            Action::MarkAfgestemd(false),
            Code::InvalidArgument,
        ),
        (
            notice.as_str(),
            Action::NameRegievoerder(pb::Party::Unspecified as i32),
            Code::InvalidArgument,
        ),
        (
            "6f1d3c1e-1f9b-4f3e-9a57-0d1c2b3a4f5e",
            Action::MarkAfgestemd(true),
            Code::NotFound,
        ),
    ] {
        let status = coordinate(&north, "jgz-north", notice_id, action)
            .await
            .unwrap_err();
        assert_eq!(status.code(), code, "{notice_id} {action:?}");
    }
    assert_eq!(
        coordination(&north, "jgz-north").await,
        state(pb::Party::Unspecified, false, false)
    );
}
