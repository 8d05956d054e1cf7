//! The hub's database, whichever backend the configuration names: SQLite for one machine,
//! PostgreSQL for several hub instances. The hub's service is written against [`HubStore`]
//! once; this picks the store at start-up.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use jiff::Timestamp;
use jiff::civil::Date;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::audit::AuditVerifyError;
use super::hub::{BatchOutcome, HubStore, HubStoreError, LogHead, LogPage, SignalEvent};
use super::hub_postgres::PgHubStore;
use super::hub_sqlite::HubSqliteStore;
use super::postgres::PgSettings;
use super::{GroupCommit, StoreError, SweepReport};
use crate::domain::RegionId;
use crate::domain::audit::AuditEntry;
use crate::domain::coordination::CoordinationChange;

/// Where a database is: a SQLite file (a path, or `sqlite://` and a path) or a PostgreSQL
/// database (`postgres://` or `postgresql://`, credentials and all).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum DatabaseLocation {
    Sqlite(PathBuf),
    Postgres(String),
}

#[derive(Debug, thiserror::Error)]
#[error("a database location is a file path, sqlite://<path> or postgres://…; got an empty one")]
pub struct EmptyLocation;

impl FromStr for DatabaseLocation {
    type Err = EmptyLocation;

    fn from_str(location: &str) -> Result<Self, Self::Err> {
        let location = location.trim();
        if location.is_empty() {
            return Err(EmptyLocation);
        }
        if location.starts_with("postgres://") || location.starts_with("postgresql://") {
            return Ok(Self::Postgres(location.to_owned()));
        }
        let path = location.strip_prefix("sqlite://").unwrap_or(location);
        if path.is_empty() {
            return Err(EmptyLocation);
        }
        Ok(Self::Sqlite(PathBuf::from(path)))
    }
}

impl TryFrom<String> for DatabaseLocation {
    type Error = EmptyLocation;

    fn try_from(location: String) -> Result<Self, Self::Error> {
        location.parse()
    }
}

impl From<DatabaseLocation> for String {
    fn from(location: DatabaseLocation) -> Self {
        match location {
            DatabaseLocation::Sqlite(path) => path.display().to_string(),
            DatabaseLocation::Postgres(url) => url,
        }
    }
}

impl From<PathBuf> for DatabaseLocation {
    fn from(path: PathBuf) -> Self {
        Self::Sqlite(path)
    }
}

/// Shown in logs and errors without a password: the URL's user information is left out.
impl fmt::Display for DatabaseLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sqlite(path) => write!(f, "{}", path.display()),
            Self::Postgres(url) => {
                let (scheme, rest) = url.split_once("://").unwrap_or(("postgres", url));
                let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
                // The query may hold a password too (`?password=`): leave it out.
                let rest = rest.split_once('?').map_or(rest, |(path, _)| path);
                write!(f, "{scheme}://{rest}")
            }
        }
    }
}

impl fmt::Debug for DatabaseLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseLocation({self})")
    }
}

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

    async fn record_audit(&self, entry: AuditEntry) -> Result<(), StoreError> {
        on_store!(self, store => store.record_audit(entry).await)
    }

    async fn verify_audit(&self) -> Result<u64, AuditVerifyError> {
        on_store!(self, store => store.verify_audit().await)
    }

    async fn unacked(&self, region_id: &RegionId) -> Result<u64, StoreError> {
        on_store!(self, store => store.unacked(region_id).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_location_is_a_path_a_sqlite_url_or_a_postgres_url() {
        assert_eq!(
            "data/hub.sqlite".parse::<DatabaseLocation>().unwrap(),
            DatabaseLocation::Sqlite(PathBuf::from("data/hub.sqlite"))
        );
        assert_eq!(
            "sqlite:///var/lib/vix/hub.sqlite"
                .parse::<DatabaseLocation>()
                .unwrap(),
            DatabaseLocation::Sqlite(PathBuf::from("/var/lib/vix/hub.sqlite"))
        );
        assert_eq!(
            "postgresql://vix@db/hub"
                .parse::<DatabaseLocation>()
                .unwrap(),
            DatabaseLocation::Postgres("postgresql://vix@db/hub".to_owned())
        );
        for empty in ["", "  ", "sqlite://"] {
            assert!(empty.parse::<DatabaseLocation>().is_err(), "{empty:?}");
        }
    }

    #[test]
    fn a_postgres_location_is_shown_without_its_credentials() {
        let location: DatabaseLocation =
            "postgres://vix:s3cret@db.example:5432/hub?password=also&sslmode=require"
                .parse()
                .unwrap();
        let shown = format!("{location} {location:?}");
        assert!(
            !shown.contains("s3cret") && !shown.contains("also"),
            "{shown}"
        );
        assert!(shown.contains("db.example:5432/hub"), "{shown}");
    }
}
