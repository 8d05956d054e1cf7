//! The repository of a region node: its signals, their notices and the outbox to the hub.
//!
//! One trait, so that a PostgreSQL implementation can stand beside [`sqlite::SqliteStore`].
//! Every method that changes state is one transaction: what it returns has been committed
//! durably, and what fails has changed nothing.

use std::future::Future;

use jiff::Timestamp;
use jiff::civil::Date;

use crate::domain::informing::InformingRecord;
use crate::domain::matching::{MatchType, NoticeKind};
use crate::domain::signal::LifecycleError;
use crate::domain::{
    FamilyKey, LiveKeys, OrganisationId, OrganisationName, ProfessionalContact, RegionId, Revision,
    SignalId, SignalState, SubjectKey, WithdrawReason,
};
use hub::LoggedNotice;

pub mod audit;
pub mod database_location;
pub mod dead_letter;
pub mod hub;
pub mod hub_database;
pub mod hub_postgres;
pub mod hub_sqlite;
pub mod outbox;
pub mod postgres;
pub(crate) mod region;
pub use region::decommission::HandoverPage;
pub use region::handover::{
    Adoption, HandoverRecord, MatchCoordinationRecord, NoticeRecord, SignalRecord, ToldPairRecord,
};
pub mod region_database;
pub mod region_postgres;
mod row;
mod sql;
pub mod sqlite;
pub(crate) mod told;
pub mod writer;

pub use writer::GroupCommit;

/// A validated registration, ready to store.
#[derive(Debug, Clone)]
pub struct NewSignal {
    pub signal_id: SignalId,
    /// Keyed hash (hex) of the caller's request_id, unique per organisation.
    pub request_key: String,
    /// Hash of what the request asked for; a reused request_id must carry the same one.
    pub request_fingerprint: String,
    /// The same hash with the youth's keys under older live versions: a request sent before a
    /// key rotation and retried after it is the same request.
    pub previous_request_fingerprints: Vec<String>,
    pub organisation_id: OrganisationId,
    /// The organisation registry's name, as it was when the signal was written.
    pub organisation_name: OrganisationName,
    pub contact: ProfessionalContact,
    pub subject_key: SubjectKey,
    pub family_keys: Vec<FamilyKey>,
    pub birth_date: Date,
    pub registered_at: Timestamp,
    pub planned_removal_date: Date,
    pub informing: InformingRecord,
    /// The youth's and the parents' keys under older live key versions, each with its current
    /// key: what the node stored under them is re-keyed first, and the hub finds with them.
    pub rekeys: crate::domain::Rekeys,
}

/// A signal as stored on the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSignal {
    pub signal_id: SignalId,
    pub revision: Revision,
    pub organisation_id: OrganisationId,
    /// The organisation registry's name, as it was when the signal was written.
    pub organisation_name: OrganisationName,
    pub contact: ProfessionalContact,
    pub subject_key: SubjectKey,
    pub family_keys: Vec<FamilyKey>,
    pub birth_date: Date,
    pub registered_at: Timestamp,
    pub planned_removal_date: Date,
    pub state: SignalState,
    pub inactive_since: Option<Date>,
    /// Stays on the node: never in an outbox event.
    pub informing: InformingRecord,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Registered {
    /// A new signal, with the number of notices its registration produced.
    Created {
        signal: StoredSignal,
        notices: usize,
    },
    /// The request_id was seen before: the signal made then.
    Replayed(StoredSignal),
    /// The organisation already has an active signal on this youth: that one, unchanged.
    AlreadyActive(StoredSignal),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Withdrawn {
    Deleted,
    Archived(Box<StoredSignal>),
}

/// The professional acting for an organisation, as the audit log records them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acting {
    pub organisation_id: OrganisationId,
    pub professional_id: String,
}

impl Acting {
    pub fn actor(&self) -> crate::domain::audit::Actor {
        crate::domain::audit::Actor::Professional {
            organisation_id: self.organisation_id.clone(),
            professional_id: self.professional_id.clone(),
        }
    }
}

/// A change to an active signal's contact and/or planned removal date.
#[derive(Debug, Clone, Default)]
pub struct SignalUpdate {
    pub contact: Option<ProfessionalContact>,
    pub planned_removal_date: Option<Date>,
    pub informing: Option<InformingRecord>,
}

/// Where a page of matches starts and how long it is. Pages follow the order matches are
/// listed in (found, then notice id), so each page is one range of an index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchPage {
    /// The last match of the previous page; `None` for the first page.
    pub after: Option<MatchPosition>,
    pub limit: u32,
}

impl MatchPage {
    /// Every match: for the few notices of one signal.
    pub fn all() -> Self {
        Self {
            after: None,
            limit: u32::MAX,
        }
    }
}

/// Where a page of a youth's signals starts and how long it is: pages follow registration
/// (then signal id), one range of the `signals_by_subject_registered` index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignalPage {
    /// The last signal of the previous page; `None` for the first page.
    pub after: Option<SignalPosition>,
    pub limit: u32,
}

/// A signal's place in a youth's export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignalPosition {
    pub registered_at: Timestamp,
    pub signal_id: SignalId,
}

/// A match's place in the listing order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchPosition {
    pub found_at: Timestamp,
    pub notice_id: String,
}

impl MatchView {
    pub fn position(&self) -> MatchPosition {
        MatchPosition {
            found_at: self.found_at,
            notice_id: self.notice_id.clone(),
        }
    }
}

/// A notice for the calling organisation, with the other party as it stands now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchView {
    pub notice_id: String,
    pub match_type: MatchType,
    pub kind: NoticeKind,
    pub signal_id: SignalId,
    pub found_at: Timestamp,
    pub counterpart: CounterpartView,
    pub coordination: crate::domain::coordination::CoordinationView,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CounterpartView {
    pub organisation_id: OrganisationId,
    /// The organisation registry's name, as it was when the signal was written.
    pub organisation_name: OrganisationName,
    pub contact: ProfessionalContact,
    pub signal_id: SignalId,
    pub state: SignalState,
    pub region_id: RegionId,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("no such signal")]
    NotFound,
    #[error("the signal belongs to another organisation")]
    NotOwner,
    #[error("request_id was already used for a different request")]
    RequestMismatch,
    #[error("the person registry reported this youth deceased")]
    Deceased,
    #[error(transparent)]
    Lifecycle(#[from] LifecycleError),
    #[error("the planned removal date {0}")]
    RemovalDate(crate::domain::signal::RemovalDateError),
    #[error("the informing record: {0}")]
    Informing(crate::domain::informing::InformingError),
    #[error("no such match")]
    NoSuchMatch,
    /// The database is locked or out of connections; the caller may retry.
    #[error("the database is busy")]
    Busy(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("database error")]
    Database(#[source] sqlx::Error),
    /// An error of the writer's connection.
    #[error("database error")]
    Write(#[source] rusqlite::Error),
    /// The transaction this write was grouped in did not commit: nothing of it happened.
    #[error("the write's group commit failed")]
    Commit(#[source] std::sync::Arc<rusqlite::Error>),
    /// Too many writes are waiting for the writer; the caller may retry.
    #[error("the write queue is full")]
    QueueFull,
    /// The store is shutting down.
    #[error("the store is closed")]
    Closed,
    #[error("starting the writer thread")]
    WriterThread(#[source] std::io::Error),
    #[error("database migration failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A step of a synchronous (SQLite) write waited for something: a bug, never a state of
    /// the data; the write is rolled back.
    #[error("a write on the single writer's thread suspended")]
    Suspended,
    /// A stored value that the domain refuses: the database was changed behind vix's back.
    #[error("corrupt stored value in {0}")]
    Corrupt(&'static str),
}

impl StoreError {
    /// The write did not happen and may succeed if tried again: the caller should retry.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Busy(_) | Self::Commit(_) | Self::QueueFull | Self::Closed
        )
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        let busy = match &error {
            // The database is out of reach or out of connections; for PostgreSQL also a
            // connection that broke mid-request (the server restarted, or ended it).
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => true,
            sqlx::Error::Database(db) => {
                match db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
                    Some(postgres) => is_postgres_transient(postgres.code()),
                    None => db.code().is_some_and(|code| is_sqlite_busy(&code)),
                }
            }
            _ => false,
        };
        if busy {
            Self::Busy(Box::new(error))
        } else {
            Self::Database(error)
        }
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(error: rusqlite::Error) -> Self {
        match error.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
                Self::Busy(Box::new(error))
            }
            _ => Self::Write(error),
        }
    }
}

/// SQLITE_BUSY (5) or SQLITE_LOCKED (6), also as extended codes (`SQLITE_BUSY_SNAPSHOT` is
/// 517): sqlx reports the extended code, whose low byte is the primary one.
fn is_sqlite_busy(code: &str) -> bool {
    code.parse::<i32>()
        .is_ok_and(|code| matches!(code & 0xff, 5 | 6))
}

/// SQLSTATEs after which the same request may succeed: connection exceptions (class 08), the
/// server shutting down or ending the session (57P01-57P03, e.g. `pg_terminate_backend`), too
/// many connections (53300), a lock not granted within `lock_timeout` (55P03), and a deadlock
/// or serialization failure (40P01, 40001), whose transaction was rolled back whole.
fn is_postgres_transient(code: &str) -> bool {
    code.starts_with("08")
        || matches!(
            code,
            "57P01" | "57P02" | "57P03" | "53300" | "55P03" | "40P01" | "40001"
        )
}

/// What a region node stores.
pub trait SignalStore: Send + Sync + 'static {
    /// Stores a new signal, its local notices and its outbox event in one transaction; or, if
    /// the organisation used `request_id` before, returns that signal and changes nothing.
    fn register(
        &self,
        new: NewSignal,
    ) -> impl Future<Output = Result<Registered, StoreError>> + Send;

    /// One signal, whoever owns it; the caller checks ownership.
    fn signal(
        &self,
        signal_id: SignalId,
    ) -> impl Future<Output = Result<Option<StoredSignal>, StoreError>> + Send;

    /// The notices addressed to `organisation_id`, optionally for one of its signals only,
    /// oldest first, one page at a time.
    fn matches(
        &self,
        organisation_id: &OrganisationId,
        signal_id: Option<SignalId>,
        page: MatchPage,
    ) -> impl Future<Output = Result<Vec<MatchView>, StoreError>> + Send;

    fn withdraw(
        &self,
        acting: &Acting,
        signal_id: SignalId,
        reason: WithdrawReason,
        now: Timestamp,
    ) -> impl Future<Output = Result<Withdrawn, StoreError>> + Send;

    fn update(
        &self,
        acting: &Acting,
        signal_id: SignalId,
        update: SignalUpdate,
        now: Timestamp,
    ) -> impl Future<Output = Result<StoredSignal, StoreError>> + Send;

    /// A death reported by the BRP: deletes every signal on the youth with everything naming
    /// them, and refuses new ones from now on. Returns how many signals were deleted.
    fn record_death(
        &self,
        subject_keys: &LiveKeys<SubjectKey>,
        now: Timestamp,
    ) -> impl Future<Output = Result<u32, StoreError>> + Send;

    /// A party's coordination change on one of its matches (`notice_id`); a change on a
    /// cross-region match is queued for the hub. Returns the match as it now stands.
    fn coordinate(
        &self,
        acting: &Acting,
        notice_id: &str,
        action: crate::domain::coordination::CoordinationAction,
        now: Timestamp,
    ) -> impl Future<Output = Result<MatchView, StoreError>> + Send;

    /// The oldest coordination changes waiting for the hub.
    fn coordination_outbox_batch(
        &self,
        limit: u32,
    ) -> impl Future<
        Output = Result<Vec<(i64, crate::domain::coordination::CoordinationChange)>, StoreError>,
    > + Send;

    /// Forgets the coordination changes `seqs`: the hub has relayed them.
    fn coordination_outbox_remove(
        &self,
        seqs: Vec<i64>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// One page of the signals on the node about the youth `subject_key`, in every state,
    /// oldest registration first.
    fn signals_of_subject(
        &self,
        subject_keys: &LiveKeys<SubjectKey>,
        page: SignalPage,
    ) -> impl Future<Output = Result<Vec<StoredSignal>, StoreError>> + Send;

    /// A municipality's correction of a signal on the youth `subject_key` (DOMAIN.md section
    /// 8), audited with `actor` and the order's `reference`. [`StoreError::NotFound`] when the
    /// signal does not exist or is on another youth: the two are not told apart.
    fn correct(
        &self,
        subject_keys: &LiveKeys<SubjectKey>,
        signal_id: SignalId,
        correction: SignalUpdate,
        actor: &crate::domain::audit::Actor,
        reference: &str,
        now: Timestamp,
    ) -> impl Future<Output = Result<StoredSignal, StoreError>> + Send;

    /// A municipality's erasure order: deletes the youth's signals (or only `only`, each of
    /// which must be the youth's), here and, through the outbox, at the hub. Returns the
    /// erased signal ids.
    fn erase(
        &self,
        subject_keys: &LiveKeys<SubjectKey>,
        only: &[SignalId],
        actor: &crate::domain::audit::Actor,
        reference: &str,
        now: Timestamp,
    ) -> impl Future<Output = Result<Vec<SignalId>, StoreError>> + Send;

    /// Appends one entry to the audit log on its own (for reads; writes log in their own
    /// transaction).
    fn record_audit(
        &self,
        entry: crate::domain::audit::AuditEntry,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Records in the audit log that `acting` read the contact details of `signal_ids`.
    fn record_lookup(
        &self,
        acting: &Acting,
        signal_ids: Vec<SignalId>,
        now: Timestamp,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Checks the audit log's hash chain; returns the number of entries.
    fn verify_audit(&self) -> impl Future<Output = Result<u64, audit::AuditVerifyError>> + Send;

    /// How many events wait for the hub: the forwarder's lag.
    fn outbox_len(&self) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// The oldest `limit` events waiting for the hub, in the order they were written, leaving
    /// out the events of a signal with a dead letter: they wait behind it.
    fn outbox_batch(
        &self,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<OutboxEntry>, StoreError>> + Send;

    /// Forgets the events `seqs`: the hub has applied them.
    fn outbox_remove(&self, seqs: Vec<i64>) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Where this node stands in the hub's notice log: the stream resumes after its cursor.
    fn hub_log_position(&self) -> impl Future<Output = Result<LogPosition, StoreError>> + Send;

    /// Remembers the epoch of the hub's log on the first stream.
    fn adopt_hub_epoch(&self, epoch: String)
    -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Moves outbox event `seq`, which the hub refused for good, to the dead letters with
    /// `reason`. False if it is no longer queued.
    fn quarantine_outbox(
        &self,
        seq: i64,
        reason: String,
        now: Timestamp,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Moves coordination change `seq`, which the hub refused for good, to the dead letters.
    fn quarantine_coordination(
        &self,
        seq: i64,
        reason: String,
        now: Timestamp,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Keeps a notice-log entry this node cannot read as a dead letter and moves the hub cursor
    /// past it, in one transaction.
    fn quarantine_hub_entry(
        &self,
        cursor: u64,
        payload: Vec<u8>,
        reason: String,
        now: Timestamp,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Up to `limit` dead letters after `after_id`, oldest first.
    fn dead_letters(
        &self,
        after_id: i64,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<dead_letter::DeadLetter>, StoreError>> + Send;

    fn dead_letter_count(&self) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Retries dead letter `id` (see [`dead_letter::Retried`]).
    fn retry_dead_letter(
        &self,
        id: i64,
    ) -> impl Future<Output = Result<dead_letter::Retried, StoreError>> + Send;

    fn remove_dead_letter(&self, id: i64) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Stores a notice from the hub with its e-mail job, and moves the hub cursor to it, in one
    /// transaction. A notice seen before changes nothing but the cursor.
    fn store_hub_notice(
        &self,
        notice: LoggedNotice,
        now: Timestamp,
    ) -> impl Future<Output = Result<NoticeDelivery, StoreError>> + Send;

    /// Applies the lifecycle due on `today` (expiry, end of archive, 23rd birthday) to at most
    /// `limit` signals, each change with its outbox event, in one transaction.
    fn sweep(
        &self,
        today: Date,
        limit: u32,
    ) -> impl Future<Output = Result<SweepReport, StoreError>> + Send;

    /// Takes up to `limit` unsent notice e-mails due at `now` for sending, oldest first: each
    /// is claimed until `now + lease`, so another sender (another instance) leaves it alone,
    /// and a sender that dies leaves it to be tried again when the claim runs out.
    fn claim_emails(
        &self,
        now: Timestamp,
        lease: std::time::Duration,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<ClaimedEmail>, StoreError>> + Send;

    /// Records that the notice e-mail went out: the job is marked sent and the send is audited
    /// as `recipient`'s read of the counterpart's contact (DOMAIN.md section 9), in one
    /// transaction. False if it was marked before (nothing is audited twice).
    fn email_sent(
        &self,
        notice_id: &str,
        recipient: &Acting,
        signal_ids: Vec<SignalId>,
        now: Timestamp,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Puts off the next try of an unsent notice e-mail until `at`.
    fn email_retry(
        &self,
        notice_id: &str,
        at: Timestamp,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Forgets an unsent notice e-mail: its recipient is inactive or gone.
    fn email_dropped(&self, notice_id: &str)
    -> impl Future<Output = Result<(), StoreError>> + Send;

    /// How many notice e-mails wait to be sent.
    fn emails_pending(&self) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Signals by state and the queues, for the metrics (read when Prometheus scrapes; each
    /// a count, off the request path).
    fn gauges(&self) -> impl Future<Output = Result<StoreGauges, StoreError>> + Send;

    /// Applies a run of the hub's notice log in order, in one transaction, and moves the hub
    /// cursor past it: a notice is stored with its e-mail job (one seen before changes nothing
    /// but the cursor); a retraction deletes the notice (and its unsent e-mail job) of a signal
    /// deleted elsewhere; a coordination change is merged into a match this node still holds.
    /// A burst of the log (a region back after an outage) costs one commit per run.
    fn store_hub_log(
        &self,
        entries: Vec<hub::LogEntry>,
        now: Timestamp,
    ) -> impl Future<Output = Result<Vec<HubLogApplied>, StoreError>> + Send;

    /// Up to `limit` signals after `after` as handover records, with the hub-log cursor they
    /// were read at (a region leaving the federation).
    fn handover_page(
        &self,
        after: Option<SignalId>,
        limit: u32,
    ) -> impl Future<Output = Result<HandoverPage, StoreError>> + Send;

    /// Deletes this node's copy of signals the hub made `successor`'s.
    fn handed_over(
        &self,
        signal_ids: Vec<SignalId>,
        successor: RegionId,
        now: Timestamp,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Deletes up to `limit` signals for a region that leaves without a successor, each with a
    /// deletion event for the hub; how many went.
    fn purge_page(
        &self,
        limit: u32,
        now: Timestamp,
    ) -> impl Future<Output = Result<u32, StoreError>> + Send;

    /// Stores a signal handed over by a region that left, at `cursor` of the hub's log; false
    /// if it was held already.
    fn adopt(
        &self,
        cursor: u64,
        adoption: Adoption,
        now: Timestamp,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

/// An e-mail job taken for sending, with the notice's recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedEmail {
    pub notice_id: String,
    /// Tries before this one.
    pub attempts: u32,
    pub recipient_signal_id: SignalId,
    pub recipient_organisation_id: OrganisationId,
}

/// What the metrics show of a region node's database.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreGauges {
    pub active_signals: u64,
    pub inactive_signals: u64,
    /// Events waiting for the hub.
    pub outbox_events: u64,
    /// When the oldest of them was written: the forwarder's lag.
    pub oldest_outbox_event: Option<Timestamp>,
    pub dead_letters: u64,
    /// Notice e-mails waiting to be sent.
    pub emails_pending: u64,
}

/// What became of one entry of the hub's notice log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HubLogApplied {
    Notice(NoticeDelivery),
    /// Whether this node held the retracted notice.
    Retraction {
        held: bool,
    },
    /// Whether this node still holds the coordinated match.
    Coordination {
        held: bool,
    },
}

/// What a lifecycle sweep changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    pub expired: u32,
    pub deleted: u32,
}

impl SweepReport {
    pub fn is_empty(&self) -> bool {
        self.expired == 0 && self.deleted == 0
    }
}

/// One event in the outbox, with its place in the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    pub seq: i64,
    /// `None` if the stored event cannot be read: it goes to the dead letters.
    pub event: Option<outbox::OutboxEvent>,
}

/// Where a node stands in the hub's notice log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogPosition {
    /// The last cursor stored.
    pub cursor: u64,
    /// The log's epoch, once a stream told it.
    pub epoch: Option<String>,
}

/// What became of a notice from the hub (DOMAIN.md section 5, Delivery).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoticeDelivery {
    /// Stored; `emailed` when an e-mail to the recipient was queued (its signal is active).
    Stored { emailed: bool },
    /// Stored before: a replay after a reconnect.
    Duplicate,
    /// The recipient signal is gone (deleted here), so the notice is dropped.
    Dropped,
}

#[cfg(test)]
mod tests {
    use super::{is_postgres_transient, is_sqlite_busy};

    #[test]
    fn lost_connections_and_rolled_back_transactions_are_transient_on_postgres() {
        for code in [
            "08006", "08003", "57P01", "57P03", "53300", "55P03", "40P01", "40001",
        ] {
            assert!(is_postgres_transient(code), "{code}");
        }
        for code in ["23505", "42P01", "22001", "P0001"] {
            assert!(!is_postgres_transient(code), "{code}");
        }
    }

    #[test]
    fn busy_and_locked_are_recognised_in_primary_and_extended_form() {
        for code in ["5", "6", "261", "517", "773", "262"] {
            assert!(is_sqlite_busy(code), "{code}");
        }
        for code in ["1", "19", "2067", "23505", "not a code"] {
            assert!(!is_sqlite_busy(code), "{code}");
        }
    }
}
