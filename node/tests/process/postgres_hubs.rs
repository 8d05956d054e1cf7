//! Two hub processes on one PostgreSQL database and three region processes spread over them,
//! each region knowing the other instance as its fallback. One instance is killed with
//! `kill -9` mid-load and not brought back: its regions fail over to the other, and every youth
//! still gives exactly one notice to each other party, none lost, none twice.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use vix_node::store::hub::HubStore;
use vix_node::store::postgres::testing::Schema;
use vix_tests::process;

use super::federation::{match_counterparts, register_until_acknowledged};
use super::{
    alt_youth_request, client, free_port, hub_config, region_config, start_role_with,
    stop_gracefully,
};

/// Youths registered in all three regions.
const YOUTHS: usize = 100;

/// Whether every region's outboxes are empty and every region acknowledged its whole log at
/// the hub's database: what was found before has been stored by its recipients.
async fn quiet(hub: &impl HubStore, dir: &Path) -> bool {
    for region in ["north", "south", "east"] {
        let db = dir.join(format!("{region}.sqlite"));
        let queued = process::count(
            &db,
            "SELECT (SELECT COUNT(*) FROM outbox) + (SELECT COUNT(*) FROM coordination_outbox)",
            "",
        )
        .await;
        let region_id = vix_node::domain::RegionId::parse(region).unwrap();
        if queued.ok() != Some(0) || hub.unacked(&region_id).await.ok() != Some(0) {
            return false;
        }
    }
    true
}

#[tokio::test]
async fn a_hub_instance_killed_mid_load_hands_its_regions_to_the_other_and_loses_nothing() {
    let schema = Schema::create()
        .await
        .expect("PostgreSQL for the two-instance test (VIX_TEST_POSTGRES)");
    let url = schema.url();
    let pki = tempfile::tempdir().unwrap();
    vix_certs_dev::generate(pki.path(), &vix_certs_dev::DevPkiSpec::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (free_port(), free_port());
    let mut hubs = Vec::new();
    for (name, addr) in [("hub-a", a), ("hub-b", b)] {
        let config = dir.path().join(format!("{name}.toml"));
        std::fs::rename(hub_config(dir.path(), pki.path(), addr), &config).unwrap();
        let (child, _) = start_role_with("hub", &config, &[("VIX_HUB__DATABASE", &url)]).await;
        hubs.push(child);
    }
    let mut clients = Vec::new();
    for (region, org, hub, fallback) in [
        ("north", "jgz-north", a, b),
        ("south", "vt-south", b, a),
        ("east", "wijkteam-east", a, b),
    ] {
        let config = region_config(dir.path(), pki.path(), region, "127.0.0.1:0", Some(hub));
        let fallback = format!("[\"{fallback}\"]");
        let (child, addr) = start_role_with(
            "region",
            &config,
            &[("VIX_REGION__HUB__FALLBACK_ADDRESSES", &fallback)],
        )
        .await;
        clients.push((region, org, child, config, client(addr, pki.path(), org)));
    }

    // Load: every youth in all three regions, from three concurrent clients.
    let acknowledged = Arc::new(AtomicUsize::new(0));
    let loads: Vec<_> = clients
        .iter()
        .map(|(_, org, _, _, client)| {
            let (org, mut client) = (*org, client.clone());
            let acknowledged = Arc::clone(&acknowledged);
            tokio::spawn(async move {
                for n in 0..YOUTHS {
                    register_until_acknowledged(&mut client, alt_youth_request(org, n)).await;
                    acknowledged.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();

    // kill -9 of instance A once notices flow through it; it stays down.
    let north = clients[0].4.clone();
    vix_tests::eventually("notices at north", || {
        let mut north = north.clone();
        async move {
            match_counterparts(&mut north)
                .await
                .filter(|seen| seen.len() >= 4)
        }
    })
    .await;
    let mut killed = hubs.remove(0);
    killed.start_kill().unwrap();
    killed.wait().await.unwrap();
    let before_kill = acknowledged.load(Ordering::SeqCst);
    assert!(
        before_kill < 3 * YOUTHS,
        "the load was over before the kill"
    );
    eprintln!(
        "hub A killed after {before_kill} of {} registrations",
        3 * YOUTHS
    );
    for load in loads {
        load.await.unwrap();
    }

    // North and east now reach the hub through B only. Once the federation is quiet, each
    // organisation holds one notice per youth and other region: none lost, none twice.
    let hub = schema.open().await.unwrap();
    vix_tests::eventually("the federation quiet", || async {
        quiet(&hub, dir.path()).await.then_some(())
    })
    .await;
    for (region, org, _, _, client) in &mut clients {
        let mut seen = match_counterparts(client).await.unwrap();
        assert_eq!(seen.len(), 2 * YOUTHS, "{region} {org}");
        seen.sort();
        seen.dedup();
        assert_eq!(
            seen.len(),
            2 * YOUTHS,
            "{org} was told twice about one signal"
        );
    }
    let log = std::fs::read_to_string(dir.path().join("north.log")).unwrap_or_default();
    assert!(
        log.contains(&b.to_string()),
        "north never reached the other instance"
    );
    hub.close().await;
    for (_, _, child, _, _) in clients {
        stop_gracefully(child).await;
    }
    for child in hubs {
        stop_gracefully(child).await;
    }
    schema.drop().await.unwrap();
}
