//! The hub's database, whichever backend the configuration names: SQLite for one machine,
//! PostgreSQL for several hub instances. The hub's service is written against [`HubStore`]
//! once; this picks the store at start-up.

use jiff::Timestamp;
use jiff::civil::Date;
use tokio::sync::watch;

use super::audit::AuditVerifyError;
use super::database_location::DatabaseLocation;
use super::hub::{BatchOutcome, HubStore, HubStoreError, LogHead, LogPage, SignalEvent};
use super::hub_postgres::PgHubStore;
use super::hub_sqlite::HubSqliteStore;
use super::postgres::PgSettings;
use super::{GroupCommit, StoreError, SweepReport};
use crate::domain::RegionId;
use crate::domain::audit::AuditEntry;
use crate::domain::coordination::CoordinationChange;

pub enum HubDatabase {
    Sqlite(HubSqliteStore),
    Postgres(PgHubStore),
}

impl HubDatabase {
    /// Opens (and migrates) the database at `location`; a SQLite file is created on first
    /// start (its folder must exist).
    pub async fn open(
        location: &DatabaseLocation,
        group_commit: GroupCommit,
        postgres: PgSettings,
    ) -> Result<Self, StoreError> {
        Ok(match location {
            DatabaseLocation::Sqlite(path) => {
                Self::Sqlite(HubSqliteStore::open(path, group_commit).await?)
            }
            DatabaseLocation::Postgres(url) => {
                Self::Postgres(PgHubStore::open(url, postgres).await?)
            }
        })
    }

    pub async fn close(&self) {
        match self {
            Self::Sqlite(store) => store.close().await,
            Self::Postgres(store) => store.close().await,
        }
    }

    /// Keeps the database's statistics current until `stopping` (PostgreSQL; SQLite's writer
    /// does its own).
    pub async fn maintain(&self, stopping: watch::Receiver<bool>) {
        match self {
            Self::Sqlite(_) => until_stopping(stopping).await,
            Self::Postgres(store) => store.maintain(stopping).await,
        }
    }

    /// Wakes this instance's notice streams when another writer appends to a log, until
    /// `stopping`. SQLite has one writer, the hub itself, which wakes them directly.
    pub async fn watch_log(&self, wake: watch::Sender<u64>, stopping: watch::Receiver<bool>) {
        match self {
            Self::Sqlite(_) => until_stopping(stopping).await,
            Self::Postgres(store) => store.watch_log(wake, stopping).await,
        }
    }
}

/// Returns when `stopping` turns true (or its sender is gone).
async fn until_stopping(mut stopping: watch::Receiver<bool>) {
    while !*stopping.borrow_and_update() {
        if stopping.changed().await.is_err() {
            break;
        }
    }
}

/// Runs `$call` on the store, whichever backend it is.
macro_rules! on_store {
    ($database:expr, $store:ident => $call:expr) => {
        match $database {
            HubDatabase::Sqlite($store) => $call,
            HubDatabase::Postgres($store) => $call,
        }
    };
}

impl HubStore for HubDatabase {
    async fn submit(
        &self,
        region_id: &RegionId,
        events: Vec<SignalEvent>,
        now: Timestamp,
    ) -> Result<BatchOutcome, HubStoreError> {
        on_store!(self, store => store.submit(region_id, events, now).await)
    }

    async fn log_after(
        &self,
        region_id: &RegionId,
        after_cursor: u64,
        limit: u32,
    ) -> Result<LogPage, StoreError> {
        on_store!(self, store => store.log_after(region_id, after_cursor, limit).await)
    }

    async fn log_head(&self) -> Result<LogHead, StoreError> {
        on_store!(self, store => store.log_head().await)
    }

    async fn prune_log(&self, acked_before: Timestamp, now: Timestamp) -> Result<u64, StoreError> {
        on_store!(self, store => store.prune_log(acked_before, now).await)
    }

    async fn ack(
        &self,
        region_id: &RegionId,
        cursor: u64,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        on_store!(self, store => store.ack(region_id, cursor, now).await)
    }

    async fn sweep(&self, today: Date, limit: u32) -> Result<SweepReport, StoreError> {
        on_store!(self, store => store.sweep(today, limit).await)
    }

    async fn submit_coordination(
        &self,
        region_id: &RegionId,
        changes: Vec<CoordinationChange>,
        now: Timestamp,
    ) -> Result<u32, HubStoreError> {
        on_store!(self, store => store.submit_coordination(region_id, changes, now).await)
    }

    async fn hand_over(
        &self,
        region_id: &RegionId,
        successor: &RegionId,
        successor_organisations: &std::collections::HashSet<crate::domain::OrganisationId>,
        after_cursor: u64,
        handovers: Vec<super::hub::Handover>,
        now: Timestamp,
    ) -> Result<super::hub::HandoverOutcome, HubStoreError> {
        on_store!(self, store => store.hand_over(
            region_id,
            successor,
            successor_organisations,
            after_cursor,
            handovers,
            now,
        )
        .await)
    }

    async fn record_audit(&self, entry: AuditEntry) -> Result<(), StoreError> {
        on_store!(self, store => store.record_audit(entry).await)
    }

    async fn verify_audit(&self) -> Result<u64, AuditVerifyError> {
        on_store!(self, store => store.verify_audit().await)
    }

    async fn unacked(&self, region_id: &RegionId) -> Result<u64, StoreError> {
        on_store!(self, store => store.unacked(region_id).await)
    }

    async fn acknowledged(&self) -> Result<Vec<(RegionId, u64)>, StoreError> {
        on_store!(self, store => store.acknowledged().await)
    }

    async fn key_versions(&self) -> Result<Vec<(u32, u64)>, StoreError> {
        on_store!(self, store => store.key_versions().await)
    }
}
