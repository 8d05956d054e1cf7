//! The repository of the hub: every region's pseudonymous signals and the regions' notice logs.
//! One trait, [`HubStore`], with two stores: [`super::hub_sqlite::HubSqliteStore`] for one
//! machine and [`super::hub_postgres::PgHubStore`] for several hub instances on one database
//! ([`super::hub_database::HubDatabase`] picks one at start-up). What the stores decide is
//! written once, in [`rules`], over the statements and locks of [`tx::HubTx`].

use std::future::Future;

use jiff::Timestamp;
use jiff::civil::Date;

use super::{CounterpartView, StoreError, SweepReport};
use crate::domain::matching::{MatchType, NoticeKind, ToldPair};
use crate::domain::{
    FamilyKey, OrganisationId, OrganisationName, ProfessionalContact, RegionId, Revision, SignalId,
    SignalState, SubjectKey,
};

/// A signal as the hub may know it: no BSN, no birth date, nothing about the youth.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubSignal {
    pub organisation_id: OrganisationId,
    /// The organisation registry's name (never one a region sent).
    pub organisation_name: OrganisationName,
    pub contact: ProfessionalContact,
    pub subject_key: SubjectKey,
    pub family_keys: Vec<FamilyKey>,
    pub registered_at: Timestamp,
    pub planned_removal_date: Date,
    pub state: SignalState,
    pub inactive_since: Option<Date>,
}

/// One validated event of a region's batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignalEvent {
    pub signal_id: SignalId,
    pub revision: Revision,
    /// `None`: the signal was deleted.
    pub upsert: Option<HubSignal>,
    /// A new signal's keys under older live versions, to find with (never stored).
    pub previous_keys: crate::domain::matching::PreviousKeys,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchOutcome {
    /// Events that changed the hub.
    pub applied: u32,
    /// Replays and older revisions.
    pub ignored: u32,
    /// Notices added to any region's log.
    pub notices: u32,
}

/// A notice as a region receives it, with its place in the region's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedNotice {
    pub cursor: u64,
    pub notice_id: String,
    pub match_type: MatchType,
    pub kind: NoticeKind,
    pub recipient_signal_id: SignalId,
    pub recipient_organisation_id: OrganisationId,
    pub found_at: Timestamp,
    pub counterpart: CounterpartView,
}

/// One entry of a region's notice log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogEntry {
    Notice(Box<LoggedNotice>),
    /// The notice names a signal that was deleted; the region deletes it.
    Retraction {
        cursor: u64,
        notice_id: String,
    },
    /// The other party of a cross-region match changed its coordination.
    Coordination {
        cursor: u64,
        change: crate::domain::coordination::CoordinationChange,
    },
    /// A region that left handed one of its signals to this region.
    Adoption {
        cursor: u64,
        adoption: Box<LoggedAdoption>,
    },
}

/// A signal handed to the receiving region by a region that left the federation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedAdoption {
    pub signal_id: SignalId,
    pub revision: Revision,
    pub from_region_id: RegionId,
    /// The leaving node's record, sealed for the receiving region: opaque to the hub.
    pub sealed_record: Vec<u8>,
    /// The pairs the hub had told between the signal's party and the receiving region's.
    pub told_pairs: Vec<ToldPair>,
}

/// One signal a leaving region hands over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handover {
    pub signal_id: SignalId,
    pub revision: Revision,
    pub sealed_record: Vec<u8>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HandoverOutcome {
    /// Signals now the successor's.
    pub handed_over: u32,
    /// Handed to the same successor before, at the same revision.
    pub ignored: u32,
}

impl LogEntry {
    pub fn cursor(&self) -> u64 {
        match self {
            Self::Notice(notice) => notice.cursor,
            Self::Retraction { cursor, .. }
            | Self::Coordination { cursor, .. }
            | Self::Adoption { cursor, .. } => *cursor,
        }
    }
}

/// A page of a region's log. Entries of notices deleted before delivery are left out, so the
/// page also says how far it read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogPage {
    pub entries: Vec<LogEntry>,
    /// The last cursor read, delivered or skipped; `None` if the page is empty.
    pub read_through: Option<u64>,
    /// The page hit its limit: more may follow at once.
    pub full: bool,
}

/// Which notice log this is and how far it reaches (the head of every notice stream).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogHead {
    /// Made once with the hub's database.
    pub epoch: String,
    /// The highest cursor ever given to an entry, in any region's log.
    pub end_cursor: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum HubStoreError {
    /// The batch names a signal that another region owns; nothing of it was applied.
    #[error("event {index} names a signal of another region")]
    NotOwner { index: usize },
    /// A coordination change speaks for a signal that another region owns; nothing of the call
    /// was relayed.
    #[error("change {index} speaks for a signal of another region")]
    NotOwnerOfChange { index: usize },
    /// The leaving region's log holds entries it has not stored: handing over now would leave
    /// them with a region that no longer holds the signals.
    #[error("the region's notice log reaches cursor {end}: store it up to there first")]
    LogNotConsumed { end: u64 },
    /// A signal to hand over is not the caller's at that revision (`held`: what the hub holds).
    #[error("handover {index}: {held}")]
    NotHandable { index: usize, held: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[cfg(test)]
pub(in crate::store) mod contract_tests;
pub(in crate::store) mod rows;
pub(crate) mod rules;
pub(crate) mod tx;

impl From<sqlx::Error> for HubStoreError {
    fn from(error: sqlx::Error) -> Self {
        Self::Store(error.into())
    }
}

pub trait HubStore: Send + Sync + 'static {
    /// Applies `events` of `region_id` in order, in one transaction, matching every newly
    /// registered active signal against the other regions' signals.
    fn submit(
        &self,
        region_id: &RegionId,
        events: Vec<SignalEvent>,
        now: Timestamp,
    ) -> impl Future<Output = Result<BatchOutcome, HubStoreError>> + Send;

    /// Up to `limit` entries of `region_id`'s log after `after_cursor`, oldest first.
    fn log_after(
        &self,
        region_id: &RegionId,
        after_cursor: u64,
        limit: u32,
    ) -> impl Future<Output = Result<LogPage, StoreError>> + Send;

    /// The log's identity and end, read before a stream sends its first entry.
    fn log_head(&self) -> impl Future<Output = Result<LogHead, StoreError>> + Send;

    /// Forgets the log entries that were acknowledged at or before `acked_before`; returns how
    /// many went. Unacknowledged entries stay however old they are.
    fn prune_log(
        &self,
        acked_before: Timestamp,
        now: Timestamp,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Records that `region_id` stored its log up to `cursor`; never moves backwards.
    fn ack(
        &self,
        region_id: &RegionId,
        cursor: u64,
        now: Timestamp,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Expires signals past their planned removal date and deletes those five years inactive
    /// (the hub runs both itself, DOMAIN.md section 4), at most `limit` per call.
    fn sweep(
        &self,
        today: Date,
        limit: u32,
    ) -> impl Future<Output = Result<SweepReport, StoreError>> + Send;

    /// Relays coordination changes made by `region_id`'s parties to the regions holding the
    /// other signals. Each change once, by its id. Returns how many were relayed.
    fn submit_coordination(
        &self,
        region_id: &RegionId,
        changes: Vec<crate::domain::coordination::CoordinationChange>,
        now: Timestamp,
    ) -> impl Future<Output = Result<u32, HubStoreError>> + Send;

    /// Hands `region_id`'s signals to `successor` (DOMAIN: a region that leaves): each becomes
    /// the successor's, with its notices, and the successor's log gets an adoption entry with
    /// the sealed record and the told pairs between the signal's party and parties of
    /// `successor_organisations`. Refused while `region_id`'s log holds entries after
    /// `after_cursor`. One transaction.
    fn hand_over(
        &self,
        region_id: &RegionId,
        successor: &RegionId,
        successor_organisations: &std::collections::HashSet<OrganisationId>,
        after_cursor: u64,
        handovers: Vec<Handover>,
        now: Timestamp,
    ) -> impl Future<Output = Result<HandoverOutcome, HubStoreError>> + Send;

    /// Appends one entry to the hub's audit log.
    fn record_audit(
        &self,
        entry: crate::domain::audit::AuditEntry,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Checks the hub audit log's hash chain; returns the number of entries.
    fn verify_audit(
        &self,
    ) -> impl Future<Output = Result<u64, super::audit::AuditVerifyError>> + Send;

    /// Entries in `region_id`'s log after its acknowledged cursor: that region's lag.
    fn unacked(&self, region_id: &RegionId)
    -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// The cursor each region that ever acknowledged its log acknowledged last: the regions
    /// the hub has seen.
    fn acknowledged(&self)
    -> impl Future<Output = Result<Vec<(RegionId, u64)>, StoreError>> + Send;

    /// Pseudonyms stored per key version (subject and family keys of every region's signals,
    /// which are the regions' own): a version may be retired once it has none. Reads every
    /// key: an operator's question, not a request's.
    fn key_versions(&self) -> impl Future<Output = Result<Vec<(u32, u64)>, StoreError>> + Send;
}

/// The version of every stored pseudonym (`v<version>:<hex>`), for [`HubStore::key_versions`].
/// Oldest version first.
pub(crate) fn parse_key_versions(rows: Vec<(String, i64)>) -> Result<Vec<(u32, u64)>, StoreError> {
    let mut versions = rows
        .into_iter()
        .map(|(version, count)| {
            Ok((
                version
                    .parse()
                    .map_err(|_| StoreError::Corrupt("key version"))?,
                u64::try_from(count).map_err(|_| StoreError::Corrupt("key count"))?,
            ))
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    versions.sort_unstable();
    Ok(versions)
}
