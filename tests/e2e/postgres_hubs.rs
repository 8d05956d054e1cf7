//! Two hub instances on one PostgreSQL database, three regions spread over them: north and east
//! stream from and submit to one instance, south to the other. Everything a region sees went
//! through real nodes, mutual TLS, the forwarders, both hubs' matchers and their notice streams.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use vix_node::store::database_location::DatabaseLocation;
use vix_node::store::postgres::testing::Schema;
use vix_protocol::region::v1 as pb;
use vix_tests::{
    FIXTURE_FAMILIES as FAMILIES, TestHub, TestRegion, eventually, fixture_parents, informing_for,
    is_quiet, new_dir, professional, spawn_hub_with, spawn_linked_region, test_day,
};

async fn hub_on(schema: &Schema) -> TestHub {
    let url = schema.url();
    spawn_hub_with(new_dir("hub"), move |settings| {
        settings.database = DatabaseLocation::Postgres(url);
    })
    .await
}

/// Registers `bsn` at `region` for `org`, as its own task (so many go at once).
fn register(
    region: &TestRegion,
    org: &str,
    bsn: &str,
) -> tokio::task::JoinHandle<pb::RegisterSignalResponse> {
    let mut client = region.client(org);
    let request = pb::RegisterSignalRequest {
        request_id: format!("{org}-{bsn}"),
        youth: Some(pb::register_signal_request::Youth::Bsn(bsn.into())),
        professional: Some(professional(org)),
        planned_removal_date: String::new(),
        informing: Some(informing_for(bsn, test_day())),
    };
    tokio::spawn(async move {
        client
            .register_signal(request)
            .await
            .expect("RegisterSignal")
            .into_inner()
    })
}

#[tokio::test]
async fn two_hub_instances_tell_each_pair_of_three_regions_exactly_once() {
    let schema = Schema::create()
        .await
        .expect("PostgreSQL for the two-instance test (VIX_TEST_POSTGRES)");
    let (hub_a, hub_b) = (hub_on(&schema).await, hub_on(&schema).await);
    let north = spawn_linked_region("north", &hub_a).await;
    let south = spawn_linked_region("south", &hub_b).await;
    let east = spawn_linked_region("east", &hub_a).await;

    // Every family at once: the child in north and south, the sibling in east. The three
    // registrations of a family reach the hubs at about the same moment, through both instances.
    let mut registrations = Vec::new();
    for (child, sibling) in FAMILIES {
        registrations.push(register(&north, "jgz-north", child));
        registrations.push(register(&south, "vt-south", child));
        registrations.push(register(&east, "wijkteam-east", sibling));
    }
    for registration in registrations {
        registration.await.unwrap();
    }
    let regions = [
        north.context.clone(),
        south.context.clone(),
        east.context.clone(),
    ];
    eventually("the federation quiet", || async {
        is_quiet(&hub_a.context, &regions).await.then_some(())
    })
    .await;

    // Each organisation is told about every other party on its youth or a youth with a parent
    // in common (children of these families have half-siblings among the others), once.
    let registered: Vec<(&str, &str)> = FAMILIES
        .iter()
        .flat_map(|(child, sibling)| {
            [
                ("jgz-north", *child),
                ("vt-south", *child),
                ("wijkteam-east", *sibling),
            ]
        })
        .collect();
    let parents = fixture_parents();
    let related =
        |a: &str, b: &str| a == b || parents[a].iter().any(|parent| parents[b].contains(parent));
    let expected = |org: &str| {
        registered
            .iter()
            .filter(|(mine, _)| *mine == org)
            .map(|(_, youth)| {
                registered
                    .iter()
                    .filter(|(other, theirs)| *other != org && related(youth, theirs))
                    .count()
            })
            .sum::<usize>()
    };
    let mut total = 0;
    for (region, org, youth_matches) in [
        (&north, "jgz-north", FAMILIES.len()),
        (&south, "vt-south", FAMILIES.len()),
        (&east, "wijkteam-east", 0),
    ] {
        let matches = region.matches(org).await;
        assert_eq!(matches.len(), expected(org), "{org}: {matches:#?}");
        total += matches.len() as i64;
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
        let youth = matches
            .iter()
            .filter(|m| m.match_type == pb::MatchType::Youth as i32)
            .count();
        assert_eq!(youth, youth_matches, "{org}");
    }
    // One e-mail per notice: nothing was stored twice.
    let mut jobs = 0;
    for region in [&north, &south, &east] {
        jobs += region.row_counts().await["email_jobs"];
    }
    assert_eq!(jobs, total);
    drop((north, south, east));
    hub_a.stop().await;
    hub_b.stop().await;
    schema.drop().await.unwrap();
}

#[tokio::test]
async fn ended_database_sessions_mid_load_lose_and_repeat_nothing() {
    let schema = Schema::create()
        .await
        .expect("PostgreSQL for the session test (VIX_TEST_POSTGRES)");
    let hub = hub_on(&schema).await;
    let north = spawn_linked_region("north", &hub).await;
    let south = spawn_linked_region("south", &hub).await;
    // Every hub session (pool, listener) is ended each time a registration is acknowledged while
    // both regions register the same youths (their forwarders and streams are mid-call): the hub answers UNAVAILABLE where a statement was cut, the regions retry,
    // notice streams and the listener reconnect. The ending stops with the registrations (a
    // slow machine could otherwise be kept from ever committing), and the federation must
    // then settle by itself.
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
    for registration in registrations {
        registration.await.unwrap();
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
    // Each youth once at each side (and the family matches of siblings across regions).
    for (region, org) in [(&north, "jgz-north"), (&south, "vt-south")] {
        let matches = region.matches(org).await;
        let youth_matches = matches
            .iter()
            .filter(|m| m.match_type == pb::MatchType::Youth as i32)
            .count();
        assert_eq!(youth_matches, youths.len(), "{org}");
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
    eprintln!("{ended} database sessions ended during the load");
    drop((north, south));
    hub.stop().await;
    schema.drop().await.unwrap();
}
