//! The hub's SQLite store. Like the node's: one writer connection (so batches are serialised and
//! every pair of signals is compared in one order), WAL, `synchronous=FULL`, `secure_delete`.

use std::path::Path;

use jiff::Timestamp;
use jiff::civil::Date;
use sqlx::Row;
use sqlx::sqlite::{SqlitePool, SqliteRow};

use super::SweepReport;
use super::hub::{
    BatchOutcome, HubSignal, HubStore, HubStoreError, LogEntry, LogHead, LogPage, LoggedNotice,
    SignalEvent,
};
use super::row::{
    contact_from_row, parse_instant, parse_org, parse_org_name, parse_signal_id, parse_state,
};
use super::sqlite::open_database;
use super::writer::{GroupCommit, Writer, WriterStats};
use super::{CounterpartView, StoreError};
use crate::domain::coordination::{ChangeKind, CoordinationChange};
use crate::domain::matching::{MatchSignal, MatchType, NoticeKind};
use crate::domain::{RegionId, SignalId};

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

    /// Finishes the queued writes, then closes the database.
    pub async fn close(&self) {
        self.writer.close().await;
        self.reader.close().await;
    }
}

mod write;

use self::write::{ack, prune_log, submit, submit_coordination, sweep};

/// A signal row with the region that owns it.
pub(super) struct StoredHubSignal {
    pub(super) signal_id: SignalId,
    pub(super) region_id: RegionId,
    pub(super) signal: HubSignal,
}

impl StoredHubSignal {
    pub(super) fn match_signal(&self) -> MatchSignal {
        MatchSignal {
            signal_id: self.signal_id,
            organisation_id: self.signal.organisation_id.clone(),
            region_id: self.region_id.clone(),
            subject_key: self.signal.subject_key,
            family_keys: self.signal.family_keys.clone(),
            state: self.signal.state,
            registered_at: self.signal.registered_at,
        }
    }
}

impl HubStore for HubSqliteStore {
    async fn submit(
        &self,
        region_id: &RegionId,
        events: Vec<SignalEvent>,
        now: Timestamp,
    ) -> Result<BatchOutcome, HubStoreError> {
        let region_id = region_id.clone();
        self.writer
            .write_purging(move |tx| submit(tx, &region_id, events, now))
            .await
    }

    async fn log_after(
        &self,
        region_id: &RegionId,
        after_cursor: u64,
        limit: u32,
    ) -> Result<LogPage, StoreError> {
        let rows = sqlx::query(
            "SELECT l.cursor, l.entry, l.notice_id AS log_notice_id, n.notice_id, n.match_type, \
                    n.kind, n.recipient_signal_id, n.recipient_organisation_id, n.found_at, \
                    n.counterpart_signal_id, n.counterpart_region_id, \
                    n.counterpart_organisation_id, \
                    n.counterpart_organisation_name AS organisation_name, \
                    n.counterpart_professional_id AS professional_id, \
                    n.counterpart_professional_name AS professional_name, \
                    n.counterpart_professional_email AS professional_email, \
                    n.counterpart_professional_phone AS professional_phone, \
                    n.counterpart_state, k.by_signal_id AS k_by, \
                    k.other_signal_id AS k_other, k.at AS k_at, \
                    k.regievoerder_signal_id AS k_named \
             FROM region_log l \
             LEFT JOIN notices n ON l.entry = 'notice' AND n.notice_id = l.notice_id \
             LEFT JOIN coordination_changes k \
                  ON l.entry = 'coordination' AND k.change_id = l.notice_id \
             WHERE l.region_id = ? AND l.cursor > ? \
             ORDER BY l.cursor LIMIT ?",
        )
        .bind(region_id.as_str())
        .bind(i64::try_from(after_cursor).unwrap_or(i64::MAX))
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await?;
        let mut page = LogPage {
            full: rows.len() == limit as usize,
            ..LogPage::default()
        };
        for row in &rows {
            let cursor: i64 = row.try_get("cursor")?;
            let cursor = u64::try_from(cursor).map_err(|_| StoreError::Corrupt("cursor"))?;
            page.read_through = Some(cursor);
            let entry: &str = row.try_get("entry")?;
            if entry == "coordination" {
                if let Some(by) = row.try_get::<Option<&str>, _>("k_by")? {
                    let named: Option<&str> = row.try_get("k_named")?;
                    let change = CoordinationChange {
                        change_id: uuid::Uuid::try_parse(row.try_get("log_notice_id")?)
                            .map_err(|_| StoreError::Corrupt("change_id"))?,
                        by_signal: parse_signal_id(by)?,
                        other_signal: parse_signal_id(row.try_get("k_other")?)?,
                        at: parse_instant(row.try_get("k_at")?)?,
                        kind: match named {
                            Some(named) => ChangeKind::Regievoerder(parse_signal_id(named)?),
                            None => ChangeKind::Afgestemd,
                        },
                    };
                    page.entries.push(LogEntry::Coordination { cursor, change });
                }
            } else if entry == "retraction" {
                page.entries.push(LogEntry::Retraction {
                    cursor,
                    notice_id: row.try_get("log_notice_id")?,
                });
            } else if row.try_get::<Option<String>, _>("notice_id")?.is_some() {
                page.entries
                    .push(LogEntry::Notice(Box::new(logged_notice(row, cursor)?)));
            }
            // else: the notice was deleted before delivery; nothing to send.
        }
        Ok(page)
    }

    async fn sweep(&self, today: Date, limit: u32) -> Result<SweepReport, StoreError> {
        self.writer
            .write_purging(move |tx| sweep(tx, today, limit))
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
            .write_purging(move |tx| prune_log(tx, acked_before, now))
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
            .write(move |tx| ack(tx, &region_id, cursor, now))
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
            .write(move |tx| submit_coordination(tx, &region_id, changes, now))
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
}

fn logged_notice(row: &SqliteRow, cursor: u64) -> Result<LoggedNotice, StoreError> {
    Ok(LoggedNotice {
        cursor,
        notice_id: row.try_get("notice_id")?,
        match_type: MatchType::parse(row.try_get("match_type")?)
            .ok_or(StoreError::Corrupt("match_type"))?,
        kind: NoticeKind::parse(row.try_get("kind")?).ok_or(StoreError::Corrupt("kind"))?,
        recipient_signal_id: parse_signal_id(row.try_get("recipient_signal_id")?)?,
        recipient_organisation_id: parse_org(row.try_get("recipient_organisation_id")?)?,
        found_at: parse_instant(row.try_get("found_at")?)?,
        counterpart: CounterpartView {
            organisation_id: parse_org(row.try_get("counterpart_organisation_id")?)?,
            organisation_name: parse_org_name(&row.try_get::<String, _>("organisation_name")?)?,
            contact: contact_from_row(row)?,
            signal_id: parse_signal_id(row.try_get("counterpart_signal_id")?)?,
            state: parse_state(row.try_get("counterpart_state")?)?,
            region_id: parse_region(row.try_get("counterpart_region_id")?)?,
        },
    })
}

pub(super) fn parse_region(stored: &str) -> Result<RegionId, StoreError> {
    RegionId::parse(stored).map_err(|_| StoreError::Corrupt("region_id"))
}

#[cfg(test)]
mod tests;
