//! The quick run CI does: a few regions, real nodes over mutual TLS, the oracle must pass.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use vix_sim::run::{Options, run, run_with};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quick_seeded_run_passes_the_oracle_and_the_privacy_scan() {
    let dir = tempfile::tempdir().unwrap();
    let report = run(&Options::quick(7), dir.path()).await.unwrap();
    assert!(report.signals > 30, "{report:#?}");
    assert!(
        report.cross_region > 0 && report.family_matches > 0,
        "{report:#?}"
    );
    assert!(report.passed(), "{report:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_that_drops_every_100th_notice_fails_the_oracle() {
    let dir = tempfile::tempdir().unwrap();
    // No outage: the restarted hub would be a sound one.
    let options = Options {
        hub_outage: false,
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
    assert!(!report.passed(), "{report:#?}");
    assert!(!report.missing.is_empty(), "{report:#?}");
    assert!(report.duplicated.is_empty() && report.unexpected.is_empty());
}
