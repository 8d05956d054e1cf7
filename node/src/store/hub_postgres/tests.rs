//! What only several writers on one PostgreSQL database can show: two hub instances racing on
//! the same keys, readers of a log that several instances append to, and connections ended
//! under load. The single-writer rules are in the contract suite (`store::hub`).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Barrier;

use super::PgHubStore;
use crate::domain::matching::MatchType;
use crate::domain::{FamilyKey, KeyVersion, RegionId, SignalId, SignalState, SubjectKey};
use crate::store::hub::contract_tests::{notices_after, now, region, signal, upsert};
use crate::store::hub::{HubSignal, HubStore, HubStoreError, LogEntry};
use crate::store::postgres::testing::Schema;

async fn schema() -> Schema {
    Schema::create()
        .await
        .expect("PostgreSQL for the store tests (VIX_TEST_POSTGRES)")
}

/// A signal of `org` on the youth numbered `youth` in the family numbered `family`: keys far
/// apart from the contract suite's one-byte ones.
fn keyed(org: &str, youth: u32, family: u32) -> HubSignal {
    let v1 = KeyVersion::new(1).unwrap();
    let key = |kind: u8, n: u32| {
        let mut bytes = [kind; 32];
        bytes[..4].copy_from_slice(&n.to_be_bytes());
        bytes
    };
    let mut signal = signal(org, 0, &[], SignalState::Active);
    signal.subject_key = SubjectKey::new(v1, key(0xa0, youth));
    signal.family_keys = vec![FamilyKey::new(v1, key(0xb0, family))];
    signal
}

/// Every entry of `region`'s log, page by page.
async fn whole_log(store: &impl HubStore, region: &RegionId) -> Vec<LogEntry> {
    let mut entries = Vec::new();
    let mut after = 0;
    loop {
        let page = store.log_after(region, after, 100).await.unwrap();
        entries.extend(page.entries);
        match page.read_through {
            Some(through) => after = through,
            None => return entries,
        }
    }
}

/// Submits `signal` as soon as every party waiting at `gate` is there.
async fn gated(
    gate: &Barrier,
    store: &PgHubStore,
    region: &RegionId,
    signal: HubSignal,
) -> crate::store::hub::BatchOutcome {
    gate.wait().await;
    store
        .submit(region, vec![upsert(SignalId::generate(), 1, signal)], now())
        .await
        .unwrap()
}

#[tokio::test]
async fn two_instances_racing_on_the_same_keys_tell_each_pair_exactly_once() {
    let database = schema().await;
    let (a, b) = (
        database.open().await.unwrap(),
        database.open().await.unwrap(),
    );
    let (north, south, east) = (region("north"), region("south"), region("east"));
    const ROUNDS: u32 = 40;
    for round in 0..ROUNDS {
        // The same youth in north and south, a sibling in east, all at the same moment, north
        // and east through one instance and south through the other.
        let gate = Barrier::new(3);
        let youth = round * 2;
        let (n, s, e) = tokio::join!(
            gated(&gate, &a, &north, keyed("jgz-north", youth, round)),
            gated(&gate, &b, &south, keyed("vt-south", youth, round)),
            gated(&gate, &a, &east, keyed("wijkteam-east", youth + 1, round)),
        );
        // Whichever order the three committed in, the pairs are told once between them.
        assert_eq!(n.notices + s.notices + e.notices, 6, "round {round}");
    }
    for (region, org) in [
        (&north, "jgz-north"),
        (&south, "vt-south"),
        (&east, "wijkteam-east"),
    ] {
        let notices = notices_after(&a, region, 0).await;
        let notices_b = notices_after(&b, region, 0).await;
        assert_eq!(notices, notices_b, "both instances read one log");
        assert_eq!(notices.len(), 2 * ROUNDS as usize, "{region}");
        let mut pairs = HashSet::new();
        for notice in &notices {
            assert_eq!(notice.recipient_organisation_id.as_str(), org);
            assert!(pairs.insert((
                notice.recipient_signal_id,
                notice.counterpart.organisation_id.clone()
            )));
        }
        let youth = notices
            .iter()
            .filter(|n| n.match_type == MatchType::Youth)
            .count();
        let expected_youth = if org == "wijkteam-east" { 0 } else { ROUNDS };
        assert_eq!(youth, expected_youth as usize, "{region}");
    }
    a.close().await;
    b.close().await;
    database.drop().await.unwrap();
}

#[tokio::test]
async fn a_reader_of_a_log_that_several_instances_append_to_never_skips_an_entry() {
    let database = schema().await;
    let instances = [
        Arc::new(database.open().await.unwrap()),
        Arc::new(database.open().await.unwrap()),
    ];
    let (north, south) = (region("north"), region("south"));
    const WRITERS: u32 = 6;
    const BATCHES: u32 = 15;
    // North's party on many youths, then south's parties on the same youths from several
    // writers at once: each south batch logs notices into north's log.
    let youths = WRITERS * BATCHES;
    let north_events: Vec<_> = (0..youths)
        .map(|youth| {
            upsert(
                SignalId::generate(),
                1,
                keyed("jgz-north", youth, 1_000_000 + youth),
            )
        })
        .collect();
    for chunk in north_events.chunks(100) {
        instances[0]
            .submit(&north, chunk.to_vec(), now())
            .await
            .unwrap();
    }
    let head_before = whole_log(&*instances[0], &north).await.len();
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let store = Arc::clone(&instances[1]);
        let done = Arc::clone(&done);
        let north = north.clone();
        tokio::spawn(async move {
            // A reader that trusted a page past a gap would move its cursor over an entry
            // that commits later: every page must continue exactly where the last one ended.
            let mut after = 0u64;
            let mut seen = 0usize;
            loop {
                let finished = done.load(Ordering::SeqCst);
                let page = store.log_after(&north, after, 7).await.unwrap();
                for entry in &page.entries {
                    assert_eq!(entry.cursor(), after + 1, "a gap in north's log");
                    after = entry.cursor();
                    seen += 1;
                }
                if finished && page.entries.is_empty() {
                    return seen;
                }
                tokio::task::yield_now().await;
            }
        })
    };
    let writers: Vec<_> = (0..WRITERS)
        .map(|writer| {
            let store = Arc::clone(&instances[(writer % 2) as usize]);
            let south = south.clone();
            tokio::spawn(async move {
                for batch in 0..BATCHES {
                    let youth = writer * BATCHES + batch;
                    store
                        .submit(
                            &south,
                            vec![upsert(
                                SignalId::generate(),
                                1,
                                keyed("vt-south", youth, 2_000_000 + youth),
                            )],
                            now(),
                        )
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    done.store(true, Ordering::SeqCst);
    let seen = reader.await.unwrap();
    assert_eq!(seen, head_before + youths as usize);
    for store in &instances {
        store.close().await;
    }
    database.drop().await.unwrap();
}

#[tokio::test]
async fn ended_connections_give_retryable_errors_and_lose_nothing_acknowledged() {
    let database = schema().await;
    let store = Arc::new(database.open().await.unwrap());
    let (north, south) = (region("north"), region("south"));
    const WRITERS: u32 = 4;
    const BATCHES: u32 = 25;
    // Every session of the schema is ended each time a writer's batch is acknowledged, while
    // the other writers are mid-transaction; at most 100 times, so every writer gets through.
    let stop = Arc::new(AtomicBool::new(false));
    let progress = Arc::new(tokio::sync::Notify::new());
    let terminator = {
        let (stop, progress) = (Arc::clone(&stop), Arc::clone(&progress));
        let schema = database.clone();
        tokio::spawn(async move {
            let mut ended = 0;
            for _ in 0..100 {
                progress.notified().await;
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                ended += schema.terminate_sessions().await.unwrap();
            }
            ended
        })
    };
    let writers: Vec<_> = (0..WRITERS)
        .map(|writer| {
            let (store, progress) = (Arc::clone(&store), Arc::clone(&progress));
            let (north, south) = (north.clone(), south.clone());
            tokio::spawn(async move {
                let mut acknowledged = Vec::new();
                let mut refused = 0;
                for batch in 0..BATCHES {
                    let youth = writer * BATCHES + batch;
                    let (region, org) = if batch % 2 == 0 {
                        (&north, "jgz-north")
                    } else {
                        (&south, "vt-south")
                    };
                    let id = SignalId::generate();
                    let event = upsert(id, 1, keyed(org, youth, youth));
                    // As a region's forwarder does: a refusal that may pass is tried again.
                    loop {
                        match store.submit(region, vec![event.clone()], now()).await {
                            Ok(_) => break,
                            Err(HubStoreError::Store(error)) if error.is_transient() => {
                                refused += 1;
                            }
                            Err(error) => panic!("not retryable: {error:?}"),
                        }
                    }
                    acknowledged.push((region.clone(), id));
                    progress.notify_one();
                }
                (acknowledged, refused)
            })
        })
        .collect();
    let mut acknowledged = Vec::new();
    for writer in writers {
        let (mine, _refused) = writer.await.unwrap();
        acknowledged.extend(mine);
    }
    stop.store(true, Ordering::SeqCst);
    progress.notify_one();
    let ended = terminator.await.unwrap();
    assert!(ended > 0, "the test ended no session");
    // Every acknowledged signal is there: a replay of each is ignored as already applied.
    let mut by_region: HashMap<RegionId, Vec<_>> = HashMap::new();
    for (region, id) in acknowledged {
        by_region.entry(region).or_default().push(id);
    }
    for (region, ids) in by_region {
        for id in ids {
            let org = if region == north {
                "jgz-north"
            } else {
                "vt-south"
            };
            let replay = store
                .submit(&region, vec![upsert(id, 1, keyed(org, 0, 0))], now())
                .await
                .unwrap();
            assert_eq!((replay.applied, replay.ignored), (0, 1), "{id} was lost");
        }
    }
    assert!(store.verify_audit().await.unwrap() > 0);
    store.close().await;
    database.drop().await.unwrap();
}

/// Sweeps `day` in steps of 50 until nothing is due; returns how many this store expired.
async fn sweep_all(store: &PgHubStore, day: jiff::civil::Date) -> u32 {
    let mut expired = 0;
    loop {
        let step = store.sweep(day, 50).await.unwrap();
        if step.is_empty() {
            return expired;
        }
        expired += step.expired;
    }
}

#[tokio::test]
async fn two_instances_sweeping_at_once_expire_each_signal_once() {
    let database = schema().await;
    let (a, b) = (
        database.open().await.unwrap(),
        database.open().await.unwrap(),
    );
    let north = region("north");
    const SIGNALS: u32 = 600;
    let events: Vec<_> = (0..SIGNALS)
        .map(|youth| upsert(SignalId::generate(), 1, keyed("jgz-north", youth, youth)))
        .collect();
    for chunk in events.chunks(200) {
        a.submit(&north, chunk.to_vec(), now()).await.unwrap();
    }
    // Past every planned removal date: both instances sweep in steps of 50 at the same time.
    let day = jiff::civil::date(2029, 1, 1);
    let (by_a, by_b) = tokio::join!(sweep_all(&a, day), sweep_all(&b, day));
    assert_eq!(by_a + by_b, SIGNALS, "a: {by_a}, b: {by_b}");
    // One expiry audited per signal, and the chain intact.
    let expiries: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM audit_log WHERE action = 'expire'")
            .fetch_one(a.pool())
            .await
            .unwrap();
    assert_eq!(expiries, i64::from(SIGNALS));
    assert!(a.verify_audit().await.unwrap() > 0);
    a.close().await;
    b.close().await;
    database.drop().await.unwrap();
}
