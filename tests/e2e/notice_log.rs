//! The hub's notice log has an identity (issue 9, item 4): a region that finds another log
//! behind the hub's address (a replaced database, a restore from an old backup) stops consuming,
//! says why with both values, and reports NOT_SERVING; it never skips or re-reads silently.

use tonic_health::ServingStatus;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;
use vix_node::store::SignalStore;
use vix_node::store::hub::HubStore;
use vix_tests::{TestRegion, eventually, new_dir, spawn_hub, spawn_hub_in_at, spawn_linked_region};

const YOUTH: &str = "999991383";
const SIBLING: &str = "999992065";

async fn health(region: &TestRegion, service: &str) -> i32 {
    HealthClient::new(region.channel("jgz-north"))
        .check(HealthCheckRequest {
            service: service.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .status
}

async fn halted(region: &TestRegion) -> String {
    eventually("the notice consumer stopped", || async {
        region.context.hub_log_halted.borrow().clone()
    })
    .await
}

async fn assert_not_serving(region: &TestRegion) {
    for service in [
        "",
        "vix.region.v1.RegionService",
        "vix.region.v1.RightsService",
    ] {
        assert_eq!(
            health(region, service).await,
            ServingStatus::NotServing as i32,
            "{service:?}"
        );
    }
}

#[tokio::test]
async fn a_region_refuses_a_hub_whose_database_was_replaced() {
    let hub = spawn_hub().await;
    let north = spawn_linked_region("north", &hub).await;
    let south = spawn_linked_region("south", &hub).await;
    assert_eq!(
        health(&north, "").await,
        ServingStatus::Serving as i32,
        "serving before"
    );
    north.register_bsn("jgz-north", YOUTH, "jgz").await;
    south.register_bsn("vt-south", YOUTH, "vt").await;
    eventually("north stored its notice", || async {
        (north.matches("jgz-north").await.len() == 1).then_some(())
    })
    .await;
    let before = north.context.store.hub_log_position().await.unwrap();
    let consumed = before.epoch.clone().expect("epoch adopted");
    let served_before = hub.context.store.log_head().await.unwrap().epoch;
    assert_eq!(consumed, served_before);

    // The hub comes back at its address on an empty database: another log.
    let addr = hub.addr;
    drop(hub.stop().await);
    let replaced = spawn_hub_in_at(new_dir("hub"), addr).await;
    let served = replaced.context.store.log_head().await.unwrap().epoch;
    assert_ne!(served, consumed);
    let why = halted(&north).await;
    assert!(why.contains(&consumed) && why.contains(&served), "{why}");
    assert_not_serving(&north).await;
    // Nothing of the other log was taken in.
    assert_eq!(
        north.context.store.hub_log_position().await.unwrap(),
        before
    );
}

#[tokio::test]
async fn a_region_refuses_a_hub_restored_from_an_older_backup() {
    let hub = spawn_hub().await;
    let north = spawn_linked_region("north", &hub).await;
    let south = spawn_linked_region("south", &hub).await;
    north.register_bsn("jgz-north", YOUTH, "jgz").await;
    south.register_bsn("vt-south", YOUTH, "vt").await;
    eventually("north stored its first notice", || async {
        (north.matches("jgz-north").await.len() == 1).then_some(())
    })
    .await;
    // A backup of the hub now (stopped, so the files are whole) ...
    let addr = hub.addr;
    let dir = hub.stop().await;
    let backup = new_dir("hub-backup");
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, backup.path().join(path.file_name().unwrap())).unwrap();
    }
    // ... then the log grows ...
    let hub = spawn_hub_in_at(dir, addr).await;
    south.register_bsn("vt-south", SIBLING, "vt-sibling").await;
    eventually("north stored the family notice", || async {
        (north.matches("jgz-north").await.len() == 2).then_some(())
    })
    .await;
    let before = north.context.store.hub_log_position().await.unwrap();
    // ... and the hub is restored from the backup: same epoch, a shorter log.
    drop(hub.stop().await);
    let restored = spawn_hub_in_at(backup, addr).await;
    let head = restored.context.store.log_head().await.unwrap();
    assert_eq!(Some(head.epoch), before.epoch);
    assert!(head.end_cursor < before.cursor);
    let why = halted(&north).await;
    assert!(
        why.contains(&before.cursor.to_string()) && why.contains(&head.end_cursor.to_string()),
        "{why}"
    );
    assert_not_serving(&north).await;
    assert_eq!(
        north.context.store.hub_log_position().await.unwrap(),
        before
    );
}

#[tokio::test]
async fn acknowledged_entries_are_pruned_after_the_retention_period() {
    let hub = spawn_hub().await;
    let north = spawn_linked_region("north", &hub).await;
    let south = spawn_linked_region("south", &hub).await;
    north.register_bsn("jgz-north", YOUTH, "jgz").await;
    south.register_bsn("vt-south", YOUTH, "vt").await;
    let north_id = vix_node::domain::RegionId::parse("north").unwrap();
    let south_id = vix_node::domain::RegionId::parse("south").unwrap();
    eventually("both regions acknowledged", || async {
        let north_done = north.matches("jgz-north").await.len() == 1
            && hub.context.store.unacked(&north_id).await.unwrap() == 0;
        let south_done = south.matches("vt-south").await.len() == 1
            && hub.context.store.unacked(&south_id).await.unwrap() == 0;
        (north_done && south_done).then_some(())
    })
    .await;
    let logged = || async {
        hub.context
            .store
            .log_after(&north_id, 0, 100)
            .await
            .unwrap()
            .entries
            .len()
    };
    assert_eq!(logged().await, 1);
    // Within the retention period nothing goes.
    assert_eq!(hub.context.prune_log().await.unwrap(), 0);
    hub.clock.advance(jiff::SignedDuration::from_hours(24 * 91));
    // The first pruning after the period notes what is acknowledged now; the entries
    // acknowledged at the last note go.
    hub.context.prune_log().await.unwrap();
    hub.clock.advance(jiff::SignedDuration::from_hours(24 * 91));
    hub.context.prune_log().await.unwrap();
    assert_eq!(logged().await, 0);
    // The head still knows how far the log went: a region's cursor stays within it.
    let head = hub.context.store.log_head().await.unwrap();
    let position = north.context.store.hub_log_position().await.unwrap();
    assert!(position.cursor <= head.end_cursor);
}
