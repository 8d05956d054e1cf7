//! A region leaving the federation (issue 12, decommission): north hands every signal to south
//! through the hub. Signals keep their numbers, dates and informing records, their notices
//! (within north and across regions) and their unsent e-mails; nobody is told again; south
//! goes on matching and changing them as its own; north keeps nothing.

use std::collections::BTreeSet;
use std::sync::Arc;

use vix_node::config::AdoptionSettings;
use vix_node::domain::{Clock, ManualClock, RegionId};
use vix_node::handover_seal::HandoverSecret;
use vix_node::startup::RegionNode;
use vix_node::store::SignalStore;
use vix_protocol::region::v1 as pb;
use vix_tests::{
    FIXTURE_FAMILIES, TestRegion, eventually, new_dir, region_settings, spawn_hub, spawn_hub_with,
    spawn_linked_region, spawn_region_with, test_day, write_organisation_registry,
};

/// What a party sees of its matches: notice, own signal, counterpart's signal, organisation
/// and region.
fn seen(matches: &[pb::Match]) -> BTreeSet<(String, String, String, String, String)> {
    matches
        .iter()
        .map(|m| {
            let c = m.counterpart.clone().unwrap_or_default();
            (
                m.notice_id.clone(),
                m.signal_id.clone(),
                c.signal_id,
                c.organisation_id,
                c.region_id,
            )
        })
        .collect()
}

/// `seen` with every counterpart in `from` shown in `to`.
fn moved(
    seen: &BTreeSet<(String, String, String, String, String)>,
    from: &str,
    to: &str,
) -> BTreeSet<(String, String, String, String, String)> {
    seen.iter()
        .cloned()
        .map(|mut s| {
            if s.4 == from {
                s.4 = to.to_owned();
            }
            s
        })
        .collect()
}

/// North's node built on its stopped database, as `vix-node decommission` builds it: with
/// north's own configuration (its registry before the move), linked to the hub at `hub`.
async fn leaving_north(dir: &tempfile::TempDir, hub: std::net::SocketAddr) -> RegionNode {
    RegionNode::build(
        &region_settings("north", dir.path(), Some(hub)),
        Arc::new(ManualClock::at_noon(test_day())),
    )
    .await
    .unwrap()
}

async fn get(region: &TestRegion, org: &str, signal_id: &str) -> pb::Signal {
    region
        .client(org)
        .get_signal(pb::GetSignalRequest {
            signal_id: signal_id.into(),
            acting_professional_id: "p-read".into(),
        })
        .await
        .expect("GetSignal")
        .into_inner()
        .signal
        .expect("a signal")
}

async fn withdraw(region: &TestRegion, org: &str, signal_id: &str, reason: pb::WithdrawReason) {
    region
        .client(org)
        .withdraw_signal(pb::WithdrawSignalRequest {
            signal_id: signal_id.into(),
            reason: reason as i32,
            acting_professional_id: "p-withdraw".into(),
        })
        .await
        .expect("WithdrawSignal");
}

#[tokio::test]
async fn a_leaving_region_hands_its_signals_to_its_successor_and_nobody_is_told_twice() {
    let (child, sibling) = FIXTURE_FAMILIES[0];
    let (alone, _) = FIXTURE_FAMILIES[1];
    let hub = spawn_hub().await;
    let north = spawn_linked_region("north", &hub).await;
    let south = spawn_linked_region("south", &hub).await;
    let east = spawn_linked_region("east", &hub).await;

    // Within north, across to south, a family match with east, and an archived signal.
    let jgz = north.register_bsn("jgz-north", child, "d-1").await;
    let school = north.register_bsn("school-north", child, "d-2").await;
    south.register_bsn("vt-south", child, "d-3").await;
    east.register_bsn("wijkteam-east", sibling, "d-4").await;
    let archived = north.register_bsn("jgz-north", alone, "d-5").await;
    withdraw(
        &north,
        "jgz-north",
        &archived.signal_id,
        pb::WithdrawReason::RiskGone,
    )
    .await;
    hub.quiet().await;

    let jgz_seen = seen(&north.matches("jgz-north").await);
    let school_seen = seen(&north.matches("school-north").await);
    assert_eq!(jgz_seen.len(), 3, "school, vt and wijkteam: {jgz_seen:#?}");
    assert_eq!(school_seen.len(), 3, "{school_seen:#?}");
    let vt_seen = seen(&south.matches("vt-south").await);
    let wijk_seen = seen(&east.matches("wijkteam-east").await);
    let mut signals = Vec::new();
    for (org, id) in [
        ("jgz-north", &jgz.signal_id),
        ("school-north", &school.signal_id),
        ("jgz-north", &archived.signal_id),
    ] {
        signals.push((org, get(&north, org, id).await));
    }
    assert_eq!(signals[2].1.state, pb::SignalState::Inactive as i32);
    // No SMTP here: every notice's e-mail is still to go.
    let north_mails = north.context.store.emails_pending().await.unwrap();
    let south_mails = south.context.store.emails_pending().await.unwrap();
    let east_mails = east.context.store.emails_pending().await.unwrap();
    assert_eq!(north_mails, 6);

    // The operators: north stops; the registry gives north's organisations to south; south
    // makes a handover key and names north its predecessor.
    let north_dir = north.stop().await;
    let (south_dir, east_dir, hub_dir) = (south.stop().await, east.stop().await, hub.stop().await);
    let registry_dir = new_dir("registry");
    let registry = write_organisation_registry(
        registry_dir.path(),
        &[("jgz-north", "south"), ("school-north", "south")],
    );
    let key_file = south_dir.path().join("handover.key");
    let key = HandoverSecret::write_new(&key_file).unwrap().public_key();
    let hub = {
        let registry = registry.clone();
        spawn_hub_with(hub_dir, move |s| s.organisation_registry_file = registry).await
    };
    let mut south = {
        let registry = registry.clone();
        spawn_region_with("south", south_dir, Some(hub.addr), move |s| {
            s.organisation_registry_file = registry;
            s.adoption = Some(AdoptionSettings {
                key_file,
                predecessors: vec!["north".into()],
            });
        })
        .await
    };
    hub.link(&mut south);
    let mut east = spawn_region_with("east", east_dir, Some(hub.addr), move |s| {
        s.organisation_registry_file = registry;
    })
    .await;
    hub.link(&mut east);

    // `vix-node decommission` on north's database, with north's own configuration.
    let leaving = leaving_north(&north_dir, hub.addr).await;
    let held = vix_node::decommission::holdings(&leaving.context().store)
        .await
        .unwrap();
    assert_eq!(
        (
            held.active_signals,
            held.inactive_signals,
            held.emails_pending
        ),
        (2, 1, 6)
    );
    let south_id = RegionId::parse("south").unwrap();
    let handed = vix_node::decommission::run(
        Arc::clone(leaving.context()),
        leaving.hub().unwrap().clone(),
        &south_id,
        &key,
    )
    .await
    .unwrap();
    assert_eq!((handed.handed_over, handed.ignored), (3, 0));
    let left = vix_node::decommission::holdings(&leaving.context().store)
        .await
        .unwrap();
    assert_eq!((left.active_signals, left.inactive_signals), (0, 0));
    let rows = leaving.context().store.row_counts().await.unwrap();
    for table in [
        "signals",
        "notices",
        "told_pairs",
        "email_jobs",
        "coordination",
    ] {
        assert_eq!(rows.get(table), Some(&0), "{table} left on north: {rows:?}");
    }
    // A rerun finds nothing to hand over.
    let again = vix_node::decommission::run(
        Arc::clone(leaving.context()),
        leaving.hub().unwrap().clone(),
        &south_id,
        &key,
    )
    .await
    .unwrap();
    assert_eq!((again.handed_over, again.ignored), (0, 0));
    leaving.context().store.close().await;

    // South holds them as they were: numbers, revisions, dates, informing records, notices.
    hub.quiet().await;
    for (org, before) in &signals {
        assert_eq!(&get(&south, org, &before.signal_id).await, before);
    }
    // Their own notices as they were; nobody was told anything new; every notice showing one
    // of north's signals now shows it in south.
    for (region, org, before) in [
        (&south, "jgz-north", &jgz_seen),
        (&south, "school-north", &school_seen),
        (&south, "vt-south", &vt_seen),
        (&east, "wijkteam-east", &wijk_seen),
    ] {
        assert_eq!(
            seen(&region.matches(org).await),
            moved(before, "north", "south"),
            "{org}"
        );
    }
    assert_eq!(
        east.context.store.emails_pending().await.unwrap(),
        east_mails
    );
    // North's unsent e-mails are south's to send, once.
    assert_eq!(
        south.context.store.emails_pending().await.unwrap(),
        south_mails + north_mails
    );

    // South matches them as its own: a new party is told about them, once.
    south.register_bsn("gp-south", child, "d-6").await;
    hub.quiet().await;
    let jgz_now = seen(&south.matches("jgz-north").await);
    assert_eq!(jgz_now.len(), jgz_seen.len() + 1, "{jgz_now:#?}");
    // A party told before (through the hub) is not told again when it registers anew.
    let vt = south.matches("vt-south").await;
    let vt_signal = vt[0].signal_id.clone();
    withdraw(&south, "vt-south", &vt_signal, pb::WithdrawReason::RiskGone).await;
    south.register_bsn("vt-south", child, "d-7").await;
    hub.quiet().await;
    assert_eq!(seen(&south.matches("jgz-north").await), jgz_now);
    assert_eq!(
        south.matches("school-north").await.len(),
        school_seen.len() + 1,
        "only gp-south is new to school-north"
    );

    // And changes them: a withdrawal reaches the hub from south, which retracts east's notice.
    withdraw(
        &south,
        "jgz-north",
        &jgz.signal_id,
        pb::WithdrawReason::Unjustified,
    )
    .await;
    hub.quiet().await;
    assert!(
        east.matches("wijkteam-east").await.iter().all(|m| m
            .counterpart
            .as_ref()
            .unwrap()
            .signal_id
            != jgz.signal_id)
    );
    assert_eq!(south.context.store.dead_letter_count().await.unwrap(), 0);
    assert!(south.audit_entries().await > 0);
}

#[tokio::test]
async fn a_handover_from_a_region_not_named_as_predecessor_is_kept_aside() {
    let (child, _) = FIXTURE_FAMILIES[2];
    let hub = spawn_hub().await;
    let north = spawn_linked_region("north", &hub).await;
    let key_dir = new_dir("key");
    let key_file = key_dir.path().join("handover.key");
    let key = HandoverSecret::write_new(&key_file).unwrap().public_key();
    let mut south = spawn_region_with("south", new_dir("south"), Some(hub.addr), |s| {
        s.adoption = Some(AdoptionSettings {
            key_file,
            predecessors: vec!["east".into()],
        });
    })
    .await;
    hub.link(&mut south);
    let jgz = north.register_bsn("jgz-north", child, "k-1").await;
    hub.quiet().await;
    let north_dir = north.stop().await;
    let leaving = leaving_north(&north_dir, hub.addr).await;
    let handed = vix_node::decommission::run(
        Arc::clone(leaving.context()),
        leaving.hub().unwrap().clone(),
        &RegionId::parse("south").unwrap(),
        &key,
    )
    .await
    .unwrap();
    assert_eq!(handed.handed_over, 1);
    leaving.context().store.close().await;
    // Kept with its sealed record as a dead letter: nothing stored, nothing lost.
    let letters = eventually("the adoption kept aside", || async {
        let letters = vix_node::dead_letters::list(&south.context.store)
            .await
            .unwrap();
        (!letters.is_empty()).then_some(letters)
    })
    .await;
    assert_eq!(letters.len(), 1);
    assert!(
        letters[0].reason.contains("predecessors"),
        "{}",
        letters[0].reason
    );
    assert_eq!(
        south.context.store.row_counts().await.unwrap()["signals"],
        0
    );
    // Named now (the operator's fix), the retry stores it.
    let adopter = vix_node::region::adoption::Adopter::load(&AdoptionSettings {
        key_file: key_dir.path().join("handover.key"),
        predecessors: vec!["north".into()],
    })
    .unwrap();
    let outcome = vix_node::dead_letters::retry(
        &south.context.store,
        &[letters[0].id],
        &south.context.region_id,
        Some(&adopter),
        south.clock.now(),
    )
    .await
    .unwrap();
    assert_eq!(outcome[0].1, vix_node::dead_letters::RetryOutcome::Stored);
    assert_eq!(
        south.context.store.row_counts().await.unwrap()["signals"],
        1
    );
    let _ = jgz;
}

#[tokio::test]
async fn a_region_leaving_without_a_successor_deletes_its_signals_everywhere() {
    let (child, sibling) = FIXTURE_FAMILIES[3];
    let hub = spawn_hub().await;
    let north = spawn_linked_region("north", &hub).await;
    let south = spawn_linked_region("south", &hub).await;
    north.register_bsn("jgz-north", child, "p-1").await;
    north.register_bsn("school-north", sibling, "p-2").await;
    south.register_bsn("vt-south", child, "p-3").await;
    hub.quiet().await;
    assert_eq!(
        south.matches("vt-south").await.len(),
        2,
        "a youth and a family match"
    );
    let audited = north.audit_entries().await;

    let north_dir = north.stop().await;
    let leaving = leaving_north(&north_dir, hub.addr).await;
    let purged = vix_node::decommission::purge(
        Arc::clone(leaving.context()),
        leaving.hub().unwrap().clone(),
    )
    .await
    .unwrap();
    assert_eq!((purged.deleted, purged.forwarded), (2, 2));
    let rows = leaving.context().store.row_counts().await.unwrap();
    assert!(rows.values().all(|count| *count == 0), "{rows:?}");
    // Each deletion audited; the chain holds.
    assert_eq!(
        leaving.context().store.verify_audit().await.unwrap(),
        u64::try_from(audited).unwrap() + 2
    );
    leaving.context().store.close().await;

    // The hub retracted south's notices naming them.
    hub.quiet().await;
    assert_eq!(south.matches("vt-south").await, []);
}
