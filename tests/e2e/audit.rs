//! The audit log (DOMAIN.md section 9): every write and every read of contact details, with the
//! professional and organisation acting, codes and ids only, hash-chained.

use sqlx::Row;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use tonic::Code;
use vix_node::store::SignalStore;
use vix_protocol::region::v1 as pb;
use vix_tests::{TestRegion, spawn_region};

const YOUTH: &str = "999991383";

fn register_request(
    request_id: &str,
    professional_id: &str,
    org: &str,
) -> pb::RegisterSignalRequest {
    pb::RegisterSignalRequest {
        request_id: request_id.into(),
        youth: Some(pb::register_signal_request::Youth::Bsn(YOUTH.into())),
        professional: Some(pb::ProfessionalContact {
            professional_id: professional_id.into(),
            name: "Anna de Vries".into(),
            email: format!("anna@{org}.example.nl"),
            phone: String::new(),
        }),
        planned_removal_date: String::new(),
        informing: Some(vix_tests::informing_for(YOUTH, vix_tests::test_day())),
    }
}

async fn audit_rows(region: &TestRegion) -> Vec<(String, String, String, String, String)> {
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(
            SqliteConnectOptions::new()
                .filename(region.dir.path().join("region-north.sqlite"))
                .read_only(true),
        )
        .await
        .unwrap();
    let rows = sqlx::query(
        "SELECT action, actor_kind, actor_id, actor_person_id, detail FROM audit_log \
         ORDER BY seq",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    rows.iter()
        .map(|row| {
            (
                row.get("action"),
                row.get("actor_kind"),
                row.get("actor_id"),
                row.get("actor_person_id"),
                row.get("detail"),
            )
        })
        .collect()
}

fn row(
    action: &str,
    org: &str,
    professional: &str,
    detail: &str,
) -> (String, String, String, String, String) {
    (
        action.into(),
        "professional".into(),
        org.into(),
        professional.into(),
        detail.into(),
    )
}

#[tokio::test]
async fn writes_and_contact_reads_are_logged_with_who_and_survive_deletion() {
    let north = spawn_region("north").await;
    let jgz = north
        .client("jgz-north")
        .register_signal(register_request("r1", "p-17", "jgz-north"))
        .await
        .unwrap()
        .into_inner()
        .signal
        .unwrap();
    north
        .client("school-north")
        .register_signal(register_request("r1", "m-7", "school-north"))
        .await
        .unwrap();
    north
        .client("school-north")
        .list_matches(pb::ListMatchesRequest {
            signal_id: String::new(),
            acting_professional_id: "m-8".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    north
        .client("jgz-north")
        .withdraw_signal(pb::WithdrawSignalRequest {
            signal_id: jgz.signal_id.clone(),
            reason: pb::WithdrawReason::Unjustified as i32,
            acting_professional_id: "p-18".into(),
        })
        .await
        .unwrap();

    assert_eq!(
        audit_rows(&north).await,
        [
            row("register", "jgz-north", "p-17", ""),
            row("register", "school-north", "m-7", ""),
            row("contact_lookup", "school-north", "m-8", ""),
            row("withdraw", "jgz-north", "p-18", "unjustified"),
        ]
    );
    // The signal is gone; its audit entries are not, and the chain holds.
    assert_eq!(north.context.store.verify_audit().await.unwrap(), 4);
}

#[tokio::test]
async fn the_audit_log_holds_no_personal_data() {
    let north = spawn_region("north").await;
    north
        .client("jgz-north")
        .register_signal(register_request("r1", "p-17", "jgz-north"))
        .await
        .unwrap();
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(
            SqliteConnectOptions::new()
                .filename(north.dir.path().join("region-north.sqlite"))
                .read_only(true),
        )
        .await
        .unwrap();
    let dump: Vec<String> = sqlx::query_scalar(
        "SELECT action || actor_id || actor_person_id || signal_ids || detail || hash \
         FROM audit_log",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let dump = dump.concat();
    for personal in [YOUTH, "Anna", "anna@", "2008-01-26"] {
        assert!(!dump.contains(personal), "the audit log holds {personal}");
    }
}

#[tokio::test]
async fn a_read_without_the_acting_professional_is_refused_and_not_served() {
    let north = spawn_region("north").await;
    let status = north
        .client("jgz-north")
        .list_matches(pb::ListMatchesRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("acting_professional_id"));
}
