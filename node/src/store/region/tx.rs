//! What a region node's rules ask of a database, one transaction at a time. SQLite (the writer
//! thread's connection) and PostgreSQL (several node instances on one database) each implement
//! it; the rules in [`super::rules`] are written once over it, so the backends differ only in
//! SQL and locking.
//!
//! The methods are `async` because PostgreSQL answers over the network; SQLite's run on the
//! writer's thread and are ready when first polled.

use std::collections::HashSet;

use jiff::Timestamp;
use jiff::civil::Date;

use crate::domain::audit::AuditEntry;
use crate::domain::coordination::{CoordinationChange, CoordinationState};
use crate::domain::matching::{MatchSignal, PartySignal, PlannedNotice, ToldPair};
use crate::domain::{FamilyKey, OrganisationId, RegionId, Revision, SignalId, SubjectKey};
use crate::store::dead_letter::DeadLetter;
use crate::store::hub::LoggedNotice;
use crate::store::hub::tx::Party;
use crate::store::outbox::OutboxEvent;
use crate::store::region::handover::{MatchCoordinationRecord, NoticeRecord};
use crate::store::{ClaimedEmail, StoreError, StoredSignal};

/// The two sides of a stored notice, as coordination needs them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NoticeParties {
    pub(crate) recipient_signal_id: SignalId,
    pub(crate) recipient_organisation_id: OrganisationId,
    pub(crate) counterpart_signal_id: SignalId,
    /// Found by the hub (a cross-region match): coordination changes go to the hub too.
    pub(crate) from_hub: bool,
}

// The trait is the crate's own (the rules and the two stores), so its futures need no `Send`
// bound in the signature: PostgreSQL's are `Send` and the compiler sees it through the concrete
// type; SQLite's borrow a rusqlite connection and run on the writer's thread.
#[allow(async_fn_in_trait)]
pub(crate) trait RegionTx {
    /// Keeps every other writer of this node's database out until this transaction ends, so
    /// the rules see what was committed before them and nothing changes beside them. Nothing
    /// for SQLite's single writer.
    async fn lock_writes(&mut self) -> Result<(), StoreError>;

    /// The signal an organisation's earlier request made, with that request's fingerprint.
    async fn earlier_request(
        &mut self,
        organisation_id: &OrganisationId,
        request_key: &str,
    ) -> Result<Option<(SignalId, String)>, StoreError>;

    async fn is_deceased(&mut self, subject_key: &SubjectKey) -> Result<bool, StoreError>;

    /// Remembers that the youth died (once; a second report changes nothing).
    async fn record_deceased(
        &mut self,
        subject_key: &SubjectKey,
        now: Timestamp,
    ) -> Result<(), StoreError>;

    /// The party's active signal, the latest registered if there were several.
    async fn active_signal(&mut self, party: &Party) -> Result<Option<SignalId>, StoreError>;

    async fn signal(&mut self, signal_id: SignalId) -> Result<Option<StoredSignal>, StoreError>;

    /// Every signal on the youth, in every state.
    async fn subject_signals(
        &mut self,
        subject_key: &SubjectKey,
    ) -> Result<Vec<SignalId>, StoreError>;

    /// The signals on `signal`'s subject key or one of its family keys, as the match rule sees
    /// them (all of `region_id`).
    /// The signals with `family_key` among their family keys.
    async fn family_signals(&mut self, family_key: &FamilyKey)
    -> Result<Vec<SignalId>, StoreError>;

    /// A rotation: the youth's signals and death record stored under `old` now carry `new`.
    async fn rekey_subject(&mut self, old: &SubjectKey, new: &SubjectKey)
    -> Result<(), StoreError>;

    /// A rotation: the signals with family key `old` now carry `new` instead.
    async fn rekey_family(&mut self, old: &FamilyKey, new: &FamilyKey) -> Result<(), StoreError>;

    /// A rotation: `organisation`'s told pairs on the youth `old` now name `new`.
    async fn rekey_told(
        &mut self,
        organisation: &OrganisationId,
        old: &SubjectKey,
        new: &SubjectKey,
    ) -> Result<(), StoreError>;

    async fn candidates(
        &mut self,
        signal: &StoredSignal,
        region_id: &RegionId,
    ) -> Result<Vec<MatchSignal>, StoreError>;

    /// The pairs already told in which this party takes part, on either side.
    async fn told_pairs(&mut self, party: &Party) -> Result<HashSet<ToldPair>, StoreError>;

    async fn remember_told(&mut self, pair: &ToldPair) -> Result<(), StoreError>;

    /// Forgets every pair the party was in.
    async fn forget_told(&mut self, party: &Party) -> Result<(), StoreError>;

    /// Stores a new signal with its family keys and the request that made it.
    async fn insert_signal(
        &mut self,
        signal: &StoredSignal,
        request_key: &str,
        request_fingerprint: &str,
    ) -> Result<(), StoreError>;

    /// Writes `signal`'s contact, dates, state and informing record at its revision, if the
    /// stored one is still `previous`; false if it is not.
    async fn save_revision(
        &mut self,
        previous: Revision,
        signal: &StoredSignal,
    ) -> Result<bool, StoreError>;

    /// Deletes the signal row; its family keys, the notices addressed to it and their e-mail
    /// jobs go with it.
    async fn delete_signal_row(&mut self, signal_id: SignalId) -> Result<(), StoreError>;

    /// The party's signals other than `except`.
    async fn party_signals(
        &mut self,
        party: &Party,
        except: SignalId,
    ) -> Result<Vec<PartySignal>, StoreError>;

    async fn party_exists(&mut self, party: &Party) -> Result<bool, StoreError>;

    /// Stores a notice the node found, addressed as `plan` says.
    async fn insert_notice(
        &mut self,
        notice_id: &str,
        plan: &PlannedNotice,
        found_at: Timestamp,
    ) -> Result<(), StoreError>;

    /// Points the notices naming `from` (as recipient or counterpart) at `to`.
    async fn repoint_notices(&mut self, from: SignalId, to: SignalId) -> Result<(), StoreError>;

    /// Deletes the notices that show `signal_id` as counterpart.
    async fn delete_notices_showing(&mut self, signal_id: SignalId) -> Result<(), StoreError>;

    async fn delete_coordination_naming(&mut self, signal_id: SignalId) -> Result<(), StoreError>;

    async fn insert_email_job(&mut self, notice_id: &str, now: Timestamp)
    -> Result<(), StoreError>;

    /// Queues an event for the hub behind the ones queued before.
    async fn append_outbox(
        &mut self,
        event: &OutboxEvent,
        now: Timestamp,
    ) -> Result<(), StoreError>;

    /// Drops the signal's queued events and its dead letters.
    async fn drop_outbox_of(&mut self, signal_id: SignalId) -> Result<(), StoreError>;

    /// Active signals whose planned removal date is on or before `today`.
    async fn due_for_expiry(
        &mut self,
        today: Date,
        limit: u32,
    ) -> Result<Vec<SignalId>, StoreError>;

    /// Inactive signals inactive since `cutoff` or before.
    async fn due_for_purge(
        &mut self,
        cutoff: Date,
        limit: u32,
    ) -> Result<Vec<SignalId>, StoreError>;

    /// Signals of youths born on `cutoff` or before.
    async fn due_for_age(&mut self, cutoff: Date, limit: u32) -> Result<Vec<SignalId>, StoreError>;

    async fn notice_parties(
        &mut self,
        notice_id: &str,
    ) -> Result<Option<NoticeParties>, StoreError>;

    /// The coordination of the pair (`low`, `high`), if any was recorded.
    async fn coordination(
        &mut self,
        low: SignalId,
        high: SignalId,
    ) -> Result<Option<CoordinationState>, StoreError>;

    async fn save_coordination(
        &mut self,
        low: SignalId,
        high: SignalId,
        state: &CoordinationState,
    ) -> Result<(), StoreError>;

    /// Queues a coordination change for the hub.
    async fn queue_coordination(&mut self, change: &CoordinationChange) -> Result<(), StoreError>;

    /// Whether a notice to `recipient` about `counterpart` is held.
    async fn holds_match(
        &mut self,
        recipient: SignalId,
        counterpart: SignalId,
    ) -> Result<bool, StoreError>;

    /// Raises the hub cursor to `cursor`; never lowers it.
    async fn raise_hub_cursor(&mut self, cursor: u64) -> Result<(), StoreError>;

    async fn notice_exists(&mut self, notice_id: &str) -> Result<bool, StoreError>;

    /// A hub notice sent again: the counterpart as the hub shows it now, and the recipient
    /// moved to `notice.recipient_signal_id` if that is a signal of the same organisation here.
    async fn refresh_hub_notice(&mut self, notice: &LoggedNotice) -> Result<(), StoreError>;

    async fn insert_hub_notice(
        &mut self,
        notice: &LoggedNotice,
        recipient: &StoredSignal,
    ) -> Result<(), StoreError>;

    /// Deletes a notice the hub found; false if none was held.
    async fn delete_hub_notice(&mut self, notice_id: &str) -> Result<bool, StoreError>;

    /// Remembers the epoch of the hub's log, if none was remembered yet.
    async fn adopt_hub_epoch(&mut self, epoch: &str) -> Result<(), StoreError>;

    async fn remove_outbox(&mut self, seqs: &[i64]) -> Result<(), StoreError>;

    async fn remove_coordination_outbox(&mut self, seqs: &[i64]) -> Result<(), StoreError>;

    /// Moves outbox event `seq` to the dead letters; false if it is no longer queued.
    async fn quarantine_outbox(
        &mut self,
        seq: i64,
        reason: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError>;

    /// Moves coordination change `seq` to the dead letters; false if it is no longer queued.
    async fn quarantine_coordination(
        &mut self,
        seq: i64,
        reason: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError>;

    /// Keeps an unreadable notice-log entry as a dead letter (once, if it comes again).
    async fn keep_hub_entry(
        &mut self,
        cursor: u64,
        payload: &[u8],
        reason: &str,
        now: Timestamp,
    ) -> Result<(), StoreError>;

    async fn dead_letter(&mut self, id: i64) -> Result<Option<DeadLetter>, StoreError>;

    /// Puts an outbox dead letter back in the outbox at its old place.
    async fn requeue_outbox(&mut self, letter: &DeadLetter) -> Result<(), StoreError>;

    /// Puts a coordination dead letter back in its queue at its old place.
    async fn requeue_coordination(&mut self, letter: &DeadLetter) -> Result<(), StoreError>;

    async fn remove_dead_letter(&mut self, id: i64) -> Result<(), StoreError>;

    /// Unsent e-mail jobs due at `now`, oldest first, each claimed until `until` (tried once
    /// more).
    async fn claim_email_jobs(
        &mut self,
        now: Timestamp,
        until: Timestamp,
        limit: u32,
    ) -> Result<Vec<ClaimedEmail>, StoreError>;

    /// Marks the job sent at `now`; false if it was sent before or is gone.
    async fn mark_email_sent(
        &mut self,
        notice_id: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError>;

    /// Moves an unsent job's next try to `at`.
    async fn reschedule_email(&mut self, notice_id: &str, at: Timestamp) -> Result<(), StoreError>;

    /// Deletes an unsent job: there is nobody to mail.
    async fn drop_email_job(&mut self, notice_id: &str) -> Result<(), StoreError>;

    /// Appends to the node's audit log, chained to the entry before.
    async fn audit(&mut self, entry: &AuditEntry) -> Result<(), StoreError>;

    /// Up to `limit` signals after `after`, in the order of their ids.
    async fn signals_after(
        &mut self,
        after: Option<SignalId>,
        limit: u32,
    ) -> Result<Vec<SignalId>, StoreError>;

    /// The notices addressed to the signal, as a handover record holds them.
    async fn notices_to(&mut self, signal_id: SignalId) -> Result<Vec<NoticeRecord>, StoreError>;

    /// The coordination of the matches the signal is in.
    async fn coordination_of(
        &mut self,
        signal_id: SignalId,
    ) -> Result<Vec<MatchCoordinationRecord>, StoreError>;

    /// Stores a handed-over notice (checked) addressed to `recipient`.
    async fn insert_notice_record(
        &mut self,
        recipient: &StoredSignal,
        notice: &NoticeRecord,
    ) -> Result<(), StoreError>;

    /// The last cursor of the hub's log stored here.
    async fn hub_cursor(&mut self) -> Result<u64, StoreError>;
}
