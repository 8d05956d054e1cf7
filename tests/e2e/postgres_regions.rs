//! A region node on PostgreSQL: two instances of north on one database beside south on SQLite,
//! both north instances serving professionals, forwarding to the hub and streaming its notice
//! log at once; and a node whose database sessions are ended mid-load.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use vix_node::store::SignalStore;
use vix_node::store::database_location::DatabaseLocation;
use vix_node::store::postgres::testing::Schema;
use vix_protocol::region::v1 as pb;
use vix_tests::{
    FIXTURE_FAMILIES as FAMILIES, TestHub, TestRegion, eventually, fixture_parents, informing_for,
    is_quiet, new_dir, professional, spawn_hub, spawn_linked_region, spawn_region_with, test_day,
};

/// An instance of north on `schema`, linked to `hub`.
async fn north_on(schema: &Schema, hub: &TestHub) -> TestRegion {
    let url = schema.url();
    let mut node = spawn_region_with("north", new_dir("north"), Some(hub.addr), move |settings| {
        settings.database = DatabaseLocation::Postgres(url);
    })
    .await;
    hub.link(&mut node);
    node
}

fn request(org: &str, bsn: &str) -> pb::RegisterSignalRequest {
    pb::RegisterSignalRequest {
        request_id: format!("{org}-{bsn}"),
        youth: Some(pb::register_signal_request::Youth::Bsn(bsn.into())),
        professional: Some(professional(org)),
        planned_removal_date: String::new(),
        informing: Some(informing_for(bsn, test_day())),
    }
}

/// Registers `bsn` at `region` for `org` as its own task, retrying while the node answers
/// `Unavailable` (the request is idempotent by its id); answers how many tries were refused so.
fn register(
    region: &TestRegion,
    org: &str,
    bsn: &str,
) -> tokio::task::JoinHandle<(pb::RegisterSignalResponse, u32)> {
    let mut client = region.client(org);
    let request = request(org, bsn);
    tokio::spawn(async move {
        let mut refused = 0;
        loop {
            match client.register_signal(request.clone()).await {
                Ok(response) => return (response.into_inner(), refused),
                Err(status) if status.code() == tonic::Code::Unavailable && refused < 50 => {
                    refused += 1;
                }
                Err(status) => panic!("RegisterSignal: {status:?}"),
            }
        }
    })
}

/// Each match's (own signal, counterpart signal) once: no pair told twice.
fn assert_each_pair_once(org: &str, matches: &[pb::Match]) {
    let pairs: HashSet<_> = matches
        .iter()
        .map(|m| {
            (
                m.signal_id.clone(),
                m.counterpart.as_ref().unwrap().signal_id.clone(),
            )
        })
        .collect();
    assert_eq!(pairs.len(), matches.len(), "{org}: a pair told twice");
}

#[tokio::test]
async fn two_instances_of_a_region_on_one_database_tell_each_pair_once() {
    let schema = Schema::create()
        .await
        .expect("PostgreSQL for the two-instance region test (VIX_TEST_POSTGRES)");
    let hub = spawn_hub().await;
    let (north_a, north_b) = (north_on(&schema, &hub).await, north_on(&schema, &hub).await);
    let south = spawn_linked_region("south", &hub).await;

    // Every family at once: the child at both north instances (two organisations, so the two
    // registrations of one youth race on two instances), the sibling at one, the child in south.
    let registered: Vec<(&str, &str)> = FAMILIES
        .iter()
        .flat_map(|(child, sibling)| {
            [
                ("jgz-north", *child),
                ("school-north", *child),
                ("jgz-north", *sibling),
                ("vt-south", *child),
            ]
        })
        .collect();
    let mut registrations = Vec::new();
    for (child, sibling) in FAMILIES {
        registrations.push(register(&north_a, "jgz-north", child));
        registrations.push(register(&north_b, "school-north", child));
        registrations.push(register(&north_b, "jgz-north", sibling));
        registrations.push(register(&south, "vt-south", child));
    }
    for registration in registrations {
        registration.await.unwrap();
    }
    let regions = [
        north_a.context.clone(),
        north_b.context.clone(),
        south.context.clone(),
    ];
    eventually("the federation quiet", || async {
        is_quiet(&hub.context, &regions).await.then_some(())
    })
    .await;

    // Each organisation is told about every other organisation's party on its youth or on a
    // youth with a parent in common, once, whichever instance took either registration.
    let parents = fixture_parents();
    let related =
        |a: &str, b: &str| a == b || parents[a].iter().any(|parent| parents[b].contains(parent));
    let expected = |org: &str| {
        let parties: HashSet<(&str, &str)> = registered.iter().copied().collect();
        parties
            .iter()
            .filter(|(mine, _)| *mine == org)
            .map(|(_, youth)| {
                parties
                    .iter()
                    .filter(|(other, theirs)| *other != org && related(youth, theirs))
                    .count()
            })
            .sum::<usize>()
    };
    let mut total = 0;
    for (region, org) in [
        (&north_a, "jgz-north"),
        (&north_b, "school-north"),
        (&south, "vt-south"),
    ] {
        let matches = region.matches(org).await;
        assert_eq!(matches.len(), expected(org), "{org}: {matches:#?}");
        assert_each_pair_once(org, &matches);
        total += matches.len() as i64;
    }
    // One e-mail per notice (north's two instances share one database): no notice was stored
    // twice by the two instances' notice streams.
    let jobs = north_a.row_counts().await["email_jobs"] + south.row_counts().await["email_jobs"];
    assert_eq!(jobs, total);
    north_a.context.store.verify_audit().await.unwrap();
    drop((north_a, north_b, south));
    hub.stop().await;
    schema.drop().await.unwrap();
}

#[tokio::test]
async fn ended_sessions_of_a_region_database_mid_load_lose_nothing() {
    let schema = Schema::create()
        .await
        .expect("PostgreSQL for the region session test (VIX_TEST_POSTGRES)");
    let hub = spawn_hub().await;
    let north = north_on(&schema, &hub).await;
    let south = spawn_linked_region("south", &hub).await;
    // Every session of north's database is ended each time a registration is acknowledged
    // while both regions register the same youths: north answers UNAVAILABLE where a
    // statement was cut, the callers retry (request ids make that safe), north's forwarder and
    // notice stream retry by themselves. The ending stops with the registrations.
    let stop = Arc::new(AtomicBool::new(false));
    let progress = Arc::new(tokio::sync::Notify::new());
    let terminator = {
        let (stop, progress, schema) = (Arc::clone(&stop), Arc::clone(&progress), schema.clone());
        tokio::spawn(async move {
            let mut ended = 0;
            loop {
                progress.notified().await;
                if stop.load(Ordering::SeqCst) {
                    return ended;
                }
                ended += schema.terminate_sessions().await.unwrap();
            }
        })
    };
    let youths: Vec<&str> = FAMILIES.iter().flat_map(|(a, b)| [*a, *b]).collect();
    let mut registrations = Vec::new();
    for youth in &youths {
        registrations.push(register(&north, "jgz-north", youth));
        registrations.push(register(&south, "vt-south", youth));
    }
    let mut refused = 0;
    for registration in registrations {
        let (response, tries) = registration.await.unwrap();
        assert!(response.signal.is_some());
        refused += tries;
        progress.notify_one();
    }
    stop.store(true, Ordering::SeqCst);
    progress.notify_one();
    let ended = terminator.await.unwrap();
    let regions = [north.context.clone(), south.context.clone()];
    eventually("the federation quiet", || async {
        is_quiet(&hub.context, &regions).await.then_some(())
    })
    .await;
    assert!(ended > 0, "no session was ended");
    // Every acknowledged registration is there, and each youth matched once at each side.
    assert_eq!(
        north.row_counts().await["signals"],
        youths.len() as i64,
        "north's signals"
    );
    for (region, org) in [(&north, "jgz-north"), (&south, "vt-south")] {
        let matches = region.matches(org).await;
        let youth_matches = matches
            .iter()
            .filter(|m| m.match_type == pb::MatchType::Youth as i32)
            .count();
        assert_eq!(youth_matches, youths.len(), "{org}");
        assert_each_pair_once(org, &matches);
    }
    north.context.store.verify_audit().await.unwrap();
    eprintln!("{ended} sessions of north's database ended; {refused} registrations refused");
    drop((north, south));
    hub.stop().await;
    schema.drop().await.unwrap();
}
