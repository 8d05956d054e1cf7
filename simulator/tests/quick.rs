//! The quick run CI does: four regions, one simulated year, every in-process fault, real nodes
//! over mutual TLS; the oracle must pass, and must fail when the hub loses notices.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use vix_sim::faults::FaultKind;
use vix_sim::run::{Options, run, run_with};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quick_seeded_year_with_faults_passes_the_oracle_and_the_privacy_scan() {
    let dir = tempfile::tempdir().unwrap();
    let report = run(&Options::quick(7), dir.path()).await.unwrap();
    assert!(report.passed(), "{:#?}", report.verdict);
    let operations = &report.operations;
    assert!(report.signals > 800, "{operations:?}");
    assert!(
        operations.withdrawals_risk_gone > 0
            && operations.withdrawals_unjustified > 0
            && operations.updates > 0
            && operations.erasure_orders > 0
            && operations.deaths > 0
            && operations.expired > 0
            && operations.birthdays > 0
            && operations.re_registrations > 0,
        "every kind of operation happened: {operations:?}"
    );
    let verdict = &report.verdict;
    assert!(
        verdict.cross_region > 0
            && verdict.local > 0
            && verdict.family_matches > 0
            && verdict.history_notices > 0,
        "{verdict:?}"
    );
    let kinds: Vec<&str> = report.faults.iter().map(|f| f.kind.as_str()).collect();
    assert_eq!(kinds.len(), 6, "every in-process fault once: {kinds:?}");
    assert_eq!(report.days.len(), 365);
    assert!(report.privacy.files_scanned > 10, "{:?}", report.privacy);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quick_half_year_on_a_postgresql_hub_passes_the_oracle() {
    let schema = vix_node::store::postgres::testing::Schema::create()
        .await
        .expect("PostgreSQL for the simulator's PostgreSQL hub (VIX_TEST_POSTGRES)");
    let dir = tempfile::tempdir().unwrap();
    let options = Options {
        days: 180,
        hub_database: Some(
            vix_node::store::database_location::DatabaseLocation::Postgres(schema.url()),
        ),
        ..Options::quick(11)
    };
    let report = run(&options, dir.path()).await.unwrap();
    assert!(report.passed(), "{:#?}", report.verdict);
    let verdict = &report.verdict;
    assert!(
        verdict.cross_region > 0 && verdict.family_matches > 0,
        "{verdict:?}"
    );
    // Every in-process fault, the hub's outage included (restarted on the same database).
    assert_eq!(report.faults.len(), 6, "{:?}", report.faults);
    schema.drop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_that_drops_every_100th_notice_fails_the_oracle() {
    let dir = tempfile::tempdir().unwrap();
    // No hub outage: the restarted hub would be a sound one.
    let options = Options {
        faults: vec![FaultKind::LinkCut],
        days: 120,
        ..Options::quick(7)
    };
    let report = run_with(&options, dir.path(), |federation| {
        federation
            .hub
            .faults
            .drop_every_nth_notice
            .store(100, std::sync::atomic::Ordering::Relaxed);
    })
    .await
    .unwrap();
    assert!(!report.passed(), "{:#?}", report.verdict);
    assert!(!report.verdict.missing.is_empty(), "{:#?}", report.verdict);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_processes_killed_with_kill_9_and_cut_off_lose_and_repeat_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let options = Options {
        regions: 3,
        days: 6,
        families: 600,
        rates: vix_sim::workload::Rates {
            registrations_per_year: 15_000,
            ..Options::quick(11).rates
        },
        ..Options::quick(11)
    };
    let report = vix_sim::processes::run(&options, 6, dir.path())
        .await
        .unwrap();
    assert!(report.passed(), "{:#?}", report.verdict);
    let kills = report.faults.iter().filter(|f| f.kind == "kill").count();
    assert_eq!(kills, 6, "{:?}", report.faults);
    assert!(
        report.faults.len() >= 10,
        "kills and the other faults: {:?}",
        report.faults
    );
    assert!(
        report.signals > 100 && report.verdict.expected > 10,
        "{:?}",
        report.verdict
    );
    assert!(report.privacy.files_scanned > 10);
}

/// Every node renews its connections (GOAWAY at the maximum age) many times during the run:
/// the front-ends must carry on as a real one would, with the same request again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_renewed_every_second_lose_no_operation() {
    let dir = tempfile::tempdir().unwrap();
    let options = Options {
        faults: Vec::new(),
        days: 90,
        connection_age_secs: Some(1),
        rates: vix_sim::workload::Rates {
            registrations_per_year: 12_000,
            ..Options::quick(5).rates
        },
        ..Options::quick(5)
    };
    let report = run(&options, dir.path()).await.unwrap();
    assert!(report.passed(), "{:#?}", report.verdict);
    assert!(
        report.wall_ms > 3_000,
        "the run outlived several connection ages"
    );
}

/// The hub's PostgreSQL out of reach for a while (a fault proxy on loopback between the hub
/// and the server cuts every connection and refuses new ones), not only sessions ended: the
/// hub answers UNAVAILABLE quickly, the regions keep accepting and retrying, and once the
/// database is back everything flows by itself, nothing lost or told twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hub_rides_out_its_database_unreachable() {
    use std::str::FromStr;
    use vix_node::domain::Clock;
    use vix_node::store::database_location::DatabaseLocation;
    use vix_node::store::hub::{HubStore, SignalEvent};
    use vix_sim::proxy::{FaultProxy, LinkMode};

    let schema = vix_node::store::postgres::testing::Schema::create()
        .await
        .expect("PostgreSQL for the outage test (VIX_TEST_POSTGRES)");
    let server = sqlx::postgres::PgConnectOptions::from_str(&schema.url()).unwrap();
    let upstream = tokio::net::lookup_host((server.get_host(), server.get_port()))
        .await
        .unwrap()
        .next()
        .unwrap();
    let proxy = FaultProxy::start(upstream).await.unwrap();
    let through_proxy = schema.url().replacen(
        &format!("{}:{}", server.get_host(), server.get_port()),
        &proxy.addr().to_string(),
        1,
    );
    let hub = vix_tests::spawn_hub_with(vix_tests::new_dir("hub"), move |settings| {
        settings.database = DatabaseLocation::Postgres(through_proxy);
        settings.postgres.acquire_timeout_ms = 500;
    })
    .await;
    let north = vix_tests::spawn_linked_region("north", &hub).await;
    let south = vix_tests::spawn_linked_region("south", &hub).await;
    north.register_bsn("jgz-north", "999991383", "before").await;
    hub.quiet().await;

    proxy.set(LinkMode::Cut);
    // The hub's store answers, quickly, that the database is away: a retryable refusal.
    let refused = hub
        .context
        .store
        .submit(
            &vix_node::domain::RegionId::parse("north").unwrap(),
            Vec::<SignalEvent>::new(),
            hub.clock.now(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, vix_node::store::hub::HubStoreError::Store(e) if e.is_transient()),
        "{refused:?}"
    );
    // The regions accept registrations meanwhile; south's waits in its outbox.
    south.register_bsn("vt-south", "999991383", "during").await;
    north
        .register_bsn("jgz-north", "999992065", "sibling")
        .await;

    proxy.set(LinkMode::Pass);
    hub.quiet().await;
    let at_south = south.matches("vt-south").await;
    assert_eq!(at_south.len(), 2, "{at_south:#?}");
    let at_north = north.matches("jgz-north").await;
    assert_eq!(at_north.len(), 2, "{at_north:#?}");
    drop((north, south));
    hub.stop().await;
    proxy.shutdown().await;
    schema.drop().await.unwrap();
}
