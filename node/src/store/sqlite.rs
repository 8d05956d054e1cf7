//! The embedded SQLite store: WAL, `synchronous=FULL` (a commit is on disk before the caller
//! hears of it), `secure_delete` (deleted data is overwritten, not left in free pages).
//!
//! SQLite has one writer at a time; the store makes that explicit with a single-connection
//! write pool, so transactions queue in the pool instead of failing with `SQLITE_BUSY`.
//! Reads go through a separate pool and see the last committed state (WAL snapshot).

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use jiff::Timestamp;
use jiff::civil::Date;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteRow, SqliteSynchronous,
};
use sqlx::{ConnectOptions, Row};

use super::hub::LoggedNotice;
use super::outbox::{self, OutboxEvent};
use super::row::{
    contact_from_row, parse_date, parse_instant, parse_org, parse_signal_id, parse_state,
    parse_subject, revision_to_db,
};
use super::told;
use super::writer::{self, GroupCommit, Writer};
use super::{
    Acting, CounterpartView, MatchPage, MatchView, NewSignal, NoticeDelivery, OutboxEntry,
    Registered, SignalStore, SignalUpdate, StoreError, StoredSignal, SweepReport, Withdrawn, audit,
};
use crate::domain::audit::{Actor, AuditAction, AuditEntry};
use crate::domain::coordination::{
    self, ChangeKind, CoordinationAction, CoordinationChange, CoordinationState, Party,
};
use crate::domain::informing::{InformingRecord, SafetyReason};
use crate::domain::lifecycle::{self, Due, LifecycleDates};
use crate::domain::matching::{
    MatchScope, MatchSignal, MatchType, NoticeKind, PlannedNotice, plan_notices,
};
use crate::domain::signal::{self, Withdrawal};
use crate::domain::{
    FamilyKey, OrganisationId, RegionId, Revision, SignalId, SignalState, SubjectKey,
    WithdrawReason,
};

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

/// Opens a vix SQLite database: the group-committing writer (whose connection runs
/// `migrator`) and a read-only pool, both in WAL mode with `synchronous=FULL` and
/// `secure_delete=ON`.
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
    let mut connection = writer::connect(&options).await?;
    migrator.run(&mut connection).await?;
    let reader = SqlitePoolOptions::new()
        .max_connections(READ_CONNECTIONS_MAX)
        .acquire_timeout(LOCK_WAIT_MAX)
        .connect_with(options.read_only(true))
        .await?;
    Ok((Writer::start(connection, group_commit), reader))
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

const SIGNAL_COLUMNS: &str = "signal_id, revision, organisation_id, organisation_name, \
     professional_id, professional_name, professional_email, professional_phone, subject_key, \
     birth_date, registered_at, planned_removal_date, state, inactive_since, informing, \
     informed_parents, informed_youth, informed_on, not_informed_reason";

impl SignalStore for SqliteStore {
    async fn register(&self, new: NewSignal) -> Result<Registered, StoreError> {
        let region_id = self.region_id.clone();
        self.writer
            .write(move |tx| Box::pin(async move { register(tx, new, &region_id).await }))
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
        let rows = match signal_id {
            None => {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "{MATCH_VIEW_SELECT} WHERE n.recipient_organisation_id = ? \
                     AND (n.found_at, n.notice_id) > (?, ?) \
                     ORDER BY n.found_at, n.notice_id LIMIT ?"
                )))
                .bind(organisation_id.as_str())
                .bind(found_at)
                .bind(notice_id)
                .bind(limit)
                .fetch_all(&self.reader)
                .await?
            }
            Some(signal_id) => {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "{MATCH_VIEW_SELECT} WHERE n.recipient_signal_id = ? \
                     AND n.recipient_organisation_id = ? AND (n.found_at, n.notice_id) > (?, ?) \
                     ORDER BY n.found_at, n.notice_id LIMIT ?"
                )))
                .bind(signal_id.to_string())
                .bind(organisation_id.as_str())
                .bind(found_at)
                .bind(notice_id)
                .bind(limit)
                .fetch_all(&self.reader)
                .await?
            }
        };
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
                Box::pin(async move { withdraw(tx, &acting, signal_id, reason, now).await })
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
                Box::pin(async move { update_signal(tx, &acting, signal_id, update, now).await })
            })
            .await
    }

    async fn record_death(
        &self,
        subject_key: &SubjectKey,
        now: Timestamp,
    ) -> Result<u32, StoreError> {
        let subject_key = *subject_key;
        self.writer
            .write_purging(move |tx| {
                Box::pin(async move { record_death(tx, &subject_key, now).await })
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
                    Box::pin(async move { coordinate(tx, &acting, &notice_id, action, now).await })
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

    async fn apply_hub_coordination(
        &self,
        change: CoordinationChange,
        cursor: u64,
    ) -> Result<bool, StoreError> {
        self.writer
            .write(move |tx| {
                Box::pin(async move { apply_hub_coordination(tx, change, cursor).await })
            })
            .await
    }

    async fn coordination_outbox_batch(
        &self,
        limit: u32,
    ) -> Result<Vec<(i64, CoordinationChange)>, StoreError> {
        let rows = sqlx::query("SELECT seq, change FROM coordination_outbox ORDER BY seq LIMIT ?")
            .bind(i64::from(limit))
            .fetch_all(&self.reader)
            .await?;
        rows.iter()
            .map(|row| {
                let json: String = row.try_get("change")?;
                let record: outbox::CoordinationRecord = serde_json::from_str(&json)
                    .map_err(|_| StoreError::Corrupt("coordination_outbox"))?;
                Ok((row.try_get("seq")?, record.into_change()?))
            })
            .collect()
    }

    async fn coordination_outbox_remove_through(&self, seq: i64) -> Result<(), StoreError> {
        self.writer
            .write(move |tx| {
                Box::pin(async move {
                    sqlx::query("DELETE FROM coordination_outbox WHERE seq <= ?")
                        .bind(seq)
                        .execute(&mut *tx)
                        .await?;
                    Ok(())
                })
            })
            .await
    }

    async fn signals_of_subject(
        &self,
        subject_key: &SubjectKey,
    ) -> Result<Vec<StoredSignal>, StoreError> {
        let mut conn = self.reader.acquire().await?;
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT signal_id FROM signals WHERE subject_key = ? ORDER BY registered_at, signal_id",
        )
        .bind(subject_key.to_stored())
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
        signal_id: SignalId,
        correction: SignalUpdate,
        actor: &Actor,
        reference: &str,
        now: Timestamp,
    ) -> Result<StoredSignal, StoreError> {
        let actor = actor.clone();
        let reference = reference.to_owned();
        self.writer
            .write(move |tx| {
                Box::pin(async move {
                    correct(tx, signal_id, correction, &actor, &reference, now).await
                })
            })
            .await
    }

    async fn erase(
        &self,
        subject_key: &SubjectKey,
        only: &[SignalId],
        actor: &Actor,
        reference: &str,
        now: Timestamp,
    ) -> Result<Vec<SignalId>, StoreError> {
        let subject_key = *subject_key;
        let only = only.to_vec();
        let actor = actor.clone();
        let reference = reference.to_owned();
        self.writer
            .write_purging(move |tx| {
                Box::pin(
                    async move { erase(tx, &subject_key, &only, &actor, &reference, now).await },
                )
            })
            .await
    }

    async fn record_audit(&self, entry: AuditEntry) -> Result<(), StoreError> {
        self.writer
            .write(move |tx| Box::pin(async move { audit::append(tx, &entry).await }))
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
        let rows = sqlx::query("SELECT seq, event FROM outbox ORDER BY seq LIMIT ?")
            .bind(i64::from(limit))
            .fetch_all(&self.reader)
            .await?;
        rows.iter()
            .map(|row| {
                let event: String = row.try_get("event")?;
                Ok(OutboxEntry {
                    seq: row.try_get("seq")?,
                    event: serde_json::from_str(&event)
                        .map_err(|_| StoreError::Corrupt("outbox.event"))?,
                })
            })
            .collect()
    }

    async fn outbox_remove_through(&self, seq: i64) -> Result<(), StoreError> {
        self.writer
            .write(move |tx| {
                Box::pin(async move {
                    sqlx::query("DELETE FROM outbox WHERE seq <= ?")
                        .bind(seq)
                        .execute(&mut *tx)
                        .await?;
                    Ok(())
                })
            })
            .await
    }

    async fn hub_cursor(&self) -> Result<u64, StoreError> {
        let cursor: i64 = sqlx::query_scalar("SELECT cursor FROM hub_cursor WHERE singleton = 1")
            .fetch_one(&self.reader)
            .await?;
        u64::try_from(cursor).map_err(|_| StoreError::Corrupt("hub_cursor"))
    }

    async fn store_hub_notice(
        &self,
        notice: LoggedNotice,
        now: Timestamp,
    ) -> Result<NoticeDelivery, StoreError> {
        self.writer
            .write(move |tx| Box::pin(async move { store_hub_notice(tx, notice, now).await }))
            .await
    }

    async fn sweep(&self, today: Date, limit: u32) -> Result<SweepReport, StoreError> {
        self.writer
            .write_purging(move |tx| Box::pin(async move { sweep(tx, today, limit).await }))
            .await
    }

    async fn retract_hub_notice(&self, notice_id: &str, cursor: u64) -> Result<bool, StoreError> {
        let notice_id = notice_id.to_owned();
        self.writer
            .write_purging(move |tx| {
                Box::pin(async move { retract_hub_notice(tx, &notice_id, cursor).await })
            })
            .await
    }
}

async fn register(
    tx: &mut SqliteConnection,
    new: NewSignal,
    region_id: &RegionId,
) -> Result<Registered, StoreError> {
    let earlier = sqlx::query(
        "SELECT signal_id, request_fingerprint FROM signals \
         WHERE organisation_id = ? AND request_key = ?",
    )
    .bind(new.organisation_id.as_str())
    .bind(&new.request_key)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(row) = earlier {
        let fingerprint: String = row.try_get("request_fingerprint")?;
        if fingerprint != new.request_fingerprint {
            return Err(StoreError::RequestMismatch);
        }
        let signal_id = parse_signal_id(&row.try_get::<String, _>("signal_id")?)?;
        let signal = load_signal(tx, signal_id)
            .await?
            .ok_or(StoreError::Corrupt("signals"))?;
        return Ok(Registered::Replayed(signal));
    }

    let deceased: Option<String> =
        sqlx::query_scalar("SELECT subject_key FROM deceased WHERE subject_key = ?")
            .bind(new.subject_key.to_stored())
            .fetch_optional(&mut *tx)
            .await?;
    if deceased.is_some() {
        return Err(StoreError::Deceased);
    }

    // Re-registration while the organisation's signal on this youth is active: that signal
    // stands, and nobody is told again (DOMAIN.md section 5).
    let active: Option<String> = sqlx::query_scalar(
        "SELECT signal_id FROM signals \
         WHERE organisation_id = ? AND subject_key = ? AND state = 'active' \
         ORDER BY registered_at DESC, signal_id DESC LIMIT 1",
    )
    .bind(new.organisation_id.as_str())
    .bind(new.subject_key.to_stored())
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(active) = active {
        let signal = load_signal(tx, parse_signal_id(&active)?)
            .await?
            .ok_or(StoreError::Corrupt("signals"))?;
        return Ok(Registered::AlreadyActive(signal));
    }

    let signal = StoredSignal {
        signal_id: new.signal_id,
        revision: Revision::FIRST,
        organisation_id: new.organisation_id,
        organisation_name: new.organisation_name,
        contact: new.contact,
        subject_key: new.subject_key,
        family_keys: new.family_keys,
        birth_date: new.birth_date,
        registered_at: new.registered_at,
        planned_removal_date: new.planned_removal_date,
        state: SignalState::Active,
        inactive_since: None,
        informing: new.informing,
    };

    // Matching sees exactly what is committed before this transaction: the single writer
    // serialises registrations, so of two signals on one youth the later finds the earlier.
    let candidates = load_candidates(tx, &signal, region_id).await?;
    let told = told::load(tx, &signal.organisation_id, &signal.subject_key).await?;
    let new_match = match_signal(&signal, region_id);
    let notices = plan_notices(&new_match, &candidates, &told, MatchScope::WithinRegion);

    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO signals ({SIGNAL_COLUMNS}, request_key, request_fingerprint) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    )))
    .bind(signal.signal_id.to_string())
    .bind(revision_to_db(signal.revision))
    .bind(signal.organisation_id.as_str())
    .bind(&signal.organisation_name)
    .bind(signal.contact.professional_id())
    .bind(signal.contact.name())
    .bind(signal.contact.email())
    .bind(signal.contact.phone())
    .bind(signal.subject_key.to_stored())
    .bind(signal.birth_date.to_string())
    .bind(signal.registered_at.as_microsecond())
    .bind(signal.planned_removal_date.to_string())
    .bind(signal.state.as_str())
    .bind(signal.inactive_since.map(|d| d.to_string()))
    .bind(InformingColumns::of(&signal.informing).kind)
    .bind(InformingColumns::of(&signal.informing).parents)
    .bind(InformingColumns::of(&signal.informing).youth)
    .bind(InformingColumns::of(&signal.informing).informed_on)
    .bind(InformingColumns::of(&signal.informing).reason)
    .bind(&new.request_key)
    .bind(&new.request_fingerprint)
    .execute(&mut *tx)
    .await?;
    for key in &signal.family_keys {
        sqlx::query("INSERT INTO signal_family_keys (signal_id, family_key) VALUES (?, ?)")
            .bind(signal.signal_id.to_string())
            .bind(key.to_stored())
            .execute(&mut *tx)
            .await?;
    }
    for notice in &notices {
        insert_notice(tx, notice, signal.registered_at).await?;
    }
    append_outbox(tx, &OutboxEvent::upsert(&signal), signal.registered_at).await?;
    let entry = AuditEntry {
        at: signal.registered_at,
        action: AuditAction::Register,
        actor: Actor::Professional {
            organisation_id: signal.organisation_id.clone(),
            professional_id: signal.contact.professional_id().to_owned(),
        },
        signal_ids: vec![signal.signal_id],
        detail: None,
    };
    audit::append(tx, &entry).await?;
    Ok(Registered::Created {
        signal,
        notices: notices.len(),
    })
}

async fn withdraw(
    tx: &mut SqliteConnection,
    acting: &Acting,
    signal_id: SignalId,
    reason: WithdrawReason,
    now: Timestamp,
) -> Result<(Withdrawn, bool), StoreError> {
    let current = load_owned_signal(tx, &acting.organisation_id, signal_id).await?;
    let entry = AuditEntry {
        at: now,
        action: AuditAction::Withdraw,
        actor: acting.actor(),
        signal_ids: vec![signal_id],
        detail: Some(
            match reason {
                WithdrawReason::Unjustified => "unjustified",
                WithdrawReason::RiskGone => "risk_gone",
            }
            .to_owned(),
        ),
    };
    let today = crate::domain::clock::local_date(now);
    let outcome = match signal::withdraw(current.state, reason, today)? {
        Withdrawal::Delete => {
            delete_signal(tx, &current, now).await?;
            Withdrawn::Deleted
        }
        Withdrawal::Archive { inactive_since } => {
            let previous = current.revision;
            let archived = StoredSignal {
                revision: previous.next(),
                state: SignalState::Inactive,
                inactive_since: Some(inactive_since),
                ..current
            };
            save_revision(tx, previous, &archived, now).await?;
            Withdrawn::Archived(Box::new(archived))
        }
    };
    audit::append(tx, &entry).await?;
    let purge = outcome == Withdrawn::Deleted;
    Ok((outcome, purge))
}

async fn update_signal(
    tx: &mut SqliteConnection,
    acting: &Acting,
    signal_id: SignalId,
    update: SignalUpdate,
    now: Timestamp,
) -> Result<StoredSignal, StoreError> {
    let current = load_owned_signal(tx, &acting.organisation_id, signal_id).await?;
    signal::check_updatable(current.state)?;
    let today = crate::domain::clock::local_date(now);
    let planned_removal_date = match update.planned_removal_date {
        Some(requested) => {
            signal::moved_removal_date(current.planned_removal_date, requested, today)
                .map_err(StoreError::RemovalDate)?
        }
        None => current.planned_removal_date,
    };
    let previous = current.revision;
    let informing = match update.informing {
        Some(record) => {
            let registered_on = crate::domain::clock::local_date(current.registered_at);
            crate::domain::informing::check(record, current.birth_date, registered_on, today)
                .map_err(StoreError::Informing)?;
            record
        }
        None => current.informing,
    };
    let updated = StoredSignal {
        revision: previous.next(),
        contact: update.contact.unwrap_or_else(|| current.contact.clone()),
        planned_removal_date,
        informing,
        ..current
    };
    save_revision(tx, previous, &updated, now).await?;
    let entry = AuditEntry {
        at: now,
        action: AuditAction::Update,
        actor: acting.actor(),
        signal_ids: vec![signal_id],
        detail: None,
    };
    audit::append(tx, &entry).await?;
    Ok(updated)
}

async fn record_death(
    tx: &mut SqliteConnection,
    subject_key: &SubjectKey,
    now: Timestamp,
) -> Result<(u32, bool), StoreError> {
    sqlx::query(
        "INSERT INTO deceased (subject_key, recorded_at) VALUES (?, ?) \
         ON CONFLICT (subject_key) DO NOTHING",
    )
    .bind(subject_key.to_stored())
    .bind(now.as_microsecond())
    .execute(&mut *tx)
    .await?;
    let ids: Vec<String> =
        sqlx::query_scalar("SELECT signal_id FROM signals WHERE subject_key = ?")
            .bind(subject_key.to_stored())
            .fetch_all(&mut *tx)
            .await?;
    let mut deleted = 0;
    for id in ids {
        let signal = load_signal(tx, parse_signal_id(&id)?)
            .await?
            .ok_or(StoreError::Corrupt("signals"))?;
        delete_signal(tx, &signal, now).await?;
        let entry = AuditEntry {
            at: now,
            action: AuditAction::Purge,
            actor: Actor::System,
            signal_ids: vec![signal.signal_id],
            detail: Some("death".to_owned()),
        };
        audit::append(tx, &entry).await?;
        deleted += 1;
    }
    Ok((deleted, deleted > 0))
}

async fn apply_hub_coordination(
    tx: &mut SqliteConnection,
    change: CoordinationChange,
    cursor: u64,
) -> Result<bool, StoreError> {
    let cursor = i64::try_from(cursor).map_err(|_| StoreError::Corrupt("cursor"))?;
    sqlx::query("UPDATE hub_cursor SET cursor = MAX(cursor, ?) WHERE singleton = 1")
        .bind(cursor)
        .execute(&mut *tx)
        .await?;
    // Only for a match this node still holds: a notice to its signal about the other.
    let held: Option<String> = sqlx::query_scalar(
        "SELECT notice_id FROM notices \
         WHERE recipient_signal_id = ? AND counterpart_signal_id = ? LIMIT 1",
    )
    .bind(change.other_signal.to_string())
    .bind(change.by_signal.to_string())
    .fetch_optional(&mut *tx)
    .await?;
    if held.is_some() {
        merge_coordination(tx, &change).await?;
    }
    Ok(held.is_some())
}

async fn correct(
    tx: &mut SqliteConnection,
    signal_id: SignalId,
    correction: SignalUpdate,
    actor: &Actor,
    reference: &str,
    now: Timestamp,
) -> Result<StoredSignal, StoreError> {
    let current = load_signal(tx, signal_id)
        .await?
        .ok_or(StoreError::NotFound)?;
    let today = crate::domain::clock::local_date(now);
    let registered_on = crate::domain::clock::local_date(current.registered_at);
    let planned_removal_date = match correction.planned_removal_date {
        Some(requested) => {
            // An archived signal's R is history; only an active one's can change.
            signal::check_updatable(current.state)?;
            signal::corrected_removal_date(registered_on, requested, today)
                .map_err(StoreError::RemovalDate)?
        }
        None => current.planned_removal_date,
    };
    let informing = match correction.informing {
        Some(record) => {
            crate::domain::informing::check(record, current.birth_date, registered_on, today)
                .map_err(StoreError::Informing)?;
            record
        }
        None => current.informing,
    };
    let previous = current.revision;
    let corrected = StoredSignal {
        revision: previous.next(),
        contact: correction
            .contact
            .unwrap_or_else(|| current.contact.clone()),
        planned_removal_date,
        informing,
        ..current
    };
    save_revision(tx, previous, &corrected, now).await?;
    let entry = AuditEntry {
        at: now,
        action: AuditAction::Correct,
        actor: actor.clone(),
        signal_ids: vec![signal_id],
        detail: Some(reference.to_owned()),
    };
    audit::append(tx, &entry).await?;
    Ok(corrected)
}

async fn erase(
    tx: &mut SqliteConnection,
    subject_key: &SubjectKey,
    only: &[SignalId],
    actor: &Actor,
    reference: &str,
    now: Timestamp,
) -> Result<(Vec<SignalId>, bool), StoreError> {
    let ids: Vec<String> =
        sqlx::query_scalar("SELECT signal_id FROM signals WHERE subject_key = ?")
            .bind(subject_key.to_stored())
            .fetch_all(&mut *tx)
            .await?;
    let of_youth = ids
        .iter()
        .map(|id| parse_signal_id(id))
        .collect::<Result<Vec<_>, _>>()?;
    // Every named signal must be the youth's, or nothing is erased.
    if only.iter().any(|id| !of_youth.contains(id)) {
        return Err(StoreError::NotFound);
    }
    let mut erased = Vec::new();
    for id in of_youth {
        if !only.is_empty() && !only.contains(&id) {
            continue;
        }
        let signal = load_signal(tx, id)
            .await?
            .ok_or(StoreError::Corrupt("signals"))?;
        delete_signal(tx, &signal, now).await?;
        erased.push(id);
    }
    let entry = AuditEntry {
        at: now,
        action: AuditAction::ErasureOrder,
        actor: actor.clone(),
        signal_ids: erased.clone(),
        detail: Some(reference.to_owned()),
    };
    audit::append(tx, &entry).await?;
    let purge = !erased.is_empty();
    Ok((erased, purge))
}

async fn store_hub_notice(
    tx: &mut SqliteConnection,
    notice: LoggedNotice,
    now: Timestamp,
) -> Result<NoticeDelivery, StoreError> {
    let cursor = i64::try_from(notice.cursor).map_err(|_| StoreError::Corrupt("cursor"))?;
    sqlx::query("UPDATE hub_cursor SET cursor = MAX(cursor, ?) WHERE singleton = 1")
        .bind(cursor)
        .execute(&mut *tx)
        .await?;
    let seen: Option<String> =
        sqlx::query_scalar("SELECT notice_id FROM notices WHERE notice_id = ?")
            .bind(&notice.notice_id)
            .fetch_optional(&mut *tx)
            .await?;
    let delivery = if seen.is_some() {
        // Sent again: the hub refreshed the counterpart's contact or state.
        let counterpart = &notice.counterpart;
        sqlx::query(
            "UPDATE notices SET counterpart_organisation_name = ?, \
                 counterpart_professional_id = ?, counterpart_professional_name = ?, \
                 counterpart_professional_email = ?, counterpart_professional_phone = ?, \
                 counterpart_state = ? \
             WHERE notice_id = ? AND source = 'hub'",
        )
        .bind(&counterpart.organisation_name)
        .bind(counterpart.contact.professional_id())
        .bind(counterpart.contact.name())
        .bind(counterpart.contact.email())
        .bind(counterpart.contact.phone())
        .bind(counterpart.state.as_str())
        .bind(&notice.notice_id)
        .execute(&mut *tx)
        .await?;
        NoticeDelivery::Duplicate
    } else {
        match load_signal(tx, notice.recipient_signal_id).await? {
            Some(recipient) if recipient.organisation_id == notice.recipient_organisation_id => {
                insert_hub_notice(tx, &notice, &recipient).await?;
                // The owner of an inactive signal gets no notice e-mail (invariant 3), also
                // when today's sweep has not reached the signal yet.
                let dates = LifecycleDates {
                    state: recipient.state,
                    planned_removal_date: recipient.planned_removal_date,
                    inactive_since: recipient.inactive_since,
                    birth_date: Some(recipient.birth_date),
                };
                let emailed = lifecycle::due(dates, crate::domain::clock::local_date(now))
                    == Due::Nothing
                    && recipient.state == SignalState::Active;
                if emailed {
                    insert_email_job(tx, &notice.notice_id, now).await?;
                }
                NoticeDelivery::Stored { emailed }
            }
            Some(_) => {
                tracing::warn!(
                    notice_id = %notice.notice_id,
                    "hub notice names a recipient of another organisation; dropped"
                );
                NoticeDelivery::Dropped
            }
            None => NoticeDelivery::Dropped,
        }
    };
    Ok(delivery)
}

async fn sweep(
    tx: &mut SqliteConnection,
    today: Date,
    limit: u32,
) -> Result<(SweepReport, bool), StoreError> {
    let (archive_cutoff, birth_cutoff) = lifecycle::sweep_cutoffs(today);
    // One range query per transition, each on its own index and bounded by `limit`: an OR
    // of the three (with one ORDER BY) made SQLite scan the whole table.
    let mut ids: Vec<String> = Vec::new();
    for (statement, cutoff) in [
        (
            "SELECT signal_id FROM signals \
             WHERE state = 'active' AND planned_removal_date <= ? LIMIT ?",
            today,
        ),
        (
            "SELECT signal_id FROM signals \
             WHERE state = 'inactive' AND inactive_since <= ? LIMIT ?",
            archive_cutoff,
        ),
        (
            "SELECT signal_id FROM signals WHERE birth_date <= ? LIMIT ?",
            birth_cutoff,
        ),
    ] {
        let due: Vec<String> = sqlx::query_scalar(statement)
            .bind(cutoff.to_string())
            .bind(i64::from(limit))
            .fetch_all(&mut *tx)
            .await?;
        ids.extend(due);
    }
    ids.sort_unstable();
    ids.dedup();
    ids.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    // Events carry the instant of the change: the start of `today`, when it became due.
    let now = today
        .to_zoned_datetime(crate::domain::clock::rules_time_zone())
        .map(|zoned| zoned.timestamp())
        .map_err(|_| StoreError::Corrupt("date"))?;
    let mut report = SweepReport::default();
    for id in ids {
        let signal = load_signal(tx, parse_signal_id(&id)?)
            .await?
            .ok_or(StoreError::Corrupt("signals"))?;
        let dates = LifecycleDates {
            state: signal.state,
            planned_removal_date: signal.planned_removal_date,
            inactive_since: signal.inactive_since,
            birth_date: Some(signal.birth_date),
        };
        match lifecycle::due(dates, today) {
            Due::Nothing => {}
            Due::Expire { inactive_since } => {
                let previous = signal.revision;
                let expired = StoredSignal {
                    revision: previous.next(),
                    state: SignalState::Inactive,
                    inactive_since: Some(inactive_since),
                    ..signal
                };
                save_revision(tx, previous, &expired, now).await?;
                let entry = AuditEntry {
                    at: now,
                    action: AuditAction::Expire,
                    actor: Actor::System,
                    signal_ids: vec![expired.signal_id],
                    detail: None,
                };
                audit::append(tx, &entry).await?;
                report.expired += 1;
            }
            Due::Delete(reason) => {
                delete_signal(tx, &signal, now).await?;
                let entry = AuditEntry {
                    at: now,
                    action: AuditAction::Purge,
                    actor: Actor::System,
                    signal_ids: vec![signal.signal_id],
                    detail: Some(
                        match reason {
                            lifecycle::DeleteReason::ArchiveEnded => "archive_ended",
                            lifecycle::DeleteReason::Age23 => "age23",
                        }
                        .to_owned(),
                    ),
                };
                audit::append(tx, &entry).await?;
                report.deleted += 1;
            }
        }
    }
    let purge = report.deleted > 0;
    Ok((report, purge))
}

async fn retract_hub_notice(
    tx: &mut SqliteConnection,
    notice_id: &str,
    cursor: u64,
) -> Result<(bool, bool), StoreError> {
    let cursor = i64::try_from(cursor).map_err(|_| StoreError::Corrupt("cursor"))?;
    sqlx::query("UPDATE hub_cursor SET cursor = MAX(cursor, ?) WHERE singleton = 1")
        .bind(cursor)
        .execute(&mut *tx)
        .await?;
    let deleted = sqlx::query("DELETE FROM notices WHERE notice_id = ? AND source = 'hub'")
        .bind(notice_id)
        .execute(&mut *tx)
        .await?;
    let held = deleted.rows_affected() > 0;
    Ok((held, held))
}

/// Records a party's coordination change on one of its matches; returns the change.
async fn coordinate(
    tx: &mut SqliteConnection,
    acting: &Acting,
    notice_id: &str,
    action: CoordinationAction,
    now: Timestamp,
) -> Result<CoordinationChange, StoreError> {
    let notice = sqlx::query(
        "SELECT recipient_signal_id, recipient_organisation_id, counterpart_signal_id, source \
         FROM notices WHERE notice_id = ?",
    )
    .bind(notice_id)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(StoreError::NoSuchMatch)?;
    if notice.try_get::<&str, _>("recipient_organisation_id")? != acting.organisation_id.as_str() {
        return Err(StoreError::NotOwner);
    }
    let own = parse_signal_id(notice.try_get("recipient_signal_id")?)?;
    let other = parse_signal_id(notice.try_get("counterpart_signal_id")?)?;
    let kind = match action {
        CoordinationAction::NameRegievoerder(Party::Own) => ChangeKind::Regievoerder(own),
        CoordinationAction::NameRegievoerder(Party::Counterpart) => ChangeKind::Regievoerder(other),
        CoordinationAction::MarkAfgestemd => ChangeKind::Afgestemd,
    };
    let change = CoordinationChange {
        change_id: uuid::Uuid::new_v4(),
        by_signal: own,
        other_signal: other,
        at: now,
        kind,
    };
    merge_coordination(tx, &change).await?;
    if notice.try_get::<&str, _>("source")? == "hub" {
        let json = serde_json::to_string(&outbox::CoordinationRecord::from(&change))
            .map_err(|_| StoreError::Corrupt("coordination change"))?;
        sqlx::query("INSERT INTO coordination_outbox (change) VALUES (?)")
            .bind(json)
            .execute(&mut *tx)
            .await?;
    }
    let (action, mut signal_ids) = match kind {
        ChangeKind::Regievoerder(named) => (AuditAction::Regievoerder, vec![own, other, named]),
        ChangeKind::Afgestemd => (AuditAction::Afgestemd, vec![own, other]),
    };
    signal_ids.dedup();
    let entry = AuditEntry {
        at: now,
        action,
        actor: acting.actor(),
        signal_ids,
        detail: None,
    };
    audit::append(tx, &entry).await?;
    Ok(change)
}

/// Stores a notice found by the hub, with the counterpart as the hub sent it.
async fn insert_hub_notice(
    tx: &mut SqliteConnection,
    notice: &LoggedNotice,
    recipient: &StoredSignal,
) -> Result<(), StoreError> {
    let counterpart = &notice.counterpart;
    sqlx::query(
        "INSERT INTO notices (notice_id, source, recipient_signal_id, recipient_organisation_id, \
             recipient_subject_key, counterpart_signal_id, counterpart_organisation_id, \
             counterpart_region_id, counterpart_organisation_name, counterpart_professional_id, \
             counterpart_professional_name, counterpart_professional_email, \
             counterpart_professional_phone, counterpart_state, match_type, kind, found_at) \
         VALUES (?, 'hub', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&notice.notice_id)
    .bind(recipient.signal_id.to_string())
    .bind(recipient.organisation_id.as_str())
    .bind(recipient.subject_key.to_stored())
    .bind(counterpart.signal_id.to_string())
    .bind(counterpart.organisation_id.as_str())
    .bind(counterpart.region_id.as_str())
    .bind(&counterpart.organisation_name)
    .bind(counterpart.contact.professional_id())
    .bind(counterpart.contact.name())
    .bind(counterpart.contact.email())
    .bind(counterpart.contact.phone())
    .bind(counterpart.state.as_str())
    .bind(notice.match_type.as_str())
    .bind(notice.kind.as_str())
    .bind(notice.found_at.as_microsecond())
    .execute(&mut *tx)
    .await?;
    Ok(())
}

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
    let family_keys = load_family_keys(conn, signal_id).await?;
    signal_from_row(&row, family_keys).map(Some)
}

async fn load_owned_signal(
    tx: &mut SqliteConnection,
    organisation_id: &OrganisationId,
    signal_id: SignalId,
) -> Result<StoredSignal, StoreError> {
    let signal = load_signal(tx, signal_id)
        .await?
        .ok_or(StoreError::NotFound)?;
    if &signal.organisation_id != organisation_id {
        return Err(StoreError::NotOwner);
    }
    Ok(signal)
}

async fn load_family_keys(
    conn: &mut SqliteConnection,
    signal_id: SignalId,
) -> Result<Vec<FamilyKey>, StoreError> {
    let keys: Vec<String> = sqlx::query_scalar(
        "SELECT family_key FROM signal_family_keys WHERE signal_id = ? ORDER BY family_key",
    )
    .bind(signal_id.to_string())
    .fetch_all(&mut *conn)
    .await?;
    keys.iter()
        .map(|key| FamilyKey::parse_stored(key).map_err(|_| StoreError::Corrupt("family_key")))
        .collect()
}

/// Every signal on the node that shares the new signal's subject key or a family key, in one
/// query: a busy youth has many signals, and this runs inside the single writer's transaction.
async fn load_candidates(
    tx: &mut SqliteConnection,
    new: &StoredSignal,
    region_id: &RegionId,
) -> Result<Vec<MatchSignal>, StoreError> {
    // A youth has at most two BRP parents; a missing one binds NULL, which matches nothing.
    let family_key = |index: usize| new.family_keys.get(index).map(FamilyKey::to_stored);
    if new.family_keys.len() > 2 {
        return Err(StoreError::Corrupt("more than two family keys"));
    }
    let rows = sqlx::query(
        "SELECT s.signal_id, s.organisation_id, s.subject_key, s.state, s.registered_at, \
                (SELECT group_concat(f.family_key, ' ') FROM signal_family_keys f \
                 WHERE f.signal_id = s.signal_id) AS family_keys \
         FROM signals s \
         WHERE s.subject_key = ?1 \
            OR s.signal_id IN (SELECT signal_id FROM signal_family_keys \
                               WHERE family_key IN (?2, ?3))",
    )
    .bind(new.subject_key.to_stored())
    .bind(family_key(0))
    .bind(family_key(1))
    .fetch_all(&mut *tx)
    .await?;
    rows.iter()
        .map(|row| {
            let family_keys = row
                .try_get::<Option<String>, _>("family_keys")?
                .unwrap_or_default()
                .split_whitespace()
                .map(|key| {
                    FamilyKey::parse_stored(key).map_err(|_| StoreError::Corrupt("family_key"))
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(MatchSignal {
                signal_id: parse_signal_id(row.try_get("signal_id")?)?,
                organisation_id: parse_org(row.try_get("organisation_id")?)?,
                region_id: region_id.clone(),
                subject_key: parse_subject(row.try_get("subject_key")?)?,
                family_keys,
                state: parse_state(row.try_get("state")?)?,
                registered_at: parse_instant(row.try_get("registered_at")?)?,
            })
        })
        .collect()
}

/// Stores a notice found on this node, with the e-mail to its recipient.
async fn insert_notice(
    tx: &mut SqliteConnection,
    notice: &PlannedNotice,
    found_at: Timestamp,
) -> Result<(), StoreError> {
    let notice_id = uuid::Uuid::new_v4().to_string();
    sqlx::query(
        "INSERT INTO notices (notice_id, source, recipient_signal_id, recipient_organisation_id, \
             recipient_subject_key, counterpart_signal_id, counterpart_organisation_id, \
             counterpart_region_id, counterpart_subject_key, match_type, kind, found_at) \
         VALUES (?, 'node', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&notice_id)
    .bind(notice.recipient_signal_id.to_string())
    .bind(notice.recipient_organisation_id.as_str())
    .bind(notice.recipient_subject_key.to_stored())
    .bind(notice.counterpart_signal_id.to_string())
    .bind(notice.counterpart_organisation_id.as_str())
    .bind(notice.counterpart_region_id.as_str())
    .bind(notice.counterpart_subject_key.to_stored())
    .bind(notice.match_type.as_str())
    .bind(notice.kind.as_str())
    .bind(found_at.as_microsecond())
    .execute(&mut *tx)
    .await?;
    told::remember(tx, notice).await?;
    insert_email_job(tx, &notice_id, found_at).await
}

async fn insert_email_job(
    tx: &mut SqliteConnection,
    notice_id: &str,
    now: Timestamp,
) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO email_jobs (notice_id, created_at) VALUES (?, ?)")
        .bind(notice_id)
        .bind(now.as_microsecond())
        .execute(&mut *tx)
        .await?;
    Ok(())
}

async fn append_outbox(
    tx: &mut SqliteConnection,
    event: &OutboxEvent,
    now: Timestamp,
) -> Result<(), StoreError> {
    let json = serde_json::to_string(event).map_err(|_| StoreError::Corrupt("outbox event"))?;
    sqlx::query("INSERT INTO outbox (signal_id, revision, event, created_at) VALUES (?, ?, ?, ?)")
        .bind(event.signal_id())
        .bind(i64::try_from(event.revision()).map_err(|_| StoreError::Corrupt("revision"))?)
        .bind(json)
        .bind(now.as_microsecond())
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Writes `signal`, a new revision of a signal stored at `previous`, and owes the hub an event
/// for it. The revision check makes a lost update impossible even if the single writer goes.
async fn save_revision(
    tx: &mut SqliteConnection,
    previous: Revision,
    signal: &StoredSignal,
    now: Timestamp,
) -> Result<(), StoreError> {
    let updated = sqlx::query(
        "UPDATE signals SET revision = ?, professional_id = ?, professional_name = ?, \
             professional_email = ?, professional_phone = ?, planned_removal_date = ?, \
             state = ?, inactive_since = ?, informing = ?, informed_parents = ?, \
             informed_youth = ?, informed_on = ?, not_informed_reason = ? \
         WHERE signal_id = ? AND revision = ?",
    )
    .bind(revision_to_db(signal.revision))
    .bind(signal.contact.professional_id())
    .bind(signal.contact.name())
    .bind(signal.contact.email())
    .bind(signal.contact.phone())
    .bind(signal.planned_removal_date.to_string())
    .bind(signal.state.as_str())
    .bind(signal.inactive_since.map(|d| d.to_string()))
    .bind(InformingColumns::of(&signal.informing).kind)
    .bind(InformingColumns::of(&signal.informing).parents)
    .bind(InformingColumns::of(&signal.informing).youth)
    .bind(InformingColumns::of(&signal.informing).informed_on)
    .bind(InformingColumns::of(&signal.informing).reason)
    .bind(signal.signal_id.to_string())
    .bind(revision_to_db(previous))
    .execute(&mut *tx)
    .await?;
    if updated.rows_affected() != 1 {
        return Err(StoreError::Corrupt("signals.revision"));
    }
    append_outbox(tx, &OutboxEvent::upsert(signal), now).await
}

/// Deletes a signal with everything that names it. Events still waiting for the hub carry its
/// contact, so they go too; one delete event replaces them.
async fn delete_signal(
    tx: &mut SqliteConnection,
    signal: &StoredSignal,
    now: Timestamp,
) -> Result<(), StoreError> {
    let id = signal.signal_id.to_string();
    sqlx::query("DELETE FROM notices WHERE counterpart_signal_id = ?")
        .bind(&id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM coordination WHERE signal_low = ?1 OR signal_high = ?1")
        .bind(&id)
        .execute(&mut *tx)
        .await?;
    // Notices to this signal (and their e-mail jobs) cascade with it.
    sqlx::query("DELETE FROM signals WHERE signal_id = ?")
        .bind(&id)
        .execute(&mut *tx)
        .await?;
    told::forget_party_if_gone(
        tx,
        signal.organisation_id.as_str(),
        &signal.subject_key.to_stored(),
    )
    .await?;
    sqlx::query("DELETE FROM outbox WHERE signal_id = ?")
        .bind(&id)
        .execute(&mut *tx)
        .await?;
    let event = OutboxEvent::Delete {
        signal_id: id,
        revision: signal.revision.next().get(),
    };
    append_outbox(tx, &event, now).await
}

fn match_signal(signal: &StoredSignal, region_id: &RegionId) -> MatchSignal {
    MatchSignal {
        signal_id: signal.signal_id,
        organisation_id: signal.organisation_id.clone(),
        region_id: region_id.clone(),
        subject_key: signal.subject_key,
        family_keys: signal.family_keys.clone(),
        state: signal.state,
        registered_at: signal.registered_at,
    }
}

fn signal_from_row(
    row: &SqliteRow,
    family_keys: Vec<FamilyKey>,
) -> Result<StoredSignal, StoreError> {
    let revision: i64 = row.try_get("revision")?;
    Ok(StoredSignal {
        signal_id: parse_signal_id(row.try_get("signal_id")?)?,
        revision: u64::try_from(revision)
            .ok()
            .and_then(Revision::new)
            .ok_or(StoreError::Corrupt("revision"))?,
        organisation_id: parse_org(row.try_get("organisation_id")?)?,
        organisation_name: row.try_get("organisation_name")?,
        contact: contact_from_row(row)?,
        subject_key: parse_subject(row.try_get("subject_key")?)?,
        family_keys,
        birth_date: parse_date(row.try_get("birth_date")?)?,
        registered_at: parse_instant(row.try_get("registered_at")?)?,
        planned_removal_date: parse_date(row.try_get("planned_removal_date")?)?,
        state: parse_state(row.try_get("state")?)?,
        inactive_since: row
            .try_get::<Option<String>, _>("inactive_since")?
            .as_deref()
            .map(parse_date)
            .transpose()?,
        informing: informing_from_row(row)?,
    })
}

/// The coordination columns of a row (all NULL when nothing was coordinated yet).
fn coordination_from_row(row: &SqliteRow) -> Result<CoordinationState, StoreError> {
    let named: Option<String> = row.try_get("regievoerder_signal_id")?;
    let regievoerder = match named {
        None => None,
        Some(named) => {
            let at: i64 = row
                .try_get::<Option<i64>, _>("regievoerder_at")?
                .unwrap_or_default();
            let change: Option<String> = row.try_get("regievoerder_change_id")?;
            Some((
                parse_signal_id(&named)?,
                parse_instant(at)?,
                change
                    .as_deref()
                    .and_then(|id| uuid::Uuid::try_parse(id).ok())
                    .ok_or(StoreError::Corrupt("regievoerder_change_id"))?,
            ))
        }
    };
    Ok(CoordinationState {
        regievoerder,
        afgestemd_low: row
            .try_get::<Option<bool>, _>("afgestemd_low")?
            .unwrap_or(false),
        afgestemd_high: row
            .try_get::<Option<bool>, _>("afgestemd_high")?
            .unwrap_or(false),
    })
}

/// Loads, merges `change` into, and stores the coordination of its pair.
async fn merge_coordination(
    tx: &mut SqliteConnection,
    change: &CoordinationChange,
) -> Result<(), StoreError> {
    let (low, high) = change.pair();
    let row = sqlx::query(
        "SELECT regievoerder_signal_id, regievoerder_at, regievoerder_change_id, afgestemd_low, \
                afgestemd_high \
         FROM coordination WHERE signal_low = ? AND signal_high = ?",
    )
    .bind(low.to_string())
    .bind(high.to_string())
    .fetch_optional(&mut *tx)
    .await?;
    let mut state = match &row {
        Some(row) => coordination_from_row(row)?,
        None => CoordinationState::default(),
    };
    state.apply(low, change);
    let (named, at, change_id) = match state.regievoerder {
        Some((named, at, id)) => (
            Some(named.to_string()),
            Some(at.as_microsecond()),
            Some(id.to_string()),
        ),
        None => (None, None, None),
    };
    sqlx::query(
        "INSERT INTO coordination (signal_low, signal_high, regievoerder_signal_id, \
             regievoerder_at, regievoerder_change_id, afgestemd_low, afgestemd_high) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
         ON CONFLICT (signal_low, signal_high) DO UPDATE SET \
             regievoerder_signal_id = ?3, regievoerder_at = ?4, regievoerder_change_id = ?5, \
             afgestemd_low = ?6, afgestemd_high = ?7",
    )
    .bind(low.to_string())
    .bind(high.to_string())
    .bind(named)
    .bind(at)
    .bind(change_id)
    .bind(state.afgestemd_low)
    .bind(state.afgestemd_high)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// The informing record as its five columns.
struct InformingColumns {
    kind: &'static str,
    parents: bool,
    youth: bool,
    informed_on: Option<String>,
    reason: Option<&'static str>,
}

impl InformingColumns {
    fn of(record: &InformingRecord) -> Self {
        match *record {
            InformingRecord::Informed {
                parents,
                youth,
                informed_on,
            } => Self {
                kind: "informed",
                parents,
                youth,
                informed_on: Some(informed_on.to_string()),
                reason: None,
            },
            InformingRecord::NotInformed(reason) => Self {
                kind: "not_informed",
                parents: false,
                youth: false,
                informed_on: None,
                reason: Some(reason.as_str()),
            },
        }
    }
}

fn informing_from_row(row: &SqliteRow) -> Result<InformingRecord, StoreError> {
    let kind: &str = row.try_get("informing")?;
    match kind {
        "informed" => Ok(InformingRecord::Informed {
            parents: row.try_get("informed_parents")?,
            youth: row.try_get("informed_youth")?,
            informed_on: parse_date(
                row.try_get::<Option<&str>, _>("informed_on")?
                    .ok_or(StoreError::Corrupt("informed_on"))?,
            )?,
        }),
        "not_informed" => row
            .try_get::<Option<&str>, _>("not_informed_reason")?
            .and_then(SafetyReason::parse)
            .map(InformingRecord::NotInformed)
            .ok_or(StoreError::Corrupt("not_informed_reason")),
        _ => Err(StoreError::Corrupt("informing")),
    }
}

fn match_view(row: &SqliteRow) -> Result<MatchView, StoreError> {
    let own = parse_signal_id(row.try_get("recipient_signal_id")?)?;
    let other = parse_signal_id(row.try_get("counterpart_signal_id")?)?;
    let (low, _) = coordination::ordered(own, other);
    let state = coordination_from_row(row)?;
    Ok(MatchView {
        coordination: state.view(low, own),
        notice_id: row.try_get("notice_id")?,
        match_type: MatchType::parse(row.try_get("match_type")?)
            .ok_or(StoreError::Corrupt("match_type"))?,
        kind: NoticeKind::parse(row.try_get("kind")?).ok_or(StoreError::Corrupt("kind"))?,
        signal_id: parse_signal_id(row.try_get("recipient_signal_id")?)?,
        found_at: parse_instant(row.try_get("found_at")?)?,
        counterpart: CounterpartView {
            organisation_id: parse_org(row.try_get("counterpart_organisation_id")?)?,
            organisation_name: row.try_get("organisation_name")?,
            contact: contact_from_row(row)?,
            signal_id: parse_signal_id(row.try_get("counterpart_signal_id")?)?,
            state: parse_state(row.try_get("state")?)?,
            region_id: RegionId::parse(row.try_get("counterpart_region_id")?)
                .map_err(|_| StoreError::Corrupt("counterpart_region_id"))?,
        },
    })
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
    ] {
        let count: i64 =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
                .fetch_one(&store.reader)
                .await?;
        counts.insert(table, count);
    }
    Ok(counts)
}
