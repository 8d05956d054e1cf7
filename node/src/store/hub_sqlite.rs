//! The hub's SQLite store. Like the node's: one writer connection (so batches are serialised and
//! every pair of signals is compared in one order), WAL, `synchronous=FULL`, `secure_delete`.

use std::collections::HashMap;
use std::path::Path;

use jiff::Timestamp;
use jiff::civil::Date;
use sqlx::Row;
use sqlx::sqlite::{SqliteConnection, SqlitePool, SqliteRow};

use super::SweepReport;
use super::hub::{
    BatchOutcome, HubSignal, HubStore, HubStoreError, LogEntry, LogPage, LoggedNotice, SignalEvent,
};
use super::row::{
    contact_from_row, parse_date, parse_instant, parse_org, parse_signal_id, parse_state,
    parse_subject, revision_to_db,
};
use super::sqlite::open_database;
use super::told;
use super::writer::{GroupCommit, Writer, WriterStats};
use super::{CounterpartView, StoreError};
use crate::domain::coordination::{ChangeKind, CoordinationChange};
use crate::domain::lifecycle::{self, Due, LifecycleDates};
use crate::domain::matching::{
    MatchScope, MatchSignal, MatchType, NoticeKind, PlannedNotice, plan_notices,
};
use crate::domain::{FamilyKey, RegionId, Revision, SignalId, SignalState};

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

/// A signal row with the region that owns it.
struct StoredHubSignal {
    signal_id: SignalId,
    region_id: RegionId,
    signal: HubSignal,
}

impl StoredHubSignal {
    fn match_signal(&self) -> MatchSignal {
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
            .write_purging(move |tx| {
                Box::pin(async move { submit(tx, &region_id, events, now).await })
            })
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
            .write_purging(move |tx| Box::pin(async move { sweep(tx, today, limit).await }))
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
            .write(move |tx| Box::pin(async move { ack(tx, &region_id, cursor, now).await }))
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
                Box::pin(async move { submit_coordination(tx, &region_id, changes, now).await })
            })
            .await
    }

    async fn record_audit(
        &self,
        entry: crate::domain::audit::AuditEntry,
    ) -> Result<(), StoreError> {
        self.writer
            .write(move |tx| Box::pin(async move { super::audit::append(tx, &entry).await }))
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

async fn submit(
    tx: &mut SqliteConnection,
    region_id: &RegionId,
    events: Vec<SignalEvent>,
    now: Timestamp,
) -> Result<(BatchOutcome, bool), HubStoreError> {
    let mut outcome = BatchOutcome::default();
    let mut deleted_any = false;
    let submitted: Vec<SignalId> = events.iter().map(|event| event.signal_id).collect();
    for (index, event) in events.into_iter().enumerate() {
        let id = event.signal_id.to_string();
        let tombstone: Option<String> =
            sqlx::query_scalar("SELECT region_id FROM tombstones WHERE signal_id = ?")
                .bind(&id)
                .fetch_optional(&mut *tx)
                .await?;
        let current = sqlx::query("SELECT region_id, revision FROM signals WHERE signal_id = ?")
            .bind(&id)
            .fetch_optional(&mut *tx)
            .await?;
        let owner = match (&tombstone, &current) {
            (Some(owner), _) => Some(owner.clone()),
            (None, Some(row)) => Some(row.try_get::<String, _>("region_id")?),
            (None, None) => None,
        };
        if owner
            .as_deref()
            .is_some_and(|owner| owner != region_id.as_str())
        {
            // Dropping the transaction rolls back what this batch already applied.
            return Err(HubStoreError::NotOwner { index });
        }
        if tombstone.is_some() {
            outcome.ignored += 1; // deleted is final: a replay cannot revive it
            continue;
        }
        let current_revision = current
            .as_ref()
            .map(|row| row.try_get::<i64, _>("revision"))
            .transpose()?;
        if current_revision.is_some_and(|current| current >= revision_to_db(event.revision)) {
            outcome.ignored += 1;
            continue;
        }
        if let Some(signal) = &event.upsert
            && !bind_organisation(tx, &signal.organisation_id, region_id).await?
        {
            return Err(HubStoreError::ForeignOrganisation { index });
        }
        // A region that was away may send a revision that is already past its dates: the
        // hub applies the lifecycle on arrival, as its daily sweep has run already.
        let today = crate::domain::clock::local_date(now);
        let upsert = match event.upsert {
            Some(mut signal) => match lifecycle::due(
                LifecycleDates {
                    state: signal.state,
                    planned_removal_date: signal.planned_removal_date,
                    inactive_since: signal.inactive_since,
                    birth_date: None,
                },
                today,
            ) {
                Due::Nothing => Some(signal),
                Due::Expire { inactive_since } => {
                    signal.state = SignalState::Inactive;
                    signal.inactive_since = Some(inactive_since);
                    Some(signal)
                }
                Due::Delete(_) => None,
            },
            None => None,
        };
        match upsert {
            None => {
                delete_signal(tx, region_id, event.signal_id, event.revision).await?;
                deleted_any = true;
            }
            Some(signal) if current_revision.is_some() => {
                update_signal(tx, event.signal_id, event.revision, &signal).await?;
            }
            Some(signal) => {
                let new = StoredHubSignal {
                    signal_id: event.signal_id,
                    region_id: region_id.clone(),
                    signal,
                };
                insert_signal(tx, &new, event.revision).await?;
                outcome.notices += match_new_signal(tx, &new, now).await?;
            }
        }
        outcome.applied += 1;
    }
    let entry = crate::domain::audit::AuditEntry {
        at: now,
        action: crate::domain::audit::AuditAction::SubmitSignals,
        actor: crate::domain::audit::Actor::Region(region_id.clone()),
        signal_ids: submitted,
        detail: Some(format!(
            "applied={},ignored={},notices={}",
            outcome.applied, outcome.ignored, outcome.notices
        )),
    };
    super::audit::append(tx, &entry).await?;
    Ok((outcome, deleted_any))
}

async fn sweep(
    tx: &mut SqliteConnection,
    today: Date,
    limit: u32,
) -> Result<(SweepReport, bool), StoreError> {
    let (archive_cutoff, _) = lifecycle::sweep_cutoffs(today);
    // One range query per transition, each on its own index and bounded by `limit`.
    let mut rows = Vec::new();
    for (statement, cutoff) in [
        (
            "SELECT signal_id, region_id, revision, state, planned_removal_date, \
                    inactive_since \
             FROM signals WHERE state = 'active' AND planned_removal_date <= ? LIMIT ?",
            today,
        ),
        (
            "SELECT signal_id, region_id, revision, state, planned_removal_date, \
                    inactive_since \
             FROM signals WHERE state = 'inactive' AND inactive_since <= ? LIMIT ?",
            archive_cutoff,
        ),
    ] {
        let limit_left = i64::from(limit) - i64::try_from(rows.len()).unwrap_or(i64::MAX);
        if limit_left <= 0 {
            break;
        }
        rows.extend(
            sqlx::query(statement)
                .bind(cutoff.to_string())
                .bind(limit_left)
                .fetch_all(&mut *tx)
                .await?,
        );
    }
    let mut report = SweepReport::default();
    for row in &rows {
        let signal_id = parse_signal_id(row.try_get("signal_id")?)?;
        let dates = LifecycleDates {
            state: parse_state(row.try_get("state")?)?,
            planned_removal_date: parse_date(row.try_get("planned_removal_date")?)?,
            inactive_since: row
                .try_get::<Option<String>, _>("inactive_since")?
                .as_deref()
                .map(parse_date)
                .transpose()?,
            birth_date: None,
        };
        match lifecycle::due(dates, today) {
            Due::Nothing => {}
            Due::Expire { inactive_since } => {
                // The hub's own expiry: no new revision, the region's will follow.
                sqlx::query(
                    "UPDATE signals SET state = 'inactive', inactive_since = ? \
                     WHERE signal_id = ?",
                )
                .bind(inactive_since.to_string())
                .bind(signal_id.to_string())
                .execute(&mut *tx)
                .await?;
                refresh_notices(tx, signal_id).await?;
                system_entry(
                    tx,
                    crate::domain::audit::AuditAction::Expire,
                    signal_id,
                    None,
                    today,
                )
                .await?;
                report.expired += 1;
            }
            Due::Delete(_) => {
                let region_id = parse_region(row.try_get("region_id")?)?;
                let revision: i64 = row.try_get("revision")?;
                let revision = u64::try_from(revision)
                    .ok()
                    .and_then(Revision::new)
                    .ok_or(StoreError::Corrupt("revision"))?;
                delete_signal(tx, &region_id, signal_id, revision).await?;
                system_entry(
                    tx,
                    crate::domain::audit::AuditAction::Purge,
                    signal_id,
                    Some("archive_ended"),
                    today,
                )
                .await?;
                report.deleted += 1;
            }
        }
    }
    let purge = report.deleted > 0;
    Ok((report, purge))
}

async fn ack(
    tx: &mut SqliteConnection,
    region_id: &RegionId,
    cursor: u64,
    now: Timestamp,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO region_cursors (region_id, acked_cursor) VALUES (?1, ?2) \
         ON CONFLICT (region_id) DO UPDATE \
         SET acked_cursor = MAX(acked_cursor, excluded.acked_cursor)",
    )
    .bind(region_id.as_str())
    .bind(i64::try_from(cursor).map_err(|_| StoreError::Corrupt("cursor"))?)
    .execute(&mut *tx)
    .await?;
    let entry = crate::domain::audit::AuditEntry {
        at: now,
        action: crate::domain::audit::AuditAction::AckNotices,
        actor: crate::domain::audit::Actor::Region(region_id.clone()),
        signal_ids: Vec::new(),
        detail: Some(format!("cursor={cursor}")),
    };
    super::audit::append(tx, &entry).await?;
    Ok(())
}

async fn submit_coordination(
    tx: &mut SqliteConnection,
    region_id: &RegionId,
    changes: Vec<CoordinationChange>,
    now: Timestamp,
) -> Result<u32, HubStoreError> {
    let mut relayed = 0;
    let mut ids = Vec::new();
    for (index, change) in changes.iter().enumerate() {
        let by_region: Option<String> =
            sqlx::query_scalar("SELECT region_id FROM signals WHERE signal_id = ?")
                .bind(change.by_signal.to_string())
                .fetch_optional(&mut *tx)
                .await?;
        match by_region {
            Some(owner) if owner != region_id.as_str() => {
                return Err(HubStoreError::NotOwner { index });
            }
            Some(_) => {}
            None => continue, // deleted meanwhile: nothing left to coordinate
        }
        let other_region: Option<String> =
            sqlx::query_scalar("SELECT region_id FROM signals WHERE signal_id = ?")
                .bind(change.other_signal.to_string())
                .fetch_optional(&mut *tx)
                .await?;
        let Some(other_region) = other_region else {
            continue;
        };
        if other_region == region_id.as_str() {
            continue; // same region: the node holds both sides
        }
        let inserted = sqlx::query(
            "INSERT INTO coordination_changes (change_id, by_signal_id, other_signal_id, at, \
                 regievoerder_signal_id) VALUES (?, ?, ?, ?, ?) \
             ON CONFLICT (change_id) DO NOTHING",
        )
        .bind(change.change_id.to_string())
        .bind(change.by_signal.to_string())
        .bind(change.other_signal.to_string())
        .bind(change.at.as_microsecond())
        .bind(match change.kind {
            ChangeKind::Regievoerder(named) => Some(named.to_string()),
            ChangeKind::Afgestemd => None,
        })
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 1 {
            sqlx::query(
                "INSERT INTO region_log (region_id, notice_id, entry) \
                 VALUES (?, ?, 'coordination')",
            )
            .bind(&other_region)
            .bind(change.change_id.to_string())
            .execute(&mut *tx)
            .await?;
            relayed += 1;
        }
        ids.push(change.by_signal);
    }
    let entry = crate::domain::audit::AuditEntry {
        at: now,
        action: crate::domain::audit::AuditAction::SubmitCoordination,
        actor: crate::domain::audit::Actor::Region(region_id.clone()),
        signal_ids: ids,
        detail: Some(format!("relayed={relayed}")),
    };
    super::audit::append(tx, &entry).await?;
    Ok(relayed)
}

/// Binds `organisation_id` to `region_id` on first sight; `false` if it belongs to another.
async fn bind_organisation(
    tx: &mut SqliteConnection,
    organisation_id: &crate::domain::OrganisationId,
    region_id: &RegionId,
) -> Result<bool, StoreError> {
    sqlx::query(
        "INSERT INTO organisations (organisation_id, region_id) VALUES (?, ?) \
         ON CONFLICT (organisation_id) DO NOTHING",
    )
    .bind(organisation_id.as_str())
    .bind(region_id.as_str())
    .execute(&mut *tx)
    .await?;
    let owner: String =
        sqlx::query_scalar("SELECT region_id FROM organisations WHERE organisation_id = ?")
            .bind(organisation_id.as_str())
            .fetch_one(&mut *tx)
            .await?;
    Ok(owner == region_id.as_str())
}

/// An audit entry for the hub's own lifecycle, at the start of the day it became due.
async fn system_entry(
    tx: &mut SqliteConnection,
    action: crate::domain::audit::AuditAction,
    signal_id: SignalId,
    detail: Option<&str>,
    today: Date,
) -> Result<(), StoreError> {
    let at = today
        .to_zoned_datetime(crate::domain::clock::rules_time_zone())
        .map(|zoned| zoned.timestamp())
        .map_err(|_| StoreError::Corrupt("date"))?;
    let entry = crate::domain::audit::AuditEntry {
        at,
        action,
        actor: crate::domain::audit::Actor::System,
        signal_ids: vec![signal_id],
        detail: detail.map(str::to_owned),
    };
    super::audit::append(tx, &entry).await
}

async fn insert_signal(
    tx: &mut SqliteConnection,
    new: &StoredHubSignal,
    revision: Revision,
) -> Result<(), StoreError> {
    let signal = &new.signal;
    sqlx::query(
        "INSERT INTO signals (signal_id, region_id, revision, organisation_id, \
             organisation_name, professional_id, professional_name, professional_email, \
             professional_phone, subject_key, registered_at, planned_removal_date, state, \
             inactive_since) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(new.signal_id.to_string())
    .bind(new.region_id.as_str())
    .bind(revision_to_db(revision))
    .bind(signal.organisation_id.as_str())
    .bind(&signal.organisation_name)
    .bind(signal.contact.professional_id())
    .bind(signal.contact.name())
    .bind(signal.contact.email())
    .bind(signal.contact.phone())
    .bind(signal.subject_key.to_stored())
    .bind(signal.registered_at.as_microsecond())
    .bind(signal.planned_removal_date.to_string())
    .bind(signal.state.as_str())
    .bind(signal.inactive_since.map(|d| d.to_string()))
    .execute(&mut *tx)
    .await?;
    for key in &signal.family_keys {
        sqlx::query("INSERT INTO signal_family_keys (signal_id, family_key) VALUES (?, ?)")
            .bind(new.signal_id.to_string())
            .bind(key.to_stored())
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}

/// A newer revision of a known signal. Keys and registration never change; no matching
/// (DOMAIN.md section 5: only a newly registered signal matches).
async fn update_signal(
    tx: &mut SqliteConnection,
    signal_id: SignalId,
    revision: Revision,
    signal: &HubSignal,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE signals SET revision = ?, organisation_name = ?, professional_id = ?, \
             professional_name = ?, professional_email = ?, professional_phone = ?, \
             planned_removal_date = ?, state = ?, inactive_since = ? \
         WHERE signal_id = ?",
    )
    .bind(revision_to_db(revision))
    .bind(&signal.organisation_name)
    .bind(signal.contact.professional_id())
    .bind(signal.contact.name())
    .bind(signal.contact.email())
    .bind(signal.contact.phone())
    .bind(signal.planned_removal_date.to_string())
    .bind(signal.state.as_str())
    .bind(signal.inactive_since.map(|d| d.to_string()))
    .bind(signal_id.to_string())
    .execute(&mut *tx)
    .await?;
    refresh_notices(tx, signal_id).await
}

/// The notices that show `signal_id` as counterpart carry its contact and state as they were
/// found: bring them up to date and send them again to their regions, which update their copy
/// (DOMAIN.md section 6: the other party's contact and state; section 8: corrections).
async fn refresh_notices(tx: &mut SqliteConnection, signal_id: SignalId) -> Result<(), StoreError> {
    let id = signal_id.to_string();
    let refreshed = sqlx::query(
        "UPDATE notices SET \
             counterpart_organisation_name = s.organisation_name, \
             counterpart_professional_id = s.professional_id, \
             counterpart_professional_name = s.professional_name, \
             counterpart_professional_email = s.professional_email, \
             counterpart_professional_phone = s.professional_phone, \
             counterpart_state = s.state \
         FROM signals s \
         WHERE s.signal_id = ?1 AND notices.counterpart_signal_id = ?1",
    )
    .bind(&id)
    .execute(&mut *tx)
    .await?;
    if refreshed.rows_affected() > 0 {
        sqlx::query(
            "INSERT INTO region_log (region_id, notice_id, entry) \
             SELECT recipient_region_id, notice_id, 'notice' FROM notices \
             WHERE counterpart_signal_id = ? ORDER BY found_at",
        )
        .bind(&id)
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

async fn delete_signal(
    tx: &mut SqliteConnection,
    region_id: &RegionId,
    signal_id: SignalId,
    revision: Revision,
) -> Result<(), StoreError> {
    let id = signal_id.to_string();
    // The notices naming it hold its contact; they go with it (invariant 6), and each
    // recipient region is told to delete its copy (DOMAIN.md section 4).
    sqlx::query(
        "INSERT INTO region_log (region_id, notice_id, entry) \
         SELECT recipient_region_id, notice_id, 'retraction' FROM notices \
         WHERE recipient_signal_id = ?1 OR counterpart_signal_id = ?1 ORDER BY found_at",
    )
    .bind(&id)
    .execute(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM notices WHERE recipient_signal_id = ?1 OR counterpart_signal_id = ?1")
        .bind(&id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM coordination_changes WHERE by_signal_id = ?1 OR other_signal_id = ?1")
        .bind(&id)
        .execute(&mut *tx)
        .await?;
    let party = sqlx::query("SELECT organisation_id, subject_key FROM signals WHERE signal_id = ?")
        .bind(&id)
        .fetch_optional(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM signals WHERE signal_id = ?")
        .bind(&id)
        .execute(&mut *tx)
        .await?;
    if let Some(party) = party {
        told::forget_party_if_gone(
            tx,
            party.try_get("organisation_id")?,
            party.try_get("subject_key")?,
        )
        .await?;
    }
    sqlx::query("INSERT INTO tombstones (signal_id, region_id, revision) VALUES (?, ?, ?)")
        .bind(&id)
        .bind(region_id.as_str())
        .bind(revision_to_db(revision))
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// The match rule across regions for a newly registered signal; returns the notices written.
async fn match_new_signal(
    tx: &mut SqliteConnection,
    new: &StoredHubSignal,
    now: Timestamp,
) -> Result<u32, StoreError> {
    if new.signal.state != SignalState::Active {
        return Ok(0);
    }
    let candidates = load_candidates(tx, &new.signal).await?;
    let told = told::load(tx, &new.signal.organisation_id, &new.signal.subject_key).await?;
    let others: Vec<MatchSignal> = candidates
        .iter()
        .map(StoredHubSignal::match_signal)
        .collect();
    let plan = plan_notices(
        &new.match_signal(),
        &others,
        &told,
        MatchScope::AcrossRegions(&new.region_id),
    );
    let by_id: HashMap<SignalId, &StoredHubSignal> = candidates
        .iter()
        .map(|candidate| (candidate.signal_id, candidate))
        .chain([(new.signal_id, new)])
        .collect();
    let mut written = 0;
    for notice in &plan {
        let (Some(recipient), Some(counterpart)) = (
            by_id.get(&notice.recipient_signal_id),
            by_id.get(&notice.counterpart_signal_id),
        ) else {
            return Err(StoreError::Corrupt(
                "planned notice names an unknown signal",
            ));
        };
        insert_notice(tx, notice, recipient, counterpart, now).await?;
        written += 1;
    }
    Ok(written)
}

async fn load_candidates(
    tx: &mut SqliteConnection,
    new: &HubSignal,
) -> Result<Vec<StoredHubSignal>, StoreError> {
    if new.family_keys.len() > 2 {
        return Err(StoreError::Corrupt("more than two family keys"));
    }
    let family_key = |index: usize| new.family_keys.get(index).map(FamilyKey::to_stored);
    let rows = sqlx::query(
        "SELECT s.*, \
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
    rows.iter().map(stored_signal).collect()
}

fn stored_signal(row: &SqliteRow) -> Result<StoredHubSignal, StoreError> {
    let family_keys = row
        .try_get::<Option<String>, _>("family_keys")?
        .unwrap_or_default()
        .split_whitespace()
        .map(|key| FamilyKey::parse_stored(key).map_err(|_| StoreError::Corrupt("family_key")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(StoredHubSignal {
        signal_id: parse_signal_id(row.try_get("signal_id")?)?,
        region_id: parse_region(row.try_get("region_id")?)?,
        signal: HubSignal {
            organisation_id: parse_org(row.try_get("organisation_id")?)?,
            organisation_name: row.try_get("organisation_name")?,
            contact: contact_from_row(row)?,
            subject_key: parse_subject(row.try_get("subject_key")?)?,
            family_keys,
            registered_at: parse_instant(row.try_get("registered_at")?)?,
            planned_removal_date: parse_date(row.try_get("planned_removal_date")?)?,
            state: parse_state(row.try_get("state")?)?,
            inactive_since: row
                .try_get::<Option<String>, _>("inactive_since")?
                .as_deref()
                .map(parse_date)
                .transpose()?,
        },
    })
}

async fn insert_notice(
    tx: &mut SqliteConnection,
    notice: &PlannedNotice,
    recipient: &StoredHubSignal,
    counterpart: &StoredHubSignal,
    now: Timestamp,
) -> Result<(), StoreError> {
    let shown = &counterpart.signal;
    let notice_id = uuid::Uuid::new_v4().to_string();
    sqlx::query(
        "INSERT INTO notices (notice_id, recipient_region_id, recipient_signal_id, \
             recipient_organisation_id, recipient_subject_key, counterpart_signal_id, \
             counterpart_region_id, counterpart_organisation_id, counterpart_subject_key, \
             counterpart_organisation_name, counterpart_professional_id, \
             counterpart_professional_name, counterpart_professional_email, \
             counterpart_professional_phone, counterpart_state, match_type, kind, found_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&notice_id)
    .bind(recipient.region_id.as_str())
    .bind(notice.recipient_signal_id.to_string())
    .bind(notice.recipient_organisation_id.as_str())
    .bind(notice.recipient_subject_key.to_stored())
    .bind(notice.counterpart_signal_id.to_string())
    .bind(counterpart.region_id.as_str())
    .bind(notice.counterpart_organisation_id.as_str())
    .bind(notice.counterpart_subject_key.to_stored())
    .bind(&shown.organisation_name)
    .bind(shown.contact.professional_id())
    .bind(shown.contact.name())
    .bind(shown.contact.email())
    .bind(shown.contact.phone())
    .bind(shown.state.as_str())
    .bind(notice.match_type.as_str())
    .bind(notice.kind.as_str())
    .bind(now.as_microsecond())
    .execute(&mut *tx)
    .await?;
    told::remember(tx, notice).await?;
    sqlx::query("INSERT INTO region_log (region_id, notice_id, entry) VALUES (?, ?, 'notice')")
        .bind(recipient.region_id.as_str())
        .bind(&notice_id)
        .execute(&mut *tx)
        .await?;
    Ok(())
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
            organisation_name: row.try_get("organisation_name")?,
            contact: contact_from_row(row)?,
            signal_id: parse_signal_id(row.try_get("counterpart_signal_id")?)?,
            state: parse_state(row.try_get("counterpart_state")?)?,
            region_id: parse_region(row.try_get("counterpart_region_id")?)?,
        },
    })
}

fn parse_region(stored: &str) -> Result<RegionId, StoreError> {
    RegionId::parse(stored).map_err(|_| StoreError::Corrupt("region_id"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::contact::ContactInput;
    use crate::domain::{
        KeyVersion, OrganisationId, ProfessionalContact, SubjectKey, ValidationErrors,
    };

    fn region(id: &str) -> RegionId {
        RegionId::parse(id).unwrap()
    }

    fn signal(org: &str, youth: u8, parents: &[u8], state: SignalState) -> HubSignal {
        let v1 = KeyVersion::new(1).unwrap();
        let mut errors = ValidationErrors::new();
        let contact = ProfessionalContact::parse(
            ContactInput {
                professional_id: "p1",
                name: &format!("Professional of {org}"),
                email: &format!("p1@{org}.example.nl"),
                phone: "",
            },
            "professional",
            &mut errors,
        )
        .unwrap();
        HubSignal {
            organisation_id: OrganisationId::parse(org).unwrap(),
            organisation_name: org.to_uppercase(),
            contact,
            subject_key: SubjectKey::new(v1, [youth; 32]),
            family_keys: parents
                .iter()
                .map(|p| FamilyKey::new(v1, [*p; 32]))
                .collect(),
            registered_at: "2026-11-25T10:00:00Z".parse().unwrap(),
            planned_removal_date: jiff::civil::date(2028, 11, 25),
            state,
            inactive_since: (state == SignalState::Inactive)
                .then(|| jiff::civil::date(2026, 11, 25)),
        }
    }

    fn upsert(id: SignalId, revision: u64, signal: HubSignal) -> SignalEvent {
        SignalEvent {
            signal_id: id,
            revision: Revision::new(revision).unwrap(),
            upsert: Some(signal),
        }
    }

    /// The notices (not retractions) in `region`'s log after `after`.
    async fn notices_after(
        store: &HubSqliteStore,
        region: &RegionId,
        after: u64,
    ) -> Vec<LoggedNotice> {
        store
            .log_after(region, after, 100)
            .await
            .unwrap()
            .entries
            .into_iter()
            .filter_map(|entry| match entry {
                LogEntry::Notice(notice) => Some(*notice),
                LogEntry::Retraction { .. } | LogEntry::Coordination { .. } => None,
            })
            .collect()
    }

    async fn store() -> (tempfile::TempDir, HubSqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = HubSqliteStore::open(&dir.path().join("hub.sqlite"), GroupCommit::default())
            .await
            .unwrap();
        (dir, store)
    }

    fn now() -> Timestamp {
        "2026-11-25T12:00:00Z".parse().unwrap()
    }

    #[tokio::test]
    async fn a_cross_region_youth_match_logs_one_notice_for_each_region() {
        let (_dir, store) = store().await;
        let (north, south) = (region("north"), region("south"));
        let a = SignalId::generate();
        let b = SignalId::generate();
        store
            .submit(
                &north,
                vec![upsert(a, 1, signal("gp", 1, &[], SignalState::Active))],
                now(),
            )
            .await
            .unwrap();
        let outcome = store
            .submit(
                &south,
                vec![upsert(b, 1, signal("school", 1, &[], SignalState::Active))],
                now(),
            )
            .await
            .unwrap();
        assert_eq!(
            outcome,
            BatchOutcome {
                applied: 1,
                ignored: 0,
                notices: 2
            }
        );
        let to_north = notices_after(&store, &north, 0).await;
        assert_eq!(to_north.len(), 1);
        assert_eq!(to_north[0].recipient_signal_id, a);
        assert_eq!(to_north[0].counterpart.signal_id, b);
        assert_eq!(to_north[0].counterpart.region_id, south);
        assert_eq!(
            to_north[0].counterpart.contact.email(),
            "p1@school.example.nl"
        );
        let to_south = notices_after(&store, &south, 0).await;
        assert_eq!(to_south.len(), 1);
        assert_eq!(to_south[0].counterpart.signal_id, a);
        // Cursors only move forward.
        assert!(
            notices_after(&store, &north, to_north[0].cursor)
                .await
                .is_empty()
        );
    }

    #[tokio::test]
    async fn same_region_pairs_are_left_to_the_node() {
        let (_dir, store) = store().await;
        let north = region("north");
        store
            .submit(
                &north,
                vec![upsert(
                    SignalId::generate(),
                    1,
                    signal("gp", 1, &[7], SignalState::Active),
                )],
                now(),
            )
            .await
            .unwrap();
        let outcome = store
            .submit(
                &north,
                vec![upsert(
                    SignalId::generate(),
                    1,
                    signal("school", 2, &[7], SignalState::Active),
                )],
                now(),
            )
            .await
            .unwrap();
        assert_eq!(outcome.notices, 0);
    }

    #[tokio::test]
    async fn a_replayed_batch_has_one_effect_and_the_latest_revision_wins() {
        let (_dir, store) = store().await;
        let (north, south) = (region("north"), region("south"));
        let a = SignalId::generate();
        let mut archived = signal("gp", 1, &[], SignalState::Inactive);
        archived.planned_removal_date = jiff::civil::date(2027, 1, 1);
        let batch = vec![
            upsert(a, 1, signal("gp", 1, &[], SignalState::Active)),
            upsert(a, 2, archived.clone()),
        ];
        assert_eq!(
            store
                .submit(&north, batch.clone(), now())
                .await
                .unwrap()
                .applied,
            2
        );
        let again = store.submit(&north, batch, now()).await.unwrap();
        assert_eq!(
            again,
            BatchOutcome {
                applied: 0,
                ignored: 2,
                notices: 0
            }
        );
        // An old revision arriving late changes nothing.
        let late = store
            .submit(
                &north,
                vec![upsert(a, 1, signal("gp", 1, &[], SignalState::Active))],
                now(),
            )
            .await
            .unwrap();
        assert_eq!(late.ignored, 1);
        // A new party sees revision 2: inactive, so a one-sided history notice.
        store
            .submit(
                &south,
                vec![upsert(
                    SignalId::generate(),
                    1,
                    signal("school", 1, &[], SignalState::Active),
                )],
                now(),
            )
            .await
            .unwrap();
        let to_south = notices_after(&store, &south, 0).await;
        assert_eq!(to_south.len(), 1);
        assert_eq!(to_south[0].kind, NoticeKind::History);
        assert_eq!(to_south[0].counterpart.state, SignalState::Inactive);
        assert!(notices_after(&store, &north, 0).await.is_empty());
    }

    #[tokio::test]
    async fn a_region_cannot_write_another_regions_signal_and_the_batch_is_rolled_back() {
        let (_dir, store) = store().await;
        let (north, south) = (region("north"), region("south"));
        let a = SignalId::generate();
        store
            .submit(
                &north,
                vec![upsert(a, 1, signal("gp", 1, &[], SignalState::Active))],
                now(),
            )
            .await
            .unwrap();
        let b = SignalId::generate();
        let error = store
            .submit(
                &south,
                vec![
                    upsert(b, 1, signal("school", 1, &[], SignalState::Active)),
                    upsert(a, 2, signal("school", 1, &[], SignalState::Inactive)),
                ],
                now(),
            )
            .await
            .unwrap_err();
        assert!(matches!(error, HubStoreError::NotOwner { index: 1 }));
        assert!(
            notices_after(&store, &north, 0).await.is_empty(),
            "b was rolled back"
        );
    }

    #[tokio::test]
    async fn a_deleted_signal_is_not_revived_by_a_replay() {
        let (_dir, store) = store().await;
        let (north, south) = (region("north"), region("south"));
        let a = SignalId::generate();
        let delete = SignalEvent {
            signal_id: a,
            revision: Revision::new(2).unwrap(),
            upsert: None,
        };
        store
            .submit(
                &north,
                vec![
                    upsert(a, 1, signal("gp", 1, &[], SignalState::Active)),
                    delete,
                ],
                now(),
            )
            .await
            .unwrap();
        let replay = store
            .submit(
                &north,
                vec![upsert(a, 1, signal("gp", 1, &[], SignalState::Active))],
                now(),
            )
            .await
            .unwrap();
        assert_eq!(replay.ignored, 1);
        store
            .submit(
                &south,
                vec![upsert(
                    SignalId::generate(),
                    1,
                    signal("school", 1, &[], SignalState::Active),
                )],
                now(),
            )
            .await
            .unwrap();
        assert!(notices_after(&store, &south, 0).await.is_empty());
    }

    #[tokio::test]
    async fn an_organisation_belongs_to_the_region_that_first_submitted_it() {
        let (_dir, store) = store().await;
        let (north, south) = (region("north"), region("south"));
        store
            .submit(
                &north,
                vec![upsert(
                    SignalId::generate(),
                    1,
                    signal("gp", 1, &[], SignalState::Active),
                )],
                now(),
            )
            .await
            .unwrap();
        let error = store
            .submit(
                &south,
                vec![upsert(
                    SignalId::generate(),
                    1,
                    signal("gp", 1, &[], SignalState::Active),
                )],
                now(),
            )
            .await
            .unwrap_err();
        assert!(matches!(
            error,
            HubStoreError::ForeignOrganisation { index: 0 }
        ));
    }

    #[tokio::test]
    async fn deleting_a_signal_removes_the_notices_that_name_it() {
        let (_dir, store) = store().await;
        let (north, south) = (region("north"), region("south"));
        let a = SignalId::generate();
        store
            .submit(
                &north,
                vec![upsert(a, 1, signal("gp", 1, &[], SignalState::Active))],
                now(),
            )
            .await
            .unwrap();
        store
            .submit(
                &south,
                vec![upsert(
                    SignalId::generate(),
                    1,
                    signal("school", 1, &[], SignalState::Active),
                )],
                now(),
            )
            .await
            .unwrap();
        let delivered = notices_after(&store, &south, 0).await;
        assert_eq!(delivered.len(), 1);
        let delete = SignalEvent {
            signal_id: a,
            revision: Revision::new(2).unwrap(),
            upsert: None,
        };
        store.submit(&north, vec![delete], now()).await.unwrap();
        assert!(notices_after(&store, &south, 0).await.is_empty());
        assert!(notices_after(&store, &north, 0).await.is_empty());
        // South, which may hold the notice already, is told to delete it.
        let after_delivery = store
            .log_after(&south, delivered[0].cursor, 10)
            .await
            .unwrap();
        assert_eq!(
            after_delivery.entries,
            [LogEntry::Retraction {
                cursor: after_delivery.read_through.unwrap(),
                notice_id: delivered[0].notice_id.clone(),
            }]
        );
        let counted: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM notices")
            .fetch_one(&store.reader)
            .await
            .unwrap();
        assert_eq!(counted, 0);
    }

    #[tokio::test]
    async fn the_hub_expires_at_r_and_deletes_five_years_later_with_retractions() {
        let (_dir, store) = store().await;
        let (north, south) = (region("north"), region("south"));
        let mut active = signal("gp", 1, &[], SignalState::Active);
        active.planned_removal_date = jiff::civil::date(2027, 6, 1);
        let a = SignalId::generate();
        store
            .submit(&north, vec![upsert(a, 1, active)], now())
            .await
            .unwrap();
        store
            .submit(
                &south,
                vec![upsert(
                    SignalId::generate(),
                    1,
                    signal("school", 1, &[], SignalState::Active),
                )],
                now(),
            )
            .await
            .unwrap();
        let delivered = notices_after(&store, &south, 0).await;
        assert_eq!(delivered.len(), 1);

        let day = jiff::civil::date;
        assert_eq!(
            store.sweep(day(2027, 5, 31), 100).await.unwrap(),
            SweepReport::default()
        );
        assert_eq!(
            store.sweep(day(2027, 6, 1), 100).await.unwrap(),
            SweepReport {
                expired: 1,
                deleted: 0
            }
        );
        assert_eq!(
            store.sweep(day(2027, 6, 1), 100).await.unwrap(),
            SweepReport::default()
        );
        // Meanwhile the school's signal (R = 2028-11-25) expired; the GP's archive still runs.
        assert_eq!(
            store.sweep(day(2032, 5, 31), 100).await.unwrap(),
            SweepReport {
                expired: 1,
                deleted: 0
            }
        );
        assert_eq!(
            store.sweep(day(2032, 6, 1), 100).await.unwrap(),
            SweepReport {
                expired: 0,
                deleted: 1
            }
        );
        let after = store
            .log_after(&south, delivered[0].cursor, 10)
            .await
            .unwrap();
        assert!(
            matches!(&after.entries[..], [LogEntry::Retraction { notice_id, .. }] if *notice_id == delivered[0].notice_id)
        );
        // The tombstone keeps a late region event from reviving it.
        let replay = store
            .submit(
                &north,
                vec![upsert(a, 2, signal("gp", 1, &[], SignalState::Inactive))],
                now(),
            )
            .await
            .unwrap();
        assert_eq!(replay.ignored, 1);
    }

    #[tokio::test]
    async fn a_signal_arriving_past_its_removal_date_is_stored_inactive_and_shown_as_history() {
        let (_dir, store) = store().await;
        let (north, south) = (region("north"), region("south"));
        // Sent late by a region that was away: active by its revision, but R has passed.
        let mut late = signal("gp", 1, &[], SignalState::Active);
        late.planned_removal_date = jiff::civil::date(2026, 11, 1);
        store
            .submit(&north, vec![upsert(SignalId::generate(), 1, late)], now())
            .await
            .unwrap();
        store
            .submit(
                &south,
                vec![upsert(
                    SignalId::generate(),
                    1,
                    signal("school", 1, &[], SignalState::Active),
                )],
                now(),
            )
            .await
            .unwrap();
        let to_south = notices_after(&store, &south, 0).await;
        assert_eq!(to_south.len(), 1);
        assert_eq!(to_south[0].kind, NoticeKind::History);
        assert!(notices_after(&store, &north, 0).await.is_empty());
    }

    #[tokio::test]
    async fn a_pair_is_not_told_again_while_both_parties_exist_and_is_once_one_is_gone() {
        let (_dir, store) = store().await;
        let (north, south) = (region("north"), region("south"));
        let (s1, s3) = (SignalId::generate(), SignalId::generate());
        store
            .submit(
                &north,
                vec![upsert(s1, 1, signal("gp", 1, &[], SignalState::Active))],
                now(),
            )
            .await
            .unwrap();
        store
            .submit(
                &south,
                vec![upsert(
                    SignalId::generate(),
                    1,
                    signal("school", 1, &[], SignalState::Active),
                )],
                now(),
            )
            .await
            .unwrap();
        // The GP's party keeps a second signal; deleting the first does not reset the pair.
        store
            .submit(
                &north,
                vec![upsert(s3, 1, signal("gp", 1, &[], SignalState::Active))],
                now(),
            )
            .await
            .unwrap();
        let delete = |id| SignalEvent {
            signal_id: id,
            revision: Revision::new(2).unwrap(),
            upsert: None,
        };
        store.submit(&north, vec![delete(s1)], now()).await.unwrap();
        let again = store
            .submit(
                &south,
                vec![upsert(
                    SignalId::generate(),
                    1,
                    signal("school", 1, &[], SignalState::Active),
                )],
                now(),
            )
            .await
            .unwrap();
        assert_eq!(again.notices, 0);
        // Once the GP has no signal left on the youth, its party is gone: a new GP signal is
        // a new party, told anew.
        store.submit(&north, vec![delete(s3)], now()).await.unwrap();
        let anew = store
            .submit(
                &north,
                vec![upsert(
                    SignalId::generate(),
                    1,
                    signal("gp", 1, &[], SignalState::Active),
                )],
                now(),
            )
            .await
            .unwrap();
        assert_eq!(anew.notices, 2);
    }

    #[tokio::test]
    async fn acknowledgements_never_move_backwards() {
        let (_dir, store) = store().await;
        let (north, south) = (region("north"), region("south"));
        store
            .submit(
                &north,
                vec![upsert(
                    SignalId::generate(),
                    1,
                    signal("gp", 1, &[], SignalState::Active),
                )],
                now(),
            )
            .await
            .unwrap();
        for org in ["school", "care"] {
            store
                .submit(
                    &south,
                    vec![upsert(
                        SignalId::generate(),
                        1,
                        signal(org, 1, &[], SignalState::Active),
                    )],
                    now(),
                )
                .await
                .unwrap();
        }
        let log = notices_after(&store, &north, 0).await;
        assert_eq!(log.len(), 2);
        assert_eq!(store.unacked(&north).await.unwrap(), 2);
        store.ack(&north, log[1].cursor, now()).await.unwrap();
        store.ack(&north, log[0].cursor, now()).await.unwrap();
        assert_eq!(store.unacked(&north).await.unwrap(), 0);
    }
}
