//! The rights of youths and parents through the municipality (DOMAIN.md section 8): export,
//! correction and erasure order, on the node and at the hub, audited without personal data.

use tonic::Code;
use vix_node::store::SignalStore;
use vix_protocol::region::v1 as pb;
use vix_tests::{TestRegion, eventually, spawn_hub, spawn_linked_region, spawn_region};

const YOUTH: &str = "999991383";
/// Hellevoetsluis, where YOUTH lives, served by north; Amsterdam is south's.
const NORTH_MUNICIPALITY: &str = "0530";
const SOUTH_MUNICIPALITY: &str = "0363";

async fn register(region: &TestRegion, org: &str, request_id: &str) -> pb::Signal {
    region
        .client(org)
        .register_signal(pb::RegisterSignalRequest {
            request_id: request_id.into(),
            youth: Some(pb::register_signal_request::Youth::Bsn(YOUTH.into())),
            professional: Some(pb::ProfessionalContact {
                professional_id: format!("p-{org}"),
                name: format!("Professional of {org}"),
                email: format!("p@{org}.example.nl"),
                phone: String::new(),
            }),
            planned_removal_date: "2027-06-01".into(),
            informing: Some(vix_tests::informing_for(YOUTH, vix_tests::test_day())),
        })
        .await
        .unwrap()
        .into_inner()
        .signal
        .unwrap()
}

fn export_request() -> pb::ExportYouthRequest {
    pb::ExportYouthRequest {
        youth: Some(pb::export_youth_request::Youth::Bsn(YOUTH.into())),
        officer_id: "officer-1".into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn the_municipality_exports_every_signal_on_a_youth_with_its_notices() {
    let north = spawn_region("north").await;
    let jgz = register(&north, "jgz-north", "r1").await;
    let school = register(&north, "school-north", "r1").await;
    north
        .client("school-north")
        .withdraw_signal(pb::WithdrawSignalRequest {
            acting_professional_id: "p".into(),
            signal_id: school.signal_id.clone(),
            reason: pb::WithdrawReason::RiskGone as i32,
        })
        .await
        .unwrap();

    let export = north
        .rights(NORTH_MUNICIPALITY)
        .export_youth(export_request())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(export.signals.len(), 2, "active and archived");
    let find = |id: &str| {
        export
            .signals
            .iter()
            .find(|e| e.signal.as_ref().unwrap().signal_id == id)
            .unwrap()
    };
    let of_jgz = find(&jgz.signal_id);
    assert!(of_jgz.signal.as_ref().unwrap().informing.is_some());
    assert_eq!(of_jgz.notices.len(), 1);
    let of_school = find(&school.signal_id).signal.as_ref().unwrap();
    assert_eq!(of_school.state, pb::SignalState::Inactive as i32);

    // Another region's municipality and an organisation are refused.
    let status = north
        .rights(SOUTH_MUNICIPALITY)
        .export_youth(export_request())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    let (cert, key) = vix_certs_dev::files::organisation("jgz-north");
    let status = pb::rights_service_client::RightsServiceClient::new(vix_tests::channel_with(
        north.addr, &cert, &key,
    ))
    .export_youth(export_request())
    .await
    .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
}

#[tokio::test]
async fn the_municipality_corrects_contact_date_and_informing_within_the_rules() {
    let north = spawn_region("north").await;
    let jgz = register(&north, "jgz-north", "r1").await;
    let mut rights = north.rights(NORTH_MUNICIPALITY);
    let correct = |planned: &str, reference: &str| pb::CorrectSignalRequest {
        youth: Some(pb::correct_signal_request::Youth::Bsn(YOUTH.into())),
        signal_id: jgz.signal_id.clone(),
        professional: None,
        planned_removal_date: planned.into(),
        informing: None,
        officer_id: "officer-1".into(),
        reference: reference.into(),
    };
    // Later than the professional set it, within two years of registration: allowed here.
    let corrected = rights
        .correct_signal(correct("2028-11-25", "BZW-2026/117"))
        .await
        .unwrap()
        .into_inner()
        .signal
        .unwrap();
    assert_eq!(corrected.planned_removal_date, "2028-11-25");

    // The contact, and the informing record completed a week after registration.
    north
        .clock
        .advance(jiff::SignedDuration::from_hours(24 * 7));
    let new_contact = pb::ProfessionalContact {
        professional_id: "p-19".into(),
        name: "D. Smit".into(),
        email: "d.smit@jgz-noord.example.nl".into(),
        phone: String::new(),
    };
    let informing = pb::InformingRecord {
        record: Some(pb::informing_record::Record::Informed(pb::Informed {
            parents: false,
            youth: true,
            informed_on: "2026-12-02".into(),
        })),
    };
    let corrected = rights
        .correct_signal(pb::CorrectSignalRequest {
            youth: Some(pb::correct_signal_request::Youth::Bsn(YOUTH.into())),
            signal_id: jgz.signal_id.clone(),
            professional: Some(new_contact.clone()),
            planned_removal_date: String::new(),
            informing: Some(informing.clone()),
            officer_id: "officer-1".into(),
            reference: "BZW-2026/119".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .signal
        .unwrap();
    assert_eq!(corrected.professional, Some(new_contact));
    assert_eq!(corrected.informing, Some(informing));
    let before = north.row_counts().await;
    for (planned, reference, field) in [
        ("2028-11-26", "BZW-2026/118", "planned_removal_date"),
        ("2028-01-01", "A. de Jong, Dorpsstraat 1", "reference"),
        ("2028-01-01", "", "reference"),
    ] {
        let status = rights
            .correct_signal(correct(planned, reference))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{field}");
        assert!(status.message().contains(field), "{}", status.message());
    }
    assert_eq!(north.row_counts().await, before);
}

#[tokio::test]
async fn an_erasure_order_removes_the_youths_signals_on_the_node_and_the_hub() {
    let hub = spawn_hub().await;
    let north = spawn_linked_region("north", &hub).await;
    let south = spawn_linked_region("south", &hub).await;
    let jgz = register(&north, "jgz-north", "r1").await;
    register(&south, "vt-south", "r1").await;
    eventually("the cross-region match", || async {
        (south.matches("vt-south").await.len() == 1).then_some(())
    })
    .await;

    let mut rights = north.rights(NORTH_MUNICIPALITY);
    let order = |signal_ids: Vec<String>, reference: &str| pb::OrderErasureRequest {
        youth: Some(pb::order_erasure_request::Youth::Bsn(YOUTH.into())),
        signal_ids,
        officer_id: "officer-1".into(),
        reference: reference.into(),
    };
    // A signal of another youth: nothing is erased.
    let sibling = north
        .client("school-north")
        .register_signal(pb::RegisterSignalRequest {
            request_id: "other-youth".into(),
            youth: Some(pb::register_signal_request::Youth::Bsn("999990287".into())),
            professional: Some(pb::ProfessionalContact {
                professional_id: "m-7".into(),
                name: "B. Bakker".into(),
                email: "b.bakker@noorderpoort.example.nl".into(),
                phone: String::new(),
            }),
            planned_removal_date: String::new(),
            informing: Some(vix_tests::informing_for("999990287", vix_tests::test_day())),
        })
        .await
        .unwrap()
        .into_inner()
        .signal
        .unwrap();
    let status = rights
        .order_erasure(order(vec![sibling.signal_id.clone()], "EO-1"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert_eq!(north.row_counts().await["signals"], 2);

    let erased = rights
        .order_erasure(order(vec![], "EO-2026-0042"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        erased.erased_signal_ids,
        std::slice::from_ref(&jgz.signal_id)
    );
    assert_eq!(north.row_counts().await["signals"], 1);
    // The hub deletes it too and retracts the other region's notice about it.
    eventually("the erasure at the hub and south", || async {
        south.matches("vt-south").await.is_empty().then_some(())
    })
    .await;
    south.quiet().await;
    assert!(south.matches("vt-south").await.is_empty());

    // Nothing of the signal is left at the hub but its tombstone.
    let hub_db = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(
            sqlx::sqlite::SqliteConnectOptions::new()
                .filename(hub.dir.path().join("hub.sqlite"))
                .read_only(true),
        )
        .await
        .unwrap();
    let at_hub: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM signals WHERE signal_id = ?")
        .bind(&jgz.signal_id)
        .fetch_one(&hub_db)
        .await
        .unwrap();
    assert_eq!(at_hub, 0);
    let tombstones: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM tombstones WHERE signal_id = ?")
        .bind(&jgz.signal_id)
        .fetch_one(&hub_db)
        .await
        .unwrap();
    assert_eq!(tombstones, 1);

    // Audited with municipality, officer, reference and the signal number; nothing personal.
    assert!(north.context.store.verify_audit().await.unwrap() >= 3);
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(
            sqlx::sqlite::SqliteConnectOptions::new()
                .filename(north.dir.path().join("region-north.sqlite"))
                .read_only(true),
        )
        .await
        .unwrap();
    let orders: Vec<(String, String, String, String, String)> = sqlx::query_as(
        "SELECT actor_kind, actor_id, actor_person_id, signal_ids, detail FROM audit_log \
         WHERE action = 'erasure_order'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        orders,
        [(
            "municipality".to_owned(),
            NORTH_MUNICIPALITY.to_owned(),
            "officer-1".to_owned(),
            jgz.signal_id.clone(),
            "EO-2026-0042".to_owned()
        )]
    );
    let export = rights
        .export_youth(export_request())
        .await
        .unwrap()
        .into_inner();
    assert!(export.signals.is_empty());
}
