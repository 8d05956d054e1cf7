//! Bounded requests (issue 9, item 5): page sizes and list lengths above their documented
//! maximum are refused with INVALID_ARGUMENT naming the field, and an export comes in pages,
//! each audited with that page's signal ids only.

use tonic::Code;
use vix_protocol::region::v1 as pb;
use vix_tests::{TestRegion, spawn_region};

/// Lives in Hellevoetsluis (0530), served by north.
const YOUTH: &str = "999991383";

async fn export_audit(region: &TestRegion) -> Vec<String> {
    use sqlx::Connection;
    let mut conn = sqlx::sqlite::SqliteConnection::connect_with(
        &sqlx::sqlite::SqliteConnectOptions::new()
            .filename(region.dir.path().join("region-north.sqlite"))
            .read_only(true),
    )
    .await
    .unwrap();
    sqlx::query_scalar("SELECT signal_ids FROM audit_log WHERE action = 'export' ORDER BY seq")
        .fetch_all(&mut conn)
        .await
        .unwrap()
}

fn assert_invalid(status: &tonic::Status, field: &str) {
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains(field), "{}", status.message());
}

#[tokio::test]
async fn list_matches_pages_hold_at_most_500() {
    let north = spawn_region("north").await;
    let mut client = north.client("jgz-north");
    let list = |page_size| pb::ListMatchesRequest {
        acting_professional_id: "p".into(),
        page_size,
        ..Default::default()
    };
    client.list_matches(list(500)).await.unwrap();
    let status = client.list_matches(list(501)).await.unwrap_err();
    assert_invalid(&status, "page_size");
    assert!(status.message().contains("500"), "{}", status.message());
}

#[tokio::test]
async fn an_erasure_order_names_at_most_100_signals() {
    let north = spawn_region("north").await;
    north.register_bsn("jgz-north", YOUTH, "r1").await;
    let before = north.row_counts().await;
    let ids: Vec<String> = (0..101)
        .map(|i| format!("00000000-0000-4000-8000-{i:012}"))
        .collect();
    let status = north
        .rights("0530")
        .order_erasure(pb::OrderErasureRequest {
            youth: Some(pb::order_erasure_request::Youth::Bsn(YOUTH.into())),
            signal_ids: ids,
            officer_id: "officer-1".into(),
            reference: "EO-1".into(),
        })
        .await
        .unwrap_err();
    assert_invalid(&status, "signal_ids");
    assert!(status.message().contains("100"), "{}", status.message());
    assert_eq!(north.row_counts().await, before);
}

#[tokio::test]
async fn an_export_comes_in_pages_each_audited_with_its_own_signals() {
    let north = spawn_region("north").await;
    let first = north.register_bsn("jgz-north", YOUTH, "r1").await;
    north.clock.advance(jiff::SignedDuration::from_secs(60));
    let second = north.register_bsn("school-north", YOUTH, "r2").await;
    let mut rights = north.rights("0530");
    let export = |page_size, page_token: &str| pb::ExportYouthRequest {
        youth: Some(pb::export_youth_request::Youth::Bsn(YOUTH.into())),
        officer_id: "officer-1".into(),
        page_size,
        page_token: page_token.into(),
    };

    let page = rights
        .export_youth(export(1, ""))
        .await
        .unwrap()
        .into_inner();
    let ids = |page: &pb::ExportYouthResponse| -> Vec<String> {
        page.signals
            .iter()
            .map(|s| s.signal.as_ref().unwrap().signal_id.clone())
            .collect()
    };
    assert_eq!(ids(&page), std::slice::from_ref(&first.signal_id));
    assert!(!page.next_page_token.is_empty());
    let page = rights
        .export_youth(export(1, &page.next_page_token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ids(&page), std::slice::from_ref(&second.signal_id));
    let last = rights
        .export_youth(export(1, &page.next_page_token))
        .await
        .unwrap()
        .into_inner();
    assert!(last.signals.is_empty());
    assert!(last.next_page_token.is_empty());
    // One entry per page, each naming only the signals that page showed.
    assert_eq!(
        export_audit(&north).await,
        [
            first.signal_id.clone(),
            second.signal_id.clone(),
            String::new()
        ]
    );

    // The default page holds both; the bounds are refused, naming the field.
    let all = rights
        .export_youth(export(0, ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ids(&all), [first.signal_id, second.signal_id]);
    assert!(all.next_page_token.is_empty());
    assert_invalid(
        &rights.export_youth(export(501, "")).await.unwrap_err(),
        "page_size",
    );
    assert_invalid(
        &rights
            .export_youth(export(10, "not-a-token"))
            .await
            .unwrap_err(),
        "page_token",
    );
}
