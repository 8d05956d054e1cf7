//! The hub's PostgreSQL store: several hub instances on one database. What is decided is in
//! [`super::hub::rules`], as for SQLite; this module runs those rules in PostgreSQL
//! transactions ([`tx`]: statements and locks), reads the logs, and wakes the notice streams of
//! every instance when any of them appends to a log (LISTEN/NOTIFY, with a poll behind it).

use std::str::FromStr;
use std::time::Duration;

use jiff::Timestamp;
use jiff::civil::Date;
use serde::{Deserialize, Serialize};
use sqlx::ConnectOptions;
use sqlx::Row;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions};
use tokio::sync::watch;

use super::audit::AuditVerifyError;
use super::hub::rows::log_entries_select;
use super::hub::{
    BatchOutcome, HubStore, HubStoreError, LogHead, LogPage, SignalEvent, rows, rules,
};
use super::{StoreError, SweepReport};
use crate::domain::RegionId;
use crate::domain::audit::verify_chain;
use crate::domain::coordination::CoordinationChange;

mod tx;

/// How often [`PgHubStore::maintain`] gathers statistics.
const STATISTICS_EVERY: Duration = Duration::from_secs(3600);

use self::tx::{LOG_CHANNEL, PgHubTx};

/// How the hub uses its PostgreSQL database (`[hub.postgres]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PgSettings {
    /// Connections per hub instance. A region's batch holds one for its transaction, a notice
    /// stream one per page read.
    pub max_connections: u32,
    /// How long a request waits for a free connection (milliseconds) before it is answered
    /// `Unavailable`: with the database gone, callers hear so quickly instead of hanging.
    pub acquire_timeout_ms: u64,
    /// How often (milliseconds) the notice streams read their logs even without a
    /// notification: a notification sent while this instance's listening connection was being
    /// re-established is lost, and this bounds how late an entry can be.
    pub log_poll_ms: u64,
}

impl Default for PgSettings {
    fn default() -> Self {
        Self {
            max_connections: 16,
            acquire_timeout_ms: 5_000,
            log_poll_ms: 1_000,
        }
    }
}

pub struct PgHubStore {
    pool: PgPool,
    settings: PgSettings,
}

impl PgHubStore {
    /// Connects to the database at `url` (`postgres://…`) and brings its schema up to date.
    pub async fn open(url: &str, settings: PgSettings) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url)?;
        Self::open_with(options, settings).await
    }

    /// As [`Self::open`], from parsed options (tests set a schema of their own this way).
    pub async fn open_with(
        options: PgConnectOptions,
        settings: PgSettings,
    ) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(settings.max_connections.max(2))
            .acquire_timeout(Duration::from_millis(settings.acquire_timeout_ms))
            // A connection the server ended (a restart, pg_terminate_backend) is found before a
            // request is given it, not by the request.
            .test_before_acquire(true)
            // Short statements on indexes: compiling them (JIT) costs more than it saves, and
            // was seen adding 200 ms to a statement planned on stale statistics. Each
            // execution is planned for its values and the tables as they are now: a prepared
            // statement's generic plan, made once while a table was small, is otherwise kept
            // until the next ANALYZE, and was seen scanning 24,500 signals per lookup where
            // autovacuum is off. Every statement is logged at TRACE, as SQLite's, for the
            // query-plan test.
            .connect_with(
                options
                    .options([("jit", "off"), ("plan_cache_mode", "force_custom_plan")])
                    .log_statements(log::LevelFilter::Trace),
            )
            .await?;
        // sqlx's migrator holds an advisory lock while it runs, so instances starting together
        // migrate once.
        sqlx::migrate!("./migrations/hub-postgres")
            .run(&pool)
            .await?;
        Ok(Self { pool, settings })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    async fn begin(&self) -> Result<PgHubTx, StoreError> {
        Ok(PgHubTx::new(self.pool.begin().await?))
    }

    /// Gathers the planner's statistics of the hub's tables every hour until `stopping`
    /// turns true, as SQLite's `PRAGMA optimize` does: where autovacuum is off or behind, the
    /// hub's own statistics keep its lookups on their indexes. Not at start-up: a new hub's
    /// tables are empty, and statistics of empty tables mislead the planner once they grow.
    pub async fn maintain(&self, mut stopping: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                () = tokio::time::sleep(STATISTICS_EVERY) => {}
                _ = stopping.changed() => {}
            }
            if *stopping.borrow() {
                return;
            }
            if let Err(error) = sqlx::query(
                "ANALYZE signals, signal_family_keys, tombstones, notices, told_pairs, \
                 region_log, coordination_changes",
            )
            .execute(&self.pool)
            .await
            {
                tracing::warn!(error = %crate::telemetry::error_chain(&error), "gathering statistics failed; will retry");
            }
        }
    }

    /// Bumps `wake` whenever any instance commits log entries (and every `log_poll_ms` in
    /// any case), until `stopping` turns true.
    pub async fn watch_log(&self, wake: watch::Sender<u64>, mut stopping: watch::Receiver<bool>) {
        let poll = Duration::from_millis(self.settings.log_poll_ms.max(10));
        let mut listener: Option<PgListener> = None;
        while !*stopping.borrow() {
            if listener.is_none() {
                listener = match PgListener::connect_with(&self.pool).await {
                    Ok(mut connected) => match connected.listen(LOG_CHANNEL).await {
                        Ok(()) => Some(connected),
                        Err(error) => {
                            tracing::warn!(error = %crate::telemetry::error_chain(&error), "listening for notice-log entries failed; polling");
                            None
                        }
                    },
                    Err(error) => {
                        tracing::warn!(error = %crate::telemetry::error_chain(&error), "no connection to listen for notice-log entries; polling");
                        None
                    }
                };
            }
            let notified = async {
                match listener.as_mut() {
                    // `try_recv` answers `None` when the connection was lost: entries may have
                    // been missed, so the streams read anyway, and listening starts again.
                    Some(connected) => match connected.try_recv().await {
                        Ok(Some(_)) => true,
                        Ok(None) | Err(_) => false,
                    },
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                still_listening = notified => {
                    if !still_listening {
                        listener = None;
                        tokio::time::sleep(poll).await;
                    }
                }
                () = tokio::time::sleep(poll) => {}
                _ = stopping.changed() => {}
            }
            wake.send_modify(|n| *n += 1);
        }
    }
}

impl HubStore for PgHubStore {
    async fn submit(
        &self,
        region_id: &RegionId,
        events: Vec<SignalEvent>,
        now: Timestamp,
    ) -> Result<BatchOutcome, HubStoreError> {
        let mut tx = self.begin().await?;
        let written = rules::submit(&mut tx, region_id, events, now).await?;
        tx.commit().await?;
        Ok(written.outcome)
    }

    async fn log_after(
        &self,
        region_id: &RegionId,
        after_cursor: u64,
        limit: u32,
    ) -> Result<LogPage, StoreError> {
        let rows = sqlx::query(concat!(
            log_entries_select!(),
            " WHERE l.region_id = $1 AND l.cursor > $2 ORDER BY l.cursor LIMIT $3"
        ))
        .bind(region_id.as_str())
        .bind(i64::try_from(after_cursor).unwrap_or(i64::MAX))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows::log_page(&rows, limit)
    }

    async fn log_head(&self) -> Result<LogHead, StoreError> {
        let row = sqlx::query(
            "SELECT (SELECT epoch FROM log_identity WHERE singleton = 1) AS epoch, \
                    (SELECT COALESCE(MAX(last_cursor), 0) FROM region_heads) AS end_cursor",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(LogHead {
            epoch: row.try_get("epoch")?,
            end_cursor: rows::parse_cursor(row.try_get("end_cursor")?)?,
        })
    }

    async fn prune_log(&self, acked_before: Timestamp, now: Timestamp) -> Result<u64, StoreError> {
        let mut tx = self.begin().await?;
        let written = rules::prune_log(&mut tx, acked_before, now).await?;
        tx.commit().await?;
        Ok(written.outcome)
    }

    async fn ack(
        &self,
        region_id: &RegionId,
        cursor: u64,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        rules::ack(&mut tx, region_id, cursor, now).await?;
        tx.commit().await
    }

    async fn sweep(&self, today: Date, limit: u32) -> Result<SweepReport, StoreError> {
        let mut tx = self.begin().await?;
        let written = rules::sweep(&mut tx, today, limit).await?;
        tx.commit().await?;
        Ok(written.outcome)
    }

    async fn submit_coordination(
        &self,
        region_id: &RegionId,
        changes: Vec<CoordinationChange>,
        now: Timestamp,
    ) -> Result<u32, HubStoreError> {
        let mut tx = self.begin().await?;
        let relayed = rules::submit_coordination(&mut tx, region_id, changes, now).await?;
        tx.commit().await?;
        Ok(relayed)
    }

    async fn record_audit(
        &self,
        entry: crate::domain::audit::AuditEntry,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        super::hub::tx::HubTx::audit(&mut tx, &entry).await?;
        tx.commit().await
    }

    async fn verify_audit(&self) -> Result<u64, AuditVerifyError> {
        // One snapshot: an instance appending meanwhile cannot look like a removal.
        let mut tx = self.pool.begin().await.map_err(StoreError::from)?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await
            .map_err(StoreError::from)?;
        let highest: i64 = sqlx::query_scalar("SELECT seq FROM audit_head WHERE singleton = 1")
            .fetch_one(&mut *tx)
            .await
            .map_err(StoreError::from)?;
        let rows = sqlx::query(
            "SELECT seq, at, action, actor_kind, actor_id, actor_person_id, signal_ids, \
                    detail, hash \
             FROM audit_log ORDER BY seq",
        )
        .fetch_all(&mut *tx)
        .await
        .map_err(StoreError::from)?;
        tx.rollback().await.map_err(StoreError::from)?;
        let entries = rows
            .iter()
            .map(super::audit::stored_entry)
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(verify_chain(entries, highest)?)
    }

    async fn unacked(&self, region_id: &RegionId) -> Result<u64, StoreError> {
        let count: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM region_log WHERE region_id = $1 AND cursor > \
             COALESCE((SELECT acked_cursor FROM region_cursors WHERE region_id = $1), 0)",
        )
        .bind(region_id.as_str())
        .fetch_one(&self.pool)
        .await?;
        u64::try_from(count).map_err(|_| StoreError::Corrupt("notices"))
    }
}

/// A schema of its own on a test PostgreSQL server, so tests run side by side on one database.
pub mod testing {
    use std::str::FromStr;

    use sqlx::postgres::{PgConnectOptions, PgConnection};
    use sqlx::{AssertSqlSafe, Connection};

    use super::{PgHubStore, PgSettings};
    use crate::store::StoreError;

    /// The server tests use: `VIX_TEST_POSTGRES`, or the one this project's machines run.
    pub fn server_url() -> String {
        std::env::var("VIX_TEST_POSTGRES")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
    }

    #[derive(Debug, Clone)]
    pub struct Schema {
        url: String,
        name: String,
    }

    impl Schema {
        /// Creates an empty schema with a fresh name on [`server_url`].
        pub async fn create() -> Result<Self, StoreError> {
            Self::create_on(&server_url()).await
        }

        /// Creates an empty schema with a fresh name on the server at `url`.
        pub async fn create_on(url: &str) -> Result<Self, StoreError> {
            let url = url.to_owned();
            let name = format!("vix_{}", uuid::Uuid::new_v4().simple());
            let mut admin = PgConnection::connect(&url).await?;
            sqlx::query(AssertSqlSafe(format!("CREATE SCHEMA {name}")))
                .execute(&mut admin)
                .await?;
            admin.close().await?;
            Ok(Self { url, name })
        }

        /// Connection options whose every table lives in this schema; the connections carry
        /// the schema's name as their application name, so a test can find and end them.
        pub fn options(&self) -> Result<PgConnectOptions, StoreError> {
            Ok(PgConnectOptions::from_str(&self.url)?
                .options([("search_path", &self.name)])
                .application_name(&self.name))
        }

        pub fn name(&self) -> &str {
            &self.name
        }

        /// Ends every server session of this schema's connections, as a database restart or
        /// an operator would; returns how many were ended.
        pub async fn terminate_sessions(&self) -> Result<u64, StoreError> {
            let mut admin = PgConnection::connect(&self.url).await?;
            let ended: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE application_name = $1 AND pid <> pg_backend_pid()) AS ended",
            )
            .bind(&self.name)
            .fetch_one(&mut admin)
            .await?;
            admin.close().await?;
            Ok(u64::try_from(ended).unwrap_or(0))
        }

        /// The URL a `vix-node` process is given for this schema.
        pub fn url(&self) -> String {
            let separator = if self.url.contains('?') { '&' } else { '?' };
            format!(
                "{}{separator}options=-c%20search_path%3D{name}&application_name={name}",
                self.url,
                name = self.name
            )
        }

        pub async fn open(&self) -> Result<PgHubStore, StoreError> {
            PgHubStore::open_with(self.options()?, PgSettings::default()).await
        }

        pub async fn drop(self) -> Result<(), StoreError> {
            let mut admin = PgConnection::connect(&self.url).await?;
            sqlx::query(AssertSqlSafe(format!("DROP SCHEMA {} CASCADE", self.name)))
                .execute(&mut admin)
                .await?;
            admin.close().await?;
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests;
