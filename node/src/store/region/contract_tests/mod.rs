//! The region store's contract: the rules of DOMAIN.md that a region node's [`SignalStore`]
//! keeps (registration and replay, matching, withdrawal, updates, corrections, erasure, death,
//! the lifecycle sweep, the hub's notice log, coordination, dead letters, the audit chain),
//! tested through the trait alone so that every backend runs the same suite. What a test reads
//! behind the store's back goes through [`Subject`].
mod changes;
mod decommission;
mod hub;
mod lifecycle;
mod mail;
mod registration;

use std::collections::HashMap;

use jiff::civil::{Date, date};
use jiff::{SignedDuration, Timestamp};

use crate::domain::audit::{Actor, AuditAction, AuditEntry};
use crate::domain::contact::ContactInput;
use crate::domain::coordination::{
    ChangeKind, CoordinationAction, CoordinationChange, CoordinationView, Party,
};
use crate::domain::informing::{InformingError, InformingRecord, age_on, required_audience};
use crate::domain::matching::{MatchType, NoticeKind};
use crate::domain::signal::{LifecycleError, RemovalDateError};
use crate::domain::{
    Clock, FamilyKey, KeyVersion, ManualClock, MunicipalityCode, OrganisationId, OrganisationName,
    ProfessionalContact, RegionId, Revision, SignalId, SignalState, SubjectKey, ValidationErrors,
    WithdrawReason,
};
use crate::store::dead_letter::{DeadLetter, DeadLetterSource, Retried};
use crate::store::hub::{LogEntry, LoggedNotice};
use crate::store::outbox::OutboxEvent;
use crate::store::region_postgres::PgRegionStore;
use crate::store::sqlite::SqliteStore;
use crate::store::{
    Acting, CounterpartView, HubLogApplied, MatchPage, MatchView, NewSignal, NoticeDelivery,
    OutboxEntry, Registered, SignalPage, SignalPosition, SignalStore, SignalUpdate, StoreError,
    StoredSignal, SweepReport, Withdrawn,
};

use self::changes::*;
use self::decommission::*;
use self::hub::*;
use self::lifecycle::*;
use self::mail::*;
use self::registration::*;

/// A store under test, with what a test reads behind the store's back.
trait Subject: SignalStore {
    /// Rows per table: `signals`, `signal_family_keys`, `notices`, `email_jobs`, `outbox`.
    async fn row_counts(&self) -> HashMap<&'static str, i64> {
        let mut counts = self.all_row_counts().await;
        counts.retain(|table, _| !matches!(*table, "told_pairs" | "coordination"));
        counts
    }
    /// Rows per table, `told_pairs` and `coordination` too.
    async fn all_row_counts(&self) -> HashMap<&'static str, i64>;
}

impl Subject for SqliteStore {
    async fn all_row_counts(&self) -> HashMap<&'static str, i64> {
        crate::store::sqlite::row_counts(self).await.unwrap()
    }
}

impl Subject for PgRegionStore {
    async fn all_row_counts(&self) -> HashMap<&'static str, i64> {
        PgRegionStore::row_counts(self).await.unwrap()
    }
}

/// The region every store under test serves.
fn north() -> RegionId {
    RegionId::parse("north").unwrap()
}

async fn sqlite() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(
        &dir.path().join("region.sqlite"),
        north(),
        crate::store::GroupCommit::default(),
    )
    .await
    .unwrap();
    (dir, store)
}

/// Runs each named contract test on a fresh store of each backend: a SQLite file, and a
/// PostgreSQL schema of its own on the server at `VIX_TEST_POSTGRES` (never skipped: a server
/// that cannot be reached fails the PostgreSQL half). Attributes before a name
/// (`#[ignore = ".."]`) go onto its generated tests.
macro_rules! contract {
    ($($(#[$attribute:meta])* $name:ident),* $(,)?) => {
        mod on_sqlite {
            $(
                #[tokio::test]
                $(#[$attribute])*
                async fn $name() {
                    let (_dir, store) = super::sqlite().await;
                    super::$name(&store).await;
                    store.close().await;
                }
            )*
        }
        mod on_postgres {
            $(
                #[tokio::test]
                $(#[$attribute])*
                async fn $name() {
                    let schema = crate::store::postgres::testing::Schema::create()
                        .await
                        .expect("PostgreSQL for the contract tests (VIX_TEST_POSTGRES)");
                    let store = schema.open_region(super::north()).await.unwrap();
                    super::$name(&store).await;
                    store.close().await;
                    schema.drop().await.unwrap();
                }
            )*
        }
    };
}

// ---------------------------------------------------------------------------------------------
// Test data: one fixed day, signals built from small numbers.
// ---------------------------------------------------------------------------------------------

/// The day every test starts on.
const TODAY: Date = date(2026, 11, 25);
/// A youth of 14 on [`TODAY`]: the parents and the youth are informed.
const BORN: Date = date(2012, 6, 1);
/// The latest planned removal date of a signal registered on [`TODAY`].
const R_MAX: Date = date(2028, 11, 25);

/// Noon (Europe/Amsterdam) on `day`.
fn noon(day: Date) -> Timestamp {
    ManualClock::at_noon(day).now()
}

/// 12:00 Europe/Amsterdam on [`TODAY`].
fn now() -> Timestamp {
    noon(TODAY)
}

/// `minutes` after [`now`], still on [`TODAY`].
fn at(minutes: i64) -> Timestamp {
    now() + SignedDuration::from_mins(minutes)
}

fn v1() -> KeyVersion {
    KeyVersion::new(1).unwrap()
}

fn youth(n: u8) -> SubjectKey {
    SubjectKey::new(v1(), [n; 32])
}

fn parent(n: u8) -> FamilyKey {
    FamilyKey::new(v1(), [n; 32])
}

fn org_id(org: &str) -> OrganisationId {
    OrganisationId::parse(org).unwrap()
}

fn contact(org: &str, professional: &str) -> ProfessionalContact {
    let mut errors = ValidationErrors::new();
    ProfessionalContact::parse(
        ContactInput {
            professional_id: professional,
            name: &format!("{professional} of {org}"),
            email: &format!("{professional}@{org}.example.nl"),
            phone: "020-1234567",
        },
        "professional",
        &mut errors,
    )
    .unwrap()
}

fn acting(org: &str) -> Acting {
    Acting {
        organisation_id: org_id(org),
        professional_id: "p1".to_owned(),
    }
}

fn officer() -> Actor {
    Actor::Municipality {
        code: MunicipalityCode::parse("0363").unwrap(),
        officer_id: "officer-1".to_owned(),
    }
}

/// The informing record the duty asks for a youth born on `birth_date`, registered today.
fn informed(birth_date: Date) -> InformingRecord {
    let (parents, youth) = required_audience(age_on(birth_date, TODAY));
    InformingRecord::Informed {
        parents,
        youth,
        informed_on: TODAY,
    }
}

/// A new request (its own request key) of `org`'s professional p1 on youth `youth_n` with BRP
/// parents `parents`, registered [`now`] with the longest planned removal date.
fn new_signal(org: &str, youth_n: u8, parents: &[u8]) -> NewSignal {
    let signal_id = SignalId::generate();
    let mut family_keys: Vec<FamilyKey> = parents.iter().map(|p| parent(*p)).collect();
    family_keys.sort_unstable();
    NewSignal {
        signal_id,
        request_key: format!("request-{signal_id}"),
        request_fingerprint: format!("fingerprint-{signal_id}"),
        organisation_id: org_id(org),
        organisation_name: OrganisationName::parse(&org.to_uppercase()).unwrap(),
        contact: contact(org, "p1"),
        subject_key: youth(youth_n),
        family_keys,
        birth_date: BORN,
        registered_at: now(),
        planned_removal_date: R_MAX,
        informing: informed(BORN),
        rekeys: Default::default(),
        previous_request_fingerprints: Vec::new(),
    }
}

/// `new`, registered `minutes` after [`now`].
fn registered_at(mut new: NewSignal, minutes: i64) -> NewSignal {
    new.registered_at = at(minutes);
    new
}

/// `new`, for a youth born on `birth_date` (informed as the duty asks at that age).
fn born_on(mut new: NewSignal, birth_date: Date) -> NewSignal {
    new.birth_date = birth_date;
    new.informing = informed(birth_date);
    new
}

/// Registers `new`, which must make a new signal; returns it and its number of notices.
async fn created(store: &impl Subject, new: NewSignal) -> (StoredSignal, usize) {
    match store.register(new).await.unwrap() {
        Registered::Created { signal, notices } => (signal, notices),
        other => panic!("expected a new signal, got {other:?}"),
    }
}

async fn matches_of(store: &impl Subject, org: &str) -> Vec<MatchView> {
    store
        .matches(&org_id(org), None, MatchPage::all())
        .await
        .unwrap()
}

/// The events for the hub about `signal_id`, oldest first.
async fn events_of(store: &impl Subject, signal_id: SignalId) -> Vec<OutboxEvent> {
    store
        .outbox_batch(1000)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|entry| entry.event)
        .filter(|event| event.signal_id() == signal_id.to_string())
        .collect()
}

fn deleted_event(signal_id: SignalId, revision: u64) -> OutboxEvent {
    OutboxEvent::Delete {
        signal_id: signal_id.to_string(),
        revision,
    }
}

fn counts(
    signals: i64,
    signal_family_keys: i64,
    notices: i64,
    email_jobs: i64,
    outbox: i64,
) -> HashMap<&'static str, i64> {
    HashMap::from([
        ("signals", signals),
        ("signal_family_keys", signal_family_keys),
        ("notices", notices),
        ("email_jobs", email_jobs),
        ("outbox", outbox),
    ])
}

/// A local signal as a counterpart is shown: as it stands now.
fn counterpart(signal: &StoredSignal) -> CounterpartView {
    CounterpartView {
        organisation_id: signal.organisation_id.clone(),
        organisation_name: signal.organisation_name.clone(),
        contact: signal.contact.clone(),
        signal_id: signal.signal_id,
        state: signal.state,
        region_id: north(),
    }
}

/// The notice `notice_id` to `own`'s owner about the local signal `other`, found at `found_at`.
fn local_view(
    notice_id: &str,
    own: &StoredSignal,
    other: &StoredSignal,
    match_type: MatchType,
    kind: NoticeKind,
    found_at: Timestamp,
) -> MatchView {
    MatchView {
        notice_id: notice_id.to_owned(),
        match_type,
        kind,
        signal_id: own.signal_id,
        found_at,
        counterpart: counterpart(other),
        coordination: CoordinationView::default(),
    }
}

/// A signal of `org` in region south, as the hub shows it.
fn remote(org: &str, state: SignalState) -> CounterpartView {
    CounterpartView {
        organisation_id: org_id(org),
        organisation_name: OrganisationName::parse(&org.to_uppercase()).unwrap(),
        contact: contact(org, "p9"),
        signal_id: SignalId::generate(),
        state,
        region_id: RegionId::parse("south").unwrap(),
    }
}

/// A youth match notice of the hub's log at `cursor`, to `recipient` of `recipient_org`.
fn hub_notice(
    cursor: u64,
    notice_id: &str,
    recipient: SignalId,
    recipient_org: &str,
    counterpart: CounterpartView,
) -> LoggedNotice {
    LoggedNotice {
        cursor,
        notice_id: notice_id.to_owned(),
        match_type: MatchType::Youth,
        kind: NoticeKind::Match,
        recipient_signal_id: recipient,
        recipient_organisation_id: org_id(recipient_org),
        found_at: at(-30),
        counterpart,
    }
}

fn notice_entry(notice: LoggedNotice) -> LogEntry {
    LogEntry::Notice(Box::new(notice))
}

async fn cursor(store: &impl Subject) -> u64 {
    store.hub_log_position().await.unwrap().cursor
}

// ---------------------------------------------------------------------------------------------
// The contract.
// ---------------------------------------------------------------------------------------------

contract!(
    replay_returns_the_first_signal_and_a_changed_request_is_refused,
    two_organisations_on_one_youth_are_told_once_each,
    siblings_match_through_a_family_key,
    an_unjustified_withdrawal_deletes_and_the_counterparts_notice_goes,
    withdrawal_when_the_risk_is_gone_archives,
    deleting_one_of_a_partys_signals_moves_its_notices_to_the_standing_signal,
    update_changes_contact_and_an_earlier_removal_date_only,
    correction_of_another_youths_signal_is_not_found,
    an_erasure_order_deletes_the_named_signals_or_none,
    a_death_deletes_every_signal_and_refuses_new_ones,
    the_sweep_expires_purges_and_ends_at_23,
    hub_notices_are_stored_once_and_retracted,
    coordination_on_a_local_match_and_a_cross_region_one,
    dead_letters_hold_back_a_signals_later_events_until_retried,
    every_write_is_audited_in_one_chain,
    signals_of_subject_pages_in_registration_order,
    a_registration_under_a_new_version_rekeys_what_the_node_holds,
    notice_emails_are_claimed_once_sent_once_and_audited,
    signals_handed_over_and_adopted_are_as_they_were,
);
