//! What the hub's rules ask of a database, one transaction at a time: the statements, and the
//! locks that keep several writers apart. SQLite (one writer) and PostgreSQL (several hub
//! instances) each implement it; the rules in [`super::rules`] are written once over it, so the
//! backends differ only in SQL and locking.
//!
//! The methods are `async` because PostgreSQL answers over the network; SQLite's run on the
//! writer's thread and are ready when first polled.

use std::collections::HashSet;

use jiff::Timestamp;
use jiff::civil::Date;

use super::HubSignal;
use crate::domain::audit::AuditEntry;
use crate::domain::coordination::CoordinationChange;
use crate::domain::matching::{MatchSignal, PartySignal, PlannedNotice, PreviousKeys, ToldPair};
use crate::domain::{
    FamilyKey, OrganisationId, RegionId, Revision, SignalId, SignalState, SubjectKey,
};
use crate::store::StoreError;

/// A new signal's subject keys to find with: its own and one per older live version.
pub(crate) const SUBJECT_KEYS_MAX: usize = crate::domain::LIVE_VERSIONS_MAX;
/// Its family keys to find with: two parents under each live version.
pub(crate) const FAMILY_KEYS_MAX: usize = 2 * crate::domain::LIVE_VERSIONS_MAX;

/// A signal row with the region that owns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredHubSignal {
    pub(crate) signal_id: SignalId,
    pub(crate) region_id: RegionId,
    pub(crate) signal: HubSignal,
}

impl StoredHubSignal {
    pub(crate) fn match_signal(&self) -> MatchSignal {
        MatchSignal {
            signal_id: self.signal_id,
            organisation_id: self.signal.organisation_id.clone(),
            region_id: self.region_id.clone(),
            subject_key: self.signal.subject_key,
            family_keys: self.signal.family_keys.clone(),
            state: self.signal.state,
            registered_at: self.signal.registered_at,
            previous_keys: Default::default(),
        }
    }
}

/// What the hub knows of a signal id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Known {
    /// Stored, at `revision`.
    Live {
        region_id: RegionId,
        revision: Revision,
    },
    /// Deleted for good: only the owner is remembered.
    Tombstone { region_id: RegionId },
}

impl Known {
    pub(crate) fn region_id(&self) -> &RegionId {
        match self {
            Self::Live { region_id, .. } | Self::Tombstone { region_id } => region_id,
        }
    }
}

/// An organisation's involvement with one youth (DOMAIN.md: a party).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Party {
    pub(crate) organisation_id: OrganisationId,
    pub(crate) subject_key: SubjectKey,
}

/// What the lifecycle needs of a stored signal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DueSignal {
    pub(crate) signal_id: SignalId,
    pub(crate) region_id: RegionId,
    pub(crate) revision: Revision,
    pub(crate) state: SignalState,
    pub(crate) planned_removal_date: Date,
    pub(crate) inactive_since: Option<Date>,
}

/// A notice and the region whose log it goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LogTarget {
    pub(crate) region_id: RegionId,
    pub(crate) notice_id: String,
}

/// What an entry of a region's notice log tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EntryKind {
    /// The notice (new, or changed: moved, refreshed), to store or update.
    Notice,
    /// The notice names a deleted signal: delete it.
    Retraction,
    /// A coordination change (the id is the change's).
    Coordination,
    /// A signal handed over by a region that left (the id is the adoption's).
    Adoption,
}

impl EntryKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Notice => "notice",
            Self::Retraction => "retraction",
            Self::Coordination => "coordination",
            Self::Adoption => "adoption",
        }
    }
}

/// A notice to write: the rule's plan, its id, when it was found and the counterpart as shown.
pub(crate) struct NewNotice<'a> {
    pub(crate) notice_id: &'a str,
    pub(crate) plan: &'a PlannedNotice,
    pub(crate) recipient_region_id: &'a RegionId,
    pub(crate) counterpart: &'a StoredHubSignal,
    pub(crate) found_at: Timestamp,
}

/// A region's acknowledgement as noted for pruning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NotedAck {
    pub(crate) region_id: RegionId,
    pub(crate) noted_cursor: u64,
}

// The trait is the crate's own (the rules and the two stores), so its futures need no `Send`
// bound in the signature: PostgreSQL's are `Send` and the compiler sees it through the concrete
// type; SQLite's borrow a rusqlite connection and run on the writer's thread.
#[allow(async_fn_in_trait)]
pub(crate) trait HubTx {
    /// Keeps every other writer away from these signals (with the keys they are stored under)
    /// and these keys until this transaction ends: two writers that could find each other's
    /// signals, or touch the same notice, run one after the other. Nothing for a single writer.
    async fn lock(&mut self, signals: &[SignalId], keys: &[String]) -> Result<(), StoreError>;

    /// Keeps other writers out of the lifecycle sweep until this transaction ends, so each
    /// due signal is swept once however many hub instances sweep.
    async fn lock_sweep(&mut self) -> Result<(), StoreError>;

    async fn known(&mut self, signal_id: SignalId) -> Result<Option<Known>, StoreError>;

    async fn insert_signal(
        &mut self,
        signal: &StoredHubSignal,
        revision: Revision,
    ) -> Result<(), StoreError>;

    /// Stores a newer revision's contact, dates and state (keys and registration never change).
    async fn update_signal(
        &mut self,
        signal_id: SignalId,
        revision: Revision,
        signal: &HubSignal,
    ) -> Result<(), StoreError>;

    /// The hub's own expiry: inactive since `inactive_since`, same revision.
    async fn expire_signal(
        &mut self,
        signal_id: SignalId,
        inactive_since: Date,
    ) -> Result<(), StoreError>;

    async fn delete_signal_row(&mut self, signal_id: SignalId) -> Result<(), StoreError>;

    async fn insert_tombstone(
        &mut self,
        signal_id: SignalId,
        region_id: &RegionId,
        revision: Revision,
    ) -> Result<(), StoreError>;

    async fn party_of(&mut self, signal_id: SignalId) -> Result<Option<Party>, StoreError>;

    /// The party's signals other than `except`.
    async fn party_signals(
        &mut self,
        party: &Party,
        except: SignalId,
    ) -> Result<Vec<PartySignal>, StoreError>;

    async fn party_exists(&mut self, party: &Party) -> Result<bool, StoreError>;

    /// The signals on `signal`'s subject key or on one of its family keys, or on one of the
    /// `previous` keys it finds with under older versions, with their family keys.
    async fn candidates(
        &mut self,
        signal: &HubSignal,
        previous: &PreviousKeys,
    ) -> Result<Vec<StoredHubSignal>, StoreError>;

    /// A rotation: the signal's keys are now `subject_key` and `family_keys`.
    async fn rekey_signal(
        &mut self,
        signal_id: SignalId,
        subject_key: &SubjectKey,
        family_keys: &[FamilyKey],
    ) -> Result<(), StoreError>;

    /// A rotation: `organisation`'s told pairs on the youth `old` now name `new`.
    async fn rekey_told(
        &mut self,
        organisation: &OrganisationId,
        old: &SubjectKey,
        new: &SubjectKey,
    ) -> Result<(), StoreError>;

    /// The pairs already told in which this party takes part, on either side.
    async fn told_pairs(&mut self, party: &Party) -> Result<HashSet<ToldPair>, StoreError>;

    async fn remember_told(&mut self, pair: &ToldPair) -> Result<(), StoreError>;

    /// Forgets every pair the party was in.
    async fn forget_told(&mut self, party: &Party) -> Result<(), StoreError>;

    async fn insert_notice(&mut self, notice: NewNotice<'_>) -> Result<(), StoreError>;

    /// The notices that show `signal_id` as counterpart, in the order they were found.
    async fn notices_showing(&mut self, signal_id: SignalId) -> Result<Vec<LogTarget>, StoreError>;

    /// Copies the signal's contact, name and state into the notices that show it.
    async fn refresh_notices_showing(&mut self, signal_id: SignalId) -> Result<(), StoreError>;

    /// The notices addressed to `signal_id` or showing it, in the order they were found.
    async fn notices_naming(&mut self, signal_id: SignalId) -> Result<Vec<LogTarget>, StoreError>;

    /// Points the notices naming `from` at `to`, showing `to` where they showed `from`.
    async fn repoint_notices(&mut self, from: SignalId, to: SignalId) -> Result<(), StoreError>;

    async fn delete_notices_naming(&mut self, signal_id: SignalId) -> Result<(), StoreError>;

    async fn delete_coordination_naming(&mut self, signal_id: SignalId) -> Result<(), StoreError>;

    /// Stores a coordination change by its id; false if it was stored before.
    async fn insert_coordination(
        &mut self,
        change: &CoordinationChange,
    ) -> Result<bool, StoreError>;

    async fn region_of(&mut self, signal_id: SignalId) -> Result<Option<RegionId>, StoreError>;

    /// Appends an entry to `region_id`'s notice log. Entries of one region keep the order they
    /// are appended in; each is visible to readers only with every entry before it.
    async fn log(
        &mut self,
        region_id: &RegionId,
        kind: EntryKind,
        id: &str,
    ) -> Result<(), StoreError>;

    /// Active signals whose planned removal date is on or before `today`.
    async fn due_for_expiry(
        &mut self,
        today: Date,
        limit: u32,
    ) -> Result<Vec<DueSignal>, StoreError>;

    /// Inactive signals inactive since `cutoff` or before.
    async fn due_for_purge(
        &mut self,
        cutoff: Date,
        limit: u32,
    ) -> Result<Vec<DueSignal>, StoreError>;

    async fn due_signal(&mut self, signal_id: SignalId) -> Result<Option<DueSignal>, StoreError>;

    /// Raises the region's acknowledged cursor to `cursor`; never lowers it.
    async fn raise_ack(
        &mut self,
        region_id: &RegionId,
        cursor: u64,
        now: Timestamp,
    ) -> Result<(), StoreError>;

    /// The acknowledgements noted at or before `noted_before`.
    async fn acks_noted_before(
        &mut self,
        noted_before: Timestamp,
    ) -> Result<Vec<NotedAck>, StoreError>;

    /// Deletes `region_id`'s log entries up to `through`; returns how many.
    async fn prune_region_log(
        &mut self,
        region_id: &RegionId,
        through: u64,
    ) -> Result<u64, StoreError>;

    /// Notes the region's current acknowledgement at `now`.
    async fn note_ack(&mut self, region_id: &RegionId, now: Timestamp) -> Result<(), StoreError>;

    /// Appends to the hub's audit log, chained to the entry before.
    async fn audit(&mut self, entry: &AuditEntry) -> Result<(), StoreError>;

    /// The signal as stored, with its revision.
    async fn hub_signal(
        &mut self,
        signal_id: SignalId,
    ) -> Result<Option<(StoredHubSignal, Revision)>, StoreError>;

    /// The highest cursor `region_id`'s log has handed out that is still held, if any; and
    /// until this transaction ends no other writer appends to that log.
    async fn lock_log_end(&mut self, region_id: &RegionId) -> Result<Option<u64>, StoreError>;

    /// Makes the signal `successor`'s, with the notices addressed to it or showing it.
    async fn move_signal(
        &mut self,
        signal_id: SignalId,
        successor: &RegionId,
    ) -> Result<(), StoreError>;

    async fn insert_adoption(
        &mut self,
        adoption_id: &str,
        adoption: &super::LoggedAdoption,
    ) -> Result<(), StoreError>;
}
