//! gRPC health follows the hub link: a region whose hub is away longer than
//! `unhealthy_after_ms` answers `NOT_SERVING` (a load balancer may then send professionals
//! elsewhere), and `SERVING` again once the link is back.

use tonic_health::ServingStatus;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;
use vix_tests::{TestRegion, eventually, new_dir, spawn_hub, spawn_hub_in_at, spawn_region_with};

async fn health(region: &TestRegion) -> i32 {
    HealthClient::new(region.channel("jgz-north"))
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .status
}

async fn until_health(region: &TestRegion, status: ServingStatus) {
    eventually(&format!("health {status:?}"), || async {
        (health(region).await == status as i32).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_hub_away_longer_than_the_threshold_makes_the_region_not_serving_until_it_is_back() {
    let hub = spawn_hub().await;
    let mut north = spawn_region_with("north", new_dir("north"), Some(hub.addr), |settings| {
        settings.unhealthy_after_ms = 300;
    })
    .await;
    hub.link(&mut north);
    until_health(&north, ServingStatus::Serving).await;

    let addr = hub.addr;
    let hub_dir = hub.stop().await;
    until_health(&north, ServingStatus::NotServing).await;
    // Registrations go on meanwhile: only the link is down.
    north
        .register_bsn("jgz-north", "999991383", "health-1")
        .await;

    let hub = spawn_hub_in_at(hub_dir, addr).await;
    hub.link(&mut north);
    until_health(&north, ServingStatus::Serving).await;
    north.quiet().await;
}
