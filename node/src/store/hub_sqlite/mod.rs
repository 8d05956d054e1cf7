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

    async fn hand_over(
        &self,
        region_id: &RegionId,
        successor: &RegionId,
        successor_organisations: &std::collections::HashSet<crate::domain::OrganisationId>,
        after_cursor: u64,
        handovers: Vec<super::hub::Handover>,
        now: Timestamp,
    ) -> Result<super::hub::HandoverOutcome, HubStoreError> {
        let region_id = region_id.clone();
        let successor = successor.clone();
        let successor_organisations = successor_organisations.clone();
        self.writer
            .write(move |tx| {
                run_ready(rules::hand_over(
                    &mut SqliteHubTx::new(tx),
                    &region_id,
                    &successor,
                    &successor_organisations,
                    after_cursor,
                    handovers,
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

    async fn key_versions(&self) -> Result<Vec<(u32, u64)>, StoreError> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT substr(k, 2, instr(k, ':') - 2) AS version, COUNT(*) FROM ( \
                 SELECT subject_key AS k FROM signals \
                 UNION ALL SELECT family_key FROM signal_family_keys) \
             GROUP BY version",
        )
        .fetch_all(&self.reader)
        .await?;
        super::hub::parse_key_versions(rows)
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

#[cfg(test)]
mod migration_tests {
    /// A hub database as it stood before migration 0005.
    fn before_handover() -> rusqlite::Connection {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        for migration in [
            include_str!("../../../migrations/hub-sqlite/0001_hub.sql"),
            include_str!("../../../migrations/hub-sqlite/0002_constant_cost.sql"),
            include_str!("../../../migrations/hub-sqlite/0003_log_identity.sql"),
            include_str!("../../../migrations/hub-sqlite/0004_organisation_registry.sql"),
        ] {
            conn.execute_batch(migration).unwrap();
        }
        conn
    }

    /// Migration 0005 rebuilds the log: its numbering must go on past the highest cursor ever
    /// handed out, even when every entry was pruned, or regions holding cursors would be told
    /// they are past the log's end (or skip entries numbered again).
    #[test]
    fn rebuilding_the_log_keeps_its_numbering() {
        let conn = before_handover();
        for n in 0..7 {
            conn.execute(
                "INSERT INTO region_log (region_id, notice_id, entry) VALUES ('north', ?1, 'notice')",
                [format!("n{n}")],
            )
            .unwrap();
        }
        // Five pruned, two still held.
        conn.execute("DELETE FROM region_log WHERE cursor <= 5", [])
            .unwrap();
        conn.execute_batch(include_str!(
            "../../../migrations/hub-sqlite/0005_handover.sql"
        ))
        .unwrap();
        let end: i64 = conn
            .query_row(
                "SELECT seq FROM sqlite_sequence WHERE name = 'region_log'",
                [],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(end, 7);
        conn.execute(
            "INSERT INTO region_log (region_id, notice_id, entry) VALUES ('south', 'a', 'adoption')",
            [],
        )
        .unwrap();
        let cursors: Vec<i64> = conn
            .prepare("SELECT cursor FROM region_log ORDER BY cursor")
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(cursors, [6, 7, 8]);

        // All pruned before the rebuild: the numbering still goes on.
        let conn = before_handover();
        for n in 0..3 {
            conn.execute(
                "INSERT INTO region_log (region_id, notice_id, entry) VALUES ('north', ?1, 'notice')",
                [format!("n{n}")],
            )
            .unwrap();
        }
        conn.execute("DELETE FROM region_log", []).unwrap();
        conn.execute_batch(include_str!(
            "../../../migrations/hub-sqlite/0005_handover.sql"
        ))
        .unwrap();
        conn.execute(
            "INSERT INTO region_log (region_id, notice_id, entry) VALUES ('north', 'x', 'notice')",
            [],
        )
        .unwrap();
        let last: i64 = conn
            .query_row("SELECT MAX(cursor) FROM region_log", [], |row| row.get(0))
            .unwrap();
        assert_eq!(last, 4);
    }
}
