//! The region node's database, whichever backend the configuration names: SQLite for one
//! machine, PostgreSQL for a supplier that runs its node there (one or more instances on one
//! database). The region's services are written against [`SignalStore`] once; this picks the
//! store at start-up.

use std::collections::HashMap;

use jiff::Timestamp;
use jiff::civil::Date;

use super::audit::{self, AuditVerifyError};
use super::database_location::DatabaseLocation;
use super::dead_letter::{DeadLetter, Retried};
use super::hub::{LogEntry, LoggedNotice};
use super::postgres::PgSettings;
use super::region_postgres::PgRegionStore;
use super::sqlite::SqliteStore;
use super::{
    Acting, ClaimedEmail, GroupCommit, HubLogApplied, LogPosition, MatchPage, MatchView, NewSignal,
    NoticeDelivery, OutboxEntry, Registered, SignalPage, SignalStore, SignalUpdate, StoreError,
    StoredSignal, SweepReport, Withdrawn,
};
use crate::domain::audit::{Actor, AuditEntry};
use crate::domain::coordination::{CoordinationAction, CoordinationChange};
use crate::domain::{LiveKeys, OrganisationId, RegionId, SignalId, SubjectKey, WithdrawReason};

pub enum RegionDatabase {
    Sqlite(SqliteStore),
    Postgres(PgRegionStore),
}

/// Runs `$call` on whichever store `$self` holds.
macro_rules! on_backend {
    ($self:ident, $store:ident => $call:expr) => {
        match $self {
            Self::Sqlite($store) => $call,
            Self::Postgres($store) => $call,
        }
    };
}

impl RegionDatabase {
    /// Opens (and migrates) the database at `location`; a SQLite file is created on first
    /// start (its folder must exist).
    pub async fn open(
        location: &DatabaseLocation,
        region_id: RegionId,
        group_commit: GroupCommit,
        postgres: PgSettings,
    ) -> Result<Self, StoreError> {
        Ok(match location {
            DatabaseLocation::Sqlite(path) => {
                Self::Sqlite(SqliteStore::open(path, region_id, group_commit).await?)
            }
            DatabaseLocation::Postgres(url) => {
                Self::Postgres(PgRegionStore::open(url, region_id, postgres).await?)
            }
        })
    }

    /// Keeps the database's planner statistics current until `stopping` (PostgreSQL; SQLite
    /// runs `PRAGMA optimize` on its own).
    pub async fn maintain(&self, stopping: tokio::sync::watch::Receiver<bool>) {
        if let Self::Postgres(store) = self {
            store.maintain(stopping).await;
        }
    }

    /// Finishes the queued writes, then closes the database.
    pub async fn close(&self) {
        on_backend!(self, store => store.close().await)
    }

    /// Rows per table: for tests that check that a refused request changed nothing.
    pub async fn row_counts(&self) -> Result<HashMap<&'static str, i64>, StoreError> {
        match self {
            Self::Sqlite(store) => super::sqlite::row_counts(store).await,
            Self::Postgres(store) => store.row_counts().await,
        }
    }
}

/// Verifies the audit log of the database at `location` without disturbing a node that runs
/// on it: a SQLite file is opened read-only.
pub async fn verify_audit_at(
    location: &DatabaseLocation,
    region_id: RegionId,
) -> Result<u64, AuditVerifyError> {
    match location {
        DatabaseLocation::Sqlite(path) => audit::verify_file(path).await,
        DatabaseLocation::Postgres(url) => {
            let store = PgRegionStore::open(url, region_id, PgSettings::default()).await?;
            let verified = store.verify_audit().await;
            store.close().await;
            verified
        }
    }
}

impl SignalStore for RegionDatabase {
    async fn register(&self, new: NewSignal) -> Result<Registered, StoreError> {
        on_backend!(self, store => store.register(new).await)
    }

    async fn signal(&self, signal_id: SignalId) -> Result<Option<StoredSignal>, StoreError> {
        on_backend!(self, store => store.signal(signal_id).await)
    }

    async fn matches(
        &self,
        organisation_id: &OrganisationId,
        signal_id: Option<SignalId>,
        page: MatchPage,
    ) -> Result<Vec<MatchView>, StoreError> {
        on_backend!(self, store => store.matches(organisation_id, signal_id, page).await)
    }

    async fn withdraw(
        &self,
        acting: &Acting,
        signal_id: SignalId,
        reason: WithdrawReason,
        now: Timestamp,
    ) -> Result<Withdrawn, StoreError> {
        on_backend!(self, store => store.withdraw(acting, signal_id, reason, now).await)
    }

    async fn update(
        &self,
        acting: &Acting,
        signal_id: SignalId,
        update: SignalUpdate,
        now: Timestamp,
    ) -> Result<StoredSignal, StoreError> {
        on_backend!(self, store => store.update(acting, signal_id, update, now).await)
    }

    async fn record_death(
        &self,
        subject_keys: &LiveKeys<SubjectKey>,
        now: Timestamp,
    ) -> Result<u32, StoreError> {
        on_backend!(self, store => store.record_death(subject_keys, now).await)
    }

    async fn coordinate(
        &self,
        acting: &Acting,
        notice_id: &str,
        action: CoordinationAction,
        now: Timestamp,
    ) -> Result<MatchView, StoreError> {
        on_backend!(self, store => store.coordinate(acting, notice_id, action, now).await)
    }

    async fn coordination_outbox_batch(
        &self,
        limit: u32,
    ) -> Result<Vec<(i64, CoordinationChange)>, StoreError> {
        on_backend!(self, store => store.coordination_outbox_batch(limit).await)
    }

    async fn coordination_outbox_remove(&self, seqs: Vec<i64>) -> Result<(), StoreError> {
        on_backend!(self, store => store.coordination_outbox_remove(seqs).await)
    }

    async fn signals_of_subject(
        &self,
        subject_keys: &LiveKeys<SubjectKey>,
        page: SignalPage,
    ) -> Result<Vec<StoredSignal>, StoreError> {
        on_backend!(self, store => store.signals_of_subject(subject_keys, page).await)
    }

    async fn correct(
        &self,
        subject_keys: &LiveKeys<SubjectKey>,
        signal_id: SignalId,
        correction: SignalUpdate,
        actor: &Actor,
        reference: &str,
        now: Timestamp,
    ) -> Result<StoredSignal, StoreError> {
        on_backend!(self, store => store.correct(subject_keys, signal_id, correction, actor, reference, now).await)
    }

    async fn erase(
        &self,
        subject_keys: &LiveKeys<SubjectKey>,
        only: &[SignalId],
        actor: &Actor,
        reference: &str,
        now: Timestamp,
    ) -> Result<Vec<SignalId>, StoreError> {
        on_backend!(self, store => store.erase(subject_keys, only, actor, reference, now).await)
    }

    async fn record_audit(&self, entry: AuditEntry) -> Result<(), StoreError> {
        on_backend!(self, store => store.record_audit(entry).await)
    }

    async fn record_lookup(
        &self,
        acting: &Acting,
        signal_ids: Vec<SignalId>,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        on_backend!(self, store => store.record_lookup(acting, signal_ids, now).await)
    }

    async fn verify_audit(&self) -> Result<u64, AuditVerifyError> {
        on_backend!(self, store => store.verify_audit().await)
    }

    async fn outbox_len(&self) -> Result<u64, StoreError> {
        on_backend!(self, store => store.outbox_len().await)
    }

    async fn outbox_batch(&self, limit: u32) -> Result<Vec<OutboxEntry>, StoreError> {
        on_backend!(self, store => store.outbox_batch(limit).await)
    }

    async fn outbox_remove(&self, seqs: Vec<i64>) -> Result<(), StoreError> {
        on_backend!(self, store => store.outbox_remove(seqs).await)
    }

    async fn hub_log_position(&self) -> Result<LogPosition, StoreError> {
        on_backend!(self, store => store.hub_log_position().await)
    }

    async fn adopt_hub_epoch(&self, epoch: String) -> Result<(), StoreError> {
        on_backend!(self, store => store.adopt_hub_epoch(epoch).await)
    }

    async fn quarantine_outbox(
        &self,
        seq: i64,
        reason: String,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        on_backend!(self, store => store.quarantine_outbox(seq, reason, now).await)
    }

    async fn quarantine_coordination(
        &self,
        seq: i64,
        reason: String,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        on_backend!(self, store => store.quarantine_coordination(seq, reason, now).await)
    }

    async fn quarantine_hub_entry(
        &self,
        cursor: u64,
        payload: Vec<u8>,
        reason: String,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        on_backend!(self, store => store.quarantine_hub_entry(cursor, payload, reason, now).await)
    }

    async fn dead_letters(&self, after_id: i64, limit: u32) -> Result<Vec<DeadLetter>, StoreError> {
        on_backend!(self, store => store.dead_letters(after_id, limit).await)
    }

    async fn dead_letter_count(&self) -> Result<u64, StoreError> {
        on_backend!(self, store => store.dead_letter_count().await)
    }

    async fn retry_dead_letter(&self, id: i64) -> Result<Retried, StoreError> {
        on_backend!(self, store => store.retry_dead_letter(id).await)
    }

    async fn remove_dead_letter(&self, id: i64) -> Result<(), StoreError> {
        on_backend!(self, store => store.remove_dead_letter(id).await)
    }

    async fn store_hub_notice(
        &self,
        notice: LoggedNotice,
        now: Timestamp,
    ) -> Result<NoticeDelivery, StoreError> {
        on_backend!(self, store => store.store_hub_notice(notice, now).await)
    }

    async fn sweep(&self, today: Date, limit: u32) -> Result<SweepReport, StoreError> {
        on_backend!(self, store => store.sweep(today, limit).await)
    }

    async fn store_hub_log(
        &self,
        entries: Vec<LogEntry>,
        now: Timestamp,
    ) -> Result<Vec<HubLogApplied>, StoreError> {
        on_backend!(self, store => store.store_hub_log(entries, now).await)
    }

    async fn handover_page(
        &self,
        after: Option<SignalId>,
        limit: u32,
    ) -> Result<super::region::decommission::HandoverPage, StoreError> {
        on_backend!(self, store => store.handover_page(after, limit).await)
    }

    async fn handed_over(
        &self,
        signal_ids: Vec<SignalId>,
        successor: RegionId,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        on_backend!(self, store => store.handed_over(signal_ids, successor, now).await)
    }

    async fn purge_page(&self, limit: u32, now: Timestamp) -> Result<u32, StoreError> {
        on_backend!(self, store => store.purge_page(limit, now).await)
    }

    async fn adopt(
        &self,
        cursor: u64,
        adoption: super::region::handover::Adoption,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        on_backend!(self, store => store.adopt(cursor, adoption, now).await)
    }

    async fn claim_emails(
        &self,
        now: Timestamp,
        lease: std::time::Duration,
        limit: u32,
    ) -> Result<Vec<ClaimedEmail>, StoreError> {
        on_backend!(self, store => store.claim_emails(now, lease, limit).await)
    }

    async fn email_sent(
        &self,
        notice_id: &str,
        recipient: &Acting,
        signal_ids: Vec<SignalId>,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        on_backend!(self, store => store.email_sent(notice_id, recipient, signal_ids, now).await)
    }

    async fn email_retry(&self, notice_id: &str, at: Timestamp) -> Result<(), StoreError> {
        on_backend!(self, store => store.email_retry(notice_id, at).await)
    }

    async fn email_dropped(&self, notice_id: &str) -> Result<(), StoreError> {
        on_backend!(self, store => store.email_dropped(notice_id).await)
    }

    async fn emails_pending(&self) -> Result<u64, StoreError> {
        on_backend!(self, store => store.emails_pending().await)
    }

    async fn gauges(&self) -> Result<super::StoreGauges, StoreError> {
        on_backend!(self, store => store.gauges().await)
    }
}
