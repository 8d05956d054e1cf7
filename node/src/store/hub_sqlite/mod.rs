//! The hub's SQLite store. Like the node's: one writer connection (so batches are serialised and
//! every pair of signals is compared in one order), WAL, `synchronous=FULL`, `secure_delete`.

use std::path::Path;

use jiff::Timestamp;
use jiff::civil::Date;
use sqlx::sqlite::SqlitePool;

use super::StoreError;
use super::SweepReport;
use super::hub::rows::log_entries_select;
use super::hub::{
    BatchOutcome, HubStore, HubStoreError, LogHead, LogPage, SignalEvent, rows, rules,
};
use super::sqlite::open_database;
use super::writer::{GroupCommit, Writer, WriterStats, run_ready};
use crate::domain::RegionId;
use crate::domain::coordination::CoordinationChange;

pub struct HubSqliteStore {
    /// SQLite's single writer: batches of every region share its commits.
    writer: Writer,
    reader: SqlitePool,
}

impl HubSqliteStore {
    pub async fn open(path: &Path, group_commit: GroupCommit) -> Result<Self, StoreError> {
        let (writer, reader) = open_database(
            path,
            &sqlx::migrate!("./migrations/hub-sqlite"),
            group_commit,
        )
        .await?;
        Ok(Self { writer, reader })
    }

    /// Writes and commits so far: their ratio is the group commit's mean batch size.
    pub fn writer_stats(&self) -> WriterStats {
        self.writer.stats()
    }

    #[cfg(test)]
    pub(crate) fn reader(&self) -> &SqlitePool {
        &self.reader
    }

    /// Finishes the queued writes, then closes the database.
    pub async fn close(&self) {
        self.writer.close().await;
        self.reader.close().await;
    }
}

mod tx;

use self::tx::SqliteHubTx;

impl HubStore for HubSqliteStore {
    async fn submit(
        &self,
        region_id: &RegionId,
        events: Vec<SignalEvent>,
        now: Timestamp,
    ) -> Result<BatchOutcome, HubStoreError> {
        let region_id = region_id.clone();
        self.writer
            .write_purging(move |tx| {
                let written = run_ready(rules::submit(
                    &mut SqliteHubTx::new(tx),
                    &region_id,
                    events,
                    now,
                ))?;
                Ok((written.outcome, written.deleted))
            })
            .await
    }

    async fn log_after(
        &self,
        region_id: &RegionId,
        after_cursor: u64,
        limit: u32,
    ) -> Result<LogPage, StoreError> {
        let rows = sqlx::query(concat!(
            log_entries_select!(),
            " WHERE l.region_id = ? AND l.cursor > ? ORDER BY l.cursor LIMIT ?"
        ))
        .bind(region_id.as_str())
        .bind(i64::try_from(after_cursor).unwrap_or(i64::MAX))
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await?;
        rows::log_page(&rows, limit)
    }

    async fn sweep(&self, today: Date, limit: u32) -> Result<SweepReport, StoreError> {
        self.writer
            .write_purging(move |tx| {
                let written = run_ready(rules::sweep(&mut SqliteHubTx::new(tx), today, limit))?;
                Ok((written.outcome, written.deleted))
            })
            .await
    }

    async fn log_head(&self) -> Result<LogHead, StoreError> {
        let epoch: String =
            sqlx::query_scalar("SELECT epoch FROM log_identity WHERE singleton = 1")
                .fetch_one(&self.reader)
                .await?;
        // AUTOINCREMENT's high-water mark: never lowered by deletions or pruning.
        let end: Option<i64> =
            sqlx::query_scalar("SELECT seq FROM sqlite_sequence WHERE name = 'region_log'")
                .fetch_optional(&self.reader)
                .await?;
        Ok(LogHead {
            epoch,
            end_cursor: u64::try_from(end.unwrap_or(0))
                .map_err(|_| StoreError::Corrupt("region_log cursor"))?,
        })
    }

    async fn prune_log(&self, acked_before: Timestamp, now: Timestamp) -> Result<u64, StoreError> {
        self.writer
            .write_purging(move |tx| {
                let written = run_ready(rules::prune_log(
                    &mut SqliteHubTx::new(tx),
                    acked_before,
                    now,
                ))?;
                Ok((written.outcome, written.deleted))
            })
            .await
    }

    async fn ack(
        &self,
        region_id: &RegionId,
        cursor: u64,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let region_id = region_id.clone();
        self.writer
            .write(move |tx| {
                run_ready(rules::ack(
                    &mut SqliteHubTx::new(tx),
                    &region_id,
                    cursor,
                    now,
                ))
            })
            .await
    }

    async fn submit_coordination(
        &self,
        region_id: &RegionId,
        changes: Vec<CoordinationChange>,
        now: Timestamp,
    ) -> Result<u32, HubStoreError> {
        let region_id = region_id.clone();
        self.writer
            .write(move |tx| {
                run_ready(rules::submit_coordination(
                    &mut SqliteHubTx::new(tx),
                    &region_id,
                    changes,
                    now,
                ))
            })
            .await
    }

    async fn record_audit(
        &self,
        entry: crate::domain::audit::AuditEntry,
    ) -> Result<(), StoreError> {
        self.writer
            .write(move |tx| super::audit::append(tx, &entry))
            .await
    }

    async fn verify_audit(&self) -> Result<u64, super::audit::AuditVerifyError> {
        super::audit::verify(&self.reader).await
    }

    async fn unacked(&self, region_id: &RegionId) -> Result<u64, StoreError> {
        let count: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM region_log WHERE region_id = ?1 AND cursor > \
             COALESCE((SELECT acked_cursor FROM region_cursors WHERE region_id = ?1), 0)",
        )
        .bind(region_id.as_str())
        .fetch_one(&self.reader)
        .await?;
        u64::try_from(count).map_err(|_| StoreError::Corrupt("notices"))
    }

    async fn acknowledged(&self) -> Result<Vec<(RegionId, u64)>, StoreError> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT region_id, acked_cursor FROM region_cursors ORDER BY region_id")
                .fetch_all(&self.reader)
                .await?;
        rows.into_iter()
            .map(|(region, cursor)| Ok((rows::parse_region(&region)?, rows::parse_cursor(cursor)?)))
            .collect()
    }
}
