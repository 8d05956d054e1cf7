//! The embedded SQLite store: WAL, `synchronous=FULL` (a commit is on disk before the caller
//! hears of it), `secure_delete` (deleted data is overwritten, not left in free pages).
//!
//! SQLite has one writer at a time; the store makes that explicit with one writer thread that
//! groups concurrent writes into one commit (`store::writer`, the writes in `write`). Reads go
//! through a pool of read-only sqlx connections and see the last committed state (WAL
//! snapshot).

mod dead_letters;
mod tx;

use crate::store::region::decommission::{self, HandoverPage};
use crate::store::region::handover::Adoption;
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use jiff::Timestamp;
use jiff::civil::Date;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use sqlx::{ConnectOptions, Connection};

use self::tx::SqliteRegionTx;
use super::hub::{LogEntry, LoggedNotice};
use super::region::rows::{
    log_position, match_view, outbox_entry, parse_family_keys, queued_coordination, signal_from_row,
};
use super::region::rules;
use super::region::tx::RegionTx;
use super::row::parse_signal_id;
use super::writer::{self, GroupCommit, Writer, run_ready};
use super::{
    Acting, ClaimedEmail, HubLogApplied, MatchPage, MatchView, NewSignal, NoticeDelivery,
    OutboxEntry, Registered, SignalPage, SignalStore, SignalUpdate, StoreError, StoredSignal,
    SweepReport, Withdrawn, audit,
};
use crate::domain::audit::{Actor, AuditAction, AuditEntry};
use crate::domain::coordination::{CoordinationAction, CoordinationChange};
use crate::domain::{LiveKeys, OrganisationId, RegionId, SignalId, SubjectKey, WithdrawReason};

/// How long a statement waits for a lock held by another process (`import-mutations`).
const LOCK_WAIT_MAX: Duration = Duration::from_secs(10);
/// Readers are cheap in WAL mode; a few cover a node's front-ends.
const READ_CONNECTIONS_MAX: u32 = 4;

pub struct SqliteStore {
    /// SQLite's single writer, made explicit: one task, one connection, group commit.
    writer: Writer,
    reader: SqlitePool,
    /// Every signal on this node belongs to this region.
    region_id: RegionId,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and runs the migrations.
    pub async fn open(
        path: &Path,
        region_id: RegionId,
        group_commit: GroupCommit,
    ) -> Result<Self, StoreError> {
        let (writer, reader) =
            open_database(path, &sqlx::migrate!("./migrations/sqlite"), group_commit).await?;
        Ok(Self {
            writer,
            reader,
            region_id,
        })
    }

    /// Writes and commits so far: their ratio is the group commit's mean batch size.
    pub fn writer_stats(&self) -> writer::WriterStats {
        self.writer.stats()
    }

    /// Finishes the queued writes, then closes the database.
    pub async fn close(&self) {
        self.writer.close().await;
        self.reader.close().await;
    }
}

/// Opens a vix SQLite database: runs `migrator`, then starts the group-committing writer and a
/// read-only pool, all in WAL mode with `synchronous=FULL` and `secure_delete=ON`.
pub(super) async fn open_database(
    path: &Path,
    migrator: &sqlx::migrate::Migrator,
    group_commit: GroupCommit,
) -> Result<(Writer, SqlitePool), StoreError> {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true)
        .busy_timeout(LOCK_WAIT_MAX)
        .pragma("secure_delete", "ON")
        // Every statement at TRACE (sqlx's default is DEBUG): seen only when asked for, and
        // told apart from other connections' by the query-plan test.
        .log_statements(log::LevelFilter::Trace);
    let mut migrating = SqliteConnection::connect_with(&options).await?;
    migrator.run(&mut migrating).await?;
    migrating.close().await?;
    let writer = Writer::start(path, group_commit)?;
    let reader = SqlitePoolOptions::new()
        .max_connections(READ_CONNECTIONS_MAX)
        .acquire_timeout(LOCK_WAIT_MAX)
        .connect_with(options.read_only(true))
        .await?;
    Ok((writer, reader))
}

/// A notice with its counterpart as it stands and the pair's coordination; callers add the
/// WHERE and ORDER BY.
const MATCH_VIEW_SELECT: &str = "SELECT n.notice_id, n.match_type, n.kind, n.recipient_signal_id, n.found_at, \
                    n.counterpart_signal_id, n.counterpart_organisation_id, \
                    n.counterpart_region_id, \
                    COALESCE(c.organisation_name, n.counterpart_organisation_name) \
                        AS organisation_name, \
                    COALESCE(c.professional_id, n.counterpart_professional_id) AS professional_id, \
                    COALESCE(c.professional_name, n.counterpart_professional_name) \
                        AS professional_name, \
                    COALESCE(c.professional_email, n.counterpart_professional_email) \
                        AS professional_email, \
                    CASE WHEN c.signal_id IS NULL THEN n.counterpart_professional_phone \
                         ELSE c.professional_phone END AS professional_phone, \
                    COALESCE(c.state, n.counterpart_state) AS state, \
                    k.regievoerder_signal_id, k.regievoerder_at, k.regievoerder_change_id, \
                    k.afgestemd_low, k.afgestemd_high \
             FROM notices n LEFT JOIN signals c \
                  ON n.source = 'node' AND c.signal_id = n.counterpart_signal_id \
             LEFT JOIN coordination k \
                  ON k.signal_low = min(n.recipient_signal_id, n.counterpart_signal_id) \
                 AND k.signal_high = max(n.recipient_signal_id, n.counterpart_signal_id)";

pub(super) const SIGNAL_COLUMNS: &str = "signal_id, revision, organisation_id, organisation_name, \
     professional_id, professional_name, professional_email, professional_phone, subject_key, \
     birth_date, registered_at, planned_removal_date, state, inactive_since, informing, \
     informed_parents, informed_youth, informed_on, not_informed_reason";

impl SignalStore for SqliteStore {
    async fn register(&self, new: NewSignal) -> Result<Registered, StoreError> {
        let region_id = self.region_id.clone();
        self.writer
            .write(move |tx| {
                run_ready(rules::register(
                    &mut SqliteRegionTx::new(tx),
                    new,
                    &region_id,
                ))
            })
            .await
    }

    async fn signal(&self, signal_id: SignalId) -> Result<Option<StoredSignal>, StoreError> {
        let mut conn = self.reader.acquire().await?;
        load_signal(&mut conn, signal_id).await
    }

    async fn matches(
        &self,
        organisation_id: &OrganisationId,
        signal_id: Option<SignalId>,
        page: MatchPage,
    ) -> Result<Vec<MatchView>, StoreError> {
        // A local counterpart is shown as it stands now; a remote one as the hub sent it. Two
        // statements, each a range of its own index: an optional filter (`?2 IS NULL OR ...`)
        // would read every notice of the organisation to find one signal's.
        let (found_at, notice_id) = match &page.after {
            Some(after) => (after.found_at.as_microsecond(), after.notice_id.clone()),
            None => (i64::MIN, String::new()),
        };
        let limit = i64::from(page.limit);
        // ?1 organisation, ?2-?3 the last match of the previous page, ?4 the page size, ?5 the
        // signal when one is asked for.
        let filter = match signal_id {
            None => "n.recipient_organisation_id = ?1",
            Some(_) => "n.recipient_signal_id = ?5 AND n.recipient_organisation_id = ?1",
        };
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{MATCH_VIEW_SELECT} WHERE {filter} AND (n.found_at, n.notice_id) > (?2, ?3) \
             ORDER BY n.found_at, n.notice_id LIMIT ?4"
        )))
        .bind(organisation_id.as_str())
        .bind(found_at)
        .bind(notice_id)
        .bind(limit)
        .bind(signal_id.map(|id| id.to_string()))
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(match_view).collect()
    }

    async fn withdraw(
        &self,
        acting: &Acting,
        signal_id: SignalId,
        reason: WithdrawReason,
        now: Timestamp,
    ) -> Result<Withdrawn, StoreError> {
        let acting = acting.clone();
        self.writer
            .write_purging(move |tx| {
                let withdrawn = run_ready(rules::withdraw(
                    &mut SqliteRegionTx::new(tx),
                    &acting,
                    signal_id,
                    reason,
                    now,
                ))?;
                let purge = withdrawn == Withdrawn::Deleted;
                Ok((withdrawn, purge))
            })
            .await
    }

    async fn update(
        &self,
        acting: &Acting,
        signal_id: SignalId,
        update: SignalUpdate,
        now: Timestamp,
    ) -> Result<StoredSignal, StoreError> {
        let acting = acting.clone();
        self.writer
            .write(move |tx| {
                run_ready(rules::update(
                    &mut SqliteRegionTx::new(tx),
                    &acting,
                    signal_id,
                    update,
                    now,
                ))
            })
            .await
    }

    async fn record_death(
        &self,
        subject_keys: &LiveKeys<SubjectKey>,
        now: Timestamp,
    ) -> Result<u32, StoreError> {
        let subject_keys = subject_keys.clone();
        self.writer
            .write_purging(move |tx| {
                let deleted = run_ready(rules::record_death(
                    &mut SqliteRegionTx::new(tx),
                    &subject_keys,
                    now,
                ))?;
                Ok((deleted, deleted > 0))
            })
            .await
    }

    async fn coordinate(
        &self,
        acting: &Acting,
        notice_id: &str,
        action: CoordinationAction,
        now: Timestamp,
    ) -> Result<MatchView, StoreError> {
        let change = {
            let acting = acting.clone();
            let notice_id = notice_id.to_owned();
            self.writer
                .write(move |tx| {
                    run_ready(rules::coordinate(
                        &mut SqliteRegionTx::new(tx),
                        &acting,
                        &notice_id,
                        action,
                        now,
                    ))
                })
                .await?
        };
        let own = change.by_signal;
        self.matches(&acting.organisation_id, Some(own), MatchPage::all())
            .await?
            .into_iter()
            .find(|view| view.notice_id == notice_id)
            .ok_or(StoreError::NoSuchMatch)
    }

    async fn coordination_outbox_batch(
        &self,
        limit: u32,
    ) -> Result<Vec<(i64, CoordinationChange)>, StoreError> {
        let rows = sqlx::query("SELECT seq, change FROM coordination_outbox ORDER BY seq LIMIT ?")
            .bind(i64::from(limit))
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(queued_coordination).collect()
    }

    async fn coordination_outbox_remove(&self, seqs: Vec<i64>) -> Result<(), StoreError> {
        self.writer
            .write(move |tx| run_ready(SqliteRegionTx::new(tx).remove_coordination_outbox(&seqs)))
            .await
    }

    async fn signals_of_subject(
        &self,
        subject_keys: &LiveKeys<SubjectKey>,
        page: SignalPage,
    ) -> Result<Vec<StoredSignal>, StoreError> {
        let (registered_at, signal_id) = match &page.after {
            Some(after) => (
                after.registered_at.as_microsecond(),
                after.signal_id.to_string(),
            ),
            None => (i64::MIN, String::new()),
        };
        let padded = subject_keys.padded();
        let mut conn = self.reader.acquire().await?;
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT signal_id FROM signals WHERE subject_key IN (?1, ?2, ?3) \
             AND (registered_at, signal_id) > (?4, ?5) \
             ORDER BY registered_at, signal_id LIMIT ?6",
        )
        .bind(padded[0].to_stored())
        .bind(padded[1].to_stored())
        .bind(padded[2].to_stored())
        .bind(registered_at)
        .bind(signal_id)
        .bind(i64::from(page.limit))
        .fetch_all(&mut *conn)
        .await?;
        let mut signals = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(signal) = load_signal(&mut conn, parse_signal_id(&id)?).await? {
                signals.push(signal);
            }
        }
        Ok(signals)
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
        let subject_keys = subject_keys.clone();
        let actor = actor.clone();
        let reference = reference.to_owned();
        self.writer
            .write(move |tx| {
                run_ready(rules::correct(
                    &mut SqliteRegionTx::new(tx),
                    &subject_keys,
                    signal_id,
                    correction,
                    &actor,
                    &reference,
                    now,
                ))
            })
            .await
    }

    async fn erase(
        &self,
        subject_keys: &LiveKeys<SubjectKey>,
        only: &[SignalId],
        actor: &Actor,
        reference: &str,
        now: Timestamp,
    ) -> Result<Vec<SignalId>, StoreError> {
        let subject_keys = subject_keys.clone();
        let only = only.to_vec();
        let actor = actor.clone();
        let reference = reference.to_owned();
        self.writer
            .write_purging(move |tx| {
                let erased = run_ready(rules::erase(
                    &mut SqliteRegionTx::new(tx),
                    &subject_keys,
                    &only,
                    &actor,
                    &reference,
                    now,
                ))?;
                let purge = !erased.is_empty();
                Ok((erased, purge))
            })
            .await
    }

    async fn record_audit(&self, entry: AuditEntry) -> Result<(), StoreError> {
        self.writer
            .write(move |tx| run_ready(SqliteRegionTx::new(tx).audit(&entry)))
            .await
    }

    async fn record_lookup(
        &self,
        acting: &Acting,
        signal_ids: Vec<SignalId>,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let entry = AuditEntry {
            at: now,
            action: AuditAction::ContactLookup,
            actor: acting.actor(),
            signal_ids,
            detail: None,
        };
        self.record_audit(entry).await
    }

    async fn verify_audit(&self) -> Result<u64, audit::AuditVerifyError> {
        audit::verify(&self.reader).await
    }

    async fn outbox_len(&self) -> Result<u64, StoreError> {
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox")
            .fetch_one(&self.reader)
            .await?;
        u64::try_from(count).map_err(|_| StoreError::Corrupt("outbox"))
    }

    async fn outbox_batch(&self, limit: u32) -> Result<Vec<OutboxEntry>, StoreError> {
        // Events held behind a dead letter stay in the outbox and are stepped over here; there
        // are as many as the operator has not retried yet.
        let rows = sqlx::query(
            "SELECT seq, event FROM outbox o \
             WHERE NOT EXISTS (SELECT 1 FROM dead_letters d WHERE d.signal_id = o.signal_id) \
             ORDER BY seq LIMIT ?",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(outbox_entry).collect()
    }

    async fn outbox_remove(&self, seqs: Vec<i64>) -> Result<(), StoreError> {
        self.writer
            .write(move |tx| run_ready(SqliteRegionTx::new(tx).remove_outbox(&seqs)))
            .await
    }

    async fn hub_log_position(&self) -> Result<super::LogPosition, StoreError> {
        let row = sqlx::query("SELECT cursor, epoch FROM hub_cursor WHERE singleton = 1")
            .fetch_one(&self.reader)
            .await?;
        log_position(&row)
    }

    async fn adopt_hub_epoch(&self, epoch: String) -> Result<(), StoreError> {
        self.writer
            .write(move |tx| run_ready(SqliteRegionTx::new(tx).adopt_hub_epoch(&epoch)))
            .await
    }

    async fn quarantine_outbox(
        &self,
        seq: i64,
        reason: String,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        self.writer
            .write(move |tx| {
                run_ready(SqliteRegionTx::new(tx).quarantine_outbox(seq, &reason, now))
            })
            .await
    }

    async fn quarantine_coordination(
        &self,
        seq: i64,
        reason: String,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        self.writer
            .write(move |tx| {
                run_ready(SqliteRegionTx::new(tx).quarantine_coordination(seq, &reason, now))
            })
            .await
    }

    async fn quarantine_hub_entry(
        &self,
        cursor: u64,
        payload: Vec<u8>,
        reason: String,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.writer
            .write(move |tx| {
                run_ready(rules::quarantine_hub_entry(
                    &mut SqliteRegionTx::new(tx),
                    cursor,
                    &payload,
                    &reason,
                    now,
                ))
            })
            .await
    }

    async fn dead_letters(
        &self,
        after_id: i64,
        limit: u32,
    ) -> Result<Vec<super::dead_letter::DeadLetter>, StoreError> {
        dead_letters::list(&self.reader, after_id, limit).await
    }

    async fn dead_letter_count(&self) -> Result<u64, StoreError> {
        dead_letters::count(&self.reader).await
    }

    async fn retry_dead_letter(&self, id: i64) -> Result<super::dead_letter::Retried, StoreError> {
        self.writer
            .write(move |tx| run_ready(rules::retry_dead_letter(&mut SqliteRegionTx::new(tx), id)))
            .await
    }

    async fn remove_dead_letter(&self, id: i64) -> Result<(), StoreError> {
        self.writer
            .write(move |tx| run_ready(SqliteRegionTx::new(tx).remove_dead_letter(id)))
            .await
    }

    async fn store_hub_notice(
        &self,
        notice: LoggedNotice,
        now: Timestamp,
    ) -> Result<NoticeDelivery, StoreError> {
        self.writer
            .write(move |tx| {
                run_ready(rules::store_hub_notice(
                    &mut SqliteRegionTx::new(tx),
                    notice,
                    now,
                ))
            })
            .await
    }

    async fn sweep(&self, today: Date, limit: u32) -> Result<SweepReport, StoreError> {
        self.writer
            .write_purging(move |tx| {
                let report = run_ready(rules::sweep(&mut SqliteRegionTx::new(tx), today, limit))?;
                Ok((report, report.deleted > 0))
            })
            .await
    }

    async fn claim_emails(
        &self,
        now: Timestamp,
        lease: Duration,
        limit: u32,
    ) -> Result<Vec<ClaimedEmail>, StoreError> {
        self.writer
            .write(move |tx| {
                run_ready(rules::claim_emails(
                    &mut SqliteRegionTx::new(tx),
                    now,
                    lease,
                    limit,
                ))
            })
            .await
    }

    async fn email_sent(
        &self,
        notice_id: &str,
        recipient: &Acting,
        signal_ids: Vec<SignalId>,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let notice_id = notice_id.to_owned();
        let recipient = recipient.clone();
        self.writer
            .write(move |tx| {
                run_ready(rules::email_sent(
                    &mut SqliteRegionTx::new(tx),
                    &notice_id,
                    &recipient,
                    signal_ids,
                    now,
                ))
            })
            .await
    }

    async fn email_retry(&self, notice_id: &str, at: Timestamp) -> Result<(), StoreError> {
        let notice_id = notice_id.to_owned();
        self.writer
            .write(move |tx| run_ready(SqliteRegionTx::new(tx).reschedule_email(&notice_id, at)))
            .await
    }

    async fn email_dropped(&self, notice_id: &str) -> Result<(), StoreError> {
        let notice_id = notice_id.to_owned();
        self.writer
            .write(move |tx| run_ready(SqliteRegionTx::new(tx).drop_email_job(&notice_id)))
            .await
    }

    async fn emails_pending(&self) -> Result<u64, StoreError> {
        let count: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM email_jobs WHERE sent_at IS NULL")
                .fetch_one(&self.reader)
                .await?;
        u64::try_from(count).map_err(|_| StoreError::Corrupt("email_jobs"))
    }

    async fn gauges(&self) -> Result<super::StoreGauges, StoreError> {
        let row = sqlx::query(super::region::GAUGES_SELECT)
            .fetch_one(&self.reader)
            .await?;
        super::region::rows::gauges_from_row(&row)
    }

    async fn store_hub_log(
        &self,
        entries: Vec<LogEntry>,
        now: Timestamp,
    ) -> Result<Vec<HubLogApplied>, StoreError> {
        self.writer
            .write_purging(move |tx| {
                let applied = run_ready(rules::store_hub_log(
                    &mut SqliteRegionTx::new(tx),
                    entries,
                    now,
                ))?;
                // A retraction deletes a notice, with the counterpart's contact.
                let purge = applied.contains(&HubLogApplied::Retraction { held: true });
                Ok((applied, purge))
            })
            .await
    }
    async fn handover_page(
        &self,
        after: Option<SignalId>,
        limit: u32,
    ) -> Result<HandoverPage, StoreError> {
        self.writer
            .write(move |tx| {
                run_ready(decommission::handover_page(
                    &mut SqliteRegionTx::new(tx),
                    after,
                    limit,
                ))
            })
            .await
    }

    async fn handed_over(
        &self,
        signal_ids: Vec<SignalId>,
        successor: RegionId,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.writer
            .write_purging(move |tx| {
                run_ready(decommission::handed_over(
                    &mut SqliteRegionTx::new(tx),
                    &signal_ids,
                    &successor,
                    now,
                ))?;
                // Personal data deleted: the WAL goes too.
                Ok(((), true))
            })
            .await
    }

    async fn purge_page(&self, limit: u32, now: Timestamp) -> Result<u32, StoreError> {
        self.writer
            .write_purging(move |tx| {
                let purged = run_ready(decommission::purge_page(
                    &mut SqliteRegionTx::new(tx),
                    limit,
                    now,
                ))?;
                Ok((purged, purged > 0))
            })
            .await
    }

    async fn adopt(
        &self,
        cursor: u64,
        adoption: Adoption,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        self.writer
            .write(move |tx| {
                run_ready(decommission::adopt(
                    &mut SqliteRegionTx::new(tx),
                    cursor,
                    adoption,
                    now,
                ))
            })
            .await
    }
}

/// One signal with its family keys, read on a reader connection.
async fn load_signal(
    conn: &mut SqliteConnection,
    signal_id: SignalId,
) -> Result<Option<StoredSignal>, StoreError> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {SIGNAL_COLUMNS} FROM signals WHERE signal_id = ?"
    )))
    .bind(signal_id.to_string())
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let keys: Vec<String> = sqlx::query_scalar(
        "SELECT family_key FROM signal_family_keys WHERE signal_id = ? ORDER BY family_key",
    )
    .bind(signal_id.to_string())
    .fetch_all(&mut *conn)
    .await?;
    signal_from_row(&row, parse_family_keys(&keys)?).map(Some)
}

/// Counts rows per table: for tests that check that a refused request changed nothing.
pub async fn row_counts(store: &SqliteStore) -> Result<HashMap<&'static str, i64>, StoreError> {
    let mut counts = HashMap::new();
    for table in [
        "signals",
        "signal_family_keys",
        "notices",
        "email_jobs",
        "outbox",
        "told_pairs",
        "coordination",
    ] {
        let count: i64 =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
                .fetch_one(&store.reader)
                .await?;
        counts.insert(table, count);
    }
    Ok(counts)
}
