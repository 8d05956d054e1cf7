//! The federation as real processes: hub and regions killed with `kill -9` mid-stream and
//! mid-forward, between a notice's commit and its acknowledgement, and a hub restarted while
//! regions write; each region is back within seconds and nothing is lost or told twice.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tonic::transport::Channel;
use vix_protocol::region::v1 as pb;
use vix_protocol::region::v1::region_service_client::RegionServiceClient;
use vix_tests::process;

use super::{
    alt_youth_request, client, free_port, hub_config, region_config, start_node, start_role,
    start_role_watching, stop_gracefully,
};

/// Waits (bounded) until the federation of processes is quiet: every region's outboxes are
/// empty and every region has acknowledged its whole notice log at the hub. Whatever the hub
/// found before has then been stored by its recipient, so "nothing more" can be asserted.
async fn quiet(hub_db: &Path, regions: &[(&str, &Path)]) {
    let regions: Vec<(String, PathBuf)> = regions
        .iter()
        .map(|(region, db)| ((*region).to_owned(), db.to_path_buf()))
        .collect();
    let deadline = tokio::time::Instant::now() + FEDERATION_WAIT_MAX;
    loop {
        if process::backlog(hub_db, &regions).await.unwrap() == (0, 0) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the federation did not become quiet"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The last lines of every node log in `dir`, the dead letters and cursors of every database.
async fn diagnosis(dir: &Path) -> String {
    let mut text = String::new();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| entries.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    entries.sort();
    for path in entries {
        match path.extension().and_then(|e| e.to_str()) {
            Some("log") => {
                text.push_str(&format!(
                    "--- {} ---\n{}\n",
                    path.display(),
                    process::tail(&path, 40)
                ));
            }
            Some("sqlite") if !path.ends_with("hub.sqlite") => {
                for (what, sql) in [
                    ("outbox", "SELECT COUNT(*) FROM outbox"),
                    ("dead letters", "SELECT COUNT(*) FROM dead_letters"),
                    (
                        "hub cursor",
                        "SELECT COALESCE(MAX(cursor), 0) FROM hub_cursor",
                    ),
                    ("notices", "SELECT COUNT(*) FROM notices"),
                ] {
                    let value = process::count(&path, sql, "").await;
                    text.push_str(&format!("{}: {what} {value:?}\n", path.display()));
                }
            }
            Some("sqlite") => {
                let value = process::count(
                    &path,
                    "SELECT COUNT(*) FROM region_log WHERE cursor > COALESCE((SELECT acked_cursor FROM region_cursors c WHERE c.region_id = region_log.region_id), 0)",
                    "",
                )
                .await;
                text.push_str(&format!(
                    "{}: unacknowledged log entries {value:?}\n",
                    path.display()
                ));
            }
            _ => {}
        }
    }
    text
}

/// Registers until acknowledged, resending the same request_id after a failure (the node may be
/// down): idempotency makes the retry safe. Bounded in attempts.
pub(super) async fn register_until_acknowledged(
    client: &mut RegionServiceClient<Channel>,
    request: pb::RegisterSignalRequest,
) {
    for _ in 0..600 {
        if client.register_signal(request.clone()).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{} was never acknowledged", request.request_id);
}

/// The counterparts of every match the client's organisation holds, page by page; `None` while
/// the node cannot be reached.
pub(super) async fn match_counterparts(
    client: &mut RegionServiceClient<Channel>,
) -> Option<Vec<String>> {
    let mut seen = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = client
            .list_matches(pb::ListMatchesRequest {
                acting_professional_id: "p-acting".into(),
                page_token: page_token.clone(),
                ..Default::default()
            })
            .await
            .ok()?
            .into_inner();
        seen.extend(
            page.matches
                .into_iter()
                .map(|m| m.counterpart.unwrap().signal_id),
        );
        if page.next_page_token.is_empty() {
            return Some(seen);
        }
        page_token = page.next_page_token;
    }
}

/// Waits (bounded) until `client` sees at least `count` matches; on timeout, says what every
/// node in `dir` logged last and what waits where, so a rare failure can be read afterwards.
async fn wait_for_matches(client: &mut RegionServiceClient<Channel>, count: usize, dir: &Path) {
    let deadline = tokio::time::Instant::now() + FEDERATION_WAIT_MAX;
    loop {
        let seen = match_counterparts(client).await;
        if seen.as_ref().is_some_and(|seen| seen.len() >= count) {
            return;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!(
                "fewer than {count} matches in time: the last ListMatches saw {:?}\n{}",
                seen.map(|seen| seen.len()),
                diagnosis(dir).await
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Youths registered in both regions in the federation test.
const FEDERATION_YOUTHS: usize = 60;
const FEDERATION_WAIT_MAX: Duration = Duration::from_secs(60);

#[tokio::test]
async fn kill_9_of_the_hub_mid_stream_and_of_a_region_mid_forward_loses_and_repeats_nothing() {
    let pki = tempfile::tempdir().unwrap();
    vix_certs_dev::generate(pki.path(), &vix_certs_dev::DevPkiSpec::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let hub_addr = free_port();
    let south_addr = free_port();
    let hub_toml = hub_config(dir.path(), pki.path(), hub_addr);
    let north_toml = region_config(
        dir.path(),
        pki.path(),
        "north",
        "127.0.0.1:0",
        Some(hub_addr),
    );
    let south_toml = region_config(
        dir.path(),
        pki.path(),
        "south",
        &south_addr.to_string(),
        Some(hub_addr),
    );

    let (hub, _) = start_role("hub", &hub_toml).await;
    let (_north, north_addr) = start_node(&north_toml).await;
    let (south, _) = start_node(&south_toml).await;
    let mut jgz = client(north_addr, pki.path(), "jgz-north");
    let mut vt = client(south_addr, pki.path(), "vt-south");

    // Load: each youth in the north, then in the south, from two concurrent clients.
    let load = {
        let (mut jgz, mut vt) = (jgz.clone(), vt.clone());
        tokio::spawn(async move {
            for n in 0..FEDERATION_YOUTHS {
                register_until_acknowledged(&mut jgz, alt_youth_request("jgz-north", n)).await;
                register_until_acknowledged(&mut vt, alt_youth_request("vt-south", n)).await;
            }
        })
    };

    // Chaos: kill -9 the hub once notices flow, bring it back; then the south region.
    wait_for_matches(&mut jgz, 5, dir.path()).await;
    let mut hub = hub;
    hub.start_kill().unwrap();
    hub.wait().await.unwrap();
    let (hub, _) = start_role("hub", &hub_toml).await;

    wait_for_matches(&mut jgz, 20, dir.path()).await;
    let mut south = south;
    south.start_kill().unwrap();
    south.wait().await.unwrap();
    let (south, _) = start_node(&south_toml).await;

    load.await.unwrap();

    // Every youth gives exactly one notice at each side: none lost, none twice.
    wait_for_matches(&mut jgz, FEDERATION_YOUTHS, dir.path()).await;
    wait_for_matches(&mut vt, FEDERATION_YOUTHS, dir.path()).await;
    quiet(
        &dir.path().join("hub.sqlite"),
        &[
            ("north", &dir.path().join("north.sqlite")),
            ("south", &dir.path().join("south.sqlite")),
        ],
    )
    .await;
    for (org, client) in [("jgz-north", &mut jgz), ("vt-south", &mut vt)] {
        let mut seen = match_counterparts(client).await.unwrap();
        assert_eq!(seen.len(), FEDERATION_YOUTHS, "{org}");
        seen.sort();
        seen.dedup();
        assert_eq!(
            seen.len(),
            FEDERATION_YOUTHS,
            "{org} was told twice about one signal"
        );
    }
    eprintln!("federation kill -9: {FEDERATION_YOUTHS} youths, one notice each side");
    stop_gracefully(south).await;
    stop_gracefully(hub).await;
}

/// Waits (bounded) for a log line containing `needle`.
async fn log_line(log: &mut tokio::sync::mpsc::UnboundedReceiver<String>, needle: &str) {
    tokio::time::timeout(FEDERATION_WAIT_MAX, async {
        while let Some(line) = log.recv().await {
            if line.contains(needle) {
                return;
            }
        }
        panic!("the node's log ended before {needle:?}");
    })
    .await
    .unwrap_or_else(|_| panic!("no {needle:?} in the log in time"));
}

#[tokio::test]
async fn a_region_killed_between_storing_a_notice_and_acknowledging_it_stores_it_once() {
    let pki = tempfile::tempdir().unwrap();
    vix_certs_dev::generate(pki.path(), &vix_certs_dev::DevPkiSpec::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let hub_addr = free_port();
    let south_addr = free_port();
    let hub_toml = hub_config(dir.path(), pki.path(), hub_addr);
    let north_toml = region_config(
        dir.path(),
        pki.path(),
        "north",
        "127.0.0.1:0",
        Some(hub_addr),
    );
    let south_toml = region_config(
        dir.path(),
        pki.path(),
        "south",
        &south_addr.to_string(),
        Some(hub_addr),
    );
    let (hub, _) = start_role("hub", &hub_toml).await;
    let (north, north_addr) = start_node(&north_toml).await;
    let (mut south, _, mut south_log) = start_role_watching(
        "region",
        &south_toml,
        &[("VIX_REGION__FAILPOINT", "notice-stored-before-ack")],
    )
    .await;
    let mut jgz = client(north_addr, pki.path(), "jgz-north");
    let mut vt = client(south_addr, pki.path(), "vt-south");
    register_until_acknowledged(&mut vt, alt_youth_request("vt-south", 0)).await;
    register_until_acknowledged(&mut jgz, alt_youth_request("jgz-north", 0)).await;

    // South commits the notice, then stops before acknowledging it: killed right there.
    log_line(&mut south_log, "failpoint reached").await;
    south.start_kill().unwrap();
    south.wait().await.unwrap();
    let south_db = dir.path().join("south.sqlite");
    assert_eq!(
        process::count(&south_db, "SELECT COUNT(*) FROM notices", "")
            .await
            .unwrap(),
        1
    );
    let (south, _) = start_node(&south_toml).await;

    // The cursor moved with the notice, so nothing is stored again; the restarted node tells
    // the hub what it stored, and the federation settles with one notice and one e-mail.
    quiet(
        &dir.path().join("hub.sqlite"),
        &[
            ("north", &dir.path().join("north.sqlite")),
            ("south", &south_db),
        ],
    )
    .await;
    let seen = match_counterparts(&mut vt).await.unwrap();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(
        process::count(&south_db, "SELECT COUNT(*) FROM notices", "")
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        process::count(&south_db, "SELECT COUNT(*) FROM email_jobs", "")
            .await
            .unwrap(),
        1
    );
    stop_gracefully(south).await;
    stop_gracefully(north).await;
    stop_gracefully(hub).await;
}

/// How long the hub stays down in the recovery test: the outages of 2-4 s that were seen to
/// cost 17-45 s before (the fault's length, not a wait for anything).
const OUTAGE: Duration = Duration::from_secs(3);

#[tokio::test]
async fn after_a_hub_restart_every_region_streams_and_forwards_again_within_seconds() {
    let pki = tempfile::tempdir().unwrap();
    vix_certs_dev::generate(pki.path(), &vix_certs_dev::DevPkiSpec::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let hub_addr = free_port();
    let hub_toml = hub_config(dir.path(), pki.path(), hub_addr);
    let (hub, _) = start_role("hub", &hub_toml).await;
    let mut regions = Vec::new();
    for (region, org) in [
        ("north", "jgz-north"),
        ("south", "vt-south"),
        ("east", "wijkteam-east"),
    ] {
        let toml = region_config(
            dir.path(),
            pki.path(),
            region,
            "127.0.0.1:0",
            Some(hub_addr),
        );
        let (child, addr) = start_node(&toml).await;
        regions.push((region, org, child, client(addr, pki.path(), org)));
    }
    // Every region streams: one youth known in all three regions.
    for (_, org, _, client) in &mut regions {
        register_until_acknowledged(client, alt_youth_request(org, 0)).await;
    }
    for (_, _, _, client) in &mut regions {
        wait_for_matches(client, 2, dir.path()).await;
    }

    // kill -9 of the hub; the regions keep writing through the outage.
    let mut hub = hub;
    hub.start_kill().unwrap();
    hub.wait().await.unwrap();
    let outage = Instant::now();
    let mut n = 1;
    while outage.elapsed() < OUTAGE {
        for (_, org, _, client) in &mut regions {
            register_until_acknowledged(client, alt_youth_request(org, n)).await;
        }
        n += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (hub, _) = start_role("hub", &hub_toml).await;
    let restarted = Instant::now();
    // Each region is back when the youths registered during the outage are matched there:
    // its events were forwarded and its notice stream delivers again.
    let mut back_after = Vec::new();
    for (region, _, _, client) in &mut regions {
        wait_for_matches(client, 2 * n, dir.path()).await;
        back_after.push(format!(
            "{region} {:.1} s",
            restarted.elapsed().as_secs_f64()
        ));
    }
    eprintln!(
        "hub down {:.1} s ({} youths registered meanwhile); regions back after the restart: {}",
        OUTAGE.as_secs_f64(),
        n - 1,
        back_after.join(", ")
    );
    for (_, _, child, _) in regions {
        stop_gracefully(child).await;
    }
    stop_gracefully(hub).await;
}
