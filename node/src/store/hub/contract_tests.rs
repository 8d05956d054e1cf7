//! The hub store's contract: one suite, run against SQLite (a real file) and against PostgreSQL
//! (a schema of its own per test on the server at `VIX_TEST_POSTGRES`, by default
//! `postgres://postgres@127.0.0.1:5432/test`). A PostgreSQL that cannot be reached fails the
//! PostgreSQL half; it is never skipped.
mod rotation;

use jiff::Timestamp;

use self::rotation::*;

use super::{HubStore, HubStoreError, LogEntry, LoggedNotice};
use crate::domain::contact::ContactInput;
use crate::domain::matching::NoticeKind;
use crate::domain::{FamilyKey, RegionId, Revision, SignalId, SignalState};
use crate::domain::{
    KeyVersion, OrganisationId, OrganisationName, ProfessionalContact, SubjectKey, ValidationErrors,
};
use crate::store::SweepReport;
use crate::store::hub::{BatchOutcome, HubSignal, SignalEvent};

/// A store under test, with what a test reads behind the store's back.
trait Subject: HubStore {
    /// Notices stored, delivered or not.
    async fn count_notices(&self) -> i64;
    /// Adoption entries' rows (sealed records) still held.
    async fn count_adoptions(&self) -> i64;
}

impl Subject for crate::store::hub_sqlite::HubSqliteStore {
    async fn count_notices(&self) -> i64 {
        sqlx::query_scalar("SELECT COUNT(*) FROM notices")
            .fetch_one(self.reader())
            .await
            .unwrap()
    }
    async fn count_adoptions(&self) -> i64 {
        sqlx::query_scalar("SELECT COUNT(*) FROM adoptions")
            .fetch_one(self.reader())
            .await
            .unwrap()
    }
}

impl Subject for crate::store::hub_postgres::PgHubStore {
    async fn count_notices(&self) -> i64 {
        sqlx::query_scalar("SELECT COUNT(*) FROM notices")
            .fetch_one(self.pool())
            .await
            .unwrap()
    }
    async fn count_adoptions(&self) -> i64 {
        sqlx::query_scalar("SELECT COUNT(*) FROM adoptions")
            .fetch_one(self.pool())
            .await
            .unwrap()
    }
}

async fn sqlite() -> (tempfile::TempDir, crate::store::hub_sqlite::HubSqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = crate::store::hub_sqlite::HubSqliteStore::open(
        &dir.path().join("hub.sqlite"),
        crate::store::GroupCommit::default(),
    )
    .await
    .unwrap();
    (dir, store)
}

/// Runs each named contract test once per backend.
macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod on_sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    let (_dir, store) = super::sqlite().await;
                    super::$name(&store).await;
                }
            )*
        }
        mod on_postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    let database = crate::store::postgres::testing::Schema::create()
                        .await
                        .expect("PostgreSQL for the contract tests (VIX_TEST_POSTGRES)");
                    let store = database.open().await.unwrap();
                    super::$name(&store).await;
                    store.close().await;
                    database.drop().await.unwrap();
                }
            )*
        }
    };
}

pub(in crate::store) fn region(id: &str) -> RegionId {
    RegionId::parse(id).unwrap()
}

pub(in crate::store) fn signal(
    org: &str,
    youth: u8,
    parents: &[u8],
    state: SignalState,
) -> HubSignal {
    let v1 = KeyVersion::new(1).unwrap();
    let mut errors = ValidationErrors::new();
    let contact = ProfessionalContact::parse(
        ContactInput {
            professional_id: "p1",
            name: &format!("Professional of {org}"),
            email: &format!("p1@{org}.example.nl"),
            phone: "",
        },
        "professional",
        &mut errors,
    )
    .unwrap();
    HubSignal {
        organisation_id: OrganisationId::parse(org).unwrap(),
        organisation_name: OrganisationName::parse(&org.to_uppercase()).unwrap(),
        contact,
        subject_key: SubjectKey::new(v1, [youth; 32]),
        family_keys: parents
            .iter()
            .map(|p| FamilyKey::new(v1, [*p; 32]))
            .collect(),
        registered_at: "2026-11-25T10:00:00Z".parse().unwrap(),
        planned_removal_date: jiff::civil::date(2028, 11, 25),
        state,
        inactive_since: (state == SignalState::Inactive).then(|| jiff::civil::date(2026, 11, 25)),
    }
}

pub(in crate::store) fn upsert(id: SignalId, revision: u64, signal: HubSignal) -> SignalEvent {
    SignalEvent {
        signal_id: id,
        revision: Revision::new(revision).unwrap(),
        upsert: Some(signal),
        previous_keys: Default::default(),
    }
}

/// The notices (not retractions) in `region`'s log after `after`.
pub(in crate::store) async fn notices_after(
    store: &impl HubStore,
    region: &RegionId,
    after: u64,
) -> Vec<LoggedNotice> {
    store
        .log_after(region, after, 100)
        .await
        .unwrap()
        .entries
        .into_iter()
        .filter_map(|entry| match entry {
            LogEntry::Notice(notice) => Some(*notice),
            LogEntry::Retraction { .. }
            | LogEntry::Coordination { .. }
            | LogEntry::Adoption { .. } => None,
        })
        .collect()
}

pub(in crate::store) fn now() -> Timestamp {
    "2026-11-25T12:00:00Z".parse().unwrap()
}

async fn a_cross_region_youth_match_logs_one_notice_for_each_region(store: &impl Subject) {
    let (north, south) = (region("north"), region("south"));
    let a = SignalId::generate();
    let b = SignalId::generate();
    store
        .submit(
            &north,
            vec![upsert(a, 1, signal("gp", 1, &[], SignalState::Active))],
            now(),
        )
        .await
        .unwrap();
    let outcome = store
        .submit(
            &south,
            vec![upsert(b, 1, signal("school", 1, &[], SignalState::Active))],
            now(),
        )
        .await
        .unwrap();
    assert_eq!(
        outcome,
        BatchOutcome {
            applied: 1,
            ignored: 0,
            notices: 2
        }
    );
    let to_north = notices_after(store, &north, 0).await;
    assert_eq!(to_north.len(), 1);
    assert_eq!(to_north[0].recipient_signal_id, a);
    assert_eq!(to_north[0].counterpart.signal_id, b);
    assert_eq!(to_north[0].counterpart.region_id, south);
    assert_eq!(
        to_north[0].counterpart.contact.email(),
        "p1@school.example.nl"
    );
    let to_south = notices_after(store, &south, 0).await;
    assert_eq!(to_south.len(), 1);
    assert_eq!(to_south[0].counterpart.signal_id, a);
    // Cursors only move forward.
    assert!(
        notices_after(store, &north, to_north[0].cursor)
            .await
            .is_empty()
    );
}

async fn same_region_pairs_are_left_to_the_node(store: &impl Subject) {
    let north = region("north");
    store
        .submit(
            &north,
            vec![upsert(
                SignalId::generate(),
                1,
                signal("gp", 1, &[7], SignalState::Active),
            )],
            now(),
        )
        .await
        .unwrap();
    let outcome = store
        .submit(
            &north,
            vec![upsert(
                SignalId::generate(),
                1,
                signal("school", 2, &[7], SignalState::Active),
            )],
            now(),
        )
        .await
        .unwrap();
    assert_eq!(outcome.notices, 0);
}

async fn a_replayed_batch_has_one_effect_and_the_latest_revision_wins(store: &impl Subject) {
    let (north, south) = (region("north"), region("south"));
    let a = SignalId::generate();
    let mut archived = signal("gp", 1, &[], SignalState::Inactive);
    archived.planned_removal_date = jiff::civil::date(2027, 1, 1);
    let batch = vec![
        upsert(a, 1, signal("gp", 1, &[], SignalState::Active)),
        upsert(a, 2, archived.clone()),
    ];
    assert_eq!(
        store
            .submit(&north, batch.clone(), now())
            .await
            .unwrap()
            .applied,
        2
    );
    let again = store.submit(&north, batch, now()).await.unwrap();
    assert_eq!(
        again,
        BatchOutcome {
            applied: 0,
            ignored: 2,
            notices: 0
        }
    );
    // An old revision arriving late changes nothing.
    let late = store
        .submit(
            &north,
            vec![upsert(a, 1, signal("gp", 1, &[], SignalState::Active))],
            now(),
        )
        .await
        .unwrap();
    assert_eq!(late.ignored, 1);
    // A new party sees revision 2: inactive, so a one-sided history notice.
    store
        .submit(
            &south,
            vec![upsert(
                SignalId::generate(),
                1,
                signal("school", 1, &[], SignalState::Active),
            )],
            now(),
        )
        .await
        .unwrap();
    let to_south = notices_after(store, &south, 0).await;
    assert_eq!(to_south.len(), 1);
    assert_eq!(to_south[0].kind, NoticeKind::History);
    assert_eq!(to_south[0].counterpart.state, SignalState::Inactive);
    assert!(notices_after(store, &north, 0).await.is_empty());
}

async fn a_region_cannot_write_another_regions_signal_and_the_batch_is_rolled_back(
    store: &impl Subject,
) {
    let (north, south) = (region("north"), region("south"));
    let a = SignalId::generate();
    store
        .submit(
            &north,
            vec![upsert(a, 1, signal("gp", 1, &[], SignalState::Active))],
            now(),
        )
        .await
        .unwrap();
    let b = SignalId::generate();
    let error = store
        .submit(
            &south,
            vec![
                upsert(b, 1, signal("school", 1, &[], SignalState::Active)),
                upsert(a, 2, signal("school", 1, &[], SignalState::Inactive)),
            ],
            now(),
        )
        .await
        .unwrap_err();
    assert!(matches!(error, HubStoreError::NotOwner { index: 1 }));
    assert!(
        notices_after(store, &north, 0).await.is_empty(),
        "b was rolled back"
    );
}

async fn a_deleted_signal_is_not_revived_by_a_replay(store: &impl Subject) {
    let (north, south) = (region("north"), region("south"));
    let a = SignalId::generate();
    let delete = SignalEvent {
        signal_id: a,
        revision: Revision::new(2).unwrap(),
        upsert: None,
        previous_keys: Default::default(),
    };
    store
        .submit(
            &north,
            vec![
                upsert(a, 1, signal("gp", 1, &[], SignalState::Active)),
                delete,
            ],
            now(),
        )
        .await
        .unwrap();
    let replay = store
        .submit(
            &north,
            vec![upsert(a, 1, signal("gp", 1, &[], SignalState::Active))],
            now(),
        )
        .await
        .unwrap();
    assert_eq!(replay.ignored, 1);
    store
        .submit(
            &south,
            vec![upsert(
                SignalId::generate(),
                1,
                signal("school", 1, &[], SignalState::Active),
            )],
            now(),
        )
        .await
        .unwrap();
    assert!(notices_after(store, &south, 0).await.is_empty());
}

async fn deleting_a_signal_removes_the_notices_that_name_it(store: &impl Subject) {
    let (north, south) = (region("north"), region("south"));
    let a = SignalId::generate();
    store
        .submit(
            &north,
            vec![upsert(a, 1, signal("gp", 1, &[], SignalState::Active))],
            now(),
        )
        .await
        .unwrap();
    store
        .submit(
            &south,
            vec![upsert(
                SignalId::generate(),
                1,
                signal("school", 1, &[], SignalState::Active),
            )],
            now(),
        )
        .await
        .unwrap();
    let delivered = notices_after(store, &south, 0).await;
    assert_eq!(delivered.len(), 1);
    let delete = SignalEvent {
        signal_id: a,
        revision: Revision::new(2).unwrap(),
        upsert: None,
        previous_keys: Default::default(),
    };
    store.submit(&north, vec![delete], now()).await.unwrap();
    assert!(notices_after(store, &south, 0).await.is_empty());
    assert!(notices_after(store, &north, 0).await.is_empty());
    // South, which may hold the notice already, is told to delete it.
    let after_delivery = store
        .log_after(&south, delivered[0].cursor, 10)
        .await
        .unwrap();
    assert_eq!(
        after_delivery.entries,
        [LogEntry::Retraction {
            cursor: after_delivery.read_through.unwrap(),
            notice_id: delivered[0].notice_id.clone(),
        }]
    );
    assert_eq!(store.count_notices().await, 0);
}

async fn the_hub_expires_at_r_and_deletes_five_years_later_with_retractions(store: &impl Subject) {
    let (north, south) = (region("north"), region("south"));
    let mut active = signal("gp", 1, &[], SignalState::Active);
    active.planned_removal_date = jiff::civil::date(2027, 6, 1);
    let a = SignalId::generate();
    store
        .submit(&north, vec![upsert(a, 1, active)], now())
        .await
        .unwrap();
    store
        .submit(
            &south,
            vec![upsert(
                SignalId::generate(),
                1,
                signal("school", 1, &[], SignalState::Active),
            )],
            now(),
        )
        .await
        .unwrap();
    let delivered = notices_after(store, &south, 0).await;
    assert_eq!(delivered.len(), 1);

    let day = jiff::civil::date;
    assert_eq!(
        store.sweep(day(2027, 5, 31), 100).await.unwrap(),
        SweepReport::default()
    );
    assert_eq!(
        store.sweep(day(2027, 6, 1), 100).await.unwrap(),
        SweepReport {
            expired: 1,
            deleted: 0
        }
    );
    assert_eq!(
        store.sweep(day(2027, 6, 1), 100).await.unwrap(),
        SweepReport::default()
    );
    // Meanwhile the school's signal (R = 2028-11-25) expired; the GP's archive still runs.
    assert_eq!(
        store.sweep(day(2032, 5, 31), 100).await.unwrap(),
        SweepReport {
            expired: 1,
            deleted: 0
        }
    );
    assert_eq!(
        store.sweep(day(2032, 6, 1), 100).await.unwrap(),
        SweepReport {
            expired: 0,
            deleted: 1
        }
    );
    let after = store
        .log_after(&south, delivered[0].cursor, 10)
        .await
        .unwrap();
    assert!(
        matches!(&after.entries[..], [LogEntry::Retraction { notice_id, .. }] if *notice_id == delivered[0].notice_id)
    );
    // The tombstone keeps a late region event from reviving it.
    let replay = store
        .submit(
            &north,
            vec![upsert(a, 2, signal("gp", 1, &[], SignalState::Inactive))],
            now(),
        )
        .await
        .unwrap();
    assert_eq!(replay.ignored, 1);
}

async fn a_signal_arriving_past_its_removal_date_is_stored_inactive_and_shown_as_history(
    store: &impl Subject,
) {
    let (north, south) = (region("north"), region("south"));
    // Sent late by a region that was away: active by its revision, but R has passed.
    let mut late = signal("gp", 1, &[], SignalState::Active);
    late.planned_removal_date = jiff::civil::date(2026, 11, 1);
    store
        .submit(&north, vec![upsert(SignalId::generate(), 1, late)], now())
        .await
        .unwrap();
    store
        .submit(
            &south,
            vec![upsert(
                SignalId::generate(),
                1,
                signal("school", 1, &[], SignalState::Active),
            )],
            now(),
        )
        .await
        .unwrap();
    let to_south = notices_after(store, &south, 0).await;
    assert_eq!(to_south.len(), 1);
    assert_eq!(to_south[0].kind, NoticeKind::History);
    assert!(notices_after(store, &north, 0).await.is_empty());
}

async fn a_pair_is_not_told_again_while_both_parties_exist_and_is_once_one_is_gone(
    store: &impl Subject,
) {
    let (north, south) = (region("north"), region("south"));
    let (s1, s3) = (SignalId::generate(), SignalId::generate());
    store
        .submit(
            &north,
            vec![upsert(s1, 1, signal("gp", 1, &[], SignalState::Active))],
            now(),
        )
        .await
        .unwrap();
    store
        .submit(
            &south,
            vec![upsert(
                SignalId::generate(),
                1,
                signal("school", 1, &[], SignalState::Active),
            )],
            now(),
        )
        .await
        .unwrap();
    // The GP's party keeps a second signal; deleting the first does not reset the pair.
    store
        .submit(
            &north,
            vec![upsert(s3, 1, signal("gp", 1, &[], SignalState::Active))],
            now(),
        )
        .await
        .unwrap();
    let delete = |id| SignalEvent {
        signal_id: id,
        revision: Revision::new(2).unwrap(),
        upsert: None,
        previous_keys: Default::default(),
    };
    store.submit(&north, vec![delete(s1)], now()).await.unwrap();
    let again = store
        .submit(
            &south,
            vec![upsert(
                SignalId::generate(),
                1,
                signal("school", 1, &[], SignalState::Active),
            )],
            now(),
        )
        .await
        .unwrap();
    assert_eq!(again.notices, 0);
    // Once the GP has no signal left on the youth, its party is gone: a new GP signal is
    // a new party, told anew.
    store.submit(&north, vec![delete(s3)], now()).await.unwrap();
    let anew = store
        .submit(
            &north,
            vec![upsert(
                SignalId::generate(),
                1,
                signal("gp", 1, &[], SignalState::Active),
            )],
            now(),
        )
        .await
        .unwrap();
    assert_eq!(anew.notices, 2);
}

async fn acknowledgements_never_move_backwards(store: &impl Subject) {
    let (north, south) = (region("north"), region("south"));
    store
        .submit(
            &north,
            vec![upsert(
                SignalId::generate(),
                1,
                signal("gp", 1, &[], SignalState::Active),
            )],
            now(),
        )
        .await
        .unwrap();
    for org in ["school", "care"] {
        store
            .submit(
                &south,
                vec![upsert(
                    SignalId::generate(),
                    1,
                    signal(org, 1, &[], SignalState::Active),
                )],
                now(),
            )
            .await
            .unwrap();
    }
    let log = notices_after(store, &north, 0).await;
    assert_eq!(log.len(), 2);
    assert_eq!(store.unacked(&north).await.unwrap(), 2);
    store.ack(&north, log[1].cursor, now()).await.unwrap();
    store.ack(&north, log[0].cursor, now()).await.unwrap();
    assert_eq!(store.unacked(&north).await.unwrap(), 0);
}

async fn end_of_log(store: &impl HubStore, region: &RegionId) -> u64 {
    store
        .log_after(region, 0, 1000)
        .await
        .unwrap()
        .read_through
        .unwrap_or(0)
}

async fn a_leaving_region_hands_its_signals_to_its_successor(store: &impl Subject) {
    let (north, south, east) = (region("north"), region("south"), region("east"));
    let (a, s, e) = (
        SignalId::generate(),
        SignalId::generate(),
        SignalId::generate(),
    );
    for (region, id, org) in [(&north, a, "gp"), (&south, s, "school"), (&east, e, "care")] {
        store
            .submit(
                region,
                vec![upsert(id, 1, signal(org, 1, &[], SignalState::Active))],
                now(),
            )
            .await
            .unwrap();
    }
    let south_orgs: std::collections::HashSet<OrganisationId> =
        [OrganisationId::parse("school").unwrap()].into();
    let handover = |revision: u64| super::Handover {
        signal_id: a,
        revision: Revision::new(revision).unwrap(),
        sealed_record: b"sealed for south".to_vec(),
    };
    let north_end = end_of_log(store, &north).await;
    assert!(north_end > 0, "north was told about school and care");
    // North has not stored its log: nothing is handed over.
    let refused = store
        .hand_over(
            &north,
            &south,
            &south_orgs,
            north_end - 1,
            vec![handover(1)],
            now(),
        )
        .await;
    assert!(
        matches!(refused, Err(HubStoreError::LogNotConsumed { end }) if end == north_end),
        "{refused:?}"
    );
    // Not the revision the hub holds: the outbox was not forwarded.
    let refused = store
        .hand_over(
            &north,
            &south,
            &south_orgs,
            north_end,
            vec![handover(2)],
            now(),
        )
        .await;
    assert!(
        matches!(refused, Err(HubStoreError::NotHandable { index: 0, .. })),
        "{refused:?}"
    );
    // Nor can a region hand over another region's signal.
    let refused = store
        .hand_over(
            &east,
            &south,
            &south_orgs,
            end_of_log(store, &east).await,
            vec![handover(1)],
            now(),
        )
        .await;
    assert!(
        matches!(refused, Err(HubStoreError::NotOwner { index: 0 })),
        "{refused:?}"
    );

    let south_before = end_of_log(store, &south).await;
    let east_before = end_of_log(store, &east).await;
    let outcome = store
        .hand_over(
            &north,
            &south,
            &south_orgs,
            north_end,
            vec![handover(1)],
            now(),
        )
        .await
        .unwrap();
    assert_eq!((outcome.handed_over, outcome.ignored), (1, 0));

    let south_log = store.log_after(&south, south_before, 100).await.unwrap();
    let adoptions: Vec<_> = south_log
        .entries
        .iter()
        .filter_map(|entry| match entry {
            LogEntry::Adoption { adoption, .. } => Some(adoption),
            _ => None,
        })
        .collect();
    assert_eq!(adoptions.len(), 1, "{:#?}", south_log.entries);
    assert_eq!(adoptions[0].signal_id, a);
    assert_eq!(adoptions[0].from_region_id, north);
    assert_eq!(adoptions[0].sealed_record, b"sealed for south");
    // The pairs gp and school were told, both ways; not those with east's care.
    let mut told: Vec<(&str, &str)> = adoptions[0]
        .told_pairs
        .iter()
        .map(|pair| {
            (
                pair.recipient_organisation_id.as_str(),
                pair.counterpart_organisation_id.as_str(),
            )
        })
        .collect();
    told.sort_unstable();
    assert_eq!(told, [("gp", "school"), ("school", "gp")]);
    // South's and east's notices showing a are sent again, naming its new region.
    for (region, before) in [(&south, south_before), (&east, east_before)] {
        let shown = notices_after(store, region, before).await;
        assert_eq!(shown.len(), 1, "{region}: {shown:#?}");
        assert_eq!(shown[0].counterpart.signal_id, a);
        assert_eq!(&shown[0].counterpart.region_id, &south);
    }
    // A rerun changes nothing.
    let again = store
        .hand_over(
            &north,
            &south,
            &south_orgs,
            north_end,
            vec![handover(1)],
            now(),
        )
        .await
        .unwrap();
    assert_eq!((again.handed_over, again.ignored), (0, 1));

    // The signal is south's now: south may change it, north may not.
    assert!(matches!(
        store
            .submit(
                &north,
                vec![upsert(a, 2, signal("gp", 1, &[], SignalState::Active))],
                now()
            )
            .await,
        Err(HubStoreError::NotOwner { index: 0 })
    ));
    store
        .submit(
            &south,
            vec![upsert(a, 2, signal("gp", 1, &[], SignalState::Active))],
            now(),
        )
        .await
        .unwrap();
    // A new party in east: the notice about it to a goes to south's log.
    let south_now = end_of_log(store, &south).await;
    store
        .submit(
            &east,
            vec![upsert(
                SignalId::generate(),
                1,
                signal("care2", 1, &[], SignalState::Active),
            )],
            now(),
        )
        .await
        .unwrap();
    let to_south = notices_after(store, &south, south_now).await;
    assert!(
        to_south
            .iter()
            .any(|notice| notice.recipient_signal_id == a),
        "{to_south:#?}"
    );
    assert!(
        store
            .log_after(&north, north_end, 100)
            .await
            .unwrap()
            .entries
            .is_empty(),
        "nothing more for north"
    );
    // Delivered and pruned: the sealed record goes with its entry.
    assert_eq!(store.count_adoptions().await, 1);
    let south_end = end_of_log(store, &south).await;
    store.ack(&south, south_end, now()).await.unwrap();
    // Noted now, pruned once the retention after the note has passed.
    store.prune_log(now(), now()).await.unwrap();
    let later = now()
        .checked_add(jiff::SignedDuration::from_hours(48))
        .unwrap();
    store.prune_log(later, later).await.unwrap();
    assert_eq!(store.count_adoptions().await, 0);
}

contract!(
    a_leaving_region_hands_its_signals_to_its_successor,
    a_cross_region_youth_match_logs_one_notice_for_each_region,
    same_region_pairs_are_left_to_the_node,
    a_replayed_batch_has_one_effect_and_the_latest_revision_wins,
    a_region_cannot_write_another_regions_signal_and_the_batch_is_rolled_back,
    a_deleted_signal_is_not_revived_by_a_replay,
    deleting_a_signal_removes_the_notices_that_name_it,
    the_hub_expires_at_r_and_deletes_five_years_later_with_retractions,
    a_signal_arriving_past_its_removal_date_is_stored_inactive_and_shown_as_history,
    a_pair_is_not_told_again_while_both_parties_exist_and_is_once_one_is_gone,
    acknowledgements_never_move_backwards,
    during_a_key_rotation_old_keys_find_and_rekeyed_signals_keep_their_told_pairs,
);
