//! The hub's PostgreSQL store: several hub instances on one database. What is decided is in
//! [`super::hub::rules`], as for SQLite; this module runs those rules in PostgreSQL
//! transactions ([`tx`]: statements and locks), reads the logs, and wakes the notice streams of
//! every instance when any of them appends to a log (LISTEN/NOTIFY, with a poll behind it).

use std::str::FromStr;
use std::time::Duration;

use jiff::Timestamp;
use jiff::civil::Date;
use sqlx::Row;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool};
use tokio::sync::watch;

use super::audit::AuditVerifyError;
use super::hub::rows::log_entries_select;
use super::hub::{
    BatchOutcome, HubStore, HubStoreError, LogHead, LogPage, SignalEvent, rows, rules,
};
use super::postgres::PgSettings;
use super::{StoreError, SweepReport};
use crate::domain::RegionId;
use crate::domain::coordination::CoordinationChange;

mod tx;

use self::tx::{LOG_CHANNEL, PgHubTx};

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
        let pool = super::postgres::connect(options, &settings).await?;
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
    /// turns true (see [`super::postgres::maintain`]).
    pub async fn maintain(&self, stopping: watch::Receiver<bool>) {
        super::postgres::maintain(
            &self.pool,
            "ANALYZE signals, signal_family_keys, tombstones, notices, told_pairs, region_log, \
             coordination_changes",
            stopping,
        )
        .await;
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

    async fn hand_over(
        &self,
        region_id: &RegionId,
        successor: &RegionId,
        successor_organisations: &std::collections::HashSet<crate::domain::OrganisationId>,
        after_cursor: u64,
        handovers: Vec<super::hub::Handover>,
        now: Timestamp,
    ) -> Result<super::hub::HandoverOutcome, HubStoreError> {
        let mut tx = self.begin().await?;
        let outcome = rules::hand_over(
            &mut tx,
            region_id,
            successor,
            successor_organisations,
            after_cursor,
            handovers,
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(outcome)
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
        super::postgres::verify_audit(&self.pool).await
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

    async fn key_versions(&self) -> Result<Vec<(u32, u64)>, StoreError> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT split_part(substr(k, 2), ':', 1) AS version, COUNT(*) FROM ( \
                 SELECT subject_key AS k FROM signals \
                 UNION ALL SELECT family_key FROM signal_family_keys) AS keys \
             GROUP BY version",
        )
        .fetch_all(&self.pool)
        .await?;
        super::hub::parse_key_versions(rows)
    }

    async fn acknowledged(&self) -> Result<Vec<(RegionId, u64)>, StoreError> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT region_id, acked_cursor FROM region_cursors ORDER BY region_id")
                .fetch_all(&self.pool)
                .await?;
        rows.into_iter()
            .map(|(region, cursor)| Ok((rows::parse_region(&region)?, rows::parse_cursor(cursor)?)))
            .collect()
    }
}

#[cfg(test)]
mod tests;
