//! Server limits (issue 9, item 5): a request message above its service's maximum is refused
//! with RESOURCE_EXHAUSTED (tonic says OUT_OF_RANGE), a call that does not answer within the
//! request timeout ends with DEADLINE_EXCEEDED, the hub's long-lived notice stream outlives that
//! timeout, and one connection carries only so many calls at once.

use std::time::Duration;

use tonic::Code;
use vix_protocol::federation::v1 as fed;
use vix_protocol::region::v1 as pb;
use vix_tests::{eventually, new_dir, spawn_hub_with, spawn_region, spawn_region_with};

const YOUTH: &str = "999991383";

fn register_with_name(name: String) -> pb::RegisterSignalRequest {
    pb::RegisterSignalRequest {
        request_id: "big".into(),
        youth: Some(pb::register_signal_request::Youth::Bsn(YOUTH.into())),
        professional: Some(pb::ProfessionalContact {
            name,
            ..vix_tests::professional("jgz-north")
        }),
        planned_removal_date: String::new(),
        informing: Some(vix_tests::informing_for(YOUTH, vix_tests::test_day())),
    }
}

#[tokio::test]
async fn a_too_large_request_is_resource_exhausted_on_every_service() {
    let north = spawn_region("north").await;
    // 100 KiB: under tonic's default 4 MiB, over the region API's 64 KiB.
    let status = north
        .client("jgz-north")
        .register_signal(register_with_name("x".repeat(100 * 1024)))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(status.message().contains("65536"), "{}", status.message());

    // Refused before any handler runs, so before the scope of the municipality is looked at.
    let status = north
        .rights("0014")
        .order_erasure(pb::OrderErasureRequest {
            youth: Some(pb::order_erasure_request::Youth::Bsn(YOUTH.into())),
            signal_ids: vec![],
            officer_id: "officer-1".into(),
            reference: "r".repeat(100 * 1024),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");

    // The connection and the node carry on.
    north.register_bsn("jgz-north", YOUTH, "after").await;
    assert_eq!(north.row_counts().await["signals"], 1);

    // The hub: 3 MiB of events, over the federation API's 2 MiB.
    let hub = vix_tests::spawn_hub().await;
    let status = hub
        .client("north")
        .submit_signals(fed::SubmitSignalsRequest {
            region_id: "north".into(),
            events: vec![
                fed::SignalEvent {
                    signal_id: "x".repeat(1024),
                    revision: 1,
                    change: None,
                };
                3 * 1024
            ],
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
}

#[tokio::test]
async fn a_call_that_cannot_answer_in_time_ends_with_deadline_exceeded() {
    let north = spawn_region_with("north", new_dir("north"), None, |settings| {
        settings.limits.request_timeout_ms = 300;
    })
    .await;
    north.register_bsn("jgz-north", YOUTH, "r1").await;
    // Another process holds the database's write lock: the registration cannot commit.
    let mut blocker = {
        use sqlx::Connection;
        sqlx::sqlite::SqliteConnection::connect_with(
            &sqlx::sqlite::SqliteConnectOptions::new()
                .filename(north.dir.path().join("region-north.sqlite")),
        )
        .await
        .unwrap()
    };
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut blocker)
        .await
        .unwrap();
    let mut request = register_with_name("A. de Jong".into());
    request.request_id = "r2".into();
    request.professional = Some(vix_tests::professional("school-north"));
    let started = tokio::time::Instant::now();
    let status = north
        .client("school-north")
        .register_signal(request)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    sqlx::query("ROLLBACK").execute(&mut blocker).await.unwrap();
    // The node serves again once the lock is gone.
    north.register_bsn("jgz-north", YOUTH, "r1").await;
}

#[tokio::test]
async fn the_notice_stream_outlives_the_request_timeout() {
    let timeout = Duration::from_millis(300);
    let hub = spawn_hub_with(new_dir("hub"), |settings| {
        settings.limits.request_timeout_ms = 300;
    })
    .await;
    let upsert = |org: &str| fed::SignalEvent {
        signal_id: uuid::Uuid::new_v4().to_string(),
        revision: 1,
        change: Some(fed::signal_event::Change::Upsert(fed::SignalUpsert {
            subject_key: Some(fed::Pseudonym {
                key_version: 1,
                digest: vec![7; 32],
            }),
            family_keys: vec![],
            organisation_id: org.into(),
            professional: Some(fed::ProfessionalContact {
                professional_id: "p1".into(),
                name: "P. One".into(),
                email: format!("p1@{org}.example.nl"),
                phone: String::new(),
            }),
            registered_at: "2026-11-25T10:00:00Z".into(),
            planned_removal_date: "2028-11-25".into(),
            state: fed::SignalState::Active as i32,
            inactive_since: String::new(),
            previous_subject_keys: vec![],
            previous_family_keys: vec![],
        })),
    };
    let submit = |region: &str, org: &str| fed::SubmitSignalsRequest {
        region_id: region.into(),
        events: vec![upsert(org)],
    };
    hub.client("north")
        .submit_signals(submit("north", "jgz-north"))
        .await
        .unwrap();
    let mut stream = hub
        .client("north")
        .stream_notices(fed::StreamNoticesRequest {
            region_id: "north".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let opened = tokio::time::Instant::now();
    let head = stream.message().await.unwrap().unwrap();
    assert!(matches!(
        head.entry,
        Some(fed::notice_log_entry::Entry::Head(_))
    ));
    // Well past the request timeout (a condition on the clock, not on the system under test).
    eventually("twice the request timeout", || async {
        (opened.elapsed() > 2 * timeout).then_some(())
    })
    .await;
    // A new match across regions still arrives on the stream opened before.
    hub.client("south")
        .submit_signals(submit("south", "vt-south"))
        .await
        .unwrap();
    let entry = stream.message().await.unwrap().expect("the stream is open");
    assert!(
        matches!(entry.entry, Some(fed::notice_log_entry::Entry::Notice(_))),
        "{entry:?}"
    );
}

#[tokio::test]
async fn a_connection_carries_only_so_many_calls_at_once() {
    let hub = spawn_hub_with(new_dir("hub"), |settings| {
        settings.limits.max_concurrent_streams = 2;
    })
    .await;
    // One channel: one connection. Two notice streams take both of its places.
    let (cert, key) = vix_certs_dev::files::region_client("north");
    let channel = vix_tests::channel_with(hub.addr, &cert, &key);
    let mut client = fed::federation_service_client::FederationServiceClient::new(channel.clone());
    let open = || fed::StreamNoticesRequest {
        region_id: "north".into(),
        ..Default::default()
    };
    let first = client.stream_notices(open()).await.unwrap().into_inner();
    let _second = client.stream_notices(open()).await.unwrap().into_inner();
    // A third call on that connection waits for a free place...
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let mut third = tokio::spawn(async move {
        health
            .check(tonic_health::pb::HealthCheckRequest {
                service: String::new(),
            })
            .await
    });
    assert!(
        tokio::time::timeout(Duration::from_millis(500), &mut third)
            .await
            .is_err(),
        "the third call was served while two streams were open"
    );
    // ...and is served once a stream ends.
    drop(first);
    third.await.unwrap().unwrap();
}
